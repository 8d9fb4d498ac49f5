//! The admin panel and job monitor: security at the HTTP level (anonymous redirects, CSRF,
//! throttling, job retry/discard numbers) and, in `browser`, the pages in a real Chromium.

use adbudget_core::jobs::{EnforceBudgets, Job};
use adbudget_db as db;
use adbudget_db::repo::users;
use adbudget_testing::Backend;
use apalis::prelude::TaskSink;
use redis::AsyncCommands;
use reqwest::redirect::Policy;
use serde_json::json;

use adbudget_api::admin::AdminState;
use adbudget_api::admin::session::{SESSION_LIFETIME, Session};

use crate::helpers::{SECRET_KEY, TestApp, on_both_databases, spawn_app};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn create_admin(app: &TestApp) {
    users::create_superuser(
        &mut db::get(&app.pool).unwrap(),
        "ops",
        PASSWORD,
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("adbudget_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// The response sends the browser to the login page.
#[track_caller]
pub fn assert_to_login(resp: &reqwest::Response) {
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("/admin/login"),
        "redirected to {location}"
    );
}

pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// Logs in over plain HTTP; returns the session cookie and the session's CSRF token.
pub async fn login(
    app: &TestApp,
    password: &str,
) -> (reqwest::StatusCode, Option<(String, String)>) {
    let c = client();
    let form = c
        .get(format!("{}/admin/login", app.address))
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&form).unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let resp = c
        .post(format!("{}/admin/login", app.address))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "ops"),
            ("password", password),
            ("next", "/admin"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let Some(cookie) = session_cookie(&resp).filter(|_| status == 303) else {
        return (status, None);
    };
    let page = c
        .get(format!("{}/admin", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (status, Some((cookie.clone(), csrf_of(&page))))
}

on_both_databases!(
    anonymous_requests_go_to_login,
    forms_need_the_csrf_token,
    failed_logins_are_throttled,
    job_monitor_retries_and_discards,
    lists_search_sort_and_filter,
    sessions_expire,
    brand_alert_thresholds_on_the_form
);

/// A brand's alert thresholds are edited on its form: a list of percents, empty for none; a bad
/// list is an error beside the field and stores nothing.
async fn brand_alert_thresholds_on_the_form(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, csrf) = login(&app, PASSWORD).await.1.unwrap();
    let c = client();
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let (c, cookie, csrf) = (c.clone(), cookie.clone(), csrf.clone());
        async move {
            let mut form = form;
            form.push(("csrf", csrf));
            c.post(path)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let brand = |thresholds: &str| {
        vec![
            ("name", "Acme".to_owned()),
            ("daily_budget", "10".to_owned()),
            ("monthly_budget", "100".to_owned()),
            ("timezone", "UTC".to_owned()),
            ("alert_thresholds", thresholds.to_owned()),
        ]
    };
    let resp = post(format!("{}/admin/brands/new", app.address), brand("25, 75")).await;
    assert_eq!(resp.status(), 303);
    let created = &app.get("/api/v1/brands").await.expect(200)["items"][0];
    assert_eq!(created["alert_thresholds"], json!([25, 75]));
    let id = created["id"].as_i64().unwrap();
    let page = c
        .get(format!("{}/admin/brands/{id}", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("value=\"25, 75\""), "the form shows them");
    let resp = post(
        format!("{}/admin/brands/{id}", app.address),
        brand("50, lots"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("data-field=\"alert_thresholds\""), "{page}");
    assert_eq!(
        app.get(&format!("/api/v1/brands/{id}")).await.expect(200)["alert_thresholds"],
        json!([25, 75])
    );
    let resp = post(format!("{}/admin/brands/{id}", app.address), brand("")).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        app.get(&format!("/api/v1/brands/{id}")).await.expect(200)["alert_thresholds"],
        json!([])
    );
}

async fn lists_search_sort_and_filter(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, _) = login(&app, PASSWORD).await.1.unwrap();
    let get = |path: String| {
        let (c, cookie) = (client(), cookie.clone());
        async move {
            c.get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    for name in ["Acme", "Acorn", "Zebra"] {
        app.create_brand(name, "100", "1000").await;
    }
    let acme = app.get("/api/v1/brands").await.expect(200)["items"][0].clone();
    let a = app.create_campaign(&acme["id"], "a", json!({})).await;
    let b = app.create_campaign(&acme["id"], "b", json!({})).await;
    app.post(&format!("/api/v1/campaigns/{}/pause", b["id"]), json!({}))
        .await
        .expect(200);
    for amount in ["1.50", "2.25"] {
        app.spend(&a["id"], amount).await;
    }
    app.spend(&b["id"], "10").await;

    let html = get(format!("{}/admin/brands?q=ac&sort=-name", app.address)).await;
    let (acorn, acme_at) = (html.find(">Acorn<").unwrap(), html.find(">Acme<").unwrap());
    assert!(acorn < acme_at, "sorted by name, descending");
    assert!(!html.contains(">Zebra<"), "search narrows the list");
    let html = get(format!("{}/admin/campaigns?active=no", app.address)).await;
    assert!(html.contains(&format!("data-campaign=\"{}\"", b["id"])));
    assert!(!html.contains(&format!("data-campaign=\"{}\"", a["id"])));
    let html = get(format!("{}/admin/spend?campaign={}", app.address, a["id"])).await;
    assert!(
        html.contains("2 events, <strong>3.75</strong> in all"),
        "{html}"
    );
    let html = get(format!("{}/admin/spend?brand={}", app.address, acme["id"])).await;
    assert!(html.contains("3 events, <strong>13.75</strong> in all"));
    let html = get(format!(
        "{}/admin/spend?from=2000-01-01T00:00&to=2000-01-02T00:00",
        app.address
    ))
    .await;
    assert!(html.contains("0 events"));
}

async fn anonymous_requests_go_to_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let c = client();
    for path in [
        "/admin",
        "/admin/brands",
        "/admin/brands/new",
        "/admin/brands/1",
        "/admin/campaigns",
        "/admin/campaigns/new",
        "/admin/campaigns/1",
        "/admin/spend",
        "/jobs",
    ] {
        let resp = c
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        let location = resp.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("/admin/login?next="),
            "{path} → {location}"
        );
    }
    for path in [
        "/admin/brands/new",
        "/admin/campaigns/bulk",
        "/admin/campaigns/1/pause",
        "/admin/logout",
        "/jobs/enforce_budgets/x/retry",
    ] {
        let resp = c
            .post(format!("{}{path}", app.address))
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "POST {path}");
        assert_to_login(&resp);
    }
    // A forged cookie counts for nothing.
    let resp = c
        .get(format!("{}/admin", app.address))
        .header("cookie", "adbudget_session={\"user\":[1,\"ops\"]}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
}

async fn forms_need_the_csrf_token(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (_, session) = login(&app, PASSWORD).await;
    let (cookie, csrf) = session.expect("logged in");
    let c = client();
    let brand = [
        ("name", "Acme"),
        ("daily_budget", "10"),
        ("monthly_budget", "100"),
        ("timezone", "UTC"),
    ];
    for token in [None, Some("wrong-token")] {
        let mut form: Vec<(&str, &str)> = brand.to_vec();
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let resp = c
            .post(format!("{}/admin/brands/new", app.address))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "token {token:?}");
    }
    assert_eq!(
        app.get("/api/v1/brands").await.expect(200)["items"],
        json!([]),
        "nothing was created"
    );
    let mut form: Vec<(&str, &str)> = brand.to_vec();
    form.push(("csrf", &csrf));
    let resp = c
        .post(format!("{}/admin/brands/new", app.address))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "with the token it works");
    assert_eq!(
        app.get("/api/v1/brands").await.expect(200)["items"][0]["name"],
        "Acme"
    );
    // The login form is protected too.
    let resp = c
        .post(format!("{}/admin/login", app.address))
        .form(&[("username", "ops"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

async fn failed_logins_are_throttled(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (status, session) = login(&app, "wrong").await;
    assert_eq!(
        (status.as_u16(), session.is_none()),
        (401, true),
        "a wrong password is refused"
    );
    for _ in 0..4 {
        login(&app, "still wrong").await;
    }
    let (status, session) = login(&app, PASSWORD).await;
    assert_eq!(
        status, 429,
        "after 5 failures even the right password waits"
    );
    assert!(session.is_none());
}

async fn job_monitor_retries_and_discards(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (cookie, csrf) = login(&app, PASSWORD).await.1.unwrap();
    let c = client();
    // A job that died: pushed, then marked dead as apalis-redis's ack script marks it.
    let mut storage =
        adbudget_queue::storage::<EnforceBudgets>(app.jobs.redis.clone(), &app.jobs.prefix);
    storage
        .push(EnforceBudgets::for_tick(chrono::Utc::now()))
        .await
        .unwrap();
    let mut conn = app.jobs.redis.clone();
    let q = format!("{}:enforce_budgets", app.jobs.prefix);
    let ids: Vec<String> = conn.zrange(format!("{q}:scheduled"), 0, -1).await.unwrap();
    let id = ids[0].clone();
    let _: () = conn.zrem(format!("{q}:scheduled"), &id).await.unwrap();
    let _: () = conn.sadd(format!("{q}:dead"), &id).await.unwrap();
    let _: () = conn
        .hset_multiple(
            format!("{q}:meta:{id}"),
            &[
                ("status", "Killed"),
                ("attempts", "3"),
                ("result", "database unreachable"),
            ],
        )
        .await
        .unwrap();

    let page = |c: reqwest::Client| {
        let (address, cookie) = (app.address.clone(), cookie.clone());
        async move {
            c.get(format!("{address}/jobs"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let cell = |html: &str, class: &str| -> String {
        let row = &html[html.find("data-queue=\"enforce_budgets\"").unwrap()..];
        let at = row.find(&format!("class=\"num {class}\"")).unwrap();
        row[at..]
            .split('>')
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    let html = page(c.clone()).await;
    assert_eq!(
        (cell(&html, "dead"), cell(&html, "pending")),
        ("1".into(), "0".into())
    );
    assert!(html.contains("database unreachable"), "the error is shown");
    assert!(html.contains("scheduled_for"), "the arguments are shown");
    let retry = format!("{}/jobs/enforce_budgets/{id}/retry", app.address);
    let resp = c
        .post(&retry)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let html = page(c.clone()).await;
    assert_eq!(
        (cell(&html, "dead"), cell(&html, "pending")),
        ("0".into(), "1".into()),
        "retried: pending again"
    );
    let discard = format!("{}/jobs/enforce_budgets/{id}/discard", app.address);
    let resp = c
        .post(&discard)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let html = page(c.clone()).await;
    assert_eq!(cell(&html, "pending"), "0", "discarded");
    let resp = c
        .post(&discard)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "gone");
    let keys: Vec<String> = conn.keys(format!("{}:*", app.jobs.prefix)).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
}

/// The session inside a `Cookie:` header value, read with the server's key.
fn read_session(cookie: &str) -> Session {
    let key = AdminState::new(Some(SECRET_KEY)).key;
    let (name, value) = cookie.split_once('=').unwrap();
    let req = actix_web::test::TestRequest::default()
        .cookie(actix_web::cookie::Cookie::new(
            name.to_owned(),
            value.to_owned(),
        ))
        .to_http_request();
    Session::from_request(&req, &key).expect("a session signed by the server")
}

/// `session` signed with the server's key, as a `Cookie:` header value.
fn signed(session: &Session) -> String {
    let key = AdminState::new(Some(SECRET_KEY)).key;
    let req = actix_web::test::TestRequest::default().to_http_request();
    let mut resp = actix_web::HttpResponse::Ok().finish();
    session.store(&req, &key, &mut resp);
    let header = resp.headers().get("set-cookie").unwrap().to_str().unwrap();
    header.split(';').next().unwrap().to_owned()
}

async fn sessions_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let (_, session) = login(&app, PASSWORD).await;
    let (cookie, csrf) = session.expect("logged in");
    let c = client();
    let admin = |cookie: String| {
        let c = c.clone();
        let url = format!("{}/admin", app.address);
        async move { c.get(url).header("cookie", cookie).send().await.unwrap() }
    };
    assert_eq!(admin(cookie.clone()).await.status(), 200);

    // The login's session ends SESSION_LIFETIME (12 h) after it began, whatever happens.
    let mut session = read_session(&cookie);
    let now = chrono::Utc::now();
    let lifetime = session.expires - now.timestamp();
    assert!(
        (SESSION_LIFETIME.num_seconds() - 120..=SESSION_LIFETIME.num_seconds()).contains(&lifetime),
        "expires in {lifetime} s"
    );
    assert!(session.logged_in().is_some());

    // The same session once that time has passed: sent back to the login page, and its forms
    // are refused although the cookie is genuine and the CSRF token right.
    session.expires = now.timestamp() - 1;
    let expired = signed(&session);
    assert_eq!(
        read_session(&expired).expires,
        session.expires,
        "signed like the server does"
    );
    let resp = admin(expired.clone()).await;
    assert_eq!(resp.status(), 303);
    assert_to_login(&resp);
    let resp = c
        .post(format!("{}/admin/brands/new", app.address))
        .header("cookie", &expired)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Late"),
            ("daily_budget", "1"),
            ("monthly_budget", "10"),
            ("timezone", "UTC"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_to_login(&resp);
    let brands = app.get("/api/v1/brands").await.expect(200);
    assert_eq!(
        brands["items"].as_array().map(Vec::len),
        Some(0),
        "nothing created: {brands}"
    );
}
