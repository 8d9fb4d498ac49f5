//! The job schedules as data and "Run now" requests, on both databases: seeding never overwrites
//! what an operator stored, every change is audited with who made it, and one idempotency key
//! is one run.

use adbudget_core::access::{Actor, ActorKind, Author};
use adbudget_core::jobs::{JobKind, JobSchedule, JobSettings};
use adbudget_db::repo::PageRequest;
use adbudget_db::repo::audit::{self, AuditFilter};
use adbudget_db::repo::schedules::{self, ScheduleChanges};
use adbudget_testing::Backend;

use crate::{on_both_databases, utc, world};

on_both_databases!(
    seeding_fills_what_is_missing_and_keeps_what_is_stored,
    a_change_is_audited_with_who_made_it,
    one_idempotency_key_is_one_run,
    the_last_tick_never_moves_backwards,
);

fn defaults(cron: &str) -> Vec<JobSchedule> {
    JobKind::ALL
        .iter()
        .map(|k| {
            JobSchedule::new(
                *k,
                if *k == JobKind::ResetDaily {
                    cron
                } else {
                    k.default_schedule()
                },
            )
            .unwrap()
        })
        .collect()
}

/// A push that succeeds.
fn queued(_: &schedules::RunRequest) -> anyhow::Result<()> {
    Ok(())
}

fn alice() -> Author {
    Author {
        actor: Actor {
            kind: ActorKind::User,
            id: Some(7),
            name: "alice".into(),
        },
        request_id: Some("req-1".into()),
    }
}

fn seeding_fills_what_is_missing_and_keeps_what_is_stored(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    schedules::seed(&mut w.conn(), &defaults("0 */15 * * * *"), now).unwrap();
    let all = schedules::list(&mut w.conn()).unwrap();
    assert_eq!(
        all.iter().map(|s| s.job.as_str()).collect::<Vec<_>>(),
        JobKind::ALL.map(JobKind::name),
        "one row per job, in the jobs' order"
    );
    assert!(all.iter().all(|s| s.enabled && s.updated_by.is_none()));
    let changes = ScheduleChanges {
        cron: Some("0 0 * * * *".into()),
        enabled: Some(false),
    };
    schedules::update(&mut w.conn(), JobKind::ResetDaily, &changes, now, &alice()).unwrap();
    // A later start with another variable value: the stored row wins.
    schedules::seed(&mut w.conn(), &defaults("0 */30 * * * *"), now).unwrap();
    let stored = schedules::get(&mut w.conn(), JobKind::ResetDaily).unwrap();
    assert_eq!(stored.cron, "0 0 * * * *");
    assert!(!stored.enabled);
    let view = stored.view(now, None);
    assert_eq!(view.description, "Every hour");
    assert_eq!(view.next_tick, None, "a disabled schedule has no next tick");
    assert_eq!(view.updated_by.as_deref(), Some("alice (user)"));
}

fn a_change_is_audited_with_who_made_it(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    schedules::seed(&mut w.conn(), &defaults("0 */15 * * * *"), now).unwrap();
    let changes = ScheduleChanges {
        cron: Some("0 */10 * * * *".into()),
        enabled: None,
    };
    let saved = schedules::update(
        &mut w.conn(),
        JobKind::EnforceBudgets,
        &changes,
        now,
        &alice(),
    )
    .unwrap();
    assert_eq!(saved.cron, "0 */10 * * * *");
    assert_eq!(
        saved.view(now, None).next_tick,
        Some(utc("2026-12-01T10:10:00Z"))
    );
    // The same values again change nothing and write no entry.
    schedules::update(
        &mut w.conn(),
        JobKind::EnforceBudgets,
        &changes,
        now,
        &alice(),
    )
    .unwrap();
    let filter = AuditFilter {
        object_type: Some("schedule".into()),
        ..AuditFilter::default()
    };
    let entries = audit::list(
        &mut w.conn(),
        &filter,
        PageRequest {
            limit: 50,
            cursor: None,
        },
    )
    .unwrap()
    .items;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!((e.action.as_str(), e.object_id), ("update", saved.id));
    assert_eq!(e.actor.name, "alice");
    assert_eq!(e.request_id.as_deref(), Some("req-1"));
    assert_eq!(e.changes["cron"].old, "0 */5 * * * *");
    assert_eq!(e.changes["cron"].new, "0 */10 * * * *");
    assert!(!e.changes.contains_key("enabled"));
}

fn one_idempotency_key_is_one_run(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    schedules::seed(&mut w.conn(), &defaults("0 */15 * * * *"), now).unwrap();
    let (first, new) = schedules::request_run(
        &mut w.conn(),
        JobKind::ResetDaily,
        "k1",
        now,
        &alice(),
        queued,
    )
    .unwrap();
    assert!(new);
    assert_eq!(first.requested_by, "alice (user)");
    let (again, new) = schedules::request_run(
        &mut w.conn(),
        JobKind::ResetDaily,
        "k1",
        now,
        &alice(),
        queued,
    )
    .unwrap();
    assert!(!new, "the same key again is no new run");
    assert_eq!(again, first);
    // The key is per job; another key is another run.
    assert!(
        schedules::request_run(
            &mut w.conn(),
            JobKind::ResetMonthly,
            "k1",
            now,
            &alice(),
            queued
        )
        .unwrap()
        .1
    );
    assert!(
        schedules::request_run(
            &mut w.conn(),
            JobKind::ResetDaily,
            "k2",
            now,
            &alice(),
            queued
        )
        .unwrap()
        .1
    );
    let filter = AuditFilter {
        object_type: Some("schedule".into()),
        ..AuditFilter::default()
    };
    let runs = audit::list(
        &mut w.conn(),
        &filter,
        PageRequest {
            limit: 50,
            cursor: None,
        },
    )
    .unwrap()
    .items;
    assert_eq!(runs.iter().filter(|e| e.action == "run").count(), 3);
    // A run whose push failed is not recorded (nor audited): a retry with its key runs.
    let failed = schedules::request_run(
        &mut w.conn(),
        JobKind::ResetDaily,
        "k3",
        now,
        &alice(),
        |_| Err(anyhow::anyhow!("Redis is away")),
    );
    assert!(failed.is_err());
    assert!(
        schedules::request_run(
            &mut w.conn(),
            JobKind::ResetDaily,
            "k3",
            now,
            &alice(),
            queued
        )
        .unwrap()
        .1
    );
    let runs = audit::list(
        &mut w.conn(),
        &filter,
        PageRequest {
            limit: 50,
            cursor: None,
        },
    )
    .unwrap()
    .items;
    assert_eq!(runs.iter().filter(|e| e.action == "run").count(), 4);
    // prune_events drops requests as old as the events it drops.
    let later = now + JobSettings::default().event_retention + chrono::Duration::days(1);
    adbudget_db::jobs::run(
        &mut w.conn(),
        JobKind::PruneEvents,
        later,
        &JobSettings::default(),
    )
    .unwrap();
    assert!(
        schedules::request_run(
            &mut w.conn(),
            JobKind::ResetDaily,
            "k2",
            later,
            &alice(),
            queued
        )
        .unwrap()
        .1
    );
}

fn the_last_tick_never_moves_backwards(backend: Backend) {
    let w = world(backend);
    let now = utc("2026-12-01T10:00:00Z");
    schedules::seed(&mut w.conn(), &defaults("0 */15 * * * *"), now).unwrap();
    let kind = JobKind::ApplyDayparting;
    schedules::record_tick(&mut w.conn(), kind, utc("2026-12-01T10:01:00Z")).unwrap();
    schedules::record_tick(&mut w.conn(), kind, utc("2026-12-01T10:00:00Z")).unwrap();
    let view = schedules::get(&mut w.conn(), kind).unwrap().view(now, None);
    assert_eq!(view.last_tick, Some(utc("2026-12-01T10:01:00Z")));
    // A newer tick known elsewhere (Redis) wins.
    let view = schedules::get(&mut w.conn(), kind)
        .unwrap()
        .view(now, Some(utc("2026-12-01T10:02:00Z")));
    assert_eq!(view.last_tick, Some(utc("2026-12-01T10:02:00Z")));
}
