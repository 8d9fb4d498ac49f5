//! `adbudget-bench jobs --worker-seconds N`: the memory of a real `adbudget-worker` process while
//! it runs `enforce_budgets` over the data set, as deployed: an `adbudget-beat` enqueues the job
//! every 2 seconds (skipping ticks while one is pending), the worker runs it, and this tool samples
//! the worker's resident set every 20 ms.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adbudget_core::jobs::JobKind;
use anyhow::{Context, bail};

use adbudget_testing::process::{Process, binary, free_port};

use crate::rss_kib;

pub async fn measure(database_url: &str, seconds: u64) -> anyhow::Result<()> {
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("bench-{}", std::process::id());
    let start = |name: &str, health: u16| -> anyhow::Result<Process> {
        let path = binary(name)?;
        Process::spawn(
            Command::new(&path)
                .env("DATABASE_URL", database_url)
                .env("REDIS_URL", &redis_url)
                .env("ADBUDGET_QUEUE_PREFIX", &prefix)
                .env("ADBUDGET_HEALTH_BIND", format!("127.0.0.1:{health}"))
                .env("ADBUDGET_SCHEDULE_ENFORCE_BUDGETS", "*/2 * * * * *")
                // The other jobs stay out of the way: once a year.
                .env("ADBUDGET_SCHEDULE_APPLY_DAYPARTING", "0 0 0 1 1 *")
                .env("ADBUDGET_SCHEDULE_RESET_DAILY", "0 0 0 1 1 *")
                .env("ADBUDGET_SCHEDULE_RESET_MONTHLY", "0 0 0 1 1 *")
                .env("ADBUDGET_WORKER_CONCURRENCY", "1")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null()),
        )
    };
    let worker = start("adbudget-worker", free_port()?)?;
    let _beat = start("adbudget-beat", free_port()?)?;
    let mut redis = adbudget_queue::connect(&redis_url).await?;
    let pid = worker.id().unwrap_or(0);
    let (mut peak, mut idle) = (0u64, None);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Some(kib) = rss_kib(pid) {
            peak = peak.max(kib);
            idle.get_or_insert(kib);
        } else {
            bail!("the worker exited");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let overview = adbudget_queue::stats::overview(&mut redis, &prefix, &[])
        .await
        .context("reading the queue counters")?;
    let done = overview
        .queues
        .iter()
        .find(|q| q.name == JobKind::EnforceBudgets.name())
        .map_or(0, |q| q.done);
    println!(
        "worker: {done} enforce_budgets runs in {seconds} s; resident set {:.1} MiB at its first sample, peak {:.1} MiB",
        idle.unwrap_or(0) as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    if done == 0 {
        bail!("the worker completed no run: the figure would mean nothing");
    }
    Ok(())
}
