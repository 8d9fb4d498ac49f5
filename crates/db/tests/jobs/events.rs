//! The outbox and the change feed (SPEC §9) on both databases: which events a change writes, that
//! thresholds fire once, and that a consumer following the cursor receives every event exactly
//! once however transactions interleave.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use adbudget_core::access::Author;
use adbudget_core::events::{Cursor, Envelope, EventType};
use adbudget_core::forms::SpendEvent;
use adbudget_core::jobs::JobKind;
use adbudget_core::money::{Money, PositiveMoney};
use adbudget_db::repo::events::{self, FeedQuery};
use adbudget_db::repo::spend;
use adbudget_testing::Backend;
use diesel::prelude::*;
use serde_json::json;

use crate::{World, on_both_databases, utc, world};

on_both_databases!(
    reaching_a_budget_pauses_with_an_event_and_a_new_day_resumes,
    thresholds_fire_once_each,
    a_batch_crossing_two_thresholds_fires_both,
    changed_thresholds_never_fire_for_what_was_passed,
    a_reversal_is_an_event,
    concurrent_writers_never_make_the_feed_skip,
    prune_events_keeps_the_retention,
);

/// Every event after `after`, following the cursor page by page (as a consumer does).
fn follow(w: &World, after: Cursor, q: FeedQuery) -> (Vec<Envelope>, Cursor) {
    let mut cursor = after;
    let mut all = Vec::new();
    loop {
        let page = events::feed(
            &mut w.conn(),
            &FeedQuery {
                after: cursor,
                limit: 7,
                ..q.clone()
            },
        )
        .unwrap();
        assert!(page.next_cursor >= cursor, "the cursor never goes back");
        cursor = page.next_cursor;
        if page.items.is_empty() {
            return (all, cursor);
        }
        all.extend(page.items);
    }
}

/// Follows the cursor until `n` events have come (other tests' transactions on the same
/// PostgreSQL server hold the horizon back for a moment), at most 60 s.
fn follow_until(w: &World, after: Cursor, n: usize) -> (Vec<Envelope>, Cursor) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut all, mut cursor) = (Vec::new(), after);
    while all.len() < n && std::time::Instant::now() < deadline {
        let (page, next) = follow(w, cursor, FeedQuery::default());
        all.extend(page);
        cursor = next;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (all, cursor)
}

/// Every event in the feed, once the feed has caught up with the table (on PostgreSQL other
/// tests' transactions on the same server hold its horizon back for a moment).
fn all_events(w: &World) -> Vec<Envelope> {
    use adbudget_db::schema::events as e;
    let stored: i64 = e::table
        .filter(e::event_type.ne("ping"))
        .count()
        .get_result(&mut *w.conn())
        .unwrap();
    follow_until(w, Cursor::default(), stored as usize).0
}

fn of_type(events: &[Envelope], t: EventType) -> Vec<&Envelope> {
    events.iter().filter(|e| e.event_type == t).collect()
}

fn reaching_a_budget_pauses_with_an_event_and_a_new_day_resumes(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    let brand = w.brand("B", "100", "10000", "Europe/Berlin", now);
    let c1 = w.campaign(brand, "one", json!({}), now);
    let c2 = w.campaign(brand, "two", json!({}), now);
    assert_eq!(w.get(c1, now).state_version, 0);
    w.spend(c1, "60", now, now);
    w.spend(c1, "40", now, now);
    let events = all_events(&w);
    let paused = of_type(&events, EventType::CampaignPaused);
    assert_eq!(paused.len(), 2, "both campaigns of the brand: {events:#?}");
    for e in &paused {
        assert_eq!(e.brand_id, Some(brand));
        assert_eq!(e.data["cause"], "spend");
        assert_eq!(e.data["previous_reasons"], json!([]));
        assert_eq!(e.data["state_version"], 1);
        assert_eq!(
            e.data["campaign"]["pause_reasons"],
            json!(["brand_daily_budget"])
        );
        assert_eq!(e.data["campaign"]["is_active"], false);
        assert!(e.id.starts_with("evt_"));
    }
    let ids: BTreeSet<i64> = paused
        .iter()
        .map(|e| e.data["campaign"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([c1, c2]));
    assert_eq!(w.get(c1, now).state_version, 1);

    // A pause for another reason on top is a new state version, but no event: still paused.
    let manual = adbudget_db::repo::campaigns::set_manual_pause(
        &mut w.conn(),
        c2,
        true,
        now,
        &Author::cli(),
    )
    .unwrap();
    assert_eq!(manual.state_version, 2);
    assert_eq!(of_type(&all_events(&w), EventType::CampaignPaused).len(), 2);

    // Berlin's next day: c1 resumes (c2 stays paused by hand).
    let tomorrow = utc("2026-12-01T23:01:00Z");
    w.run(JobKind::ResetDaily, tomorrow);
    let events = all_events(&w);
    let resumed = of_type(&events, EventType::CampaignResumed);
    assert_eq!(resumed.len(), 1, "{events:#?}");
    assert_eq!(resumed[0].data["campaign"]["id"], c1);
    assert_eq!(resumed[0].data["cause"], "reset_daily");
    assert_eq!(resumed[0].data["state_version"], 2);
    assert_eq!(
        resumed[0].data["previous_reasons"],
        json!(["brand_daily_budget"])
    );
    // The feed's order is the order things happened here (one writer at a time).
    let positions: Vec<&str> = events.iter().map(|e| e.event_type.name()).collect();
    assert_eq!(positions.last(), Some(&"campaign.resumed"), "{positions:?}");
}

fn thresholds(events: &[Envelope]) -> Vec<(String, String, u64)> {
    of_type(events, EventType::ThresholdReached)
        .into_iter()
        .map(|e| {
            let subject = match e.data["campaign_id"].as_i64() {
                Some(c) => format!("campaign:{c}"),
                None => format!("brand:{}", e.data["brand_id"]),
            };
            (
                subject,
                e.data["budget"].as_str().unwrap().to_owned(),
                e.data["threshold_percent"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn thresholds_fire_once_each(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    let brand = w.brand("B", "100", "1000", "UTC", now);
    let c = w.campaign(brand, "c", json!({"lifetime_cap": "300"}), now);
    for amount in ["30", "25", "10", "20", "5", "30"] {
        w.spend(c, amount, now, now);
    }
    // Day: 30, 55 (50 %), 65, 85 (80 %), 90, 120 (100 %). Month 12 % of 1000; lifetime 40 %.
    let events = all_events(&w);
    let b = format!("brand:{brand}");
    assert_eq!(
        thresholds(&events),
        vec![
            (b.clone(), "brand_daily_budget".into(), 50),
            (b.clone(), "brand_daily_budget".into(), 80),
            (b.clone(), "brand_daily_budget".into(), 100),
        ]
    );
    let hundred = of_type(&events, EventType::ThresholdReached)[2];
    assert_eq!(hundred.data["spend"], "120.00");
    assert_eq!(hundred.data["limit"], "100.00");
    assert_eq!(hundred.data["period"], "2026-12-01");
    assert_eq!(hundred.data["campaign_id"], serde_json::Value::Null);

    // A reversal of 30 takes the day back to 90 and new spend of 60 to 150, past 100 % again:
    // that has fired for this day already. The lifetime total goes 120, 90, 150: half its cap.
    let logs = spend::list(&mut w.conn(), c, None, None, Default::default()).unwrap();
    let biggest = logs.items.iter().find(|l| l.amount.to_string() == "30.00");
    spend::reverse(
        &mut w.conn(),
        biggest.unwrap().id,
        "double-counted",
        &Default::default(),
        now,
        &Author::cli(),
    )
    .unwrap();
    w.spend(c, "60", now, now);
    let again = thresholds(&all_events(&w));
    assert_eq!(
        again.len(),
        3 + 1,
        "only the lifetime cap's 50 % is new: {again:?}"
    );
    assert_eq!(
        again[3],
        (format!("campaign:{c}"), "campaign_lifetime_cap".into(), 50)
    );

    // The next day is a new period: its thresholds fire anew.
    let tomorrow = utc("2026-12-02T10:00:00Z");
    w.spend(c, "50", tomorrow, tomorrow);
    let next = thresholds(&all_events(&w));
    assert_eq!(next.len(), 5, "{next:?}");
    assert_eq!(next[4], (b, "brand_daily_budget".into(), 50));
}

fn a_batch_crossing_two_thresholds_fires_both(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    let brand = w.brand("B", "1000", "100000", "UTC", now);
    let c = w.campaign(brand, "c", json!({"daily_cap": "10"}), now);
    let events: Vec<_> = ["3", "3", "3"]
        .into_iter()
        .map(|a| {
            SpendEvent {
                campaign_id: c,
                amount: PositiveMoney(Money::parse_positive(a).unwrap()),
                occurred_at: Some(now),
                event_id: None,
            }
            .validate(now)
            .unwrap()
        })
        .collect();
    spend::record(&mut w.conn(), &events, now, spend::Mode::Batch).unwrap();
    let got = thresholds(&all_events(&w));
    let campaign = format!("campaign:{c}");
    assert_eq!(
        got,
        vec![
            (campaign.clone(), "campaign_daily_cap".into(), 50),
            (campaign.clone(), "campaign_daily_cap".into(), 80),
        ]
    );
    w.spend(c, "1", now, now);
    let got = thresholds(&all_events(&w));
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], (campaign, "campaign_daily_cap".into(), 100));
    let paused = of_type(&all_events(&w), EventType::CampaignPaused).len();
    assert_eq!(paused, 1, "the cap paused the campaign");
}

fn changed_thresholds_never_fire_for_what_was_passed(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    let brand = w.brand("B", "100", "100000", "UTC", now);
    let c = w.campaign(brand, "c", json!({}), now);
    w.spend(c, "40", now, now);
    let changes = adbudget_core::forms::UpdateBrand {
        alert_thresholds: Some(vec![10, 30, 45, 90]),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let updated =
        adbudget_db::repo::brands::update(&mut w.conn(), brand, &changes, now, &Author::cli())
            .unwrap();
    assert_eq!(updated.alert_thresholds.percents(), &[10, 30, 45, 90]);
    w.spend(c, "10", now, now);
    let got = thresholds(&all_events(&w));
    assert_eq!(
        got,
        vec![(format!("brand:{brand}"), "brand_daily_budget".into(), 45)],
        "10 % and 30 % were passed before the list changed"
    );
}

fn a_reversal_is_an_event(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    let brand = w.brand("B", "100", "100000", "UTC", now);
    let c = w.campaign(brand, "c", json!({}), now);
    w.spend(c, "100", now, now);
    let logs = spend::list(&mut w.conn(), c, None, None, Default::default()).unwrap();
    spend::reverse(
        &mut w.conn(),
        logs.items[0].id,
        "test spend",
        &Default::default(),
        now,
        &Author::cli(),
    )
    .unwrap();
    let events = all_events(&w);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.name()).collect();
    assert_eq!(
        &types[types.len() - 2..],
        ["campaign.resumed", "spend.reversed"],
        "{types:?}"
    );
    let reversed = events.last().unwrap();
    assert_eq!(reversed.data["reason"], "test spend");
    assert_eq!(reversed.data["spend"]["id"], logs.items[0].id);
    assert_eq!(reversed.data["reversal"]["amount"], "-100.00");
    assert_eq!(reversed.data["actor"]["kind"], "cli");
    // Filters: by type and by brand.
    let only = follow(
        &w,
        Cursor::default(),
        FeedQuery {
            event_type: Some(EventType::SpendReversed),
            ..Default::default()
        },
    )
    .0;
    assert_eq!(only.len(), 1);
    let other_brand = follow(
        &w,
        Cursor::default(),
        FeedQuery {
            brand_id: Some(brand + 1000),
            ..Default::default()
        },
    );
    assert!(other_brand.0.is_empty());
    assert!(
        other_brand.1 > Cursor::default(),
        "the cursor moves past what the filter left out"
    );
}

/// Inserts an event as a change would (the outbox's table, in the caller's transaction).
fn insert_event(conn: &mut adbudget_db::DbConnection, n: i64) {
    use adbudget_db::schema::events as e;
    diesel::insert_into(e::table)
        .values((
            e::event_type.eq("spend.reversed"),
            e::brand_id.eq(Some(1i64)),
            e::data.eq(json!({ "n": n }).to_string()),
            e::created_at.eq(utc("2026-12-01T10:00:00Z").naive_utc()),
        ))
        .execute(conn)
        .unwrap();
}

fn ns(events: &[Envelope]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.data["n"].as_i64().unwrap())
        .collect()
}

/// Writers commit in another order than they took their ids, while a consumer follows the
/// cursor: it receives every event exactly once. On PostgreSQL a transaction is held open with
/// its event written while a later one commits (a plain `id > cursor` feed serves the later event
/// and then never the held one); SQLite's writers take turns, and many threads race.
fn concurrent_writers_never_make_the_feed_skip(backend: Backend) {
    let w = world(backend);
    let mut before = 0;
    if backend == Backend::Postgres {
        before = 2;
        let mut held = adbudget_db::connect_one(w.url()).unwrap();
        let (tx_a, tx_b) = (
            std::sync::mpsc::channel::<()>(),
            std::sync::mpsc::channel::<()>(),
        );
        let url = w.url().to_owned();
        let holder = std::thread::spawn(move || {
            held.transaction::<_, diesel::result::Error, _>(|conn| {
                insert_event(conn, 1); // takes the smaller id
                tx_a.0.send(()).unwrap();
                tx_b.1.recv().unwrap(); // held open until told
                Ok(())
            })
            .unwrap();
            drop(url);
        });
        tx_a.1.recv().unwrap();
        insert_event(&mut w.conn(), 2); // commits first, with the larger id
        let (seen, cursor) = follow(&w, Cursor::default(), FeedQuery::default());
        assert!(
            seen.is_empty(),
            "event 2 waits while the older transaction runs: {:?}",
            ns(&seen)
        );
        tx_b.0.send(()).unwrap();
        holder.join().unwrap();
        let (rest, cursor) = follow_until(&w, cursor, 2);
        assert_eq!(ns(&rest), vec![1, 2], "both, in the feed's order, once");
        assert!(follow(&w, cursor, FeedQuery::default()).0.is_empty());
    }

    // Many writers and one consumer at once.
    let writers = 6;
    let per_writer = 40;
    let done = Arc::new(AtomicBool::new(false));
    let start = follow_until(&w, Cursor::default(), before).1;
    let seen = std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut cursor = start;
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let (page, next) = follow(&w, cursor, FeedQuery::default());
                cursor = next;
                seen.extend(ns(&page));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let missing = ((writers * per_writer) as usize).saturating_sub(seen.len());
            let (rest, cursor) = follow_until(&w, cursor, missing);
            seen.extend(ns(&rest));
            assert!(follow(&w, cursor, FeedQuery::default()).0.is_empty());
            seen
        });
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let w = &w;
                s.spawn(move || {
                    for i in 0..per_writer {
                        let n = 1000 + t * per_writer + i;
                        let mut conn = w.conn();
                        adbudget_db::write_transaction(&mut conn, |conn| {
                            insert_event(conn, n);
                            // Stay in the transaction a little, so that others commit meanwhile.
                            if i % 3 == 0 {
                                std::thread::sleep(std::time::Duration::from_millis(3));
                            }
                            Ok::<_, diesel::result::Error>(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        consumer.join().unwrap()
    });
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    let expected: Vec<i64> = (1000..1000 + writers * per_writer).collect();
    assert_eq!(sorted, expected, "every event exactly once");
}

fn prune_events_keeps_the_retention(backend: Backend) {
    let w = world(backend);
    let old = utc("2026-10-01T10:00:00Z");
    let now = utc("2026-12-01T10:00:00Z");
    let brand = w.brand("B", "100", "100000", "UTC", old);
    let c = w.campaign(brand, "c", json!({}), old);
    w.spend(c, "60", old, old);
    w.spend(c, "60", now, now);
    let before = all_events(&w);
    assert!(before.len() >= 2, "{before:#?}");
    let report = w.run(JobKind::PruneEvents, now);
    let after = all_events(&w);
    assert_eq!(report.changed, before.len() - after.len());
    assert!(report.changed >= 1);
    assert!(
        after
            .iter()
            .all(|e| e.created_at >= now - chrono::TimeDelta::days(30))
    );
    assert!(!after.is_empty(), "this month's events stay");
}
