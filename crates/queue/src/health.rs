//! `/healthz`, `/readyz` and `/metrics` on a small side port, for the worker and the beat (the API serves its
//! own on its main port).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde_json::json;

type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>>>> + Send + Sync>;

type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String>>> + Send + Sync>;

/// What the probes ask, and what `/metrics` shows.
#[derive(Clone)]
pub struct Probes {
    /// Liveness: the job machinery is running (a supervisor restarts the process otherwise).
    pub live: Check,
    /// Readiness: the database and Redis answer.
    pub ready: Check,
    /// The Prometheus text of this process.
    pub metrics: Render,
}

async fn probe(check: &Check, ok: &str) -> HttpResponse {
    match check().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": ok})),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "reason": reason})),
    }
}

/// Starts the probe server in the background; returns the bound address (port 0 picks one).
pub fn serve(
    bind: SocketAddr,
    probes: Probes,
) -> anyhow::Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let probes = web::Data::new(probes);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(probes.clone())
            .route(
                "/healthz",
                web::get().to(|p: web::Data<Probes>| async move { probe(&p.live, "ok").await }),
            )
            .route(
                "/readyz",
                web::get().to(|p: web::Data<Probes>| async move { probe(&p.ready, "ready").await }),
            )
            .route(
                "/metrics",
                web::get().to(|p: web::Data<Probes>| async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body((p.metrics)().await)
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(bind)
    .with_context(|| format!("failed to bind the health port ADBUDGET_HEALTH_BIND={bind}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .context("the health server bound no address")?;
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((addr, handle))
}
