//! The admin panel (`/admin`) and job monitor (`/jobs`): server-rendered pages behind a login,
//! the successors of the Django admin and Flower. Forms go through the same request types and
//! validation as the API.

pub mod chart;
pub mod jobs;
pub mod pages;
pub mod session;
pub mod view;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::Key;
use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, dev::Payload, web,
};
use maud::html;

use crate::error::ApiError;
use session::AdminUser;

/// What the admin pages share besides the database.
pub struct AdminState {
    /// Signs session cookies.
    pub key: Key,
    /// Session cookies are `Secure` and `__Host-` (`ADBUDGET_PUBLIC_URL` is https).
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` names the client (`ADBUDGET_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Checks passwords on threads of its own (see [`PasswordChecker`]).
    pub passwords: PasswordChecker,
}

/// Password checks, [`CONCURRENT_HASHES`] at a time, on as many threads of their own, each
/// reusing its argon2 memory (19 MiB; see `users::password_matches_in`). Run on the shared
/// blocking pool, each check allocated its own and the process kept them: a login flood grew it
/// by gigabytes. Here a flood costs that many checks' memory, and waits its turn (up to
/// [`HASH_WAIT`], then 503) instead of taking the threads that serve the database.
pub struct PasswordChecker {
    slots: tokio::sync::Semaphore,
    jobs: crossbeam_channel::Sender<PasswordJob>,
}

type PasswordJob = (Option<String>, String, tokio::sync::oneshot::Sender<bool>);

/// How long a login waits for a free password check before it is answered 503.
pub const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl PasswordChecker {
    fn start() -> Self {
        // Bounded: a check whose caller went away (its slot freed with it) may still wait here;
        // the threads skip those, and a full queue is a 503.
        let (jobs, rx) = crossbeam_channel::bounded::<PasswordJob>(4 * CONCURRENT_HASHES);
        for n in 0..CONCURRENT_HASHES {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    for (hash, password, reply) in rx {
                        if reply.is_closed() {
                            continue;
                        }
                        let matches = adbudget_db::repo::users::password_matches_in(
                            hash.as_deref(),
                            &password,
                            &mut memory,
                        );
                        let _ = reply.send(matches);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-check thread");
            }
        }
        PasswordChecker {
            slots: tokio::sync::Semaphore::new(CONCURRENT_HASHES),
            jobs,
        }
    }

    /// Whether `password` matches `hash` (`None`: no such user; the check takes as long).
    pub async fn check(&self, hash: Option<String>, password: String) -> Result<bool, ApiError> {
        let busy = || ApiError::Unavailable(anyhow::anyhow!("too many logins at once"));
        let _slot = tokio::time::timeout(HASH_WAIT, self.slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send((hash, password, reply))
            .map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => busy(),
                crossbeam_channel::TrySendError::Disconnected(_) => {
                    ApiError::Internal(anyhow::anyhow!("the password checkers stopped"))
                }
            })?;
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a password check was dropped")))
    }
}

/// Password checks at once, per process.
pub const CONCURRENT_HASHES: usize = 2;

impl AdminState {
    /// From `ADBUDGET_SECRET_KEY`, or a key of this process's own (sessions end at restart).
    pub fn new(secret: Option<&str>) -> Self {
        let key = match secret {
            Some(s) => Key::derive_from(s.as_bytes()),
            None => {
                tracing::warn!(
                    "ADBUDGET_SECRET_KEY is not set: admin sessions end when this process restarts and do not work across replicas"
                );
                Key::generate()
            }
        };
        // Made now rather than at the first login with an unknown name (see users::dummy_hash).
        let _ = adbudget_db::repo::users::dummy_hash();
        AdminState {
            key,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            passwords: PasswordChecker::start(),
        }
    }

    /// As configured: key, public URL and trusted proxies.
    pub fn from_settings(settings: &adbudget_core::config::Settings) -> Self {
        if settings.public_url.is_none() {
            tracing::warn!(
                "ADBUDGET_PUBLIC_URL is not set: admin session cookies are not marked Secure (set it to the https:// address users open)"
            );
        }
        AdminState {
            secure_cookies: settings
                .public_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https"),
            trusted_proxies: settings.trusted_proxies.clone(),
            ..Self::new(settings.secret_key.as_deref())
        }
    }

    /// The client's address: the TCP peer's, unless the peer is a trusted proxy; then the last
    /// address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, req: &HttpRequest) -> String {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return "unknown".to_owned();
        };
        let trusted = |ip: &std::net::IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer.to_string();
        }
        // Every entry of every X-Forwarded-For line, in order; walked from the right (the entries a
        // trusted proxy appended), the first that is not a trusted proxy is the client, as it is
        // written: an entry is never skipped, so none to its left can be slipped in.
        let entries: Vec<String> = req
            .headers()
            .get_all("x-forwarded-for")
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        for entry in entries.iter().rev() {
            let ip = entry
                .parse::<std::net::IpAddr>()
                .ok()
                .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()));
            match ip {
                Some(ip) if trusted(&ip) => continue,
                Some(ip) => return ip.to_string(),
                None => return entry.chars().take(64).collect(),
            }
        }
        peer.to_string()
    }
}

/// The only scripts the admin pages run: two confirmations, allowed by hash in the CSP.
const INLINE_HANDLERS: [&str; 2] = [view::CONFIRM_BRAND_DELETE, view::CONFIRM_CAMPAIGN_DELETE];

/// The `Content-Security-Policy` of the admin pages: nothing from elsewhere, no framing, forms
/// only to this site, styles inline (the pages carry their own), scripts only the handlers above.
pub fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hashes: Vec<String> = INLINE_HANDLERS
        .iter()
        .map(|h| {
            let digest = sha2::Sha256::digest(h.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
         script-src 'unsafe-hashes' {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        hashes.join(" ")
    )
}

/// Adds the security headers of SPEC §12 to every response (admin pages, job monitor, API).
pub async fn security_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{self, HeaderValue};
    static CSP: std::sync::OnceLock<Option<HeaderValue>> = std::sync::OnceLock::new();
    // On every response, not only the admin paths': actix routes on the percent-decoded path, so
    // a test on `req.path()` could be walked around (`/%61dmin/…`).
    let mut resp = next.call(req).await?;
    // A session whose time of last request moved on (see `session::AdminUser`) is written back,
    // unless the handler set the session cookie itself (login, logout).
    let refreshed = resp
        .request()
        .extensions()
        .get::<session::RefreshedSession>()
        .cloned();
    if let Some(session::RefreshedSession(session)) = refreshed {
        let sets_cookie = resp
            .response()
            .cookies()
            .any(|c| c.name() == session::COOKIE || c.name() == session::SECURE_COOKIE);
        let request = resp.request().clone();
        let cookie = request
            .app_data::<web::Data<AdminState>>()
            .and_then(|admin| session.cookie(&request, &admin.key));
        if let (false, Some(cookie)) = (sets_cookie, cookie) {
            let _ = resp.response_mut().add_cookie(&cookie);
        }
    }
    {
        let headers = resp.headers_mut();
        if let Some(csp) =
            CSP.get_or_init(|| HeaderValue::from_str(&content_security_policy()).ok())
        {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(resp)
}

/// Every admin route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use pages::*;
    cfg.route("/admin", web::get().to(dashboard))
        .route("/admin/", web::get().to(dashboard))
        .route("/admin/login", web::get().to(login_form))
        .route("/admin/login", web::post().to(login))
        .route("/admin/logout", web::post().to(logout))
        .route("/admin/brands", web::get().to(brand_list))
        .route("/admin/brands/new", web::get().to(brand_new))
        .route("/admin/brands/new", web::post().to(brand_create))
        .route("/admin/brands/{id}", web::get().to(brand_edit))
        .route("/admin/brands/{id}", web::post().to(brand_update))
        .route("/admin/brands/{id}/delete", web::post().to(brand_delete))
        .route("/admin/campaigns", web::get().to(campaign_list))
        .route("/admin/campaigns/bulk", web::post().to(campaign_bulk))
        .route("/admin/campaigns/new", web::get().to(campaign_new))
        .route("/admin/campaigns/new", web::post().to(campaign_create))
        .route("/admin/campaigns/{id}", web::get().to(campaign_page))
        .route("/admin/campaigns/{id}", web::post().to(campaign_update))
        .route(
            "/admin/campaigns/{id}/dayparting",
            web::post().to(campaign_dayparting),
        )
        .route(
            "/admin/campaigns/{id}/pause",
            web::post().to(campaign_pause),
        )
        .route(
            "/admin/campaigns/{id}/resume",
            web::post().to(campaign_resume),
        )
        .route(
            "/admin/campaigns/{id}/delete",
            web::post().to(campaign_delete),
        )
        .route("/admin/spend", web::get().to(spend_list))
        .route("/admin/spend/{id}/reverse", web::post().to(spend_reverse))
        .route("/admin/brands/{id}/history", web::get().to(brand_history))
        .route(
            "/admin/campaigns/{id}/history",
            web::get().to(campaign_history),
        )
        .route("/admin/audit", web::get().to(audit_list))
        .route("/admin/users", web::get().to(user_list))
        .route("/admin/users", web::post().to(user_create))
        .route("/admin/users/{id}/role", web::post().to(user_role))
        .route("/admin/users/{id}/active", web::post().to(user_active))
        .route("/admin/users/{id}/password", web::post().to(user_password))
        .route("/admin/tokens", web::get().to(token_list))
        .route("/admin/tokens", web::post().to(token_create))
        .route("/admin/tokens/{id}/revoke", web::post().to(token_revoke))
        .route("/admin/webhooks", web::get().to(webhook_list))
        .route("/admin/webhooks", web::post().to(webhook_create))
        .route("/admin/webhooks/{id}", web::get().to(webhook_page))
        .route("/admin/webhooks/{id}/test", web::post().to(webhook_test))
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
            web::post().to(webhook_redeliver),
        )
        .route("/admin/events", web::get().to(event_list))
        .route("/jobs", web::get().to(jobs::monitor))
        .route("/jobs/{job}/run", web::post().to(jobs::run))
        .route("/jobs/{job}/schedule", web::post().to(jobs::save_schedule))
        .route("/jobs/{job}/{task}/retry", web::post().to(jobs::retry))
        .route("/jobs/{job}/{task}/discard", web::post().to(jobs::discard));
}

/// An urlencoded form body, fields in order (checkbox lists repeat a name).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl FromRequest for Form {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = crate::extract::read_body(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(AdminError)?;
            Ok(Form(
                url::form_urlencoded::parse(&bytes).into_owned().collect(),
            ))
        })
    }
}

/// An error shown as a page rather than as JSON.
#[derive(Debug)]
pub struct AdminError(pub ApiError);

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> Self {
        AdminError(e)
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status_code()
    }
    fn error_response(&self) -> HttpResponse {
        // Log what the API would log, then show a page.
        let _ = self.0.error_response();
        let status = self.0.status_code();
        let message = match status.as_u16() {
            500 => "Something went wrong on our side; it has been logged.".to_owned(),
            403 => "This form has expired or did not come from this site (missing or wrong CSRF token). Reload the page and try again.".to_owned(),
            _ => self.0.to_string(),
        };
        let body = view::page(
            status.canonical_reason().unwrap_or("Error"),
            "",
            None,
            html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                div.flash.bad { (message) }
                p { a href="/admin" { "Back to the dashboard" } }
            },
        );
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body.into_string())
    }
}

pub type PageResult = Result<HttpResponse, AdminError>;

/// Refuses a form whose CSRF token is not the session's.
pub fn check_csrf<P>(user: &AdminUser<P>, form: &Form) -> Result<(), AdminError> {
    if user.session.csrf_matches(form.get("csrf")) {
        Ok(())
    } else {
        Err(AdminError(ApiError::forbidden(
            "the form is stale or forged (CSRF token mismatch); reload the page",
        )))
    }
}

/// A redirect after a successful POST.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", location))
        .finish()
}

pub fn html_page(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// Validation errors by field, from an API error (everything else passes through).
pub fn field_errors(e: ApiError) -> Result<HashMap<String, String>, AdminError> {
    match e {
        ApiError::Invalid {
            field: Some(field),
            message,
        } => Ok(HashMap::from([(field, message)])),
        ApiError::Conflict {
            field: Some(field),
            message,
        } => Ok(HashMap::from([(field, message)])),
        ApiError::NotFound {
            field: Some(field),
            what,
        } => Ok(HashMap::from([(field, format!("no such {what}"))])),
        other => Err(AdminError(other)),
    }
}
