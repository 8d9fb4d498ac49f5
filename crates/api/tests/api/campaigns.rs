use adbudget_testing::Backend;
use serde_json::json;

use crate::helpers::{on_both_databases, reasons, spawn_app};

on_both_databases!(
    campaign_lifecycle,
    flights_and_lifetime_caps,
    campaign_validation,
    manual_pause_survives_budget_changes,
    resume_clears_manual_only,
    raising_a_budget_brings_campaigns_back,
    new_campaign_of_a_brand_over_budget_starts_paused,
    timezone_change_moves_the_periods,
);

async fn campaign_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let other = app.create_brand("Other", "100", "1000").await;
    let c = app
        .create_campaign(
            &brand["id"],
            "Winter",
            json!({"daily_cap": "10", "monthly_cap": "50.25"}),
        )
        .await;
    assert_eq!(c["brand_id"], brand["id"]);
    assert_eq!(c["is_active"], true);
    assert_eq!(c["pause_reasons"], json!([]));
    assert_eq!(c["daily_cap"], "10.00");
    assert_eq!(c["monthly_cap"], "50.25");
    assert_eq!(c["daily_spend"], "0.00");
    assert_eq!(c["dayparting"], json!(null));
    for key in ["id", "name", "monthly_spend", "created_at", "updated_at"] {
        assert!(c.get(key).is_some(), "campaign JSON has {key}");
    }
    // The same name is fine in another brand, not in the same one.
    app.create_campaign(&other["id"], "Winter", json!({})).await;
    let dup = app
        .post(
            "/api/v1/campaigns",
            json!({"brand_id": brand["id"], "name": "Winter"}),
        )
        .await;
    assert_eq!((dup.status.as_u16(), dup.error_field()), (409, "name"));

    let id = &c["id"];
    let cleared = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            json!({"daily_cap": null, "name": "Winter sale"}),
        )
        .await
        .expect(200);
    assert_eq!(cleared["daily_cap"], json!(null));
    assert_eq!(cleared["monthly_cap"], "50.25", "absent fields are kept");
    assert_eq!(cleared["name"], "Winter sale");

    // Filters.
    app.post(&format!("/api/v1/campaigns/{id}/pause"), json!({}))
        .await
        .expect(200);
    let of_brand = app
        .get(&format!("/api/v1/campaigns?brand_id={}", brand["id"]))
        .await
        .expect(200);
    assert_eq!(of_brand["items"].as_array().unwrap().len(), 1);
    let active = app.get("/api/v1/campaigns?active=true").await.expect(200);
    assert_eq!(active["items"].as_array().unwrap().len(), 1);
    assert_eq!(active["items"][0]["brand_id"], other["id"]);
    let paused = app.get("/api/v1/campaigns?active=false").await.expect(200);
    assert_eq!(paused["items"][0]["id"], *id);
    let bad = app.get("/api/v1/campaigns?active=maybe").await;
    assert_eq!((bad.status.as_u16(), bad.error_field()), (422, "active"));

    app.delete(&format!("/api/v1/campaigns/{id}"))
        .await
        .expect(204);
    app.get(&format!("/api/v1/campaigns/{id}"))
        .await
        .expect(404);
    app.get(&format!("/api/v1/campaigns/{id}/history"))
        .await
        .expect(404);
    // Deleting a brand deletes its campaigns.
    let left = app
        .get(&format!("/api/v1/campaigns?brand_id={}", other["id"]))
        .await
        .expect(200);
    app.delete(&format!("/api/v1/brands/{}", other["id"]))
        .await
        .expect(204);
    app.get(&format!("/api/v1/campaigns/{}", left["items"][0]["id"]))
        .await
        .expect(404);
}

async fn campaign_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let missing = app
        .post(
            "/api/v1/campaigns",
            json!({"brand_id": 999_999, "name": "x"}),
        )
        .await;
    assert_eq!(
        (missing.status.as_u16(), missing.error_field()),
        (404, "brand_id")
    );
    let cases = [
        (
            json!({"brand_id": brand["id"], "name": "x", "daily_cap": "-5"}),
            "daily_cap",
        ),
        (
            json!({"brand_id": brand["id"], "name": "x", "monthly_cap": "0.0000001"}),
            "monthly_cap",
        ),
        (json!({"brand_id": brand["id"], "name": " "}), "name"),
        (json!({"brand_id": "one", "name": "x"}), "brand_id"),
        (
            json!({"brand_id": brand["id"], "name": "x", "dayparting": [{"start": "10:00", "end": "10:00"}]}),
            "dayparting[0].end",
        ),
        (
            json!({"brand_id": brand["id"], "name": "x", "dayparting": {"start_hour": 25, "end_hour": 3}}),
            "dayparting.start_hour",
        ),
    ];
    for (body, field) in cases {
        let resp = app.post("/api/v1/campaigns", body.clone()).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.body);
        assert_eq!(resp.error_field(), field, "{body}: {}", resp.body);
    }
    let list = app.get("/api/v1/campaigns").await.expect(200);
    assert_eq!(list["items"], json!([]), "nothing was stored");
}

async fn manual_pause_survives_budget_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let paused = app
        .post(&format!("/api/v1/campaigns/{}/pause", c["id"]), json!({}))
        .await
        .expect(200);
    assert_eq!(paused["is_active"], false);
    assert_eq!(reasons(&paused), ["manual"]);
    app.patch(
        &format!("/api/v1/brands/{}", brand["id"]),
        json!({"daily_budget": "5000", "monthly_budget": "9000"}),
    )
    .await
    .expect(200);
    app.spend(&c["id"], "1").await;
    assert_eq!(reasons(&app.campaign(&c["id"]).await), ["manual"]);
    let resumed = app
        .post(&format!("/api/v1/campaigns/{}/resume", c["id"]), json!({}))
        .await
        .expect(200);
    assert_eq!(resumed["is_active"], true);
    let history = app
        .get(&format!("/api/v1/campaigns/{}/history", c["id"]))
        .await
        .expect(200);
    let causes: Vec<_> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["cause"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        ["manual_resume", "manual_pause"],
        "newest first, one row per change"
    );
}

async fn resume_clears_manual_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app
        .create_campaign(&brand["id"], "c", json!({"daily_cap": "10"}))
        .await;
    app.post(&format!("/api/v1/campaigns/{}/pause", c["id"]), json!({}))
        .await
        .expect(200);
    let after = app.spend(&c["id"], "10").await;
    assert_eq!(
        reasons(&after["campaign"]),
        ["manual", "campaign_daily_cap"]
    );
    let resumed = app
        .post(&format!("/api/v1/campaigns/{}/resume", c["id"]), json!({}))
        .await
        .expect(200);
    assert_eq!(resumed["is_active"], false, "still over its cap");
    assert_eq!(reasons(&resumed), ["campaign_daily_cap"]);
    assert_eq!(resumed["manually_paused"], false);
}

async fn raising_a_budget_brings_campaigns_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "50", "1000").await;
    let a = app.create_campaign(&brand["id"], "a", json!({})).await;
    let b = app.create_campaign(&brand["id"], "b", json!({})).await;
    app.spend(&a["id"], "50").await;
    assert_eq!(
        reasons(&app.campaign(&b["id"]).await),
        ["brand_daily_budget"]
    );
    app.patch(
        &format!("/api/v1/brands/{}", brand["id"]),
        json!({"daily_budget": "80"}),
    )
    .await
    .expect(200);
    for c in [&a, &b] {
        let now = app.campaign(&c["id"]).await;
        assert_eq!(now["is_active"], true);
    }
    let history = app
        .get(&format!("/api/v1/campaigns/{}/history", b["id"]))
        .await
        .expect(200);
    assert_eq!(history["items"][0]["cause"], "brand_updated");
    assert_eq!(history["items"][0]["is_active"], true);
    assert_eq!(history["items"][1]["cause"], "spend");
    assert_eq!(
        history["items"][1]["pause_reasons"],
        json!(["brand_daily_budget"])
    );
    // Lowering a cap under the spend pauses at once.
    let capped = app
        .patch(
            &format!("/api/v1/campaigns/{}", a["id"]),
            json!({"daily_cap": "20"}),
        )
        .await
        .expect(200);
    assert_eq!(reasons(&capped), ["campaign_daily_cap"]);
}

async fn new_campaign_of_a_brand_over_budget_starts_paused(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Broke", "0", "100").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    assert_eq!(c["is_active"], false);
    assert_eq!(reasons(&c), ["brand_daily_budget"]);
}

async fn timezone_change_moves_the_periods(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    // 20 hours ago is yesterday in some timezone and today in another; whichever the brand uses,
    // its totals must equal the spend whose local date is today.
    let at = chrono::Utc::now() - chrono::Duration::hours(20);
    app.post_spend(json!({"campaign_id": c["id"], "amount": "7", "occurred_at": at.to_rfc3339()}))
        .await
        .expect(201);
    for tz in ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"] {
        let b = app
            .patch(
                &format!("/api/v1/brands/{}", brand["id"]),
                json!({"timezone": tz}),
            )
            .await
            .expect(200);
        let tz_: chrono_tz::Tz = tz.parse().unwrap();
        let today = chrono::Utc::now().with_timezone(&tz_).date_naive();
        let expected = if at.with_timezone(&tz_).date_naive() == today {
            "7.00"
        } else {
            "0.00"
        };
        assert_eq!(b["daily_spend"], expected, "in {tz}");
        assert_eq!(
            app.campaign(&c["id"]).await["daily_spend"],
            expected,
            "in {tz}"
        );
    }
}

/// Flights and lifetime caps over the API: shown on the campaign, validated with the field named
/// (the end against the start the campaign keeps, too), cleared with `null`.
async fn flights_and_lifetime_caps(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "1000", "10000").await;
    let c = app
        .create_campaign(
            &brand["id"],
            "c",
            json!({"lifetime_cap": "50", "flight_start": "2020-01-01", "flight_end": "2999-12-31"}),
        )
        .await;
    assert_eq!(c["lifetime_cap"], "50.00");
    assert_eq!(c["lifetime_spend"], "0.00");
    assert_eq!(
        (c["flight_start"].as_str(), c["flight_end"].as_str()),
        (Some("2020-01-01"), Some("2999-12-31"))
    );
    let spent = app.spend(&c["id"], "50").await;
    assert_eq!(spent["campaign"]["lifetime_spend"], "50.00");
    assert_eq!(reasons(&spent["campaign"]), ["campaign_lifetime_cap"]);
    let path = format!("/api/v1/campaigns/{}", c["id"]);
    for (body, field) in [
        (json!({"flight_end": "2019-12-31"}), "flight_end"),
        (json!({"flight_start": "3000-01-01"}), "flight_end"),
        (json!({"flight_start": "tomorrow"}), "flight_start"),
        (json!({"flight_end": "2026-02-30"}), "flight_end"),
        (json!({"lifetime_cap": "1000000000.000001"}), "lifetime_cap"),
        (json!({"lifetime_cap": "-1"}), "lifetime_cap"),
    ] {
        let resp = app.patch(&path, body.clone()).await;
        assert_eq!(resp.status.as_u16(), 422, "{body}: {}", resp.body);
        assert_eq!(resp.error_field(), field, "{body}");
    }
    let bad = app
        .post(
            "/api/v1/campaigns",
            json!({"brand_id": brand["id"], "name": "d", "flight_start": "2026-06-02", "flight_end": "2026-06-01"}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert_eq!(bad.error_field(), "flight_end");
    // Ended yesterday: paused for the flight too; clearing the end and raising the cap: active.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let ended = app
        .patch(&path, json!({"flight_end": yesterday}))
        .await
        .expect(200);
    assert_eq!(reasons(&ended), ["campaign_lifetime_cap", "flight"]);
    let cleared = app
        .patch(&path, json!({"flight_end": null, "lifetime_cap": "80"}))
        .await
        .expect(200);
    assert!(reasons(&cleared).is_empty(), "{cleared}");
    assert_eq!(cleared["flight_end"], serde_json::Value::Null);
    assert_eq!(cleared["flight_start"], "2020-01-01", "kept");
}
