use adbudget_core::jobs::{EnforceBudgets, Job};
use adbudget_testing::Backend;
use apalis::prelude::TaskSink;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(
    job_queues_show_what_redis_holds,
    schedules_are_data_edited_through_the_api,
    run_now_queues_once_per_key,
);

fn queue<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .unwrap()
}

async fn job_queues_show_what_redis_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let fresh = app
        .request(
            Method::GET,
            "/api/v1/jobs/queues",
            Some(&app.ingest_token),
            None,
        )
        .await
        .expect(200);
    let names: Vec<_> = fresh["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "enforce_budgets",
            "apply_dayparting",
            "reset_daily",
            "reset_monthly",
            "prune_events",
            "dispatch_events",
            "maintain_spend_logs",
            "deliver_webhook"
        ]
    );
    for q in fresh["queues"].as_array().unwrap() {
        for n in ["pending", "running", "done", "failed", "dead"] {
            assert_eq!(q[n], 0, "{n} of {}", q["name"]);
        }
    }
    let schedules = fresh["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), adbudget_core::jobs::JobKind::ALL.len());
    assert!(
        schedules
            .iter()
            .all(|s| s["last_tick"].is_null() && s["next_tick"].is_string())
    );
    assert_eq!(schedules[0]["cron"], "0 */5 * * * *");

    // A pending job, a live worker and a beat's last tick, written as the real processes write them.
    let mut storage =
        adbudget_queue::storage::<EnforceBudgets>(app.jobs.redis.clone(), &app.jobs.prefix);
    storage
        .push(EnforceBudgets::for_tick(chrono::Utc::now()))
        .await
        .unwrap();
    let mut conn = app.jobs.redis.clone();
    let q = format!("{}:enforce_budgets", app.jobs.prefix);
    let now = chrono::Utc::now().timestamp();
    let _: () = conn
        .zadd(format!("{q}:workers"), "enforce_budgets@test:1:r0", now)
        .await
        .unwrap();
    let _: () = conn
        .zadd(
            format!("{q}:workers"),
            "enforce_budgets@gone:2:r0",
            now - 3600,
        )
        .await
        .unwrap();
    let _: () = conn
        .set(
            adbudget_queue::keys::beat_last(
                &app.jobs.prefix,
                adbudget_core::jobs::JobKind::EnforceBudgets,
            ),
            now - 60,
        )
        .await
        .unwrap();
    adbudget_queue::record_run(
        &mut conn,
        &app.jobs.prefix,
        adbudget_core::jobs::JobKind::EnforceBudgets,
        false,
        std::time::Duration::from_millis(12),
        "database: gone",
    )
    .await
    .unwrap();

    let body = app.get("/api/v1/jobs/queues").await.expect(200);
    let enforce = queue(&body, "enforce_budgets");
    assert_eq!(enforce["pending"], 1);
    assert_eq!(enforce["failed"], 1);
    assert_eq!(enforce["last_outcome"], "error");
    assert_eq!(
        queue(&body, "apply_dayparting")["pending"],
        0,
        "other queues are untouched"
    );
    let workers = body["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let alive: Vec<_> = workers
        .iter()
        .filter(|w| w["alive"] == true)
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(alive, ["enforce_budgets@test:1:r0"]);
    assert!(body["schedules"][0]["last_tick"].is_string());

    // Anonymous callers are refused.
    app.request(Method::GET, "/api/v1/jobs/queues", None, None)
        .await
        .expect(401);
    // Clean up this test's keys.
    let keys: Vec<String> = conn.keys(format!("{}:*", app.jobs.prefix)).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
}

fn schedule<'a>(list: &'a Value, job: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["job"] == job)
        .unwrap()
}

async fn schedules_are_data_edited_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let list = app
        .request(
            Method::GET,
            "/api/v1/jobs/schedules",
            Some(&app.ingest_token),
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        list.as_array().unwrap().len(),
        adbudget_core::jobs::JobKind::ALL.len()
    );
    let enforce = schedule(&list, "enforce_budgets");
    assert_eq!(enforce["cron"], "0 */5 * * * *");
    assert_eq!(enforce["description"], "Every 5 minutes");
    assert_eq!(enforce["enabled"], true);
    assert!(enforce["updated_by"].is_null() && enforce["next_tick"].is_string());

    let path = "/api/v1/jobs/schedules/enforce_budgets";
    let changed = app
        .patch(path, json!({"cron": "0  */10 * * * *"}))
        .await
        .expect(200);
    assert_eq!(
        changed["cron"], "0 */10 * * * *",
        "stored as one space between fields"
    );
    assert_eq!(changed["description"], "Every 10 minutes");
    assert_eq!(changed["updated_by"], "test-admin (token)");
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(changed["next_tick"].clone()).unwrap();
    assert_eq!(
        next.timestamp() % 600,
        0,
        "on a ten-minute boundary: {next}"
    );

    // A bad cron is a 422 naming `cron`, and stores nothing.
    for bad in [
        "*/5 * * * *",
        "every minute",
        "0 61 * * * *",
        "",
        "0 0 0 1 1 * 2030",
    ] {
        let resp = app.patch(path, json!({"cron": bad})).await;
        assert_eq!(resp.status, 422, "{bad:?}: {}", resp.body);
        assert_eq!(resp.error_field(), "cron", "{bad:?}");
    }
    assert_eq!(app.patch(path, json!({"cron": 5})).await.status, 422);
    // serde would read the struct from an array: `[null, null]` was a 200 (found by schemathesis).
    assert_eq!(app.patch(path, json!([null, null])).await.status, 422);
    assert_eq!(
        app.patch(path, json!(["0 0 * * * *", false])).await.status,
        422
    );
    assert_eq!(app.patch(path, json!({"when": "now"})).await.status, 422);
    app.patch(
        "/api/v1/jobs/schedules/make_coffee",
        json!({"enabled": false}),
    )
    .await
    .expect(404);

    let disabled = app.patch(path, json!({"enabled": false})).await.expect(200);
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["next_tick"].is_null());
    assert_eq!(disabled["cron"], "0 */10 * * * *");
    let list = app.get("/api/v1/jobs/schedules").await.expect(200);
    assert_eq!(schedule(&list, "enforce_budgets")["enabled"], false);
    // The queue overview shows the stored schedule too.
    let overview = app.get("/api/v1/jobs/queues").await.expect(200);
    assert_eq!(
        schedule_named(&overview["schedules"], "enforce_budgets")["cron"],
        "0 */10 * * * *"
    );

    // Both changes are in the audit trail, with who made them.
    let audit = app.get("/api/v1/audit?object=schedule").await.expect(200);
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    assert_eq!(items[0]["changes"]["enabled"]["new"], false);
    assert_eq!(items[1]["changes"]["cron"]["old"], "0 */5 * * * *");
    assert_eq!(items[1]["actor"]["name"], "test-admin");
}

fn schedule_named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

async fn run_now_queues_once_per_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let run = |key: Option<&'static str>, job: &'static str| {
        let mut req = app
            .client
            .post(format!("{}/api/v1/jobs/{job}/run", app.address))
            .bearer_auth(&app.admin_token);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = run(Some("click-1"), "reset_daily").await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["queued"], true);
    assert_eq!(first["requested_by"], "test-admin (token)");
    assert_eq!(first["idempotency_key"], "click-1");
    // The double click: answered with the first request, nothing more queued.
    let (status, second) = run(Some("click-1"), "reset_daily").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["queued"], false);
    assert_eq!(second["id"], first["id"]);
    let mut conn = app.jobs.redis.clone();
    let kind = adbudget_core::jobs::JobKind::ResetDaily;
    assert_eq!(
        adbudget_queue::pending(&mut conn, &app.jobs.prefix, kind)
            .await
            .unwrap(),
        1
    );
    // The queued job says who ran it (the job monitor shows it as manual).
    let recent = adbudget_queue::stats::recent_jobs(&mut conn, &app.jobs.prefix, 20)
        .await
        .unwrap();
    let job = recent.iter().find(|j| j.job == "reset_daily").unwrap();
    let args: Value = serde_json::from_str(&job.args).unwrap();
    assert_eq!(args["run_by"], "test-admin (token)");
    // Without a key every request is a run of its own; a disabled schedule still runs by hand.
    app.patch(
        "/api/v1/jobs/schedules/reset_monthly",
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(run(None, "reset_monthly").await.0, 202);
    assert_eq!(run(None, "reset_monthly").await.0, 202);
    assert_eq!(
        adbudget_queue::pending(
            &mut conn,
            &app.jobs.prefix,
            adbudget_core::jobs::JobKind::ResetMonthly
        )
        .await
        .unwrap(),
        2
    );
    let (status, body) = run(Some("click-1"), "make_coffee").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (404, Some("job"))
    );
    let long: &'static str = Box::leak("k".repeat(201).into_boxed_str());
    let (status, body) = run(Some(long), "reset_daily").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("Idempotency-Key"))
    );
    // Who ran what is in the audit trail.
    let audit = app.get("/api/v1/audit?object=schedule").await.expect(200);
    let runs = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "run")
        .count();
    assert_eq!(runs, 3);
    let keys: Vec<String> = conn.keys(format!("{}:*", app.jobs.prefix)).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
}
