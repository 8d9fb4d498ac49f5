use serde_json::Value;

use crate::helpers::{Backend, TestDatabase, adbudget, command, on_both_databases, run};

on_both_databases!(
    verify_reports_disagreements,
    log_spend_happy_path,
    log_spend_rejects_bad_amounts,
    tokens,
    bound_and_expiring_tokens,
    createsuperuser,
    users_and_roles,
    reverse_spend,
    export_spend
);

/// `adbudget` with `stdin` as its standard input.
fn adbudget_with_stdin(db: &TestDatabase, args: &[&str], stdin: &str) -> crate::helpers::Run {
    use std::io::Write;
    let mut child = command("adbudget", &db.url)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    crate::helpers::Run {
        ok: out.status.success(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn seeded(backend: Backend) -> TestDatabase {
    let db = TestDatabase::create(backend).unwrap();
    let seed = adbudget(&db, &["seed-demo"]);
    assert!(seed.ok, "{}", seed.stderr);
    db
}

async fn log_spend_happy_path(backend: Backend) {
    let db = seeded(backend);
    let r = adbudget(&db, &["log-spend", "1", "12.34", "--event-id", "cli-1"]);
    assert!(r.ok, "{}", r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["spend"]["amount"], "12.34");
    assert_eq!(out["spend"]["campaign_id"], 1);
    assert_eq!(out["spend"]["brand_id"], out["campaign"]["brand_id"]);
    assert_eq!(out["spend"]["token_id"], Value::Null, "no token posted it");
    assert_eq!(out["campaign"]["daily_spend"], "12.34");
    assert!(r.stderr.contains("recorded"), "{}", r.stderr);
    // The same event again is a replay, counted once.
    let again = adbudget(&db, &["log-spend", "1", "12.34", "--event-id", "cli-1"]);
    assert!(again.ok);
    let out: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(out["campaign"]["daily_spend"], "12.34");
    assert!(again.stderr.contains("replay"), "{}", again.stderr);
    // A cap reached from the CLI pauses like the API does (Winter boots: daily cap 200).
    let r = adbudget(&db, &["log-spend", "1", "200"]);
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["campaign"]["is_active"], false);
    assert_eq!(out["campaign"]["pause_reasons"][0], "campaign_daily_cap");
}

async fn log_spend_rejects_bad_amounts(backend: Backend) {
    let db = seeded(backend);
    for (amount, message) in [
        ("0", "must be greater than zero"),
        ("-5", "must not be negative"),
        ("abc", "must be a decimal number"),
        ("1.1234567", "at most 6 decimal places"),
    ] {
        let r = adbudget(&db, &["log-spend", "1", "--", amount]);
        assert!(!r.ok, "{amount} accepted");
        assert!(r.stderr.contains(message), "{amount}: {}", r.stderr);
        assert!(
            r.stderr.contains("amount"),
            "the message names the amount: {}",
            r.stderr
        );
    }
    let r = adbudget(&db, &["log-spend", "424242", "1"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("campaign not found"), "{}", r.stderr);
    let r = adbudget(&db, &["log-spend", "1", "1", "--at", "yesterday"]);
    assert!(!r.ok && r.stderr.contains("--at"), "{}", r.stderr);
    // Nothing of it was stored.
    let ok = adbudget(&db, &["log-spend", "1", "1"]);
    let out: Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(out["campaign"]["daily_spend"], "1.00");
}

async fn tokens(backend: Backend) {
    let db = TestDatabase::create(backend).unwrap();
    let r = adbudget(
        &db,
        &[
            "token",
            "create",
            "--name",
            "ingest-bot",
            "--scope",
            "ingest",
        ],
    );
    assert!(r.ok, "{}: {}", r.status, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone on stdout: {:?}", r.stdout);
    assert!(lines[0].starts_with("adb_") && lines[0].len() == 44);
    let dup = adbudget(
        &db,
        &[
            "token",
            "create",
            "--name",
            "ingest-bot",
            "--scope",
            "admin",
        ],
    );
    assert!(!dup.ok && dup.stdout.is_empty());
    let bad = adbudget(&db, &["token", "create", "--name", "x", "--scope", "root"]);
    assert!(!bad.ok);
    let list = adbudget(&db, &["token", "list"]);
    assert!(
        list.stdout.contains("ingest-bot") && list.stdout.contains("live"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains(lines[0]), "secrets are never listed");
    let revoked = adbudget(&db, &["token", "revoke", "ingest-bot"]);
    assert!(revoked.ok, "{}", revoked.stderr);
    assert!(adbudget(&db, &["token", "list"]).stdout.contains("revoked"));
    assert!(
        !adbudget(&db, &["token", "revoke", "ingest-bot"]).ok,
        "already revoked"
    );
}

async fn bound_and_expiring_tokens(backend: Backend) {
    let db = seeded(backend);
    let r = adbudget(
        &db,
        &[
            "token",
            "create",
            "--name",
            "acme-meta",
            "--scope",
            "ingest",
            "--brand",
            "1",
            "--brand",
            "2",
            "--expires-in",
            "90d",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stderr.contains("brands 1,2"), "{}", r.stderr);
    let read = adbudget(
        &db,
        &["token", "create", "--name", "viewer", "--scope", "read"],
    );
    assert!(read.ok, "{}", read.stderr);
    let list = adbudget(&db, &["token", "list"]).stdout;
    let row = list.lines().find(|l| l.contains("acme-meta")).unwrap();
    assert!(row.contains("brands 1,2") && row.contains("never"), "{row}");
    let expires = (chrono::Utc::now() + chrono::Duration::days(90))
        .format("%Y-%m-%d")
        .to_string();
    assert!(row.contains(&expires), "expires in 90 days: {row}");
    let viewer = list.lines().find(|l| l.contains("viewer")).unwrap();
    assert!(
        viewer.contains("read") && viewer.contains("all brands"),
        "{viewer}"
    );
    for bad in [
        vec!["--brand", "999"],
        vec!["--expires-in", "soon"],
        vec!["--expires-in", "0d"],
        vec!["--expires-in", "9é"],
    ] {
        let mut args = vec!["token", "create", "--name", "bad", "--scope", "read"];
        args.extend(bad.iter());
        let r = adbudget(&db, &args);
        assert!(!r.ok && r.stdout.is_empty(), "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains("panicked") && r.stderr.starts_with("Error:"),
            "a clear error, not a crash: {}",
            r.stderr
        );
    }
}

async fn users_and_roles(backend: Backend) {
    let db = seeded(backend);
    let r = adbudget_with_stdin(
        &db,
        &[
            "user",
            "create",
            "--username",
            "olga",
            "--role",
            "operator",
            "--brand",
            "1",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert!(r.ok, "{}", r.stderr);
    let bad_role = adbudget_with_stdin(
        &db,
        &[
            "user",
            "create",
            "--username",
            "x",
            "--role",
            "root",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert!(!bad_role.ok);
    let list = adbudget(&db, &["user", "list"]).stdout;
    let row = list.lines().find(|l| l.contains("olga")).unwrap();
    assert!(
        row.contains("operator") && row.contains("brands 1") && row.contains("enabled"),
        "{row}"
    );
    let pool = adbudget_db::connect(&db.url, 1).unwrap();
    let epoch = || {
        let mut conn = adbudget_db::get(&pool).unwrap();
        let id = adbudget_db::repo::users::credentials(&mut conn, "olga")
            .unwrap()
            .map(|(id, _, epoch)| (id, epoch));
        id.map(|(_, e)| e)
    };
    let before = epoch().unwrap();
    let set = adbudget_with_stdin(
        &db,
        &["user", "set-password", "olga", "--password-stdin"],
        "another long password\n",
    );
    assert!(set.ok, "{}", set.stderr);
    assert!(epoch().unwrap() > before, "her sessions ended");
    {
        let mut conn = adbudget_db::get(&pool).unwrap();
        let ok =
            adbudget_db::repo::users::verify_password(&mut conn, "olga", "another long password")
                .unwrap();
        assert!(ok.is_some());
    }
    assert!(adbudget(&db, &["user", "disable", "olga"]).ok);
    assert_eq!(epoch(), None, "a disabled user has no credentials");
    assert!(adbudget(&db, &["user", "list"]).stdout.contains("disabled"));
    assert!(!adbudget(&db, &["user", "disable", "nobody"]).ok);
    // Each change is in the audit trail, by the CLI.
    let mut conn = adbudget_db::get(&pool).unwrap();
    let audit = adbudget_db::repo::audit::list(
        &mut conn,
        &adbudget_db::repo::audit::AuditFilter {
            object_type: Some("user".into()),
            ..Default::default()
        },
        Default::default(),
    )
    .unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["disable", "set_password", "create"]);
    assert!(
        audit
            .items
            .iter()
            .all(|e| e.actor.kind == adbudget_core::access::ActorKind::Cli)
    );
}

async fn reverse_spend(backend: Backend) {
    let db = seeded(backend);
    let spent = adbudget(&db, &["log-spend", "1", "5"]);
    assert!(spent.ok, "{}", spent.stderr);
    let out: Value = serde_json::from_str(&spent.stdout).unwrap();
    let id = out["spend"]["id"].to_string();
    let before = out["campaign"]["daily_spend"].as_str().unwrap().to_owned();
    let r = adbudget(&db, &["reverse-spend", &id, "--reason", "test event"]);
    assert!(r.ok, "{}", r.stderr);
    let reversed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(reversed["reversal"]["amount"], "-5.00");
    assert_eq!(reversed["reversal"]["reason"], "test event");
    let after = adbudget_core::money::Money::parse_non_negative(
        reversed["campaign"]["daily_spend"].as_str().unwrap(),
    )
    .unwrap();
    let before = adbudget_core::money::Money::parse_non_negative(&before).unwrap();
    assert_eq!(before.micros() - after.micros(), 5_000_000);
    let again = adbudget(&db, &["reverse-spend", &id, "--reason", "again"]);
    assert!(!again.ok, "a second reversal is refused");
    assert!(
        adbudget(&db, &["verify"]).ok,
        "the totals agree with the logs"
    );
}

async fn createsuperuser(backend: Backend) {
    let db = TestDatabase::create(backend).unwrap();
    let mut cmd = command("adbudget", &db.url);
    cmd.args(["createsuperuser", "--username", "ops", "--password-stdin"])
        .stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = adbudget_db::get(&adbudget_db::connect(&db.url, 1).unwrap()).unwrap();
    let ok = adbudget_db::repo::users::verify_password(&mut conn, "ops", "correct horse battery")
        .unwrap();
    assert!(
        ok.is_some(),
        "the password is stored as an argon2 hash that verifies"
    );
    let wrong = adbudget_db::repo::users::verify_password(&mut conn, "ops", "wrong").unwrap();
    assert!(wrong.is_none());
    let short = run(command("adbudget", &db.url).args([
        "createsuperuser",
        "--username",
        "x",
        "--password-stdin",
    ]));
    assert!(!short.ok, "an empty password is refused");
}

#[test]
fn a_bad_setting_names_the_variable() {
    for (key, value) in [
        ("DATABASE_URL", "mysql://nope"),
        ("ADBUDGET_BIND", "everywhere"),
        ("ADBUDGET_LOG_FORMAT", "xml"),
    ] {
        let mut cmd = command("adbudget", "sqlite:///tmp/never-created.db");
        cmd.env(key, value).arg("migrate");
        let r = run(&mut cmd);
        assert!(!r.ok, "{key}={value} accepted");
        assert!(r.stderr.contains(key), "{key}: {}", r.stderr);
    }
}

async fn verify_reports_disagreements(backend: Backend) {
    let db = seeded(backend);
    adbudget(&db, &["log-spend", "1", "12.34"]);
    let clean = adbudget(&db, &["verify"]);
    assert!(clean.ok, "{}", clean.stdout);
    assert!(
        clean.stdout.contains("0 disagreement(s)"),
        "{}",
        clean.stdout
    );
    // Break a campaign's stored state behind the rule's back: verify says so and exits non-zero.
    let pool = adbudget_db::connect(&db.url, 1).unwrap();
    adbudget_testing::corrupt_state(&mut adbudget_db::get(&pool).unwrap(), 1, 1).unwrap();
    let dirty = adbudget(&db, &["verify"]);
    assert!(!dirty.ok);
    assert!(
        dirty.stdout.contains("campaign 1: stored reasons [manual]"),
        "{}",
        dirty.stdout
    );
    assert!(
        dirty.stdout.contains("1 disagreement(s)"),
        "{}",
        dirty.stdout
    );
}

/// `adbudget export-spend --month`: the month's spend logs (by `occurred_at`, UTC) as CSV, quoted
/// where needed, to standard output or a file; an empty month is a header; a bad month is refused.
async fn export_spend(backend: Backend) {
    let db = seeded(backend);
    for (amount, event_id, at) in [
        ("12.34", "a,\"b", "2025-10-15T10:00:00Z"),
        ("1.5", "last", "2025-10-31T23:59:59.999999Z"),
        ("2", "next", "2025-11-01T00:00:00Z"),
    ] {
        let r = adbudget(
            &db,
            &["log-spend", "1", amount, "--event-id", event_id, "--at", at],
        );
        assert!(r.ok, "{}", r.stderr);
    }
    let read = |text: &str| -> Vec<csv::StringRecord> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        assert_eq!(
            header.iter().collect::<Vec<_>>(),
            [
                "id",
                "brand_id",
                "campaign_id",
                "amount",
                "occurred_at",
                "received_at",
                "event_id",
                "token_id",
                "reverses_id",
                "reason"
            ]
        );
        reader.records().map(Result::unwrap).collect()
    };

    let october = adbudget(&db, &["export-spend", "--month", "2025-10"]);
    assert!(october.ok, "{}", october.stderr);
    let rows = read(&october.stdout);
    let fields: Vec<(&str, &str, &str, &str)> =
        rows.iter().map(|r| (&r[2], &r[3], &r[4], &r[6])).collect();
    assert_eq!(
        fields,
        [
            ("1", "12.34", "2025-10-15T10:00:00.000000Z", "a,\"b"),
            ("1", "1.50", "2025-10-31T23:59:59.999999Z", "last"),
        ]
    );
    assert!(
        october.stderr.contains("exported 2 spend logs of 2025-10"),
        "{}",
        october.stderr
    );

    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let november = adbudget(
        &db,
        &["export-spend", "--month", "2025-11", "--output", path],
    );
    assert!(november.ok, "{}", november.stderr);
    assert_eq!(november.stdout, "", "the CSV went to the file");
    let rows = read(&std::fs::read_to_string(path).unwrap());
    assert_eq!(rows.len(), 1);
    assert_eq!((&rows[0][3], &rows[0][6]), ("2.00", "next"));

    let empty = adbudget(&db, &["export-spend", "--month", "2025-09"]);
    assert!(empty.ok, "{}", empty.stderr);
    assert!(read(&empty.stdout).is_empty());

    let bad = adbudget(&db, &["export-spend", "--month", "2025-13"]);
    assert!(!bad.ok);
    assert!(bad.stderr.contains("--month"), "{}", bad.stderr);
}
