//! `adbudget-bench limit --tokio-postgres [--pipeline] [--token-check]`: the limit's transactions
//! through `tokio-postgres`, whose client pipelines the requests whose futures are polled
//! together (issue #19 asks for pipelining measured, not assumed; diesel's `PgConnection`, on
//! synchronous libpq, sends one request and waits for its answer).
//!
//! Per transaction: with `--token-check` first the query the API's writer runs before each group
//! (`tokens::authenticate_many`'s), then `BEGIN`, the limit's statement and `COMMIT`, every one a
//! prepared statement. Without `--pipeline` each is a round trip of its own, as the API sends
//! them; with it all of them go in one round trip — more than the API could pipeline (its
//! statement's events depend on the token check, its `COMMIT` on what the rule decides), so the
//! difference is an upper bound of what pipelining would save it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::NaiveDateTime;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::{PgParams, Rows};
use crate::cpu::{CpuUsage, ServerCpu};

#[derive(Clone, Copy)]
pub struct Trips {
    pub pipeline: bool,
    pub token_check: bool,
}

/// What the API's writer reads per group: the live tokens among the requests', with their brands.
const TOKEN_CHECK: &str = "SELECT t.id, t.prefix, t.token_hash, t.scope, t.name, t.brand_bound, \
     t.last_used_at, b.brand_id FROM api_tokens t LEFT JOIN api_token_brands b ON b.token_id = t.id \
     WHERE t.prefix = ANY($1) AND t.revoked_at IS NULL \
     AND (t.expires_at IS NULL OR t.expires_at > $2)";

struct Prepared {
    tokens: Statement,
    begin: Statement,
    write: Statement,
    commit: Statement,
}

impl Prepared {
    async fn new(client: &Client) -> Result<Self, tokio_postgres::Error> {
        use Type as T;
        let (ids, text, ts) = (T::INT8_ARRAY, T::TEXT_ARRAY, T::TIMESTAMP_ARRAY);
        let types = [
            ids.clone(),
            ids.clone(),
            ids.clone(),
            text.clone(),
            T::TIMESTAMP,
            ids.clone(),
            text.clone(),
            ids.clone(),
            ids.clone(),
            text.clone(),
            ids.clone(),
            ids.clone(),
            ts.clone(),
            ids.clone(),
            ids.clone(),
            ts,
            ids,
        ];
        Ok(Prepared {
            tokens: client
                .prepare_typed(TOKEN_CHECK, &[text, T::TIMESTAMP])
                .await?,
            begin: client.prepare("BEGIN").await?,
            write: client
                .prepare_typed(&super::pg_sql(true, true), &types)
                .await?,
            commit: client.prepare("COMMIT").await?,
        })
    }
}

/// One transaction of `rows`, as [`Trips`] says.
async fn transaction(
    client: &Client,
    s: &Prepared,
    (rows, at): &(Rows, NaiveDateTime),
    trips: Trips,
    prefixes: &[String],
) -> Result<(), tokio_postgres::Error> {
    let p = PgParams::new(rows, *at);
    let [bp, cp] = &p.periods;
    let [bb, cb] = &p.buckets;
    let params: [&(dyn ToSql + Sync); 17] = [
        &p.log_campaigns,
        &p.log_brands,
        &p.log_amounts,
        &p.log_events,
        &p.at,
        &bp.0,
        &bp.1,
        &bp.2,
        &cp.0,
        &cp.1,
        &cp.2,
        &bb.0,
        &bb.1,
        &bb.2,
        &cb.0,
        &cb.1,
        &cb.2,
    ];
    let now = p.at;
    let token_params: [&(dyn ToSql + Sync); 2] = [&prefixes, &now];
    let check = async {
        if trips.token_check {
            client.query(&s.tokens, &token_params).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    if trips.pipeline {
        // Polled together, the requests leave in this order before any answer is awaited.
        tokio::try_join!(
            check,
            client.execute(&s.begin, &[]),
            client.execute(&s.write, &params),
            client.execute(&s.commit, &[]),
        )?;
    } else {
        check.await?;
        client.execute(&s.begin, &[]).await?;
        client.execute(&s.write, &params).await?;
        client.execute(&s.commit, &[]).await?;
    }
    Ok(())
}

/// Runs `connections` writers of `batch` events a transaction until `deadline`; counts the
/// events committed and the transactions that failed, and stops `cpu` before the connections
/// close (a backend that has exited cannot be read any more).
#[allow(clippy::too_many_arguments)]
pub fn run(
    url: &str,
    connections: usize,
    batch: usize,
    owners: Arc<Vec<(i64, i64)>>,
    run: &str,
    deadline: Instant,
    trips: Trips,
    events: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    cpu: ServerCpu,
) -> anyhow::Result<CpuUsage> {
    // A runtime of its own, on a thread of its own: `measure` may be called inside another one.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let mut writers = Vec::new();
                    for t in 0..connections {
                        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
                        tokio::spawn(connection);
                        let (owners, events, failures) =
                            (owners.clone(), events.clone(), failures.clone());
                        let run = format!("{run}-{t}");
                        writers.push(tokio::spawn(async move {
                            let s = Prepared::new(&client).await?;
                            // A group's requests carry a few tokens; none of these
                            // exists (the lookup costs the same: an index probe).
                            let prefixes: Vec<String> =
                                (0..3).map(|i| format!("adb_x{t}{i}")).collect();
                            let mut n = 0;
                            while Instant::now() < deadline {
                                let rows = super::rows(&owners, batch, &run, &mut n);
                                match transaction(&client, &s, &rows, trips, &prefixes).await {
                                    Ok(()) => {
                                        events.fetch_add(batch as u64, Ordering::Relaxed);
                                    }
                                    Err(e) => {
                                        if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                                            eprintln!("a transaction failed: {e}");
                                        }
                                        // A failed pipeline may leave the transaction open: end it.
                                        let _ = client.batch_execute("ROLLBACK").await;
                                    }
                                }
                            }
                            Ok::<_, anyhow::Error>(client)
                        }));
                    }
                    let mut clients = Vec::new();
                    for w in writers {
                        clients.push(w.await??);
                    }
                    Ok(cpu.stop())
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the writers' thread panicked"))?
    })
}
