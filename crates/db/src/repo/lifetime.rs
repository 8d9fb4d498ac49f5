//! A campaign's lifetime total (SPEC §3, §4 `campaign_lifetime_cap`): its carried total
//! (`campaigns.lifetime_carried`) plus its month rows from its brand's mark on
//! (`adbudget_core::period::CARRIED`, migration 000015).
//!
//! The spend path writes a campaign's day and month rows anyway; a row of its own for the
//! lifetime, upserted by every batch under the brand locks, cost 14 % of PostgreSQL's batch
//! ingestion (BENCHMARKS.md, issue #16), and even a read of such a row by key, 2.6 ms of a
//! batch of 1,000 under the locks. So the lifetime is kept in two parts: the months before the
//! brand's mark (`brands.carried_before`) in the campaign's row, which the spend path reads for
//! the rule anyway, changed on the spend path only by an event of such a month (a late one), and
//! the months from the mark on as their month rows. [`fold`] (the first step of `reset_daily` and
//! `reset_monthly`) adds the months that ended to the carried totals and moves the mark, under
//! the brand's lock, as the spend path writes under it: the two parts always sum to the
//! campaign's spend over all time, wherever the mark stands; a recent mark keeps the months to
//! add up to one or two.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::CHUNK;
use super::enforce;
use crate::error::DomainResult;
use crate::schema::{brands, campaigns};
use crate::{DbConnection, write_transaction};
use adbudget_core::money::MAX_MICROS;
use adbudget_core::period::{PeriodKeys, months_through};
use adbudget_core::rule::parse_tz;

/// A campaign's carried total and one of its month totals from the mark on (none: `NULL`).
#[derive(QueryableByName)]
struct Part {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    carried: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    amount: Option<i64>,
}

/// The lifetime totals of `campaign_ids` (those that exist): each campaign's carried total and
/// its month rows from its brand's mark on, in one statement (a fold committing in between could
/// not be half seen) — one range of the totals' primary key per campaign, whose day rows are
/// skipped by their length. For the views, the sweeps' lifetime caps and the brands never folded;
/// the spend path adds the carried totals of the rows it read to the month totals its upserts
/// returned (`spend::settle_lifetimes`).
pub(crate) fn read(
    conn: &mut DbConnection,
    campaign_ids: &[i64],
) -> QueryResult<HashMap<i64, i64>> {
    let mut lifetimes: HashMap<i64, i64> = HashMap::new();
    for chunk in campaign_ids.chunks(CHUNK) {
        // Integers only: written into the statement, no parameter limit to mind.
        let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT c.id AS id, c.lifetime_carried AS carried, s.amount AS amount \
             FROM campaigns AS c JOIN brands AS b ON b.id = c.brand_id \
             LEFT JOIN campaign_spend AS s ON s.campaign_id = c.id \
                 AND s.period >= b.carried_before AND s.period LIKE '____-__' \
             WHERE c.id IN ({})",
            ids.join(", ")
        );
        let parts: Vec<Part> = crate::per_backend!(conn, c => diesel::sql_query(&sql).load(c))?;
        for part in parts {
            let sum = lifetimes.entry(part.id).or_insert(part.carried);
            *sum = sum.saturating_add(part.amount.unwrap_or(0));
        }
    }
    Ok(lifetimes)
}

/// The month keys whose totals, with its carried total, make the lifetime of a campaign of a
/// brand with `mark` in `tz` at `now`: from the mark through the month an hour from now (an event
/// may be up to 5 minutes ahead of the clock that took it) — usually the current month alone.
/// `None` for a brand never folded (mark `''`): its campaigns' lifetimes are [`read`].
pub(crate) fn months(mark: &str, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Option<Vec<String>> {
    if mark.is_empty() {
        return None;
    }
    let latest = PeriodKeys::at(now + chrono::TimeDelta::hours(1), tz).month;
    Some(months_through(mark, &latest))
}

/// Adds `amount` (negative: takes it away) to a campaign's carried total: an event of a month
/// before its brand's mark, or its reversal. The caller holds the brand's lock and has checked
/// the lifetime against the money limit.
pub(crate) fn add_carried(
    conn: &mut DbConnection,
    campaign_id: i64,
    amount: i64,
) -> QueryResult<()> {
    diesel::update(campaigns::table.find(campaign_id))
        .set(campaigns::lifetime_carried.eq(campaigns::lifetime_carried + amount))
        .execute(conn)?;
    Ok(())
}

/// Brands folded per transaction (each a statement over its campaigns' totals of the months
/// folded, and an update): their spend waits while it runs.
const FOLD_CHUNK: usize = 25;

/// Brands the fold leaves alone: a budget, or a campaign's cap, stored before migration 000004's
/// limits (its constraints are `NOT VALID`; SQLite's triggers check every update) would refuse
/// the fold's updates. Their marks stay where they are; their lifetimes are exact all the same,
/// read over more months.
fn within_limits() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql(&format!(
        "brands.daily_budget <= {MAX_MICROS} AND brands.monthly_budget <= {MAX_MICROS} \
         AND NOT EXISTS (SELECT 1 FROM campaigns AS o WHERE o.brand_id = brands.id \
             AND (o.daily_cap > {MAX_MICROS} OR o.monthly_cap > {MAX_MICROS}))"
    ))
}

/// Adds, for every brand whose mark is before its current local month, its campaigns' month
/// totals from the mark up to that month to their carried totals, and moves the mark there:
/// what makes the resets keep the lifetime totals cheap to read (see the module's comment).
/// Each chunk of brands in a transaction of its own, locked in id order; the marks read again
/// under the locks. Returns the number of brands folded.
pub fn fold(conn: &mut DbConnection, now: DateTime<Utc>) -> DomainResult<usize> {
    let behind = |rows: Vec<(i64, String, String)>| -> Vec<(i64, String, String)> {
        rows.into_iter()
            .filter_map(|(id, tz, mark)| {
                let month = PeriodKeys::at(now, parse_tz(&tz)).month;
                (mark < month).then_some((id, mark, month))
            })
            .collect()
    };
    let all: Vec<(i64, String, String)> = brands::table
        .select((brands::id, brands::timezone, brands::carried_before))
        .order(brands::id)
        .load(conn)?;
    let ids: Vec<i64> = behind(all).into_iter().map(|(id, _, _)| id).collect();
    let mut folded = 0;
    for chunk in ids.chunks(FOLD_CHUNK) {
        folded += write_transaction(conn, |conn| -> DomainResult<usize> {
            enforce::lock_brands(conn, chunk)?;
            let rows: Vec<(i64, String, String)> = brands::table
                .select((brands::id, brands::timezone, brands::carried_before))
                .filter(brands::id.eq_any(chunk))
                .filter(within_limits())
                .order(brands::id)
                .load(conn)?;
            let due = behind(rows);
            for (id, mark, month) in &due {
                fold_brand(conn, *id, mark, month)?;
            }
            Ok(due.len())
        })?;
    }
    Ok(folded)
}

/// Moves one brand's mark from `from` to `to`: its campaigns' month totals in `[from, to)` added to
/// their carried totals.
fn fold_brand(conn: &mut DbConnection, brand_id: i64, from: &str, to: &str) -> QueryResult<()> {
    let sql = |p: [&str; 3]| {
        format!(
            "UPDATE campaigns AS c SET lifetime_carried = lifetime_carried + m.amount \
             FROM (SELECT s.campaign_id, CAST(sum(s.amount) AS BIGINT) AS amount \
                   FROM campaign_spend AS s JOIN campaigns AS c2 ON c2.id = s.campaign_id \
                   WHERE c2.brand_id = {} AND s.period LIKE '____-__' AND s.period >= {} \
                     AND s.period < {} \
                   GROUP BY s.campaign_id) AS m \
             WHERE c.id = m.campaign_id",
            p[0], p[1], p[2]
        )
    };
    match conn {
        DbConnection::Postgresql(c) => diesel::sql_query(sql(["$1", "$2", "$3"]))
            .bind::<BigInt, _>(brand_id)
            .bind::<Text, _>(from)
            .bind::<Text, _>(to)
            .execute(c)?,
        DbConnection::Sqlite(c) => diesel::sql_query(sql(["?", "?", "?"]))
            .bind::<BigInt, _>(brand_id)
            .bind::<Text, _>(from)
            .bind::<Text, _>(to)
            .execute(c)?,
    };
    diesel::update(brands::table.find(brand_id))
        .set(brands::carried_before.eq(to))
        .execute(conn)?;
    Ok(())
}
