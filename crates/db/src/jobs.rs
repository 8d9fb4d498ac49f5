//! The scheduled jobs' handlers (SPEC §4): which campaigns each job looks at, and one run in a
//! write transaction. The job kinds, payloads and schedules are `adbudget_core::jobs`.

use adbudget_core::jobs::{JobKind, JobReport, JobSettings};
use adbudget_core::rule::PauseReason;
use chrono::{DateTime, Utc};

use crate::error::DomainResult;
use crate::repo::enforce::{self, Cause, ReconcileScope, Selection};
use crate::{DbConnection, write_transaction};

/// The rule's jobs: the cause the status history records for their changes, and the campaigns
/// each looks at. `None` for a job that does not apply the rule.
const fn rule_job(kind: JobKind) -> Option<(Cause, Selection)> {
    Some(match kind {
        JobKind::EnforceBudgets => (Cause::EnforceBudgets, Selection::Every),
        JobKind::ApplyDayparting => (Cause::ApplyDayparting, Selection::WithSchedule),
        // A flight starts and ends at brand-local midnight, so the daily reset applies it too.
        JobKind::ResetDaily => (
            Cause::ResetDaily,
            Selection::HoldingOrFlightEnds(&[
                PauseReason::BrandDailyBudget,
                PauseReason::CampaignDailyCap,
                PauseReason::Flight,
            ]),
        ),
        JobKind::ResetMonthly => (
            Cause::ResetMonthly,
            Selection::Holding(&[
                PauseReason::BrandMonthlyBudget,
                PauseReason::CampaignMonthlyCap,
            ]),
        ),
        JobKind::PruneEvents | JobKind::DispatchEvents | JobKind::MaintainSpendLogs => return None,
    })
}

/// Runs one job at `now` in a write transaction. The rule's jobs lock the brands involved, then
/// reconcile the selected campaigns: a constant number of statements whatever the number of
/// campaigns (plus one per 5,000 changed campaigns). `prune_events` removes the events older than
/// the retention (their deliveries with them, and the "Run now" requests as old); `dispatch_events` turns committed events into
/// webhook deliveries and returns the attempts that are due (`JobReport::deliveries`);
/// `maintain_spend_logs` creates the monthly partitions ahead and applies the spend-log retention
/// (`repo::spend::maintenance`; `JobReport::changed`: partitions created and dropped plus logs
/// deleted).
#[tracing::instrument(skip_all, fields(job.name = kind.name(), job.changed = tracing::field::Empty))]
pub fn run(
    conn: &mut DbConnection,
    kind: JobKind,
    now: DateTime<Utc>,
    settings: &JobSettings,
) -> DomainResult<JobReport> {
    if kind == JobKind::DispatchEvents {
        let done = crate::repo::webhooks::dispatch(conn, now)?;
        tracing::Span::current().record("job.changed", done.created);
        return Ok(JobReport {
            changed: done.created,
            deliveries: done.jobs,
            ..JobReport::default()
        });
    }
    if kind == JobKind::MaintainSpendLogs {
        // Its own transactions (DDL, and deletions in chunks).
        let done = crate::repo::spend::maintenance::maintain(
            conn,
            now,
            settings.spend_log_retention_months,
        )?;
        let changed = done.created.len() + done.dropped.len() + done.deleted as usize;
        tracing::Span::current().record("job.changed", changed);
        return Ok(JobReport {
            changed,
            ..JobReport::default()
        });
    }
    if matches!(kind, JobKind::ResetDaily | JobKind::ResetMonthly) {
        // The months that ended join the campaigns' carried lifetime totals (repo::lifetime):
        // its own transactions, before the rule's, which judges the same totals either way. Both
        // resets: one read of the brands' marks when none is behind, and a mark behind (a brand
        // inserted by hand, a changed schedule) is brought forward within the quarter hour. A
        // fold that fails is logged, not the reset's failure: the lifetimes stay exact, read
        // over one month more, and campaigns must still come back at midnight.
        match crate::repo::lifetime::fold(conn, now) {
            Ok(folded) => tracing::debug!(brands = folded, "lifetime totals folded"),
            Err(error) => tracing::error!(%error, "folding the lifetime totals failed"),
        }
    }
    write_transaction(conn, |conn| {
        let Some((cause, select)) = rule_job(kind) else {
            let before = now - settings.event_retention;
            let pruned = crate::repo::events::prune(conn, before)?;
            // "Run now" requests (their idempotency keys) are kept as long as the events.
            crate::repo::schedules::prune_runs(conn, before, now)?;
            tracing::Span::current().record("job.changed", pruned);
            return Ok(JobReport {
                changed: pruned,
                ..JobReport::default()
            });
        };
        let scope = ReconcileScope {
            locked: enforce::lock_brands_selected(conn, select)?,
            ..ReconcileScope::selection(select)
        };
        let changes = enforce::reconcile(conn, &scope, now, cause)?;
        tracing::Span::current().record("job.changed", changes.len());
        Ok(JobReport::from(changes.as_slice()))
    })
}
