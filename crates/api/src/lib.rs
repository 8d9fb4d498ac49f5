//! The adbudget HTTP API (SPEC §6): brands, campaigns, dayparting, spend, health.

pub mod access;
pub mod admin;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod nudge;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod token_cache;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use adbudget_core::config::Settings;
use anyhow::Context;

use crate::error::ApiError;
use crate::state::{AppState, JobsMonitor};

/// How long the server waits for slow and idle clients. A client that trickles its request
/// holds a connection (never a worker thread: actix serves many connections per thread), and
/// only until these run out.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send the request line and headers; then 408 and the connection is closed.
    pub request_head: Duration,
    /// Time to send the body (JSON and form bodies); then 408.
    pub request_body: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_head: Duration::from_secs(5),
            request_body: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
        }
    }
}

/// A bound, not yet running, API server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects to the configured database (and, lazily, Redis for the job monitor) and binds
    /// `ADBUDGET_BIND`.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = adbudget_db::connect(&settings.database_url, settings.db_pool_size)?;
        // The stored schedules, seeded from ADBUDGET_SCHEDULE_* if no beat has yet: the job
        // routes and /jobs show them.
        if let Err(e) = adbudget_db::get(&pool)
            .map_err(anyhow::Error::from)
            .and_then(|mut c| {
                adbudget_db::repo::schedules::seed(&mut c, &settings.schedules, chrono::Utc::now())
                    .map_err(anyhow::Error::from)
            })
        {
            tracing::warn!(error = %e, "could not seed the job schedules (has `adbudget migrate` run?)");
        }
        let jobs = JobsMonitor {
            redis: adbudget_queue::connect_lazy(&settings.redis_url)?,
            prefix: settings.queue_prefix.clone(),
        };
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("failed to bind ADBUDGET_BIND={}", settings.bind))?;
        let admin = admin::AdminState::from_settings(settings);
        let state = AppState::new(pool)
            .with_jobs(jobs)
            .with_gauge_refresh(state::GAUGE_REFRESH)
            .with_webhook_allow_private(settings.webhook_allow_private);
        Self::new(state, admin, listener)
    }

    /// Serves `state` on an existing listener (tests bind port 0).
    pub fn new(
        state: AppState,
        admin: admin::AdminState,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        Self::with_limits(state, admin, listener, Limits::default())
    }

    /// The same with other client time limits (tests use short ones).
    pub fn with_limits(
        state: AppState,
        admin: admin::AdminState,
        listener: TcpListener,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let state = web::Data::new(state);
        let app_state = state.clone();
        let admin = web::Data::new(admin);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(admin::security_headers))
                .wrap(tracing_actix_web::TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .app_data(admin.clone())
                .app_data(limits)
                .app_data(web::PathConfig::default().error_handler(|_, _| {
                    ApiError::NotFound {
                        what: "resource".into(),
                        field: None,
                    }
                    .into()
                }))
                .configure(configure)
        })
        .client_request_timeout(limits.request_head)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(limits.keep_alive)
        .listen(listener)
        .context("failed to listen")?
        .shutdown_timeout(10)
        .run();
        Ok(Application {
            port,
            server,
            state: app_state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let gauges = self
            .state
            .gauge_refresh
            .map(|every| tokio::spawn(routes::health::refresh_gauges(self.state.clone(), every)));
        let nudges = self
            .state
            .queues
            .clone()
            .map(|queues| tokio::spawn(nudge::run(queues, self.state.nudge_now.clone())));
        let stopped = self.server.await;
        if let Some(task) = gauges {
            task.abort();
        }
        if let Some(task) = nudges {
            task.abort();
        }
        stopped
    }
}

/// Every route of the API process.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources answer 405 to a method they do not serve (a bare route would fall through to 404).
    cfg.service(web::resource("/healthz").get(routes::health::healthz))
        .service(web::resource("/readyz").get(routes::health::readyz))
        .service(web::resource("/metrics").get(routes::health::metrics))
        .service(web::resource("/api/openapi.json").get(openapi_json))
        .service(web::scope("/api/v1").configure(routes::api_v1))
        .configure(admin::configure)
        .default_service(web::to(not_found));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(openapi::document())
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        what: "route".into(),
        field: None,
    })
}

/// The span of every request: tracing-actix-web's fields, but the target without its query string
/// (which may carry what should not be logged) and the client address as the login throttle sees
/// it (the peer, unless a trusted proxy forwarded the request), not as a client's headers claim.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let route = req.match_pattern().unwrap_or_else(|| "default".into());
        let request_id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let client_ip = req
            .app_data::<web::Data<admin::AdminState>>()
            .map_or_else(String::new, |a| a.client_ip(req.request()));
        let empty = tracing::field::Empty;
        tracing::info_span!(
            "HTTP request",
            http.method = %req.method(),
            http.route = %route,
            http.target = %req.path(),
            http.client_ip = %client_ip,
            http.status_code = empty,
            otel.status_code = empty,
            request_id = %request_id,
            exception.message = empty,
            exception.details = empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
