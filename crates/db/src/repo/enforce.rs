//! Applying the rule to stored campaigns: the one mechanism behind the spend path, every change
//! made through the API, admin or CLI, and the scheduled jobs.

use std::collections::{BTreeMap, HashMap};

use adbudget_core::period::LIFETIME;
use adbudget_core::rule::parse_tz;
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use adbudget_core::events::AlertThresholds;
use adbudget_core::money::Money;
use adbudget_core::rule::{
    BrandFacts, Change, PauseReason, PauseReasons, PeriodsAt, Subject, Totals, judge,
};

use super::{CHUNK, naive};
use crate::DbConnection;
use crate::schema::{brand_spend, brands, campaign_spend, campaign_status_history, campaigns};

/// Campaigns picked by a condition, for the jobs: one query however many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Every,
    /// Campaigns with a dayparting schedule.
    WithSchedule,
    /// Campaigns holding any of these reasons.
    Holding(&'static [PauseReason]),
    /// Campaigns holding any of these reasons, and those with a flight that ends (`reset_daily`:
    /// a flight ends at a brand-local midnight; one that starts holds `flight` until then).
    HoldingOrFlightEnds(&'static [PauseReason]),
}

impl Selection {
    /// The SQL condition on `campaigns` (built from our constants only, never from input).
    fn condition(self) -> String {
        match self {
            Selection::Every => "TRUE".to_owned(),
            Selection::WithSchedule => "campaigns.dayparting IS NOT NULL".to_owned(),
            Selection::Holding(reasons) => {
                let masks: Vec<String> = PauseReasons::MASKS
                    .filter(|bits| {
                        reasons
                            .iter()
                            .any(|r| PauseReasons::from_bits(*bits).contains(*r))
                    })
                    .map(|bits| bits.to_string())
                    .collect();
                format!("campaigns.pause_reasons IN ({})", masks.join(", "))
            }
            Selection::HoldingOrFlightEnds(reasons) => format!(
                "({} OR campaigns.flight_end IS NOT NULL)",
                Selection::Holding(reasons).condition()
            ),
        }
    }
}

/// Which campaigns to evaluate: those a selection picks, or every campaign of some brands plus
/// some campaigns.
#[derive(Debug, Clone, Default)]
pub struct ReconcileScope {
    pub select: Option<Selection>,
    /// Every campaign of these brands.
    pub brands: Vec<i64>,
    /// These campaigns.
    pub campaigns: Vec<i64>,
    /// The brands the caller locked for a selection ([`lock_brands_selected`], sorted), or
    /// `None` when it holds the lock of every brand in scope. Campaigns of other brands joined the
    /// selection after the locks were taken, decided by the transaction that made them join
    /// (under their brand's lock): they are left to the next run, so that nothing is written for
    /// a campaign whose brand is not locked (a concurrent delete would leave its history behind).
    pub locked: Option<Vec<i64>>,
}

impl ReconcileScope {
    pub fn all() -> Self {
        ReconcileScope::selection(Selection::Every)
    }
    pub fn selection(select: Selection) -> Self {
        ReconcileScope {
            select: Some(select),
            ..ReconcileScope::default()
        }
    }
    pub fn brand(id: i64) -> Self {
        ReconcileScope {
            brands: vec![id],
            ..ReconcileScope::default()
        }
    }
    pub fn campaign(id: i64) -> Self {
        ReconcileScope {
            campaigns: vec![id],
            ..ReconcileScope::default()
        }
    }
    pub fn campaigns(ids: Vec<i64>) -> Self {
        ReconcileScope {
            campaigns: ids,
            ..ReconcileScope::default()
        }
    }
}

/// What triggered a state change, recorded in the status history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Spend,
    CampaignCreated,
    CampaignUpdated,
    BrandUpdated,
    DaypartingUpdated,
    ManualPause,
    ManualResume,
    SpendReversed,
    EnforceBudgets,
    ApplyDayparting,
    ResetDaily,
    ResetMonthly,
}

impl Cause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Spend => "spend",
            Cause::CampaignCreated => "campaign_created",
            Cause::CampaignUpdated => "campaign_updated",
            Cause::BrandUpdated => "brand_updated",
            Cause::DaypartingUpdated => "dayparting_updated",
            Cause::ManualPause => "manual_pause",
            Cause::ManualResume => "manual_resume",
            Cause::SpendReversed => "spend_reversed",
            Cause::EnforceBudgets => "enforce_budgets",
            Cause::ApplyDayparting => "apply_dayparting",
            Cause::ResetDaily => "reset_daily",
            Cause::ResetMonthly => "reset_monthly",
        }
    }
}

/// Locks the rows of these brands, in id order, until the transaction ends (PostgreSQL; SQLite
/// write transactions are already exclusive). See the module docs of `repo` for why. Returns the
/// ids of the brands locked (those that exist), in order; nothing on SQLite.
pub fn lock_brands(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<i64>> {
    let mut locked = Vec::new();
    if let DbConnection::Postgresql(c) = conn {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CHUNK) {
            locked.extend(
                brands::table
                    .select(brands::id)
                    .filter(brands::id.eq_any(chunk))
                    .order(brands::id)
                    .for_no_key_update()
                    .load::<i64>(c)?,
            );
        }
    }
    Ok(locked)
}

/// A brand's id, budgets, timezone, alert thresholds and lifetime mark as stored.
type StoredFacts = (i64, i64, i64, String, String, String);

/// The locked brands' budgets and timezones (what the rule decides on), alert thresholds and
/// lifetime marks (`brands.carried_before`, see `adbudget_core::period::CARRIED`).
#[derive(Debug, Default)]
pub(crate) struct LockedBrands {
    pub facts: HashMap<i64, BrandFacts>,
    pub thresholds: HashMap<i64, AlertThresholds>,
    pub marks: HashMap<i64, String>,
}

/// The campaigns `ids` (those that exist) with their brands' budgets, timezones and alert
/// thresholds, in one statement: on SQLite, whose write transaction is exclusive from its
/// `BEGIN IMMEDIATE`, what the spend path's steps 1, 4 and 6 read separately on PostgreSQL's
/// step-by-step path (where the brand locks come later, after the spend logs; see
/// `spend::record_in_tx`). SQLite only: it locks nothing.
pub(crate) fn campaigns_with_brand_facts(
    conn: &mut diesel::SqliteConnection,
    ids: &[i64],
) -> QueryResult<(Vec<super::campaigns::CampaignRow>, LockedBrands)> {
    use super::campaigns::CampaignRow;
    let mut rows = Vec::with_capacity(ids.len());
    let mut out = LockedBrands::default();
    for chunk in ids.chunks(CHUNK) {
        let found: Vec<(CampaignRow, StoredFacts)> = campaigns::table
            .inner_join(brands::table)
            .select((
                CampaignRow::as_select(),
                (
                    brands::id,
                    brands::daily_budget,
                    brands::monthly_budget,
                    brands::timezone,
                    brands::alert_thresholds,
                    brands::carried_before,
                ),
            ))
            .filter(campaigns::id.eq_any(chunk))
            .load(conn)?;
        for (row, (id, daily, monthly, tz, thresholds, mark)) in found {
            out.facts
                .entry(id)
                .or_insert_with(|| facts_of(daily, monthly, &tz));
            out.thresholds
                .entry(id)
                .or_insert_with(|| AlertThresholds::from_stored(&thresholds));
            out.marks.entry(id).or_insert(mark);
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| r.rule.id);
    Ok((rows, out))
}

/// [`lock_brands`], reading the locked brands' budgets, timezones and alert thresholds in the
/// same statement: what the spend path decides on, as no other transaction can change it until
/// this one ends.
pub(crate) fn lock_brand_facts(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<LockedBrands> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = LockedBrands::default();
    for chunk in ids.chunks(CHUNK) {
        let q = brands::table
            .select((
                brands::id,
                brands::daily_budget,
                brands::monthly_budget,
                brands::timezone,
                brands::alert_thresholds,
                brands::carried_before,
            ))
            .filter(brands::id.eq_any(chunk))
            .order(brands::id);
        let rows: Vec<StoredFacts> = match conn {
            DbConnection::Postgresql(c) => q.for_no_key_update().load(c)?,
            DbConnection::Sqlite(c) => q.load(c)?,
        };
        for (id, daily, monthly, tz, thresholds, mark) in rows {
            out.facts.insert(id, facts_of(daily, monthly, &tz));
            out.thresholds
                .insert(id, AlertThresholds::from_stored(&thresholds));
            out.marks.insert(id, mark);
        }
    }
    Ok(out)
}

/// Locks, in id order, the rows of the brands that own a campaign the selection picks
/// (PostgreSQL). Two statements: the owners' ids (`DISTINCT`, at most one row a brand), then
/// [`lock_brands`] by id. As one statement (`brands.id = ANY (SELECT brand_id …)`) the planner,
/// estimating one campaign held by a daily reason where 100,000 were, chose a nested loop that
/// rescanned the selected campaigns for each of 10,000 brands: 3.1 s of `reset_daily`'s run over
/// 1M campaigns (BENCHMARKS.md).
///
/// Returns the brands locked (PostgreSQL), for [`ReconcileScope::locked`]: a campaign can join
/// the selection after this statement (a spend committing a daily hold just before a reset), and
/// its brand is then not locked. `None` on SQLite, whose write transactions are exclusive.
pub fn lock_brands_selected(
    conn: &mut DbConnection,
    select: Selection,
) -> QueryResult<Option<Vec<i64>>> {
    let DbConnection::Postgresql(c) = conn else {
        return Ok(None);
    };
    let owners: Vec<i64> = campaigns::table
        .select(campaigns::brand_id)
        .filter(sql::<Bool>(&select.condition()))
        .distinct()
        .load(c)?;
    lock_brands(conn, &owners).map(Some)
}

/// What the rule reads of a campaign: the columns of `campaigns` it needs.
#[derive(Queryable, Selectable, Debug, Clone, serde::Deserialize)]
#[diesel(table_name = campaigns)]
pub(crate) struct RuleColumns {
    pub id: i64,
    pub brand_id: i64,
    pub manually_paused: bool,
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
    pub dayparting: Option<String>,
    pub pause_reasons: i32,
    pub lifetime_cap: Option<i64>,
    pub flight_start: Option<chrono::NaiveDate>,
    pub flight_end: Option<chrono::NaiveDate>,
}

impl RuleColumns {
    /// The campaign as the rule judges it, with its brand's facts: the one place a stored
    /// campaign becomes a [`Subject`].
    pub(crate) fn subject(&self, brand: BrandFacts) -> Subject<'_> {
        Subject {
            id: self.id,
            brand_id: self.brand_id,
            manually_paused: self.manually_paused,
            daily_cap: self.daily_cap,
            monthly_cap: self.monthly_cap,
            dayparting: self.dayparting.as_deref(),
            pause_reasons: self.pause_reasons,
            lifetime_cap: self.lifetime_cap,
            flight: adbudget_core::forms::Flight {
                start: self.flight_start,
                end: self.flight_end,
            },
            brand,
        }
    }
}

/// A brand's stored budgets and timezone as the rule reads them.
fn facts_of(daily_budget: i64, monthly_budget: i64, timezone: &str) -> BrandFacts {
    BrandFacts {
        daily_budget: Money::from_micros(daily_budget),
        monthly_budget: Money::from_micros(monthly_budget),
        tz: parse_tz(timezone),
    }
}

/// The budgets and timezones of `ids` (unlocked; a reconcile's caller holds the locks), read
/// once per chunk of campaigns rather than joined to each of its rows.
fn brand_facts(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, BrandFacts>> {
    let mut facts = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(i64, i64, i64, String)> = brands::table
            .select((
                brands::id,
                brands::daily_budget,
                brands::monthly_budget,
                brands::timezone,
            ))
            .filter(brands::id.eq_any(chunk))
            .load(conn)?;
        facts.extend(
            rows.into_iter()
                .map(|(id, daily, monthly, tz)| (id, facts_of(daily, monthly, &tz))),
        );
    }
    Ok(facts)
}

/// Spend of `brand_ids` (or all brands when `None`) in the given periods.
pub(crate) fn brand_totals(
    conn: &mut DbConnection,
    brand_ids: Option<&[i64]>,
    periods: &[String],
) -> QueryResult<Totals> {
    let mut q = brand_spend::table
        .select((
            brand_spend::brand_id,
            brand_spend::period,
            brand_spend::amount,
        ))
        .filter(brand_spend::period.eq_any(periods))
        .into_boxed();
    if let Some(ids) = brand_ids {
        q = q.filter(brand_spend::brand_id.eq_any(ids));
    }
    let rows: Vec<(i64, String, i64)> = q.load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Spend in the given periods of the campaigns with ids in `first..=last`, and, for a selection
/// narrower than every campaign, only of those it picks: a reset's selection is sparse (few of
/// the ids in its range hold a daily or monthly reason), and reading the whole range would read
/// mostly rows it does not need.
fn campaign_totals_in_range(
    conn: &mut DbConnection,
    first: i64,
    last: i64,
    periods: &[String],
    selection: Selection,
) -> QueryResult<Totals> {
    let mut q = campaign_spend::table
        .inner_join(campaigns::table)
        .select((
            campaign_spend::campaign_id,
            campaign_spend::period,
            campaign_spend::amount,
        ))
        .filter(campaign_spend::campaign_id.between(first, last))
        .filter(campaign_spend::period.eq_any(periods))
        .into_boxed();
    if selection != Selection::Every {
        q = q.filter(sql::<Bool>(&selection.condition()));
    }
    let rows: Vec<(i64, String, i64)> = q.load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Spend of `campaign_ids` in the given periods (by primary key, in chunks). Lifetimes are not
/// stored periods: `super::lifetime`.
pub(crate) fn campaign_totals(
    conn: &mut DbConnection,
    campaign_ids: &[i64],
    periods: &[String],
) -> QueryResult<Totals> {
    let mut totals = Totals::default();
    for chunk in campaign_ids.chunks(CHUNK) {
        let rows: Vec<(i64, String, i64)> = campaign_spend::table
            .select((
                campaign_spend::campaign_id,
                campaign_spend::period,
                campaign_spend::amount,
            ))
            .filter(campaign_spend::campaign_id.eq_any(chunk))
            .filter(campaign_spend::period.eq_any(periods))
            .load(conn)?;
        totals.extend_rows(rows);
    }
    Ok(totals)
}

/// Evaluates the rule for every campaign in `scope` at `now`, stores the reasons that changed and
/// writes one status-history row per changed campaign. Selections are processed in id-ordered
/// chunks of 50,000, so memory stays flat however many campaigns there are; a constant number of
/// statements per chunk. The caller holds the brand locks.
#[tracing::instrument(
    level = "debug",
    skip_all,
    fields(reconcile.cause = cause.as_str(), campaigns.changed = tracing::field::Empty)
)]
pub fn reconcile(
    conn: &mut DbConnection,
    scope: &ReconcileScope,
    now: DateTime<Utc>,
    cause: Cause,
) -> QueryResult<Vec<Change>> {
    let mut all = Vec::new();
    for_each_chunk(conn, scope, |conn, rows| {
        let changes = evaluate_rows(conn, rows, scope, now)?;
        apply_changes(conn, &changes, now, cause)?;
        all.extend(changes);
        Ok(())
    })?;
    tracing::Span::current().record("campaigns.changed", all.len());
    Ok(all)
}

/// The campaigns in `scope` whose stored reasons differ from what the rule says at `now`; writes
/// nothing.
pub fn evaluate(
    conn: &mut DbConnection,
    scope: &ReconcileScope,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Change>> {
    let mut all = Vec::new();
    for_each_chunk(conn, scope, |conn, rows| {
        all.extend(evaluate_rows(conn, rows, scope, now)?);
        Ok(())
    })?;
    Ok(all)
}

/// Calls `f` with the campaigns of `scope`: a selection in id-ordered chunks (changing a chunk's
/// reasons cannot move rows across the cursor, which only looks at higher ids), lists at once.
fn for_each_chunk(
    conn: &mut DbConnection,
    scope: &ReconcileScope,
    mut f: impl FnMut(&mut DbConnection, Vec<RuleColumns>) -> QueryResult<()>,
) -> QueryResult<()> {
    let Some(selection) = scope.select else {
        let rows = load_rows(conn, scope)?;
        return if rows.is_empty() {
            Ok(())
        } else {
            f(conn, rows)
        };
    };
    let mut after = 0i64;
    loop {
        let rows = load_selected(conn, selection, after)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.id;
        let full = rows.len() as i64 == SELECTION_CHUNK;
        f(conn, rows)?;
        if !full {
            return Ok(());
        }
    }
}

/// Evaluates `rows` of `scope` (picked by its selection, or listed), those of its locked brands.
fn evaluate_rows(
    conn: &mut DbConnection,
    mut rows: Vec<RuleColumns>,
    scope: &ReconcileScope,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Change>> {
    let selection = scope.select;
    if let Some(locked) = &scope.locked {
        rows.retain(|r| locked.binary_search(&r.brand_id).is_ok());
    }
    let mut brand_ids: Vec<i64> = rows.iter().map(|r| r.brand_id).collect();
    brand_ids.sort_unstable();
    brand_ids.dedup();
    let brands = brand_facts(conn, &brand_ids)?;
    let mut periods = PeriodsAt::new(now);
    for facts in brands.values() {
        periods.keys(facts.tz);
    }
    let period_list = periods.all();
    // A selection's chunk comes in id order: its campaigns' totals are read as one primary-key
    // range (no list to bind, whatever the chunk size). Listed campaigns (the spend path, API
    // edits) are read by id: their ids can be far apart, and a range between them would read the
    // totals of every campaign in between. The brands' by id.
    let brand_spend = if brand_ids.len() > CHUNK {
        brand_totals(conn, None, &period_list)?
    } else {
        brand_totals(conn, Some(&brand_ids), &period_list)?
    };
    let campaign_spend = match selection {
        Some(selection) => {
            let (first, last) = (
                rows.first().map_or(0, |r| r.id),
                rows.last().map_or(0, |r| r.id),
            );
            campaign_totals_in_range(conn, first, last, &period_list, selection)?
        }
        None => {
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            campaign_totals(conn, &ids, &period_list)?
        }
    };

    // The lifetime (not a stored period) only for the campaigns with a lifetime cap: the rule
    // reads it for nothing else.
    let mut campaign_spend = campaign_spend;
    let capped: Vec<i64> = rows
        .iter()
        .filter(|r| r.lifetime_cap.is_some())
        .map(|r| r.id)
        .collect();
    for (campaign, amount) in super::lifetime::read(conn, &capped)? {
        campaign_spend.insert(campaign, LIFETIME.to_owned(), amount);
    }

    // A campaign whose brand is missing here lost it to a delete committed between the two reads
    // (only possible for a brand the caller did not lock): the delete took the campaign too, and
    // there is nothing to judge.
    let subjects = rows
        .iter()
        .filter_map(|r| Some(r.subject(*brands.get(&r.brand_id)?)));
    Ok(judge(subjects, &brand_spend, &campaign_spend, &mut periods))
}

/// Campaigns per chunk of a selection: a few MiB of rows, few round trips at a million.
const SELECTION_CHUNK: i64 = 50_000;

/// The next chunk of a selection after campaign id `after`.
fn load_selected(
    conn: &mut DbConnection,
    selection: Selection,
    after: i64,
) -> QueryResult<Vec<RuleColumns>> {
    campaigns::table
        .select(RuleColumns::as_select())
        .filter(sql::<Bool>(&selection.condition()))
        .filter(campaigns::id.gt(after))
        .order(campaigns::id)
        .limit(SELECTION_CHUNK)
        .load(conn)
}

fn load_rows(conn: &mut DbConnection, scope: &ReconcileScope) -> QueryResult<Vec<RuleColumns>> {
    let select = RuleColumns::as_select();
    let mut rows = Vec::new();
    for chunk in scope.brands.chunks(CHUNK) {
        rows.extend(
            campaigns::table
                .select(select)
                .filter(campaigns::brand_id.eq_any(chunk))
                .load::<RuleColumns>(conn)?,
        );
    }
    let brand_set: std::collections::HashSet<i64> = scope.brands.iter().copied().collect();
    for chunk in scope.campaigns.chunks(CHUNK) {
        rows.extend(
            campaigns::table
                .select(select)
                .filter(campaigns::id.eq_any(chunk))
                .load::<RuleColumns>(conn)?
                .into_iter()
                .filter(|r| !brand_set.contains(&r.brand_id)),
        );
    }
    rows.sort_by_key(|r| r.id);
    rows.dedup_by_key(|r| r.id);
    Ok(rows)
}

/// Above this many history rows, PostgreSQL gets them by COPY rather than INSERT. A COPY costs a
/// round trip more than an INSERT (the server must answer `COPY … FROM STDIN` before the data),
/// so the spend path's few rows stay on INSERT; the sweeps' thousands go by COPY.
const COPY_FROM_ROWS: usize = 100;

/// Stores new pause reasons (one UPDATE per distinct reason set, each a new state version), the
/// history rows, and the events of campaigns that went from active to paused or back.
pub(crate) fn apply_changes(
    conn: &mut DbConnection,
    changes: &[Change],
    now: DateTime<Utc>,
    cause: Cause,
) -> QueryResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let at = naive(now);
    let mut by_reasons: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for c in changes {
        tracing::debug!(
            campaign.id = c.campaign_id,
            brand.id = c.brand_id,
            campaign.reasons.from = %c.from,
            campaign.reasons.to = %c.to,
            reconcile.cause = cause.as_str(),
            "campaign state changes"
        );
        by_reasons
            .entry(c.to.bits())
            .or_default()
            .push(c.campaign_id);
    }
    for (bits, ids) in &by_reasons {
        for chunk in ids.chunks(CHUNK) {
            diesel::update(campaigns::table.filter(campaigns::id.eq_any(chunk)))
                .set((
                    campaigns::pause_reasons.eq(bits),
                    campaigns::state_version.eq(campaigns::state_version + 1),
                    campaigns::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
    }
    for chunk in changes.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|c| {
                (
                    campaign_status_history::campaign_id.eq(c.campaign_id),
                    campaign_status_history::changed_at.eq(at),
                    campaign_status_history::is_active.eq(c.to.is_empty()),
                    campaign_status_history::pause_reasons.eq(c.to.bits()),
                    campaign_status_history::cause.eq(cause.as_str()),
                )
            })
            .collect();
        match conn {
            // COPY streams the rows in PostgreSQL's binary format: no statement to parse and plan
            // with 25,000 parameters (a reset writes 100,000 history rows at 1M campaigns).
            DbConnection::Postgresql(c) if rows.len() > COPY_FROM_ROWS => {
                diesel::copy_from(campaign_status_history::table)
                    .from_insertable(&rows)
                    .execute(c)?;
            }
            _ => {
                crate::per_backend!(conn, c => diesel::insert_into(campaign_status_history::table).values(&rows).execute(c))?;
            }
        }
    }
    super::events::of_state_changes(conn, changes, cause, now)?;
    Ok(())
}
