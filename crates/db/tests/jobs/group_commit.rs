//! Group commit: independent events of concurrent requests in one transaction, each with its own
//! outcome; one bad event fails alone.

use adbudget_core::forms::ValidSpend;
use adbudget_core::money::Money;
use adbudget_db::error::DomainError;
use adbudget_db::repo::spend::{self, Outcome};
use adbudget_testing::Backend;
use serde_json::json;

use crate::{on_both_databases, utc, world};

on_both_databases!(
    each_event_gets_its_own_outcome,
    concurrent_sends_of_one_batch_record_it_once,
    a_writer_that_saw_the_old_timezone_keys_spend_by_the_new_one,
    a_campaign_changed_during_the_lock_wait_is_judged_as_changed,
    a_full_writer_cache_forgets_and_looks_up_again,
    a_campaign_deleted_since_the_writer_saw_it_is_not_found,
    a_campaign_deleted_during_the_spend_is_not_found
);

fn event(campaign_id: i64, units: i64, id: Option<&str>) -> ValidSpend {
    ValidSpend {
        campaign_id,
        amount: Money::from_micros(units * 1_000_000),
        occurred_at: utc("2026-11-16T12:00:00Z"),
        occurred_at_given: true,
        event_id: id.map(str::to_owned),
        posted_by: None,
        allowed: Default::default(),
    }
}

fn each_event_gets_its_own_outcome(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "100", "1000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let d = w.campaign(b, "d", json!({}), t);
    spend::record(
        &mut w.conn(),
        &[event(c, 1, Some("known"))],
        t,
        spend::Mode::Single,
    )
    .unwrap();

    let events = [
        event(c, 10, Some("a")),
        event(424_242, 1, Some("nowhere")),
        event(c, 5, Some("known")),
        event(c, 1, Some("known")),
        event(d, 20, Some("b")),
        event(d, 20, Some("b")),
        event(d, 21, Some("b")),
        event(d, 69, None),
    ];
    let results = spend::record_group(&mut w.conn(), &mut spend::Lookups::default(), &events, t);
    let shape: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok((Outcome::Recorded(_), _)) => "recorded",
            Ok((Outcome::Replayed(_), _)) => "replayed",
            Err(DomainError::NotFound { .. }) => "not found",
            Err(DomainError::Conflict { .. }) => "conflict",
            Err(_) => "other",
        })
        .collect();
    assert_eq!(
        shape,
        [
            "recorded",
            "not found",
            "conflict",
            "replayed",
            "recorded",
            "replayed",
            "conflict",
            "recorded"
        ]
    );
    // Counted once each: 1 (before) + 10 + 20 + 69 = 100, the brand's daily budget.
    let (_, last) = results[7].as_ref().unwrap();
    assert_eq!(last.daily_spend.to_string(), "89.00");
    assert_eq!(
        last.pause_reasons.names(),
        ["brand_daily_budget"],
        "the budget-reaching event answers paused"
    );
    let (_, first) = results[0].as_ref().unwrap();
    assert!(
        !first.is_active,
        "every answer shows the state after the commit"
    );
    w.assert_verified(t);
}

/// A client sends the same batch on several connections at once (a retry racing the original):
/// every request succeeds, each event is recorded once, the others answer replays; single-event
/// group commits racing them too.
fn concurrent_sends_of_one_batch_record_it_once(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let brands: Vec<i64> = (0..3)
        .map(|n| w.brand(&format!("b{n}"), "100000", "1000000", "UTC", t))
        .collect();
    let campaigns: Vec<i64> = brands
        .iter()
        .flat_map(|b| (0..4).map(|n| w.campaign(*b, &format!("c{n}"), json!({}), t)))
        .collect();
    let batch: Vec<ValidSpend> = (0..60)
        .map(|i| event(campaigns[i % campaigns.len()], 1, Some(&format!("e{i}"))))
        .collect();
    let results: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|n| {
                let (w, batch) = (&w, &batch);
                scope.spawn(move || {
                    let mut conn = w.conn();
                    if n % 2 == 0 {
                        let recorded = spend::record(&mut conn, batch, t, spend::Mode::Batch)
                            .unwrap_or_else(|e| panic!("batch {n}: {e}"));
                        recorded.outcomes.iter().map(Outcome::is_new).collect()
                    } else {
                        spend::record_group(&mut conn, &mut spend::Lookups::default(), batch, t)
                            .into_iter()
                            .enumerate()
                            .map(|(i, r)| {
                                r.unwrap_or_else(|e| panic!("group {n}, event {i}: {e}"))
                                    .0
                                    .is_new()
                            })
                            .collect()
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for i in 0..batch.len() {
        let new = results.iter().filter(|r| r[i]).count();
        assert_eq!(new, 1, "event e{i} recorded by exactly one request");
    }
    let spent: Money = campaigns
        .iter()
        .map(|c| w.get(*c, t).daily_spend)
        .fold(Money::ZERO, |a, b| {
            Money::from_micros(a.micros() + b.micros())
        });
    assert_eq!(
        spent,
        Money::from_micros(60 * 1_000_000),
        "each event counted once"
    );
    w.assert_verified(t);
}

/// The pool's connections leave WAL checkpoints to the pool's checkpointer thread, which keeps
/// the WAL from growing: each round of commits is copied into the database file, and the next
/// round writes the WAL from its start again.
#[test]
fn sqlite_wal_is_checkpointed_in_the_background() {
    let w = world(Backend::Sqlite);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000000", "10000000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    // New databases use 1 KiB pages (fewer bytes for the WAL per dirtied page).
    use diesel::RunQueryDsl;
    let mut conn = w.conn();
    let adbudget_db::DbConnection::Sqlite(sqlite) = &mut *conn else {
        unreachable!("a SQLite world")
    };
    let page_size: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT page_size FROM pragma_page_size())",
    ))
    .get_result(sqlite)
    .unwrap();
    assert_eq!(page_size, 1024);
    drop(conn);
    let path = w.url().trim_start_matches("sqlite://").to_owned();
    let size = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len());
    let db_before = size(&path);
    let mut wal_sizes = Vec::new();
    for round in 0..6 {
        for n in 0..40 {
            let events: Vec<ValidSpend> = (0..50)
                .map(|i| event(c, 1, Some(&format!("r{round}-{n}-{i}"))))
                .collect();
            spend::record(&mut w.conn(), &events, t, spend::Mode::Batch).unwrap();
        }
        std::thread::sleep(adbudget_db::CHECKPOINT_EVERY * 3);
        wal_sizes.push(size(&format!("{path}-wal")));
    }
    assert!(
        size(&path) > db_before + 1_000_000,
        "the spend reached the database file: {} -> {} bytes",
        db_before,
        size(&path)
    );
    // Without checkpoints the WAL would hold every round: six times the first.
    assert!(
        wal_sizes[5] < wal_sizes[0] * 2,
        "WAL sizes after each round: {wal_sizes:?}"
    );
}

/// A PostgreSQL world's connection as diesel's.
fn pg(conn: &mut adbudget_db::DbConnection) -> &mut diesel::PgConnection {
    let adbudget_db::DbConnection::Postgresql(pg) = conn else {
        unreachable!("a PostgreSQL world")
    };
    pg
}

/// The spend statement's plan, as `EXPLAIN EXECUTE` of the writer connection's own prepared
/// statement shows it.
fn spend_plan(pg: &mut diesel::PgConnection) -> String {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let sql = spend::postgres_statement_sql();
    let prepared: Vec<Name> =
        diesel::sql_query("SELECT name FROM pg_prepared_statements WHERE statement = $1")
            .bind::<diesel::sql_types::Text, _>(&sql)
            .load(pg)
            .unwrap();
    let name = &prepared
        .first()
        .expect("the writer prepared the spend statement")
        .name;
    let parameters = (1..).take_while(|n| sql.contains(&format!("${n}"))).count();
    let nulls = vec!["NULL"; parameters].join(", ");
    let plan: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN EXECUTE {name}({nulls})"))
        .load(pg)
        .unwrap();
    plan.into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line of `EXPLAIN`'s output.
#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// PostgreSQL keeps one generic plan per prepared statement, made from the tables as they were.
/// Planned on a new database, the writer's spend statement looked the known event ids up by a hash
/// join over all of `spend_event_ids` and kept scanning the table as it grew, every group commit,
/// until autovacuum's next `ANALYZE`. The writer now has its plans made again every ten seconds
/// (`Lookups::replan_if_due`), from the tables as they are then.
#[test]
fn a_writer_plans_its_statement_again_as_the_tables_grow() {
    use diesel::connection::SimpleConnection;
    let w = world(Backend::Postgres);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000000", "10000000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let mut conn = w.conn();
    let mut lookups =
        spend::Lookups::default().replanning_every(std::time::Duration::from_secs(3600));
    // A new installation: a few rows, freshly analyzed; one plan for every execution; no
    // autovacuum to replan behind the test's back.
    pg(&mut conn)
        .batch_execute(
            "ALTER TABLE spend_event_ids SET (autovacuum_enabled = off); ANALYZE; \
             SET plan_cache_mode = force_generic_plan",
        )
        .unwrap();
    let mut n = 0;
    let mut group = |conn: &mut adbudget_db::DbConnection, lookups: &mut spend::Lookups| {
        n += 1;
        let events = [event(c, 1, Some(&format!("group-{n}")))];
        for r in spend::record_group(conn, lookups, &events, t) {
            r.unwrap();
        }
    };
    group(&mut conn, &mut lookups);
    assert!(
        spend_plan(pg(&mut conn)).contains("Seq Scan on spend_event_ids"),
        "the premise: a small table's plan"
    );
    // The table grows (no ANALYZE yet).
    pg(&mut conn)
        .batch_execute(
            "INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at) \
             SELECT 1, 'grown-' || g, -g, TIMESTAMP '2026-11-16 12:00:00' \
             FROM generate_series(1, 60000) AS g",
        )
        .unwrap();
    // Not due yet: the writer keeps the plan made on the small table.
    group(&mut conn, &mut lookups);
    assert!(
        spend_plan(pg(&mut conn)).contains("Seq Scan on spend_event_ids"),
        "the plan outlives the table's growth"
    );
    // Once due, the writer's next group commit has its statements planned again.
    let mut lookups = lookups.replanning_every(std::time::Duration::ZERO);
    group(&mut conn, &mut lookups);
    let plan = spend_plan(pg(&mut conn));
    assert!(!plan.contains("Seq Scan on spend_event_ids"), "{plan}");
    assert!(
        plan.contains("Index Scan using spend_event_ids_pkey"),
        "{plan}"
    );
}

/// Two transactions inserting the same event ids in opposite orders deadlock on the unique index;
/// PostgreSQL aborts one of them. When that is a spend transaction, it runs again instead of
/// failing (with 500). Deterministic: the spend transaction starts waiting first, so its deadlock
/// check (after `deadlock_timeout`, 1 s) is the one that finds the cycle.
#[test]
fn a_deadlock_over_event_ids_is_run_again() {
    use diesel::connection::SimpleConnection;
    let w = world(Backend::Postgres);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000", "10000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let insert = |id: &str| {
        format!(
            "INSERT INTO spend_logs (campaign_id, brand_id, amount, occurred_at, received_at, event_id) \
             VALUES ({c}, {b}, 1000000, '2026-11-16 12:00:00', '2026-11-16 12:00:00', '{id}')"
        )
    };
    // Another writer holds event "b" and will ask for "a".
    let mut other = w.conn();
    let adbudget_db::DbConnection::Postgresql(pg) = &mut *other else {
        unreachable!("a PostgreSQL world")
    };
    pg.batch_execute(&format!("BEGIN; {};", insert("b")))
        .unwrap();
    let pool = w.pool.clone();
    let spender = std::thread::spawn(move || {
        let events = [event(c, 1, Some("a")), event(c, 2, Some("b"))];
        spend::record(
            &mut adbudget_db::get(&pool).unwrap(),
            &events,
            t,
            spend::Mode::Batch,
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    pg.batch_execute(&format!("{};", insert("a"))).unwrap();
    pg.batch_execute("ROLLBACK;").unwrap();
    let recorded = spender
        .join()
        .unwrap()
        .expect("the spend transaction ran again");
    assert!(recorded.outcomes.iter().all(Outcome::is_new));
    assert_eq!(
        recorded.campaigns[0].daily_spend,
        Money::from_micros(3_000_000)
    );
}

/// A spend writer remembers each brand's timezone between commits (PostgreSQL computes the
/// period keys before its one statement); a timezone changed since is noticed by the next commit,
/// which runs again with the new one: no spend is keyed by the old zone.
fn a_writer_that_saw_the_old_timezone_keys_spend_by_the_new_one(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-16T23:30:00Z");
    let b = w.brand("Acme", "100", "1000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let mut lookups = spend::Lookups::default();
    let at = |s: &str, units: i64, id: &str| ValidSpend {
        occurred_at: utc(s),
        ..event(c, units, Some(id))
    };
    let first = spend::record_group(
        &mut w.conn(),
        &mut lookups,
        &[at("2026-11-16T23:30:00Z", 1, "a")],
        t,
    );
    assert_eq!(first[0].as_ref().unwrap().1.daily_spend.to_string(), "1.00");

    // 08:30 on the 17th in Tokyo: the first event moves to the 17th with the brand.
    let changes = adbudget_core::forms::BrandChanges {
        timezone: Some(chrono_tz::Asia::Tokyo),
        ..Default::default()
    };
    let author = adbudget_core::access::Author::cli();
    adbudget_db::repo::brands::update(&mut w.conn(), b, &changes, t, &author).unwrap();

    let t2 = utc("2026-11-16T23:45:00Z");
    let second = spend::record_group(
        &mut w.conn(),
        &mut lookups,
        &[at("2026-11-16T23:40:00Z", 2, "b")],
        t2,
    );
    let (outcome, campaign) = second[0].as_ref().unwrap();
    assert!(outcome.is_new());
    assert_eq!(campaign.daily_spend.to_string(), "3.00");
    w.assert_verified(t2);
}

/// A spend that waits for its brand's lock judges the campaign as the lock holder left it: its
/// new cap, not the one of the moment the spend's statement began (on PostgreSQL the campaigns are
/// read in that statement, whose snapshot is older than the lock holder's commit).
fn a_campaign_changed_during_the_lock_wait_is_judged_as_changed(backend: Backend) {
    use adbudget_db::schema::campaigns;
    use diesel::prelude::*;
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000", "10000", "UTC", t);
    let c = w.campaign(b, "c", json!({"daily_cap": "100"}), t);
    let mut lookups = spend::Lookups::default();
    let warm = spend::record_group(&mut w.conn(), &mut lookups, &[event(c, 1, Some("warm"))], t);
    assert!(warm[0].is_ok());
    let history_before = w.history_len(c);

    let during = spend_while_brand_locked(
        &w,
        &mut lookups,
        b,
        event(c, 10, Some("during")),
        t,
        |conn| {
            diesel::update(campaigns::table.find(c))
                .set(campaigns::daily_cap.eq(Some(5_000_000_i64)))
                .execute(conn)
                .map(drop)
        },
    );
    let (outcome, campaign) = during.unwrap();
    assert!(outcome.is_new());
    assert_eq!(
        campaign.pause_reasons.names(),
        ["campaign_daily_cap"],
        "11.00 spent against the new cap of 5.00"
    );
    assert_eq!(w.get(c, t).pause_reasons.names(), ["campaign_daily_cap"]);
    assert_eq!(w.history_len(c), history_before + 1, "paused once");
    w.assert_verified(t);
}

/// A writer's cache that would pass its bound is emptied and every campaign of the call looked
/// up again: none of them is taken for unknown.
fn a_full_writer_cache_forgets_and_looks_up_again(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000", "10000", "UTC", t);
    let (c1, c2) = (
        w.campaign(b, "c1", json!({}), t),
        w.campaign(b, "c2", json!({}), t),
    );
    let mut lookups = spend::Lookups::bounded(1);
    let first = spend::record_group(&mut w.conn(), &mut lookups, &[event(c1, 1, Some("a"))], t);
    assert!(first[0].is_ok());
    let events = [event(c1, 1, Some("b")), event(c2, 1, Some("c"))];
    for (i, r) in spend::record_group(&mut w.conn(), &mut lookups, &events, t)
        .into_iter()
        .enumerate()
    {
        let (outcome, _) = r.unwrap_or_else(|e| panic!("event {i}: {e}"));
        assert!(outcome.is_new());
    }
    w.assert_verified(t);
}

/// A campaign deleted after a writer remembered it is answered as any unknown campaign: not
/// found, also for a token bound to another brand (as the stepwise path answers).
fn a_campaign_deleted_since_the_writer_saw_it_is_not_found(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000", "10000", "UTC", t);
    let other = w.brand("Globex", "1000", "10000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let mut lookups = spend::Lookups::default();
    let warm = spend::record_group(&mut w.conn(), &mut lookups, &[event(c, 1, Some("warm"))], t);
    assert!(warm[0].is_ok());
    let author = adbudget_core::access::Author::cli();
    adbudget_db::repo::campaigns::delete(&mut w.conn(), c, t, &author).unwrap();

    let bound = ValidSpend {
        allowed: adbudget_core::access::Brands::only([other]),
        ..event(c, 1, Some("x"))
    };
    let events = [
        bound,
        event(c, 1, Some("y")),
        event(c, 1, Some("y")),
        event(c, 1, None),
    ];
    let results = spend::record_group(&mut w.conn(), &mut lookups, &events, t);
    for (i, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Err(DomainError::NotFound { .. })),
            "event {i}: {r:?}"
        );
    }
}

/// A campaign deleted by a transaction that commits while a spend on it waits for the brand's
/// lock: the spend answers not found (its insert lost the race to the delete and runs again),
/// never a database error.
fn a_campaign_deleted_during_the_spend_is_not_found(backend: Backend) {
    use adbudget_db::schema::campaigns;
    use diesel::prelude::*;
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "1000", "10000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let mut lookups = spend::Lookups::default();
    let warm = spend::record_group(&mut w.conn(), &mut lookups, &[event(c, 1, Some("warm"))], t);
    assert!(warm[0].is_ok());

    let during = spend_while_brand_locked(
        &w,
        &mut lookups,
        b,
        event(c, 10, Some("during")),
        t,
        |conn| {
            diesel::delete(campaigns::table.find(c))
                .execute(conn)
                .map(drop)
        },
    );
    assert!(
        matches!(during, Err(DomainError::NotFound { .. })),
        "{during:?}"
    );
}

/// A group commit of `spend` made while another transaction holds brand `brand`'s lock, has run
/// `change` and commits half a second later: the spend waits for that commit (on SQLite for the
/// write lock). Returns the spend's result.
fn spend_while_brand_locked(
    w: &crate::World,
    lookups: &mut spend::Lookups,
    brand: i64,
    spend: ValidSpend,
    t: chrono::DateTime<chrono::Utc>,
    change: impl FnOnce(&mut adbudget_db::DbConnection) -> diesel::QueryResult<()> + Send,
) -> Result<(Outcome, adbudget_core::views::Campaign), DomainError> {
    let (locked, wait) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut holder = w.conn();
            adbudget_db::write_transaction(&mut holder, |conn| -> diesel::QueryResult<()> {
                adbudget_db::repo::enforce::lock_brands(conn, &[brand])?;
                change(conn)?;
                locked.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(500));
                Ok(())
            })
            .unwrap();
        });
        wait.recv().unwrap();
        spend::record_group(&mut w.conn(), lookups, &[spend], t).remove(0)
    })
}
