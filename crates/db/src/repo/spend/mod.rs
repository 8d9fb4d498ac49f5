//! Recording spend: exact, idempotent, and enforced in the same transaction.
//!
//! One set of rules, two ways of sending them: PostgreSQL records a small call (the group
//! commit's) in one statement ([`postgres`]); SQLite, PostgreSQL's batches and the rare call that
//! statement declines go step by step ([`record_in_tx`]). Both decide the same per-event outcomes and errors, which the tests run
//! on both databases check.

pub mod export;
pub mod maintenance;
mod postgres;

pub use postgres::Lookups;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use adbudget_core::rule::{BrandFacts, Change, PeriodsAt, Totals, judge};

use super::campaigns::{CampaignRow, RowsOf};
use super::enforce::{self, Cause};
use super::{CHUNK, PageRequest, into_page, naive, utc};
use crate::error::{DomainError, DomainResult, Failure};
use crate::schema::{
    brand_spend, brand_spend_buckets, brands, campaign_spend, campaign_spend_buckets, campaigns,
    spend_logs,
};
use crate::{DbConnection, write_transaction};
use adbudget_core::access::{Author, Brands};
use adbudget_core::audit::{FieldChange, NewEntry};
use adbudget_core::forms::ValidSpend;
use adbudget_core::money::{MAX_MICROS, Money};
use adbudget_core::period::{LIFETIME, PeriodKeys, PeriodKind, bucket_start};
use adbudget_core::rule::PauseReasons;
use adbudget_core::views::{Campaign, Page, SpendLog};

#[derive(Queryable, QueryableByName, Selectable, Debug, Clone, serde::Deserialize)]
#[diesel(table_name = spend_logs)]
pub(crate) struct SpendRow {
    id: i64,
    campaign_id: i64,
    amount: i64,
    occurred_at: chrono::NaiveDateTime,
    received_at: chrono::NaiveDateTime,
    event_id: Option<String>,
    brand_id: i64,
    token_id: Option<i64>,
}

impl From<SpendRow> for SpendLog {
    fn from(r: SpendRow) -> Self {
        SpendLog {
            id: r.id,
            campaign_id: r.campaign_id,
            brand_id: r.brand_id,
            amount: Money::from_micros(r.amount),
            occurred_at: utc(r.occurred_at),
            received_at: utc(r.received_at),
            event_id: r.event_id,
            token_id: r.token_id,
            reverses_id: None,
            reason: None,
            reversed_by: None,
        }
    }
}

/// A spend log with its reversal columns (listings; the spend path's rows never have them).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = spend_logs)]
pub(crate) struct ListedRow {
    #[diesel(embed)]
    row: SpendRow,
    reverses_id: Option<i64>,
    reason: Option<String>,
}

impl ListedRow {
    pub(crate) fn id(&self) -> i64 {
        self.row.id
    }

    pub(crate) fn into_view(self, reversed_by: Option<i64>) -> SpendLog {
        SpendLog {
            reverses_id: self.reverses_id,
            reason: self.reason,
            reversed_by,
            ..self.row.into()
        }
    }
}

/// The reversals of `ids`, as (reversed id, reversal id).
pub(crate) fn reversals_of(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, i64>> {
    let found: Vec<(Option<i64>, i64)> = spend_logs::table
        .select((spend_logs::reverses_id, spend_logs::id))
        .filter(spend_logs::reverses_id.eq_any(ids))
        .load(conn)?;
    Ok(found
        .into_iter()
        .filter_map(|(of, id)| Some((of?, id)))
        .collect())
}

/// A reversed spend log, its reversal, and the campaign after the rule was re-applied.
#[derive(Debug, Clone)]
pub struct Reversed {
    pub reversed: SpendLog,
    pub reversal: SpendLog,
    pub campaign: Campaign,
}

/// Reverses spend log `id` with a compensating entry (SPEC §3): a spend log of the opposite
/// amount, same campaign and `occurred_at`, naming it and the reason. The period totals it counted
/// toward go down, and the rule is re-applied to the brand's campaigns at once (some may resume).
/// A spend is reversed once (409 after that); a reversal cannot be reversed.
pub fn reverse(
    conn: &mut DbConnection,
    id: i64,
    reason: &str,
    visible: &Brands,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Reversed> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(DomainError::invalid("reason", "must not be empty"));
    }
    if reason.chars().count() > 1000 {
        return Err(DomainError::invalid(
            "reason",
            "must be at most 1000 characters",
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "reason",
            "must not contain control characters",
        ));
    }
    write_transaction(conn, |conn| {
        let original: ListedRow = spend_logs::table
            .select(ListedRow::as_select())
            .filter(spend_logs::id.eq(id))
            .first(conn)
            .optional()?
            .filter(|r| visible.allows(r.row.brand_id))
            .ok_or(DomainError::not_found("spend"))?;
        if original.reverses_id.is_some() {
            return Err(DomainError::conflict("id", "a reversal cannot be reversed"));
        }
        let brand_id = original.row.brand_id;
        let locked = enforce::lock_brand_facts(conn, &[brand_id])?;
        // Read again under the lock: deleting its campaign (which locks the brand) may have
        // removed it since the read above, and no foreign key refuses the reversal's log any more
        // (migration 000014; the campaign's read below would fail it, less clearly).
        let still_there: i64 = spend_logs::table
            .filter(spend_logs::id.eq(id))
            .count()
            .get_result(conn)?;
        if still_there == 0 {
            return Err(DomainError::not_found("spend"));
        }
        let tz = locked
            .facts
            .get(&brand_id)
            .ok_or(DomainError::not_found("brand"))?
            .tz;
        let token_id = match author.actor.kind {
            adbudget_core::access::ActorKind::Token => author.actor.id,
            _ => None,
        };
        let inserted: Result<i64, _> = diesel::insert_into(spend_logs::table)
            .values((
                spend_logs::campaign_id.eq(original.row.campaign_id),
                spend_logs::amount.eq(-original.row.amount),
                spend_logs::occurred_at.eq(original.row.occurred_at),
                spend_logs::received_at.eq(naive(now)),
                spend_logs::brand_id.eq(brand_id),
                spend_logs::token_id.eq(token_id),
                spend_logs::reverses_id.eq(id),
                spend_logs::reason.eq(reason),
            ))
            .returning(spend_logs::id)
            .get_result(conn);
        let reversal_id = inserted.map_err(|e| {
            super::unique_violation(e, "id", "this spend has already been reversed")
        })?;
        let reversal: ListedRow = spend_logs::table
            .select(ListedRow::as_select())
            .filter(spend_logs::id.eq(reversal_id))
            .first(conn)?;
        // The totals it counted toward (in the brand's timezone, as `rebuild_brand_totals` keeps
        // them; the campaign's `carried` total too if its month is before the mark, see
        // `repo::lifetime`) and its 5-minute buckets go down. Plain updates: an upsert's row would
        // be checked against `amount >= 0` before it met the existing one.
        let keys = PeriodKeys::at(utc(original.row.occurred_at), tz);
        let amount = original.row.amount;
        let periods = [keys.day.as_str(), keys.month.as_str()];
        diesel::update(
            brand_spend::table
                .filter(brand_spend::brand_id.eq(brand_id))
                .filter(brand_spend::period.eq_any(periods)),
        )
        .set(brand_spend::amount.eq(brand_spend::amount - amount))
        .execute(conn)?;
        if locked
            .marks
            .get(&brand_id)
            .is_some_and(|mark| keys.month < *mark)
        {
            super::lifetime::add_carried(conn, original.row.campaign_id, -amount)?;
        }
        diesel::update(
            campaign_spend::table
                .filter(campaign_spend::campaign_id.eq(original.row.campaign_id))
                .filter(campaign_spend::period.eq_any(periods)),
        )
        .set(campaign_spend::amount.eq(campaign_spend::amount - amount))
        .execute(conn)?;
        let bucket = naive(bucket_start(utc(original.row.occurred_at)));
        diesel::update(brand_spend_buckets::table.find((brand_id, bucket)))
            .set(brand_spend_buckets::amount.eq(brand_spend_buckets::amount - amount))
            .execute(conn)?;
        diesel::update(campaign_spend_buckets::table.find((original.row.campaign_id, bucket)))
            .set(campaign_spend_buckets::amount.eq(campaign_spend_buckets::amount - amount))
            .execute(conn)?;
        enforce::reconcile(
            conn,
            &enforce::ReconcileScope::brand(brand_id),
            now,
            Cause::SpendReversed,
        )?;
        let entry = NewEntry {
            object_type: "spend",
            object_id: id,
            brand_id: Some(brand_id),
            action: "reverse",
            changes: [
                (
                    "reversed_by",
                    serde_json::Value::Null,
                    serde_json::json!(reversal.row.id),
                ),
                ("reason", serde_json::Value::Null, serde_json::json!(reason)),
            ]
            .into_iter()
            .map(|(f, old, new)| (f.to_owned(), FieldChange { old, new }))
            .collect(),
        };
        super::audit::record(conn, author, entry, now)?;
        let campaign = super::campaigns::get(conn, original.row.campaign_id, now)?;
        let reversed = Reversed {
            reversed: original.into_view(Some(reversal_id)),
            reversal: reversal.into_view(None),
            campaign,
        };
        let event = super::events::NewEvent {
            event_type: adbudget_core::events::EventType::SpendReversed,
            brand_id: Some(brand_id),
            campaign_id: Some(reversed.campaign.id),
            dedupe_key: None,
            data: serde_json::json!({
                "spend": reversed.reversed,
                "reversal": reversed.reversal,
                "reason": reason,
                "actor": author.actor,
            }),
        };
        super::events::insert(conn, &[event], now)?;
        Ok(reversed)
    })
}

/// The SQL of PostgreSQL's one-statement spend path with its parameters numbered (`$1` …), for
/// tests and diagnosis (`PREPARE`, `EXPLAIN EXECUTE`).
#[doc(hidden)]
pub fn postgres_statement_sql() -> String {
    postgres::numbered_sql()
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

/// How a set of events is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One event (`POST /spend`, `adbudget log-spend`): errors name plain fields.
    Single,
    /// A batch (`POST /spend/batch`): all or nothing; errors name `events[i].field`.
    Batch,
    /// Independent events of concurrent requests committed together (group commit): an event
    /// that cannot be recorded fails alone, decided before anything is written.
    Group,
}

/// Whether `e` is the event of this campaign, amount and time sent again (an idempotent replay):
/// the same campaign and amount, and the same time unless `e` leaves it out (a replay without
/// `occurred_at` matches any stored time).
fn resends(campaign_id: i64, amount: Money, occurred_at: DateTime<Utc>, e: &ValidSpend) -> bool {
    campaign_id == e.campaign_id
        && amount == e.amount
        && (!e.occurred_at_given || occurred_at == e.occurred_at)
}

/// Where an error about event `i` points.
fn field_of(mode: Mode, i: usize, field: &str) -> String {
    match mode {
        Mode::Batch => format!("events[{i}].{field}"),
        Mode::Single | Mode::Group => field.to_owned(),
    }
}

/// Records `events` in one write transaction. Replays of recorded event ids count nothing; a
/// known event id with a different payload is a conflict. Campaigns whose caps, or brands whose
/// budgets, are reached are paused before the transaction commits.
///
/// `mode` is `Single` or `Batch`: any rejected event rejects the call (independent events that
/// may fail alone are [`record_group`]'s; given `Group` here, the first failure is returned).
#[tracing::instrument(level = "debug", skip_all, fields(batch.size = events.len(), spend.mode = ?mode))]
pub fn record(
    conn: &mut DbConnection,
    events: &[ValidSpend],
    now: DateTime<Utc>,
    mode: Mode,
) -> DomainResult<Recorded> {
    let mut lookups = Lookups::default();
    retrying_concurrent(|| {
        write_transaction(conn, |conn| {
            let (results, campaigns) = record_either(conn, &mut lookups, events, now, mode)?;
            let outcomes = results
                .into_iter()
                .collect::<DomainResult<Vec<Outcome>>>()?;
            Ok(Recorded {
                outcomes,
                campaigns,
            })
        })
    })
}

/// How a spend transaction failed: it lost a race to a concurrent transaction (for an event id:
/// the unique index on `(brand_id, event_id)` — `spend_event_ids`' on PostgreSQL, `spend_logs`' on
/// SQLite — made it wait for that one's commit, then refused
/// the insert; a deadlock between the two; or the campaign deleted meanwhile), which running it
/// again resolves; it was computed
/// from a writer's cache that turned out stale (a brand's timezone changed), refreshed since; or
/// anything else.
#[derive(Debug)]
enum Attempt {
    Raced,
    Stale,
    Failed(DomainError),
}

impl From<DomainError> for Attempt {
    fn from(e: DomainError) -> Self {
        Attempt::Failed(e)
    }
}

impl From<diesel::result::Error> for Attempt {
    fn from(e: diesel::result::Error) -> Self {
        // A campaign (or its brand) deleted by a transaction that committed while this one ran:
        // the foreign key of its period totals and buckets refuses their upsert (on PostgreSQL
        // after waiting for the delete's brand lock; the logs keep no foreign key since migration
        // 000014 and go back with the transaction). Run again, the campaign is not found: 404.
        if let diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        ) = e
        {
            return Attempt::Raced;
        }
        // PostgreSQL broke a deadlock by aborting this transaction: two transactions inserting
        // the same event ids in opposite orders wait on each other's index entries. Run again,
        // the survivor's events are found or waited for.
        match Failure::of(&e) {
            Failure::Deadlock => Attempt::Raced,
            Failure::Outage | Failure::Other => Attempt::Failed(e.into()),
        }
    }
}

/// Runs a spend transaction again when it lost the race for an event id to a concurrent one: the
/// new attempt finds that event committed and answers it as a replay (or a conflict, if its payload
/// differs). Three attempts; a third loss is reported as a conflict. A stale cache (refreshed by
/// the failed attempt) is not a lost race and does not count, up to [`STALE_RETRIES`] times.
fn retrying_concurrent<T>(mut attempt: impl FnMut() -> Result<T, Attempt>) -> DomainResult<T> {
    let (mut races, mut stale) = (0, 0);
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(Attempt::Failed(e)) => return Err(e),
            Err(Attempt::Stale) if stale < STALE_RETRIES => stale += 1,
            Err(Attempt::Raced) if races < 2 => races += 1,
            Err(Attempt::Raced) => {
                return Err(DomainError::conflict(
                    "event_id",
                    "an event with this event_id is being recorded concurrently",
                ));
            }
            Err(Attempt::Stale) => {
                return Err(DomainError::Unexpected(anyhow::anyhow!(
                    "a brand's timezone changed {STALE_RETRIES} times during one spend call"
                )));
            }
        }
    }
}

/// Attempts a spend call may make again after its cache proved stale (each refreshes it: one
/// suffices unless the timezone changes again meanwhile).
const STALE_RETRIES: usize = 5;

/// Group commit: records independent events in one transaction and returns each one's outcome
/// (or its own error) with its campaign after the commit. If the transaction itself fails, each
/// event is retried alone, so one bad event never fails the others.
#[tracing::instrument(level = "debug", skip_all, fields(batch.size = events.len()))]
pub fn record_group(
    conn: &mut DbConnection,
    lookups: &mut Lookups,
    events: &[ValidSpend],
    now: DateTime<Utc>,
) -> Vec<DomainResult<(Outcome, Campaign)>> {
    let together = retrying_concurrent(|| {
        write_transaction(conn, |conn| {
            record_either(conn, lookups, events, now, Mode::Group)
        })
    });
    match together {
        Ok((results, campaigns)) => {
            let by_id: HashMap<i64, Campaign> = campaigns.into_iter().map(|c| (c.id, c)).collect();
            results
                .into_iter()
                .zip(events)
                .map(|(r, e)| {
                    let c = by_id.get(&e.campaign_id).cloned();
                    r.and_then(|o| c.map(|c| (o, c)).ok_or(DomainError::not_found("campaign")))
                })
                .collect()
        }
        Err(e) if events.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, batch.size = events.len(), "group commit failed; recording its events one by one");
            events
                .iter()
                .map(|e| record_group(conn, lookups, std::slice::from_ref(e), now).remove(0))
                .collect()
        }
    }
}

type EventResults = Vec<DomainResult<Outcome>>;

/// Records `events` inside the caller's write transaction: a small call in one statement on
/// PostgreSQL unless it declines ([`postgres::record_in_tx`]), else step by step.
fn record_either(
    conn: &mut DbConnection,
    lookups: &mut Lookups,
    events: &[ValidSpend],
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<(EventResults, Vec<Campaign>), Attempt> {
    let horizon = lookups.horizon(conn)?;
    lookups.replan_if_due(conn)?;
    if events.len() > postgres::SMALL_CALL {
        return record_in_tx(conn, events, now, mode, horizon);
    }
    match postgres::record_in_tx(conn, lookups, events, now, mode, horizon)? {
        Some(recorded) => Ok(recorded),
        None => record_in_tx(conn, events, now, mode, horizon),
    }
}

/// Records `events` inside the caller's write transaction, in named steps:
///
/// 1. [`Call::brands_of_campaigns`] and [`Call::check_owners`]: each event's brand (an unknown
///    campaign, or one of a brand the poster's token is not bound to, is rejected);
/// 2. [`Call::sort_out_replays`]: events whose id is already recorded are answered, the rest are
///    fresh;
/// 3. [`Call::insert_logs`]: the fresh events' spend logs, before any lock (see below);
/// 4. [`enforce::lock_brand_facts`]: the brands' rows locked, their budgets and timezones read;
/// 5. [`Call::add_to_period_totals`]: the day and month totals of brands and campaigns (and
///    [`settle_lifetimes`]: the campaigns' lifetime totals, `repo::lifetime`);
/// 6. [`enforce_after_spend`]: the rule applied to the campaigns that spent and to every
///    campaign of a brand now at budget;
/// 7. [`answer`]: the events' campaigns as they are after the transaction.
///
/// The spend logs are inserted before the brand locks are taken, so concurrent transactions over
/// the same brands do that part side by side and serialize only for the totals, the budget check
/// and the reconcile. Two transactions inserting the same event id meet at the unique index: the
/// second waits for the first and then fails (`Attempt::Raced`), and `retrying_concurrent` runs
/// it again, when step 2 finds the committed event and answers a replay.
///
/// SQLite, whose write transactions serialize whole, reads in step 1 what steps 4 and 6 read
/// ([`enforce::campaigns_with_brand_facts`]): the campaigns with their brands' facts.
fn record_in_tx(
    conn: &mut DbConnection,
    events: &[ValidSpend],
    now: DateTime<Utc>,
    mode: Mode,
    horizon: Option<chrono::NaiveDateTime>,
) -> Result<(EventResults, Vec<Campaign>), Attempt> {
    let mut call = Call::new(events, mode);
    call.refuse_before(horizon)?;
    // SQLite's write transaction is exclusive from its `BEGIN IMMEDIATE`: nothing can change a
    // campaign or a brand before it commits, so steps 1, 4 and the rule's read of the events'
    // campaigns are one statement here instead of three.
    let (owners, read_early) = match conn {
        DbConnection::Sqlite(c) => {
            let (rows, locked) = enforce::campaigns_with_brand_facts(c, &call.campaign_ids())?;
            let owners = rows.iter().map(|r| (r.rule.id, r.rule.brand_id)).collect();
            (owners, Some((rows, locked)))
        }
        DbConnection::Postgresql(_) => (call.brands_of_campaigns(conn)?, None),
    };
    call.check_owners(&owners)?;
    let Sorted { fresh, repeats } = call.sort_out_replays(conn, &owners)?;
    call.insert_logs(conn, &fresh, &owners, now)?;
    call.answer_repeats(repeats);

    let (read, locked) = match read_early {
        Some((rows, locked)) => (rows, locked),
        None => {
            let mut brand_ids: Vec<i64> = owners.values().copied().collect();
            brand_ids.sort_unstable();
            brand_ids.dedup();
            let locked = enforce::lock_brand_facts(conn, &brand_ids)?;
            // The events' campaigns as the locks keep them: the rule's rows, with the carried
            // part of each one's lifetime (`repo::lifetime`).
            let answered: Vec<i64> = owners.keys().copied().collect();
            (super::campaigns::rows(conn, &answered, &[])?, locked)
        }
    };
    let facts = &locked.facts;

    let mut totals = call.add_to_period_totals(conn, &fresh, &owners, &locked, &read, now)?;
    let mut periods = PeriodsAt::new(now);
    let (rows, changes) = enforce_after_spend(
        conn,
        &fresh,
        &owners,
        facts,
        &mut totals,
        &mut periods,
        now,
        Some(read),
    )?;
    thresholds_reached(conn, &totals, &locked, &rows, now)?;
    let campaigns = answer(rows, &changes, &owners, facts, &totals, &mut periods, now);
    Ok((call.finish(), campaigns))
}

/// Step 6b: the alert thresholds this call's additions crossed (SPEC §9), from the totals the
/// upserts returned and what was added: nothing is read. Each is written as a
/// `budget.threshold_reached` event keyed by (subject, budget, period, threshold), so it fires
/// once however many calls cross it (a reversal and new spend cross it again: the key is taken).
fn thresholds_reached(
    conn: &mut DbConnection,
    totals: &SpendTotals,
    locked: &enforce::LockedBrands,
    rows: &[CampaignRow],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use adbudget_core::events::EventType;
    use adbudget_core::rule::PauseReason;
    let mut new = Vec::new();
    let mut reached = |brand_id: i64,
                       campaign_id: Option<i64>,
                       budget: PauseReason,
                       period: &str,
                       limit: Money,
                       added: i64,
                       after: Money| {
        let Some(thresholds) = locked.thresholds.get(&brand_id) else {
            return;
        };
        let before = after.micros().saturating_sub(added);
        for t in thresholds.crossed(limit, before, after.micros()) {
            let subject =
                campaign_id.map_or(format!("brand:{brand_id}"), |c| format!("campaign:{c}"));
            new.push(super::events::NewEvent {
                event_type: EventType::ThresholdReached,
                brand_id: Some(brand_id),
                campaign_id,
                dedupe_key: Some(format!(
                    "threshold:{subject}:{}:{period}:{t}",
                    budget.name()
                )),
                data: serde_json::json!({
                    "brand_id": brand_id,
                    "campaign_id": campaign_id,
                    "budget": budget.name(),
                    "period": period,
                    "threshold_percent": t,
                    "spend": after,
                    "limit": limit,
                }),
            });
        }
    };
    for ((brand_id, period), added) in &totals.brands_added {
        let Some(facts) = locked.facts.get(brand_id) else {
            continue;
        };
        let (budget, limit) = match PeriodKind::of(period) {
            PeriodKind::Day => (PauseReason::BrandDailyBudget, facts.daily_budget),
            PeriodKind::Month => (PauseReason::BrandMonthlyBudget, facts.monthly_budget),
            PeriodKind::Lifetime | PeriodKind::Carried => continue,
        };
        let after = totals.brands.get(*brand_id, period);
        reached(*brand_id, None, budget, period, limit, *added, after);
    }
    let caps: HashMap<i64, &CampaignRow> = rows.iter().map(|r| (r.rule.id, r)).collect();
    for ((campaign_id, period), added) in &totals.campaigns_added {
        let Some(row) = caps.get(campaign_id) else {
            continue;
        };
        let (budget, cap) = match PeriodKind::of(period) {
            PeriodKind::Day => (PauseReason::CampaignDailyCap, row.rule.daily_cap),
            PeriodKind::Month => (PauseReason::CampaignMonthlyCap, row.rule.monthly_cap),
            PeriodKind::Lifetime => (PauseReason::CampaignLifetimeCap, row.rule.lifetime_cap),
            PeriodKind::Carried => continue,
        };
        let Some(cap) = cap else {
            continue;
        };
        let after = totals.campaigns.get(*campaign_id, period);
        reached(
            row.rule.brand_id,
            Some(*campaign_id),
            budget,
            period,
            Money::from_micros(cap),
            *added,
            after,
        );
    }
    if !new.is_empty() {
        super::events::insert(conn, &new, now)?;
    }
    Ok(())
}

/// Step 5b: the lifetime totals of the campaigns this call spent on (for their lifetime caps,
/// alerts and answers): each one's carried total (from its row, read under the lock), plus what
/// this call carried (its events of months before the brand's mark), plus its month rows from the
/// mark on (`repo::lifetime`) — those the upserts returned, the others (only while a fold is
/// behind) read by key. The campaigns of a brand never folded (mark `''`) are read as the views
/// read them. A lifetime past [`MAX_MICROS`] refuses the call, naming the event that crosses it;
/// else the carried totals of late events are written. `events`: the call's recorded events with
/// their brands and period keys, in the call's order; `rows`: the events' campaigns.
fn settle_lifetimes(
    conn: &mut DbConnection,
    totals: &mut SpendTotals,
    locked: &enforce::LockedBrands,
    events: &[(usize, &ValidSpend, i64, &PeriodKeys)],
    rows: &[CampaignRow],
    mode: Mode,
    now: DateTime<Utc>,
) -> Result<(), Attempt> {
    // Per campaign: its brand, what this call added to it, and what of that is carried.
    let mut added: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    // Per brand, the month rows that make up a lifetime with the carried total (`None`: a brand
    // never folded). An event is at most 5 minutes ahead of now, so no later month has spend.
    let mut months: HashMap<i64, Option<Vec<String>>> = HashMap::new();
    for (_, e, brand, keys) in events {
        let mark = locked.marks.get(brand).map_or("", String::as_str);
        months.entry(*brand).or_insert_with(|| {
            let tz = locked.facts.get(brand).map_or(chrono_tz::Tz::UTC, |f| f.tz);
            super::lifetime::months(mark, tz, now)
        });
        let (_, sum, carried) = added.entry(e.campaign_id).or_insert((*brand, 0, 0));
        *sum = sum.saturating_add(e.amount.micros());
        if !mark.is_empty() && keys.month.as_str() < mark {
            *carried = carried.saturating_add(e.amount.micros());
        }
    }
    let stored: HashMap<i64, i64> = rows
        .iter()
        .map(|r| (r.rule.id, r.lifetime_carried))
        .collect();
    let mut wanted: Vec<(i64, String)> = Vec::new();
    let mut unfolded: Vec<i64> = Vec::new();
    for (campaign, (brand, _, _)) in &added {
        let Some(Some(months)) = months.get(brand) else {
            unfolded.push(*campaign);
            continue;
        };
        for month in months {
            if !totals.campaigns.has(*campaign, month) {
                wanted.push((*campaign, month.clone()));
            }
        }
    }
    if !wanted.is_empty() {
        totals
            .campaigns
            .extend_rows(totals_of(conn, Owner::Campaign, &wanted)?);
    }
    let mut lifetimes = if unfolded.is_empty() {
        HashMap::new()
    } else {
        super::lifetime::read(conn, &unfolded)?
    };
    for (campaign, (brand, _, late)) in &added {
        if let Some(Some(months)) = months.get(brand) {
            let carried = stored.get(campaign).copied().unwrap_or(0);
            let sum = months
                .iter()
                .map(|m| totals.campaigns.get(*campaign, m).micros())
                .fold(carried.saturating_add(*late), i64::saturating_add);
            lifetimes.insert(*campaign, sum);
        } else if let Some(sum) = lifetimes.get_mut(campaign) {
            // Read before this call's carried part is written.
            *sum = sum.saturating_add(*late);
        }
    }
    for (campaign, (_, add, _)) in &added {
        let lifetime = lifetimes.get(campaign).copied().unwrap_or(0);
        if lifetime > MAX_MICROS {
            // The first event of the call that takes it past the limit.
            let mut sum = lifetime.saturating_sub(*add);
            for (i, e, _, _) in events
                .iter()
                .filter(|(_, e, ..)| e.campaign_id == *campaign)
            {
                sum = sum.saturating_add(e.amount.micros());
                if sum > MAX_MICROS {
                    return Err(DomainError::invalid(
                        field_of(mode, *i, "amount"),
                        format!(
                            "would take the campaign's lifetime spend over the limit of {}",
                            Money::from_micros(MAX_MICROS)
                        ),
                    )
                    .into());
                }
            }
        }
        totals
            .campaigns
            .insert(*campaign, LIFETIME.to_owned(), lifetime);
        totals
            .campaigns_added
            .insert((*campaign, LIFETIME.to_owned()), *add);
    }
    for (campaign, (_, _, late)) in &added {
        if *late > 0 {
            super::lifetime::add_carried(conn, *campaign, *late)?;
        }
    }
    Ok(())
}

/// One call of [`record_in_tx`]: its events, how errors are reported, and each event's outcome
/// so far.
struct Call<'a> {
    events: &'a [ValidSpend],
    mode: Mode,
    /// Per event: `None` while undecided, then its outcome or its own error.
    results: Vec<Option<DomainResult<Outcome>>>,
}

/// The events of a call that still need recording, and those repeating an id first seen in the
/// same call (event index, index of the first).
struct Sorted<'a> {
    fresh: Vec<(usize, &'a ValidSpend)>,
    repeats: Vec<(usize, usize)>,
}

/// A period total's key: owner id and period key.
type PeriodTotal = (i64, String);

/// The current totals of the brands and the campaigns involved.
struct SpendTotals {
    brands: Totals,
    campaigns: Totals,
    /// What this call added to each (owner, period): with the new totals, the totals before it
    /// (for the alert thresholds crossed).
    brands_added: BTreeMap<PeriodTotal, i64>,
    campaigns_added: BTreeMap<PeriodTotal, i64>,
}

impl<'a> Call<'a> {
    fn new(events: &'a [ValidSpend], mode: Mode) -> Self {
        Call {
            events,
            mode,
            results: (0..events.len()).map(|_| None).collect(),
        }
    }

    /// Event `i` cannot be recorded: in `Group` mode it fails alone; in `Single` and `Batch` mode
    /// the whole call is rejected, before any write.
    fn reject(&mut self, i: usize, e: DomainError) -> DomainResult<()> {
        if self.mode == Mode::Group {
            self.results[i] = Some(Err(e));
            Ok(())
        } else {
            Err(e)
        }
    }

    fn field(&self, i: usize, field: &str) -> String {
        field_of(self.mode, i, field)
    }

    /// Step 0: events that occurred before the kept history (`maintenance::horizon`) are
    /// refused. Their months' logs, event ids with them, were dropped by the retention: a replay
    /// could no longer be recognised and would count the spend twice.
    pub(super) fn refuse_before(
        &mut self,
        horizon: Option<chrono::NaiveDateTime>,
    ) -> DomainResult<()> {
        let Some(horizon) = horizon else {
            return Ok(());
        };
        for (i, e) in self.events.iter().enumerate() {
            if self.results[i].is_none() && naive(e.occurred_at) < horizon {
                let field = self.field(i, "occurred_at");
                let message = format!(
                    "must not be before {}: spend logs before it were dropped by the retention \
                     (ADBUDGET_SPEND_LOG_RETENTION_MONTHS), so such an event could not be told \
                     from a replay",
                    horizon.format("%Y-%m-%dT%H:%M:%SZ")
                );
                self.reject(i, DomainError::invalid(field, message))?;
            }
        }
        Ok(())
    }

    /// The events' campaigns, each once, in id order.
    fn campaign_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.events.iter().map(|e| e.campaign_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Step 1: the campaigns' brands (a campaign never changes brand). Their timezones are read
    /// with the brand locks in step 4: a timezone change committed in between must not be missed.
    fn brands_of_campaigns(&self, conn: &mut DbConnection) -> DomainResult<HashMap<i64, i64>> {
        let mut owners: HashMap<i64, i64> = HashMap::new();
        for chunk in self.campaign_ids().chunks(CHUNK) {
            let rows: Vec<(i64, i64)> = campaigns::table
                .select((campaigns::id, campaigns::brand_id))
                .filter(campaigns::id.eq_any(chunk))
                .load(conn)?;
            owners.extend(rows);
        }
        Ok(owners)
    }

    /// Step 1, continued: an event whose campaign is unknown, or whose token is bound to other
    /// brands than the campaign's, is rejected.
    fn check_owners(&mut self, owners: &HashMap<i64, i64>) -> DomainResult<()> {
        for (i, e) in self.events.iter().enumerate() {
            match owners.get(&e.campaign_id) {
                None => {
                    let field = self.field(i, "campaign_id");
                    self.reject(i, DomainError::not_found_field("campaign", field))?;
                }
                // The poster's token is bound to other brands (SPEC §11): refused here, where the
                // campaign's brand is known, before anything is written.
                Some(brand) if !e.allowed.allows(*brand) => {
                    let field = self.field(i, "campaign_id");
                    let message = "this token may not post spend to this campaign's brand";
                    self.reject(i, DomainError::forbidden(field, message))?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Step 2, idempotency: an event whose id is recorded already in its brand is a replay if
    /// its payload is the same (nothing is counted again) and a conflict otherwise; one repeating
    /// an id first seen in this call is resolved after the insert. Event ids are unique per brand:
    /// the same id in two brands is two events.
    fn sort_out_replays(
        &mut self,
        conn: &mut DbConnection,
        owners: &HashMap<i64, i64>,
    ) -> DomainResult<Sorted<'a>> {
        let events = self.events;
        let brand_of = |e: &ValidSpend| owners.get(&e.campaign_id).copied();
        let mut pairs: Vec<(i64, &str)> = events
            .iter()
            .filter_map(|e| Some((brand_of(e)?, e.event_id.as_deref()?)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut known: HashMap<(i64, String), SpendLog> = HashMap::new();
        for chunk in pairs.chunks(CHUNK) {
            known.extend(logs_by_event_id(conn, chunk)?.into_iter().filter_map(|r| {
                let key = (r.brand_id, r.event_id.clone()?);
                Some((key, r.into()))
            }));
        }
        let mut sorted = Sorted {
            fresh: Vec::new(),
            repeats: Vec::new(),
        };
        let mut first_in_call: HashMap<(i64, &str), usize> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if self.results[i].is_some() {
                continue;
            }
            if let (Some(id), Some(brand)) = (e.event_id.as_deref(), brand_of(e)) {
                if let Some(prev) = known.get(&(brand, id.to_owned())) {
                    if resends(prev.campaign_id, prev.amount, prev.occurred_at, e) {
                        self.results[i] = Some(Ok(Outcome::Replayed(prev.clone())));
                    } else {
                        let message =
                            format!("event {id:?} was already recorded with a different payload");
                        let field = self.field(i, "event_id");
                        self.reject(i, DomainError::conflict(field, message))?;
                    }
                    continue;
                }
                if let Some(&first) = first_in_call.get(&(brand, id)) {
                    let f = &events[first];
                    if resends(f.campaign_id, f.amount, f.occurred_at, e) {
                        sorted.repeats.push((i, first));
                    } else {
                        // A batch was checked for this in validation; concurrent requests meet
                        // here.
                        let message =
                            format!("event {id:?} is being recorded with a different payload");
                        let field = self.field(i, "event_id");
                        self.reject(i, DomainError::conflict(field, message))?;
                    }
                    continue;
                }
                first_in_call.insert((brand, id), i);
            }
            sorted.fresh.push((i, e));
        }
        Ok(sorted)
    }

    /// Step 3: the fresh events' spend logs, with their brand and token. A unique violation on
    /// `(brand_id, event_id)` means a concurrent transaction recorded the same id first:
    /// `Attempt::Raced`, run again.
    fn insert_logs(
        &mut self,
        conn: &mut DbConnection,
        fresh: &[(usize, &ValidSpend)],
        owners: &HashMap<i64, i64>,
        now: DateTime<Utc>,
    ) -> Result<(), Attempt> {
        let received = naive(now);
        for chunk in fresh.chunks(CHUNK) {
            // Every fresh event's campaign was found in step 1 (the others were rejected).
            let events = chunk
                .iter()
                .map(|(_, e)| {
                    let brand = owners.get(&e.campaign_id).copied().ok_or_else(|| {
                        DomainError::Unexpected(anyhow::anyhow!("an event without its brand"))
                    })?;
                    Ok((*e, brand))
                })
                .collect::<DomainResult<Vec<(&ValidSpend, i64)>>>()?;
            let inserted = insert_logs(conn, &events, received).map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => Attempt::Raced,
                other => other.into(),
            })?;
            for ((i, e), row) in chunk.iter().zip(inserted) {
                let same = row.campaign_id == e.campaign_id
                    && row.token_id == e.posted_by
                    && row.amount == e.amount.micros()
                    && row.occurred_at == naive(e.occurred_at)
                    && row.event_id == e.event_id;
                if !same {
                    return Err(DomainError::Unexpected(anyhow::anyhow!(
                        "inserted spend logs came back out of order"
                    ))
                    .into());
                }
                self.results[*i] = Some(Ok(Outcome::Recorded(row.into())));
            }
        }
        Ok(())
    }

    /// An event repeating an id first seen in this call is a replay of that first event.
    fn answer_repeats(&mut self, repeats: Vec<(usize, usize)>) {
        for (i, first) in repeats {
            let log = match &self.results[first] {
                Some(Ok(o)) => Ok(Outcome::Replayed(o.log().clone())),
                _ => Err(DomainError::conflict(
                    self.field(i, "event_id"),
                    "the first event with this event_id was not recorded",
                )),
            };
            self.results[i] = Some(log);
        }
    }

    /// Step 5, period accounting: one atomic increment per (owner, period), in key order. The
    /// upserts return the new totals: when the events are of the current periods (nearly always),
    /// those are the totals the rule needs, and nothing is read again. A total may not exceed
    /// [`MAX_MICROS`]: the upserts leave one that would cross it untouched and do not return it;
    /// then the whole transaction is refused, naming the first crossing event (a group commit then
    /// records its events one by one, so only that event fails).
    fn add_to_period_totals(
        &self,
        conn: &mut DbConnection,
        fresh: &[(usize, &ValidSpend)],
        owners: &HashMap<i64, i64>,
        locked: &enforce::LockedBrands,
        rows: &[CampaignRow],
        now: DateTime<Utc>,
    ) -> Result<SpendTotals, Attempt> {
        let facts = &locked.facts;
        let mut brand_add = Additions::default();
        let mut campaign_add = Additions::default();
        let mut event_keys = Vec::with_capacity(fresh.len());
        for (_, e) in fresh {
            let brand_id = owners[&e.campaign_id];
            let tz = facts
                .get(&brand_id)
                .ok_or_else(|| DomainError::not_found("brand"))?
                .tz;
            let keys = PeriodKeys::at(e.occurred_at, tz);
            let bucket = naive(bucket_start(e.occurred_at));
            let micros = e.amount.micros();
            brand_add.add(brand_id, &keys, bucket, micros);
            campaign_add.add(e.campaign_id, &keys, bucket, micros);
            event_keys.push((brand_id, keys));
        }
        let (brands, campaigns) = if brand_add.within_limit() && campaign_add.within_limit() {
            (
                add_totals(conn, Owner::Brand, &brand_add)?,
                add_totals(conn, Owner::Campaign, &campaign_add)?,
            )
        } else {
            (Totals::default(), Totals::default())
        };
        let refused = |add: &BTreeMap<PeriodTotal, i64>, got: &Totals| {
            add.keys()
                .filter(|(owner, period)| !got.has(*owner, period))
                .cloned()
                .collect::<Vec<_>>()
        };
        let over = OverLimit {
            brands: refused(&brand_add.periods, &brands),
            campaigns: refused(&campaign_add.periods, &campaigns),
        };
        let events: Vec<(usize, &ValidSpend, i64, &PeriodKeys)> = fresh
            .iter()
            .zip(&event_keys)
            .map(|((i, e), (brand, keys))| (*i, *e, *brand, keys))
            .collect();
        if !(over.brands.is_empty() && over.campaigns.is_empty()) {
            return Err(over.error(conn, self.mode, &events)?.into());
        }
        let mut totals = SpendTotals {
            brands,
            campaigns,
            brands_added: brand_add.periods,
            campaigns_added: campaign_add.periods,
        };
        settle_lifetimes(conn, &mut totals, locked, &events, rows, self.mode, now)?;
        Ok(totals)
    }

    /// Every event's result (one left undecided would be a bug, reported as such).
    fn finish(self) -> EventResults {
        self.results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(DomainError::Unexpected(anyhow::anyhow!(
                        "event left undecided"
                    )))
                })
            })
            .collect()
    }
}

/// Step 6: the rule, with what was read under the locks, for the campaigns that spent and every
/// campaign of a brand at budget (a brand budget applies to the sum of its campaigns; only spend
/// can reach one, so replays alone judge nothing). Totals of periods other than the events' are
/// read here. Returns the rows of the events' campaigns and of the judged ones, and the changes
/// applied. `read`: the events' campaigns' rows if the caller read them already, under the brand
/// locks or anywhere in SQLite's exclusive transaction (those of a brand at budget are read here
/// all the same).
#[allow(clippy::too_many_arguments)]
fn enforce_after_spend(
    conn: &mut DbConnection,
    fresh: &[(usize, &ValidSpend)],
    owners: &HashMap<i64, i64>,
    facts: &HashMap<i64, BrandFacts>,
    totals: &mut SpendTotals,
    periods: &mut PeriodsAt,
    now: DateTime<Utc>,
    read: Option<Vec<CampaignRow>>,
) -> QueryResult<(Vec<CampaignRow>, Vec<Change>)> {
    let at_budget: HashSet<i64> = if fresh.is_empty() {
        HashSet::new()
    } else {
        let unread: Vec<i64> = facts
            .iter()
            .filter(|(id, f)| !has_current(&totals.brands, **id, periods.keys(f.tz)))
            .map(|(id, _)| *id)
            .collect();
        if !unread.is_empty() {
            totals
                .brands
                .extend(enforce::brand_totals(conn, Some(&unread), &periods.all())?);
        }
        facts
            .iter()
            .filter(|(id, f)| {
                let keys = periods.keys(f.tz);
                totals.brands.get(**id, &keys.day) >= f.daily_budget
                    || totals.brands.get(**id, &keys.month) >= f.monthly_budget
            })
            .map(|(id, _)| *id)
            .collect()
    };
    let answered: Vec<i64> = owners.keys().copied().collect();
    let at_budget_ids: Vec<i64> = at_budget.iter().copied().collect();
    let rows = match read {
        Some(rows) if at_budget_ids.is_empty() => rows,
        _ => super::campaigns::rows(conn, &answered, &at_budget_ids)?,
    };
    let unread: Vec<i64> = rows
        .iter()
        .filter(|r| {
            facts
                .get(&r.rule.brand_id)
                .is_some_and(|f| !has_current(&totals.campaigns, r.rule.id, periods.keys(f.tz)))
        })
        .map(|r| r.rule.id)
        .collect();
    if !unread.is_empty() {
        totals
            .campaigns
            .extend(enforce::campaign_totals(conn, &unread, &periods.all())?);
    }
    // Lifetimes not settled yet (`settle_lifetimes` did those of the campaigns that spent): of
    // the campaigns answered (replays) and of those with a lifetime cap the rule judges; not of
    // every other campaign of a brand at budget.
    let lifetimes: Vec<i64> = rows
        .iter()
        .filter(|r| owners.contains_key(&r.rule.id) || r.rule.lifetime_cap.is_some())
        .filter(|r| !totals.campaigns.has(r.rule.id, LIFETIME))
        .map(|r| r.rule.id)
        .collect();
    if !lifetimes.is_empty() {
        for (campaign, amount) in super::lifetime::read(conn, &lifetimes)? {
            totals
                .campaigns
                .insert(campaign, LIFETIME.to_owned(), amount);
        }
    }

    let spent: HashSet<i64> = fresh.iter().map(|(_, e)| e.campaign_id).collect();
    let subjects = rows
        .iter()
        .filter(|r| spent.contains(&r.rule.id) || at_budget.contains(&r.rule.brand_id))
        .filter_map(|r| Some(r.rule.subject(*facts.get(&r.rule.brand_id)?)));
    let changes = judge(subjects, &totals.brands, &totals.campaigns, periods);
    enforce::apply_changes(conn, &changes, now, Cause::Spend)?;
    Ok((rows, changes))
}

/// Step 7: the events' campaigns as they are after the transaction (the changes applied to the
/// rows read before them).
fn answer(
    rows: Vec<CampaignRow>,
    changes: &[Change],
    owners: &HashMap<i64, i64>,
    facts: &HashMap<i64, BrandFacts>,
    totals: &SpendTotals,
    periods: &mut PeriodsAt,
    now: DateTime<Utc>,
) -> Vec<Campaign> {
    let changed: HashMap<i64, PauseReasons> =
        changes.iter().map(|c| (c.campaign_id, c.to)).collect();
    rows.into_iter()
        .filter(|r| owners.contains_key(&r.rule.id))
        .filter_map(|mut r| {
            if let Some(to) = changed.get(&r.rule.id) {
                r.rule.pause_reasons = to.bits();
                r.updated_at = naive(now);
                r.state_version += 1;
            }
            let keys = periods.keys(facts.get(&r.rule.brand_id)?.tz);
            let (daily, monthly, lifetime) = (
                totals.campaigns.get(r.rule.id, &keys.day),
                totals.campaigns.get(r.rule.id, &keys.month),
                totals.campaigns.get(r.rule.id, LIFETIME),
            );
            Some(r.into_view(daily, monthly, lifetime))
        })
        .collect()
}

/// The spend logs with these (brand, event id) pairs: one probe of the unique index per pair
/// (PostgreSQL joins the pairs as two arrays, SQLite a VALUES list), where two `IN` lists would
/// probe every brand with every id.
fn logs_by_event_id(conn: &mut DbConnection, pairs: &[(i64, &str)]) -> QueryResult<Vec<SpendRow>> {
    use diesel::sql_types::{Array, BigInt, Text};
    const COLUMNS: &str = "s.id AS id, s.campaign_id AS campaign_id, s.amount AS amount, \
                           s.occurred_at AS occurred_at, s.received_at AS received_at, \
                           s.event_id AS event_id, s.brand_id AS brand_id, s.token_id AS token_id";
    match conn {
        // The event ids' own table (unique across the monthly partitions, migration 000012)
        // names each log by id and month; the logs are then read by both (only the months
        // named are scanned).
        DbConnection::Postgresql(c) => {
            let refs: Vec<postgres::LogReference> = diesel::sql_query(
                "SELECT i.spend_log_id AS id, i.occurred_at FROM unnest($1, $2) \
                     AS k (brand_id, event_id) \
                 JOIN spend_event_ids AS i \
                     ON i.brand_id = k.brand_id AND i.event_id = k.event_id",
            )
            .bind::<Array<BigInt>, _>(pairs.iter().map(|(b, _)| *b).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(pairs.iter().map(|(_, id)| *id).collect::<Vec<_>>())
            .load(c)?;
            postgres::logs_by_reference(c, &refs)
        }
        DbConnection::Sqlite(c) => {
            let values = vec!["(?, ?)"; pairs.len()].join(", ");
            // CROSS JOIN keeps the pairs as the outer loop (SQLite's planner takes the join
            // order as written): one index search per pair. A row-value `IN (VALUES …)` was
            // planned as a scan of the whole index.
            let mut q = diesel::sql_query(format!(
                "SELECT {COLUMNS} FROM (VALUES {values}) AS k \
                 CROSS JOIN spend_logs AS s ON s.brand_id = k.column1 AND s.event_id = k.column2"
            ))
            .into_boxed::<diesel::sqlite::Sqlite>();
            for (brand, id) in pairs {
                q = q.bind::<BigInt, _>(*brand).bind::<Text, _>(*id);
            }
            q.load(c)
        }
    }
}

/// Removes a brand's or a campaign's spend logs and, on PostgreSQL, their event ids in
/// `spend_event_ids` (part of [`super::campaigns::forget_rows`], with the brand locked, before
/// the delete). No foreign key cascades to the logs on PostgreSQL since migration 000014 (its
/// check was a row lock on the campaign per log); SQLite's still would, but the delete is the
/// same on both. An id is taken exactly as long as its log exists, as SQLite's unique index on
/// the logs keeps it; no trigger does this because moving rows between partitions deletes and
/// inserts them (`maintenance`).
pub(crate) fn forget_logs(conn: &mut DbConnection, of: RowsOf) -> QueryResult<()> {
    use diesel::sql_types::BigInt;
    if let DbConnection::Postgresql(c) = conn {
        // First wait out a partition move in progress (`maintenance`: a new month's rows leaving
        // the DEFAULT partition, which it holds locked): a delete planned before the move
        // commits would scan the partitions as they were and miss the moved rows; once this
        // lock is held (every partition, ROW EXCLUSIVE), a move waits for this transaction.
        diesel::sql_query("LOCK TABLE spend_logs IN ROW EXCLUSIVE MODE").execute(c)?;
        let q = match of {
            RowsOf::Brand(id) => {
                diesel::sql_query("DELETE FROM spend_event_ids WHERE brand_id = $1")
                    .bind::<BigInt, _>(id)
            }
            RowsOf::Campaign(id) => diesel::sql_query(
                "DELETE FROM spend_event_ids AS i USING spend_logs AS s \
                 WHERE s.campaign_id = $1 AND s.event_id IS NOT NULL \
                   AND i.brand_id = s.brand_id AND i.event_id = s.event_id",
            )
            .bind::<BigInt, _>(id),
        };
        q.execute(c)?;
    }
    // By campaign, the logs' index: a brand's campaigns are its logs' campaigns.
    match of {
        RowsOf::Brand(id) => diesel::delete(
            spend_logs::table.filter(
                spend_logs::campaign_id.eq_any(
                    campaigns::table
                        .select(campaigns::id)
                        .filter(campaigns::brand_id.eq(id)),
                ),
            ),
        )
        .execute(conn)?,
        RowsOf::Campaign(id) => {
            diesel::delete(spend_logs::table.filter(spend_logs::campaign_id.eq(id)))
                .execute(conn)?
        }
    };
    Ok(())
}

/// Inserts spend logs, returning their rows in the order of `events`. PostgreSQL gets the
/// columns as six arrays (`unnest`): one short statement to parse and plan however many events,
/// where a multi-row VALUES list is a new statement of seven parameters an event each time; the
/// same statement claims the event ids in `spend_event_ids` (a taken one is a unique violation,
/// as SQLite's index on the logs gives).
fn insert_logs(
    conn: &mut DbConnection,
    events: &[(&ValidSpend, i64)],
    received: chrono::NaiveDateTime,
) -> QueryResult<Vec<SpendRow>> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
    match conn {
        DbConnection::Postgresql(c) => diesel::sql_query(
            "WITH e AS MATERIALIZED ( \
                 SELECT nextval('spend_logs_id_seq') AS id, u.* \
                 FROM unnest($1, $2, $3, $5, $6, $7) WITH ORDINALITY \
                      AS u (campaign_id, amount, occurred_at, event_id, brand_id, token_id, n)), \
             claimed AS ( \
                 INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at) \
                 SELECT brand_id, event_id, id, occurred_at FROM e WHERE event_id IS NOT NULL \
                 ORDER BY n) \
             INSERT INTO spend_logs \
                 (id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id) \
             SELECT e.id, e.campaign_id, e.amount, e.occurred_at, $4, e.event_id, e.brand_id, \
                    e.token_id \
             FROM e ORDER BY e.n \
             RETURNING id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id",
        )
        .bind::<Array<BigInt>, _>(events.iter().map(|(e, _)| e.campaign_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(
            events
                .iter()
                .map(|(e, _)| e.amount.micros())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamp>, _>(
            events
                .iter()
                .map(|(e, _)| naive(e.occurred_at))
                .collect::<Vec<_>>(),
        )
        .bind::<Timestamp, _>(received)
        .bind::<Array<Nullable<Text>>, _>(
            events
                .iter()
                .map(|(e, _)| e.event_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<BigInt>, _>(events.iter().map(|(_, brand)| *brand).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(
            events.iter().map(|(e, _)| e.posted_by).collect::<Vec<_>>(),
        )
        .load(c),
        DbConnection::Sqlite(c) => {
            // 4,000 rows × 7 columns stays under SQLite's 32,766 bind variables.
            let mut inserted = Vec::with_capacity(events.len());
            for chunk in events.chunks(4_000) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|(e, brand)| {
                        (
                            spend_logs::campaign_id.eq(e.campaign_id),
                            spend_logs::amount.eq(e.amount.micros()),
                            spend_logs::occurred_at.eq(naive(e.occurred_at)),
                            spend_logs::received_at.eq(received),
                            spend_logs::event_id.eq(e.event_id.as_deref()),
                            spend_logs::brand_id.eq(*brand),
                            spend_logs::token_id.eq(e.posted_by),
                        )
                    })
                    .collect();
                inserted.extend(
                    diesel::insert_into(spend_logs::table)
                        .values(&rows)
                        .returning(SpendRow::as_returning())
                        .get_results(c)?,
                );
            }
            Ok(inserted)
        }
    }
}

/// The period totals a call's spend would take past [`MAX_MICROS`].
struct OverLimit {
    brands: Vec<(i64, String)>,
    campaigns: Vec<(i64, String)>,
}

impl OverLimit {
    /// The error naming the first event (in the call's order) that crosses one of the limits,
    /// found from the refused totals as they are stored (the upserts left them untouched).
    /// `events` are the new events with their brand and period keys.
    fn error(
        &self,
        conn: &mut DbConnection,
        mode: Mode,
        events: &[(usize, &ValidSpend, i64, &PeriodKeys)],
    ) -> QueryResult<DomainError> {
        let mut total: HashMap<(bool, i64, String), i64> = HashMap::new();
        for (brand, period, amount) in totals_of(conn, Owner::Brand, &self.brands)? {
            total.insert((true, brand, period), amount);
        }
        for (campaign, period, amount) in totals_of(conn, Owner::Campaign, &self.campaigns)? {
            total.insert((false, campaign, period), amount);
        }
        let over: HashSet<(bool, i64, &str)> = self
            .brands
            .iter()
            .map(|(b, p)| (true, *b, p.as_str()))
            .chain(self.campaigns.iter().map(|(c, p)| (false, *c, p.as_str())))
            .collect();
        for (i, e, brand, keys) in events {
            for (is_brand, owner) in [(true, *brand), (false, e.campaign_id)] {
                let periods = [
                    ("daily", keys.day.as_str()),
                    ("monthly", keys.month.as_str()),
                ];
                for (name, period) in periods {
                    if !over.contains(&(is_brand, owner, period)) {
                        continue;
                    }
                    let sum = total
                        .entry((is_brand, owner, period.to_owned()))
                        .or_default();
                    *sum = sum.saturating_add(e.amount.micros());
                    if *sum > MAX_MICROS {
                        let whose = if is_brand {
                            "the brand's"
                        } else {
                            "the campaign's"
                        };
                        let period = name;
                        return Ok(DomainError::invalid(
                            field_of(mode, *i, "amount"),
                            format!(
                                "would take {whose} {period} spend over the limit of {}",
                                Money::from_micros(MAX_MICROS)
                            ),
                        ));
                    }
                }
            }
        }
        // Only if the totals changed between the upsert and this read (they are locked: never).
        Err(diesel::result::Error::RollbackTransaction)
    }
}

/// The stored totals of `keys` (absent ones are zero): owners and periods each named once, so a
/// batch of 10,000 events stays far under SQLite's bound-parameter limit.
fn totals_of(
    conn: &mut DbConnection,
    owner: Owner,
    keys: &[(i64, String)],
) -> QueryResult<Vec<(i64, String, i64)>> {
    let ids: Vec<i64> = keys
        .iter()
        .map(|(id, _)| *id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let periods: Vec<&str> = keys
        .iter()
        .map(|(_, p)| p.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    match owner {
        Owner::Brand => brand_spend::table
            .select((
                brand_spend::brand_id,
                brand_spend::period,
                brand_spend::amount,
            ))
            .filter(brand_spend::brand_id.eq_any(&ids))
            .filter(brand_spend::period.eq_any(&periods))
            .load(conn),
        Owner::Campaign => campaign_spend::table
            .select((
                campaign_spend::campaign_id,
                campaign_spend::period,
                campaign_spend::amount,
            ))
            .filter(campaign_spend::campaign_id.eq_any(&ids))
            .filter(campaign_spend::period.eq_any(&periods))
            .load(conn),
    }
}

/// Whether `totals` holds `owner`'s totals of both current periods.
fn has_current(totals: &Totals, owner: i64, keys: &PeriodKeys) -> bool {
    totals.has(owner, &keys.day) && totals.has(owner, &keys.month)
}

/// Whose period totals an upsert adds to.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Brand,
    Campaign,
}

impl Owner {
    /// The totals table, its owner column and the 5-minute buckets' table (constants, never
    /// input).
    const fn table(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Owner::Brand => ("brand_spend", "brand_id", "brand_spend_buckets"),
            Owner::Campaign => ("campaign_spend", "campaign_id", "campaign_spend_buckets"),
        }
    }
}

/// What a call adds to one kind of owner's totals: per (owner, period key) and per (owner,
/// 5-minute bucket start in UTC).
#[derive(Debug, Default)]
struct Additions {
    periods: BTreeMap<PeriodTotal, i64>,
    buckets: BTreeMap<(i64, chrono::NaiveDateTime), i64>,
}

impl Additions {
    /// Adds one event's amount to its day, month and bucket. Saturating: a sum past the limit is
    /// refused whatever its exact value.
    fn add(&mut self, owner: i64, keys: &PeriodKeys, bucket: chrono::NaiveDateTime, micros: i64) {
        self.add_to_periods(owner, keys, micros);
        let sum = self.buckets.entry((owner, bucket)).or_default();
        *sum = sum.saturating_add(micros);
    }

    /// Adds one event's amount to its day and month only.
    fn add_to_periods(&mut self, owner: i64, keys: &PeriodKeys, micros: i64) {
        for period in [&keys.day, &keys.month] {
            self.add_to(owner, period, micros);
        }
    }

    fn add_to(&mut self, owner: i64, period: &str, micros: i64) {
        let sum = self.periods.entry((owner, period.to_owned())).or_default();
        *sum = sum.saturating_add(micros);
    }

    /// Whether every addition is within the limit on its own (a bucket is part of a day, so the
    /// periods decide).
    fn within_limit(&self) -> bool {
        self.periods.values().all(|a| *a <= MAX_MICROS)
    }
}

/// A period total as an upsert returns it.
#[derive(QueryableByName)]
struct TotalRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    owner: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    period: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    amount: i64,
}

/// Adds `add` to the owners' period totals and 5-minute buckets, atomically, in key order (the
/// order concurrent upserts of the same rows lock them in); returns the new totals of the periods
/// added to. A total that would exceed [`MAX_MICROS`] is left as it was and not returned (each
/// amount of `add` must be within the limit itself: the tables' CHECK constraints refuse a new row
/// past it); a bucket past it is left too, and the caller refuses the transaction for its day.
/// PostgreSQL gets the rows as arrays (`unnest`, see [`insert_logs`]), buckets and periods in one
/// statement (the buckets' upsert is a data-modifying CTE): one round trip per kind of owner.
/// SQLite gets multi-row VALUES lists, in chunks under its parameter limit.
fn add_totals(conn: &mut DbConnection, owner: Owner, add: &Additions) -> QueryResult<Totals> {
    use diesel::sql_types::{Array, BigInt, Text, Timestamp};
    let mut totals = Totals::default();
    if add.periods.is_empty() {
        return Ok(totals);
    }
    let (table, column, buckets) = owner.table();
    let upsert = |rows: &str| {
        format!(
            "INSERT INTO {table} ({column}, period, amount) {rows} \
             ON CONFLICT ({column}, period) DO UPDATE SET amount = {table}.amount + excluded.amount \
             WHERE {table}.amount + excluded.amount <= {MAX_MICROS} \
             RETURNING {column} AS owner, period, amount"
        )
    };
    let bucket_upsert = |rows: &str| {
        format!(
            "INSERT INTO {buckets} ({column}, bucket, amount) {rows} \
             ON CONFLICT ({column}, bucket) DO UPDATE SET amount = {buckets}.amount + excluded.amount \
             WHERE {buckets}.amount + excluded.amount <= {MAX_MICROS}"
        )
    };
    let returned: Vec<TotalRow> = match conn {
        DbConnection::Postgresql(c) => {
            let periods = upsert(
                "SELECT t.owner, t.period, t.amount FROM unnest($1, $2, $3) WITH ORDINALITY \
                     AS t (owner, period, amount, n) ORDER BY t.n",
            );
            let sql = if add.buckets.is_empty() {
                periods
            } else {
                let buckets = bucket_upsert(
                    "SELECT b.owner, b.bucket, b.amount FROM unnest($4, $5, $6) WITH ORDINALITY \
                         AS b (owner, bucket, amount, n) ORDER BY b.n",
                );
                format!("WITH buckets AS ({buckets}) {periods}")
            };
            let q = diesel::sql_query(sql)
                .into_boxed::<diesel::pg::Pg>()
                .bind::<Array<BigInt>, _>(add.periods.keys().map(|(id, _)| *id).collect::<Vec<_>>())
                .bind::<Array<Text>, _>(
                    add.periods
                        .keys()
                        .map(|(_, p)| p.clone())
                        .collect::<Vec<_>>(),
                )
                .bind::<Array<BigInt>, _>(add.periods.values().copied().collect::<Vec<_>>());
            let q = if add.buckets.is_empty() {
                q
            } else {
                q.bind::<Array<BigInt>, _>(
                    add.buckets.keys().map(|(id, _)| *id).collect::<Vec<_>>(),
                )
                .bind::<Array<Timestamp>, _>(
                    add.buckets.keys().map(|(_, b)| *b).collect::<Vec<_>>(),
                )
                .bind::<Array<BigInt>, _>(add.buckets.values().copied().collect::<Vec<_>>())
            };
            q.load(c)?
        }
        DbConnection::Sqlite(c) => {
            let buckets: Vec<_> = add.buckets.iter().collect();
            for chunk in buckets.chunks(CHUNK) {
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let mut q = diesel::sql_query(bucket_upsert(&format!("VALUES {values}")))
                    .into_boxed::<diesel::sqlite::Sqlite>();
                for ((id, bucket), amount) in chunk {
                    q = q
                        .bind::<BigInt, _>(*id)
                        .bind::<Timestamp, _>(*bucket)
                        .bind::<BigInt, _>(**amount);
                }
                q.execute(c)?;
            }
            let mut returned = Vec::with_capacity(add.periods.len());
            let rows: Vec<_> = add.periods.iter().collect();
            for chunk in rows.chunks(CHUNK) {
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let mut q = diesel::sql_query(upsert(&format!("VALUES {values}")))
                    .into_boxed::<diesel::sqlite::Sqlite>();
                for ((id, period), amount) in chunk {
                    q = q
                        .bind::<BigInt, _>(*id)
                        .bind::<Text, _>(period.as_str())
                        .bind::<BigInt, _>(**amount);
                }
                returned.extend(q.load::<TotalRow>(c)?);
            }
            returned
        }
    };
    for r in returned {
        totals.insert(r.owner, r.period, r.amount);
    }
    Ok(totals)
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
        .select(ListedRow::as_select())
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
    let rows: Vec<ListedRow> = q.load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.row.id).collect();
    let reversals = reversals_of(conn, &ids)?;
    let rows: Vec<SpendLog> = rows
        .into_iter()
        .map(|r| {
            let by = reversals.get(&r.row.id).copied();
            r.into_view(by)
        })
        .collect();
    Ok(into_page(rows, page.limit, |l| l.id))
}

/// Recomputes every period total of `brand_id` and its campaigns from the spend logs, in the
/// brand's current timezone (after a timezone change the local dates of past spend move).
pub fn rebuild_brand_totals(
    conn: &mut DbConnection,
    brand_id: i64,
    tz: chrono_tz::Tz,
) -> DomainResult<()> {
    // Past periods are re-read from the logs, which the retention may have dropped in part: the
    // rebuilt totals (lifetime ones included) would lose that spend and could lift caps.
    if let Some(kept_from) = maintenance::horizon(conn)? {
        return Err(DomainError::invalid(
            "timezone",
            format!(
                "cannot be changed any more: spend logs before {} were dropped by the retention \
                 (ADBUDGET_SPEND_LOG_RETENTION_MONTHS), so past spend cannot be re-read in \
                 another timezone",
                kept_from.format("%Y-%m-%d")
            ),
        ));
    }
    let logs: Vec<(i64, i64, chrono::NaiveDateTime)> = spend_logs::table
        .inner_join(campaigns::table.on(campaigns::id.eq(spend_logs::campaign_id)))
        .filter(campaigns::brand_id.eq(brand_id))
        .select((
            spend_logs::campaign_id,
            spend_logs::amount,
            spend_logs::occurred_at,
        ))
        .load(conn)?;
    // The months before the brand's mark are carried in the new timezone too (`repo::lifetime`).
    let mark: String = brands::table
        .find(brand_id)
        .select(brands::carried_before)
        .first(conn)?;
    let mut brand_add = Additions::default();
    let mut campaign_add = Additions::default();
    let mut carried: BTreeMap<i64, i64> = BTreeMap::new();
    for (campaign_id, amount, at) in logs {
        // The 5-minute buckets are aligned in UTC: a timezone change leaves them as they are.
        let keys = PeriodKeys::at(utc(at), tz);
        brand_add.add_to_periods(brand_id, &keys, amount);
        campaign_add.add_to_periods(campaign_id, &keys, amount);
        if keys.month < mark {
            *carried.entry(campaign_id).or_default() += amount;
        }
    }
    // Read in another timezone, one local day may gather more spend than the limit allows.
    if !brand_add.within_limit() || !campaign_add.within_limit() {
        return Err(DomainError::invalid(
            "timezone",
            format!(
                "in this timezone one day's or month's spend would exceed the limit of {}",
                Money::from_micros(MAX_MICROS)
            ),
        ));
    }
    diesel::delete(brand_spend::table.filter(brand_spend::brand_id.eq(brand_id))).execute(conn)?;
    let campaign_ids = campaigns::table
        .select(campaigns::id)
        .filter(campaigns::brand_id.eq(brand_id));
    diesel::delete(campaign_spend::table.filter(campaign_spend::campaign_id.eq_any(campaign_ids)))
        .execute(conn)?;
    add_totals(conn, Owner::Brand, &brand_add)?;
    add_totals(conn, Owner::Campaign, &campaign_add)?;
    diesel::update(campaigns::table.filter(campaigns::brand_id.eq(brand_id)))
        .set(campaigns::lifetime_carried.eq(0))
        .execute(conn)?;
    for (campaign_id, amount) in carried {
        super::lifetime::add_carried(conn, campaign_id, amount)?;
    }
    Ok(())
}
