//! `/ui/activity`: charts drawn on the server as SVG with plotters.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;

use crate::extract::QueryParams;
use axum::http::HeaderMap;
use axum::response::Html;
use plotters::prelude::*;
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

const COLORS: [RGBColor; 6] = [
    RGBColor(46, 125, 50),
    RGBColor(21, 101, 192),
    RGBColor(198, 40, 40),
    RGBColor(106, 27, 154),
    RGBColor(239, 108, 0),
    RGBColor(84, 110, 122),
];

fn chart_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Forbidden(format!("drawing a chart failed: {e}"))
}

/// Events per day, one line per series, over `days` (days without events
/// count zero).
fn lines(title: &str, days: &[String], series: &[(String, Vec<u64>)]) -> Result<String, ApiError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let max = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1);
        let n = days.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, 0..max + max / 10 + 1)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(6.min(n))
            .x_label_formatter(&|i| days.get(*i).map(|d| d[5..].to_owned()).unwrap_or_default())
            .draw()
            .map_err(chart_error)?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(x, y)| (x, *y)),
                    color.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Horizontal bars of the top entries.
fn bars(title: &str, items: &[(String, u64)]) -> Result<String, ApiError> {
    let items: Vec<&(String, u64)> = items.iter().take(10).collect();
    let mut svg = String::new();
    {
        let height = 60 + 26 * u32::try_from(items.len().max(1)).unwrap_or(10);
        let root = SVGBackend::with_string(&mut svg, (720, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        let n = items.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(25)
            .y_label_area_size(160)
            .build_cartesian_2d(0..max + max / 10 + 1, (0..n).into_segmented())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => items
                    .get(n.saturating_sub(1 + *i))
                    .map(|(name, _)| name.chars().take(24).collect())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, count))| {
                let y = n - 1 - i;
                let mut bar = Rectangle::new(
                    [
                        (0, SegmentValue::Exact(y)),
                        (*count, SegmentValue::Exact(y + 1)),
                    ],
                    COLORS[1].mix(0.7).filled(),
                );
                bar.set_margin(3, 3, 0, 0);
                bar
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
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
    let by_action: Vec<(String, Vec<u64>)> = all
        .by_action
        .iter()
        .take(5)
        .map(|(action, _)| (action.clone(), series(&axis, &by_day, action)))
        .collect();
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
            lines("Events per day by action", &axis, &by_action)?,
        ),
        (
            "failures",
            lines(
                "Failures per day",
                &axis,
                &[("failure".to_owned(), failures)],
            )?,
        ),
        ("actors", bars("Top actors", &all.by_actor)?),
        (
            "resources",
            bars("Top resource types", &all.by_resource_type)?,
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
