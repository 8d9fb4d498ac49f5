//! `adbudget-bench pacing`: p50/p99 of `GET /brands/{id}/pacing`, `GET /campaigns/{id}/pacing`
//! and `GET /brands/{id}/spend/series` (today, 5-minute buckets) over a brand whose history holds
//! `--events` spend events (spread over the last 30 days, with their period totals and buckets as
//! the spend path would have written them). Run it with 10 thousand and with 10 million: the
//! figures must stay close (SPEC §10: the cost does not grow with the history).

use std::time::{Duration, Instant};

use adbudget_db::repo::tokens;
use adbudget_db::{self as db};
use anyhow::bail;
use diesel::connection::SimpleConnection;
use hdrhistogram::Histogram;

use crate::{Db, database, start_api};

#[derive(clap::Args)]
pub struct PacingArgs {
    /// A throwaway database of this backend (ignored with --database-url).
    #[arg(long, value_enum, default_value = "postgres")]
    db: Db,
    #[arg(long)]
    database_url: Option<String>,
    /// Spend events in the brand's history.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Campaigns of the brand (the events are spread over them).
    #[arg(long, default_value_t = 100)]
    campaigns: usize,
    /// Requests per route.
    #[arg(long, default_value_t = 2_000)]
    requests: u32,
}

/// The history: `events` spend logs on `campaigns` campaigns of one UTC brand, one every
/// 30 days ÷ `events` back from now, then the day and month totals and 5-minute buckets summed
/// from them (as `verify` would compute them), then fresh planner statistics and (PostgreSQL) a
/// checkpoint, so that the timed requests do not share the disk with the load's dirty pages.
fn seed(conn: &mut db::DbConnection, events: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let step_micros = 30 * 24 * 3600 * 1_000_000 / events.max(1);
    let sql = match conn {
        db::DbConnection::Postgresql(_) => format!(
            "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, brand_id)
               SELECT c.id, 10000, t.at, t.at, c.brand_id
               FROM generate_series(1, {events}) AS g
               CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE 'UTC')
                                   - make_interval(secs => g::bigint * {step_micros} / 1e6) AS at) AS t
               JOIN (SELECT id, brand_id, row_number() OVER (ORDER BY id) - 1 AS n,
                            count(*) OVER () AS k FROM campaigns) AS c ON c.n = g % c.k;
             INSERT INTO campaign_spend (campaign_id, period, amount)
               SELECT campaign_id, p, SUM(amount) FROM spend_logs,
                 LATERAL (VALUES (to_char(occurred_at, 'YYYY-MM-DD')), (to_char(occurred_at, 'YYYY-MM'))) AS k (p)
               GROUP BY campaign_id, p;
             INSERT INTO brand_spend (brand_id, period, amount)
               SELECT brand_id, p, SUM(amount) FROM spend_logs,
                 LATERAL (VALUES (to_char(occurred_at, 'YYYY-MM-DD')), (to_char(occurred_at, 'YYYY-MM'))) AS k (p)
               GROUP BY brand_id, p;
             INSERT INTO campaign_spend_buckets (campaign_id, bucket, amount)
               SELECT campaign_id, date_bin('5 minutes', occurred_at, TIMESTAMP '2000-01-01'), SUM(amount)
               FROM spend_logs GROUP BY 1, 2;
             INSERT INTO brand_spend_buckets (brand_id, bucket, amount)
               SELECT brand_id, date_bin('5 minutes', occurred_at, TIMESTAMP '2000-01-01'), SUM(amount)
               FROM spend_logs GROUP BY 1, 2;
             VACUUM ANALYZE;
             CHECKPOINT;"
        ),
        db::DbConnection::Sqlite(_) => format!(
            // (`at` twice: the received time is the occurred time.)
            "WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {events}),
                  c AS (SELECT id, brand_id, row_number() OVER (ORDER BY id) - 1 AS n,
                               count(*) OVER () AS k FROM campaigns)
             INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, brand_id)
               SELECT c.id, 10000, {at}, {at}, c.brand_id FROM g JOIN c ON c.n = g.n % c.k;
             INSERT INTO campaign_spend (campaign_id, period, amount)
               SELECT campaign_id, strftime('%Y-%m-%d', occurred_at), SUM(amount) FROM spend_logs GROUP BY 1, 2;
             INSERT INTO campaign_spend (campaign_id, period, amount)
               SELECT campaign_id, strftime('%Y-%m', occurred_at), SUM(amount) FROM spend_logs GROUP BY 1, 2;
             INSERT INTO brand_spend (brand_id, period, amount)
               SELECT brand_id, strftime('%Y-%m-%d', occurred_at), SUM(amount) FROM spend_logs GROUP BY 1, 2;
             INSERT INTO brand_spend (brand_id, period, amount)
               SELECT brand_id, strftime('%Y-%m', occurred_at), SUM(amount) FROM spend_logs GROUP BY 1, 2;
             INSERT INTO campaign_spend_buckets (campaign_id, bucket, amount)
               SELECT campaign_id, datetime(CAST(strftime('%s', occurred_at) AS INTEGER) / 300 * 300, 'unixepoch'), SUM(amount)
               FROM spend_logs GROUP BY 1, 2;
             INSERT INTO brand_spend_buckets (brand_id, bucket, amount)
               SELECT brand_id, datetime(CAST(strftime('%s', occurred_at) AS INTEGER) / 300 * 300, 'unixepoch'), SUM(amount)
               FROM spend_logs GROUP BY 1, 2;
             ANALYZE;",
            at = format!(
                "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (g.n * {step_micros} / 1e6) || ' seconds')"
            )
        ),
    };
    match conn {
        db::DbConnection::Postgresql(c) => {
            // One statement per call: VACUUM cannot run in the block a multi-statement string is.
            for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
                c.batch_execute(statement)?;
            }
        }
        db::DbConnection::Sqlite(c) => c.batch_execute(&sql)?,
    }
    eprintln!("history of {events} events in {:?}", started.elapsed());
    Ok(())
}

pub async fn run(args: PacingArgs) -> anyhow::Result<()> {
    let (url, _guard) = database(args.db, args.database_url)?;
    let pool = db::connect(&url, 4)?;
    let (brand, campaign) = {
        let mut conn = db::get(&pool)?;
        let ids = adbudget_testing::seed(&mut conn, 1, args.campaigns, |_| {})?;
        seed(&mut conn, args.events)?;
        let brand: i64 = {
            use adbudget_db::schema::campaigns;
            use diesel::prelude::*;
            campaigns::table
                .select(campaigns::brand_id)
                .find(ids[0])
                .first(&mut *conn)?
        };
        (brand, ids[0])
    };
    let (_, token) = tokens::create(
        &mut *db::get(&pool)?,
        &tokens::NewToken::new(
            &format!("bench-{}", std::process::id()),
            tokens::Scope::Read,
        ),
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )?;
    let (_server, base) = start_api(&url).await?;
    let client = reqwest::Client::new();
    println!(
        "events in the history {}  requests per route {}",
        args.events, args.requests
    );
    for path in [
        format!("/api/v1/brands/{brand}/pacing"),
        format!("/api/v1/campaigns/{campaign}/pacing"),
        format!("/api/v1/brands/{brand}/spend/series"),
    ] {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        // Warm-up: connections, statement caches, pages.
        for _ in 0..50 {
            client
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
        }
        for _ in 0..args.requests {
            let t = Instant::now();
            let resp = client
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
            if resp.status() != 200 {
                bail!("{path}: {}", resp.status());
            }
            resp.bytes().await?;
            hist.record((t.elapsed().as_micros() as u64).max(1))?;
        }
        let q = |p: f64| Duration::from_micros(hist.value_at_quantile(p)).as_secs_f64() * 1000.0;
        println!(
            "{path:<40} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            q(0.5),
            q(0.99),
            hist.max() as f64 / 1000.0
        );
    }
    Ok(())
}
