use std::process::Stdio;

use serde_json::{Value, json};

use crate::helpers::{Process, TestDatabase, adbudget, command, free_port, wait_ready};
use adbudget_testing::Backend;

/// The README's first command and walk-through: standalone on SQLite, a token from the CLI, a
/// brand and a campaign, spend that reaches the budget, and the campaign paused in the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_the_readme_walkthrough() {
    let dir = std::env::temp_dir().join(format!("adbudget-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("standalone.db").display());
    let _ = std::fs::remove_file(dir.join("standalone.db"));
    let port = free_port();
    let mut cmd = command("adbudget", &url);
    cmd.arg("standalone")
        .env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut process = Process::spawn(&mut cmd).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz"), &mut process).await;

    let token = {
        let mut c = command("adbudget", &url);
        let out = c
            .args(["token", "create", "--name", "readme", "--scope", "admin"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let brand: Value = post("/api/v1/brands", json!({"name": "Acme", "daily_budget": "100.00", "monthly_budget": "2000.00", "timezone": "Europe/Berlin"}))
        .await.unwrap().json().await.unwrap();
    let campaign: Value = post(
        "/api/v1/campaigns",
        json!({"brand_id": brand["id"], "name": "Winter sale"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let first = post(
        "/api/v1/spend",
        json!({"campaign_id": campaign["id"], "amount": "60.00"}),
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 201);
    let second: Value = post(
        "/api/v1/spend",
        json!({"campaign_id": campaign["id"], "amount": "40.00"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(second["campaign"]["is_active"], false);
    assert_eq!(
        second["campaign"]["pause_reasons"],
        json!(["brand_daily_budget"])
    );

    // The admin user was created with a password printed once.
    let out = process.kill_with_stdout();
    assert!(
        out.contains("username: admin") && out.contains("password: "),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `adbudget-api` on PostgreSQL after `adbudget migrate`: ready, and serving the OpenAPI document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_binary_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).unwrap();
    let migrate = adbudget(&db, &["migrate"]);
    assert!(migrate.ok, "{}", migrate.stderr);
    assert!(
        migrate.stderr.contains("applied 0 migration"),
        "already migrated: {}",
        migrate.stderr
    );
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{}-api.log", db.url.rsplit('/').next().unwrap()));
    // A password in DATABASE_URL (the test server trusts local connections and ignores it), an
    // admin password and a bearer token: none of them may reach the logs, even at debug level.
    let db_password = "Db-Pass-7f3a9c";
    let mut url_with_password = url::Url::parse(&db.url).unwrap();
    url_with_password.set_password(Some(db_password)).unwrap();
    let admin_password = "Admin-Pass-51e0b2";
    adbudget_db::repo::users::create_superuser(
        &mut adbudget_db::connect_one(&db.url).unwrap(),
        "ops",
        admin_password,
        adbudget_core::forms::now(),
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    let mut cmd = command("adbudget-api", url_with_password.as_str());
    cmd.env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .env("ADBUDGET_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut process = Process::spawn(&mut cmd).unwrap();
    wait_ready(&format!("http://127.0.0.1:{port}/readyz"), &mut process).await;
    let doc: Value = reqwest::get(format!("http://127.0.0.1:{port}/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["title"], "adbudget");
    // JSON logs: one object per line, each request with its id and dotted field names.
    let secret = "adb_ThisIsNotARealTokenButLooksLikeOne12345";
    let resp = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/brands?password=Query-Pass-9d2e"
        ))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client
        .get(format!("http://127.0.0.1:{port}/admin/login"))
        .send()
        .await
        .unwrap();
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = page[at..].split('"').next().unwrap().to_owned();
    for password in [admin_password, "Wrong-Pass-0c4d1e"] {
        let resp = client
            .post(format!("http://127.0.0.1:{port}/admin/login"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", "ops"),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        // Logged in (303 to the panel) with the right password only.
        assert_eq!(
            resp.status() == 303,
            password == admin_password,
            "{}",
            resp.status()
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["span"]["http.route"] == "/api/v1/brands")
        .unwrap_or_else(|| panic!("a log line for the request: {text}"));
    assert!(
        request["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{request}"
    );
    assert_eq!(request["span"]["http.status_code"], 401);
    assert!(
        !text.contains(secret),
        "the bearer token never reaches the logs"
    );
    for (what, secret) in [
        ("the database password", db_password),
        ("the admin password", admin_password),
        ("a wrong password", "Wrong-Pass-0c4d1e"),
        ("a query string", "Query-Pass-9d2e"),
    ] {
        assert!(!text.contains(secret), "{what} never reaches the logs");
    }
    let _ = std::fs::remove_file(&log);
}

/// `standalone` runs the worker and the beat in process (no Redis): a drifted campaign is repaired
/// by `enforce_budgets` on its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_runs_the_jobs_in_process() {
    let db = TestDatabase::create(Backend::Sqlite).unwrap();
    let port = free_port();
    let mut cmd = command("adbudget", &db.url);
    cmd.arg("standalone")
        .env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("ADBUDGET_SCHEDULE_ENFORCE_BUDGETS", "* * * * * *")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut process = Process::spawn(&mut cmd).unwrap();
    wait_ready(&format!("http://127.0.0.1:{port}/readyz"), &mut process).await;
    let pool = adbudget_db::connect(&db.url, 2).unwrap();
    let mut conn = adbudget_db::get(&pool).unwrap();
    let zero = adbudget_core::money::NonNegativeMoney(adbudget_core::money::Money::ZERO);
    let now = adbudget_core::forms::now();
    let brand = adbudget_core::forms::CreateBrand {
        name: "B".into(),
        daily_budget: zero,
        monthly_budget: zero,
        timezone: None,
        alert_thresholds: None,
    };
    let brand = adbudget_db::repo::brands::create(
        &mut conn,
        &brand.validate().unwrap(),
        now,
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    let campaign = adbudget_core::forms::CreateCampaign {
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
    let campaign = adbudget_db::repo::campaigns::create(
        &mut conn,
        &campaign.validate().unwrap(),
        now,
        &adbudget_core::access::Author::cli(),
    )
    .unwrap();
    adbudget_testing::corrupt_state(&mut conn, campaign.id, 0).unwrap();
    let started = std::time::Instant::now();
    loop {
        let history =
            adbudget_db::repo::campaigns::history(&mut conn, campaign.id, Default::default())
                .unwrap();
        if history.items.iter().any(|h| h.cause == "enforce_budgets") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no in-process enforce_budgets run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let c = adbudget_db::repo::campaigns::get(&mut conn, campaign.id, adbudget_core::forms::now())
        .unwrap();
    assert_eq!(
        c.pause_reasons.names(),
        ["brand_daily_budget", "brand_monthly_budget"]
    );
}
