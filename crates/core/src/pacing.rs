//! Pacing (SPEC §10), the pure part: the eligible time of a brand-local day — the instants in
//! which at least one of the brand's campaigns may run by its dayparting schedule (all of the day
//! when one has none) — on DST days too (23 and 25 hours), and how much of it has elapsed.
//!
//! Even pacing expects `budget × elapsed eligible time ÷ eligible time of the period`; these
//! functions give the two durations. They compute from the schedules' window boundaries, not
//! minute by minute (a month of a brand with many campaigns stays cheap); the tests check them
//! against a brute-force minute table evaluated with the rule's own `Schedule::contains`.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::dayparting::Schedule;
use crate::money::Money;
use rust_decimal::Decimal;

/// A half-open interval of instants, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Span {
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// The first instant whose local date in `tz` is `day` or later: local midnight, or the first
/// instant after it where a DST change skips midnight itself.
pub fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut t = day.and_time(NaiveTime::MIN);
    // A gap is at most a few hours; step past it a minute at a time (never more than 24 hours).
    for _ in 0..=24 * 60 {
        if let Some(instant) = tz.from_local_datetime(&t).earliest() {
            return instant.with_timezone(&Utc);
        }
        t += Duration::minutes(1);
    }
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The local day `day` in `tz` as instants: `[start_of_day(day), start_of_day(day + 1))`, 23 or 25
/// hours long on DST days.
pub fn day_bounds(day: NaiveDate, tz: Tz) -> Span {
    let next = day.succ_opt().unwrap_or(day);
    Span {
        start: start_of_day(day, tz),
        end: start_of_day(next, tz),
    }
}

/// The instants in `span` at which `tz`'s offset from UTC changes (found hour by hour, then to
/// the second by bisection; a zone changes its offset at most a couple of times a day).
fn offset_changes(span: Span, tz: Tz) -> Vec<DateTime<Utc>> {
    use chrono::Offset;
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut changes = Vec::new();
    let mut from = span.start;
    while from < span.end {
        let to = (from + Duration::hours(1)).min(span.end);
        if offset(from) != offset(to) {
            // The first second of the new offset.
            let (mut lo, mut hi) = (from, to);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(lo) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            changes.push(hi);
        }
        from = to;
    }
    changes
}

/// The instants of `span` at which `schedule`'s verdict may change: where the local wall-clock
/// time crosses one of its windows' boundaries (on the local dates the span covers), and where
/// the offset changes (the wall clock jumps).
fn change_points(
    span: Span,
    tz: Tz,
    schedule: &Schedule,
    offsets: &[DateTime<Utc>],
) -> Vec<DateTime<Utc>> {
    let mut points = vec![span.start];
    points.extend_from_slice(offsets);
    let first = span.start.with_timezone(&tz).date_naive();
    let last = span.end.with_timezone(&tz).date_naive();
    let mut date = first;
    while date <= last {
        for w in schedule.windows() {
            for minute in [w.start_minute(), w.end_minute()] {
                let local = date.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(minute));
                // A boundary may occur twice (the hour repeated by a fall-back) or not at all.
                for instant in tz
                    .from_local_datetime(&local)
                    .earliest()
                    .into_iter()
                    .chain(tz.from_local_datetime(&local).latest())
                {
                    let instant = instant.with_timezone(&Utc);
                    if span.contains(instant) {
                        points.push(instant);
                    }
                }
            }
        }
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    points.sort_unstable();
    points.dedup();
    points
}

/// Merges overlapping and touching spans (sorted by start).
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable_by_key(|s| (s.start, s.end));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans.into_iter().filter(|s| s.start < s.end) {
        match merged.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    merged
}

/// The eligible time within `span`: the instants at which at least one of `schedules` lets its
/// campaign run (`None`: a campaign without a schedule, which may run at any time). No campaign,
/// no eligible time.
pub fn eligible(span: Span, tz: Tz, schedules: &[Option<&Schedule>]) -> Vec<Span> {
    if schedules.iter().any(Option::is_none) {
        return vec![span].into_iter().filter(|s| s.start < s.end).collect();
    }
    let offsets = offset_changes(span, tz);
    let mut distinct: Vec<&Schedule> = Vec::new();
    for s in schedules.iter().flatten() {
        if !distinct.contains(s) {
            distinct.push(s);
        }
    }
    let mut spans = Vec::new();
    for schedule in distinct {
        let points = change_points(span, tz, schedule, &offsets);
        for (i, &from) in points.iter().enumerate() {
            let to = points.get(i + 1).copied().unwrap_or(span.end);
            // The verdict holds from one change point to the next: the boundaries are whole
            // minutes, so the first instant decides.
            if schedule.contains(from, tz) {
                spans.push(Span {
                    start: from,
                    end: to,
                });
            }
        }
    }
    merge(spans)
}

/// The eligible time of brand-local day `day`.
pub fn eligible_day(day: NaiveDate, tz: Tz, schedules: &[Option<&Schedule>]) -> Vec<Span> {
    eligible(day_bounds(day, tz), tz, schedules)
}

/// The total length of `spans`.
pub fn total(spans: &[Span]) -> Duration {
    spans.iter().map(Span::duration).sum()
}

/// How much of `spans` lies before `now`.
pub fn elapsed(spans: &[Span], now: DateTime<Utc>) -> Duration {
    spans
        .iter()
        .map(|s| (now.min(s.end) - s.start).max(Duration::zero()))
        .sum()
}

/// How spend compares with even pacing (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaceStatus {
    /// Pace below 0.85.
    Behind,
    /// Pace from 0.85 to 1.15, both included.
    OnTrack,
    /// Pace above 1.15.
    Ahead,
    /// Paused by this budget.
    Exhausted,
}

/// What pacing one budget over one period needs.
#[derive(Debug, Clone, Copy)]
pub struct PaceInput<'a> {
    pub budget: Money,
    pub spend: Money,
    /// Spend of the last hour (the current rate).
    pub spend_last_hour: Money,
    /// The period's eligible time.
    pub eligible: &'a [Span],
    /// Whether the budget has paused its campaigns.
    pub exhausted: bool,
    pub now: DateTime<Utc>,
}

/// Pacing of one budget over one period (SPEC §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pace {
    pub budget: Money,
    pub spend: Money,
    /// The budget times the elapsed share of the period's eligible time (all of the budget once
    /// the eligible time is over; nothing before it begins or when there is none).
    pub expected_spend: Money,
    /// Spend ÷ expected spend, 4 decimals; `None` while nothing is expected.
    pub pace: Option<Decimal>,
    pub status: PaceStatus,
    pub spend_rate_per_hour: Money,
    /// Spend at the end of the period at the current rate over the remaining eligible time,
    /// capped by the budget.
    pub projected_spend: Money,
    /// When the budget would be reached at the current rate within the period's remaining
    /// eligible time; `None` when the rate is zero, the budget is reached already, or it is out of
    /// reach this period.
    pub projected_exhaustion_at: Option<DateTime<Utc>>,
}

/// `a × b ÷ c`, rounded down, without overflow (`c` > 0); saturates at `i64::MAX`.
fn mul_div(a: i64, b: i64, c: i64) -> i64 {
    let r = i128::from(a) * i128::from(b) / i128::from(c);
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// The instant at which `needed` more eligible time will have passed after `now`, if within
/// `spans`.
fn after_eligible(spans: &[Span], now: DateTime<Utc>, needed: Duration) -> Option<DateTime<Utc>> {
    let mut left = needed;
    for s in spans.iter().filter(|s| s.end > now) {
        let from = s.start.max(now);
        let here = s.end - from;
        if left <= here {
            return Some(from + left);
        }
        left -= here;
    }
    None
}

/// Even pacing of one budget (SPEC §10): pure arithmetic on micro-units and whole seconds.
pub fn pace(input: PaceInput<'_>) -> Pace {
    let PaceInput {
        budget,
        spend,
        spend_last_hour: rate,
        eligible,
        exhausted,
        now,
    } = input;
    let total = total(eligible).num_seconds();
    let done = elapsed(eligible, now).num_seconds();
    let expected = if total == 0 {
        0
    } else {
        mul_div(budget.micros(), done, total)
    };
    let (s, e) = (i128::from(spend.micros()), i128::from(expected));
    let status = if exhausted {
        PaceStatus::Exhausted
    } else if s * 100 < e * 85 {
        PaceStatus::Behind
    } else if s * 100 > e * 115 {
        PaceStatus::Ahead
    } else {
        PaceStatus::OnTrack
    };
    let pace = (expected > 0)
        .then(|| (Decimal::from(spend.micros()) / Decimal::from(expected)).round_dp(4));
    let remaining = total - done;
    let more = mul_div(rate.micros(), remaining, 3600);
    let projected = spend
        .micros()
        .saturating_add(more)
        .min(budget.micros().max(spend.micros()));
    let projected_exhaustion_at = if rate.micros() <= 0 || spend.micros() >= budget.micros() {
        None
    } else {
        // Seconds of eligible time to spend what is left of the budget at the current rate
        // (rounded up: the budget is reached in that second).
        let left = i128::from(budget.micros() - spend.micros()) * 3600;
        let rate = i128::from(rate.micros());
        let seconds = i64::try_from((left + rate - 1) / rate).unwrap_or(i64::MAX);
        Duration::try_seconds(seconds).and_then(|d| after_eligible(eligible, now, d))
    };
    Pace {
        budget,
        spend,
        expected_spend: Money::from_micros(expected),
        pace,
        status,
        spend_rate_per_hour: rate,
        projected_spend: Money::from_micros(projected),
        projected_exhaustion_at,
    }
}

/// The local calendar month of `day` in `tz` as instants, from its first local midnight to the
/// next month's.
pub fn month_bounds(day: NaiveDate, tz: Tz) -> Span {
    use chrono::Datelike;
    let first = day.with_day(1).unwrap_or(day);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    Span {
        start: start_of_day(first, tz),
        end: start_of_day(next, tz),
    }
}

/// The window of the current rate (`spend_rate_per_hour`): the last twelve 5-minute buckets, the
/// current one included (55 to 60 minutes of spend).
pub fn last_hour(now: DateTime<Utc>) -> Span {
    let start = crate::period::bucket_start(now) - Duration::minutes(55);
    Span {
        start,
        end: crate::period::bucket_start(now) + crate::period::BUCKET,
    }
}

/// Which period a budget is paced over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PacedPeriod {
    /// The brand-local day.
    Today,
    /// The brand-local calendar month.
    Month,
    /// A campaign's flight (its lifetime cap).
    Flight,
}

/// Pacing of one budget over one period, as the API and the admin show it (SPEC §10).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodPace {
    pub period: PacedPeriod,
    /// When the period starts and ends (brand-local midnights, as instants).
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The period's eligible time (the union of the campaigns' dayparting windows), in seconds.
    pub eligible_seconds: i64,
    /// How much of it has passed.
    pub elapsed_eligible_seconds: i64,
    pub budget: Money,
    pub spend: Money,
    /// Even pacing: the budget times the elapsed share of the eligible time.
    pub expected_spend: Money,
    /// Spend ÷ expected spend, as a decimal string; null while nothing is expected.
    #[schema(value_type = Option<String>, example = "0.9444")]
    pub pace: Option<Decimal>,
    pub status: PaceStatus,
    /// Spend over the last hour (the last twelve 5-minute buckets).
    pub spend_rate_per_hour: Money,
    /// Spend at the end of the period at that rate over the remaining eligible time, capped by
    /// the budget.
    pub projected_spend: Money,
    /// When the budget would be reached at that rate; null when the rate is zero or the budget
    /// is out of reach within the period.
    pub projected_exhaustion_at: Option<DateTime<Utc>>,
}

/// Paces `budget` over `period`: the eligible time of `span` under `schedules`, and the rest of
/// [`PaceInput`].
pub struct Pacing<'a> {
    pub period: PacedPeriod,
    pub span: Span,
    pub tz: Tz,
    pub schedules: &'a [Option<&'a Schedule>],
    pub budget: Money,
    pub spend: Money,
    pub spend_last_hour: Money,
    pub exhausted: bool,
    pub now: DateTime<Utc>,
}

impl Pacing<'_> {
    pub fn run(&self) -> PeriodPace {
        self.run_keeping_eligible().0
    }

    /// [`Pacing::run`], and the eligible time it paced over (for a chart of the same figures).
    pub fn run_keeping_eligible(&self) -> (PeriodPace, Vec<Span>) {
        let eligible = eligible(self.span, self.tz, self.schedules);
        let p = pace(PaceInput {
            budget: self.budget,
            spend: self.spend,
            spend_last_hour: self.spend_last_hour,
            eligible: &eligible,
            exhausted: self.exhausted,
            now: self.now,
        });
        let pace = PeriodPace {
            period: self.period,
            starts_at: self.span.start,
            ends_at: self.span.end,
            eligible_seconds: total(&eligible).num_seconds(),
            elapsed_eligible_seconds: elapsed(&eligible, self.now).num_seconds(),
            budget: p.budget,
            spend: p.spend,
            expected_spend: p.expected_spend,
            pace: p.pace,
            status: p.status,
            spend_rate_per_hour: p.spend_rate_per_hour,
            projected_spend: p.projected_spend,
            projected_exhaustion_at: p.projected_exhaustion_at,
        };
        (pace, eligible)
    }
}

/// A line that rises only during eligible time: from `value` at `from`, by `amount` per `per`
/// of eligible time, capped at `cap`, to `to`; its points are where the slope changes (the
/// eligible spans' boundaries), so drawn straight between them it is exact. The even-pace line
/// (`0` at the period's start, the budget per the period's eligible time) and the projection
/// (the spend now, the last hour's rate per hour) are such lines.
pub fn eligible_line(
    eligible: &[Span],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    value: Money,
    amount: Money,
    per: Duration,
    cap: Money,
) -> Vec<(DateTime<Utc>, Money)> {
    let per = per.num_seconds().max(1);
    let at = |t: DateTime<Utc>| {
        let passed = elapsed(eligible, t) - elapsed(eligible, from);
        let grown = mul_div(amount.micros(), passed.num_seconds().max(0), per);
        Money::from_micros(
            value
                .micros()
                .saturating_add(grown)
                .min(cap.micros().max(value.micros())),
        )
    };
    let mut times = vec![from];
    for s in eligible {
        for t in [s.start, s.end] {
            if from < t && t < to {
                times.push(t);
            }
        }
    }
    times.push(to);
    times.sort_unstable();
    times.dedup();
    times.into_iter().map(|t| (t, at(t))).collect()
}

/// A brand's pacing: its daily and monthly budgets over today and this month (SPEC §10).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BrandPacing {
    pub brand_id: i64,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// The instant the figures are computed for.
    pub at: DateTime<Utc>,
    pub today: PeriodPace,
    pub month: PeriodPace,
}

/// A campaign's pacing: its daily and monthly caps over today and this month, and its lifetime
/// cap over its flight; null where the campaign has no such cap (or, for the lifetime cap, no
/// flight).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignPacing {
    pub campaign_id: i64,
    pub brand_id: i64,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    pub at: DateTime<Utc>,
    pub today: Option<PeriodPace>,
    pub month: Option<PeriodPace>,
    pub flight: Option<PeriodPace>,
}

/// The width of the buckets of a spend series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum SeriesBucket {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "15m")]
    FifteenMinutes,
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

impl SeriesBucket {
    pub const NAMES: [&str; 4] = ["5m", "15m", "1h", "1d"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "5m" => SeriesBucket::FiveMinutes,
            "15m" => SeriesBucket::FifteenMinutes,
            "1h" => SeriesBucket::Hour,
            "1d" => SeriesBucket::Day,
            _ => return None,
        })
    }

    /// Its nominal length (a local day may be 23 or 25 hours).
    pub fn nominal(self) -> Duration {
        match self {
            SeriesBucket::FiveMinutes => Duration::minutes(5),
            SeriesBucket::FifteenMinutes => Duration::minutes(15),
            SeriesBucket::Hour => Duration::hours(1),
            SeriesBucket::Day => Duration::days(1),
        }
    }

    /// The start of the bucket `instant` falls in, in `tz`: the last 5-minute mark at or before
    /// it where the local clock shows a quarter hour (an hour) for `15m` (`1h`); local midnight
    /// for days. Never decreasing as `instant` grows, also where a DST change turns the clock
    /// back by half an hour (Lord Howe).
    pub fn start_of(self, instant: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        use chrono::Timelike;
        let five = crate::period::bucket_start(instant);
        let every = match self {
            SeriesBucket::FiveMinutes => return five,
            SeriesBucket::FifteenMinutes => 15,
            SeriesBucket::Hour => 60,
            SeriesBucket::Day => return start_of_day(instant.with_timezone(&tz).date_naive(), tz),
        };
        let mut mark = five;
        for _ in 0..every / 5 {
            if mark.with_timezone(&tz).minute().is_multiple_of(every) {
                return mark;
            }
            mark -= crate::period::BUCKET;
        }
        five
    }

    /// The buckets that `[from, to)` touches, by their starts.
    pub fn starts(self, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<DateTime<Utc>> {
        // Days are probed an hour at a time, shorter buckets at each 5-minute mark.
        let stride = match self {
            SeriesBucket::Day => Duration::hours(1),
            _ => crate::period::BUCKET,
        };
        let mut starts = Vec::new();
        let mut at = self.start_of(from, tz);
        while at < to {
            starts.push(at);
            let mut next = at + stride;
            loop {
                let start = self.start_of(next, tz);
                if start > at {
                    at = start;
                    break;
                }
                next += stride;
            }
        }
        starts
    }
}

/// One bucket of a spend series.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// The bucket's start, in the brand's local offset.
    #[schema(value_type = String, format = DateTime, example = "2026-12-01T09:00:00+01:00")]
    pub start: DateTime<chrono::FixedOffset>,
    pub spend: Money,
}

/// Spend per bucket, in the brand's timezone (SPEC §6), every bucket of the range listed (zero
/// where nothing was spent).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SpendSeries {
    pub brand_id: i64,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    pub bucket: SeriesBucket,
    /// The start of the first bucket.
    pub from: DateTime<Utc>,
    /// The end of the range (exclusive).
    pub to: DateTime<Utc>,
    pub points: Vec<SeriesPoint>,
    /// The sum of the points.
    pub total: Money,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use proptest::prelude::*;
    use serde_json::json;

    const ZONES: [Tz; 6] = [
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Asia::Kathmandu,
        Tz::UTC,
    ];

    fn schedule(windows: serde_json::Value) -> Schedule {
        Schedule::from_json(&windows, "dayparting").unwrap()
    }

    /// The reference: every minute of the day, asked of the rule's own predicate.
    fn minute_table(day: NaiveDate, tz: Tz, schedules: &[Option<&Schedule>]) -> (Vec<bool>, Span) {
        let span = day_bounds(day, tz);
        let minutes = (span.end - span.start).num_minutes();
        let table = (0..minutes)
            .map(|m| {
                let t = span.start + Duration::minutes(m);
                !schedules.is_empty()
                    && schedules
                        .iter()
                        .any(|s| s.is_none_or(|s| s.contains(t, tz)))
            })
            .collect();
        (table, span)
    }

    #[test]
    fn dst_days_are_23_and_25_hours_long() {
        let berlin = chrono_tz::Europe::Berlin;
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            day_bounds(d(2026, 3, 29), berlin).duration(),
            Duration::hours(23)
        );
        assert_eq!(
            day_bounds(d(2026, 10, 25), berlin).duration(),
            Duration::hours(25)
        );
        assert_eq!(
            day_bounds(d(2026, 10, 26), berlin).duration(),
            Duration::hours(24)
        );
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            day_bounds(d(2026, 3, 8), ny).duration(),
            Duration::hours(23)
        );
        assert_eq!(
            day_bounds(d(2026, 11, 1), ny).duration(),
            Duration::hours(25)
        );
    }

    #[test]
    fn office_hours_on_a_fall_back_day_and_an_always_on_campaign() {
        let berlin = chrono_tz::Europe::Berlin;
        let day = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(); // a Sunday, 25 hours
        let night = schedule(json!([{"start": "01:00", "end": "04:00"}]));
        // 01:00–04:00 local on the day the clock goes back from 03:00 to 02:00: four hours.
        let spans = eligible_day(day, berlin, &[Some(&night)]);
        assert_eq!(total(&spans), Duration::hours(4));
        // With a campaign without a schedule, all 25 hours.
        let all = eligible_day(day, berlin, &[Some(&night), None]);
        assert_eq!(total(&all), Duration::hours(25));
        // No campaign, no eligible time.
        assert!(eligible_day(day, berlin, &[]).is_empty());
        // At 02:30 local the second time round (01:30 UTC), 23:00–01:30 UTC of it has passed.
        let now = Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap();
        assert_eq!(
            elapsed(&spans, now),
            Duration::hours(2) + Duration::minutes(30)
        );
    }

    #[test]
    fn a_window_in_the_skipped_hour() {
        let ny = chrono_tz::America::New_York;
        let day = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(); // 02:00 → 03:00
        let s = schedule(json!([{"start": "02:30", "end": "04:00"}]));
        let spans = eligible_day(day, ny, &[Some(&s)]);
        // 02:30–03:00 never happens: 03:00–04:00 local, one hour.
        assert_eq!(total(&spans), Duration::hours(1));
        assert_eq!(spans[0].start.with_timezone(&ny).hour(), 3);
    }

    /// The days of 2024–2027 on which `tz`'s offset changes.
    fn change_days(tz: Tz) -> Vec<NaiveDate> {
        let first = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        (0..4 * 365)
            .map(|d| first + Duration::days(d))
            .filter(|d| day_bounds(*d, tz).duration() != Duration::hours(24))
            .collect()
    }

    fn money(s: &str) -> Money {
        Money::parse_non_negative(s).unwrap()
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 10, h, m, 0).unwrap()
    }

    /// A UTC brand's 2026-06-10 with one window, 09:00–17:00 (8 hours).
    fn office() -> Vec<Span> {
        let s = schedule(json!([{"start": "09:00", "end": "17:00"}]));
        eligible_day(
            NaiveDate::from_ymd_opt(2026, 6, 10).unwrap(),
            Tz::UTC,
            &[Some(&s)],
        )
    }

    fn input<'a>(
        eligible: &'a [Span],
        spend: &str,
        last_hour: &str,
        now: DateTime<Utc>,
    ) -> PaceInput<'a> {
        PaceInput {
            budget: money("80"),
            spend: money(spend),
            spend_last_hour: money(last_hour),
            eligible,
            exhausted: false,
            now,
        }
    }

    #[test]
    fn start_of_the_day_mid_window_and_after_it() {
        let spans = office();
        // Before the window: nothing expected, nothing spent: on track, no pace yet.
        let p = pace(input(&spans, "0", "0", at(8, 0)));
        assert_eq!(
            (p.expected_spend, p.pace, p.status),
            (Money::ZERO, None, PaceStatus::OnTrack)
        );
        assert_eq!(p.projected_spend, Money::ZERO);
        assert_eq!(p.projected_exhaustion_at, None, "no rate, no exhaustion");
        // 13:00: half the window, 40 expected; 40 spent at 10 an hour: on track, exhausted at 17:00.
        let p = pace(input(&spans, "40", "10", at(13, 0)));
        assert_eq!(p.expected_spend, money("40"));
        assert_eq!(p.pace, Some(Decimal::ONE));
        assert_eq!(p.status, PaceStatus::OnTrack);
        assert_eq!(p.projected_spend, money("80"));
        assert_eq!(p.projected_exhaustion_at, Some(at(17, 0)));
        // 20 an hour: the budget is reached at 15:00; projected spend capped by the budget.
        let p = pace(input(&spans, "40", "20", at(13, 0)));
        assert_eq!(p.projected_exhaustion_at, Some(at(15, 0)));
        assert_eq!(p.projected_spend, money("80"));
        // 5 an hour: out of reach today.
        let p = pace(input(&spans, "40", "5", at(13, 0)));
        assert_eq!(p.projected_exhaustion_at, None);
        assert_eq!(p.projected_spend, money("60"));
        // After the window: all of the budget expected; the rest of the day is not eligible.
        let p = pace(input(&spans, "60", "10", at(20, 0)));
        assert_eq!(p.expected_spend, money("80"));
        assert_eq!(p.status, PaceStatus::Behind);
        assert_eq!(p.projected_spend, money("60"));
        assert_eq!(p.projected_exhaustion_at, None);
        // Exhausted wins.
        let mut i = input(&spans, "80", "10", at(16, 0));
        i.exhausted = true;
        assert_eq!(pace(i).status, PaceStatus::Exhausted);
    }

    #[test]
    fn status_thresholds_are_inclusive_on_track() {
        let spans = office();
        // 13:00: 40 expected. 34 is exactly 0.85, 46 exactly 1.15.
        let status = |spend: &str| pace(input(&spans, spend, "0", at(13, 0))).status;
        assert_eq!(status("33.999999"), PaceStatus::Behind);
        assert_eq!(status("34"), PaceStatus::OnTrack);
        assert_eq!(status("46"), PaceStatus::OnTrack);
        assert_eq!(status("46.000001"), PaceStatus::Ahead);
        assert_eq!(
            pace(input(&spans, "34", "0", at(13, 0))).pace,
            Some(Decimal::new(85, 2))
        );
    }

    #[test]
    fn dst_days_and_half_hour_offsets() {
        // Berlin, spring forward (23 hours), no schedule: at 12:00 local (10:00 UTC) 11 of the 23
        // hours have passed.
        let berlin = chrono_tz::Europe::Berlin;
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let spans = eligible_day(day, berlin, &[None]);
        let mut i = input(
            &spans,
            "0",
            "0",
            Utc.with_ymd_and_hms(2026, 3, 29, 10, 0, 0).unwrap(),
        );
        i.budget = money("230");
        assert_eq!(pace(i).expected_spend, money("110"));
        // New York, fall back (25 hours): at 12:00 local (17:00 UTC) 13 of the 25 hours.
        let ny = chrono_tz::America::New_York;
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let spans = eligible_day(day, ny, &[None]);
        let mut i = input(
            &spans,
            "0",
            "0",
            Utc.with_ymd_and_hms(2026, 11, 1, 17, 0, 0).unwrap(),
        );
        i.budget = money("250");
        assert_eq!(pace(i).expected_spend, money("130"));
        // Kolkata (+05:30), 09:00–17:00 local: at 13:00 local (07:30 UTC) half the window.
        let kolkata = chrono_tz::Asia::Kolkata;
        let s = schedule(json!([{"start": "09:00", "end": "17:00"}]));
        let day = NaiveDate::from_ymd_opt(2026, 6, 10).unwrap();
        let spans = eligible_day(day, kolkata, &[Some(&s)]);
        let now = Utc.with_ymd_and_hms(2026, 6, 10, 7, 30, 0).unwrap();
        let p = pace(input(&spans, "40", "10", now));
        assert_eq!(p.expected_spend, money("40"));
        assert_eq!(
            p.projected_exhaustion_at,
            Some(Utc.with_ymd_and_hms(2026, 6, 10, 11, 30, 0).unwrap()),
            "17:00 local"
        );
    }

    #[test]
    fn series_buckets_follow_the_local_clock() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        // New York's 25-hour day: 25 hours, the repeated 01:00 twice, as two instants.
        let ny = chrono_tz::America::New_York;
        let day = day_bounds(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), ny);
        let hours = SeriesBucket::Hour.starts(day.start, day.end, ny);
        assert_eq!(hours.len(), 25);
        assert_eq!(hours[1], utc("2026-11-01T05:00:00Z"));
        assert_eq!(hours[2], utc("2026-11-01T06:00:00Z"));
        assert_eq!(
            SeriesBucket::FiveMinutes
                .starts(day.start, day.end, ny)
                .len(),
            300
        );
        // Kolkata's hours start at :30 UTC, its quarter hours on UTC quarter hours.
        let kolkata = chrono_tz::Asia::Kolkata;
        let t = utc("2026-06-10T07:44:00Z"); // 13:14 local
        assert_eq!(
            SeriesBucket::Hour.start_of(t, kolkata),
            utc("2026-06-10T07:30:00Z")
        );
        assert_eq!(
            SeriesBucket::FifteenMinutes.start_of(t, kolkata),
            utc("2026-06-10T07:30:00Z")
        );
        // Lord Howe's half-hour DST change (02:00 → 01:30 on 2026-04-05): 24.5 local hours.
        let lord_howe = chrono_tz::Australia::Lord_Howe;
        let day = day_bounds(NaiveDate::from_ymd_opt(2026, 4, 5).unwrap(), lord_howe);
        assert_eq!(day.duration(), Duration::minutes(24 * 60 + 30));
        let hours = SeriesBucket::Hour.starts(day.start, day.end, lord_howe);
        for pair in hours.windows(2) {
            assert!(pair[1] - pair[0] <= Duration::hours(1) && pair[1] > pair[0]);
        }
        // Days: a month of local midnights.
        let march = month_bounds(
            NaiveDate::from_ymd_opt(2026, 3, 14).unwrap(),
            chrono_tz::Europe::Berlin,
        );
        let days = SeriesBucket::Day.starts(march.start, march.end, chrono_tz::Europe::Berlin);
        assert_eq!(days.len(), 31);
        assert_eq!(days[0], utc("2026-02-28T23:00:00Z"));
        assert_eq!(days[30], utc("2026-03-30T22:00:00Z"));
        // A range starting mid-bucket starts at that bucket.
        let starts = SeriesBucket::FifteenMinutes.starts(
            utc("2026-06-10T10:07:00Z"),
            utc("2026-06-10T10:31:00Z"),
            Tz::UTC,
        );
        assert_eq!(
            starts,
            vec![
                utc("2026-06-10T10:00:00Z"),
                utc("2026-06-10T10:15:00Z"),
                utc("2026-06-10T10:30:00Z")
            ]
        );
    }

    #[test]
    fn the_last_hour_is_the_last_twelve_buckets() {
        let now = Utc.with_ymd_and_hms(2026, 6, 10, 13, 2, 0).unwrap();
        let hour = last_hour(now);
        assert_eq!(
            hour.start,
            Utc.with_ymd_and_hms(2026, 6, 10, 12, 5, 0).unwrap()
        );
        assert_eq!(
            hour.end,
            Utc.with_ymd_and_hms(2026, 6, 10, 13, 5, 0).unwrap()
        );
    }

    fn windows() -> impl Strategy<Value = serde_json::Value> {
        let window = (
            proptest::collection::vec(0usize..7, 1..4),
            0u32..1440,
            1u32..=1440,
        )
            .prop_filter("start != end", |(_, s, e)| s != e)
            .prop_map(|(days, s, e)| {
                let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                json!({
                    "days": days.iter().map(|d| names[*d]).collect::<Vec<_>>(),
                    "start": format!("{:02}:{:02}", s / 60, s % 60),
                    "end": format!("{:02}:{:02}", e / 60, e % 60),
                })
            });
        proptest::collection::vec(window, 1..4).prop_map(serde_json::Value::Array)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The eligible spans hold exactly the minutes the rule says some campaign may run in,
        /// on any day of 2024–2027 (every DST change of those years) in zones with DST, half-
        /// and quarter-hour offsets and a half-hour DST change.
        #[test]
        fn matches_a_brute_force_minute_table(
            schedules in proptest::collection::vec(proptest::option::weighted(0.9, windows()), 0..4),
            zone in 0usize..ZONES.len(),
            days in 0i64..4 * 365,
            // Half the cases on a day whose offset changes: a random day rarely is one.
            on_a_change in any::<bool>(),
            pick in any::<prop::sample::Index>(),
        ) {
            let tz = ZONES[zone];
            let first = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
            let changes = change_days(tz);
            let day = if on_a_change && !changes.is_empty() {
                changes[pick.index(changes.len())]
            } else {
                first + Duration::days(days)
            };
            let parsed: Vec<Option<Schedule>> = schedules.iter().map(|s| s.as_ref().map(|w| schedule(w.clone()))).collect();
            let refs: Vec<Option<&Schedule>> = parsed.iter().map(Option::as_ref).collect();
            let spans = eligible_day(day, tz, &refs);
            let (table, bounds) = minute_table(day, tz, &refs);
            for (m, expected) in table.iter().enumerate() {
                let t = bounds.start + Duration::minutes(m as i64);
                let got = spans.iter().any(|s| s.contains(t));
                prop_assert_eq!(got, *expected, "minute {} ({}) of {} in {}", m, t.with_timezone(&tz), day, tz);
            }
            let eligible_minutes = table.iter().filter(|e| **e).count() as i64;
            prop_assert_eq!(total(&spans), Duration::minutes(eligible_minutes));
            // Spans are sorted, disjoint and not touching.
            for pair in spans.windows(2) {
                prop_assert!(pair[0].end < pair[1].start);
            }
        }
    }
}
