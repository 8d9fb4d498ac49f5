//! The enforcement rule (SPEC §4) as pure functions over plain values.
//!
//! A campaign is active if and only if no pause reason holds. The spend path, the API, the admin,
//! the CLI and every scheduled job decide a campaign's state here and nowhere else.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::money::Money;

mod judge;

pub use judge::{BrandFacts, Change, PeriodsAt, Subject, Totals, judge, parse_tz};

/// Why a campaign is paused, in the order the names are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseReason {
    Manual,
    BrandDailyBudget,
    BrandMonthlyBudget,
    CampaignDailyCap,
    CampaignMonthlyCap,
    Dayparting,
    // Appended after `Dayparting`: a reason's bit is its position, so stored masks keep their
    // meaning.
    CampaignLifetimeCap,
    Flight,
}

impl PauseReason {
    pub const ALL: [PauseReason; 8] = [
        PauseReason::Manual,
        PauseReason::BrandDailyBudget,
        PauseReason::BrandMonthlyBudget,
        PauseReason::CampaignDailyCap,
        PauseReason::CampaignMonthlyCap,
        PauseReason::Dayparting,
        PauseReason::CampaignLifetimeCap,
        PauseReason::Flight,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            PauseReason::Manual => "manual",
            PauseReason::BrandDailyBudget => "brand_daily_budget",
            PauseReason::BrandMonthlyBudget => "brand_monthly_budget",
            PauseReason::CampaignDailyCap => "campaign_daily_cap",
            PauseReason::CampaignMonthlyCap => "campaign_monthly_cap",
            PauseReason::Dayparting => "dayparting",
            PauseReason::CampaignLifetimeCap => "campaign_lifetime_cap",
            PauseReason::Flight => "flight",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    const fn bit(self) -> i32 {
        1 << self as i32
    }
}

/// A set of pause reasons, stored as a bit mask in `campaigns.pause_reasons`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PauseReasons(i32);

impl PauseReasons {
    pub const NONE: PauseReasons = PauseReasons(0);

    /// Every non-empty mask, as stored (`1 ..` two to the number of reasons).
    pub const MASKS: std::ops::Range<i32> = 1..(1 << PauseReason::ALL.len());

    pub const fn from_bits(bits: i32) -> Self {
        PauseReasons(bits & (Self::MASKS.end - 1))
    }

    pub const fn bits(self) -> i32 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn contains(self, r: PauseReason) -> bool {
        self.0 & r.bit() != 0
    }

    pub fn insert(&mut self, r: PauseReason) {
        self.0 |= r.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = PauseReason> {
        PauseReason::ALL
            .into_iter()
            .filter(move |r| self.contains(*r))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(PauseReason::name).collect()
    }
}

impl FromIterator<PauseReason> for PauseReasons {
    fn from_iter<I: IntoIterator<Item = PauseReason>>(iter: I) -> Self {
        let mut set = PauseReasons::NONE;
        for r in iter {
            set.insert(r);
        }
        set
    }
}

impl fmt::Display for PauseReasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for PauseReasons {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(PauseReason::name))
    }
}

/// Everything the rule needs to know about one campaign at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignFacts {
    pub manually_paused: bool,
    pub brand_daily_spend: Money,
    pub brand_daily_budget: Money,
    pub brand_monthly_spend: Money,
    pub brand_monthly_budget: Money,
    pub campaign_daily_spend: Money,
    pub daily_cap: Option<Money>,
    pub campaign_monthly_spend: Money,
    pub monthly_cap: Option<Money>,
    /// Whether the brand-local time lies in one of the campaign's windows (true without a schedule).
    pub in_window: bool,
    pub campaign_lifetime_spend: Money,
    pub lifetime_cap: Option<Money>,
    /// Whether today's brand-local date lies within the campaign's flight (true without one).
    pub in_flight: bool,
}

/// The reasons a campaign must be paused; empty means active. Budgets pause at `>=`, so a budget
/// of zero allows no spend.
pub fn pause_reasons(f: &CampaignFacts) -> PauseReasons {
    let reached = |spend: Money, limit: Option<Money>| limit.is_some_and(|l| spend >= l);
    let conditions = [
        (PauseReason::Manual, f.manually_paused),
        (
            PauseReason::BrandDailyBudget,
            f.brand_daily_spend >= f.brand_daily_budget,
        ),
        (
            PauseReason::BrandMonthlyBudget,
            f.brand_monthly_spend >= f.brand_monthly_budget,
        ),
        (
            PauseReason::CampaignDailyCap,
            reached(f.campaign_daily_spend, f.daily_cap),
        ),
        (
            PauseReason::CampaignMonthlyCap,
            reached(f.campaign_monthly_spend, f.monthly_cap),
        ),
        (PauseReason::Dayparting, !f.in_window),
        (
            PauseReason::CampaignLifetimeCap,
            reached(f.campaign_lifetime_spend, f.lifetime_cap),
        ),
        (PauseReason::Flight, !f.in_flight),
    ];
    conditions
        .into_iter()
        .filter_map(|(reason, fails)| fails.then_some(reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(units: i64) -> Money {
        Money::from_micros(units * 1_000_000)
    }

    fn healthy() -> CampaignFacts {
        CampaignFacts {
            manually_paused: false,
            brand_daily_spend: m(10),
            brand_daily_budget: m(100),
            brand_monthly_spend: m(10),
            brand_monthly_budget: m(1000),
            campaign_daily_spend: m(5),
            daily_cap: Some(m(50)),
            campaign_monthly_spend: m(5),
            monthly_cap: Some(m(500)),
            in_window: true,
            campaign_lifetime_spend: m(5),
            lifetime_cap: Some(m(5000)),
            in_flight: true,
        }
    }

    #[test]
    fn under_budget_stays_active() {
        assert!(pause_reasons(&healthy()).is_empty());
    }

    #[test]
    fn each_reason_alone() {
        type Change = fn(&mut CampaignFacts);
        let cases: [(Change, PauseReason); 8] = [
            (|f| f.manually_paused = true, PauseReason::Manual),
            (
                |f| f.brand_daily_spend = m(100),
                PauseReason::BrandDailyBudget,
            ),
            (
                |f| f.brand_monthly_spend = m(1000),
                PauseReason::BrandMonthlyBudget,
            ),
            (
                |f| f.campaign_daily_spend = m(50),
                PauseReason::CampaignDailyCap,
            ),
            (
                |f| f.campaign_monthly_spend = m(500),
                PauseReason::CampaignMonthlyCap,
            ),
            (|f| f.in_window = false, PauseReason::Dayparting),
            (
                |f| f.campaign_lifetime_spend = m(5000),
                PauseReason::CampaignLifetimeCap,
            ),
            (|f| f.in_flight = false, PauseReason::Flight),
        ];
        for (change, reason) in cases {
            let mut f = healthy();
            change(&mut f);
            assert_eq!(pause_reasons(&f).names(), vec![reason.name()]);
        }
    }

    #[test]
    fn exactly_at_the_budget_pauses_and_above_too() {
        let mut f = healthy();
        f.brand_daily_spend = m(100);
        assert!(pause_reasons(&f).contains(PauseReason::BrandDailyBudget));
        f.brand_daily_spend = m(101);
        assert!(pause_reasons(&f).contains(PauseReason::BrandDailyBudget));
        f.brand_daily_spend = Money::from_micros(m(100).micros() - 1);
        assert!(
            pause_reasons(&f).is_empty(),
            "one micro-unit under the budget is still active"
        );
    }

    #[test]
    fn budget_zero_allows_no_spend() {
        let mut f = healthy();
        f.brand_daily_budget = Money::ZERO;
        f.brand_daily_spend = Money::ZERO;
        assert_eq!(pause_reasons(&f).names(), vec!["brand_daily_budget"]);
        let mut f = healthy();
        f.daily_cap = Some(Money::ZERO);
        f.campaign_daily_spend = Money::ZERO;
        assert_eq!(pause_reasons(&f).names(), vec!["campaign_daily_cap"]);
    }

    #[test]
    fn unset_caps_never_pause() {
        let mut f = healthy();
        f.daily_cap = None;
        f.monthly_cap = None;
        f.campaign_daily_spend = m(1_000_000);
        f.campaign_monthly_spend = m(1_000_000);
        assert!(pause_reasons(&f).is_empty());
    }

    #[test]
    fn combined_reasons_are_reported_in_order() {
        let f = CampaignFacts {
            manually_paused: true,
            brand_daily_spend: m(100),
            brand_monthly_spend: m(1000),
            campaign_daily_spend: m(50),
            campaign_monthly_spend: m(500),
            in_window: false,
            ..healthy()
        };
        assert_eq!(
            pause_reasons(&f).names(),
            vec![
                "manual",
                "brand_daily_budget",
                "brand_monthly_budget",
                "campaign_daily_cap",
                "campaign_monthly_cap",
                "dayparting"
            ]
        );
        let json = serde_json::to_value(pause_reasons(&f)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 6);
    }

    #[test]
    fn reasons_round_trip_through_bits_and_names() {
        for bits in 0..64 {
            let r = PauseReasons::from_bits(bits);
            assert_eq!(r.bits(), bits);
            let back: PauseReasons = r
                .names()
                .iter()
                .filter_map(|n| PauseReason::from_name(n))
                .collect();
            assert_eq!(back, r);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn money() -> impl Strategy<Value = Money> {
        (0i64..2_000).prop_map(|u| Money::from_micros(u * 500_000))
    }

    proptest! {
        #[test]
        fn reasons_are_exactly_the_failing_conditions(
            manually_paused: bool, in_window: bool,
            (bd, bdb, bm, bmb) in (money(), money(), money(), money()),
            (cd, cm) in (money(), money()),
            daily_cap in proptest::option::of(money()),
            monthly_cap in proptest::option::of(money()),
            (cl, lifetime_cap, in_flight) in (money(), proptest::option::of(money()), any::<bool>()),
        ) {
            let facts = CampaignFacts {
                manually_paused, in_window,
                brand_daily_spend: bd, brand_daily_budget: bdb,
                brand_monthly_spend: bm, brand_monthly_budget: bmb,
                campaign_daily_spend: cd, daily_cap,
                campaign_monthly_spend: cm, monthly_cap,
                campaign_lifetime_spend: cl, lifetime_cap, in_flight,
            };
            let reasons = pause_reasons(&facts);
            prop_assert_eq!(reasons.contains(PauseReason::Manual), manually_paused);
            prop_assert_eq!(reasons.contains(PauseReason::BrandDailyBudget), bd.micros() >= bdb.micros());
            prop_assert_eq!(reasons.contains(PauseReason::BrandMonthlyBudget), bm.micros() >= bmb.micros());
            prop_assert_eq!(reasons.contains(PauseReason::CampaignDailyCap), daily_cap.is_some_and(|c| cd.micros() >= c.micros()));
            prop_assert_eq!(reasons.contains(PauseReason::CampaignMonthlyCap), monthly_cap.is_some_and(|c| cm.micros() >= c.micros()));
            prop_assert_eq!(reasons.contains(PauseReason::Dayparting), !in_window);
            prop_assert_eq!(reasons.contains(PauseReason::CampaignLifetimeCap), lifetime_cap.is_some_and(|c| cl.micros() >= c.micros()));
            prop_assert_eq!(reasons.contains(PauseReason::Flight), !in_flight);
            let names = reasons.names();
            let mut sorted = names.clone();
            sorted.sort_by_key(|n| PauseReason::ALL.iter().position(|r| r.name() == *n));
            prop_assert_eq!(names, sorted, "reported in rule order");
        }
    }
}
