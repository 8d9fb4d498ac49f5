//! Nudges of the webhook dispatcher (SPEC §9): right after a commit that wrote events, a
//! `dispatch_events` job is queued, so that deliveries start within moments instead of at the
//! next 5-second sweep. The outbox is read by the dispatcher, not by this: a nudge that is lost
//! with the process delays a delivery until the sweep, never loses it.
//!
//! This process's commits are noticed through `adbudget_db::repo::events::written()` (a counter
//! the outbox's inserts move): whenever it moved, a nudge is queued, and a second one half a
//! second later, for an event whose transaction committed just after the first nudge's dispatch
//! looked.

use std::sync::Arc;
use std::time::Duration;

use adbudget_core::jobs::{JobKind, Trigger};
use adbudget_queue::Queues;
use tokio::sync::Notify;

/// Queues one `dispatch_events` run (without an idempotency key: every nudge counts).
async fn push(queues: &Queues) {
    let trigger = Trigger::Tick(chrono::Utc::now());
    if let Err(e) = queues.push(JobKind::DispatchEvents, &trigger, None).await {
        tracing::debug!(error = %e, "dispatcher nudge not queued; the sweep will dispatch");
    }
}

/// How often the outbox counter is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(25);
/// The second nudge after the first.
const AGAIN_AFTER: Duration = Duration::from_millis(500);

/// Queues nudges until aborted: when this process wrote events, or when `asked` is notified.
pub async fn run(queues: Queues, asked: Arc<Notify>) {
    let mut seen = adbudget_db::repo::events::written();
    loop {
        tokio::select! {
            () = asked.notified() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {
                let now = adbudget_db::repo::events::written();
                if now == seen {
                    continue;
                }
                seen = now;
            }
        }
        push(&queues).await;
        let again = queues.clone();
        tokio::spawn(async move {
            tokio::time::sleep(AGAIN_AFTER).await;
            push(&again).await;
        });
    }
}
