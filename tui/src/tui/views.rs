//! Widget views: what an output's widget spec (`px::display(df, name, #{ widget: "graph", .. })`)
//! asks for, the models built once per result for it, their per-table state, and the key
//! handling and drawing they share. The raw table stays the fallback: a `table` spec, an unknown
//! widget, or a spec naming columns the table lacks (the reason is shown in the title).
//!
//! Spec keys, as the bundled scripts write them:
//! - `graph`: `from`, `to` (node columns), `edge` (columns shown on each edge);
//! - `histogram`: `value` (an `hdr_histogram` column, or `hdr_buckets` JSON), `series`;
//! - `flamegraph`: `stack` (folded, `;` between frames), `count`;
//! - `timeseries`: `x` (time), `y` (one column or a list), `series`;
//! - `bar`: `x` (label), `y` (value).

pub mod bar;
pub mod flame;
pub mod graph;
pub mod histogram;
pub mod timeseries;

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::data::{ColumnKind, SortKey, TableData, text_width};
use crate::client::ResultTable;
use crate::output::human_bytes;

/// Script arguments (`name`, `value`), in order.
pub type Args = Vec<(String, String)>;

/// What a widget spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A plain table (also: no spec, or a widget the TUI does not draw).
    Table,
    /// A service map.
    Graph {
        /// Source node column.
        from: String,
        /// Target node column.
        to: String,
        /// Columns labelling each edge.
        edge: Vec<String>,
    },
    /// Latency histograms.
    Histogram {
        /// The histogram column.
        value: String,
        /// The column naming each histogram.
        series: Option<String>,
    },
    /// A flame graph of folded stacks.
    Flamegraph {
        /// The folded stack column.
        stack: String,
        /// The sample count column.
        count: String,
    },
    /// Line charts over time.
    Timeseries {
        /// The time column.
        x: String,
        /// The value columns, one chart each.
        y: Vec<String>,
        /// The column splitting rows into lines.
        series: Option<String>,
    },
    /// Horizontal bars.
    Bar {
        /// The label column.
        x: String,
        /// The value column.
        y: String,
    },
}

/// One string or a list of strings.
fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl Spec {
    /// Parses a widget spec; anything unreadable is a table.
    pub fn parse(widget_json: &str) -> Spec {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(widget_json) else {
            return Spec::Table;
        };
        let s = |k: &str, default: &str| {
            v.get(k)
                .and_then(|c| c.as_str())
                .unwrap_or(default)
                .to_owned()
        };
        let opt = |k: &str| v.get(k).and_then(|c| c.as_str()).map(str::to_owned);
        match v.get("widget").and_then(|w| w.as_str()) {
            Some("graph") => Spec::Graph {
                from: s("from", "from_entity"),
                to: s("to", "to_entity"),
                edge: strings(v.get("edge")),
            },
            Some("histogram") => Spec::Histogram {
                value: s("value", "latency_hist"),
                series: opt("series"),
            },
            Some("flamegraph") => Spec::Flamegraph {
                stack: s("stack", "stack_trace"),
                count: s("count", "count"),
            },
            Some("timeseries") => Spec::Timeseries {
                x: s("x", "time_"),
                y: strings(v.get("y")),
                series: opt("series"),
            },
            Some("bar") => Spec::Bar {
                x: s("x", "x"),
                y: s("y", "y"),
            },
            _ => Spec::Table,
        }
    }
}

/// A widget's model, built once per result.
#[derive(Debug, Clone, PartialEq)]
pub enum Widget {
    /// Service map.
    Graph(graph::Graph),
    /// Latency histograms.
    Histogram(histogram::Histograms),
    /// Flame graph.
    Flame(flame::Flame),
    /// Time series.
    Timeseries(timeseries::TimeSeries),
    /// Bars.
    Bar(bar::Bars),
}

impl Widget {
    /// The model `spec` asks for, from `table` (formatted as `data`); `None` for a table spec,
    /// `Err` (why) when the table does not fit the spec.
    pub fn build(
        spec: &Spec,
        table: &ResultTable,
        data: &TableData,
    ) -> Option<Result<Widget, String>> {
        Some(match spec {
            Spec::Table => return None,
            Spec::Graph { from, to, edge } => {
                graph::Graph::build(data, from, to, edge).map(Widget::Graph)
            }
            Spec::Histogram { value, series } => {
                histogram::Histograms::build(table, data, value, series.as_deref())
                    .map(Widget::Histogram)
            }
            Spec::Flamegraph { stack, count } => {
                flame::Flame::build(data, stack, count).map(Widget::Flame)
            }
            Spec::Timeseries { x, y, series } => {
                timeseries::TimeSeries::build(data, x, y, series.as_deref()).map(Widget::Timeseries)
            }
            Spec::Bar { x, y } => bar::Bars::build(data, x, y).map(Widget::Bar),
        })
    }

    /// What the view is called in titles.
    pub fn kind(&self) -> &'static str {
        match self {
            Widget::Graph(_) => "service map",
            Widget::Histogram(_) => "histogram",
            Widget::Flame(_) => "flame graph",
            Widget::Timeseries(_) => "time series",
            Widget::Bar(_) => "bars",
        }
    }
}

/// Per-table widget state (only the one for the table's widget is used); kept across refreshes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidgetState {
    /// Service map selection.
    pub graph: graph::GraphState,
    /// Histogram series and comparison.
    pub histogram: histogram::HistState,
    /// Flame graph zoom, selection, orientation and search.
    pub flame: flame::FlameState,
    /// Time series focus.
    pub series: timeseries::SeriesState,
    /// Bar selection.
    pub bar: bar::BarState,
}

/// What a key did in a widget view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Not a key of this view: the table keys get it.
    Ignored,
    /// Handled; redraw.
    Handled,
    /// Run this script with these arguments (drill down).
    Drill(String, Args),
    /// Write the flame graph as SVG.
    ExportSvg,
}

/// Hands a key to the widget's handler.
pub fn handle_key(widget: &Widget, state: &mut WidgetState, code: KeyCode) -> KeyOutcome {
    match widget {
        Widget::Graph(g) => graph::handle_key(g, &mut state.graph, code),
        Widget::Histogram(h) => histogram::handle_key(h, &mut state.histogram, code),
        Widget::Flame(f) => flame::handle_key(f, &mut state.flame, code),
        Widget::Timeseries(t) => timeseries::handle_key(t, &mut state.series, code),
        Widget::Bar(b) => bar::handle_key(b, &mut state.bar, code),
    }
}

/// The key hints for the widget's view (key, what).
pub fn hints(widget: &Widget) -> &'static [(&'static str, &'static str)] {
    match widget {
        Widget::Graph(_) => &[
            ("j/k", "select"),
            ("h/l", "layer"),
            ("Tab", "node/edge"),
            ("Enter", "drill in"),
        ],
        Widget::Histogram(_) => &[
            ("j/k", "series"),
            ("c", "compare"),
            ("Tab", "pane"),
            ("Enter", "drill in"),
        ],
        Widget::Flame(_) => &[
            ("hjkl", "move"),
            ("Enter/Esc", "zoom"),
            ("/", "search"),
            ("o", "flip"),
            ("x", "svg"),
        ],
        Widget::Timeseries(_) => &[("j/k", "series")],
        Widget::Bar(_) => &[("j/k", "select"), ("Enter", "drill in")],
    }
}

/// Draws the widget into `area` (inside its block).
pub fn render(
    buf: &mut Buffer,
    area: Rect,
    widget: &Widget,
    state: &WidgetState,
    theme: &crate::theme::Theme,
) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    match widget {
        Widget::Graph(g) => graph::render(buf, area, g, &state.graph, theme),
        Widget::Histogram(h) => histogram::render(buf, area, h, &state.histogram, theme),
        Widget::Flame(f) => flame::render(buf, area, f, &state.flame, theme),
        Widget::Timeseries(t) => timeseries::render(buf, area, t, &state.series, theme),
        Widget::Bar(b) => bar::render(buf, area, b, &state.bar, theme),
    }
}

/// The index of column `name`, or why the widget cannot be drawn.
pub(crate) fn column(data: &TableData, widget: &str, name: &str) -> Result<usize, String> {
    data.columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| format!("{widget}: no column {name:?}"))
}

/// A cell as a number (ints, floats, times and durations in ns).
pub(crate) fn number(key: &SortKey) -> Option<f64> {
    match key {
        SortKey::Int(i) => Some(*i as f64),
        SortKey::Float(f) => Some(*f),
        SortKey::Null | SortKey::Text => None,
    }
}

/// A count in 4 characters or so: `950`, `1.2k`, `34k`, `5.6M`.
pub fn compact_count(v: f64) -> String {
    let a = v.abs();
    if a < 1e3 {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    } else if a < 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a < 1e6 {
        format!("{:.0}k", v / 1e3)
    } else if a < 1e7 {
        format!("{:.1}M", v / 1e6)
    } else if a < 1e9 {
        format!("{:.0}M", v / 1e6)
    } else {
        format!("{:.1}G", v / 1e9)
    }
}

/// A duration in ns, short: `850ns`, `12µs`, `4.6ms`, `1.2s`.
pub fn compact_duration(ns: f64) -> String {
    let a = ns.abs();
    let (v, unit) = if a < 1e3 {
        (ns, "ns")
    } else if a < 1e6 {
        (ns / 1e3, "µs")
    } else if a < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if v.abs() < 10.0 && unit != "ns" {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// How a metric reads, by its column's name and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A fraction shown as a percentage (`error_rate`).
    Ratio,
    /// Nanoseconds.
    Duration,
    /// Per second (`rps`, `*_per_s`).
    Rate,
    /// Bytes.
    Bytes,
    /// A plain number.
    Count,
    /// Text (not a number).
    Text,
}

impl MetricKind {
    /// The kind of column `name` holding values of `kind`.
    pub fn of(name: &str, kind: ColumnKind) -> MetricKind {
        match kind {
            ColumnKind::Duration => MetricKind::Duration,
            ColumnKind::Text | ColumnKind::Bool | ColumnKind::Time => MetricKind::Text,
            // Latency quantiles (`latency_p99`) are ns integers the table shows as numbers.
            _ if name.contains("latency") => MetricKind::Duration,
            _ if name.ends_with("_rate") || name == "ratio" => MetricKind::Ratio,
            _ if name == "rps" || name.ends_with("_per_s") || name.ends_with("_rps") => {
                MetricKind::Rate
            }
            _ if name.contains("bytes") => MetricKind::Bytes,
            _ => MetricKind::Count,
        }
    }

    /// `v` formatted short for labels.
    pub fn format(self, v: f64) -> String {
        match self {
            MetricKind::Ratio => {
                let pct = v * 100.0;
                if pct != 0.0 && pct.abs() < 10.0 {
                    format!("{pct:.1}%")
                } else {
                    format!("{pct:.0}%")
                }
            }
            MetricKind::Duration => compact_duration(v),
            MetricKind::Rate => format!("{}/s", compact_count(v)),
            MetricKind::Bytes => human_bytes(v.max(0.0) as u64),
            MetricKind::Count | MetricKind::Text => compact_count(v),
        }
    }
}

/// Writes `text` at (`x`, `y`) relative to `area`'s origin, clipped to `area` on every side
/// (`x` may be negative: the start is cut off).
pub(crate) fn put(buf: &mut Buffer, area: Rect, x: i32, y: i32, text: &str, style: Style) {
    if y < 0 || y >= i32::from(area.height) {
        return;
    }
    let row = area.y + y as u16;
    let mut cx = x;
    for c in text.chars() {
        let mut tmp = [0u8; 4];
        let s = c.encode_utf8(&mut tmp);
        let w = text_width(s) as i32;
        if cx >= 0 && cx + w <= i32::from(area.width) {
            buf[(area.x + cx as u16, row)]
                .set_symbol(s)
                .set_style(style);
        }
        cx += w;
        if cx >= i32::from(area.width) {
            break;
        }
    }
}

/// Cuts `s` to `width` cells, with `…` when cut.
pub(crate) fn cut(s: &str, width: usize) -> String {
    if text_width(s) <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = text_width(c.encode_utf8(&mut [0; 4]));
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// The series style `i` (cycling through the theme's six).
pub(crate) fn series_style(theme: &crate::theme::Theme, i: usize) -> Style {
    [
        theme.series_1,
        theme.series_2,
        theme.series_3,
        theme.series_4,
        theme.series_5,
        theme.series_6,
    ][i % 6]
}

/// The first line offset that keeps `selected` (of `len` items) inside a window of `rows`,
/// centring it when it would be off screen.
pub(crate) fn scroll_to(selected: usize, len: usize, rows: usize) -> usize {
    if len <= rows || rows == 0 {
        return 0;
    }
    selected
        .saturating_sub(rows / 2)
        .min(len.saturating_sub(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_the_bundled_scripts_keys() {
        assert_eq!(
            Spec::parse(
                r#"{"widget":"graph","from":"from_entity","to":"to_entity","edge":["requests","error_rate"]}"#
            ),
            Spec::Graph {
                from: "from_entity".into(),
                to: "to_entity".into(),
                edge: vec!["requests".into(), "error_rate".into()],
            }
        );
        assert_eq!(
            Spec::parse(r#"{"widget":"timeseries","x":"timestamp","y":"rps"}"#),
            Spec::Timeseries {
                x: "timestamp".into(),
                y: vec!["rps".into()],
                series: None,
            }
        );
        assert_eq!(Spec::parse(r#"{"widget":"table"}"#), Spec::Table);
        assert_eq!(Spec::parse(r#"{"widget":"pie"}"#), Spec::Table);
        assert_eq!(Spec::parse(""), Spec::Table);
    }

    #[test]
    fn metrics_format_by_name_and_kind() {
        assert_eq!(
            MetricKind::of("error_rate", ColumnKind::Float),
            MetricKind::Ratio
        );
        assert_eq!(MetricKind::Ratio.format(0.0123), "1.2%");
        assert_eq!(MetricKind::Ratio.format(0.5), "50%");
        assert_eq!(
            MetricKind::of("latency_p99", ColumnKind::Int),
            MetricKind::Duration
        );
        assert_eq!(MetricKind::Duration.format(4_560_000.0), "4.6ms");
        assert_eq!(MetricKind::Duration.format(850.0), "850ns");
        assert_eq!(MetricKind::of("rps", ColumnKind::Float), MetricKind::Rate);
        assert_eq!(MetricKind::Rate.format(1234.0), "1.2k/s");
        assert_eq!(
            MetricKind::of("requests", ColumnKind::Int),
            MetricKind::Count
        );
        assert_eq!(MetricKind::Count.format(56_789.0), "57k");
        assert_eq!(
            MetricKind::of("bytes_sent", ColumnKind::Int),
            MetricKind::Bytes
        );
    }

    #[test]
    fn put_clips_on_every_side() {
        let area = Rect::new(1, 1, 4, 2);
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 4));
        put(&mut buf, area, -2, 0, "abcdef", Style::default());
        put(&mut buf, area, 3, 1, "xyz", Style::default());
        put(&mut buf, area, 0, 2, "never", Style::default());
        put(&mut buf, area, 0, -1, "never", Style::default());
        let rows: Vec<String> = (0..4)
            .map(|y| (0..6).map(|x| buf[(x, y)].symbol().to_owned()).collect())
            .collect();
        assert_eq!(rows, ["      ", " cdef ", "    x ", "      "]);
    }
}
