//! The PostgreSQL and Redis servers tests use: the ones named by `TEST_DATABASE_URL` /
//! `TEST_REDIS_URL`, else the machine's own on their default addresses, else private servers that
//! this test process starts from the system's packages (`initdb` + `postgres`, `redis-server`) in a
//! temporary directory on a free port, so that `cargo test --workspace` works on a machine where
//! nothing is running.
//!
//! A private server lives exactly as long as the test process: it is started under a small shell
//! that waits for end-of-file on a pipe whose write end only this process holds. When the process
//! exits (however it exits) the kernel closes the pipe, and the shell stops the server and removes
//! its directory. No `unsafe`, no exit hooks, nothing left running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// The PostgreSQL server tests create their databases on (any database on it; the user may create
/// databases): `TEST_DATABASE_URL`, else the one answering on 127.0.0.1:5432, else a private one.
///
/// Without TLS (`sslmode=disable`) unless `TEST_DATABASE_URL` names an `sslmode`: libpq's OpenSSL
/// registers an exit handler (`OPENSSL_cleanup`) that races with the connections other threads
/// of a test process still hold when it exits, and crashed about one run of the API tests in
/// five with SIGSEGV after every test had passed (openssl/openssl#6214, diesel-rs/diesel#3441).
/// Nothing a test checks depends on TLS to a local server.
pub fn postgres_admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) => url,
            Err(_) if answers(5432) && PgConnection::establish(DEFAULT_POSTGRES).is_ok() => {
                DEFAULT_POSTGRES.to_owned()
            }
            Err(_) => start_private_postgres().unwrap_or_else(|e| panic!("{e}")),
        };
        without_tls(&url)
    })
    .clone()
}

/// `url` with `sslmode=disable` unless it names an sslmode.
fn without_tls(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "sslmode") => {
            u.query_pairs_mut().append_pair("sslmode", "disable");
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The Redis tests use (each under a key prefix of its own): `TEST_REDIS_URL`, else the one
/// answering on 127.0.0.1:6379, else a private `redis-server`.
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            return url;
        }
        if redis_pongs(6379) {
            return DEFAULT_REDIS.to_owned();
        }
        start_private_redis().unwrap_or_else(|e| panic!("{e}"))
    })
    .clone()
}

/// The wrappers of the private servers; never dropped, so their pipes close only at exit.
fn keep(child: Child) {
    static KEPT: Mutex<Vec<Child>> = Mutex::new(Vec::new());
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(child);
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn redis_pongs(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reply = [0u8; 5];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG"
}

fn free_port() -> Result<u16, String> {
    crate::process::free_port().map_err(|e| format!("no free port for a private test server: {e}"))
}

/// Debian keeps `initdb` and `postgres` outside PATH, under /usr/lib/postgresql/<version>/bin.
fn postgres_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
        && dir.join("postgres").is_file()
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A command run as `postgres` when this process is root (PostgreSQL refuses to run as root).
fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start_private_postgres() -> Result<String, String> {
    let missing = "no PostgreSQL answers on 127.0.0.1:5432 and TEST_DATABASE_URL is unset, and \
                   initdb/postgres were not found to start a private one: install Debian's \
                   `postgresql` package (or set TEST_DATABASE_URL)";
    let bin = postgres_bin_dir().ok_or(missing)?;
    let dir = tempfile::Builder::new()
        .prefix("adbudget-test-pg-")
        .tempdir()
        .map_err(|e| format!("private PostgreSQL: no temporary directory: {e}"))?
        .keep();
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata(&dir)
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if root {
        let ids = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        let (Some(uid), Some(gid)) = (ids("-u"), ids("-g")) else {
            return Err(format!(
                "{missing} (there is no `postgres` user to run it as)"
            ));
        };
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("private PostgreSQL: chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let init = as_server_user(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("private PostgreSQL: initdb did not run: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "private PostgreSQL: initdb failed: {}",
            String::from_utf8_lossy(&init.stderr).trim()
        ));
    }
    let port = free_port()?;
    // The tests open many connections at once; durability is not wanted from a throwaway server.
    let script = r#"
        "$0" -D "$1/data" -p "$2" -k "$1" -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off >"$1/server.log" 2>&1 &
        pid=$!
        read -r _ignored
        kill -INT "$pid"; wait "$pid"; rm -rf "$1""#;
    let wrapper = as_server_user(root, Path::new("sh"))
        .arg("-c")
        .arg(script)
        .arg(bin.join("postgres"))
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("private PostgreSQL did not start: {e}"))?;
    keep(wrapper);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    while PgConnection::establish(&url).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!(
                "private PostgreSQL did not accept connections within 30 s: {log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("tests: no PostgreSQL on 127.0.0.1:5432, started a private one at {url}");
    Ok(url)
}

fn start_private_redis() -> Result<String, String> {
    let server = on_path("redis-server").ok_or(
        "no Redis answers on 127.0.0.1:6379 and TEST_REDIS_URL is unset, and redis-server was \
         not found to start a private one: install Debian's `redis-server` package (or set \
         TEST_REDIS_URL)",
    )?;
    let port = free_port()?;
    let script = r#"
        "$0" --port "$1" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
        pid=$!
        read -r _ignored
        kill "$pid"; wait "$pid""#;
    let wrapper = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(server)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("private Redis did not start: {e}"))?;
    keep(wrapper);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_pongs(port) {
        if Instant::now() > deadline {
            return Err("private redis-server did not answer within 10 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("redis://127.0.0.1:{port}");
    eprintln!("tests: no Redis on 127.0.0.1:6379, started a private one at {url}");
    Ok(url)
}
