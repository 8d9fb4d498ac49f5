use adbudget_beat::BeatProcess;
use adbudget_core::config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    adbudget_core::telemetry::init(settings.log_format)?;
    let beat = BeatProcess::build(&settings).await?;
    tracing::info!(health.bind = %beat.health_addr(), queue.prefix = %settings.queue_prefix, "adbudget-beat scheduling jobs");
    beat.run_until_stopped().await
}
