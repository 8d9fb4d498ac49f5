//! Schedules as data, with real beats on real Redis: an edit reaches every running beat within
//! seconds without a restart, a disabled schedule enqueues nothing (nor catches up), and "Run now"
//! runs a job once per key, in standalone too.

use std::process::Stdio;
use std::time::{Duration, Instant};

use adbudget_core::access::Author;
use adbudget_core::jobs::{JobKind, JobSchedule};
use adbudget_db::repo::schedules::{self, ScheduleChanges};
use adbudget_db::{self as db, DbPool};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::Value;

use crate::helpers::{Backend, Process, TestDatabase, command, free_port, wait_ready};

/// Every job once a year (nothing ticks during a test) unless `fast` says otherwise.
const YEARLY: &str = "0 0 0 1 1 *";

fn seed(pool: &DbPool, fast: &[(JobKind, &str)]) {
    let defaults: Vec<JobSchedule> = JobKind::ALL
        .iter()
        .map(|k| {
            let cron = fast.iter().find(|(f, _)| f == k).map_or(YEARLY, |(_, c)| c);
            JobSchedule::new(*k, cron).unwrap()
        })
        .collect();
    schedules::seed(&mut db::get(pool).unwrap(), &defaults, chrono::Utc::now()).unwrap();
}

fn change(pool: &DbPool, kind: JobKind, cron: Option<&str>, enabled: Option<bool>) {
    let changes = ScheduleChanges {
        cron: cron.map(str::to_owned),
        enabled,
    };
    schedules::update(
        &mut db::get(pool).unwrap(),
        kind,
        &changes,
        chrono::Utc::now(),
        &Author::cli(),
    )
    .unwrap();
}

struct Beat {
    _process: Process,
    metrics: String,
    log: std::path::PathBuf,
}

fn beat(db: &TestDatabase, prefix: &str) -> Beat {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{prefix}-{port}-beat.log"));
    let mut cmd = command("adbudget-beat", &db.url);
    cmd.env("REDIS_URL", adbudget_testing::redis_url())
        .env("ADBUDGET_QUEUE_PREFIX", prefix)
        .env("ADBUDGET_HEALTH_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "adbudget_beat=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    Beat {
        _process: Process::spawn(&mut cmd).unwrap(),
        metrics: format!("http://127.0.0.1:{port}/metrics"),
        log,
    }
}

impl Beat {
    async fn ready(&mut self) {
        wait_ready(
            &self.metrics.replace("/metrics", "/readyz"),
            &mut self._process,
        )
        .await;
    }

    /// This beat's ticks of `job` by outcome.
    async fn ticks(&self, job: &str, outcome: &str) -> f64 {
        let Ok(resp) = reqwest::get(&self.metrics).await else {
            return 0.0;
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with("adbudget_beat_ticks_total{")
                    && l.contains(&format!("job=\"{job}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn all_ticks(&self, job: &str) -> f64 {
        let mut n = 0.0;
        for outcome in ["pushed", "claimed_elsewhere", "still_pending"] {
            n += self.ticks(job, outcome).await;
        }
        n
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn cleanup(redis: &ConnectionManager, prefix: &str) {
    let mut conn = redis.clone();
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = conn.del(keys).await;
    }
}

fn unique_prefix() -> String {
    format!("adbudget-e2e-{}", uuid::Uuid::new_v4().simple())
}

/// Two running beats: a schedule re-timed in the database (as the API and /jobs do) ticks on
/// both within 10 s, without a restart, and each tick is still enqueued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_two_running_beats_within_ten_seconds() {
    let db = TestDatabase::create(Backend::Postgres).unwrap();
    let pool = db::connect(&db.url, 2).unwrap();
    seed(&pool, &[]);
    let prefix = unique_prefix();
    let redis = adbudget_queue::connect(&adbudget_testing::redis_url())
        .await
        .unwrap();
    let mut beats = [beat(&db, &prefix), beat(&db, &prefix)];
    for b in &mut beats {
        b.ready().await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for b in &beats {
        assert_eq!(
            b.all_ticks("apply_dayparting").await,
            0.0,
            "yearly: no tick yet"
        );
    }
    // From once a year to every second.
    change(&pool, JobKind::ApplyDayparting, Some("* * * * * *"), None);
    let changed = Instant::now();
    let mut reached = [None, None];
    while reached.iter().any(Option::is_none) && changed.elapsed() < Duration::from_secs(20) {
        for (i, b) in beats.iter().enumerate() {
            if reached[i].is_none() && b.all_ticks("apply_dayparting").await > 0.0 {
                reached[i] = Some(changed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the edit reached the beats after {reached:?}");
    for (i, r) in reached.iter().enumerate() {
        let r =
            r.unwrap_or_else(|| panic!("beat {i} never re-timed; its log:\n{}", beats[i].log()));
        assert!(
            r <= Duration::from_secs(10),
            "beat {i} followed the edit after {r:?}"
        );
    }
    // Each tick claimed by exactly one beat: the pushes and the refusals add up per tick.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pushed = beats[0].ticks("apply_dayparting", "pushed").await
        + beats[1].ticks("apply_dayparting", "pushed").await;
    let elsewhere = beats[0]
        .ticks("apply_dayparting", "claimed_elsewhere")
        .await
        + beats[1]
            .ticks("apply_dayparting", "claimed_elsewhere")
            .await;
    assert!(
        pushed + elsewhere >= 4.0,
        "{pushed} pushed, {elsewhere} elsewhere"
    );
    assert!(
        elsewhere >= 1.0,
        "both beats saw ticks: {pushed} pushed, {elsewhere} elsewhere"
    );
    let mut conn = redis.clone();
    let claims: Vec<String> = conn
        .keys(format!("{prefix}:beat:claim:apply_dayparting:*"))
        .await
        .unwrap();
    let still_pending = beats[0].ticks("apply_dayparting", "still_pending").await
        + beats[1].ticks("apply_dayparting", "still_pending").await;
    // A claimed tick was pushed or held back (no worker takes the jobs here); never both beats.
    assert!(
        (claims.len() as f64 - (pushed + still_pending)).abs() <= 1.0,
        "{} claims, {pushed} pushed, {still_pending} held back",
        claims.len()
    );
    // And back: a disabled schedule stops ticking on both within the same bound.
    change(&pool, JobKind::ApplyDayparting, None, Some(false));
    tokio::time::sleep(Duration::from_secs(RELOAD_AND_A_TICK)).await;
    let before = [
        beats[0].all_ticks("apply_dayparting").await,
        beats[1].all_ticks("apply_dayparting").await,
    ];
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, b) in beats.iter().enumerate() {
        assert_eq!(
            b.all_ticks("apply_dayparting").await,
            before[i],
            "beat {i} still enqueues"
        );
        assert!(b.ticks("apply_dayparting", "disabled").await >= 2.0);
    }
    cleanup(&redis, &prefix).await;
}

/// A beat's reload period plus a tick.
const RELOAD_AND_A_TICK: u64 = 4;

/// A schedule disabled before a beat starts: no catch-up, three ticks and nothing enqueued; once
/// enabled, it enqueues again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_schedule_enqueues_nothing_and_is_not_caught_up() {
    let db = TestDatabase::create(Backend::Postgres).unwrap();
    let pool = db::connect(&db.url, 2).unwrap();
    seed(
        &pool,
        &[
            (JobKind::ApplyDayparting, "* * * * * *"),
            (JobKind::EnforceBudgets, "0 0 * * * *"),
        ],
    );
    change(&pool, JobKind::ApplyDayparting, None, Some(false));
    let prefix = unique_prefix();
    let redis = adbudget_queue::connect(&adbudget_testing::redis_url())
        .await
        .unwrap();
    let mut b = beat(&db, &prefix);
    b.ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.ticks("apply_dayparting", "disabled").await < 3.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        b.ticks("apply_dayparting", "disabled").await >= 3.0,
        "{}",
        b.log()
    );
    assert_eq!(b.ticks("apply_dayparting", "pushed").await, 0.0);
    let mut conn = redis.clone();
    let kind = JobKind::ApplyDayparting;
    assert_eq!(
        adbudget_queue::pending(&mut conn, &prefix, kind)
            .await
            .unwrap(),
        0,
        "nothing was enqueued for the disabled schedule"
    );
    let log = b.log();
    assert!(
        log.contains("no catch-up: the schedule is disabled") && log.contains("apply_dayparting"),
        "{log}"
    );
    // The enabled hourly job was caught up (its last tick was never handled): the catch-up ran,
    // it only skipped the disabled one.
    assert!(
        adbudget_queue::pending(&mut conn, &prefix, JobKind::EnforceBudgets)
            .await
            .unwrap()
            == 1
    );
    change(&pool, kind, None, Some(true));
    let deadline = Instant::now() + Duration::from_secs(10);
    while adbudget_queue::pending(&mut conn, &prefix, kind)
        .await
        .unwrap()
        == 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        adbudget_queue::pending(&mut conn, &prefix, kind)
            .await
            .unwrap(),
        1,
        "enabled again, it enqueues (one at a time: no worker takes it here)"
    );
    cleanup(&redis, &prefix).await;
}

/// `standalone`: "Run now" runs the job in process, once per key, and says who asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_in_standalone_runs_once_per_key() {
    let dir = std::env::temp_dir().join(format!(
        "adbudget-e2e-runnow-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("standalone.db").display());
    let port = free_port();
    let log = dir.join("standalone.log");
    let mut cmd = command("adbudget", &url);
    cmd.arg("standalone")
        .env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("RUST_LOG", "info")
        .env("ADBUDGET_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut process = Process::spawn(&mut cmd).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz"), &mut process).await;
    let out = command("adbudget", &url)
        .args(["token", "create", "--name", "ops", "--scope", "admin"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let run = || {
        client
            .post(format!("{base}/api/v1/jobs/reset_monthly/run"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "double-click")
            .send()
    };
    assert_eq!(run().await.unwrap().status(), 202);
    assert_eq!(run().await.unwrap().status(), 200);
    let manual_runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            // One JSON object per line, the event's fields at the top level.
            .filter(|v| {
                v["message"] == "job done"
                    && v["job.name"] == "reset_monthly"
                    && v["job.run_by"] == "ops (token)"
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while manual_runs() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        manual_runs(),
        1,
        "one run by hand; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
