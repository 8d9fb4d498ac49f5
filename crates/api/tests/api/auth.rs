use adbudget_domain::db::{self, testing::Backend};
use adbudget_domain::repo::tokens;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(tokens_and_scopes);

async fn tokens_and_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let campaign = app.create_campaign(&brand["id"], "c", json!({})).await;

    // No token, a malformed one, an unknown one: 401 with the error body.
    for token in [
        None,
        Some("nope"),
        Some("adb_0000000000000000000000000000000000000000"),
    ] {
        let resp = app
            .request(Method::GET, "/api/v1/brands", token, None)
            .await;
        assert_eq!(resp.status, 401, "{token:?}");
        assert_eq!(resp.body["error"]["code"], "unauthorized");
    }

    // Ingest tokens post spend and read, but cannot change configuration.
    let ingest = Some(app.ingest_token.as_str());
    app.request(Method::GET, "/api/v1/brands", ingest, None)
        .await
        .expect(200);
    app.request(
        Method::GET,
        &format!("/api/v1/campaigns/{}", campaign["id"]),
        ingest,
        None,
    )
    .await
    .expect(200);
    app.post_spend(json!({"campaign_id": campaign["id"], "amount": "1"}))
        .await
        .expect(201);
    let forbidden = [
        (
            Method::POST,
            "/api/v1/brands".to_owned(),
            Some(json!({"name": "X", "daily_budget": "1", "monthly_budget": "1"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/brands/{}", brand["id"]),
            Some(json!({"daily_budget": "1000000"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/brands/{}", brand["id"]),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/campaigns/{}/resume", campaign["id"]),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/campaigns/{}/dayparting", campaign["id"]),
            Some(json!({"start_hour": 1, "end_hour": 2})),
        ),
    ];
    for (method, path, body) in forbidden {
        let resp = app
            .request(method.clone(), &path, ingest, body.as_ref())
            .await;
        assert_eq!(resp.status, 403, "{method} {path}");
        assert_eq!(resp.body["error"]["code"], "forbidden");
    }
    assert_eq!(
        app.brand(&brand["id"]).await["daily_budget"],
        "100.00",
        "nothing changed"
    );

    // A revoked token stops working at once.
    let mut conn = db::get(&app.pool).unwrap();
    tokens::revoke(&mut conn, "test-ingest", adbudget_domain::forms::now()).unwrap();
    let resp = app
        .request(Method::GET, "/api/v1/brands", ingest, None)
        .await;
    assert_eq!(resp.status, 401);
}
