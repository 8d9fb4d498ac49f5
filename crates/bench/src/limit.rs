//! `adbudget-bench limit`: the database's own limit for the rows the spend path writes. The same
//! tables, indexes and data as `ingest` (the same seed and history), the same concurrency and
//! group sizes, but nothing else: per transaction of `--batch` events, one INSERT of the spend
//! logs (with their event ids' claims on PostgreSQL, migration 000012) and the upserts of the
//! brands' and campaigns' day, month and lifetime totals and 5-minute buckets, as raw SQL from
//! Rust — on PostgreSQL in one round trip (data-modifying CTEs over
//! `unnest` arrays), on SQLite as multi-row statements in one `BEGIN IMMEDIATE` transaction. No
//! token check, campaign lookup, idempotency, rule, outbox or HTTP: what `ingest` achieves is
//! measured against this (issue #19).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adbudget_db::{self as db, DbConnection};
use anyhow::Context;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::Rng;

use crate::cpu::ServerCpu;

#[derive(clap::Args)]
pub struct LimitArgs {
    #[arg(long, value_enum, default_value = "postgres")]
    pub db: crate::Db,
    /// An existing, migrated database (default: a throwaway one).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long, default_value_t = 1_000)]
    pub campaigns: usize,
    /// Concurrent writers (connections).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Events per transaction: the group sizes the spend path's group commit forms (its metric
    /// `adbudget_spend_group_size`), or a batch request's size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    brand_id: i64,
}

/// One transaction's rows: logs, and the per-key sums the upserts add (in key order, the order
/// concurrent upserts lock rows in).
#[derive(Default)]
struct Rows {
    logs: Vec<(i64, i64, i64, String)>,
    brand_periods: BTreeMap<(i64, String), i64>,
    campaign_periods: BTreeMap<(i64, String), i64>,
    brand_buckets: BTreeMap<(i64, NaiveDateTime), i64>,
    campaign_buckets: BTreeMap<(i64, NaiveDateTime), i64>,
}

fn rows(owners: &[(i64, i64)], batch: usize, run: &str, n: &mut u64) -> (Rows, NaiveDateTime) {
    let now = Utc::now();
    let at = now.naive_utc();
    let bucket = adbudget_core::period::bucket_start(now).naive_utc();
    let (day, month) = (
        now.format("%Y-%m-%d").to_string(),
        now.format("%Y-%m").to_string(),
    );
    let amount = 10_000; // 0.01
    let mut r = Rows::default();
    for _ in 0..batch {
        *n += 1;
        let (campaign, brand) = owners[rand::rng().random_range(0..owners.len())];
        r.logs.push((campaign, brand, amount, format!("{run}-{n}")));
        for p in [&day, &month] {
            *r.brand_periods.entry((brand, p.clone())).or_default() += amount;
            *r.campaign_periods.entry((campaign, p.clone())).or_default() += amount;
        }
        *r.campaign_periods
            .entry((campaign, adbudget_core::period::LIFETIME.to_owned()))
            .or_default() += amount;
        *r.brand_buckets.entry((brand, bucket)).or_default() += amount;
        *r.campaign_buckets.entry((campaign, bucket)).or_default() += amount;
    }
    (r, at)
}

fn write_pg(c: &mut diesel::PgConnection, r: &Rows, at: NaiveDateTime) -> QueryResult<()> {
    use diesel::sql_types::{Array, BigInt, Text, Timestamp};
    let upsert = |name: &str, table: &str, column: &str, key: &str, n: usize| {
        format!(
            "{name} AS (INSERT INTO {table} ({column}, {key}, amount) \
             SELECT * FROM unnest(${}, ${}, ${}) \
             ON CONFLICT ({column}, {key}) DO UPDATE SET amount = {table}.amount + excluded.amount)",
            n,
            n + 1,
            n + 2
        )
    };
    let sql = format!(
        "WITH t AS MATERIALIZED (SELECT nextval('spend_logs_id_seq') AS id, t.* \
                                 FROM unnest($1, $2, $3, $4) AS t (c, b, a, e)), \
         ids AS (INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at) \
                 SELECT b, e, id, $5 FROM t), \
         logs AS (INSERT INTO spend_logs (id, campaign_id, brand_id, amount, event_id, occurred_at, received_at) \
         SELECT id, c, b, a, e, $5, $5 FROM t), \
         {}, {}, {}, {} SELECT 1",
        upsert("bp", "brand_spend", "brand_id", "period", 6),
        upsert("cp", "campaign_spend", "campaign_id", "period", 9),
        upsert("bb", "brand_spend_buckets", "brand_id", "bucket", 12),
        upsert("cb", "campaign_spend_buckets", "campaign_id", "bucket", 15),
    );
    let ids = |m: &BTreeMap<(i64, String), i64>| m.keys().map(|k| k.0).collect::<Vec<_>>();
    let keys = |m: &BTreeMap<(i64, String), i64>| m.keys().map(|k| k.1.clone()).collect::<Vec<_>>();
    let sums = |m: &BTreeMap<(i64, String), i64>| m.values().copied().collect::<Vec<_>>();
    let bids = |m: &BTreeMap<(i64, NaiveDateTime), i64>| m.keys().map(|k| k.0).collect::<Vec<_>>();
    let bkeys = |m: &BTreeMap<(i64, NaiveDateTime), i64>| m.keys().map(|k| k.1).collect::<Vec<_>>();
    let bsums = |m: &BTreeMap<(i64, NaiveDateTime), i64>| m.values().copied().collect::<Vec<_>>();
    diesel::sql_query(sql)
        .bind::<Array<BigInt>, _>(r.logs.iter().map(|l| l.0).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(r.logs.iter().map(|l| l.1).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(r.logs.iter().map(|l| l.2).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(r.logs.iter().map(|l| l.3.clone()).collect::<Vec<_>>())
        .bind::<Timestamp, _>(at)
        .bind::<Array<BigInt>, _>(ids(&r.brand_periods))
        .bind::<Array<Text>, _>(keys(&r.brand_periods))
        .bind::<Array<BigInt>, _>(sums(&r.brand_periods))
        .bind::<Array<BigInt>, _>(ids(&r.campaign_periods))
        .bind::<Array<Text>, _>(keys(&r.campaign_periods))
        .bind::<Array<BigInt>, _>(sums(&r.campaign_periods))
        .bind::<Array<BigInt>, _>(bids(&r.brand_buckets))
        .bind::<Array<Timestamp>, _>(bkeys(&r.brand_buckets))
        .bind::<Array<BigInt>, _>(bsums(&r.brand_buckets))
        .bind::<Array<BigInt>, _>(bids(&r.campaign_buckets))
        .bind::<Array<Timestamp>, _>(bkeys(&r.campaign_buckets))
        .bind::<Array<BigInt>, _>(bsums(&r.campaign_buckets))
        .execute(c)?;
    Ok(())
}

fn write_sqlite(c: &mut diesel::SqliteConnection, r: &Rows, at: NaiveDateTime) -> QueryResult<()> {
    // Literal values: every one is generated here (numbers, dates and `{run}-{n}` ids).
    let ts = |t: &NaiveDateTime| format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"));
    let logs: Vec<String> = r
        .logs
        .iter()
        .map(|(c, b, a, e)| format!("({c}, {b}, {a}, '{e}', {0}, {0})", ts(&at)))
        .collect();
    diesel::sql_query(format!(
        "INSERT INTO spend_logs (campaign_id, brand_id, amount, event_id, occurred_at, received_at) VALUES {}",
        logs.join(", ")
    ))
    .execute(c)?;
    let upsert = |table: &str, column: &str, key: &str, values: Vec<String>| {
        format!(
            "INSERT INTO {table} ({column}, {key}, amount) VALUES {} \
             ON CONFLICT ({column}, {key}) DO UPDATE SET amount = {table}.amount + excluded.amount",
            values.join(", ")
        )
    };
    let periods = |m: &BTreeMap<(i64, String), i64>| {
        m.iter()
            .map(|((id, p), a)| format!("({id}, '{p}', {a})"))
            .collect::<Vec<_>>()
    };
    let buckets = |m: &BTreeMap<(i64, NaiveDateTime), i64>| {
        m.iter()
            .map(|((id, b), a)| format!("({id}, {}, {a})", ts(b)))
            .collect::<Vec<_>>()
    };
    for sql in [
        upsert(
            "brand_spend",
            "brand_id",
            "period",
            periods(&r.brand_periods),
        ),
        upsert(
            "campaign_spend",
            "campaign_id",
            "period",
            periods(&r.campaign_periods),
        ),
        upsert(
            "brand_spend_buckets",
            "brand_id",
            "bucket",
            buckets(&r.brand_buckets),
        ),
        upsert(
            "campaign_spend_buckets",
            "campaign_id",
            "bucket",
            buckets(&r.campaign_buckets),
        ),
    ] {
        diesel::sql_query(sql).execute(c)?;
    }
    Ok(())
}

/// What `limit` measured.
pub struct Measured {
    pub events_per_second: f64,
    pub cpu_us_per_event: f64,
}

pub async fn bench_limit(args: LimitArgs) -> anyhow::Result<()> {
    let (url, _guard) = crate::database(args.db, args.database_url.clone())?;
    let pool = db::connect(&url, 4)?;
    crate::seed(&pool, args.campaigns)?;
    let history = crate::seed_history(&pool, 100)?;
    println!("history {history} events");
    measure(args.db, &url, args.connections, args.batch, args.seconds)?;
    Ok(())
}

/// Runs the raw writes on `url` (seeded) and prints and returns what they achieved.
pub fn measure(
    db_kind: crate::Db,
    url: &str,
    connections: usize,
    batch: usize,
    seconds: u64,
) -> anyhow::Result<Measured> {
    let pool = db::connect(url, connections as u32 + 1)?;
    let owners: Vec<(i64, i64)> = diesel::sql_query("SELECT id, brand_id FROM campaigns")
        .load::<Owner>(&mut *db::get(&pool)?)?
        .into_iter()
        .map(|o| (o.id, o.brand_id))
        .collect();
    let owners = Arc::new(owners);
    let run = format!("limit-{:x}", rand::rng().random::<u64>());
    let events = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu = ServerCpu::start(db_kind, None);
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|t| {
            let (pool, owners, events, failures) = (
                pool.clone(),
                owners.clone(),
                events.clone(),
                failures.clone(),
            );
            let run = format!("{run}-{t}");
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = db::get(&pool)?;
                let mut n = 0;
                while Instant::now() < deadline {
                    let (rows, at) = rows(&owners, batch, &run, &mut n);
                    let done = db::write_transaction(&mut conn, |c| match c {
                        DbConnection::Postgresql(pg) => write_pg(pg, &rows, at),
                        DbConnection::Sqlite(lite) => write_sqlite(lite, &rows, at),
                    });
                    match done {
                        Ok(()) => {
                            events.fetch_add(batch as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("a transaction failed: {e}");
                            }
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a writer panicked"))?
            .context("a writer")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = events.load(Ordering::Relaxed);
    let cpu = cpu.stop();
    let events_per_second = events as f64 / elapsed;
    println!(
        "limit ({}): connections {connections}  events/transaction {batch}  duration {elapsed:.1} s",
        crate::db_name(db_kind),
    );
    println!(
        "limit throughput {events_per_second:.0} events/s  failed transactions {}",
        failures.load(Ordering::Relaxed)
    );
    let cpu_us_per_event = cpu.report(events);
    Ok(Measured {
        events_per_second,
        cpu_us_per_event,
    })
}
