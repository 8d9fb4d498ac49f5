//! The admin panel's look: one layout, a little CSS, and helpers for bars, badges, pagination and
//! field errors. Plain HTML that works without JavaScript.

use std::collections::HashMap;

use adbudget_core::money::Money;
use adbudget_core::rule::PauseReasons;
use maud::{DOCTYPE, Markup, PreEscaped, html};

const CSS: &str = r#"
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;background:#f5f7fa}
header{background:#1f2933;color:#fff;padding:0 24px;display:flex;align-items:center;gap:24px;height:52px}
header a{color:#cbd2d9;text-decoration:none;font-weight:500}header a:hover,header a.on{color:#fff}
header .brand{font-weight:700;color:#fff;font-size:17px;margin-right:12px}header form{margin-left:auto}
main{max-width:1180px;margin:24px auto;padding:0 24px}h1{font-size:24px;margin:0 0 16px}h2{font-size:18px;margin:28px 0 10px}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #e4e7eb;border-radius:6px;overflow:hidden}
th,td{padding:8px 10px;text-align:left;border-bottom:1px solid #e4e7eb;vertical-align:middle}th{background:#f0f4f8;font-size:13px;color:#52606d;text-transform:uppercase;letter-spacing:.03em}
th a{color:inherit}tr:last-child td{border-bottom:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:#2563eb}.muted{color:#7b8794;font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;margin:1px 2px 1px 0}
.active{background:#d1fae5;color:#065f46}.paused{background:#fee2e2;color:#991b1b}.reason{background:#fef3c7;color:#92400e}
.bar{position:relative;background:#e4e7eb;border-radius:4px;height:18px;min-width:160px}.bar span{position:absolute;left:0;top:0;bottom:0;border-radius:4px;background:#3b82f6}
.bar.full span{background:#dc2626}.bar em{position:relative;font-style:normal;font-size:12px;padding-left:6px;line-height:18px;color:#111}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:8px}.card{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:10px 16px;min-width:140px}
.card b{display:block;font-size:22px}.toolbar{display:flex;gap:8px;align-items:end;flex-wrap:wrap;margin-bottom:12px}
form.inline{display:inline}label{display:block;font-size:13px;color:#52606d;margin-bottom:2px}
input,select,textarea{font:inherit;padding:6px 8px;border:1px solid #cbd2d9;border-radius:4px;background:#fff}
button,.button{font:inherit;padding:6px 14px;border:0;border-radius:4px;background:#2563eb;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#52606d}button.danger{background:#dc2626}
.field{margin-bottom:12px}.error{color:#b91c1c;font-size:13px;margin-top:2px}input.invalid,select.invalid{border-color:#dc2626}
.panel{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:16px 20px;margin-bottom:16px}
.flash{background:#dbeafe;border:1px solid #93c5fd;padding:8px 12px;border-radius:4px;margin-bottom:12px}
.flash.bad{background:#fee2e2;border-color:#fca5a5}.pager{margin-top:10px;display:flex;gap:6px;align-items:center}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.pace-behind{background:#fef3c7;color:#92400e}.pace-on_track{background:#d1fae5;color:#065f46}.pace-ahead{background:#dbeafe;color:#1e40af}.pace-exhausted{background:#fee2e2;color:#991b1b}
figure.chart{margin:0 0 16px;background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:12px 16px}figure.chart svg{display:block;max-width:760px}.legend span{margin-right:10px}.days label{display:inline-block;white-space:nowrap;margin-right:8px;color:#1f2933}
"#;

/// The page around `body`, with the navigation (`active` marks the current section).
/// A user's part of the page header: name, CSRF token (for the logout form), and whether the
/// admin-only sections (users, tokens) are shown.
pub struct Header<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
    pub administers: bool,
}

pub fn page(title: &str, active: &str, user: Option<Header<'_>>, body: Markup) -> Markup {
    let mut nav = vec![
        ("Dashboard", "/admin"),
        ("Brands", "/admin/brands"),
        ("Campaigns", "/admin/campaigns"),
        ("Spend", "/admin/spend"),
        ("Audit", "/admin/audit"),
        ("Events", "/admin/events"),
        ("Jobs", "/jobs"),
    ];
    if user.as_ref().is_some_and(|u| u.administers) {
        nav.push(("Users", "/admin/users"));
        nav.push(("Tokens", "/admin/tokens"));
        nav.push(("Webhooks", "/admin/webhooks"));
    }
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · adbudget" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    span.brand { "adbudget" }
                    @if let Some(Header { username, csrf, .. }) = user {
                        @for (label, href) in &nav {
                            a href=(href) class=@if *label == active { "on" } { (label) }
                        }
                        form.inline method="post" action="/admin/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            span.muted style="color:#9aa5b1;margin-right:10px" { (username) }
                            button.secondary type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Spend against a budget as a bar; red once the budget is reached.
pub fn bar(spent: Money, budget: Money) -> Markup {
    let pct = if budget.micros() == 0 {
        100.0
    } else {
        (spent.micros() as f64 / budget.micros() as f64 * 100.0).min(100.0)
    };
    let full = spent >= budget;
    html! {
        div class=(if full { "bar full" } else { "bar" }) title={ (spent) " of " (budget) } {
            span style={ "width:" (format!("{pct:.1}")) "%" } {}
            em { (spent) " / " (budget) }
        }
    }
}

pub fn state(is_active: bool, reasons: PauseReasons) -> Markup {
    html! {
        @if is_active {
            span.badge.active { "active" }
        } @else {
            span.badge.paused { "paused" }
            @for r in reasons.names() { span.badge.reason { (r) } }
        }
    }
}

pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A labelled input with its validation message beside it.
pub fn field(
    label: &str,
    name: &str,
    value: &str,
    kind: &str,
    errors: &HashMap<String, String>,
) -> Markup {
    let error = errors.get(name);
    html! {
        div.field {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) class=[error.map(|_| "invalid")];
            @if let Some(e) = error { div.error data-field=(name) { (e) } }
        }
    }
}

/// `base?k=v&…` with the non-empty parameters, encoded.
pub fn url_with(base: &str, params: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    format!("{base}?{}", q.finish())
}

/// Previous/next links that keep the other query parameters.
pub fn pager(base: &str, params: &[(&str, String)], page: i64, pages: i64, total: i64) -> Markup {
    let link = |p: i64| {
        let mut all = params.to_vec();
        all.push(("page", p.to_string()));
        url_with(base, &all)
    };
    html! {
        div.pager {
            @if page > 1 { a href=(link(page - 1)) { "← previous" } }
            span.muted { "page " (page) " of " (pages) " · " (total) " in all" }
            @if page < pages { a href=(link(page + 1)) { "next →" } }
        }
    }
}

pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The confirmation before a brand is deleted (an inline handler: its hash is in the CSP).
pub const CONFIRM_BRAND_DELETE: &str =
    "return confirm('Delete this brand, its campaigns and their spend?')";
/// The same for a campaign.
pub const CONFIRM_CAMPAIGN_DELETE: &str = "return confirm('Delete this campaign and its spend?')";

/// A spend log's reversal cell: the reversal it is (with its reason) or has, or, when `csrf` is
/// given (the user may reverse spend), a form to reverse it with a reason.
pub fn reversal(log: &adbudget_core::views::SpendLog, csrf_token: Option<&str>) -> Markup {
    html! {
        @if let Some(of) = log.reverses_id {
            span.muted.reversal { "reverses #" (of) ": " (log.reason.clone().unwrap_or_default()) }
        } @else if let Some(by) = log.reversed_by {
            span.muted.reversed { "reversed by #" (by) }
        } @else if let Some(token) = csrf_token {
            form.inline.reverse method="post" action={ "/admin/spend/" (log.id) "/reverse" } {
                (csrf(token))
                input type="text" name="reason" required placeholder="reason" aria-label={ "reason to reverse spend " (log.id) } size="16";
                button.secondary type="submit" { "Reverse" }
            }
        }
    }
}
