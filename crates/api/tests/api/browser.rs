//! The admin panel in a real headless Chromium (Debian's chromium + chromium-driver, installed by
//! .ci/run), driven over WebDriver with fantoccini.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adbudget_testing::Backend;
use adbudget_testing::process::{Process, free_port};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use adbudget_core::access::{Author, Role};
use adbudget_db::repo::users;

use crate::admin::{PASSWORD, create_admin};
use crate::helpers::{TestApp, on_both_databases, reasons, spawn_app};

/// A chromedriver of this test's own, with a headless Chromium session.
struct Browser {
    client: Client,
    driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        // fantoccini's rustls reads the process's default crypto provider; with the workspace's
        // features unified (the worker's reqwest brings ring, fantoccini aws-lc-rs) there is no
        // single default, so choose one (a second call in the same process changes nothing).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port().unwrap();
        let driver = Process::spawn(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn goto(&self, app: &TestApp, path: &str) {
        self.client
            .goto(&format!("{}{path}", app.address))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    /// Clicks something that loads a new page, and waits until the new page has loaded.
    async fn click(&self, css: &str) {
        self.client
            .execute("window.__before_click = true;", vec![])
            .await
            .unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let loaded = self
                .client
                .execute("return window.__before_click === undefined && document.readyState === 'complete';", vec![])
                .await
                .unwrap();
            if loaded == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} loaded no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ticks a checkbox (no page load).
    async fn tick(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn login(&self, app: &TestApp, password: &str) {
        self.login_as(app, "ops", password).await;
    }

    async fn login_as(&self, app: &TestApp, username: &str, password: &str) {
        self.goto(app, "/admin/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("form button[type=submit]").await;
    }

    /// How many elements `css` finds on the page.
    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Submits a form made by hand in the page (the page's CSRF token, its session cookie) to
    /// `path`, as a user editing the page's HTML could, and waits for the answer's page.
    async fn forged_post(&self, path: &str) {
        self.client
            .execute("window.__before_click = true;", vec![])
            .await
            .unwrap();
        self.client
            .execute(
                "const csrf = document.querySelector('input[name=csrf]').value;
                 const form = document.createElement('form');
                 form.method = 'post';
                 form.action = arguments[0];
                 const field = document.createElement('input');
                 field.name = 'csrf';
                 field.value = csrf;
                 form.appendChild(field);
                 document.body.appendChild(form);
                 form.submit();",
                vec![json!(path)],
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .client
            .execute(
                "return window.__before_click === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .unwrap()
            != json!(true)
        {
            assert!(Instant::now() < deadline, "the forged form loaded no page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot: into docs/ (shown in the README) with ADBUDGET_UPDATE_SCREENSHOTS=1,
    /// otherwise into the temp directory, so test runs leave the tree unchanged.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = if std::env::var_os("ADBUDGET_UPDATE_SCREENSHOTS").is_some() {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
        } else {
            std::env::temp_dir().join("adbudget-screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.driver.kill();
    }
}

on_both_databases!(
    logging_in_and_out,
    running_a_brand_from_the_browser,
    the_brand_page_charts_its_pace,
    bulk_pause_from_the_list,
    the_job_monitor_lists_the_schedules,
    schedules_are_edited_and_run_from_the_job_monitor,
    a_viewer_sees_no_edit_buttons,
    an_operator_bound_to_one_brand,
    an_admin_manages_users_and_tokens,
    an_admin_runs_webhooks_and_browses_events
);

fn create_user(app: &TestApp, name: &str, role: Role, brands: Option<Vec<i64>>) {
    let new = users::NewUser {
        username: name.to_owned(),
        password: PASSWORD.to_owned(),
        role,
        brands,
    };
    users::create(
        &mut adbudget_db::get(&app.pool).unwrap(),
        &new,
        adbudget_core::forms::now(),
        &Author::cli(),
    )
    .unwrap();
}

/// A viewer reads every page but finds no button that changes anything, and a form forged by
/// hand is refused.
async fn a_viewer_sees_no_edit_buttons(backend: Backend) {
    let app = spawn_app(backend).await;
    let brand = app.create_brand("Acme", "100", "1000").await;
    let c = app.create_campaign(&brand["id"], "Winter", json!({})).await;
    app.spend(&c["id"], "1").await;
    create_user(&app, "vera", Role::Viewer, None);
    let b = Browser::start().await;
    b.login_as(&app, "vera", PASSWORD).await;
    assert_eq!(b.path().await, "/admin");

    b.goto(&app, "/admin/brands").await;
    assert_eq!(b.count("a[href='/admin/brands/new']").await, 0);
    b.goto(&app, &format!("/admin/brands/{}", brand["id"]))
        .await;
    assert!(b.text("#brand-details").await.contains("100.00"));
    assert_eq!(
        b.count("main form[method=post]").await,
        0,
        "no form on the brand page"
    );
    b.goto(&app, &format!("/admin/campaigns/{}", c["id"])).await;
    assert_eq!(
        b.count("main form[method=post]").await,
        0,
        "no form on the campaign page"
    );
    assert_eq!(b.count("#pause, #resume").await, 0);
    b.goto(&app, "/admin/campaigns").await;
    assert_eq!(b.count("#apply-bulk, input[name=ids]").await, 0);
    b.goto(&app, "/admin/spend").await;
    assert_eq!(b.count("form.reverse").await, 0);
    assert_eq!(b.count("header a[href='/admin/users']").await, 0);

    // What the page does not offer, a hand-made form cannot do either.
    let path = format!("/admin/campaigns/{}/pause", c["id"]);
    b.forged_post(&path).await;
    assert!(b.text("h1").await.contains("Forbidden"));
    assert_eq!(app.campaign(&c["id"]).await["is_active"], true);
    b.goto(&app, "/admin/users").await;
    assert!(b.text("h1").await.contains("Forbidden"));
    b.close().await;
}

/// An operator bound to one brand sees only it, cannot open another brand's pages, and reverses
/// a spend of theirs from the spend page.
async fn an_operator_bound_to_one_brand(backend: Backend) {
    let app = spawn_app(backend).await;
    let ours = app.create_brand("Ours", "10", "1000").await;
    let theirs = app.create_brand("Theirs", "100", "1000").await;
    let c = app.create_campaign(&ours["id"], "Ours c", json!({})).await;
    app.create_campaign(&theirs["id"], "Theirs c", json!({}))
        .await;
    app.spend(&c["id"], "10").await;
    assert_eq!(app.campaign(&c["id"]).await["is_active"], false);
    create_user(
        &app,
        "olga",
        Role::Operator,
        Some(vec![ours["id"].as_i64().unwrap()]),
    );
    let b = Browser::start().await;
    b.login_as(&app, "olga", PASSWORD).await;

    b.goto(&app, "/admin/brands").await;
    assert_eq!(b.count("#brands tbody tr").await, 1);
    assert!(b.text("#brands").await.contains("Ours"));
    b.goto(&app, &format!("/admin/brands/{}", theirs["id"]))
        .await;
    assert!(
        b.text("h1").await.contains("404"),
        "another brand's page is not found"
    );
    b.goto(&app, "/admin/campaigns").await;
    assert!(!b.text("#campaigns").await.contains("Theirs c"));

    // The spend that paused the campaign, reversed with a reason: the campaign runs again.
    b.goto(&app, "/admin/spend").await;
    b.fill(
        "form.reverse input[name=reason]",
        "sent twice by the connector",
    )
    .await;
    b.click("form.reverse button").await;
    assert!(b.text("[role=status]").await.contains("Spend reversed"));
    assert!(
        b.text("#spend-logs")
            .await
            .contains("sent twice by the connector")
    );
    assert_eq!(app.campaign(&c["id"]).await["is_active"], true);
    b.goto(&app, &format!("/admin/brands/{}/history", ours["id"]))
        .await;
    assert!(b.text("#audit").await.contains("reverse"));
    assert!(b.text("#audit").await.contains("user:olga"));
    b.close().await;
}

/// An admin creates a user and a token (its secret shown once), and revokes the token.
async fn an_admin_manages_users_and_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;
    b.click("header a[href='/admin/users']").await;
    b.fill("#username", "vic").await;
    b.fill("#password", "a long enough password").await;
    b.click("#new-user button").await;
    assert!(b.text("[role=status]").await.contains("User created"));
    assert!(b.text("#users").await.contains("vic"));

    b.click("header a[href='/admin/tokens']").await;
    b.fill("#name", "meta-connector").await;
    b.click("#new-token-form button").await;
    let secret = b.text("#token-secret").await;
    assert!(secret.starts_with("adb_"), "{secret}");
    let resp = app
        .request(reqwest::Method::GET, "/api/v1/brands", Some(&secret), None)
        .await;
    assert_eq!(resp.status, 200, "the new token works");
    b.goto(&app, "/admin/tokens").await;
    assert_eq!(b.count("#token-secret").await, 0, "shown once");
    b.click("tr[data-token='meta-connector'] button").await;
    assert!(b.text("[role=status]").await.contains("Token revoked"));
    let resp = app
        .request(reqwest::Method::GET, "/api/v1/brands", Some(&secret), None)
        .await;
    assert_eq!(resp.status, 401);
    b.close().await;
}

async fn an_admin_runs_webhooks_and_browses_events(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let brand = app.create_brand("Acme", "10", "1000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    app.spend(&c["id"], "10").await;
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;
    b.click("header a[href='/admin/webhooks']").await;
    b.fill("#webhook-url", "https://93.184.216.34/hook").await;
    b.fill("#webhook-types", "campaign.paused, campaign.resumed")
        .await;
    b.click("#new-webhook button").await;
    let shown = b.text("#webhook-secret").await;
    assert!(shown.contains("whsec_"), "{shown}");
    assert!(
        b.text("#webhooks")
            .await
            .contains("campaign.paused, campaign.resumed"),
        "listed with its event types"
    );
    b.click("#webhooks a").await;
    assert!(b.text("#health").await.contains("healthy"));
    b.click("#ping").await;
    assert!(b.text("[role=status]").await.contains("Delivery queued"));
    assert_eq!(
        b.text("#deliveries tr[data-status=pending] td:nth-child(2)")
            .await,
        "ping"
    );

    b.click("header a[href='/admin/events']").await;
    let types = b.text("#events").await;
    assert!(types.contains("campaign.paused"), "{types}");
    assert!(types.contains("budget.threshold_reached"));
    b.goto(&app, "/admin/events?type=campaign.paused").await;
    assert_eq!(b.count("#events tbody tr").await, 1);
    b.close().await;
}

async fn logging_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let b = Browser::start().await;
    b.goto(&app, "/admin/campaigns").await;
    assert_eq!(
        b.path().await,
        "/admin/login?next=%2Fadmin%2Fcampaigns",
        "anonymous: sent to the login page"
    );
    b.login(&app, "not the password").await;
    assert!(
        b.text("[role=alert]")
            .await
            .contains("Wrong username or password")
    );
    assert!(b.path().await.starts_with("/admin/login"));
    b.login(&app, PASSWORD).await;
    assert_eq!(b.path().await, "/admin");
    assert_eq!(b.text("h1").await, "Dashboard");
    // A form stripped of its CSRF token is refused, and stores nothing.
    b.goto(&app, "/admin/brands/new").await;
    b.client
        .execute(
            "document.querySelector('form.panel input[name=csrf]').remove();",
            vec![],
        )
        .await
        .unwrap();
    b.fill("#name", "Sneaky").await;
    b.fill("#daily_budget", "1").await;
    b.fill("#monthly_budget", "1").await;
    b.click("form.panel button").await;
    assert!(b.text("h1").await.starts_with("403"));
    assert!(b.text(".flash").await.contains("CSRF"));
    assert_eq!(
        app.get("/api/v1/brands").await.expect(200)["items"],
        json!([])
    );
    b.goto(&app, "/admin").await;
    b.click("header form button").await;
    assert_eq!(b.path().await, "/admin/login");
    b.goto(&app, "/admin").await;
    assert!(
        b.path().await.starts_with("/admin/login"),
        "logged out for real"
    );
    b.close().await;
}

async fn running_a_brand_from_the_browser(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;

    // A brand, first with a mistake: the message stands beside the field, nothing is stored.
    b.goto(&app, "/admin/brands/new").await;
    b.fill("#name", "Acme").await;
    b.fill("#daily_budget", "-5").await;
    b.fill("#monthly_budget", "2000").await;
    b.click("form.panel button").await;
    assert!(
        b.text("[data-field=daily_budget]")
            .await
            .contains("must not be negative")
    );
    assert_eq!(
        app.get("/api/v1/brands").await.expect(200)["items"],
        json!([])
    );
    b.fill("#daily_budget", "100").await;
    b.fill("#timezone", "Europe/Berlin").await;
    b.click("form.panel button").await;
    assert!(b.text(".flash").await.contains("Brand created"));
    let brand = app.get("/api/v1/brands").await.expect(200)["items"][0].clone();
    assert_eq!(brand["daily_budget"], "100.00");

    // A campaign of it, then a dayparting window covering the whole day.
    b.goto(&app, &format!("/admin/campaigns/new?brand={}", brand["id"]))
        .await;
    b.fill("#name", "Winter sale").await;
    b.click("form.panel button").await;
    assert!(b.text(".flash").await.contains("Campaign created"));
    b.fill("input[name=start_0]", "00:00").await;
    b.fill("input[name=end_0]", "24:00").await;
    b.click("#dayparting button").await;
    assert!(
        b.text(".flash").await.contains("Schedule saved"),
        "{}",
        b.client.source().await.unwrap()
    );
    let campaign = app.get("/api/v1/campaigns").await.expect(200)["items"][0].clone();
    assert_eq!(campaign["dayparting"][0]["end"], "24:00");
    assert_eq!(campaign["is_active"], true);
    let campaign_path = format!("/admin/campaigns/{}", campaign["id"]);

    // Spend through the API: the bar fills and the state changes on the pages.
    app.spend(&campaign["id"], "60").await;
    b.goto(&app, "/admin").await;
    assert!(
        b.text("#brand-spend td.daily")
            .await
            .contains("60.00 / 100.00")
    );
    let paused = app.spend(&campaign["id"], "40").await;
    assert_eq!(reasons(&paused["campaign"]), ["brand_daily_budget"]);
    b.goto(&app, "/admin").await;
    let bar = b
        .client
        .find(Locator::Css("#brand-spend td.daily .bar"))
        .await
        .unwrap();
    assert_eq!(
        bar.attr("class").await.unwrap().as_deref(),
        Some("bar full")
    );
    assert!(
        b.text("#brand-spend td.daily")
            .await
            .contains("100.00 / 100.00")
    );
    assert_eq!(b.text("[data-reason=brand_daily_budget] b").await, "1");
    if backend == Backend::Sqlite {
        b.screenshot("admin-dashboard.png").await;
    }
    b.goto(&app, &campaign_path).await;
    let state = b.text("#campaign-state").await;
    assert!(
        state.contains("paused") && state.contains("brand_daily_budget"),
        "{state}"
    );
    assert!(b.text("#history").await.contains("spend"));
    if backend == Backend::Sqlite {
        b.screenshot("admin-campaign.png").await;
    }
    // A bad window is refused beside the row, and the schedule is unchanged.
    b.fill("input[name=end_0]", "25:00").await;
    b.click("#dayparting button").await;
    assert!(b.text("#dayparting .error").await.contains("HH:MM"));
    assert_eq!(
        app.campaign(&campaign["id"]).await["dayparting"][0]["end"],
        "24:00"
    );
    b.close().await;
}

/// The brand page draws today's and this month's cumulative spend (its last point is the brand's
/// spend), the budget, the even-pace line and the projection; the dashboard shows the pace status
/// the API reports, as a badge.
async fn the_brand_page_charts_its_pace(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let brand = app.create_brand("Acme", "400", "9000").await;
    let c = app.create_campaign(&brand["id"], "c", json!({})).await;
    let now = chrono::Utc::now();
    for (minutes_ago, amount) in [(0, "12.5"), (20, "30"), (150, "7.25")] {
        let at = now - chrono::Duration::minutes(minutes_ago);
        app.post_spend(json!({"campaign_id": c["id"], "amount": amount, "occurred_at": at}))
            .await
            .expect(201);
    }
    let api = app.brand(&brand["id"]).await;
    let pacing = app
        .get(&format!("/api/v1/brands/{}/pacing", brand["id"]))
        .await
        .expect(200);
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;
    b.goto(&app, &format!("/admin/brands/{}", brand["id"]))
        .await;
    for (chart, spend) in [
        ("#chart-today", &api["daily_spend"]),
        ("#chart-month", &api["monthly_spend"]),
    ] {
        let last = b
            .client
            .find(Locator::Css(&format!("{chart} svg circle.last")))
            .await
            .unwrap_or_else(|e| panic!("{chart}: {e}"));
        assert_eq!(
            last.attr("data-value").await.unwrap().as_deref(),
            spend.as_str(),
            "{chart}"
        );
        for line in ["polyline.spend", "polyline.even", "line.budget"] {
            b.client
                .find(Locator::Css(&format!("{chart} svg {line}")))
                .await
                .unwrap_or_else(|e| panic!("{chart} {line}: {e}"));
        }
    }
    b.client
        .find(Locator::Css("#chart-today svg polyline.projection"))
        .await
        .expect("the projection to the end of the day");
    let caption = b.text("#chart-today figcaption").await;
    assert!(
        caption.contains(&format!(
            "spent {} of 400.00",
            api["daily_spend"].as_str().unwrap()
        )),
        "{caption}"
    );
    if backend == Backend::Sqlite {
        b.screenshot("admin-brand-pacing.png").await;
    }
    b.goto(&app, "/admin").await;
    let badge = b
        .client
        .find(Locator::Css(&format!(
            "#brand-spend tr[data-brand='{}'] td.pace-today .badge",
            brand["id"]
        )))
        .await
        .unwrap();
    assert_eq!(
        badge.attr("data-status").await.unwrap().as_deref(),
        pacing["today"]["status"].as_str()
    );
    b.close().await;
}

async fn bulk_pause_from_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let brand = app.create_brand("Acme", "100", "1000").await;
    let ids: Vec<_> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let mut campaigns = Vec::new();
    for n in &ids {
        campaigns.push(app.create_campaign(&brand["id"], n, json!({})).await);
    }
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;
    b.goto(&app, "/admin/campaigns?sort=name").await;
    for c in &campaigns[..2] {
        b.tick(&format!(
            "tr[data-campaign=\"{}\"] input[type=checkbox]",
            c["id"]
        ))
        .await;
    }
    b.client
        .find(Locator::Css("select[name=action]"))
        .await
        .unwrap()
        .select_by_value("pause")
        .await
        .unwrap();
    b.click("#apply-bulk").await;
    assert!(
        b.text(".flash")
            .await
            .contains("2 campaign(s) paused by hand")
    );
    for (c, paused) in campaigns.iter().zip([true, true, false]) {
        let now = app.campaign(&c["id"]).await;
        assert_eq!(now["manually_paused"], paused, "{}", c["name"]);
        let cell = b
            .text(&format!("tr[data-campaign=\"{}\"] td.state", c["id"]))
            .await;
        assert_eq!(cell.contains("manual"), paused, "{cell}");
    }
    // The filters: paused for a manual reason.
    b.goto(&app, "/admin/campaigns?reason=manual").await;
    assert_eq!(
        b.client
            .find_all(Locator::Css("#campaigns tbody tr"))
            .await
            .unwrap()
            .len(),
        2
    );
    b.close().await;
}

/// An admin re-times and disables a schedule on /jobs (a bad cron is refused on the form), and
/// runs a job with "Run now": it is queued once, as run by hand, by that admin.
async fn schedules_are_edited_and_run_from_the_job_monitor(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;
    b.click("header a[href='/jobs']").await;
    let row = "#schedules tr[data-schedule=enforce_budgets]";
    assert_eq!(b.text(&format!("{row} td.words")).await, "Every 5 minutes");
    assert_eq!(b.text(&format!("{row} td.enabled")).await, "enabled");

    let edit = "#schedules tr[data-schedule-edit=enforce_budgets]";
    b.fill(&format!("{edit} input[name=cron]"), "*/5 * * * *")
        .await;
    b.click(&format!("{edit} button[name=save]")).await;
    let error = b.text(&format!("{edit} div.error[data-field=cron]")).await;
    assert!(error.contains("6 fields"), "{error}");
    assert_eq!(
        b.text(&format!("{row} td code.cron")).await,
        "0 */5 * * * *",
        "nothing stored"
    );

    b.fill(&format!("{edit} input[name=cron]"), "0 */10 * * * *")
        .await;
    b.client
        .find(Locator::Css(&format!("{edit} input[name=enabled]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click(&format!("{edit} button[name=save]")).await;
    assert!(b.text("div.flash").await.contains("saved"));
    assert_eq!(b.text(&format!("{row} td.words")).await, "Every 10 minutes");
    assert_eq!(b.text(&format!("{row} td.enabled")).await, "disabled");
    assert_eq!(b.text(&format!("{row} td.next")).await, "—");
    let changed_by = b.text(row).await;
    assert!(changed_by.contains("ops (user)"), "{changed_by}");
    let stored = adbudget_db::repo::schedules::get(
        &mut adbudget_db::get(&app.pool).unwrap(),
        adbudget_core::jobs::JobKind::EnforceBudgets,
    )
    .unwrap();
    assert_eq!(
        (stored.cron.as_str(), stored.enabled),
        ("0 */10 * * * *", false)
    );

    b.click("#schedules tr[data-schedule=reset_daily] form.run button")
        .await;
    assert!(
        b.text("div.flash")
            .await
            .contains("reset_daily queued by hand"),
        "{}",
        b.text("div.flash").await
    );
    let trigger = b.text("#recent-jobs tr td.trigger").await;
    assert_eq!(trigger, "manual by ops (user)");
    let manual = b
        .text("#schedules tr[data-schedule=reset_daily] td.manual")
        .await;
    assert!(manual.ends_with("by ops (user)"), "{manual}");
    let mut conn = app.jobs.redis.clone();
    assert_eq!(
        adbudget_queue::pending(
            &mut conn,
            &app.jobs.prefix,
            adbudget_core::jobs::JobKind::ResetDaily
        )
        .await
        .unwrap(),
        1
    );
    b.close().await;
}

async fn the_job_monitor_lists_the_schedules(backend: Backend) {
    let app = spawn_app(backend).await;
    create_admin(&app);
    let b = Browser::start().await;
    b.login(&app, PASSWORD).await;
    b.click("header a[href='/jobs']").await;
    assert_eq!(b.path().await, "/jobs");
    let schedules = b
        .client
        .find_all(Locator::Css("#schedules tbody tr[data-schedule]"))
        .await
        .unwrap();
    let mut names = Vec::new();
    for row in schedules {
        names.push(row.attr("data-schedule").await.unwrap().unwrap());
    }
    assert_eq!(
        names,
        [
            "enforce_budgets",
            "apply_dayparting",
            "reset_daily",
            "reset_monthly",
            "prune_events",
            "dispatch_events",
            "maintain_spend_logs"
        ]
    );
    assert_eq!(
        b.client
            .find_all(Locator::Css("#queues tbody tr"))
            .await
            .unwrap()
            .len(),
        adbudget_core::jobs::JobKind::ALL.len() + 1,
        "the scheduled jobs' queues and the webhook attempts'"
    );
    assert_eq!(
        b.text("#queues tr[data-queue=enforce_budgets] td.pending")
            .await,
        "0"
    );
    b.close().await;
}
