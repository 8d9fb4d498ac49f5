//! A real `adbudget-api` process under hostile load (SPEC §12): anonymous 8 MiB bodies and a
//! login flood with made-up usernames and addresses. Its peak resident set stays bounded, and
//! spend keeps being recorded alongside. (Measured before the fix: one 8 MiB login form took the
//! API from 49 to 359 MiB; 48 concurrent logins took it to 8.1 GB.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, Process, TestDatabase, adbudget, command, free_port, wait_ready};

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One login attempt as a browser makes it (form, then post), from `ip` as a trusted proxy says.
async fn login(client: &reqwest::Client, base: &str, username: &str, ip: &str) -> u16 {
    let Ok(form) = client.get(format!("{base}/admin/login")).send().await else {
        return 0;
    };
    let cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let page = form.text().await.unwrap_or_default();
    let csrf = page
        .find("name=\"csrf\" value=\"")
        .map(|at| {
            page[at + 19..]
                .split('"')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    client
        .post(format!("{base}/admin/login"))
        .header("cookie", cookie)
        .header("x-forwarded-for", ip)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", "not the password"),
        ])
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_keep_the_api_small_and_spend_flowing() {
    let db = TestDatabase::create(Backend::Sqlite).unwrap();
    let token = adbudget(&db, &["token", "create", "--name", "t", "--scope", "admin"]);
    assert!(token.ok, "{}", token.stderr);
    let token = token.stdout.trim().to_owned();
    let port = free_port();
    // Every request says it was forwarded for a new address, and the API believes it: no address
    // is throttled, so every login runs its password check (the worst case for memory).
    let mut cmd = command("adbudget-api", &db.url);
    cmd.env("ADBUDGET_BIND", format!("127.0.0.1:{port}"))
        .env("ADBUDGET_TRUSTED_PROXIES", "127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut process = Process::spawn(&mut cmd).unwrap();
    let pid = process.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz"), &mut process).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let brand: Value = client
        .post(format!("{base}/api/v1/brands"))
        .bearer_auth(&token)
        .json(&json!({"name": "Acme", "daily_budget": "1000000", "monthly_budget": "1000000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let campaign: Value = client
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&token)
        .json(&json!({"brand_id": brand["id"], "name": "c"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let before = peak_rss_kib(pid);

    // Anonymous 8 MiB bodies, 16 at a time: refused unread.
    let big_form = "a&".repeat(4 * 1024 * 1024);
    let big_json = vec![b' '; 8 * 1024 * 1024];
    let mut sent = Vec::new();
    for i in 0..32 {
        let (client, base) = (client.clone(), base.clone());
        let (form, json) = (big_form.clone(), big_json.clone());
        sent.push(tokio::spawn(async move {
            let req = if i % 2 == 0 {
                client
                    .post(format!("{base}/admin/login"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
            } else {
                client
                    .post(format!("{base}/api/v1/spend"))
                    .header("content-type", "application/json")
                    .body(json)
            };
            req.send().await.map_or(0, |r| r.status().as_u16())
        }));
    }
    for s in sent {
        let status = s.await.unwrap();
        // The server may close the connection before the client finished sending (0).
        assert!(
            [0, 401, 413].contains(&status),
            "an anonymous 8 MiB body got {status}"
        );
    }

    let after_bodies = peak_rss_kib(pid);
    // 48 concurrent login attempts with new usernames and addresses for 8 s, while a connector
    // posts spend.
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for worker in 0..48 {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u32;
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let ip = format!("10.{}.{}.{}", worker, n / 250, n % 250);
                statuses.push(login(&client, &base, &format!("user-{worker}-{n}"), &ip).await);
                n += 1;
            }
            statuses
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let t = Instant::now();
        let resp = client
            .post(format!("{base}/api/v1/spend"))
            .bearer_auth(&token)
            .json(
                &json!({"campaign_id": campaign["id"], "amount": "1", "event_id": format!("e{i}")}),
            )
            .send()
            .await
            .unwrap();
        latencies.push(t.elapsed());
        assert_eq!(resp.status(), 201, "spend during the flood");
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut logins = Vec::new();
    for f in flood {
        logins.extend(f.await.unwrap());
    }
    let peak = peak_rss_kib(pid);
    latencies.sort_unstable();
    let p99 = latencies[latencies.len() * 99 / 100];
    let refused = logins.iter().filter(|s| **s == 401).count();
    eprintln!(
        "peak RSS {} MiB (before the floods {} MiB, after the big bodies {} MiB); {} logins ({refused} refused 401, the rest \
         503 or cut off); {} spend events, p99 {p99:?}",
        peak / 1024,
        before / 1024,
        after_bodies / 1024,
        logins.len(),
        latencies.len()
    );
    assert!(refused > 0, "the flood ran password checks");
    assert!(
        logins.iter().all(|s| [0, 401, 503].contains(s)),
        "no other answer to a login: {:?}",
        logins
            .iter()
            .filter(|s| ![0, 401, 503].contains(*s))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        peak < 128 * 1024,
        "peak resident set {} MiB: over the 128 MiB bound",
        peak / 1024
    );
    let total: Value = client
        .get(format!("{base}/api/v1/campaigns/{}", campaign["id"]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        total["daily_spend"],
        format!("{}.00", latencies.len()),
        "every spend event is counted"
    );
}
