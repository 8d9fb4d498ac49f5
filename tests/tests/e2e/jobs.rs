//! The distributed half, with real processes, real Redis and real faults: a worker killed with
//! SIGKILL in the middle of a job, Redis restarted under running workers, SIGTERM during a job,
//! two beats on one schedule, and a window that opens with no API call.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use adbudget_core::forms::{CreateBrand, CreateCampaign, now};
use adbudget_core::jobs::{EnforceBudgets, Job, JobKind};
use adbudget_core::money::{Money, NonNegativeMoney};
use adbudget_db::repo::{brands, campaigns, enforce};
use adbudget_db::{self as db, DbPool};
use adbudget_testing as testing;
use apalis::prelude::TaskSink;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use crate::helpers::{Backend, Process, TestDatabase, command, free_port, wait_ready};
use adbudget_testing::process::redis_server;

fn redis_url() -> String {
    testing::redis_url()
}

fn unique_prefix() -> String {
    format!("adbudget-e2e-{}", uuid::Uuid::new_v4().simple())
}

/// A database with one campaign whose stored state the rule disagrees with, so that an
/// `enforce_budgets` run has exactly one thing to repair (and a history row to show for it).
struct Scenario {
    db: TestDatabase,
    pool: DbPool,
    campaign: i64,
}

impl Scenario {
    fn new() -> Self {
        let db = TestDatabase::create(Backend::Postgres).unwrap();
        let pool = db::connect(&db.url, 4).unwrap();
        let mut conn = db::get(&pool).unwrap();
        let zero = NonNegativeMoney(Money::ZERO);
        let brand = CreateBrand {
            name: "Acme".into(),
            daily_budget: zero,
            monthly_budget: zero,
            timezone: None,
            alert_thresholds: None,
        };
        let brand = brands::create(
            &mut conn,
            &brand.validate().unwrap(),
            now(),
            &adbudget_core::access::Author::cli(),
        )
        .unwrap();
        let campaign = CreateCampaign {
            brand_id: brand.id,
            name: "c".into(),
            daily_cap: None,
            monthly_cap: None,
            dayparting: None,
            manually_paused: None,
            lifetime_cap: None,
            flight_start: None,
            flight_end: None,
        };
        let campaign = campaigns::create(
            &mut conn,
            &campaign.validate().unwrap(),
            now(),
            &adbudget_core::access::Author::cli(),
        )
        .unwrap()
        .id;
        drop(conn);
        let s = Scenario { db, pool, campaign };
        s.drift();
        s
    }

    /// Marks the campaign active although its brand's budget of 0 says paused.
    fn drift(&self) {
        testing::corrupt_state(&mut db::get(&self.pool).unwrap(), self.campaign, 0).unwrap();
    }

    /// How many times `enforce_budgets` repaired the campaign.
    fn repairs(&self) -> usize {
        let history = campaigns::history(
            &mut db::get(&self.pool).unwrap(),
            self.campaign,
            Default::default(),
        )
        .unwrap();
        history
            .items
            .iter()
            .filter(|h| h.cause == "enforce_budgets")
            .count()
    }

    /// Holds every brand lock until the returned sender is used or dropped: a job that starts
    /// meanwhile blocks in the middle of its transaction.
    fn block_jobs(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel::<()>();
        let (locked_tx, locked_rx) = mpsc::channel();
        let pool = self.pool.clone();
        std::thread::spawn(move || {
            let mut conn = db::get(&pool).unwrap();
            let _ = db::write_transaction(&mut conn, |c| {
                enforce::lock_brands_selected(c, enforce::Selection::Every)?;
                locked_tx.send(()).unwrap();
                let _ = rx.recv();
                adbudget_db::error::DomainResult::Ok(())
            });
        });
        locked_rx.recv().unwrap();
        tx
    }

    fn worker(&self, redis: &str, prefix: &str) -> (Process, String) {
        let port = free_port();
        let mut cmd = command("adbudget-worker", &self.db.url);
        cmd.env("REDIS_URL", redis)
            .env("ADBUDGET_QUEUE_PREFIX", prefix)
            .env("ADBUDGET_HEALTH_BIND", format!("127.0.0.1:{port}"))
            .env("ADBUDGET_SHUTDOWN_TIMEOUT_SECS", "20")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        (
            Process::spawn(&mut cmd).unwrap(),
            format!("http://127.0.0.1:{port}/readyz"),
        )
    }
}

async fn push_enforce(redis: &ConnectionManager, prefix: &str) {
    let mut storage = adbudget_queue::storage::<EnforceBudgets>(redis.clone(), prefix);
    // Right after a Redis restart the first attempts may fail: retry for a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match storage
            .push(EnforceBudgets::for_tick(chrono::Utc::now()))
            .await
        {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("push failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("could not push: {e}"),
        }
    }
}

/// Waits until the queued job has been taken by a worker.
async fn wait_taken(redis: &ConnectionManager, prefix: &str) {
    let mut conn = redis.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    while adbudget_queue::pending(&mut conn, prefix, JobKind::EnforceBudgets)
        .await
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "no worker took the job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

async fn cleanup(redis: &ConnectionManager, prefix: &str) {
    let mut conn = redis.clone();
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = conn.del(keys).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_then_exits_zero() {
    let s = Scenario::new();
    let prefix = unique_prefix();
    let redis = adbudget_queue::connect(&redis_url()).await.unwrap();
    let (mut worker, ready) = s.worker(&redis_url(), &prefix);
    wait_ready(&ready, &mut worker).await;
    let release = s.block_jobs();
    push_enforce(&redis, &prefix).await;
    wait_taken(&redis, &prefix).await;
    let pid = worker.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker waits for its running job"
    );
    assert_eq!(s.repairs(), 0);
    release.send(()).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the worker did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert_eq!(s.repairs(), 1, "the running job completed");
    cleanup(&redis, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_runs_again_on_another_worker() {
    let s = Scenario::new();
    let prefix = unique_prefix();
    let redis = adbudget_queue::connect(&redis_url()).await.unwrap();
    let (mut first, ready) = s.worker(&redis_url(), &prefix);
    wait_ready(&ready, &mut first).await;
    let release = s.block_jobs();
    push_enforce(&redis, &prefix).await;
    wait_taken(&redis, &prefix).await;
    // SIGKILL in the middle of the job: its transaction dies with its connection.
    drop(first);
    let (mut second, ready) = s.worker(&redis_url(), &prefix);
    wait_ready(&ready, &mut second).await;
    release.send(()).unwrap();
    // Orphans are handed back after 3 missed 5 s heartbeats, noticed on the next heartbeat.
    let took = wait_for(
        "the orphaned job ran again",
        Duration::from_secs(40),
        || s.repairs() == 1,
    )
    .await;
    eprintln!("orphaned job re-ran after {took:?}");
    assert_eq!(s.repairs(), 1, "it ran to completion once");

    // Finished jobs are vacuumed from Redis; the monitor keeps counting them.
    let mut conn = redis.clone();
    let q = adbudget_queue::queue_name(&prefix, JobKind::EnforceBudgets);
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.scard::<_, usize>(format!("{q}:done")).await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the job was never acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removed = adbudget_queue::vacuum(&mut conn, &prefix, JobKind::EnforceBudgets)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let done: usize = conn.scard(format!("{q}:done")).await.unwrap();
    let payloads: usize = conn.hlen(format!("{q}:data")).await.unwrap();
    assert_eq!((done, payloads), (0, 0), "payload and done entry are gone");
    let overview = adbudget_queue::stats::overview(&mut conn, &prefix, &[])
        .await
        .unwrap();
    assert_eq!(overview.queues[0].done, 1, "and still counted");
    cleanup(&redis, &prefix).await;
}

/// A redis-server of this test's own, on a free port.
pub(crate) struct OwnRedis {
    port: u16,
    process: Option<Process>,
}

impl OwnRedis {
    pub(crate) fn start(port: u16) -> Self {
        let process = Process::spawn(redis_server(port).stderr(Stdio::null()))
            .expect("redis-server is installed (.ci/run installs it)");
        let r = OwnRedis {
            port,
            process: Some(process),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
    pub(crate) fn stop(&mut self) {
        self.process.take();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_recover_from_a_redis_restart_without_restarting() {
    let s = Scenario::new();
    let prefix = unique_prefix();
    let mut own = OwnRedis::start(free_port());
    let redis = adbudget_queue::connect(&own.url()).await.unwrap();
    let (mut worker, ready) = s.worker(&own.url(), &prefix);
    wait_ready(&ready, &mut worker).await;
    push_enforce(&redis, &prefix).await;
    wait_for("the first job", Duration::from_secs(15), || {
        s.repairs() == 1
    })
    .await;

    own.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let own = OwnRedis::start(own.port);
    s.drift();
    push_enforce(&redis, &prefix).await;
    let took = wait_for("a job after the restart", Duration::from_secs(60), || {
        s.repairs() == 2
    })
    .await;
    eprintln!("job ran {took:?} after Redis came back");
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the same worker process recovered"
    );
    drop(own);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_redis_stays_away_exits_non_zero() {
    let s = Scenario::new();
    let mut own = OwnRedis::start(free_port());
    let (mut worker, ready) = s.worker(&own.url(), &unique_prefix());
    wait_ready(&ready, &mut worker).await;
    own.stop();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(75),
            "the worker kept running without Redis"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        !status.success(),
        "a dead job machinery exits non-zero so a supervisor restarts it: {status}"
    );
    eprintln!(
        "exited {status} {:?} after Redis went away",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_beats_enqueue_each_tick_once() {
    let s = Scenario::new();
    let prefix = unique_prefix();
    let redis = adbudget_queue::connect(&redis_url()).await.unwrap();
    let (mut worker, ready) = s.worker(&redis_url(), &prefix);
    wait_ready(&ready, &mut worker).await;
    let health_ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let logs: Vec<std::path::PathBuf> = (0..2)
        .map(|i| std::env::temp_dir().join(format!("{prefix}-beat{i}.log")))
        .collect();
    let mut beats: Vec<Process> = logs
        .iter()
        .zip(&health_ports)
        .map(|(log, port)| {
            let mut cmd = command("adbudget-beat", &s.db.url);
            cmd.env("REDIS_URL", redis_url())
                .env("ADBUDGET_QUEUE_PREFIX", &prefix)
                .env("ADBUDGET_HEALTH_BIND", format!("127.0.0.1:{port}"))
                .env("ADBUDGET_LOG_FORMAT", "json")
                .env("RUST_LOG", "adbudget_beat=info")
                .env("ADBUDGET_SCHEDULE_APPLY_DAYPARTING", "* * * * * *")
                .env("ADBUDGET_SCHEDULE_ENFORCE_BUDGETS", "0 0 0 1 1 *")
                .env("ADBUDGET_SCHEDULE_RESET_DAILY", "0 0 0 1 1 *")
                .env("ADBUDGET_SCHEDULE_RESET_MONTHLY", "0 0 0 1 1 *")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap());
            Process::spawn(&mut cmd).unwrap()
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(7)).await;
    // Each beat counts its ticks by outcome on /metrics; the worker counts its runs.
    let mut ticks = 0.0;
    for port in &health_ports {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        ticks += text
            .lines()
            .filter(|l| {
                l.starts_with("adbudget_beat_ticks_total{") && l.contains("apply_dayparting")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert!(ticks >= 8.0, "both beats count their ticks: {ticks}");
    let worker_metrics = reqwest::get(ready.replace("/readyz", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        worker_metrics.contains("adbudget_job_runs_total{job=\"apply_dayparting\",outcome=\"ok\"}"),
        "{worker_metrics}"
    );
    assert!(
        worker_metrics.contains("adbudget_queue_depth{job=\"apply_dayparting\"}"),
        "{worker_metrics}"
    );
    // SIGTERM, not a drop's SIGKILL: a beat killed between pushing a tick and logging it leaves
    // a run that no log line accounts for ("no tick ran twice" then counted 8 runs of 7 pushes).
    for beat in &mut beats {
        assert!(
            beat.terminate(Duration::from_secs(10)),
            "a beat exits on SIGTERM"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut outcomes: Vec<(i64, String)> = Vec::new();
    for log in &logs {
        for line in std::fs::read_to_string(log).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["job.name"] == "apply_dayparting" && v["outcome"].is_string() {
                // Logged as chrono's Display of a UTC time: "2026-11-21 11:14:35 UTC".
                let text = v["job.tick"].as_str().unwrap().trim_end_matches(" UTC");
                let tick = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                    .unwrap()
                    .and_utc()
                    .timestamp();
                outcomes.push((tick, v["outcome"].as_str().unwrap().to_owned()));
            }
        }
        let _ = std::fs::remove_file(log);
    }
    let pushed: Vec<i64> = outcomes
        .iter()
        .filter(|(_, o)| o == "Pushed")
        .map(|(t, _)| *t)
        .collect();
    let mut distinct = pushed.clone();
    distinct.sort();
    distinct.dedup();
    assert!(pushed.len() >= 4, "ticks were enqueued: {outcomes:?}");
    assert_eq!(
        pushed.len(),
        distinct.len(),
        "no tick was enqueued twice: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|(_, o)| o == "ClaimedElsewhere"),
        "both beats saw the ticks: {outcomes:?}"
    );
    // Every enqueued tick runs exactly once (the worker may still be finishing the last one).
    let mut conn = redis.clone();
    let stats = adbudget_queue::keys::stats(&prefix, JobKind::ApplyDayparting);
    let deadline = Instant::now() + Duration::from_secs(30);
    let succeeded = loop {
        let succeeded: usize = conn.hget(&stats, "succeeded").await.unwrap_or(0);
        if succeeded >= pushed.len() || Instant::now() > deadline {
            break succeeded;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(succeeded, pushed.len(), "{outcomes:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later: usize = conn.hget(&stats, "succeeded").await.unwrap_or(0);
    assert_eq!(later, pushed.len(), "no tick ran twice");
    cleanup(&redis, &prefix).await;
}

/// api + worker + beat on Redis: a campaign whose window opens in the next minute becomes active
/// with no API call, within a minute of the window opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_opens_with_no_api_call() {
    use chrono::{Duration as Span, Timelike, Utc};
    let db = TestDatabase::create(Backend::Postgres).unwrap();
    let prefix = unique_prefix();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = |cmd: &mut Command| {
        cmd.env("REDIS_URL", redis_url())
            .env("ADBUDGET_QUEUE_PREFIX", &prefix)
            .env("ADBUDGET_HEALTH_BIND", format!("127.0.0.1:{}", free_port()))
            .env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut api = command("adbudget-api", &db.url);
    env(&mut api);
    let mut api = Process::spawn(&mut api).unwrap();
    let mut worker = command("adbudget-worker", &db.url);
    env(&mut worker);
    let _worker = Process::spawn(&mut worker).unwrap();
    let mut beat = command("adbudget-beat", &db.url);
    env(&mut beat);
    let _beat = Process::spawn(&mut beat).unwrap();
    wait_ready(&format!("{base}/readyz"), &mut api).await;
    let token = {
        let out = command("adbudget", &db.url)
            .args(["token", "create", "--name", "e2e", "--scope", "admin"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let client = reqwest::Client::new();
    let brand: Value = client
        .post(format!("{base}/api/v1/brands"))
        .bearer_auth(&token)
        .json(&json!({"name": "Acme", "daily_budget": "100", "monthly_budget": "1000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The next whole minute, plus a second of margin when we are right at its edge.
    let mut opening = (Utc::now() + Span::minutes(1))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    if opening - Utc::now() < Span::seconds(3) {
        opening += Span::minutes(1);
    }
    let hhmm = |t: chrono::DateTime<Utc>| format!("{:02}:{:02}", t.hour(), t.minute());
    // Midnight as an end is "24:00" ("00:00" is not a valid end).
    let end = match hhmm(opening + Span::minutes(30)).as_str() {
        "00:00" => "24:00".to_owned(),
        other => other.to_owned(),
    };
    let window = json!([{"start": hhmm(opening), "end": end}]);
    let campaign: Value = client
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&token)
        .json(&json!({"brand_id": brand["id"], "name": "soon", "dayparting": window}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        campaign["pause_reasons"],
        json!(["dayparting"]),
        "{campaign}"
    );
    let url = format!("{base}/api/v1/campaigns/{}", campaign["id"]);
    loop {
        let c: Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if c["is_active"] == true {
            let lag = Utc::now() - opening;
            assert!(lag >= Span::zero(), "active before its window opened");
            assert!(
                lag <= Span::seconds(60),
                "active {lag} after the window opened"
            );
            eprintln!(
                "active {} ms after the window opened",
                lag.num_milliseconds()
            );
            break;
        }
        assert!(
            Utc::now() < opening + Span::seconds(65),
            "still paused a minute after the window opened"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let redis = adbudget_queue::connect(&redis_url()).await.unwrap();
    cleanup(&redis, &prefix).await;
}
