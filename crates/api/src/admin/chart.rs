//! Spend charts as server-rendered SVG (SPEC §7, §10): cumulative spend against the budget line,
//! the even-pace line over the eligible time (shaded) and the projection, dotted, to the end of
//! the period. No JavaScript, no external assets; the numbers are the pacing API's.

use adbudget_core::money::Money;
use adbudget_core::pacing::{PaceStatus, Span};
use adbudget_db::repo::pacing::PeriodChart;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 32.0;

/// Which period a chart shows, for its axis labels.
#[derive(Debug, Clone, Copy)]
pub enum Period {
    Day,
    Month,
}

/// Maps instants and amounts to the plot area.
struct Scale {
    span: Span,
    top: i64,
}

impl Scale {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let total = (self.span.end - self.span.start).num_seconds().max(1) as f64;
        let t = t.clamp(self.span.start, self.span.end);
        LEFT + (t - self.span.start).num_seconds() as f64 / total * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, m: Money) -> f64 {
        let v = m.micros().clamp(0, self.top) as f64 / self.top as f64;
        HEIGHT - BOTTOM - v * (HEIGHT - TOP - BOTTOM)
    }

    fn points(&self, line: &[(DateTime<Utc>, Money)]) -> String {
        line.iter()
            .map(|(t, m)| format!("{:.1},{:.1}", self.x(*t), self.y(*m)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A badge for a pace status, coloured as the dashboard shows it.
pub fn status_badge(status: PaceStatus) -> Markup {
    let (name, label) = match status {
        PaceStatus::Behind => ("behind", "behind"),
        PaceStatus::OnTrack => ("on_track", "on track"),
        PaceStatus::Ahead => ("ahead", "ahead"),
        PaceStatus::Exhausted => ("exhausted", "exhausted"),
    };
    html! { span class={ "badge pace pace-" (name) } data-status=(name) { (label) } }
}

/// The chart of one period, with a caption in words.
pub fn period_chart(id: &str, title: &str, chart: &PeriodChart, tz: Tz, period: Period) -> Markup {
    let pace = &chart.pace;
    let highest = [
        pace.budget,
        pace.spend,
        pace.projected_spend,
        chart.spend.last().map_or(Money::ZERO, |p| p.1),
    ]
    .into_iter()
    .map(Money::micros)
    .max()
    .unwrap_or(0);
    // Headroom above the highest line, and never a zero scale.
    let top = (highest + highest / 10).max(1_000_000);
    let s = Scale {
        span: chart.span,
        top,
    };
    let ticks = x_ticks(chart.span, tz, period);
    let last = chart.spend.last().copied();
    let plot_bottom = HEIGHT - BOTTOM;
    html! {
        figure.chart #(id) {
            figcaption {
                b { (title) } " "
                (status_badge(pace.status))
                span.muted {
                    " spent " (pace.spend) " of " (pace.budget)
                    " · expected by now " (pace.expected_spend)
                    @if let Some(p) = pace.pace { " · pace " (p) }
                    " · " (pace.spend_rate_per_hour) " in the last hour"
                    " · projected " (pace.projected_spend)
                    @if let Some(at) = pace.projected_exhaustion_at {
                        " · runs out at " (at.with_timezone(&tz).format("%H:%M %Z"))
                    }
                }
            }
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%"
                role="img" aria-label={ (title) ": " (pace.spend) " spent of " (pace.budget) } {
                title { (title) }
                rect x=(LEFT) y=(TOP) width=(WIDTH - LEFT - RIGHT) height=(plot_bottom - TOP) fill="#fff" stroke="#e4e7eb" {}
                @for e in &chart.eligible {
                    rect.eligible x=(format!("{:.1}", s.x(e.start))) y=(TOP)
                        width=(format!("{:.1}", (s.x(e.end) - s.x(e.start)).max(0.0))) height=(plot_bottom - TOP)
                        fill="#eef6ff" {}
                }
                @for (t, label) in &ticks {
                    line x1=(format!("{:.1}", s.x(*t))) x2=(format!("{:.1}", s.x(*t))) y1=(plot_bottom) y2=(plot_bottom + 4.0) stroke="#9aa5b1" {}
                    text x=(format!("{:.1}", s.x(*t))) y=(HEIGHT - 10.0) font-size="11" text-anchor="middle" fill="#52606d" { (label) }
                }
                text x=(LEFT - 6.0) y=(plot_bottom + 4.0) font-size="11" text-anchor="end" fill="#52606d" { "0" }
                line.budget x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{:.1}", s.y(pace.budget))) y2=(format!("{:.1}", s.y(pace.budget)))
                    stroke="#dc2626" stroke-width="1.5" stroke-dasharray="6 4" {}
                text x=(LEFT - 6.0) y=(format!("{:.1}", s.y(pace.budget) + 4.0)) font-size="11" text-anchor="end" fill="#dc2626" { (pace.budget) }
                polyline.even points=(s.points(&chart.even)) fill="none" stroke="#9aa5b1" stroke-width="1.5" {}
                @if !chart.projection.is_empty() {
                    polyline.projection points=(s.points(&chart.projection)) fill="none" stroke="#2563eb" stroke-width="2" stroke-dasharray="2 4" {}
                }
                polyline.spend points=(s.points(&chart.spend)) fill="none" stroke="#2563eb" stroke-width="2.5" {}
                @if let Some((t, m)) = last {
                    circle.last cx=(format!("{:.1}", s.x(t))) cy=(format!("{:.1}", s.y(m))) r="4" fill="#2563eb" data-value=(m.to_string()) {}
                }
            }
            p.legend.muted {
                span style="color:#2563eb" { "━ spend" } " "
                span style="color:#2563eb" { "┅ projection" } " "
                span style="color:#9aa5b1" { "━ even pace" } " "
                span style="color:#dc2626" { "╌ budget" } " "
                span style="background:#eef6ff;padding:0 4px" { "eligible time" }
            }
        }
    }
}

/// The x-axis labels: every three local hours of a day, every fifth day of a month (and the
/// first).
fn x_ticks(span: Span, tz: Tz, period: Period) -> Vec<(DateTime<Utc>, String)> {
    use adbudget_core::pacing::SeriesBucket;
    use chrono::{Datelike, Timelike};
    match period {
        Period::Day => SeriesBucket::Hour
            .starts(span.start, span.end, tz)
            .into_iter()
            .filter_map(|t| {
                let local = t.with_timezone(&tz);
                (local.hour() % 3 == 0 && local.minute() == 0)
                    .then(|| (t, local.format("%H:%M").to_string()))
            })
            .collect(),
        Period::Month => SeriesBucket::Day
            .starts(span.start, span.end, tz)
            .into_iter()
            .filter_map(|t| {
                let local = t.with_timezone(&tz);
                (local.day() == 1 || local.day() % 5 == 0)
                    .then(|| (t, local.format("%b %-d").to_string()))
            })
            .collect(),
    }
}
