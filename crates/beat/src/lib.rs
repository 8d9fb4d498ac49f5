//! `adbudget-beat`: turns each job's cron schedule into jobs pushed into Redis. It never runs a
//! job body.
//!
//! Any number of beats may run. Every tick is enqueued once however many beats see it: the beat
//! that wins `SET {prefix}:beat:claim:{job}:{tick} NX` pushes it (with an apalis idempotency key
//! as a second guard; apalis #281). A tick is not enqueued while the same job is still pending,
//! so a queue never piles up while workers are down (which also keeps apalis-redis below the
//! ~8,000 due jobs at which its fetch script fails). After downtime, the last missed tick of each
//! schedule is enqueued at start: the jobs act on the current state, so one catch-up run covers
//! every missed one (a missed midnight is still acted on).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use adbudget_core::config::Settings;
use adbudget_core::jobs::{
    ApplyDayparting, DispatchEvents, EnforceBudgets, Job, JobKind, JobSchedule, PruneEvents,
    ResetDaily, ResetMonthly,
};
use adbudget_queue::health::{self, Probes};
use adbudget_queue::keys;
use adbudget_queue::memory::MemoryQueues;
use anyhow::Context;
use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

/// Default side port for `/healthz` and `/readyz`.
pub const DEFAULT_HEALTH_BIND: &str = "127.0.0.1:8002";
/// How long a tick's claim is remembered.
const CLAIM_TTL_SECS: u64 = 7 * 24 * 3600;

/// Where ticks go.
#[derive(Clone)]
pub enum JobSink {
    /// Redis, shared by every beat and worker of a deployment.
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
    /// This process's in-memory queues (`adbudget standalone`).
    Memory(MemoryQueues),
}

/// What became of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Pushed,
    /// Another beat claimed this tick.
    ClaimedElsewhere,
    /// The previous run of this job has not been taken yet: no pile-up.
    StillPending,
}

async fn push<J: Job>(
    conn: &ConnectionManager,
    prefix: &str,
    tick: DateTime<Utc>,
) -> anyhow::Result<()> {
    let task = || {
        TaskBuilder::new(J::for_tick(tick))
            .idempotency_key(format!("{}:{}", J::KIND.name(), tick.timestamp()))
            .build()
    };
    let mut storage = adbudget_queue::storage::<J>(conn.clone(), prefix);
    if let Err(first) = storage.push_task(task()).await {
        // The first command after a reconnect can fail with "broken pipe": retry once.
        tracing::debug!(error = %first, "push failed; retrying once");
        storage
            .push_task(task())
            .await
            .with_context(|| format!("failed to push {}", J::KIND))?;
    }
    Ok(())
}

impl JobSink {
    /// Enqueues the run of `kind` for `tick`, at most once across every beat.
    pub async fn enqueue(&self, kind: JobKind, tick: DateTime<Utc>) -> anyhow::Result<Enqueued> {
        let (conn, prefix) = match self {
            JobSink::Memory(queues) => {
                queues.push(kind, tick).await?;
                return Ok(Enqueued::Pushed);
            }
            JobSink::Redis { conn, prefix } => (conn, prefix.as_str()),
        };
        let mut c = conn.clone();
        let ts = tick.timestamp();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(keys::beat_claim(prefix, kind, ts))
            .arg(std::process::id())
            .arg("NX")
            .arg("EX")
            .arg(CLAIM_TTL_SECS)
            .query_async(&mut c)
            .await?;
        if claimed.is_none() {
            return Ok(Enqueued::ClaimedElsewhere);
        }
        // Remember the newest tick handled (never move it backwards).
        redis::Script::new(
            "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') \
             if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
        )
        .key(keys::beat_last(prefix, kind))
        .arg(ts)
        .invoke_async::<i64>(&mut c)
        .await?;
        if adbudget_queue::pending(&mut c, prefix, kind).await? > 0 {
            return Ok(Enqueued::StillPending);
        }
        match kind {
            JobKind::EnforceBudgets => push::<EnforceBudgets>(conn, prefix, tick).await?,
            JobKind::ApplyDayparting => push::<ApplyDayparting>(conn, prefix, tick).await?,
            JobKind::ResetDaily => push::<ResetDaily>(conn, prefix, tick).await?,
            JobKind::ResetMonthly => push::<ResetMonthly>(conn, prefix, tick).await?,
            JobKind::PruneEvents => push::<PruneEvents>(conn, prefix, tick).await?,
            JobKind::DispatchEvents => push::<DispatchEvents>(conn, prefix, tick).await?,
        }
        Ok(Enqueued::Pushed)
    }

    /// The newest tick of `kind` any beat handled.
    async fn last_tick(&self, kind: JobKind) -> anyhow::Result<Option<i64>> {
        match self {
            JobSink::Memory(_) => Ok(None),
            JobSink::Redis { conn, prefix } => {
                let mut c = conn.clone();
                Ok(redis::AsyncCommands::get(&mut c, keys::beat_last(prefix, kind)).await?)
            }
        }
    }
}

/// Enqueues the last tick of every schedule that no beat handled (downtime catch-up).
pub async fn catch_up(
    sink: &JobSink,
    schedules: &[JobSchedule],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for s in schedules {
        let Some(missed) = s.last_at_or_before(now) else {
            continue;
        };
        let last = sink.last_tick(s.kind).await?;
        if last.is_none_or(|l| l < missed.timestamp()) {
            let outcome = sink.enqueue(s.kind, missed).await?;
            tracing::info!(job.name = s.kind.name(), job.tick = %missed, ?outcome, "catch-up after downtime");
        }
    }
    Ok(())
}

/// What each schedule's tick handler gets.
#[derive(Clone)]
struct TickContext {
    kind: JobKind,
    sink: JobSink,
    last_tick: Arc<AtomicI64>,
}

async fn on_tick(tick: Tick<Utc>, ctx: Data<TickContext>) -> Result<(), BoxDynError> {
    let at = DateTime::from_timestamp(tick.get_timestamp() as i64, 0).unwrap_or_else(Utc::now);
    ctx.last_tick
        .store(Utc::now().timestamp(), Ordering::Relaxed);
    let result = ctx.sink.enqueue(ctx.kind, at).await;
    let label = match &result {
        Ok(Enqueued::Pushed) => "pushed",
        Ok(Enqueued::ClaimedElsewhere) => "claimed_elsewhere",
        Ok(Enqueued::StillPending) => "still_pending",
        Err(_) => "error",
    };
    metrics::counter!("adbudget_beat_ticks_total", "job" => ctx.kind.name(), "outcome" => label)
        .increment(1);
    let outcome = result.map_err(|e| -> BoxDynError { e.into() })?;
    tracing::info!(job.name = ctx.kind.name(), job.tick = %at, ?outcome, "tick");
    Ok(())
}

/// Registers one apalis-cron worker per schedule; each tick only enqueues.
pub fn register_schedules(
    mut monitor: Monitor,
    schedules: &[JobSchedule],
    sink: &JobSink,
    last_tick: &Arc<AtomicI64>,
) -> Monitor {
    for s in schedules {
        let ctx = TickContext {
            kind: s.kind,
            sink: sink.clone(),
            last_tick: last_tick.clone(),
        };
        let schedule = s.schedule.clone();
        monitor = monitor.register(move |run| {
            WorkerBuilder::new(format!(
                "beat:{}@{}:r{run}",
                ctx.kind.name(),
                std::process::id()
            ))
            .backend(CronScheduler::new(schedule.clone()))
            .data(ctx.clone())
            .build(on_tick)
        });
    }
    monitor
}

/// A built beat process.
pub struct BeatProcess {
    monitor: Monitor,
    sink: JobSink,
    schedules: Vec<JobSchedule>,
    health_addr: std::net::SocketAddr,
}

impl BeatProcess {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let conn = adbudget_queue::connect(&settings.redis_url).await?;
        let sink = JobSink::Redis {
            conn: conn.clone(),
            prefix: settings.queue_prefix.clone(),
        };
        let last_tick = Arc::new(AtomicI64::new(Utc::now().timestamp()));
        let monitor = Monitor::new()
            .should_restart(|w, error| {
                // A stalled cron stream errors on every poll until rebuilt; a Redis error fails
                // one tick. Either way: come back.
                tracing::warn!(worker.name = w.name(), %error, "schedule stopped on an error; restarting");
                true
            })
            .shutdown_timeout(Duration::from_secs(5));
        let monitor = register_schedules(monitor, &settings.schedules, &sink, &last_tick);
        let metrics = adbudget_core::telemetry::metrics()?;
        let probes = Probes {
            metrics: Arc::new(move || {
                let metrics = metrics.clone();
                Box::pin(async move { metrics.render() })
            }),
            live: Arc::new(|| Box::pin(async { Ok(()) })),
            ready: Arc::new(move || {
                let mut conn = conn.clone();
                Box::pin(async move {
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("redis: {e}"))
                })
            }),
        };
        let bind = match settings.health_bind {
            Some(b) => b,
            None => DEFAULT_HEALTH_BIND
                .parse()
                .context("default health address")?,
        };
        let (health_addr, _) = health::serve(bind, probes)?;
        Ok(BeatProcess {
            monitor,
            sink,
            schedules: settings.schedules.clone(),
            health_addr,
        })
    }

    pub fn health_addr(&self) -> std::net::SocketAddr {
        self.health_addr
    }

    /// Catches up, then ticks until SIGTERM/SIGINT (`Ok`) or until the schedules are dead (`Err`).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        catch_up(&self.sink, &self.schedules, Utc::now()).await?;
        let control = self.monitor.context();
        let run = self.monitor.run();
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => Err(anyhow::anyhow!("every schedule stopped: {result:?}")),
            signal = adbudget_queue::shutdown_signal() => {
                tracing::info!(process.signal = signal, "stopping");
                let _ = control.shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(6), run).await;
                Ok(())
            }
        }
    }
}
