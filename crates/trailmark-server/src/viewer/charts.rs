//! `/ui/activity`: charts drawn on the server as plain SVG (stacked bars per day, horizontal bars of the top actors and resource types), each mark carrying its data for tests and assistive tools.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;

use crate::extract::QueryParams;
use axum::http::HeaderMap;
use axum::response::Html;
use serde::Deserialize;
use serde_json::{Map, json};
use trailmark_core::{Outcome, TenantId};
use trailmark_store::{CountBy, Query, Store};

use super::{PageError, Viewer, esc, layout};
use crate::app::now;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Range {
    days: Option<u32>,
}

/// The drawing's width in SVG units; it scales to the page's width.
const WIDTH: u32 = 960;
/// The failure colour: used for failures and nothing else.
const FAILURE: &str = "#c62828";
/// Colours of the top actions, then of the rest ("other").
const SERIES: [&str; 5] = ["#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"];
const OTHER: &str = "#9e9e9e";

fn svg_open(out: &mut String, title: &str, height: u32) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"13\"><text class=\"title\" x=\"8\" y=\"20\" font-size=\"16\" font-weight=\"bold\">{t}</text>",
        t = esc(title)
    );
}

/// `part` of `whole` as a length of at most `span` units.
fn scaled(part: u64, whole: u64, span: u32) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let ratio = part as f64 / whole.max(1) as f64;
    ratio * f64::from(span)
}

/// Horizontal bars, one row per item in the order given (most first), each
/// labelled with its name and count; a row is a `g.bar` carrying
/// `data-label` and `data-count`.
fn bars(title: &str, items: &[(String, u64)], fill: &str) -> String {
    const ROW: u32 = 26;
    const LEFT: u32 = 220;
    const TOP: u32 = 34;
    let items = &items[..items.len().min(10)];
    let rows = u32::try_from(items.len().max(1)).unwrap_or(10);
    let mut out = String::new();
    svg_open(&mut out, title, TOP + ROW * rows + 8);
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let span = WIDTH - LEFT - 70;
    if items.is_empty() {
        let _ = write!(out, "<text x=\"0\" y=\"{}\">No events.</text>", TOP + 18);
    }
    for (row, (label, count)) in (0u32..).zip(items) {
        let y = TOP + row * ROW;
        let width = scaled(*count, max, span).max(1.0);
        let shown: String = label.chars().take(30).collect();
        let _ = write!(
            out,
            "<g class=\"bar\" data-label=\"{l}\" data-count=\"{count}\"><text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{s}</text><rect x=\"{LEFT}\" y=\"{ry}\" width=\"{width:.1}\" height=\"{h}\" fill=\"{fill}\"/><text x=\"{cx:.1}\" y=\"{ty}\">{count}</text></g>",
            l = esc(label),
            lx = LEFT - 8,
            ty = y + 17,
            s = esc(&shown),
            ry = y + 4,
            h = ROW - 8,
            cx = f64::from(LEFT) + width + 6.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// Stacked bars per day: one column per day of `days`, one segment per
/// series with events that day (bottom to top in the order given), a
/// legend, the day's total on the y axis' scale. A segment is a `rect.seg`
/// carrying `data-day`, `data-series` and `data-count`.
fn stacked(title: &str, days: &[String], series: &[(String, Vec<u64>, &str)]) -> String {
    const LEFT: u32 = 50;
    const TOP: u32 = 56;
    const PLOT: u32 = 220;
    let mut out = String::new();
    svg_open(&mut out, title, TOP + PLOT + 30);
    let totals: Vec<u64> = (0..days.len())
        .map(|d| {
            series
                .iter()
                .map(|(_, v, _)| v.get(d).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let n = u32::try_from(days.len().max(1)).unwrap_or(1);
    let column = f64::from(WIDTH - LEFT - 10) / f64::from(n);
    let bottom = TOP + PLOT;
    // Legend, then the axis: 0 and the largest day's total.
    let mut x = LEFT;
    for (name, _, colour) in series {
        let _ = write!(
            out,
            "<g class=\"legend\"><rect x=\"{x}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"41\">{}</text></g>",
            x + 16,
            esc(name)
        );
        x += 24 + 8 * u32::try_from(name.chars().count().min(20)).unwrap_or(20);
    }
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{WIDTH}\" y2=\"{bottom}\" stroke=\"#999\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{WIDTH}\" y2=\"{TOP}\" stroke=\"#eee\"/><text x=\"{lx}\" y=\"{bottom}\" text-anchor=\"end\">0</text><text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{max}</text>",
        lx = LEFT - 6,
        ty = TOP + 5,
    );
    let every = days.len().div_ceil(10).max(1);
    for (d, day) in days.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let left = f64::from(LEFT) + column * d as f64;
        let mut top = f64::from(bottom);
        for (name, values, colour) in series {
            let count = values.get(d).copied().unwrap_or(0);
            if count == 0 {
                continue;
            }
            let height = scaled(count, max, PLOT);
            top -= height;
            let _ = write!(
                out,
                "<rect class=\"seg\" data-day=\"{day}\" data-series=\"{s}\" data-count=\"{count}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{height:.1}\" fill=\"{colour}\"><title>{day} {s}: {count}</title></rect>",
                s = esc(name),
                x = left + column * 0.1,
                w = column * 0.8,
            );
        }
        if d % every == 0 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                left + column / 2.0,
                bottom + 18,
                esc(day.get(5..).unwrap_or(day))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Every day from `since` to today, as `YYYY-MM-DD`.
fn day_axis(days: u32) -> Vec<String> {
    let today = now().unix_millis() / 86_400_000;
    (0..i64::from(days))
        .rev()
        .filter_map(|back| {
            trailmark_core::Timestamp::from_unix_millis((today - back) * 86_400_000)
                .map(|t| t.to_string()[..10].to_owned())
        })
        .collect()
}

/// One value's count on each day of the axis (0 where none).
fn series(axis: &[String], counts: &[(String, String, u64)], value: &str) -> Vec<u64> {
    axis.iter()
        .map(|d| {
            counts
                .iter()
                .find(|(day, v, _)| day == d && v == value)
                .map_or(0, |(_, _, n)| *n)
        })
        .collect()
}

pub(crate) async fn activity<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    QueryParams(range): QueryParams<Range>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let days = range.days.unwrap_or(30).clamp(1, 366);
    let tenants: Vec<TenantId> = who.caller.visible(who.tenant.as_deref())?;
    let since = trailmark_core::Timestamp::from_unix_millis(
        now().unix_millis() - i64::from(days) * 86_400_000,
    );
    let base = Query {
        tenants,
        since,
        ..Query::default()
    };
    let store = &viewer.app.store;
    let all = store.stats(&base).await.map_err(ApiError::from)?;
    let axis = day_axis(days);
    // One grouped pass each for the two per-day charts.
    let by_day = store
        .daily_counts(&base, CountBy::Action)
        .await
        .map_err(ApiError::from)?;
    // The top actions, then the rest as one "other" segment: each day's
    // column is that day's total.
    let top: Vec<&str> = all
        .by_action
        .iter()
        .take(SERIES.len())
        .map(|(a, _)| a.as_str())
        .collect();
    let mut by_action: Vec<(String, Vec<u64>, &str)> = top
        .iter()
        .zip(SERIES)
        .map(|(action, colour)| ((*action).to_owned(), series(&axis, &by_day, action), colour))
        .collect();
    let other: Vec<u64> = axis
        .iter()
        .map(|d| {
            by_day
                .iter()
                .filter(|(day, action, _)| day == d && !top.contains(&action.as_str()))
                .map(|(_, _, n)| n)
                .sum()
        })
        .collect();
    if other.iter().any(|n| *n > 0) {
        by_action.push(("other".to_owned(), other, OTHER));
    }
    let outcomes = store
        .daily_counts(&base, CountBy::Outcome)
        .await
        .map_err(ApiError::from)?;
    let failures = series(&axis, &outcomes, Outcome::Failure.as_str());
    let mut meta = Map::new();
    meta.insert("page".into(), json!("/ui/activity"));
    meta.insert("days".into(), json!(days));
    viewer
        .app
        .audit(
            Some(&who.caller),
            "read",
            Some(("route", "/ui/activity")),
            meta,
        )
        .await?;

    let mut body = format!(
        "<h1>Activity</h1><p>{} events in the last {days} days. <a href=\"/ui/activity?days=7\">7 days</a> · <a href=\"/ui/activity?days=30\">30 days</a> · <a href=\"/ui/activity?days=90\">90 days</a></p>",
        all.total
    );
    for (id, svg) in [
        (
            "per-day",
            stacked("Events per day by action", &axis, &by_action),
        ),
        (
            "failures",
            stacked(
                "Failures per day",
                &axis,
                &[("failure".to_owned(), failures, FAILURE)],
            ),
        ),
        ("actors", bars("Top actors", &all.by_actor, SERIES[0])),
        (
            "resources",
            bars("Top resource types", &all.by_resource_type, SERIES[1]),
        ),
    ] {
        let _ = write!(
            body,
            "<figure class=\"chart\" id=\"chart-{id}\">{svg}</figure>"
        );
    }
    body.push_str("<h2>By outcome</h2><ul>");
    for (o, n) in &all.by_outcome {
        let _ = write!(body, "<li>{}: {n}</li>", esc(o));
    }
    body.push_str("</ul>");
    Ok(layout("Activity", "/ui/activity", Some(&who), &body))
}
