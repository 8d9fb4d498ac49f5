//! Deleting a campaign or a brand takes its rows with it, including those no foreign key
//! cascades to (the status history since migration 000013, event ids in `spend_event_ids`).

use adbudget_core::access::Author;
use adbudget_db::repo::{brands, campaigns};
use adbudget_db::schema::campaign_status_history as history;
use adbudget_testing::Backend;
use diesel::prelude::*;
use serde_json::json;

use crate::{World, on_both_databases, utc, world};

on_both_databases!(
    deleting_a_campaign_or_its_brand_deletes_its_history,
    a_sweep_changes_only_campaigns_of_the_brands_it_locked
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

fn deleting_a_campaign_or_its_brand_deletes_its_history(backend: Backend) {
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

    campaigns::delete(&mut w.conn(), c1, now, &Author::cli()).unwrap();
    assert_eq!(stored_history(&w, c1), 0);
    assert!(stored_history(&w, c2) >= 1);

    brands::delete(&mut w.conn(), brand, now, &Author::cli()).unwrap();
    assert_eq!(stored_history(&w, c2), 0);
    assert_eq!(stored_history(&w, c3), c3_history);
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
