//! Webhook delivery attempts (SPEC §9): one apalis job per attempt. An attempt resolves the
//! endpoint's host, refuses a forbidden address (DNS rebinding is checked here, at delivery, not
//! only when the endpoint was created), connects to the address it checked, signs with the
//! `standardwebhooks` crate and records what happened.

use std::net::SocketAddr;
use std::time::Instant;

use adbudget_core::webhooks::{AttemptJob, TIMEOUT, address_allowed};
use adbudget_db::repo::webhooks::{self, Attempt, Outcome};
use adbudget_db::{self as db, DbPool};

/// Makes one attempt: loads it (a stale or duplicate job does nothing), sends it, records it.
pub async fn deliver(pool: DbPool, job: AttemptJob, allow_private: bool) -> anyhow::Result<()> {
    let now = adbudget_core::forms::now();
    let p = pool.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut conn = db::get(&p)?;
        webhooks::attempt(&mut conn, job, now)
    })
    .await??;
    let Some(attempt) = found else {
        tracing::debug!(
            delivery.id = job.delivery_id,
            attempt = job.attempt,
            "stale attempt job: skipped"
        );
        return Ok(());
    };
    let outcome = send(&attempt, allow_private).await;
    metrics::histogram!("adbudget_webhook_delivery_seconds")
        .record(outcome.latency_ms as f64 / 1000.0);
    tracing::info!(
        delivery.id = attempt.delivery_id,
        endpoint.id = attempt.endpoint_id,
        attempt = job.attempt,
        http.status = outcome.status,
        latency_ms = outcome.latency_ms,
        error = outcome.error.as_deref(),
        "webhook attempt"
    );
    let finished = adbudget_core::forms::now();
    tokio::task::spawn_blocking(move || {
        let mut conn = db::get(&pool)?;
        webhooks::record(&mut conn, &attempt, &outcome, finished)
    })
    .await??;
    Ok(())
}

/// The addresses `url`'s host resolves to, refused if any is forbidden.
async fn resolve(url: &url::Url, allow_private: bool) -> Result<(String, SocketAddr), String> {
    let host = url.host_str().ok_or("no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("no port")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if let Some(bad) = addrs
        .iter()
        .find(|a| !address_allowed(a.ip(), allow_private))
    {
        return Err(format!(
            "{host} resolves to {}, a loopback, private, link-local or metadata address",
            bad.ip()
        ));
    }
    let first = addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{host} has no address"))?;
    Ok((host, first))
}

/// Sends an attempt: `POST` with the Standard Webhooks headers, no redirects, 10 s.
pub async fn send(a: &Attempt, allow_private: bool) -> Outcome {
    let started = Instant::now();
    let failed = |error: String, status: Option<u16>| Outcome {
        status,
        latency_ms: started.elapsed().as_millis() as i64,
        error: Some(error),
    };
    let url = match url::Url::parse(&a.url) {
        Ok(u) => u,
        Err(e) => return failed(format!("bad URL: {e}"), None),
    };
    let (host, addr) = match resolve(&url, allow_private).await {
        Ok(r) => r,
        Err(e) => return failed(e, None),
    };
    let timestamp = chrono::Utc::now().timestamp();
    let mut signatures = Vec::with_capacity(a.secrets.len());
    for secret in &a.secrets {
        let signed = standardwebhooks::Webhook::new(secret)
            .and_then(|w| w.sign(&a.message_id, timestamp, a.body.as_bytes()));
        match signed {
            Ok(s) => signatures.push(s),
            Err(e) => return failed(format!("cannot sign: {e}"), None),
        }
    }
    // The connection goes to the address just checked, whatever DNS says a moment later.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .resolve(&host, addr)
        .user_agent(concat!("adbudget-webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => return failed(format!("client: {e}"), None),
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &a.message_id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(
            standardwebhooks::HEADER_WEBHOOK_SIGNATURE,
            signatures.join(" "),
        )
        .body(a.body.clone())
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                Outcome {
                    status: Some(status),
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: None,
                }
            } else {
                failed(format!("HTTP {status}"), Some(status))
            }
        }
        Err(e) if e.is_timeout() => failed("no answer within 10 s".to_owned(), None),
        Err(e) => failed(format!("{e}"), None),
    }
}
