//! Group commit for `POST /api/v1/spend`.
//!
//! A commit costs a disk flush (milliseconds on most disks), so a transaction per request caps
//! ingestion at a few hundred events per second per connection. Requests instead queue to writer threads; a
//! writer takes everything waiting (up to `MAX_BATCH`), records it in one transaction
//! (`repo::spend::record_group`: per-event idempotency, errors and synchronous pauses), and
//! answers every request after the commit. Under light load a batch is one event and nothing
//! waits; under heavy load batches grow and the flush is shared.
//!
//! The writer also checks the requests' bearer tokens, all of a batch in one query just before
//! recording it: a token lookup per request was as much database work as the batch itself. A
//! revoked token is refused from the first batch after the revocation commits.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError, bounded};

use adbudget_core::forms::{ValidSpend, now};
use adbudget_core::views::Campaign;
use adbudget_db::error::DomainError;
use adbudget_db::repo::spend::{self, Outcome};
use adbudget_db::repo::tokens;
use adbudget_db::{self as db, DbConnection, DbPool, PooledConn};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// Events per transaction at most.
pub const MAX_BATCH: usize = 1000;
/// Requests waiting for a writer at most; beyond it the API answers 503. About what the writers
/// commit in a second (BENCHMARKS.md): a longer queue would only make clients wait longer for an
/// answer they get sooner as a 503 to retry. Only callers with a live token get this far.
pub const QUEUE: usize = 16_384;

type Answer = Result<(Outcome, Campaign), ApiError>;

struct Pending {
    event: ValidSpend,
    /// The bearer token presented, checked by the writer.
    token: String,
    reply: oneshot::Sender<Answer>,
}

/// The queue to the writers (several receivers, one channel). Dropping every clone stops them.
#[derive(Clone)]
pub struct SpendWriter {
    tx: Sender<Pending>,
}

impl SpendWriter {
    /// Starts `writers` threads (one is right for SQLite, whose writers serialize anyway).
    pub fn start(pool: DbPool, writers: usize) -> Self {
        let (tx, rx) = bounded(QUEUE);
        for n in 0..writers.max(1) {
            let (pool, rx) = (pool.clone(), rx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("spend-writer-{n}"))
                .spawn(move || write_forever(n, &pool, &rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a spend writer");
            }
        }
        SpendWriter { tx }
    }

    /// Records one event through the next group commit, if `token` is live (else 401).
    pub async fn record(&self, event: ValidSpend, token: String) -> Answer {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Pending {
            event,
            token,
            reply,
        }) {
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
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a spend writer dropped a request")))?
    }
}

/// How long a writer keeps its connection without requests. Under load batches follow each other
/// within a millisecond, and a checkout per batch would cost a round trip (the pool tests the
/// connection: as much as a statement of the batch) and, on SQLite, a connection whose page cache
/// is cold; an idle writer gives its connection back to the pool.
const KEEP_IDLE: Duration = Duration::from_millis(100);

/// The next batch: everything waiting, up to [`MAX_BATCH`]; `None` once the API is gone.
fn next_batch(rx: &Receiver<Pending>, held: &mut Option<PooledConn>) -> Option<Vec<Pending>> {
    let first = match rx.try_recv() {
        Ok(p) => p,
        Err(TryRecvError::Disconnected) => return None,
        Err(TryRecvError::Empty) => match rx.recv_timeout(KEEP_IDLE) {
            Ok(p) => p,
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => {
                *held = None;
                rx.recv().ok()?
            }
        },
    };
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    Some(batch)
}

fn write_forever(writer: usize, pool: &DbPool, rx: &Receiver<Pending>) {
    let mut held: Option<PooledConn> = None;
    // Campaigns' brands and brands' timezones as this writer last saw them (checked each commit).
    let mut lookups = spend::Lookups::default();
    // Writers take batches side by side: one takes what waits while another commits.
    while let Some(batch) = next_batch(rx, &mut held) {
        // A span per batch (not per event): what the writer logs is about the batch it commits.
        let span = tracing::info_span!(
            "spend.group_commit",
            writer.id = writer,
            batch.size = batch.len()
        );
        let _entered = span.enter();
        let (mut events, mut tokens, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        for p in batch {
            events.push(p.event);
            tokens.push(p.token);
            replies.push(p.reply);
        }
        let conn = match held.take() {
            Some(conn) => Ok(conn),
            None => {
                // Another pooled connection: its plans may be older than the writer's last
                // replan (`Lookups::replan_if_due`).
                lookups.replan_now();
                db::get(pool)
            }
        };
        let answers = match conn {
            Ok(mut conn) => {
                let answers = record_authenticated(&mut conn, &mut lookups, events, &tokens);
                let failed = answers
                    .iter()
                    .any(|a| matches!(a, Err(ApiError::Unavailable(_) | ApiError::Internal(_))));
                if !failed {
                    held = Some(conn);
                }
                answers
            }
            Err(e) => unavailable(&e, replies.len()),
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The client may have gone away; its event is recorded all the same.
            let _ = reply.send(answer);
        }
    }
}

/// Records the events whose token is live and may post spend (one query for the batch's tokens
/// and their brand bindings, then one group commit); the others are answered 401 or 403. The
/// binding is applied where the group commit looks up the events' campaigns: an event for another
/// brand's campaign is a 403 of its own.
fn record_authenticated(
    conn: &mut DbConnection,
    lookups: &mut spend::Lookups,
    events: Vec<ValidSpend>,
    tokens: &[String],
) -> Vec<Answer> {
    let mut distinct: Vec<&str> = tokens.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let at = now();
    let live = match tokens::authenticate_many(conn, &distinct, at) {
        Ok(live) => live,
        Err(e) => return unavailable(&e, events.len()),
    };
    // Tokens whose last use is not recorded yet: one statement, a few times an hour per token.
    let unrecorded: Vec<i64> = live
        .values()
        .filter(|l| l.use_unrecorded)
        .map(|l| l.id)
        .collect();
    if let Err(e) = tokens::touch(conn, &unrecorded, at) {
        tracing::warn!(error = %e, "could not record the tokens' last use");
    }
    let mut answers: Vec<Answer> = tokens.iter().map(|_| Err(ApiError::Unauthorized)).collect();
    // Each admitted event records the token that posted it, and carries its brand binding.
    let mut admitted = Vec::with_capacity(events.len());
    let mut recordable = Vec::with_capacity(events.len());
    for (i, mut e) in events.into_iter().enumerate() {
        let Some(token) = live.get(&tokens[i]) else {
            continue;
        };
        if token.scope == tokens::Scope::Read {
            answers[i] = Err(ApiError::forbidden(
                "this token may not post spend (its scope is read)",
            ));
            continue;
        }
        e.posted_by = Some(token.id);
        e.allowed = token.brands.clone();
        admitted.push(i);
        recordable.push(e);
    }
    // Events per committed transaction, those with a live token.
    metrics::histogram!("adbudget_spend_batch_size").record(recordable.len() as f64);
    if recordable.is_empty() {
        return answers;
    }
    for (i, result) in admitted
        .into_iter()
        .zip(spend::record_group(conn, lookups, &recordable, at))
    {
        answers[i] = result.map_err(ApiError::from);
    }
    answers
}

/// `n` answers of 503 for a database that could not be reached.
fn unavailable(e: &DomainError, n: usize) -> Vec<Answer> {
    let reason = e.to_string();
    (0..n)
        .map(|_| Err(ApiError::Unavailable(anyhow::anyhow!("{reason}"))))
        .collect()
}
