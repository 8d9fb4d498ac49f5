//! Pacing and the spend series on real databases, at fixed instants (SPEC §10): the 5-minute
//! buckets the spend path keeps, late events, reversals, and the pacing figures read from them.

use adbudget_core::access::{Author, Brands};
use adbudget_core::money::Money;
use adbudget_core::pacing::{PaceStatus, SeriesBucket};
use adbudget_db::repo::{brands, pacing, spend};
use adbudget_testing::Backend;
use serde_json::json;

use crate::{on_both_databases, utc, world};

on_both_databases!(
    series_sums_equal_the_period_totals,
    late_events_and_reversals_change_the_right_bucket,
    brand_pacing_mid_window_in_kolkata,
    brand_pacing_on_a_dst_day_in_new_york,
    campaign_pacing_paces_its_caps_only,
    a_lifetime_cap_is_paced_over_its_flight,
    a_timezone_change_moves_no_bucket,
);

fn m(s: &str) -> Money {
    Money::parse_non_negative(s).unwrap()
}

/// Spend spread over a Berlin day and month: the 5-minute, quarter-hour and hourly series of the
/// day each sum to the day's total, and the daily series of the month to the month's.
fn series_sums_equal_the_period_totals(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-03-29T20:00:00Z"); // 22:00 in Berlin, on the 23-hour day
    let brand = w.brand(
        "B",
        "100000",
        "1000000",
        "Europe/Berlin",
        utc("2026-03-01T00:00:00Z"),
    );
    let a = w.campaign(brand, "a", json!({}), utc("2026-03-01T00:00:00Z"));
    let b = w.campaign(brand, "b", json!({}), utc("2026-03-01T00:00:00Z"));
    let at = [
        ("2026-03-28T22:59:59Z", "1.25"), // 23:59:59 on the 28th, Berlin: yesterday
        ("2026-03-28T23:00:00Z", "2"),    // 00:00 on the 29th
        ("2026-03-29T00:59:00Z", "3"),    // 01:59, just before the skipped hour
        ("2026-03-29T01:00:00Z", "4"),    // 03:00 CEST
        ("2026-03-29T01:04:59Z", "0.5"),
        ("2026-03-29T12:31:00Z", "7.123456"),
        ("2026-03-29T19:59:59Z", "8"),
        ("2026-03-02T10:00:00Z", "10"), // earlier this month
    ];
    for (i, (t, amount)) in at.iter().enumerate() {
        let campaign = if i % 2 == 0 { a } else { b };
        w.spend(campaign, amount, utc(t), now);
    }
    let brand_now = brands::get(&mut w.conn(), brand, now).unwrap();
    assert_eq!(brand_now.daily_spend, m("24.623456"));
    assert_eq!(brand_now.monthly_spend, m("35.873456"));
    for bucket in [
        SeriesBucket::FiveMinutes,
        SeriesBucket::FifteenMinutes,
        SeriesBucket::Hour,
    ] {
        let s = pacing::series(&mut w.conn(), brand, None, None, bucket, now).unwrap();
        assert_eq!(s.total, brand_now.daily_spend, "{bucket:?}");
        let expected_points = 23 * 60 / (bucket.nominal().num_minutes() as usize);
        assert_eq!(s.points.len(), expected_points, "{bucket:?}: a 23-hour day");
        assert_eq!(s.from, utc("2026-03-28T23:00:00Z"));
    }
    let hourly = pacing::series(&mut w.conn(), brand, None, None, SeriesBucket::Hour, now).unwrap();
    // 01:00 local holds the 01:59 event, the next hour is 03:00 CEST with 4.5.
    assert_eq!(
        hourly.points[1].start.to_rfc3339(),
        "2026-03-29T01:00:00+01:00"
    );
    assert_eq!(hourly.points[1].spend, m("3"));
    assert_eq!(
        hourly.points[2].start.to_rfc3339(),
        "2026-03-29T03:00:00+02:00"
    );
    assert_eq!(hourly.points[2].spend, m("4.5"));
    let month = pacing::series(
        &mut w.conn(),
        brand,
        Some(utc("2026-02-28T23:00:00Z")),
        Some(utc("2026-03-31T22:00:00Z")),
        SeriesBucket::Day,
        now,
    )
    .unwrap();
    assert_eq!(month.points.len(), 31);
    assert_eq!(month.total, brand_now.monthly_spend);
    assert_eq!(month.points[27].spend, m("1.25"), "the 28th");
    assert_eq!(month.points[28].spend, brand_now.daily_spend, "the 29th");
    w.assert_verified(now);
}

/// A late event lands in the bucket it occurred in, not the one it arrived in; a reversal takes
/// its amount out of that bucket again; `verify` agrees throughout.
fn late_events_and_reversals_change_the_right_bucket(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-06-10T14:00:00Z");
    let brand = w.brand("B", "1000", "10000", "UTC", utc("2026-06-01T00:00:00Z"));
    let a = w.campaign(brand, "a", json!({}), utc("2026-06-01T00:00:00Z"));
    w.spend(a, "5", utc("2026-06-10T10:07:00Z"), now);
    w.spend(a, "2", utc("2026-06-10T13:58:00Z"), now);
    let series = |w: &crate::World| {
        pacing::series(
            &mut w.conn(),
            brand,
            Some(utc("2026-06-10T10:00:00Z")),
            Some(utc("2026-06-10T14:00:00Z")),
            SeriesBucket::FiveMinutes,
            now,
        )
        .unwrap()
    };
    let s = series(&w);
    assert_eq!(s.points.len(), 48);
    assert_eq!(s.points[1].spend, m("5"), "10:05");
    assert_eq!(s.points[47].spend, m("2"), "13:55");
    assert_eq!(s.total, m("7"));
    w.assert_verified(now);
    let log = spend::list(&mut w.conn(), a, None, None, Default::default())
        .unwrap()
        .items
        .into_iter()
        .find(|l| l.amount == m("5"))
        .unwrap();
    spend::reverse(
        &mut w.conn(),
        log.id,
        "duplicate",
        &Brands::All,
        now,
        &Author::cli(),
    )
    .unwrap();
    let s = series(&w);
    assert_eq!(s.points[1].spend, Money::ZERO, "the reversal subtracts");
    assert_eq!(s.total, m("2"));
    let p = pacing::brand(&mut w.conn(), brand, now).unwrap();
    assert_eq!(p.today.spend, m("2"));
    assert_eq!(
        p.today.spend_rate_per_hour,
        m("2"),
        "13:58 is within the last hour"
    );
    w.assert_verified(now);
}

/// Kolkata (+05:30), one campaign 09:00–17:00 local: at 13:00 local half the window has passed.
fn brand_pacing_mid_window_in_kolkata(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-06-01T00:00:00Z");
    let brand = w.brand("K", "80", "2400", "Asia/Kolkata", created);
    let window = json!([{"start": "09:00", "end": "17:00"}]);
    let a = w.campaign(brand, "a", json!({"dayparting": window}), created);
    let now = utc("2026-06-10T07:30:00Z"); // 13:00 local
    // 30 earlier in the window, 10 in the last hour: 40 spent, 40 expected, 10 an hour.
    w.spend(a, "30", utc("2026-06-10T04:00:00Z"), now);
    w.spend(a, "10", utc("2026-06-10T07:00:00Z"), now);
    let p = pacing::brand(&mut w.conn(), brand, now).unwrap();
    let today = &p.today;
    assert_eq!(today.eligible_seconds, 8 * 3600);
    assert_eq!(today.elapsed_eligible_seconds, 4 * 3600);
    assert_eq!(today.expected_spend, m("40"));
    assert_eq!(today.status, PaceStatus::OnTrack);
    assert_eq!(today.spend_rate_per_hour, m("10"));
    assert_eq!(today.projected_spend, m("80"));
    assert_eq!(
        today.projected_exhaustion_at,
        Some(utc("2026-06-10T11:30:00Z")),
        "17:00 local"
    );
    assert_eq!(today.starts_at, utc("2026-06-09T18:30:00Z"));
    // The month: 30 days of 8 eligible hours, 9 days and 4 hours of them passed.
    let month = &p.month;
    assert_eq!(month.eligible_seconds, 30 * 8 * 3600);
    assert_eq!(month.elapsed_eligible_seconds, (9 * 8 + 4) * 3600);
    assert_eq!(month.expected_spend, m("760"), "2400 × 76 ÷ 240");
    assert_eq!(month.status, PaceStatus::Behind);
}

/// New York's 25-hour day (fall back), no schedule: at 12:00 local 13 of the 25 hours have passed.
/// With no spend in the last hour, nothing is projected to run out.
fn brand_pacing_on_a_dst_day_in_new_york(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-10-01T00:00:00Z");
    let brand = w.brand("NY", "250", "10000", "America/New_York", created);
    let a = w.campaign(brand, "a", json!({}), created);
    let now = utc("2026-11-01T17:00:00Z");
    w.spend(a, "200", utc("2026-11-01T05:00:00Z"), now); // 01:00 EDT
    let p = pacing::brand(&mut w.conn(), brand, now).unwrap();
    assert_eq!(p.today.eligible_seconds, 25 * 3600);
    assert_eq!(p.today.expected_spend, m("130"));
    assert_eq!(p.today.status, PaceStatus::Ahead);
    assert_eq!(p.today.pace.unwrap().to_string(), "1.5385");
    assert_eq!(p.today.spend_rate_per_hour, Money::ZERO);
    assert_eq!(p.today.projected_spend, m("200"));
    assert_eq!(p.today.projected_exhaustion_at, None);
    // At the budget: exhausted.
    w.spend(a, "50", utc("2026-11-01T16:30:00Z"), now);
    let p = pacing::brand(&mut w.conn(), brand, now).unwrap();
    assert_eq!(p.today.status, PaceStatus::Exhausted);
    assert_eq!(p.today.projected_exhaustion_at, None);
}

/// A campaign is paced by its own caps within its own window; a cap it does not have is null.
fn campaign_pacing_paces_its_caps_only(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-06-01T00:00:00Z");
    let brand = w.brand("C", "1000", "10000", "UTC", created);
    let window = json!([{"start": "09:00", "end": "17:00"}]);
    let capped = w.campaign(
        brand,
        "capped",
        json!({"daily_cap": "80", "dayparting": window}),
        created,
    );
    let free = w.campaign(brand, "free", json!({}), created);
    let now = utc("2026-06-10T13:00:00Z");
    w.spend(capped, "20", utc("2026-06-10T12:30:00Z"), now);
    w.spend(free, "500", utc("2026-06-10T12:30:00Z"), now);
    let p = pacing::campaign(&mut w.conn(), capped, now).unwrap();
    let today = p.today.unwrap();
    assert_eq!(today.budget, m("80"));
    assert_eq!(today.spend, m("20"), "its own spend, not the brand's");
    assert_eq!(today.expected_spend, m("40"));
    assert_eq!(today.status, PaceStatus::Behind);
    assert_eq!(today.spend_rate_per_hour, m("20"));
    assert_eq!(
        today.projected_exhaustion_at,
        Some(utc("2026-06-10T16:00:00Z"))
    );
    assert!(p.month.is_none() && p.flight.is_none());
    let p = pacing::campaign(&mut w.conn(), free, now).unwrap();
    assert!(p.today.is_none() && p.month.is_none());
    // The brand's eligible time is the union: the free campaign runs all day.
    let b = pacing::brand(&mut w.conn(), brand, now).unwrap();
    assert_eq!(b.today.eligible_seconds, 24 * 3600);
}

/// Buckets are aligned in UTC: changing the brand's timezone rebuilds its day and month totals
/// and leaves its buckets as they are, and the series in the new timezone still sums to the day.
fn a_timezone_change_moves_no_bucket(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-06-01T00:00:00Z");
    let brand = w.brand("T", "1000", "10000", "UTC", created);
    let a = w.campaign(brand, "a", json!({}), created);
    let now = utc("2026-06-10T20:00:00Z");
    w.spend(a, "3", utc("2026-06-10T02:00:00Z"), now);
    w.spend(a, "4", utc("2026-06-10T19:00:00Z"), now);
    let changes = adbudget_core::forms::UpdateBrand {
        timezone: Some("Asia/Tokyo".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    brands::update(&mut w.conn(), brand, &changes, now, &Author::cli()).unwrap();
    // 20:00 UTC is 05:00 on the 11th in Tokyo: the 19:00 UTC spend is today's there.
    let b = brands::get(&mut w.conn(), brand, now).unwrap();
    assert_eq!(b.daily_spend, m("4"));
    let s = pacing::series(
        &mut w.conn(),
        brand,
        None,
        None,
        SeriesBucket::FiveMinutes,
        now,
    )
    .unwrap();
    assert_eq!(s.total, m("4"));
    assert_eq!(s.points.len(), 288);
    w.assert_verified(now);
}

/// A lifetime cap over a three-day flight: at noon on the second day half the flight's eligible
/// time has passed. Without a whole flight the cap is not paced.
fn a_lifetime_cap_is_paced_over_its_flight(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-05-20T00:00:00Z");
    let brand = w.brand("F", "1000", "10000", "UTC", created);
    let flighted = w.campaign(
        brand,
        "flighted",
        json!({"lifetime_cap": "300", "flight_start": "2026-06-01", "flight_end": "2026-06-03"}),
        created,
    );
    let open = w.campaign(
        brand,
        "open",
        json!({"lifetime_cap": "300", "flight_start": "2026-06-01"}),
        created,
    );
    let now = utc("2026-06-02T12:00:00Z");
    w.spend(flighted, "100", utc("2026-06-01T10:00:00Z"), now);
    let p = pacing::campaign(&mut w.conn(), flighted, now).unwrap();
    let flight = p.flight.unwrap();
    assert_eq!(flight.starts_at, utc("2026-06-01T00:00:00Z"));
    assert_eq!(flight.ends_at, utc("2026-06-04T00:00:00Z"));
    assert_eq!(flight.budget, m("300"));
    assert_eq!(flight.spend, m("100"));
    assert_eq!(flight.expected_spend, m("150"));
    assert_eq!(flight.status, PaceStatus::Behind);
    assert!(
        pacing::campaign(&mut w.conn(), open, now)
            .unwrap()
            .flight
            .is_none()
    );
}
