//! A campaign's lifetime total kept as its carried total plus its month rows from its brand's
//! mark on (`repo::lifetime`, migration 000015), on real databases at fixed instants: exact
//! before and after `reset_monthly` folds a month, for late events of folded months, reversals,
//! a timezone change, a brand never folded, on both spend paths (one event; a batch of 101,
//! PostgreSQL's stepwise path).

use adbudget_core::access::{Author, Brands};
use adbudget_core::forms::SpendEvent;
use adbudget_core::jobs::JobKind;
use adbudget_core::money::{Money, PositiveMoney};
use adbudget_core::views::Campaign;
use adbudget_db::repo::spend;
use adbudget_testing::Backend;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use crate::{World, on_both_databases, utc, world};

on_both_databases!(
    late_events_of_folded_months_count_toward_the_lifetime,
    the_lifetime_is_exact_while_the_fold_is_behind,
    each_brand_folds_at_its_own_month_start,
    a_brand_never_folded_reads_its_lifetime_from_its_months,
    a_timezone_change_carries_the_months_before_the_mark_again,
    a_brand_stored_before_the_money_limits_is_not_folded,
    a_fold_committed_while_spend_waits_is_counted_once,
);

fn micros(s: &str) -> Money {
    Money::parse_non_negative(s).unwrap()
}

/// Records `events` (campaign, amount, occurred at) as one call; returns the campaigns answered.
fn record(w: &World, events: &[(i64, &str, DateTime<Utc>)], now: DateTime<Utc>) -> Vec<Campaign> {
    let valid: Vec<_> = events
        .iter()
        .map(|(c, amount, at)| {
            SpendEvent {
                campaign_id: *c,
                amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
                occurred_at: Some(*at),
                event_id: None,
            }
            .validate(now)
            .unwrap()
        })
        .collect();
    let mode = if valid.len() == 1 {
        spend::Mode::Single
    } else {
        spend::Mode::Batch
    };
    spend::record(&mut w.conn(), &valid, now, mode)
        .unwrap()
        .campaigns
}

/// A brand's mark and a campaign's carried total as stored.
fn stored(w: &World, brand: i64, campaign: i64) -> (String, i64) {
    use adbudget_db::schema::{brands, campaigns};
    let mut conn = w.conn();
    let mark = brands::table
        .find(brand)
        .select(brands::carried_before)
        .first(&mut *conn)
        .unwrap();
    let carried = campaigns::table
        .find(campaign)
        .select(campaigns::lifetime_carried)
        .first(&mut *conn)
        .unwrap();
    (mark, carried)
}

/// A batch of 101 events (over PostgreSQL's one-statement path's 100) of `amount` each at `at`,
/// with the `late` events added.
fn batch_of_101<'a>(
    c: i64,
    amount: &'a str,
    at: DateTime<Utc>,
    late: &[(i64, &'a str, DateTime<Utc>)],
) -> Vec<(i64, &'a str, DateTime<Utc>)> {
    let mut events = vec![(c, amount, at); 101 - late.len()];
    events.extend_from_slice(late);
    events
}

fn late_events_of_folded_months_count_toward_the_lifetime(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-01-05T00:00:00Z");
    let brand = w.brand("L", "100000", "1000000", "UTC", created);
    let c = w.campaign(brand, "c", json!({"lifetime_cap": "500"}), created);
    let other = w.campaign(brand, "o", json!({}), created);
    assert_eq!(stored(&w, brand, c), ("2026-01".to_owned(), 0));
    let jan = utc("2026-01-20T10:00:00Z");
    w.spend(c, "100", jan, jan);
    // January's 101 events on the batch path: 101 × 1 for the other campaign.
    record(&w, &batch_of_101(other, "1", jan, &[]), jan);

    // February begins: `reset_monthly` folds January into the carried total and moves the mark.
    let feb = utc("2026-02-01T00:05:00Z");
    w.run(JobKind::ResetMonthly, feb);
    assert_eq!(stored(&w, brand, c), ("2026-02".to_owned(), 100_000_000));
    assert_eq!(stored(&w, brand, other).1, 101_000_000);
    assert_eq!(w.get(c, feb).lifetime_spend, micros("100"));
    assert_eq!(w.get(c, feb).monthly_spend, micros("0"));

    // February's spend and a late event of January, one call each way.
    let feb10 = utc("2026-02-10T10:00:00Z");
    let answered = record(&w, &[(c, "150", feb10)], feb10);
    assert_eq!(answered[0].lifetime_spend, micros("250"));
    let answered = record(&w, &[(c, "50", utc("2026-01-31T23:00:00Z"))], feb10);
    assert_eq!(answered[0].lifetime_spend, micros("300"));
    assert_eq!(stored(&w, brand, c).1, 150_000_000);
    // The batch path: 100 of February's and one of January's for the capped campaign, which
    // reaches its cap of 500 (300 + 100 × 1 + 100) only with the late one counted.
    let late_at = utc("2026-01-15T10:00:00Z");
    let batch = batch_of_101(c, "1", feb10, &[(c, "100", late_at)]);
    let answered = record(&w, &batch, feb10);
    assert_eq!(answered[0].lifetime_spend, micros("500"));
    assert_eq!(stored(&w, brand, c).1, 250_000_000);
    assert_eq!(w.reasons(c, feb10), ["campaign_lifetime_cap"]);
    let seen = w.get(c, feb10);
    assert_eq!(
        (seen.lifetime_spend, seen.monthly_spend),
        (micros("500"), micros("250"))
    );
    w.assert_verified(feb10);

    // Reversing a late event of a folded month lowers the carried total, and the lifetime.
    let late = spend::list(&mut w.conn(), c, None, None, Default::default())
        .unwrap()
        .items
        .into_iter()
        .find(|l| l.occurred_at == late_at)
        .unwrap();
    spend::reverse(
        &mut w.conn(),
        late.id,
        "test",
        &Brands::All,
        feb10,
        &Author::cli(),
    )
    .unwrap();
    assert_eq!(stored(&w, brand, c).1, 150_000_000);
    assert_eq!(w.get(c, feb10).lifetime_spend, micros("400"));
    assert!(w.reasons(c, feb10).is_empty());
    // Folding again (a second run, then March's) keeps every total.
    w.run(JobKind::ResetMonthly, feb10);
    let mar = utc("2026-03-01T00:00:00Z");
    w.run(JobKind::ResetMonthly, mar);
    assert_eq!(stored(&w, brand, c), ("2026-03".to_owned(), 400_000_000));
    assert_eq!(w.get(c, mar).lifetime_spend, micros("400"));
    assert_eq!(w.get(other, mar).lifetime_spend, micros("101"));
    w.assert_verified(mar);
}

/// Before `reset_monthly` has run in a new month (or while it does not run at all), the months
/// from the mark on are all counted: the mark two months behind, the lifetime still exact, and
/// the cap judged on it.
fn the_lifetime_is_exact_while_the_fold_is_behind(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-01-05T00:00:00Z");
    let brand = w.brand("B", "100000", "1000000", "UTC", created);
    let c = w.campaign(brand, "c", json!({"lifetime_cap": "300"}), created);
    for (amount, at) in [
        ("100", "2026-01-20T10:00:00Z"),
        ("100", "2026-02-20T10:00:00Z"),
    ] {
        w.spend(c, amount, utc(at), utc(at));
    }
    let mar = utc("2026-03-20T10:00:00Z");
    assert_eq!(stored(&w, brand, c), ("2026-01".to_owned(), 0));
    assert_eq!(w.get(c, mar).lifetime_spend, micros("200"));
    let answered = record(&w, &batch_of_101(c, "0.5", mar, &[]), mar);
    assert_eq!(answered[0].lifetime_spend, micros("250.5"));
    assert!(w.reasons(c, mar).is_empty());
    let answered = record(&w, &[(c, "49.5", mar)], mar);
    assert_eq!(answered[0].lifetime_spend, micros("300"));
    assert_eq!(w.reasons(c, mar), ["campaign_lifetime_cap"]);
    w.run(JobKind::EnforceBudgets, mar);
    assert_eq!(w.reasons(c, mar), ["campaign_lifetime_cap"]);
    w.assert_verified(mar);
    // The late fold carries both months at once.
    w.run(JobKind::ResetMonthly, mar);
    assert_eq!(stored(&w, brand, c), ("2026-03".to_owned(), 200_000_000));
    assert_eq!(w.get(c, mar).lifetime_spend, micros("300"));
    w.assert_verified(mar);
}

/// Each brand's mark moves at its own local month start: at 00:10 UTC on March 1st Tokyo is in
/// March and New York still in February.
fn each_brand_folds_at_its_own_month_start(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-02-05T00:00:00Z");
    let tokyo = w.brand("T", "100000", "1000000", "Asia/Tokyo", created);
    let new_york = w.brand("N", "100000", "1000000", "America/New_York", created);
    let (t, n) = (
        w.campaign(tokyo, "t", json!({}), created),
        w.campaign(new_york, "n", json!({}), created),
    );
    let feb = utc("2026-02-20T10:00:00Z");
    w.spend(t, "10", feb, feb);
    w.spend(n, "20", feb, feb);
    let now = utc("2026-03-01T00:10:00Z");
    w.run(JobKind::ResetMonthly, now);
    assert_eq!(stored(&w, tokyo, t), ("2026-03".to_owned(), 10_000_000));
    assert_eq!(stored(&w, new_york, n), ("2026-02".to_owned(), 0));
    let later = utc("2026-03-01T05:00:00Z");
    w.run(JobKind::ResetMonthly, later);
    assert_eq!(stored(&w, new_york, n), ("2026-03".to_owned(), 20_000_000));
    assert_eq!(
        (
            w.get(t, later).lifetime_spend,
            w.get(n, later).lifetime_spend
        ),
        (micros("10"), micros("20"))
    );
    w.assert_verified(later);
}

/// A brand whose mark was never set (`''`, as migration 000015's default leaves a brand inserted
/// by hand) has its lifetime summed from all its months until its first fold.
fn a_brand_never_folded_reads_its_lifetime_from_its_months(backend: Backend) {
    use adbudget_db::schema::brands;
    let w = world(backend);
    let created = utc("2026-01-05T00:00:00Z");
    let brand = w.brand("U", "100000", "1000000", "UTC", created);
    let c = w.campaign(brand, "c", json!({"lifetime_cap": "250"}), created);
    diesel::update(brands::table.find(brand))
        .set(brands::carried_before.eq(""))
        .execute(&mut *w.conn())
        .unwrap();
    let (jan, feb) = (utc("2026-01-20T10:00:00Z"), utc("2026-02-20T10:00:00Z"));
    w.spend(c, "100", jan, jan);
    let answered = record(&w, &batch_of_101(c, "1", feb, &[]), feb);
    assert_eq!(answered[0].lifetime_spend, micros("201"));
    let answered = record(&w, &[(c, "49", feb)], feb);
    assert_eq!(answered[0].lifetime_spend, micros("250"));
    assert_eq!(w.reasons(c, feb), ["campaign_lifetime_cap"]);
    w.assert_verified(feb);
    w.run(JobKind::ResetMonthly, feb);
    assert_eq!(stored(&w, brand, c), ("2026-02".to_owned(), 100_000_000));
    assert_eq!(w.get(c, feb).lifetime_spend, micros("250"));
    w.assert_verified(feb);
}

/// A timezone change re-reads the past from the logs: the months before the mark, in the new
/// timezone, are carried again.
fn a_timezone_change_carries_the_months_before_the_mark_again(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-01-05T00:00:00Z");
    let brand = w.brand("Z", "100000", "1000000", "UTC", created);
    let c = w.campaign(brand, "c", json!({}), created);
    // 20:00 UTC on January 31st is February 1st in Tokyo.
    w.spend(
        c,
        "10",
        utc("2026-01-20T10:00:00Z"),
        utc("2026-01-20T10:00:00Z"),
    );
    w.spend(
        c,
        "20",
        utc("2026-01-31T20:00:00Z"),
        utc("2026-01-31T20:00:00Z"),
    );
    let feb = utc("2026-02-10T10:00:00Z");
    w.run(JobKind::ResetMonthly, feb);
    assert_eq!(stored(&w, brand, c).1, 30_000_000);
    let changes = adbudget_core::forms::BrandChanges {
        timezone: Some(chrono_tz::Asia::Tokyo),
        ..Default::default()
    };
    adbudget_db::repo::brands::update(&mut w.conn(), brand, &changes, feb, &Author::cli()).unwrap();
    assert_eq!(stored(&w, brand, c), ("2026-02".to_owned(), 10_000_000));
    let seen = w.get(c, feb);
    assert_eq!(
        (seen.lifetime_spend, seen.monthly_spend),
        (micros("30"), micros("20"))
    );
    w.assert_verified(feb);
}

/// A brand whose budget was stored before migration 000004's limits (an update of its row is
/// refused: PostgreSQL's `NOT VALID` constraint, SQLite's trigger) is left out of the fold, and
/// the brands folded with it are not held back; both lifetimes stay exact.
fn a_brand_stored_before_the_money_limits_is_not_folded(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-01-05T00:00:00Z");
    let old = w.brand("Old", "100000", "1000000", "UTC", created);
    let new = w.brand("New", "100000", "1000000", "UTC", created);
    let (o, n) = (
        w.campaign(old, "o", json!({"lifetime_cap": "1000"}), created),
        w.campaign(new, "n", json!({}), created),
    );
    let jan = utc("2026-01-20T10:00:00Z");
    w.spend(o, "100", jan, jan);
    w.spend(n, "200", jan, jan);
    // The old budget, written past the limit as before the limits existed.
    let (lift, set, restore) = match backend {
        Backend::Postgres => (
            "ALTER TABLE brands DROP CONSTRAINT brands_daily_budget_limit",
            "UPDATE brands SET daily_budget = 2000000000000000 WHERE name = 'Old'",
            "ALTER TABLE brands ADD CONSTRAINT brands_daily_budget_limit \
             CHECK (daily_budget <= 1000000000000000) NOT VALID",
        ),
        Backend::Sqlite => (
            "DROP TRIGGER brands_budget_limit_update",
            "UPDATE brands SET daily_budget = 2000000000000000 WHERE name = 'Old'",
            "CREATE TRIGGER brands_budget_limit_update BEFORE UPDATE ON brands \
             WHEN NEW.daily_budget > 1000000000000000 OR NEW.monthly_budget > 1000000000000000 \
             BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: brands budget limit'); END",
        ),
    };
    for sql in [lift, set, restore] {
        diesel::sql_query(sql).execute(&mut *w.conn()).unwrap();
    }
    let feb = utc("2026-02-01T00:00:00Z");
    w.run(JobKind::ResetMonthly, feb);
    assert_eq!(stored(&w, old, o), ("2026-01".to_owned(), 0));
    assert_eq!(stored(&w, new, n), ("2026-02".to_owned(), 200_000_000));
    let feb10 = utc("2026-02-10T10:00:00Z");
    let answered = record(&w, &[(o, "900", feb10)], feb10);
    assert_eq!(answered[0].lifetime_spend, micros("1000"));
    assert_eq!(w.reasons(o, feb10), ["campaign_lifetime_cap"]);
    assert_eq!(w.get(n, feb10).lifetime_spend, micros("200"));
    w.assert_verified(feb10);
}

/// A fold that commits while spend waits for the brand's lock (on both spend paths: one event,
/// and a batch of 101) is seen whole by the spend: the new mark with the new carried total, so
/// January is counted once. The fold's writes are made by hand in a transaction held open.
fn a_fold_committed_while_spend_waits_is_counted_once(backend: Backend) {
    let w = world(backend);
    let created = utc("2026-01-05T00:00:00Z");
    let jan = utc("2026-01-20T10:00:00Z");
    let feb = utc("2026-02-01T00:10:00Z");
    for (events, lifetime) in [(1, "101"), (101, "201")] {
        let brand = w.brand(&format!("W{events}"), "100000", "1000000", "UTC", created);
        let c = w.campaign(brand, "c", json!({}), created);
        w.spend(c, "100", jan, jan);
        // What `lifetime::fold` writes for January, under the brand's lock.
        let mut conn = crate::deletes::holding_brand(&w, backend, brand);
        for q in [
            format!(
                "UPDATE campaigns SET lifetime_carried = lifetime_carried + \
                     (SELECT amount FROM campaign_spend \
                      WHERE campaign_id = {c} AND period = '2026-01') \
                 WHERE id = {c}"
            ),
            format!("UPDATE brands SET carried_before = '2026-02' WHERE id = {brand}"),
        ] {
            diesel::sql_query(q).execute(&mut *conn).unwrap();
        }
        let answered = std::thread::scope(|s| {
            let spend = s.spawn(|| record(&w, &vec![(c, "1", feb); events], feb));
            crate::deletes::commit(&w, backend, conn);
            spend.join().unwrap()
        });
        assert_eq!(answered[0].lifetime_spend, micros(lifetime));
        assert_eq!(stored(&w, brand, c), ("2026-02".to_owned(), 100_000_000));
        assert_eq!(w.get(c, feb).lifetime_spend, micros(lifetime));
    }
    w.assert_verified(feb);
}
