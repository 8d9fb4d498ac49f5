//! Events (SPEC §9): what a connector must react to, as the outbox stores it and the change feed
//! and the webhooks send it. Pure: types, the envelope, the feed's cursor, alert thresholds and
//! when a total crosses one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ValidationError;
use crate::money::Money;

/// The kinds of events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    #[serde(rename = "campaign.paused")]
    CampaignPaused,
    #[serde(rename = "campaign.resumed")]
    CampaignResumed,
    #[serde(rename = "budget.threshold_reached")]
    ThresholdReached,
    #[serde(rename = "spend.reversed")]
    SpendReversed,
    #[serde(rename = "ping")]
    Ping,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::CampaignPaused,
        EventType::CampaignResumed,
        EventType::ThresholdReached,
        EventType::SpendReversed,
        EventType::Ping,
    ];

    /// The stable name, as stored and sent.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::CampaignPaused => "campaign.paused",
            EventType::CampaignResumed => "campaign.resumed",
            EventType::ThresholdReached => "budget.threshold_reached",
            EventType::SpendReversed => "spend.reversed",
            EventType::Ping => "ping",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventType {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                ValidationError::new("type", format!("must be one of {}", names.join(", ")))
            })
    }
}

impl EventType {
    /// The types an endpoint may subscribe to (every one but `ping`, which goes to the endpoint
    /// tested), from their names; an unknown name is an error on `field`.
    pub fn subscribable<S: AsRef<str>>(
        names: &[S],
        field: &str,
    ) -> Result<Vec<EventType>, ValidationError> {
        names
            .iter()
            .map(|n| {
                n.as_ref()
                    .parse::<EventType>()
                    .ok()
                    .filter(|t| *t != EventType::Ping)
                    .ok_or_else(|| {
                        ValidationError::new(
                            field,
                            format!(
                                "{:?} is not one of campaign.paused, campaign.resumed, budget.threshold_reached, spend.reversed",
                                n.as_ref()
                            ),
                        )
                    })
            })
            .collect()
    }
}

/// The public id of the event stored under `id`: `evt_` and the number.
pub fn public_id(id: i64) -> String {
    format!("evt_{id}")
}

/// An event as the feed and the webhooks send it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Envelope {
    /// Unique and stable across redeliveries (the `webhook-id` header of a delivery).
    #[schema(example = "evt_42")]
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: DateTime<Utc>,
    /// The brand it concerns; null for a `ping`.
    pub brand_id: Option<i64>,
    /// What happened; see SPEC §9 for each type.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A position in the change feed: the writing transaction's id (0 on SQLite) and the event id.
/// The feed's order is this pair's order; clients treat its text as opaque.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub txid: i64,
    pub id: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.txid, self.id)
    }
}

impl FromStr for Cursor {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError::new("after", "is not a cursor this feed returned");
        let (txid, id) = s.split_once('-').ok_or_else(bad)?;
        // The digits of two ids, as `next_cursor` gives them (the document's pattern says so).
        // Up to 19 digits: cursors this feed gave before 2026-12-01 ended an empty PostgreSQL
        // page with `i64::MAX`; a number past it means the same ("after all of that txid").
        let number = |p: &str| -> Result<i64, ValidationError> {
            if !(1..=19).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            Ok(p.parse::<i64>().unwrap_or(i64::MAX))
        };
        let (txid, id) = (number(txid)?, number(id)?);
        if txid < 0 || id < 0 {
            return Err(bad());
        }
        Ok(Cursor { txid, id })
    }
}

/// The thresholds at which a brand's budgets and its campaigns' caps raise an alert, in whole
/// percents 1–100, ascending, each once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(value_type = Vec<u8>, example = json!([50, 80, 100]))]
pub struct AlertThresholds(Vec<u8>);

/// At most this many thresholds per brand.
pub const MAX_THRESHOLDS: usize = 20;

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds(vec![50, 80, 100])
    }
}

impl AlertThresholds {
    /// Validates a list as given (any order; duplicates are one).
    pub fn new(percents: &[i64], field: &str) -> Result<Self, ValidationError> {
        if percents.len() > MAX_THRESHOLDS {
            return Err(ValidationError::new(
                field,
                format!("at most {MAX_THRESHOLDS} thresholds"),
            ));
        }
        let mut out = Vec::with_capacity(percents.len());
        for p in percents {
            match u8::try_from(*p) {
                Ok(p @ 1..=100) => out.push(p),
                _ => {
                    return Err(ValidationError::new(
                        field,
                        "each threshold is a whole percent from 1 to 100",
                    ));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(AlertThresholds(out))
    }

    pub fn percents(&self) -> &[u8] {
        &self.0
    }

    /// As stored: comma-separated.
    pub fn to_stored(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(u8::to_string).collect();
        parts.join(",")
    }

    /// From the stored text (written by [`Self::to_stored`]; anything else is skipped).
    pub fn from_stored(s: &str) -> Self {
        let mut out: Vec<u8> = s
            .split(',')
            .filter_map(|p| p.trim().parse::<u8>().ok())
            .filter(|p| (1..=100).contains(p))
            .collect();
        out.sort_unstable();
        out.dedup();
        AlertThresholds(out)
    }

    /// The thresholds a total crossed when it went from `before` to `after` against `limit`:
    /// those with `before < t% × limit ≤ after`. A threshold already passed before (or passed
    /// when the list or the limit changed) is not crossed again; a limit of zero has none.
    pub fn crossed(&self, limit: Money, before: i64, after: i64) -> impl Iterator<Item = u8> + '_ {
        let limit = i128::from(limit.micros());
        let (before, after) = (i128::from(before) * 100, i128::from(after) * 100);
        self.0.iter().copied().filter(move |t| {
            let mark = i128::from(*t) * limit;
            limit > 0 && before < mark && mark <= after
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(units: i64) -> Money {
        Money::from_micros(units * 1_000_000)
    }

    #[test]
    fn a_total_crosses_each_threshold_between_before_and_after() {
        let t = AlertThresholds::default();
        let m = |x: i64| x * 1_000_000;
        let crossed = |b, a| t.crossed(money(100), m(b), m(a)).collect::<Vec<_>>();
        assert_eq!(crossed(0, 49), Vec::<u8>::new());
        assert_eq!(crossed(0, 50), vec![50]);
        assert_eq!(crossed(50, 60), Vec::<u8>::new(), "50 % was reached before");
        assert_eq!(crossed(40, 85), vec![50, 80], "one addition crossing two");
        assert_eq!(crossed(79, 250), vec![80, 100]);
        assert_eq!(crossed(100, 120), Vec::<u8>::new());
        // Micro-units: 80 % of 0.000003 is 0.0000024, reached by 0.000003, not by 0.000002.
        let tiny = Money::from_micros(3);
        assert_eq!(t.crossed(tiny, 0, 2).collect::<Vec<_>>(), vec![50]);
        assert_eq!(t.crossed(tiny, 2, 3).collect::<Vec<_>>(), vec![80, 100]);
        assert_eq!(t.crossed(Money::from_micros(0), 0, 5).count(), 0);
        // The largest totals do not overflow.
        let max = Money::from_micros(1_000_000_000_000_000);
        assert_eq!(
            t.crossed(max, 0, 1_000_000_000_000_000).collect::<Vec<_>>(),
            vec![50, 80, 100]
        );
    }

    #[test]
    fn thresholds_are_validated_sorted_and_stored() {
        let t = AlertThresholds::new(&[100, 25, 25, 75], "alert_thresholds").unwrap();
        assert_eq!(t.percents(), &[25, 75, 100]);
        assert_eq!(t.to_stored(), "25,75,100");
        assert_eq!(AlertThresholds::from_stored(&t.to_stored()), t);
        assert_eq!(
            AlertThresholds::from_stored(""),
            AlertThresholds::new(&[], "x").unwrap()
        );
        for bad in [[0].as_slice(), &[101], &[-5], &[i64::MAX]] {
            let e = AlertThresholds::new(bad, "alert_thresholds").unwrap_err();
            assert_eq!(e.field, "alert_thresholds");
        }
        assert!(AlertThresholds::new(&[1; 21], "x").is_err());
    }

    #[test]
    fn cursors_print_and_parse() {
        let c = Cursor { txid: 812, id: 7 };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        // A cursor of the form this feed gave before 2026-12-01 still reads.
        assert_eq!(
            "812-9223372036854775807".parse::<Cursor>().unwrap(),
            Cursor {
                txid: 812,
                id: i64::MAX
            }
        );
        for bad in [
            "",
            "7",
            "a-b",
            "-1-2",
            "1--2",
            "1-2-3",
            "+1-2",
            "1-12345678901234567890",
        ] {
            assert_eq!(bad.parse::<Cursor>().unwrap_err().field, "after", "{bad:?}");
        }
        assert!(Cursor { txid: 1, id: 0 } > Cursor { txid: 0, id: 99 });
    }

    #[test]
    fn event_types_have_stable_names() {
        for t in EventType::ALL {
            assert_eq!(t.name().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
        assert_eq!("nope".parse::<EventType>().unwrap_err().field, "type");
    }
}
