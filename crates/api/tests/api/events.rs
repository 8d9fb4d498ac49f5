//! The change feed over HTTP (SPEC §9, §6): what a connector polling `GET /api/v1/events` sees.

use adbudget_core::access::Scope;
use adbudget_testing::Backend;
use serde_json::json;

use crate::access::new_token;
use crate::helpers::{TestApp, on_both_databases, spawn_app};

on_both_databases!(
    a_connector_follows_the_feed,
    a_waiting_request_returns_when_an_event_arrives,
    feed_parameters_are_checked,
    alert_thresholds_are_a_brand_field,
);

/// Follows the feed from `after` until it holds `n` events (PostgreSQL's horizon may hold events
/// back while other tests' transactions run): the events and the cursor after them.
async fn follow(
    app: &TestApp,
    token: &str,
    query: &str,
    n: usize,
) -> (Vec<serde_json::Value>, String) {
    let (mut all, mut cursor) = (Vec::new(), String::new());
    for _ in 0..600 {
        let sep = if query.is_empty() { "" } else { "&" };
        let page = app
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/events?after={cursor}{sep}{query}"),
                Some(token),
                None,
            )
            .await
            .expect(200);
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let items = page["items"].as_array().unwrap().clone();
        let empty = items.is_empty();
        all.extend(items);
        if empty && all.len() >= n {
            break;
        }
        if empty {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    (all, cursor)
}

async fn a_connector_follows_the_feed(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.create_brand("A", "10", "1000").await;
    let b = app.create_brand("B", "10", "1000").await;
    let ca = app.create_campaign(&a["id"], "a", json!({})).await;
    let cb = app.create_campaign(&b["id"], "b", json!({})).await;
    assert_eq!(ca["state_version"], 0);
    let after = app.spend(&ca["id"], "10").await;
    assert_eq!(after["campaign"]["state_version"], 1, "{after}");
    app.spend(&cb["id"], "6").await;

    let token = app.admin_token.clone();
    let (events, _) = follow(&app, &token, "", 5).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // A: 50 %, 80 %, 100 % and the pause (in one transaction); B: 50 %.
    assert_eq!(events.len(), 5, "{types:?}");
    let paused = events
        .iter()
        .find(|e| e["type"] == "campaign.paused")
        .unwrap();
    assert_eq!(paused["brand_id"], a["id"]);
    assert_eq!(paused["data"]["campaign"]["id"], ca["id"]);
    assert_eq!(
        paused["data"]["campaign"]["pause_reasons"],
        json!(["brand_daily_budget"])
    );
    assert_eq!(paused["data"]["state_version"], 1);
    assert!(paused["id"].as_str().unwrap().starts_with("evt_"));
    assert!(paused["created_at"].is_string());

    let (only, _) = follow(&app, &token, "type=budget.threshold_reached", 4).await;
    assert_eq!(only.len(), 4);
    let b_id = b["id"].as_i64().unwrap();
    let (of_b, _) = follow(&app, &token, &format!("brand_id={b_id}"), 1).await;
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0]["data"]["threshold_percent"], 50);

    // A token bound to brand B sees B's events only.
    let bound = new_token(&app, Scope::Read, Some(vec![b_id]));
    let (seen, _) = follow(&app, &bound, "", 1).await;
    assert_eq!(seen.len(), 1);
    assert!(seen.iter().all(|e| e["brand_id"] == b["id"]));
}

async fn a_waiting_request_returns_when_an_event_arrives(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("A", "10", "1000").await;
    let c = app.create_campaign(&brand["id"], "a", json!({})).await;
    let token = app.admin_token.clone();
    let (_, cursor) = follow(&app, &token, "", 0).await;
    let waiting = {
        let (address, token, cursor) = (app.address.clone(), token.clone(), cursor.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{address}/api/v1/events?after={cursor}&wait=30"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing to return yet: it waits");
    app.spend(&c["id"], "5").await;
    let page = waiting.await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["type"], "budget.threshold_reached");
    assert_ne!(page["next_cursor"], cursor.as_str());
}

async fn feed_parameters_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    for (query, field) in [
        ("after=12", "after"),
        ("after=-1-5", "after"),
        ("wait=61", "wait"),
        ("wait=-1", "wait"),
        ("type=campaign.deleted", "type"),
        ("limit=0", "limit"),
        ("brand_id=0", "brand_id"),
    ] {
        let resp = app.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(resp.status, 422, "{query}: {}", resp.body);
        assert_eq!(resp.error_field(), field, "{query}");
    }
    let resp = app.get("/api/v1/events?brand_id=999999").await;
    assert_eq!(
        resp.status, 200,
        "an admin token sees every brand, even one without events"
    );
}

async fn alert_thresholds_are_a_brand_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("A", "10", "1000").await;
    assert_eq!(brand["alert_thresholds"], json!([50, 80, 100]));
    let id = brand["id"].as_i64().unwrap();
    let patched = app
        .patch(
            &format!("/api/v1/brands/{id}"),
            json!({"alert_thresholds": [90, 25, 25]}),
        )
        .await
        .expect(200);
    assert_eq!(patched["alert_thresholds"], json!([25, 90]));
    for bad in [json!([0]), json!([101]), json!(["50"]), json!(50)] {
        let resp = app
            .patch(
                &format!("/api/v1/brands/{id}"),
                json!({"alert_thresholds": bad}),
            )
            .await;
        assert_eq!(resp.status, 422, "{bad}: {}", resp.body);
        assert!(
            resp.error_field().starts_with("alert_thresholds"),
            "{bad}: {}",
            resp.body
        );
    }
    let created = app
        .post(
            "/api/v1/brands",
            json!({"name": "B", "daily_budget": "1", "monthly_budget": "1", "alert_thresholds": []}),
        )
        .await
        .expect(201);
    assert_eq!(created["alert_thresholds"], json!([]));
    let audit = app
        .get(&format!("/api/v1/audit?object=brand:{id}"))
        .await
        .expect(200);
    let changes = &audit["items"][0]["changes"]["alert_thresholds"];
    assert_eq!(changes["new"], json!([25, 90]), "{audit}");
}

on_both_databases!(
    webhook_urls_are_checked_when_created,
    an_admin_manages_an_endpoint,
);

async fn webhook_urls_are_checked_when_created(backend: Backend) {
    let app = spawn_app(backend).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
        "http://93.184.216.34/hook",
        "not a url",
    ] {
        let resp = app.post("/api/v1/webhooks", json!({ "url": url })).await;
        assert_eq!(resp.status, 422, "{url}: {}", resp.body);
        assert_eq!(resp.error_field(), "url", "{url}");
    }
    for (body, field) in [
        (
            json!({"url": "https://93.184.216.34/", "event_types": ["campaign.deleted"]}),
            "event_types",
        ),
        (
            json!({"url": "https://93.184.216.34/", "event_types": ["ping"]}),
            "event_types",
        ),
        (
            json!({"url": "https://93.184.216.34/", "brand_ids": [0]}),
            "brand_ids",
        ),
    ] {
        let resp = app.post("/api/v1/webhooks", body.clone()).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.body);
        assert_eq!(resp.error_field(), field);
    }
    let listed = app.get("/api/v1/webhooks").await.expect(200);
    assert_eq!(listed, json!([]), "nothing was stored");
}

async fn an_admin_manages_an_endpoint(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| s.with_webhook_allow_private(true)).await;
    let created = app
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["campaign.paused"], "description": "connector"}),
        )
        .await
        .expect(201);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["endpoint"]["id"].as_i64().unwrap();
    let shown = app.get(&format!("/api/v1/webhooks/{id}")).await.expect(200);
    assert!(
        !shown.to_string().contains(&secret),
        "the secret is shown once"
    );
    assert_eq!(shown["event_types"], json!(["campaign.paused"]));
    assert_eq!(shown["enabled"], true);

    let ping = app
        .post(&format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await
        .expect(202);
    assert!(ping["delivery_id"].is_i64());
    let log = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    assert_eq!(log[0]["event_type"], "ping");
    assert_eq!(log[0]["status"], "pending");
    let d = log[0]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/webhooks/{id}/deliveries/{d}/redeliver"),
        json!({}),
    )
    .await
    .expect(202);
    app.post(
        &format!("/api/v1/webhooks/{id}/deliveries/{}/redeliver", d + 100),
        json!({}),
    )
    .await
    .expect(404);

    let rotated = app
        .post(&format!("/api/v1/webhooks/{id}/rotate-secret"), json!({}))
        .await
        .expect(200);
    assert_ne!(rotated["secret"], secret.as_str());
    let patched = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"enabled": false, "event_types": null}),
        )
        .await
        .expect(200);
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["event_types"], serde_json::Value::Null);
    let audit = app
        .get(&format!("/api/v1/audit?object=webhook:{id}"))
        .await
        .expect(200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["update", "rotate_secret", "create"]);
    app.delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(204);
    app.get(&format!("/api/v1/webhooks/{id}")).await.expect(404);
}
