//! The job schedules as data (SPEC §6): seeded from the `ADBUDGET_SCHEDULE_*` values on first
//! start, then edited through the API and `/jobs` and followed by every beat; and the "Run now"
//! requests, one run per idempotency key.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::{naive, utc};
use crate::error::{DomainError, DomainResult};
use crate::schema::{job_runs, job_schedules};
use crate::{DbConnection, write_transaction};
use adbudget_core::access::Author;
use adbudget_core::jobs::{JobKind, JobSchedule, ScheduleView, describe_cron};

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = job_schedules)]
pub struct StoredSchedule {
    pub id: i64,
    pub job: String,
    pub cron: String,
    pub enabled: bool,
    pub updated_at: NaiveDateTime,
    pub updated_by: Option<String>,
    pub last_tick: Option<NaiveDateTime>,
}

impl StoredSchedule {
    /// The job, when this build knows it.
    pub fn kind(&self) -> Option<JobKind> {
        JobKind::from_name(&self.job)
    }

    /// The parsed schedule (`None` for a job or cron this build cannot read, which the beat skips).
    pub fn schedule(&self) -> Option<JobSchedule> {
        JobSchedule::new(self.kind()?, &self.cron).ok()
    }

    /// What the API and `/jobs` show; `last_tick` as known elsewhere when newer (Redis).
    pub fn view(&self, now: DateTime<Utc>, last_tick: Option<DateTime<Utc>>) -> ScheduleView {
        let stored = self.last_tick.map(utc);
        ScheduleView {
            job: self.job.clone(),
            cron: self.cron.clone(),
            description: describe_cron(&self.cron),
            enabled: self.enabled,
            updated_at: utc(self.updated_at),
            updated_by: self.updated_by.clone(),
            last_tick: stored.max(last_tick),
            next_tick: if self.enabled {
                self.schedule().and_then(|s| s.next_after(now))
            } else {
                None
            },
        }
    }
}

/// How an author is named in `updated_by` and on a manual run: "alice (user)".
pub fn author_label(author: &Author) -> String {
    format!("{} ({})", author.actor.name, author.actor.kind.as_str())
}

/// Inserts the schedules that are not stored yet (first start, or a job new in this build) from
/// `defaults` (the `ADBUDGET_SCHEDULE_*` values). Stored rows win: a variable that differs from
/// its row is reported, not applied.
pub fn seed(
    conn: &mut DbConnection,
    defaults: &[JobSchedule],
    now: DateTime<Utc>,
) -> DomainResult<()> {
    for d in defaults {
        let row = (
            job_schedules::job.eq(d.kind.name()),
            job_schedules::cron.eq(&d.expression),
            job_schedules::enabled.eq(true),
            job_schedules::updated_at.eq(naive(now)),
        );
        crate::per_backend!(conn, c => diesel::insert_into(job_schedules::table)
            .values(row)
            .on_conflict(job_schedules::job)
            .do_nothing()
            .execute(c))?;
    }
    for stored in list(conn)? {
        let differs = defaults
            .iter()
            .find(|d| d.kind.name() == stored.job)
            .filter(|d| {
                d.expression != stored.cron && std::env::var(d.kind.schedule_var()).is_ok()
            });
        if let Some(d) = differs {
            tracing::warn!(
                job.name = %stored.job,
                stored = %stored.cron,
                variable = d.kind.schedule_var(),
                value = %d.expression,
                "the stored schedule wins over the environment variable (which only seeds it); edit it on /jobs or with PATCH /api/v1/jobs/schedules/{{job}}"
            );
        }
    }
    Ok(())
}

/// Every stored schedule, in the order of [`JobKind::ALL`] (unknown jobs last).
pub fn list(conn: &mut DbConnection) -> DomainResult<Vec<StoredSchedule>> {
    let mut rows: Vec<StoredSchedule> = job_schedules::table
        .select(StoredSchedule::as_select())
        .load(conn)?;
    rows.sort_by_key(|r| {
        r.kind()
            .and_then(|k| JobKind::ALL.iter().position(|a| *a == k))
            .unwrap_or(usize::MAX)
    });
    Ok(rows)
}

pub fn get(conn: &mut DbConnection, kind: JobKind) -> DomainResult<StoredSchedule> {
    job_schedules::table
        .filter(job_schedules::job.eq(kind.name()))
        .select(StoredSchedule::as_select())
        .first(conn)
        .optional()?
        .ok_or(DomainError::not_found("schedule"))
}

/// A change of a schedule (`None`: unchanged). The cron is validated by the caller
/// ([`adbudget_core::jobs::parse_cron`]).
#[derive(Debug, Clone, Default)]
pub struct ScheduleChanges {
    pub cron: Option<String>,
    pub enabled: Option<bool>,
}

/// Changes a schedule and writes its audit entry (nothing when nothing changes).
pub fn update(
    conn: &mut DbConnection,
    kind: JobKind,
    changes: &ScheduleChanges,
    now: DateTime<Utc>,
    author: &Author,
) -> DomainResult<StoredSchedule> {
    write_transaction(conn, |conn| {
        // Locked on PostgreSQL (SQLite's writers take turns): two edits at once each diff their
        // audit entry against what the other left.
        let old = match conn {
            DbConnection::Postgresql(c) => job_schedules::table
                .filter(job_schedules::job.eq(kind.name()))
                .select(StoredSchedule::as_select())
                .for_update()
                .first(c)
                .optional()?
                .ok_or(DomainError::not_found("schedule"))?,
            DbConnection::Sqlite(_) => get(conn, kind)?,
        };
        let cron = changes.cron.clone().unwrap_or_else(|| old.cron.clone());
        let enabled = changes.enabled.unwrap_or(old.enabled);
        if cron == old.cron && enabled == old.enabled {
            return Ok(old);
        }
        diesel::update(job_schedules::table.find(old.id))
            .set((
                job_schedules::cron.eq(&cron),
                job_schedules::enabled.eq(enabled),
                job_schedules::updated_at.eq(naive(now)),
                job_schedules::updated_by.eq(Some(author_label(author))),
            ))
            .execute(conn)?;
        let new = get(conn, kind)?;
        let view = |s: &StoredSchedule| serde_json::json!({"cron": s.cron, "enabled": s.enabled});
        let entry = adbudget_core::audit::NewEntry {
            object_type: "schedule",
            object_id: new.id,
            brand_id: None,
            action: "update",
            changes: adbudget_core::audit::diff(
                Some(&view(&old)),
                Some(&view(&new)),
                &["cron", "enabled"],
            ),
        };
        super::audit::record(conn, author, entry, now)?;
        Ok(new)
    })
}

/// The beat enqueued `tick` of `kind` (kept for the job monitor; never moves backwards).
pub fn record_tick(
    conn: &mut DbConnection,
    kind: JobKind,
    tick: DateTime<Utc>,
) -> DomainResult<()> {
    let at = naive(tick);
    diesel::update(
        job_schedules::table
            .filter(job_schedules::job.eq(kind.name()))
            .filter(
                job_schedules::last_tick
                    .is_null()
                    .or(job_schedules::last_tick.lt(at)),
            ),
    )
    .set(job_schedules::last_tick.eq(at))
    .execute(conn)?;
    Ok(())
}

/// A "Run now" request.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = job_runs)]
pub struct RunRequest {
    pub id: i64,
    pub job: String,
    pub idempotency_key: String,
    pub requested_by: String,
    pub requested_at: NaiveDateTime,
}

/// Records a "Run now" of `kind` under `key` with its audit entry and queues it with `push`, in
/// one transaction: `Ok((request, true))` when this call queued the run, `Ok((original, false))`
/// when the key was used already (a double click; nothing queued). A failed push rolls the
/// record back, so a retry with the key runs; a concurrent request with the same key waits on
/// the key's row until this one commits or rolls back. A crash between the push and the commit
/// leaves the run queued and the key free: Redis refuses the retry's second push of the same
/// apalis idempotency key (kept 7 days, which is why requests are kept at least that long).
pub fn request_run(
    conn: &mut DbConnection,
    kind: JobKind,
    key: &str,
    now: DateTime<Utc>,
    author: &Author,
    push: impl FnOnce(&RunRequest) -> anyhow::Result<()>,
) -> DomainResult<(RunRequest, bool)> {
    write_transaction(conn, |conn| {
        let schedule = get(conn, kind)?;
        let row = (
            job_runs::job.eq(kind.name()),
            job_runs::idempotency_key.eq(key),
            job_runs::requested_by.eq(author_label(author)),
            job_runs::requested_at.eq(naive(now)),
        );
        let inserted = crate::per_backend!(conn, c => diesel::insert_into(job_runs::table)
            .values(row)
            .on_conflict((job_runs::job, job_runs::idempotency_key))
            .do_nothing()
            .execute(c))?;
        let request: RunRequest = job_runs::table
            .filter(job_runs::job.eq(kind.name()))
            .filter(job_runs::idempotency_key.eq(key))
            .select(RunRequest::as_select())
            .first(conn)?;
        if inserted == 0 {
            return Ok((request, false));
        }
        let entry = adbudget_core::audit::NewEntry {
            object_type: "schedule",
            object_id: schedule.id,
            brand_id: None,
            action: "run",
            changes: [(
                "run".to_owned(),
                adbudget_core::audit::FieldChange {
                    old: serde_json::Value::Null,
                    new: serde_json::json!({"job": kind.name(), "idempotency_key": key}),
                },
            )]
            .into(),
        };
        super::audit::record(conn, author, entry, now)?;
        push(&request).map_err(DomainError::Unavailable)?;
        Ok((request, true))
    })
}

/// How long "Run now" keys are kept at least: as long as apalis keeps a pushed job's
/// idempotency key in Redis.
pub const RUN_KEYS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// The latest "Run now" of each job that has one (for the job monitor, standalone included).
pub fn latest_runs(conn: &mut DbConnection) -> DomainResult<Vec<RunRequest>> {
    let recent: Vec<RunRequest> = job_runs::table
        .select(RunRequest::as_select())
        .order(job_runs::id.desc())
        .limit(200)
        .load(conn)?;
    let mut latest: Vec<RunRequest> = Vec::new();
    for r in recent {
        if !latest.iter().any(|l| l.job == r.job) {
            latest.push(r);
        }
    }
    Ok(latest)
}

/// Drops "Run now" requests older than `before`, and at least [`RUN_KEYS_KEPT`] old before
/// `now` (with `prune_events`).
pub fn prune_runs(
    conn: &mut DbConnection,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainResult<usize> {
    let before = before.min(now - RUN_KEYS_KEPT);
    Ok(
        diesel::delete(job_runs::table.filter(job_runs::requested_at.lt(naive(before))))
            .execute(conn)?,
    )
}
