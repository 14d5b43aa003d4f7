//! Latency histograms (`histogram` widget) from the engine's `hdr_histogram` aggregate (the V2
//! serialized HDR histogram: exact p50/p90/p99 within 0.1%) or, failing that, `hdr_buckets`
//! JSON (`[{"le":ns,"count":n}]`, quantiles then read as the bucket's upper bound). Buckets
//! double from 1 ns, so rows are log-scale; when they do not fit, neighbours merge (×4, ×8, …).
//! One series at a time, or two side by side on the same rows and scale (`c`).

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use crossterm::event::KeyCode;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};

use super::{KeyOutcome, compact_count, compact_duration, put};
use crate::client::ResultTable;
use crate::theme::Theme;
use crate::tui::data::{TableData, text_width};

/// One histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// What it is of (the `series` column's value).
    pub name: String,
    /// (k, count): values in (2^(k-1), 2^k] ns, ascending k, gaps left out.
    pub buckets: Vec<(u32, u64)>,
    /// Values recorded.
    pub total: u64,
    /// p50, p90, p99 (ns).
    pub quantiles: [Option<u64>; 3],
    /// Quantiles from the HDR histogram (else bucket bounds).
    pub exact: bool,
}

/// Every row's histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histograms {
    /// One per row, in row order.
    pub series: Vec<Series>,
    /// The `series` column, if any (Enter drills into px/service when it is `service`).
    pub series_column: Option<String>,
}

/// Which series show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistState {
    /// The left (or only) series.
    pub primary: usize,
    /// The right series when comparing.
    pub other: usize,
    /// Two side by side.
    pub compare: bool,
    /// j/k move the right series.
    pub right_focus: bool,
}

/// Lines above the buckets.
const HEADER: usize = 2;

const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")];

/// The bucket index of an upper bound: le ≈ 2^k (HDR reports bounds a little off powers of 2).
fn bucket_of(le: u64) -> u32 {
    (le.max(1) as f64).log2().round() as u32
}

/// The bucket a value falls in: the smallest k with v ≤ 2^k.
fn bucket_of_value(v: u64) -> u32 {
    64 - v.saturating_sub(1).leading_zeros()
}

/// Buckets (k, count), the total, and p50/p90/p99.
type Parsed = (Vec<(u32, u64)>, u64, [Option<u64>; 3]);

fn from_hdr(bytes: &[u8]) -> Option<Parsed> {
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).ok()?;
    let mut buckets: Vec<(u32, u64)> = Vec::new();
    for v in h.iter_log(1, 2.0) {
        let n = v.count_since_last_iteration();
        if n == 0 {
            continue;
        }
        let k = bucket_of(v.value_iterated_to());
        match buckets.last_mut() {
            Some((lk, c)) if *lk == k => *c += n,
            _ => buckets.push((k, n)),
        }
    }
    let total = h.len();
    let q = QUANTILES.map(|(q, _)| (total > 0).then(|| h.value_at_quantile(q)));
    Some((buckets, total, q))
}

fn from_json(text: &str) -> Option<Parsed> {
    let v: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    let mut buckets: Vec<(u32, u64)> = Vec::new();
    for b in v {
        let le = b.get("le")?.as_u64()?;
        let n = b.get("count")?.as_u64()?;
        if n > 0 {
            buckets.push((bucket_of(le), n));
        }
    }
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    let q = QUANTILES.map(|(q, _)| {
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        buckets.iter().find_map(|&(k, n)| {
            seen += n;
            (seen >= want.max(1)).then(|| 1u64 << k.min(63))
        })
    });
    Some((buckets, total, q))
}

impl Histograms {
    /// Reads the `value` column (HDR Binary or bucket JSON), one series per row.
    pub fn build(
        table: &ResultTable,
        data: &TableData,
        value: &str,
        series: Option<&str>,
    ) -> Result<Self, String> {
        let name_i = match series {
            Some(s) => Some(super::column(data, "histogram", s)?),
            None => None,
        };
        super::column(data, "histogram", value)?;
        let mut out = Vec::new();
        let mut row = 0usize;
        for batch in &table.batches {
            let Some(col) = batch.column_by_name(value) else {
                return Err(format!("histogram: no column {value:?}"));
            };
            for i in 0..col.len() {
                let parsed = if col.is_null(i) {
                    None
                } else {
                    match col.data_type() {
                        DataType::Binary => from_hdr(col.as_binary::<i32>().value(i)),
                        DataType::LargeBinary => from_hdr(col.as_binary::<i64>().value(i)),
                        DataType::Utf8 => from_json(col.as_string::<i32>().value(i)),
                        DataType::LargeUtf8 => from_json(col.as_string::<i64>().value(i)),
                        t => {
                            return Err(format!(
                                "histogram: column {value:?} is {t}, not an hdr_histogram"
                            ));
                        }
                    }
                };
                let exact = matches!(col.data_type(), DataType::Binary | DataType::LargeBinary);
                let name = name_i
                    .and_then(|n| data.cell(row, n))
                    .map_or_else(|| format!("row {}", row + 1), |c| c.text.into());
                let (buckets, total, quantiles) = parsed.unwrap_or_default();
                out.push(Series {
                    name,
                    buckets,
                    total,
                    quantiles,
                    exact,
                });
                row += 1;
            }
        }
        Ok(Histograms {
            series: out,
            series_column: series.map(str::to_owned),
        })
    }

    fn focused(&self, s: &HistState) -> Option<&Series> {
        self.series.get(if s.compare && s.right_focus {
            s.other
        } else {
            s.primary
        })
    }
}

/// Handles a histogram key.
pub fn handle_key(h: &Histograms, s: &mut HistState, code: KeyCode) -> KeyOutcome {
    let n = h.series.len();
    let slot = if s.compare && s.right_focus {
        &mut s.other
    } else {
        &mut s.primary
    };
    match code {
        KeyCode::Char('j') | KeyCode::Down => *slot = (*slot + 1).min(n.saturating_sub(1)),
        KeyCode::Char('k') | KeyCode::Up => *slot = slot.saturating_sub(1),
        KeyCode::Char('g') | KeyCode::Home => *slot = 0,
        KeyCode::Char('G') | KeyCode::End => *slot = n.saturating_sub(1),
        KeyCode::Char('c') => {
            s.compare = !s.compare && n > 1;
            s.right_focus = false;
            if s.compare {
                s.other = (s.primary + 1) % n;
            }
        }
        KeyCode::Tab if s.compare => s.right_focus = !s.right_focus,
        KeyCode::Enter => {
            if h.series_column.as_deref() == Some("service")
                && let Some(series) = h.focused(s)
            {
                return KeyOutcome::Drill(
                    "px/service".into(),
                    vec![("service".into(), series.name.clone())],
                );
            }
        }
        _ => return KeyOutcome::Ignored,
    }
    KeyOutcome::Handled
}

/// Rows: (k of the row's upper bound, count per series), merged until they fit `rows`; each
/// row holds (k - step, k].
fn rows_for(shown: &[&Series], rows: usize) -> (u32, Vec<(u32, Vec<u64>)>) {
    let ks = shown.iter().flat_map(|s| s.buckets.iter().map(|b| b.0));
    let (Some(lo), Some(hi)) = (ks.clone().min(), ks.max()) else {
        return (1, Vec::new());
    };
    let mut step = 1u32;
    while ((hi - lo) / step + 1) as usize > rows.max(1) && step < 64 {
        step *= 2;
    }
    let count = (hi - lo) / step + 1;
    let mut out: Vec<(u32, Vec<u64>)> = (0..count)
        .map(|i| (lo + (i + 1) * step - 1, vec![0; shown.len()]))
        .collect();
    for (si, s) in shown.iter().enumerate() {
        for &(k, n) in &s.buckets {
            let i = ((k - lo) / step) as usize;
            out[i].1[si] += n;
        }
    }
    (step, out)
}

const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/// A bar of `frac` (0..1) of `width` cells, with eighth blocks.
pub(crate) fn bar(frac: f64, width: usize) -> String {
    let eighths = (frac.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    s.push_str(EIGHTHS[eighths % 8]);
    s
}

/// One pane: a series drawn on rows shared with the other pane.
struct Pane<'a> {
    series: &'a Series,
    /// Row width in buckets, and the rows.
    step: u32,
    rows: &'a [(u32, Vec<u64>)],
    /// Which count of each row is this series'.
    which: usize,
    /// The share of values that fills a bar.
    scale: f64,
    focused: bool,
    /// `i/n` among the series.
    position: String,
}

fn render_pane(buf: &mut Buffer, area: Rect, pane: &Pane<'_>, theme: &Theme) {
    let Pane {
        series,
        step,
        rows,
        which,
        scale,
        focused,
        ref position,
    } = *pane;
    let title_style = if focused {
        theme.selected_row
    } else {
        theme.title
    };
    let mut header = vec![
        (format!(" {} ", series.name), title_style),
        (
            format!(
                " {position} · {} values",
                compact_count(series.total as f64)
            ),
            theme.muted,
        ),
    ];
    for (q, (_, name)) in series.quantiles.iter().zip(QUANTILES) {
        if let Some(v) = q {
            let approx = if series.exact { "" } else { "≤" };
            let text = format!(" {name} {approx}{}  ", compact_duration(*v as f64));
            header.push((text, theme.highlight));
        }
    }
    // Name and size on the first line, quantiles on the second.
    let mut x = 0;
    for (i, (t, st)) in header.into_iter().enumerate() {
        let y = i32::from(i > 1);
        if i == 2 {
            x = 0;
        }
        put(buf, area, x, y, &t, st);
        x += text_width(&t) as i32;
    }
    if series.total == 0 {
        put(buf, area, 0, 2, "no values", theme.muted);
        return;
    }
    const LABEL: usize = 8;
    const COUNT: usize = 6;
    const MARKS: usize = 12;
    let bar_w = usize::from(area.width).saturating_sub(LABEL + COUNT + MARKS + 3);
    for (i, (k, counts)) in rows.iter().enumerate() {
        let y = i as i32 + HEADER as i32;
        let n = counts[which];
        let frac = if scale > 0.0 {
            n as f64 / series.total.max(1) as f64 / scale
        } else {
            0.0
        };
        let label = format!("≤{}", compact_duration((1u64 << (*k).min(63)) as f64));
        let label = format!("{label:>LABEL$} ");
        let bar_text = bar(frac, bar_w);
        let count = if n == 0 {
            String::new()
        } else {
            compact_count(n as f64)
        };
        // The first row also holds anything below it (merged rows start mid-way).
        let low = if i == 0 {
            None
        } else {
            Some(k.saturating_sub(step))
        };
        let names: Vec<&str> = series
            .quantiles
            .iter()
            .zip(QUANTILES)
            .filter(|(q, _)| {
                q.is_some_and(|v| {
                    let b = bucket_of_value(v);
                    b <= *k && low.is_none_or(|l| b > l)
                })
            })
            .map(|(_, (_, name))| name)
            .collect();
        let marks = if names.is_empty() {
            String::new()
        } else {
            format!("◀ {}", names.join(" "))
        };
        put(buf, area, 0, y, &label, theme.muted);
        put(buf, area, (LABEL + 1) as i32, y, &bar_text, theme.bar);
        let cx = (LABEL + 2 + bar_w) as i32;
        put(buf, area, cx, y, &format!("{count:>COUNT$}"), theme.base);
        put(buf, area, cx + COUNT as i32 + 1, y, &marks, theme.highlight);
    }
}

/// Draws one histogram, or two side by side on the same rows and scale.
pub fn render(buf: &mut Buffer, area: Rect, h: &Histograms, s: &HistState, theme: &Theme) {
    if h.series.is_empty() {
        put(buf, area, 0, 0, "no histograms in this result", theme.muted);
        return;
    }
    let n = h.series.len();
    let primary = s.primary.min(n - 1);
    let other = s.other.min(n - 1);
    let shown: Vec<&Series> = if s.compare {
        vec![&h.series[primary], &h.series[other]]
    } else {
        vec![&h.series[primary]]
    };
    let (step, rows) = rows_for(&shown, usize::from(area.height).saturating_sub(HEADER));
    // One scale for both: the largest share of any row.
    let scale = rows
        .iter()
        .flat_map(|(_, c)| {
            c.iter()
                .zip(&shown)
                .map(|(n, s)| *n as f64 / s.total.max(1) as f64)
        })
        .fold(0.0, f64::max);
    let panes: Vec<Rect> = if s.compare {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .spacing(1)
            .split(area)
            .to_vec()
    } else {
        vec![area]
    };
    for (i, (pane, series)) in panes.iter().zip(&shown).enumerate() {
        let index = if i == 0 { primary } else { other };
        let focused = s.compare && (i == 1) == s.right_focus;
        let p = Pane {
            series,
            step,
            rows: &rows,
            which: i,
            scale,
            focused,
            position: format!("{}/{n}", index + 1),
        };
        render_pane(buf, *pane, &p, theme);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(values: &[u64]) -> Vec<u8> {
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        let mut out = Vec::new();
        V2Serializer::new().serialize(&h, &mut out).unwrap();
        out
    }

    #[test]
    fn hdr_histograms_give_log_buckets_and_exact_quantiles() {
        let mut values = vec![1_000_000u64; 90];
        values.extend([50_000_000; 10]);
        let (buckets, total, q) = from_hdr(&hdr(&values)).unwrap();
        assert_eq!(total, 100);
        assert_eq!(
            buckets,
            [(20, 90), (26, 10)],
            "1 ms ≤ 2^20 ns, 50 ms ≤ 2^26 ns"
        );
        let q50 = q[0].unwrap();
        assert!(q50.abs_diff(1_000_000) <= 1_000, "{q50}");
        assert!(q[2].unwrap().abs_diff(50_000_000) <= 50_000);
    }

    #[test]
    fn bucket_json_is_read_too() {
        let (buckets, total, q) =
            from_json(r#"[{"le":1024,"count":3},{"le":2048,"count":0},{"le":4096,"count":1}]"#)
                .unwrap();
        assert_eq!(buckets, [(10, 3), (12, 1)]);
        assert_eq!(total, 4);
        assert_eq!(q, [Some(1024), Some(4096), Some(4096)]);
    }

    #[test]
    fn rows_merge_to_fit() {
        let s = Series {
            name: "a".into(),
            buckets: vec![(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)],
            total: 5,
            quantiles: [None; 3],
            exact: true,
        };
        let (step, rows) = rows_for(&[&s], 3);
        assert_eq!(step, 2);
        assert_eq!(rows.iter().map(|r| r.1[0]).sum::<u64>(), 5);
        assert!(rows.len() <= 3, "{rows:?}");
        assert_eq!(bar(0.5, 4), "██");
        assert_eq!(bar(0.0625, 4), "▎");
    }
}
