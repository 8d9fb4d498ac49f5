//! Reading one month of spend logs out, in pages, for `adbudget export-spend` (issue #19, item 4:
//! archive a month before the retention drops it).
//!
//! A month is a calendar month of `occurred_at` in UTC, the key the spend logs' retention goes by.
//! Pages are read by id (keyset: `id > after`), so a month of any size is read in constant memory
//! and no page is ever skipped or read twice, whatever is written meanwhile (ids only grow).

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::SpendRow;
use crate::DbConnection;
use crate::schema::spend_logs;
use adbudget_core::money::Money;

/// A calendar month of `occurred_at`, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    first: NaiveDate,
}

impl Month {
    /// `YYYY-MM` (months 01–12); `None` for anything else.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        let well_formed = year.len() == 4
            && month.len() == 2
            && year
                .bytes()
                .chain(month.bytes())
                .all(|b| b.is_ascii_digit());
        if !well_formed {
            return None;
        }
        let first = NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?;
        Some(Month { first })
    }

    /// `[start, end)` of the month, as stored (UTC `TIMESTAMP`s).
    fn span(self) -> (NaiveDateTime, NaiveDateTime) {
        let next = if self.first.month() == 12 {
            NaiveDate::from_ymd_opt(self.first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.first.year(), self.first.month() + 1, 1)
        };
        let start = self.first.and_hms_opt(0, 0, 0).unwrap_or_default();
        let end = next
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or(NaiveDateTime::MAX);
        (start, end)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// The CSV header: [`ExportedLog`]'s fields, in their order (written by hand only for a month
/// without logs; the e2e test `cli::export_spend` reads both).
pub const HEADER: [&str; 10] = [
    "id",
    "brand_id",
    "campaign_id",
    "amount",
    "occurred_at",
    "received_at",
    "event_id",
    "token_id",
    "reverses_id",
    "reason",
];

/// One spend log as exported: every column, amounts in the API's decimal notation, times in
/// RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportedLog {
    pub id: i64,
    pub brand_id: i64,
    pub campaign_id: i64,
    pub amount: String,
    pub occurred_at: String,
    pub received_at: String,
    pub event_id: Option<String>,
    pub token_id: Option<i64>,
    /// The log a reversal reverses (its amount is negative), with the reversal's reason.
    pub reverses_id: Option<i64>,
    pub reason: Option<String>,
}

/// How many spend logs `month` holds (the progress bar's total).
pub fn count(conn: &mut DbConnection, month: Month) -> QueryResult<i64> {
    let (start, end) = month.span();
    spend_logs::table
        .filter(spend_logs::occurred_at.ge(start))
        .filter(spend_logs::occurred_at.lt(end))
        .count()
        .get_result(conn)
}

/// The next at most `limit` spend logs of `month` with an id above `after`, by id.
pub fn page(
    conn: &mut DbConnection,
    month: Month,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<ExportedLog>> {
    let (start, end) = month.span();
    let rows: Vec<(SpendRow, Option<i64>, Option<String>)> = spend_logs::table
        .select((
            SpendRow::as_select(),
            spend_logs::reverses_id,
            spend_logs::reason,
        ))
        .filter(spend_logs::occurred_at.ge(start))
        .filter(spend_logs::occurred_at.lt(end))
        .filter(spend_logs::id.gt(after))
        .order(spend_logs::id)
        .limit(limit)
        .load(conn)?;
    let time = |t: NaiveDateTime| {
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    Ok(rows
        .into_iter()
        .map(|(r, reverses_id, reason)| ExportedLog {
            id: r.id,
            brand_id: r.brand_id,
            campaign_id: r.campaign_id,
            amount: Money::from_micros(r.amount).to_string(),
            occurred_at: time(r.occurred_at),
            received_at: time(r.received_at),
            event_id: r.event_id,
            token_id: r.token_id,
            reverses_id,
            reason,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::Month;

    #[test]
    fn months_are_yyyy_mm() {
        assert_eq!(
            Month::parse("2026-11").map(|m| m.to_string()).as_deref(),
            Some("2026-11")
        );
        let (start, end) = Month::parse("2026-12").unwrap().span();
        assert_eq!(start.to_string(), "2026-12-01 00:00:00");
        assert_eq!(end.to_string(), "2027-01-01 00:00:00");
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "+026-11",
        ] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }
}
