//! What `GET /api/v1/jobs/queues` shows, read straight from Redis (apalis-board's readers are
//! broken against apalis-redis 1.0: see STACK-NOTES).

use adbudget_core::jobs::{JobKind, ScheduleView};
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{HEARTBEAT, MISSED_HEARTBEATS, keys, queue_name};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueStats {
    /// The job's name (also its queue's name under the prefix).
    pub name: String,
    /// Waiting to run (due now or scheduled for a retry).
    pub pending: u64,
    /// Taken by a live worker and not finished.
    pub running: u64,
    /// Finished successfully (all time).
    pub done: u64,
    /// Runs that ended in an error (each is retried until it succeeds or is dead).
    pub failed: u64,
    /// Given up: will not run again.
    pub dead: u64,
    pub last_run_at: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub last_outcome: Option<String>,
    pub last_detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerStats {
    pub name: String,
    /// The job this worker consumes.
    pub job: String,
    pub last_heartbeat: DateTime<Utc>,
    /// Heartbeat within the last 3 intervals.
    pub alive: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleStats {
    pub name: String,
    /// Cron expression with seconds, in UTC.
    pub cron: String,
    /// The last tick a beat handled.
    pub last_tick: Option<DateTime<Utc>>,
    pub next_tick: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuesOverview {
    pub queues: Vec<QueueStats>,
    pub workers: Vec<WorkerStats>,
    pub schedules: Vec<ScheduleStats>,
}

/// LLEN active, ZCARD scheduled, SCARD done, SCARD dead, the workers with their heartbeats,
/// and our stats hash.
type QueueRead = (
    u64,
    u64,
    u64,
    u64,
    Vec<(String, f64)>,
    std::collections::HashMap<String, String>,
);

fn parse<T: std::str::FromStr>(v: Option<&String>) -> Option<T> {
    v.and_then(|s| s.parse().ok())
}

/// Reads every queue, worker and schedule. A handful of round trips, whatever the load.
pub async fn overview(
    conn: &mut ConnectionManager,
    prefix: &str,
    schedules: &[ScheduleView],
) -> redis::RedisResult<QueuesOverview> {
    let now = Utc::now();
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    let alive_after = now.timestamp() - (HEARTBEAT.as_secs() * MISSED_HEARTBEATS as u64) as i64;
    let delivery = adbudget_core::webhooks::DELIVERY_QUEUE;
    let named = JobKind::ALL
        .iter()
        .map(|k| (k.name(), queue_name(prefix, *k), keys::stats(prefix, *k)))
        .chain([(
            delivery,
            format!("{prefix}:{delivery}"),
            format!("{prefix}:stats:{delivery}"),
        )]);
    for (name, q, stats_key) in named {
        let (active, scheduled, done, dead, registered, stats): QueueRead = redis::pipe()
            .llen(format!("{q}:active"))
            .zcard(format!("{q}:scheduled"))
            .scard(format!("{q}:done"))
            .scard(format!("{q}:dead"))
            .zrange_withscores(format!("{q}:workers"), 0, -1)
            .hgetall(stats_key)
            .query_async(conn)
            .await?;
        let mut running = 0;
        for (worker, beat) in &registered {
            let alive = (*beat as i64) >= alive_after;
            if alive {
                running += conn
                    .scard::<_, u64>(format!("{q}:inflight:{worker}"))
                    .await?;
            }
            workers.push(WorkerStats {
                name: worker.clone(),
                job: name.to_owned(),
                last_heartbeat: DateTime::from_timestamp(*beat as i64, 0).unwrap_or_default(),
                alive,
            });
        }
        queues.push(QueueStats {
            name: name.to_owned(),
            pending: active + scheduled,
            running,
            done: done + parse::<u64>(stats.get("vacuumed_done")).unwrap_or(0),
            failed: parse(stats.get("failed")).unwrap_or(0),
            dead,
            last_run_at: stats.get("last_run_at").cloned(),
            last_duration_ms: parse(stats.get("last_duration_ms")),
            last_outcome: stats.get("last_outcome").cloned(),
            last_detail: stats.get("last_detail").cloned(),
        });
    }
    let out = schedules
        .iter()
        .map(|s| ScheduleStats {
            name: s.job.clone(),
            cron: s.cron.clone(),
            last_tick: s.last_tick,
            next_tick: s.next_tick,
        })
        .collect();
    Ok(QueuesOverview {
        queues,
        workers,
        schedules: out,
    })
}

/// One job as the monitor shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobEntry {
    pub job: String,
    pub id: String,
    /// `pending`, `done` or `dead`.
    pub state: String,
    /// The payload, as JSON text.
    pub args: String,
    pub attempts: u64,
    pub status: Option<String>,
    /// What the last attempt returned (a report, or the error).
    pub result: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// Recent jobs of every queue: the pending ones, and up to `limit` done and dead ones each.
pub async fn recent_jobs(
    conn: &mut ConnectionManager,
    prefix: &str,
    limit: usize,
) -> redis::RedisResult<Vec<JobEntry>> {
    let mut out = Vec::new();
    for kind in JobKind::ALL {
        let q = queue_name(prefix, kind);
        let pending: Vec<String> = conn.zrange(format!("{q}:scheduled"), 0, 50).await?;
        let active: Vec<String> = conn.lrange(format!("{q}:active"), 0, 50).await?;
        let done: Vec<String> = conn
            .srandmember_multiple(format!("{q}:done"), limit as isize)
            .await?;
        let dead: Vec<String> = conn
            .srandmember_multiple(format!("{q}:dead"), limit as isize)
            .await?;
        let groups = [
            (
                "pending",
                pending.into_iter().chain(active).collect::<Vec<_>>(),
            ),
            ("done", done),
            ("dead", dead),
        ];
        for (state, ids) in groups {
            for id in ids {
                let meta: std::collections::HashMap<String, String> =
                    conn.hgetall(format!("{q}:meta:{id}")).await?;
                let data: Option<Vec<u8>> = conn.hget(format!("{q}:data"), &id).await?;
                let done_at: Option<i64> = parse(meta.get("done_at"));
                let locked_at: Option<i64> = parse(meta.get("locked_at"));
                out.push(JobEntry {
                    job: kind.name().to_owned(),
                    id,
                    state: state.to_owned(),
                    args: data
                        .map(|d| String::from_utf8_lossy(&d).into_owned())
                        .unwrap_or_default(),
                    attempts: parse(meta.get("attempts")).unwrap_or(0),
                    status: meta.get("status").cloned(),
                    result: meta.get("result").cloned(),
                    done_at: done_at.and_then(|t| DateTime::from_timestamp(t, 0)),
                    duration_ms: match (done_at, locked_at) {
                        (Some(d), Some(l)) if d >= l => Some((d - l) * 1000),
                        _ => None,
                    },
                });
            }
        }
    }
    out.sort_by(|a, b| b.done_at.cmp(&a.done_at).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// Puts a dead job back in its queue, due now, with its attempts reset.
pub async fn retry(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
    id: &str,
) -> redis::RedisResult<bool> {
    let q = queue_name(prefix, kind);
    let removed: i64 = conn.srem(format!("{q}:dead"), id).await?;
    if removed == 0 {
        return Ok(false);
    }
    redis::pipe()
        .hset(format!("{q}:meta:{id}"), "status", "Pending")
        .hset(format!("{q}:meta:{id}"), "attempts", 0)
        .zadd(format!("{q}:scheduled"), id, Utc::now().timestamp())
        .query_async::<()>(conn)
        .await?;
    Ok(true)
}

/// Drops a dead or pending job for good.
pub async fn discard(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
    id: &str,
) -> redis::RedisResult<bool> {
    let q = queue_name(prefix, kind);
    let (dead, scheduled, active): (i64, i64, i64) = redis::pipe()
        .srem(format!("{q}:dead"), id)
        .zrem(format!("{q}:scheduled"), id)
        .lrem(format!("{q}:active"), 0, id)
        .query_async(conn)
        .await?;
    if dead + scheduled + active == 0 {
        return Ok(false);
    }
    redis::pipe()
        .hdel(format!("{q}:data"), id)
        .del(format!("{q}:meta:{id}"))
        .query_async::<()>(conn)
        .await?;
    Ok(true)
}
