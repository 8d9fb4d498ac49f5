//! `adbudget-worker`: consumes the scheduled jobs from Redis and runs them.
//!
//! One apalis worker per job type, all in one `Monitor`. Hardened against apalis-redis 1.0's known
//! defects (see ARCHITECTURE.md): generous Redis timeouts, a unique worker name per process and
//! restart (a restarted worker under the same name is refused), 5 s × 3 heartbeats, restarts on
//! every backend error, polling every 500 ms, and a watchdog that exits non-zero when no worker
//! has managed a heartbeat for 30 s (six missed beats), so a supervisor restarts the process.

pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use adbudget_core::config::Settings;
use adbudget_core::jobs::{
    ApplyDayparting, DispatchEvents, EnforceBudgets, Job, JobKind, JobReport, JobSettings,
    MaintainSpendLogs, PruneEvents, ResetDaily, ResetMonthly,
};
use adbudget_core::webhooks::AttemptJob;
use adbudget_db::error::DomainError;
use adbudget_db::{self as db, DbPool};
use adbudget_queue::health::{self, Probes};
use adbudget_queue::memory::{MemoryQueue, MemoryQueues};
use anyhow::Context;
use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use redis::aio::ConnectionManager;
use tokio::sync::Semaphore;

/// How long without a single successful heartbeat before the process gives up and exits.
pub const WATCHDOG: Duration = Duration::from_secs(30);
/// Default side port for `/healthz` and `/readyz`.
pub const DEFAULT_HEALTH_BIND: &str = "127.0.0.1:8001";

/// What every job handler gets.
#[derive(Clone)]
pub struct JobContext {
    pub pool: DbPool,
    /// Where runs are recorded for the job monitor (none in standalone mode).
    pub redis: Option<(ConnectionManager, String)>,
    /// `ADBUDGET_WORKER_CONCURRENCY` permits shared by all job types of this process.
    pub permits: Arc<Semaphore>,
    pub settings: JobSettings,
    /// Where `dispatch_events` pushes the webhook attempts' jobs.
    pub deliveries: DeliveryQueue,
    /// `ADBUDGET_WEBHOOK_ALLOW_PRIVATE`.
    pub allow_private: bool,
}

/// The queue of the webhook attempts' jobs.
#[derive(Clone)]
pub enum DeliveryQueue {
    Redis(Box<apalis_redis::RedisStorage<AttemptJob>>),
    Memory(MemoryQueue<AttemptJob>),
}

impl DeliveryQueue {
    async fn push(&self, job: AttemptJob) -> anyhow::Result<()> {
        match self {
            // No idempotency key: an attempt whose job was lost (its worker killed mid-flight) is
            // handed out again under the same number when its lease ends, and must be queued
            // again; a duplicate that does run finds the attempt taken and does nothing.
            DeliveryQueue::Redis(storage) => {
                let mut storage = (**storage).clone();
                storage
                    .push(job)
                    .await
                    .map_err(|e| anyhow::anyhow!("push of a webhook attempt: {e}"))
            }
            DeliveryQueue::Memory(queue) => queue.push(job),
        }
    }
}

/// Runs one webhook attempt (the `deliver_webhook` queue). A failed attempt is not an error of
/// the job: its retry is the delivery's next attempt, scheduled in the database.
pub async fn deliver(job: AttemptJob, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    let _permit = ctx
        .permits
        .acquire()
        .await
        .map_err(|e| AbortError::new(e.to_string()))?;
    webhooks::deliver(ctx.pool.clone(), job, ctx.allow_private)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, delivery.id = job.delivery_id, "webhook attempt could not run");
            BoxDynError::from(e.to_string())
        })
}

/// Runs job `J` now. Database trouble is retried (in process with backoff, then by Redis); any
/// other failure cannot be fixed by retrying and aborts the job.
pub async fn handle<J: Job>(
    job: J,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<JobReport, BoxDynError> {
    let _permit = ctx
        .permits
        .acquire()
        .await
        .map_err(|e| AbortError::new(e.to_string()))?;
    let kind = J::KIND;
    // A run by hand ("Run now") names who asked for it; a tick has no `job.run_by`.
    let run_by = job.run_by().map(str::to_owned);
    let span = tracing::info_span!("job", job.name = kind.name(), job.tick = %job.scheduled_for(), job.run_by = run_by.as_deref(), job.attempt = attempt.current());
    let started = Instant::now();
    let (pool, settings) = (ctx.pool.clone(), ctx.settings);
    let result = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = db::get(&pool)?;
        adbudget_db::jobs::run(&mut conn, kind, adbudget_core::forms::now(), &settings)
    })
    .await;
    let elapsed = started.elapsed();
    let ok = matches!(result, Ok(Ok(_)));
    metrics::counter!("adbudget_job_runs_total", "job" => kind.name(), "outcome" => if ok { "ok" } else { "error" }).increment(1);
    metrics::histogram!("adbudget_job_duration_seconds", "job" => kind.name())
        .record(elapsed.as_secs_f64());
    let (outcome, detail) = match &result {
        Ok(Ok(report)) => {
            tracing::info!(
                job.name = kind.name(),
                job.run_by = run_by.as_deref(),
                job.changed = report.changed,
                job.activated = report.activated,
                job.paused = report.paused,
                job.duration_ms = elapsed.as_millis() as u64,
                "job done"
            );
            (
                true,
                format!(
                    "{} changed ({} activated, {} paused)",
                    report.changed, report.activated, report.paused
                ),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(job.name = kind.name(), error = %e, "job failed");
            (false, e.to_string())
        }
        Err(e) => (false, format!("job panicked: {e}")),
    };
    if let Some((conn, prefix)) = &ctx.redis {
        let mut conn = conn.clone();
        if let Err(e) =
            adbudget_queue::record_run(&mut conn, prefix, kind, outcome, elapsed, &detail).await
        {
            tracing::warn!(error = %e, "could not record the job run in Redis");
        }
    }
    // A rule job that changed campaigns wrote events: dispatch them now rather than at the next
    // sweep (the dispatcher's own runs hand out what they found themselves).
    let mut result = result;
    if let Ok(Ok(report)) = &mut result
        && report.changed > 0
        && kind != JobKind::DispatchEvents
        && kind != JobKind::PruneEvents
        && kind != JobKind::MaintainSpendLogs
    {
        let pool = ctx.pool.clone();
        let dispatched = tokio::task::spawn_blocking(move || {
            let mut conn = db::get(&pool)?;
            adbudget_db::jobs::run(
                &mut conn,
                JobKind::DispatchEvents,
                adbudget_core::forms::now(),
                &settings,
            )
        })
        .await;
        match dispatched {
            Ok(Ok(d)) => report.deliveries = d.deliveries,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "dispatch after the job failed; the sweep will dispatch")
            }
            Err(e) => tracing::warn!(error = %e, "dispatch after the job panicked"),
        }
    }
    if let Ok(Ok(report)) = &result {
        for job in &report.deliveries {
            if let Err(e) = ctx.deliveries.push(*job).await {
                // Its lease runs out and a later dispatch hands it out again.
                tracing::warn!(error = %e, delivery.id = job.delivery_id, "could not queue a webhook attempt");
            }
        }
    }
    match result {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e @ (DomainError::Unavailable(_) | DomainError::Database(_)))) => Err(e.into()),
        Ok(Err(e)) => Err(AbortError::new(e).into()),
        Err(panic) => Err(AbortError::new(panic).into()),
    }
}

fn job_settings(settings: &Settings) -> JobSettings {
    JobSettings {
        event_retention: settings.event_retention,
        spend_log_retention_months: settings.spend_log_retention_months,
    }
}

fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A name no other process or earlier incarnation uses: apalis-redis refuses to register a name
/// that had a heartbeat within the last interval (apalis #504/#507).
pub fn worker_name(kind: JobKind, run: usize) -> String {
    format!("{}@{}:{}:r{run}", kind.name(), host(), std::process::id())
}

/// In-process retry delays: 1 s, 2 s, 4 s … up to 30 s, jittered.
fn backoff() -> ExponentialBackoff {
    // The parameters are valid constants; the default (also valid) only avoids a panic path.
    ExponentialBackoffMaker::new(
        Duration::from_secs(1),
        Duration::from_secs(30),
        0.5,
        HasherRng::default(),
    )
    .unwrap_or_default()
    .make_backoff()
}

/// The one layer chain of every job worker, whatever its backend. Layer order (outermost first)
/// is what apalis expects: concurrency > retry > timeout > tracing, retry > catch-panic.
macro_rules! job_worker {
    ($job:ty, $name:expr, $backend:expr, $concurrency:expr, $timeout:expr, $ctx:expr) => {
        WorkerBuilder::new($name)
            .backend($backend)
            .concurrency($concurrency)
            .retry(RetryPolicy::retries(2).with_backoff(backoff()))
            .timeout($timeout)
            .enable_tracing()
            .catch_panic()
            .data($ctx)
            .build(handle::<$job>)
    };
}

/// Registers the worker of job `J` on its Redis queue.
fn add<J: Job>(
    monitor: Monitor,
    conn: &ConnectionManager,
    settings: &Settings,
    ctx: &JobContext,
) -> Monitor {
    let storage = adbudget_queue::storage::<J>(conn.clone(), &settings.queue_prefix);
    let (concurrency, timeout, ctx) = (
        settings.worker_concurrency,
        settings.job_timeout,
        ctx.clone(),
    );
    monitor.register(move |run| {
        let backend = storage
            .clone()
            .poll_with_interval(adbudget_queue::POLL_INTERVAL);
        job_worker!(
            J,
            worker_name(J::KIND, run),
            backend,
            concurrency,
            timeout,
            ctx.clone()
        )
    })
}

/// Registers the worker of job `J` on an in-process queue (standalone mode).
fn add_in_memory<J: Job>(
    monitor: Monitor,
    queue: &MemoryQueue<J>,
    settings: &Settings,
    ctx: &JobContext,
) -> Monitor {
    let (queue, concurrency, timeout, ctx) = (
        queue.clone(),
        settings.worker_concurrency,
        settings.job_timeout,
        ctx.clone(),
    );
    monitor.register(move |run| {
        job_worker!(
            J,
            worker_name(J::KIND, run),
            queue.storage(),
            concurrency,
            timeout,
            ctx.clone()
        )
    })
}

/// Registers a worker for every job on this process's in-memory queues (`adbudget standalone`).
pub fn register_in_memory(
    monitor: Monitor,
    queues: &MemoryQueues,
    settings: &Settings,
    pool: DbPool,
) -> Monitor {
    let ctx = JobContext {
        pool,
        redis: None,
        permits: Arc::new(Semaphore::new(settings.worker_concurrency)),
        settings: job_settings(settings),
        deliveries: DeliveryQueue::Memory(queues.deliveries.clone()),
        allow_private: settings.webhook_allow_private,
    };
    let (queue, concurrency, timeout, dctx) = (
        queues.deliveries.clone(),
        settings.worker_concurrency,
        settings.job_timeout,
        ctx.clone(),
    );
    let monitor = monitor.register(move |run| {
        WorkerBuilder::new(format!("deliver_webhook@standalone:r{run}"))
            .backend(queue.storage())
            .concurrency(concurrency)
            .timeout(timeout)
            .enable_tracing()
            .catch_panic()
            .data(dctx.clone())
            .build(deliver)
    });
    let monitor = add_in_memory(monitor, &queues.enforce_budgets, settings, &ctx);
    let monitor = add_in_memory(monitor, &queues.apply_dayparting, settings, &ctx);
    let monitor = add_in_memory(monitor, &queues.reset_daily, settings, &ctx);
    let monitor = add_in_memory(monitor, &queues.reset_monthly, settings, &ctx);
    let monitor = add_in_memory(monitor, &queues.prune_events, settings, &ctx);
    let monitor = add_in_memory(monitor, &queues.maintain_spend_logs, settings, &ctx);
    add_in_memory(monitor, &queues.dispatch_events, settings, &ctx)
}

/// A built worker process: connected, with its probes served; not yet consuming.
pub struct WorkerProcess {
    monitor: Monitor,
    last_heartbeat: Arc<AtomicI64>,
    shutdown_timeout: Duration,
    health_addr: std::net::SocketAddr,
    vacuum: tokio::task::JoinHandle<()>,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl WorkerProcess {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.database_url, settings.db_pool_size)?;
        let conn = adbudget_queue::connect(&settings.redis_url).await?;
        let ctx = JobContext {
            pool: pool.clone(),
            redis: Some((conn.clone(), settings.queue_prefix.clone())),
            permits: Arc::new(Semaphore::new(settings.worker_concurrency)),
            settings: job_settings(settings),
            deliveries: DeliveryQueue::Redis(Box::new(adbudget_queue::delivery_storage(
                conn.clone(),
                &settings.queue_prefix,
            ))),
            allow_private: settings.webhook_allow_private,
        };
        let last_heartbeat = Arc::new(AtomicI64::new(unix_now()));
        let beats = last_heartbeat.clone();
        let mut monitor = Monitor::new()
            .on_event(move |w, event| match event {
                Event::HeartBeat => beats.store(unix_now(), Ordering::Relaxed),
                Event::Error(e) => tracing::debug!(worker.name = w.name(), error = %e, "job attempt failed"),
                _ => {}
            })
            .should_restart(|w, error| {
                // Any backend error (Redis restart, broken pipe, timeout) kills an apalis worker;
                // come back under a new name (the restart count is part of it).
                tracing::warn!(worker.name = w.name(), worker.restarts = w.restarts(), %error, "worker stopped on an error; restarting");
                true
            })
            .shutdown_timeout(settings.shutdown_timeout);
        monitor = add::<EnforceBudgets>(monitor, &conn, settings, &ctx);
        monitor = add::<ApplyDayparting>(monitor, &conn, settings, &ctx);
        monitor = add::<ResetDaily>(monitor, &conn, settings, &ctx);
        monitor = add::<ResetMonthly>(monitor, &conn, settings, &ctx);
        monitor = add::<PruneEvents>(monitor, &conn, settings, &ctx);
        monitor = add::<DispatchEvents>(monitor, &conn, settings, &ctx);
        monitor = add::<MaintainSpendLogs>(monitor, &conn, settings, &ctx);
        let (storage, concurrency, timeout, dctx) = (
            adbudget_queue::delivery_storage(conn.clone(), &settings.queue_prefix),
            settings.worker_concurrency,
            settings.job_timeout,
            ctx.clone(),
        );
        monitor = monitor.register(move |run| {
            let name = format!(
                "{}@{}:{}:r{run}",
                adbudget_core::webhooks::DELIVERY_QUEUE,
                host(),
                std::process::id()
            );
            WorkerBuilder::new(name)
                .backend(
                    storage
                        .clone()
                        .poll_with_interval(adbudget_queue::POLL_INTERVAL),
                )
                .concurrency(concurrency)
                .timeout(timeout)
                .enable_tracing()
                .catch_panic()
                .data(dctx.clone())
                .build(deliver)
        });

        let metrics = adbudget_core::telemetry::metrics()?;
        let probes = probes(
            pool,
            conn.clone(),
            last_heartbeat.clone(),
            metrics,
            settings.queue_prefix.clone(),
        );
        let bind = match settings.health_bind {
            Some(b) => b,
            None => DEFAULT_HEALTH_BIND
                .parse()
                .context("default health address")?,
        };
        let (health_addr, _handle) = health::serve(bind, probes)?;
        let vacuum = tokio::spawn(vacuum_forever(conn, settings.queue_prefix.clone()));
        Ok(WorkerProcess {
            monitor,
            last_heartbeat,
            shutdown_timeout: settings.shutdown_timeout,
            health_addr,
            vacuum,
        })
    }

    pub fn health_addr(&self) -> std::net::SocketAddr {
        self.health_addr
    }

    /// Consumes jobs until SIGTERM/SIGINT (then lets running jobs finish within the shutdown
    /// timeout and returns `Ok`), or until the job machinery is dead (returns `Err`).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let WorkerProcess {
            monitor,
            last_heartbeat,
            shutdown_timeout,
            vacuum,
            ..
        } = self;
        let control = monitor.context();
        let run = monitor.run();
        tokio::pin!(run);
        let result = tokio::select! {
            result = &mut run => Err(anyhow::anyhow!("every job worker stopped: {result:?}")),
            () = watchdog(last_heartbeat) => Err(anyhow::anyhow!("no worker could reach Redis for {}s", WATCHDOG.as_secs())),
            signal = adbudget_queue::shutdown_signal() => {
                tracing::info!(process.signal = signal, "stopping: no new jobs; letting running jobs finish");
                let _ = control.shutdown();
                match tokio::time::timeout(shutdown_timeout + Duration::from_secs(2), run).await {
                    Ok(_) => tracing::info!("stopped"),
                    Err(_) => tracing::warn!("shutdown timeout reached; unfinished jobs go back to the queue"),
                }
                Ok(())
            }
        };
        vacuum.abort();
        result
    }
}

async fn watchdog(last_heartbeat: Arc<AtomicI64>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if unix_now() - last_heartbeat.load(Ordering::Relaxed) > WATCHDOG.as_secs() as i64 {
            return;
        }
    }
}

fn probes(
    pool: DbPool,
    conn: ConnectionManager,
    last_heartbeat: Arc<AtomicI64>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    prefix: String,
) -> Probes {
    let depth_conn = conn.clone();
    Probes {
        metrics: Arc::new(move || {
            let (mut conn, prefix, metrics) = (depth_conn.clone(), prefix.clone(), metrics.clone());
            Box::pin(async move {
                for kind in JobKind::ALL {
                    if let Ok(n) = adbudget_queue::pending(&mut conn, &prefix, kind).await {
                        metrics::gauge!("adbudget_queue_depth", "job" => kind.name()).set(n as f64);
                    }
                }
                metrics.render()
            })
        }),
        live: Arc::new(move || {
            let age = unix_now() - last_heartbeat.load(Ordering::Relaxed);
            Box::pin(async move {
                if age <= (adbudget_queue::HEARTBEAT.as_secs() * 4) as i64 {
                    Ok(())
                } else {
                    Err(format!("no worker heartbeat for {age}s"))
                }
            })
        }),
        ready: Arc::new(move || {
            let pool = pool.clone();
            let mut conn = conn.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || db::ping(&pool))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("database: {e}"))?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(|e| format!("redis: {e}"))?;
                Ok(())
            })
        }),
    }
}

/// Keeps finished jobs from piling up in Redis.
async fn vacuum_forever(mut conn: ConnectionManager, prefix: String) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        for kind in JobKind::ALL {
            if let Err(e) = adbudget_queue::vacuum(&mut conn, &prefix, kind).await {
                tracing::debug!(error = %e, "vacuum skipped");
            }
        }
        if let Err(e) = adbudget_queue::vacuum_deliveries(&mut conn, &prefix).await {
            tracing::debug!(error = %e, "vacuum skipped");
        }
    }
}
