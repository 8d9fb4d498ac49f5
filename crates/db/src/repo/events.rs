//! The outbox and the change feed (SPEC §9).
//!
//! Events are rows of `events`, inserted by the transaction whose change they report (state
//! changes in [`super::enforce::apply_changes`], thresholds by the spend path, reversals by
//! [`super::spend::reverse`]), so an event exists if and only if its change committed.
//!
//! **The feed's order.** Ids are taken when a transaction inserts, and transactions commit in
//! another order: reading `id > cursor` would pass over an event whose transaction took a smaller
//! id and committed after the reader moved on. So the feed is ordered by `(txid, id)` and serves
//! only events below a *horizon* that no running transaction can still write under:
//!
//! - PostgreSQL: `txid` is the writing transaction's id (`pg_current_xact_id()`, the column's
//!   default). `pg_snapshot_xmin` of a snapshot is the oldest transaction still running: every
//!   transaction below it has ended, and every transaction that writes later has a larger id.
//!   The feed serves `txid < xmin`, so what it has served is a prefix of the final order, and a
//!   cursor never skips. An event waits in the outbox while an older transaction (anywhere in the
//!   cluster) is still running: long transactions delay the feed, never reorder it.
//! - SQLite: writers take turns (write transactions begin IMMEDIATE), so ids are taken in commit
//!   order; `txid` is 0 and the horizon is the largest id, read in the same read transaction as
//!   the page.
//!
//! Proven by `crates/db/tests/jobs/events.rs` (a writing transaction held open while later ones
//! commit), on both backends.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

use adbudget_core::access::Brands;
use adbudget_core::events::{Cursor, Envelope, EventType, public_id};
use adbudget_core::rule::{Change, PauseReasons};

use super::enforce::Cause;
use super::{CHUNK, naive, utc};
use crate::DbConnection;
use crate::schema::events;

/// Events this process has written (committed or not): what the dispatcher's nudges watch.
static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many events this process has written so far.
pub fn written() -> u64 {
    WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// An event to write in the current transaction.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    pub brand_id: Option<i64>,
    pub campaign_id: Option<i64>,
    /// An event whose key is already stored is not written again (thresholds fire once).
    pub dedupe_key: Option<String>,
    pub data: serde_json::Value,
}

impl NewEvent {
    /// The row as inserted (`txid` is the column's default).
    #[allow(clippy::type_complexity)]
    fn row(
        &self,
        at: NaiveDateTime,
    ) -> (
        diesel::dsl::Eq<events::event_type, &'static str>,
        diesel::dsl::Eq<events::brand_id, Option<i64>>,
        diesel::dsl::Eq<events::campaign_id, Option<i64>>,
        diesel::dsl::Eq<events::dedupe_key, Option<&str>>,
        diesel::dsl::Eq<events::data, String>,
        diesel::dsl::Eq<events::created_at, NaiveDateTime>,
    ) {
        (
            events::event_type.eq(self.event_type.name()),
            events::brand_id.eq(self.brand_id),
            events::campaign_id.eq(self.campaign_id),
            events::dedupe_key.eq(self.dedupe_key.as_deref()),
            events::data.eq(self.data.to_string()),
            events::created_at.eq(at),
        )
    }
}

/// Above this many rows an insert goes by COPY on PostgreSQL.
const COPY_FROM_ROWS: usize = 100;

/// Counts events written by this process (the nudges watch it) and in the metrics.
fn counted(written: usize) {
    if written > 0 {
        WRITTEN.fetch_add(written as u64, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("adbudget_events_total").increment(written as u64);
    }
}

/// Writes `new` in the caller's transaction (one statement per 5,000); returns how many were
/// written (those whose `dedupe_key` was taken are not).
pub(crate) fn insert(
    conn: &mut DbConnection,
    new: &[NewEvent],
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let at = naive(now);
    // Many events without dedupe keys (a reset's pauses and resumes: 100,000 at 1M campaigns)
    // are streamed with COPY on PostgreSQL, as the status history is: nothing can conflict, and
    // no statement of thousands of parameters is parsed and planned per chunk.
    if let DbConnection::Postgresql(c) = conn
        && new.len() > COPY_FROM_ROWS
        && new.iter().all(|e| e.dedupe_key.is_none())
    {
        let rows: Vec<_> = new.iter().map(|e| e.row(at)).collect();
        let written = diesel::copy_from(events::table)
            .from_insertable(&rows)
            .execute(c)?;
        counted(written);
        return Ok(written);
    }
    let mut written = 0;
    for chunk in new.chunks(CHUNK / 8) {
        let rows: Vec<_> = chunk.iter().map(|e| e.row(at)).collect();
        written += crate::per_backend!(conn, c => diesel::insert_into(events::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    counted(written);
    Ok(written)
}

/// Writes one event and returns its id (for an event without a dedupe key: a ping).
pub(crate) fn insert_one(
    conn: &mut DbConnection,
    new: &NewEvent,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    let id = diesel::insert_into(events::table)
        .values(new.row(naive(now)))
        .returning(events::id)
        .get_result(conn)?;
    counted(1);
    Ok(id)
}

/// The `campaign.paused` and `campaign.resumed` events of state changes just applied (their
/// `state_version` already incremented): a campaign going from active to paused or back. A
/// change of reasons that leaves it paused is a new state version but no event.
pub(crate) fn of_state_changes(
    conn: &mut DbConnection,
    changes: &[Change],
    cause: Cause,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let flips: Vec<&Change> = changes
        .iter()
        .filter(|c| c.from.is_empty() != c.to.is_empty())
        .collect();
    if flips.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = flips.iter().map(|c| c.campaign_id).collect();
    let views = super::campaigns::views(conn, &ids, now)?;
    let previous: std::collections::HashMap<i64, PauseReasons> =
        flips.iter().map(|c| (c.campaign_id, c.from)).collect();
    let new: Vec<NewEvent> = views
        .into_iter()
        .map(|campaign| {
            let event_type = if campaign.is_active {
                EventType::CampaignResumed
            } else {
                EventType::CampaignPaused
            };
            let from = previous.get(&campaign.id).copied().unwrap_or_default();
            NewEvent {
                event_type,
                brand_id: Some(campaign.brand_id),
                campaign_id: Some(campaign.id),
                dedupe_key: None,
                data: serde_json::json!({
                    "state_version": campaign.state_version,
                    "previous_reasons": from,
                    "cause": cause.as_str(),
                    "campaign": campaign,
                }),
            }
        })
        .collect();
    insert(conn, &new, now)
}

#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = events)]
struct EventRow {
    id: i64,
    txid: i64,
    event_type: String,
    brand_id: Option<i64>,
    data: String,
    created_at: NaiveDateTime,
}

impl EventRow {
    fn cursor(&self) -> Cursor {
        Cursor {
            txid: self.txid,
            id: self.id,
        }
    }

    fn into_envelope(self) -> Option<Envelope> {
        Some(Envelope {
            id: public_id(self.id),
            event_type: self.event_type.parse().ok()?,
            created_at: utc(self.created_at),
            brand_id: self.brand_id,
            data: serde_json::from_str(&self.data).ok()?,
        })
    }
}

/// What the feed is asked for.
#[derive(Debug, Clone, Default)]
pub struct FeedQuery {
    /// Events after this position (the start when default).
    pub after: Cursor,
    pub limit: i64,
    pub event_type: Option<EventType>,
    pub brand_id: Option<i64>,
    /// The brands the caller sees.
    pub visible: Brands,
}

/// A page of the feed: the events in order, and where to continue (past every event the query
/// could have matched, served or not).
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub items: Vec<Envelope>,
    pub next_cursor: Cursor,
}

/// Positions below which no transaction can still add an event (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Horizon {
    txid_below: i64,
    id_at_most: i64,
}

#[derive(QueryableByName)]
struct Xmin {
    #[diesel(sql_type = BigInt)]
    xmin: i64,
}

fn horizon(conn: &mut DbConnection) -> QueryResult<Horizon> {
    match conn {
        DbConnection::Postgresql(c) => {
            let x: Xmin = diesel::sql_query(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin",
            )
            .get_result(c)?;
            Ok(Horizon {
                txid_below: x.xmin,
                id_at_most: i64::MAX,
            })
        }
        DbConnection::Sqlite(c) => {
            let max: Option<i64> = events::table
                .select(diesel::dsl::max(events::id))
                .first(c)?;
            Ok(Horizon {
                txid_below: 1,
                id_at_most: max.unwrap_or(0),
            })
        }
    }
}

/// A page of the change feed. PostgreSQL reads the horizon first and the page after, each at its
/// own snapshot: every transaction below the horizon had ended before the page's snapshot was
/// taken. SQLite reads both in one read transaction.
pub fn feed(conn: &mut DbConnection, q: &FeedQuery) -> QueryResult<FeedPage> {
    conn.transaction(|conn| {
        let h = horizon(conn)?;
        let mut query = events::table
            .select(EventRow::as_select())
            .filter(
                sql::<Bool>("(events.txid, events.id) > (")
                    .bind::<BigInt, _>(q.after.txid)
                    .sql(", ")
                    .bind::<BigInt, _>(q.after.id)
                    .sql(")"),
            )
            .filter(events::txid.lt(h.txid_below))
            .filter(events::id.le(h.id_at_most))
            .filter(events::event_type.ne(EventType::Ping.name()))
            .order((events::txid, events::id))
            .limit(q.limit)
            .into_boxed();
        if let Some(t) = q.event_type {
            query = query.filter(events::event_type.eq(t.name()));
        }
        if let Some(b) = q.brand_id {
            query = query.filter(events::brand_id.eq(b));
        }
        if let Some(ids) = q.visible.ids() {
            query = query.filter(events::brand_id.eq_any(ids.to_vec()));
        }
        let rows: Vec<EventRow> = query.load(conn)?;
        let full = rows.len() as i64 == q.limit;
        let next_cursor = match (full, rows.last()) {
            (true, Some(last)) => last.cursor(),
            // Everything up to the horizon that matched was served: continue from there.
            // PostgreSQL's horizon is "every id of the transactions below `txid_below`": the
            // cursor just before `(txid_below, 0)` says the same in small numbers (a cursor is the
            // digits of two ids, at most 18 each).
            _ if h.id_at_most == i64::MAX => q.after.max(Cursor {
                txid: h.txid_below,
                id: 0,
            }),
            _ => q.after.max(Cursor {
                txid: h.txid_below - 1,
                id: h.id_at_most,
            }),
        };
        Ok(FeedPage {
            items: rows
                .into_iter()
                .filter_map(EventRow::into_envelope)
                .collect(),
            next_cursor,
        })
    })
}

/// Deletes the events created before `before` (with their deliveries); returns how many.
pub fn prune(conn: &mut DbConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(events::table.filter(events::created_at.lt(naive(before)))).execute(conn)
}
