//! Migrations that rewrite stored data, checked on rows written as the schema before them had
//! them.

use adbudget_core::forms::SpendEvent;
use adbudget_core::money::{Money, PositiveMoney};
use adbudget_db::repo::spend;
use adbudget_testing::{Backend, TestDatabase};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::{on_both_databases, utc};

on_both_databases!(
    lifetime_rows_become_carried_totals,
    spend_logs_before_the_partitions_keep_their_event_ids,
    spend_before_the_buckets_is_bucketed,
    spend_logs_get_their_brand_and_event_ids_become_per_brand,
    users_become_admins_and_tokens_stay_unbound
);

/// Migration 000008: spend recorded before it (a reversal included) gets its 5-minute buckets, so
/// the series of an upgraded brand sums to its totals and `verify` is clean.
fn spend_before_the_buckets_is_bucketed(backend: Backend) {
    use adbudget_core::pacing::SeriesBucket;
    let database = TestDatabase::create_empty(backend).unwrap();
    let mut conn = adbudget_db::connect_one(&database.url).unwrap();
    adbudget_db::migrate_through(&mut conn, "2026-11-30-000007").unwrap();
    for sql in [
        "INSERT INTO brands (id, name, daily_budget, monthly_budget, timezone, created_at, updated_at) \
         VALUES (1, 'Acme', 100000000, 1000000000, 'Europe/Berlin', '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO campaigns (id, brand_id, name, manually_paused, pause_reasons, created_at, updated_at) \
         VALUES (10, 1, 'a', FALSE, 0, '2026-11-30 00:00:00', '2026-11-30 00:00:00'), \
                (11, 1, 'b', FALSE, 0, '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO spend_logs (id, campaign_id, amount, occurred_at, received_at, event_id, brand_id) \
         VALUES (1, 10, 5000000, '2026-11-30 10:01:00', '2026-11-30 10:01:00', 'e1', 1), \
                (2, 11, 7000000, '2026-11-30 10:04:59.999999', '2026-11-30 10:05:00', 'e2', 1), \
                (3, 10, 2000000, '2026-11-30 10:05:00', '2026-11-30 10:05:00', 'e3', 1)",
        "INSERT INTO spend_logs (id, campaign_id, amount, occurred_at, received_at, brand_id, reverses_id, reason) \
         VALUES (4, 10, -2000000, '2026-11-30 10:05:00', '2026-11-30 10:06:00', 1, 3, 'dup')",
        "INSERT INTO brand_spend (brand_id, period, amount) VALUES (1, '2026-11-30', 12000000), (1, '2026-11', 12000000)",
        "INSERT INTO campaign_spend (campaign_id, period, amount) \
         VALUES (10, '2026-11-30', 5000000), (10, '2026-11', 5000000), (11, '2026-11-30', 7000000), (11, '2026-11', 7000000)",
    ] {
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
    adbudget_db::migrate(&mut conn).unwrap();
    let now = utc("2026-11-30T12:00:00Z");
    let series = adbudget_db::repo::pacing::series(
        &mut conn,
        1,
        Some(utc("2026-11-30T10:00:00Z")),
        Some(utc("2026-11-30T10:10:00Z")),
        SeriesBucket::FiveMinutes,
        now,
    )
    .unwrap();
    let spend: Vec<String> = series.points.iter().map(|p| p.spend.to_string()).collect();
    assert_eq!(
        spend,
        ["12.00", "0.00"],
        "10:00 holds both, 10:05 nets to zero"
    );
    let report = adbudget_db::repo::verify::check(&mut conn, now).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

/// Migration 000007: every user was a superuser and becomes an admin of every brand; tokens keep
/// their scope and stay bound to no brand; spend logs are kept (SQLite rebuilds the table) and no
/// id of a deleted one is handed out again.
fn users_become_admins_and_tokens_stay_unbound(backend: Backend) {
    use adbudget_core::access::{Brands, Role};
    let database = TestDatabase::create_empty(backend).unwrap();
    let mut conn = adbudget_db::connect_one(&database.url).unwrap();
    adbudget_db::migrate_through(&mut conn, "2026-11-30-000006").unwrap();
    for sql in [
        "INSERT INTO users (username, password_hash, is_superuser, created_at) \
         VALUES ('ops', 'x', TRUE, '2026-11-30 00:00:00')",
        "INSERT INTO api_tokens (name, scope, prefix, token_hash, created_at) \
         VALUES ('meta', 'ingest', 'adb_aaaaaaaa', 'h1', '2026-11-30 00:00:00'), \
                ('ci', 'admin', 'adb_bbbbbbbb', 'h2', '2026-11-30 00:00:00')",
        "INSERT INTO brands (id, name, daily_budget, monthly_budget, timezone, created_at, updated_at) \
         VALUES (1, 'Acme', 100000000, 1000000000, 'UTC', '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO campaigns (id, brand_id, name, manually_paused, pause_reasons, created_at, updated_at) \
         VALUES (10, 1, 'a', FALSE, 0, '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, event_id, brand_id) \
         VALUES (10, 5000000, '2026-11-30 10:00:00', '2026-11-30 10:00:00', 'e1', 1), \
                (10, 7000000, '2026-11-30 10:00:00', '2026-11-30 10:00:00', 'e2', 1)",
        "DELETE FROM spend_logs WHERE event_id = 'e2'",
    ] {
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
    adbudget_db::migrate(&mut conn).unwrap();
    let users = adbudget_db::repo::users::list(&mut conn).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].role, users[0].brands.clone()),
        (Role::Admin, None)
    );
    let facts = adbudget_db::repo::users::session_facts(&mut conn, users[0].id)
        .unwrap()
        .unwrap();
    assert_eq!(facts.brands, Brands::All);
    let tokens = adbudget_db::repo::tokens::list(&mut conn).unwrap();
    let scopes: Vec<(&str, &str, Option<Vec<i64>>)> = tokens
        .iter()
        .map(|t| (t.name.as_str(), t.scope.as_str(), t.brands.clone()))
        .collect();
    assert_eq!(scopes, [("meta", "ingest", None), ("ci", "admin", None)]);
    assert!(
        tokens
            .iter()
            .all(|t| t.expires_at.is_none() && t.revoked_at.is_none())
    );
    let logs = spend::list(&mut conn, 10, None, None, Default::default()).unwrap();
    assert_eq!(logs.items.len(), 1);
    assert_eq!(logs.items[0].event_id.as_deref(), Some("e1"));
    assert_eq!(
        (logs.items[0].reverses_id, logs.items[0].reversed_by),
        (None, None)
    );
    // The next spend log's id is past the deleted one's (2).
    let now = utc("2026-11-30T12:00:00Z");
    let event = SpendEvent {
        campaign_id: 10,
        amount: PositiveMoney(Money::parse_positive("1").unwrap()),
        occurred_at: None,
        event_id: None,
    }
    .validate(now)
    .unwrap();
    let recorded = spend::record(&mut conn, &[event], now, spend::Mode::Single).unwrap();
    assert_eq!(recorded.outcomes[0].log().id, 3);
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Log {
    #[diesel(sql_type = BigInt)]
    brand_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    token_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    event_id: Option<String>,
}

/// Migration 000006: existing spend logs get their campaign's brand and no token; the unique
/// index moves from `event_id` to `(brand_id, event_id)`, so another brand may use an id that
/// one brand recorded before the upgrade.
fn spend_logs_get_their_brand_and_event_ids_become_per_brand(backend: Backend) {
    let database = TestDatabase::create_empty(backend).unwrap();
    let mut conn = adbudget_db::connect_one(&database.url).unwrap();
    adbudget_db::migrate_through(&mut conn, "2026-11-30-000005").unwrap();
    for sql in [
        "INSERT INTO brands (id, name, daily_budget, monthly_budget, timezone, created_at, updated_at) \
         VALUES (1, 'Acme', 100000000, 1000000000, 'UTC', '2026-11-30 00:00:00', '2026-11-30 00:00:00'), \
                (2, 'Globex', 100000000, 1000000000, 'UTC', '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO campaigns (id, brand_id, name, manually_paused, pause_reasons, created_at, updated_at) \
         VALUES (10, 1, 'a', FALSE, 0, '2026-11-30 00:00:00', '2026-11-30 00:00:00'), \
                (20, 2, 'g', FALSE, 0, '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, event_id) \
         VALUES (10, 5000000, '2026-11-30 10:00:00', '2026-11-30 10:00:00', 'e1'), \
                (20, 7000000, '2026-11-30 10:00:00', '2026-11-30 10:00:00', NULL)",
    ] {
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
    adbudget_db::migrate(&mut conn).unwrap();
    let logs: Vec<Log> =
        diesel::sql_query("SELECT brand_id, token_id, event_id FROM spend_logs ORDER BY id")
            .load(&mut conn)
            .unwrap();
    assert_eq!(
        logs,
        [
            Log {
                brand_id: 1,
                token_id: None,
                event_id: Some("e1".into())
            },
            Log {
                brand_id: 2,
                token_id: None,
                event_id: None
            },
        ]
    );
    // During a rolling upgrade on PostgreSQL, pods of the previous release insert without
    // brand_id: the trigger fills it from the campaign. (SQLite is upgraded stopped.)
    if backend == Backend::Postgres {
        diesel::sql_query(
            "INSERT INTO spend_logs (campaign_id, amount, occurred_at, received_at, event_id) \
             VALUES (20, 1000000, '2026-11-30 11:00:00', '2026-11-30 11:00:00', 'old-pod')",
        )
        .execute(&mut conn)
        .unwrap();
        let old: Vec<Log> = diesel::sql_query(
            "SELECT brand_id, token_id, event_id FROM spend_logs WHERE event_id = 'old-pod'",
        )
        .load(&mut conn)
        .unwrap();
        assert_eq!(old[0].brand_id, 2, "{old:?}");
    }
    // Globex may now record "e1" too; Acme's "e1" is still a replay.
    let now = utc("2026-11-30T12:00:00Z");
    let event = |campaign_id, amount: &str| {
        SpendEvent {
            campaign_id,
            amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
            occurred_at: Some(utc("2026-11-30T10:00:00Z")),
            event_id: Some("e1".into()),
        }
        .validate(now)
        .unwrap()
    };
    let globex = spend::record(&mut conn, &[event(20, "3")], now, spend::Mode::Single).unwrap();
    assert!(globex.outcomes[0].is_new(), "{globex:?}");
    let acme = spend::record(&mut conn, &[event(10, "5")], now, spend::Mode::Single).unwrap();
    assert!(!acme.outcomes[0].is_new(), "{acme:?}");
}

/// Migration 000012: spend logs recorded before it stay (on PostgreSQL the old table becomes one
/// partition, `spend_logs_before`, without copying), their event ids stay taken (their own table
/// on PostgreSQL), a log is still reversed at most once, and a retention drops that partition as
/// a whole once all of it is past.
fn spend_logs_before_the_partitions_keep_their_event_ids(backend: Backend) {
    use adbudget_core::access::{Author, Brands};
    use adbudget_core::jobs::{JobKind, JobSettings};
    let database = TestDatabase::create_empty(backend).unwrap();
    let mut conn = adbudget_db::connect_one(&database.url).unwrap();
    adbudget_db::migrate_through(&mut conn, "2026-12-01-000011").unwrap();
    for sql in [
        "INSERT INTO brands (id, name, daily_budget, monthly_budget, timezone, created_at, updated_at) \
         VALUES (1, 'Acme', 100000000, 1000000000, 'UTC', '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO campaigns (id, brand_id, name, manually_paused, pause_reasons, created_at, updated_at) \
         VALUES (10, 1, 'a', FALSE, 0, '2026-11-30 00:00:00', '2026-11-30 00:00:00')",
        "INSERT INTO spend_logs (id, campaign_id, amount, occurred_at, received_at, event_id, brand_id) \
         VALUES (1, 10, 5000000, '2026-11-30 10:00:00', '2026-11-30 10:00:00', 'e1', 1), \
                (2, 10, 7000000, '2026-11-30 10:00:00', '2026-11-30 10:00:00', 'e2', 1)",
        "INSERT INTO brand_spend (brand_id, period, amount) VALUES (1, '2026-11-30', 12000000), (1, '2026-11', 12000000)",
        "INSERT INTO campaign_spend (campaign_id, period, amount) \
         VALUES (10, '2026-11-30', 12000000), (10, '2026-11', 12000000), (10, 'lifetime', 12000000)",
    ] {
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
    adbudget_db::migrate(&mut conn).unwrap();
    let partitions = crate::spend_logs::partitions_of;
    if backend == Backend::Postgres {
        assert!(partitions(&mut conn).contains(&"spend_logs_before".to_owned()));
    }
    let now = utc("2026-12-01T12:00:00Z");
    let send = |conn: &mut adbudget_db::DbConnection, amount: &str| {
        let event = SpendEvent {
            campaign_id: 10,
            amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
            occurred_at: Some(utc("2026-11-30T10:00:00Z")),
            event_id: Some("e1".to_owned()),
        }
        .validate(now)
        .unwrap();
        spend::record(conn, &[event], now, spend::Mode::Single)
    };
    let replay = send(&mut conn, "5").unwrap();
    assert!(matches!(replay.outcomes[0], spend::Outcome::Replayed(_)));
    assert_eq!(replay.outcomes[0].log().id, 1);
    assert!(
        send(&mut conn, "6").is_err(),
        "another payload under a taken id"
    );
    let reverse = |conn: &mut adbudget_db::DbConnection| {
        spend::reverse(conn, 2, "duplicate", &Brands::All, now, &Author::cli())
    };
    assert!(reverse(&mut conn).is_ok());
    assert!(reverse(&mut conn).is_err(), "reversed once");

    // Three months on, keeping one: everything before the partitioned months is past.
    let later = chrono::Utc::now()
        .checked_add_months(chrono::Months::new(3))
        .unwrap();
    let settings = JobSettings {
        spend_log_retention_months: Some(1),
        ..JobSettings::default()
    };
    adbudget_db::jobs::run(&mut conn, JobKind::MaintainSpendLogs, later, &settings).unwrap();
    if backend == Backend::Postgres {
        assert!(!partitions(&mut conn).contains(&"spend_logs_before".to_owned()));
    }
    let logs = spend::list(&mut conn, 10, None, None, Default::default()).unwrap();
    assert!(logs.items.is_empty(), "{:?}", logs.items);
    // Its events are before the kept history now: refused, not recorded a second time.
    let again = send(&mut conn, "5").unwrap_err();
    assert!(
        matches!(&again, adbudget_db::error::DomainError::Validation(v) if v.field == "occurred_at"),
        "{again:?}"
    );
}

/// Migration 000015: a campaign's `lifetime` row gives way to its carried total of the months
/// before its brand's new mark (the month before the current UTC month, whenever the migration
/// runs), and its lifetime reads the same.
fn lifetime_rows_become_carried_totals(backend: Backend) {
    let database = TestDatabase::create_empty(backend).unwrap();
    let mut conn = adbudget_db::connect_one(&database.url).unwrap();
    adbudget_db::migrate_through(&mut conn, "2026-12-02-000014").unwrap();
    let now = chrono::Utc::now();
    let this_month = now.format("%Y-%m").to_string();
    for sql in [
        "INSERT INTO brands (id, name, daily_budget, monthly_budget, timezone, created_at, updated_at) \
         VALUES (1, 'Acme', 100000000, 1000000000, 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')".to_owned(),
        "INSERT INTO campaigns (id, brand_id, name, manually_paused, pause_reasons, created_at, updated_at) \
         VALUES (10, 1, 'a', FALSE, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00'), \
                (11, 1, 'b', FALSE, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')".to_owned(),
        format!(
            "INSERT INTO campaign_spend (campaign_id, period, amount) \
             VALUES (10, '2026-01-15', 100), (10, '2026-01', 100), (10, '2026-02', 50), \
                    (10, '{this_month}', 30), (10, 'lifetime', 180), \
                    (11, '{this_month}', 7), (11, 'lifetime', 7)"
        ),
    ] {
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    }
    adbudget_db::migrate(&mut conn).unwrap();
    let after = chrono::Utc::now();
    let rows: Vec<(i64, String, i64)> = {
        use adbudget_db::schema::campaign_spend as s;
        s::table
            .select((s::campaign_id, s::period, s::amount))
            .filter(s::period.eq_any(["lifetime", "carried"]))
            .load(&mut conn)
            .unwrap()
    };
    assert!(rows.is_empty(), "{rows:?}");
    let carried: Vec<(i64, i64)> = {
        use adbudget_db::schema::campaigns as c;
        c::table
            .select((c::id, c::lifetime_carried))
            .order(c::id)
            .load(&mut conn)
            .unwrap()
    };
    assert_eq!(carried, [(10, 150), (11, 0)]);
    let mark: String = {
        use adbudget_db::schema::brands::dsl::*;
        brands
            .find(1)
            .select(carried_before)
            .first(&mut conn)
            .unwrap()
    };
    // The month before the migration's (a month may begin while it runs).
    let month_before = |at: chrono::DateTime<chrono::Utc>| {
        at.checked_sub_months(chrono::Months::new(1))
            .unwrap()
            .format("%Y-%m")
            .to_string()
    };
    assert!(
        [month_before(now), month_before(after)].contains(&mark),
        "{mark}"
    );
    for (id, lifetime) in [(10, "0.00018"), (11, "0.000007")] {
        let seen = adbudget_db::repo::campaigns::get(&mut conn, id, now).unwrap();
        assert_eq!(
            seen.lifetime_spend,
            Money::parse_non_negative(lifetime).unwrap()
        );
    }
}
