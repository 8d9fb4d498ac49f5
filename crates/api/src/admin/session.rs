//! Admin sessions in a signed cookie (HMAC, `HttpOnly`, `SameSite=Lax`; `Secure` and `__Host-`
//! when `ADBUDGET_PUBLIC_URL` is https) holding the user, a CSRF token and an expiry. Every request
//! checks that the session's user still exists and is enabled.

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AdminState;
use adbudget_db::repo::users;

pub const COOKIE: &str = "adbudget_session";
/// The cookie's name behind https (`ADBUDGET_PUBLIC_URL`): browsers accept a `__Host-` cookie only
/// when it is `Secure`, for `/`, and for this host alone, so no subdomain can plant one.
pub const SECURE_COOKIE: &str = "__Host-adbudget_session";
/// A session ends this long after login, whatever happens.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The logged-in user, if any.
    pub user: Option<(i64, String)>,
    pub csrf: String,
    /// Unix seconds after which the login no longer counts.
    pub expires: i64,
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
        }
    }

    pub fn login(user_id: i64, username: String) -> Self {
        // A fresh CSRF token at login: nothing learned before it is worth anything after.
        Session {
            user: Some((user_id, username)),
            csrf: token(),
            expires: (chrono::Utc::now() + SESSION_LIFETIME).timestamp(),
        }
    }

    pub fn logged_in(&self) -> Option<&(i64, String)> {
        self.user
            .as_ref()
            .filter(|_| chrono::Utc::now().timestamp() < self.expires)
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
        let Ok(value) = serde_json::to_string(self) else {
            return;
        };
        let name = cookie_name(req);
        let cookie = Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(name == SECURE_COOKIE)
            .finish();
        let mut jar = CookieJar::new();
        jar.signed_mut(key).add(cookie);
        if let Some(signed) = jar.get(name) {
            let _ = resp.add_cookie(signed);
        }
    }
}

fn cookie_name(req: &HttpRequest) -> &'static str {
    let secure = req
        .app_data::<actix_web::web::Data<AdminState>>()
        .is_some_and(|a| a.secure_cookies);
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// A logged-in user on an admin page. Anyone else is sent to the login page.
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub session: Session,
    /// What the previous request did, to show once (from the flash cookie).
    pub notice: Option<Notice>,
}

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
    /// The database did not answer whether the session's user is still enabled.
    Unavailable,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Login(_) => f.write_str("login required"),
            Refused::Unavailable => f.write_str("the database is unavailable"),
        }
    }
}

impl actix_web::ResponseError for Refused {
    fn error_response(&self) -> HttpResponse {
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
            Refused::Unavailable => actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl FromRequest for AdminUser {
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
            .and_then(|session| {
                let (id, username) = session.logged_in()?.clone();
                Some(AdminUser {
                    id,
                    username,
                    session,
                    notice: req
                        .cookie(NOTICE_COOKIE)
                        .and_then(|c| Notice::from_code(c.value())),
                })
            });
        let state = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .cloned();
        Box::pin(async move {
            let (Some(user), Some(state)) = (session, state) else {
                return Err(refused);
            };
            // A signed cookie outlives whatever happens to its user: look the user up.
            let id = user.id;
            match state.db(move |conn| users::is_active(conn, id)).await {
                Ok(true) => Ok(user),
                Ok(false) => Err(refused),
                Err(_) => Err(Refused::Unavailable),
            }
        })
    }
}
