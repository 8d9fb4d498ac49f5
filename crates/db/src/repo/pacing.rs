//! Pacing, forecast and the spend series (SPEC §10), read from the period totals and the 5-minute
//! buckets that the spend path keeps: never from the spend logs, so a request costs the same with
//! ten events in the history or ten million.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use adbudget_core::dayparting::Schedule;
use adbudget_core::money::Money;
use adbudget_core::pacing::{
    BrandPacing, CampaignPacing, PacedPeriod, Pacing, PeriodPace, SeriesBucket, SeriesPoint, Span,
    SpendSeries, day_bounds, eligible_line, last_hour, month_bounds,
};
use adbudget_core::rule::{PauseReason, parse_tz};
use adbudget_core::views::Brand;

use super::{CHUNK, naive, utc};
use crate::DbConnection;
use crate::error::{DomainError, DomainResult};
use crate::schema::{brand_spend, brand_spend_buckets, campaign_spend_buckets, campaigns};

/// At most this many points in one series.
pub const MAX_POINTS: usize = 10_000;

/// The distinct schedules of the campaigns of `brand_ids` (`None`: a campaign without one), by
/// brand, as the eligible time needs them: a brand of many campaigns usually has few schedules,
/// and the union of its windows is the same whether a schedule is listed once or a thousand times.
fn schedules_of_brands(
    conn: &mut DbConnection,
    brand_ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<Option<Schedule>>>> {
    let mut by_brand: HashMap<i64, Vec<Option<Schedule>>> = HashMap::new();
    for chunk in brand_ids.chunks(CHUNK) {
        let stored: Vec<(i64, Option<String>)> = campaigns::table
            .select((campaigns::brand_id, campaigns::dayparting))
            .filter(campaigns::brand_id.eq_any(chunk))
            .distinct()
            .load(conn)?;
        for (brand, schedule) in stored {
            let schedule = schedule.and_then(|s| Schedule::from_stored(&s).ok());
            by_brand.entry(brand).or_default().push(schedule);
        }
    }
    Ok(by_brand)
}

/// The sum of the buckets of `rows` (bucket start, amount).
fn sum(rows: Vec<(NaiveDateTime, i64)>) -> Money {
    Money::from_micros(rows.into_iter().map(|(_, a)| a).sum())
}

/// The brands' spend over the last hour (the last twelve buckets, the current one included).
fn brands_last_hour(
    conn: &mut DbConnection,
    brand_ids: &[i64],
    hour: Span,
) -> QueryResult<HashMap<i64, i64>> {
    let mut by_brand: HashMap<i64, i64> = HashMap::new();
    for chunk in brand_ids.chunks(CHUNK) {
        let rows: Vec<(i64, i64)> = brand_spend_buckets::table
            .select((brand_spend_buckets::brand_id, brand_spend_buckets::amount))
            .filter(brand_spend_buckets::brand_id.eq_any(chunk))
            .filter(brand_spend_buckets::bucket.ge(naive(hour.start)))
            .filter(brand_spend_buckets::bucket.lt(naive(hour.end)))
            .load(conn)?;
        for (brand, amount) in rows {
            *by_brand.entry(brand).or_default() += amount;
        }
    }
    Ok(by_brand)
}

/// The pacing of `brands` (as read at `now`) at `now`: three queries however many brands.
pub fn of_brands(
    conn: &mut DbConnection,
    brands: &[Brand],
    now: DateTime<Utc>,
) -> QueryResult<Vec<BrandPacing>> {
    let ids: Vec<i64> = brands.iter().map(|b| b.id).collect();
    let schedules = schedules_of_brands(conn, &ids)?;
    let rates = brands_last_hour(conn, &ids, last_hour(now))?;
    Ok(brands
        .iter()
        .map(|brand| {
            let schedules: Vec<Option<&Schedule>> = schedules
                .get(&brand.id)
                .map(|s| s.iter().map(Option::as_ref).collect())
                .unwrap_or_default();
            let rate = Money::from_micros(rates.get(&brand.id).copied().unwrap_or(0));
            let [(today, _), (month, _)] = brand_periods(brand, &schedules, rate, now);
            BrandPacing {
                brand_id: brand.id,
                timezone: brand.timezone.clone(),
                at: now,
                today,
                month,
            }
        })
        .collect())
}

/// Paces a brand's daily budget over today and its monthly budget over this month, given its
/// campaigns' schedules and its last hour's spend; each with the eligible time it paced over.
fn brand_periods(
    brand: &Brand,
    schedules: &[Option<&Schedule>],
    rate: Money,
    now: DateTime<Utc>,
) -> [(PeriodPace, Vec<Span>); 2] {
    let tz = parse_tz(&brand.timezone);
    let date = now.with_timezone(&tz).date_naive();
    let paced = |period, span, budget: Money, spend: Money| {
        Pacing {
            period,
            span,
            tz,
            schedules,
            budget,
            spend,
            spend_last_hour: rate,
            exhausted: spend >= budget,
            now,
        }
        .run_keeping_eligible()
    };
    [
        paced(
            PacedPeriod::Today,
            day_bounds(date, tz),
            brand.daily_budget,
            brand.daily_spend,
        ),
        paced(
            PacedPeriod::Month,
            month_bounds(date, tz),
            brand.monthly_budget,
            brand.monthly_spend,
        ),
    ]
}

/// A brand's pacing at `now`: its daily budget over today, its monthly budget over this month,
/// the eligible time being the union of its campaigns' windows.
pub fn brand(
    conn: &mut DbConnection,
    brand_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<BrandPacing> {
    conn.transaction(|conn| {
        let brand = super::brands::get(conn, brand_id, now)?;
        of_brands(conn, &[brand], now)?
            .pop()
            .ok_or(DomainError::not_found("brand"))
    })
}

/// Sets the `adbudget_brand_pace` gauge (labels: brand id and period, `today` or `month`) for
/// every brand: spend ÷ expected spend, NaN while nothing is expected.
pub fn publish_pace_gauges(conn: &mut DbConnection, now: DateTime<Utc>) -> DomainResult<()> {
    let mut cursor = None;
    loop {
        let page = super::brands::list(
            conn,
            &adbudget_core::access::Brands::All,
            super::PageRequest { limit: 500, cursor },
            now,
        )?;
        for p in of_brands(conn, &page.items, now)? {
            for (period, pace) in [("today", &p.today), ("month", &p.month)] {
                let expected = pace.expected_spend.micros();
                let value = if expected > 0 {
                    pace.spend.micros() as f64 / expected as f64
                } else {
                    f64::NAN
                };
                metrics::gauge!("adbudget_brand_pace", "brand_id" => p.brand_id.to_string(), "period" => period)
                    .set(value);
            }
        }
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

fn campaign_last_hour(conn: &mut DbConnection, campaign_id: i64, hour: Span) -> QueryResult<Money> {
    campaign_spend_buckets::table
        .select((
            campaign_spend_buckets::bucket,
            campaign_spend_buckets::amount,
        ))
        .filter(campaign_spend_buckets::campaign_id.eq(campaign_id))
        .filter(campaign_spend_buckets::bucket.ge(naive(hour.start)))
        .filter(campaign_spend_buckets::bucket.lt(naive(hour.end)))
        .load(conn)
        .map(sum)
}

/// A campaign's pacing at `now`: each of its caps over its period, within its own windows (the
/// lifetime cap over its flight).
pub fn campaign(
    conn: &mut DbConnection,
    campaign_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<CampaignPacing> {
    conn.transaction(|conn| {
        let campaign = super::campaigns::get(conn, campaign_id, now)?;
        let brand = super::brands::get(conn, campaign.brand_id, now)?;
        let tz = parse_tz(&brand.timezone);
        let schedules = [campaign.dayparting.as_ref()];
        let rate = campaign_last_hour(conn, campaign_id, last_hour(now))?;
        let date = now.with_timezone(&tz).date_naive();
        let reasons = campaign.pause_reasons;
        let paced = |period, span, cap: Option<Money>, spend: Money, reason| {
            cap.map(|budget| {
                Pacing {
                    period,
                    span,
                    tz,
                    schedules: &schedules,
                    budget,
                    spend,
                    spend_last_hour: rate,
                    exhausted: reasons.contains(reason) || spend >= budget,
                    now,
                }
                .run()
            })
        };
        Ok(CampaignPacing {
            campaign_id,
            brand_id: campaign.brand_id,
            at: now,
            today: paced(
                PacedPeriod::Today,
                day_bounds(date, tz),
                campaign.daily_cap,
                campaign.daily_spend,
                PauseReason::CampaignDailyCap,
            ),
            month: paced(
                PacedPeriod::Month,
                month_bounds(date, tz),
                campaign.monthly_cap,
                campaign.monthly_spend,
                PauseReason::CampaignMonthlyCap,
            ),
            flight: flight_span(&campaign, tz).and_then(|span| {
                paced(
                    PacedPeriod::Flight,
                    span,
                    campaign.lifetime_cap,
                    campaign.lifetime_spend,
                    PauseReason::CampaignLifetimeCap,
                )
            }),
            timezone: brand.timezone,
        })
    })
}

/// A campaign's flight as instants, from the first local midnight of its start date to the one
/// after its end date; `None` unless both dates are set (a lifetime cap without a whole flight is
/// not paced: SPEC §10).
fn flight_span(campaign: &adbudget_core::views::Campaign, tz: chrono_tz::Tz) -> Option<Span> {
    let (start, end) = (campaign.flight_start?, campaign.flight_end?);
    Some(Span {
        start: adbudget_core::pacing::start_of_day(start, tz),
        end: day_bounds(end, tz).end,
    })
}

/// A brand's spend per `bucket` over `[from, to)` (default: today, brand-local), every bucket
/// listed. Days are read from the day totals, shorter buckets from the 5-minute buckets.
pub fn series(
    conn: &mut DbConnection,
    brand_id: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    bucket: SeriesBucket,
    now: DateTime<Utc>,
) -> DomainResult<SpendSeries> {
    conn.transaction(|conn| {
        let brand = super::brands::get(conn, brand_id, now)?;
        series_of(conn, &brand, from, to, bucket, now)
    })
}

/// [`series`] of a brand already read.
fn series_of(
    conn: &mut DbConnection,
    brand: &Brand,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    bucket: SeriesBucket,
    now: DateTime<Utc>,
) -> DomainResult<SpendSeries> {
    let brand_id = brand.id;
    {
        let tz = parse_tz(&brand.timezone);
        let today = day_bounds(now.with_timezone(&tz).date_naive(), tz);
        let from = from.unwrap_or(today.start);
        let to = to.unwrap_or_else(|| if from < today.end { today.end } else { from });
        if to <= from {
            return Err(DomainError::invalid("to", "must be later than from"));
        }
        let nominal = bucket.nominal().num_seconds();
        if (to - from).num_seconds() / nominal >= MAX_POINTS as i64 {
            return Err(DomainError::invalid(
                "from",
                format!(
                    "the range holds more than {MAX_POINTS} buckets; narrow it or choose a larger bucket"
                ),
            ));
        }
        let starts = bucket.starts(from, to, tz);
        let first = starts.first().copied().unwrap_or(from);
        let mut spend: HashMap<DateTime<Utc>, i64> = HashMap::new();
        if bucket == SeriesBucket::Day {
            let keys: Vec<String> = starts
                .iter()
                .map(|s| {
                    s.with_timezone(&tz)
                        .date_naive()
                        .format("%Y-%m-%d")
                        .to_string()
                })
                .collect();
            let rows: Vec<(String, i64)> = brand_spend::table
                .select((brand_spend::period, brand_spend::amount))
                .filter(brand_spend::brand_id.eq(brand_id))
                .filter(brand_spend::period.eq_any(&keys))
                .load(conn)?;
            let by_key: HashMap<String, i64> = rows.into_iter().collect();
            for (start, key) in starts.iter().zip(&keys) {
                spend.insert(*start, by_key.get(key).copied().unwrap_or(0));
            }
        } else {
            let rows: Vec<(NaiveDateTime, i64)> = brand_spend_buckets::table
                .select((brand_spend_buckets::bucket, brand_spend_buckets::amount))
                .filter(brand_spend_buckets::brand_id.eq(brand_id))
                .filter(brand_spend_buckets::bucket.ge(naive(first)))
                .filter(brand_spend_buckets::bucket.lt(naive(to)))
                .load(conn)?;
            for (at, amount) in rows {
                *spend.entry(bucket.start_of(utc(at), tz)).or_default() += amount;
            }
        }
        let points: Vec<SeriesPoint> = starts
            .iter()
            .map(|s| SeriesPoint {
                start: s.with_timezone(&tz).fixed_offset(),
                spend: Money::from_micros(spend.get(s).copied().unwrap_or(0)),
            })
            .collect();
        let total = Money::from_micros(points.iter().map(|p| p.spend.micros()).sum());
        Ok(SpendSeries {
            brand_id,
            timezone: brand.timezone.clone(),
            bucket,
            from: first,
            to,
            points,
            total,
        })
    }
}

/// What a chart of one period shows (the admin's brand page): cumulative spend to now, the
/// budget, the even-pace line over the eligible time and the projection to the period's end.
#[derive(Debug, Clone)]
pub struct PeriodChart {
    pub span: Span,
    pub eligible: Vec<Span>,
    /// Cumulative spend at the end of each bucket up to now, from zero at the period's start.
    pub spend: Vec<(DateTime<Utc>, Money)>,
    pub even: Vec<(DateTime<Utc>, Money)>,
    pub projection: Vec<(DateTime<Utc>, Money)>,
    pub pace: PeriodPace,
}

/// A brand's charts: today by 5-minute buckets, this month by days.
#[derive(Debug, Clone)]
pub struct BrandCharts {
    pub tz: chrono_tz::Tz,
    pub today: PeriodChart,
    pub month: PeriodChart,
}

/// The figures of a brand's charts at `now`, from the same numbers as its pacing (the brand, its
/// schedules and its last hour read once; the eligible time computed once per period).
pub fn brand_charts(
    conn: &mut DbConnection,
    brand_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<BrandCharts> {
    conn.transaction(|conn| {
        let brand = super::brands::get(conn, brand_id, now)?;
        let tz = parse_tz(&brand.timezone);
        let owned = schedules_of_brands(conn, &[brand_id])?
            .remove(&brand_id)
            .unwrap_or_default();
        let schedules: Vec<Option<&Schedule>> = owned.iter().map(Option::as_ref).collect();
        let rate = brands_last_hour(conn, &[brand_id], last_hour(now))?
            .get(&brand_id)
            .copied()
            .unwrap_or(0);
        let [today, month] = brand_periods(&brand, &schedules, Money::from_micros(rate), now);
        let mut chart = |(pace, eligible): (PeriodPace, Vec<Span>),
                         bucket: SeriesBucket|
         -> DomainResult<PeriodChart> {
            let span = Span {
                start: pace.starts_at,
                end: pace.ends_at,
            };
            let series = series_of(conn, &brand, Some(span.start), Some(span.end), bucket, now)?;
            let mut spend = vec![(span.start, Money::ZERO)];
            let mut sum = 0i64;
            let starts: Vec<DateTime<Utc>> =
                series.points.iter().map(|p| p.start.to_utc()).collect();
            for (i, p) in series.points.iter().enumerate() {
                sum += p.spend.micros();
                let end = starts.get(i + 1).copied().unwrap_or(span.end);
                if starts[i] <= now {
                    spend.push((end.min(now), Money::from_micros(sum)));
                } else if let Some(last) = spend.last_mut() {
                    // Spend stamped a little ahead of the clock (up to 5 minutes) counts now.
                    last.1 = Money::from_micros(sum);
                }
            }
            let even = eligible_line(
                &eligible,
                span.start,
                span.end,
                Money::ZERO,
                pace.budget,
                adbudget_core::pacing::total(&eligible),
                pace.budget,
            );
            let projection = if now < span.end {
                eligible_line(
                    &eligible,
                    now.max(span.start),
                    span.end,
                    pace.spend,
                    pace.spend_rate_per_hour,
                    chrono::Duration::hours(1),
                    pace.budget,
                )
            } else {
                Vec::new()
            };
            Ok(PeriodChart {
                span,
                eligible,
                spend,
                even,
                projection,
                pace,
            })
        };
        let today = chart(today, SeriesBucket::FiveMinutes)?;
        let month = chart(month, SeriesBucket::Day)?;
        Ok(BrandCharts { tz, today, month })
    })
}
