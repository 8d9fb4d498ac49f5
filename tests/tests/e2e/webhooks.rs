//! Webhooks on the distributed stack (SPEC §9): API, worker and beat as real processes on
//! PostgreSQL and Redis, a real receiver. Latency from the commit of a pause to the receiver's
//! request, over 100 pauses, and a worker killed with SIGKILL while deliveries are under way.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adbudget_testing::receiver::Receiver;
use serde_json::{Value, json};

use crate::helpers::{Backend, Process, TestDatabase, command, free_port, wait_ready};

struct Stack {
    db: TestDatabase,
    prefix: String,
    redis: String,
    base: String,
    token: String,
    api: Process,
    worker: Option<Process>,
    _beat: Process,
    client: reqwest::Client,
}

impl Stack {
    fn env(&self, cmd: &mut Command) {
        env(cmd, &self.redis, &self.prefix);
    }

    fn start_worker(&mut self) {
        let mut worker = command("adbudget-worker", &self.db.url);
        self.env(&mut worker);
        self.worker = Some(Process::spawn(&mut worker).unwrap());
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

fn env(cmd: &mut Command, redis: &str, prefix: &str) {
    cmd.env("REDIS_URL", redis)
        .env("ADBUDGET_QUEUE_PREFIX", prefix)
        .env("ADBUDGET_HEALTH_BIND", format!("127.0.0.1:{}", free_port()))
        .env("ADBUDGET_WEBHOOK_ALLOW_PRIVATE", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

async fn stack() -> Stack {
    stack_on(&adbudget_testing::redis_url()).await
}

async fn stack_on(redis: &str) -> Stack {
    let db = TestDatabase::create(Backend::Postgres).unwrap();
    let prefix = format!("adbudget-e2e-{}", uuid::Uuid::new_v4().simple());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = command("adbudget-api", &db.url);
    env(&mut api, redis, &prefix);
    api.env("ADBUDGET_BIND", format!("127.0.0.1:{port}"));
    let mut api = Process::spawn(&mut api).unwrap();
    let mut beat = command("adbudget-beat", &db.url);
    env(&mut beat, redis, &prefix);
    let beat = Process::spawn(&mut beat).unwrap();
    wait_ready(&format!("{base}/readyz"), &mut api).await;
    let out = command("adbudget", &db.url)
        .args(["token", "create", "--name", "e2e", "--scope", "admin"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut s = Stack {
        db,
        prefix,
        redis: redis.to_owned(),
        base,
        token,
        api,
        worker: None,
        _beat: beat,
        client: reqwest::Client::new(),
    };
    s.start_worker();
    s
}

/// 100 campaigns with a cap of 1; each spend of 1 pauses one. The receiver's pause requests by
/// campaign, and when each spend's response came (its commit had happened by then).
async fn pause_campaigns(s: &Stack, receiver: &Receiver, n: usize) -> BTreeMap<i64, Instant> {
    let brand = s
        .post(
            "/api/v1/brands",
            json!({"name": "Acme", "daily_budget": "100000", "monthly_budget": "1000000", "alert_thresholds": []}),
        )
        .await;
    s.post(
        "/api/v1/webhooks",
        json!({"url": receiver.url, "event_types": ["campaign.paused"]}),
    )
    .await;
    let mut committed = BTreeMap::new();
    for i in 0..n {
        let c = s
            .post(
                "/api/v1/campaigns",
                json!({"brand_id": brand["id"], "name": format!("c{i}"), "daily_cap": "1"}),
            )
            .await;
        let id = c["id"].as_i64().unwrap();
        let after = s
            .post("/api/v1/spend", json!({"campaign_id": id, "amount": "1"}))
            .await;
        assert_eq!(after["campaign"]["is_active"], false);
        committed.insert(id, Instant::now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    committed
}

/// Waits until every campaign's pause arrived (at most `within`); the first arrival of each.
async fn arrivals(
    receiver: &Receiver,
    n: usize,
    within: Duration,
) -> BTreeMap<i64, (Instant, String)> {
    let deadline = Instant::now() + within;
    loop {
        let mut first = BTreeMap::new();
        for r in receiver.received() {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let id = body["data"]["campaign"]["id"].as_i64().unwrap();
            let webhook_id = r.headers["webhook-id"].to_str().unwrap().to_owned();
            assert_eq!(body["id"], webhook_id.as_str());
            let e = first.entry(id).or_insert((r.at, webhook_id.clone()));
            assert_eq!(e.1, webhook_id, "a redelivery carries the same id");
        }
        if first.len() >= n || Instant::now() > deadline {
            return first;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn pauses_reach_the_receiver_within_seconds() {
    let s = stack().await;
    let receiver = Receiver::start().await;
    let n = 100;
    let committed = pause_campaigns(&s, &receiver, n).await;
    let got = arrivals(&receiver, n, Duration::from_secs(60)).await;
    assert_eq!(got.len(), n, "every pause arrived");
    let mut latencies: Vec<Duration> = committed
        .iter()
        .map(|(id, at)| got[id].0.saturating_duration_since(*at))
        .collect();
    latencies.sort();
    let p99 = latencies[(n * 99).div_ceil(100) - 1];
    eprintln!(
        "commit → receiver over {n} pauses: p50 {:?}, p99 {p99:?}, max {:?}",
        latencies[n / 2],
        latencies[n - 1]
    );
    assert!(p99 <= Duration::from_secs(5), "p99 {p99:?}");
    drop(s.api);
}

#[tokio::test]
async fn a_worker_killed_during_deliveries_loses_none() {
    let mut s = stack().await;
    let receiver = Receiver::start().await;
    // The receiver fails the first answers, so deliveries are still being retried when the
    // worker dies.
    receiver.answers.lock().unwrap().extend([500; 10]);
    let n = 20;
    pause_campaigns(&s, &receiver, n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(mut worker) = s.worker.take() {
        worker.kill();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.start_worker();
    // Retries and any attempt lost with the worker (its lease runs out after a minute).
    let got = arrivals(&receiver, n, Duration::from_secs(120)).await;
    assert_eq!(got.len(), n, "every pause arrived after the kill");
    // The feed holds each pause exactly once, under the id the receiver saw (its horizon may
    // wait a moment for other tests' transactions on the same server).
    let deadline = Instant::now() + Duration::from_secs(30);
    let feed = loop {
        let feed: Value = s
            .client
            .get(format!(
                "{}/api/v1/events?type=campaign.paused&limit=500",
                s.base
            ))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if feed["items"].as_array().unwrap().len() >= n || Instant::now() > deadline {
            break feed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut in_feed: Vec<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    in_feed.sort_unstable();
    let mut delivered: Vec<&str> = got.values().map(|(_, id)| id.as_str()).collect();
    delivered.sort_unstable();
    assert_eq!(in_feed, delivered);
    drop(s.api);
}

/// A brand with a daily budget of 5, an endpoint for its pauses, and one campaign.
async fn one_campaign(s: &Stack, receiver: &Receiver) -> Value {
    let brand = s
        .post(
            "/api/v1/brands",
            json!({"name": "Acme", "daily_budget": "5", "monthly_budget": "100", "alert_thresholds": []}),
        )
        .await;
    s.post(
        "/api/v1/webhooks",
        json!({"url": receiver.url, "event_types": ["campaign.paused"]}),
    )
    .await;
    s.post(
        "/api/v1/campaigns",
        json!({"brand_id": brand["id"], "name": "c"}),
    )
    .await
}

/// Spends the campaign's brand budget: the answer shows it paused (committed).
async fn pause(s: &Stack, c: &Value) {
    let paused = s
        .post(
            "/api/v1/spend",
            json!({"campaign_id": c["id"], "amount": "5"}),
        )
        .await;
    assert_eq!(paused["campaign"]["is_active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_right_after_a_commit_loses_nothing() {
    let mut s = stack().await;
    let receiver = Receiver::start().await;
    let c = one_campaign(&s, &receiver).await;
    pause(&s, &c).await;
    // SIGKILL at once: whatever nudge the process had not sent is gone with it.
    s.api.kill();
    let got = arrivals(&receiver, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "the sweep delivered the pause");
    assert!(got.contains_key(&c["id"].as_i64().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing() {
    let mut own = crate::jobs::OwnRedis::start(free_port());
    let s = stack_on(&own.url()).await;
    let receiver = Receiver::start().await;
    let c = one_campaign(&s, &receiver).await;
    // Redis goes away (its data with it: no persistence), the pause is committed meanwhile.
    own.stop();
    pause(&s, &c).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _own = crate::jobs::OwnRedis::start(own.port());
    let got = arrivals(&receiver, 1, Duration::from_secs(90)).await;
    assert_eq!(got.len(), 1, "delivered once Redis was back");
}

/// `standalone` delivers too: the same outbox, an in-process queue, no Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_delivers() {
    let dir = std::env::temp_dir().join(format!(
        "adbudget-e2e-hooks-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("standalone.db").display());
    let port = free_port();
    let mut cmd = command("adbudget", &url);
    cmd.arg("standalone")
        .env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .env("ADBUDGET_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("standalone.log")).unwrap());
    let mut process = Process::spawn(&mut cmd).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz"), &mut process).await;
    let out = command("adbudget", &url)
        .args(["token", "create", "--name", "hooks", "--scope", "admin"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let receiver = Receiver::start().await;
    let created: Value = post("/api/v1/webhooks", json!({"url": receiver.url}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let brand: Value = post(
        "/api/v1/brands",
        json!({"name": "Acme", "daily_budget": "10", "monthly_budget": "100"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let c: Value = post(
        "/api/v1/campaigns",
        json!({"brand_id": brand["id"], "name": "c"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    post(
        "/api/v1/spend",
        json!({"campaign_id": c["id"], "amount": "10"}),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = receiver.received();
    let mut types: Vec<String> = got
        .iter()
        .map(|r| {
            standardwebhooks::Webhook::new(&secret)
                .unwrap()
                .verify(r.body.as_bytes(), &r.headers)
                .unwrap();
            let body: Value = serde_json::from_str(&r.body).unwrap();
            body["type"].as_str().unwrap().to_owned()
        })
        .collect();
    types.sort();
    let log = std::fs::read_to_string(dir.join("standalone.log")).unwrap_or_default();
    assert_eq!(
        types,
        [
            "budget.threshold_reached",
            "budget.threshold_reached",
            "budget.threshold_reached",
            "campaign.paused"
        ],
        "standalone's log:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
