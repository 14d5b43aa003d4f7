//! Time series (`timeseries` widget): one line chart per `y` column (request rate, error rate,
//! latency, ...) over the `x` time column, one line per `series` value; `j/k` cycles between all
//! lines and one series alone.

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Widget as _};

use super::{KeyOutcome, MetricKind, column, number, put, series_style};
use crate::theme::Theme;
use crate::tui::data::{TableData, text_width};

/// One chart: a `y` column's lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The column.
    pub name: String,
    /// How its values read.
    pub kind: MetricKind,
    /// Per series: (seconds since the first point, value), in time order.
    pub lines: Vec<Vec<(f64, f64)>>,
    /// The largest value.
    pub max: f64,
}

/// The charts.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    /// Series names (one unnamed series when the spec has none).
    pub series: Vec<String>,
    /// One per `y` column.
    pub metrics: Vec<Metric>,
    /// Seconds from the first to the last point.
    pub span: f64,
    /// The first and last times as shown (`HH:MM:SS`).
    pub time_labels: (String, String),
}

/// Which lines show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesState {
    /// 0: all; i: series i-1 alone.
    pub focus: usize,
}

/// `HH:MM:SS` out of a formatted time (`YYYY-MM-DD HH:MM:SS.mmm`), else the text.
fn clock(text: &str) -> String {
    text.get(11..19).unwrap_or(text).to_owned()
}

impl TimeSeries {
    /// Groups rows by `series` and charts each `y` column over `x`.
    pub fn build(
        data: &TableData,
        x: &str,
        y: &[String],
        series: Option<&str>,
    ) -> Result<Self, String> {
        let xi = column(data, "timeseries", x)?;
        let yi = y
            .iter()
            .map(|name| column(data, "timeseries", name))
            .collect::<Result<Vec<_>, _>>()?;
        if yi.is_empty() {
            return Err("timeseries: the spec names no y column".into());
        }
        let si = match series {
            Some(s) => Some(column(data, "timeseries", s)?),
            None => None,
        };
        let mut names: Vec<String> = Vec::new();
        let mut points: Vec<(f64, usize, usize)> = Vec::new(); // (x ns, series, row)
        let (mut t0, mut t1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut first, mut last) = (String::new(), String::new());
        for r in 0..data.num_rows() {
            let Some(t) = number(&data.key(r, xi)) else {
                continue;
            };
            if t < t0 {
                t0 = t;
                first = clock(&data.text(r, xi));
            }
            if t > t1 {
                t1 = t;
                last = clock(&data.text(r, xi));
            }
            let name = si.map_or(String::new(), |i| data.text(r, i).into_owned());
            let s = match names.iter().position(|n| *n == name) {
                Some(s) => s,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            points.push((t, s, r));
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let metrics = y
            .iter()
            .zip(&yi)
            .map(|(name, &c)| {
                let mut lines = vec![Vec::new(); names.len()];
                let mut max: f64 = 0.0;
                for &(t, s, r) in &points {
                    if let Some(v) = number(&data.key(r, c)) {
                        lines[s].push(((t - t0) / 1e9, v));
                        max = max.max(v);
                    }
                }
                Metric {
                    name: name.clone(),
                    kind: MetricKind::of(name, data.columns[c].kind),
                    lines,
                    max,
                }
            })
            .collect();
        Ok(TimeSeries {
            series: names,
            metrics,
            span: if t1 > t0 { (t1 - t0) / 1e9 } else { 0.0 },
            time_labels: (first, last),
        })
    }
}

/// Handles a time series key.
pub fn handle_key(t: &TimeSeries, s: &mut SeriesState, code: KeyCode) -> KeyOutcome {
    let n = t.series.len() + 1;
    match code {
        KeyCode::Char('j') | KeyCode::Down => s.focus = (s.focus + 1) % n,
        KeyCode::Char('k') | KeyCode::Up => s.focus = (s.focus + n - 1) % n,
        KeyCode::Char('g') | KeyCode::Home => s.focus = 0,
        _ => return KeyOutcome::Ignored,
    }
    KeyOutcome::Handled
}

/// Draws the charts stacked, one per metric.
pub fn render(buf: &mut Buffer, area: Rect, t: &TimeSeries, s: &SeriesState, theme: &Theme) {
    if t.series.is_empty() {
        put(buf, area, 0, 0, "no points in this result", theme.muted);
        return;
    }
    let focus = s.focus.min(t.series.len());
    let shown: Vec<usize> = if focus == 0 {
        (0..t.series.len()).collect()
    } else {
        vec![focus - 1]
    };
    let what = if focus == 0 {
        format!("all {} series", t.series.len())
    } else {
        format!("{} ({focus}/{})", t.series[focus - 1], t.series.len())
    };
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    put(buf, head, 0, 0, &what, theme.title);
    let hint = "  j/k: one series or all";
    put(buf, head, text_width(&what) as i32, 0, hint, theme.muted);
    let charts = Layout::vertical(t.metrics.iter().map(|_| Constraint::Fill(1))).split(body);
    for (mi, (m, chart_area)) in t.metrics.iter().zip(charts.iter()).enumerate() {
        if chart_area.height == 0 {
            continue;
        }
        let [label, plot] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(*chart_area);
        let peak = t
            .series
            .iter()
            .enumerate()
            .filter(|(i, _)| shown.contains(i))
            .flat_map(|(i, _)| m.lines[i].iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        put(
            buf,
            label,
            0,
            0,
            &format!("{}  (max {})", m.name, m.kind.format(peak)),
            theme.header,
        );
        if plot.height < 2 {
            continue;
        }
        let datasets: Vec<Dataset<'_>> = shown
            .iter()
            .map(|&i| {
                Dataset::default()
                    .name(t.series[i].clone())
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(series_style(theme, i))
                    .data(&m.lines[i])
            })
            .collect();
        let top = if peak > 0.0 { peak * 1.05 } else { 1.0 };
        let chart = Chart::new(datasets)
            .style(theme.base)
            .x_axis(
                Axis::default()
                    .style(theme.border)
                    .bounds([0.0, t.span.max(1.0)])
                    .labels([
                        Span::styled(t.time_labels.0.clone(), theme.muted),
                        Span::styled(t.time_labels.1.clone(), theme.muted),
                    ]),
            )
            .y_axis(
                Axis::default()
                    .style(theme.border)
                    .bounds([0.0, top])
                    .labels([
                        Span::styled(m.kind.format(0.0), theme.muted),
                        Span::styled(m.kind.format(top), theme.muted),
                    ]),
            )
            .legend_position((mi == 0 && t.series.len() > 1).then_some(LegendPosition::TopRight));
        chart.render(plot, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_cycles_through_all_and_each_series() {
        let t = TimeSeries {
            series: vec!["a".into(), "b".into()],
            metrics: vec![],
            span: 0.0,
            time_labels: (String::new(), String::new()),
        };
        let mut s = SeriesState::default();
        let seen: Vec<usize> = (0..4)
            .map(|_| {
                handle_key(&t, &mut s, KeyCode::Char('j'));
                s.focus
            })
            .collect();
        assert_eq!(seen, [1, 2, 0, 1]);
        handle_key(&t, &mut s, KeyCode::Char('k'));
        assert_eq!(s.focus, 0);
        assert_eq!(handle_key(&t, &mut s, KeyCode::Enter), KeyOutcome::Ignored);
    }
}
