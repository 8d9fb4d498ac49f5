//! Redis plumbing shared by the worker, the beat and the API: connections with timeouts that
//! survive a slow Redis, one apalis storage per job with an explicit queue name, queue statistics
//! read straight from Redis, the beat's per-tick claims, and the health side port.
//!
//! Every key lives under `ADBUDGET_QUEUE_PREFIX` (`{prefix}:{job}:…` for apalis,
//! `{prefix}:beat:…` and `{prefix}:stats:…` for ours), except apalis-redis's global registry
//! `core:apalis:queues:list`, which it does not let us prefix.

pub mod health;
pub mod memory;
pub mod stats;

use std::time::Duration;

use adbudget_core::jobs::{
    ApplyDayparting, DispatchEvents, EnforceBudgets, Job, JobKind, MaintainSpendLogs, PruneEvents,
    ResetDaily, ResetMonthly, Trigger,
};
use anyhow::Context;
use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config, RedisStorage};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How often a worker proves it is alive, and how many missed beats make it dead. 5 s × 3 means
/// the jobs of a crashed worker are handed to another within ~15 s (apalis's default is 30 s × 10).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const MISSED_HEARTBEATS: usize = 3;
/// How often an idle worker looks for new jobs (apalis-redis otherwise polls an empty queue only
/// on heartbeats, because a push never wakes a worker).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Opens a self-reconnecting connection. redis-rs's defaults (500 ms response timeout) turn any
/// Redis hiccup into an error that kills apalis workers (apalis-redis #76); these are generous.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_number_of_retries(8)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| {
            format!(
                "failed to connect to Redis at {}",
                adbudget_core::database_url::redact(url)
            )
        })
}

fn client(url: &str) -> anyhow::Result<redis::Client> {
    redis::Client::open(url).with_context(|| {
        format!(
            "REDIS_URL {} does not parse",
            adbudget_core::database_url::redact(url)
        )
    })
}

/// The apalis queue of a job: `{prefix}:{job name}`.
pub fn queue_name(prefix: &str, kind: JobKind) -> String {
    format!("{prefix}:{}", kind.name())
}

/// The apalis-redis configuration of a job's queue.
pub fn config(prefix: &str, kind: JobKind) -> Config {
    Config::default()
        .queue(queue_name(prefix, kind))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .idempotency_ttl(Some(Duration::from_secs(7 * 24 * 3600)))
}

/// The storage of job `J`: pushing from the beat, consuming in the worker.
pub fn storage<J: Job>(conn: ConnectionManager, prefix: &str) -> RedisStorage<J> {
    RedisStorage::new(conn).with_config(config(prefix, J::KIND))
}

/// The storage of the webhook attempts' jobs (`{prefix}:deliver_webhook`).
pub fn delivery_storage(
    conn: ConnectionManager,
    prefix: &str,
) -> RedisStorage<adbudget_core::webhooks::AttemptJob> {
    let config = Config::default()
        .queue(format!(
            "{prefix}:{}",
            adbudget_core::webhooks::DELIVERY_QUEUE
        ))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .idempotency_ttl(Some(Duration::from_secs(7 * 24 * 3600)));
    RedisStorage::new(conn).with_config(config)
}

/// Where job runs go: the deployment's Redis (shared by every beat, worker and API), or this
/// process's in-memory queues (`adbudget standalone`).
#[derive(Clone)]
pub enum Queues {
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
    Memory(memory::MemoryQueues),
}

impl Queues {
    /// Queues a run of `kind`. `idempotency_key` (Redis only): apalis refuses a second push of
    /// the same key for a week.
    pub async fn push(
        &self,
        kind: JobKind,
        trigger: &Trigger,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<()> {
        match self {
            Queues::Redis { conn, prefix } => {
                push(conn, prefix, kind, trigger, idempotency_key).await
            }
            Queues::Memory(queues) => queues.push(kind, trigger),
        }
    }
}

/// Pushes a run of `kind` into its Redis queue. With an `idempotency_key`, apalis refuses a
/// second push of the same key for a week (apalis #281), as a second guard behind our own claims.
pub async fn push(
    conn: &ConnectionManager,
    prefix: &str,
    kind: JobKind,
    trigger: &Trigger,
    idempotency_key: Option<String>,
) -> anyhow::Result<()> {
    async fn typed<J: Job>(
        conn: &ConnectionManager,
        prefix: &str,
        trigger: &Trigger,
        key: Option<String>,
    ) -> anyhow::Result<()> {
        let task = || {
            let builder = TaskBuilder::new(trigger.payload::<J>());
            match &key {
                Some(k) => builder.idempotency_key(k.clone()).build(),
                None => builder.build(),
            }
        };
        let mut storage = storage::<J>(conn.clone(), prefix);
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
    let key = idempotency_key;
    match kind {
        JobKind::EnforceBudgets => typed::<EnforceBudgets>(conn, prefix, trigger, key).await,
        JobKind::ApplyDayparting => typed::<ApplyDayparting>(conn, prefix, trigger, key).await,
        JobKind::ResetDaily => typed::<ResetDaily>(conn, prefix, trigger, key).await,
        JobKind::ResetMonthly => typed::<ResetMonthly>(conn, prefix, trigger, key).await,
        JobKind::PruneEvents => typed::<PruneEvents>(conn, prefix, trigger, key).await,
        JobKind::DispatchEvents => typed::<DispatchEvents>(conn, prefix, trigger, key).await,
        JobKind::MaintainSpendLogs => typed::<MaintainSpendLogs>(conn, prefix, trigger, key).await,
    }
}

/// Keys of our own (not apalis's).
pub mod keys {
    use adbudget_core::jobs::JobKind;

    /// The last tick of a schedule that a beat handled (unix seconds).
    pub fn beat_last(prefix: &str, kind: JobKind) -> String {
        format!("{prefix}:beat:last:{}", kind.name())
    }
    /// The claim of one tick: the one beat that sets it enqueues the tick.
    pub fn beat_claim(prefix: &str, kind: JobKind, tick: i64) -> String {
        format!("{prefix}:beat:claim:{}:{tick}", kind.name())
    }
    /// Per-job counters and the last run, written by workers.
    pub fn stats(prefix: &str, kind: JobKind) -> String {
        format!("{prefix}:stats:{}", kind.name())
    }
}

/// Jobs of `kind` waiting to run (due or scheduled) and not yet taken by a worker.
pub async fn pending(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
) -> redis::RedisResult<u64> {
    let q = queue_name(prefix, kind);
    let (active, scheduled): (u64, u64) = redis::pipe()
        .llen(format!("{q}:active"))
        .zcard(format!("{q}:scheduled"))
        .query_async(conn)
        .await?;
    Ok(active + scheduled)
}

/// Records the outcome of a run (for the job monitor).
pub async fn record_run(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
    ok: bool,
    duration: Duration,
    detail: &str,
) -> redis::RedisResult<()> {
    let key = keys::stats(prefix, kind);
    let now = chrono::Utc::now().to_rfc3339();
    redis::pipe()
        .hincr(&key, if ok { "succeeded" } else { "failed" }, 1)
        .hset(&key, "last_run_at", &now)
        .hset(&key, "last_duration_ms", duration.as_millis() as u64)
        .hset(&key, "last_outcome", if ok { "ok" } else { "error" })
        .hset(&key, "last_detail", detail)
        .query_async::<()>(conn)
        .await
}

/// Drops finished jobs' payloads and metadata (apalis-redis keeps them forever, ~480 bytes each)
/// and trims the done set, keeping the count in our stats. Safe to run from any process.
pub async fn vacuum(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
) -> redis::RedisResult<usize> {
    vacuum_queue(conn, &queue_name(prefix, kind), &keys::stats(prefix, kind)).await
}

/// [`vacuum`] of the webhook attempts' queue (a job per attempt: the most numerous).
pub async fn vacuum_deliveries(
    conn: &mut ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<usize> {
    let q = format!("{prefix}:{}", adbudget_core::webhooks::DELIVERY_QUEUE);
    let stats = format!("{prefix}:stats:{}", adbudget_core::webhooks::DELIVERY_QUEUE);
    vacuum_queue(conn, &q, &stats).await
}

async fn vacuum_queue(
    conn: &mut ConnectionManager,
    q: &str,
    stats: &str,
) -> redis::RedisResult<usize> {
    let done: Vec<String> = conn.srandmember_multiple(format!("{q}:done"), 1000).await?;
    if done.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for id in &done {
        pipe.hdel(format!("{q}:data"), id)
            .del(format!("{q}:meta:{id}"))
            .srem(format!("{q}:done"), id);
    }
    pipe.hincr(stats, "vacuumed_done", done.len() as i64);
    pipe.query_async::<()>(conn).await?;
    Ok(done.len())
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
pub async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// A connection that does not connect until first used, for processes that must start while
/// Redis is down (the API serves everything but the job monitor without it).
pub fn connect_lazy(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(3)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2);
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
