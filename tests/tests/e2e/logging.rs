//! The data path can be followed in the logs (LOGGING.md): a spend that pauses a campaign logs
//! the change with the campaign, its brand and both reason sets, inside the spans of the writer's
//! group commit, as an operator reading `ADBUDGET_LOG_FORMAT=json` logs sees it.

use serde_json::{Value, json};

use crate::helpers::{Backend, Process, TestDatabase, adbudget, command, free_port, wait_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_by_spend_is_logged_inside_the_writers_batch_span() {
    let db = TestDatabase::create(Backend::Sqlite).unwrap();
    let token = adbudget(&db, &["token", "create", "--name", "t", "--scope", "admin"]);
    assert!(token.ok, "{}", token.stderr);
    let token = token.stdout.trim().to_owned();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let port = free_port();
    let mut cmd = command("adbudget-api", &db.url);
    cmd.env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .env("ADBUDGET_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,adbudget_db=debug")
        .stdout(std::process::Stdio::null())
        .stderr(logs.reopen().unwrap());
    let mut process = Process::spawn(&mut cmd).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz"), &mut process).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let brand: Value = post(
        "/api/v1/brands",
        json!({"name": "Acme", "daily_budget": "10", "monthly_budget": "100"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let campaign: Value = post(
        "/api/v1/campaigns",
        json!({"brand_id": brand["id"], "name": "c"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let spent: Value = post(
        "/api/v1/spend",
        json!({"campaign_id": campaign["id"], "amount": "10"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(spent["campaign"]["is_active"], false, "{spent}");
    process.kill();

    let text = std::fs::read_to_string(logs.path()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let change = lines
        .iter()
        .find(|l| l["message"] == "campaign state changes" && l["reconcile.cause"] == "spend")
        .unwrap_or_else(|| panic!("no change logged by the spend path:\n{text}"));
    assert_eq!(change["campaign.id"], campaign["id"]);
    assert_eq!(change["brand.id"], brand["id"]);
    assert_eq!(change["campaign.reasons.from"], "");
    assert_eq!(change["campaign.reasons.to"], "brand_daily_budget");
    let spans: Vec<&str> = change["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no span list: {change}"))
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(spans, ["spend.group_commit", "record_group"], "{change}");
    let batch = &change["spans"][0];
    assert_eq!(batch["batch.size"], 1, "{change}");
    assert!(batch["writer.id"].is_u64(), "{change}");
}
