//! Deleting a campaign or a brand takes its rows with it, including those no foreign key
//! cascades to (the status history since migration 000013, the spend logs on PostgreSQL since
//! migration 000014, event ids in `spend_event_ids`).

use adbudget_core::access::Author;
use adbudget_db::repo::{brands, campaigns, spend};
use adbudget_db::schema::{campaign_status_history as history, spend_logs};
use adbudget_testing::Backend;
use diesel::prelude::*;
use serde_json::json;

use crate::{World, on_both_databases, utc, world};

on_both_databases!(
    deleting_a_campaign_or_its_brand_deletes_its_history_and_spend_logs,
    a_sweep_changes_only_campaigns_of_the_brands_it_locked,
    spend_of_a_campaign_deleted_meanwhile_stores_nothing,
    reversing_spend_of_a_campaign_deleted_meanwhile_stores_nothing
);

/// History rows stored for `campaign` (read from the table: the API answers 404 once the
/// campaign is gone).
fn stored_history(w: &World, campaign: i64) -> i64 {
    history::table
        .filter(history::campaign_id.eq(campaign))
        .count()
        .get_result(&mut *w.conn())
        .unwrap()
}

/// Spend logs stored for `campaign`.
fn stored_logs(w: &World, campaign: i64) -> i64 {
    spend_logs::table
        .filter(spend_logs::campaign_id.eq(campaign))
        .count()
        .get_result(&mut *w.conn())
        .unwrap()
}

fn deleting_a_campaign_or_its_brand_deletes_its_history_and_spend_logs(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let other = w.brand("O", "1000000", "10000000", "UTC", now);
    let capped = json!({"daily_cap": "10"});
    let (c1, c2, c3) = (
        w.campaign(brand, "c1", capped.clone(), now),
        w.campaign(brand, "c2", capped.clone(), now),
        w.campaign(other, "c3", capped, now),
    );
    for c in [c1, c2, c3] {
        w.spend(c, "11", now, now);
        assert_eq!(w.reasons(c, now), ["campaign_daily_cap"]);
        assert!(stored_history(&w, c) >= 1);
    }
    let c3_history = stored_history(&w, c3);
    for c in [c1, c2, c3] {
        assert_eq!(stored_logs(&w, c), 1);
    }

    campaigns::delete(&mut w.conn(), c1, now, &Author::cli()).unwrap();
    assert_eq!((stored_history(&w, c1), stored_logs(&w, c1)), (0, 0));
    assert!(stored_history(&w, c2) >= 1);
    assert_eq!(stored_logs(&w, c2), 1);

    brands::delete(&mut w.conn(), brand, now, &Author::cli()).unwrap();
    assert_eq!((stored_history(&w, c2), stored_logs(&w, c2)), (0, 0));
    assert_eq!(stored_history(&w, c3), c3_history);
    assert_eq!(stored_logs(&w, c3), 1);
    assert_eq!(w.history_len(c3) as i64, c3_history);
    w.assert_verified(now);
}

/// A sweep writes nothing for a campaign whose brand it did not lock (one that joined its
/// selection after the locks): with no foreign key on the history, a concurrent delete of that
/// brand would otherwise leave the history behind. Drift in both brands; only the locked one's
/// campaign is repaired, the other is left to the next run.
fn a_sweep_changes_only_campaigns_of_the_brands_it_locked(backend: Backend) {
    use adbudget_core::rule::PauseReason;
    use adbudget_db::repo::enforce::{self, Cause, ReconcileScope, Selection};
    let w = world(backend);
    let now = utc("2026-03-10T12:00:00Z");
    let (a, b) = (
        w.brand("A", "1000000", "10000000", "UTC", now),
        w.brand("B", "1000000", "10000000", "UTC", now),
    );
    let (ca, cb) = (
        w.campaign(a, "ca", json!({}), now),
        w.campaign(b, "cb", json!({}), now),
    );
    // Held by a daily cap they do not have: drift for the rule to repair.
    let mut held = adbudget_core::rule::PauseReasons::NONE;
    held.insert(PauseReason::CampaignDailyCap);
    for c in [ca, cb] {
        adbudget_testing::corrupt_state(&mut w.conn(), c, held.bits()).unwrap();
    }
    let (history_a, history_b) = (stored_history(&w, ca), stored_history(&w, cb));
    let select = Selection::Holding(&[PauseReason::CampaignDailyCap]);
    let scope = ReconcileScope {
        locked: Some(vec![a]),
        ..ReconcileScope::selection(select)
    };
    let changes = enforce::reconcile(&mut w.conn(), &scope, now, Cause::ResetDaily).unwrap();
    assert_eq!(
        changes.iter().map(|c| c.campaign_id).collect::<Vec<_>>(),
        [ca]
    );
    assert!(w.reasons(ca, now).is_empty());
    assert_eq!(w.reasons(cb, now), ["campaign_daily_cap"]);
    assert_eq!(stored_history(&w, ca), history_a + 1);
    assert_eq!(stored_history(&w, cb), history_b);
    // The job locks every owner of its selection: the next run repairs the other one.
    w.run(adbudget_core::jobs::JobKind::ResetDaily, now);
    assert!(w.reasons(cb, now).is_empty());
    w.assert_verified(now);
}

/// A spend call whose campaign is deleted while it runs stores nothing: on PostgreSQL its logs go
/// in before it waits for the brand lock the delete holds, and with no foreign key on the logs
/// (migration 000014) it is the totals' upserts that refuse the campaign once the delete commits,
/// taking the logs back; the retry answers 404. SQLite's writes serialize whole: the call runs
/// after the delete and finds no campaign. Either way no spend log names the deleted campaign.
/// One event takes PostgreSQL's one-statement path, a batch of 101 the step-by-step one.
fn spend_of_a_campaign_deleted_meanwhile_stores_nothing(backend: Backend) {
    spend_meeting_a_delete(backend, 1, spend::Mode::Single);
    spend_meeting_a_delete(backend, 101, spend::Mode::Batch);
}

fn spend_meeting_a_delete(backend: Backend, events: usize, mode: spend::Mode) {
    use adbudget_core::forms::SpendEvent;
    use adbudget_core::money::{Money, PositiveMoney};
    use adbudget_db::error::DomainError;
    let w = world(backend);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let (doomed, kept) = (
        w.campaign(brand, "doomed", json!({}), now),
        w.campaign(brand, "kept", json!({}), now),
    );
    w.spend(kept, "1", now, now);

    let deleter = deleting(&w, backend, brand, doomed);
    let spender = {
        let pool = w.pool.clone();
        std::thread::spawn(move || {
            let events: Vec<_> = (0..events)
                .map(|i| {
                    SpendEvent {
                        campaign_id: doomed,
                        amount: PositiveMoney(Money::parse_positive("2").unwrap()),
                        occurred_at: Some(now),
                        event_id: Some(format!("late-for-the-delete-{i}")),
                    }
                    .validate(now)
                    .unwrap()
                })
                .collect();
            spend::record(&mut adbudget_db::get(&pool).unwrap(), &events, now, mode)
        })
    };
    commit(&w, backend, deleter);

    let result = spender.join().unwrap();
    assert!(
        matches!(result, Err(DomainError::NotFound { .. })),
        "{events} events: {result:?}"
    );
    assert_eq!(stored_logs(&w, doomed), 0);
    assert_eq!(stored_logs(&w, kept), 1);
    w.assert_verified(now);
}

/// Deletes `campaign` by hand in a transaction left open (what `campaigns::delete` does, in its
/// order: the brand locked first, then the campaign's rows, then the campaign), for a concurrent
/// call to meet; [`commit`] ends it.
fn deleting(w: &World, backend: Backend, brand: i64, campaign: i64) -> adbudget_db::PooledConn {
    let mut conn = holding_brand(w, backend, brand);
    for q in [
        format!("DELETE FROM spend_logs WHERE campaign_id = {campaign}"),
        format!("DELETE FROM campaigns WHERE id = {campaign}"),
    ] {
        diesel::sql_query(q).execute(&mut conn).unwrap();
    }
    conn
}

/// A connection in a transaction that holds `brand`'s lock as the writers take it (PostgreSQL:
/// its row `FOR NO KEY UPDATE`; SQLite: the write transaction itself), until [`commit`].
pub(crate) fn holding_brand(w: &World, backend: Backend, brand: i64) -> adbudget_db::PooledConn {
    let mut conn = w.conn();
    let statements = [
        match backend {
            Backend::Postgres => "BEGIN".to_owned(),
            Backend::Sqlite => "BEGIN IMMEDIATE".to_owned(),
        },
        match backend {
            Backend::Postgres => {
                format!("SELECT id FROM brands WHERE id = {brand} FOR NO KEY UPDATE")
            }
            Backend::Sqlite => "SELECT 1".to_owned(),
        },
    ];
    for q in statements {
        diesel::sql_query(q).execute(&mut conn).unwrap();
    }
    conn
}

/// Commits [`deleting`]'s transaction once the concurrent call waits for it: on PostgreSQL for
/// the brand lock (seen in `pg_stat_activity`), on SQLite at its `BEGIN IMMEDIATE` (not visible:
/// half a second).
pub(crate) fn commit(w: &World, backend: Backend, mut conn: adbudget_db::PooledConn) {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let waiting = match backend {
            Backend::Postgres => {
                diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .get_result::<Waiting>(&mut w.conn())
                .unwrap()
                .n > 0
            }
            Backend::Sqlite => started.elapsed() >= std::time::Duration::from_millis(500),
        };
        if waiting {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the concurrent call never waited for the delete"
        );
    }
    diesel::sql_query("COMMIT").execute(&mut conn).unwrap();
}

/// A reversal whose spend log is deleted with its campaign while it waits for the brand lock
/// answers 404 for the spend and stores nothing: it read the log before the lock, and no foreign
/// key refuses its compensating log (migration 000014), so it looks again under the lock.
fn reversing_spend_of_a_campaign_deleted_meanwhile_stores_nothing(backend: Backend) {
    use adbudget_core::access::Brands;
    use adbudget_db::error::DomainError;
    let w = world(backend);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let doomed = w.campaign(brand, "doomed", json!({}), now);
    w.spend(doomed, "2", now, now);
    let log: i64 = spend_logs::table
        .select(spend_logs::id)
        .filter(spend_logs::campaign_id.eq(doomed))
        .first(&mut *w.conn())
        .unwrap();

    let deleter = deleting(&w, backend, brand, doomed);
    let reverser = {
        let pool = w.pool.clone();
        std::thread::spawn(move || {
            spend::reverse(
                &mut adbudget_db::get(&pool).unwrap(),
                log,
                "double count",
                &Brands::All,
                now,
                &Author::cli(),
            )
        })
    };
    commit(&w, backend, deleter);

    let result = reverser.join().unwrap();
    assert!(
        matches!(&result, Err(DomainError::NotFound { what: "spend", .. })),
        "{result:?}"
    );
    // Neither the log nor a compensating one is left (`verify` is not asked: the brand's totals
    // keep what its deleted campaign spent, which the logs no longer show).
    assert_eq!(stored_logs(&w, doomed), 0);
}

/// `verify` names spend logs whose campaign does not exist: PostgreSQL has no foreign key to
/// refuse them since migration 000014, so the check is what would show a writer that forgot to
/// delete them. (SQLite's foreign key still refuses them.)
#[test]
fn verify_reports_spend_logs_naming_no_campaign() {
    let w = world(Backend::Postgres);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let c = w.campaign(brand, "c", json!({}), now);
    w.spend(c, "1", now, now);
    w.assert_verified(now);
    diesel::sql_query(format!(
        "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, brand_id) \
         VALUES ({}, 5, '2026-03-10 11:00:00', '2026-03-10 11:00:00', {brand})",
        c + 1000
    ))
    .execute(&mut *w.conn())
    .unwrap();
    let report = adbudget_db::repo::verify::check(&mut w.conn(), now).unwrap();
    assert_eq!(
        report.findings,
        [adbudget_db::repo::verify::Finding::Orphans {
            campaign_id: c + 1000,
            logs: 1
        }]
    );
    assert_eq!(
        report.findings[0].to_string(),
        format!(
            "campaign {} does not exist but spend logs name it: 1",
            c + 1000
        )
    );
}

/// A campaign deleted while `maintain_spend_logs` moves a new month's rows out of the DEFAULT
/// partition into the month's own (by hand here, what `maintenance::create_ahead` does, held
/// open): the delete, waiting for the DEFAULT partition, must not miss the rows moved meanwhile
/// (`spend::forget_logs` waits before it plans its deletes; without that a brand's delete left
/// the moved log behind, the logs having no foreign key since migration 000014). PostgreSQL
/// only: SQLite keeps one table.
#[test]
fn deleting_a_campaign_while_its_logs_change_partition_leaves_none() {
    deleting_while_logs_change_partition(false);
}

/// The same for a brand's delete.
#[test]
fn deleting_a_brand_while_its_logs_change_partition_leaves_none() {
    deleting_while_logs_change_partition(true);
}

fn deleting_while_logs_change_partition(whole_brand: bool) {
    let w = world(Backend::Postgres);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let c = w.campaign(brand, "c", json!({}), now);
    let exec = |conn: &mut adbudget_db::DbConnection, q: &str| {
        diesel::sql_query(q).execute(conn).unwrap();
    };
    // A log of a month that has no partition yet: the DEFAULT partition holds it.
    exec(
        &mut w.conn(),
        &format!(
            "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, brand_id) \
             VALUES ({c}, 5, '2031-01-15 00:00:00', '2026-03-10 12:00:00', {brand})"
        ),
    );
    assert_eq!(stored_logs(&w, c), 1);

    let mut mover = w.conn();
    for q in [
        "BEGIN",
        "CREATE TABLE spend_log_partitions.spend_logs_2031_01 \
         (LIKE spend_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        "LOCK TABLE spend_log_partitions.spend_logs_default IN SHARE MODE",
        "WITH moved AS (DELETE FROM spend_log_partitions.spend_logs_default \
                        WHERE occurred_at >= '2031-01-01' AND occurred_at < '2031-02-01' \
                        RETURNING *) \
         INSERT INTO spend_log_partitions.spend_logs_2031_01 SELECT * FROM moved",
        "ALTER TABLE spend_logs ATTACH PARTITION spend_log_partitions.spend_logs_2031_01 \
         FOR VALUES FROM ('2031-01-01') TO ('2031-02-01')",
    ] {
        exec(&mut mover, q);
    }
    let deleter = {
        let pool = w.pool.clone();
        std::thread::spawn(move || {
            let conn = &mut adbudget_db::get(&pool).unwrap();
            if whole_brand {
                brands::delete(conn, brand, now, &Author::cli())
            } else {
                campaigns::delete(conn, c, now, &Author::cli())
            }
        })
    };
    commit(&w, Backend::Postgres, mover);
    deleter.join().unwrap().unwrap();
    assert_eq!(stored_logs(&w, c), 0);
}
