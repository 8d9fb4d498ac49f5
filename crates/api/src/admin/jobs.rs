//! `/jobs`: the job monitor, for the same logged-in users as the admin panel. Numbers come from
//! Redis directly (apalis-board's readers are broken against apalis-redis 1.0; see STACK-NOTES).

use actix_web::web;
use adbudget_core::jobs::JobKind;
use adbudget_queue::stats;
use maud::html;

use super::session::AdminUser;
use super::view::{csrf, page, time};
use super::{AdminError, Form, PageResult, check_csrf, html_page, see_other};
use crate::access::ToRunJobs;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn monitor(
    user: AdminUser,
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> PageResult {
    let now = chrono::Utc::now();
    let manages = user.may(adbudget_core::access::Action::RunJobs);
    let Some(jobs) = &state.jobs else {
        return Ok(html_page(page(
            "Jobs",
            "Jobs",
            Some(super::view::Header {
                username: &user.username,
                csrf: &user.session.csrf,
                administers: user.may(adbudget_core::access::Action::Administer),
            }),
            html! {
                h1 { "Jobs" }
                div.flash { "This process runs its jobs in process (standalone mode): there is no Redis queue to show." }
            },
        )));
    };
    let mut conn = jobs.redis.clone();
    let unavailable =
        |e: redis::RedisError| AdminError(ApiError::Unavailable(anyhow::anyhow!("Redis: {e}")));
    let overview = stats::overview(&mut conn, &jobs.prefix, &jobs.schedules, now)
        .await
        .map_err(unavailable)?;
    let recent = stats::recent_jobs(&mut conn, &jobs.prefix, 20)
        .await
        .map_err(unavailable)?;
    Ok(html_page(page(
        "Jobs",
        "Jobs",
        Some(super::view::Header {
            username: &user.username,
            csrf: &user.session.csrf,
            administers: user.may(adbudget_core::access::Action::Administer),
        }),
        html! {
            h1 { "Jobs" }
            @if let Some(m) = query.get("done") { div.flash { (m) } }
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
            h2 { "Schedules" }
            table #schedules {
                thead { tr { th { "Job" } th { "Cron (UTC, with seconds)" } th { "Last tick" } th { "Next tick" } } }
                tbody {
                    @for s in &overview.schedules {
                        tr data-schedule=(s.name) {
                            td { (s.name) } td { code { (s.cron) } }
                            td { (s.last_tick.map(time).unwrap_or_else(|| "never".into())) }
                            td { (s.next_tick.map(time).unwrap_or_default()) }
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
                thead { tr { th { "Job" } th { "State" } th { "Arguments" } th.num { "Attempts" } th { "Finished" } th.num { "ms" } th { "Result or error" } th {} } }
                tbody {
                    @for j in &recent {
                        tr data-task=(j.id) {
                            td { (j.job) }
                            td { @match j.state.as_str() { "dead" => span.badge.paused { "dead" }, "done" => span.badge.active { "done" }, other => span.badge.reason { (other) } } }
                            td { code { (j.args) } }
                            td.num { (j.attempts) }
                            td { (j.done_at.map(time).unwrap_or_default()) }
                            td.num { (j.duration_ms.map(|d| d.to_string()).unwrap_or_default()) }
                            td.muted { (j.result.clone().unwrap_or_default()) }
                            td {
                                @if j.state == "dead" && manages {
                                    form.inline method="post" action={ "/jobs/" (j.job) "/" (j.id) "/retry" } { (csrf(&user.session.csrf)) button type="submit" { "Retry" } }
                                }
                                @if j.state != "done" && manages {
                                    form.inline method="post" action={ "/jobs/" (j.job) "/" (j.id) "/discard" } { (csrf(&user.session.csrf)) button.danger type="submit" { "Discard" } }
                                }
                            }
                        }
                    }
                }
            }
        },
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
    let kind = JobKind::from_name(&job).ok_or_else(|| {
        AdminError(ApiError::NotFound {
            what: "job".into(),
            field: None,
        })
    })?;
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
    Ok(see_other(&format!(
        "/jobs?done={}",
        url::form_urlencoded::byte_serialize(message.as_bytes()).collect::<String>()
    )))
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
