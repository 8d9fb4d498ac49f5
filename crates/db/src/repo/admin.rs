//! Queries behind the admin panel's lists: search, filters, sorting and numbered pages.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::brands::BrandRow;
use super::enforce::{self, Cause, ReconcileScope};
use super::{campaigns, naive};
use crate::DbConnection;
use crate::error::DomainResult;
use crate::schema::{brands, campaigns as campaigns_t, spend_logs};
use crate::write_transaction;
use adbudget_core::access::{Author, Brands};
use adbudget_core::audit::{FieldChange, NewEntry};
use adbudget_core::money::Money;
use adbudget_core::rule::PauseReason;
use adbudget_core::views::{Brand, Campaign, SpendLog};

/// A numbered page of a list, with the total.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl<T> Listing<T> {
    pub fn pages(&self) -> i64 {
        ((self.total + self.per_page - 1) / self.per_page).max(1)
    }
}

pub const PER_PAGE: i64 = 25;
/// The highest page number asked for (a larger one, or a negative one, reads as this or page 1):
/// keeps the offset far from overflowing whatever the query string says.
pub const MAX_PAGE: i64 = 1_000_000;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// A case-insensitive "contains" pattern, compared against `lower(column)` (PostgreSQL's LIKE is
/// case-sensitive, SQLite's is not).
fn like(q: &str) -> String {
    let q = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{q}%")
}

/// Brands whose name contains `q`, sorted by `sort` (`name`, `-name`, `id`, `-id`, `daily_budget`,
/// `-daily_budget`, `monthly_budget`, `-monthly_budget`; anything else is `name`).
pub fn brands(
    conn: &mut DbConnection,
    q: &str,
    sort: &str,
    page: i64,
    visible: &Brands,
    now: DateTime<Utc>,
) -> DomainResult<Listing<Brand>> {
    let page = page.clamp(1, MAX_PAGE);
    let mut count = brands::table.select(brands::id).into_boxed();
    let mut rows = brands::table.select(BrandRow::as_select()).into_boxed();
    if let Some(ids) = visible.ids() {
        count = count.filter(brands::id.eq_any(ids.to_vec()));
        rows = rows.filter(brands::id.eq_any(ids.to_vec()));
    }
    if !q.trim().is_empty() {
        count = count.filter(lower(brands::name).like(like(q.trim())).escape('\\'));
        rows = rows.filter(lower(brands::name).like(like(q.trim())).escape('\\'));
    }
    rows = match sort {
        "-name" => rows.order(brands::name.desc()),
        "id" => rows.order(brands::id.asc()),
        "-id" => rows.order(brands::id.desc()),
        "daily_budget" => rows.order((brands::daily_budget.asc(), brands::id)),
        "-daily_budget" => rows.order((brands::daily_budget.desc(), brands::id)),
        "monthly_budget" => rows.order((brands::monthly_budget.asc(), brands::id)),
        "-monthly_budget" => rows.order((brands::monthly_budget.desc(), brands::id)),
        _ => rows.order(brands::name.asc()),
    };
    let total: i64 = count.count().get_result(conn)?;
    let rows: Vec<BrandRow> = rows
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
        .load(conn)?;
    // One query for the page's spend, not one per brand.
    let items = super::brands::to_views(conn, rows, now)?;
    Ok(Listing {
        items,
        total,
        page,
        per_page: PER_PAGE,
    })
}

/// Filters of the admin's campaign list.
#[derive(Debug, Clone, Default)]
pub struct CampaignQuery {
    pub q: String,
    pub brand_id: Option<i64>,
    pub active: Option<bool>,
    pub reason: Option<PauseReason>,
    /// `name`, `-name`, `id`, `-id`, `brand`, `-brand`.
    pub sort: String,
    pub page: i64,
    /// The brands the user sees.
    pub visible: Brands,
}

/// Campaigns with their brand's name.
pub fn campaigns(
    conn: &mut DbConnection,
    query: &CampaignQuery,
    now: DateTime<Utc>,
) -> DomainResult<Listing<(Campaign, String)>> {
    let page = query.page.clamp(1, MAX_PAGE);
    let build = || {
        let mut q = campaigns_t::table.inner_join(brands::table).into_boxed();
        if !query.q.trim().is_empty() {
            q = q.filter(
                lower(campaigns_t::name)
                    .like(like(query.q.trim()))
                    .escape('\\'),
            );
        }
        if let Some(b) = query.brand_id {
            q = q.filter(campaigns_t::brand_id.eq(b));
        }
        if let Some(ids) = query.visible.ids() {
            q = q.filter(campaigns_t::brand_id.eq_any(ids.to_vec()));
        }
        match query.active {
            Some(true) => q = q.filter(campaigns_t::pause_reasons.eq(0)),
            Some(false) => q = q.filter(campaigns_t::pause_reasons.ne(0)),
            None => {}
        }
        if let Some(reason) = query.reason {
            let masks: Vec<i32> = adbudget_core::rule::PauseReasons::MASKS
                .filter(|m| adbudget_core::rule::PauseReasons::from_bits(*m).contains(reason))
                .collect();
            q = q.filter(campaigns_t::pause_reasons.eq_any(masks));
        }
        q
    };
    let total: i64 = build().select(diesel::dsl::count_star()).first(conn)?;
    let ordered = match query.sort.as_str() {
        "-name" => build().order((campaigns_t::name.desc(), campaigns_t::id)),
        "id" => build().order(campaigns_t::id.asc()),
        "-id" => build().order(campaigns_t::id.desc()),
        "brand" => build().order((brands::name.asc(), campaigns_t::name)),
        "-brand" => build().order((brands::name.desc(), campaigns_t::name)),
        _ => build().order((campaigns_t::name.asc(), campaigns_t::id)),
    };
    let rows: Vec<(i64, String)> = ordered
        .select((campaigns_t::id, brands::name))
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let views = campaigns::views(conn, &ids, now)?;
    let items = rows
        .into_iter()
        .filter_map(|(id, brand)| {
            views
                .iter()
                .find(|c| c.id == id)
                .cloned()
                .map(|c| (c, brand))
        })
        .collect();
    Ok(Listing {
        items,
        total,
        page,
        per_page: PER_PAGE,
    })
}

/// Filters of the admin's spend log list.
#[derive(Debug, Clone, Default)]
pub struct SpendQuery {
    pub brand_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub page: i64,
    /// The brands the user sees.
    pub visible: Brands,
}

/// A spend log with the names of its campaign and brand.
#[derive(Debug, Clone)]
pub struct SpendEntry {
    pub log: SpendLog,
    pub campaign: String,
    pub brand: String,
}

/// Spend logs, newest first, and the sum of the whole selection.
pub fn spend(
    conn: &mut DbConnection,
    query: &SpendQuery,
) -> DomainResult<(Listing<SpendEntry>, Money)> {
    let page = query.page.clamp(1, MAX_PAGE);
    let build = || {
        let mut q = spend_logs::table
            .inner_join(campaigns_t::table.on(campaigns_t::id.eq(spend_logs::campaign_id)))
            .inner_join(brands::table.on(brands::id.eq(campaigns_t::brand_id)))
            .into_boxed();
        if let Some(b) = query.brand_id {
            q = q.filter(campaigns_t::brand_id.eq(b));
        }
        if let Some(ids) = query.visible.ids() {
            q = q.filter(campaigns_t::brand_id.eq_any(ids.to_vec()));
        }
        if let Some(c) = query.campaign_id {
            q = q.filter(spend_logs::campaign_id.eq(c));
        }
        if let Some(from) = query.from {
            q = q.filter(spend_logs::occurred_at.ge(naive(from)));
        }
        if let Some(to) = query.to {
            q = q.filter(spend_logs::occurred_at.lt(naive(to)));
        }
        q
    };
    let (total, sum): (i64, Option<i64>) = build()
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "CAST(SUM(spend_logs.amount) AS BIGINT)",
            ),
        ))
        .first(conn)?;
    let rows: Vec<(super::spend::ListedRow, String, String)> = build()
        .select((
            super::spend::ListedRow::as_select(),
            campaigns_t::name,
            brands::name,
        ))
        .order(spend_logs::id.desc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(r, _, _)| r.id()).collect();
    let reversals = super::spend::reversals_of(conn, &ids)?;
    let items = rows
        .into_iter()
        .map(|(row, campaign, brand)| {
            let by = reversals.get(&row.id()).copied();
            SpendEntry {
                log: row.into_view(by),
                campaign,
                brand,
            }
        })
        .collect();
    Ok((
        Listing {
            items,
            total,
            page,
            per_page: PER_PAGE,
        },
        Money::from_micros(sum.unwrap_or(0)),
    ))
}

/// Every brand's id and name, for filter menus.
pub fn brand_names(conn: &mut DbConnection, visible: &Brands) -> DomainResult<Vec<(i64, String)>> {
    let mut q = brands::table
        .select((brands::id, brands::name))
        .order(brands::name)
        .into_boxed();
    if let Some(ids) = visible.ids() {
        q = q.filter(brands::id.eq_any(ids.to_vec()));
    }
    Ok(q.load(conn)?)
}

/// Pauses or resumes several campaigns by hand in one transaction: their brands locked, one
/// UPDATE, one reconcile (one history row per campaign whose state changes). Returns how many of
/// `ids` exist and are `visible`. Each campaign whose manual pause changes gets its audit entry.
pub fn bulk_manual(
    conn: &mut DbConnection,
    ids: &[i64],
    paused: bool,
    visible: &Brands,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<usize> {
    write_transaction(conn, |conn| {
        // A campaign never changes brand: its brand is known before the locks; its manual
        // pause is read after them, so that the audit entries say what this change changed.
        let owners: Vec<(i64, i64)> = campaigns_t::table
            .select((campaigns_t::id, campaigns_t::brand_id))
            .filter(campaigns_t::id.eq_any(ids))
            .load::<(i64, i64)>(conn)?
            .into_iter()
            .filter(|(_, brand)| visible.allows(*brand))
            .collect();
        let brand_ids: Vec<i64> = owners.iter().map(|(_, b)| *b).collect();
        enforce::lock_brands(conn, &brand_ids)?;
        let found: Vec<i64> = owners.iter().map(|(c, _)| *c).collect();
        let before: Vec<(i64, i64, bool)> = campaigns_t::table
            .select((
                campaigns_t::id,
                campaigns_t::brand_id,
                campaigns_t::manually_paused,
            ))
            .filter(campaigns_t::id.eq_any(&found))
            .load(conn)?;
        for (id, brand, was) in before {
            if was == paused {
                continue;
            }
            let entry = NewEntry {
                object_type: "campaign",
                object_id: id,
                brand_id: Some(brand),
                action: if paused { "pause" } else { "resume" },
                changes: [(
                    "manually_paused".to_owned(),
                    FieldChange {
                        old: serde_json::json!(was),
                        new: serde_json::json!(paused),
                    },
                )]
                .into_iter()
                .collect(),
            };
            super::audit::record(conn, author, entry, now)?;
        }
        diesel::update(campaigns_t::table.filter(campaigns_t::id.eq_any(&found)))
            .set((
                campaigns_t::manually_paused.eq(paused),
                campaigns_t::updated_at.eq(naive(now)),
            ))
            .execute(conn)?;
        let cause = if paused {
            Cause::ManualPause
        } else {
            Cause::ManualResume
        };
        enforce::reconcile(conn, &ReconcileScope::campaigns(found.clone()), now, cause)?;
        Ok(found.len())
    })
}
