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
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        JobKind::EnforceBudgets,
        JobKind::ApplyDayparting,
        JobKind::ResetDaily,
        JobKind::ResetMonthly,
        JobKind::PruneEvents,
        JobKind::DispatchEvents,
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
    fn scheduled_for(&self) -> DateTime<Utc>;
}

macro_rules! job_types {
    ($($(#[$doc:meta])* $ty:ident => $kind:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $ty {
                /// The schedule tick this run was enqueued for.
                pub scheduled_for: DateTime<Utc>,
            }

            impl Job for $ty {
                const KIND: JobKind = JobKind::$kind;
                fn for_tick(scheduled_for: DateTime<Utc>) -> Self {
                    $ty { scheduled_for }
                }
                fn scheduled_for(&self) -> DateTime<Utc> {
                    self.scheduled_for
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
}

/// What the job handlers need of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// `prune_events` removes events older than this.
    pub event_retention: chrono::TimeDelta,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            event_retention: chrono::TimeDelta::days(30),
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

impl JobSchedule {
    pub fn parse(kind: JobKind, expression: &str) -> Result<Self, String> {
        cron::Schedule::from_str(expression)
            .map(|schedule| JobSchedule {
                kind,
                expression: expression.to_owned(),
                schedule,
            })
            .map_err(|e| {
                format!(
                    "{} is not a cron schedule with seconds, such as \"0 */5 * * * *\" ({e})",
                    kind.schedule_var()
                )
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
                "dispatch_events"
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
    fn bad_schedules_name_their_variable() {
        let err = JobSchedule::parse(JobKind::ApplyDayparting, "every minute").unwrap_err();
        assert!(err.contains("ADBUDGET_SCHEDULE_APPLY_DAYPARTING"), "{err}");
    }
}
