//! Configuration from the environment (SPEC §2): the same names in every binary. A `.env` file is
//! read when present. A value that does not parse is a start-up error naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use crate::jobs::{JobKind, JobSchedule};

use anyhow::{Context, anyhow};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: String,
    pub queue_prefix: String,
    pub bind: SocketAddr,
    pub worker_concurrency: usize,
    pub log_format: LogFormat,
    /// Connections per process in the database pool.
    pub db_pool_size: u32,
    /// The cron schedule of each job (`ADBUDGET_SCHEDULE_<JOB>`), in UTC.
    pub schedules: Vec<JobSchedule>,
    /// The worker's or beat's `/healthz` + `/readyz` port (`ADBUDGET_HEALTH_BIND`); each binary
    /// has its own default.
    pub health_bind: Option<SocketAddr>,
    /// How long a stopping worker lets running jobs finish (`ADBUDGET_SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout: Duration,
    /// How long one job attempt may run (`ADBUDGET_JOB_TIMEOUT_SECS`).
    pub job_timeout: Duration,
    /// Signs the admin panel's session cookies (`ADBUDGET_SECRET_KEY`, at least 64 characters).
    /// Every API replica needs the same one; without it each process makes up its own and
    /// sessions end at restart.
    pub secret_key: Option<String>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://adbudget.db";

/// Every environment variable the binaries read (`RUST_LOG` by the log setup, the rest here).
/// Deployment files are checked against this list (tests/e2e/deploy.rs).
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "ADBUDGET_QUEUE_PREFIX",
    "ADBUDGET_BIND",
    "ADBUDGET_WORKER_CONCURRENCY",
    "ADBUDGET_LOG_FORMAT",
    "RUST_LOG",
    "ADBUDGET_DB_POOL_SIZE",
    "ADBUDGET_SCHEDULE_ENFORCE_BUDGETS",
    "ADBUDGET_SCHEDULE_APPLY_DAYPARTING",
    "ADBUDGET_SCHEDULE_RESET_DAILY",
    "ADBUDGET_SCHEDULE_RESET_MONTHLY",
    "ADBUDGET_HEALTH_BIND",
    "ADBUDGET_SHUTDOWN_TIMEOUT_SECS",
    "ADBUDGET_JOB_TIMEOUT_SECS",
    "ADBUDGET_SECRET_KEY",
];

impl Settings {
    /// Reads `.env` (if any) and the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        // A missing .env is normal; a malformed one is an error worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(anyhow!("failed to read .env: {e}")),
        }
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `get`, so tests can pass their own environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |key: &str, default: &str| {
            get(key)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let database_url = var("DATABASE_URL", DEFAULT_DATABASE_URL);
        crate::db::DatabaseUrl::parse(&database_url).map_err(|e| anyhow!("DATABASE_URL {e}"))?;
        let redis_url = var("REDIS_URL", "redis://127.0.0.1:6379");
        if !(redis_url.starts_with("redis://")
            || redis_url.starts_with("rediss://")
            || redis_url.starts_with("unix://"))
        {
            return Err(anyhow!(
                "REDIS_URL must start with redis://, rediss:// or unix:// (got {})",
                crate::db::redact(&redis_url)
            ));
        }
        let queue_prefix = var("ADBUDGET_QUEUE_PREFIX", "adbudget");
        if !queue_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(anyhow!(
                "ADBUDGET_QUEUE_PREFIX may only contain letters, digits and - _ . : (got {queue_prefix:?})"
            ));
        }
        let bind = var("ADBUDGET_BIND", "127.0.0.1:8000");
        let bind = bind.parse().with_context(|| {
            format!("ADBUDGET_BIND must be an address such as 0.0.0.0:8000 (got {bind:?})")
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let worker_concurrency = var("ADBUDGET_WORKER_CONCURRENCY", &cores.to_string());
        let worker_concurrency = worker_concurrency
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| anyhow!("ADBUDGET_WORKER_CONCURRENCY must be a whole number from 1 to 1024 (got {worker_concurrency:?})"))?;
        let log_format = match var("ADBUDGET_LOG_FORMAT", "pretty").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(anyhow!(
                    "ADBUDGET_LOG_FORMAT must be pretty or json (got {other:?})"
                ));
            }
        };
        let db_pool_size = var("ADBUDGET_DB_POOL_SIZE", "16");
        let db_pool_size = db_pool_size
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| anyhow!("ADBUDGET_DB_POOL_SIZE must be a whole number from 1 to 1000 (got {db_pool_size:?})"))?;
        let schedules = JobKind::ALL
            .into_iter()
            .map(|kind| {
                JobSchedule::parse(kind, &var(kind.schedule_var(), kind.default_schedule()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!(e))?;
        let health_bind = get("ADBUDGET_HEALTH_BIND")
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.parse().with_context(|| {
                    format!(
                        "ADBUDGET_HEALTH_BIND must be an address such as 0.0.0.0:8001 (got {v:?})"
                    )
                })
            })
            .transpose()?;
        let secret_key = get("ADBUDGET_SECRET_KEY").filter(|v| !v.trim().is_empty());
        if secret_key.as_ref().is_some_and(|k| k.len() < 64) {
            return Err(anyhow!(
                "ADBUDGET_SECRET_KEY must be at least 64 characters (e.g. openssl rand -hex 32)"
            ));
        }
        let secs = |key: &str, default: &str| -> anyhow::Result<Duration> {
            let v = var(key, default);
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=86_400).contains(n))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    anyhow!("{key} must be a whole number of seconds from 1 to 86400 (got {v:?})")
                })
        };
        Ok(Settings {
            database_url,
            redis_url,
            queue_prefix,
            bind,
            worker_concurrency,
            log_format,
            db_pool_size,
            schedules,
            health_bind,
            shutdown_timeout: secs("ADBUDGET_SHUTDOWN_TIMEOUT_SECS", "30")?,
            job_timeout: secs("ADBUDGET_JOB_TIMEOUT_SECS", "300")?,
            secret_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, "sqlite://adbudget.db");
        assert_eq!(s.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(s.queue_prefix, "adbudget");
        assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
        assert!(s.worker_concurrency >= 1);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (key, value) in [
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("ADBUDGET_BIND", "localhost"),
            ("ADBUDGET_WORKER_CONCURRENCY", "zero"),
            ("ADBUDGET_WORKER_CONCURRENCY", "0"),
            ("ADBUDGET_LOG_FORMAT", "xml"),
            ("ADBUDGET_QUEUE_PREFIX", "has space"),
            ("ADBUDGET_DB_POOL_SIZE", "-1"),
            ("ADBUDGET_SCHEDULE_RESET_DAILY", "at midnight"),
            ("ADBUDGET_HEALTH_BIND", "8001"),
            ("ADBUDGET_SHUTDOWN_TIMEOUT_SECS", "soon"),
            ("ADBUDGET_JOB_TIMEOUT_SECS", "0"),
        ] {
            let err = settings(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn variables_lists_exactly_what_is_read() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|k| {
            asked.borrow_mut().insert(k.to_owned());
            None
        })
        .unwrap();
        let mut listed: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|v| v.to_string()).collect();
        listed.remove("RUST_LOG");
        assert_eq!(asked.into_inner(), listed);
    }

    #[test]
    fn database_password_is_not_echoed() {
        let err = settings(&[("REDIS_URL", "http://user:hunter2@host")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
