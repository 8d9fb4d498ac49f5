//! In-process queues for `adbudget standalone`: the same jobs and handlers as with Redis, on
//! apalis's in-memory storage, so the embedded default needs no Redis.

use std::sync::Arc;

use adbudget_core::jobs::{
    ApplyDayparting, DispatchEvents, EnforceBudgets, Job, JobKind, PruneEvents, ResetDaily,
    ResetMonthly,
};
use apalis::prelude::{MemorySink, MemoryStorage, MemoryStorageError, TaskBuilder};
use futures::channel::mpsc;
use futures::lock::Mutex;
use futures::{SinkExt, StreamExt};

/// One job's in-memory queue: a sender any number of producers clone, and a receiver that each
/// (re)started worker reads from.
pub struct MemoryQueue<J> {
    sink: MemorySink<J>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<apalis::prelude::Task<J>>>>,
    /// One push at a time: apalis 1.0's `MemorySink::start_send` takes its inner lock with
    /// `try_lock().unwrap()`, which panics when another push holds it (the beat's tick, a
    /// dispatcher nudge and its second nudge can meet on one queue).
    pushing: Arc<Mutex<()>>,
}

impl<J> Clone for MemoryQueue<J> {
    fn clone(&self) -> Self {
        MemoryQueue {
            sink: self.sink.clone(),
            receiver: self.receiver.clone(),
            pushing: self.pushing.clone(),
        }
    }
}

impl<J: Send + Sync + Unpin + 'static> Default for MemoryQueue<J> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded();
        let sink = tx.sink_map_err(MemoryStorageError::from);
        let boxed: Box<
            dyn futures::Sink<apalis::prelude::Task<J>, Error = MemoryStorageError>
                + Send
                + Sync
                + Unpin,
        > = Box::new(sink);
        MemoryQueue {
            sink: MemorySink::new(Arc::new(Mutex::new(boxed))),
            receiver: Arc::new(Mutex::new(rx)),
            pushing: Arc::new(Mutex::new(())),
        }
    }
}

impl<J: Send + Sync + Unpin + 'static> MemoryQueue<J> {
    /// A storage for a worker. The receiver is shared, so a restarted worker picks up where the
    /// previous one stopped.
    pub fn storage(&self) -> MemoryStorage<J> {
        let receiver = self.receiver.clone();
        let stream = futures::stream::unfold(receiver, |rx| async move {
            let next = rx.lock().await.next().await;
            next.map(|task| (task, rx))
        });
        MemoryStorage::new_with(self.sink.clone(), stream.boxed())
    }

    pub async fn push(&self, job: J) -> anyhow::Result<()> {
        let _one_at_a_time = self.pushing.lock().await;
        let mut sink = self.sink.clone();
        sink.send(TaskBuilder::new(job).build())
            .await
            .map_err(|e| anyhow::anyhow!("in-memory queue closed: {e}"))
    }
}

/// The job queues of a standalone process.
#[derive(Clone, Default)]
pub struct MemoryQueues {
    pub enforce_budgets: MemoryQueue<EnforceBudgets>,
    pub apply_dayparting: MemoryQueue<ApplyDayparting>,
    pub reset_daily: MemoryQueue<ResetDaily>,
    pub reset_monthly: MemoryQueue<ResetMonthly>,
    pub prune_events: MemoryQueue<PruneEvents>,
    pub dispatch_events: MemoryQueue<DispatchEvents>,
    /// The webhook attempts' jobs.
    pub deliveries: MemoryQueue<adbudget_core::webhooks::AttemptJob>,
}

impl MemoryQueues {
    pub async fn push(
        &self,
        kind: JobKind,
        tick: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<()> {
        match kind {
            JobKind::EnforceBudgets => {
                self.enforce_budgets
                    .push(EnforceBudgets::for_tick(tick))
                    .await
            }
            JobKind::ApplyDayparting => {
                self.apply_dayparting
                    .push(ApplyDayparting::for_tick(tick))
                    .await
            }
            JobKind::ResetDaily => self.reset_daily.push(ResetDaily::for_tick(tick)).await,
            JobKind::ResetMonthly => self.reset_monthly.push(ResetMonthly::for_tick(tick)).await,
            JobKind::PruneEvents => self.prune_events.push(PruneEvents::for_tick(tick)).await,
            JobKind::DispatchEvents => {
                self.dispatch_events
                    .push(DispatchEvents::for_tick(tick))
                    .await
            }
        }
    }
}
