//! The scheduled jobs' handlers (SPEC §4): which campaigns each job looks at, and one run in a
//! write transaction. The job kinds, payloads and schedules are `adbudget_core::jobs`.

use adbudget_core::jobs::{JobKind, JobReport};
use adbudget_core::rule::PauseReason;
use chrono::{DateTime, Utc};

use crate::error::DomainResult;
use crate::repo::enforce::{self, Cause, ReconcileScope, Selection};
use crate::{DbConnection, write_transaction};

/// What the status history records as the cause of a job's changes.
const fn cause(kind: JobKind) -> Cause {
    match kind {
        JobKind::EnforceBudgets => Cause::EnforceBudgets,
        JobKind::ApplyDayparting => Cause::ApplyDayparting,
        JobKind::ResetDaily => Cause::ResetDaily,
        JobKind::ResetMonthly => Cause::ResetMonthly,
    }
}

/// The campaigns a job looks at.
const fn selection(kind: JobKind) -> Selection {
    match kind {
        JobKind::EnforceBudgets => Selection::Every,
        JobKind::ApplyDayparting => Selection::WithSchedule,
        // A flight starts and ends at brand-local midnight, so the daily reset applies it too.
        JobKind::ResetDaily => Selection::HoldingOrFlightEnds(&[
            PauseReason::BrandDailyBudget,
            PauseReason::CampaignDailyCap,
            PauseReason::Flight,
        ]),
        JobKind::ResetMonthly => Selection::Holding(&[
            PauseReason::BrandMonthlyBudget,
            PauseReason::CampaignMonthlyCap,
        ]),
    }
}

/// Runs one job at `now` in a write transaction: lock the brands involved, then reconcile the
/// selected campaigns. A constant number of statements whatever the number of campaigns (plus one
/// per 5,000 changed campaigns).
#[tracing::instrument(skip_all, fields(job.name = kind.name(), job.changed = tracing::field::Empty))]
pub fn run(conn: &mut DbConnection, kind: JobKind, now: DateTime<Utc>) -> DomainResult<JobReport> {
    write_transaction(conn, |conn| {
        let select = selection(kind);
        enforce::lock_brands_selected(conn, select)?;
        let changes =
            enforce::reconcile(conn, &ReconcileScope::selection(select), now, cause(kind))?;
        tracing::Span::current().record("job.changed", changes.len());
        Ok(JobReport::from(changes.as_slice()))
    })
}
