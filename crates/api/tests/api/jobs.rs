use adbudget_core::jobs::{EnforceBudgets, Job};
use adbudget_testing::Backend;
use apalis::prelude::TaskSink;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{on_both_databases, spawn_app};

on_both_databases!(job_queues_show_what_redis_holds);

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
