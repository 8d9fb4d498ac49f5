//! Group commit: independent events of concurrent requests in one transaction, each with its own
//! outcome; one bad event fails alone.

use adbudget_domain::db::testing::Backend;
use adbudget_domain::error::DomainError;
use adbudget_domain::forms::ValidSpend;
use adbudget_domain::money::Money;
use adbudget_domain::repo::spend::{self, Outcome};
use serde_json::json;

use crate::{on_both_databases, utc, world};

on_both_databases!(each_event_gets_its_own_outcome);

fn event(campaign_id: i64, units: i64, id: Option<&str>) -> ValidSpend {
    ValidSpend {
        campaign_id,
        amount: Money::from_micros(units * 1_000_000),
        occurred_at: utc("2026-11-16T12:00:00Z"),
        occurred_at_given: true,
        event_id: id.map(str::to_owned),
    }
}

fn each_event_gets_its_own_outcome(backend: Backend) {
    let w = world(backend);
    let t = utc("2026-11-16T12:00:00Z");
    let b = w.brand("Acme", "100", "1000", "UTC", t);
    let c = w.campaign(b, "c", json!({}), t);
    let d = w.campaign(b, "d", json!({}), t);
    spend::record(&mut w.conn(), &[event(c, 1, Some("known"))], t, false).unwrap();

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
    let results = spend::record_group(&mut w.conn(), &events, t);
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
