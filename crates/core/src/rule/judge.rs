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

/// Spend totals of the current periods, by period key, then owner id. Keyed this way so that a
/// lookup borrows the period key (a sweep looks up five totals for each of a million campaigns).
#[derive(Debug, Default)]
pub struct Totals(HashMap<String, HashMap<i64, i64>>);

impl Totals {
    pub fn insert(&mut self, owner: i64, period: String, amount: i64) {
        self.0.entry(period).or_default().insert(owner, amount);
    }
    /// Whether the total of `owner` in `period` is known (a missing one may be zero or unread).
    pub fn has(&self, owner: i64, period: &str) -> bool {
        self.0.get(period).is_some_and(|m| m.contains_key(&owner))
    }
    pub fn extend(&mut self, other: Totals) {
        for (period, owners) in other.0 {
            self.0.entry(period).or_default().extend(owners);
        }
    }
    /// Adds rows `(owner, period, amount)` as read from a totals table.
    pub fn extend_rows(&mut self, rows: impl IntoIterator<Item = (i64, String, i64)>) {
        for (owner, period, amount) in rows {
            self.insert(owner, period, amount);
        }
    }
    pub fn get(&self, owner: i64, period: &str) -> Money {
        Money::from_micros(
            self.0
                .get(period)
                .and_then(|m| m.get(&owner))
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
    /// Every timezone's current day and month keys, each once: the stored periods to read (a
    /// lifetime is no stored period; see `crate::period::LIFETIME`).
    pub fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_tz
            .values()
            .flat_map(|k| [k.day.clone(), k.month.clone()])
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
    // Whether `now` is inside a stored schedule depends only on its text and the timezone: a
    // sweep meets the same few schedules (an agency's templates) on many campaigns and parses
    // each once.
    let mut in_window_of: HashMap<(&'a str, Tz), bool> = HashMap::new();
    for r in subjects {
        let keys = periods.keys(r.brand.tz);
        let in_window = match r.dayparting {
            None => true,
            Some(text) => *in_window_of
                .entry((text, r.brand.tz))
                .or_insert_with(|| match Schedule::from_stored(text) {
                    Ok(s) => s.contains(now, r.brand.tz),
                    Err(e) => {
                        tracing::error!(campaign.id = r.id, error = %e, "stored schedule is invalid; treating the campaign (and any other of this run with the same schedule) as outside its window");
                        false
                    }
                }),
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
            in_flight: (r.flight.start.is_none() && r.flight.end.is_none())
                || r.flight
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::forms::Flight;
    use crate::rule::PauseReason;

    fn brand(tz: Tz) -> BrandFacts {
        BrandFacts {
            daily_budget: Money::from_micros(100_000_000),
            monthly_budget: Money::from_micros(1_000_000_000),
            tz,
        }
    }

    fn subject(id: i64, brand: BrandFacts, dayparting: Option<&str>) -> Subject<'_> {
        Subject {
            id,
            brand_id: id,
            manually_paused: false,
            daily_cap: None,
            monthly_cap: None,
            dayparting,
            pause_reasons: 0,
            lifetime_cap: None,
            flight: Flight::default(),
            brand,
        }
    }

    fn paused(changes: &[Change]) -> Vec<(i64, Vec<&'static str>)> {
        changes
            .iter()
            .map(|c| (c.campaign_id, c.to.names()))
            .collect()
    }

    /// The changes `judge` makes to `subjects` at `now` with no spend, as [`paused`] lists them.
    fn paused_without_spend<'a>(
        subjects: impl IntoIterator<Item = Subject<'a>>,
        now: DateTime<Utc>,
    ) -> Vec<(i64, Vec<&'static str>)> {
        paused(&judge(
            subjects.into_iter(),
            &Totals::default(),
            &Totals::default(),
            &mut PeriodsAt::new(now),
        ))
    }

    /// One schedule text on campaigns of brands in different timezones: whether the instant is
    /// inside it is decided per timezone, not once per text.
    #[test]
    fn a_shared_schedule_is_judged_in_each_brands_timezone() {
        let office = r#"[{"start":"09:00","end":"17:00"}]"#;
        // 10:00 in UTC is 19:00 in Tokyo and 06:00 in New York (daylight time from March 8th).
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 10, 0, 0).unwrap();
        let (utc, tokyo, ny) = (
            brand(Tz::UTC),
            brand(chrono_tz::Asia::Tokyo),
            brand(chrono_tz::America::New_York),
        );
        let subjects = [
            subject(1, utc, Some(office)),
            subject(2, tokyo, Some(office)),
            subject(3, utc, Some(office)),
            subject(4, ny, Some(office)),
            subject(5, tokyo, None),
        ];
        assert_eq!(
            paused_without_spend(subjects, now),
            vec![(2, vec!["dayparting"]), (4, vec!["dayparting"])]
        );
    }

    #[test]
    fn an_invalid_stored_schedule_keeps_each_of_its_campaigns_out_of_its_window() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 10, 0, 0).unwrap();
        let subjects = [
            subject(1, brand(Tz::UTC), Some("not json")),
            subject(2, brand(Tz::UTC), Some("not json")),
        ];
        assert_eq!(
            paused_without_spend(subjects, now),
            vec![(1, vec!["dayparting"]), (2, vec!["dayparting"])]
        );
    }

    #[test]
    fn totals_are_kept_per_owner_and_period() {
        let mut totals: Totals = [
            (1, "2026-03-10".to_owned(), 5),
            (2, "2026-03".to_owned(), 7),
        ]
        .into_iter()
        .collect();
        totals.extend([(1, "2026-03".to_owned(), 9)].into_iter().collect());
        totals.insert(2, "2026-03".to_owned(), 8);
        assert_eq!(totals.get(1, "2026-03-10").micros(), 5);
        assert_eq!(totals.get(1, "2026-03").micros(), 9);
        assert_eq!(totals.get(2, "2026-03").micros(), 8);
        assert_eq!(totals.get(2, "2026-03-10").micros(), 0);
        assert!(totals.has(2, "2026-03") && !totals.has(2, "2026-03-10"));
        assert!(!totals.has(3, "2026-03"));
    }

    /// A brand's daily budget reached pauses each of its campaigns, with the right reason,
    /// read from the brand's totals of its own local day.
    #[test]
    fn a_brand_total_of_its_local_day_pauses_its_campaigns() {
        // 23:30 UTC on the 10th is the 11th in Tokyo.
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 23, 30, 0).unwrap();
        let mut brand_spend = Totals::default();
        brand_spend.insert(1, "2026-03-11".to_owned(), 100_000_000);
        brand_spend.insert(2, "2026-03-11".to_owned(), 100_000_000);
        let tokyo = brand(chrono_tz::Asia::Tokyo);
        let mut in_utc = subject(2, brand(Tz::UTC), None);
        in_utc.brand_id = 2;
        let changes = judge(
            [subject(1, tokyo, None), in_utc].into_iter(),
            &brand_spend,
            &Totals::default(),
            &mut PeriodsAt::new(now),
        );
        assert_eq!(paused(&changes), vec![(1, vec!["brand_daily_budget"])]);
        assert!(changes[0].to.contains(PauseReason::BrandDailyBudget));
    }
}
