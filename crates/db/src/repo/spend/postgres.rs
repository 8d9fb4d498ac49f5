//! The spend path on PostgreSQL for small calls, in one statement (issue #19, item 2).
//!
//! The stepwise path (`record_in_tx`, which SQLite keeps) sends per call: the campaigns' brands,
//! the known event ids, the spend logs, the brand locks, the brands' and the campaigns' totals (with
//! their buckets) and the campaigns the rule judges — seven statements, each a round trip and a
//! parse and plan. Here all of it is one prepared statement of data-modifying CTEs over `unnest`
//! arrays, which returns what the rule needs: the locked brands' facts, the new totals (typed
//! arrays), the ids of the logs inserted, the ids of the logs of replayed event ids (read after it,
//! only when there are any) and the campaigns' rows.
//! What is left is the rule's own writes (pauses and resumes, alert events), which are rare, and
//! `BEGIN`/`COMMIT`.
//!
//! Only for calls of at most [`SMALL_CALL`] events: the group commit's (single events, about 18
//! a transaction under load). For a batch of 1,000 the round trips saved are nothing beside the
//! rows, and the statement's own per-row work (speculative insertion of each log, the campaigns'
//! join and row locks) made it slower than the seven statements: 48.0k against 57.8k events/s,
//! measured alternately (BENCHMARKS.md). Single events: 12.0k against 10.8k, CPU per event −16 %.
//!
//! Two things the statement needs before it runs are read from [`Lookups`], a cache each spend
//! writer keeps: a campaign's brand (which never changes) and the brand's timezone (which does,
//! rarely): the period keys are computed here with chrono-tz, never with the database's own
//! timezone data, so that both backends and the rule agree on them. The statement returns every
//! locked brand's timezone; one that differs from the cached one (it changed since) refreshes the
//! cache and runs the transaction again, so no spend is ever keyed by a stale timezone.
//!
//! Order inside the statement (the same in every transaction, so concurrent ones cannot deadlock):
//! the event ids are claimed first in `spend_event_ids` (`ON CONFLICT DO NOTHING`: a replayed id is
//! skipped, and a concurrent claim of the same id is waited for; the table keeps the ids unique
//! across the monthly partitions of `spend_logs`, migration 000012) and the logs of the events
//! that have no id or a new one inserted, then the brands are locked in id order, and
//! only then (`gate`, an init plan every later part waits for) the totals and buckets are upserted,
//! summed from the logs the statement inserted (skipped replays add nothing), and the campaigns
//! read. They are read `FOR SHARE`: a statement's snapshot is taken when it starts, so a plain
//! read would return a campaign as it was before the lock wait, without the pauses (or new caps)
//! of the transaction that held the lock. A locking read that conflicts with that transaction's
//! `UPDATE` returns the row's newest version; `FOR KEY SHARE` does not conflict with a non-key
//! update and returns the snapshot's (a review found this, and
//! `group_commit::a_campaign_changed_during_the_lock_wait_is_judged_as_changed` fails with it).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp, Untyped};

use adbudget_core::forms::ValidSpend;
use adbudget_core::money::{MAX_MICROS, Money};
use adbudget_core::period::{PeriodKeys, bucket_start};
use adbudget_core::rule::{BrandFacts, PeriodsAt, Totals, parse_tz};

use super::{
    Additions, Attempt, Call, CampaignRow, EventResults, OverLimit, PeriodTotal, SpendRow,
    SpendTotals, answer, enforce_after_spend, settle_lifetimes, thresholds_reached,
};
use crate::DbConnection;
use crate::error::DomainError;
use crate::repo::enforce::LockedBrands;
use crate::repo::naive;
use adbudget_core::events::AlertThresholds;
use adbudget_core::views::Campaign;

/// The most events a call may have to take this path (see the module's comment).
pub(super) const SMALL_CALL: usize = 100;

/// What a spend writer remembers between calls: each campaign's brand (fixed for the campaign's
/// life) and each brand's timezone as last seen (checked by every call, see the module's
/// comment). Bounded: cleared when it would grow past its bound ([`Lookups::MAX`] campaigns).
#[derive(Debug)]
pub struct Lookups {
    brand_of: HashMap<i64, i64>,
    tz_of: HashMap<i64, Tz>,
    max: usize,
    /// The kept history's start (`maintenance::horizon`) and when it was read.
    horizon: Option<(Option<chrono::NaiveDateTime>, std::time::Instant)>,
    /// When the writer last had its connection's plans discarded (`None`: at its next call),
    /// and how often it does ([`Lookups::replan_if_due`]).
    last_discard: Option<std::time::Instant>,
    replan_every: std::time::Duration,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups::bounded(Lookups::MAX)
    }
}

impl Lookups {
    /// Campaigns remembered at most by default (about 40 bytes each).
    pub const MAX: usize = 200_000;

    /// Remembers at most `max` campaigns (at least those of one call).
    pub fn bounded(max: usize) -> Self {
        Lookups {
            brand_of: HashMap::new(),
            tz_of: HashMap::new(),
            max,
            horizon: None,
            last_discard: Some(std::time::Instant::now()),
            replan_every: Self::REPLAN_EVERY,
        }
    }

    /// How often a writer has PostgreSQL plan its prepared statements anew.
    pub const REPLAN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// Replans every `every` instead of [`Lookups::REPLAN_EVERY`] (tests).
    #[doc(hidden)]
    pub fn replanning_every(mut self, every: std::time::Duration) -> Self {
        self.replan_every = every;
        self
    }

    /// Has the next call discard the plans: the writer took another connection from the pool,
    /// whose plans may be as old as the pool.
    pub fn replan_now(&mut self) {
        self.last_discard = None;
    }

    /// PostgreSQL keeps one generic plan per prepared statement, made from the table sizes and
    /// statistics of the moment it was made, until a `VACUUM`, an `ANALYZE` or a change of a
    /// table it reads. A writer's statements are prepared once per connection: planned on a new
    /// database, the spend statement looked the known event ids up by a hash join over all of
    /// `spend_event_ids` (cheapest while it was small) and kept scanning it as it grew, every
    /// group commit, until autovacuum came by (13.7 of 17.7 ms a call at 62,000 ids; a new
    /// database's first minutes at half the rate, BENCHMARKS.md). `DISCARD PLANS` every ten
    /// seconds has them planned again, at their next execution, from the tables as they are then
    /// (the prepared statements stay; a plan costs about 0.2 ms). Writers only: `spend::record`
    /// (batches, the CLI) takes a fresh `Lookups` per call and leaves its connection's plans to
    /// autovacuum.
    pub(super) fn replan_if_due(&mut self, conn: &mut DbConnection) -> QueryResult<()> {
        use diesel::connection::SimpleConnection;
        let DbConnection::Postgresql(pg) = conn else {
            return Ok(());
        };
        if self
            .last_discard
            .is_some_and(|at| at.elapsed() < self.replan_every)
        {
            return Ok(());
        }
        pg.batch_execute("DISCARD PLANS")?;
        self.last_discard = Some(std::time::Instant::now());
        Ok(())
    }

    /// How long a writer trusts the horizon it read: the retention moves it once a day at most,
    /// and an event of a month dropped less than this long ago is still deleted by the next run.
    const HORIZON_TTL: std::time::Duration = std::time::Duration::from_secs(60);

    /// The first instant whose spend logs are kept, when the retention dropped any: read once a
    /// minute per writer (per call for `spend::record`).
    pub(super) fn horizon(
        &mut self,
        conn: &mut DbConnection,
    ) -> QueryResult<Option<chrono::NaiveDateTime>> {
        match self.horizon {
            Some((h, at)) if at.elapsed() < Self::HORIZON_TTL => Ok(h),
            _ => {
                let h = super::maintenance::horizon(conn)?;
                self.horizon = Some((h, std::time::Instant::now()));
                Ok(h)
            }
        }
    }

    /// Makes sure every campaign of `ids` that exists is known, with its brand's timezone: one
    /// query for those not known yet (none once the writer is warm).
    fn resolve(&mut self, conn: &mut diesel::PgConnection, ids: &[i64]) -> QueryResult<()> {
        let unknown = |brand_of: &HashMap<i64, i64>| -> Vec<i64> {
            let mut missing: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !brand_of.contains_key(id))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        let mut missing = unknown(&self.brand_of);
        if missing.is_empty() {
            return Ok(());
        }
        if self.brand_of.len() + missing.len() > self.max {
            // Forgotten first, then every campaign of the call is looked up again.
            self.brand_of.clear();
            self.tz_of.clear();
            missing = unknown(&self.brand_of);
        }
        use crate::schema::{brands, campaigns};
        let rows: Vec<(i64, i64, String)> = campaigns::table
            .inner_join(brands::table)
            .select((campaigns::id, campaigns::brand_id, brands::timezone))
            .filter(campaigns::id.eq_any(&missing))
            .load(conn)?;
        for (campaign, brand, tz) in rows {
            self.brand_of.insert(campaign, brand);
            self.tz_of.insert(brand, parse_tz(&tz));
        }
        Ok(())
    }
}

/// The statement, with `$?` where each parameter goes (each is used once, in this order).
static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    format!(
        "WITH args AS MATERIALIZED (SELECT $?::bigint[] AS brands, $?::bigint[] AS campaigns, \
                                           $?::timestamp AS received), \
         e AS MATERIALIZED ( \
             SELECT nextval('spend_logs_id_seq') AS id, u.* \
             FROM unnest($?::bigint[], $?::bigint[], $?::bigint[], $?::timestamp[], $?::text[], \
                         $?::bigint[], $?::text[], $?::text[], $?::timestamp[]) WITH ORDINALITY \
                  AS u (campaign_id, brand_id, amount, occurred_at, event_id, token_id, day, \
                        month, bucket, n) \
             ORDER BY u.n), \
         known AS ( \
             SELECT k.spend_log_id AS id, k.occurred_at \
             FROM e JOIN spend_event_ids AS k ON k.brand_id = e.brand_id AND k.event_id = e.event_id), \
         valid AS MATERIALIZED ( \
             SELECT e.* FROM e JOIN campaigns AS c ON c.id = e.campaign_id AND c.brand_id = e.brand_id), \
         claimed AS ( \
             INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at) \
             SELECT brand_id, event_id, id, occurred_at FROM valid WHERE event_id IS NOT NULL \
             ORDER BY n \
             ON CONFLICT (brand_id, event_id) DO NOTHING \
             RETURNING spend_log_id), \
         ins AS ( \
             INSERT INTO spend_logs \
                 (id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id) \
             SELECT id, campaign_id, amount, occurred_at, (SELECT received FROM args), \
                    event_id, brand_id, token_id \
             FROM valid \
             WHERE event_id IS NULL OR id IN (SELECT spend_log_id FROM claimed) \
             ORDER BY n \
             RETURNING id), \
         locked AS MATERIALIZED ( \
             SELECT id, daily_budget, monthly_budget, timezone, alert_thresholds, carried_before \
             FROM brands \
             WHERE id = ANY ((SELECT brands FROM args)::bigint[]) ORDER BY id FOR NO KEY UPDATE), \
         gate AS MATERIALIZED ( \
             SELECT (SELECT count(*) FROM ins) AS logs, (SELECT count(*) FROM locked) AS locks), \
         added AS MATERIALIZED ( \
             SELECT e.* FROM e JOIN ins USING (id) WHERE (SELECT locks FROM gate) >= 0), \
         brand_up AS ( \
             INSERT INTO brand_spend (brand_id, period, amount) \
             SELECT owner, period, amount FROM ( \
                 SELECT brand_id AS owner, day AS period, sum(amount)::bigint AS amount \
                 FROM added GROUP BY 1, 2 \
                 UNION ALL SELECT brand_id, month, sum(amount)::bigint FROM added GROUP BY 1, 2 \
             ) AS a ORDER BY 1, 2 \
             ON CONFLICT (brand_id, period) DO UPDATE \
                 SET amount = brand_spend.amount + excluded.amount \
                 WHERE brand_spend.amount + excluded.amount <= {MAX_MICROS} \
             RETURNING brand_id AS owner, period, amount), \
         campaign_up AS ( \
             INSERT INTO campaign_spend (campaign_id, period, amount) \
             SELECT owner, period, amount FROM ( \
                 SELECT campaign_id AS owner, day AS period, sum(amount)::bigint AS amount \
                 FROM added GROUP BY 1, 2 \
                 UNION ALL SELECT campaign_id, month, sum(amount)::bigint FROM added GROUP BY 1, 2 \
             ) AS a ORDER BY 1, 2 \
             ON CONFLICT (campaign_id, period) DO UPDATE \
                 SET amount = campaign_spend.amount + excluded.amount \
                 WHERE campaign_spend.amount + excluded.amount <= {MAX_MICROS} \
             RETURNING campaign_id AS owner, period, amount), \
         brand_buckets AS ( \
             INSERT INTO brand_spend_buckets (brand_id, bucket, amount) \
             SELECT brand_id, bucket, sum(amount)::bigint FROM added GROUP BY 1, 2 ORDER BY 1, 2 \
             ON CONFLICT (brand_id, bucket) DO UPDATE \
                 SET amount = brand_spend_buckets.amount + excluded.amount \
                 WHERE brand_spend_buckets.amount + excluded.amount <= {MAX_MICROS}), \
         campaign_buckets AS ( \
             INSERT INTO campaign_spend_buckets (campaign_id, bucket, amount) \
             SELECT campaign_id, bucket, sum(amount)::bigint FROM added GROUP BY 1, 2 \
             ORDER BY 1, 2 \
             ON CONFLICT (campaign_id, bucket) DO UPDATE \
                 SET amount = campaign_spend_buckets.amount + excluded.amount \
                 WHERE campaign_spend_buckets.amount + excluded.amount <= {MAX_MICROS}), \
         camps AS ( \
             SELECT id, brand_id, manually_paused, daily_cap, monthly_cap, dayparting, \
                    pause_reasons, lifetime_cap, flight_start, flight_end, name, state_version, \
                    created_at, updated_at, lifetime_carried \
             FROM campaigns \
             WHERE id = ANY ((SELECT campaigns FROM args)::bigint[]) \
               AND (SELECT locks FROM gate) >= 0 \
             ORDER BY id \
             FOR SHARE) \
         SELECT ARRAY(SELECT id FROM e ORDER BY n) AS ids, ARRAY(SELECT id FROM ins) AS inserted, \
                (SELECT coalesce(json_agg(known), '[]') FROM known)::text AS known, \
                (SELECT coalesce(json_agg(locked), '[]') FROM locked)::text AS brands, \
                ARRAY(SELECT owner FROM brand_up) AS brand_owners, \
                ARRAY(SELECT period FROM brand_up) AS brand_periods, \
                ARRAY(SELECT amount FROM brand_up) AS brand_amounts, \
                ARRAY(SELECT owner FROM campaign_up) AS campaign_owners, \
                ARRAY(SELECT period FROM campaign_up) AS campaign_periods, \
                ARRAY(SELECT amount FROM campaign_up) AS campaign_amounts, \
                (SELECT coalesce(json_agg(camps ORDER BY id), '[]') FROM camps)::text AS campaigns"
    )
    .split("$?")
    .map(str::to_owned)
    .collect()
});

/// The statement with its parameters numbered (`$1` …), as PostgreSQL prepares it.
pub(super) fn numbered_sql() -> String {
    let mut sql = String::new();
    for (n, part) in SQL.iter().enumerate() {
        if n > 0 {
            sql.push_str(&format!("${n}"));
        }
        sql.push_str(part);
    }
    sql
}

/// The statement's parameters: the brands to lock, the campaigns to read, the time received,
/// then the events to insert as columns (each event's brand and period keys computed here).
#[derive(QueryId)]
struct Statement {
    brands: Vec<i64>,
    campaigns: Vec<i64>,
    received: chrono::NaiveDateTime,
    campaign_id: Vec<i64>,
    brand_id: Vec<i64>,
    amount: Vec<i64>,
    occurred_at: Vec<chrono::NaiveDateTime>,
    event_id: Vec<Option<String>>,
    token_id: Vec<Option<i64>>,
    day: Vec<String>,
    month: Vec<String>,
    bucket: Vec<chrono::NaiveDateTime>,
}

impl QueryFragment<Pg> for Statement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut sql = SQL.iter();
        let mut next = |out: &mut AstPass<'_, 'b, Pg>| {
            out.push_sql(sql.next().map_or("", String::as_str));
        };
        next(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&self.brands)?;
        next(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&self.campaigns)?;
        next(&mut out);
        out.push_bind_param::<Timestamp, _>(&self.received)?;
        next(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&self.campaign_id)?;
        next(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&self.brand_id)?;
        next(&mut out);
        out.push_bind_param::<Array<BigInt>, _>(&self.amount)?;
        next(&mut out);
        out.push_bind_param::<Array<Timestamp>, _>(&self.occurred_at)?;
        next(&mut out);
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.event_id)?;
        next(&mut out);
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.token_id)?;
        next(&mut out);
        out.push_bind_param::<Array<Text>, _>(&self.day)?;
        next(&mut out);
        out.push_bind_param::<Array<Text>, _>(&self.month)?;
        next(&mut out);
        out.push_bind_param::<Array<Timestamp>, _>(&self.bucket)?;
        next(&mut out);
        Ok(())
    }
}

impl Query for Statement {
    type SqlType = Untyped;
}

impl RunQueryDsl<diesel::PgConnection> for Statement {}

/// What the statement returns (JSON for the parts of many columns: one row, one round trip).
#[derive(QueryableByName)]
struct Output {
    /// The ids given to the fresh events, in order (a skipped one's is left unused).
    #[diesel(sql_type = Array<BigInt>)]
    ids: Vec<i64>,
    #[diesel(sql_type = Array<BigInt>)]
    inserted: Vec<i64>,
    #[diesel(sql_type = Text)]
    known: String,
    #[diesel(sql_type = Text)]
    brands: String,
    /// The new totals as three columns each (typed arrays: no JSON to build and parse for the
    /// thousands of a batch). A CTE's rows are read in the same order by every scan.
    #[diesel(sql_type = Array<BigInt>)]
    brand_owners: Vec<i64>,
    #[diesel(sql_type = Array<Text>)]
    brand_periods: Vec<String>,
    #[diesel(sql_type = Array<BigInt>)]
    brand_amounts: Vec<i64>,
    #[diesel(sql_type = Array<BigInt>)]
    campaign_owners: Vec<i64>,
    #[diesel(sql_type = Array<Text>)]
    campaign_periods: Vec<String>,
    #[diesel(sql_type = Array<BigInt>)]
    campaign_amounts: Vec<i64>,
    #[diesel(sql_type = Text)]
    campaigns: String,
}

/// A locked brand as the statement returns it.
#[derive(serde::Deserialize)]
struct LockedBrand {
    id: i64,
    daily_budget: i64,
    monthly_budget: i64,
    timezone: String,
    alert_thresholds: String,
    carried_before: String,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, Attempt> {
    serde_json::from_str(json).map_err(|e| {
        Attempt::Failed(DomainError::Unexpected(anyhow::anyhow!(
            "the spend statement's {what} did not parse: {e}"
        )))
    })
}

/// A recorded log named by `spend_event_ids`: its id and its partition key.
#[derive(serde::Deserialize, QueryableByName)]
pub(super) struct LogReference {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamp)]
    occurred_at: chrono::NaiveDateTime,
}

/// The logs of replayed event ids, read only when there are any. Not a join inside the
/// statement: a prepared statement's generic plan locks every partition it may read, which with
/// a join on `spend_logs` would be every month of the table on every call; here the months are
/// values the planner prunes by.
pub(super) fn logs_by_reference(
    pg: &mut diesel::PgConnection,
    refs: &[LogReference],
) -> QueryResult<Vec<SpendRow>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: HashSet<(i64, chrono::NaiveDateTime)> =
        refs.iter().map(|r| (r.id, r.occurred_at)).collect();
    let rows: Vec<SpendRow> = diesel::sql_query(
        "SELECT id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id \
         FROM spend_logs WHERE occurred_at = ANY($1) AND id = ANY($2)",
    )
    .bind::<Array<Timestamp>, _>(refs.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(refs.iter().map(|r| r.id).collect::<Vec<_>>())
    .load(pg)?;
    Ok(rows
        .into_iter()
        .filter(|r| pairs.contains(&(r.id, r.occurred_at)))
        .collect())
}

/// Whether `e` replays the recorded `prev` (same campaign and amount, and time if `e` gives one);
/// else the conflict's message.
fn replay_of(prev: &SpendRow, e: &ValidSpend) -> Result<(), String> {
    let (amount, at) = (
        Money::from_micros(prev.amount),
        super::utc(prev.occurred_at),
    );
    if super::resends(prev.campaign_id, amount, at, e) {
        Ok(())
    } else {
        let id = e.event_id.as_deref().unwrap_or_default();
        Err(format!(
            "event {id:?} was already recorded with a different payload"
        ))
    }
}

/// A fresh event as sent: its index in the call, the event, its brand and period keys.
struct Fresh<'a> {
    i: usize,
    event: &'a ValidSpend,
    brand: i64,
    keys: PeriodKeys,
    bucket: chrono::NaiveDateTime,
}

/// Records `events` inside the caller's write transaction with one statement (see the module's
/// comment), then applies the rule as the stepwise path does. `Ok(None)` when this path declines
/// before writing anything: the call's own sums would pass the money limit, which the stepwise
/// path reports event by event.
pub(super) fn record_in_tx(
    conn: &mut DbConnection,
    lookups: &mut Lookups,
    events: &[ValidSpend],
    now: DateTime<Utc>,
    mode: super::Mode,
    horizon: Option<chrono::NaiveDateTime>,
) -> Result<Option<(EventResults, Vec<Campaign>)>, Attempt> {
    let DbConnection::Postgresql(pg) = &mut *conn else {
        return Ok(None);
    };
    let mut call = Call::new(events, mode);
    call.refuse_before(horizon)?;
    let campaign_ids = call.campaign_ids();
    lookups.resolve(pg, &campaign_ids)?;

    // Step 1, as the stepwise path's: unknown campaigns and other brands' campaigns refused.
    let owners: HashMap<i64, i64> = campaign_ids
        .iter()
        .filter_map(|id| Some((*id, *lookups.brand_of.get(id)?)))
        .collect();
    call.check_owners(&owners)?;

    // Step 2, the part decided before the statement: an id repeated within the call is a replay
    // of its first event (or a conflict); whether an id is recorded already the statement says.
    let mut fresh: Vec<Fresh<'_>> = Vec::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut first_in_call: HashMap<(i64, &str), usize> = HashMap::new();
    let mut add = (Additions::default(), Additions::default());
    for (i, e) in events.iter().enumerate() {
        if call.results[i].is_some() {
            continue;
        }
        let brand = owners[&e.campaign_id];
        if let Some(id) = e.event_id.as_deref() {
            if let Some(&first) = first_in_call.get(&(brand, id)) {
                repeats.push((i, first));
                continue;
            }
            first_in_call.insert((brand, id), i);
        }
        let tz = lookups.tz_of.get(&brand).copied().unwrap_or(Tz::UTC);
        let keys = PeriodKeys::at(e.occurred_at, tz);
        let bucket = naive(bucket_start(e.occurred_at));
        add.0.add(brand, &keys, bucket, e.amount.micros());
        add.1.add(e.campaign_id, &keys, bucket, e.amount.micros());
        fresh.push(Fresh {
            i,
            event: e,
            brand,
            keys,
            bucket,
        });
    }
    if !(add.0.within_limit() && add.1.within_limit()) {
        return Ok(None);
    }

    let mut brand_ids: Vec<i64> = owners.values().copied().collect();
    brand_ids.sort_unstable();
    brand_ids.dedup();
    let mut answered: Vec<i64> = owners.keys().copied().collect();
    answered.sort_unstable();
    let received = naive(now);
    let statement = Statement {
        brands: brand_ids,
        campaigns: answered,
        received,
        campaign_id: fresh.iter().map(|f| f.event.campaign_id).collect(),
        brand_id: fresh.iter().map(|f| f.brand).collect(),
        amount: fresh.iter().map(|f| f.event.amount.micros()).collect(),
        occurred_at: fresh.iter().map(|f| naive(f.event.occurred_at)).collect(),
        event_id: fresh.iter().map(|f| f.event.event_id.clone()).collect(),
        token_id: fresh.iter().map(|f| f.event.posted_by).collect(),
        day: fresh.iter().map(|f| f.keys.day.clone()).collect(),
        month: fresh.iter().map(|f| f.keys.month.clone()).collect(),
        bucket: fresh.iter().map(|f| f.bucket).collect(),
    };
    let out: Output = statement.get_result(pg)?;

    // The brands as locked: a timezone other than the one the keys were computed with means it
    // changed since the writer last looked; the transaction runs again with the new one.
    let mut locked = LockedBrands::default();
    let mut stale = false;
    for b in parse::<Vec<LockedBrand>>("brands", &out.brands)? {
        let tz = parse_tz(&b.timezone);
        if lookups.tz_of.insert(b.id, tz) != Some(tz) {
            stale = true;
        }
        locked.facts.insert(
            b.id,
            BrandFacts {
                daily_budget: Money::from_micros(b.daily_budget),
                monthly_budget: Money::from_micros(b.monthly_budget),
                tz,
            },
        );
        locked
            .thresholds
            .insert(b.id, AlertThresholds::from_stored(&b.alert_thresholds));
        locked.marks.insert(b.id, b.carried_before);
    }
    if stale {
        return Err(Attempt::Stale);
    }
    let rows: Vec<CampaignRow> = parse("campaigns", &out.campaigns)?;
    let found: HashSet<i64> = rows.iter().map(|r| r.rule.id).collect();
    // A campaign the writer remembered but that is gone (deleted since): forgotten, and its
    // events answered as the stepwise path answers them, not found (before any 403 of step 1).
    for (i, e) in events.iter().enumerate() {
        if owners.contains_key(&e.campaign_id) && !found.contains(&e.campaign_id) {
            lookups.brand_of.remove(&e.campaign_id);
            if matches!(call.results[i], Some(Err(_))) {
                call.results[i] = None;
                let field = call.field(i, "campaign_id");
                call.reject(i, DomainError::not_found_field("campaign", field))?;
            }
        }
    }
    if rows
        .iter()
        .any(|r| owners.get(&r.rule.id) != Some(&r.rule.brand_id))
    {
        return Err(DomainError::Unexpected(anyhow::anyhow!("a campaign changed brand")).into());
    }
    let known: HashMap<(i64, String), SpendRow> =
        logs_by_reference(pg, &parse::<Vec<LogReference>>("known", &out.known)?)?
            .into_iter()
            .filter_map(|r| Some(((r.brand_id, r.event_id.clone()?), r)))
            .collect();

    // Each fresh event: inserted, a replay or conflict of a recorded id, or its campaign gone.
    let inserted: HashSet<i64> = out.inserted.iter().copied().collect();
    let ids = &out.ids;
    if ids.len() != fresh.len() {
        return Err(
            DomainError::Unexpected(anyhow::anyhow!("the spend statement lost events")).into(),
        );
    }
    let mut added = (Additions::default(), Additions::default());
    let mut spent: Vec<(usize, &ValidSpend)> = Vec::new();
    for (f, id) in fresh.iter().zip(ids) {
        let e = f.event;
        if inserted.contains(id) {
            let row = SpendRow {
                id: *id,
                campaign_id: e.campaign_id,
                amount: e.amount.micros(),
                occurred_at: naive(e.occurred_at),
                received_at: received,
                event_id: e.event_id.clone(),
                brand_id: f.brand,
                token_id: e.posted_by,
            };
            call.results[f.i] = Some(Ok(super::Outcome::Recorded(row.into())));
            added.0.add(f.brand, &f.keys, f.bucket, e.amount.micros());
            added
                .1
                .add(e.campaign_id, &f.keys, f.bucket, e.amount.micros());
            spent.push((f.i, e));
            continue;
        }
        if !found.contains(&e.campaign_id) {
            let field = call.field(f.i, "campaign_id");
            call.reject(f.i, DomainError::not_found_field("campaign", field))?;
            continue;
        }
        let Some(event_id) = e.event_id.as_deref() else {
            return Err(DomainError::Unexpected(anyhow::anyhow!(
                "an event without an id was not inserted"
            ))
            .into());
        };
        // Not inserted and not known to this statement's snapshot: a concurrent transaction
        // recorded the id first; run again to answer it as a replay.
        let Some(prev) = known.get(&(f.brand, event_id.to_owned())) else {
            return Err(Attempt::Raced);
        };
        match replay_of(prev, e) {
            Ok(()) => call.results[f.i] = Some(Ok(super::Outcome::Replayed(prev.clone().into()))),
            Err(message) => {
                let field = call.field(f.i, "event_id");
                call.reject(f.i, DomainError::conflict(field, message))?;
            }
        }
    }
    // An id repeated within the call: compared with the recorded event if there is one (as the
    // stepwise path does), else with its first event in the call, whose outcome it shares.
    let mut repeats_of_first = Vec::new();
    for (i, first) in repeats {
        let e = &events[i];
        if !found.contains(&e.campaign_id) {
            let field = call.field(i, "campaign_id");
            call.reject(i, DomainError::not_found_field("campaign", field))?;
            continue;
        }
        let (brand, id) = (
            owners[&e.campaign_id],
            e.event_id.clone().unwrap_or_default(),
        );
        let f = &events[first];
        let outcome = match known.get(&(brand, id.clone())) {
            Some(prev) => replay_of(prev, e).map(|()| Some(prev)),
            None if super::resends(f.campaign_id, f.amount, f.occurred_at, e) => Ok(None),
            None => Err(format!(
                "event {id:?} is being recorded with a different payload"
            )),
        };
        match outcome {
            Ok(Some(prev)) => {
                call.results[i] = Some(Ok(super::Outcome::Replayed(prev.clone().into())));
            }
            Ok(None) => repeats_of_first.push((i, first)),
            Err(message) => {
                let field = call.field(i, "event_id");
                call.reject(i, DomainError::conflict(field, message))?;
            }
        }
    }
    call.answer_repeats(repeats_of_first);

    // Step 5's outcome: the new totals, or the first event that would pass the money limit.
    let totals_of = |owners: Vec<i64>, periods: Vec<String>, amounts: Vec<i64>| -> Totals {
        owners
            .into_iter()
            .zip(periods)
            .zip(amounts)
            .map(|((o, p), a)| (o, p, a))
            .collect()
    };
    let brands = totals_of(out.brand_owners, out.brand_periods, out.brand_amounts);
    let campaigns = totals_of(
        out.campaign_owners,
        out.campaign_periods,
        out.campaign_amounts,
    );
    let refused = |add: &std::collections::BTreeMap<PeriodTotal, i64>, got: &Totals| {
        add.keys()
            .filter(|(owner, period)| !got.has(*owner, period))
            .cloned()
            .collect::<Vec<_>>()
    };
    let over = OverLimit {
        brands: refused(&added.0.periods, &brands),
        campaigns: refused(&added.1.periods, &campaigns),
    };
    let keyed: Vec<(usize, &ValidSpend, i64, &PeriodKeys)> = fresh
        .iter()
        .zip(ids)
        .filter(|(_, id)| inserted.contains(id))
        .map(|(f, _)| (f.i, f.event, f.brand, &f.keys))
        .collect();
    if !(over.brands.is_empty() && over.campaigns.is_empty()) {
        return Err(over.error(conn, mode, &keyed)?.into());
    }
    let mut totals = SpendTotals {
        brands,
        campaigns,
        brands_added: added.0.periods,
        campaigns_added: added.1.periods,
    };
    // The carried totals came with the campaigns' rows: usually nothing to read.
    settle_lifetimes(conn, &mut totals, &locked, &keyed, &rows, mode, now)?;

    // Steps 6 and 7 as the stepwise path's, with the campaigns already read.
    let found_owners: HashMap<i64, i64> = owners
        .into_iter()
        .filter(|(c, _)| found.contains(c))
        .collect();
    let facts = &locked.facts;
    let mut periods = PeriodsAt::new(now);
    let (rows, changes) = enforce_after_spend(
        conn,
        &spent,
        &found_owners,
        facts,
        &mut totals,
        &mut periods,
        now,
        Some(rows),
    )?;
    thresholds_reached(conn, &totals, &locked, &rows, now)?;
    let campaigns = answer(
        rows,
        &changes,
        &found_owners,
        facts,
        &totals,
        &mut periods,
        now,
    );
    Ok(Some((call.finish(), campaigns)))
}

#[cfg(test)]
mod tests {
    /// Each of the statement's twelve parameters has its place.
    #[test]
    fn the_statement_has_a_place_for_each_parameter() {
        assert_eq!(super::SQL.len(), 13);
    }
}
