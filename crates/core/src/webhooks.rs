//! Webhooks (SPEC §9), the pure part: which URLs and addresses an endpoint may have, and when a
//! failed delivery is tried again. Signing is the `standardwebhooks` crate's (in the worker).

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ValidationError;

/// The job of one delivery attempt (queue `deliver_webhook`): which delivery, which attempt.
/// A job whose attempt is no longer the delivery's next does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptJob {
    pub delivery_id: i64,
    pub attempt: i32,
}

/// The queue of the attempts' jobs (beside the scheduled jobs' queues).
pub const DELIVERY_QUEUE: &str = "deliver_webhook";

/// How long a receiver has to answer.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A delivery is retried for this long, then `failed`; an endpoint failing every attempt for this
/// long is disabled.
pub const GIVE_UP_AFTER: TimeDelta = TimeDelta::days(3);
/// A rotated secret keeps signing beside the new one for this long.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);
/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// Checks an endpoint's URL as written: `https://` (or `http://` when private addresses are
/// allowed, for development), a host, no credentials; an address literal must be allowed by
/// [`address_allowed`]. Host names are resolved and checked when created and at every delivery.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, ValidationError> {
    let bad = |m: &str| ValidationError::new("url", m);
    if raw.len() > MAX_URL_LEN {
        return Err(bad("must be at most 2000 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(bad("must be an https:// URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    match url.host() {
        None => return Err(bad("must have a host")),
        Some(url::Host::Ipv4(ip)) if !address_allowed(IpAddr::V4(ip), allow_private) => {
            return Err(bad(
                "must not point to a loopback, private, link-local or metadata address",
            ));
        }
        Some(url::Host::Ipv6(ip)) if !address_allowed(IpAddr::V6(ip), allow_private) => {
            return Err(bad(
                "must not point to a loopback, private, link-local or metadata address",
            ));
        }
        Some(_) => {}
    }
    Ok(url)
}

/// Whether a delivery may connect to `ip`: never to loopback, private (RFC 1918, unique local),
/// shared (100.64/10), link-local (which holds the cloud metadata address 169.254.169.254),
/// unspecified, broadcast, multicast or documentation addresses, unless `allow_private`.
pub fn address_allowed(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_allowed(IpAddr::V4(v4), false);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// How long after the `failures`-th failed attempt the next one is made: 5 s, 15 s, 45 s, …
/// (×3 each time) up to 12 h, with ±20 % jitter (`jitter` in 0..1), so retries spread out.
pub fn retry_delay(failures: u32, jitter: f64) -> TimeDelta {
    let base = 5.0 * 3f64.powi(failures.saturating_sub(1).min(20) as i32);
    let capped = base.min(12.0 * 3600.0);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    TimeDelta::milliseconds((capped * factor * 1000.0) as i64)
}

/// An endpoint as shown (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// The event types it receives; null: all.
    pub event_types: Option<Vec<String>>,
    /// The brands whose events it receives; null: all.
    pub brand_ids: Option<Vec<i64>>,
    pub enabled: bool,
    /// Why it was disabled (a `410`, three days of failures), when it was.
    pub disabled_reason: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Since when every attempt has failed; null while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// Failed attempts in a row.
    pub failure_streak: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A delivery as its log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// The event's id (`evt_…`).
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: Vec<AttemptView>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    /// The receiver's status; null when it did not answer.
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_and_public() {
        assert!(check_url("https://hooks.example.com/adbudget", false).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://[::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[fd00:ec2::254]/",
            "not a url",
        ] {
            let e = check_url(bad, false).unwrap_err();
            assert_eq!(e.field, "url", "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
    }

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!address_allowed(ip, false), "{ip}");
            assert!(address_allowed(ip, true), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(address_allowed(ip.parse().unwrap(), false), "{ip}");
        }
    }

    #[test]
    fn retries_back_off_to_three_days() {
        assert_eq!(retry_delay(1, 0.5), TimeDelta::seconds(5));
        assert_eq!(retry_delay(2, 0.5), TimeDelta::seconds(15));
        assert!(retry_delay(1, 0.0) >= TimeDelta::seconds(4));
        assert!(retry_delay(1, 1.0) <= TimeDelta::seconds(6));
        assert_eq!(retry_delay(40, 0.5), TimeDelta::hours(12));
        // Attempts keep coming until the third day is over.
        let mut elapsed = TimeDelta::zero();
        let mut n = 0;
        while elapsed < GIVE_UP_AFTER {
            n += 1;
            elapsed += retry_delay(n, 0.5);
        }
        assert!((10..=20).contains(&n), "{n} attempts in three days");
    }
}
