//! Admin sessions in a signed cookie (HMAC, `HttpOnly`, `SameSite=Lax`, `Secure` over TLS) holding
//! the user, a CSRF token and an expiry; login throttling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AdminState;

pub const COOKIE: &str = "adbudget_session";
/// A session ends this long after login, whatever happens.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// Failed logins (per username and per client address) before further attempts are refused.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

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
        let raw = req.cookie(COOKIE)?;
        let mut jar = CookieJar::new();
        jar.add_original(raw);
        let verified = jar.signed(key).get(COOKIE)?;
        serde_json::from_str(verified.value()).ok()
    }

    /// Writes the session into the response as a signed cookie.
    pub fn store(&self, req: &HttpRequest, key: &Key, resp: &mut HttpResponse) {
        let Ok(value) = serde_json::to_string(self) else {
            return;
        };
        let tls = req.connection_info().scheme() == "https";
        let cookie = Cookie::build(COOKIE, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(tls)
            .finish();
        let mut jar = CookieJar::new();
        jar.signed_mut(key).add(cookie);
        if let Some(signed) = jar.get(COOKIE) {
            let _ = resp.add_cookie(signed);
        }
    }
}

/// A logged-in user on an admin page. Anyone else is sent to the login page.
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub session: Session,
}

/// Why a request did not reach its admin handler.
#[derive(Debug)]
pub enum Refused {
    Login(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("login required")
    }
}

impl actix_web::ResponseError for Refused {
    fn error_response(&self) -> HttpResponse {
        let Refused::Login(next) = self;
        let location = format!(
            "/admin/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        HttpResponse::SeeOther()
            .insert_header(("location", location))
            .finish()
    }
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SEE_OTHER
    }
}

impl FromRequest for AdminUser {
    type Error = Refused;
    type Future = std::future::Ready<Result<Self, Refused>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let next = req
            .uri()
            .path_and_query()
            .map_or("/admin".to_owned(), |p| p.to_string());
        let user = req
            .app_data::<actix_web::web::Data<AdminState>>()
            .and_then(|state| Session::from_request(req, &state.key))
            .and_then(|session| {
                let (id, username) = session.logged_in()?.clone();
                Some(AdminUser {
                    id,
                    username,
                    session,
                })
            });
        std::future::ready(user.ok_or(Refused::Login(
            if req.method() == actix_web::http::Method::GET {
                next
            } else {
                "/admin".into()
            },
        )))
    }
}

/// Failed logins, per username and per client address, in this process.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    fn recent(list: &mut Vec<Instant>) -> usize {
        list.retain(|t| t.elapsed() < FAILURE_WINDOW);
        list.len()
    }

    /// Whether any of `keys` has had too many recent failures.
    pub fn blocked(&self, keys: &[String]) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return true;
        };
        keys.iter().any(|k| {
            map.get_mut(k)
                .is_some_and(|l| Self::recent(l) >= MAX_FAILURES)
        })
    }

    pub fn fail(&self, keys: &[String]) {
        if let Ok(mut map) = self.failures.lock() {
            for k in keys {
                map.entry(k.clone()).or_default().push(Instant::now());
            }
        }
    }

    pub fn clear(&self, keys: &[String]) {
        if let Ok(mut map) = self.failures.lock() {
            for k in keys {
                map.remove(k);
            }
        }
    }
}
