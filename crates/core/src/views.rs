//! What the outside world sees of the data: the JSON of the API, the rows of the admin panel.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dayparting::Schedule;
use crate::events::AlertThresholds;
use crate::money::Money;
use crate::rule::PauseReasons;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Brand {
    pub id: i64,
    pub name: String,
    pub daily_budget: Money,
    pub monthly_budget: Money,
    /// IANA timezone in which days, months and dayparting windows are read.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// Spend of the brand-local day so far.
    pub daily_spend: Money,
    /// Spend of the brand-local calendar month so far.
    pub monthly_spend: Money,
    /// Percents of each budget and cap at which `budget.threshold_reached` is sent.
    pub alert_thresholds: AlertThresholds,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One dayparting window as shown: days, start (inclusive) and end (exclusive) in brand-local time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowView {
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    pub days: Vec<String>,
    #[schema(example = "09:00")]
    pub start: String,
    #[schema(example = "17:00")]
    pub end: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub brand_id: i64,
    pub name: String,
    pub is_active: bool,
    /// Why the campaign is paused, in rule order; empty when active.
    #[schema(value_type = Vec<String>, example = json!(["brand_daily_budget"]))]
    pub pause_reasons: PauseReasons,
    pub manually_paused: bool,
    pub daily_spend: Money,
    pub monthly_spend: Money,
    /// Spend over all time (what the lifetime cap counts).
    pub lifetime_spend: Money,
    pub daily_cap: Option<Money>,
    pub monthly_cap: Option<Money>,
    pub lifetime_cap: Option<Money>,
    /// The flight's first and last brand-local dates (inclusive); null: open on that side.
    #[schema(value_type = Option<String>, format = Date, example = "2026-12-01")]
    pub flight_start: Option<chrono::NaiveDate>,
    #[schema(value_type = Option<String>, format = Date, example = "2026-12-24")]
    pub flight_end: Option<chrono::NaiveDate>,
    /// The windows in which the campaign may run; null = at all hours.
    #[schema(value_type = Option<Vec<WindowView>>)]
    pub dayparting: Option<Schedule>,
    /// One more with every change of the campaign's state (its pause reasons): events carry it,
    /// so that a receiver can drop one that arrives after a newer one.
    pub state_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SpendLog {
    pub id: i64,
    pub campaign_id: i64,
    /// The campaign's brand: `event_id` is unique per brand.
    pub brand_id: i64,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub event_id: Option<String>,
    /// The API token that posted it; null for spend recorded by `adbudget log-spend` and for spend
    /// recorded before tokens were (schema migration 000006).
    pub token_id: Option<i64>,
    /// On a reversal (a negative amount): the spend log it reverses.
    pub reverses_id: Option<i64>,
    /// On a reversal: why.
    pub reason: Option<String>,
    /// In listings, on a reversed spend log: its reversal.
    pub reversed_by: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusChange {
    pub id: i64,
    pub campaign_id: i64,
    pub changed_at: DateTime<Utc>,
    pub is_active: bool,
    #[schema(value_type = Vec<String>)]
    pub pause_reasons: PauseReasons,
    /// What caused the change: `spend`, `brand_updated`, `campaign_updated`, `dayparting_updated`,
    /// `manual_pause`, `manual_resume`, `enforce_budgets`, `apply_dayparting`, `reset_daily`, …
    pub cause: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scope: String,
    /// The public beginning of the token, to recognise it; the rest is never stored.
    pub prefix: String,
    /// The brands it is bound to; null: all brands.
    pub brands: Option<Vec<i64>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used, to within five minutes.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A page of a list. Pass `next_cursor` as `cursor` to get the next page; null on the last page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
