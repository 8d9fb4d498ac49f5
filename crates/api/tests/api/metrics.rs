use adbudget_testing::Backend;
use serde_json::json;

use std::time::{Duration, Instant};

use adbudget_api::state::AppState;
use adbudget_db as db;

use crate::helpers::{TestApp, on_both_databases, spawn_app_with};

on_both_databases!(
    metrics_show_spend_and_campaign_states,
    a_scrape_does_no_database_work
);

/// An app that refreshes its gauges often (the recorder is per process: the other tests' apps
/// publish none).
async fn spawn_app_with_gauges(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s: AppState| {
        s.with_gauge_refresh(Duration::from_millis(100))
    })
    .await
}

async fn scrape(app: &TestApp) -> String {
    let resp = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of a sample line `name{labels} value` in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn metrics_show_spend_and_campaign_states(backend: Backend) {
    let app = spawn_app_with_gauges(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let a = app
        .create_campaign(&brand["id"], "a", json!({"daily_cap": "5"}))
        .await;
    let b = app.create_campaign(&brand["id"], "b", json!({})).await;
    app.create_campaign(&brand["id"], "c", json!({})).await;
    app.post(&format!("/api/v1/campaigns/{}/pause", b["id"]), json!({}))
        .await
        .expect(200);
    app.spend(&a["id"], "5").await;

    // No token needed to scrape. The gauges are refreshed in the background: wait for a refresh
    // that saw this state.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = scrape(&app).await;
    while sample(&text, r#"adbudget_campaigns{state="paused"}"#) != Some(2.0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape(&app).await;
    }
    // The recorder is shared by every test in this process: counters only grow.
    assert!(
        sample(&text, r#"adbudget_spend_events_total{outcome="recorded"}"#).unwrap() >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "adbudget_spend_amount_micros_total").unwrap() >= 5_000_000.0);
    assert!(text.contains("adbudget_spend_request_duration_seconds_bucket{endpoint=\"single\""));
    assert!(text.contains("adbudget_spend_batch_size_bucket"));
    // The state gauges are read from this test's database.
    assert_eq!(
        sample(&text, r#"adbudget_campaigns{state="active"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"adbudget_campaigns{state="paused"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"adbudget_campaigns_paused{reason="manual"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"adbudget_campaigns_paused{reason="campaign_daily_cap"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"adbudget_campaigns_paused{reason="dayparting"}"#),
        Some(0.0)
    );
    // The brand's pace: 5 spent against the even share of 100 (1000) expected by now. The gauge
    // is labelled by brand id, which this test's twin on the other backend shares, and which it
    // may set to 0 before its own spend: wait for a refresh of ours.
    for period in ["today", "month"] {
        let series = format!(
            r#"adbudget_brand_pace{{brand_id="{}",period="{period}"}}"#,
            brand["id"]
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut text = scrape(&app).await;
        while !sample(&text, &series).is_some_and(|p| p > 0.0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            text = scrape(&app).await;
        }
        let pace = sample(&text, &series).unwrap_or_else(|| panic!("{series} in {text}"));
        assert!(pace > 0.0, "{series} = {pace}");
    }
    assert!(
        !text.contains(&app.admin_token),
        "no secret in the exposition"
    );
}

/// `/metrics` is anonymous: a scrape must not touch the database (it used to run a GROUP BY over
/// every campaign, holding a pool connection). With every connection of the pool taken, scrapes
/// are still answered at once.
async fn a_scrape_does_no_database_work(backend: Backend) {
    let app = spawn_app_with_gauges(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    app.create_campaign(&brand["id"], "a", json!({})).await;
    // The helpers' pool has 8 connections: hold them all.
    let held: Vec<_> = (0..8).map(|_| db::get(&app.pool).unwrap()).collect();
    let started = Instant::now();
    for _ in 0..20 {
        scrape(&app).await;
    }
    let took = started.elapsed();
    drop(held);
    // Not a speed figure: a scrape that needed a connection would wait out the pool's checkout
    // timeout before answering.
    assert!(
        took < db::CHECKOUT_TIMEOUT,
        "20 scrapes took {took:?} with the pool exhausted: they waited for a connection"
    );
}
