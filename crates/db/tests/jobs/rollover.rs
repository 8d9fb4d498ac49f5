//! A new brand-local day or month brings back exactly the campaigns that only its period held.

use adbudget_core::jobs::JobKind;
use adbudget_testing::Backend;
use serde_json::json;

use crate::{on_both_databases, utc, world};

on_both_databases!(
    reset_daily_brings_back_only_daily_pauses,
    reset_monthly_at_the_local_first,
    brands_roll_over_at_their_own_midnight
);

fn reset_daily_brings_back_only_daily_pauses(backend: Backend) {
    let w = world(backend);
    // 23:30 in Berlin (UTC+1) on Friday 2026-11-20.
    let evening = utc("2026-11-20T22:30:00Z");
    let b = w.brand("Acme", "100", "10000", "Europe/Berlin", evening);
    let plain = w.campaign(b, "plain", json!({}), evening);
    let monthly = w.campaign(b, "monthly", json!({"monthly_cap": "30"}), evening);
    let windowed = w.campaign(
        b,
        "windowed",
        json!({"dayparting": [{"start": "08:00", "end": "20:00"}]}),
        evening,
    );
    let manual = w.campaign(b, "manual", json!({"manually_paused": true}), evening);
    let capped = w.campaign(b, "capped", json!({"daily_cap": "5"}), evening);
    w.spend(plain, "40", evening, evening);
    w.spend(monthly, "30", evening, evening);
    w.spend(windowed, "10", evening, evening);
    w.spend(manual, "15", evening, evening);
    w.spend(capped, "5", evening, evening);
    assert_eq!(w.reasons(plain, evening), ["brand_daily_budget"]);
    assert_eq!(
        w.reasons(monthly, evening),
        ["brand_daily_budget", "campaign_monthly_cap"]
    );
    assert_eq!(
        w.reasons(capped, evening),
        ["brand_daily_budget", "campaign_daily_cap"]
    );

    // Before local midnight a reset changes nothing.
    assert_eq!(
        w.run(JobKind::ResetDaily, utc("2026-11-20T22:59:59Z"))
            .changed,
        0
    );
    // 00:00:30 Berlin: the new day.
    let midnight = utc("2026-11-20T23:00:30Z");
    w.run(JobKind::ResetDaily, midnight);
    assert!(
        w.get(plain, midnight).is_active,
        "paused only for a daily reason: back"
    );
    assert!(
        w.get(capped, midnight).is_active,
        "a daily cap is a daily reason too"
    );
    assert_eq!(
        w.reasons(monthly, midnight),
        ["campaign_monthly_cap"],
        "still over its monthly cap"
    );
    assert_eq!(
        w.reasons(windowed, midnight),
        ["dayparting"],
        "outside its window"
    );
    assert_eq!(w.reasons(manual, midnight), ["manual"], "manually paused");
    assert_eq!(w.get(plain, midnight).daily_spend.to_string(), "0.00");
    assert_eq!(w.get(plain, midnight).monthly_spend.to_string(), "40.00");
    // Run twice, or late: nothing more changes, and yesterday's spend is not counted today.
    assert_eq!(w.run(JobKind::ResetDaily, midnight).changed, 0);
    w.spend(plain, "99", midnight, midnight);
    assert!(w.get(plain, midnight).is_active, "99 of today's 100");
    assert_eq!(
        w.run(JobKind::ResetDaily, utc("2026-11-21T02:00:00Z"))
            .changed,
        0
    );
    w.assert_verified(midnight);
}

fn reset_monthly_at_the_local_first(backend: Backend) {
    let w = world(backend);
    // 2026-11-30 22:00 in New York (UTC-5) = 2026-12-01 03:00 UTC: still November there.
    let end_of_month = utc("2026-12-01T03:00:00Z");
    let b = w.brand("Northwind", "1000", "100", "America/New_York", end_of_month);
    let c = w.campaign(b, "c", json!({}), end_of_month);
    let capped = w.campaign(b, "capped", json!({"monthly_cap": "10"}), end_of_month);
    w.spend(c, "90", end_of_month, end_of_month);
    w.spend(capped, "10", end_of_month, end_of_month);
    assert_eq!(w.reasons(c, end_of_month), ["brand_monthly_budget"]);
    assert_eq!(
        w.reasons(capped, end_of_month),
        ["brand_monthly_budget", "campaign_monthly_cap"]
    );
    // The daily reset at local midnight does not lift monthly reasons...
    let first = utc("2026-12-01T05:00:20Z");
    assert_eq!(w.run(JobKind::ResetDaily, first).changed, 0);
    assert_eq!(w.reasons(c, first), ["brand_monthly_budget"]);
    // ...the monthly one does, for both.
    let report = w.run(JobKind::ResetMonthly, first);
    assert_eq!(report.activated, 2);
    assert!(w.get(c, first).is_active && w.get(capped, first).is_active);
    assert_eq!(w.get(c, first).monthly_spend.to_string(), "0.00");
    w.assert_verified(first);
}

fn brands_roll_over_at_their_own_midnight(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-20T12:00:00Z"); // 21:00 in Tokyo, 07:00 in New York.
    let tokyo = w.brand("Sakura", "10", "1000", "Asia/Tokyo", t);
    let ny = w.brand("Northwind", "10", "1000", "America/New_York", t);
    let kathmandu = w.brand("Everest", "10", "1000", "Asia/Kathmandu", t); // UTC+5:45
    let ct = w.campaign(tokyo, "t", json!({}), t);
    let cn = w.campaign(ny, "n", json!({}), t);
    let ck = w.campaign(kathmandu, "k", json!({}), t);
    for c in [ct, cn, ck] {
        w.spend(c, "10", t, t);
    }
    // Tokyo's midnight: 15:00 UTC.
    let tokyo_midnight = utc("2026-11-20T15:00:10Z");
    w.run(JobKind::ResetDaily, tokyo_midnight);
    assert!(w.get(ct, tokyo_midnight).is_active);
    assert!(!w.get(cn, tokyo_midnight).is_active);
    assert!(
        !w.get(ck, tokyo_midnight).is_active,
        "Kathmandu's day begins at 18:15 UTC"
    );
    // Kathmandu's midnight: 18:15 UTC, on a quarter hour.
    let k_midnight = utc("2026-11-20T18:15:05Z");
    w.run(JobKind::ResetDaily, k_midnight);
    assert!(w.get(ck, k_midnight).is_active);
    assert!(!w.get(cn, k_midnight).is_active);
    // New York's midnight: 05:00 UTC next day.
    let ny_midnight = utc("2026-11-21T05:00:30Z");
    w.run(JobKind::ResetDaily, ny_midnight);
    assert!(w.get(cn, ny_midnight).is_active);
    w.assert_verified(ny_midnight);
}
