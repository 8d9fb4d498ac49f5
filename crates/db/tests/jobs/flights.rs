//! Flights and lifetime caps (SPEC §3, §4) on real databases at fixed instants: the two reasons,
//! applied by the spend path and by `reset_daily` at brand-local midnight.

use adbudget_core::access::{Author, Brands};
use adbudget_core::jobs::JobKind;
use adbudget_core::money::Money;
use adbudget_db::repo::spend;
use adbudget_testing::Backend;
use serde_json::json;

use crate::{on_both_databases, utc, world};

on_both_databases!(
    a_lifetime_cap_counts_every_day_and_a_reversal_lowers_it,
    a_flight_starts_and_ends_at_local_midnight,
    a_flight_ends_while_paused_for_dayparting,
    lifetime_spend_past_the_limit_is_refused_naming_the_amount,
);

fn a_lifetime_cap_counts_every_day_and_a_reversal_lowers_it(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-06-01T00:00:00Z");
    let brand = w.brand("L", "1000", "10000", "UTC", created);
    let c = w.campaign(brand, "c", json!({"lifetime_cap": "100"}), created);
    let day1 = utc("2026-06-01T12:00:00Z");
    w.spend(c, "60", day1, day1);
    assert!(w.reasons(c, day1).is_empty());
    let day2 = utc("2026-06-02T12:00:00Z");
    w.spend(c, "40", day2, day2);
    assert_eq!(w.reasons(c, day2), ["campaign_lifetime_cap"]);
    let seen = w.get(c, day2);
    assert_eq!(
        seen.lifetime_spend,
        Money::parse_non_negative("100").unwrap()
    );
    assert_eq!(seen.daily_spend, Money::parse_non_negative("40").unwrap());
    // A new day or month brings nothing back: the cap is over all time.
    let day3 = utc("2026-07-01T00:01:00Z");
    w.run(JobKind::ResetDaily, day3);
    w.run(JobKind::ResetMonthly, day3);
    w.run(JobKind::EnforceBudgets, day3);
    assert_eq!(w.reasons(c, day3), ["campaign_lifetime_cap"]);
    // Reversing the first day's spend lowers the lifetime total: the campaign runs again.
    let first = spend::list(&mut w.conn(), c, None, None, Default::default())
        .unwrap()
        .items
        .into_iter()
        .find(|l| l.occurred_at == day1)
        .unwrap();
    spend::reverse(
        &mut w.conn(),
        first.id,
        "test",
        &Brands::All,
        day3,
        &Author::cli(),
    )
    .unwrap();
    assert!(w.reasons(c, day3).is_empty());
    assert_eq!(
        w.get(c, day3).lifetime_spend,
        Money::parse_non_negative("40").unwrap()
    );
    w.assert_verified(day3);
}

/// Berlin (UTC+2 in June): a flight of June 10–11 runs from 22:00 UTC on the 9th to 22:00 UTC on
/// the 11th, and `reset_daily`'s run at those midnights applies it.
fn a_flight_starts_and_ends_at_local_midnight(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-06-09T12:00:00Z");
    let brand = w.brand("F", "1000", "10000", "Europe/Berlin", created);
    let c = w.campaign(
        brand,
        "c",
        json!({"flight_start": "2026-06-10", "flight_end": "2026-06-11"}),
        created,
    );
    assert_eq!(w.reasons(c, created), ["flight"]);
    let before = utc("2026-06-09T21:45:00Z");
    assert_eq!(w.run(JobKind::ResetDaily, before).changed, 0);
    let midnight = utc("2026-06-09T22:00:00Z");
    assert_eq!(w.run(JobKind::ResetDaily, midnight).changed, 1);
    assert!(w.reasons(c, midnight).is_empty());
    // Still running on its last day, stopped at the midnight after it.
    let last_evening = utc("2026-06-11T21:45:00Z");
    assert_eq!(w.run(JobKind::ResetDaily, last_evening).changed, 0);
    let after = utc("2026-06-11T22:00:00Z");
    assert_eq!(w.run(JobKind::ResetDaily, after).changed, 1);
    assert_eq!(w.reasons(c, after), ["flight"]);
    let history = adbudget_db::repo::campaigns::history(&mut w.conn(), c, Default::default())
        .unwrap()
        .items;
    assert_eq!(history[0].cause, "reset_daily");
    assert_eq!(history[0].pause_reasons.names(), ["flight"]);
    assert_eq!(history.len(), 3, "created paused, started, ended");
}

/// A campaign outside its window when its flight ends: both reasons, then, when its window
/// opens again, only the flight.
fn a_flight_ends_while_paused_for_dayparting(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-06-01T00:00:00Z");
    let brand = w.brand("D", "1000", "10000", "UTC", created);
    let c = w.campaign(
        brand,
        "c",
        json!({
            "flight_end": "2026-06-10",
            "dayparting": [{"start": "09:00", "end": "17:00"}],
        }),
        created,
    );
    let evening = utc("2026-06-10T20:00:00Z");
    w.run(JobKind::ApplyDayparting, evening);
    assert_eq!(w.reasons(c, evening), ["dayparting"]);
    let midnight = utc("2026-06-11T00:00:00Z");
    w.run(JobKind::ResetDaily, midnight);
    assert_eq!(w.reasons(c, midnight), ["dayparting", "flight"]);
    let morning = utc("2026-06-11T09:00:00Z");
    w.run(JobKind::ApplyDayparting, morning);
    assert_eq!(w.reasons(c, morning), ["flight"]);
    w.assert_verified(morning);
}

/// The lifetime total has the same limit as the period totals: an event that would cross it is a
/// clear refusal of its amount, nothing stored (not a database error).
fn lifetime_spend_past_the_limit_is_refused_naming_the_amount(backend: Backend) {
    use adbudget_core::forms::SpendEvent;
    use adbudget_core::money::PositiveMoney;
    let w = world(backend);
    let created = utc("2026-05-01T00:00:00Z");
    let brand = w.brand("X", "1000000000", "1000000000", "UTC", created);
    let c = w.campaign(brand, "c", json!({}), created);
    let may = utc("2026-05-31T12:00:00Z");
    w.spend(c, "1000000000", may, may);
    let june = utc("2026-06-01T12:00:00Z");
    let event = SpendEvent {
        campaign_id: c,
        amount: PositiveMoney(Money::parse_positive("0.000001").unwrap()),
        occurred_at: Some(june),
        event_id: None,
    }
    .validate(june)
    .unwrap();
    let err = spend::record(&mut w.conn(), &[event], june, spend::Mode::Single).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("lifetime"), "{text}");
    assert!(
        matches!(err, adbudget_db::error::DomainError::Validation(ref v) if v.field == "amount"),
        "{err:?}"
    );
    assert_eq!(
        w.get(c, june).lifetime_spend,
        Money::parse_non_negative("1000000000").unwrap()
    );
    // (May's budgets paused it; June's resets have not run yet.)
    w.run(JobKind::EnforceBudgets, june);
    w.assert_verified(june);
}
