//! The rule evaluated over stored campaigns: given what is stored of each campaign and its brand
//! and the spend totals of the current periods, which campaigns' pause reasons must change. No
//! database access: `adbudget_db::repo::enforce` reads the inputs and writes the changes, for the
//! spend path, every edit and every job alike.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{CampaignFacts, PauseReasons, pause_reasons};
use crate::dayparting::Schedule;
use crate::money::Money;
use crate::period::PeriodKeys;

/// One campaign whose pause reasons changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub campaign_id: i64,
    pub brand_id: i64,
    pub from: PauseReasons,
    pub to: PauseReasons,
}

/// A brand's budgets and timezone, as the rule needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrandFacts {
    pub daily_budget: Money,
    pub monthly_budget: Money,
    pub tz: Tz,
}

/// A stored timezone name; one that does not parse (nothing valid stores one) is logged and read
/// as UTC rather than failing every decision about its brand.
pub fn parse_tz(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| {
        tracing::error!(
            brand.timezone = name,
            "stored timezone does not parse; using UTC"
        );
        Tz::UTC
    })
}

/// Spend totals of the current periods, keyed by owner id and period key.
#[derive(Debug, Default)]
pub struct Totals(HashMap<(i64, String), i64>);

impl Totals {
    pub fn insert(&mut self, owner: i64, period: String, amount: i64) {
        self.0.insert((owner, period), amount);
    }
    /// Whether the total of `owner` in `period` is known (a missing one may be zero or unread).
    pub fn has(&self, owner: i64, period: &str) -> bool {
        self.0.contains_key(&(owner, period.to_owned()))
    }
    pub fn extend(&mut self, other: Totals) {
        self.0.extend(other.0);
    }
    /// Adds rows `(owner, period, amount)` as read from a totals table.
    pub fn extend_rows(&mut self, rows: impl IntoIterator<Item = (i64, String, i64)>) {
        self.0.extend(
            rows.into_iter()
                .map(|(owner, period, amount)| ((owner, period), amount)),
        );
    }
    pub fn get(&self, owner: i64, period: &str) -> Money {
        Money::from_micros(
            self.0
                .get(&(owner, period.to_owned()))
                .copied()
                .unwrap_or(0),
        )
    }
}

impl FromIterator<(i64, String, i64)> for Totals {
    fn from_iter<I: IntoIterator<Item = (i64, String, i64)>>(rows: I) -> Self {
        let mut totals = Totals::default();
        totals.extend_rows(rows);
        totals
    }
}

/// The period keys of `now` for each distinct timezone, and all of them as one list.
pub struct PeriodsAt {
    by_tz: HashMap<Tz, PeriodKeys>,
    now: DateTime<Utc>,
}

impl PeriodsAt {
    pub fn new(now: DateTime<Utc>) -> Self {
        PeriodsAt {
            by_tz: HashMap::new(),
            now,
        }
    }
    pub fn keys(&mut self, tz: Tz) -> &PeriodKeys {
        let now = self.now;
        self.by_tz
            .entry(tz)
            .or_insert_with(|| PeriodKeys::at(now, tz))
    }
    pub fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_tz
            .values()
            .flat_map(|k| [k.day.clone(), k.month.clone()])
            .chain([crate::period::LIFETIME.to_owned()])
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A campaign and its brand, as the rule reads them.
pub struct Subject<'a> {
    pub id: i64,
    pub brand_id: i64,
    pub manually_paused: bool,
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
    pub dayparting: Option<&'a str>,
    pub pause_reasons: i32,
    pub lifetime_cap: Option<i64>,
    pub flight: crate::forms::Flight,
    pub brand: BrandFacts,
}

/// The campaigns among `subjects` whose stored reasons differ from what the rule says at
/// `periods`' instant, given the current periods' totals (no database access).
pub fn judge<'a>(
    subjects: impl Iterator<Item = Subject<'a>>,
    brand_spend: &Totals,
    campaign_spend: &Totals,
    periods: &mut PeriodsAt,
) -> Vec<Change> {
    let now = periods.now;
    let mut changes = Vec::new();
    for r in subjects {
        let keys = periods.keys(r.brand.tz);
        let in_window = match r.dayparting {
            None => true,
            Some(text) => match Schedule::from_stored(text) {
                Ok(s) => s.contains(now, r.brand.tz),
                Err(e) => {
                    tracing::error!(campaign.id = r.id, error = %e, "stored schedule is invalid; treating the campaign as outside its window");
                    false
                }
            },
        };
        let facts = CampaignFacts {
            manually_paused: r.manually_paused,
            brand_daily_spend: brand_spend.get(r.brand_id, &keys.day),
            brand_daily_budget: r.brand.daily_budget,
            brand_monthly_spend: brand_spend.get(r.brand_id, &keys.month),
            brand_monthly_budget: r.brand.monthly_budget,
            campaign_daily_spend: campaign_spend.get(r.id, &keys.day),
            daily_cap: r.daily_cap.map(Money::from_micros),
            campaign_monthly_spend: campaign_spend.get(r.id, &keys.month),
            monthly_cap: r.monthly_cap.map(Money::from_micros),
            in_window,
            campaign_lifetime_spend: campaign_spend.get(r.id, crate::period::LIFETIME),
            lifetime_cap: r.lifetime_cap.map(Money::from_micros),
            in_flight: r
                .flight
                .contains(now.with_timezone(&r.brand.tz).date_naive()),
        };
        let to = pause_reasons(&facts);
        let from = PauseReasons::from_bits(r.pause_reasons);
        if to != from {
            changes.push(Change {
                campaign_id: r.id,
                brand_id: r.brand_id,
                from,
                to,
            });
        }
    }
    changes
}
