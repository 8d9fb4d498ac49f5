//! The scheduled jobs (SPEC §4), successors of the Celery tasks: serde payloads with stable queue
//! names and their schedules. The handlers are `adbudget_db::jobs::run`.
//!
//! Every handler is idempotent and set-based: it re-applies the rule (`repo::enforce::reconcile`)
//! to a scope chosen by one query, writes only campaigns whose state changes and one history row
//! per change. Because spend is accounted per period, a handler that runs late, twice, or after a
//! missed run still leaves every campaign exactly as the rule says for `now`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::rule::Change;

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    EnforceBudgets,
    ApplyDayparting,
    ResetDaily,
    ResetMonthly,
    PruneEvents,
    DispatchEvents,
    MaintainSpendLogs,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::EnforceBudgets,
        JobKind::ApplyDayparting,
        JobKind::ResetDaily,
        JobKind::ResetMonthly,
        JobKind::PruneEvents,
        JobKind::DispatchEvents,
        JobKind::MaintainSpendLogs,
    ];

    /// The stable name: the queue's name in Redis and the job's name in the monitor. Never derive
    /// it from a Rust type name (renaming a type would silently move its Redis keys).
    pub const fn name(self) -> &'static str {
        match self {
            JobKind::EnforceBudgets => "enforce_budgets",
            JobKind::ApplyDayparting => "apply_dayparting",
            JobKind::ResetDaily => "reset_daily",
            JobKind::ResetMonthly => "reset_monthly",
            JobKind::PruneEvents => "prune_events",
            JobKind::DispatchEvents => "dispatch_events",
            JobKind::MaintainSpendLogs => "maintain_spend_logs",
        }
    }

    /// Default cron schedule (seconds first, as `cron` 0.17 reads it), in UTC.
    ///
    /// The resets run on every UTC quarter hour because every timezone's midnight falls on one
    /// (offsets are multiples of 15 minutes), so each brand's local midnight is acted on within
    /// the minute; the monthly one only on the days a local 1st can begin (28th–31st and 1st UTC).
    pub const fn default_schedule(self) -> &'static str {
        match self {
            JobKind::EnforceBudgets => "0 */5 * * * *",
            JobKind::ApplyDayparting => "0 * * * * *",
            JobKind::ResetDaily => "0 */15 * * * *",
            JobKind::ResetMonthly => "0 */15 * 1,28-31 * *",
            JobKind::PruneEvents => "0 17 3 * * *",
            // The sweep behind the nudges: a nudge lost with a process delays a delivery by
            // these 5 seconds at most, and retries come due on it.
            JobKind::DispatchEvents => "*/5 * * * * *",
            // Daily: the months ahead exist two months early, and a retention drops a month
            // within a day of its passing.
            JobKind::MaintainSpendLogs => "0 41 2 * * *",
        }
    }

    /// The environment variable that overrides the schedule.
    pub const fn schedule_var(self) -> &'static str {
        match self {
            JobKind::EnforceBudgets => "ADBUDGET_SCHEDULE_ENFORCE_BUDGETS",
            JobKind::ApplyDayparting => "ADBUDGET_SCHEDULE_APPLY_DAYPARTING",
            JobKind::ResetDaily => "ADBUDGET_SCHEDULE_RESET_DAILY",
            JobKind::ResetMonthly => "ADBUDGET_SCHEDULE_RESET_MONTHLY",
            JobKind::PruneEvents => "ADBUDGET_SCHEDULE_PRUNE_EVENTS",
            JobKind::DispatchEvents => "ADBUDGET_SCHEDULE_DISPATCH_EVENTS",
            JobKind::MaintainSpendLogs => "ADBUDGET_SCHEDULE_MAINTAIN_SPEND_LOGS",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A job payload: which tick of its schedule it was enqueued for.
pub trait Job:
    Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + Unpin + 'static
{
    const KIND: JobKind;
    fn for_tick(scheduled_for: DateTime<Utc>) -> Self;
    /// A run asked for by hand ("Run now"), at `at`, by `by` (a user's or token's name).
    fn run_now(at: DateTime<Utc>, by: String) -> Self;
    fn scheduled_for(&self) -> DateTime<Utc>;
    /// Who asked for this run by hand; `None` for a scheduled tick.
    fn run_by(&self) -> Option<&str>;
}

macro_rules! job_types {
    ($($(#[$doc:meta])* $ty:ident => $kind:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $ty {
                /// The schedule tick this run was enqueued for (a manual run: when it was asked).
                pub scheduled_for: DateTime<Utc>,
                /// Who ran it by hand; absent for a scheduled tick.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub run_by: Option<String>,
            }

            impl Job for $ty {
                const KIND: JobKind = JobKind::$kind;
                fn for_tick(scheduled_for: DateTime<Utc>) -> Self {
                    $ty { scheduled_for, run_by: None }
                }
                fn run_now(at: DateTime<Utc>, by: String) -> Self {
                    $ty { scheduled_for: at, run_by: Some(by) }
                }
                fn scheduled_for(&self) -> DateTime<Utc> {
                    self.scheduled_for
                }
                fn run_by(&self) -> Option<&str> {
                    self.run_by.as_deref()
                }
            }
        )*
    };
}

job_types! {
    /// Full reconcile of every campaign: repairs any drift (every 5 minutes).
    EnforceBudgets => EnforceBudgets,
    /// Campaigns whose dayparting window opened or closed (every minute).
    ApplyDayparting => ApplyDayparting,
    /// A new brand-local day: campaigns paused for daily reasons come back if nothing else holds.
    ResetDaily => ResetDaily,
    /// A new brand-local month: likewise for monthly reasons.
    ResetMonthly => ResetMonthly,
    /// Events older than `ADBUDGET_EVENT_RETENTION_DAYS` leave the change feed (daily).
    PruneEvents => PruneEvents,
    /// Committed events become webhook deliveries; due attempts are handed to the workers
    /// (every 5 seconds, and nudged after every commit that wrote events).
    DispatchEvents => DispatchEvents,
    /// Spend logs over the years: PostgreSQL's monthly partitions are created ahead, and the
    /// months past `ADBUDGET_SPEND_LOG_RETENTION_MONTHS` are dropped (deleted on SQLite) (daily).
    MaintainSpendLogs => MaintainSpendLogs,
}

/// Why a job runs: a tick of its schedule, or an operator's "Run now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Tick(DateTime<Utc>),
    Manual { at: DateTime<Utc>, by: String },
}

impl Trigger {
    /// The job's payload for this trigger.
    pub fn payload<J: Job>(&self) -> J {
        match self {
            Trigger::Tick(at) => J::for_tick(*at),
            Trigger::Manual { at, by } => J::run_now(*at, by.clone()),
        }
    }
}

/// A job's schedule as stored (SPEC §6 `GET /api/v1/jobs/schedules`): the beats follow it within
/// seconds of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// The job's name.
    #[schema(example = "enforce_budgets")]
    pub job: String,
    /// Six fields, seconds first, in UTC.
    #[schema(example = "0 */5 * * * *")]
    pub cron: String,
    /// The cron in words.
    #[schema(example = "Every 5 minutes")]
    pub description: String,
    /// A disabled schedule enqueues nothing (its catch-up after downtime neither); "Run now" still
    /// runs the job.
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
    /// Who changed it last (`null`: seeded from the `ADBUDGET_SCHEDULE_*` defaults).
    pub updated_by: Option<String>,
    /// The newest tick any beat handled (`null`: none known; standalone keeps none).
    pub last_tick: Option<DateTime<Utc>>,
    /// The next tick (`null` when disabled).
    pub next_tick: Option<DateTime<Utc>>,
}

/// What the job handlers need of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// `prune_events` removes events older than this.
    pub event_retention: chrono::TimeDelta,
    /// `maintain_spend_logs` keeps this many whole months of spend logs before the current one
    /// (`None`: every spend log).
    pub spend_log_retention_months: Option<u32>,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            event_retention: chrono::TimeDelta::days(30),
            spend_log_retention_months: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// Campaigns whose state changed (`prune_events`: events removed).
    pub changed: usize,
    pub activated: usize,
    pub paused: usize,
    /// `dispatch_events`: the attempts handed out, for the worker to push as jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<crate::webhooks::AttemptJob>,
}

impl From<&[Change]> for JobReport {
    fn from(changes: &[Change]) -> Self {
        let activated = changes.iter().filter(|c| c.to.is_empty()).count();
        JobReport {
            changed: changes.len(),
            activated,
            paused: changes.iter().filter(|c| c.from.is_empty()).count(),
            deliveries: Vec::new(),
        }
    }
}

/// A cron schedule for a job, validated.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    pub kind: JobKind,
    pub expression: String,
    pub schedule: cron::Schedule,
}

/// Reads a cron expression as the beat does: six fields, seconds first (`cron` 0.17), in UTC.
/// The error says what is expected, for a form or an API field.
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, String> {
    let fields = expression.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "must have 6 fields (second minute hour day-of-month month day-of-week), such as \"0 */5 * * * *\"; this one has {fields}"
        ));
    }
    let schedule = cron::Schedule::from_str(expression).map_err(|e| {
        format!("is not a cron schedule with seconds, such as \"0 */5 * * * *\" ({e})")
    })?;
    // A schedule with no time ahead (the 30th of February) would end the beat's scheduler.
    if schedule.upcoming(Utc).next().is_none() {
        return Err("never fires: no such time lies ahead".to_owned());
    }
    Ok(schedule)
}

/// A cron expression as stored: checked by [`parse_cron`], with one space between its fields.
pub fn normalize_cron(expression: &str) -> Result<String, String> {
    parse_cron(expression)?;
    Ok(expression.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A cron expression in words, in English ("Every 5 minutes"); the expression itself when it
/// uses syntax the describer does not read. `cronspeak` reads five-field cron (minutes first,
/// days of the week 0–6 from Sunday); `cron` 0.17 counts days 1–7 from Sunday, so numeric days
/// are handed over as names.
pub fn describe_cron(expression: &str) -> String {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [second, minute, hour, dom, month, dow] = fields[..] else {
        return expression.to_owned();
    };
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let dow: String = {
        let mut out = String::new();
        let mut number = String::new();
        let flush = |number: &mut String, out: &mut String, after_slash: bool| {
            if number.is_empty() {
                return;
            }
            match number.parse::<usize>() {
                Ok(n @ 1..=7) if !after_slash => out.push_str(DAYS[n - 1]),
                _ => out.push_str(number),
            }
            number.clear();
        };
        let mut after_slash = false;
        for c in dow.chars() {
            if c.is_ascii_digit() {
                number.push(c);
            } else {
                flush(&mut number, &mut out, after_slash);
                after_slash = c == '/';
                out.push(c);
            }
        }
        flush(&mut number, &mut out, after_slash);
        out
    };
    let rest = [minute, hour, dom, month, dow.as_str()];
    let every_minute = rest.iter().all(|f| *f == "*");
    match second {
        "*" if every_minute => return "Every second".to_owned(),
        s if every_minute && (s.starts_with("*/") || s.starts_with("0/")) => {
            let n = &s[2..];
            return if n == "1" {
                "Every second".to_owned()
            } else {
                format!("Every {n} seconds")
            };
        }
        _ => {}
    }
    let five = rest.join(" ");
    let words = match five.as_str() {
        // cronspeak says "At 0 minutes past the hour".
        "0 * * * *" => "Every hour".to_owned(),
        _ => match cronspeak::describe(&five) {
            Ok(words) => words,
            Err(_) => return expression.to_owned(),
        },
    };
    match second {
        "0" => words,
        s => format!("{words}, at second {s}"),
    }
}

impl JobSchedule {
    /// `expression` for `kind`, from its environment variable (the error names the variable).
    pub fn parse(kind: JobKind, expression: &str) -> Result<Self, String> {
        Self::new(kind, expression).map_err(|e| format!("{} {e}", kind.schedule_var()))
    }

    /// `expression` for `kind` (the error says what is wrong, without a subject).
    pub fn new(kind: JobKind, expression: &str) -> Result<Self, String> {
        parse_cron(expression).map(|schedule| JobSchedule {
            kind,
            expression: expression.trim().to_owned(),
            schedule,
        })
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&t).next()
    }

    /// The last tick at or before `t`, looking back at most 32 days (windows of growing size, so
    /// frequent schedules are answered after a few steps).
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        [
            chrono::Duration::hours(1),
            chrono::Duration::days(1),
            chrono::Duration::days(32),
        ]
        .into_iter()
        .find_map(|window| {
            self.schedule
                .after(&(t - window))
                .take_while(|tick| *tick <= t)
                .last()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_are_stable() {
        let names: Vec<_> = JobKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "enforce_budgets",
                "apply_dayparting",
                "reset_daily",
                "reset_monthly",
                "prune_events",
                "dispatch_events",
                "maintain_spend_logs"
            ]
        );
        for k in JobKind::ALL {
            assert_eq!(JobKind::from_name(k.name()), Some(k));
            assert!(
                JobSchedule::parse(k, k.default_schedule()).is_ok(),
                "{k} default schedule parses"
            );
        }
    }

    #[test]
    fn every_timezone_midnight_is_on_a_reset_tick() {
        let daily = JobSchedule::parse(JobKind::ResetDaily, JobKind::ResetDaily.default_schedule())
            .unwrap();
        let monthly = JobSchedule::parse(
            JobKind::ResetMonthly,
            JobKind::ResetMonthly.default_schedule(),
        )
        .unwrap();
        for tz in chrono_tz::TZ_VARIANTS {
            for (y, m) in [(2026, 1), (2026, 3), (2026, 7), (2026, 12)] {
                let local_first = tz.with_ymd_and_hms(y, m, 1, 0, 0, 0).earliest();
                let Some(local_first) = local_first else {
                    continue;
                };
                let utc = local_first.with_timezone(&Utc);
                assert_eq!(
                    daily.last_at_or_before(utc),
                    Some(utc),
                    "{tz}: daily reset ticks at local midnight"
                );
                assert_eq!(
                    monthly.last_at_or_before(utc),
                    Some(utc),
                    "{tz}: monthly reset ticks on the local 1st"
                );
            }
        }
    }

    #[test]
    fn job_payloads_are_plain_json() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        let json = serde_json::to_value(ResetDaily::for_tick(at)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"scheduled_for": "2026-11-21T00:00:00Z"})
        );
    }

    #[test]
    fn crons_read_in_words() {
        for (cron, words) in [
            ("0 */5 * * * *", "Every 5 minutes"),
            ("0 * * * * *", "Every minute"),
            ("*/5 * * * * *", "Every 5 seconds"),
            ("* * * * * *", "Every second"),
            ("0 17 3 * * *", "At 03:17 AM"),
            ("0 0 * * * *", "Every hour"),
            // `cron` counts the days of the week from Sunday = 1.
            ("0 0 9 * * 2-6", "At 09:00 AM, Monday through Friday"),
            ("0 0 9 * * Mon-Fri", "At 09:00 AM, Monday through Friday"),
            ("30 0 9 * * *", "At 09:00 AM, at second 30"),
        ] {
            assert_eq!(describe_cron(cron), words, "{cron}");
        }
        // What the describer cannot read is shown as written.
        assert_eq!(describe_cron("0 0 0 ? * *"), "0 0 0 ? * *");
        for k in JobKind::ALL {
            let words = describe_cron(k.default_schedule());
            assert_ne!(words, k.default_schedule(), "{k} reads in words");
        }
    }

    #[test]
    fn crons_need_six_fields_and_a_valid_expression() {
        assert!(parse_cron("0 */5 * * * *").is_ok());
        let five = parse_cron("*/5 * * * *").unwrap_err();
        assert!(
            five.contains("6 fields") && five.contains("has 5"),
            "{five}"
        );
        assert!(
            parse_cron("0 0 0 1 1 * 2030")
                .unwrap_err()
                .contains("has 7")
        );
        assert!(parse_cron("0 61 * * * *").is_err());
        assert!(
            parse_cron("0 0 0 30 2 *")
                .unwrap_err()
                .contains("never fires")
        );
        assert!(parse_cron("").is_err());
    }

    #[test]
    fn bad_schedules_name_their_variable() {
        let err = JobSchedule::parse(JobKind::ApplyDayparting, "every minute").unwrap_err();
        assert!(err.contains("ADBUDGET_SCHEDULE_APPLY_DAYPARTING"), "{err}");
    }
}
