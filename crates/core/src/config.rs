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
    /// Signs the admin panel's session cookies (`ADBUDGET_SECRET_KEY`, random: see
    /// [`check_secret_key`]). Every API replica needs the same one; without it each process makes
    /// up its own and sessions end at restart.
    pub secret_key: Option<String>,
    /// The admin panel's external URL (`ADBUDGET_PUBLIC_URL`); `https://` makes the session
    /// cookie `Secure` and `__Host-` prefixed, whatever a client's headers claim.
    pub public_url: Option<url::Url>,
    /// Peers whose `X-Forwarded-For` is believed (`ADBUDGET_TRUSTED_PROXIES`, addresses or CIDRs,
    /// comma-separated). Anyone else's client address is the TCP peer's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long events stay in the change feed (`ADBUDGET_EVENT_RETENTION_DAYS`, 1–3650).
    pub event_retention: chrono::TimeDelta,
    /// How many whole months of spend logs before the current one `maintain_spend_logs` keeps
    /// (`ADBUDGET_SPEND_LOG_RETENTION_MONTHS`, 1–1200; unset: all of them).
    pub spend_log_retention_months: Option<u32>,
    /// Whether webhook URLs may reach loopback and private networks
    /// (`ADBUDGET_WEBHOOK_ALLOW_PRIVATE`; development and tests).
    pub webhook_allow_private: bool,
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
    "ADBUDGET_SCHEDULE_PRUNE_EVENTS",
    "ADBUDGET_SCHEDULE_DISPATCH_EVENTS",
    "ADBUDGET_SCHEDULE_MAINTAIN_SPEND_LOGS",
    "ADBUDGET_HEALTH_BIND",
    "ADBUDGET_SHUTDOWN_TIMEOUT_SECS",
    "ADBUDGET_JOB_TIMEOUT_SECS",
    "ADBUDGET_SECRET_KEY",
    "ADBUDGET_PUBLIC_URL",
    "ADBUDGET_TRUSTED_PROXIES",
    "ADBUDGET_WEBHOOK_ALLOW_PRIVATE",
    "ADBUDGET_EVENT_RETENTION_DAYS",
    "ADBUDGET_SPEND_LOG_RETENTION_MONTHS",
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
        crate::database_url::DatabaseUrl::parse(&database_url)
            .map_err(|e| anyhow!("DATABASE_URL {e}"))?;
        let redis_url = var("REDIS_URL", "redis://127.0.0.1:6379");
        if !(redis_url.starts_with("redis://")
            || redis_url.starts_with("rediss://")
            || redis_url.starts_with("unix://"))
        {
            return Err(anyhow!(
                "REDIS_URL must start with redis://, rediss:// or unix:// (got {})",
                crate::database_url::redact(&redis_url)
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
        if let Some(key) = &secret_key {
            check_secret_key(key).map_err(|why| {
                anyhow!("ADBUDGET_SECRET_KEY {why}; make one with: openssl rand -hex 32")
            })?;
        }
        let public_url = get("ADBUDGET_PUBLIC_URL")
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                url::Url::parse(v.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        anyhow!(
                            "ADBUDGET_PUBLIC_URL must be an http:// or https:// URL (got {v:?})"
                        )
                    })
            })
            .transpose()?;
        let trusted_proxies = get("ADBUDGET_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow!("ADBUDGET_TRUSTED_PROXIES must be addresses or CIDRs, comma-separated (got {p:?})")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
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
        let retention = var("ADBUDGET_EVENT_RETENTION_DAYS", "30");
        let event_retention = retention
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .map(chrono::TimeDelta::days)
            .ok_or_else(|| {
                anyhow!("ADBUDGET_EVENT_RETENTION_DAYS must be a whole number of days from 1 to 3650 (got {retention:?})")
            })?;
        let spend_log_retention_months = match get("ADBUDGET_SPEND_LOG_RETENTION_MONTHS")
            .filter(|v| !v.trim().is_empty())
        {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().ok().filter(|m| (1..=1200).contains(m)).ok_or_else(
                || anyhow!("ADBUDGET_SPEND_LOG_RETENTION_MONTHS must be a whole number of months from 1 to 1200, or unset to keep every spend log (got {v:?})"),
            )?),
        };
        let webhook_allow_private = match var("ADBUDGET_WEBHOOK_ALLOW_PRIVATE", "false").as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(anyhow!(
                    "ADBUDGET_WEBHOOK_ALLOW_PRIVATE must be true or false (got {other:?})"
                ));
            }
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
            public_url,
            trusted_proxies,
            event_retention,
            spend_log_retention_months,
            webhook_allow_private,
        })
    }
}

/// Known placeholders: a key holding one of these words (between non-letters) was typed by a
/// person, not generated. Six letters or more, so that random base64 never holds one by chance.
const PLACEHOLDERS: &[&str] = &[
    "change",
    "changeme",
    "placeholder",
    "example",
    "secret",
    "password",
    "replace",
    "sample",
    "default",
    "insecure",
    "xxxxxx",
];

/// Whether `key` holds `word` (ASCII case-insensitive) with no letter right before or after it.
fn holds_word(key: &str, word: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.match_indices(word).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphabetic())
            && !after.is_some_and(|c| c.is_ascii_alphabetic())
    })
}

/// Whether `key` is fit to sign admin sessions (SPEC §12): not a known placeholder, not a short
/// pattern repeated, at least 32 bytes once decoded (hex and base64 are decoded, anything else is
/// taken as raw bytes), and an estimated entropy of at least 160 bits. The estimate is the
/// Shannon entropy of the key's characters times its length less repeated stretches: hex of 32
/// random bytes measures 215–245 bits and base64 of them 188–230 (100,000 of each tried); a phrase
/// typed twice, or a short one, measures far less. No estimate tells a random key from a long made-up one: make
/// the key with `openssl rand -hex 32`.
pub fn check_secret_key(key: &str) -> Result<(), String> {
    if let Some(p) = PLACEHOLDERS.iter().find(|p| holds_word(key, p)) {
        return Err(format!("looks like a placeholder (it contains {p:?})"));
    }
    let chars: Vec<char> = key.chars().collect();
    if let Some(period) =
        (1..=chars.len() / 2).find(|&p| (p..chars.len()).all(|i| chars[i] == chars[i - p]))
    {
        return Err(format!("repeats a pattern of {period} characters"));
    }
    if key_bytes(key) < 32 {
        return Err("must carry at least 32 bytes (64 hex digits or 44 base64 characters)".into());
    }
    let bits = entropy_bits(&chars);
    if bits < 160.0 {
        return Err(format!(
            "is not random enough (about {bits:.0} bits of entropy, at least 160 needed)"
        ));
    }
    Ok(())
}

/// How many bytes `key` carries: hex and base64 decoded, anything else as it is.
fn key_bytes(key: &str) -> usize {
    let hex = key.len().is_multiple_of(2) && key.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        return key.len() / 2;
    }
    let b64 = key
        .trim_end_matches('=')
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/-_".contains(&b));
    if b64 {
        return key.trim_end_matches('=').len() * 3 / 4;
    }
    key.len()
}

/// The Shannon entropy of the characters' frequencies, times the number of characters that are
/// not repeats: a stretch of four characters seen before adds nothing (a phrase typed twice is
/// worth one phrase).
fn entropy_bits(chars: &[char]) -> f64 {
    let distinct_runs: std::collections::HashSet<&[char]> = chars.windows(4).collect();
    let fresh = (distinct_runs.len() + 3).min(chars.len()) as f64;
    let mut counts = std::collections::HashMap::new();
    for c in chars {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * fresh
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
        assert_eq!(s.spend_log_retention_months, None, "every spend log kept");
        let kept = settings(&[("ADBUDGET_SPEND_LOG_RETENTION_MONTHS", "24")]).unwrap();
        assert_eq!(kept.spend_log_retention_months, Some(24));
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
            ("ADBUDGET_SPEND_LOG_RETENTION_MONTHS", "0"),
            ("ADBUDGET_SPEND_LOG_RETENTION_MONTHS", "two years"),
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
    fn placeholder_and_weak_secret_keys_are_refused() {
        for weak in [
            "CHANGE-ME-to-64-random-characters-CHANGE-ME-to-64-random-characters",
            "test-secret-test-secret-test-secret-test-secret-",
            &"ab".repeat(40),
            &"0123456789abcdef".repeat(4),
            "0123456789abcdef0123456789abcdef", // 16 bytes of hex
            "correct horse battery staple correct horse battery staple!!",
            &"a".repeat(100),
        ] {
            let err = settings(&[("ADBUDGET_SECRET_KEY", weak)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("ADBUDGET_SECRET_KEY"), "{weak}: {err}");
        }
    }

    #[test]
    fn random_secret_keys_are_accepted() {
        use rand::RngCore;
        for _ in 0..2000 {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let hex = hex::encode(bytes);
            check_secret_key(&hex).unwrap_or_else(|e| panic!("{hex}: {e}"));
            let b64 = base64_of(&bytes);
            check_secret_key(&b64).unwrap_or_else(|e| panic!("{b64}: {e}"));
        }
    }

    /// Standard base64 with padding, as `openssl rand -base64 32` prints it.
    fn base64_of(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        while !out.len().is_multiple_of(4) {
            out.push('=');
        }
        out
    }

    #[test]
    fn public_url_and_trusted_proxies_parse() {
        let s = settings(&[
            ("ADBUDGET_PUBLIC_URL", "https://budgets.example.com"),
            ("ADBUDGET_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7"),
        ])
        .unwrap();
        assert_eq!(s.public_url.unwrap().scheme(), "https");
        assert_eq!(s.trusted_proxies.len(), 2);
        for (key, value) in [
            ("ADBUDGET_PUBLIC_URL", "budgets.example.com"),
            ("ADBUDGET_TRUSTED_PROXIES", "10.0.0.0/33"),
        ] {
            let err = settings(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn database_password_is_not_echoed() {
        let err = settings(&[("REDIS_URL", "http://user:hunter2@host")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
