//! Server CPU per event (issue #19): the CPU time the serving processes spent during a run, read
//! from `/proc/<pid>/stat` (user + system) at its start and end, divided by the events stored.
//!
//! The serving processes are `adbudget-api` (when the run started one) and the database's: every
//! process named `postgres` on PostgreSQL (the backends a connection pool keeps for the whole
//! run, the WAL writer, the checkpointer…; a backend that ends during the run takes its time
//! with it, which pools avoid), none on SQLite, where the database runs inside the API — or,
//! for `limit`, inside this process, whose own time is then the server's. The load generator is
//! left out.

use std::collections::HashMap;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces: the fields after it follow the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn postgres_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .collect()
}

/// The serving processes' CPU ticks at the start of a run.
pub struct ServerCpu {
    db: crate::Db,
    /// The API process, or `None`: this process serves (SQLite `limit`).
    api: Option<u32>,
    start: HashMap<u32, u64>,
    started: std::time::Instant,
}

/// What a run cost.
pub struct CpuUsage {
    /// Seconds of CPU by part.
    parts: Vec<(&'static str, f64)>,
    wall: f64,
}

impl ServerCpu {
    pub fn start(db: crate::Db, api: Option<u32>) -> Self {
        let mut s = ServerCpu {
            db,
            api,
            start: HashMap::new(),
            started: std::time::Instant::now(),
        };
        s.start = s.sample();
        s
    }

    fn serving(&self) -> Vec<(u32, &'static str)> {
        let mut pids = vec![(self.api.unwrap_or_else(std::process::id), "adbudget")];
        if matches!(self.db, crate::Db::Postgres) {
            pids.extend(postgres_pids().into_iter().map(|p| (p, "postgres")));
        }
        pids
    }

    fn sample(&self) -> HashMap<u32, u64> {
        self.serving()
            .into_iter()
            .filter_map(|(pid, _)| Some((pid, ticks(pid)?)))
            .collect()
    }

    pub fn stop(self) -> CpuUsage {
        let mut parts: Vec<(&'static str, f64)> = Vec::new();
        for (pid, part) in self.serving() {
            let Some(now) = ticks(pid) else { continue };
            let spent = now.saturating_sub(self.start.get(&pid).copied().unwrap_or(0));
            let seconds = spent as f64 / TICKS_PER_SECOND;
            match parts.iter_mut().find(|(p, _)| *p == part) {
                Some((_, s)) => *s += seconds,
                None => parts.push((part, seconds)),
            }
        }
        // On PostgreSQL `limit`, this process is the load generator: not the server.
        if self.api.is_none() && matches!(self.db, crate::Db::Postgres) {
            parts.retain(|(p, _)| *p != "adbudget");
        }
        CpuUsage {
            parts,
            wall: self.started.elapsed().as_secs_f64(),
        }
    }
}

impl CpuUsage {
    pub fn seconds(&self) -> f64 {
        self.parts.iter().map(|(_, s)| s).sum()
    }

    /// Prints the CPU per event and the cores busy; returns the µs per event.
    pub fn report(&self, events: u64) -> f64 {
        let per_event = self.seconds() * 1e6 / events.max(1) as f64;
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(p, s)| format!("{p} {:.2} cores", s / self.wall))
            .collect();
        println!(
            "server CPU {:.1} µs/event  ({})",
            per_event,
            parts.join(", ")
        );
        per_event
    }
}
