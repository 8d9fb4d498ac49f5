use adbudget_testing::Backend;
use reqwest::Method;
use serde_json::json;

use std::time::{Duration, Instant};

use adbudget_api::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{on_both_databases, spawn_app, spawn_app_with_limits};

on_both_databases!(
    no_input_gives_a_500,
    health_and_openapi,
    slow_clients_are_cut_off
);

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
        format!("{}{}", "[".repeat(33), "]".repeat(33)),
        format!("{{\"events\": {}{}}}", "[".repeat(40), "]".repeat(40)),
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
    // The admin panel's lists, with absurd values of every query parameter.
    crate::security::admin_lists_take_any_query(&app).await;
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

/// Everything the server sends on `stream` until it closes the connection.
async fn read_until_closed(mut stream: TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("the server closes a stalled connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

async fn slow_clients_are_cut_off(backend: Backend) {
    let limits = Limits {
        request_head: Duration::from_secs(1),
        request_body: Duration::from_secs(1),
        keep_alive: Duration::from_secs(5),
    };
    let app = spawn_app_with_limits(backend, limits).await;
    let brand = app.create_brand("Acme", "1000", "10000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let addr = app.address.trim_start_matches("http://").to_owned();

    // Clients that send half a request head and stall, and clients that send the head and part of
    // the body and stall: more of them than the server has worker threads.
    let mut heads = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /api/v1/spend HTTP/1.1\r\nHost: x\r\nContent-Ty")
            .await
            .unwrap();
        heads.push(s);
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/spend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"campaign_id\": {}",
            app.ingest_token, c["id"]
        );
        s.write_all(head.as_bytes()).await.unwrap();
        bodies.push(s);
    }

    // Meanwhile everyone else is served.
    for i in 0..10 {
        app.request(
            Method::POST,
            "/api/v1/spend",
            Some(&app.ingest_token),
            Some(&json!({"campaign_id": c["id"], "amount": "1.00", "event_id": format!("ok-{i}")})),
        )
        .await
        .expect(201);
    }

    // The stalled clients are answered 408 and disconnected, well before anyone's patience runs out.
    let started = Instant::now();
    for s in heads {
        let answer = read_until_closed(s).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "a stalled request head: {answer:?}"
        );
    }
    for s in bodies {
        let answer = read_until_closed(s).await;
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains("\"request_timeout\""),
            "a stalled body: {answer:?}"
        );
    }
    eprintln!("stalled clients cut off after {:?}", started.elapsed());
    assert_eq!(
        app.campaign(&c["id"]).await["daily_spend"],
        "10.00",
        "the served events are stored, the stalled ones not"
    );
}
