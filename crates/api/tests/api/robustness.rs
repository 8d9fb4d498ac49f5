use adbudget_domain::db::testing::Backend;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(no_input_gives_a_500, health_and_openapi);

async fn no_input_gives_a_500(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<String> = vec![
        "".into(),
        "null".into(),
        "[]".into(),
        "\"x\"".into(),
        "42".into(),
        "{}".into(),
        deep,
        r#"{"campaign_id": 1e999, "amount": "1"}"#.into(),
        r#"{"campaign_id": 99999999999999999999999, "amount": "1"}"#.into(),
        r#"{"campaign_id": -1, "amount": "1"}"#.into(),
        r#"{"campaign_id": 0, "amount": "1"}"#.into(),
        r#"{"amount": {"nested": [1, 2]}, "campaign_id": 1}"#.into(),
        r#"{"name": "\u0000", "daily_budget": "1", "monthly_budget": "1"}"#.into(),
        r#"{"name": "ok", "daily_budget": "١", "monthly_budget": "1"}"#.into(),
        r#"{"events": null}"#.into(),
        r#"{"events": [null]}"#.into(),
        r#"{"events": "all"}"#.into(),
        r#"{"start_hour": -1, "end_hour": 99999999999999999999}"#.into(),
        r#"{"windows": {"start": "09:00"}}"#.into(),
        r#"{"brand_id": 1, "name": "n", "dayparting": "9 to 5"}"#.into(),
        "\u{feff}{}".into(),
        "{\"a\":".into(),
        "\x00\x01\x02".into(),
    ];
    let id = c["id"].as_i64().unwrap();
    let paths = [
        (Method::POST, "/api/v1/spend".to_owned()),
        (Method::POST, "/api/v1/spend/batch".to_owned()),
        (Method::POST, "/api/v1/brands".to_owned()),
        (Method::PATCH, format!("/api/v1/brands/{}", brand["id"])),
        (Method::POST, "/api/v1/campaigns".to_owned()),
        (Method::PATCH, format!("/api/v1/campaigns/{id}")),
        (Method::PUT, format!("/api/v1/campaigns/{id}/dayparting")),
    ];
    for (method, path) in &paths {
        for body in &bodies {
            let resp = app.raw(method.clone(), path, body.clone()).await;
            let shown = &body[..body.len().min(60)];
            if body == "{}" && method == Method::PATCH {
                assert_eq!(resp.status, 200, "an empty patch changes nothing");
                continue;
            }
            assert!(
                resp.status.is_client_error(),
                "{method} {path} {shown:?} → {} {}",
                resp.status,
                resp.body
            );
            assert!(
                resp.body["error"]["code"].is_string(),
                "{method} {path}: error body {}",
                resp.body
            );
        }
    }
    for path in [
        "/api/v1/brands/abc",
        "/api/v1/brands/-1",
        "/api/v1/brands/99999999999999999999999",
        "/api/v1/campaigns/1.5",
        "/api/v1/campaigns?brand_id=x",
        "/api/v1/campaigns?limit=-3",
        "/api/v1/campaigns/0/history?cursor=%00",
        "/api/v1/nothing",
        "/nothing",
    ] {
        let resp = app.get(path).await;
        assert!(
            resp.status.is_client_error(),
            "{path} → {} {}",
            resp.status,
            resp.body
        );
    }
    // A body over the limit is a 413 with the error format.
    let big = format!(
        "{{\"events\": [{}]}}",
        vec!["{\"campaign_id\": 1, \"amount\": \"1\"}"; 300_000].join(",")
    );
    let resp = app.raw(Method::POST, "/api/v1/spend/batch", big).await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.body["error"]["code"], "payload_too_large");
    assert_eq!(
        app.brand(&brand["id"]).await["daily_spend"],
        "0.00",
        "nothing stored by any of it"
    );
}

async fn health_and_openapi(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app
        .request(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(health["status"], "ok");
    let ready = app
        .request(Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    assert_eq!(ready["status"], "ready");
    let doc = app
        .request(Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/brands",
        "/api/v1/brands/{id}",
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}",
        "/api/v1/campaigns/{id}/dayparting",
        "/api/v1/campaigns/{id}/pause",
        "/api/v1/campaigns/{id}/resume",
        "/api/v1/campaigns/{id}/history",
        "/api/v1/campaigns/{id}/spend",
        "/api/v1/spend",
        "/api/v1/spend/batch",
    ] {
        assert!(paths.contains_key(p), "OpenAPI documents {p}");
    }
    let ids: Vec<&str> = paths
        .values()
        .flat_map(|ops| {
            ops.as_object()
                .unwrap()
                .values()
                .filter_map(|op| op["operationId"].as_str())
        })
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "operation ids are unique: {ids:?}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
