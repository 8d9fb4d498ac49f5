//! Recording spend: exact, idempotent, and enforced in the same transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::enforce::{self, BrandFacts, Cause, PeriodsAt, Scope};
use super::{CHUNK, PageRequest, into_page, naive, utc};
use crate::db::{DbConnection, write_transaction};
use crate::error::{DomainError, DomainResult};
use crate::forms::ValidSpend;
use crate::money::Money;
use crate::period::PeriodKeys;
use crate::schema::{brand_spend, brands, campaign_spend, campaigns, spend_logs};
use crate::views::{Campaign, Page, SpendLog};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = spend_logs)]
struct SpendRow {
    id: i64,
    campaign_id: i64,
    amount: i64,
    occurred_at: chrono::NaiveDateTime,
    received_at: chrono::NaiveDateTime,
    event_id: Option<String>,
}

impl From<SpendRow> for SpendLog {
    fn from(r: SpendRow) -> Self {
        SpendLog {
            id: r.id,
            campaign_id: r.campaign_id,
            amount: Money::from_micros(r.amount),
            occurred_at: utc(r.occurred_at),
            received_at: utc(r.received_at),
            event_id: r.event_id,
        }
    }
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly recorded.
    Recorded(SpendLog),
    /// Already recorded with the same payload: nothing counted again.
    Replayed(SpendLog),
}

impl Outcome {
    pub fn log(&self) -> &SpendLog {
        match self {
            Outcome::Recorded(l) | Outcome::Replayed(l) => l,
        }
    }
    pub fn is_new(&self) -> bool {
        matches!(self, Outcome::Recorded(_))
    }
}

/// The result of recording events: one outcome per event, in order, and every touched campaign
/// as it is after the transaction.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub outcomes: Vec<Outcome>,
    pub campaigns: Vec<Campaign>,
}

/// Where an error about event `i` points: `prefix[i].field` in a batch, `field` for one event.
fn field_of(batch: bool, i: usize, field: &str) -> String {
    if batch {
        format!("events[{i}].{field}")
    } else {
        field.to_owned()
    }
}

/// Records `events` in one write transaction: all of them or none. Replays of recorded event ids
/// count nothing; a known event id with a different payload is a conflict. Campaigns whose caps,
/// or brands whose budgets, are reached are paused before the transaction commits.
/// `batch` only changes how errors name fields (`events[3].amount` instead of `amount`).
pub fn record(
    conn: &mut DbConnection,
    events: &[ValidSpend],
    now: DateTime<Utc>,
    batch: bool,
) -> DomainResult<Recorded> {
    write_transaction(conn, |conn| record_in_tx(conn, events, now, batch))
}

fn record_in_tx(
    conn: &mut DbConnection,
    events: &[ValidSpend],
    now: DateTime<Utc>,
    batch: bool,
) -> DomainResult<Recorded> {
    // Campaigns and their brands' timezones, one query.
    let mut campaign_ids: Vec<i64> = events.iter().map(|e| e.campaign_id).collect();
    campaign_ids.sort_unstable();
    campaign_ids.dedup();
    let mut owners: HashMap<i64, (i64, chrono_tz::Tz)> = HashMap::new();
    for chunk in campaign_ids.chunks(CHUNK) {
        let rows: Vec<(i64, i64, String)> = campaigns::table
            .inner_join(brands::table)
            .select((campaigns::id, campaigns::brand_id, brands::timezone))
            .filter(campaigns::id.eq_any(chunk))
            .load(conn)?;
        owners.extend(
            rows.into_iter()
                .map(|(c, b, tz)| (c, (b, enforce::parse_tz(&tz)))),
        );
    }
    if let Some((i, _)) = events
        .iter()
        .enumerate()
        .find(|(_, e)| !owners.contains_key(&e.campaign_id))
    {
        return Err(DomainError::not_found_field(
            "campaign",
            field_of(batch, i, "campaign_id"),
        ));
    }
    let mut brand_ids: Vec<i64> = owners.values().map(|(b, _)| *b).collect();
    brand_ids.sort_unstable();
    brand_ids.dedup();
    enforce::lock_brands(conn, &brand_ids)?;

    // Idempotency: earlier events with the same ids.
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.event_id.as_deref())
        .collect();
    let mut known: HashMap<String, SpendLog> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<SpendRow> = spend_logs::table
            .select(SpendRow::as_select())
            .filter(spend_logs::event_id.eq_any(chunk))
            .load(conn)?;
        known.extend(
            rows.into_iter()
                .filter_map(|r| r.event_id.clone().map(|id| (id, r.into()))),
        );
    }
    let mut fresh: Vec<(usize, &ValidSpend)> = Vec::new();
    let mut first_in_batch: HashMap<&str, usize> = HashMap::new();
    let mut outcome_of: Vec<Option<Outcome>> = vec![None; events.len()];
    for (i, e) in events.iter().enumerate() {
        if let Some(id) = e.event_id.as_deref() {
            if let Some(prev) = known.get(id) {
                let same = prev.campaign_id == e.campaign_id
                    && prev.amount == e.amount
                    && (!e.occurred_at_given || prev.occurred_at == e.occurred_at);
                if !same {
                    return Err(DomainError::conflict(
                        field_of(batch, i, "event_id"),
                        format!("event {id:?} was already recorded with a different payload"),
                    ));
                }
                outcome_of[i] = Some(Outcome::Replayed(prev.clone()));
                continue;
            }
            if first_in_batch.contains_key(id) {
                // Validated identical to its first occurrence: resolved after the insert.
                continue;
            }
            first_in_batch.insert(id, i);
        }
        fresh.push((i, e));
    }

    // The spend logs.
    let received = naive(now);
    for chunk in fresh.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(_, e)| {
                (
                    spend_logs::campaign_id.eq(e.campaign_id),
                    spend_logs::amount.eq(e.amount.micros()),
                    spend_logs::occurred_at.eq(naive(e.occurred_at)),
                    spend_logs::received_at.eq(received),
                    spend_logs::event_id.eq(e.event_id.as_deref()),
                )
            })
            .collect();
        let inserted: Vec<SpendRow> = crate::per_backend!(conn, c => diesel::insert_into(spend_logs::table)
            .values(&rows)
            .returning(SpendRow::as_returning())
            .get_results(c))
        .map_err(|e| super::unique_violation(e, "event_id", "an event with this event_id is being recorded concurrently with a different payload"))?;
        for ((i, _), row) in chunk.iter().zip(inserted) {
            outcome_of[*i] = Some(Outcome::Recorded(row.into()));
        }
    }
    // Repeats inside the batch answer with their first occurrence, counted once.
    for (i, e) in events.iter().enumerate() {
        if outcome_of[i].is_none() {
            let first = e
                .event_id
                .as_deref()
                .and_then(|id| first_in_batch.get(id))
                .copied();
            let log = first
                .and_then(|f| outcome_of[f].as_ref())
                .map(|o| o.log().clone());
            outcome_of[i] = log.map(Outcome::Replayed);
        }
    }
    let outcomes: Vec<Outcome> = outcome_of.into_iter().flatten().collect();

    // Period accounting: one atomic increment per (owner, period), in key order.
    let mut brand_add: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut campaign_add: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for (_, e) in &fresh {
        let (brand_id, tz) = owners[&e.campaign_id];
        let keys = PeriodKeys::at(e.occurred_at, tz);
        for period in [keys.day, keys.month] {
            *brand_add.entry((brand_id, period.clone())).or_default() += e.amount.micros();
            *campaign_add.entry((e.campaign_id, period)).or_default() += e.amount.micros();
        }
    }
    add_brand_spend(conn, &brand_add)?;
    add_campaign_spend(conn, &campaign_add)?;

    // Enforcement: the campaigns that spent, and every campaign of a brand whose budget is now
    // reached (a brand budget applies to the sum of its campaigns).
    if !fresh.is_empty() {
        let mut scope = Scope::campaigns(fresh.iter().map(|(_, e)| e.campaign_id).collect());
        scope.brands = brands_at_budget(conn, &brand_ids, now)?;
        enforce::reconcile(conn, &scope, now, Cause::Spend)?;
    }
    let campaigns = super::campaigns::views(conn, &campaign_ids, now)?;
    Ok(Recorded {
        outcomes,
        campaigns,
    })
}

fn add_brand_spend(conn: &mut DbConnection, add: &BTreeMap<(i64, String), i64>) -> QueryResult<()> {
    let rows: Vec<_> = add
        .iter()
        .map(|((id, p), a)| {
            (
                brand_spend::brand_id.eq(*id),
                brand_spend::period.eq(p.as_str()),
                brand_spend::amount.eq(*a),
            )
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        crate::per_backend!(conn, c => diesel::insert_into(brand_spend::table)
            .values(chunk)
            .on_conflict((brand_spend::brand_id, brand_spend::period))
            .do_update()
            .set(brand_spend::amount.eq(brand_spend::amount + excluded(brand_spend::amount)))
            .execute(c))?;
    }
    Ok(())
}

fn add_campaign_spend(
    conn: &mut DbConnection,
    add: &BTreeMap<(i64, String), i64>,
) -> QueryResult<()> {
    let rows: Vec<_> = add
        .iter()
        .map(|((id, p), a)| {
            (
                campaign_spend::campaign_id.eq(*id),
                campaign_spend::period.eq(p.as_str()),
                campaign_spend::amount.eq(*a),
            )
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        crate::per_backend!(conn, c => diesel::insert_into(campaign_spend::table)
            .values(chunk)
            .on_conflict((campaign_spend::campaign_id, campaign_spend::period))
            .do_update()
            .set(campaign_spend::amount.eq(campaign_spend::amount + excluded(campaign_spend::amount)))
            .execute(c))?;
    }
    Ok(())
}

/// Those of `brand_ids` whose spend of the current day or month has reached the budget.
fn brands_at_budget(
    conn: &mut DbConnection,
    brand_ids: &[i64],
    now: DateTime<Utc>,
) -> QueryResult<Vec<i64>> {
    let facts = super::brands::facts(conn, brand_ids)?;
    let mut periods = PeriodsAt::new(now);
    for f in facts.values() {
        periods.keys(f.tz);
    }
    let totals = enforce::brand_totals(conn, Some(brand_ids), &periods.all())?;
    Ok(facts
        .iter()
        .filter(|(id, f): &(&i64, &BrandFacts)| {
            let keys = periods.keys(f.tz);
            totals.get(**id, &keys.day) >= f.daily_budget
                || totals.get(**id, &keys.month) >= f.monthly_budget
        })
        .map(|(id, _)| *id)
        .collect())
}

/// Spend logs of a campaign, newest first, optionally within `[from, to)` of `occurred_at`.
pub fn list(
    conn: &mut DbConnection,
    campaign_id: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    page: PageRequest,
) -> DomainResult<Page<SpendLog>> {
    super::campaigns::ensure_exists(conn, campaign_id)?;
    let mut q = spend_logs::table
        .select(SpendRow::as_select())
        .filter(spend_logs::campaign_id.eq(campaign_id))
        .order(spend_logs::id.desc())
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(from) = from {
        q = q.filter(spend_logs::occurred_at.ge(naive(from)));
    }
    if let Some(to) = to {
        q = q.filter(spend_logs::occurred_at.lt(naive(to)));
    }
    if let Some(cursor) = page.cursor {
        q = q.filter(spend_logs::id.lt(cursor));
    }
    let rows: Vec<SpendLog> = q
        .load::<SpendRow>(conn)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(into_page(rows, page.limit, |l| l.id))
}

/// Recomputes every period total of `brand_id` and its campaigns from the spend logs, in the
/// brand's current timezone (after a timezone change the local dates of past spend move).
pub fn rebuild_brand_totals(
    conn: &mut DbConnection,
    brand_id: i64,
    tz: chrono_tz::Tz,
) -> QueryResult<()> {
    let logs: Vec<(i64, i64, chrono::NaiveDateTime)> = spend_logs::table
        .inner_join(campaigns::table)
        .filter(campaigns::brand_id.eq(brand_id))
        .select((
            spend_logs::campaign_id,
            spend_logs::amount,
            spend_logs::occurred_at,
        ))
        .load(conn)?;
    let mut brand_add: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut campaign_add: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for (campaign_id, amount, at) in logs {
        let keys = PeriodKeys::at(utc(at), tz);
        for period in [keys.day, keys.month] {
            *brand_add.entry((brand_id, period.clone())).or_default() += amount;
            *campaign_add.entry((campaign_id, period)).or_default() += amount;
        }
    }
    diesel::delete(brand_spend::table.filter(brand_spend::brand_id.eq(brand_id))).execute(conn)?;
    let campaign_ids = campaigns::table
        .select(campaigns::id)
        .filter(campaigns::brand_id.eq(brand_id));
    diesel::delete(campaign_spend::table.filter(campaign_spend::campaign_id.eq_any(campaign_ids)))
        .execute(conn)?;
    add_brand_spend(conn, &brand_add)?;
    add_campaign_spend(conn, &campaign_add)
}
