use adbudget_testing::Backend;
use serde_json::json;

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(
    brand_lifecycle,
    brand_validation_names_the_field,
    brands_paginate
);

async fn brand_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .post(
            "/api/v1/brands",
            json!({"name": "Acme", "daily_budget": "100.5", "monthly_budget": "2000", "timezone": "Europe/Berlin"}),
        )
        .await
        .expect(201);
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["daily_budget"], "100.50");
    assert_eq!(created["monthly_budget"], "2000.00");
    assert_eq!(created["timezone"], "Europe/Berlin");
    assert_eq!(created["daily_spend"], "0.00");
    assert_eq!(created["monthly_spend"], "0.00");
    let id = &created["id"];

    assert_eq!(app.brand(id).await["name"], "Acme");

    let default_tz = app.create_brand("Northwind", "10", "100").await;
    assert_eq!(default_tz["timezone"], "UTC");

    let updated = app
        .patch(
            &format!("/api/v1/brands/{id}"),
            json!({"daily_budget": "150", "name": "Acme GmbH"}),
        )
        .await
        .expect(200);
    assert_eq!(updated["daily_budget"], "150.00");
    assert_eq!(updated["name"], "Acme GmbH");
    assert_eq!(
        updated["monthly_budget"], "2000.00",
        "fields left out are kept"
    );

    let dup = app
        .post(
            "/api/v1/brands",
            json!({"name": "Northwind", "daily_budget": "1", "monthly_budget": "1"}),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.error_field(), "name");
    let dup = app
        .patch(
            &format!("/api/v1/brands/{id}"),
            json!({"name": "Northwind"}),
        )
        .await;
    assert_eq!(dup.status, 409);

    app.delete(&format!("/api/v1/brands/{id}"))
        .await
        .expect(204);
    app.get(&format!("/api/v1/brands/{id}")).await.expect(404);
    app.delete(&format!("/api/v1/brands/{id}"))
        .await
        .expect(404);
    app.patch(&format!("/api/v1/brands/{id}"), json!({"name": "x"}))
        .await
        .expect(404);
}

async fn brand_validation_names_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"name": "A", "daily_budget": "-1", "monthly_budget": "1"}),
            "daily_budget",
        ),
        (
            json!({"name": "A", "daily_budget": "1.0000001", "monthly_budget": "1"}),
            "daily_budget",
        ),
        (
            json!({"name": "A", "daily_budget": 10, "monthly_budget": "1"}),
            "daily_budget",
        ),
        (
            json!({"name": "A", "daily_budget": "1", "monthly_budget": "lots"}),
            "monthly_budget",
        ),
        (
            json!({"name": "A", "daily_budget": "1", "monthly_budget": "99999999999999999"}),
            "monthly_budget",
        ),
        (
            json!({"name": "A", "daily_budget": "1", "monthly_budget": "1", "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (
            json!({"name": "", "daily_budget": "1", "monthly_budget": "1"}),
            "name",
        ),
        (
            json!({"name": "x".repeat(201), "daily_budget": "1", "monthly_budget": "1"}),
            "name",
        ),
        (json!({"daily_budget": "1", "monthly_budget": "1"}), "name"),
        (
            json!({"name": "A", "daily_budget": "1", "monthly_budget": "1", "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let resp = app.post("/api/v1/brands", body.clone()).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.body);
        assert_eq!(resp.error_field(), field, "{body}: {}", resp.body);
        assert_eq!(resp.body["error"]["code"], "invalid");
        assert!(!resp.body["error"]["message"].as_str().unwrap().is_empty());
    }
    // A budget of zero is allowed (it allows no spend).
    app.create_brand("Zero", "0", "0").await;
    let listed = app.get("/api/v1/brands").await.expect(200);
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "rejected requests stored nothing"
    );

    let id = &listed["items"][0]["id"];
    let resp = app
        .patch(
            &format!("/api/v1/brands/{id}"),
            json!({"timezone": "Nowhere"}),
        )
        .await;
    assert_eq!(
        (resp.status.as_u16(), resp.error_field()),
        (422, "timezone")
    );
    assert_eq!(app.brand(id).await["timezone"], "UTC");
}

async fn brands_paginate(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..5 {
        app.create_brand(&format!("Brand {i}"), "1", "1").await;
    }
    let first = app.get("/api/v1/brands?limit=2").await.expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app
        .get(&format!("/api/v1/brands?limit=2&cursor={cursor}"))
        .await
        .expect(200);
    let third = app
        .get(&format!(
            "/api/v1/brands?limit=2&cursor={}",
            second["next_cursor"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(third["items"].as_array().unwrap().len(), 1);
    assert!(third["next_cursor"].is_null());
    let names: Vec<_> = [&first, &second, &third]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        names,
        (0..5).map(|i| format!("Brand {i}")).collect::<Vec<_>>()
    );
    for bad in ["limit=0", "limit=501", "limit=x", "cursor=abc"] {
        let resp = app.get(&format!("/api/v1/brands?{bad}")).await;
        assert_eq!(resp.status, 422, "{bad}");
        assert_eq!(resp.error_field(), bad.split('=').next().unwrap());
    }
}
