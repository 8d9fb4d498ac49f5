//! Dayparting (SPEC §5): the hours of the week in which a campaign may run, read in the brand's
//! timezone.
//!
//! A schedule is a list of windows. A window has a set of days, a start (inclusive) and an end
//! (exclusive) at minute resolution; `"24:00"` is allowed as an end. A window whose start is after
//! its end runs past midnight into the next day and belongs to the day it starts on. Wall-clock
//! time is read in the brand's timezone, so DST is honoured: times skipped by spring-forward never
//! occur, and the repeated hour of fall-back is inside a window both times.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::ValidationError;

const MINUTES_PER_DAY: u16 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ALL_DAYS: u8 = 0b111_1111;

/// One window of a schedule, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `i` set = the window starts on day `i` (0 = Monday … 6 = Sunday).
    days: u8,
    /// Minutes after local midnight, inclusive; 0..1440.
    start: u16,
    /// Minutes after local midnight, exclusive; 1..=1440; never equal to `start`.
    end: u16,
}

/// A validated dayparting schedule: at least one window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    windows: Vec<Window>,
}

impl Window {
    /// Minutes after local midnight at which the window starts (inclusive).
    pub fn start_minute(&self) -> u16 {
        self.start
    }

    /// Minutes after local midnight at which the window ends (exclusive; 1440 is midnight).
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    fn starts_on(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    /// Whether local wall-clock time `t` lies inside this window.
    pub fn contains(&self, t: NaiveDateTime) -> bool {
        let day = t.weekday();
        let minute = (t.hour() * 60 + t.minute()) as u16;
        if self.start < self.end {
            self.starts_on(day) && self.start <= minute && minute < self.end
        } else {
            // Past midnight: the evening part on a listed day, the morning part on the day after.
            (self.starts_on(day) && minute >= self.start)
                || (self.starts_on(day.pred()) && minute < self.end)
        }
    }
}

impl Schedule {
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Whether local wall-clock time `t` lies in one of the windows.
    pub fn contains_local(&self, t: NaiveDateTime) -> bool {
        self.windows.iter().any(|w| w.contains(t))
    }

    /// Whether the instant, read in `tz`, lies in one of the windows.
    pub fn contains(&self, instant: DateTime<Utc>, tz: Tz) -> bool {
        self.contains_local(instant.with_timezone(&tz).naive_local())
    }

    /// Parses a schedule from request JSON. Accepted forms: a list of windows, `{"windows": [...]}`,
    /// or a single window. A window is `{"days": [...], "start": "HH:MM", "end": "HH:MM"}` or the
    /// original's `{"start_hour": 9, "end_hour": 17}` (with optional `days`). `field` names the
    /// location for error messages, e.g. `"dayparting"`.
    pub fn from_json(value: &Value, field: &str) -> Result<Self, ValidationError> {
        let (items, prefix): (Vec<&Value>, String) = match value {
            Value::Array(items) => (items.iter().collect(), field.to_owned()),
            Value::Object(map) if map.contains_key("windows") => {
                if let Some(extra) = map.keys().find(|k| *k != "windows") {
                    return Err(ValidationError::new(
                        format!("{field}.{extra}"),
                        "unknown field; a schedule object has only \"windows\"",
                    ));
                }
                match &map["windows"] {
                    Value::Array(items) => (items.iter().collect(), format!("{field}.windows")),
                    _ => {
                        return Err(ValidationError::new(
                            format!("{field}.windows"),
                            "must be a list of windows",
                        ));
                    }
                }
            }
            Value::Object(_) => {
                let window = parse_window(value, field)?;
                return Ok(Schedule {
                    windows: vec![window],
                });
            }
            _ => {
                return Err(ValidationError::new(
                    field,
                    "must be a list of windows such as [{\"days\": [\"mon\"], \"start\": \"09:00\", \"end\": \"17:00\"}]",
                ));
            }
        };
        if items.is_empty() {
            return Err(ValidationError::new(
                field,
                "must contain at least one window (remove the schedule to run at all hours)",
            ));
        }
        if items.len() > 100 {
            return Err(ValidationError::new(
                field,
                "must contain at most 100 windows",
            ));
        }
        let windows = items
            .into_iter()
            .enumerate()
            .map(|(i, w)| parse_window(w, &format!("{prefix}[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Schedule { windows })
    }

    /// Reads a schedule as stored by [`Schedule::to_stored`]. Stored schedules were validated on
    /// the way in, so this only fails on a corrupted row.
    pub fn from_stored(text: &str) -> Result<Self, ValidationError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ValidationError::new("dayparting", format!("stored schedule is not JSON: {e}"))
        })?;
        Schedule::from_json(&value, "dayparting")
    }

    /// The canonical JSON text stored in the database.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".to_owned())
    }
}

fn parse_window(value: &Value, field: &str) -> Result<Window, ValidationError> {
    let Value::Object(map) = value else {
        return Err(ValidationError::new(
            field,
            "must be an object with \"start\" and \"end\"",
        ));
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "days" | "start" | "end" | "start_hour" | "end_hour"
        ) {
            return Err(ValidationError::new(
                format!("{field}.{key}"),
                "unknown field",
            ));
        }
    }
    let days = match map.get("days") {
        None | Some(Value::Null) => ALL_DAYS,
        Some(Value::Array(days)) => {
            if days.is_empty() {
                return Err(ValidationError::new(
                    format!("{field}.days"),
                    "must name at least one day (leave it out for every day)",
                ));
            }
            let mut mask = 0u8;
            for (i, d) in days.iter().enumerate() {
                let bit = d.as_str().and_then(parse_day).ok_or_else(|| {
                    ValidationError::new(
                        format!("{field}.days[{i}]"),
                        "must be one of mon, tue, wed, thu, fri, sat, sun",
                    )
                })?;
                mask |= 1 << bit;
            }
            mask
        }
        Some(_) => {
            return Err(ValidationError::new(
                format!("{field}.days"),
                "must be a list of days such as [\"mon\", \"tue\"]",
            ));
        }
    };

    let has_hm = map.contains_key("start") || map.contains_key("end");
    let has_hours = map.contains_key("start_hour") || map.contains_key("end_hour");
    let (start, end) = match (has_hm, has_hours) {
        (true, true) => {
            return Err(ValidationError::new(
                format!("{field}.start_hour"),
                "use either start/end or start_hour/end_hour, not both",
            ));
        }
        (false, false) => {
            return Err(ValidationError::new(
                format!("{field}.start"),
                "is required",
            ));
        }
        (true, false) => {
            let start = hhmm(map.get("start"), &format!("{field}.start"), false)?;
            let end = hhmm(map.get("end"), &format!("{field}.end"), true)?;
            (start, end)
        }
        (false, true) => {
            let start = hour(map.get("start_hour"), &format!("{field}.start_hour"), 0, 23)?;
            let end = hour(map.get("end_hour"), &format!("{field}.end_hour"), 1, 24)?;
            (start * 60, end * 60)
        }
    };
    if start == end {
        let which = if has_hours { "end_hour" } else { "end" };
        return Err(ValidationError::new(
            format!("{field}.{which}"),
            "must differ from the start (a window cannot be empty)",
        ));
    }
    Ok(Window { days, start, end })
}

fn parse_day(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAY_NAMES
        .iter()
        .zip(full)
        .position(|(short, long)| s == *short || s == long)
        .map(|i| i as u8)
}

fn hhmm(value: Option<&Value>, field: &str, is_end: bool) -> Result<u16, ValidationError> {
    let msg = if is_end {
        "must be a time \"HH:MM\" between \"00:01\" and \"24:00\""
    } else {
        "must be a time \"HH:MM\" between \"00:00\" and \"23:59\""
    };
    let Some(Value::String(s)) = value else {
        return Err(ValidationError::new(
            field,
            if value.is_none() { "is required" } else { msg },
        ));
    };
    let b = s.as_bytes();
    let ok_shape =
        b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
    if !ok_shape {
        return Err(ValidationError::new(field, msg));
    }
    let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
    let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
    let minutes = h * 60 + m;
    let valid = m < 60
        && if is_end {
            (1..=MINUTES_PER_DAY).contains(&minutes)
        } else {
            h < 24
        };
    if !valid {
        return Err(ValidationError::new(field, msg));
    }
    Ok(minutes)
}

fn hour(value: Option<&Value>, field: &str, min: u16, max: u16) -> Result<u16, ValidationError> {
    let msg = format!("must be a whole hour from {min} to {max}");
    match value {
        None => Err(ValidationError::new(field, "is required")),
        Some(v) => v
            .as_u64()
            // JSON Schema's integers include `9.0`.
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .filter(|h| (u64::from(min)..=u64::from(max)).contains(h))
            .map(|h| h as u16)
            .ok_or_else(|| ValidationError::new(field, msg)),
    }
}

fn fmt_minutes(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let days: Vec<&str> = (0..7)
            .filter(|i| self.days & (1 << i) != 0)
            .map(|i| DAY_NAMES[i])
            .collect();
        let mut s = serializer.serialize_struct("Window", 3)?;
        s.serialize_field("days", &days)?;
        s.serialize_field("start", &fmt_minutes(self.start))?;
        s.serialize_field("end", &fmt_minutes(self.end))?;
        s.end()
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.windows.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use serde_json::json;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn schedule(v: Value) -> Schedule {
        Schedule::from_json(&v, "dayparting").unwrap()
    }

    // 2026-11-16 is a Monday.
    const MON: u32 = 16;

    #[test]
    fn nine_to_five_the_originals_cases() {
        let s = schedule(json!({"start_hour": 9, "end_hour": 17}));
        assert!(
            s.contains_local(at(2026, 11, MON, 9, 0)),
            "9:00 is inside a 9-17 window"
        );
        assert!(
            !s.contains_local(at(2026, 11, MON, 8, 59)),
            "8:59 is outside"
        );
        assert!(
            !s.contains_local(at(2026, 11, MON, 17, 0)),
            "17:00 is outside (end exclusive)"
        );
        assert!(s.contains_local(at(2026, 11, MON, 16, 59)));
        assert_eq!(s, schedule(json!([{"start": "09:00", "end": "17:00"}])));
    }

    #[test]
    fn start_inclusive_end_exclusive_at_minute_resolution() {
        let s = schedule(json!([{"days": ["mon"], "start": "09:30", "end": "09:45"}]));
        assert!(!s.contains_local(at(2026, 11, MON, 9, 29)));
        assert!(s.contains_local(at(2026, 11, MON, 9, 30)));
        assert!(s.contains_local(at(2026, 11, MON, 9, 44)));
        assert!(!s.contains_local(at(2026, 11, MON, 9, 45)));
    }

    #[test]
    fn end_of_day_is_24_00() {
        let s = schedule(json!({"start": "20:00", "end": "24:00", "days": ["mon"]}));
        assert!(s.contains_local(at(2026, 11, MON, 23, 59)));
        assert!(
            !s.contains_local(at(2026, 11, MON + 1, 0, 0)),
            "Tuesday 00:00 is not Monday's window"
        );
        let full = schedule(json!({"start_hour": 0, "end_hour": 24}));
        assert!(full.contains_local(at(2026, 11, MON, 0, 0)));
        assert!(full.contains_local(at(2026, 11, MON, 23, 59)));
    }

    #[test]
    fn past_midnight_window_belongs_to_the_day_it_starts_on() {
        let s = schedule(json!([{"days": ["fri"], "start": "22:00", "end": "02:00"}]));
        let fri = MON + 4;
        assert!(s.contains_local(at(2026, 11, fri, 22, 0)));
        assert!(
            s.contains_local(at(2026, 11, fri + 1, 1, 59)),
            "Saturday 01:59 is Friday's night"
        );
        assert!(!s.contains_local(at(2026, 11, fri + 1, 2, 0)));
        assert!(
            !s.contains_local(at(2026, 11, fri, 1, 0)),
            "Friday 01:00 belongs to Thursday's night"
        );
        assert!(
            !s.contains_local(at(2026, 11, fri + 1, 22, 30)),
            "Saturday evening is not listed"
        );
        // The hour shorthand can now run past midnight too (the original could not).
        let h = schedule(json!({"start_hour": 22, "end_hour": 6}));
        assert!(h.contains_local(at(2026, 11, MON, 23, 0)));
        assert!(h.contains_local(at(2026, 11, MON, 5, 59)));
        assert!(!h.contains_local(at(2026, 11, MON, 6, 0)));
    }

    #[test]
    fn days_of_week() {
        let s = schedule(json!([{"days": ["sat", "Sunday"], "start": "10:00", "end": "12:00"}]));
        assert!(!s.contains_local(at(2026, 11, MON, 11, 0)));
        assert!(s.contains_local(at(2026, 11, MON + 5, 11, 0)));
        assert!(s.contains_local(at(2026, 11, MON + 6, 11, 0)));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            json!([{"days": ["sat", "sun"], "start": "10:00", "end": "12:00"}])
        );
    }

    #[test]
    fn dst_spring_forward_and_fall_back_in_berlin() {
        let tz = chrono_tz::Europe::Berlin;
        // 2026-03-29: clocks jump 02:00 → 03:00. A 02:00–03:00 window never occurs that night.
        let s = schedule(json!([{"start": "02:00", "end": "03:00"}]));
        for minute in 0..(24 * 60) {
            let instant = Utc.with_ymd_and_hms(2026, 3, 28, 22, 0, 0).unwrap()
                + chrono::Duration::minutes(minute);
            assert!(
                !s.contains(instant, tz),
                "02:xx does not exist on spring-forward day ({instant})"
            );
        }
        // 09:00 local is 07:00 UTC after the change (CEST, UTC+2), 08:00 UTC the day before.
        let nine = schedule(json!({"start_hour": 9, "end_hour": 17}));
        assert!(nine.contains(Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap(), tz));
        assert!(!nine.contains(Utc.with_ymd_and_hms(2026, 3, 28, 7, 0, 0).unwrap(), tz));
        assert!(nine.contains(Utc.with_ymd_and_hms(2026, 3, 28, 8, 0, 0).unwrap(), tz));
        // 2026-10-25: 03:00 → 02:00; the 02:00–03:00 hour happens twice and is open both times.
        let a = Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(); // 02:30 CEST
        let b = Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap(); // 02:30 CET
        assert!(s.contains(a, tz) && s.contains(b, tz));
        assert!(!s.contains(Utc.with_ymd_and_hms(2026, 10, 25, 2, 0, 0).unwrap(), tz)); // 03:00 CET
    }

    #[test]
    fn dst_in_new_york() {
        let tz = chrono_tz::America::New_York;
        let nine = schedule(json!({"start_hour": 9, "end_hour": 17}));
        // 2026-03-08 spring forward: 09:00 EDT = 13:00 UTC.
        assert!(nine.contains(Utc.with_ymd_and_hms(2026, 3, 8, 13, 0, 0).unwrap(), tz));
        assert!(!nine.contains(Utc.with_ymd_and_hms(2026, 3, 8, 12, 59, 0).unwrap(), tz));
        // 2026-11-01 fall back: 09:00 EST = 14:00 UTC; 13:30 UTC is 08:30 EST.
        assert!(nine.contains(Utc.with_ymd_and_hms(2026, 11, 1, 14, 0, 0).unwrap(), tz));
        assert!(!nine.contains(Utc.with_ymd_and_hms(2026, 11, 1, 13, 30, 0).unwrap(), tz));
        // The repeated 01:00–02:00 hour of fall-back is inside a 01:00–02:00 window both times.
        let one = schedule(json!([{"start": "01:00", "end": "02:00"}]));
        assert!(one.contains(Utc.with_ymd_and_hms(2026, 11, 1, 5, 15, 0).unwrap(), tz)); // 01:15 EDT
        assert!(one.contains(Utc.with_ymd_and_hms(2026, 11, 1, 6, 15, 0).unwrap(), tz)); // 01:15 EST
    }

    #[test]
    fn the_wrapped_form_and_the_stored_form_round_trip() {
        let s = schedule(
            json!({"windows": [{"start": "09:00", "end": "17:00", "days": ["mon", "tue"]}]}),
        );
        assert_eq!(Schedule::from_stored(&s.to_stored()).unwrap(), s);
    }

    #[test]
    fn invalid_windows_name_the_field() {
        let cases = [
            (json!([]), "dayparting"),
            (
                json!([{"start": "09:00", "end": "09:00"}]),
                "dayparting[0].end",
            ),
            (
                json!({"start_hour": 9, "end_hour": 9}),
                "dayparting.end_hour",
            ),
            (
                json!([{"start": "24:00", "end": "10:00"}]),
                "dayparting[0].start",
            ),
            (
                json!([{"start": "09:00", "end": "24:01"}]),
                "dayparting[0].end",
            ),
            (
                json!([{"start": "9:00", "end": "17:00"}]),
                "dayparting[0].start",
            ),
            (
                json!([{"start": "09:60", "end": "17:00"}]),
                "dayparting[0].start",
            ),
            (json!([{"start": "09:00"}]), "dayparting[0].end"),
            (
                json!([{"start": "09:00", "end": "17:00", "days": ["funday"]}]),
                "dayparting[0].days[0]",
            ),
            (
                json!([{"start": "09:00", "end": "17:00", "days": []}]),
                "dayparting[0].days",
            ),
            (
                json!([{"start": "09:00", "end": "17:00", "color": "red"}]),
                "dayparting[0].color",
            ),
            (
                json!({"start_hour": 24, "end_hour": 5}),
                "dayparting.start_hour",
            ),
            (
                json!({"start_hour": 3, "end_hour": 0}),
                "dayparting.end_hour",
            ),
            (
                json!({"start_hour": 3, "end_hour": 25}),
                "dayparting.end_hour",
            ),
            (
                json!({"start_hour": 3.5, "end_hour": 5}),
                "dayparting.start_hour",
            ),
            (
                json!({"start_hour": 3, "end": "05:00"}),
                "dayparting.start_hour",
            ),
            (json!("always"), "dayparting"),
        ];
        for (input, field) in cases {
            let err = Schedule::from_json(&input, "dayparting").unwrap_err();
            assert_eq!(err.field, field, "input {input}: {}", err.message);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const ZONES: [Tz; 6] = [
        Tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Asia::Kathmandu,
        chrono_tz::Pacific::Chatham,
    ];

    fn window() -> impl Strategy<Value = Window> {
        (1u8..128, 0u16..1440, 1u16..=1440)
            .prop_filter("start != end", |(_, s, e)| s != e)
            .prop_map(|(days, start, end)| Window { days, start, end })
    }

    /// The reference: every (weekday, minute) the windows cover, written out one by one.
    fn minute_table(windows: &[Window]) -> Vec<[bool; 1440]> {
        let mut table = vec![[false; 1440]; 7];
        for w in windows {
            for day in 0..7usize {
                if w.days & (1 << day) == 0 {
                    continue;
                }
                let mut minute = w.start as usize;
                let mut on = day;
                // Walk minute by minute from the start to the end, crossing midnight at most once.
                loop {
                    if minute == 1440 {
                        if w.end == 1440 {
                            break;
                        }
                        minute = 0;
                        on = (on + 1) % 7;
                    }
                    if minute == w.end as usize && (w.start < w.end || on != day) {
                        break;
                    }
                    table[on][minute] = true;
                    minute += 1;
                }
            }
        }
        table
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn matches_a_brute_force_minute_table(
            windows in proptest::collection::vec(window(), 1..4),
            zone in 0usize..ZONES.len(),
            // 2024-01-01 .. 2028-01-01, which includes every DST change of those years.
            seconds in 1_704_067_200i64..1_830_297_600,
        ) {
            let tz = ZONES[zone];
            let instant = Utc.timestamp_opt(seconds, 0).single().unwrap();
            let local = instant.with_timezone(&tz).naive_local();
            let table = minute_table(&windows);
            let expected = table[local.weekday().num_days_from_monday() as usize][(local.hour() * 60 + local.minute()) as usize];
            let schedule = Schedule { windows: windows.clone() };
            prop_assert_eq!(schedule.contains(instant, tz), expected, "{:?} at {} in {}", windows, local, tz);
        }

        #[test]
        fn any_json_parses_or_fails_with_a_field(s in "\\PC{0,60}") {
            if let Ok(value) = serde_json::from_str::<Value>(&s)
                && let Err(e) = Schedule::from_json(&value, "dayparting")
            {
                prop_assert!(e.field.starts_with("dayparting"));
            }
        }

        #[test]
        fn stored_schedules_read_back_the_same(windows in proptest::collection::vec(window(), 1..5)) {
            let schedule = Schedule { windows };
            prop_assert_eq!(Schedule::from_stored(&schedule.to_stored()).unwrap(), schedule);
        }
    }
}

/// The request schemas of a dayparting schedule, for the OpenAPI document only: the server reads
/// schedules with [`Schedule::from_json`], which says the same and also refuses a window whose
/// start equals its end (which a schema cannot say).
pub mod schema {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// A day of the week.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    pub enum Day {
        Mon,
        Tue,
        Wed,
        Thu,
        Fri,
        Sat,
        Sun,
    }

    /// A window by clock times, brand-local: `start` inclusive, `end` exclusive; a start after
    /// the end runs past midnight (the window belongs to the day it starts on).
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct Window {
        /// The days the window starts on; every day when left out.
        #[schema(nullable, min_items = 1, example = json!(["mon", "tue", "wed", "thu", "fri"]))]
        days: Option<Vec<Day>>,
        /// "HH:MM", 00:00–23:59.
        #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "09:00")]
        start: String,
        /// "HH:MM", 00:01–24:00; not equal to `start`.
        #[schema(
            pattern = r"^(00:(0[1-9]|[1-5][0-9])|(0[1-9]|1[0-9]|2[0-3]):[0-5][0-9]|24:00)$",
            example = "17:00"
        )]
        end: String,
    }

    /// A window in the original system's whole hours: `{"start_hour": 9, "end_hour": 17}` is
    /// 09:00–17:00; `end_hour` not equal to `start_hour`.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct HoursWindow {
        #[schema(nullable, min_items = 1)]
        days: Option<Vec<Day>>,
        #[schema(minimum = 0, maximum = 23, example = 9)]
        start_hour: i32,
        #[schema(minimum = 1, maximum = 24, example = 17)]
        end_hour: i32,
    }

    /// One window, either way.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum AnyWindow {
        #[schema(title = "ClockWindow")]
        Clock(Window),
        #[schema(title = "HoursWindow")]
        Hours(HoursWindow),
    }

    /// `{"windows": [...]}`.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct Windows {
        #[schema(min_items = 1, max_items = 100)]
        windows: Vec<AnyWindow>,
    }

    /// A dayparting schedule (SPEC §5): a list of 1–100 windows, `{"windows": [...]}`, or one
    /// window.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum Dayparting {
        #[schema(title = "WindowList")]
        List(Vec<AnyWindow>),
        #[schema(title = "WindowsObject")]
        Object(Windows),
        #[schema(title = "OneWindow")]
        One(AnyWindow),
    }
}
