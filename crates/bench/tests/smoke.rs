//! The bench tool runs end to end (briefly, on SQLite): it starts the API, loads it, and its
//! correctness check passes. The real figures come from longer runs (BENCHMARKS.md).

use std::process::Command;

#[test]
fn a_short_ingest_run_reports_and_verifies() {
    let out = Command::new(env!("CARGO_BIN_EXE_adbudget-bench"))
        .args([
            "ingest",
            "--db",
            "sqlite",
            "--seconds",
            "2",
            "--connections",
            "4",
            "--campaigns",
            "50",
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("events/s"), "{stdout}");
    assert!(stdout.contains("latency ms  p50"), "{stdout}");
    assert!(stdout.contains("server peak RSS"), "{stdout}");
    assert!(stdout.contains("0 disagreements"), "{stdout}");
}

#[test]
fn a_small_jobs_run_times_every_job() {
    let out = Command::new(env!("CARGO_BIN_EXE_adbudget-bench"))
        .args(["jobs", "--db", "sqlite", "--campaigns", "500"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for job in [
        "enforce_budgets",
        "apply_dayparting",
        "reset_daily",
        "reset_monthly",
    ] {
        assert!(stdout.contains(job), "{stdout}");
    }
    assert!(
        stdout.contains("(50 changed)"),
        "a tenth of the campaigns come back in each reset: {stdout}"
    );
}
