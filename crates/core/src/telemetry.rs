//! Logging for every binary: `tracing` to stderr (stdout stays clean for command output such as
//! a new token), human-readable or one JSON object per line.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`); a filter that does not
/// parse is an error naming the variable.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v)
            .map_err(|e| anyhow::anyhow!("RUST_LOG does not parse ({v:?}): {e}"))?,
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    // A second init (tests, standalone) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// Installs the process-wide Prometheus recorder (once; later calls get the same handle) and
/// describes the metrics every process may emit. Render the handle on `/metrics`.
pub fn metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    use std::sync::OnceLock;
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let latency = [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    let sizes = [
        1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0,
    ];
    let jobs = [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0, 120.0];
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("adbudget_spend_request_duration_seconds".into()),
            &latency,
        )?
        .set_buckets_for_metric(Matcher::Full("adbudget_spend_batch_size".into()), &sizes)?
        .set_buckets_for_metric(Matcher::Full("adbudget_job_duration_seconds".into()), &jobs)?
        .set_buckets_for_metric(
            Matcher::Full("adbudget_webhook_delivery_seconds".into()),
            &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("failed to install the metrics recorder: {e}"))?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Every metric the processes emit (the Grafana dashboard in deploy/ is checked against it).
pub const METRIC_NAMES: &[&str] = &[
    "adbudget_spend_events_total",
    "adbudget_spend_amount_micros_total",
    "adbudget_spend_request_duration_seconds",
    "adbudget_spend_batch_size",
    "adbudget_campaigns",
    "adbudget_campaigns_paused",
    "adbudget_job_runs_total",
    "adbudget_job_duration_seconds",
    "adbudget_queue_depth",
    "adbudget_beat_ticks_total",
    "adbudget_events_total",
    "adbudget_webhook_deliveries_total",
    "adbudget_webhook_delivery_seconds",
    "adbudget_outbox_backlog",
    "adbudget_webhook_oldest_undelivered_seconds",
];

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "adbudget_spend_events_total",
        "Spend events received, by outcome (recorded, replayed)."
    );
    describe_counter!(
        "adbudget_spend_amount_micros_total",
        Unit::Count,
        "Sum of recorded spend, in micro-units."
    );
    describe_histogram!(
        "adbudget_spend_request_duration_seconds",
        Unit::Seconds,
        "Latency of spend requests, by endpoint."
    );
    describe_histogram!(
        "adbudget_spend_batch_size",
        Unit::Count,
        "Events per batch of spend committed together."
    );
    describe_gauge!("adbudget_campaigns", "Campaigns by state (active, paused).");
    describe_gauge!(
        "adbudget_campaigns_paused",
        "Paused campaigns by pause reason (a campaign may hold several)."
    );
    describe_counter!("adbudget_job_runs_total", "Job runs, by job and outcome.");
    describe_histogram!(
        "adbudget_job_duration_seconds",
        Unit::Seconds,
        "Duration of job runs, by job."
    );
    describe_gauge!("adbudget_queue_depth", "Jobs waiting in each queue.");
    describe_counter!(
        "adbudget_beat_ticks_total",
        "Schedule ticks seen by this beat, by job and outcome."
    );
    describe_counter!("adbudget_events_total", "Events written to the outbox.");
    describe_counter!(
        "adbudget_webhook_deliveries_total",
        "Webhook attempts, by outcome (delivered, retrying, failed)."
    );
    describe_histogram!(
        "adbudget_webhook_delivery_seconds",
        Unit::Seconds,
        "Duration of webhook attempts, from the connection to the receiver's answer."
    );
    describe_gauge!(
        "adbudget_outbox_backlog",
        "Events the dispatcher has not turned into deliveries yet."
    );
    describe_gauge!(
        "adbudget_webhook_oldest_undelivered_seconds",
        "Age of the oldest webhook delivery still pending."
    );
}
