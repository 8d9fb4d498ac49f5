//! Accounting periods: a brand's local day and local calendar month.
//!
//! Spend is accumulated per period key instead of in a counter that a reset zeroes. A reset that is
//! late, missed or run twice therefore cannot wipe new spend or count old spend in a new period:
//! "today's spend" is simply the total stored under today's key.

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

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
    fn new_year_in_kiritimati_comes_first() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 10, 0, 0).unwrap();
        let k = PeriodKeys::at(at, chrono_tz::Pacific::Kiritimati);
        assert_eq!(k.day, "2027-01-01");
        assert_eq!(k.month, "2027-01");
    }
}
