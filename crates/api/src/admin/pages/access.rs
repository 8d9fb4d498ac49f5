//! Who may do what, and who did what (SPEC §11): users and API tokens (admins only), the audit
//! trail, and the "History" page of each brand and campaign.

use actix_web::{HttpResponse, web};
use adbudget_core::access::{ActorKind, Brands, Role, Scope};
use adbudget_core::audit::AuditEntry;
use adbudget_core::forms::now;
use adbudget_db::repo::audit::{self, AuditFilter};
use adbudget_db::repo::tokens::{self, NewToken};
use adbudget_db::repo::users::{self, NewUser};
use adbudget_db::repo::{PageRequest, brands, campaigns};
use maud::{Markup, html};

use crate::access::{Permission, ToAdminister};
use crate::admin::session::{AdminUser, Notice, notice};
use crate::admin::view::{self, csrf};
use crate::admin::{AdminError, Form, PageResult, check_csrf};
use crate::error::ApiError;
use crate::state::AppState;

use super::{Query, num, q, shell};

/// A list of brand ids as typed in a form (`3, 7`); empty: all brands.
fn brand_ids(text: &str, field: &str) -> Result<Option<Vec<i64>>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid(field, format!("{s:?} is not a brand id")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn brands_text(brands: &Option<Vec<i64>>) -> String {
    match brands {
        None => "all".to_owned(),
        Some(ids) if ids.is_empty() => "none (its brands were deleted)".to_owned(),
        Some(ids) => ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn error_box(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { div.flash.bad role="alert" { (e) } } }
}

async fn users_page(
    user: &AdminUser<ToAdminister>,
    state: &AppState,
    error: Option<&str>,
) -> PageResult {
    let list = state.db(users::list).await?;
    let token = &user.session.csrf;
    Ok(shell(
        user,
        "Users",
        "Users",
        html! {
            h1 { "Users" }
            (error_box(error))
            table #users {
                thead { tr { th { "Username" } th { "Role and brands" } th { "State" } th { "Last login" } th { "Password" } } }
                tbody {
                    @for u in &list {
                        tr data-user=(u.username) {
                            td { (u.username) }
                            td {
                                form.inline method="post" action={ "/admin/users/" (u.id) "/role" } {
                                    (csrf(token))
                                    select name="role" aria-label={ "role of " (u.username) } {
                                        @for r in Role::ALL { option value=(r.as_str()) selected[r == u.role] { (r.as_str()) } }
                                    }
                                    input type="text" name="brands" size="10" value=(u.brands.as_ref().map(|_| brands_text(&u.brands)).unwrap_or_default()) placeholder="all brands" aria-label={ "brands of " (u.username) };
                                    button.secondary type="submit" { "Save" }
                                }
                            }
                            td {
                                form.inline method="post" action={ "/admin/users/" (u.id) "/active" } {
                                    (csrf(token))
                                    @if u.is_active {
                                        input type="hidden" name="active" value="no";
                                        "enabled " button.danger type="submit" { "Disable" }
                                    } @else {
                                        input type="hidden" name="active" value="yes";
                                        "disabled " button.secondary type="submit" { "Enable" }
                                    }
                                }
                            }
                            td.muted { @if let Some(t) = u.last_login_at { (view::time(t)) } }
                            td {
                                form.inline method="post" action={ "/admin/users/" (u.id) "/password" } {
                                    (csrf(token))
                                    input type="password" name="password" size="12" autocomplete="new-password" aria-label={ "new password of " (u.username) };
                                    button.secondary type="submit" { "Set" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "New user" }
            form.panel #new-user method="post" action="/admin/users" style="max-width:520px" {
                (csrf(token))
                div.field { label for="username" { "Username" } input #username name="username" required; }
                div.field { label for="password" { "Password (at least 8 characters)" } input #password type="password" name="password" autocomplete="new-password" required; }
                div.field { label for="role" { "Role" }
                    select #role name="role" { @for r in Role::ALL { option value=(r.as_str()) selected[r == Role::Viewer] { (r.as_str()) } } }
                }
                div.field { label for="brands" { "Brands (ids, comma-separated; empty: all)" } input #brands name="brands"; }
                button type="submit" { "Create user" }
            }
        },
    ))
}

pub async fn user_list(user: AdminUser<ToAdminister>, state: web::Data<AppState>) -> PageResult {
    users_page(&user, &state, None).await
}

/// Runs a user change; a refused one shows the users page again with the reason.
async fn user_change<F>(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    form: &Form,
    done: Notice,
    change: F,
) -> PageResult
where
    F: FnOnce(&mut adbudget_db::DbConnection) -> adbudget_db::error::DomainResult<()>
        + Send
        + 'static,
{
    check_csrf(&user, form)?;
    match state.db(change).await {
        Ok(()) => Ok(notice("/admin/users", done)),
        Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => Err(AdminError(e)),
        Err(e) => {
            let message = match &e {
                ApiError::Invalid {
                    field: Some(f),
                    message,
                } => format!("{f}: {message}"),
                other => other.to_string(),
            };
            let mut page = users_page(&user, &state, Some(&message)).await?;
            *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
    }
}

pub async fn user_create(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    let role = Role::parse(&form.text("role"));
    let brands = brand_ids(&form.text("brands"), "brands");
    let (username, password, author) =
        (form.text("username"), form.text("password"), user.author());
    user_change(user, state, &form, Notice::UserCreated, move |conn| {
        let role = role.ok_or_else(|| {
            adbudget_db::error::DomainError::invalid("role", "must be admin, operator or viewer")
        })?;
        let brands = brands
            .map_err(|e| adbudget_db::error::DomainError::invalid("brands", e.to_string()))?;
        let new = NewUser {
            username,
            password,
            role,
            brands,
        };
        users::create(conn, &new, now(), &author).map(|_| ())
    })
    .await
}

pub async fn user_role(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    let id = id.into_inner();
    let role = Role::parse(&form.text("role"));
    let brands = brand_ids(&form.text("brands"), "brands");
    let author = user.author();
    user_change(user, state, &form, Notice::UserSaved, move |conn| {
        let role = role.ok_or_else(|| {
            adbudget_db::error::DomainError::invalid("role", "must be admin, operator or viewer")
        })?;
        let brands = brands
            .map_err(|e| adbudget_db::error::DomainError::invalid("brands", e.to_string()))?;
        let name = users::username(conn, id)?;
        users::set_role(conn, &name, role, brands, now(), &author)
    })
    .await
}

pub async fn user_active(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    let id = id.into_inner();
    let active = form.text("active") == "yes";
    if !active && id == user.id {
        check_csrf(&user, &form)?;
        return users_page(&user, &state, Some("You cannot disable yourself.")).await;
    }
    let author = user.author();
    user_change(user, state, &form, Notice::UserSaved, move |conn| {
        let name = users::username(conn, id)?;
        users::set_active(conn, &name, active, now(), &author)
    })
    .await
}

pub async fn user_password(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    let id = id.into_inner();
    let (password, author) = (form.text("password"), user.author());
    user_change(user, state, &form, Notice::UserSaved, move |conn| {
        let name = users::username(conn, id)?;
        users::set_password(conn, &name, &password, now(), &author)
    })
    .await
}

async fn tokens_page(
    user: &AdminUser<ToAdminister>,
    state: &AppState,
    created: Option<(&str, &str)>,
    error: Option<&str>,
) -> Result<HttpResponse, AdminError> {
    let list = state.db(tokens::list).await?;
    let token = &user.session.csrf;
    Ok(shell(
        user,
        "API tokens",
        "Tokens",
        html! {
            h1 { "API tokens" }
            (error_box(error))
            @if let Some((name, secret)) = created {
                div.flash #new-token role="status" {
                    "Token " strong { (name) } " created. Copy it now: it is shown this once. "
                    code #token-secret { (secret) }
                }
            }
            table #tokens {
                thead { tr { th { "Name" } th { "Scope" } th { "Brands" } th { "Created" } th { "Expires" } th { "Last used" } th {} } }
                tbody {
                    @for t in &list {
                        tr data-token=(t.name) {
                            td { (t.name) " " span.muted { (t.prefix) "…" } }
                            td { (t.scope) }
                            td { (brands_text(&t.brands)) }
                            td.muted { (view::time(t.created_at)) }
                            td.muted { @if let Some(e) = t.expires_at { (view::time(e)) } @else { "never" } }
                            td.muted { @if let Some(u) = t.last_used_at { (view::time(u)) } @else { "never" } }
                            td {
                                @if let Some(r) = t.revoked_at { span.muted { "revoked " (view::time(r)) } }
                                @else {
                                    form.inline method="post" action={ "/admin/tokens/" (t.id) "/revoke" } {
                                        (csrf(token)) button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "New token" }
            form.panel #new-token-form method="post" action="/admin/tokens" style="max-width:520px" {
                (csrf(token))
                div.field { label for="name" { "Name" } input #name name="name" required; }
                div.field { label for="scope" { "Scope" }
                    select #scope name="scope" { @for s in Scope::ALL { option value=(s.as_str()) selected[s == Scope::Ingest] { (s.as_str()) } } }
                }
                div.field { label for="brands" { "Brands (ids, comma-separated; empty: all)" } input #brands name="brands"; }
                div.field { label for="expires_days" { "Expires after (days; empty: never)" } input #expires_days name="expires_days" size="6"; }
                button type="submit" { "Create token" }
            }
        },
    ))
}

pub async fn token_list(user: AdminUser<ToAdminister>, state: web::Data<AppState>) -> PageResult {
    tokens_page(&user, &state, None, None).await
}

pub async fn token_create(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let attempt: Result<(String, String), ApiError> = async {
        let scope = Scope::parse(&form.text("scope"))
            .ok_or_else(|| ApiError::invalid("scope", "must be read, ingest or admin"))?;
        let brands = brand_ids(&form.text("brands"), "brands")?;
        let days = form.text("expires_days");
        let expires_at = if days.trim().is_empty() {
            None
        } else {
            let days: i64 = days
                .trim()
                .parse()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| ApiError::invalid("expires_days", "must be 1 to 3650 days"))?;
            Some(now() + chrono::Duration::days(days))
        };
        let new = NewToken {
            name: form.text("name"),
            scope,
            brands,
            expires_at,
        };
        let author = user.author();
        let (view, secret) = state
            .db(move |conn| tokens::create(conn, &new, now(), &author))
            .await?;
        Ok((view.name, secret))
    }
    .await;
    match attempt {
        Ok((name, secret)) => tokens_page(&user, &state, Some((&name, &secret)), None).await,
        Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => Err(AdminError(e)),
        Err(e) => {
            let message = e.to_string();
            let mut page = tokens_page(&user, &state, None, Some(&message)).await?;
            *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
    }
}

pub async fn token_revoke(
    user: AdminUser<ToAdminister>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    check_csrf(&user, &form)?;
    let (id, author) = (id.into_inner(), user.author());
    state
        .db(move |conn| tokens::revoke(conn, tokens::TokenRef::Id(id), now(), &author))
        .await?;
    Ok(notice("/admin/tokens", Notice::TokenRevoked))
}

/// The audit entries as a table: when, who, what, and each change.
fn audit_table(entries: &[AuditEntry]) -> Markup {
    let value = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "—".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    html! {
        table #audit {
            thead { tr { th { "When" } th { "Who" } th { "Object" } th { "Action" } th { "Changes" } th { "Request" } } }
            tbody {
                @for e in entries {
                    tr data-entry=(e.id) {
                        td { (view::time(e.at)) }
                        td { (e.actor.kind.as_str()) ":" (e.actor.name) }
                        td { (e.object_type) " #" (e.object_id) }
                        td { (e.action) }
                        td { ul.changes { @for (field, c) in &e.changes {
                            li { strong { (field) } ": " (value(&c.old)) " → " (value(&c.new)) }
                        } } }
                        td.muted { (e.request_id.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// What an audit page shows: its title, which entries, its address (for the next page's link,
/// with the parameters to keep) and what goes above the table.
struct AuditPage<'a> {
    title: String,
    filter: AuditFilter,
    base: String,
    keep: Vec<(&'a str, String)>,
    header: Markup,
}

/// A page of the audit trail, newest first, with a link to the next.
async fn audit_page<P: Permission>(
    user: &AdminUser<P>,
    state: &AppState,
    query: &Query,
    view: AuditPage<'_>,
) -> PageResult {
    let page = PageRequest {
        limit: 50,
        cursor: num(query, "cursor"),
    };
    let filter = view.filter;
    let entries = state
        .db(move |conn| audit::list(conn, &filter, page))
        .await?;
    let next = entries.next_cursor.as_ref().map(|c| {
        let mut params = view.keep.clone();
        params.push(("cursor", c.clone()));
        view::url_with(&view.base, &params)
    });
    Ok(shell(
        user,
        &view.title,
        "Audit",
        html! {
            h1 { (view.title) }
            (view.header)
            (audit_table(&entries.items))
            @if let Some(next) = next { p { a href=(next) { "Older entries" } } }
        },
    ))
}

fn parse_time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// The global audit page, filtered by actor, object type and time.
pub async fn audit_list(user: AdminUser, state: web::Data<AppState>, query: Query) -> PageResult {
    // Only the known types (anything else, a NUL included, reads as all).
    let object = Some(q(&query, "object"))
        .filter(|o| crate::routes::audit::OBJECT_TYPES.contains(o))
        .unwrap_or_default()
        .to_owned();
    // Without control characters: PostgreSQL text cannot hold a NUL, and no name has one.
    let actor: String = q(&query, "actor")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let (actor_kind, actor_name) = match actor.split_once(':') {
        Some((k, n)) if ActorKind::parse(k).is_some() => (ActorKind::parse(k), Some(n.to_owned())),
        _ if actor.trim().is_empty() => (None, None),
        _ => (None, Some(actor.trim().to_owned())),
    };
    let filter = AuditFilter {
        object_type: Some(object.clone()).filter(|o| !o.is_empty()),
        actor_kind,
        actor_name,
        from: parse_time(q(&query, "from")),
        to: parse_time(q(&query, "to")),
        visible: user.principal.brands.clone(),
        ..AuditFilter::default()
    };
    let keep = vec![
        ("object", object.clone()),
        ("actor", actor.clone()),
        ("from", q(&query, "from").to_owned()),
        ("to", q(&query, "to").to_owned()),
    ];
    let form = html! {
        form.toolbar method="get" action="/admin/audit" {
            div { label for="actor" { "Actor" } input #actor name="actor" value=(actor) placeholder="name or user:name"; }
            div { label for="object" { "Object type" }
                select #object name="object" {
                    option value="" { "all" }
                    @for t in crate::routes::audit::OBJECT_TYPES { option value=(t) selected[object == t] { (t) } }
                }
            }
            div { label for="from" { "From (UTC)" } input #from type="datetime-local" name="from" value=(q(&query, "from")); }
            div { label for="to" { "To (UTC)" } input #to type="datetime-local" name="to" value=(q(&query, "to")); }
            button type="submit" { "Filter" }
        }
    };
    let view = AuditPage {
        title: "Audit trail".into(),
        filter,
        base: "/admin/audit".into(),
        keep,
        header: form,
    };
    audit_page(&user, &state, &query, view).await
}

/// A brand's history: every change to it, its campaigns and its spend, as the Django admin's
/// "History" of an object.
pub async fn brand_history(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: Query,
) -> PageResult {
    let id = id.into_inner();
    user.brand(id, "brand")?;
    let brand = state.db(move |conn| brands::get(conn, id, now())).await?;
    let filter = AuditFilter {
        brand_id: Some(id),
        visible: user.principal.brands.clone(),
        ..AuditFilter::default()
    };
    let base = format!("/admin/brands/{id}/history");
    let back = html! { p { a href={ "/admin/brands/" (id) } { "Back to " (brand.name) } } };
    let view = AuditPage {
        title: format!("History of {}", brand.name),
        filter,
        base,
        keep: vec![],
        header: back,
    };
    audit_page(&user, &state, &query, view).await
}

/// A campaign's history: every change to it (its settings, pauses, schedule).
pub async fn campaign_history(
    user: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: Query,
) -> PageResult {
    let id = id.into_inner();
    user.campaign(&state, id).await?;
    let campaign = state
        .db(move |conn| campaigns::get(conn, id, now()))
        .await?;
    let filter = AuditFilter {
        object_type: Some("campaign".into()),
        object_id: Some(id),
        visible: Brands::All,
        ..AuditFilter::default()
    };
    let base = format!("/admin/campaigns/{id}/history");
    let back = html! { p { a href={ "/admin/campaigns/" (id) } { "Back to " (campaign.name) } } };
    let view = AuditPage {
        title: format!("History of {}", campaign.name),
        filter,
        base,
        keep: vec![],
        header: back,
    };
    audit_page(&user, &state, &query, view).await
}
