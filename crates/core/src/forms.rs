//! Requests that change data, and their validation: one implementation for the API, the CLI and
//! the admin panel.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::dayparting::Schedule;
use crate::error::ValidationError;
use crate::events::AlertThresholds;
use crate::money::{Money, NonNegativeMoney, PositiveMoney};

/// How far in the future an event may claim to have occurred (clock skew allowance).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_EVENT_ID_LEN: usize = 200;
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// `Some(None)` when the field is present and `null`, `None` when it is absent.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A whole percent, 1–100 (an alert threshold), for the OpenAPI document.
pub struct Percent;

impl utoipa::PartialSchema for Percent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(100))
            .description(Some("A whole percent, 1–100."))
            .into()
    }
}
impl utoipa::ToSchema for Percent {}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrand {
    /// 1–200 characters, not blank, no control characters (surrounding spaces are dropped).
    #[schema(
        example = "Acme",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    pub daily_budget: NonNegativeMoney,
    pub monthly_budget: NonNegativeMoney,
    /// IANA timezone name; `UTC` when left out.
    #[serde(default)]
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// Whole percents 1–100 of each budget and cap at which a `budget.threshold_reached` event
    /// is sent; `[50, 80, 100]` when left out.
    #[serde(default)]
    #[schema(example = json!([50, 80, 100]), max_items = 20, value_type = Option<Vec<Percent>>)]
    pub alert_thresholds: Option<Vec<i64>>,
}

/// A change of a brand: a field left out or `null` is unchanged.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBrand {
    /// 1–200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    pub daily_budget: Option<NonNegativeMoney>,
    pub monthly_budget: Option<NonNegativeMoney>,
    pub timezone: Option<String>,
    /// Replaces the alert thresholds (`[]`: no alerts). Thresholds the current periods have
    /// already passed do not fire.
    #[schema(max_items = 20, value_type = Option<Vec<Percent>>)]
    pub alert_thresholds: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    #[schema(minimum = 1)]
    pub brand_id: i64,
    /// 1–200 characters, not blank, no control characters (surrounding spaces are dropped).
    #[schema(
        example = "Winter sale",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[serde(default)]
    pub daily_cap: Option<NonNegativeMoney>,
    #[serde(default)]
    pub monthly_cap: Option<NonNegativeMoney>,
    /// A schedule (SPEC §5): a list of windows, or the original's `{"start_hour": 9, "end_hour": 17}`.
    #[serde(default)]
    #[schema(value_type = Option<crate::dayparting::schema::Dayparting>)]
    pub dayparting: Option<serde_json::Value>,
    #[serde(default)]
    pub manually_paused: Option<bool>,
    /// A total budget over all time (SPEC §4: `campaign_lifetime_cap`).
    #[serde(default)]
    pub lifetime_cap: Option<NonNegativeMoney>,
    /// The first brand-local date of the flight (inclusive); before it the campaign is paused
    /// (`flight`).
    #[serde(default)]
    #[schema(example = "2026-12-01")]
    pub flight_start: Option<NaiveDate>,
    /// The last brand-local date of the flight (inclusive); on or after `flight_start`.
    #[serde(default)]
    #[schema(example = "2026-12-24")]
    pub flight_end: Option<NaiveDate>,
}

/// A change of a campaign: a field left out is unchanged; `null` clears a cap, the schedule or a
/// flight date, and leaves `name` and `manually_paused` unchanged.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCampaign {
    /// 1–200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NonNegativeMoney>)]
    pub daily_cap: Option<Option<NonNegativeMoney>>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NonNegativeMoney>)]
    pub monthly_cap: Option<Option<NonNegativeMoney>>,
    /// `null` removes the schedule.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<crate::dayparting::schema::Dayparting>)]
    pub dayparting: Option<Option<serde_json::Value>>,
    pub manually_paused: Option<bool>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NonNegativeMoney>)]
    pub lifetime_cap: Option<Option<NonNegativeMoney>>,
    /// `null` removes the start: the flight has run since ever.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NaiveDate>)]
    pub flight_start: Option<Option<NaiveDate>>,
    /// `null` removes the end: the flight runs on.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NaiveDate>)]
    pub flight_end: Option<Option<NaiveDate>>,
}

/// One spend event as reported by an ad platform.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendEvent {
    #[schema(minimum = 1)]
    pub campaign_id: i64,
    pub amount: PositiveMoney,
    /// When the spend happened (RFC 3339); the time of receipt when left out. Late events count
    /// toward the period they occurred in.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The sender's unique id of the event: a replay with the same id and payload is recorded once.
    /// 1–200 characters, no control characters.
    #[serde(default)]
    #[schema(
        example = "evt-2026-11-21-000123",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendBatch {
    /// Up to 10,000 events, validated all or nothing and applied in one transaction.
    #[schema(min_items = 1, max_items = 10000)]
    pub events: Vec<SpendEvent>,
}

// ---- validated forms ----

#[derive(Debug, Clone, PartialEq)]
pub struct NewBrand {
    pub name: String,
    pub daily_budget: Money,
    pub monthly_budget: Money,
    pub timezone: Tz,
    pub alert_thresholds: AlertThresholds,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrandChanges {
    pub name: Option<String>,
    pub daily_budget: Option<Money>,
    pub monthly_budget: Option<Money>,
    pub timezone: Option<Tz>,
    pub alert_thresholds: Option<AlertThresholds>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    pub brand_id: i64,
    pub name: String,
    pub daily_cap: Option<Money>,
    pub monthly_cap: Option<Money>,
    pub dayparting: Option<Schedule>,
    pub manually_paused: bool,
    pub lifetime_cap: Option<Money>,
    pub flight: Flight,
}

/// A campaign's flight: brand-local dates, both inclusive, each optional; `end` ≥ `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flight {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

impl Flight {
    /// Checks the order of the two dates.
    pub fn validate(self) -> Result<Self, ValidationError> {
        match (self.start, self.end) {
            (Some(start), Some(end)) if end < start => Err(ValidationError::new(
                "flight_end",
                "must be on or after flight_start",
            )),
            _ => Ok(self),
        }
    }

    /// Whether `date` lies within the flight.
    pub fn contains(self, date: NaiveDate) -> bool {
        self.start.is_none_or(|s| s <= date) && self.end.is_none_or(|e| date <= e)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignChanges {
    pub name: Option<String>,
    pub daily_cap: Option<Option<Money>>,
    pub monthly_cap: Option<Option<Money>>,
    pub dayparting: Option<Option<Schedule>>,
    pub manually_paused: Option<bool>,
    pub lifetime_cap: Option<Option<Money>>,
    pub flight_start: Option<Option<NaiveDate>>,
    pub flight_end: Option<Option<NaiveDate>>,
}

/// A spend event that passed validation, its times truncated to the microseconds both databases keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpend {
    pub campaign_id: i64,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    /// Whether the sender gave `occurred_at` (a replay without it matches any stored time).
    pub occurred_at_given: bool,
    pub event_id: Option<String>,
    /// The API token that posted the event (set by the API once the token is checked, never by
    /// the request; `None` from the CLI). The spend log records it.
    pub posted_by: Option<i64>,
    /// The brands the poster may post spend to (its token's binding; all from the CLI): spend
    /// on another brand's campaign is refused (403) where the campaign is looked up.
    pub allowed: crate::access::Brands,
}

pub fn validate_name(name: &str, field: &str) -> Result<String, ValidationError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

pub fn validate_timezone(tz: &str, field: &str) -> Result<Tz, ValidationError> {
    tz.trim_matches([' ', '\t', '\n', '\r'])
        .parse::<Tz>()
        .map_err(|_| {
            ValidationError::new(
                field,
                format!("unknown timezone {tz:?}; use an IANA name such as \"Europe/Berlin\""),
            )
        })
}

fn validate_id(id: i64, field: &str) -> Result<i64, ValidationError> {
    if id <= 0 {
        return Err(ValidationError::new(field, "must be a positive id"));
    }
    Ok(id)
}

impl CreateBrand {
    pub fn validate(self) -> Result<NewBrand, ValidationError> {
        Ok(NewBrand {
            name: validate_name(&self.name, "name")?,
            daily_budget: self.daily_budget.0,
            monthly_budget: self.monthly_budget.0,
            timezone: match self.timezone.as_deref() {
                None => Tz::UTC,
                Some(tz) => validate_timezone(tz, "timezone")?,
            },
            alert_thresholds: match self.alert_thresholds {
                None => AlertThresholds::default(),
                Some(t) => AlertThresholds::new(&t, "alert_thresholds")?,
            },
        })
    }
}

impl UpdateBrand {
    pub fn validate(self) -> Result<BrandChanges, ValidationError> {
        Ok(BrandChanges {
            name: self.name.map(|n| validate_name(&n, "name")).transpose()?,
            daily_budget: self.daily_budget.map(|m| m.0),
            monthly_budget: self.monthly_budget.map(|m| m.0),
            timezone: self
                .timezone
                .map(|tz| validate_timezone(&tz, "timezone"))
                .transpose()?,
            alert_thresholds: self
                .alert_thresholds
                .map(|t| AlertThresholds::new(&t, "alert_thresholds"))
                .transpose()?,
        })
    }
}

fn validate_schedule(value: &serde_json::Value) -> Result<Option<Schedule>, ValidationError> {
    if value.is_null() {
        return Ok(None);
    }
    Schedule::from_json(value, "dayparting").map(Some)
}

impl CreateCampaign {
    pub fn validate(self) -> Result<NewCampaign, ValidationError> {
        Ok(NewCampaign {
            brand_id: validate_id(self.brand_id, "brand_id")?,
            name: validate_name(&self.name, "name")?,
            daily_cap: self.daily_cap.map(|m| m.0),
            monthly_cap: self.monthly_cap.map(|m| m.0),
            dayparting: match &self.dayparting {
                None => None,
                Some(v) => validate_schedule(v)?,
            },
            manually_paused: self.manually_paused.unwrap_or(false),
            lifetime_cap: self.lifetime_cap.map(|m| m.0),
            flight: Flight {
                start: self.flight_start,
                end: self.flight_end,
            }
            .validate()?,
        })
    }
}

impl UpdateCampaign {
    pub fn validate(self) -> Result<CampaignChanges, ValidationError> {
        Ok(CampaignChanges {
            name: self.name.map(|n| validate_name(&n, "name")).transpose()?,
            daily_cap: self.daily_cap.map(|c| c.map(|m| m.0)),
            monthly_cap: self.monthly_cap.map(|c| c.map(|m| m.0)),
            dayparting: match &self.dayparting {
                None => None,
                Some(None) => Some(None),
                Some(Some(v)) => Some(validate_schedule(v)?),
            },
            manually_paused: self.manually_paused,
            lifetime_cap: self.lifetime_cap.map(|c| c.map(|m| m.0)),
            flight_start: self.flight_start,
            flight_end: self.flight_end,
        })
    }
}

/// Truncates to the microsecond precision both databases store, so that what is returned now
/// equals what is read back later.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The current time at storage precision.
pub fn now() -> DateTime<Utc> {
    to_micros(Utc::now())
}

impl SpendEvent {
    pub fn validate(self, now: DateTime<Utc>) -> Result<ValidSpend, ValidationError> {
        let campaign_id = validate_id(self.campaign_id, "campaign_id")?;
        let occurred_at_given = self.occurred_at.is_some();
        let occurred_at = to_micros(self.occurred_at.unwrap_or(now));
        if occurred_at > now + MAX_FUTURE_SKEW {
            return Err(ValidationError::new(
                "occurred_at",
                "must not be more than 5 minutes in the future",
            ));
        }
        if occurred_at.timestamp() < 0 {
            return Err(ValidationError::new(
                "occurred_at",
                "must be after 1970-01-01",
            ));
        }
        let event_id = match self.event_id {
            None => None,
            Some(id) => {
                if id.is_empty()
                    || id.chars().count() > MAX_EVENT_ID_LEN
                    || id.chars().any(char::is_control)
                {
                    return Err(ValidationError::new(
                        "event_id",
                        format!(
                            "must be 1 to {MAX_EVENT_ID_LEN} characters without control characters"
                        ),
                    ));
                }
                Some(id)
            }
        };
        Ok(ValidSpend {
            campaign_id,
            amount: self.amount.0,
            occurred_at,
            occurred_at_given,
            event_id,
            posted_by: None,
            allowed: Default::default(),
        })
    }
}

impl SpendBatch {
    pub fn validate(self, now: DateTime<Utc>) -> Result<Vec<ValidSpend>, ValidationError> {
        if self.events.is_empty() {
            return Err(ValidationError::new(
                "events",
                "must contain at least one event",
            ));
        }
        if self.events.len() > MAX_BATCH_EVENTS {
            return Err(ValidationError::new(
                "events",
                format!("must contain at most {MAX_BATCH_EVENTS} events"),
            ));
        }
        let events: Vec<ValidSpend> = self
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                e.validate(now)
                    .map_err(|err| err.within(&format!("events[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        // The same event id twice for one campaign must describe the same event. (Ids are unique
        // per brand: the same id for campaigns of two brands is two events, and for two campaigns
        // of one brand a conflict, which only the database can tell apart: 409 there.)
        let mut seen = std::collections::HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(id) = &e.event_id {
                if let Some(&first) = seen.get(&(e.campaign_id, id.as_str())) {
                    let a: &ValidSpend = &events[first];
                    if a.amount != e.amount || a.occurred_at != e.occurred_at {
                        return Err(ValidationError::new(
                            format!("events[{i}].event_id"),
                            format!(
                                "repeats the event id of events[{first}] with a different payload"
                            ),
                        ));
                    }
                } else {
                    seen.insert((e.campaign_id, id.as_str()), i);
                }
            }
        }
        Ok(events)
    }
}
