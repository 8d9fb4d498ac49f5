//! Spend logs over the years (issue #19, item 4): `maintain_spend_logs` creates PostgreSQL's
//! monthly partitions ahead and applies `ADBUDGET_SPEND_LOG_RETENTION_MONTHS` (whole months
//! dropped on PostgreSQL, deleted on SQLite); event ids stay unique across months; `verify`
//! checks the retained periods only.

use adbudget_core::forms::SpendEvent;
use adbudget_core::jobs::{JobKind, JobSettings};
use adbudget_core::money::{Money, PositiveMoney};
use adbudget_db::repo::spend::{self, Mode, Outcome, export::Month};
use adbudget_db::repo::{campaigns, verify};
use adbudget_db::{DbConnection, jobs};
use adbudget_testing::Backend;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::{World, on_both_databases, utc, world};

on_both_databases!(
    the_retention_drops_old_months_and_keeps_the_totals,
    an_event_id_is_one_event_across_months,
    a_deleted_campaign_gives_its_event_ids_back
);

fn events(
    campaign_id: i64,
    list: &[(&str, &str, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Vec<adbudget_core::forms::ValidSpend> {
    list.iter()
        .map(|(id, amount, at)| {
            SpendEvent {
                campaign_id,
                amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
                occurred_at: Some(*at),
                event_id: Some((*id).to_owned()),
            }
            .validate(now)
            .unwrap()
        })
        .collect()
}

/// Records one event with an id; Ok(true) when new, Ok(false) when a replay.
fn send(
    w: &World,
    campaign_id: i64,
    (id, amount, at): (&str, &str, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<bool, adbudget_db::error::DomainError> {
    let recorded = spend::record(
        &mut w.conn(),
        &events(campaign_id, &[(id, amount, at)], now),
        now,
        Mode::Single,
    )?;
    Ok(matches!(recorded.outcomes[0], Outcome::Recorded(_)))
}

fn maintain(w: &World, now: DateTime<Utc>, months: Option<u32>) -> usize {
    let settings = JobSettings {
        spend_log_retention_months: months,
        ..JobSettings::default()
    };
    jobs::run(&mut w.conn(), JobKind::MaintainSpendLogs, now, &settings)
        .unwrap()
        .changed
}

fn exported(w: &World, month: &str) -> i64 {
    spend::export::count(&mut w.conn(), Month::parse(month).unwrap()).unwrap()
}

/// PostgreSQL's partitions of `spend_logs`, by table name (SQLite: none).
pub(crate) fn partitions_of(conn: &mut DbConnection) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let DbConnection::Postgresql(c) = conn else {
        return Vec::new();
    };
    diesel::sql_query(
        "SELECT c.relname AS name FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'spend_logs'::regclass ORDER BY 1",
    )
    .load::<Name>(c)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

fn partitions(w: &World) -> Vec<String> {
    partitions_of(&mut w.conn())
}

fn the_retention_drops_old_months_and_keeps_the_totals(backend: Backend) {
    let w = world(backend);
    let start = utc("2026-01-05T00:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", start);
    let c = w.campaign(brand, "c", json!({}), start);
    // A spend in each of four months, received as they happen.
    let months = [
        ("jan", "2026-01-15T10:00:00Z"),
        ("feb", "2026-02-15T10:00:00Z"),
        ("mar", "2026-03-15T10:00:00Z"),
        ("apr", "2026-04-10T10:00:00Z"),
    ];
    for (i, (id, at)) in months.iter().enumerate() {
        let at = utc(at);
        if i == 0 {
            // January's partition (and the two after it) created during January: its log,
            // which arrived before (in the default partition), moves in.
            assert!(send(&w, c, (id, "10", at), at).unwrap());
            maintain(&w, at, None);
        } else {
            assert!(send(&w, c, (id, "10", at), at).unwrap());
        }
    }
    let now = utc("2026-04-10T12:00:00Z");
    if backend == Backend::Postgres {
        let names = partitions(&w);
        for month in ["2026_01", "2026_02", "2026_03"] {
            assert!(
                names.contains(&format!("spend_logs_{month}")),
                "{month}: {names:?}"
            );
        }
    }
    // Moved rows are the same events: replays are recognised, by the event id's own table.
    assert!(!send(&w, c, ("jan", "10", utc(months[0].1)), now).unwrap());
    // A late event of a month that never had a partition (the default partition's, on
    // PostgreSQL).
    assert!(send(&w, c, ("dec", "10", utc("2025-12-20T10:00:00Z")), now).unwrap());
    let lifetime = w.get(c, now).lifetime_spend;
    assert_eq!(lifetime.to_string(), "50.00");

    // A table an operator keeps beside the partitions (say, a month detached to archive it) is
    // not the job's to drop.
    if let DbConnection::Postgresql(c) = &mut *w.conn() {
        use diesel::prelude::*;
        diesel::sql_query("CREATE TABLE spend_log_partitions.archived_2025_12 (LIKE spend_logs)")
            .execute(c)
            .unwrap();
    }
    // Keep one whole month before the current one: December, January and February go.
    let changed = maintain(&w, now, Some(1));
    // PostgreSQL: April to June created, January and February dropped, December's row deleted
    // from the default partition; SQLite: three rows deleted.
    let expected = if backend == Backend::Postgres { 6 } else { 3 };
    assert_eq!(changed, expected);
    if backend == Backend::Postgres {
        let names = partitions(&w);
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with("2026_01") || n.ends_with("2026_02"))
        );
        for month in ["2026_03", "2026_04", "2026_05", "2026_06"] {
            assert!(
                names.contains(&format!("spend_logs_{month}")),
                "{month}: {names:?}"
            );
        }
    }
    if let DbConnection::Postgresql(c) = &mut *w.conn() {
        use diesel::prelude::*;
        diesel::sql_query("SELECT count(*) FROM spend_log_partitions.archived_2025_12")
            .execute(c)
            .expect("the operator's table is still there");
    }
    assert_eq!((exported(&w, "2026-01"), exported(&w, "2026-02")), (0, 0));
    assert_eq!(exported(&w, "2025-12"), 0);
    assert_eq!((exported(&w, "2026-03"), exported(&w, "2026-04")), (1, 1));
    let listed = spend::list(&mut w.conn(), c, None, None, Default::default()).unwrap();
    let ids: Vec<_> = listed.items.iter().map(|l| l.event_id.clone()).collect();
    assert_eq!(ids, [Some("apr".to_owned()), Some("mar".to_owned())]);
    // The totals are running sums, not sums of logs: nothing changes for the campaign.
    assert_eq!(w.get(c, now).lifetime_spend, lifetime);
    // A timezone change would re-read past spend from the logs, which are gone in part: refused
    // (it would have cut the lifetime total to the kept months'), and nothing changes.
    let changes = adbudget_core::forms::BrandChanges {
        timezone: Some(chrono_tz::Asia::Tokyo),
        ..Default::default()
    };
    let refused = adbudget_db::repo::brands::update(
        &mut w.conn(),
        brand,
        &changes,
        now,
        &adbudget_core::access::Author::cli(),
    )
    .unwrap_err();
    assert!(
        matches!(&refused, adbudget_db::error::DomainError::Validation(v) if v.field == "timezone"),
        "{refused:?}"
    );
    assert_eq!(w.get(c, now).lifetime_spend, lifetime);
    // verify checks what it can, and says from when.
    let report = verify::check(&mut w.conn(), now).unwrap();
    assert_eq!(
        report.kept_from,
        Some(utc("2026-03-01T00:00:00Z").naive_utc())
    );
    assert_eq!(report.spend_logs, 2);
    assert!(report.is_clean(), "{:#?}", report.findings);
    // ... and still finds a wrong total among the periods it checks.
    {
        use adbudget_db::schema::campaign_spend as s;
        use diesel::prelude::*;
        diesel::update(
            s::table
                .filter(s::campaign_id.eq(c))
                .filter(s::period.eq("2026-03")),
        )
        .set(s::amount.eq(s::amount + 1))
        .execute(&mut *w.conn())
        .unwrap();
    }
    let report = verify::check(&mut w.conn(), now).unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    {
        // Mended again: the month's total is part of the lifetime too.
        use adbudget_db::schema::campaign_spend as s;
        use diesel::prelude::*;
        diesel::update(
            s::table
                .filter(s::campaign_id.eq(c))
                .filter(s::period.eq("2026-03")),
        )
        .set(s::amount.eq(s::amount - 1))
        .execute(&mut *w.conn())
        .unwrap();
    }

    // An event of a dropped month (a replay of January's, or a new one) is refused: its id was
    // forgotten with its month, so it could not be told from a replay. Nothing is stored.
    for id in ["jan", "jan-late"] {
        let refused = send(&w, c, (id, "10", utc(months[0].1)), now).unwrap_err();
        assert!(
            matches!(&refused, adbudget_db::error::DomainError::Validation(v) if v.field == "occurred_at"),
            "{refused:?}"
        );
    }
    assert_eq!(exported(&w, "2026-01"), 0);
    assert_eq!(w.get(c, now).lifetime_spend, lifetime);
    // A kept month's id is still a replay.
    assert!(!send(&w, c, ("mar", "10", utc(months[2].1)), now).unwrap());
}

fn an_event_id_is_one_event_across_months(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let other = w.brand("O", "1000000", "10000000", "UTC", now);
    let c = w.campaign(brand, "c", json!({}), now);
    let d = w.campaign(other, "d", json!({}), now);
    maintain(&w, utc("2026-01-20T00:00:00Z"), None);
    let jan = utc("2026-01-20T10:00:00Z");
    let mar = utc("2026-03-10T10:00:00Z");
    assert!(send(&w, c, ("x", "5", jan), now).unwrap());
    // The same id in another month (another partition): not a second event.
    let again = send(&w, c, ("x", "5", mar), now).unwrap_err();
    assert!(
        matches!(&again, adbudget_db::error::DomainError::Conflict { field: Some(f), .. } if f == "event_id"),
        "a conflict on the event id: {again:?}"
    );
    assert!(!send(&w, c, ("x", "5", jan), now).unwrap());
    // Another brand's connector may use it.
    assert!(send(&w, d, ("x", "5", mar), now).unwrap());
    // A batch (PostgreSQL's step-by-step path) sees the same: 120 events, one a replay of
    // January's.
    let mut list: Vec<(String, &str, DateTime<Utc>)> =
        (0..119).map(|i| (format!("b{i}"), "1", mar)).collect();
    list.push(("x".to_owned(), "5", jan));
    let borrowed: Vec<(&str, &str, DateTime<Utc>)> =
        list.iter().map(|(i, a, t)| (i.as_str(), *a, *t)).collect();
    let recorded =
        spend::record(&mut w.conn(), &events(c, &borrowed, now), now, Mode::Batch).unwrap();
    let replays = recorded
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Replayed(_)))
        .count();
    assert_eq!(replays, 1);
    assert_eq!(w.get(c, now).lifetime_spend.to_string(), "124.00");
    w.assert_verified(now);
}

fn a_deleted_campaign_gives_its_event_ids_back(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-03-10T12:00:00Z");
    let brand = w.brand("B", "1000000", "10000000", "UTC", now);
    let c = w.campaign(brand, "c", json!({}), now);
    assert!(send(&w, c, ("d1", "5", now), now).unwrap());
    campaigns::delete(&mut w.conn(), c, now, &adbudget_core::access::Author::cli()).unwrap();
    let c2 = w.campaign(brand, "c2", json!({}), now);
    assert!(send(&w, c2, ("d1", "7", now), now).unwrap());
    assert!(!send(&w, c2, ("d1", "7", now), now).unwrap());
}
