//! Admin sessions in a signed cookie (HMAC, `HttpOnly`, `SameSite=Lax`; `Secure` and `__Host-`
//! when `ADBUDGET_PUBLIC_URL` is https) holding the user, a CSRF token, the user's session epoch,
//! an absolute expiry and the time of the last request. Every request checks, in the database,
//! that the user is still enabled and that the epoch is still theirs: logout, a password change
//! and disabling the user move the epoch on, which ends every session of theirs on every replica
//! at once (SPEC §11). A session also ends 30 minutes after its last request, and 12 hours after
//! login whatever happens.

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use std::marker::PhantomData;

use actix_web::HttpMessage;
use adbudget_core::access::{Action, Author, Principal};

use super::AdminState;
use crate::access::{Permission, ToRead};
use crate::error::ApiError;
use crate::state::AppState;
use adbudget_db::repo::users;

pub const COOKIE: &str = "adbudget_session";
/// The cookie's name behind https (`ADBUDGET_PUBLIC_URL`): browsers accept a `__Host-` cookie only
/// when it is `Secure`, for `/`, and for this host alone, so no subdomain can plant one.
pub const SECURE_COOKIE: &str = "__Host-adbudget_session";
/// A session ends this long after login, whatever happens.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// A session ends this long after its last request.
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::minutes(30);
/// The cookie's time of last request is rewritten at most this often (a cookie per response
/// would be a signature per response for nothing).
const SEEN_GRANULARITY: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The logged-in user, if any.
    pub user: Option<(i64, String)>,
    pub csrf: String,
    /// Unix seconds after which the login no longer counts.
    pub expires: i64,
    /// The user's session epoch at login: the session ends when the user's moves on.
    pub epoch: i64,
    /// Unix seconds of the last request (to within a minute).
    pub seen: i64,
}

fn token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

impl Session {
    pub fn anonymous() -> Self {
        Session {
            user: None,
            csrf: token(),
            expires: 0,
            epoch: 0,
            seen: 0,
        }
    }

    pub fn login(user_id: i64, username: String, epoch: i64) -> Self {
        // A fresh CSRF token at login: nothing learned before it is worth anything after.
        let now = chrono::Utc::now();
        Session {
            user: Some((user_id, username)),
            csrf: token(),
            expires: (now + SESSION_LIFETIME).timestamp(),
            epoch,
            seen: now.timestamp(),
        }
    }

    /// The user, unless the session expired or was idle too long (the epoch is checked against
    /// the database by [`AdminUser`]).
    pub fn logged_in(&self) -> Option<&(i64, String)> {
        let now = chrono::Utc::now().timestamp();
        self.user
            .as_ref()
            .filter(|_| now < self.expires && now - self.seen < SESSION_IDLE.num_seconds())
    }

    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| p.as_bytes().ct_eq(self.csrf.as_bytes()).into())
    }

    /// Reads the session from the request's signed cookie (a forged or stale one reads as none).
    pub fn from_request(req: &HttpRequest, key: &Key) -> Option<Session> {
        let name = cookie_name(req);
        let raw = req.cookie(name)?;
        let mut jar = CookieJar::new();
        jar.add_original(raw);
        let verified = jar.signed(key).get(name)?;
        serde_json::from_str(verified.value()).ok()
    }

    /// Writes the session into the response as a signed cookie: `Secure` (and `__Host-`) when
    /// the configured public URL is https, whatever the request's headers claim.
    pub fn store(&self, req: &HttpRequest, key: &Key, resp: &mut HttpResponse) {
        if let Some(cookie) = self.cookie(req, key) {
            let _ = resp.add_cookie(&cookie);
        }
    }

    /// The session as a signed cookie.
    pub fn cookie(&self, req: &HttpRequest, key: &Key) -> Option<Cookie<'static>> {
        let value = serde_json::to_string(self).ok()?;
        let name = cookie_name(req);
        let cookie = Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(name == SECURE_COOKIE)
            .finish();
        let mut jar = CookieJar::new();
        jar.signed_mut(key).add(cookie);
        jar.get(name).cloned()
    }
}

fn cookie_name(req: &HttpRequest) -> &'static str {
    let secure = req
        .app_data::<actix_web::web::Data<AdminState>>()
        .is_some_and(|a| a.secure_cookies);
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// A logged-in user on an admin page whose role allows `P` (reading, by default). Anyone not
/// logged in is sent to the login page; a user whose role does not allow `P` gets a 403 page.
/// The check is `Principal::authorize`, the same as the API's.
pub struct AdminUser<P = ToRead> {
    pub id: i64,
    pub username: String,
    /// The user's role and brands, as the database has them now.
    pub principal: Principal,
    request_id: Option<String>,
    pub session: Session,
    /// What the previous request did, to show once (from the flash cookie).
    pub notice: Option<Notice>,
    permission: PhantomData<P>,
}

impl<P: Permission> AdminUser<P> {
    /// Who the audit trail names for what this request changes.
    pub fn author(&self) -> Author {
        self.principal.author(self.request_id.clone())
    }

    /// Whether the user may do `action` (pages show only the buttons of what they may do).
    pub fn may(&self, action: Action) -> bool {
        self.principal.may(action)
    }

    /// `Ok` if the user may do `P` on brand `id`; another brand's object is "not found".
    pub fn brand(&self, id: i64, what: &str) -> Result<(), ApiError> {
        self.principal
            .authorize(P::ACTION, Some(id))
            .map_err(|_| ApiError::NotFound {
                what: what.to_owned(),
                field: None,
            })
    }

    /// `Ok` if the user may do `P` on campaign `id`'s brand.
    pub async fn campaign(&self, state: &AppState, id: i64) -> Result<(), ApiError> {
        if !self.principal.brands.is_bound() {
            return Ok(());
        }
        let brand = state
            .db(move |conn| adbudget_db::repo::campaigns::ensure_exists(conn, id))
            .await?;
        self.brand(brand, "campaign")
    }

    /// The same user, for a page that does something else too.
    pub fn as_reader(&self) -> AdminUser<ToRead> {
        AdminUser {
            id: self.id,
            username: self.username.clone(),
            principal: self.principal.clone(),
            request_id: self.request_id.clone(),
            session: self.session.clone(),
            notice: self.notice,
            permission: PhantomData,
        }
    }
}

/// A session to write back with the response: its time of last request moved on.
#[derive(Clone)]
pub struct RefreshedSession(pub Session);

/// What an admin action did, shown once on the page it redirects to. It travels in a cookie as a
/// code, never as text: nothing a link or another site sets can put words on an admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    BrandCreated,
    BrandSaved,
    BrandDeleted,
    CampaignCreated,
    CampaignSaved,
    CampaignDeleted,
    ScheduleSaved,
    Paused,
    Resumed,
    BulkPaused(usize),
    BulkResumed(usize),
    SpendReversed,
    UserCreated,
    UserSaved,
    TokenRevoked,
    WebhookQueued,
}

const NOTICE_COOKIE: &str = "adbudget_notice";

impl Notice {
    pub fn message(self) -> String {
        match self {
            Notice::BrandCreated => "Brand created.".into(),
            Notice::BrandSaved => "Brand saved.".into(),
            Notice::BrandDeleted => "Brand deleted.".into(),
            Notice::CampaignCreated => "Campaign created.".into(),
            Notice::CampaignSaved => "Campaign saved.".into(),
            Notice::CampaignDeleted => "Campaign deleted.".into(),
            Notice::ScheduleSaved => "Schedule saved.".into(),
            Notice::Paused => "Paused by hand.".into(),
            Notice::Resumed => "Manual pause lifted.".into(),
            Notice::BulkPaused(n) => format!("{n} campaign(s) paused by hand."),
            Notice::BulkResumed(n) => format!("{n} campaign(s) resumed by hand."),
            Notice::SpendReversed => "Spend reversed.".into(),
            Notice::UserCreated => "User created.".into(),
            Notice::UserSaved => "User saved.".into(),
            Notice::TokenRevoked => "Token revoked.".into(),
            Notice::WebhookQueued => "Delivery queued.".into(),
        }
    }

    fn code(self) -> String {
        match self {
            Notice::BulkPaused(n) => format!("bulk-paused-{n}"),
            Notice::BulkResumed(n) => format!("bulk-resumed-{n}"),
            other => format!("{other:?}"),
        }
    }

    fn from_code(code: &str) -> Option<Notice> {
        let count = |rest: &str| rest.parse::<usize>().ok();
        if let Some(n) = code.strip_prefix("bulk-paused-") {
            return count(n).map(Notice::BulkPaused);
        }
        if let Some(n) = code.strip_prefix("bulk-resumed-") {
            return count(n).map(Notice::BulkResumed);
        }
        [
            Notice::BrandCreated,
            Notice::BrandSaved,
            Notice::BrandDeleted,
            Notice::CampaignCreated,
            Notice::CampaignSaved,
            Notice::CampaignDeleted,
            Notice::ScheduleSaved,
            Notice::Paused,
            Notice::Resumed,
            Notice::SpendReversed,
            Notice::UserCreated,
            Notice::UserSaved,
            Notice::TokenRevoked,
            Notice::WebhookQueued,
        ]
        .into_iter()
        .find(|n| n.code() == code)
    }
}

/// The notice cookie with `value`.
pub fn notice_cookie(value: String) -> Cookie<'static> {
    Cookie::build(NOTICE_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(60))
        .finish()
}

/// A redirect to `path` (after a successful POST) that shows `notice` there.
pub fn notice(path: &str, notice: Notice) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", path))
        .cookie(notice_cookie(notice.code()))
        .finish()
}

/// Why a request did not reach its admin handler.
#[derive(Debug)]
pub enum Refused {
    Login(String),
    /// The user's role or brands do not allow this page or action.
    Forbidden,
    /// The database did not answer whether the session's user is still enabled.
    Unavailable,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Login(_) => f.write_str("login required"),
            Refused::Forbidden => f.write_str("your role does not allow this"),
            Refused::Unavailable => f.write_str("the database is unavailable"),
        }
    }
}

impl actix_web::ResponseError for Refused {
    fn error_response(&self) -> HttpResponse {
        if let Refused::Forbidden = self {
            return HttpResponse::Forbidden()
                .content_type("text/html; charset=utf-8")
                .body(
                    maud::html! {
                        (maud::DOCTYPE)
                        html { head { title { "Forbidden" } } body {
                            h1 { "Forbidden" }
                            p { "Your role does not allow this. " a href="/admin" { "Back to the dashboard" } }
                        } }
                    }
                    .into_string(),
                );
        }
        let Refused::Login(next) = self else {
            return HttpResponse::ServiceUnavailable()
                .insert_header(("retry-after", "1"))
                .content_type("text/plain; charset=utf-8")
                .body("The database is unavailable; try again in a moment.");
        };
        let location = format!(
            "/admin/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        HttpResponse::SeeOther()
            .insert_header(("location", location))
            .finish()
    }
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            Refused::Login(_) => actix_web::http::StatusCode::SEE_OTHER,
            Refused::Forbidden => actix_web::http::StatusCode::FORBIDDEN,
            Refused::Unavailable => actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl<P: Permission + 'static> FromRequest for AdminUser<P> {
    type Error = Refused;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Refused>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let next = req
            .uri()
            .path_and_query()
            .map_or("/admin".to_owned(), |p| p.to_string());
        let refused = Refused::Login(if req.method() == actix_web::http::Method::GET {
            next
        } else {
            "/admin".into()
        });
        let session = req
            .app_data::<actix_web::web::Data<AdminState>>()
            .and_then(|state| Session::from_request(req, &state.key))
            .filter(|session| session.logged_in().is_some());
        let notice = req
            .cookie(NOTICE_COOKIE)
            .and_then(|c| Notice::from_code(c.value()));
        let state = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .cloned();
        let request_id = crate::access::request_id(req);
        let req = req.clone();
        Box::pin(async move {
            let (Some(mut session), Some(state)) = (session, state) else {
                return Err(refused);
            };
            let Some((id, username)) = session.user.clone() else {
                return Err(refused);
            };
            // A signed cookie outlives whatever happens to its user: look the user up.
            let facts = match state.db(move |conn| users::session_facts(conn, id)).await {
                Ok(Some(facts)) if facts.epoch == session.epoch => facts,
                Ok(_) => return Err(refused),
                Err(_) => return Err(Refused::Unavailable),
            };
            let principal = facts.principal(id);
            if principal.authorize(P::ACTION, None).is_err() {
                return Err(Refused::Forbidden);
            }
            let now = chrono::Utc::now().timestamp();
            if now - session.seen >= SEEN_GRANULARITY {
                session.seen = now;
                req.extensions_mut()
                    .insert(RefreshedSession(session.clone()));
            }
            Ok(AdminUser {
                id,
                username,
                principal,
                request_id,
                session,
                notice,
                permission: PhantomData,
            })
        })
    }
}
