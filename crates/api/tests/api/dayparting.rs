use adbudget_testing::Backend;
use chrono::{Duration, Timelike, Utc};
use serde_json::json;

use crate::helpers::{on_both_databases, reasons, spawn_app};

on_both_databases!(
    schedule_put_and_delete,
    schedule_is_read_in_the_brand_timezone
);

/// "HH:MM" of now + `minutes` in UTC.
fn hhmm(minutes: i64) -> String {
    let t = Utc::now() + Duration::minutes(minutes);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// [`hhmm`] as a window's end: midnight is written "24:00" ("00:00" is not a valid end).
fn end_hhmm(minutes: i64) -> String {
    match hhmm(minutes).as_str() {
        "00:00" => "24:00".to_owned(),
        other => other.to_owned(),
    }
}

async fn schedule_put_and_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let path = format!("/api/v1/campaigns/{}/dayparting", c["id"]);

    // A window around now (possibly running past midnight): active.
    let open = app
        .put(&path, json!([{"start": hhmm(-60), "end": end_hhmm(60)}]))
        .await
        .expect(200);
    assert_eq!(open["is_active"], true, "{open}");
    assert_eq!(open["dayparting"][0]["start"], hhmm(-60));
    assert_eq!(
        open["dayparting"][0]["days"].as_array().unwrap().len(),
        7,
        "days default to all seven"
    );

    // A window that is over: paused for dayparting, with a history row.
    let closed = app
        .put(
            &path,
            json!({"windows": [{"start": hhmm(-120), "end": end_hhmm(-60)}]}),
        )
        .await
        .expect(200);
    assert_eq!(reasons(&closed), ["dayparting"]);

    // The original's hour form: 9–17 means 09:00 inclusive to 17:00 exclusive.
    let hours = app
        .put(&path, json!({"start_hour": 9, "end_hour": 17}))
        .await
        .expect(200);
    assert_eq!(
        hours["dayparting"],
        json!([{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "17:00"}])
    );
    let hour = Utc::now().hour();
    assert_eq!(
        hours["is_active"],
        (9..17).contains(&hour),
        "at {hour}h UTC"
    );

    // Bad windows are rejected and change nothing.
    for (body, field) in [
        (
            json!([{"start": "10:00", "end": "10:00"}]),
            "dayparting[0].end",
        ),
        (json!([]), "dayparting"),
        (
            json!({"start_hour": 5, "end_hour": 5}),
            "dayparting.end_hour",
        ),
        (
            json!([{"days": ["someday"], "start": "10:00", "end": "11:00"}]),
            "dayparting[0].days[0]",
        ),
    ] {
        let resp = app.put(&path, body.clone()).await;
        assert_eq!(
            (resp.status.as_u16(), resp.error_field()),
            (422, field),
            "{body}"
        );
    }
    assert_eq!(
        app.campaign(&c["id"]).await["dayparting"][0]["start"],
        "09:00"
    );

    // No schedule: eligible at all hours.
    let removed = app.delete(&path).await.expect(200);
    assert_eq!(removed["dayparting"], json!(null));
    assert_eq!(removed["is_active"], true);

    let history = app
        .get(&format!("/api/v1/campaigns/{}/history", c["id"]))
        .await
        .expect(200);
    let items = history["items"].as_array().unwrap();
    assert!(items.iter().all(|h| h["cause"] == "dayparting_updated"));
    assert_eq!(items[0]["is_active"], true);
    app.delete("/api/v1/campaigns/999999/dayparting")
        .await
        .expect(404);
}

async fn schedule_is_read_in_the_brand_timezone(backend: Backend) {
    let app = spawn_app(backend).await;
    // Tokyo is UTC+9 all year: a window around now in Tokyo is not around now in UTC.
    let tokyo = app
        .post("/api/v1/brands", json!({"name": "Sakura", "daily_budget": "1", "monthly_budget": "1", "timezone": "Asia/Tokyo"}))
        .await
        .expect(201);
    let utc = app.create_brand("Plain", "1", "1").await;
    // A window of at least half an hour around now in Tokyo, clipped to the day so that it never
    // wraps past midnight (an end of "00:00" is invalid; the window must hold at any time of day).
    let now = (Utc::now() + Duration::hours(9)).time();
    let minute = i64::from(now.hour() * 60 + now.minute());
    let clock = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
    let (start, end) = ((minute - 30).max(0), (minute + 31).min(24 * 60));
    let window = json!([{"start": clock(start), "end": clock(end)}]);
    let in_tokyo = app
        .create_campaign(&tokyo["id"], "t", json!({"dayparting": window}))
        .await;
    let in_utc = app
        .create_campaign(&utc["id"], "u", json!({"dayparting": window}))
        .await;
    assert_eq!(in_tokyo["is_active"], true, "{in_tokyo}");
    assert_eq!(reasons(&in_utc), ["dayparting"]);
}
