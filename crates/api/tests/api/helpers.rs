use std::net::TcpListener;

use adbudget_api::admin::AdminState;
use adbudget_api::state::{AppState, JobsMonitor};
use adbudget_api::{Application, Limits};
use adbudget_core::jobs::{JobKind, JobSchedule};
use adbudget_db::repo::tokens::{self, Scope};
use adbudget_db::{self as db, DbPool};
use adbudget_testing::{Backend, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) use adbudget_testing::on_both_databases_async as on_both_databases;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub ingest_token: String,
    pub pool: DbPool,
    /// The Redis the job monitor reads, under a key prefix of this test's own.
    pub jobs: JobsMonitor,
    _db: TestDatabase,
}

/// The admin panel's session key in tests.
pub const SECRET_KEY: &str = "test-secret-test-secret-test-secret-test-secret-";

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with_limits(backend, Limits::default()).await
}

/// An app whose state `customize` adjusts (the gauge refresh, say).
pub async fn spawn_app_with(backend: Backend, customize: fn(AppState) -> AppState) -> TestApp {
    let database = TestDatabase::create(backend).expect("test database");
    let url = database.url.clone();
    spawn_customized(database, &url, Limits::default(), customize, |admin| admin).await
}

/// An app whose client time limits are `limits`.
pub async fn spawn_app_with_limits(backend: Backend, limits: Limits) -> TestApp {
    let database = TestDatabase::create(backend).expect("test database");
    let url = database.url.clone();
    spawn(database, &url, limits).await
}

/// An app on `database`, reached through `url` (a relay in the outage test).
pub async fn spawn_app_on(database: TestDatabase, url: &str) -> TestApp {
    spawn(database, url, Limits::default()).await
}

async fn spawn(database: TestDatabase, url: &str, limits: Limits) -> TestApp {
    spawn_customized(database, url, limits, |state| state, |admin| admin).await
}

/// An app whose admin panel is configured by `admin` (public URL, trusted proxies).
pub async fn spawn_app_with_admin(
    backend: Backend,
    admin: fn(AdminState) -> AdminState,
) -> TestApp {
    let database = TestDatabase::create(backend).expect("test database");
    let url = database.url.clone();
    spawn_customized(database, &url, Limits::default(), |s| s, admin).await
}

/// Starts an Application on `pool` (another API process, as far as the app knows); its address.
fn serve(
    pool: DbPool,
    jobs: JobsMonitor,
    admin: AdminState,
    customize: fn(AppState) -> AppState,
    limits: Limits,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::with_limits(
        customize(AppState::new(pool).with_jobs(jobs)),
        admin,
        listener,
        limits,
    )
    .expect("app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

async fn spawn_customized(
    database: TestDatabase,
    url: &str,
    limits: Limits,
    customize: fn(AppState) -> AppState,
    admin: fn(AdminState) -> AdminState,
) -> TestApp {
    let pool = db::connect(url, 8).expect("pool");
    let (admin_token, ingest_token) = {
        let mut conn = db::get(&pool).unwrap();
        let now = adbudget_core::forms::now();
        let (_, admin) = tokens::create(
            &mut conn,
            &tokens::NewToken::new("test-admin", Scope::Admin),
            now,
            &adbudget_core::access::Author::cli(),
        )
        .unwrap();
        let (_, ingest) = tokens::create(
            &mut conn,
            &tokens::NewToken::new("test-ingest", Scope::Ingest),
            now,
            &adbudget_core::access::Author::cli(),
        )
        .unwrap();
        (admin, ingest)
    };
    let prefix = format!("adbudget-test-{}", uuid::Uuid::new_v4().simple());
    let redis_url = adbudget_testing::redis_url();
    let jobs = JobsMonitor {
        redis: adbudget_queue::connect_lazy(&redis_url).unwrap(),
        prefix: prefix.clone(),
    };
    let defaults: Vec<JobSchedule> = JobKind::ALL
        .iter()
        .map(|k| JobSchedule::parse(*k, k.default_schedule()).unwrap())
        .collect();
    adbudget_db::repo::schedules::seed(&mut db::get(&pool).unwrap(), &defaults, chrono::Utc::now())
        .unwrap();
    let address = serve(
        pool.clone(),
        jobs.clone(),
        admin(AdminState::new(Some(SECRET_KEY))),
        customize,
        limits,
    );
    TestApp {
        address,
        client: reqwest::Client::new(),
        admin_token,
        ingest_token,
        pool,
        jobs,
        _db: database,
    }
}

/// A response as a user sees it: status and JSON body (`Null` when empty).
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
}

impl Resp {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// The `field` of an error body.
    pub fn error_field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Another API process on this app's database (a replica behind the load balancer): nothing
    /// in memory shared, the same data. Its address.
    pub fn replica(&self) -> String {
        serve(
            self.pool.clone(),
            self.jobs.clone(),
            AdminState::new(Some(SECRET_KEY)),
            |s| s,
            Limits::default(),
        )
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp { status, body }
    }

    pub async fn raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(&self.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, Some(&self.admin_token), None)
            .await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(&self.admin_token), Some(&body))
            .await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, Some(&self.admin_token), Some(&body))
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PUT, path, Some(&self.admin_token), Some(&body))
            .await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, Some(&self.admin_token), None)
            .await
    }

    pub async fn create_brand(&self, name: &str, daily: &str, monthly: &str) -> Value {
        self.post(
            "/api/v1/brands",
            json!({"name": name, "daily_budget": daily, "monthly_budget": monthly}),
        )
        .await
        .expect(201)
    }

    pub async fn create_campaign(&self, brand_id: &Value, name: &str, extra: Value) -> Value {
        let mut body = json!({"brand_id": brand_id, "name": name});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/api/v1/campaigns", body).await.expect(201)
    }

    /// Posts spend with the ingest token.
    pub async fn post_spend(&self, body: Value) -> Resp {
        self.request(
            Method::POST,
            "/api/v1/spend",
            Some(&self.ingest_token),
            Some(&body),
        )
        .await
    }

    pub async fn spend(&self, campaign_id: &Value, amount: &str) -> Value {
        self.post_spend(json!({"campaign_id": campaign_id, "amount": amount}))
            .await
            .expect(201)
    }

    pub async fn campaign(&self, id: &Value) -> Value {
        self.get(&format!("/api/v1/campaigns/{id}"))
            .await
            .expect(200)
    }

    pub async fn brand(&self, id: &Value) -> Value {
        self.get(&format!("/api/v1/brands/{id}")).await.expect(200)
    }

    /// Every item of a paginated list, following `next_cursor`.
    pub async fn all_pages(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{sep}limit=500");
        loop {
            let page = self.get(&url).await.expect(200);
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("{path}{sep}limit=500&cursor={c}"),
                None => return items,
            }
        }
    }
}

/// Sums decimal strings exactly (in micro-units).
pub fn micros(amount: &Value) -> i64 {
    adbudget_core::money::Money::parse_non_negative(amount.as_str().expect("amount string"))
        .unwrap()
        .micros()
}

pub fn reasons(campaign: &Value) -> Vec<String> {
    campaign["pause_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}
