//! The admin pages, one file each: login, dashboard, brands, campaigns, spend logs; and what they
//! share (query helpers, the page shell, safe redirects).

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde_json::Value;

use crate::access::Permission;
use crate::admin::session::{AdminUser, notice_cookie};
use crate::admin::view::{self, page};
use crate::admin::{Form, html_page};
use adbudget_core::access::Action;

mod access;
mod brands;
mod campaigns;
mod dashboard;
mod login;
mod spend;
mod webhooks;

pub use access::*;
pub use brands::*;
pub use campaigns::*;
pub use dashboard::*;
pub use login::*;
pub use spend::*;
pub use webhooks::*;

type Query = web::Query<HashMap<String, String>>;

fn q<'a>(query: &'a Query, key: &str) -> &'a str {
    query.get(key).map(String::as_str).unwrap_or_default()
}

/// The search box's text without control characters (PostgreSQL text cannot hold a NUL, and no
/// name has one).
fn search_text(query: &Query) -> String {
    q(query, "q").chars().filter(|c| !c.is_control()).collect()
}

fn num(query: &Query, key: &str) -> Option<i64> {
    query.get(key).and_then(|v| v.parse().ok())
}

fn shell<P: Permission>(
    user: &AdminUser<P>,
    title: &str,
    section: &str,
    body: Markup,
) -> HttpResponse {
    let body = html! {
        @if let Some(n) = &user.notice { div.flash role="status" { (n.message()) } }
        (body)
    };
    let mut resp = html_page(page(
        title,
        section,
        Some(view::Header {
            username: &user.username,
            csrf: &user.session.csrf,
            administers: user.may(Action::Administer),
        }),
        body,
    ));
    if user.notice.is_some() {
        // Shown once.
        let _ = resp.add_removal_cookie(&notice_cookie(String::new()));
    }
    resp
}

/// Only same-origin paths, so a crafted `next` cannot send a user elsewhere after login. The
/// target must resolve, against a fixed origin, to that origin; and it may hold no backslash and
/// no control character, which browsers rewrite or drop (`/\t/evil.example` is `//evil.example`
/// to a browser), not even once more percent-decoded. `next` arrives percent-decoded from the
/// query string or the form.
fn safe_next(next: &str) -> &str {
    const HOST: &str = "adbudget.invalid";
    let stays = url::Url::parse(&format!("http://{HOST}/"))
        .and_then(|base| base.join(next))
        .is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some(HOST) && u.port().is_none());
    // Encoded once more, the same tricks must not hide in it either (`/%09/evil.example`).
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8_lossy();
    let plain =
        |s: &str| !s.starts_with("//") && !s.contains(|c: char| c == '\\' || c.is_control());
    if next.starts_with('/') && stays && plain(next) && plain(&decoded) {
        next
    } else {
        "/admin"
    }
}

fn sort_link(base: &str, current: &str, key: &str, label: &str, keep: &[(&str, String)]) -> Markup {
    let next = if current == key {
        format!("-{key}")
    } else {
        key.to_owned()
    };
    let mut params = keep.to_vec();
    params.push(("sort", next));
    let href = view::url_with(base, &params);
    let arrow = if current == key {
        " ▲"
    } else if current == format!("-{key}") {
        " ▼"
    } else {
        ""
    };
    html! { a href=(href) { (label) (arrow) } }
}

fn form_json(form: &Form, fields: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for f in fields {
        map.insert((*f).to_owned(), Value::String(form.text(f)));
    }
    Value::Object(map)
}

/// Optional money fields: empty means none (null).
fn optional(form: &Form, name: &str) -> Value {
    let v = form.text(name);
    if v.is_empty() {
        Value::Null
    } else {
        Value::String(v)
    }
}
