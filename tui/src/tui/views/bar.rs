//! Horizontal bars (`bar` widget): one per row, `x` the label and `y` the value, in row order.

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::histogram::bar;
use super::{KeyOutcome, MetricKind, column, cut, number, put, scroll_to};
use crate::theme::Theme;
use crate::tui::data::{TableData, text_width};

/// The bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// (label, value) per row.
    pub bars: Vec<(String, f64)>,
    /// The `x` column (Enter drills into px/service when it is `service`).
    pub x: String,
    /// The `y` column.
    pub y: String,
    /// How values read.
    pub kind: MetricKind,
}

/// The selected bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BarState {
    /// Index into `bars`.
    pub selected: usize,
}

impl Bars {
    /// One bar per row.
    pub fn build(data: &TableData, x: &str, y: &str) -> Result<Self, String> {
        let xi = column(data, "bar", x)?;
        let yi = column(data, "bar", y)?;
        let bars = (0..data.num_rows())
            .map(|r| {
                let y = number(&data.key(r, yi)).unwrap_or(0.0);
                (data.text(r, xi).into_owned(), y)
            })
            .collect();
        Ok(Bars {
            bars,
            x: x.to_owned(),
            y: y.to_owned(),
            kind: MetricKind::of(y, data.columns[yi].kind),
        })
    }
}

/// Handles a bar chart key.
pub fn handle_key(b: &Bars, s: &mut BarState, code: KeyCode) -> KeyOutcome {
    let n = b.bars.len();
    match code {
        KeyCode::Char('j') | KeyCode::Down => {
            s.selected = (s.selected + 1).min(n.saturating_sub(1))
        }
        KeyCode::Char('k') | KeyCode::Up => s.selected = s.selected.saturating_sub(1),
        KeyCode::Char('g') | KeyCode::Home => s.selected = 0,
        KeyCode::Char('G') | KeyCode::End => s.selected = n.saturating_sub(1),
        KeyCode::Enter => {
            if b.x == "service"
                && let Some((name, _)) = b.bars.get(s.selected)
            {
                return KeyOutcome::Drill(
                    "px/service".into(),
                    vec![("service".into(), name.clone())],
                );
            }
        }
        _ => return KeyOutcome::Ignored,
    }
    KeyOutcome::Handled
}

/// Draws the bars that fit, scrolled to the selection.
pub fn render(buf: &mut Buffer, area: Rect, b: &Bars, s: &BarState, theme: &Theme) {
    if b.bars.is_empty() {
        put(buf, area, 0, 0, "no rows", theme.muted);
        return;
    }
    put(
        buf,
        area,
        0,
        0,
        &format!("{} by {}", b.y, b.x),
        theme.header,
    );
    let rows = usize::from(area.height.saturating_sub(1));
    let label_w = b
        .bars
        .iter()
        .map(|(l, _)| text_width(l))
        .max()
        .unwrap_or(0)
        .min(usize::from(area.width) / 3)
        .max(1);
    let values: Vec<String> = b.bars.iter().map(|(_, v)| b.kind.format(*v)).collect();
    let value_w = values.iter().map(|v| text_width(v)).max().unwrap_or(0);
    let bar_w = usize::from(area.width).saturating_sub(label_w + value_w + 3);
    let max = b.bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let selected = s.selected.min(b.bars.len() - 1);
    let first = scroll_to(selected, b.bars.len(), rows);
    for (i, ((label, v), value)) in b
        .bars
        .iter()
        .zip(&values)
        .enumerate()
        .skip(first)
        .take(rows)
    {
        let y = (i - first) as i32 + 1;
        let style = if i == selected {
            theme.selected_row
        } else {
            theme.base
        };
        let label = format!("{:<label_w$}", cut(label, label_w));
        put(buf, area, 0, y, &label, style);
        let frac = if max > 0.0 { v / max } else { 0.0 };
        put(
            buf,
            area,
            (label_w + 1) as i32,
            y,
            &bar(frac, bar_w),
            theme.bar,
        );
        let vx = (label_w + 2 + bar_w) as i32;
        put(buf, area, vx, y, &format!("{value:>value_w$}"), theme.base);
    }
}
