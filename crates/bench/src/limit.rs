//! `adbudget-bench limit`: the database's own limit for the rows the spend path writes. The same
//! tables, indexes and data as `ingest` (the same seed and history), the same concurrency and
//! group sizes, but nothing else: per transaction of `--batch` events, one INSERT of the spend
//! logs (with their event ids' claims on PostgreSQL, migration 000012) and the upserts of the
//! brands' and campaigns' day and month totals and 5-minute buckets (a lifetime is no row of its
//! own since migration 000015), as raw SQL from
//! Rust — on PostgreSQL as prepared statements of data-modifying CTEs over `unnest` arrays (the
//! logs, then the totals: `--shape`), on SQLite as multi-row statements in one `BEGIN IMMEDIATE`
//! transaction (measured faster than a row at a time through prepared ones:
//! `--sqlite-prepared`). No token check, campaign lookup, idempotency, rule, outbox or HTTP:
//! what `ingest` achieves is measured against this (issue #19).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use adbudget_db::{self as db, DbConnection};
use anyhow::Context;
use chrono::{NaiveDateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use rand::Rng;

use crate::cpu::ServerCpu;

mod pipeline;

#[derive(clap::Args)]
pub struct LimitArgs {
    #[arg(long, value_enum, default_value = "postgres")]
    pub db: crate::Db,
    /// An existing, migrated database (default: a throwaway one).
    #[arg(long)]
    pub database_url: Option<String>,
    #[arg(long, default_value_t = 1_000)]
    pub campaigns: usize,
    /// `--database-url` was seeded by an earlier run: measure on it as it is.
    #[arg(long, requires = "database_url")]
    pub no_seed: bool,
    /// Concurrent writers (connections).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Events per transaction: the group sizes the spend path's group commit forms (its metric
    /// `adbudget_spend_group_size`), or a batch request's size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// SQLite: a row at a time through prepared statements instead of multi-row literal ones.
    #[arg(long)]
    pub sqlite_prepared: bool,
    /// PostgreSQL: the transaction's writes in one statement or two (logs, then totals).
    #[arg(long, value_enum, default_value = "two")]
    pub shape: Shape,
    /// PostgreSQL through tokio-postgres instead of diesel: prepared `BEGIN`, statement and
    /// `COMMIT`, a round trip each (see `--pipeline`).
    #[arg(long, conflicts_with = "shape")]
    pub tokio_postgres: bool,
    /// With `--tokio-postgres` (always one statement, `--shape` does not apply): a transaction's
    /// requests in one pipelined round trip.
    #[arg(long, requires = "tokio_postgres")]
    pub pipeline: bool,
    /// With `--tokio-postgres`: also the API writer's token check before each transaction.
    #[arg(long, requires = "tokio_postgres")]
    pub token_check: bool,
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
        *r.brand_buckets.entry((brand, bucket)).or_default() += amount;
        *r.campaign_buckets.entry((campaign, bucket)).or_default() += amount;
    }
    (r, at)
}

/// What a statement of the limit writes on PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Shape {
    /// Everything in one statement (one round trip; the brand rows stay locked from the
    /// statement's start to the commit).
    One,
    /// The spend logs and event ids first, then the totals' and buckets' upserts: the logs are
    /// written before any brand row is locked (the API's stepwise path does this too).
    Two,
}

/// The limit's SQL on PostgreSQL over `unnest` of the [`PgParams`] as data-modifying CTEs: the
/// spend logs with their event ids' claims if `logs`, the totals' and buckets' upserts if
/// `totals`. Placeholders are numbered as the parameters in [`PgParams`].
fn pg_sql(logs: bool, totals: bool) -> String {
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
    let mut ctes = Vec::new();
    if logs {
        ctes.push(
            "t AS MATERIALIZED (SELECT nextval('spend_logs_id_seq') AS id, t.* \
                                FROM unnest($1, $2, $3, $4) AS t (c, b, a, e)), \
             ids AS (INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at) \
                     SELECT b, e, id, $5 FROM t), \
             logs AS (INSERT INTO spend_logs \
                          (id, campaign_id, brand_id, amount, event_id, occurred_at, received_at) \
                      SELECT id, c, b, a, e, $5, $5 FROM t)"
                .to_owned(),
        );
    }
    if totals {
        ctes.extend([
            upsert("bp", "brand_spend", "brand_id", "period", 6),
            upsert("cp", "campaign_spend", "campaign_id", "period", 9),
            upsert("bb", "brand_spend_buckets", "brand_id", "bucket", 12),
            upsert("cb", "campaign_spend_buckets", "campaign_id", "bucket", 15),
        ]);
    }
    format!("WITH {} SELECT 1", ctes.join(", "))
}

/// [`pg_sql`]'s parameters, in order: the logs' columns, the time, then (owner, key, sum) of the
/// brands' and campaigns' periods and buckets.
struct PgParams {
    log_campaigns: Vec<i64>,
    log_brands: Vec<i64>,
    log_amounts: Vec<i64>,
    log_events: Vec<String>,
    at: NaiveDateTime,
    periods: [(Vec<i64>, Vec<String>, Vec<i64>); 2],
    buckets: [(Vec<i64>, Vec<NaiveDateTime>, Vec<i64>); 2],
}

impl PgParams {
    fn new(r: &Rows, at: NaiveDateTime) -> Self {
        fn split<K: Clone>(m: &BTreeMap<(i64, K), i64>) -> (Vec<i64>, Vec<K>, Vec<i64>) {
            (
                m.keys().map(|k| k.0).collect(),
                m.keys().map(|k| k.1.clone()).collect(),
                m.values().copied().collect(),
            )
        }
        PgParams {
            log_campaigns: r.logs.iter().map(|l| l.0).collect(),
            log_brands: r.logs.iter().map(|l| l.1).collect(),
            log_amounts: r.logs.iter().map(|l| l.2).collect(),
            log_events: r.logs.iter().map(|l| l.3.clone()).collect(),
            at,
            periods: [split(&r.brand_periods), split(&r.campaign_periods)],
            buckets: [split(&r.brand_buckets), split(&r.campaign_buckets)],
        }
    }
}

/// [`pg_sql`] split at its placeholders (the text around them and each one's parameter number):
/// the whole, the logs, the totals.
static PG_SQL: LazyLock<[(Vec<String>, Vec<usize>); 3]> = LazyLock::new(|| {
    [(true, true), (true, false), (false, true)].map(|(logs, totals)| {
        let sql = pg_sql(logs, totals);
        let (mut parts, mut numbers, mut part) = (Vec::new(), Vec::new(), String::new());
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                part.push(c);
                continue;
            }
            let mut n = 0;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n * 10 + d as usize;
                chars.next();
            }
            numbers.push(n);
            parts.push(std::mem::take(&mut part));
        }
        parts.push(part);
        (parts, numbers)
    })
});

/// The limit's statement with its parameters, as diesel prepares it once per connection (a
/// static query id, as the API's own statement has: `sql_query` would be parsed and planned on
/// every call; the prepared statement measured 12–19 % faster).
/// `PART` 0: [`pg_sql`] whole, 1: its logs, 2: its totals ([`PG_SQL`]).
struct PgLimit<'a, const PART: usize>(&'a PgParams);

/// Diesel keys its cache of prepared statements by this type alone: one per part.
struct PgLimitId<const PART: usize>;

impl<const PART: usize> QueryId for PgLimit<'_, PART> {
    type QueryId = PgLimitId<PART>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const PART: usize> QueryFragment<Pg> for PgLimit<'_, PART> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Text, Timestamp};
        let (parts, numbers) = &PG_SQL[PART];
        let p = self.0;
        for (part, n) in parts.iter().zip(numbers) {
            out.push_sql(part);
            match n {
                1 => out.push_bind_param::<Array<BigInt>, _>(&p.log_campaigns)?,
                2 => out.push_bind_param::<Array<BigInt>, _>(&p.log_brands)?,
                3 => out.push_bind_param::<Array<BigInt>, _>(&p.log_amounts)?,
                4 => out.push_bind_param::<Array<Text>, _>(&p.log_events)?,
                5 => out.push_bind_param::<Timestamp, _>(&p.at)?,
                6..=11 => {
                    let (owners, keys, sums) = &p.periods[(n - 6) / 3];
                    match (n - 6) % 3 {
                        0 => out.push_bind_param::<Array<BigInt>, _>(owners)?,
                        1 => out.push_bind_param::<Array<Text>, _>(keys)?,
                        _ => out.push_bind_param::<Array<BigInt>, _>(sums)?,
                    }
                }
                12..=17 => {
                    let (owners, keys, sums) = &p.buckets[(n - 12) / 3];
                    match (n - 12) % 3 {
                        0 => out.push_bind_param::<Array<BigInt>, _>(owners)?,
                        1 => out.push_bind_param::<Array<Timestamp>, _>(keys)?,
                        _ => out.push_bind_param::<Array<BigInt>, _>(sums)?,
                    }
                }
                _ => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("the limit's statement has no parameter ${n}").into(),
                    ));
                }
            }
        }
        out.push_sql(parts.last().map_or("", String::as_str));
        Ok(())
    }
}

impl<const PART: usize> Query for PgLimit<'_, PART> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<const PART: usize> RunQueryDsl<diesel::PgConnection> for PgLimit<'_, PART> {}

fn write_pg(
    c: &mut diesel::PgConnection,
    r: &Rows,
    at: NaiveDateTime,
    shape: Shape,
) -> QueryResult<()> {
    let params = &PgParams::new(r, at);
    match shape {
        Shape::One => PgLimit::<0>(params).execute(c)?,
        Shape::Two => PgLimit::<1>(params).execute(c)? + PgLimit::<2>(params).execute(c)?,
    };
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

/// How `limit` writes.
pub struct Writes {
    /// Concurrent writers (connections).
    pub connections: usize,
    /// Events per transaction.
    pub batch: usize,
    pub seconds: u64,
    /// PostgreSQL through diesel: in one statement or two.
    pub shape: Shape,
    /// PostgreSQL through tokio-postgres instead (one statement), and how.
    pub trips: Option<pipeline::Trips>,
    /// SQLite: a row at a time through prepared statements.
    pub sqlite_prepared: bool,
}

/// The SQLite limit a row at a time, each statement of fixed text, so that diesel prepares it once
/// per connection (`--sqlite-prepared`; the default sends multi-row literal statements, parsed per
/// transaction as the API's lists of varying length are).
fn write_sqlite_prepared(
    c: &mut diesel::SqliteConnection,
    r: &Rows,
    at: NaiveDateTime,
) -> QueryResult<()> {
    use adbudget_db::schema::{
        brand_spend as bs, brand_spend_buckets as bsb, campaign_spend as cs,
        campaign_spend_buckets as csb, spend_logs as sl,
    };
    use diesel::upsert::excluded;
    for (campaign, brand, amount, event) in &r.logs {
        diesel::insert_into(sl::table)
            .values((
                sl::campaign_id.eq(campaign),
                sl::brand_id.eq(brand),
                sl::amount.eq(amount),
                sl::event_id.eq(event),
                sl::occurred_at.eq(at),
                sl::received_at.eq(at),
            ))
            .execute(c)?;
    }
    // The four upserts differ only in their table and columns.
    macro_rules! upsert_each {
        ($rows:expr, $t:ident, $owner:ident, $key:ident) => {
            for ((owner, key), sum) in $rows {
                diesel::insert_into($t::table)
                    .values(($t::$owner.eq(owner), $t::$key.eq(key), $t::amount.eq(sum)))
                    .on_conflict(($t::$owner, $t::$key))
                    .do_update()
                    .set($t::amount.eq($t::amount + excluded($t::amount)))
                    .execute(c)?;
            }
        };
    }
    upsert_each!(&r.brand_periods, bs, brand_id, period);
    upsert_each!(&r.campaign_periods, cs, campaign_id, period);
    upsert_each!(&r.brand_buckets, bsb, brand_id, bucket);
    upsert_each!(&r.campaign_buckets, csb, campaign_id, bucket);
    Ok(())
}

/// What `limit` measured.
pub struct Measured {
    pub events_per_second: f64,
    pub cpu_us_per_event: f64,
}

pub async fn bench_limit(args: LimitArgs) -> anyhow::Result<()> {
    if args.tokio_postgres && !matches!(args.db, crate::Db::Postgres) {
        anyhow::bail!("--tokio-postgres is for --db postgres");
    }
    if args.sqlite_prepared && !matches!(args.db, crate::Db::Sqlite) {
        anyhow::bail!("--sqlite-prepared is for --db sqlite");
    }
    let (url, _guard) = crate::database(args.db, args.database_url.clone())?;
    if !args.no_seed {
        let pool = db::connect(&url, 4)?;
        crate::seed(&pool, args.campaigns)?;
        let history = crate::seed_history(&pool, 100)?;
        println!("history {history} events");
    }
    let trips = args.tokio_postgres.then_some(pipeline::Trips {
        pipeline: args.pipeline,
        token_check: args.token_check,
    });
    let writes = Writes {
        connections: args.connections,
        batch: args.batch,
        seconds: args.seconds,
        shape: args.shape,
        trips,
        sqlite_prepared: args.sqlite_prepared,
    };
    measure(args.db, &url, &writes)?;
    Ok(())
}

/// Runs the raw writes on `url` (seeded) and prints and returns what they achieved; through
/// tokio-postgres when `trips` says how (PostgreSQL only).
pub fn measure(db_kind: crate::Db, url: &str, w: &Writes) -> anyhow::Result<Measured> {
    let &Writes {
        connections,
        batch,
        seconds,
        shape,
        trips,
        sqlite_prepared,
    } = w;
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
    let cpu = match trips {
        Some(trips) => pipeline::run(
            url,
            connections,
            batch,
            owners,
            &run,
            deadline,
            trips,
            events.clone(),
            failures.clone(),
            cpu,
        )?,
        None => {
            diesel_writers(&pool, w, &owners, &run, deadline, (&events, &failures))?;
            cpu.stop()
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let events = events.load(Ordering::Relaxed);
    let events_per_second = events as f64 / elapsed;
    println!(
        "limit ({}{}): connections {connections}  events/transaction {batch}  duration {elapsed:.1} s",
        crate::db_name(db_kind),
        trips.map_or(
            match db_kind {
                crate::Db::Postgres => format!(", {shape:?} statement(s)").to_lowercase(),
                crate::Db::Sqlite if sqlite_prepared => ", prepared, a row at a time".to_owned(),
                crate::Db::Sqlite => String::new(),
            },
            |t| format!(
                ", tokio-postgres, {}{}",
                if t.pipeline {
                    "pipelined"
                } else {
                    "a round trip per statement"
                },
                if t.token_check {
                    ", with the token check"
                } else {
                    ""
                }
            ),
        ),
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

/// `measure`'s writers through diesel: one thread and connection each.
fn diesel_writers(
    pool: &db::DbPool,
    &Writes {
        connections,
        batch,
        shape,
        sqlite_prepared,
        ..
    }: &Writes,
    owners: &Arc<Vec<(i64, i64)>>,
    run: &str,
    deadline: Instant,
    (events, failures): (&Arc<AtomicU64>, &Arc<AtomicU64>),
) -> anyhow::Result<()> {
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
                        DbConnection::Postgresql(pg) => write_pg(pg, &rows, at, shape),
                        DbConnection::Sqlite(lite) if sqlite_prepared => {
                            write_sqlite_prepared(lite, &rows, at)
                        }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every placeholder of each part is a parameter [`PgLimit::walk_ast`] binds, each part's text
    /// is whole around them, and the two halves split the parameters between them.
    #[test]
    fn the_limits_statements_bind_every_placeholder_once_per_use() {
        let [whole, logs, totals] = &*PG_SQL;
        for (parts, numbers) in [whole, logs, totals] {
            assert_eq!(parts.len(), numbers.len() + 1);
            assert!(numbers.iter().all(|n| (1..=17).contains(n)), "{numbers:?}");
            assert!(parts.iter().all(|p| !p.contains('$')));
        }
        let distinct = |numbers: &[usize]| {
            let mut n = numbers.to_vec();
            n.sort_unstable();
            n.dedup();
            n
        };
        assert_eq!(distinct(&whole.1), (1..=17).collect::<Vec<_>>());
        assert_eq!(distinct(&logs.1), (1..=5).collect::<Vec<_>>());
        assert_eq!(distinct(&totals.1), (6..=17).collect::<Vec<_>>());
        // The time is bound at each of its three uses.
        assert_eq!(whole.1.iter().filter(|&&n| n == 5).count(), 3);
        assert!(logs.0.concat().contains("INSERT INTO spend_logs"));
        assert!(!totals.0.concat().contains("spend_logs"));
    }
}
