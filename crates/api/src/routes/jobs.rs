use actix_web::{HttpRequest, HttpResponse, web};
use adbudget_core::jobs::{JobKind, ScheduleView, Trigger, normalize_cron};
use adbudget_db::repo::schedules::{self, ScheduleChanges};
use adbudget_queue::stats::{self, QueuesOverview};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Caller, ToEditSchedules, ToRead, ToRunJobs};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;

/// Per job: pending, running, done, failed and dead; live workers and their last heartbeat; the
/// last and next tick of each schedule. Read from Redis.
#[utoipa::path(get, operation_id = "job_queues", path = "/api/v1/jobs/queues", tag = "jobs",
    responses((status = 200, body = QueuesOverview), (status = 404, body = ErrorBody, description = "This process runs its jobs in process (standalone): there is no queue"),
        (status = 503, body = ErrorBody, description = "Redis is unreachable")),
    security(("bearer" = [])))]
pub async fn queues(
    _: Caller<ToRead>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(jobs) = &state.jobs else {
        // Standalone runs its jobs in process: there is no queue to show, now or later (a 503
        // would tell clients to retry).
        return Err(ApiError::NotFound {
            what: "Redis job queue (this process runs its jobs in process)".into(),
            field: None,
        });
    };
    let views = schedule_views(&state).await?;
    let mut conn = jobs.redis.clone();
    let overview = stats::overview(&mut conn, &jobs.prefix, &views)
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::anyhow!("Redis: {e}")))?;
    Ok(HttpResponse::Ok().json(overview))
}

pub(crate) fn job_kind(name: &str) -> Result<JobKind, ApiError> {
    JobKind::from_name(name).ok_or_else(|| ApiError::NotFound {
        what: format!(
            "job {name:?} (the jobs are {})",
            JobKind::ALL.map(JobKind::name).join(", ")
        ),
        field: Some("job".into()),
    })
}

/// The stored schedules as the API shows them, with the last tick Redis knows when newer.
pub(crate) async fn schedule_views(state: &AppState) -> Result<Vec<ScheduleView>, ApiError> {
    let rows = state.db(schedules::list).await?;
    let now = chrono::Utc::now();
    // The beats' last ticks in Redis: one MGET, given a second (the schedules show without them
    // while Redis is away).
    let mut redis_last: Vec<Option<i64>> = vec![None; rows.len()];
    if let Some(jobs) = &state.jobs {
        let keys: Vec<String> = rows
            .iter()
            .map(|r| {
                adbudget_queue::keys::beat_last(
                    &jobs.prefix,
                    r.kind().unwrap_or(JobKind::EnforceBudgets),
                )
            })
            .collect();
        let mut conn = jobs.redis.clone();
        let mut mget = redis::cmd("MGET");
        mget.arg(&keys);
        let read = mget.query_async::<Vec<Option<i64>>>(&mut conn);
        if let Ok(Ok(values)) = tokio::time::timeout(std::time::Duration::from_secs(1), read).await
            && values.len() == rows.len()
        {
            redis_last = values;
        }
    }
    Ok(rows
        .iter()
        .zip(redis_last)
        .map(|(row, last)| {
            let last = last
                .filter(|_| row.kind().is_some())
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
            row.view(now, last)
        })
        .collect())
}

/// Every job's schedule as stored: cron (six fields, seconds first, UTC) and in words, enabled,
/// who changed it last, the last and the next tick.
#[utoipa::path(get, operation_id = "list_job_schedules", path = "/api/v1/jobs/schedules", tag = "jobs",
    responses((status = 200, body = Vec<ScheduleView>)), security(("bearer" = [])))]
pub async fn list_schedules(
    _: Caller<ToRead>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(schedule_views(&state).await?))
}

/// A change of a job's schedule; a field left out or `null` is unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSchedule {
    /// Six fields, seconds first, in UTC: second minute hour day-of-month month day-of-week
    /// (days of the week 1–7 from Sunday, or names).
    #[schema(example = "0 */10 * * * *", pattern = r"^\s*\S+(\s+\S+){5}\s*$")]
    pub cron: Option<String>,
    /// `false`: the job is not enqueued on its ticks, nor caught up after downtime.
    pub enabled: Option<bool>,
}

/// Re-times, enables or disables a job's schedule (admins only). Every beat follows within
/// seconds, without a restart; the change is in the audit trail.
#[utoipa::path(patch, operation_id = "update_job_schedule", path = "/api/v1/jobs/schedules/{job}", tag = "jobs",
    params(("job" = String, Path, description = "The job's name, e.g. `enforce_budgets`")),
    request_body = UpdateSchedule,
    responses((status = 200, body = ScheduleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`cron` is not a six-field cron expression")),
    security(("bearer" = [])))]
pub async fn update_schedule(
    caller: Caller<ToEditSchedules>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UpdateSchedule>,
) -> Result<HttpResponse, ApiError> {
    let kind = job_kind(&path)?;
    let cron = body
        .cron
        .map(|c| normalize_cron(&c).map_err(|e| ApiError::invalid("cron", e)))
        .transpose()?;
    let changes = ScheduleChanges {
        cron,
        enabled: body.enabled,
    };
    let author = caller.author();
    let row = state
        .db(move |conn| schedules::update(conn, kind, &changes, chrono::Utc::now(), &author))
        .await?;
    Ok(HttpResponse::Ok().json(row.view(chrono::Utc::now(), None)))
}

/// A "Run now" request.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobRun {
    #[schema(example = "reset_daily")]
    pub job: String,
    pub id: i64,
    /// The request's `Idempotency-Key` (generated when none was sent).
    pub idempotency_key: String,
    /// Who asked: "alice (user)", "deploy-bot (token)".
    pub requested_by: String,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    /// `false`: the key had been used already, and this request queued nothing.
    pub queued: bool,
}

/// Queues a run of `kind` by `author` under `key`, once per key (see
/// [`schedules::request_run`]): the run, and whether this call queued it.
pub(crate) async fn run_job(
    state: &AppState,
    kind: JobKind,
    key: String,
    author: adbudget_core::access::Author,
) -> Result<JobRun, ApiError> {
    let Some(queues) = state.queues.clone() else {
        return Err(ApiError::Unavailable(anyhow::anyhow!(
            "this process has no job queue to run jobs on"
        )));
    };
    let now = chrono::Utc::now();
    let k = key.clone();
    // The push happens inside the recording transaction (a blocking thread of actix's pool).
    let runtime = tokio::runtime::Handle::current();
    let (request, new) = state
        .db(move |conn| {
            schedules::request_run(conn, kind, &k, now, &author, |request| {
                let trigger = Trigger::Manual {
                    at: now,
                    by: request.requested_by.clone(),
                };
                let apalis_key = format!("run:{}:{}", kind.name(), k);
                runtime
                    .block_on(queues.push(kind, &trigger, Some(apalis_key)))
                    .map_err(|e| e.context("the job queue"))
            })
        })
        .await?;
    if new {
        tracing::info!(job.name = kind.name(), job.run_by = %request.requested_by, "job run by hand");
    }
    Ok(JobRun {
        job: request.job,
        id: request.id,
        idempotency_key: request.idempotency_key,
        requested_by: request.requested_by,
        requested_at: request.requested_at.and_utc(),
        queued: new,
    })
}

/// Checks an idempotency key: 1–200 visible ASCII characters.
pub(crate) fn idempotency_key(raw: Option<&str>, field: &str) -> Result<String, ApiError> {
    match raw {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(k) if !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(k.to_owned())
        }
        Some(_) => Err(ApiError::invalid(
            field,
            "must be 1 to 200 visible ASCII characters",
        )),
    }
}

/// Runs a job now, whatever its schedule (also when disabled). Send an `Idempotency-Key`: a
/// repeated request with the same key (a double click, a retry) queues nothing more and answers
/// `200` with the first request. The run shows in the job monitor as run by hand, by whom.
#[utoipa::path(post, operation_id = "run_job", path = "/api/v1/jobs/{job}/run", tag = "jobs",
    params(("job" = String, Path, description = "The job's name, e.g. `reset_daily`"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,200}$", description = "One run per key (1–200 visible ASCII characters); without it every request runs")),
    responses((status = 202, body = JobRun, description = "Queued"), (status = 200, body = JobRun, description = "Queued already by an earlier request with this key"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "The job queue (Redis) is unreachable")),
    security(("bearer" = [])))]
pub async fn run(
    caller: Caller<ToRunJobs>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let kind = job_kind(&path)?;
    let header = request
        .headers()
        .get("Idempotency-Key")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let key = idempotency_key(header, "Idempotency-Key")?;
    let run = run_job(&state, kind, key, caller.author()).await?;
    Ok(if run.queued {
        HttpResponse::Accepted().json(run)
    } else {
        HttpResponse::Ok().json(run)
    })
}
