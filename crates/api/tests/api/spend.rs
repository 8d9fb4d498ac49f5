use adbudget_testing::Backend;
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, micros, on_both_databases, reasons, spawn_app};

on_both_databases!(
    brand_budget_pauses_every_campaign_in_the_same_response,
    brand_budget_keeps_the_other_campaigns_own_reasons,
    caps_pause_only_their_campaign,
    exactly_at_the_budget_pauses,
    budget_zero_allows_no_spend,
    idempotent_replays,
    event_ids_are_unique_per_brand,
    spend_logs_record_their_brand_and_token,
    spend_validation,
    late_and_future_events,
    batch_all_or_nothing,
    batch_applies_in_one_transaction,
    spend_logs_list_and_filter,
    concurrent_spend_loses_nothing,
    an_idle_writer_holds_no_connection,
);

async fn brand_budget_pauses_every_campaign_in_the_same_response(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "10000").await;
    let a = app.create_campaign(&brand["id"], "a", json!({})).await;
    let b = app.create_campaign(&brand["id"], "b", json!({})).await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let first = app.spend(&a["id"], "60").await;
    assert_eq!(first["campaign"]["is_active"], true);
    assert_eq!(first["campaign"]["daily_spend"], "60.00");
    // Budgets apply to the sum of the brand's campaigns, not per campaign.
    let second = app.spend(&b["id"], "40").await;
    assert_eq!(
        second["campaign"]["is_active"], false,
        "the response already shows the pause"
    );
    assert_eq!(reasons(&second["campaign"]), ["brand_daily_budget"]);
    for id in [&a["id"], &c["id"]] {
        assert_eq!(reasons(&app.campaign(id).await), ["brand_daily_budget"]);
    }
    let history = app
        .get(&format!("/api/v1/campaigns/{}/history", c["id"]))
        .await
        .expect(200);
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert_eq!(history["items"][0]["cause"], "spend");
    assert_eq!(history["items"][0]["is_active"], false);
    let brand = app.brand(&brand["id"]).await;
    assert_eq!(brand["daily_spend"], "100.00");
    assert_eq!(brand["monthly_spend"], "100.00");
    // Spend keeps being recorded while paused: it happened.
    let more = app.spend(&c["id"], "5").await;
    assert_eq!(more["campaign"]["daily_spend"], "5.00");
    let history = app
        .get(&format!("/api/v1/campaigns/{}/history", c["id"]))
        .await
        .expect(200);
    assert_eq!(
        history["items"].as_array().unwrap().len(),
        1,
        "no change, no history row"
    );
}

/// When one campaign's spend brings its brand to budget, the brand's other campaigns are judged
/// with their own totals too (which that spend did not touch): a cap they had reached stays.
async fn brand_budget_keeps_the_other_campaigns_own_reasons(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "10000").await;
    let capped = app
        .create_campaign(&brand["id"], "capped", json!({"daily_cap": "60"}))
        .await;
    let other = app.create_campaign(&brand["id"], "other", json!({})).await;
    let first = app.spend(&capped["id"], "60").await;
    assert_eq!(reasons(&first["campaign"]), ["campaign_daily_cap"]);
    let second = app.spend(&other["id"], "40").await;
    assert_eq!(reasons(&second["campaign"]), ["brand_daily_budget"]);
    let capped = app.campaign(&capped["id"]).await;
    assert_eq!(
        reasons(&capped),
        ["brand_daily_budget", "campaign_daily_cap"],
        "{capped}"
    );
    assert_eq!(capped["daily_spend"], "60.00");
}

async fn caps_pause_only_their_campaign(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "1000", "10000").await;
    let capped = app
        .create_campaign(
            &brand["id"],
            "capped",
            json!({"daily_cap": "10", "monthly_cap": "15"}),
        )
        .await;
    let free = app.create_campaign(&brand["id"], "free", json!({})).await;
    let r = app.spend(&capped["id"], "10").await;
    assert_eq!(reasons(&r["campaign"]), ["campaign_daily_cap"]);
    assert_eq!(app.campaign(&free["id"]).await["is_active"], true);
    let r = app.spend(&capped["id"], "5").await;
    assert_eq!(
        reasons(&r["campaign"]),
        ["campaign_daily_cap", "campaign_monthly_cap"]
    );
    assert_eq!(app.campaign(&free["id"]).await["is_active"], true);
}

async fn exactly_at_the_budget_pauses(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "10", "10000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let under = app.spend(&c["id"], "9.999999").await;
    assert_eq!(
        under["campaign"]["is_active"], true,
        "under budget stays active"
    );
    let at = app.spend(&c["id"], "0.000001").await;
    assert_eq!(at["campaign"]["daily_spend"], "10.00");
    assert_eq!(
        at["campaign"]["is_active"], false,
        "exactly at the budget pauses"
    );
    let above = app.spend(&c["id"], "3").await;
    assert_eq!(above["campaign"]["is_active"], false, "above pauses");
    // Monthly budget too.
    let brand2 = app.create_brand("Monthly", "1000", "20").await;
    let m = app.create_campaign(&brand2["id"], "m", json!({})).await;
    let r = app.spend(&m["id"], "20").await;
    assert_eq!(reasons(&r["campaign"]), ["brand_monthly_budget"]);
}

async fn budget_zero_allows_no_spend(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app
        .create_campaign(&brand["id"], "c", json!({"daily_cap": "0"}))
        .await;
    assert_eq!(reasons(&c), ["campaign_daily_cap"]);
}

/// SPEC §3: `event_id` is unique per brand. Two brands' connectors using the same ids both get
/// their spend counted (before, the second was refused with 409 and never counted: an overspend),
/// and ids recorded in one brand cannot be taken away from another's connector.
async fn event_ids_are_unique_per_brand(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_brand("Acme", "100", "1000").await;
    let globex = app.create_brand("Globex", "100", "1000").await;
    let a = app.create_campaign(&acme["id"], "a", json!({})).await;
    let g = app.create_campaign(&globex["id"], "g", json!({})).await;
    let first = app
        .post_spend(json!({"campaign_id": a["id"], "amount": "10", "event_id": "2026-11-30-0001"}))
        .await
        .expect(201);
    let second = app
        .post_spend(json!({"campaign_id": g["id"], "amount": "30", "event_id": "2026-11-30-0001"}))
        .await
        .expect(201);
    assert_ne!(first["spend"]["id"], second["spend"]["id"]);
    assert_eq!(app.brand(&acme["id"]).await["daily_spend"], "10.00");
    assert_eq!(app.brand(&globex["id"]).await["daily_spend"], "30.00");
    // Within a brand the id still identifies one event: a replay counts nothing, another payload
    // is a conflict, in single and batch requests alike.
    app.post_spend(json!({"campaign_id": g["id"], "amount": "30", "event_id": "2026-11-30-0001"}))
        .await
        .expect(200);
    let other = app.create_campaign(&globex["id"], "other", json!({})).await;
    let resp = app
        .post_spend(
            json!({"campaign_id": other["id"], "amount": "30", "event_id": "2026-11-30-0001"}),
        )
        .await;
    assert_eq!(
        (resp.status.as_u16(), resp.error_field()),
        (409, "event_id")
    );
    let batch = app
        .post(
            "/api/v1/spend/batch",
            json!({"events": [
                {"campaign_id": a["id"], "amount": "10", "event_id": "2026-11-30-0001"},
                {"campaign_id": g["id"], "amount": "30", "event_id": "2026-11-30-0001"},
                {"campaign_id": a["id"], "amount": "1", "event_id": "2026-11-30-0002"},
                {"campaign_id": g["id"], "amount": "2", "event_id": "2026-11-30-0002"},
            ]}),
        )
        .await
        .expect(201);
    assert_eq!(
        (batch["recorded"].as_u64(), batch["replayed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(app.brand(&acme["id"]).await["daily_spend"], "11.00");
    assert_eq!(app.brand(&globex["id"]).await["daily_spend"], "32.00");
    // One id for two campaigns of one brand in a batch: a conflict, and nothing of it is stored.
    let a2 = app.create_campaign(&acme["id"], "a2", json!({})).await;
    let resp = app
        .post(
            "/api/v1/spend/batch",
            json!({"events": [
                {"campaign_id": a["id"], "amount": "1", "event_id": "2026-11-30-0003"},
                {"campaign_id": a2["id"], "amount": "1", "event_id": "2026-11-30-0003"},
            ]}),
        )
        .await;
    assert_eq!(
        (resp.status.as_u16(), resp.error_field()),
        (409, "events[1].event_id")
    );
    assert_eq!(app.brand(&acme["id"]).await["daily_spend"], "11.00");
}

/// SPEC §3: a spend log records its brand and the token that posted it (after a token leaks, the
/// forged events can be found).
async fn spend_logs_record_their_brand_and_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let token_id = |name: &str| {
        let mut conn = adbudget_db::get(&app.pool).unwrap();
        adbudget_db::repo::tokens::list(&mut conn)
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.id)
            .unwrap()
    };
    let (ingest, admin) = (token_id("test-ingest"), token_id("test-admin"));
    assert_ne!(ingest, admin);
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let single = app.spend(&c["id"], "1").await;
    assert_eq!(single["spend"]["brand_id"], brand["id"]);
    assert_eq!(single["spend"]["token_id"], ingest);
    let batch = app
        .post(
            "/api/v1/spend/batch",
            json!({"events": [{"campaign_id": c["id"], "amount": "2"}]}),
        )
        .await
        .expect(201);
    assert_eq!(batch["spend"][0]["brand_id"], brand["id"]);
    assert_eq!(batch["spend"][0]["token_id"], admin);
    let logs = app
        .all_pages(&format!("/api/v1/campaigns/{}/spend", c["id"]))
        .await;
    let mut posted: Vec<(i64, i64)> = logs
        .iter()
        .map(|l| {
            (
                l["token_id"].as_i64().unwrap(),
                l["brand_id"].as_i64().unwrap(),
            )
        })
        .collect();
    posted.sort();
    let brand_id = brand["id"].as_i64().unwrap();
    let mut expected = vec![(ingest, brand_id), (admin, brand_id)];
    expected.sort();
    assert_eq!(posted, expected);
}

async fn idempotent_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let at = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    let event =
        json!({"campaign_id": c["id"], "amount": "12.5", "event_id": "evt-1", "occurred_at": at});
    let first = app.post_spend(event.clone()).await.expect(201);
    let replay = app.post_spend(event.clone()).await.expect(200);
    assert_eq!(replay["spend"], first["spend"], "the original result");
    // Without occurred_at, a replay matches whatever time was stored.
    app.post_spend(json!({"campaign_id": c["id"], "amount": "12.5", "event_id": "evt-1"}))
        .await
        .expect(200);
    for different in [
        json!({"campaign_id": c["id"], "amount": "12.6", "event_id": "evt-1"}),
        json!({"campaign_id": c["id"], "amount": "12.5", "event_id": "evt-1", "occurred_at": Utc::now().to_rfc3339()}),
    ] {
        let resp = app.post_spend(different).await;
        assert_eq!(
            (resp.status.as_u16(), resp.error_field()),
            (409, "event_id")
        );
    }
    let other = app.create_campaign(&brand["id"], "other", json!({})).await;
    let resp = app
        .post_spend(json!({"campaign_id": other["id"], "amount": "12.5", "event_id": "evt-1"}))
        .await;
    assert_eq!(resp.status, 409);
    assert_eq!(
        app.brand(&brand["id"]).await["daily_spend"],
        "12.50",
        "counted once"
    );
    assert_eq!(
        app.all_pages(&format!("/api/v1/campaigns/{}/spend", c["id"]))
            .await
            .len(),
        1
    );
}

async fn spend_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let id = &c["id"];
    let cases = [
        (json!({"campaign_id": id, "amount": "0"}), 422, "amount"),
        (json!({"campaign_id": id, "amount": "-1"}), 422, "amount"),
        (
            json!({"campaign_id": id, "amount": "1.0000001"}),
            422,
            "amount",
        ),
        (json!({"campaign_id": id, "amount": "ten"}), 422, "amount"),
        (json!({"campaign_id": id, "amount": 10}), 422, "amount"),
        (json!({"campaign_id": id, "amount": "1e3"}), 422, "amount"),
        (
            json!({"campaign_id": id, "amount": "10000000000000"}),
            422,
            "amount",
        ),
        (json!({"campaign_id": id}), 422, "amount"),
        (json!({"amount": "1"}), 422, "campaign_id"),
        (
            json!({"campaign_id": 987_654, "amount": "1"}),
            404,
            "campaign_id",
        ),
        (
            json!({"campaign_id": id, "amount": "1", "occurred_at": "yesterday"}),
            422,
            "occurred_at",
        ),
        (
            json!({"campaign_id": id, "amount": "1", "event_id": ""}),
            422,
            "event_id",
        ),
        (
            json!({"campaign_id": id, "amount": "1", "event_id": "x".repeat(201)}),
            422,
            "event_id",
        ),
        (
            json!({"campaign_id": id, "amount": "1", "extra": true}),
            422,
            "extra",
        ),
    ];
    for (body, status, field) in cases {
        let resp = app.post_spend(body.clone()).await;
        assert_eq!(resp.status.as_u16(), status, "{body}: {}", resp.body);
        assert_eq!(resp.error_field(), field, "{body}: {}", resp.body);
    }
    // An event written as an array (serde's positional form of a struct) is not an event: it was
    // recorded before the body had to be an object. Nothing is stored.
    let positional = app.post_spend(json!([id, "1"])).await;
    assert_eq!(positional.status.as_u16(), 422, "{}", positional.body);
    let batch = app
        .post(
            "/api/v1/spend/batch",
            json!([[{"campaign_id": id, "amount": "1"}]]),
        )
        .await;
    assert_eq!(batch.status.as_u16(), 422, "{}", batch.body);
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "0.00");
    let resp = app
        .raw(Method::POST, "/api/v1/spend", "{\"campaign_id\": 1,")
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.body["error"]["code"], "bad_request");
    assert_eq!(
        app.brand(&brand["id"]).await["daily_spend"],
        "0.00",
        "nothing stored"
    );
    assert!(
        app.all_pages(&format!("/api/v1/campaigns/{id}/spend"))
            .await
            .is_empty()
    );
}

async fn late_and_future_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let future = Utc::now() + Duration::minutes(6);
    let resp = app
        .post_spend(
            json!({"campaign_id": c["id"], "amount": "1", "occurred_at": future.to_rfc3339()}),
        )
        .await;
    assert_eq!(
        (resp.status.as_u16(), resp.error_field()),
        (422, "occurred_at")
    );
    let soon = Utc::now() + Duration::minutes(4);
    app.post_spend(
        json!({"campaign_id": c["id"], "amount": "1", "occurred_at": soon.to_rfc3339()}),
    )
    .await
    .expect(201);
    // A late event counts toward the day it occurred on, not today.
    let yesterday = Utc::now() - Duration::days(1);
    let r = app
        .post_spend(
            json!({"campaign_id": c["id"], "amount": "500", "occurred_at": yesterday.to_rfc3339()}),
        )
        .await
        .expect(201);
    // "soon" is today unless this runs in the last four minutes of the day.
    let soon_is_today = soon.date_naive() == Utc::now().date_naive();
    assert_eq!(
        r["campaign"]["daily_spend"],
        if soon_is_today { "1.00" } else { "0.00" }
    );
    assert_eq!(
        r["campaign"]["is_active"], true,
        "yesterday's spend does not use today's budget"
    );
    let this_month = |t: chrono::DateTime<Utc>| {
        t.format("%Y-%m").to_string() == Utc::now().format("%Y-%m").to_string()
    };
    let monthly = i32::from(this_month(soon)) + 500 * i32::from(this_month(yesterday));
    assert_eq!(r["campaign"]["monthly_spend"], format!("{monthly}.00"));
}

async fn batch_all_or_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let post = |body: Value| {
        let app: &TestApp = &app;
        async move {
            app.request(
                Method::POST,
                "/api/v1/spend/batch",
                Some(&app.ingest_token),
                Some(&body),
            )
            .await
        }
    };
    let ok = |i: usize| json!({"campaign_id": c["id"], "amount": "1", "event_id": format!("e{i}")});
    let cases = [
        (
            json!({"events": [ok(1), ok(2), {"campaign_id": c["id"], "amount": "-1"}]}),
            422,
            "events[2].amount",
        ),
        (
            json!({"events": [ok(1), {"campaign_id": 999_999, "amount": "1"}]}),
            404,
            "events[1].campaign_id",
        ),
        (
            json!({"events": [ok(1), {"campaign_id": c["id"], "amount": "2", "event_id": "e1"}]}),
            422,
            "events[1].event_id",
        ),
        (json!({"events": []}), 422, "events"),
        (
            json!({"events": (0..10_001).map(ok).collect::<Vec<_>>()}),
            422,
            "events",
        ),
        (json!({"event": []}), 422, "event"),
    ];
    for (body, status, field) in cases {
        let resp = post(body).await;
        assert_eq!(resp.status.as_u16(), status, "{}", resp.body);
        assert_eq!(resp.error_field(), field, "{}", resp.body);
    }
    assert_eq!(
        app.brand(&brand["id"]).await["daily_spend"],
        "0.00",
        "a rejected batch stores nothing"
    );
    assert!(
        app.all_pages(&format!("/api/v1/campaigns/{}/spend", c["id"]))
            .await
            .is_empty()
    );

    // A batch with a recorded id and a different payload is a conflict: nothing of it is stored.
    app.post_spend(json!({"campaign_id": c["id"], "amount": "1", "event_id": "e1"}))
        .await
        .expect(201);
    let resp =
        post(json!({"events": [ok(5), {"campaign_id": c["id"], "amount": "9", "event_id": "e1"}]}))
            .await;
    assert_eq!(
        (resp.status.as_u16(), resp.error_field()),
        (409, "events[1].event_id")
    );
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "1.00");

    // Replays inside a batch are counted once.
    let body = json!({"events": [ok(1), ok(2), ok(2), ok(3)]});
    let r = post(body.clone()).await.expect(201);
    assert_eq!(
        (r["recorded"].as_u64(), r["replayed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["spend"].as_array().unwrap().len(), 4);
    assert_eq!(r["spend"][1]["id"], r["spend"][2]["id"]);
    let again = post(body).await.expect(200);
    assert_eq!(again["recorded"], 0);
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "3.00");
}

async fn batch_applies_in_one_transaction(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let a = app.create_campaign(&brand["id"], "a", json!({})).await;
    let b = app
        .create_campaign(&brand["id"], "b", json!({"daily_cap": "30"}))
        .await;
    let other_brand = app.create_brand("Other", "1000", "1000").await;
    let o = app
        .create_campaign(&other_brand["id"], "o", json!({}))
        .await;
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            let target = [&a, &b, &o][i % 3];
            json!({"campaign_id": target["id"], "amount": "0.05", "event_id": format!("batch-{i}")})
        })
        .collect();
    let r = app
        .request(
            Method::POST,
            "/api/v1/spend/batch",
            Some(&app.ingest_token),
            Some(&json!({"events": events})),
        )
        .await
        .expect(201);
    assert_eq!(r["recorded"], 1000);
    let campaigns: Vec<&Value> = r["campaigns"].as_array().unwrap().iter().collect();
    assert_eq!(campaigns.len(), 3);
    // 334 × 0.05 = 16.70 on a, 333 × 0.05 = 16.65 on b and o.
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "33.35");
    assert_eq!(app.campaign(&b["id"]).await["daily_spend"], "16.65");
    assert_eq!(app.brand(&other_brand["id"]).await["daily_spend"], "16.65");
    assert!(campaigns.iter().all(|c| c["is_active"] == true));
}

async fn spend_logs_list_and_filter(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "1000", "10000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let base = Utc::now() - Duration::hours(5);
    for h in 0..5 {
        let at = (base + Duration::hours(h)).to_rfc3339();
        app.post_spend(
            json!({"campaign_id": c["id"], "amount": format!("{}", h + 1), "occurred_at": at}),
        )
        .await
        .expect(201);
    }
    let all = app
        .all_pages(&format!("/api/v1/campaigns/{}/spend", c["id"]))
        .await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["amount"], "5.00", "newest first");
    let from = (base + Duration::hours(1)).to_rfc3339().replace('+', "%2B");
    let to = (base + Duration::hours(3)).to_rfc3339().replace('+', "%2B");
    let window = app
        .get(&format!(
            "/api/v1/campaigns/{}/spend?from={from}&to={to}",
            c["id"]
        ))
        .await
        .expect(200);
    let amounts: Vec<_> = window["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["3.00", "2.00"], "from inclusive, to exclusive");
    let page = app
        .get(&format!("/api/v1/campaigns/{}/spend?limit=2", c["id"]))
        .await
        .expect(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
    let bad = app
        .get(&format!("/api/v1/campaigns/{}/spend?from=noon", c["id"]))
        .await;
    assert_eq!((bad.status.as_u16(), bad.error_field()), (422, "from"));
    app.get("/api/v1/campaigns/424242/spend").await.expect(404);
}

/// 8 writers × 250 events on one brand: every event is stored once, and the spend logs, the
/// brand's and the campaigns' period totals agree to the micro-unit.
async fn concurrent_spend_loses_nothing(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let brand = app.create_brand("Busy", "1000000", "10000000").await;
    let mut campaign_ids = Vec::new();
    for i in 0..4 {
        campaign_ids.push(
            app.create_campaign(&brand["id"], &format!("c{i}"), json!({}))
                .await["id"]
                .clone(),
        );
    }
    let mut writers = Vec::new();
    for w in 0..8 {
        let app = app.clone();
        let ids = campaign_ids.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..250 {
                let amount = format!("{}.{:06}", i % 7, (w * 250 + i) % 1_000_000 + 1);
                let body = json!({"campaign_id": ids[(w + i) % ids.len()], "amount": amount, "event_id": format!("w{w}-{i}")});
                app.post_spend(body).await.expect(201);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut log_total = 0;
    let mut log_count = 0;
    let mut campaign_total = 0;
    for id in &campaign_ids {
        let logs = app
            .all_pages(&format!("/api/v1/campaigns/{id}/spend"))
            .await;
        let sum: i64 = logs.iter().map(|l| micros(&l["amount"])).sum();
        log_count += logs.len();
        log_total += sum;
        let c = app.campaign(id).await;
        assert_eq!(
            micros(&c["daily_spend"]),
            sum,
            "campaign {id} daily total = its logs"
        );
        assert_eq!(micros(&c["monthly_spend"]), sum);
        campaign_total += sum;
    }
    assert_eq!(log_count, 2000);
    let expected: i64 = (0..8)
        .flat_map(|w| (0..250).map(move |i| (i % 7) * 1_000_000 + ((w * 250 + i) % 1_000_000 + 1)))
        .sum();
    assert_eq!(log_total, expected);
    let b = app.brand(&brand["id"]).await;
    assert_eq!(micros(&b["daily_spend"]), expected);
    assert_eq!(micros(&b["monthly_spend"]), expected);
    assert_eq!(campaign_total, expected);
}

/// The group-commit writers keep a connection only while requests keep coming: once the queue is
/// empty every connection is back in the pool, for the rest of the API (and to be tested by the
/// pool before its next use, e.g. after a database restart).
async fn an_idle_writer_holds_no_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    for _ in 0..3 {
        app.spend(&c["id"], "1").await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let state = app.pool.state();
        if state.idle_connections == state.connections {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections still checked out after the requests: {state:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
