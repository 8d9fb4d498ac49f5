//! The doors a security review found open (issue "Trust"), each shown shut: sessions that end with
//! their user, money that cannot overflow, bodies read only within their route's limit and after
//! the credentials, logins that neither flood the process nor tell which users exist, same-origin
//! redirects only, security headers, and the small ones.

use std::time::Instant;

use adbudget_api::admin::AdminState;
use adbudget_db as db;
use adbudget_db::repo::{tokens, users};
use adbudget_testing::Backend;
use reqwest::Method;
use serde_json::json;

use crate::admin::{PASSWORD, assert_to_login, client, create_admin, csrf_of, login};
use crate::helpers::{TestApp, micros, on_both_databases, spawn_app, spawn_app_with_admin};

on_both_databases!(
    a_session_ends_with_its_user,
    period_totals_never_pass_the_limit,
    a_crossing_event_fails_alone_in_its_group_commit,
    bodies_are_read_within_their_limit_and_after_the_token,
    the_client_address_is_the_peer_unless_a_trusted_proxy_forwarded,
    login_throttling_is_shared_by_every_replica,
    concurrent_guesses_are_counted_before_they_are_checked,
    long_usernames_are_refused_first,
    unknown_users_take_as_long_as_known_ones,
    only_same_origin_paths_after_login,
    admin_pages_carry_security_headers,
    the_session_cookie_is_secure_when_the_public_url_is,
    notices_come_from_the_server_only,
    bulk_actions_are_bounded,
    a_revoked_token_posts_no_spend,
);

/// An admin page fetched with `cookie`, not following redirects.
async fn admin_get(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// A login attempt at `address` with a fresh session; the response.
async fn try_login(
    address: &str,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let c = client();
    let form = c
        .get(format!("{address}/admin/login"))
        .send()
        .await
        .unwrap();
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("adbudget_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .expect("a session cookie");
    let csrf = csrf_of(&form.text().await.unwrap());
    let mut req = c
        .post(format!("{address}/admin/login"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ]);
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

/// A signed session cookie outlived its user: disabling or deleting the user must end it at the
/// next request (the old code only checked the signature and the expiry).
async fn a_session_ends_with_its_user(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, _) = login(&app, PASSWORD).await.1.expect("logged in");
    assert_eq!(admin_get(&app, "/admin", &cookie).await.status(), 200);

    users::set_active(
        &mut db::get(&app.pool).unwrap(),
        "ops",
        false,
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    let resp = admin_get(&app, "/admin", &cookie).await;
    assert_eq!(resp.status(), 303, "a disabled user's session has ended");
    assert_to_login(&resp);
    let resp = try_login(&app.address, "ops", PASSWORD, None).await;
    assert_eq!(resp.status(), 401, "a disabled user cannot log in");

    users::set_active(
        &mut db::get(&app.pool).unwrap(),
        "ops",
        true,
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    // Disabling ended the session for good: enabling the user again does not bring it back.
    assert_eq!(admin_get(&app, "/admin", &cookie).await.status(), 303);
    let (cookie, _) = login(&app, PASSWORD).await.1.expect("logged in again");
    assert_eq!(admin_get(&app, "/admin", &cookie).await.status(), 200);
    {
        use adbudget_db::schema::users as u;
        use diesel::prelude::*;
        let mut conn = db::get(&app.pool).unwrap();
        adbudget_db::per_backend!(&mut *conn, c => diesel::delete(u::table).execute(c)).unwrap();
    }
    let resp = admin_get(&app, "/admin", &cookie).await;
    assert_eq!(resp.status(), 303, "a deleted user's session has ended");
    assert_to_login(&resp);
}

/// Ten events of 10^12 units used to wrap a brand's day total negative (SQLite) or fail every
/// later event (PostgreSQL). Now an amount is at most 10^9 units and a period total at most
/// 10^15 micro-units: what would pass it is a 422 naming the amount, and stores nothing.
async fn period_totals_never_pass_the_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "1000000000", "1000000000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let id = &c["id"];

    let huge: Vec<_> = (0..10)
        .map(|_| json!({"campaign_id": id, "amount": "1000000000000"}))
        .collect();
    let resp = app
        .post("/api/v1/spend/batch", json!({"events": huge}))
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(resp.error_field(), "events[0].amount");

    // Each amount is allowed, their sum is not: the second event is the one that crosses.
    let two: Vec<_> = (0..2)
        .map(|_| json!({"campaign_id": id, "amount": "600000000"}))
        .collect();
    let resp = app
        .post("/api/v1/spend/batch", json!({"events": two}))
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(resp.error_field(), "events[1].amount");
    assert!(
        resp.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{}",
        resp.body
    );
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "0.00");
    assert!(
        app.all_pages(&format!("/api/v1/campaigns/{id}/spend"))
            .await
            .is_empty(),
        "nothing stored"
    );

    // Single events: up to the limit exactly, and not a micro-unit more.
    app.post_spend(json!({"campaign_id": id, "amount": "600000000"}))
        .await
        .expect(201);
    let resp = app
        .post_spend(json!({"campaign_id": id, "amount": "600000000"}))
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(resp.error_field(), "amount");
    app.post_spend(json!({"campaign_id": id, "amount": "400000000"}))
        .await
        .expect(201);
    let resp = app
        .post_spend(json!({"campaign_id": id, "amount": "0.000001"}))
        .await;
    assert_eq!(resp.status, 422, "{}", resp.body);
    let b = app.brand(&brand["id"]).await;
    assert_eq!(micros(&b["daily_spend"]), 1_000_000_000_000_000);
    assert_eq!(micros(&b["monthly_spend"]), 1_000_000_000_000_000);
    assert_eq!(
        app.all_pages(&format!("/api/v1/campaigns/{id}/spend"))
            .await
            .len(),
        2
    );

    // Budgets and caps have the same limit.
    let resp = app
        .post(
            "/api/v1/brands",
            json!({"name": "Big", "daily_budget": "1000000000.000001", "monthly_budget": "1"}),
        )
        .await;
    assert_eq!(resp.status, 422);
    assert_eq!(resp.error_field(), "daily_budget");
}

/// Concurrent single events share group commits: the one that would take a total past the
/// limit fails alone, every other is recorded.
async fn a_crossing_event_fails_alone_in_its_group_commit(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let brand = app.create_brand("Acme", "1000000000", "1000000000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let mut sent = Vec::new();
    for _ in 0..10 {
        let (app, id) = (app.clone(), c["id"].clone());
        sent.push(tokio::spawn(async move {
            app.post_spend(json!({"campaign_id": id, "amount": "300000000"}))
                .await
        }));
    }
    let mut statuses = Vec::new();
    for s in sent {
        let resp = s.await.unwrap();
        if resp.status == 422 {
            assert_eq!(resp.error_field(), "amount");
        }
        statuses.push(resp.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 422, 422, 422, 422, 422, 422, 422]);
    assert_eq!(app.brand(&brand["id"]).await["daily_spend"], "900000000.00");
}

/// Every route used to accept 8 MiB and parse it before any check. Now: 16 KiB for an event,
/// 8 MiB for a batch, 64 KiB for the rest, and a spend body is not read without a live token.
async fn bodies_are_read_within_their_limit_and_after_the_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let post = |path: &'static str, token: Option<String>, body: Vec<u8>| {
        let mut req = app
            .client
            .post(format!("{}{path}", app.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
    };
    let padded = |n: usize| {
        format!(
            r#"{{"campaign_id": {}, "amount": "1", "event_id": "{}"}}"#,
            c["id"],
            "x".repeat(n)
        )
        .into_bytes()
    };
    let big = vec![b' '; 8 * 1024 * 1024];
    let forged = "adb_0000000000000000000000000000000000000000".to_owned();

    // Without a live token: 401, whatever the body.
    assert_eq!(post("/api/v1/spend", None, big.clone()).await.0, 401);
    assert_eq!(
        post("/api/v1/spend", Some(forged.clone()), big.clone())
            .await
            .0,
        401
    );
    assert_eq!(post("/api/v1/spend/batch", None, big.clone()).await.0, 401);
    // With one: each route's own limit.
    let ingest = Some(app.ingest_token.clone());
    assert_eq!(
        post("/api/v1/spend", ingest.clone(), padded(100)).await.0,
        201
    );
    let (status, body) = post("/api/v1/spend", ingest.clone(), padded(17 * 1024)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    let mut over = br#"{"events": []}"#.to_vec();
    over.extend(vec![b' '; 8 * 1024 * 1024]);
    assert_eq!(
        post("/api/v1/spend/batch", ingest.clone(), over).await.0,
        413
    );
    let admin = Some(app.admin_token.clone());
    let mut brand_body = br#"{"name": "B", "daily_budget": "1", "monthly_budget": "1"}"#.to_vec();
    brand_body.extend(vec![b' '; 65 * 1024]);
    assert_eq!(post("/api/v1/brands", admin, brand_body).await.0, 413);
    // An anonymous 8 MiB login form is refused without being parsed.
    let resp = client()
        .post(format!("{}/admin/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a&".repeat(4 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        app.all_pages(&format!("/api/v1/campaigns/{}/spend", c["id"]))
            .await
            .len(),
        1,
        "only the one good event is stored"
    );
}

/// `X-Forwarded-For` is believed only from a configured proxy: a client cannot choose the address
/// its failed logins are counted under.
async fn the_client_address_is_the_peer_unless_a_trusted_proxy_forwarded(backend: Backend) {
    // Untrusted: five failures under five made-up addresses and five usernames still count
    // against this client's real address.
    let app = spawn_app(backend).await;
    create_admin(&app);
    for i in 0..5 {
        let resp = try_login(
            &app.address,
            &format!("nobody{i}"),
            "wrong",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
        assert_eq!(resp.status(), 401);
    }
    let resp = try_login(&app.address, "ops", PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(resp.status(), 429, "throttled by the peer address");

    // Trusted (the tests connect from 127.0.0.1): the forwarded address is the client's.
    let app = spawn_app_with_admin(backend, |a| AdminState {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..a
    })
    .await;
    create_admin(&app);
    for i in 0..5 {
        try_login(
            &app.address,
            &format!("nobody{i}"),
            "wrong",
            Some("203.0.113.9"),
        )
        .await;
    }
    let resp = try_login(&app.address, "ops", PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(
        resp.status(),
        303,
        "another client behind the proxy logs in"
    );
    let resp = try_login(&app.address, "ops", PASSWORD, Some("203.0.113.9")).await;
    assert_eq!(resp.status(), 429, "the failing client is throttled");
}

/// The throttle lived in each process's memory: behind a load balancer every replica allowed
/// five more guesses. It is in the database now.
async fn login_throttling_is_shared_by_every_replica(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let replica = app.replica();
    for _ in 0..5 {
        let resp = try_login(&app.address, "ops", "wrong", None).await;
        assert_eq!(resp.status(), 401);
    }
    let resp = try_login(&replica, "ops", PASSWORD, None).await;
    assert_eq!(
        resp.status(),
        429,
        "the other replica knows of the failures"
    );
}

/// Attempts are counted before their password is checked: twenty guesses sent at once cannot all
/// pass the throttle before the first of them has failed.
async fn concurrent_guesses_are_counted_before_they_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let mut sent = Vec::new();
    for i in 0..20 {
        let address = app.address.clone();
        sent.push(tokio::spawn(async move {
            try_login(&address, "ops", &format!("guess {i}"), None)
                .await
                .status()
                .as_u16()
        }));
    }
    let mut checked = 0;
    for s in sent {
        match s.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("a guess got {other}"),
        }
    }
    assert!(checked <= 5, "{checked} guesses had their password checked");
}

/// A 151-character username is refused before the throttle, the database or a hash.
async fn long_usernames_are_refused_first(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    for _ in 0..6 {
        let resp = try_login(&app.address, &"u".repeat(151), "wrong", None).await;
        assert_eq!(resp.status(), 422);
    }
    // Nothing was counted: the right password still works.
    let resp = try_login(&app.address, "ops", PASSWORD, None).await;
    assert_eq!(resp.status(), 303);
}

/// An unknown username used to cost two argon2 runs and a known one one: the time told which
/// usernames exist. Medians of 20 checks each now agree within noise.
async fn unknown_users_take_as_long_as_known_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let pool = app.pool.clone();
    let medians = tokio::task::spawn_blocking(move || {
        let mut conn = db::get(&pool).unwrap();
        // The dummy hash is made once per process, before the first login (AdminState::new).
        let _ = users::dummy_hash();
        // Alternating, so that whatever else the machine does weighs on both alike.
        let mut time = |name: &str| {
            let started = Instant::now();
            let id = users::verify_password(&mut conn, name, "wrong password").unwrap();
            assert_eq!(id, None);
            started.elapsed()
        };
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            known.push(time("ops"));
            unknown.push(time("nobody-at-all"));
        }
        known.sort_unstable();
        unknown.sort_unstable();
        (known[10], unknown[10])
    })
    .await
    .unwrap();
    let (known, unknown) = medians;
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.67..1.5).contains(&ratio),
        "known {known:?}, unknown {unknown:?}: the time tells whether a user exists"
    );
}

/// `next` after login: only paths of this site, however a browser would read them.
async fn only_same_origin_paths_after_login(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, _) = login(&app, PASSWORD).await.1.expect("logged in");
    for (next, expected) in [
        ("/admin/brands", "/admin/brands"),
        ("/admin/campaigns?brand=1", "/admin/campaigns?brand=1"),
        ("/%09/evil.example", "/admin"),
        ("/\t/evil.example", "/admin"),
        ("//evil.example", "/admin"),
        ("/\\evil.example", "/admin"),
        ("\\\\evil.example", "/admin"),
        ("https://evil.example/", "/admin"),
        ("/\n/evil.example", "/admin"),
        ("javascript:alert(1)", "/admin"),
    ] {
        // A logged-in user opening the login page is sent to `next` at once.
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let resp = admin_get(&app, &format!("/admin/login?next={encoded}"), &cookie).await;
        assert_eq!(resp.status(), 303, "{next:?}");
        let location = resp.headers()["location"].to_str().unwrap();
        // `/%09/...` arrives decoded as a tab: refused. Encoded once more it stays a path here.
        assert_eq!(location, expected, "next={next:?}");
    }
}

async fn admin_pages_carry_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, _) = login(&app, PASSWORD).await.1.expect("logged in");
    for path in ["/admin/login", "/admin", "/admin/brands", "/jobs"] {
        let resp = admin_get(&app, path, &cookie).await;
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
}

/// `Secure` used to follow the request's scheme, which a client's `X-Forwarded-Proto` sets.
/// Now `ADBUDGET_PUBLIC_URL` decides, and an https URL also names the cookie `__Host-`.
async fn the_session_cookie_is_secure_when_the_public_url_is(backend: Backend) {
    let set_cookie = |resp: &reqwest::Response| -> String {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.contains("adbudget_session="))
            .unwrap_or_default()
            .to_owned()
    };
    let app = spawn_app(backend).await;
    let resp = client()
        .get(format!("{}/admin/login", app.address))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&resp);
    assert!(cookie.starts_with("adbudget_session="), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "a header did not decide: {cookie}"
    );

    let app = spawn_app_with_admin(backend, |a| AdminState {
        secure_cookies: true,
        ..a
    })
    .await;
    let resp = client()
        .get(format!("{}/admin/login", app.address))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&resp);
    assert!(cookie.starts_with("__Host-adbudget_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
}

/// Part of `robustness::no_input_gives_a_500`: `page=9223372036854775807` overflowed the offset
/// (a 500 on PostgreSQL), a NUL in a search was a 500 on PostgreSQL.
pub(crate) async fn admin_lists_take_any_query(app: &TestApp) {
    create_admin(app);
    let (cookie, _) = login(app, PASSWORD).await.1.expect("logged in");
    for list in [
        "/admin",
        "/admin/brands",
        "/admin/campaigns",
        "/admin/spend",
    ] {
        for value in [
            "9223372036854775807",
            "-9223372036854775808",
            "-1",
            "0",
            "x",
            "%00",
            "99999999999999999999999",
        ] {
            for param in [
                "page", "brand", "campaign", "sort", "reason", "active", "q", "from", "to",
            ] {
                let resp = admin_get(app, &format!("{list}?{param}={value}"), &cookie).await;
                assert!(
                    resp.status().is_success() || resp.status().is_client_error(),
                    "{list}?{param}={value} → {}",
                    resp.status()
                );
            }
        }
    }
}

/// `?done=` put any text of a link's author on an admin page. Notices now travel as codes in a
/// cookie the server sets, and show once.
async fn notices_come_from_the_server_only(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, csrf) = login(&app, PASSWORD).await.1.expect("logged in");
    let html = admin_get(&app, "/admin/brands?done=Call+0800+now", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Call 0800 now"));

    let resp = client()
        .post(format!("{}/admin/brands/new", app.address))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Acme"),
            ("daily_budget", "100"),
            ("monthly_budget", "1000"),
            ("timezone", "UTC"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let notice = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("adbudget_notice="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a notice cookie");
    let with_notice = format!("{cookie}; {notice}");
    let html = admin_get(&app, &location, &with_notice)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Brand created."), "the notice shows");
    let forged = format!("{cookie}; adbudget_notice=Call+0800+now");
    let html = admin_get(&app, &location, &forged)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Call 0800 now") && !html.contains("class=\"flash\""));
}

async fn bulk_actions_are_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, csrf) = login(&app, PASSWORD).await.1.expect("logged in");
    let mut form = vec![("csrf".to_owned(), csrf), ("action".into(), "pause".into())];
    form.extend((1..=1001).map(|i| ("ids".to_owned(), i.to_string())));
    let resp = client()
        .post(format!("{}/admin/campaigns/bulk", app.address))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}

/// Token verdicts are cached for at most a second (so that a flood of requests costs one lookup a
/// token a second); a revoked token still posts nothing from the revocation on: the group-commit
/// writer checks every batch's tokens again.
async fn a_revoked_token_posts_no_spend(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    app.spend(&c["id"], "1").await;
    tokens::revoke(
        &mut db::get(&app.pool).unwrap(),
        tokens::TokenRef::NameOrId("test-ingest"),
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    // At once (the writer checks), and still after the cached verdict has expired.
    for wait in [std::time::Duration::ZERO, adbudget_api::token_cache::TTL] {
        tokio::time::sleep(wait).await;
        let resp = app
            .request(
                Method::POST,
                "/api/v1/spend",
                Some(&app.ingest_token),
                Some(&json!({"campaign_id": c["id"], "amount": "1"})),
            )
            .await;
        assert_eq!(resp.status, 401, "{}", resp.body);
    }
    assert_eq!(app.campaign(&c["id"]).await["daily_spend"], "1.00");
}
