//! Who may do what (SPEC §11): the permissions of every API route for every token scope, bound
//! to a brand or not, and of the admin pages for every role; spend reversal; sessions that end on
//! every replica; the audit trail.

use std::sync::atomic::{AtomicUsize, Ordering};

use adbudget_core::access::{Author, Role, Scope};
use adbudget_core::forms::{SpendEvent, now};
use adbudget_core::money::{Money, NonNegativeMoney, PositiveMoney};
use adbudget_db as db;
use adbudget_db::repo::{spend, tokens, users};
use adbudget_testing::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{client, csrf_of, session_cookie};
use crate::helpers::{TestApp, on_both_databases, reasons, spawn_app};

on_both_databases!(
    the_api_permissions_table,
    the_admin_permissions_table,
    a_bound_token_sees_only_its_brands,
    event_ids_cannot_be_squatted,
    tokens_expire_and_record_their_last_use,
    revoking_names_the_right_token,
    reversing_spend,
    sessions_end_on_every_replica,
    the_audit_trail,
);

/// Two brands, A and B, with a campaign each, and principals bound to A.
struct World {
    brand_a: i64,
    brand_b: i64,
    campaign_a: i64,
    campaign_b: i64,
    /// Objects made per request, so that what one request changes or deletes never decides
    /// another's answer.
    counter: AtomicUsize,
}

fn author() -> Author {
    Author::cli()
}

impl World {
    async fn new(app: &TestApp) -> World {
        let a = app.create_brand("A", "1000000", "10000000").await;
        let b = app.create_brand("B", "1000000", "10000000").await;
        let ca = app.create_campaign(&a["id"], "a", json!({})).await;
        let cb = app.create_campaign(&b["id"], "b", json!({})).await;
        World {
            brand_a: a["id"].as_i64().unwrap(),
            brand_b: b["id"].as_i64().unwrap(),
            campaign_a: ca["id"].as_i64().unwrap(),
            campaign_b: cb["id"].as_i64().unwrap(),
            counter: AtomicUsize::new(0),
        }
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn campaign_in(&self, app: &TestApp, brand: i64) -> i64 {
        let form = adbudget_core::forms::CreateCampaign {
            brand_id: brand,
            name: format!("fresh {}", self.next()),
            daily_cap: None,
            monthly_cap: None,
            dayparting: None,
            manually_paused: None,
            lifetime_cap: None,
            flight_start: None,
            flight_end: None,
        };
        let mut conn = db::get(&app.pool).unwrap();
        adbudget_db::repo::campaigns::create(&mut conn, &form.validate().unwrap(), now(), &author())
            .unwrap()
            .id
    }

    fn brand(&self, app: &TestApp) -> i64 {
        let form = adbudget_core::forms::CreateBrand {
            name: format!("fresh brand {}", self.next()),
            daily_budget: NonNegativeMoney(Money::parse_non_negative("1").unwrap()),
            monthly_budget: NonNegativeMoney(Money::parse_non_negative("1").unwrap()),
            timezone: None,
            alert_thresholds: None,
        };
        let mut conn = db::get(&app.pool).unwrap();
        adbudget_db::repo::brands::create(&mut conn, &form.validate().unwrap(), now(), &author())
            .unwrap()
            .id
    }

    /// A spend log of 1.00 on `campaign`; its id.
    fn spend_on(&self, app: &TestApp, campaign: i64) -> i64 {
        record_spend(app, campaign, "1.00")
    }

    /// `template` with its placeholders filled: `{A}`, `{B}` the brands, `{a}`, `{b}` their
    /// campaigns; `{B*}` a new brand; `{a*}`, `{b*}` new campaigns of A and B; `{sa*}`, `{sb*}`
    /// new spend logs on A's and B's campaigns; `{n}` a number of its own.
    fn fill(&self, app: &TestApp, template: &str) -> String {
        let mut s = template.to_owned();
        let fresh: [(&str, &dyn Fn() -> i64); 5] = [
            ("{B*}", &|| self.brand(app)),
            ("{a*}", &|| self.campaign_in(app, self.brand_a)),
            ("{b*}", &|| self.campaign_in(app, self.brand_b)),
            ("{sa*}", &|| self.spend_on(app, self.campaign_a)),
            ("{sb*}", &|| self.spend_on(app, self.campaign_b)),
        ];
        for (key, make) in fresh {
            if s.contains(key) {
                s = s.replace(key, &make().to_string());
            }
        }
        s.replace("{A}", &self.brand_a.to_string())
            .replace("{B}", &self.brand_b.to_string())
            .replace("{a}", &self.campaign_a.to_string())
            .replace("{b}", &self.campaign_b.to_string())
            .replace("{n}", &self.next().to_string())
            .replace("{job}", "prune_events")
    }
}

fn record_spend(app: &TestApp, campaign: i64, amount: &str) -> i64 {
    let event = SpendEvent {
        campaign_id: campaign,
        amount: PositiveMoney(Money::parse_positive(amount).unwrap()),
        occurred_at: None,
        event_id: None,
    }
    .validate(now())
    .unwrap();
    let mut conn = db::get(&app.pool).unwrap();
    let recorded = spend::record(&mut conn, &[event], now(), spend::Mode::Single).unwrap();
    recorded.outcomes[0].log().id
}

pub(crate) fn new_token(app: &TestApp, scope: Scope, brands: Option<Vec<i64>>) -> String {
    let new = tokens::NewToken {
        name: format!(
            "{}-{:?}-{}",
            scope.as_str(),
            brands,
            uuid::Uuid::new_v4().simple()
        ),
        scope,
        brands,
        expires_at: None,
    };
    tokens::create(&mut db::get(&app.pool).unwrap(), &new, now(), &author())
        .unwrap()
        .1
}

/// Every `/api/v1` route, for every scope, unbound and bound to brand A: the status each gets.
/// The table is the permissions table of SPEC §11 as a client sees it.
async fn the_api_permissions_table(backend: Backend) {
    let app = spawn_app(backend).await;
    let w = World::new(&app).await;
    let a = Some(vec![w.brand_a]);
    let callers = [
        ("read", new_token(&app, Scope::Read, None)),
        ("ingest", new_token(&app, Scope::Ingest, None)),
        ("admin", new_token(&app, Scope::Admin, None)),
        ("read@A", new_token(&app, Scope::Read, a.clone())),
        ("ingest@A", new_token(&app, Scope::Ingest, a.clone())),
        ("admin@A", new_token(&app, Scope::Admin, a.clone())),
    ];
    let brand = r#"{"name": "N{n}", "daily_budget": "1", "monthly_budget": "1"}"#;
    let spend_a = r#"{"campaign_id": {a}, "amount": "0.01"}"#;
    let spend_b = r#"{"campaign_id": {b}, "amount": "0.01"}"#;
    let batch_a = r#"{"events": [{"campaign_id": {a}, "amount": "0.01"}]}"#;
    let batch_ab = r#"{"events": [{"campaign_id": {a}, "amount": "0.01"}, {"campaign_id": {b}, "amount": "0.01"}]}"#;
    let window = r#"{"start_hour": 0, "end_hour": 24}"#;
    let reason = r#"{"reason": "test"}"#;
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, [u16; 6])] = &[
        //                                                     read  ingest admin  read@A ingest@A admin@A
        ("GET",    "/api/v1/brands",                      "",  [200, 200, 200, 200, 200, 200]),
        ("POST",   "/api/v1/brands",                   brand,  [403, 403, 201, 403, 403, 403]),
        ("GET",    "/api/v1/brands/{A}",                  "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/brands/{B}",                  "",  [200, 200, 200, 404, 404, 404]),
        ("PATCH",  "/api/v1/brands/{A}", r#"{"name": "A"}"#,   [403, 403, 200, 403, 403, 200]),
        ("PATCH",  "/api/v1/brands/{B}", r#"{"name": "B"}"#,   [403, 403, 200, 403, 403, 404]),
        ("DELETE", "/api/v1/brands/{B*}",                 "",  [403, 403, 204, 403, 403, 404]),
        ("GET",    "/api/v1/campaigns",                   "",  [200, 200, 200, 200, 200, 200]),
        ("POST",   "/api/v1/campaigns", r#"{"brand_id": {A}, "name": "c{n}"}"#, [403, 403, 201, 403, 403, 201]),
        ("POST",   "/api/v1/campaigns", r#"{"brand_id": {B}, "name": "c{n}"}"#, [403, 403, 201, 403, 403, 404]),
        ("GET",    "/api/v1/campaigns/{a}",               "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/campaigns/{b}",               "",  [200, 200, 200, 404, 404, 404]),
        ("PATCH",  "/api/v1/campaigns/{a}", r#"{"name": "a"}"#, [403, 403, 200, 403, 403, 200]),
        ("PATCH",  "/api/v1/campaigns/{b}", r#"{"name": "b"}"#, [403, 403, 200, 403, 403, 404]),
        ("DELETE", "/api/v1/campaigns/{a*}",              "",  [403, 403, 204, 403, 403, 204]),
        ("DELETE", "/api/v1/campaigns/{b*}",              "",  [403, 403, 204, 403, 403, 404]),
        ("PUT",    "/api/v1/campaigns/{a}/dayparting", window, [403, 403, 200, 403, 403, 200]),
        ("PUT",    "/api/v1/campaigns/{b}/dayparting", window, [403, 403, 200, 403, 403, 404]),
        ("DELETE", "/api/v1/campaigns/{a}/dayparting",    "",  [403, 403, 200, 403, 403, 200]),
        ("POST",   "/api/v1/campaigns/{a}/pause",         "",  [403, 403, 200, 403, 403, 200]),
        ("POST",   "/api/v1/campaigns/{b}/pause",         "",  [403, 403, 200, 403, 403, 404]),
        ("POST",   "/api/v1/campaigns/{a}/resume",        "",  [403, 403, 200, 403, 403, 200]),
        ("POST",   "/api/v1/campaigns/{b}/resume",        "",  [403, 403, 200, 403, 403, 404]),
        ("GET",    "/api/v1/campaigns/{a}/history",       "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/campaigns/{b}/history",       "",  [200, 200, 200, 404, 404, 404]),
        ("GET",    "/api/v1/campaigns/{a}/spend",         "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/campaigns/{b}/spend",         "",  [200, 200, 200, 404, 404, 404]),
        ("POST",   "/api/v1/spend",                  spend_a,  [403, 201, 201, 403, 201, 201]),
        ("POST",   "/api/v1/spend",                  spend_b,  [403, 201, 201, 403, 403, 403]),
        ("POST",   "/api/v1/spend/batch",            batch_a,  [403, 201, 201, 403, 201, 201]),
        ("POST",   "/api/v1/spend/batch",           batch_ab,  [403, 201, 201, 403, 403, 403]),
        ("POST",   "/api/v1/spend/{sa*}/reverse",     reason,  [403, 403, 200, 403, 403, 200]),
        ("POST",   "/api/v1/spend/{sb*}/reverse",     reason,  [403, 403, 200, 403, 403, 404]),
        ("GET",    "/api/v1/brands/{A}/pacing",           "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/brands/{B}/pacing",           "",  [200, 200, 200, 404, 404, 404]),
        ("GET",    "/api/v1/campaigns/{a}/pacing",        "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/campaigns/{b}/pacing",        "",  [200, 200, 200, 404, 404, 404]),
        ("GET",    "/api/v1/brands/{A}/spend/series",     "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/brands/{B}/spend/series",     "",  [200, 200, 200, 404, 404, 404]),
        ("GET",    "/api/v1/audit",                       "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/events",                      "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/events?brand_id={A}",         "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/events?brand_id={B}",         "",  [200, 200, 200, 404, 404, 404]),
        ("GET",    "/api/v1/webhooks",                    "",  [403, 403, 200, 403, 403, 403]),
        ("POST",   "/api/v1/webhooks", r#"{"url": "https://93.184.216.34/hook"}"#, [403, 403, 201, 403, 403, 403]),
        ("GET",    "/api/v1/webhooks/999999",             "",  [403, 403, 404, 403, 403, 403]),
        ("PATCH",  "/api/v1/webhooks/999999", r#"{"description": "x"}"#, [403, 403, 404, 403, 403, 403]),
        ("DELETE", "/api/v1/webhooks/999999",             "",  [403, 403, 404, 403, 403, 403]),
        ("POST",   "/api/v1/webhooks/999999/test",        "",  [403, 403, 404, 403, 403, 403]),
        ("POST",   "/api/v1/webhooks/999999/rotate-secret", "", [403, 403, 404, 403, 403, 403]),
        ("GET",    "/api/v1/webhooks/999999/deliveries",  "",  [403, 403, 404, 403, 403, 403]),
        ("POST",   "/api/v1/webhooks/999999/deliveries/1/redeliver", "", [403, 403, 404, 403, 403, 403]),
        ("GET",    "/api/v1/jobs/queues",                 "",  [200, 200, 200, 200, 200, 200]),
        ("GET",    "/api/v1/jobs/schedules",              "",  [200, 200, 200, 200, 200, 200]),
        ("PATCH",  "/api/v1/jobs/schedules/{job}", r#"{"enabled": true}"#, [403, 403, 200, 403, 403, 403]),
        ("POST",   "/api/v1/jobs/{job}/run",              "",  [403, 403, 202, 403, 403, 403]),
    ];
    // Every operation the OpenAPI document lists is in the table: a new route cannot be added
    // without saying who may use it.
    let template = |path: &str| {
        path.split('/')
            .map(|seg| {
                let id = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit());
                if seg.starts_with('{') || id {
                    "{}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let listed: std::collections::BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p, _, _)| (m.to_lowercase(), template(p)))
        .collect();
    let doc = app.get("/api/openapi.json").await.expect(200);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let key = (method.clone(), template(path));
            assert!(
                !path.starts_with("/api/v1") || listed.contains(&key),
                "{method} {path} is not in the permissions table"
            );
        }
    }
    let mut wrong = Vec::new();
    for (method, path, body, expected) in table {
        for ((caller, token), want) in callers.iter().zip(expected) {
            let path = w.fill(&app, path);
            let body: Option<Value> =
                (!body.is_empty()).then(|| serde_json::from_str(&w.fill(&app, body)).unwrap());
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let resp = app
                .request(method.clone(), &path, Some(token), body.as_ref())
                .await;
            if resp.status.as_u16() != *want {
                wrong.push(format!(
                    "{method} {path} as {caller}: {} (expected {want}) {}",
                    resp.status, resp.body
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// A `Cookie` header carrying `session`, signed with `key` as the server signs it.
fn signed(key: &actix_web::cookie::Key, session: &adbudget_api::admin::session::Session) -> String {
    let value = serde_json::to_string(session).unwrap();
    let mut jar = actix_web::cookie::CookieJar::new();
    jar.signed_mut(key)
        .add(actix_web::cookie::Cookie::new("adbudget_session", value));
    let c = jar.get("adbudget_session").unwrap();
    format!("adbudget_session={}", c.value())
}

/// Logs `username` in at `address`: the session cookie and its CSRF token.
async fn login_as(address: &str, username: &str, password: &str) -> (String, String) {
    let c = client();
    let form = c
        .get(format!("{address}/admin/login"))
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&form).unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let resp = c
        .post(format!("{address}/admin/login"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
            ("next", "/admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{username} logs in");
    let cookie = session_cookie(&resp).unwrap();
    let page = admin_get(address, "/admin", &cookie).await;
    let csrf = csrf_of(&page.text().await.unwrap());
    (cookie, csrf)
}

async fn admin_get(address: &str, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(format!("{address}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn admin_post(
    address: &str,
    path: &str,
    (cookie, csrf): &(String, String),
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    client()
        .post(format!("{address}{path}"))
        .header("cookie", cookie)
        .form(&fields)
        .send()
        .await
        .unwrap()
}

const PASSWORD: &str = "correct horse battery staple";

/// An admin page: method, path, form fields, and the status each role gets.
type AdminRow<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], [u16; 6]);

fn create_user(app: &TestApp, name: &str, role: Role, brands: Option<Vec<i64>>) {
    let new = users::NewUser {
        username: name.to_owned(),
        password: PASSWORD.to_owned(),
        role,
        brands,
    };
    users::create(&mut db::get(&app.pool).unwrap(), &new, now(), &author()).unwrap();
}

/// The admin pages, for every role, unbound and bound to brand A.
async fn the_admin_permissions_table(backend: Backend) {
    let app = spawn_app(backend).await;
    let w = World::new(&app).await;
    let a = Some(vec![w.brand_a]);
    let roles = [
        ("viewer", Role::Viewer, None),
        ("operator", Role::Operator, None),
        ("admin", Role::Admin, None),
        ("viewer@A", Role::Viewer, a.clone()),
        ("operator@A", Role::Operator, a.clone()),
        ("admin@A", Role::Admin, a.clone()),
    ];
    let mut sessions = Vec::new();
    for (name, role, brands) in &roles {
        create_user(&app, name, *role, brands.clone());
        sessions.push((*name, login_as(&app.address, name, PASSWORD).await));
    }
    let brand_form: &[(&str, &str)] = &[
        ("name", "N{n}"),
        ("daily_budget", "1"),
        ("monthly_budget", "1"),
        ("timezone", "UTC"),
    ];
    let none: &[(&str, &str)] = &[];
    // 303: done (redirected to the page that shows it); 200: a page, or a page that created
    // what it shows (a new token).
    #[rustfmt::skip]
    let table: &[AdminRow<'_>] = &[
        //                                                          viewer operator admin viewer@A operator@A admin@A
        ("GET",  "/admin",                              none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/brands",                       none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/brands/{A}",                   none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/brands/{B}",                   none,        [200, 200, 200, 404, 404, 404]),
        ("GET",  "/admin/brands/{A}/history",           none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/brands/{B}/history",           none,        [200, 200, 200, 404, 404, 404]),
        ("GET",  "/admin/brands/new",                   none,        [403, 200, 200, 403, 403, 403]),
        ("POST", "/admin/brands/new",                   brand_form,  [403, 303, 303, 403, 403, 403]),
        ("POST", "/admin/brands/{A}",   &[("name", "A"), ("daily_budget", "1000000"), ("monthly_budget", "10000000"), ("timezone", "UTC")],
                                                                     [403, 303, 303, 403, 303, 303]),
        ("POST", "/admin/brands/{B}",   &[("name", "B"), ("daily_budget", "1000000"), ("monthly_budget", "10000000"), ("timezone", "UTC")],
                                                                     [403, 303, 303, 403, 404, 404]),
        ("POST", "/admin/brands/{B*}/delete",           none,        [403, 303, 303, 403, 404, 404]),
        ("GET",  "/admin/campaigns",                    none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/campaigns/{a}",                none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/campaigns/{b}",                none,        [200, 200, 200, 404, 404, 404]),
        ("GET",  "/admin/campaigns/{b}/history",        none,        [200, 200, 200, 404, 404, 404]),
        ("POST", "/admin/campaigns/new", &[("brand_id", "{A}"), ("name", "c{n}")], [403, 303, 303, 403, 303, 303]),
        ("POST", "/admin/campaigns/new", &[("brand_id", "{B}"), ("name", "c{n}")], [403, 303, 303, 403, 200, 200]),
        ("POST", "/admin/campaigns/{a}/pause",          none,        [403, 303, 303, 403, 303, 303]),
        ("POST", "/admin/campaigns/{b}/pause",          none,        [403, 303, 303, 403, 404, 404]),
        ("POST", "/admin/campaigns/{a}/resume",         none,        [403, 303, 303, 403, 303, 303]),
        ("POST", "/admin/campaigns/{a*}/delete",        none,        [403, 303, 303, 403, 303, 303]),
        ("POST", "/admin/campaigns/{b*}/delete",        none,        [403, 303, 303, 403, 404, 404]),
        ("POST", "/admin/campaigns/bulk", &[("ids", "{a}"), ("action", "resume")], [403, 303, 303, 403, 303, 303]),
        ("GET",  "/admin/spend",                        none,        [200, 200, 200, 200, 200, 200]),
        ("POST", "/admin/spend/{sa*}/reverse", &[("reason", "test")], [403, 303, 303, 403, 303, 303]),
        ("POST", "/admin/spend/{sb*}/reverse", &[("reason", "test")], [403, 303, 303, 403, 404, 404]),
        ("GET",  "/admin/audit",                        none,        [200, 200, 200, 200, 200, 200]),
        // A NUL in a filter reaches no query (PostgreSQL text cannot hold one: it was a 500).
        ("GET",  "/admin/audit?object=%00&actor=%00",   none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/users",                        none,        [403, 403, 200, 403, 403, 403]),
        ("POST", "/admin/users", &[("username", "u{n}"), ("password", PASSWORD), ("role", "viewer"), ("brands", "")],
                                                                     [403, 403, 303, 403, 403, 403]),
        ("GET",  "/admin/tokens",                       none,        [403, 403, 200, 403, 403, 403]),
        ("POST", "/admin/tokens", &[("name", "t{n}"), ("scope", "read"), ("brands", ""), ("expires_days", "")],
                                                                     [403, 403, 200, 403, 403, 403]),
        ("GET",  "/admin/webhooks",                     none,        [403, 403, 200, 403, 403, 403]),
        ("POST", "/admin/webhooks", &[("url", "https://93.184.216.34/hook"), ("event_types", ""), ("brand_ids", "")],
                                                                     [403, 403, 200, 403, 403, 403]),
        ("GET",  "/admin/webhooks/999999",              none,        [403, 403, 404, 403, 403, 403]),
        ("POST", "/admin/webhooks/999999/test",         none,        [403, 403, 404, 403, 403, 403]),
        ("POST", "/admin/webhooks/999999/deliveries/1/redeliver", none, [403, 403, 404, 403, 403, 403]),
        ("GET",  "/admin/events",                       none,        [200, 200, 200, 200, 200, 200]),
        ("GET",  "/admin/events?type=%00&brand_id=x&after=%00", none, [200, 200, 200, 200, 200, 200]),
        ("GET",  "/jobs",                               none,        [200, 200, 200, 200, 200, 200]),
        // Schedules govern every brand: only admins re-time or disable them; "Run now" is for
        // whoever may retry jobs.
        ("POST", "/jobs/prune_events/schedule", &[("cron", "0 17 3 * * *"), ("enabled", "true")],
                                                                     [403, 403, 303, 403, 403, 403]),
        ("POST", "/jobs/prune_events/run", &[("key", "k{n}")],       [403, 303, 303, 403, 403, 403]),
    ];
    let mut wrong = Vec::new();
    for (method, path, form, expected) in table {
        for ((role, session), want) in sessions.iter().zip(expected) {
            let path = w.fill(&app, path);
            let filled: Vec<(String, String)> = form
                .iter()
                .map(|(k, v)| ((*k).to_owned(), w.fill(&app, v)))
                .collect();
            let fields: Vec<(&str, &str)> = filled
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let resp = if *method == "GET" {
                admin_get(&app.address, &path, &session.0).await
            } else {
                admin_post(&app.address, &path, session, &fields).await
            };
            if resp.status().as_u16() != *want {
                wrong.push(format!(
                    "{method} {path} as {role}: {} (expected {want})",
                    resp.status()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// A token bound to brand A lists only A's brands, campaigns and audit entries.
async fn a_bound_token_sees_only_its_brands(backend: Backend) {
    let app = spawn_app(backend).await;
    let w = World::new(&app).await;
    let bound = new_token(&app, Scope::Read, Some(vec![w.brand_a]));
    let ids = |page: Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let get = |path: &'static str| {
        let (app, bound) = (&app, bound.clone());
        async move {
            app.request(Method::GET, path, Some(&bound), None)
                .await
                .expect(200)
        }
    };
    assert_eq!(ids(get("/api/v1/brands").await), vec![w.brand_a]);
    assert_eq!(ids(get("/api/v1/campaigns").await), vec![w.campaign_a]);
    let audit = get("/api/v1/audit").await;
    let brands: Vec<i64> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["brand_id"].as_i64().unwrap())
        .collect();
    assert!(!brands.is_empty(), "A's creation is in the trail: {audit}");
    assert!(brands.iter().all(|b| *b == w.brand_a), "{audit}");
    // Unbound, both.
    let all = app.get("/api/v1/brands").await.expect(200);
    assert_eq!(ids(all), vec![w.brand_a, w.brand_b]);
}

/// Event ids are unique per brand: a connector bound to brand B cannot take brand A's ids away,
/// and the same id in two brands is two events.
async fn event_ids_cannot_be_squatted(backend: Backend) {
    let app = spawn_app(backend).await;
    let w = World::new(&app).await;
    let a = new_token(&app, Scope::Ingest, Some(vec![w.brand_a]));
    let b = new_token(&app, Scope::Ingest, Some(vec![w.brand_b]));
    let event =
        |campaign: i64| json!({"campaign_id": campaign, "amount": "5", "event_id": "order-1"});
    // B's connector tries A's next id on A's campaign: refused, and nothing recorded.
    let squat = app
        .request(
            Method::POST,
            "/api/v1/spend",
            Some(&b),
            Some(&event(w.campaign_a)),
        )
        .await;
    assert_eq!(squat.status, 403, "{}", squat.body);
    assert_eq!(squat.body["error"]["code"], "forbidden");
    // B records the id on its own campaign; A's real event with the same id is counted.
    app.request(
        Method::POST,
        "/api/v1/spend",
        Some(&b),
        Some(&event(w.campaign_b)),
    )
    .await
    .expect(201);
    let real = app
        .request(
            Method::POST,
            "/api/v1/spend",
            Some(&a),
            Some(&event(w.campaign_a)),
        )
        .await
        .expect(201);
    assert_eq!(real["campaign"]["daily_spend"], "5.00");
    assert_eq!(real["spend"]["brand_id"], w.brand_a);
    assert_eq!(
        app.campaign(&json!(w.campaign_b)).await["daily_spend"],
        "5.00"
    );
    // A batch that touches B's campaign is refused whole, A's events included.
    let batch = json!({"events": [
        {"campaign_id": w.campaign_a, "amount": "1"},
        {"campaign_id": w.campaign_b, "amount": "1"},
    ]});
    let resp = app
        .request(Method::POST, "/api/v1/spend/batch", Some(&a), Some(&batch))
        .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.error_field(), "events[1].campaign_id");
    assert_eq!(
        app.campaign(&json!(w.campaign_a)).await["daily_spend"],
        "5.00",
        "nothing of the refused batch counted"
    );
}

/// The admin page revokes the token it shows (by id); the CLI's argument is a name first. A
/// token named like another token's id is never taken for it.
async fn revoking_names_the_right_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut conn = db::get(&app.pool).unwrap();
    let list = tokens::list(&mut conn).unwrap();
    let ingest = list.iter().find(|t| t.name == "test-ingest").unwrap().id;
    let named = tokens::NewToken::new(&ingest.to_string(), Scope::Read);
    let (named, _) = tokens::create(&mut conn, &named, now(), &author()).unwrap();
    let revoked =
        tokens::revoke(&mut conn, tokens::TokenRef::Id(ingest), now(), &author()).unwrap();
    assert_eq!(revoked.name, "test-ingest");
    let by_name = tokens::revoke(
        &mut conn,
        tokens::TokenRef::NameOrId(&ingest.to_string()),
        now(),
        &author(),
    )
    .unwrap();
    assert_eq!(by_name.id, named.id, "the name first");
    let none = tokens::revoke(&mut conn, tokens::TokenRef::Id(ingest), now(), &author());
    assert!(none.is_err(), "already revoked");
}

/// An expired token is refused; a used token's `last_used_at` is recorded.
async fn tokens_expire_and_record_their_last_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let fresh = new_token(&app, Scope::Read, None);
    let expiring = {
        let new = tokens::NewToken {
            name: "short".into(),
            scope: Scope::Read,
            brands: None,
            expires_at: Some(now() + chrono::Duration::milliseconds(300)),
        };
        tokens::create(&mut db::get(&app.pool).unwrap(), &new, now(), &author())
            .unwrap()
            .1
    };
    app.request(Method::GET, "/api/v1/brands", Some(&expiring), None)
        .await
        .expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let resp = app
        .request(Method::GET, "/api/v1/brands", Some(&expiring), None)
        .await;
    assert_eq!(resp.status, 401, "an expired token is refused");

    let before = now();
    app.request(Method::GET, "/api/v1/brands", Some(&fresh), None)
        .await
        .expect(200);
    let list = tokens::list(&mut db::get(&app.pool).unwrap()).unwrap();
    let used = list.iter().find(|t| fresh.starts_with(&t.prefix)).unwrap();
    assert!(
        used.last_used_at
            .is_some_and(|t| t >= before - chrono::Duration::seconds(1)),
        "{used:?}"
    );
    let short = list.iter().find(|t| t.name == "short").unwrap();
    assert!(short.expires_at.is_some());
}

/// A reversal lowers the totals the spend counted toward, resumes what it had paused, is listed
/// with the spend it undoes, is audited, and cannot be repeated.
async fn reversing_spend(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "10", "100").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let other = app.create_campaign(&brand["id"], "d", json!({})).await;
    app.spend(&c["id"], "4").await;
    let fake = app
        .post_spend(json!({"campaign_id": c["id"], "amount": "6"}))
        .await
        .expect(201);
    // The brand's budget is reached: both campaigns paused.
    assert_eq!(
        reasons(&app.campaign(&other["id"]).await),
        ["brand_daily_budget"]
    );

    let id = fake["spend"]["id"].as_i64().unwrap();
    let path = format!("/api/v1/spend/{id}/reverse");
    let no_reason = app.post(&path, json!({"reason": "  "})).await;
    assert_eq!(no_reason.status, 422);
    assert_eq!(no_reason.error_field(), "reason");
    let reversed = app
        .post(&path, json!({"reason": "forged by a leaked token"}))
        .await
        .expect(200);
    assert_eq!(reversed["reversal"]["amount"], "-6.00");
    assert_eq!(reversed["reversal"]["reverses_id"], id);
    assert_eq!(
        reversed["reversed"]["reversed_by"],
        reversed["reversal"]["id"]
    );
    assert_eq!(reversed["campaign"]["daily_spend"], "4.00");
    assert_eq!(reversed["campaign"]["is_active"], true);
    let b = app.brand(&brand["id"]).await;
    assert_eq!(
        (b["daily_spend"].as_str(), b["monthly_spend"].as_str()),
        (Some("4.00"), Some("4.00"))
    );
    assert_eq!(
        app.campaign(&other["id"]).await["is_active"],
        true,
        "resumed at once"
    );

    let again = app.post(&path, json!({"reason": "twice"})).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let of_reversal = app
        .post(
            &format!("/api/v1/spend/{}/reverse", reversed["reversal"]["id"]),
            json!({"reason": "undo the undo"}),
        )
        .await;
    assert_eq!(of_reversal.status, 409);
    let missing = app
        .post("/api/v1/spend/999999/reverse", json!({"reason": "x"}))
        .await;
    assert_eq!(missing.status, 404);

    // Listed with the spend it undoes.
    let logs = app
        .get(&format!("/api/v1/campaigns/{}/spend", c["id"]))
        .await
        .expect(200);
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["reverses_id"], id);
    assert_eq!(items[0]["reason"], "forged by a leaked token");
    assert_eq!(items[1]["id"], id);
    assert_eq!(items[1]["reversed_by"], items[0]["id"]);

    // Audited, by the admin token.
    let audit = app
        .get(&format!("/api/v1/audit?object=spend:{id}"))
        .await
        .expect(200);
    let entry = &audit["items"][0];
    assert_eq!(entry["action"], "reverse");
    assert_eq!(entry["actor"]["kind"], "token");
    assert_eq!(entry["actor"]["name"], "test-admin");
    assert_eq!(
        entry["changes"]["reason"]["new"],
        "forged by a leaked token"
    );
    assert!(entry["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    // `verify` agrees with the totals.
    let report = adbudget_db::repo::verify::check(&mut db::get(&app.pool).unwrap(), now()).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

/// Logout on one replica ends the session on another; so do a password change and disabling
/// the user; an idle session ends.
async fn sessions_end_on_every_replica(backend: Backend) {
    let app = spawn_app(backend).await;
    let replica = app.replica();
    create_user(&app, "ops", Role::Admin, None);
    let page = |address: String, cookie: String| async move {
        admin_get(&address, "/admin", &cookie)
            .await
            .status()
            .as_u16()
    };

    // Logged in on the app, the session works on the replica (the same key, the same database).
    let first = login_as(&app.address, "ops", PASSWORD).await;
    let second = login_as(&app.address, "ops", PASSWORD).await;
    assert_eq!(page(replica.clone(), first.0.clone()).await, 200);
    // Logging out of one session on the replica ends both, on both.
    let out = admin_post(&replica, "/admin/logout", &first, &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(page(app.address.clone(), first.0.clone()).await, 303);
    assert_eq!(page(replica.clone(), second.0.clone()).await, 303);
    assert_eq!(page(app.address.clone(), second.0.clone()).await, 303);

    // A password change ends the sessions too.
    let third = login_as(&app.address, "ops", PASSWORD).await;
    assert_eq!(page(replica.clone(), third.0.clone()).await, 200);
    users::set_password(
        &mut db::get(&app.pool).unwrap(),
        "ops",
        "another long password",
        now(),
        &author(),
    )
    .unwrap();
    assert_eq!(page(replica.clone(), third.0.clone()).await, 303);

    // An idle session ends: a cookie whose last request is 31 minutes old is refused.
    let key = actix_web::cookie::Key::derive_from(crate::helpers::SECRET_KEY.as_bytes());
    let epoch = users::session_facts(&mut db::get(&app.pool).unwrap(), 1)
        .unwrap()
        .unwrap()
        .epoch;
    let mut idle = adbudget_api::admin::session::Session::login(1, "ops".into(), epoch);
    idle.seen -= 31 * 60;
    let cookie = signed(&key, &idle);
    assert_eq!(
        page(app.address.clone(), cookie.clone()).await,
        303,
        "idle for 31 minutes"
    );
    idle.seen += 2 * 60;
    let fresh_cookie = signed(&key, &idle);
    let resp = admin_get(&app.address, "/admin", &fresh_cookie).await;
    assert_eq!(resp.status(), 200, "idle for 29 minutes");
    assert!(
        session_cookie(&resp).is_some(),
        "the session's time of last request is written back"
    );
}

/// One entry per change with each changed field; none for a refused change.
async fn the_audit_trail(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "10", "100").await;
    let id = brand["id"].as_i64().unwrap();
    app.patch(
        &format!("/api/v1/brands/{id}"),
        json!({"name": "Acme Corp", "daily_budget": "20", "timezone": "Europe/Paris"}),
    )
    .await
    .expect(200);
    let refused = app
        .patch(
            &format!("/api/v1/brands/{id}"),
            json!({"daily_budget": "-1"}),
        )
        .await;
    assert_eq!(refused.status, 422);

    let audit = app
        .get(&format!("/api/v1/audit?object=brand:{id}"))
        .await
        .expect(200);
    let items = audit["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "create and one update, nothing for the refused one: {audit}"
    );
    let update = &items[0];
    assert_eq!(update["action"], "update");
    assert_eq!(update["object_type"], "brand");
    assert_eq!(update["actor"]["kind"], "token");
    let changes = update["changes"].as_object().unwrap();
    assert_eq!(
        changes.keys().collect::<Vec<_>>(),
        ["daily_budget", "name", "timezone"]
    );
    assert_eq!(changes["name"]["old"], "Acme");
    assert_eq!(changes["name"]["new"], "Acme Corp");
    assert_eq!(changes["daily_budget"]["old"], "10.00");
    assert_eq!(changes["daily_budget"]["new"], "20.00");
    assert_eq!(items[1]["action"], "create");

    // Filters: by actor and by time.
    let by_actor = app
        .get("/api/v1/audit?actor=token:test-admin")
        .await
        .expect(200);
    assert_eq!(by_actor["items"].as_array().unwrap().len(), 2);
    let nobody = app
        .get("/api/v1/audit?actor=someone-else")
        .await
        .expect(200);
    assert!(nobody["items"].as_array().unwrap().is_empty());
    let later =
        (now() + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none_after = app
        .get(&format!("/api/v1/audit?from={later}"))
        .await
        .expect(200);
    assert!(none_after["items"].as_array().unwrap().is_empty());
    let bad = app.get("/api/v1/audit?object=planet").await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_field(), "object");

    // The trail cannot be rewritten: the database refuses.
    use diesel::prelude::*;
    let mut conn = db::get(&app.pool).unwrap();
    let edited = adbudget_db::per_backend!(&mut *conn, c => diesel::sql_query(
        "UPDATE audit_entries SET actor_name = 'nobody'"
    )
    .execute(c));
    assert!(edited.is_err(), "an audit entry was changed");
    let deleted = adbudget_db::per_backend!(&mut *conn, c => diesel::sql_query(
        "DELETE FROM audit_entries"
    )
    .execute(c));
    assert!(deleted.is_err(), "an audit entry was deleted");
}
