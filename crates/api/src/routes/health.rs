use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the database answers.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready to serve", body = Object, example = json!({"status": "ready", "database": "ok"})),
        (status = 503, description = "The database is unreachable", body = Object, example = json!({"status": "unavailable", "database": "unreachable"}))))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    match web::block(move || adbudget_db::ping(&pool)).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "database": "unreachable"}))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"})),
    }
}

/// Prometheus metrics of this process. A scrape does no database work: the campaign gauges are
/// refreshed in the background ([`refresh_gauges`]), so anonymous scrapes cost nothing but text.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let Some(handle) = state.metrics.clone() else {
        return HttpResponse::NotFound().finish();
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

/// The brand pace gauges are published on every this many refreshes (a minute at the default
/// 15 s): they read every brand's budgets, totals and campaign schedules, and a pace moves slowly.
const PACE_EVERY: u32 = 4;

/// Publishes the campaign state gauges every `every`, and the brand pace gauges every
/// [`PACE_EVERY`] times that, for as long as the server runs.
pub async fn refresh_gauges(state: web::Data<AppState>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u32.. {
        tick.tick().await;
        let pool = state.pool.clone();
        let pace = n.is_multiple_of(PACE_EVERY);
        let refreshed = web::block(move || -> adbudget_db::error::DomainResult<()> {
            let mut conn = adbudget_db::get(&pool)?;
            adbudget_db::repo::campaigns::publish_state_gauges(&mut conn)?;
            let (backlog, oldest) =
                adbudget_db::repo::webhooks::backlog(&mut conn, adbudget_core::forms::now())?;
            metrics::gauge!("adbudget_outbox_backlog").set(backlog as f64);
            metrics::gauge!("adbudget_webhook_oldest_undelivered_seconds").set(oldest);
            if pace {
                let now = adbudget_core::forms::now();
                adbudget_db::repo::pacing::publish_pace_gauges(&mut conn, now)?;
            }
            Ok(())
        })
        .await;
        if !matches!(refreshed, Ok(Ok(()))) {
            tracing::warn!("campaign gauges not refreshed: the database did not answer");
        }
    }
}
