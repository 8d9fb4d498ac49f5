//! Webhook deliveries to a real receiver (an HTTP server on a free port in the test), on both
//! databases: signatures that verify with the Standard Webhooks library, retries with the same
//! `webhook-id`, `410` disabling the endpoint, the address check at delivery, secret rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adbudget_core::access::{Author, Brands};
use adbudget_core::forms::{CreateBrand, CreateCampaign, SpendEvent};
use adbudget_core::jobs::{JobKind, JobSettings};
use adbudget_core::money::{Money, NonNegativeMoney, PositiveMoney};
use adbudget_core::webhooks::AttemptJob;
use adbudget_db::repo::webhooks::{self, NewEndpoint};
use adbudget_db::repo::{brands, campaigns, spend};
use adbudget_db::{self as db, DbPool};
use adbudget_testing::receiver::{Received, Receiver};
use adbudget_testing::{Backend, TestDatabase, on_both_databases};

struct World {
    pool: DbPool,
    _db: TestDatabase,
}

fn world(backend: Backend) -> World {
    let db = TestDatabase::create(backend).unwrap();
    World {
        pool: db::connect(&db.url, 4).unwrap(),
        _db: db,
    }
}

fn money(s: &str) -> NonNegativeMoney {
    NonNegativeMoney(Money::parse_non_negative(s).unwrap())
}

impl World {
    fn conn(&self) -> db::PooledConn {
        db::get(&self.pool).unwrap()
    }

    /// A brand with a daily budget of 10 and one campaign; returns the campaign's id.
    fn campaign(&self) -> i64 {
        let now = adbudget_core::forms::now();
        let brand = CreateBrand {
            name: "B".into(),
            daily_budget: money("10"),
            monthly_budget: money("1000"),
            timezone: None,
            alert_thresholds: Some(vec![100]),
        };
        let brand = brands::create(
            &mut self.conn(),
            &brand.validate().unwrap(),
            now,
            &Author::cli(),
        )
        .unwrap();
        let c = CreateCampaign {
            brand_id: brand.id,
            name: "c".into(),
            daily_cap: None,
            monthly_cap: None,
            dayparting: None,
            manually_paused: None,
            lifetime_cap: None,
            flight_start: None,
            flight_end: None,
        };
        campaigns::create(
            &mut self.conn(),
            &c.validate().unwrap(),
            now,
            &Author::cli(),
        )
        .unwrap()
        .id
    }

    fn spend(&self, campaign_id: i64, amount: &str) {
        let now = adbudget_core::forms::now();
        let e = SpendEvent {
            campaign_id,
            amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
            occurred_at: None,
            event_id: None,
        };
        spend::record(
            &mut self.conn(),
            &[e.validate(now).unwrap()],
            now,
            spend::Mode::Single,
        )
        .unwrap();
    }

    fn endpoint(&self, url: &str) -> (i64, String) {
        let new = NewEndpoint {
            url: url.to_owned(),
            ..Default::default()
        };
        let (e, secret) = webhooks::create(
            &mut self.conn(),
            &new,
            adbudget_core::forms::now(),
            &Author::cli(),
        )
        .unwrap();
        (e.id, secret)
    }

    /// A dispatch round at `now` (as the `dispatch_events` job runs it): the attempts handed out.
    fn dispatch_at(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<AttemptJob> {
        adbudget_db::jobs::run(
            &mut self.conn(),
            JobKind::DispatchEvents,
            now,
            &JobSettings::default(),
        )
        .unwrap()
        .deliveries
    }

    /// Dispatches until `n` attempts came out (PostgreSQL's feed horizon may hold events back
    /// for a moment while other tests' transactions run).
    fn dispatch_until(&self, n: usize) -> Vec<AttemptJob> {
        let mut jobs = Vec::new();
        for _ in 0..600 {
            jobs.extend(self.dispatch_at(adbudget_core::forms::now()));
            if jobs.len() >= n {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        jobs
    }

    async fn deliver(&self, jobs: &[AttemptJob], allow_private: bool) {
        for job in jobs {
            adbudget_worker::webhooks::deliver(self.pool.clone(), *job, allow_private)
                .await
                .unwrap();
        }
    }
}

on_both_databases!(
    a_pause_reaches_the_receiver_signed,
    a_receiver_that_was_down_gets_the_same_event_later,
    gone_disables_the_endpoint,
    private_addresses_are_refused_at_delivery,
    a_rotated_secret_signs_beside_the_new_one_for_a_day,
    three_days_of_failures_fail_the_delivery_and_disable_the_endpoint,
    a_lost_attempt_is_handed_out_again_when_its_lease_ends,
    redirects_are_not_followed,
);

fn verify(secret: &str, r: &Received) {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(r.body.as_bytes(), &r.headers)
        .unwrap_or_else(|e| panic!("signature of {}: {e}", r.body));
}

fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

fn a_pause_reaches_the_receiver_signed(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        let (_, secret) = w.endpoint(&receiver.url);
        let c = w.campaign();
        w.spend(c, "10");
        // The 100 % threshold and the pause, one delivery each.
        let jobs = w.dispatch_until(2);
        assert_eq!(jobs.len(), 2);
        w.deliver(&jobs, true).await;
        let got = receiver.received();
        assert_eq!(got.len(), 2);
        let mut types = Vec::new();
        for r in &got {
            verify(&secret, r);
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(r.headers["webhook-id"], body["id"].as_str().unwrap());
            assert_eq!(r.headers["content-type"], "application/json");
            types.push(body["type"].as_str().unwrap().to_owned());
            if body["type"] == "campaign.paused" {
                assert_eq!(body["data"]["campaign"]["id"], c);
                assert_eq!(body["data"]["state_version"], 1);
            }
        }
        types.sort();
        assert_eq!(types, ["budget.threshold_reached", "campaign.paused"]);
        // Delivered: nothing more is handed out, and the log says so.
        assert!(w.dispatch_at(adbudget_core::forms::now()).is_empty());
        let endpoints = webhooks::list(&mut w.conn(), &Brands::All).unwrap();
        assert!(endpoints[0].last_success_at.is_some());
        let log = webhooks::deliveries(&mut w.conn(), endpoints[0].id, &Brands::All, 10).unwrap();
        assert!(
            log.iter()
                .all(|d| d.status == "delivered" && d.attempts.len() == 1)
        );
        assert_eq!(log[0].attempts[0].status_code, Some(200));
    });
}

fn a_receiver_that_was_down_gets_the_same_event_later(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        receiver.answers.lock().unwrap().extend([503, 500]);
        let (endpoint, secret) = w.endpoint(&receiver.url);
        let c = w.campaign();
        w.spend(c, "5");
        w.spend(c, "5");
        let jobs = w.dispatch_until(2);
        w.deliver(&jobs, true).await;
        // Both failed: due again within seconds, not before.
        assert!(w.dispatch_at(adbudget_core::forms::now()).is_empty());
        let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 10).unwrap();
        for d in &log {
            assert_eq!(d.status, "pending");
            let error = d.attempts[0].error.as_deref().unwrap();
            assert!(error.starts_with("HTTP 5"), "{error}");
            let wait = d.next_attempt_at.unwrap() - adbudget_core::forms::now();
            assert!(wait <= chrono::TimeDelta::seconds(7), "{wait}");
        }
        let later = adbudget_core::forms::now() + chrono::TimeDelta::seconds(10);
        let retries = w.dispatch_at(later);
        assert_eq!(retries.len(), 2);
        assert!(retries.iter().all(|j| j.attempt == 2));
        // A duplicate of an old attempt's job does nothing.
        w.deliver(&jobs, true).await;
        assert_eq!(receiver.received().len(), 2);
        w.deliver(&retries, true).await;
        let got = receiver.received();
        assert_eq!(got.len(), 4);
        for r in &got {
            verify(&secret, r);
        }
        let ids = |rs: &[Received]| {
            let mut v: Vec<String> = rs
                .iter()
                .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&got[..2]), ids(&got[2..]), "the same ids, again");
        let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 10).unwrap();
        assert!(
            log.iter()
                .all(|d| d.status == "delivered" && d.attempts.len() == 2)
        );
        assert!(
            log.iter()
                .all(|d| d.attempts[0].status_code.unwrap() >= 500)
        );
        let ep = webhooks::get(&mut w.conn(), endpoint, &Brands::All).unwrap();
        assert_eq!(ep.failure_streak, 0);
        assert!(ep.failing_since.is_none());
    });
}

fn gone_disables_the_endpoint(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        receiver.answers.lock().unwrap().extend([410]);
        let (endpoint, _) = w.endpoint(&receiver.url);
        let c = w.campaign();
        w.spend(c, "10");
        let jobs = w.dispatch_until(2);
        w.deliver(&jobs, true).await;
        let ep = webhooks::get(&mut w.conn(), endpoint, &Brands::All).unwrap();
        assert!(!ep.enabled);
        assert_eq!(
            ep.disabled_reason.as_deref(),
            Some("the receiver answered 410 Gone")
        );
        assert_eq!(
            receiver.received().len(),
            1,
            "nothing is sent after the 410"
        );
        // New events go nowhere while it is disabled.
        w.spend(c, "1");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let later = adbudget_core::forms::now() + chrono::TimeDelta::hours(1);
        assert!(w.dispatch_at(later).is_empty());
    });
}

fn private_addresses_are_refused_at_delivery(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        // A host name that resolves to the loopback address: refused after resolution.
        let url = receiver.url.replace("127.0.0.1", "localhost");
        let (endpoint, _) = w.endpoint(&url);
        let c = w.campaign();
        w.spend(c, "10");
        let jobs = w.dispatch_until(2);
        w.deliver(&jobs, false).await;
        assert!(receiver.received().is_empty(), "no request reached it");
        let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 10).unwrap();
        for d in &log {
            let error = d.attempts[0].error.as_deref().unwrap();
            assert!(error.contains("loopback, private"), "{error}");
            assert_eq!(d.status, "pending", "retried: the address may change back");
        }
    });
}

fn a_rotated_secret_signs_beside_the_new_one_for_a_day(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        let (endpoint, old) = w.endpoint(&receiver.url);
        let now = adbudget_core::forms::now();
        let new =
            webhooks::rotate_secret(&mut w.conn(), endpoint, &Brands::All, now, &Author::cli())
                .unwrap();
        assert_ne!(new, old);
        assert!(new.starts_with("whsec_"));
        let ping = webhooks::ping(&mut w.conn(), endpoint, &Brands::All, now).unwrap();
        let jobs = w.dispatch_until(1);
        assert_eq!(
            jobs,
            vec![AttemptJob {
                delivery_id: ping,
                attempt: 1
            }]
        );
        w.deliver(&jobs, true).await;
        let got = receiver.received();
        assert_eq!(got.len(), 1);
        let sigs = got[0].headers["webhook-signature"].to_str().unwrap();
        assert_eq!(sigs.split(' ').count(), 2, "{sigs}");
        verify(&new, &got[0]);
        verify(&old, &got[0]);
        let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(body["type"], "ping");
        assert_eq!(body["data"], serde_json::json!({}));
    });
}

fn three_days_of_failures_fail_the_delivery_and_disable_the_endpoint(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        receiver.answers.lock().unwrap().extend([500; 100]);
        let (endpoint, _) = w.endpoint(&receiver.url);
        let start = adbudget_core::forms::now();
        let ping = webhooks::ping(&mut w.conn(), endpoint, &Brands::All, start).unwrap();
        // Attempts as the schedule makes them, each at its due time (the clock moved by hand).
        let mut at = start;
        let mut attempts = 0;
        loop {
            let due = w.dispatch_at(at);
            let Some(job) = due.first().copied() else {
                break;
            };
            let attempt = webhooks::attempt(&mut w.conn(), job, at).unwrap().unwrap();
            let outcome = adbudget_worker::webhooks::send(&attempt, true).await;
            assert_eq!(outcome.status, Some(500));
            webhooks::record(&mut w.conn(), &attempt, &outcome, at).unwrap();
            attempts += 1;
            let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 1).unwrap();
            match log[0].next_attempt_at {
                Some(next) if log[0].status == "pending" => at = next,
                _ => break,
            }
        }
        let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 1).unwrap();
        assert_eq!(log[0].id, ping);
        assert_eq!(log[0].status, "failed", "given up after 3 days");
        assert!((10..=20).contains(&attempts), "{attempts} attempts");
        assert!(at - start >= chrono::TimeDelta::days(3));
        let ep = webhooks::get(&mut w.conn(), endpoint, &Brands::All).unwrap();
        assert!(!ep.enabled);
        let reason = ep.disabled_reason.unwrap();
        assert!(
            reason.starts_with("every attempt failed for 3 days"),
            "{reason}"
        );
        assert_eq!(ep.failure_streak, attempts);
        // Redelivered by hand after the endpoint is enabled again: it goes through.
        receiver.answers.lock().unwrap().clear();
        let changes = webhooks::EndpointChanges {
            enabled: Some(true),
            ..Default::default()
        };
        webhooks::update(
            &mut w.conn(),
            endpoint,
            &changes,
            &Brands::All,
            at,
            &Author::cli(),
        )
        .unwrap();
        webhooks::redeliver(&mut w.conn(), endpoint, ping, &Brands::All, at).unwrap();
        let jobs = w.dispatch_at(at + chrono::TimeDelta::seconds(1));
        w.deliver(&jobs, true).await;
        let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 1).unwrap();
        assert_eq!(log[0].status, "delivered");
    });
}

fn a_lost_attempt_is_handed_out_again_when_its_lease_ends(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        let (endpoint, _) = w.endpoint(&receiver.url);
        let now = adbudget_core::forms::now();
        let ping = webhooks::ping(&mut w.conn(), endpoint, &Brands::All, now).unwrap();
        let first = w.dispatch_at(now);
        assert_eq!(
            first,
            vec![AttemptJob {
                delivery_id: ping,
                attempt: 1
            }]
        );
        // Its job is lost (the worker that took it was killed): nothing is recorded. While the
        // lease runs, the attempt is not handed out again; after it, the same attempt is.
        let within = now + webhooks::LEASE - chrono::TimeDelta::seconds(1);
        assert!(w.dispatch_at(within).is_empty());
        let after = now + webhooks::LEASE + chrono::TimeDelta::seconds(1);
        assert_eq!(w.dispatch_at(after), first);
        w.deliver(&first, true).await;
        assert_eq!(receiver.received().len(), 1);
        // The job that was lost turns up after all: the attempt is taken, it does nothing.
        w.deliver(&first, true).await;
        assert_eq!(receiver.received().len(), 1);
    });
}

fn redirects_are_not_followed(backend: Backend) {
    run(async {
        let w = world(backend);
        let receiver = Receiver::start().await;
        receiver.answers.lock().unwrap().extend([302]);
        let (endpoint, _) = w.endpoint(&receiver.url);
        let now = adbudget_core::forms::now();
        webhooks::ping(&mut w.conn(), endpoint, &Brands::All, now).unwrap();
        let jobs = w.dispatch_until(1);
        w.deliver(&jobs, true).await;
        assert_eq!(
            receiver.received().len(),
            1,
            "one request: the redirect was not followed"
        );
        let log = webhooks::deliveries(&mut w.conn(), endpoint, &Brands::All, 1).unwrap();
        assert_eq!(
            log[0].status, "pending",
            "a redirect is a failed attempt, retried"
        );
        assert_eq!(log[0].attempts[0].status_code, Some(302));
        assert_eq!(log[0].attempts[0].error.as_deref(), Some("HTTP 302"));
    });
}
