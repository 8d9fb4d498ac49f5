use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use adbudget_core::access::{Author, Brands};
use adbudget_core::audit::{NewEntry, diff_of};
use adbudget_core::dayparting::Schedule;
use adbudget_core::forms::{CampaignChanges, Flight, NewCampaign};
use adbudget_core::money::Money;
use adbudget_core::rule::{PauseReasons, PeriodsAt, parse_tz};
use adbudget_core::views::{Campaign, Page, StatusChange};

use super::enforce::{self, Cause, ReconcileScope, RuleColumns};
use super::{CHUNK, PageRequest, into_page, naive, unique_violation, utc};
use crate::error::{DomainError, DomainResult};
use crate::schema::{brands, campaign_status_history, campaigns};
use crate::{DbConnection, write_transaction};

#[derive(Queryable, Selectable, Debug, Clone, serde::Deserialize)]
#[diesel(table_name = campaigns)]
pub(crate) struct CampaignRow {
    /// What the rule reads.
    #[diesel(embed)]
    #[serde(flatten)]
    pub rule: RuleColumns,
    pub name: String,
    pub state_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Its spend in the months before its brand's mark (`repo::lifetime`): part of its lifetime.
    pub lifetime_carried: i64,
}

impl CampaignRow {
    /// The campaign as shown, with the spend of its current day and month and of all time.
    pub(crate) fn into_view(
        self,
        daily_spend: Money,
        monthly_spend: Money,
        lifetime_spend: Money,
    ) -> Campaign {
        let CampaignRow {
            rule,
            name,
            state_version,
            created_at,
            updated_at,
            lifetime_carried: _,
        } = self;
        let reasons = PauseReasons::from_bits(rule.pause_reasons);
        Campaign {
            daily_spend,
            monthly_spend,
            lifetime_spend,
            lifetime_cap: rule.lifetime_cap.map(Money::from_micros),
            flight_start: rule.flight_start,
            flight_end: rule.flight_end,
            id: rule.id,
            brand_id: rule.brand_id,
            name,
            is_active: reasons.is_empty(),
            pause_reasons: reasons,
            manually_paused: rule.manually_paused,
            daily_cap: rule.daily_cap.map(Money::from_micros),
            monthly_cap: rule.monthly_cap.map(Money::from_micros),
            dayparting: rule
                .dayparting
                .as_deref()
                .and_then(|s| Schedule::from_stored(s).ok()),
            state_version,
            created_at: utc(created_at),
            updated_at: utc(updated_at),
        }
    }
}

const NAME_TAKEN: &str = "this brand already has a campaign with this name";

/// Filters of the campaign list.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub brand_id: Option<i64>,
    pub active: Option<bool>,
    /// The brands the caller sees.
    pub visible: Brands,
}

/// The fields of a campaign the audit trail follows.
const AUDITED: [&str; 5] = [
    "name",
    "daily_cap",
    "monthly_cap",
    "manually_paused",
    "dayparting",
];

/// Records the change of a campaign from `old` to `new` (as the API shows it), if any.
fn audit(
    conn: &mut DbConnection,
    author: &Author,
    action: &'static str,
    old: Option<&Campaign>,
    new: Option<&Campaign>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let Some((id, brand_id)) = old.or(new).map(|c| (c.id, c.brand_id)) else {
        return Ok(());
    };
    let changes = diff_of(old, new, &AUDITED);
    let entry = NewEntry {
        object_type: "campaign",
        object_id: id,
        brand_id: Some(brand_id),
        action,
        changes,
    };
    super::audit::record(conn, author, entry, now)
}

/// Campaigns as shown: each with its brand's timezone and lifetime mark (`repo::lifetime`).
fn to_views(
    conn: &mut DbConnection,
    rows: Vec<(CampaignRow, String, String)>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Campaign>> {
    let mut periods = PeriodsAt::new(now);
    // The current day and month of each, and the months that make up its lifetime with its
    // carried total (usually only the current one): every total read by key, in one statement.
    // A brand never folded has its campaigns' lifetimes read by range.
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut unfolded: Vec<i64> = Vec::new();
    let parts: Vec<(chrono_tz::Tz, Option<Vec<String>>)> = rows
        .iter()
        .map(|(r, tz, mark)| {
            let tz = parse_tz(tz);
            let current = periods.keys(tz);
            keys.extend([current.day.clone(), current.month.clone()]);
            let months = super::lifetime::months(mark, tz, now);
            match &months {
                Some(months) => keys.extend(months.iter().cloned()),
                None => unfolded.push(r.rule.id),
            }
            (tz, months)
        })
        .collect();
    let ids: Vec<i64> = rows.iter().map(|(r, ..)| r.rule.id).collect();
    let keys: Vec<String> = keys.into_iter().collect();
    let totals = enforce::campaign_totals(conn, &ids, &keys)?;
    let unfolded = super::lifetime::read(conn, &unfolded)?;
    Ok(rows
        .into_iter()
        .zip(parts)
        .map(|((r, ..), (tz, months))| {
            let id = r.rule.id;
            let lifetime = match months {
                Some(months) => months
                    .iter()
                    .map(|m| totals.get(id, m).micros())
                    .fold(r.lifetime_carried, i64::saturating_add),
                None => unfolded.get(&id).copied().unwrap_or(0),
            };
            let keys = periods.keys(tz);
            let (daily, monthly) = (totals.get(id, &keys.day), totals.get(id, &keys.month));
            r.into_view(daily, monthly, Money::from_micros(lifetime))
        })
        .collect())
}

/// Campaigns as shown, in id order.
pub fn views(
    conn: &mut DbConnection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Campaign>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        rows.extend(
            campaigns::table
                .inner_join(brands::table)
                .select((
                    CampaignRow::as_select(),
                    brands::timezone,
                    brands::carried_before,
                ))
                .filter(campaigns::id.eq_any(chunk))
                .order(campaigns::id)
                .load::<(CampaignRow, String, String)>(conn)?,
        );
    }
    to_views(conn, rows, now)
}

/// The rows of campaigns `ids` and of every campaign of `brand_ids`, in id order, once each.
pub(crate) fn rows(
    conn: &mut DbConnection,
    ids: &[i64],
    brand_ids: &[i64],
) -> QueryResult<Vec<CampaignRow>> {
    let mut rows = Vec::new();
    for chunk in brand_ids.chunks(CHUNK) {
        rows.extend(
            campaigns::table
                .select(CampaignRow::as_select())
                .filter(campaigns::brand_id.eq_any(chunk))
                .load::<CampaignRow>(conn)?,
        );
    }
    for chunk in ids.chunks(CHUNK) {
        rows.extend(
            campaigns::table
                .select(CampaignRow::as_select())
                .filter(campaigns::id.eq_any(chunk))
                .load::<CampaignRow>(conn)?
                .into_iter()
                .filter(|r| !brand_ids.contains(&r.rule.brand_id)),
        );
    }
    rows.sort_by_key(|r| r.rule.id);
    rows.dedup_by_key(|r| r.rule.id);
    Ok(rows)
}

pub fn get(conn: &mut DbConnection, id: i64, now: DateTime<Utc>) -> DomainResult<Campaign> {
    views(conn, &[id], now)?
        .pop()
        .ok_or(DomainError::not_found("campaign"))
}

pub fn ensure_exists(conn: &mut DbConnection, id: i64) -> DomainResult<i64> {
    campaigns::table
        .select(campaigns::brand_id)
        .find(id)
        .first(conn)
        .optional()?
        .ok_or(DomainError::not_found("campaign"))
}

pub fn list(
    conn: &mut DbConnection,
    filter: &CampaignFilter,
    page: PageRequest,
    now: DateTime<Utc>,
) -> DomainResult<Page<Campaign>> {
    let mut q = campaigns::table
        .inner_join(brands::table)
        .select((
            CampaignRow::as_select(),
            brands::timezone,
            brands::carried_before,
        ))
        .order(campaigns::id)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(brand_id) = filter.brand_id {
        q = q.filter(campaigns::brand_id.eq(brand_id));
    }
    if let Some(ids) = filter.visible.ids() {
        q = q.filter(campaigns::brand_id.eq_any(ids.to_vec()));
    }
    match filter.active {
        Some(true) => q = q.filter(campaigns::pause_reasons.eq(0)),
        Some(false) => q = q.filter(campaigns::pause_reasons.ne(0)),
        None => {}
    }
    if let Some(cursor) = page.cursor {
        q = q.filter(campaigns::id.gt(cursor));
    }
    let rows = q.load(conn)?;
    let views = to_views(conn, rows, now)?;
    Ok(into_page(views, page.limit, |c| c.id))
}

pub fn create(
    conn: &mut DbConnection,
    new: &NewCampaign,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Campaign> {
    write_transaction(conn, |conn| {
        enforce::lock_brands(conn, &[new.brand_id])?;
        let brand_exists = brands::table
            .select(brands::id)
            .find(new.brand_id)
            .first::<i64>(conn)
            .optional()?
            .is_some();
        if !brand_exists {
            return Err(DomainError::not_found_field("brand", "brand_id"));
        }
        let at = naive(now);
        let id: i64 = diesel::insert_into(campaigns::table)
            .values((
                campaigns::brand_id.eq(new.brand_id),
                campaigns::name.eq(&new.name),
                campaigns::daily_cap.eq(new.daily_cap.map(Money::micros)),
                campaigns::monthly_cap.eq(new.monthly_cap.map(Money::micros)),
                campaigns::manually_paused.eq(new.manually_paused),
                campaigns::dayparting.eq(new.dayparting.as_ref().map(Schedule::to_stored)),
                campaigns::lifetime_cap.eq(new.lifetime_cap.map(Money::micros)),
                campaigns::flight_start.eq(new.flight.start),
                campaigns::flight_end.eq(new.flight.end),
                campaigns::pause_reasons.eq(0),
                campaigns::created_at.eq(at),
                campaigns::updated_at.eq(at),
            ))
            .returning(campaigns::id)
            .get_result(conn)
            .map_err(|e| unique_violation(e, "name", NAME_TAKEN))?;
        // A new campaign starts with the state the rule gives it (its brand may be over budget).
        enforce::reconcile(
            conn,
            &ReconcileScope::campaign(id),
            now,
            Cause::CampaignCreated,
        )?;
        let campaign = get(conn, id, now)?;
        audit(conn, author, "create", None, Some(&campaign), now)?;
        Ok(campaign)
    })
}

/// Applies `changes` and re-applies the rule; the cause recorded in the history is `cause`.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    changes: &CampaignChanges,
    now: DateTime<Utc>,
    cause: Cause,
    author: &Author,
) -> DomainResult<Campaign> {
    write_transaction(conn, |conn| {
        let brand_id = ensure_exists(conn, id)?;
        enforce::lock_brands(conn, &[brand_id])?;
        let before = get(conn, id, now)?;
        let current: CampaignRow = campaigns::table
            .select(CampaignRow::as_select())
            .find(id)
            .first(conn)?;
        let dayparting = match &changes.dayparting {
            None => current.rule.dayparting.clone(),
            Some(s) => s.as_ref().map(Schedule::to_stored),
        };
        // The flight after the change: its order is checked against the dates it keeps.
        let flight = Flight {
            start: changes.flight_start.unwrap_or(current.rule.flight_start),
            end: changes.flight_end.unwrap_or(current.rule.flight_end),
        }
        .validate()?;
        diesel::update(campaigns::table.find(id))
            .set((
                campaigns::name.eq(changes.name.as_deref().unwrap_or(&current.name)),
                campaigns::daily_cap.eq(changes
                    .daily_cap
                    .map_or(current.rule.daily_cap, |c| c.map(Money::micros))),
                campaigns::monthly_cap.eq(changes
                    .monthly_cap
                    .map_or(current.rule.monthly_cap, |c| c.map(Money::micros))),
                campaigns::manually_paused.eq(changes
                    .manually_paused
                    .unwrap_or(current.rule.manually_paused)),
                campaigns::dayparting.eq(dayparting),
                campaigns::lifetime_cap.eq(changes
                    .lifetime_cap
                    .map_or(current.rule.lifetime_cap, |c| c.map(Money::micros))),
                campaigns::flight_start.eq(flight.start),
                campaigns::flight_end.eq(flight.end),
                campaigns::updated_at.eq(naive(now)),
            ))
            .execute(conn)
            .map_err(|e| unique_violation(e, "name", NAME_TAKEN))?;
        enforce::reconcile(conn, &ReconcileScope::campaign(id), now, cause)?;
        let after = get(conn, id, now)?;
        let action = match cause {
            Cause::ManualPause => "pause",
            Cause::ManualResume => "resume",
            Cause::DaypartingUpdated => "set_dayparting",
            _ => "update",
        };
        audit(conn, author, action, Some(&before), Some(&after), now)?;
        Ok(after)
    })
}

pub fn set_manual_pause(
    conn: &mut DbConnection,
    id: i64,
    paused: bool,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Campaign> {
    let changes = CampaignChanges {
        manually_paused: Some(paused),
        ..CampaignChanges::default()
    };
    let cause = if paused {
        Cause::ManualPause
    } else {
        Cause::ManualResume
    };
    update(conn, id, &changes, now, cause, author)
}

pub fn set_dayparting(
    conn: &mut DbConnection,
    id: i64,
    schedule: Option<Schedule>,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Campaign> {
    let changes = CampaignChanges {
        dayparting: Some(schedule),
        ..CampaignChanges::default()
    };
    update(conn, id, &changes, now, Cause::DaypartingUpdated, author)
}

pub fn delete(
    conn: &mut DbConnection,
    id: i64,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        // The brand first, as every writer of a campaign's rows does (ARCHITECTURE, Concurrency):
        // a spend transaction holding it and upserting this campaign's totals would otherwise
        // meet the delete's cascade in the opposite order and deadlock.
        let brand = ensure_exists(conn, id)?;
        super::enforce::lock_brands(conn, &[brand])?;
        let before = get(conn, id, now)?;
        forget_rows(conn, RowsOf::Campaign(id))?;
        diesel::delete(campaigns::table.find(id)).execute(conn)?;
        audit(conn, author, "delete", Some(&before), None, now)
    })
}

/// Whose rows [`forget_rows`] removes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowsOf {
    Brand(i64),
    Campaign(i64),
}

/// Removes what deleting a brand or a campaign does not cascade to: its spend logs and their
/// event ids ([`super::spend::forget_logs`]; no foreign key on PostgreSQL since migration 000014)
/// and its status history (none since migration 000013: checking one was most of what a reset's
/// 100,000 history rows cost). Called with the brand locked, before the delete; every writer of
/// history holds that lock too, so no history row of a deleted campaign is written after. A
/// spend transaction inserts its logs before it takes the lock, but its totals' upserts (whose
/// foreign keys stay) then refuse the deleted campaign and take its logs back with it.
pub(crate) fn forget_rows(conn: &mut DbConnection, of: RowsOf) -> QueryResult<()> {
    super::spend::forget_logs(conn, of)?;
    let history = campaign_status_history::table;
    match of {
        RowsOf::Brand(id) => diesel::delete(
            history.filter(
                campaign_status_history::campaign_id.eq_any(
                    campaigns::table
                        .select(campaigns::id)
                        .filter(campaigns::brand_id.eq(id)),
                ),
            ),
        )
        .execute(conn)?,
        RowsOf::Campaign(id) => {
            diesel::delete(history.filter(campaign_status_history::campaign_id.eq(id)))
                .execute(conn)?
        }
    };
    Ok(())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = campaign_status_history)]
struct HistoryRow {
    id: i64,
    campaign_id: i64,
    changed_at: NaiveDateTime,
    is_active: bool,
    pause_reasons: i32,
    cause: String,
}

/// Status history, newest first.
pub fn history(
    conn: &mut DbConnection,
    id: i64,
    page: PageRequest,
) -> DomainResult<Page<StatusChange>> {
    ensure_exists(conn, id)?;
    let mut q = campaign_status_history::table
        .select(HistoryRow::as_select())
        .filter(campaign_status_history::campaign_id.eq(id))
        .order(campaign_status_history::id.desc())
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(cursor) = page.cursor {
        q = q.filter(campaign_status_history::id.lt(cursor));
    }
    let rows: Vec<StatusChange> = q
        .load::<HistoryRow>(conn)?
        .into_iter()
        .map(|r| StatusChange {
            id: r.id,
            campaign_id: r.campaign_id,
            changed_at: utc(r.changed_at),
            is_active: r.is_active,
            pause_reasons: PauseReasons::from_bits(r.pause_reasons),
            cause: r.cause,
        })
        .collect();
    Ok(into_page(rows, page.limit, |h| h.id))
}

/// Finds a campaign by brand and exact name (for the demo seed).
pub fn find_by_name(
    conn: &mut DbConnection,
    brand_id: i64,
    name: &str,
) -> QueryResult<Option<i64>> {
    campaigns::table
        .select(campaigns::id)
        .filter(
            campaigns::brand_id
                .eq(brand_id)
                .and(campaigns::name.eq(name)),
        )
        .first(conn)
        .optional()
}

/// How many campaigns hold each stored reason set (for the metrics): one grouped query.
pub fn count_by_reasons(conn: &mut DbConnection) -> QueryResult<Vec<(PauseReasons, i64)>> {
    count_by_reasons_in(conn, &Brands::All)
}

/// The same, over the campaigns of the `visible` brands.
pub fn count_by_reasons_in(
    conn: &mut DbConnection,
    visible: &Brands,
) -> QueryResult<Vec<(PauseReasons, i64)>> {
    let mut q = campaigns::table
        .group_by(campaigns::pause_reasons)
        .select((campaigns::pause_reasons, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(ids) = visible.ids() {
        q = q.filter(campaigns::brand_id.eq_any(ids.to_vec()));
    }
    let rows: Vec<(i32, i64)> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(bits, n)| (PauseReasons::from_bits(bits), n))
        .collect())
}

/// Sets the `adbudget_campaigns` and `adbudget_campaigns_paused` gauges from the database.
pub fn publish_state_gauges(conn: &mut DbConnection) -> QueryResult<()> {
    let counts = count_by_reasons(conn)?;
    let (mut active, mut paused) = (0i64, 0i64);
    let mut by_reason = std::collections::BTreeMap::new();
    for reason in adbudget_core::rule::PauseReason::ALL {
        by_reason.insert(reason.name(), 0i64);
    }
    for (reasons, n) in counts {
        if reasons.is_empty() {
            active += n;
        } else {
            paused += n;
        }
        for r in reasons.iter() {
            *by_reason.entry(r.name()).or_default() += n;
        }
    }
    metrics::gauge!("adbudget_campaigns", "state" => "active").set(active as f64);
    metrics::gauge!("adbudget_campaigns", "state" => "paused").set(paused as f64);
    for (reason, n) in by_reason {
        metrics::gauge!("adbudget_campaigns_paused", "reason" => reason).set(n as f64);
    }
    Ok(())
}
