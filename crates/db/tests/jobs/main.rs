//! The scheduled jobs' effects on real databases (SQLite and PostgreSQL), at simulated instants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adbudget_core::forms::{CreateBrand, CreateCampaign, SpendEvent};
use adbudget_core::jobs::{JobKind, JobReport};
use adbudget_core::money::{Money, NonNegativeMoney, PositiveMoney};
use adbudget_core::views::Campaign;
use adbudget_db::jobs;
use adbudget_db::repo::{brands, campaigns, spend, verify};
use adbudget_db::{self as db, DbPool};
use adbudget_testing::{Backend, TestDatabase};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

mod deletes;
mod events;
mod flights;
mod group_commit;
mod lifetime;
mod migrations;
mod pacing;
mod race;
mod rollover;
mod schedules;
mod spend_logs;

pub(crate) use adbudget_testing::on_both_databases;

pub struct World {
    pub pool: DbPool,
    db: TestDatabase,
}

pub fn world(backend: Backend) -> World {
    let database = TestDatabase::create(backend).unwrap();
    World {
        pool: db::connect(&database.url, 8).unwrap(),
        db: database,
    }
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn money(s: &str) -> NonNegativeMoney {
    NonNegativeMoney(Money::parse_non_negative(s).unwrap())
}

impl World {
    pub fn url(&self) -> &str {
        &self.db.url
    }

    pub fn conn(&self) -> db::PooledConn {
        db::get(&self.pool).unwrap()
    }

    pub fn brand(
        &self,
        name: &str,
        daily: &str,
        monthly: &str,
        tz: &str,
        now: DateTime<Utc>,
    ) -> i64 {
        let form = CreateBrand {
            name: name.into(),
            daily_budget: money(daily),
            monthly_budget: money(monthly),
            timezone: Some(tz.into()),
            alert_thresholds: None,
        };
        brands::create(
            &mut self.conn(),
            &form.validate().unwrap(),
            now,
            &adbudget_core::access::Author::cli(),
        )
        .unwrap()
        .id
    }

    pub fn campaign(
        &self,
        brand_id: i64,
        name: &str,
        extra: serde_json::Value,
        now: DateTime<Utc>,
    ) -> i64 {
        let get = |k: &str| extra.get(k).cloned();
        let form = CreateCampaign {
            brand_id,
            name: name.into(),
            daily_cap: get("daily_cap").map(|v| money(v.as_str().unwrap())),
            monthly_cap: get("monthly_cap").map(|v| money(v.as_str().unwrap())),
            dayparting: get("dayparting"),
            manually_paused: get("manually_paused").and_then(|v| v.as_bool()),
            lifetime_cap: get("lifetime_cap").map(|v| money(v.as_str().unwrap())),
            flight_start: get("flight_start").map(|v| v.as_str().unwrap().parse().unwrap()),
            flight_end: get("flight_end").map(|v| v.as_str().unwrap().parse().unwrap()),
        };
        campaigns::create(
            &mut self.conn(),
            &form.validate().unwrap(),
            now,
            &adbudget_core::access::Author::cli(),
        )
        .unwrap()
        .id
    }

    /// Records spend that occurred at `at`, received at `now`.
    pub fn spend(&self, campaign_id: i64, amount: &str, at: DateTime<Utc>, now: DateTime<Utc>) {
        let event = SpendEvent {
            campaign_id,
            amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
            occurred_at: Some(at),
            event_id: None,
        };
        spend::record(
            &mut self.conn(),
            &[event.validate(now).unwrap()],
            now,
            spend::Mode::Single,
        )
        .unwrap();
    }

    pub fn get(&self, id: i64, now: DateTime<Utc>) -> Campaign {
        campaigns::get(&mut self.conn(), id, now).unwrap()
    }

    pub fn reasons(&self, id: i64, now: DateTime<Utc>) -> Vec<&'static str> {
        self.get(id, now).pause_reasons.names()
    }

    pub fn run(&self, kind: JobKind, now: DateTime<Utc>) -> JobReport {
        jobs::run(&mut self.conn(), kind, now, &Default::default()).unwrap()
    }

    pub fn history_len(&self, id: i64) -> usize {
        campaigns::history(&mut self.conn(), id, Default::default())
            .unwrap()
            .items
            .len()
    }

    pub fn assert_verified(&self, now: DateTime<Utc>) {
        let report = verify::check(&mut self.conn(), now).unwrap();
        assert!(report.is_clean(), "verify found: {:#?}", report.findings);
    }
}

on_both_databases!(
    apply_dayparting_flips_exactly_the_right_campaigns,
    enforce_budgets_repairs_drift,
    reconcile_spans_chunks
);

/// More campaigns than two chunks (20,000): drift planted in the first, middle and last
/// chunk is found and repaired, and a second run finds nothing.
fn reconcile_spans_chunks(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-11-16T12:00:00Z");
    let ids = adbudget_testing::seed(&mut w.conn(), 450, 100, |_| {}).unwrap();
    assert_eq!(ids.len(), 45_000);
    // The first run sets every campaign outside its window: thousands of changes, whose history
    // rows PostgreSQL receives by COPY (SQLite by INSERT), one per change, as the rule said.
    let first = w.run(JobKind::EnforceBudgets, now);
    assert!(first.changed > 1000, "{} changed", first.changed);
    {
        use adbudget_db::schema::{campaign_status_history as h, campaigns as c};
        use diesel::prelude::*;
        let rows: Vec<(i64, bool, i32, String, i32)> = h::table
            .inner_join(c::table.on(c::id.eq(h::campaign_id)))
            .select((
                h::campaign_id,
                h::is_active,
                h::pause_reasons,
                h::cause,
                c::pause_reasons,
            ))
            .load(&mut *w.conn())
            .unwrap();
        assert_eq!(rows.len(), first.changed);
        for (id, active, reasons, cause, now_reasons) in rows {
            assert_eq!(
                (reasons, active),
                (now_reasons, now_reasons == 0),
                "campaign {id}"
            );
            assert_eq!(cause, "enforce_budgets");
        }
        // And one `campaign.paused` event each, naming its campaign (PostgreSQL streams these
        // by COPY too).
        use adbudget_db::schema::events as e;
        let events: Vec<(Option<i64>, String)> = e::table
            .select((e::campaign_id, e::data))
            .filter(e::event_type.eq("campaign.paused"))
            .load(&mut *w.conn())
            .unwrap();
        assert_eq!(events.len(), first.changed);
        for (campaign, data) in events {
            let data: serde_json::Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["campaign"]["id"].as_i64(), campaign);
            assert_eq!(data["cause"], "enforce_budgets");
        }
    }
    let picked = [ids[0], ids[19_999], ids[20_000], ids[44_999]];
    for id in picked {
        adbudget_testing::corrupt_state(&mut w.conn(), id, 1).unwrap();
    }
    let report = w.run(JobKind::EnforceBudgets, now);
    assert_eq!(report.changed, 4);
    for id in picked {
        assert!(
            w.reasons(id, now).iter().all(|r| *r != "manual"),
            "campaign {id} repaired"
        );
    }
    assert_eq!(w.run(JobKind::EnforceBudgets, now).changed, 0);
    // The resets page through their selection the same way.
    for id in ids.iter().step_by(4999) {
        adbudget_testing::corrupt_state(&mut w.conn(), *id, 2).unwrap();
    }
    assert_eq!(
        w.run(JobKind::ResetDaily, now).changed,
        ids.iter().step_by(4999).count()
    );
    w.assert_verified(now);
}

fn apply_dayparting_flips_exactly_the_right_campaigns(backend: Backend) {
    let w = world(backend);
    // Monday 2026-11-16, 09:30 UTC.
    let t0 = utc("2026-11-16T09:30:00Z");
    let b = w.brand("Acme", "100", "1000", "UTC", t0);
    let morning = w.campaign(
        b,
        "morning",
        json!({"dayparting": [{"start": "09:00", "end": "10:00"}]}),
        t0,
    );
    let late = w.campaign(
        b,
        "late",
        json!({"dayparting": [{"start": "10:00", "end": "11:00"}]}),
        t0,
    );
    let always = w.campaign(b, "always", json!({}), t0);
    let manual = w.campaign(
        b,
        "manual",
        json!({"manually_paused": true, "dayparting": [{"start": "09:00", "end": "10:00"}]}),
        t0,
    );
    let weekend = w.campaign(
        b,
        "weekend",
        json!({"dayparting": [{"days": ["sat", "sun"], "start": "10:00", "end": "11:00"}]}),
        t0,
    );
    assert_eq!(w.reasons(morning, t0), Vec::<&str>::new());
    assert_eq!(w.reasons(late, t0), ["dayparting"]);
    assert_eq!(w.reasons(manual, t0), ["manual"]);
    let before: Vec<usize> = [morning, late, always, manual, weekend]
        .iter()
        .map(|c| w.history_len(*c))
        .collect();

    // Nothing opens or closes at 09:59.
    assert_eq!(
        w.run(JobKind::ApplyDayparting, utc("2026-11-16T09:59:59Z"))
            .changed,
        0
    );
    // 10:00: morning closes, late opens, manual gains the dayparting reason.
    let t1 = utc("2026-11-16T10:00:00Z");
    let report = w.run(JobKind::ApplyDayparting, t1);
    assert_eq!((report.changed, report.activated, report.paused), (3, 1, 1));
    assert_eq!(w.reasons(morning, t1), ["dayparting"]);
    assert!(w.get(late, t1).is_active);
    assert!(w.get(always, t1).is_active);
    assert_eq!(w.reasons(manual, t1), ["manual", "dayparting"]);
    assert_eq!(
        w.reasons(weekend, t1),
        ["dayparting"],
        "Monday is not a weekend day"
    );
    let after: Vec<usize> = [morning, late, always, manual, weekend]
        .iter()
        .map(|c| w.history_len(*c))
        .collect();
    assert_eq!(
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
        [1, 1, 0, 1, 0],
        "one history row per change"
    );
    // Idempotent: the same minute again changes nothing.
    assert_eq!(
        w.run(JobKind::ApplyDayparting, utc("2026-11-16T10:00:30Z"))
            .changed,
        0
    );
    // Saturday 10:00: the weekend window opens.
    assert!(
        w.run(JobKind::ApplyDayparting, utc("2026-11-21T10:00:00Z"))
            .activated
            >= 1
    );
    assert!(w.get(weekend, utc("2026-11-21T10:00:00Z")).is_active);
    w.assert_verified(utc("2026-11-21T10:00:00Z"));
}

fn enforce_budgets_repairs_drift(backend: Backend) {
    use diesel::prelude::*;
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "50", "1000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let d = w.campaign(b, "d", json!({}), t);
    w.spend(c, "50", t, t);
    assert_eq!(w.reasons(d, t), ["brand_daily_budget"]);
    // Someone edits the database by hand: d looks active again.
    diesel::sql_query(format!(
        "UPDATE campaigns SET pause_reasons = 0 WHERE id = {d}"
    ))
    .execute(&mut *w.conn())
    .unwrap();
    assert!(
        !verify::check(&mut w.conn(), t).unwrap().is_clean(),
        "verify sees the drift"
    );
    let report = w.run(JobKind::EnforceBudgets, t);
    assert_eq!(report.changed, 1);
    assert_eq!(w.reasons(d, t), ["brand_daily_budget"]);
    let history = campaigns::history(&mut w.conn(), d, Default::default()).unwrap();
    assert_eq!(history.items[0].cause, "enforce_budgets");
    assert_eq!(
        w.run(JobKind::EnforceBudgets, t).changed,
        0,
        "a run that changes nothing writes nothing"
    );
    w.assert_verified(t);
}

#[test]
fn instants_are_what_they_say() {
    assert_eq!(
        utc("2026-11-16T09:30:00Z"),
        Utc.with_ymd_and_hms(2026, 11, 16, 9, 30, 0).unwrap()
    );
}
