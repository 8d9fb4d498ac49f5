//! Child processes for the end-to-end tests and the bench: the built binaries, free ports, a
//! process that is killed when dropped (and can be restarted, for the soak), a `redis-server`.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A port nothing listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A workspace binary of the same build: next to the running executable (the bench, in
/// `target/<profile>/`), or one directory up (a test, in `target/<profile>/deps/`).
/// `cargo test --workspace` builds the binaries first, because the crates that define them have
/// integration tests of their own.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let here = exe.parent().context("the executable has no directory")?;
    let candidates = [Some(here), here.parent()];
    candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name} is not built next to {}: run `cargo build --workspace` (with `--release` \
                 for the bench)",
                exe.display()
            )
        })
}

/// `redis-server` on `port` of 127.0.0.1, without persistence (tests and the soak stop and start
/// it at will).
pub fn redis_server(port: u16) -> Command {
    let mut c = Command::new("redis-server");
    c.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    c
}

/// A child process, killed (and waited for) when dropped. One started with [`Process::start`]
/// can be restarted with the same command; one from [`Process::spawn`] cannot.
pub struct Process {
    name: String,
    command: Option<Box<dyn Fn() -> Command + Send>>,
    child: Option<Child>,
}

impl Process {
    /// Runs `command()` now; [`Process::restart`] runs it again.
    pub fn start(
        name: &str,
        command: impl Fn() -> Command + Send + 'static,
    ) -> anyhow::Result<Process> {
        let mut p = Process {
            name: name.to_owned(),
            command: Some(Box::new(command)),
            child: None,
        };
        p.restart()?;
        Ok(p)
    }

    /// Runs `cmd` now, once.
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Process> {
        let name = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {name}"))?;
        Ok(Process {
            name,
            command: None,
            child: Some(child),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the command again (after [`Process::kill`] or [`Process::terminate`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let command = self
            .command
            .as_ref()
            .with_context(|| format!("{} was not started restartable", self.name))?;
        let child = command()
            .spawn()
            .with_context(|| format!("failed to start {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status if it has exited (`None` while it runs, or when it was never started).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }

    /// Whether it is running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL, and what it wrote to its stdout (when that was piped).
    pub fn kill_with_stdout(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if let Some(mut stdout) = c.stdout.take() {
                let _ = stdout.read_to_string(&mut out);
            }
        }
        out
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after it); returns whether it
    /// exited by itself with status 0.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
