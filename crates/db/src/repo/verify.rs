//! Checks that the stored numbers and states are what the spend logs and the rule say: every
//! period total equals the sum of its spend logs read in the brand's timezone, every 5-minute
//! bucket the sum of the spend logs in it, every campaign's carried total (its lifetime's months
//! before its brand's mark, `repo::lifetime`) the sum of those months' logs, and every
//! campaign's pause reasons equal the rule's verdict at `now`.
//!
//! Once the retention has dropped spend logs (`spend_log_horizon`, [`Report::kept_from`]), only
//! the periods that start at or after the first kept instant (in the owner's timezone) and their
//! buckets can be checked; carried totals cannot, and are not.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;

use super::enforce::{self, ReconcileScope};
use super::utc;
use crate::DbConnection;
use crate::error::DomainResult;
use crate::schema::{
    brand_spend, brand_spend_buckets, brands, campaign_spend, campaign_spend_buckets, campaigns,
    spend_logs,
};
use adbudget_core::pacing::start_of_day;
use adbudget_core::period::{CARRIED, PeriodKeys, PeriodKind, bucket_start};
use adbudget_core::rule::parse_tz;

/// One disagreement, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    BrandTotal {
        brand_id: i64,
        period: String,
        stored: i64,
        from_logs: i64,
    },
    CampaignTotal {
        campaign_id: i64,
        period: String,
        stored: i64,
        from_logs: i64,
    },
    State {
        campaign_id: i64,
        stored: String,
        rule: String,
    },
    /// Spend logs naming a campaign that does not exist (PostgreSQL keeps no foreign key there
    /// since migration 000014; deleting a campaign removes its logs).
    Orphans { campaign_id: i64, logs: i64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = |m: &i64| adbudget_core::money::Money::from_micros(*m);
        match self {
            Finding::BrandTotal {
                brand_id,
                period,
                stored,
                from_logs,
            } => write!(
                f,
                "brand {brand_id}, period {period}: total {} but the spend logs sum to {}",
                units(stored),
                units(from_logs)
            ),
            Finding::CampaignTotal {
                campaign_id,
                period,
                stored,
                from_logs,
            } => write!(
                f,
                "campaign {campaign_id}, period {period}: total {} but the spend logs sum to {}",
                units(stored),
                units(from_logs)
            ),
            Finding::State {
                campaign_id,
                stored,
                rule,
            } => {
                write!(
                    f,
                    "campaign {campaign_id}: stored reasons {stored} but the rule says {rule}"
                )
            }
            Finding::Orphans { campaign_id, logs } => write!(
                f,
                "campaign {campaign_id} does not exist but spend logs name it: {logs}"
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    /// With spend logs dropped by the retention: the first instant whose logs are all kept, the
    /// start of what was checked.
    pub kept_from: Option<NaiveDateTime>,
    pub spend_logs: usize,
    pub campaigns: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Runs every check. Reads in one transaction so the numbers belong together.
pub fn check(conn: &mut DbConnection, now: DateTime<Utc>) -> DomainResult<Report> {
    conn.transaction(|conn| {
        let kept_from = super::spend::maintenance::horizon(conn)?;
        // Without a horizon, from the first instant both backends store (year 1).
        let since =
            kept_from.unwrap_or(NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default().into());
        let logs: Vec<(i64, i64, i64, NaiveDateTime, String, String)> = spend_logs::table
            .inner_join(campaigns::table.on(campaigns::id.eq(spend_logs::campaign_id)))
            .inner_join(brands::table.on(brands::id.eq(campaigns::brand_id)))
            .select((
                spend_logs::campaign_id,
                campaigns::brand_id,
                spend_logs::amount,
                spend_logs::occurred_at,
                brands::timezone,
                brands::carried_before,
            ))
            .filter(spend_logs::occurred_at.ge(since))
            .load(conn)?;
        let mut brand_expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
        let mut campaign_expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for (campaign_id, brand_id, amount, at, tz, mark) in &logs {
            let keys = PeriodKeys::at(utc(*at), parse_tz(tz));
            let bucket = bucket_label(bucket_start(utc(*at)).naive_utc());
            for period in [keys.day.clone(), keys.month.clone(), bucket] {
                // Saturating: a total past the limit is a disagreement to report, not a panic.
                let b = brand_expected
                    .entry((*brand_id, period.clone()))
                    .or_default();
                *b = b.saturating_add(*amount);
                let c = campaign_expected.entry((*campaign_id, period)).or_default();
                *c = c.saturating_add(*amount);
            }
            // The months before the brand's mark: the campaign's carried total
            // (repo::lifetime), with the month totals from the mark on its lifetime.
            if keys.month < *mark {
                let c = campaign_expected
                    .entry((*campaign_id, CARRIED.to_owned()))
                    .or_default();
                *c = c.saturating_add(*amount);
            }
        }
        let as_keys =
            |rows: Vec<(i64, String, i64)>| rows.into_iter().map(|(id, p, a)| ((id, p), a));
        let as_bucket_keys = |rows: Vec<(i64, NaiveDateTime, i64)>| {
            rows.into_iter()
                .map(|(id, b, a)| ((id, bucket_label(b)), a))
        };
        let mut brand_stored: BTreeMap<(i64, String), i64> = as_keys(
            brand_spend::table
                .select((
                    brand_spend::brand_id,
                    brand_spend::period,
                    brand_spend::amount,
                ))
                .load(conn)?,
        )
        .collect();
        brand_stored.extend(as_bucket_keys(
            brand_spend_buckets::table
                .select((
                    brand_spend_buckets::brand_id,
                    brand_spend_buckets::bucket,
                    brand_spend_buckets::amount,
                ))
                .filter(brand_spend_buckets::bucket.ge(since))
                .load(conn)?,
        ));
        let mut campaign_stored: BTreeMap<(i64, String), i64> = as_keys(
            campaign_spend::table
                .select((
                    campaign_spend::campaign_id,
                    campaign_spend::period,
                    campaign_spend::amount,
                ))
                .load(conn)?,
        )
        .collect();
        // Each campaign's carried part of its lifetime, kept in its row (repo::lifetime).
        campaign_stored.extend(
            campaigns::table
                .select((campaigns::id, campaigns::lifetime_carried))
                .filter(campaigns::lifetime_carried.ne(0))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .map(|(id, carried)| ((id, CARRIED.to_owned()), carried)),
        );
        campaign_stored.extend(as_bucket_keys(
            campaign_spend_buckets::table
                .select((
                    campaign_spend_buckets::campaign_id,
                    campaign_spend_buckets::bucket,
                    campaign_spend_buckets::amount,
                ))
                .filter(campaign_spend_buckets::bucket.ge(since))
                .load(conn)?,
        ));
        if let Some(kept_from) = kept_from {
            // The periods whose logs are all kept, in their owner's timezone.
            let tz_of_brand: BTreeMap<i64, Tz> = brands::table
                .select((brands::id, brands::timezone))
                .load::<(i64, String)>(conn)?
                .into_iter()
                .map(|(id, tz)| (id, parse_tz(&tz)))
                .collect();
            let tz_of_campaign: BTreeMap<i64, Tz> = campaigns::table
                .select((campaigns::id, campaigns::brand_id))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .filter_map(|(id, brand)| Some((id, *tz_of_brand.get(&brand)?)))
                .collect();
            let kept = |tz: Option<&Tz>, period: &str| {
                tz.is_some_and(|tz| starts_after(kept_from, *tz, period))
            };
            for map in [&mut brand_stored, &mut brand_expected] {
                map.retain(|(id, period), _| kept(tz_of_brand.get(id), period));
            }
            for map in [&mut campaign_stored, &mut campaign_expected] {
                map.retain(|(id, period), _| kept(tz_of_campaign.get(id), period));
            }
        }
        let mut findings = Vec::new();
        for (key, stored, from_logs) in disagreements(&brand_stored, &brand_expected) {
            findings.push(Finding::BrandTotal {
                brand_id: key.0,
                period: key.1,
                stored,
                from_logs,
            });
        }
        for (key, stored, from_logs) in disagreements(&campaign_stored, &campaign_expected) {
            findings.push(Finding::CampaignTotal {
                campaign_id: key.0,
                period: key.1,
                stored,
                from_logs,
            });
        }
        for change in enforce::evaluate(conn, &ReconcileScope::all(), now)? {
            findings.push(Finding::State {
                campaign_id: change.campaign_id,
                stored: format!("[{}]", change.from),
                rule: format!("[{}]", change.to),
            });
        }
        let orphans: Vec<(i64, i64)> = spend_logs::table
            .filter(diesel::dsl::not(diesel::dsl::exists(
                campaigns::table.filter(campaigns::id.eq(spend_logs::campaign_id)),
            )))
            .group_by(spend_logs::campaign_id)
            .select((spend_logs::campaign_id, diesel::dsl::count_star()))
            .load(conn)?;
        findings.extend(
            orphans
                .into_iter()
                .map(|(campaign_id, logs)| Finding::Orphans { campaign_id, logs }),
        );
        let campaigns: i64 = campaigns::table.count().get_result(conn)?;
        Ok(Report {
            kept_from,
            spend_logs: logs.len(),
            campaigns: campaigns as usize,
            findings,
        })
    })
}

/// Whether the period `key` (of an owner in `tz`) starts at or after `kept_from`: a day or a
/// month whose local start is not earlier; never the lifetime. Buckets (read from `kept_from` on)
/// always.
fn starts_after(kept_from: NaiveDateTime, tz: Tz, key: &str) -> bool {
    let day = match PeriodKind::of(key) {
        PeriodKind::Lifetime | PeriodKind::Carried => return false,
        PeriodKind::Month => NaiveDate::parse_from_str(&format!("{key}-01"), "%Y-%m-%d"),
        PeriodKind::Day => NaiveDate::parse_from_str(key, "%Y-%m-%d"),
    };
    match day {
        Ok(day) => start_of_day(day, tz).naive_utc() >= kept_from,
        Err(_) => true,
    }
}

/// How a 5-minute bucket is named in a finding (beside the period keys `YYYY-MM-DD`, `YYYY-MM`).
fn bucket_label(start: NaiveDateTime) -> String {
    start.format("5 minutes from %Y-%m-%dT%H:%MZ").to_string()
}

/// Keys whose amounts differ (a missing row counts as zero).
fn disagreements(
    stored: &BTreeMap<(i64, String), i64>,
    expected: &BTreeMap<(i64, String), i64>,
) -> Vec<((i64, String), i64, i64)> {
    let mut keys: Vec<&(i64, String)> = stored.keys().chain(expected.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (s, e) = (
                stored.get(k).copied().unwrap_or(0),
                expected.get(k).copied().unwrap_or(0),
            );
            (s != e).then(|| (k.clone(), s, e))
        })
        .collect()
}
