//! The pacing routes over HTTP (SPEC §6, §10): their JSON as a client reads it, the figures
//! agreeing with the brand's and campaign's own, and bad parameters refused with the field named.
//! The arithmetic on fixed clocks is tested in the core and in the db crate's `pacing` tests.

use adbudget_testing::Backend;
use serde_json::json;

use crate::helpers::{micros, on_both_databases, spawn_app};

on_both_databases!(
    pacing_agrees_with_the_brand_and_the_campaign,
    series_sums_to_the_day_and_the_month,
    bad_series_parameters_are_422_naming_the_field,
);

async fn pacing_agrees_with_the_brand_and_the_campaign(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "3000").await;
    let capped = app
        .create_campaign(&brand["id"], "capped", json!({"daily_cap": "50"}))
        .await;
    let free = app.create_campaign(&brand["id"], "free", json!({})).await;
    app.spend(&capped["id"], "12.5").await;
    app.spend(&free["id"], "20").await;
    let p = app
        .get(&format!("/api/v1/brands/{}/pacing", brand["id"]))
        .await
        .expect(200);
    let b = app.brand(&brand["id"]).await;
    assert_eq!(p["brand_id"], brand["id"]);
    assert_eq!(p["timezone"], "UTC");
    assert_eq!(p["today"]["period"], "today");
    assert_eq!(p["today"]["budget"], "100.00");
    assert_eq!(p["today"]["spend"], b["daily_spend"]);
    assert_eq!(p["month"]["spend"], b["monthly_spend"]);
    assert_eq!(
        p["today"]["spend_rate_per_hour"], "32.50",
        "all of it in the last hour"
    );
    assert_eq!(p["today"]["eligible_seconds"], 24 * 3600);
    let expected = micros(&p["today"]["expected_spend"]);
    assert!(expected > 0 && expected <= 100_000_000);
    for key in [
        "pace",
        "status",
        "projected_spend",
        "projected_exhaustion_at",
        "starts_at",
        "ends_at",
    ] {
        assert!(p["today"].get(key).is_some(), "today.{key}");
    }
    assert!(["behind", "on_track", "ahead"].contains(&p["today"]["status"].as_str().unwrap()));
    let c = app
        .get(&format!("/api/v1/campaigns/{}/pacing", capped["id"]))
        .await
        .expect(200);
    assert_eq!(c["today"]["budget"], "50.00");
    assert_eq!(c["today"]["spend"], "12.50");
    assert_eq!(c["month"], serde_json::Value::Null, "no monthly cap");
    assert_eq!(c["flight"], serde_json::Value::Null);
    let f = app
        .get(&format!("/api/v1/campaigns/{}/pacing", free["id"]))
        .await
        .expect(200);
    assert_eq!((&f["today"], &f["month"]), (&json!(null), &json!(null)));
    // Spending the rest of the brand's budget: exhausted, nothing left to project.
    app.spend(&free["id"], "67.5").await;
    let p = app
        .get(&format!("/api/v1/brands/{}/pacing", brand["id"]))
        .await
        .expect(200);
    assert_eq!(p["today"]["status"], "exhausted");
    assert_eq!(p["today"]["projected_exhaustion_at"], json!(null));
    app.get("/api/v1/brands/999999/pacing").await.expect(404);
    app.get("/api/v1/campaigns/999999/pacing").await.expect(404);
}

async fn series_sums_to_the_day_and_the_month(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "1000", "30000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let now = chrono::Utc::now();
    for (minutes_ago, amount) in [(0, "1.5"), (7, "2.25"), (61, "3"), (120, "0.000001")] {
        let at = now - chrono::Duration::minutes(minutes_ago);
        app.post_spend(json!({"campaign_id": c["id"], "amount": amount, "occurred_at": at}))
            .await
            .expect(201);
    }
    let b = app.brand(&brand["id"]).await;
    for bucket in ["5m", "15m", "1h"] {
        let s = app
            .get(&format!(
                "/api/v1/brands/{}/spend/series?bucket={bucket}",
                brand["id"]
            ))
            .await
            .expect(200);
        assert_eq!(s["bucket"], bucket);
        assert_eq!(s["total"], b["daily_spend"], "{bucket}");
        let sum: i64 = s["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| micros(&p["spend"]))
            .sum();
        assert_eq!(
            sum,
            micros(&b["daily_spend"]),
            "{bucket}: the points add up"
        );
    }
    let month_start = now.format("%Y-%m-01T00:00:00Z").to_string();
    let s = app
        .get(&format!(
            "/api/v1/brands/{}/spend/series?bucket=1d&from={month_start}&to={}",
            brand["id"],
            (now + chrono::Duration::days(1)).format("%Y-%m-%dT00:00:00Z")
        ))
        .await
        .expect(200);
    assert_eq!(s["total"], b["monthly_spend"]);
    assert!(
        s["points"][0]["start"]
            .as_str()
            .unwrap()
            .starts_with(&month_start[..10])
    );
}

async fn bad_series_parameters_are_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "1000", "30000").await;
    let base = format!("/api/v1/brands/{}/spend/series", brand["id"]);
    for (query, field) in [
        ("bucket=2m", "bucket"),
        ("bucket=", "bucket"),
        ("from=yesterday", "from"),
        ("from=2026-06-10T10:00:00Z&to=2026-06-10T10:00:00Z", "to"),
        ("from=2026-06-10T10:00:00Z&to=2026-06-09T10:00:00Z", "to"),
        (
            "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&bucket=5m",
            "from",
        ),
        (
            "from=0001-01-01T00:00:00Z&to=9999-01-01T00:00:00Z&bucket=1d",
            "from",
        ),
    ] {
        let resp = app.get(&format!("{base}?{query}")).await;
        assert_eq!(resp.status.as_u16(), 422, "{query}: {}", resp.body);
        assert_eq!(resp.error_field(), field, "{query}");
    }
    // A year of days is fine.
    let s = app
        .get(&format!(
            "{base}?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&bucket=1d"
        ))
        .await
        .expect(200);
    assert_eq!(s["points"].as_array().unwrap().len(), 365);
}
