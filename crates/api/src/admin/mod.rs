//! The admin panel (`/admin`) and job monitor (`/jobs`): server-rendered pages behind a login,
//! the successors of the Django admin and Flower. Forms go through the same request types and
//! validation as the API.

pub mod jobs;
pub mod pages;
pub mod session;
pub mod view;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::Key;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use maud::html;

use crate::error::ApiError;
use session::{AdminUser, Throttle};

/// What the admin pages share besides the database.
pub struct AdminState {
    /// Signs session cookies.
    pub key: Key,
    pub throttle: Throttle,
}

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
        AdminState {
            key,
            throttle: Throttle::default(),
        }
    }
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
        .route("/jobs", web::get().to(jobs::monitor))
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
pub fn check_csrf(user: &AdminUser, form: &Form) -> Result<(), AdminError> {
    if user.session.csrf_matches(form.get("csrf")) {
        Ok(())
    } else {
        Err(AdminError(ApiError::Forbidden))
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
