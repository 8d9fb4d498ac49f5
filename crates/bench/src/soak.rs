//! `adbudget-bench soak`: the whole system under mixed load while processes fail (issue #7).
//!
//! On PostgreSQL, with a redis-server of its own, the tool starts two `adbudget-api`, two
//! `adbudget-worker` and two `adbudget-beat` processes (the real binaries, built next to this one)
//! and drives them with single and batch spend (including replays of earlier event ids), budget
//! edits, schedule edits and manual pause/resume, spread over both APIs as a load balancer would.
//! Meanwhile it kills a worker with SIGKILL, restarts Redis, restarts an API process, kills the
//! other API process with SIGKILL and kills a beat. A client whose request fails (connection lost,
//! 503) sends the same event ids again later, as the API's idempotency allows. A webhook receiver
//! (an HTTP server in this process) is registered for the campaigns' pauses and resumptions.
//!
//! Afterwards it checks that every acknowledged event is stored exactly once with its payload,
//! that nothing else was stored, that the jobs run again after the faults, that every state change
//! in the outbox reached the receiver (none twice under different ids), and that `adbudget verify`
//! is clean. Any failure is an error (exit 1).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adbudget_db as db;
use adbudget_db::repo::tokens;
use adbudget_testing::process::{Process, binary, free_port, redis_server};
use adbudget_testing::{Backend, TestDatabase};
use anyhow::{Context, bail, ensure};

use chrono::Timelike;
use diesel::prelude::*;
use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `adbudget-bench soak`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// PostgreSQL database to use (a throwaway one on TEST_DATABASE_URL's server otherwise).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    #[arg(long, default_value_t = 10)]
    pub brands: usize,
    #[arg(long, default_value_t = 10)]
    pub campaigns_per_brand: usize,
}

/// Where the processes' logs go (stderr, appended across restarts).
fn logs_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("adbudget-soak-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
    .clone()
}

/// One process of the system under test, restartable, its stderr appended to
/// `<logs_dir>/<name>.log` across restarts.
fn start_logged(
    name: &str,
    command: impl Fn() -> Command + Send + 'static,
) -> anyhow::Result<Process> {
    let log = logs_dir().join(format!("{name}.log"));
    Process::start(name, move || {
        let mut c = command();
        if let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            c.stderr(file);
        }
        c
    })
}

async fn wait_http(
    client: &reqwest::Client,
    url: &str,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == StatusCode::OK
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("{url} did not answer 200 within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if started.elapsed() > within {
            bail!("nothing listens on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A spend event the load sent, by its id.
#[derive(Clone)]
struct Event {
    id: String,
    campaign: i64,
    /// Micro-units, as stored.
    micros: i64,
}

impl Event {
    fn json(&self) -> Value {
        json!({
            "campaign_id": self.campaign,
            "amount": format!("{}.{:02}", self.micros / 1_000_000, (self.micros % 1_000_000) / 10_000),
            "event_id": self.id,
        })
    }
}

/// What the load saw, shared by the client tasks.
#[derive(Default)]
struct Ledger {
    /// Events the API acknowledged (201 or a 200 replay), by id.
    acked: HashMap<String, Event>,
    /// Events whose request failed before an answer: sent again at the end.
    unacked: HashMap<String, Event>,
    /// Requests by kind and answer.
    answers: HashMap<(&'static str, u16), u64>,
    transport_errors: u64,
}

struct Target {
    client: reqwest::Client,
    apis: Vec<String>,
    token: String,
}

impl Target {
    /// Sends to a random API and, if it cannot be reached, to the other one (a load balancer's
    /// retry on connection failure). `None` when neither answered.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(StatusCode, Value)> {
        let first = rand::rng().random_range(0..self.apis.len());
        for i in 0..self.apis.len() {
            let base = &self.apis[(first + i) % self.apis.len()];
            let mut req = self
                .client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(20));
            if let Some(b) = body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.json().await.unwrap_or(Value::Null);
                    return Some((status, body));
                }
                Err(e) if e.is_connect() => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

struct Fault {
    what: &'static str,
    at: Duration,
    recovered_in: Duration,
}

/// `adbudget-bench soak`, in steps: the database and a token, the processes, the data set, the
/// load with the faults injected while it runs, the retries of unanswered requests, the checks
/// that the system recovered and stops cleanly, and the audit of what was stored.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let (url, _guard) = database(args.database_url.clone())?;
    let token = admin_token(&url)?;
    let mut system = System::start(&url, args.connections).await?;
    let target = Arc::new(Target {
        client: system.client.clone(),
        apis: system.bases.clone(),
        token,
    });
    let data = create_data_set(&target, &args, &system.run_id).await?;
    let receiver = adbudget_testing::receiver::Receiver::start().await;
    let endpoint = target
        .client
        .post(format!("{}/api/v1/webhooks", target.apis[1]))
        .bearer_auth(&target.token)
        .json(&json!({"url": receiver.url, "event_types": ["campaign.paused", "campaign.resumed"]}))
        .send()
        .await?;
    ensure!(
        endpoint.status() == StatusCode::CREATED,
        "webhook endpoint not created: {}",
        endpoint.status()
    );
    println!("process logs: {}", logs_dir().display());
    println!(
        "soak {}: {} brands, {} campaigns, 2 APIs, 2 workers, 2 beats, {} clients, {} s",
        system.run_id,
        data.brands.len(),
        data.campaigns.len(),
        args.connections,
        args.seconds
    );

    let load = Load::start(&target, data, &system.run_id, &args);
    let faults = system
        .inject_faults(&target, load.started, args.seconds)
        .await?;
    let (ledger, load_secs, sent) = load.finish().await?;
    let retried = resend_unanswered(&target, &ledger).await?;
    let run_id = system.run_id.clone();
    let deliveries = Deliveries::wait_for_all(&url, &receiver, Duration::from_secs(120)).await?;
    system.check_recovered_and_stop(&target).await?;

    let ledger = Arc::try_unwrap(ledger)
        .map_err(|_| anyhow::anyhow!("clients still hold the ledger"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a client panicked"))?;
    let audit = Audit::of(&url, &run_id, &ledger)?;
    report(&ledger, &faults, &audit, sent, load_secs, retried);
    println!(
        "webhooks: {} state changes in the outbox, {} delivered ({} requests, {} redeliveries)",
        deliveries.outbox,
        deliveries.delivered,
        deliveries.requests,
        deliveries.requests - deliveries.delivered
    );
    audit.ensure_clean(&ledger)?;
    deliveries.ensure_clean()?;
    println!("soak passed");
    Ok(())
}

/// The database the soak runs on: the one given, or a throwaway one (dropped with the guard).
fn database(given: Option<String>) -> anyhow::Result<(String, Option<TestDatabase>)> {
    let (url, guard) = match given {
        Some(u) => (u, None),
        None => {
            let t = TestDatabase::create(Backend::Postgres)?;
            (t.url.clone(), Some(t))
        }
    };
    ensure!(
        url.starts_with("postgres"),
        "the soak runs on PostgreSQL (got {})",
        db::redact(&url)
    );
    Ok((url, guard))
}

/// Migrates the database and creates the admin token the load uses.
fn admin_token(url: &str) -> anyhow::Result<String> {
    let pool = db::connect(url, 4)?;
    db::migrate(&mut *db::get(&pool)?)?;
    let (_, token) = tokens::create(
        &mut *db::get(&pool)?,
        &tokens::NewToken::new("soak", tokens::Scope::Admin),
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )?;
    Ok(token)
}

/// The system under test: a redis-server of its own, two APIs, two workers and two beats, each
/// restartable.
struct System {
    run_id: String,
    redis: Process,
    redis_port: u16,
    apis: Vec<Process>,
    workers: [Process; 2],
    beats: [Process; 2],
    /// The APIs' base URLs.
    bases: Vec<String>,
    /// Each worker's and beat's readiness URL (workers first).
    ready_urls: [String; 4],
    client: reqwest::Client,
}

impl System {
    /// Starts every process and waits until the APIs are ready.
    async fn start(url: &str, connections: usize) -> anyhow::Result<System> {
        let run_id = format!("{:08x}", rand::rng().random::<u32>());
        let redis_port = free_port()?;
        let redis = start_logged("redis-server", move || redis_server(redis_port))?;
        wait_port(redis_port, Duration::from_secs(10)).await?;
        let env = Arc::new(process_env(url, redis_port, &run_id));
        let process = |name: &str,
                       bin: &'static str,
                       extra: Vec<(&'static str, String)>|
         -> anyhow::Result<Process> {
            let path = binary(bin)?;
            let env = env.clone();
            start_logged(name, move || {
                let mut c = Command::new(&path);
                env(&mut c);
                for (k, v) in &extra {
                    c.env(k, v);
                }
                c
            })
        };
        let api_ports = [free_port()?, free_port()?];
        let mut apis = Vec::new();
        for (n, port) in api_ports.into_iter().enumerate() {
            apis.push(process(
                ["api-1", "api-2"][n],
                "adbudget-api",
                vec![("ADBUDGET_BIND", format!("127.0.0.1:{port}"))],
            )?);
        }
        // Each worker and beat serves /healthz and /readyz on a port of its own.
        let health_ports = [free_port()?, free_port()?, free_port()?, free_port()?];
        let health = |n: usize| {
            vec![(
                "ADBUDGET_HEALTH_BIND",
                format!("127.0.0.1:{}", health_ports[n]),
            )]
        };
        let workers = [
            process("worker-1", "adbudget-worker", health(0))?,
            process("worker-2", "adbudget-worker", health(1))?,
        ];
        let beats = [
            process("beat-1", "adbudget-beat", health(2))?,
            process("beat-2", "adbudget-beat", health(3))?,
        ];
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()?;
        let bases: Vec<String> = api_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        for base in &bases {
            wait_http(&client, &format!("{base}/readyz"), Duration::from_secs(30)).await?;
        }
        Ok(System {
            run_id,
            redis,
            redis_port,
            apis,
            workers,
            beats,
            bases,
            ready_urls: health_ports.map(|p| format!("http://127.0.0.1:{p}/readyz")),
            client,
        })
    }

    /// The faults, spread over the run while the load goes on: a worker killed, Redis restarted
    /// (its queues lost), an API restarted gracefully, a beat killed. Each is timed until the
    /// system is back.
    async fn inject_faults(
        &mut self,
        target: &Target,
        started: Instant,
        seconds: u64,
    ) -> anyhow::Result<Vec<Fault>> {
        let mut faults = Vec::new();
        let at = |fraction: f64| started + Duration::from_secs_f64(seconds as f64 * fraction);
        let sleep_until = |t: Instant| tokio::time::sleep_until(t.into());

        sleep_until(at(0.2)).await;
        let t = started.elapsed();
        self.workers[0].kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.workers[0].restart()?;
        let recovered =
            wait_http(&self.client, &self.ready_urls[0], Duration::from_secs(30)).await?;
        faults.push(Fault {
            what: "worker 1 killed with SIGKILL, started again (ready)",
            at: t,
            recovered_in: recovered + Duration::from_secs(1),
        });

        sleep_until(at(0.4)).await;
        let t = started.elapsed();
        self.redis.kill();
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.redis.restart()?;
        wait_port(self.redis_port, Duration::from_secs(10)).await?;
        // Redis lost everything (it keeps nothing on disk): the counters start again from zero.
        let recovered = wait_jobs_after(target, 0, Duration::from_secs(60)).await?;
        faults.push(Fault {
            what: "Redis restarted (queues lost); jobs running again",
            at: t,
            recovered_in: recovered + Duration::from_secs(2),
        });

        sleep_until(at(0.6)).await;
        let t = started.elapsed();
        let clean = self.apis[0].terminate(Duration::from_secs(15));
        ensure!(clean, "API 1 did not exit cleanly on SIGTERM");
        self.apis[0].restart()?;
        let recovered = wait_http(
            &self.client,
            &format!("{}/readyz", self.bases[0]),
            Duration::from_secs(30),
        )
        .await?;
        faults.push(Fault {
            what: "API 1 restarted (SIGTERM, graceful)",
            at: t,
            recovered_in: recovered,
        });

        sleep_until(at(0.7)).await;
        let t = started.elapsed();
        // SIGKILL under load: requests in flight are lost (their clients send them again), and
        // so is any dispatcher nudge not yet queued (the 5-second sweep delivers those events).
        self.apis[1].kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.apis[1].restart()?;
        let recovered = wait_http(
            &self.client,
            &format!("{}/readyz", self.bases[1]),
            Duration::from_secs(30),
        )
        .await?;
        faults.push(Fault {
            what: "API 2 killed with SIGKILL under load, started again (ready)",
            at: t,
            recovered_in: recovered + Duration::from_secs(1),
        });

        sleep_until(at(0.8)).await;
        let t = started.elapsed();
        self.beats[0].kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.beats[0].restart()?;
        let recovered =
            wait_http(&self.client, &self.ready_urls[2], Duration::from_secs(30)).await?;
        faults.push(Fault {
            what: "beat 1 killed with SIGKILL, started again (ready)",
            at: t,
            recovered_in: recovered + Duration::from_secs(1),
        });
        Ok(faults)
    }

    /// The jobs still run after every fault (a full cycle after the last one), every process is
    /// alive, and each exits zero on SIGTERM.
    async fn check_recovered_and_stop(mut self, target: &Target) -> anyhow::Result<()> {
        let done = jobs_done(target).await;
        wait_jobs_after(target, done, Duration::from_secs(60)).await?;
        let mut processes: Vec<&mut Process> = self
            .apis
            .iter_mut()
            .chain(self.workers.iter_mut())
            .chain(self.beats.iter_mut())
            .collect();
        for p in processes.iter_mut() {
            ensure!(p.alive(), "{} died during the soak", p.name());
        }
        let mut unclean = Vec::new();
        for p in processes {
            if !p.terminate(Duration::from_secs(20)) {
                unclean.push(p.name().to_owned());
            }
        }
        ensure!(
            unclean.is_empty(),
            "did not exit zero on SIGTERM: {unclean:?}"
        );
        Ok(())
    }
}

/// The environment of every process of the soak: its database, its Redis, its own key prefix,
/// schedules of seconds so the jobs run often.
fn process_env(
    url: &str,
    redis_port: u16,
    run_id: &str,
) -> impl Fn(&mut Command) + Send + Sync + 'static {
    let url = url.to_owned();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let prefix = format!("soak-{run_id}");
    move |c: &mut Command| {
        c.env("DATABASE_URL", &url)
            .env("REDIS_URL", &redis_url)
            .env("ADBUDGET_QUEUE_PREFIX", &prefix)
            .env("ADBUDGET_SCHEDULE_ENFORCE_BUDGETS", "*/5 * * * * *")
            .env("ADBUDGET_SCHEDULE_APPLY_DAYPARTING", "*/5 * * * * *")
            .env("ADBUDGET_SCHEDULE_RESET_DAILY", "*/10 * * * * *")
            .env("ADBUDGET_SCHEDULE_RESET_MONTHLY", "*/10 * * * * *")
            .env("ADBUDGET_DB_POOL_SIZE", "8")
            .env("ADBUDGET_WORKER_CONCURRENCY", "2")
            .env("ADBUDGET_SHUTDOWN_TIMEOUT_SECS", "10")
            .env("ADBUDGET_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
    }
}

/// The brands and campaigns the load spends on.
struct DataSet {
    brands: Arc<Vec<i64>>,
    campaigns: Arc<Vec<i64>>,
}

/// Brands with budgets that the load exhausts, campaigns with and without caps, created through
/// the API.
async fn create_data_set(
    target: &Target,
    args: &SoakArgs,
    run_id: &str,
) -> anyhow::Result<DataSet> {
    let mut campaigns = Vec::new();
    let mut brands = Vec::new();
    for b in 0..args.brands {
        let (status, brand) = target
            .send(
                Method::POST,
                "/api/v1/brands",
                Some(&json!({"name": format!("soak-{run_id}-{b}"), "daily_budget": "200", "monthly_budget": "3000"})),
            )
            .await
            .context("no API answered")?;
        ensure!(status == 201, "creating a brand: {status} {brand}");
        let brand_id = brand["id"].as_i64().context("brand id")?;
        brands.push(brand_id);
        for c in 0..args.campaigns_per_brand {
            let mut body = json!({"brand_id": brand_id, "name": format!("c{c}")});
            if c % 3 == 0 {
                body["daily_cap"] = json!("40");
            }
            let (status, campaign) = target
                .send(Method::POST, "/api/v1/campaigns", Some(&body))
                .await
                .context("no API answered")?;
            ensure!(status == 201, "creating a campaign: {status} {campaign}");
            campaigns.push(campaign["id"].as_i64().context("campaign id")?);
        }
    }
    Ok(DataSet {
        brands: Arc::new(brands),
        campaigns: Arc::new(campaigns),
    })
}

/// The mixed load: `connections` clients sending requests until the deadline.
struct Load {
    started: Instant,
    ledger: Arc<Mutex<Ledger>>,
    sent: Arc<AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(target: &Arc<Target>, data: DataSet, run_id: &str, args: &SoakArgs) -> Load {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let sent = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.seconds);
        let mut clients = Vec::new();
        for client_no in 0..args.connections {
            let (target, ledger, campaigns, brands, sent) = (
                target.clone(),
                ledger.clone(),
                data.campaigns.clone(),
                data.brands.clone(),
                sent.clone(),
            );
            let client = format!("{run_id}-{client_no}");
            clients.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    step(&target, &ledger, &campaigns, &brands, &client, &mut n).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Load {
            started,
            ledger,
            sent,
            clients,
        }
    }

    /// Waits for every client; returns what they saw, the load's duration and the requests sent.
    async fn finish(self) -> anyhow::Result<(Arc<Mutex<Ledger>>, f64, u64)> {
        for c in self.clients {
            c.await?;
        }
        let secs = self.started.elapsed().as_secs_f64();
        Ok((self.ledger, secs, self.sent.load(Ordering::Relaxed)))
    }
}

/// Requests that got no answer are sent again, with the same event ids, until acknowledged (60 s
/// at most). Returns how many there were.
async fn resend_unanswered(target: &Target, ledger: &Mutex<Ledger>) -> anyhow::Result<usize> {
    let retry: Vec<Event> = lock(ledger).unacked.values().cloned().collect();
    let retry_deadline = Instant::now() + Duration::from_secs(60);
    for e in &retry {
        loop {
            match target
                .send(Method::POST, "/api/v1/spend", Some(&e.json()))
                .await
            {
                Some((s, _)) if s == StatusCode::CREATED || s == StatusCode::OK => {
                    let mut l = lock(ledger);
                    l.unacked.remove(&e.id);
                    l.acked.insert(e.id.clone(), e.clone());
                    break;
                }
                other => {
                    ensure!(
                        Instant::now() < retry_deadline,
                        "event {} never acknowledged: {:?}",
                        e.id,
                        other.map(|o| o.0)
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok(retry.len())
}

/// What was stored, against what was acknowledged, and `adbudget verify`'s verdict.
struct Audit {
    stored: usize,
    problems: Vec<String>,
    verify: std::process::Output,
}

impl Audit {
    /// Every acknowledged event stored exactly once, with its payload; nothing else stored.
    fn of(url: &str, run_id: &str, ledger: &Ledger) -> anyhow::Result<Audit> {
        let stored = stored_events(url, run_id)?;
        let mut problems = Vec::new();
        for (id, e) in &ledger.acked {
            match stored.get(id) {
                None => problems.push(format!("acknowledged {id} is not stored")),
                Some((_, _, count)) if *count != 1 => {
                    problems.push(format!("{id} stored {count} times"))
                }
                Some((campaign, micros, _)) if (*campaign, *micros) != (e.campaign, e.micros) => {
                    problems.push(format!("{id} stored with another payload"))
                }
                Some(_) => {}
            }
        }
        for id in stored.keys() {
            if !ledger.acked.contains_key(id) {
                problems.push(format!("{id} stored but never acknowledged"));
            }
        }
        let verify = Command::new(binary("adbudget")?)
            .arg("verify")
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "error")
            .output()?;
        Ok(Audit {
            stored: stored.len(),
            problems,
            verify,
        })
    }

    /// Fails on any disagreement, on `verify`'s, on a server error other than 503, and on a
    /// valid request refused with a 4xx.
    fn ensure_clean(&self, ledger: &Ledger) -> anyhow::Result<()> {
        let server_errors: u64 = ledger
            .answers
            .iter()
            .filter(|((_, s), _)| *s >= 500 && *s != 503)
            .map(|(_, n)| n)
            .sum();
        let unexpected: u64 = ledger
            .answers
            .iter()
            .filter(|((_, s), _)| (400..500).contains(s))
            .map(|(_, n)| n)
            .sum();
        ensure!(
            self.problems.is_empty(),
            "stored events disagree with the acknowledgements: {:?}",
            &self.problems[..self.problems.len().min(10)]
        );
        ensure!(
            self.verify.status.success(),
            "adbudget verify found disagreements"
        );
        ensure!(
            server_errors == 0,
            "{server_errors} answers were server errors other than 503"
        );
        ensure!(
            unexpected == 0,
            "{unexpected} valid requests were refused with a 4xx"
        );
        Ok(())
    }
}

/// The soak's report: the load's answers, the faults and their recovery, the audit.
fn report(
    ledger: &Ledger,
    faults: &[Fault],
    audit: &Audit,
    sent: u64,
    load_secs: f64,
    retried: usize,
) {
    let mut answers: Vec<_> = ledger.answers.iter().collect();
    answers.sort();
    println!(
        "load: {sent} requests in {load_secs:.1} s ({:.0}/s)",
        sent as f64 / load_secs
    );
    for ((kind, status), n) in &answers {
        println!("  {kind:<10} {status}  {n}");
    }
    println!("  no answer (connection lost): {}", ledger.transport_errors);
    println!("faults survived:");
    for f in faults {
        println!(
            "  at {:>5.1} s  {}  (recovered in {:.1} s)",
            f.at.as_secs_f64(),
            f.what,
            f.recovered_in.as_secs_f64()
        );
    }
    println!(
        "events checked: {} acknowledged ({} after a retry), {} stored, {} problems",
        ledger.acked.len(),
        retried,
        audit.stored,
        audit.problems.len()
    );
    println!(
        "adbudget verify: {}",
        if audit.verify.status.success() {
            "clean".to_owned()
        } else {
            format!(
                "FAILED\n{}{}",
                String::from_utf8_lossy(&audit.verify.stdout),
                String::from_utf8_lossy(&audit.verify.stderr)
            )
        }
    );
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    // A client that panicked left the ledger as consistent as any other moment.
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One request of the mixed load.
async fn step(
    target: &Target,
    ledger: &Mutex<Ledger>,
    campaigns: &[i64],
    brands: &[i64],
    client: &str,
    n: &mut u64,
) {
    let mut new_event = || {
        *n += 1;
        let mut rng = rand::rng();
        Event {
            id: format!("{client}-{n}"),
            campaign: *campaigns.choose(&mut rng).unwrap_or(&0),
            micros: rng.random_range(1..=500) * 10_000,
        }
    };
    let replay = || {
        let l = lock(ledger);
        if l.acked.is_empty() {
            return None;
        }
        // A random earlier event (HashMap order is arbitrary enough; skip a random count).
        let skip = rand::rng().random_range(0..l.acked.len().min(64));
        l.acked.values().nth(skip).cloned()
    };
    let roll = rand::rng().random_range(0..100);
    let (kind, method, path, body, events): (
        &'static str,
        Method,
        String,
        Option<Value>,
        Vec<Event>,
    ) = match roll {
        0..55 => {
            let e = if roll < 5 {
                replay().unwrap_or_else(&mut new_event)
            } else {
                new_event()
            };
            (
                "spend",
                Method::POST,
                "/api/v1/spend".into(),
                Some(e.json()),
                vec![e],
            )
        }
        55..75 => {
            let size = rand::rng().random_range(2..=50);
            let mut events: Vec<Event> = (0..size).map(|_| new_event()).collect();
            if let Some(old) = replay()
                && !events.iter().any(|e| e.id == old.id)
            {
                events.push(old);
            }
            let body = json!({"events": events.iter().map(Event::json).collect::<Vec<_>>()});
            (
                "batch",
                Method::POST,
                "/api/v1/spend/batch".into(),
                Some(body),
                events,
            )
        }
        75..85 => {
            let mut rng = rand::rng();
            let brand = brands.choose(&mut rng).copied().unwrap_or(0);
            let daily = rng.random_range(50..=400);
            let body = json!({"daily_budget": daily.to_string(), "monthly_budget": (daily * rng.random_range(5..=20)).to_string()});
            (
                "budget",
                Method::PATCH,
                format!("/api/v1/brands/{brand}"),
                Some(body),
                vec![],
            )
        }
        85..92 => {
            let campaign = campaigns.choose(&mut rand::rng()).copied().unwrap_or(0);
            let path = format!("/api/v1/campaigns/{campaign}/dayparting");
            match schedule() {
                Some(s) => ("schedule", Method::PUT, path, Some(s), vec![]),
                None => ("schedule", Method::DELETE, path, None, vec![]),
            }
        }
        _ => {
            let campaign = campaigns.choose(&mut rand::rng()).copied().unwrap_or(0);
            let action = if roll % 2 == 0 { "pause" } else { "resume" };
            (
                "manual",
                Method::POST,
                format!("/api/v1/campaigns/{campaign}/{action}"),
                None,
                vec![],
            )
        }
    };
    let answer = target.send(method, &path, body.as_ref()).await;
    let mut l = lock(ledger);
    match answer {
        Some((status, body)) => {
            *l.answers.entry((kind, status.as_u16())).or_default() += 1;
            if status.is_success() {
                for e in events {
                    l.unacked.remove(&e.id);
                    l.acked.insert(e.id.clone(), e);
                }
            } else if status == StatusCode::SERVICE_UNAVAILABLE {
                for e in events {
                    if !l.acked.contains_key(&e.id) {
                        l.unacked.insert(e.id.clone(), e);
                    }
                }
            } else if status.is_client_error() {
                eprintln!("unexpected {status} for {kind} {path}: {body}");
            }
        }
        None => {
            l.transport_errors += 1;
            for e in events {
                if !l.acked.contains_key(&e.id) {
                    l.unacked.insert(e.id.clone(), e);
                }
            }
        }
    }
}

/// A schedule whose boundaries stay clear of the next hour (so that a window does not open or
/// close while the run lasts: `verify` at the end must not race `apply_dayparting`), or none
/// (the schedule is removed).
fn schedule() -> Option<Value> {
    let mut rng = rand::rng();
    if rng.random_bool(0.2) {
        return None;
    }
    let now = chrono::Utc::now();
    let minute_now = (now.hour() * 60 + now.minute()) as i64;
    let clear = |m: i64| {
        let d = (m - minute_now).rem_euclid(1440);
        (90..1440 - 30).contains(&d)
    };
    loop {
        let start = rng.random_range(0..24 * 4) * 15;
        let end = rng.random_range(1..=24 * 4) * 15;
        if start < end && clear(start) && clear(end % 1440) {
            let hm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
            let end = if end == 1440 {
                "24:00".to_owned()
            } else {
                hm(end)
            };
            return Some(
                json!({"windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": hm(start), "end": end}]}),
            );
        }
    }
}

async fn queues(target: &Target) -> Option<Value> {
    let (status, body) = target
        .send(Method::GET, "/api/v1/jobs/queues", None)
        .await?;
    (status == StatusCode::OK).then_some(body)
}

/// Successful runs of `enforce_budgets` counted in Redis.
async fn jobs_done(target: &Target) -> u64 {
    let Some(q) = queues(target).await else {
        return 0;
    };
    q["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "enforce_budgets"))
        .and_then(|q| q["done"].as_u64())
        .unwrap_or(0)
}

/// Waits until `enforce_budgets` has run successfully more than `after` times.
async fn wait_jobs_after(
    target: &Target,
    after: u64,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while jobs_done(target).await <= after {
        if started.elapsed() > within {
            bail!("enforce_budgets did not run within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(started.elapsed())
}

/// The run's stored events: id → (campaign, micros, how many rows).
fn stored_events(url: &str, run_id: &str) -> anyhow::Result<HashMap<String, (i64, i64, i64)>> {
    use adbudget_db::schema::spend_logs::dsl as s;
    let mut conn = db::connect_one(url)?;
    let rows: Vec<(Option<String>, i64, i64)> = s::spend_logs
        .filter(s::event_id.like(format!("{run_id}-%")))
        .select((s::event_id, s::campaign_id, s::amount))
        .load(&mut conn)?;
    let mut out: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for (id, campaign, micros) in rows {
        let entry = out
            .entry(id.unwrap_or_default())
            .or_insert((campaign, micros, 0));
        entry.2 += 1;
    }
    Ok(out)
}

/// The webhook deliveries of the run: the outbox's state changes against what the receiver got.
struct Deliveries {
    /// `campaign.paused` and `campaign.resumed` events in the outbox.
    outbox: usize,
    /// Of those, how many reached the receiver.
    delivered: usize,
    /// Requests the receiver got (redeliveries included).
    requests: usize,
    problems: Vec<String>,
}

impl Deliveries {
    /// Waits until every state change in the outbox has reached the receiver (at most `within`),
    /// then compares: each event id at least once, and one id per campaign state version.
    async fn wait_for_all(
        url: &str,
        receiver: &adbudget_testing::receiver::Receiver,
        within: Duration,
    ) -> anyhow::Result<Deliveries> {
        use adbudget_db::schema::events::dsl as e;
        let mut conn = db::connect_one(url)?;
        let deadline = Instant::now() + within;
        loop {
            let outbox: Vec<i64> = e::events
                .filter(e::event_type.eq_any(["campaign.paused", "campaign.resumed"]))
                .select(e::id)
                .load(&mut conn)?;
            let got = receiver.received();
            let mut ids: HashMap<String, usize> = HashMap::new();
            let mut versions: HashMap<(i64, i64), String> = HashMap::new();
            let mut problems = Vec::new();
            for r in &got {
                let body: Value = serde_json::from_str(&r.body)?;
                let id = r
                    .headers
                    .get("webhook-id")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if body["id"] != id.as_str() {
                    problems.push(format!("{id}: the body's id is {}", body["id"]));
                }
                let key = (
                    body["data"]["campaign"]["id"].as_i64().unwrap_or(0),
                    body["data"]["state_version"].as_i64().unwrap_or(0),
                );
                if let Some(other) = versions.insert(key, id.clone())
                    && other != id
                {
                    problems.push(format!(
                        "campaign {} state {} delivered as {other} and as {id}",
                        key.0, key.1
                    ));
                }
                *ids.entry(id).or_default() += 1;
            }
            let missing: Vec<i64> = outbox
                .iter()
                .copied()
                .filter(|id| !ids.contains_key(&adbudget_core::events::public_id(*id)))
                .collect();
            if missing.is_empty() || Instant::now() > deadline {
                problems.extend(
                    missing
                        .iter()
                        .take(10)
                        .map(|id| format!("evt_{id} never arrived")),
                );
                return Ok(Deliveries {
                    outbox: outbox.len(),
                    delivered: outbox.len() - missing.len(),
                    requests: got.len(),
                    problems,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn ensure_clean(&self) -> anyhow::Result<()> {
        ensure!(
            self.problems.is_empty(),
            "webhook deliveries disagree with the outbox: {:?}",
            self.problems
        );
        ensure!(
            self.outbox > 0,
            "the soak caused no state change to deliver"
        );
        Ok(())
    }
}
