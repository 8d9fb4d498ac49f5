//! Accounting periods: a brand's local day and local calendar month.
//!
//! Spend is accumulated per period key instead of in a counter that a reset zeroes. A reset that is
//! late, missed or run twice therefore cannot wipe new spend or count old spend in a new period:
//! "today's spend" is simply the total stored under today's key.

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use chrono_tz::Tz;

/// The period key of a campaign's spend over all time (its lifetime cap's total) as the rule and
/// the views read it. It is not stored as a period: a campaign's lifetime is its carried total
/// (`campaigns.lifetime_carried`, see [`CARRIED`]) plus its month totals from its brand's mark on.
pub const LIFETIME: &str = "lifetime";

/// What a campaign's spend in the months before its brand's mark (`brands.carried_before`, a
/// month key; `''` before any) is called where it is named beside the periods (`verify`'s
/// findings): it is kept in the campaign's row, `campaigns.lifetime_carried`, which the spend
/// path reads anyway, so a batch writes nothing per campaign for the lifetime. Only an event of
/// a month before the mark adds to it on the spend path; the resets fold the months that ended
/// into it and move the mark, under the brand's lock (`repo::lifetime`); the lifetime is exact,
/// `carried + Σ months ≥ mark`, wherever the mark stands.
pub const CARRIED: &str = "carried";

/// The length of a spend bucket (SPEC §10: pacing and the spend series read per-bucket totals).
pub const BUCKET: TimeDelta = TimeDelta::minutes(5);

/// The start of the 5-minute bucket `instant` falls in. Buckets are aligned in UTC: every
/// timezone in use today is offset from UTC by a multiple of 5 minutes, so each one is also a
/// brand-local bucket, and the two passes of a repeated DST hour stay apart.
pub fn bucket_start(instant: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = BUCKET.num_seconds();
    let start = instant.timestamp().div_euclid(seconds) * seconds;
    DateTime::from_timestamp(start, 0).unwrap_or(instant)
}

/// What a period key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    Day,
    Month,
    Lifetime,
    /// [`CARRIED`]: part of the lifetime, never a total of its own.
    Carried,
}

impl PeriodKind {
    /// The kind of a key: `YYYY-MM-DD` a day, `YYYY-MM` a month, [`LIFETIME`], [`CARRIED`].
    pub fn of(key: &str) -> Self {
        match key {
            LIFETIME => PeriodKind::Lifetime,
            CARRIED => PeriodKind::Carried,
            k if k.len() == 7 => PeriodKind::Month,
            _ => PeriodKind::Day,
        }
    }
}

/// The pair of period keys an instant falls into, read in a brand's timezone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeriodKeys {
    /// `YYYY-MM-DD`, the brand-local date.
    pub day: String,
    /// `YYYY-MM`, the brand-local calendar month.
    pub month: String,
}

impl PeriodKeys {
    pub fn at(instant: DateTime<Utc>, tz: Tz) -> Self {
        let local = instant.with_timezone(&tz).date_naive();
        PeriodKeys {
            day: local.format("%Y-%m-%d").to_string(),
            month: format!("{:04}-{:02}", local.year(), local.month()),
        }
    }
}

/// The month key after `month` (`YYYY-MM`), `None` for a key that is not a month.
pub fn next_month(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if month.len() != 7 || !(1..=12).contains(&m) {
        return None;
    }
    Some(if m == 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    })
}

/// The month keys from `from` through `to`, both included (empty when `to` is before `from`
/// or either is not a month key).
pub fn months_through(from: &str, to: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut month = Some(from.to_owned()).filter(|m| next_month(m).is_some());
    while let Some(m) = month.filter(|m| m.as_str() <= to) {
        month = next_month(&m);
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn late_evening_utc_is_tomorrow_in_tokyo() {
        let at = Utc.with_ymd_and_hms(2026, 3, 14, 23, 30, 0).unwrap();
        assert_eq!(PeriodKeys::at(at, Tz::UTC).day, "2026-03-14");
        assert_eq!(PeriodKeys::at(at, chrono_tz::Asia::Tokyo).day, "2026-03-15");
    }

    #[test]
    fn month_boundary_follows_the_brand_timezone() {
        // 03:00 UTC on the 1st is still the previous month in New York.
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
        let ny = PeriodKeys::at(at, chrono_tz::America::New_York);
        assert_eq!(
            ny,
            PeriodKeys {
                day: "2026-11-30".into(),
                month: "2026-11".into()
            }
        );
        let utc = PeriodKeys::at(at, Tz::UTC);
        assert_eq!(
            utc,
            PeriodKeys {
                day: "2026-12-01".into(),
                month: "2026-12".into()
            }
        );
    }

    #[test]
    fn buckets_start_on_five_minute_marks_before_and_after_1970() {
        let at = Utc.with_ymd_and_hms(2026, 3, 14, 23, 34, 59).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 14, 23, 30, 0).unwrap();
        assert_eq!(bucket_start(at), start);
        assert_eq!(bucket_start(start), start);
        let early = Utc.with_ymd_and_hms(1969, 12, 31, 23, 58, 0).unwrap();
        let early_start = Utc.with_ymd_and_hms(1969, 12, 31, 23, 55, 0).unwrap();
        assert_eq!(bucket_start(early), early_start);
    }

    #[test]
    fn a_utc_bucket_is_a_local_bucket_in_kolkata_and_kathmandu() {
        // +05:30 and +05:45: local bucket boundaries fall on UTC ones.
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 10, 7, 0).unwrap();
        for tz in [chrono_tz::Asia::Kolkata, chrono_tz::Asia::Kathmandu] {
            let local = bucket_start(at).with_timezone(&tz);
            assert_eq!(chrono::Timelike::minute(&local) % 5, 0);
            assert_eq!(chrono::Timelike::second(&local), 0);
        }
    }

    #[test]
    fn months_run_across_the_new_year() {
        assert_eq!(next_month("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(next_month("2026-09").as_deref(), Some("2026-10"));
        assert_eq!(next_month(""), None);
        assert_eq!(next_month("2026-13"), None);
        assert_eq!(next_month(CARRIED), None);
        assert_eq!(
            months_through("2026-11", "2027-02"),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
        assert_eq!(months_through("2026-11", "2026-11"), ["2026-11"]);
        assert!(months_through("2026-11", "2026-10").is_empty());
        assert!(months_through("", "2026-10").is_empty());
        assert_eq!(PeriodKind::of(CARRIED), PeriodKind::Carried);
        assert_eq!(PeriodKind::of("2026-11"), PeriodKind::Month);
    }

    #[test]
    fn new_year_in_kiritimati_comes_first() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 10, 0, 0).unwrap();
        let k = PeriodKeys::at(at, chrono_tz::Pacific::Kiritimati);
        assert_eq!(k.day, "2027-01-01");
        assert_eq!(k.month, "2027-01");
    }
}
