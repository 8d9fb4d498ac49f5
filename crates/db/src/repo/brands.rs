use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use adbudget_core::rule::{PeriodsAt, parse_tz};

use super::enforce::{self, Cause, ReconcileScope};
use super::{PageRequest, into_page, naive, unique_violation, utc};
use crate::error::{DomainError, DomainResult};
use crate::schema::brands;
use crate::{DbConnection, write_transaction};
use adbudget_core::access::{Author, Brands};
use adbudget_core::audit::{NewEntry, diff_of};
use adbudget_core::events::AlertThresholds;
use adbudget_core::forms::{BrandChanges, NewBrand};
use adbudget_core::money::Money;
use adbudget_core::views::{Brand, Page};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = brands)]
pub(crate) struct BrandRow {
    pub id: i64,
    pub name: String,
    pub daily_budget: i64,
    pub monthly_budget: i64,
    pub timezone: String,
    pub alert_thresholds: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

const NAME_TAKEN: &str = "a brand with this name already exists";

/// The fields of a brand the audit trail follows.
const AUDITED: [&str; 5] = [
    "name",
    "daily_budget",
    "monthly_budget",
    "timezone",
    "alert_thresholds",
];

/// Records the change of a brand from `old` to `new` (as the API shows it), if any.
fn audit(
    conn: &mut DbConnection,
    author: &Author,
    action: &'static str,
    old: Option<&Brand>,
    new: Option<&Brand>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let Some(id) = old.or(new).map(|b| b.id) else {
        return Ok(());
    };
    let changes = diff_of(old, new, &AUDITED);
    let entry = NewEntry {
        object_type: "brand",
        object_id: id,
        brand_id: Some(id),
        action,
        changes,
    };
    super::audit::record(conn, author, entry, now)
}

/// Brand rows with the spend of their current day and month.
pub(crate) fn to_views(
    conn: &mut DbConnection,
    rows: Vec<BrandRow>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Brand>> {
    let mut periods = PeriodsAt::new(now);
    let tzs: Vec<_> = rows.iter().map(|r| parse_tz(&r.timezone)).collect();
    for tz in &tzs {
        periods.keys(*tz);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let totals = enforce::brand_totals(conn, Some(&ids), &periods.all())?;
    Ok(rows
        .into_iter()
        .zip(tzs)
        .map(|(r, tz)| {
            let keys = periods.keys(tz);
            Brand {
                daily_spend: totals.get(r.id, &keys.day),
                monthly_spend: totals.get(r.id, &keys.month),
                id: r.id,
                name: r.name,
                daily_budget: Money::from_micros(r.daily_budget),
                monthly_budget: Money::from_micros(r.monthly_budget),
                timezone: r.timezone,
                alert_thresholds: AlertThresholds::from_stored(&r.alert_thresholds),
                created_at: utc(r.created_at),
                updated_at: utc(r.updated_at),
            }
        })
        .collect())
}

pub fn get(conn: &mut DbConnection, id: i64, now: DateTime<Utc>) -> DomainResult<Brand> {
    let row = brands::table
        .select(BrandRow::as_select())
        .find(id)
        .first(conn)
        .optional()?
        .ok_or(DomainError::not_found("brand"))?;
    Ok(to_views(conn, vec![row], now)?.remove(0))
}

/// The brands `visible` lets the caller see.
pub fn list(
    conn: &mut DbConnection,
    visible: &Brands,
    page: PageRequest,
    now: DateTime<Utc>,
) -> DomainResult<Page<Brand>> {
    let mut q = brands::table
        .select(BrandRow::as_select())
        .order(brands::id)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(ids) = visible.ids() {
        q = q.filter(brands::id.eq_any(ids.to_vec()));
    }
    if let Some(cursor) = page.cursor {
        q = q.filter(brands::id.gt(cursor));
    }
    let rows = q.load(conn)?;
    let views = to_views(conn, rows, now)?;
    Ok(into_page(views, page.limit, |b| b.id))
}

pub fn create(
    conn: &mut DbConnection,
    new: &NewBrand,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Brand> {
    write_transaction(conn, |conn| {
        let at = naive(now);
        let id: i64 = diesel::insert_into(brands::table)
            .values((
                brands::name.eq(&new.name),
                brands::daily_budget.eq(new.daily_budget.micros()),
                brands::monthly_budget.eq(new.monthly_budget.micros()),
                brands::timezone.eq(new.timezone.name()),
                brands::alert_thresholds.eq(new.alert_thresholds.to_stored()),
                // No spend before now: its lifetime totals start folded (repo::lifetime).
                brands::carried_before
                    .eq(adbudget_core::period::PeriodKeys::at(now, new.timezone).month),
                brands::created_at.eq(at),
                brands::updated_at.eq(at),
            ))
            .returning(brands::id)
            .get_result(conn)
            .map_err(|e| unique_violation(e, "name", NAME_TAKEN))?;
        let brand = get(conn, id, now)?;
        audit(conn, author, "create", None, Some(&brand), now)?;
        Ok(brand)
    })
}

/// Applies the changes and re-applies the rule to every campaign of the brand.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    changes: &BrandChanges,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<Brand> {
    write_transaction(conn, |conn| {
        enforce::lock_brands(conn, &[id])?;
        let current = brands::table
            .select(BrandRow::as_select())
            .find(id)
            .first(conn)
            .optional()?
            .ok_or(DomainError::not_found("brand"))?;
        let before = to_views(conn, vec![current.clone()], now)?.remove(0);
        let tz_changed = changes
            .timezone
            .is_some_and(|tz| tz.name() != current.timezone);
        diesel::update(brands::table.find(id))
            .set((
                brands::name.eq(changes.name.as_deref().unwrap_or(&current.name)),
                brands::daily_budget.eq(changes
                    .daily_budget
                    .map_or(current.daily_budget, Money::micros)),
                brands::monthly_budget.eq(changes
                    .monthly_budget
                    .map_or(current.monthly_budget, Money::micros)),
                brands::timezone.eq(changes
                    .timezone
                    .map_or(current.timezone.as_str(), |tz| tz.name())),
                brands::alert_thresholds.eq(changes
                    .alert_thresholds
                    .as_ref()
                    .map_or(current.alert_thresholds.clone(), AlertThresholds::to_stored)),
                brands::updated_at.eq(naive(now)),
            ))
            .execute(conn)
            .map_err(|e| unique_violation(e, "name", NAME_TAKEN))?;
        if let (true, Some(tz)) = (tz_changed, changes.timezone) {
            super::spend::rebuild_brand_totals(conn, id, tz)?;
        }
        enforce::reconcile(conn, &ReconcileScope::brand(id), now, Cause::BrandUpdated)?;
        let after = get(conn, id, now)?;
        audit(conn, author, "update", Some(&before), Some(&after), now)?;
        Ok(after)
    })
}

pub fn delete(
    conn: &mut DbConnection,
    id: i64,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<()> {
    write_transaction(conn, |conn| {
        let before = get(conn, id, now)?;
        // Locked first, as the spend path locks it: no spend of the brand commits between
        // forgetting its event ids and history and the delete.
        super::enforce::lock_brands(conn, &[id])?;
        super::campaigns::forget_rows(conn, super::campaigns::RowsOf::Brand(id))?;
        diesel::delete(brands::table.find(id)).execute(conn)?;
        audit(conn, author, "delete", Some(&before), None, now)
    })
}

/// Finds a brand by exact name (for the CLI and the demo seed).
pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<i64>> {
    brands::table
        .select(brands::id)
        .filter(brands::name.eq(name))
        .first(conn)
        .optional()
}
