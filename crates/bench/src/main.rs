//! `adbudget-bench`: the numbers in BENCHMARKS.md.
//!
//! - `ingest`: HTTP load on `POST /api/v1/spend` (or `/spend/batch`) with N concurrent
//!   connections and unique event ids; prints throughput, p50/p95/p99 latency and the server's
//!   peak RSS, then checks that the spend logs, period totals and campaign states agree.
//!   Points at a running API (`--url`, `--token`) or starts `adbudget-api` on `--database-url`.
//! - `pacing`: the pacing and series routes' latency over a history of N spend events.
//! - `jobs`: creates N campaigns on a throwaway database (or `--database-url`) and times each job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adbudget_core::jobs::JobKind;
use adbudget_db::jobs;
use adbudget_db::repo::{tokens, verify};
use adbudget_db::{self as db, DbPool};
use adbudget_testing::process::{Process, binary, free_port};
use adbudget_testing::{self as testing, Backend, TestDatabase};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;

mod cpu;
mod limit;
mod pacing;
mod soak;
mod worker_rss;

#[derive(Parser)]
#[command(
    name = "adbudget-bench",
    about = "Benchmarks of adbudget (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Db {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Command {
    /// Spend ingestion over HTTP, with the server's CPU per event, then (unless `--url`) the
    /// database's own limit for the same rows on the same data (`limit`), and the ratios.
    Ingest(IngestArgs),
    /// The database's own limit: the rows the spend path writes, as raw SQL, nothing else.
    Limit(limit::LimitArgs),
    /// The whole system (2 APIs, 2 workers, 2 beats, PostgreSQL, a Redis of its own) under
    /// mixed load while processes are killed and restarted; then every acknowledged event is
    /// checked and `adbudget verify` must be clean.
    Soak(soak::SoakArgs),
    /// The pacing routes' latency over a spend history of a given size (their cost must not grow
    /// with it: SPEC §10).
    Pacing(pacing::PacingArgs),
    /// Job runtimes over a data set.
    Jobs {
        #[arg(long, value_enum, default_value = "postgres")]
        db: Db,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        campaigns: usize,
        /// Time the jobs over the campaigns already in `--database-url` (seeded by an earlier
        /// run) instead of creating `--campaigns` more: for comparing builds on one data set.
        #[arg(long, requires = "database_url")]
        no_seed: bool,
        /// Then run `adbudget-worker` (with `adbudget-beat` enqueueing enforce_budgets every 2 s)
        /// on the data set for this many seconds and report its peak resident set.
        #[arg(long)]
        worker_seconds: Option<u64>,
    },
}

fn db_name(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "SQLite",
        Db::Postgres => "PostgreSQL",
    }
}

fn backend(db: Db) -> Backend {
    match db {
        Db::Sqlite => Backend::Sqlite,
        Db::Postgres => Backend::Postgres,
    }
}

/// A database to use: the given URL, or a throwaway one (kept alive by the returned guard).
fn database(db: Db, url: Option<String>) -> anyhow::Result<(String, Option<TestDatabase>)> {
    match url {
        Some(u) => Ok((u, None)),
        None => {
            let t = TestDatabase::create(backend(db))?;
            Ok((t.url.clone(), Some(t)))
        }
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// Creates `n` campaigns (100 per brand) and brings their states up to date.
fn seed(pool: &DbPool, n: usize) -> anyhow::Result<Vec<i64>> {
    let mut conn = db::get(pool)?;
    let per_brand = 100.min(n.max(1));
    let pb = bar(n as u64, "campaigns");
    let ids = testing::seed(&mut conn, n.div_ceil(per_brand), per_brand, |done| {
        pb.set_position(done)
    })?;
    pb.finish();
    let started = Instant::now();
    jobs::run(
        &mut conn,
        JobKind::EnforceBudgets,
        adbudget_core::forms::now(),
        &Default::default(),
    )?;
    eprintln!("initial states set in {:?}", started.elapsed());
    // Time the jobs on a database at rest, as in service: statistics current, and the bulk load's
    // dirty pages written out (else the first job shares the disk with that checkpoint).
    if let db::DbConnection::Postgresql(pg) = &mut *conn {
        use diesel::connection::SimpleConnection;
        let started = Instant::now();
        // One statement per call: a multi-statement string runs as one transaction block.
        pg.batch_execute("VACUUM ANALYZE")?;
        pg.batch_execute("CHECKPOINT")?;
        eprintln!("vacuum, analyze, checkpoint in {:?}", started.elapsed());
    }
    Ok(ids)
}

/// Spend history, as a database in service has: `per_campaign` events per campaign spread over
/// the twelve months before the current one (the 15th at 12:00 UTC: past periods, so today's
/// totals start at zero; the same local date in every seeded timezone), in their monthly
/// partitions (created first, as `maintain_spend_logs` would have), with their event ids, period
/// totals (the months before each brand's mark in its campaigns' carried totals, as
/// the resets fold them) and buckets, then fresh planner statistics. Without it the load starts on
/// empty tables whose plans (sequential scans, chosen before autovacuum's first ANALYZE) say
/// nothing about a database in service. PostgreSQL only.
/// Returns how many events it stored.
fn seed_history(pool: &DbPool, per_campaign: u32) -> anyhow::Result<u64> {
    use diesel::connection::SimpleConnection;
    let mut conn = db::get(pool)?;
    if per_campaign == 0 || !matches!(&*conn, db::DbConnection::Postgresql(_)) {
        return Ok(0);
    }
    let started = Instant::now();
    let now = adbudget_core::forms::now();
    for back in 1..=12 {
        if let Some(then) = now.checked_sub_months(chrono::Months::new(back)) {
            adbudget_db::repo::spend::maintenance::maintain(&mut conn, then, None)?;
        }
    }
    let db::DbConnection::Postgresql(pg) = &mut *conn else {
        return Ok(0);
    };
    pg.batch_execute(&format!(
        "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, event_id, brand_id)
           SELECT c.id, 10000, m.at, m.at, 'history-' || c.id || '-' || g, c.brand_id
           FROM campaigns c CROSS JOIN generate_series(1, {per_campaign}) g
           CROSS JOIN LATERAL (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')
                                      - (1 + g % 12) * interval '1 month'
                                      + interval '14 days 12 hours' AS at) m;
         INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at)
           SELECT brand_id, event_id, id, occurred_at FROM spend_logs
           WHERE event_id LIKE 'history-%';
         INSERT INTO campaign_spend (campaign_id, period, amount)
           SELECT campaign_id, p.period, SUM(amount) FROM spend_logs
           CROSS JOIN LATERAL (VALUES (to_char(occurred_at, 'YYYY-MM-DD')),
                                      (to_char(occurred_at, 'YYYY-MM'))) AS p(period)
           WHERE event_id LIKE 'history-%' GROUP BY campaign_id, p.period;
         UPDATE campaigns c SET lifetime_carried = lifetime_carried + m.amount
           FROM (SELECT s.campaign_id, SUM(s.amount)::bigint AS amount FROM campaign_spend s
                 JOIN campaigns c2 ON c2.id = s.campaign_id JOIN brands b ON b.id = c2.brand_id
                 WHERE s.period LIKE '____-__' AND s.period < b.carried_before
                 GROUP BY s.campaign_id) m
           WHERE c.id = m.campaign_id;
         INSERT INTO brand_spend (brand_id, period, amount)
           SELECT brand_id, p.period, SUM(amount) FROM spend_logs
           CROSS JOIN LATERAL (VALUES (to_char(occurred_at, 'YYYY-MM-DD')),
                                      (to_char(occurred_at, 'YYYY-MM'))) AS p(period)
           WHERE event_id LIKE 'history-%' GROUP BY brand_id, p.period;
         INSERT INTO campaign_spend_buckets (campaign_id, bucket, amount)
           SELECT campaign_id, occurred_at, SUM(amount) FROM spend_logs
           WHERE event_id LIKE 'history-%' GROUP BY campaign_id, occurred_at;
         INSERT INTO brand_spend_buckets (brand_id, bucket, amount)
           SELECT brand_id, occurred_at, SUM(amount) FROM spend_logs
           WHERE event_id LIKE 'history-%' GROUP BY brand_id, occurred_at;"
    ))?;
    // One statement per call: a multi-statement string runs as one transaction block.
    pg.batch_execute("VACUUM ANALYZE")?;
    pg.batch_execute("CHECKPOINT")?;
    eprintln!(
        "spend history ({per_campaign} events a campaign) in {:?}",
        started.elapsed()
    );
    let campaigns: i64 = {
        use adbudget_db::schema::campaigns;
        use diesel::prelude::*;
        campaigns::table.count().get_result(&mut *conn)?
    };
    Ok(campaigns as u64 * u64::from(per_campaign))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Jobs {
            db,
            database_url,
            campaigns,
            no_seed,
            worker_seconds,
        } => bench_jobs(db, database_url, campaigns, no_seed, worker_seconds),
        Command::Soak(args) => tokio::runtime::Runtime::new()?.block_on(soak::run(args)),
        Command::Ingest(args) => tokio::runtime::Runtime::new()?.block_on(bench_ingest(args)),
        Command::Pacing(args) => tokio::runtime::Runtime::new()?.block_on(pacing::run(args)),
        Command::Limit(args) => tokio::runtime::Runtime::new()?.block_on(limit::bench_limit(args)),
    }
}

fn bench_jobs(
    db: Db,
    database_url: Option<String>,
    n: usize,
    no_seed: bool,
    worker_seconds: Option<u64>,
) -> anyhow::Result<()> {
    use adbudget_db::schema::campaigns;
    use diesel::prelude::*;
    let (url, _guard) = database(db, database_url)?;
    let pool = db::connect(&url, 4)?;
    let ids = if no_seed {
        let mut conn = db::get(&pool)?;
        campaigns::table
            .select(campaigns::id)
            .order(campaigns::id)
            .load::<i64>(&mut *conn)?
    } else {
        seed(&pool, n)?
    };
    let mut conn = db::get(&pool)?;
    println!(
        "jobs over {} campaigns on {}",
        ids.len(),
        db::redact(&url).split(':').next().unwrap_or("?")
    );
    let now = adbudget_core::forms::now();
    let timed = |conn: &mut db::DbConnection, kind: JobKind| -> anyhow::Result<()> {
        let started = Instant::now();
        let report = jobs::run(conn, kind, now, &Default::default())?;
        println!(
            "{:<18} {:>9.1} ms  ({} changed)",
            kind.name(),
            started.elapsed().as_secs_f64() * 1000.0,
            report.changed
        );
        Ok(())
    };
    timed(&mut conn, JobKind::EnforceBudgets)?;
    timed(&mut conn, JobKind::ApplyDayparting)?;
    // The resets with work to do: a tenth of the campaigns held by a daily (monthly) budget.
    let held: Vec<i64> = ids.iter().step_by(10).copied().collect();
    for (kind, bits) in [(JobKind::ResetDaily, 2), (JobKind::ResetMonthly, 4)] {
        for chunk in held.chunks(5_000) {
            diesel::update(campaigns::table.filter(campaigns::id.eq_any(chunk)))
                .set(campaigns::pause_reasons.eq(bits))
                .execute(&mut *conn)?;
        }
        timed(&mut conn, kind)?;
    }
    if let Some(seconds) = worker_seconds {
        drop(conn);
        tokio::runtime::Runtime::new()?.block_on(worker_rss::measure(&url, seconds))?;
    }
    Ok(())
}

/// `adbudget-bench ingest`.
#[derive(clap::Args)]
struct IngestArgs {
    /// A throwaway database of this backend (ignored with --database-url or --url).
    #[arg(long, value_enum, default_value = "sqlite")]
    db: Db,
    /// Start `adbudget-api` on this database instead of a throwaway one.
    #[arg(long)]
    database_url: Option<String>,
    /// Load a running API instead (needs --token and --campaign-ids).
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    token: Option<String>,
    #[arg(long, value_delimiter = ',')]
    campaign_ids: Vec<i64>,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Events per request: 1 uses POST /spend, more uses POST /spend/batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Campaigns spend is spread over (created when the tool starts the API).
    #[arg(long, default_value_t = 1000)]
    campaigns: usize,
    /// Spend history per campaign before the load (PostgreSQL), over the twelve months before
    /// the current one: `--campaigns 1000 --history-per-campaign 20000` is 20 million spend logs.
    #[arg(long, default_value_t = 100)]
    history_per_campaign: u32,
    /// Skip the `limit` run after the load (it runs on the same database, with the same
    /// connections, for as long, in transactions of the group sizes the API formed).
    #[arg(long)]
    no_limit: bool,
    /// Writers of the `limit` run. Default: for single events the API's own writer connections
    /// (2 on PostgreSQL, 1 on SQLite; `AppState::new`), the concurrency its group commit meets
    /// the database with; for batches `--connections` (each batch is written by its request).
    /// 64 writers on the same brands' rows measure their lock queue, not the database (7.1k
    /// events/s on PostgreSQL here against 16.9k with 2).
    #[arg(long)]
    limit_connections: Option<usize>,
    /// The `limit` run's statements on PostgreSQL (see `limit --shape`).
    #[arg(long, value_enum, default_value = "two")]
    limit_shape: limit::Shape,
    /// The `limit` run on SQLite a row at a time through prepared statements (see `limit
    /// --sqlite-prepared`).
    #[arg(long)]
    limit_sqlite_prepared: bool,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts `adbudget-api` on `url` and waits until it is ready; returns it and its base URL.
async fn start_api(url: &str) -> anyhow::Result<(Process, String)> {
    let port = free_port()?;
    let exe = binary("adbudget-api")?;
    let child = Process::spawn(
        std::process::Command::new(&exe)
            .env("DATABASE_URL", url)
            .env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
            .env(
                "ADBUDGET_DB_POOL_SIZE",
                std::env::var("ADBUDGET_DB_POOL_SIZE").unwrap_or_else(|_| "16".into()),
            )
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null()),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            bail!("the API did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((child, base))
}

async fn bench_ingest(args: IngestArgs) -> anyhow::Result<()> {
    if args.limit_sqlite_prepared && !matches!(args.db, Db::Sqlite) {
        bail!("--limit-sqlite-prepared is for --db sqlite");
    }
    let mut _guard = None;
    let mut history = 0;
    let mut server = None;
    let mut pool = None;
    let mut database_url = None;
    let (base, token, ids) = match args.url {
        Some(url) => {
            let token = args.token.context("--url needs --token")?;
            if args.campaign_ids.is_empty() {
                bail!("--url needs --campaign-ids");
            }
            (url, token, args.campaign_ids)
        }
        None => {
            let (url, guard) = database(args.db, args.database_url)?;
            _guard = guard;
            let p = db::connect(&url, 4)?;
            let ids = seed(&p, args.campaigns)?;
            history = seed_history(&p, args.history_per_campaign)?;
            let (_, token) = tokens::create(
                &mut *db::get(&p)?,
                &tokens::NewToken::new(
                    &format!("bench-{}", std::process::id()),
                    tokens::Scope::Ingest,
                ),
                adbudget_core::forms::now(),
                &adbudget_core::access::Author::cli(),
            )?;
            let (child, base) = start_api(&url).await?;
            server = Some(child);
            pool = Some(p);
            database_url = Some(url);
            (base, token, ids)
        }
    };

    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = server.as_ref().map(|s| {
        let (pid, peak) = (s.id().unwrap_or(0), peak_rss.clone());
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    let run = format!("{:x}", rand::rng().random::<u64>());
    let ids = Arc::new(ids);
    let cpu = server
        .as_ref()
        .map(|s| cpu::ServerCpu::start(args.db, Some(s.id().unwrap_or(0))));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let pb = ProgressBar::new(args.seconds);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} s")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message("load");
    let ticker = {
        let pb = pb.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                pb.inc(1);
            }
        })
    };
    // Latencies in µs, 1 µs to 60 s, 3 significant digits; each connection fills a copy.
    let empty = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut tasks = Vec::new();
    for conn in 0..args.connections {
        let (mut hist, client, base, token, ids, run) = (
            empty.clone(),
            client.clone(),
            base.clone(),
            token.clone(),
            ids.clone(),
            run.clone(),
        );
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut events) = (0u64, 0u64, 0u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut make = || {
                    n += 1;
                    let campaign = ids[rand::rng().random_range(0..ids.len())];
                    serde_json::json!({"campaign_id": campaign, "amount": "0.01", "event_id": format!("{run}-{conn}-{n}")})
                };
                let (path, body, count) = if batch <= 1 {
                    ("/api/v1/spend", make(), 1)
                } else {
                    ("/api/v1/spend/batch", serde_json::json!({"events": (0..batch).map(|_| make()).collect::<Vec<_>>()}), batch as u64)
                };
                let t = Instant::now();
                let resp = client.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send().await;
                let micros = t.elapsed().as_micros() as u64;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        ok += 1;
                        events += count;
                        let _ = hist.record(micros.max(1));
                    }
                    _ => failed += 1,
                }
            }
            (hist, ok, failed, events)
        }));
    }
    let mut hist = empty;
    let (mut ok, mut failed, mut events) = (0, 0, 0);
    for t in tasks {
        let (h, o, f, e) = t.await?;
        hist.add(h)?;
        ok += o;
        failed += f;
        events += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu.map(cpu::ServerCpu::stop);
    ticker.abort();
    pb.finish_and_clear();
    if let Some(s) = sampler {
        s.abort();
    }
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "connections {}  events/request {}  duration {:.1} s",
        args.connections, args.batch, elapsed
    );
    println!("requests ok {ok}  failed {failed}  events {events}");
    println!(
        "throughput {:.0} events/s  ({:.0} requests/s)",
        events as f64 / elapsed,
        ok as f64 / elapsed
    );
    println!(
        "latency ms  p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        q(0.50),
        q(0.95),
        q(0.99),
        hist.max() as f64 / 1000.0
    );
    let cpu_per_event = cpu.map(|c| c.report(events));
    // The group sizes the API's group commit formed (its `adbudget_spend_batch_size`).
    let mut group = args.batch as f64;
    if server.is_some() {
        println!(
            "server peak RSS {:.1} MiB",
            peak_rss.load(Ordering::Relaxed) as f64 / 1024.0
        );
        if args.batch <= 1 {
            let metrics = reqwest::get(format!("{base}/metrics"))
                .await?
                .text()
                .await?;
            let value = |name: &str| {
                metrics
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            };
            if let (Some(sum), Some(count)) = (
                value("adbudget_spend_batch_size_sum"),
                value("adbudget_spend_batch_size_count"),
            ) && count > 0.0
            {
                group = sum / count;
                println!("group commit: {group:.1} events per transaction on average");
            }
        }
    }
    if let Some(pool) = pool {
        // Correctness after the load: every acknowledged event stored, totals and states agree.
        let mut conn = db::get(&pool)?;
        let report = verify::check(&mut conn, adbudget_core::forms::now())?;
        let stored = report.spend_logs as u64 - history;
        println!(
            "verify: {stored} spend logs stored by the run (acknowledged {events}; {history} of history before it), {} campaigns, {} disagreements",
            report.campaigns,
            report.findings.len()
        );
        if !report.is_clean() || stored < events {
            bail!(
                "verification failed: {:?}",
                report.findings.iter().take(5).collect::<Vec<_>>()
            );
        }
    }
    // The database's own limit for the same rows, on the same data, in the same run.
    if let (Some(url), false) = (database_url, args.no_limit) {
        drop(server);
        // Single events reach the database through the API's group-commit writers; a batch is
        // written by the request handler that received it, so batches meet it from as many
        // connections as the load has.
        let writers = args
            .limit_connections
            .unwrap_or(match (args.batch > 1, args.db) {
                (true, _) => args.connections,
                (false, Db::Postgres) => 2,
                (false, Db::Sqlite) => 1,
            });
        let writes = limit::Writes {
            connections: writers,
            batch: group.round().max(1.0) as usize,
            seconds: args.seconds,
            shape: args.limit_shape,
            trips: None,
            sqlite_prepared: args.limit_sqlite_prepared,
        };
        let limit = limit::measure(args.db, &url, &writes)?;
        let throughput = events as f64 / elapsed;
        println!(
            "against the limit: throughput {:.0} % of it; server CPU per event {}",
            throughput * 100.0 / limit.events_per_second,
            cpu_per_event.map_or("n/a".to_owned(), |c| format!(
                "{:.2}× its",
                c / limit.cpu_us_per_event
            ))
        );
    }
    Ok(())
}
