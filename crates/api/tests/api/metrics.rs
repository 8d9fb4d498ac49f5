use adbudget_domain::db::testing::Backend;
use serde_json::json;

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(metrics_show_spend_and_campaign_states);

/// The value of a sample line `name{labels} value` in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn metrics_show_spend_and_campaign_states(backend: Backend) {
    let app = spawn_app(backend).await;
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

    // No token needed to scrape.
    let resp = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    // The recorder is shared by every test in this process: counters only grow.
    assert!(
        sample(&text, r#"adbudget_spend_events_total{outcome="recorded"}"#).unwrap() >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "adbudget_spend_amount_micros_total").unwrap() >= 5_000_000.0);
    assert!(text.contains("adbudget_spend_request_duration_seconds_bucket{endpoint=\"single\""));
    assert!(text.contains("adbudget_spend_batch_size_bucket"));
    // The state gauges are read from this test's database at scrape time.
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
    assert!(
        !text.contains(&app.admin_token),
        "no secret in the exposition"
    );
}
