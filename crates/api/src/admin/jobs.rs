//! `/jobs`: the job monitor, for the same logged-in users as the admin panel. Numbers come from
//! Redis directly (apalis-board's readers are broken against apalis-redis 1.0; see STACK-NOTES).

use actix_web::web;
use adbudget_core::jobs::{JobKind, describe_cron, normalize_cron};
use adbudget_db::repo::schedules::{self, ScheduleChanges};
use adbudget_queue::stats;
use maud::html;

use super::session::AdminUser;
use super::view::{csrf, page, time};
use super::{AdminError, Form, PageResult, check_csrf, html_page, see_other};
use crate::access::{ToEditSchedules, ToRunJobs};
use crate::error::ApiError;
use crate::routes::jobs::{idempotency_key, run_job, schedule_views};
use crate::state::AppState;

/// A schedule edit that did not validate: the job, what was typed, and why.
struct ScheduleError {
    job: String,
    cron: String,
    message: String,
}

pub async fn monitor(
    user: AdminUser,
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> PageResult {
    render(&user, &state, query.get("done").map(String::as_str), None).await
}

async fn render(
    user: &AdminUser<impl crate::access::Permission>,
    state: &AppState,
    done: Option<&str>,
    invalid: Option<ScheduleError>,
) -> PageResult {
    let manages = user.may(adbudget_core::access::Action::RunJobs);
    let edits = user.may(adbudget_core::access::Action::EditSchedules);
    let schedules = schedule_views(state).await.map_err(AdminError)?;
    let manual = state.db(schedules::latest_runs).await.map_err(AdminError)?;
    let manual_run = |job: &str| {
        manual
            .iter()
            .find(|r| r.job == job)
            .map(|r| format!("{} by {}", time(r.requested_at.and_utc()), r.requested_by))
            .unwrap_or_else(|| "—".into())
    };
    let unavailable =
        |e: redis::RedisError| AdminError(ApiError::Unavailable(anyhow::anyhow!("Redis: {e}")));
    let queues = match &state.jobs {
        Some(jobs) => {
            let mut conn = jobs.redis.clone();
            let overview = stats::overview(&mut conn, &jobs.prefix, &schedules)
                .await
                .map_err(unavailable)?;
            let recent = stats::recent_jobs(&mut conn, &jobs.prefix, 20)
                .await
                .map_err(unavailable)?;
            Some((overview, recent))
        }
        None => None,
    };
    let csrf_token = &user.session.csrf;
    Ok(html_page(page(
        "Jobs",
        "Jobs",
        Some(super::view::Header {
            username: &user.username,
            csrf: csrf_token,
            administers: user.may(adbudget_core::access::Action::Administer),
        }),
        html! {
            h1 { "Jobs" }
            @if let Some(m) = done { div.flash { (m) } }
            @if let Some(e) = &invalid { div.flash.bad { "The schedule of " (e.job) " was not changed: cron " (e.message) } }
            h2 { "Schedules" }
            p.muted { "Stored in the database and followed by every beat within seconds. Times are UTC." }
            table #schedules {
                thead { tr { th { "Job" } th { "Runs" } th { "Cron (UTC, with seconds)" } th { "Enabled" } th { "Last tick" } th { "Next tick" } th { "Changed by" } th { "Last run by hand" } th {} } }
                tbody {
                    @for s in &schedules {
                        tr data-schedule=(s.job) {
                            td { (s.job) }
                            td.words { (s.description) }
                            td { code.cron { (s.cron) } }
                            td.enabled { @if s.enabled { span.badge.active { "enabled" } } @else { span.badge.paused { "disabled" } } }
                            td.last { (s.last_tick.map(time).unwrap_or_else(|| "never".into())) }
                            td.next { (s.next_tick.map(time).unwrap_or_else(|| "—".into())) }
                            td.muted { (s.updated_by.clone().unwrap_or_else(|| "(default)".into())) }
                            td.manual { (manual_run(&s.job)) }
                            td {
                                @if manages {
                                    form.inline.run method="post" action={ "/jobs/" (s.job) "/run" } {
                                        (csrf(csrf_token))
                                        // One run per click: a double click sends this key twice.
                                        input type="hidden" name="key" value=(uuid::Uuid::new_v4());
                                        button type="submit" name="run" { "Run now" }
                                    }
                                }
                            }
                        }
                        @if edits {
                            @let failed = invalid.as_ref().filter(|e| e.job == s.job);
                            tr.edit data-schedule-edit=(s.job) {
                                td colspan="9" {
                                    form.inline method="post" action={ "/jobs/" (s.job) "/schedule" } {
                                        (csrf(csrf_token))
                                        label { "Cron " input type="text" name="cron" size="24" value=(failed.map(|e| e.cron.as_str()).unwrap_or(&s.cron)) class=[failed.map(|_| "invalid")]; }
                                        " "
                                        label { input type="checkbox" name="enabled" value="true" checked[s.enabled]; " enabled" }
                                        " "
                                        button type="submit" name="save" { "Save" }
                                        @if let Some(e) = failed { div.error data-field="cron" { (e.message) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @match &queues {
                None => {
                    div.flash { "This process runs its jobs in process (standalone mode): there is no Redis queue to show." }
                }
                Some((overview, recent)) => {
                    h2 { "Queues" }
                    table #queues {
                        thead { tr { th { "Job" } th.num { "Pending" } th.num { "Running" } th.num { "Done" } th.num { "Failed" } th.num { "Dead" } th { "Last run" } } }
                        tbody {
                            @for q in &overview.queues {
                                tr data-queue=(q.name) {
                                    td { (q.name) }
                                    td.num.pending { (q.pending) } td.num.running { (q.running) } td.num.done { (q.done) }
                                    td.num.failed { (q.failed) } td.num.dead { (q.dead) }
                                    td.muted { (q.last_run_at.clone().unwrap_or_default()) " " (q.last_outcome.clone().unwrap_or_default()) " " (q.last_detail.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                    h2 { "Workers" }
                    table #workers {
                        thead { tr { th { "Worker" } th { "Job" } th { "Last heartbeat" } th { "State" } } }
                        tbody {
                            @for w in &overview.workers {
                                tr { td { (w.name) } td { (w.job) } td { (time(w.last_heartbeat)) }
                                     td { @if w.alive { span.badge.active { "alive" } } @else { span.badge.paused { "gone" } } } }
                            }
                        }
                    }
                    h2 { "Recent jobs" }
                    table #recent-jobs {
                        thead { tr { th { "Job" } th { "State" } th { "Trigger" } th { "Arguments" } th.num { "Attempts" } th { "Finished" } th.num { "ms" } th { "Result or error" } th {} } }
                        tbody {
                            @for j in recent {
                                tr data-task=(j.id) {
                                    td { (j.job) }
                                    td { @match j.state.as_str() { "dead" => span.badge.paused { "dead" }, "done" => span.badge.active { "done" }, other => span.badge.reason { (other) } } }
                                    td.trigger { (trigger(&j.args)) }
                                    td { code { (j.args) } }
                                    td.num { (j.attempts) }
                                    td { (j.done_at.map(time).unwrap_or_default()) }
                                    td.num { (j.duration_ms.map(|d| d.to_string()).unwrap_or_default()) }
                                    td.muted { (j.result.clone().unwrap_or_default()) }
                                    td {
                                        @if j.state == "dead" && manages {
                                            form.inline method="post" action={ "/jobs/" (j.job) "/" (j.id) "/retry" } { (csrf(csrf_token)) button type="submit" { "Retry" } }
                                        }
                                        @if j.state != "done" && manages {
                                            form.inline method="post" action={ "/jobs/" (j.job) "/" (j.id) "/discard" } { (csrf(csrf_token)) button.danger type="submit" { "Discard" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )))
}

/// "manual by alice (user)" for a run by hand, "schedule" for a tick (from the job's payload).
fn trigger(args: &str) -> String {
    let by = serde_json::from_str::<serde_json::Value>(args)
        .ok()
        .and_then(|v| v.get("run_by")?.as_str().map(str::to_owned));
    match by {
        Some(by) => format!("manual by {by}"),
        None => "schedule".to_owned(),
    }
}

fn job_kind(job: &str) -> Result<JobKind, AdminError> {
    crate::routes::jobs::job_kind(job).map_err(AdminError)
}

fn done(message: &str) -> actix_web::HttpResponse {
    see_other(&format!(
        "/jobs?done={}",
        url::form_urlencoded::byte_serialize(message.as_bytes()).collect::<String>()
    ))
}

/// "Run now": queued once per click (the form's key).
pub async fn run(
    user: AdminUser<ToRunJobs>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let kind = job_kind(&path)?;
    let key = idempotency_key(form.get("key"), "key").map_err(AdminError)?;
    let run = run_job(&state, kind, key, user.author())
        .await
        .map_err(AdminError)?;
    Ok(done(&if run.queued {
        format!(
            "{} queued by hand; it shows below as \"manual by {}\".",
            run.job, run.requested_by
        )
    } else {
        format!("{} was queued already by this click.", run.job)
    }))
}

/// Saves a schedule's cron and enabled state (admins only).
pub async fn save_schedule(
    user: AdminUser<ToEditSchedules>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let kind = job_kind(&path)?;
    let typed = form.get("cron").unwrap_or_default().to_owned();
    let cron = match normalize_cron(&typed) {
        Ok(cron) => cron,
        Err(message) => {
            let invalid = ScheduleError {
                job: kind.name().to_owned(),
                cron: typed,
                message,
            };
            let mut page = render(&user, &state, None, Some(invalid)).await?;
            *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(page);
        }
    };
    let changes = ScheduleChanges {
        cron: Some(cron),
        enabled: Some(form.get("enabled") == Some("true")),
    };
    let author = user.author();
    let saved = state
        .db(move |conn| schedules::update(conn, kind, &changes, chrono::Utc::now(), &author))
        .await
        .map_err(AdminError)?;
    Ok(done(&format!(
        "Schedule of {} saved: {} ({}), {}. Every beat follows it within seconds.",
        saved.job,
        saved.cron,
        describe_cron(&saved.cron),
        if saved.enabled { "enabled" } else { "disabled" }
    )))
}

async fn act(
    user: AdminUser<ToRunJobs>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: Form,
    retry: bool,
) -> PageResult {
    check_csrf(&user, &form)?;
    let (job, task) = path.into_inner();
    let kind = job_kind(&job)?;
    let jobs = state.jobs.as_ref().ok_or_else(|| {
        AdminError(ApiError::NotFound {
            what: "job queue".into(),
            field: None,
        })
    })?;
    let mut conn = jobs.redis.clone();
    let result = if retry {
        stats::retry(&mut conn, &jobs.prefix, kind, &task).await
    } else {
        stats::discard(&mut conn, &jobs.prefix, kind, &task).await
    };
    let found =
        result.map_err(|e| AdminError(ApiError::Unavailable(anyhow::anyhow!("Redis: {e}"))))?;
    if !found {
        return Err(AdminError(ApiError::NotFound {
            what: "dead or pending job".into(),
            field: None,
        }));
    }
    tracing::info!(job.name = %job, job.id = %task, user.name = %user.username, retry, "job monitor action");
    let message = if retry {
        "Job queued again."
    } else {
        "Job discarded."
    };
    Ok(done(message))
}

pub async fn retry(
    user: AdminUser<ToRunJobs>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: Form,
) -> PageResult {
    act(user, state, path, form, true).await
}

pub async fn discard(
    user: AdminUser<ToRunJobs>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: Form,
) -> PageResult {
    act(user, state, path, form, false).await
}
