use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use adbudget_testing::process::Process;
pub use adbudget_testing::{Backend, TestDatabase};

pub(crate) use adbudget_testing::on_both_databases_async as on_both_databases;

/// Path of a workspace binary, built next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    adbudget_testing::process::binary(name).unwrap()
}

/// A command for `name` with a clean adbudget environment pointing at `database_url`.
pub fn command(name: &str, database_url: &str) -> Command {
    let mut cmd = Command::new(binary(name));
    for (key, _) in std::env::vars() {
        if key.starts_with("ADBUDGET_") || key == "DATABASE_URL" || key == "REDIS_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    // Run where no .env file can interfere.
    cmd.current_dir(std::env::temp_dir());
    cmd
}

pub struct Run {
    pub ok: bool,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("binary runs");
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            status.signal().is_none(),
            "{cmd:?} was killed by signal {:?}; stderr: {}",
            status.signal(),
            String::from_utf8_lossy(&stderr)
        );
    }
    Run {
        ok: status.success(),
        status,
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
    }
}

/// `adbudget <args>` against the database.
pub fn adbudget(db: &TestDatabase, args: &[&str]) -> Run {
    run(command("adbudget", &db.url).args(args))
}

pub fn free_port() -> u16 {
    adbudget_testing::process::free_port().unwrap()
}

/// Waits until `url` answers 200.
pub async fn wait_ready(url: &str, process: &mut Process) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = process.try_wait() {
            panic!("process exited early with {status}");
        }
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become ready");
}
