//! Deleting a campaign or a brand takes its rows with it, including those no foreign key
//! cascades to (the status history since migration 000013, event ids in `spend_event_ids`).

use adbudget_core::access::Author;
use adbudget_db::repo::{brands, campaigns};
use adbudget_db::schema::campaign_status_history as history;
use adbudget_testing::Backend;
use diesel::prelude::*;
use serde_json::json;

use crate::{World, on_both_databases, utc, world};

on_both_databases!(deleting_a_campaign_or_its_brand_deletes_its_history);

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
