//! The `adbudget` binary's own interface (the workflows are in the workspace's `tests/e2e`).

use std::process::Command;

#[test]
fn help_lists_the_management_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_adbudget"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "migrate",
        "createsuperuser",
        "token",
        "log-spend",
        "seed-demo",
        "standalone",
    ] {
        assert!(help.contains(command), "--help lists {command}: {help}");
    }
}
