//! Checks that the stored numbers and states are what the spend logs and the rule say: every
//! period total equals the sum of its spend logs read in the brand's timezone, every 5-minute
//! bucket the sum of the spend logs in it, every campaign's lifetime total the sum of all of its, and every campaign's pause reasons equal the rule's
//! verdict at `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::enforce::{self, ReconcileScope};
use super::utc;
use crate::DbConnection;
use crate::error::DomainResult;
use crate::schema::{
    brand_spend, brand_spend_buckets, brands, campaign_spend, campaign_spend_buckets, campaigns,
    spend_logs,
};
use adbudget_core::period::{LIFETIME, PeriodKeys, bucket_start};
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
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
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
        let logs: Vec<(i64, i64, i64, NaiveDateTime, String)> = spend_logs::table
            .inner_join(campaigns::table.inner_join(brands::table))
            .select((
                spend_logs::campaign_id,
                campaigns::brand_id,
                spend_logs::amount,
                spend_logs::occurred_at,
                brands::timezone,
            ))
            .load(conn)?;
        let mut brand_expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
        let mut campaign_expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for (campaign_id, brand_id, amount, at, tz) in &logs {
            let keys = PeriodKeys::at(utc(*at), parse_tz(tz));
            let bucket = bucket_label(bucket_start(utc(*at)).naive_utc());
            for period in [keys.day, keys.month, bucket] {
                // Saturating: a total past the limit is a disagreement to report, not a panic.
                let b = brand_expected
                    .entry((*brand_id, period.clone()))
                    .or_default();
                *b = b.saturating_add(*amount);
                let c = campaign_expected.entry((*campaign_id, period)).or_default();
                *c = c.saturating_add(*amount);
            }
            let c = campaign_expected
                .entry((*campaign_id, LIFETIME.to_owned()))
                .or_default();
            *c = c.saturating_add(*amount);
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
        campaign_stored.extend(as_bucket_keys(
            campaign_spend_buckets::table
                .select((
                    campaign_spend_buckets::campaign_id,
                    campaign_spend_buckets::bucket,
                    campaign_spend_buckets::amount,
                ))
                .load(conn)?,
        ));
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
        let campaigns: i64 = campaigns::table.count().get_result(conn)?;
        Ok(Report {
            spend_logs: logs.len(),
            campaigns: campaigns as usize,
            findings,
        })
    })
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
