use actix_web::web;
use adbudget_db::error::DomainResult;
use adbudget_db::{self as db, DbConnection, DbPool};

use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    /// Where the job monitor reads queues from; `None` when jobs run in process (standalone).
    pub jobs: Option<JobsMonitor>,
    /// The process's Prometheus recorder, rendered on `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Group commit of single spend events.
    pub spend_writer: crate::ingest::SpendWriter,
    /// Token verdicts of the last second (the spend route checks them before reading a body).
    pub token_cache: std::sync::Arc<crate::token_cache::TokenCache>,
    /// How often the campaign gauges of `/metrics` are refreshed from the database; `None`: never
    /// (tests, which share one recorder per process, turn it on where they look at gauges).
    pub gauge_refresh: Option<std::time::Duration>,
    /// `ADBUDGET_WEBHOOK_ALLOW_PRIVATE`.
    pub webhook_allow_private: bool,
    /// Asks the nudger for a nudge now (a test ping, a redelivery).
    pub nudge_now: std::sync::Arc<tokio::sync::Notify>,
    /// Where "Run now" and the dispatcher's nudges queue jobs (`None`: nowhere; "Run now" is a
    /// `503` and the sweep dispatches).
    pub queues: Option<adbudget_queue::Queues>,
}

/// The gauge refresh of a deployed API (Prometheus scrapes every 15–60 s).
pub const GAUGE_REFRESH: std::time::Duration = std::time::Duration::from_secs(15);

/// The Redis the workers and beats of this deployment use.
#[derive(Clone)]
pub struct JobsMonitor {
    pub redis: redis::aio::ConnectionManager,
    pub prefix: String,
}

impl AppState {
    pub fn new(pool: DbPool) -> Self {
        // SQLite: one writer (its write transactions serialize anyway; a second was slower).
        // PostgreSQL: two, so that one records its events (token check, campaign lookup,
        // spend-log insert: before the brand locks) while the other holds the locks and commits;
        // more only wait on the same brand locks. The measurements are in BENCHMARKS.md.
        let writers = if pool.is_sqlite() { 1 } else { 2 };
        let spend_writer = crate::ingest::SpendWriter::start(pool.clone(), writers);
        AppState {
            pool,
            jobs: None,
            metrics: adbudget_core::telemetry::metrics().ok(),
            spend_writer,
            token_cache: Default::default(),
            gauge_refresh: None,
            webhook_allow_private: false,
            nudge_now: Default::default(),
            queues: None,
        }
    }

    pub fn with_webhook_allow_private(self, allow: bool) -> Self {
        AppState {
            webhook_allow_private: allow,
            ..self
        }
    }

    /// Where "Run now" and the nudges queue jobs (standalone's in-memory queues).
    pub fn with_queues(self, queues: adbudget_queue::Queues) -> Self {
        AppState {
            queues: Some(queues),
            ..self
        }
    }

    /// Asks for a dispatch now.
    pub fn nudge(&self) {
        self.nudge_now.notify_one();
    }

    pub fn with_gauge_refresh(self, every: std::time::Duration) -> Self {
        AppState {
            gauge_refresh: Some(every),
            ..self
        }
    }

    /// The deployment's Redis: the job monitor reads it, and the dispatcher's nudges go to it.
    pub fn with_jobs(self, jobs: JobsMonitor) -> Self {
        let queues = adbudget_queue::Queues::Redis {
            conn: jobs.redis.clone(),
            prefix: jobs.prefix.clone(),
        };
        AppState {
            jobs: Some(jobs),
            queues: Some(queues),
            ..self
        }
    }

    /// Runs blocking database work on actix's blocking pool, inside the caller's tracing span.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> DomainResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let result = web::block(move || {
            let _entered = span.enter();
            let mut conn = db::get(&pool)?;
            f(&mut conn)
        })
        .await?;
        result.map_err(ApiError::from)
    }
}
