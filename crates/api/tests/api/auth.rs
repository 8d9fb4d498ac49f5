use adbudget_db as db;
use adbudget_db::repo::tokens;
use adbudget_testing::Backend;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(tokens_and_scopes, spend_needs_a_live_token);

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
    tokens::revoke(
        &mut conn,
        tokens::TokenRef::NameOrId("test-ingest"),
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    let resp = app
        .request(Method::GET, "/api/v1/brands", ingest, None)
        .await;
    assert_eq!(resp.status, 401);
}

/// `POST /spend` leaves the token check to the group-commit writer, which checks a whole batch's
/// tokens at once: requests with live and dead tokens in the same batches get their own answers.
async fn spend_needs_a_live_token(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let brand = app.create_brand("Acme", "100000", "1000000").await;
    let campaign = app.create_campaign(&brand["id"], "c", json!({})).await;
    let revoked = {
        let mut conn = db::get(&app.pool).unwrap();
        let now = adbudget_core::forms::now();
        let (_, secret) = tokens::create(
            &mut conn,
            &tokens::NewToken::new("old", tokens::Scope::Ingest),
            now,
            &adbudget_core::access::Author::cli(),
        )
        .unwrap();
        tokens::revoke(
            &mut conn,
            tokens::TokenRef::NameOrId("old"),
            now,
            &adbudget_core::access::Author::cli(),
        )
        .unwrap();
        secret
    };
    let unknown = "adb_0000000000000000000000000000000000000000".to_owned();
    let post = |token: Option<String>, body: serde_json::Value| {
        let app = app.clone();
        tokio::spawn(async move {
            app.request(Method::POST, "/api/v1/spend", token.as_deref(), Some(&body))
                .await
        })
    };

    // Concurrent requests, so that live and dead tokens share batches.
    let mut sent = Vec::new();
    for i in 0..60 {
        let token = match i % 3 {
            0 => app.ingest_token.clone(),
            1 => revoked.clone(),
            _ => unknown.clone(),
        };
        let body =
            json!({"campaign_id": campaign["id"], "amount": "1", "event_id": format!("e{i}")});
        sent.push((i % 3 == 0, post(Some(token), body)));
    }
    for (live, request) in sent {
        let resp = request.await.unwrap();
        if live {
            resp.expect(201);
        } else {
            assert_eq!(resp.status, 401, "{}", resp.body);
            assert_eq!(resp.body["error"]["code"], "unauthorized");
        }
    }
    let logs = app
        .all_pages(&format!("/api/v1/campaigns/{}/spend", campaign["id"]))
        .await;
    assert_eq!(logs.len(), 20, "only the live token's events are stored");
    assert_eq!(app.campaign(&campaign["id"]).await["daily_spend"], "20.00");

    // An invalid event is answered 422 only to a live token; others learn nothing but 401.
    let bad = json!({"campaign_id": campaign["id"], "amount": "-1"});
    let resp = post(Some(unknown.clone()), bad.clone()).await.unwrap();
    assert_eq!(resp.status, 401, "{}", resp.body);
    let resp = post(None, bad.clone()).await.unwrap();
    assert_eq!(resp.status, 401, "{}", resp.body);
    let resp = post(Some("not-a-token".to_owned()), bad.clone())
        .await
        .unwrap();
    assert_eq!(resp.status, 401, "{}", resp.body);
    let resp = post(Some(app.ingest_token.clone()), bad).await.unwrap();
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(resp.body["error"]["field"], "amount");

    // Revocation takes effect at the next request.
    {
        let mut conn = db::get(&app.pool).unwrap();
        tokens::revoke(
            &mut conn,
            tokens::TokenRef::NameOrId("test-ingest"),
            adbudget_core::forms::now(),
            &adbudget_core::access::Author::cli(),
        )
        .unwrap();
    }
    let body = json!({"campaign_id": campaign["id"], "amount": "1"});
    let resp = post(Some(app.ingest_token.clone()), body).await.unwrap();
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(app.campaign(&campaign["id"]).await["daily_spend"], "20.00");
}
