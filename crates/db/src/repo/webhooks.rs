//! Webhook endpoints, the dispatcher and the delivery log (SPEC §9).
//!
//! The outbox (`events`) is the source of truth; Redis only carries attempts. [`dispatch`] turns
//! the events the change feed has made visible into one delivery per matching endpoint, under
//! the one `event_dispatch` row's lock, and hands out the deliveries that are due, each with a
//! lease: the job carrying an attempt that is lost (a worker killed, Redis restarted) is handed
//! out again when its lease runs out. An attempt's job checks that it is still the one expected
//! ([`attempt`]), so a duplicate job does nothing.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use rand::Rng;

use adbudget_core::access::{Author, Brands};
use adbudget_core::events::{Cursor, EventType, public_id};
use adbudget_core::webhooks::{
    AttemptJob, AttemptView, Delivery, Endpoint, GIVE_UP_AFTER, ROTATION_OVERLAP, retry_delay,
};

use super::events::{FeedQuery, NewEvent};
use super::{naive, utc};
use crate::error::{DomainError, DomainResult};
use crate::schema::{
    event_dispatch, events, webhook_attempts, webhook_deliveries, webhook_endpoints,
};
use crate::{DbConnection, write_transaction};

/// How long the job carrying an attempt has before the attempt is handed out again: more than
/// the receiver's 10 s and a worker's restart.
pub const LEASE: TimeDelta = TimeDelta::seconds(60);
/// Events turned into deliveries per dispatch round.
const DISPATCH_BATCH: i64 = 500;
/// Deliveries handed out per dispatch round.
const CLAIM_BATCH: i64 = 1000;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointRow {
    id: i64,
    url: String,
    description: String,
    event_types: Option<String>,
    brand_ids: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<NaiveDateTime>,
    enabled: bool,
    disabled_reason: Option<String>,
    last_success_at: Option<NaiveDateTime>,
    failing_since: Option<NaiveDateTime>,
    failure_streak: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn split<T: std::str::FromStr>(s: &Option<String>) -> Option<Vec<T>> {
    s.as_ref().map(|s| {
        s.split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.parse().ok())
            .collect()
    })
}

fn join<T: ToString>(v: &Option<Vec<T>>) -> Option<String> {
    v.as_ref()
        .map(|v| v.iter().map(T::to_string).collect::<Vec<_>>().join(","))
}

impl EndpointRow {
    fn view(&self) -> Endpoint {
        Endpoint {
            id: self.id,
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: split(&self.event_types),
            brand_ids: split(&self.brand_ids),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            last_success_at: self.last_success_at.map(utc),
            failing_since: self.failing_since.map(utc),
            failure_streak: self.failure_streak,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        }
    }

    /// What this (enabled) endpoint receives, its lists parsed once for a dispatch round.
    fn subscription(&self) -> Subscription {
        Subscription {
            endpoint_id: self.id,
            types: split(&self.event_types),
            brands: split(&self.brand_ids),
        }
    }

    fn visible_to(&self, visible: &Brands) -> bool {
        match (visible.ids(), split::<i64>(&self.brand_ids)) {
            (None, _) => true,
            // A bound caller sees the endpoints of its brands only (never the unbound ones).
            (Some(mine), Some(theirs)) => {
                !theirs.is_empty() && theirs.iter().all(|b| mine.contains(b))
            }
            (Some(_), None) => false,
        }
    }
}

/// An endpoint's filters, as a dispatch round matches events against them.
struct Subscription {
    endpoint_id: i64,
    types: Option<Vec<EventType>>,
    brands: Option<Vec<i64>>,
}

impl Subscription {
    /// Whether it receives `event` (of `brand_id`); never a `ping`, which goes to one endpoint.
    fn wants(&self, event: EventType, brand_id: Option<i64>) -> bool {
        event != EventType::Ping
            && self.types.as_ref().is_none_or(|t| t.contains(&event))
            && self
                .brands
                .as_ref()
                .is_none_or(|b| brand_id.is_some_and(|id| b.contains(&id)))
    }
}

/// A new signing secret: `whsec_` and 32 random bytes in base64 (the Standard Webhooks form).
pub fn new_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// What an endpoint is created with (validated by the caller: URL, types, brands).
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub event_types: Option<Vec<EventType>>,
    pub brand_ids: Option<Vec<i64>>,
}

/// Changes of an endpoint (`None`: unchanged; `Some(None)` for the lists: all).
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Option<Vec<EventType>>>,
    pub brand_ids: Option<Option<Vec<i64>>>,
    /// Enabling clears the failure record and the reason.
    pub enabled: Option<bool>,
}

fn names(types: &Option<Vec<EventType>>) -> Option<Vec<String>> {
    types
        .as_ref()
        .map(|t| t.iter().map(|t| t.name().to_owned()).collect())
}

fn audit(
    conn: &mut DbConnection,
    author: &Author,
    action: &'static str,
    old: Option<&Endpoint>,
    new: Option<&Endpoint>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let Some(id) = old.or(new).map(|e| e.id) else {
        return Ok(());
    };
    let changes = adbudget_core::audit::diff_of(
        old,
        new,
        &["url", "description", "event_types", "brand_ids", "enabled"],
    );
    let entry = adbudget_core::audit::NewEntry {
        object_type: "webhook",
        object_id: id,
        brand_id: None,
        action,
        changes,
    };
    super::audit::record(conn, author, entry, now)
}

fn row(conn: &mut DbConnection, id: i64, visible: &Brands) -> DomainResult<EndpointRow> {
    webhook_endpoints::table
        .select(EndpointRow::as_select())
        .find(id)
        .first(conn)
        .optional()?
        .filter(|r| r.visible_to(visible))
        .ok_or(DomainError::not_found("webhook"))
}

/// Creates an endpoint; returns it and its secret (shown once).
pub fn create(
    conn: &mut DbConnection,
    new: &NewEndpoint,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<(Endpoint, String)> {
    let secret = new_secret();
    write_transaction(conn, |conn| {
        let at = naive(now);
        let id: i64 = diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::url.eq(&new.url),
                webhook_endpoints::description.eq(&new.description),
                webhook_endpoints::event_types.eq(join(&names(&new.event_types))),
                webhook_endpoints::brand_ids.eq(join(&new.brand_ids)),
                webhook_endpoints::secret.eq(&secret),
                webhook_endpoints::created_at.eq(at),
                webhook_endpoints::updated_at.eq(at),
            ))
            .returning(webhook_endpoints::id)
            .get_result(conn)?;
        let endpoint = row(conn, id, &Brands::All)?.view();
        audit(conn, author, "create", None, Some(&endpoint), now)?;
        Ok((endpoint, secret.clone()))
    })
}

pub fn list(conn: &mut DbConnection, visible: &Brands) -> DomainResult<Vec<Endpoint>> {
    let rows: Vec<EndpointRow> = webhook_endpoints::table
        .select(EndpointRow::as_select())
        .order(webhook_endpoints::id)
        .load(conn)?;
    Ok(rows
        .iter()
        .filter(|r| r.visible_to(visible))
        .map(EndpointRow::view)
        .collect())
}

pub fn get(conn: &mut DbConnection, id: i64, visible: &Brands) -> DomainResult<Endpoint> {
    Ok(row(conn, id, visible)?.view())
}

pub fn update(
    conn: &mut DbConnection,
    id: i64,
    changes: &EndpointChanges,
    visible: &Brands,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Endpoint> {
    write_transaction(conn, |conn| {
        let current = row(conn, id, visible)?;
        let before = current.view();
        let enable = changes.enabled == Some(true) && !current.enabled;
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::url.eq(changes.url.as_ref().unwrap_or(&current.url)),
                webhook_endpoints::description
                    .eq(changes.description.as_ref().unwrap_or(&current.description)),
                webhook_endpoints::event_types.eq(match &changes.event_types {
                    Some(t) => join(&names(t)),
                    None => current.event_types.clone(),
                }),
                webhook_endpoints::brand_ids.eq(match &changes.brand_ids {
                    Some(b) => join(b),
                    None => current.brand_ids.clone(),
                }),
                webhook_endpoints::enabled.eq(changes.enabled.unwrap_or(current.enabled)),
                webhook_endpoints::updated_at.eq(naive(now)),
            ))
            .execute(conn)?;
        if enable {
            diesel::update(webhook_endpoints::table.find(id))
                .set((
                    webhook_endpoints::disabled_reason.eq(None::<String>),
                    webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
                    webhook_endpoints::failure_streak.eq(0),
                ))
                .execute(conn)?;
        }
        let after = row(conn, id, &Brands::All)?.view();
        audit(conn, author, "update", Some(&before), Some(&after), now)?;
        Ok(after)
    })
}

pub fn delete(
    conn: &mut DbConnection,
    id: i64,
    visible: &Brands,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        let before = row(conn, id, visible)?.view();
        diesel::delete(webhook_endpoints::table.find(id)).execute(conn)?;
        audit(conn, author, "delete", Some(&before), None, now)
    })
}

/// A new secret; the old one keeps signing beside it for 24 hours. Returns the new secret.
pub fn rotate_secret(
    conn: &mut DbConnection,
    id: i64,
    visible: &Brands,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<String> {
    let secret = new_secret();
    write_transaction(conn, |conn| {
        let current = row(conn, id, visible)?;
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::secret.eq(&secret),
                webhook_endpoints::previous_secret.eq(Some(&current.secret)),
                webhook_endpoints::previous_secret_until.eq(Some(naive(now + ROTATION_OVERLAP))),
                webhook_endpoints::updated_at.eq(naive(now)),
            ))
            .execute(conn)?;
        let entry = adbudget_core::audit::NewEntry {
            object_type: "webhook",
            object_id: id,
            brand_id: None,
            action: "rotate_secret",
            // The secrets themselves are never written anywhere but their column.
            changes: [(
                "secret_rotated_at".to_owned(),
                adbudget_core::audit::FieldChange {
                    old: serde_json::Value::Null,
                    new: serde_json::json!(now),
                },
            )]
            .into_iter()
            .collect(),
        };
        super::audit::record(conn, author, entry, now)?;
        Ok(secret.clone())
    })
}

/// A `ping` event for this endpoint alone, with its delivery due now.
pub fn ping(
    conn: &mut DbConnection,
    id: i64,
    visible: &Brands,
    now: DateTime<Utc>,
) -> DomainResult<i64> {
    write_transaction(conn, |conn| {
        row(conn, id, visible)?;
        let event = NewEvent {
            event_type: EventType::Ping,
            brand_id: None,
            campaign_id: None,
            dedupe_key: None,
            data: serde_json::json!({}),
        };
        let event_id = super::events::insert_one(conn, &event, now)?;
        Ok(new_delivery(conn, id, event_id, now)?)
    })
}

fn new_delivery(
    conn: &mut DbConnection,
    endpoint_id: i64,
    event_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    let at = naive(now);
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::endpoint_id.eq(endpoint_id),
            webhook_deliveries::event_id.eq(event_id),
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::next_attempt_at.eq(at),
            webhook_deliveries::created_at.eq(at),
        ))
        .returning(webhook_deliveries::id)
        .get_result(conn)
}

/// What a dispatch round did.
#[derive(Debug, Clone, Default)]
pub struct Dispatched {
    /// Deliveries created from new events.
    pub created: usize,
    /// Attempts handed out (each to be pushed as a job).
    pub jobs: Vec<AttemptJob>,
}

/// One dispatch round, in one write transaction holding the dispatcher's row: the events past
/// the dispatcher's cursor become deliveries, and the due deliveries are handed out with a lease.
pub fn dispatch(conn: &mut DbConnection, now: DateTime<Utc>) -> DomainResult<Dispatched> {
    write_transaction(conn, |conn| {
        let (txid, event_id): (i64, i64) = match conn {
            DbConnection::Postgresql(c) => event_dispatch::table
                .select((event_dispatch::txid, event_dispatch::event_id))
                .for_update()
                .first(c)?,
            DbConnection::Sqlite(c) => event_dispatch::table
                .select((event_dispatch::txid, event_dispatch::event_id))
                .first(c)?,
        };
        let endpoints: Vec<EndpointRow> = webhook_endpoints::table
            .select(EndpointRow::as_select())
            .filter(webhook_endpoints::enabled.eq(true))
            .load(conn)?;
        let subscriptions: Vec<Subscription> =
            endpoints.iter().map(EndpointRow::subscription).collect();
        // A disabled endpoint's deliveries wait; enabling it again sends them.
        let enabled: Vec<i64> = endpoints.iter().map(|e| e.id).collect();
        let mut out = Dispatched::default();
        let mut cursor = Cursor { txid, id: event_id };
        loop {
            let page = super::events::feed(
                conn,
                &FeedQuery {
                    after: cursor,
                    limit: DISPATCH_BATCH,
                    ..Default::default()
                },
            )?;
            let at = naive(now);
            let rows: Vec<_> = page
                .items
                .iter()
                .flat_map(|e| {
                    let id = e.id.trim_start_matches("evt_").parse::<i64>().unwrap_or(0);
                    subscriptions
                        .iter()
                        .filter(|sub| sub.wants(e.event_type, e.brand_id))
                        .map(move |sub| {
                            (
                                webhook_deliveries::endpoint_id.eq(sub.endpoint_id),
                                webhook_deliveries::event_id.eq(id),
                                webhook_deliveries::status.eq("pending"),
                                webhook_deliveries::next_attempt_at.eq(at),
                                webhook_deliveries::created_at.eq(at),
                            )
                        })
                })
                .collect();
            for chunk in rows.chunks(1000) {
                out.created += crate::per_backend!(conn, c => diesel::insert_into(webhook_deliveries::table).values(chunk).execute(c))?;
            }
            let done = page.items.len() < DISPATCH_BATCH as usize;
            cursor = page.next_cursor;
            if done {
                break;
            }
        }
        diesel::update(event_dispatch::table)
            .set((
                event_dispatch::txid.eq(cursor.txid),
                event_dispatch::event_id.eq(cursor.id),
            ))
            .execute(conn)?;
        let at = naive(now);
        let due: Vec<(i64, i32)> = webhook_deliveries::table
            .select((webhook_deliveries::id, webhook_deliveries::attempts))
            .filter(webhook_deliveries::status.eq("pending"))
            .filter(webhook_deliveries::endpoint_id.eq_any(&enabled))
            .filter(webhook_deliveries::next_attempt_at.le(at))
            .filter(
                webhook_deliveries::claimed_until
                    .is_null()
                    .or(webhook_deliveries::claimed_until.lt(at)),
            )
            .order(webhook_deliveries::next_attempt_at)
            .limit(CLAIM_BATCH)
            .load(conn)?;
        let ids: Vec<i64> = due.iter().map(|(id, _)| *id).collect();
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .set(webhook_deliveries::claimed_until.eq(Some(naive(now + LEASE))))
            .execute(conn)?;
        out.jobs = due
            .into_iter()
            .map(|(delivery_id, attempts)| AttemptJob {
                delivery_id,
                attempt: attempts + 1,
            })
            .collect();
        Ok(out)
    })
}

/// The outbox's backlog: events the dispatcher has not turned into deliveries, and the age of the
/// oldest delivery still pending (seconds), for the metrics.
pub fn backlog(conn: &mut DbConnection, now: DateTime<Utc>) -> DomainResult<(i64, f64)> {
    let (txid, event_id): (i64, i64) = event_dispatch::table
        .select((event_dispatch::txid, event_dispatch::event_id))
        .first(conn)?;
    let waiting: i64 = events::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(events.txid, events.id) > (")
                .bind::<diesel::sql_types::BigInt, _>(txid)
                .sql(", ")
                .bind::<diesel::sql_types::BigInt, _>(event_id)
                .sql(")"),
        )
        .filter(events::event_type.ne(EventType::Ping.name()))
        .count()
        .get_result(conn)?;
    let oldest: Option<NaiveDateTime> = webhook_deliveries::table
        .select(diesel::dsl::min(webhook_deliveries::created_at))
        .filter(webhook_deliveries::status.eq("pending"))
        .first(conn)?;
    let age = oldest.map_or(0.0, |t| (now - utc(t)).num_milliseconds() as f64 / 1000.0);
    Ok((waiting, age))
}

/// What an attempt sends, and to whom.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub url: String,
    /// The current secret, and the previous one while it still signs.
    pub secrets: Vec<String>,
    /// The `webhook-id`: the event's id.
    pub message_id: String,
    /// The body: the event's envelope.
    pub body: String,
}

/// The attempt a job carries, if it is still the one expected: the delivery pending, this its
/// next attempt, the endpoint enabled. A duplicate or stale job gets `None` and does nothing.
pub fn attempt(
    conn: &mut DbConnection,
    job: AttemptJob,
    now: DateTime<Utc>,
) -> DomainResult<Option<Attempt>> {
    let found: Option<(i64, String, i32, i64)> = webhook_deliveries::table
        .select((
            webhook_deliveries::endpoint_id,
            webhook_deliveries::status,
            webhook_deliveries::attempts,
            webhook_deliveries::event_id,
        ))
        .find(job.delivery_id)
        .first(conn)
        .optional()?;
    let Some((endpoint_id, status, attempts, event_id)) = found else {
        return Ok(None);
    };
    if status != "pending" || attempts + 1 != job.attempt {
        return Ok(None);
    }
    let endpoint = row(conn, endpoint_id, &Brands::All)?;
    if !endpoint.enabled {
        return Ok(None);
    }
    let event: (i64, String, Option<i64>, String, NaiveDateTime) = events::table
        .select((
            events::id,
            events::event_type,
            events::brand_id,
            events::data,
            events::created_at,
        ))
        .find(event_id)
        .first(conn)?;
    let data: serde_json::Value = serde_json::from_str(&event.3).unwrap_or_default();
    let body = serde_json::json!({
        "id": public_id(event.0),
        "type": event.1,
        "created_at": utc(event.4),
        "brand_id": event.2,
        "data": data,
    })
    .to_string();
    let mut secrets = vec![endpoint.secret.clone()];
    if let (Some(old), Some(until)) = (&endpoint.previous_secret, endpoint.previous_secret_until)
        && utc(until) > now
    {
        secrets.push(old.clone());
    }
    Ok(Some(Attempt {
        delivery_id: job.delivery_id,
        endpoint_id,
        url: endpoint.url,
        secrets,
        message_id: public_id(event.0),
        body,
    }))
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The receiver's status; none when it never answered.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// What went wrong (a connection error, a refused address, a non-2xx status).
    pub error: Option<String>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Records an attempt's outcome: the attempt row, the delivery's state (delivered, its next
/// attempt, or failed after three days) and the endpoint's health (a `410` disables it; so do
/// three days of failures).
pub fn record(
    conn: &mut DbConnection,
    a: &Attempt,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        let at = naive(now);
        diesel::insert_into(webhook_attempts::table)
            .values((
                webhook_attempts::delivery_id.eq(a.delivery_id),
                webhook_attempts::attempted_at.eq(at),
                webhook_attempts::status_code.eq(outcome.status.map(i32::from)),
                webhook_attempts::latency_ms.eq(outcome.latency_ms),
                webhook_attempts::error.eq(outcome.error.as_deref()),
            ))
            .execute(conn)?;
        let (attempts, created): (i32, NaiveDateTime) = webhook_deliveries::table
            .select((webhook_deliveries::attempts, webhook_deliveries::created_at))
            .find(a.delivery_id)
            .first(conn)?;
        let attempts = attempts + 1;
        let d = webhook_deliveries::table.find(a.delivery_id);
        let e = webhook_endpoints::table.find(a.endpoint_id);
        if outcome.delivered() {
            metrics::counter!("adbudget_webhook_deliveries_total", "outcome" => "delivered")
                .increment(1);
            diesel::update(d)
                .set((
                    webhook_deliveries::status.eq("delivered"),
                    webhook_deliveries::attempts.eq(attempts),
                    webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
                    webhook_deliveries::delivered_at.eq(Some(at)),
                ))
                .execute(conn)?;
            diesel::update(e)
                .set((
                    webhook_endpoints::last_success_at.eq(Some(at)),
                    webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
                    webhook_endpoints::failure_streak.eq(0),
                ))
                .execute(conn)?;
            return Ok(());
        }
        let gone = outcome.status == Some(410);
        let give_up = gone || now - utc(created) >= GIVE_UP_AFTER;
        metrics::counter!("adbudget_webhook_deliveries_total", "outcome" => if give_up { "failed" } else { "retrying" })
            .increment(1);
        let next = now + retry_delay(attempts as u32, rand::rng().random::<f64>());
        diesel::update(d)
            .set((
                webhook_deliveries::status.eq(if give_up { "failed" } else { "pending" }),
                webhook_deliveries::attempts.eq(attempts),
                webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::next_attempt_at.eq(naive(next)),
            ))
            .execute(conn)?;
        let (failing_since,): (Option<NaiveDateTime>,) = webhook_endpoints::table
            .select((webhook_endpoints::failing_since,))
            .find(a.endpoint_id)
            .first(conn)?;
        let since = failing_since.unwrap_or(at);
        let disabled_reason = if gone {
            Some("the receiver answered 410 Gone".to_owned())
        } else if now - utc(since) >= GIVE_UP_AFTER {
            Some(format!(
                "every attempt failed for 3 days (since {}); last: {}",
                utc(since).to_rfc3339(),
                outcome.error.as_deref().unwrap_or("no answer")
            ))
        } else {
            None
        };
        diesel::update(e)
            .set((
                webhook_endpoints::failing_since.eq(Some(since)),
                webhook_endpoints::failure_streak.eq(webhook_endpoints::failure_streak + 1),
            ))
            .execute(conn)?;
        if let Some(reason) = disabled_reason {
            diesel::update(e)
                .set((
                    webhook_endpoints::enabled.eq(false),
                    webhook_endpoints::disabled_reason.eq(Some(reason)),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// The newest deliveries of an endpoint (at most `limit`), each with its attempts.
pub fn deliveries(
    conn: &mut DbConnection,
    endpoint_id: i64,
    visible: &Brands,
    limit: i64,
) -> DomainResult<Vec<Delivery>> {
    row(conn, endpoint_id, visible)?;
    type DeliveryRow = (
        i64,
        i64,
        String,
        String,
        NaiveDateTime,
        NaiveDateTime,
        Option<NaiveDateTime>,
    );
    let rows: Vec<DeliveryRow> = webhook_deliveries::table
        .inner_join(events::table)
        .select((
            webhook_deliveries::id,
            webhook_deliveries::event_id,
            events::event_type,
            webhook_deliveries::status,
            webhook_deliveries::next_attempt_at,
            webhook_deliveries::created_at,
            webhook_deliveries::delivered_at,
        ))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .order(webhook_deliveries::id.desc())
        .limit(limit)
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    type AttemptRow = (i64, NaiveDateTime, Option<i32>, i64, Option<String>);
    let attempts: Vec<AttemptRow> = webhook_attempts::table
        .select((
            webhook_attempts::delivery_id,
            webhook_attempts::attempted_at,
            webhook_attempts::status_code,
            webhook_attempts::latency_ms,
            webhook_attempts::error,
        ))
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order(webhook_attempts::id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, event_id, event_type, status, next, created, delivered)| Delivery {
                attempts: attempts
                    .iter()
                    .filter(|a| a.0 == id)
                    .map(|a| AttemptView {
                        at: utc(a.1),
                        status_code: a.2,
                        latency_ms: a.3,
                        error: a.4.clone(),
                    })
                    .collect(),
                id,
                event_id: public_id(event_id),
                event_type,
                next_attempt_at: (status == "pending").then(|| utc(next)),
                status,
                created_at: utc(created),
                delivered_at: delivered.map(utc),
            },
        )
        .collect())
}

/// Makes a delivery due again now (a manual redelivery, after it failed or while it waits).
pub fn redeliver(
    conn: &mut DbConnection,
    endpoint_id: i64,
    delivery_id: i64,
    visible: &Brands,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        row(conn, endpoint_id, visible)?;
        let n = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(delivery_id))
                .filter(webhook_deliveries::endpoint_id.eq(endpoint_id)),
        )
        .set((
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::next_attempt_at.eq(naive(now)),
            webhook_deliveries::claimed_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        if n == 0 {
            return Err(DomainError::not_found("delivery"));
        }
        Ok(())
    })
}
