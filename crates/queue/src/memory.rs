//! In-process queues for `adbudget standalone`: the same jobs and handlers as with Redis, on
//! apalis's in-memory storage, so the embedded default needs no Redis.

use std::sync::Arc;

use adbudget_core::jobs::{
    ApplyDayparting, DispatchEvents, EnforceBudgets, JobKind, MaintainSpendLogs, PruneEvents,
    ResetDaily, ResetMonthly, Trigger,
};
use apalis::prelude::{
    MemorySink, MemoryStorage, MemoryStorageError, RandomId, Task, TaskBuilder, TaskId,
};
use futures::channel::mpsc;
use futures::lock::Mutex;
use futures::{SinkExt, StreamExt};

/// One job's in-memory queue: a channel any number of producers push into, and a receiver that
/// each (re)started worker reads from.
///
/// Pushes go straight into the channel's sender and never through apalis's `MemorySink`: that
/// sink's `start_send` takes its lock with `try_lock().unwrap()` (a panic when another push holds
/// it), and its `poll_ready` drops the pending lock future, so a worker whose `poll_ready` met a
/// push holding the lock was never woken again (standalone stopped dispatching under load). Each
/// worker's storage gets a sink of its own, which only that worker ever locks.
pub struct MemoryQueue<J> {
    sender: mpsc::UnboundedSender<Task<J>>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Task<J>>>>,
}

impl<J> Clone for MemoryQueue<J> {
    fn clone(&self) -> Self {
        MemoryQueue {
            sender: self.sender.clone(),
            receiver: self.receiver.clone(),
        }
    }
}

impl<J: Send + Sync + Unpin + 'static> Default for MemoryQueue<J> {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded();
        MemoryQueue {
            sender,
            receiver: Arc::new(Mutex::new(receiver)),
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
        let sink: Box<
            dyn futures::Sink<Task<J>, Error = MemoryStorageError> + Send + Sync + Unpin,
        > = Box::new(self.sender.clone().sink_map_err(MemoryStorageError::from));
        MemoryStorage::new_with(MemorySink::new(Arc::new(Mutex::new(sink))), stream.boxed())
    }

    pub fn push(&self, job: J) -> anyhow::Result<()> {
        let task = TaskBuilder::new(job)
            .task_id(TaskId::from_string(RandomId::default()))
            .build();
        self.sender
            .unbounded_send(task)
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
    pub maintain_spend_logs: MemoryQueue<MaintainSpendLogs>,
    /// The webhook attempts' jobs.
    pub deliveries: MemoryQueue<adbudget_core::webhooks::AttemptJob>,
}

impl MemoryQueues {
    /// Queues a run of `kind`.
    pub fn push(&self, kind: JobKind, trigger: &Trigger) -> anyhow::Result<()> {
        match kind {
            JobKind::EnforceBudgets => self.enforce_budgets.push(trigger.payload()),
            JobKind::ApplyDayparting => self.apply_dayparting.push(trigger.payload()),
            JobKind::ResetDaily => self.reset_daily.push(trigger.payload()),
            JobKind::ResetMonthly => self.reset_monthly.push(trigger.payload()),
            JobKind::PruneEvents => self.prune_events.push(trigger.payload()),
            JobKind::DispatchEvents => self.dispatch_events.push(trigger.payload()),
            JobKind::MaintainSpendLogs => self.maintain_spend_logs.push(trigger.payload()),
        }
    }
}
