//! Group commit for `POST /api/v1/spend`.
//!
//! A commit costs a disk flush (1.5–16 ms here), so a transaction per request caps ingestion at a
//! few hundred events per second per connection. Requests instead queue to writer threads; a
//! writer takes everything waiting (up to `MAX_BATCH`), records it in one transaction
//! (`repo::spend::record_group`: per-event idempotency, errors and synchronous pauses), and
//! answers every request after the commit. Under light load a batch is one event and nothing
//! waits; under heavy load batches grow and the flush is shared.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use adbudget_domain::db::{self, DbPool};
use adbudget_domain::error::{DomainError, DomainResult};
use adbudget_domain::forms::{ValidSpend, now};
use adbudget_domain::repo::spend::{self, Outcome};
use adbudget_domain::views::Campaign;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// Events per transaction at most.
pub const MAX_BATCH: usize = 1000;
/// Requests waiting for a writer at most; beyond it the API answers 503.
pub const QUEUE: usize = 100_000;

type Reply = oneshot::Sender<DomainResult<(Outcome, Campaign)>>;

struct Pending {
    event: ValidSpend,
    reply: Reply,
}

/// The queue to the writers. Dropping every clone stops them.
#[derive(Clone)]
pub struct SpendWriter {
    tx: SyncSender<Pending>,
}

impl SpendWriter {
    /// Starts `writers` threads (one is right for SQLite, whose writers serialize anyway).
    pub fn start(pool: DbPool, writers: usize) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..writers.max(1) {
            let (pool, rx) = (pool.clone(), rx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("spend-writer-{n}"))
                .spawn(move || write_forever(&pool, &rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a spend writer");
            }
        }
        SpendWriter { tx }
    }

    /// Records one event through the next group commit.
    pub async fn record(&self, event: ValidSpend) -> Result<(Outcome, Campaign), ApiError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Pending { event, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::Unavailable(anyhow::anyhow!(
                    "the ingestion queue is full"
                )));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "the spend writers stopped"
                )));
            }
        }
        let result = answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a spend writer dropped a request")))?;
        result.map_err(ApiError::from)
    }
}

fn write_forever(pool: &DbPool, rx: &Mutex<Receiver<Pending>>) {
    loop {
        // Take everything waiting; other writers wait for the lock meanwhile, then take the next
        // batch while this one commits.
        let batch = {
            let Ok(rx) = rx.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            batch
        };
        let events: Vec<ValidSpend> = batch.iter().map(|p| p.event.clone()).collect();
        metrics::histogram!("adbudget_spend_batch_size").record(events.len() as f64);
        let results = match db::get(pool) {
            Ok(mut conn) => spend::record_group(&mut conn, &events, now()),
            Err(e) => {
                let reason = e.to_string();
                events
                    .iter()
                    .map(|_| Err(DomainError::Unavailable(anyhow::anyhow!("{reason}"))))
                    .collect()
            }
        };
        for (pending, result) in batch.into_iter().zip(results) {
            // The client may have gone away; its event is recorded all the same.
            let _ = pending.reply.send(result);
        }
    }
}
