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
//!
//! The schedules are data (`job_schedules`, seeded from `ADBUDGET_SCHEDULE_*` on first start):
//! every beat re-reads them every [`RELOAD`] and re-times a changed cron at once (the sleeping
//! scheduler is rebuilt, see [`LiveCron`]); each tick re-reads its own row before enqueuing, so a
//! disabled schedule enqueues nothing, and the catch-up skips it. Polling, not Redis pub/sub: the
//! beats read the database anyway, six rows every two seconds cost nothing, standalone has no
//! Redis, and a poll cannot be missed the way a message published during a reconnect is.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use adbudget_core::config::Settings;
use adbudget_core::jobs::{JobKind, JobSchedule, Trigger};
use adbudget_db::DbPool;
use adbudget_db::repo::schedules;
use adbudget_queue::health::{self, Probes};
use adbudget_queue::keys;
use anyhow::Context;
use apalis::prelude::*;
use apalis::prelude::{Backend, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use futures::task::AtomicWaker;

/// Default side port for `/healthz` and `/readyz`.
pub const DEFAULT_HEALTH_BIND: &str = "127.0.0.1:8002";
/// How long a tick's claim is remembered.
const CLAIM_TTL_SECS: u64 = 7 * 24 * 3600;

/// Where ticks go: Redis, shared by every beat and worker of a deployment, or this process's
/// in-memory queues (`adbudget standalone`).
pub use adbudget_queue::Queues as JobSink;

/// What became of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Pushed,
    /// Another beat claimed this tick.
    ClaimedElsewhere,
    /// The previous run of this job has not been taken yet: no pile-up.
    StillPending,
}

/// Enqueues the run of `kind` for `tick`, at most once across every beat.
pub async fn enqueue(
    sink: &JobSink,
    kind: JobKind,
    tick: DateTime<Utc>,
) -> anyhow::Result<Enqueued> {
    let (conn, prefix) = match sink {
        JobSink::Memory(queues) => {
            queues.push(kind, &Trigger::Tick(tick))?;
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
    let key = format!("{}:{ts}", kind.name());
    adbudget_queue::push(conn, prefix, kind, &Trigger::Tick(tick), Some(key)).await?;
    Ok(Enqueued::Pushed)
}

/// The newest tick of `kind` any beat handled.
async fn last_tick(sink: &JobSink, kind: JobKind) -> anyhow::Result<Option<i64>> {
    match sink {
        JobSink::Memory(_) => Ok(None),
        JobSink::Redis { conn, prefix } => {
            let mut c = conn.clone();
            Ok(redis::AsyncCommands::get(&mut c, keys::beat_last(prefix, kind)).await?)
        }
    }
}

/// How often every beat re-reads the stored schedules: a change reaches every beat within this
/// (plus a tick's own re-read, which is immediate).
pub const RELOAD: Duration = Duration::from_secs(2);

/// One job's schedule as a beat follows it.
pub struct LiveSchedule {
    kind: JobKind,
    state: Mutex<LiveState>,
    /// The scheduler of this job, woken when its cron changes.
    waker: AtomicWaker,
}

#[derive(Clone)]
struct LiveState {
    /// `None`: no stored row this build can read (the job does not tick).
    schedule: Option<JobSchedule>,
    enabled: bool,
    /// One more with every change of the cron.
    version: u64,
    /// The read this state came from (reads are numbered when they start: a read that started
    /// earlier but ended later is older, and ignored).
    read: u64,
}

impl LiveSchedule {
    /// Not read yet: no schedule, so no ticks.
    fn new(kind: JobKind) -> Self {
        LiveSchedule {
            kind,
            state: Mutex::new(LiveState {
                schedule: None,
                enabled: false,
                version: 0,
                read: 0,
            }),
            waker: AtomicWaker::new(),
        }
    }

    fn current(&self) -> LiveState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the stored row of read number `read`; wakes the scheduler when the cron changed.
    fn apply(&self, read: u64, schedule: Option<JobSchedule>, enabled: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if read < state.read {
            return;
        }
        state.read = read;
        let same_cron = match (&state.schedule, &schedule) {
            (Some(a), Some(b)) => a.expression == b.expression,
            (None, None) => true,
            _ => false,
        };
        state.enabled = enabled;
        if !same_cron {
            tracing::info!(
                job.name = self.kind.name(),
                cron = schedule
                    .as_ref()
                    .map(|s| s.expression.as_str())
                    .unwrap_or("none"),
                "schedule changed; re-timed"
            );
            state.schedule = schedule;
            state.version += 1;
            drop(state);
            self.waker.wake();
        }
    }
}

/// The schedules of every job, as stored, followed by this beat.
#[derive(Clone)]
pub struct Schedules {
    pool: DbPool,
    live: Arc<Vec<Arc<LiveSchedule>>>,
    /// Numbers the reads, in the order they start.
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl Schedules {
    /// Seeds the missing rows from `defaults` (the `ADBUDGET_SCHEDULE_*` values), then reads them.
    pub async fn load(pool: DbPool, defaults: &[JobSchedule]) -> anyhow::Result<Self> {
        let defaults = defaults.to_vec();
        let seeded = pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = adbudget_db::get(&seeded)?;
            schedules::seed(&mut conn, &defaults, Utc::now())
        })
        .await?
        .context("failed to seed the job schedules (has `adbudget migrate` run?)")?;
        let live = JobKind::ALL
            .into_iter()
            .map(|kind| Arc::new(LiveSchedule::new(kind)))
            .collect();
        let schedules = Schedules {
            pool,
            live: Arc::new(live),
            reads: Default::default(),
        };
        schedules.reload().await?;
        Ok(schedules)
    }

    /// Re-reads every stored schedule.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let read = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let pool = self.pool.clone();
        let rows =
            tokio::task::spawn_blocking(move || schedules::list(&mut *adbudget_db::get(&pool)?))
                .await??;
        for live in self.live.iter() {
            let row = rows.iter().find(|r| r.kind() == Some(live.kind));
            live.apply(
                read,
                row.and_then(|r| r.schedule()),
                row.is_some_and(|r| r.enabled),
            );
        }
        Ok(())
    }

    /// Re-reads one schedule (at its tick). On a database error the last known state stands.
    async fn reload_one(&self, live: &LiveSchedule) -> LiveState {
        let kind = live.kind;
        let read = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let pool = self.pool.clone();
        let row = tokio::task::spawn_blocking(move || {
            schedules::get(&mut *adbudget_db::get(&pool)?, kind)
        })
        .await;
        match row {
            Ok(Ok(row)) => live.apply(read, row.schedule(), row.enabled),
            Ok(Err(e)) => {
                tracing::warn!(job.name = kind.name(), error = %e, "could not re-read the schedule; going by the last one read")
            }
            Err(e) => tracing::warn!(job.name = kind.name(), error = %e, "schedule re-read failed"),
        }
        live.current()
    }

    /// Re-reads the schedules every [`RELOAD`], for ever (spawn it).
    pub async fn follow(self) {
        loop {
            tokio::time::sleep(RELOAD).await;
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "could not re-read the job schedules; keeping the last ones read");
            }
        }
    }

    /// Remembers that `tick` of `kind` was enqueued (for the job monitor; best effort).
    async fn record_tick(&self, kind: JobKind, tick: DateTime<Utc>) {
        let pool = self.pool.clone();
        let done = tokio::task::spawn_blocking(move || {
            schedules::record_tick(&mut *adbudget_db::get(&pool)?, kind, tick)
        })
        .await;
        if !matches!(done, Ok(Ok(()))) {
            tracing::debug!(job.name = kind.name(), "could not record the last tick");
        }
    }
}

/// apalis-cron's scheduler for one job, rebuilt when the job's stored cron changes: the scheduler
/// sleeps until its next tick, so without this a change from "daily" to "every minute" would
/// wait for the next daily tick. No scheduler while the job has no readable schedule.
pub struct LiveCron {
    live: Arc<LiveSchedule>,
    version: Option<u64>,
    inner: Option<CronScheduler<cron::Schedule>>,
}

impl LiveCron {
    pub fn new(live: Arc<LiveSchedule>) -> Self {
        LiveCron {
            live,
            version: None,
            inner: None,
        }
    }
}

impl Backend for LiveCron {
    type Task = <CronScheduler<cron::Schedule> as Backend>::Task;
    type Error = <CronScheduler<cron::Schedule> as Backend>::Error;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.live.waker.register(cx.waker());
        let state = self.live.current();
        if self.version != Some(state.version) {
            self.version = Some(state.version);
            self.inner = state.schedule.map(|s| CronScheduler::new(s.schedule));
        }
        let Some(inner) = &mut self.inner else {
            return Poll::Pending;
        };
        match inner.poll_next(cx, worker) {
            // A schedule with no tick ahead ends apalis-cron's stream, and an ended worker is not
            // restarted: wait for the next change instead.
            Poll::Ready(None) => {
                self.inner = None;
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_close(
        &mut self,
        _: &mut std::task::Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for LiveCron {
    type Args = Tick<Utc>;
    type Id = <CronScheduler<cron::Schedule> as BackendConfig>::Id;
    type Kind = <CronScheduler<cron::Schedule> as BackendConfig>::Kind;
    type Config = ();
    type Layer = apalis_core::layers::Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        apalis_core::layers::Identity::new()
    }
}

/// Enqueues the last tick of every enabled schedule that no beat handled (downtime catch-up). A
/// disabled schedule is skipped: it would not have ticked.
pub async fn catch_up(
    sink: &JobSink,
    schedules: &Schedules,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for live in schedules.live.iter() {
        let state = live.current();
        let Some(schedule) = state.schedule.filter(|_| state.enabled) else {
            tracing::info!(
                job.name = live.kind.name(),
                "no catch-up: the schedule is disabled"
            );
            continue;
        };
        let Some(missed) = schedule.last_at_or_before(now) else {
            continue;
        };
        let last = last_tick(sink, live.kind).await?;
        if last.is_none_or(|l| l < missed.timestamp()) {
            let outcome = enqueue(sink, live.kind, missed).await?;
            if outcome == Enqueued::Pushed {
                schedules.record_tick(live.kind, missed).await;
            }
            tracing::info!(job.name = live.kind.name(), job.tick = %missed, ?outcome, "catch-up after downtime");
        }
    }
    Ok(())
}

/// What each schedule's tick handler gets.
#[derive(Clone)]
struct TickContext {
    kind: JobKind,
    live: Arc<LiveSchedule>,
    sink: JobSink,
    schedules: Schedules,
    last_tick: Arc<AtomicI64>,
}

/// What became of a tick, for the logs and `adbudget_beat_ticks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickOutcome {
    Enqueued(Enqueued),
    /// The schedule is disabled.
    Disabled,
    /// The tick belongs to a cron that has just been replaced.
    Superseded,
}

async fn on_tick(tick: Tick<Utc>, ctx: Data<TickContext>) -> Result<(), BoxDynError> {
    let at = DateTime::from_timestamp(tick.get_timestamp() as i64, 0).unwrap_or_else(Utc::now);
    ctx.last_tick
        .store(Utc::now().timestamp(), Ordering::Relaxed);
    // The row as it is now: a schedule disabled or re-timed a moment ago is not enqueued.
    let state = ctx.schedules.reload_one(&ctx.live).await;
    let on_schedule = state
        .schedule
        .as_ref()
        .is_some_and(|s| s.next_after(at - chrono::Duration::seconds(1)) == Some(at));
    let result = if !state.enabled {
        Ok(TickOutcome::Disabled)
    } else if !on_schedule {
        Ok(TickOutcome::Superseded)
    } else {
        enqueue(&ctx.sink, ctx.kind, at)
            .await
            .map(TickOutcome::Enqueued)
    };
    let label = match &result {
        Ok(TickOutcome::Enqueued(Enqueued::Pushed)) => "pushed",
        Ok(TickOutcome::Enqueued(Enqueued::ClaimedElsewhere)) => "claimed_elsewhere",
        Ok(TickOutcome::Enqueued(Enqueued::StillPending)) => "still_pending",
        Ok(TickOutcome::Disabled) => "disabled",
        Ok(TickOutcome::Superseded) => "superseded",
        Err(_) => "error",
    };
    metrics::counter!("adbudget_beat_ticks_total", "job" => ctx.kind.name(), "outcome" => label)
        .increment(1);
    let outcome = result.map_err(|e| -> BoxDynError { e.into() })?;
    if outcome == TickOutcome::Enqueued(Enqueued::Pushed) {
        ctx.schedules.record_tick(ctx.kind, at).await;
    }
    match outcome {
        TickOutcome::Enqueued(outcome) => {
            tracing::info!(job.name = ctx.kind.name(), job.tick = %at, ?outcome, "tick")
        }
        other => {
            tracing::info!(job.name = ctx.kind.name(), job.tick = %at, outcome = ?other, "tick")
        }
    }
    Ok(())
}

/// Registers one scheduler per job; each tick only enqueues.
pub fn register_schedules(
    mut monitor: Monitor,
    schedules: &Schedules,
    sink: &JobSink,
    last_tick: &Arc<AtomicI64>,
) -> Monitor {
    for live in schedules.live.iter() {
        let ctx = TickContext {
            kind: live.kind,
            live: live.clone(),
            sink: sink.clone(),
            schedules: schedules.clone(),
            last_tick: last_tick.clone(),
        };
        let live = live.clone();
        monitor = monitor.register(move |run| {
            WorkerBuilder::new(format!(
                "beat:{}@{}:r{run}",
                ctx.kind.name(),
                std::process::id()
            ))
            .backend(LiveCron::new(live.clone()))
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
    schedules: Schedules,
    health_addr: std::net::SocketAddr,
}

impl BeatProcess {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let conn = adbudget_queue::connect(&settings.redis_url).await?;
        let pool = adbudget_db::connect(&settings.database_url, 2)?;
        let schedules = Schedules::load(pool, &settings.schedules).await?;
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
        let monitor = register_schedules(monitor, &schedules, &sink, &last_tick);
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
            schedules,
            health_addr,
        })
    }

    pub fn health_addr(&self) -> std::net::SocketAddr {
        self.health_addr
    }

    /// Catches up, then ticks until SIGTERM/SIGINT (`Ok`) or until the schedules are dead (`Err`).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        catch_up(&self.sink, &self.schedules, Utc::now()).await?;
        tokio::spawn(self.schedules.clone().follow());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveSchedule {
        LiveSchedule::new(JobKind::ApplyDayparting)
    }

    fn cron(expression: &str) -> Option<JobSchedule> {
        Some(JobSchedule::new(JobKind::ApplyDayparting, expression).unwrap())
    }

    #[test]
    fn an_older_read_never_undoes_a_newer_one() {
        let l = live();
        // Read 2 (a tick's, which saw the edit) is applied before read 1 (the periodic reload,
        // which started before the edit and ended after it).
        l.apply(2, cron("* * * * * *"), true);
        l.apply(1, cron("0 0 0 1 1 *"), false);
        let s = l.current();
        assert_eq!(s.schedule.unwrap().expression, "* * * * * *");
        assert!(s.enabled);
        assert_eq!(s.version, 1, "one change of cron");
    }

    #[test]
    fn only_a_changed_cron_re_times_the_scheduler() {
        let l = live();
        l.apply(1, cron("0 * * * * *"), true);
        l.apply(2, cron("0 * * * * *"), false);
        assert_eq!(
            l.current().version,
            1,
            "enabling or disabling does not rebuild it"
        );
        assert!(!l.current().enabled);
        l.apply(3, cron("0 */5 * * * *"), false);
        assert_eq!(l.current().version, 2);
    }
}
