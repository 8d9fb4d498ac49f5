//! A campaign's lifetime total (SPEC §3, §4 `campaign_lifetime_cap`): its `carried` row plus its
//! month rows from its brand's mark on (`adbudget_core::period::CARRIED`, migration 000015).
//!
//! The spend path writes a campaign's day and month rows anyway; a row of its own for the
//! lifetime, upserted by every batch under the brand locks, cost 14 % of PostgreSQL's batch
//! ingestion (BENCHMARKS.md, issue #16). So the lifetime is kept in two parts: the months before
//! the brand's mark (`brands.carried_before`) as one `carried` row, written on the spend path only
//! by an event of such a month (a late one), and the months from the mark on as their month rows.
//! [`fold`] (the first step of `reset_daily` and `reset_monthly`) adds the months that ended to
//! `carried` and moves the mark, under the brand's lock, as the spend path writes under it: the
//! two parts always sum to the campaign's spend over all time, wherever the mark stands; a recent
//! mark keeps the months to add up to one or two.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use super::CHUNK;
use super::enforce;
use crate::error::DomainResult;
use crate::schema::{brands, campaign_spend, campaigns};
use crate::{DbConnection, write_transaction};
use adbudget_core::period::{CARRIED, PeriodKeys, PeriodKind};
use adbudget_core::rule::parse_tz;

/// The lifetime totals of `campaign_ids` (those with any spend): each campaign's totals from its
/// brand's mark on, one range of the primary key per campaign — its month rows there, the day
/// rows between them (skipped by their length) and `carried`, which sorts after every date.
/// For the views, the sweeps' lifetime caps and the brands never folded; the spend path adds
/// what its upserts returned to the few rows it reads by key (`spend::settle_lifetimes`).
pub(crate) fn read(
    conn: &mut DbConnection,
    campaign_ids: &[i64],
) -> QueryResult<HashMap<i64, i64>> {
    let mut lifetimes: HashMap<i64, i64> = HashMap::new();
    for chunk in campaign_ids.chunks(CHUNK) {
        let rows: Vec<(i64, String, i64)> = campaign_spend::table
            .inner_join(campaigns::table.on(campaigns::id.eq(campaign_spend::campaign_id)))
            .inner_join(brands::table.on(brands::id.eq(campaigns::brand_id)))
            .filter(campaign_spend::campaign_id.eq_any(chunk))
            .filter(campaign_spend::period.ge(brands::carried_before))
            .filter(sql::<Bool>("length(campaign_spend.period) = 7"))
            .select((
                campaign_spend::campaign_id,
                campaign_spend::period,
                campaign_spend::amount,
            ))
            .load(conn)?;
        for (campaign, period, amount) in rows {
            if matches!(
                PeriodKind::of(&period),
                PeriodKind::Month | PeriodKind::Carried
            ) {
                let sum = lifetimes.entry(campaign).or_default();
                *sum = sum.saturating_add(amount);
            }
        }
    }
    Ok(lifetimes)
}

/// Brands folded per transaction (each a statement over its campaigns' totals and an update).
const FOLD_CHUNK: usize = 200;

/// Adds, for every brand whose mark is before its current local month, its campaigns' month
/// totals from the mark up to that month to their `carried` rows, and moves the mark there:
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
/// their `carried` rows.
fn fold_brand(conn: &mut DbConnection, brand_id: i64, from: &str, to: &str) -> QueryResult<()> {
    let sql = |p: [&str; 3]| {
        format!(
            "INSERT INTO campaign_spend (campaign_id, period, amount) \
             SELECT s.campaign_id, '{CARRIED}', sum(s.amount) \
             FROM campaign_spend AS s JOIN campaigns AS c ON c.id = s.campaign_id \
             WHERE c.brand_id = {} AND s.period LIKE '____-__' AND s.period >= {} \
               AND s.period < {} \
             GROUP BY s.campaign_id \
             ON CONFLICT (campaign_id, period) DO UPDATE \
                 SET amount = campaign_spend.amount + excluded.amount",
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
