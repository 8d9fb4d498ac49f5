use adbudget_core::config::Settings;
use adbudget_worker::WorkerProcess;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    adbudget_core::telemetry::init(settings.log_format)?;
    let worker = WorkerProcess::build(&settings).await?;
    tracing::info!(health.bind = %worker.health_addr(), worker.concurrency = settings.worker_concurrency, queue.prefix = %settings.queue_prefix, "adbudget-worker consuming jobs");
    worker.run_until_stopped().await
}
