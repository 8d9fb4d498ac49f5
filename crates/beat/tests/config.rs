//! The binary refuses to start half-configured (its behaviour with Redis is tested end to end
//! in the workspace's `tests/e2e`).

use std::process::Command;

#[test]
fn a_bad_setting_stops_it_naming_the_variable() {
    for (key, value) in [
        ("ADBUDGET_SCHEDULE_APPLY_DAYPARTING", "every minute"),
        ("ADBUDGET_HEALTH_BIND", "nowhere"),
        ("REDIS_URL", "http://x"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_adbudget-beat"))
            .env(key, value)
            .env("DATABASE_URL", "sqlite:///tmp/adbudget-never-created.db")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}
