use actix_web::{HttpResponse, web};
use adbudget_queue::stats::{self, QueuesOverview};

use crate::access::{Caller, ToRead};
use crate::error::{ApiError, ErrorBody};
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
    let mut conn = jobs.redis.clone();
    let overview = stats::overview(&mut conn, &jobs.prefix, &jobs.schedules, chrono::Utc::now())
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::anyhow!("Redis: {e}")))?;
    Ok(HttpResponse::Ok().json(overview))
}
