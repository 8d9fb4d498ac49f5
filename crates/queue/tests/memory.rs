//! `standalone`'s in-process queues under concurrent pushers: every job pushed is run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use adbudget_queue::memory::MemoryQueue;
use apalis::layers::WorkerBuilderExt;
use apalis::prelude::{BoxDynError, Data, WorkerBuilder};

async fn count(_job: u64, counter: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
    counter.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Pushers and a consuming worker meet on one queue all the time here. With apalis's
/// `MemorySink` in the push path, a worker whose readiness check met a push holding the sink's
/// lock was never woken again (or the push panicked on `try_lock`), and jobs stayed queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_pushed_by_concurrent_pushers_runs() {
    const PUSHERS: u64 = 4;
    const EACH: u64 = 5_000;
    let queue = MemoryQueue::<u64>::default();
    let counter = Arc::new(AtomicUsize::new(0));
    let worker = WorkerBuilder::new("memory-queue-test")
        .backend(queue.storage())
        .concurrency(4)
        .data(counter.clone())
        .build(count);
    let running = tokio::spawn(worker.run());
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    queue.push(p * EACH + i).unwrap();
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for p in pushers {
        p.await.unwrap();
    }
    let total = (PUSHERS * EACH) as usize;
    // A liveness bound, not a speed check: the jobs take microseconds each.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        counter.load(Ordering::SeqCst),
        total,
        "jobs pushed but never run"
    );
    running.abort();
}
