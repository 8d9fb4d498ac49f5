//! The midnight race the original lost: spend streaming in from several writers while the resets
//! and the full reconcile run. Afterwards spend logs, period totals and states all agree.

use std::sync::Arc;

use adbudget_core::jobs::JobKind;
use adbudget_core::money::Money;
use adbudget_testing::Backend;
use chrono::Duration;
use serde_json::json;

use crate::{on_both_databases, utc, world};

on_both_databases!(midnight_race_loses_nothing);

fn midnight_race_loses_nothing(backend: Backend) {
    let w = Arc::new(world(backend));
    // Local midnight in Berlin on the 1st of December: both a new day and a new month.
    let midnight = utc("2026-11-30T23:00:00Z");
    let before = midnight - Duration::minutes(10);
    let b = w.brand("Acme", "40", "60", "Europe/Berlin", before);
    let campaigns: Vec<i64> = (0..3)
        .map(|i| w.campaign(b, &format!("c{i}"), json!({"daily_cap": "15"}), before))
        .collect();

    // 4 writers × 150 events of 0.25: half occurred before midnight, half after, received after.
    let now = midnight + Duration::minutes(1);
    let writers: Vec<_> = (0..4)
        .map(|wi| {
            let w = w.clone();
            let campaigns = campaigns.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    let at = if i % 2 == 0 {
                        midnight - Duration::seconds(30)
                    } else {
                        midnight + Duration::seconds(30)
                    };
                    w.spend(campaigns[(wi + i) % 3], "0.25", at, now);
                }
            })
        })
        .collect();
    let jobs = {
        let w = w.clone();
        std::thread::spawn(move || {
            for _ in 0..15 {
                for kind in [
                    JobKind::ResetDaily,
                    JobKind::ResetMonthly,
                    JobKind::EnforceBudgets,
                    JobKind::ApplyDayparting,
                ] {
                    w.run(kind, now);
                }
            }
        })
    };
    for t in writers {
        t.join().unwrap();
    }
    jobs.join().unwrap();

    // 300 events of 0.25 on each side of midnight: 75.00 yesterday (November), 75.00 today (December).
    let mut conn = w.conn();
    let brand = adbudget_db::repo::brands::get(&mut conn, b, now).unwrap();
    assert_eq!(
        brand.daily_spend,
        Money::parse_positive("75").unwrap(),
        "nothing of yesterday counted today"
    );
    assert_eq!(
        brand.monthly_spend,
        Money::parse_positive("75").unwrap(),
        "nothing of November counted in December"
    );
    let november = adbudget_db::repo::brands::get(&mut conn, b, before).unwrap();
    assert_eq!(
        november.daily_spend,
        Money::parse_positive("75").unwrap(),
        "nothing lost before midnight"
    );
    drop(conn);
    // Today 75 ≥ 40 and 75 ≥ 60: every campaign is paused for the brand budgets.
    for c in &campaigns {
        let reasons = w.reasons(*c, now);
        assert!(
            reasons.contains(&"brand_daily_budget") && reasons.contains(&"brand_monthly_budget"),
            "{reasons:?}"
        );
    }
    w.assert_verified(now);
}
