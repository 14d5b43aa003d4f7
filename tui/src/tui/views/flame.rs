//! The flame graph (`flamegraph` widget) from folded `stack` + `count` columns: a frame tree
//! (children in name order, as inferno draws them), drawn as a flame (root at the bottom) or an
//! icicle (root at the top), zoomable into a frame, with a search that highlights matching frames
//! and reports their share of samples. Selection and zoom are kept as frame paths, so they
//! survive refreshes. SVG export goes through `output::write_flamegraph_svg` (inferno), the same
//! code as `pxtop run -o svg`.

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::{KeyOutcome, column, number, put};
use crate::theme::Theme;
use crate::tui::data::text_width;

/// One frame of the merged stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function (or whatever the stack holds).
    pub name: String,
    /// Samples in this frame and below.
    pub value: u64,
    /// Depth: 0 is the root ("all").
    pub depth: usize,
    /// Parent frame.
    pub parent: Option<usize>,
    /// Children, in name order.
    pub children: Vec<usize>,
}

/// The merged stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flame {
    /// Frame 0 is the root.
    pub frames: Vec<Frame>,
    /// The folded stacks with their counts (merged), for search shares and SVG export.
    pub folded: Vec<(String, u64)>,
    /// The deepest frame's depth.
    pub max_depth: usize,
}

/// Zoom, selection, orientation and search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlameState {
    /// Zoomed frames, outermost first, each a path of names from the root.
    pub zoom: Vec<Vec<String>>,
    /// The selected frame's path (empty: the root).
    pub selected: Vec<String>,
    /// Root at the top.
    pub icicle: bool,
    /// Frames containing this (case-insensitive) are highlighted.
    pub search: String,
}

impl Flame {
    /// Merges the `stack` (frames joined by `;`) and `count` columns.
    pub fn build(
        data: &crate::tui::data::TableData,
        stack: &str,
        count: &str,
    ) -> Result<Self, String> {
        let s = column(data, "flamegraph", stack)?;
        let c = column(data, "flamegraph", count)?;
        let mut merged: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for row in 0..data.num_rows() {
            let text = data.text(row, s);
            let n = number(&data.key(row, c)).unwrap_or(0.0);
            if text.is_empty() || n < 1.0 {
                continue;
            }
            *merged.entry(text.into_owned()).or_default() += n as u64;
        }
        Ok(Self::from_folded(merged.into_iter().collect()))
    }

    /// The tree of `folded` stacks.
    pub fn from_folded(folded: Vec<(String, u64)>) -> Self {
        let mut frames = vec![Frame {
            name: "all".into(),
            value: 0,
            depth: 0,
            parent: None,
            children: Vec::new(),
        }];
        let mut max_depth = 0;
        for (stack, count) in &folded {
            frames[0].value += count;
            let mut at = 0;
            for (d, name) in stack.split(';').enumerate() {
                let found = frames[at]
                    .children
                    .iter()
                    .copied()
                    .find(|&ch| frames[ch].name == name);
                let next = match found {
                    Some(ch) => ch,
                    None => {
                        frames.push(Frame {
                            name: name.to_owned(),
                            value: 0,
                            depth: d + 1,
                            parent: Some(at),
                            children: Vec::new(),
                        });
                        let id = frames.len() - 1;
                        frames[at].children.push(id);
                        id
                    }
                };
                frames[next].value += count;
                max_depth = max_depth.max(d + 1);
                at = next;
            }
        }
        let names: Vec<String> = frames.iter().map(|f| f.name.clone()).collect();
        for f in &mut frames {
            f.children.sort_by(|&a, &b| names[a].cmp(&names[b]));
        }
        Flame {
            frames,
            folded,
            max_depth,
        }
    }

    /// The frame at `path` (names from the root), or the deepest one that exists.
    pub fn find(&self, path: &[String]) -> usize {
        let mut at = 0;
        for name in path {
            match self.frames[at]
                .children
                .iter()
                .find(|&&c| self.frames[c].name == *name)
            {
                Some(&c) => at = c,
                None => break,
            }
        }
        at
    }

    /// The names from the root down to `frame`.
    pub fn path(&self, mut frame: usize) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(p) = self.frames[frame].parent {
            out.push(self.frames[frame].name.clone());
            frame = p;
        }
        out.reverse();
        out
    }

    /// The zoomed frame.
    pub fn zoom_root(&self, s: &FlameState) -> usize {
        s.zoom.last().map_or(0, |p| self.find(p))
    }

    /// Samples in stacks with a frame containing `search` (case-insensitive), and matching frames.
    pub fn search_share(&self, search: &str) -> (u64, usize) {
        if search.is_empty() {
            return (0, 0);
        }
        let needle = search.to_lowercase();
        let samples = self
            .folded
            .iter()
            .filter(|(s, _)| s.split(';').any(|f| f.to_lowercase().contains(&needle)))
            .map(|(_, c)| c)
            .sum();
        let frames = self
            .frames
            .iter()
            .skip(1)
            .filter(|f| f.name.to_lowercase().contains(&needle))
            .count();
        (samples, frames)
    }

    /// The folded lines (`stack count`), as inferno reads them.
    pub fn folded_lines(&self) -> Vec<String> {
        self.folded
            .iter()
            .map(|(s, c)| format!("{s} {c}"))
            .collect()
    }
}

/// A frame's cells on screen.
#[derive(Debug, Clone, Copy)]
struct Span {
    frame: usize,
    x0: u16,
    x1: u16,
}

/// Each depth's visible frames with their columns, for the zoom of `s` at `width`.
fn spans(f: &Flame, s: &FlameState, width: u16) -> Vec<Vec<Span>> {
    let mut rows: Vec<Vec<Span>> = vec![Vec::new(); f.max_depth + 1];
    let root = f.zoom_root(s);
    // Ancestors of the zoomed frame span the whole width.
    let mut a = f.frames[root].parent;
    while let Some(p) = a {
        rows[f.frames[p].depth].push(Span {
            frame: p,
            x0: 0,
            x1: width,
        });
        a = f.frames[p].parent;
    }
    let total = f.frames[root].value.max(1) as f64;
    let mut stack = vec![(root, 0.0f64)];
    while let Some((frame, start)) = stack.pop() {
        let fr = &f.frames[frame];
        let w = fr.value as f64 / total * f64::from(width);
        let x0 = start.round() as u16;
        let x1 = (start + w).round() as u16;
        if x1 <= x0 {
            continue;
        }
        rows[fr.depth].push(Span { frame, x0, x1 });
        let mut at = start;
        for &c in &fr.children {
            stack.push((c, at));
            at += f.frames[c].value as f64 / total * f64::from(width);
        }
    }
    for r in &mut rows {
        r.sort_by_key(|s| s.x0);
    }
    rows
}

/// Handles a flame graph key (`/` is the app's: it edits `search`).
pub fn handle_key(f: &Flame, s: &mut FlameState, code: KeyCode) -> KeyOutcome {
    let sel = f.find(&s.selected);
    let parent = || f.frames[sel].parent;
    let widest_child = || {
        f.frames[sel]
            .children
            .iter()
            .copied()
            .max_by_key(|&c| (f.frames[c].value, std::cmp::Reverse(c)))
    };
    let (toward_leaves, toward_root) = if s.icicle {
        (KeyCode::Down, KeyCode::Up)
    } else {
        (KeyCode::Up, KeyCode::Down)
    };
    let code = match code {
        KeyCode::Char('k') => KeyCode::Up,
        KeyCode::Char('j') => KeyCode::Down,
        KeyCode::Char('h') => KeyCode::Left,
        KeyCode::Char('l') => KeyCode::Right,
        c => c,
    };
    match code {
        c if c == toward_leaves => {
            if let Some(c) = widest_child() {
                s.selected = f.path(c);
            }
        }
        c if c == toward_root => {
            // Not above the zoomed frame's ancestors' root; those are context.
            if let Some(p) = parent() {
                s.selected = f.path(p);
            }
        }
        KeyCode::Left | KeyCode::Right => {
            let rows = spans(f, s, 1000);
            let depth = f.frames[sel].depth;
            if let Some(row) = rows.get(depth)
                && let Some(i) = row.iter().position(|sp| sp.frame == sel)
            {
                let j = if code == KeyCode::Left {
                    i.checked_sub(1)
                } else {
                    Some(i + 1).filter(|&j| j < row.len())
                };
                if let Some(j) = j {
                    s.selected = f.path(row[j].frame);
                }
            }
        }
        KeyCode::Enter => {
            if sel != f.zoom_root(s) {
                s.zoom.push(f.path(sel));
            }
        }
        KeyCode::Esc | KeyCode::Backspace => {
            if s.zoom.pop().is_none() {
                if code == KeyCode::Esc && !s.search.is_empty() {
                    s.search.clear();
                } else {
                    return KeyOutcome::Ignored;
                }
            }
        }
        KeyCode::Char('o') => s.icicle = !s.icicle,
        KeyCode::Char('x') => return KeyOutcome::ExportSvg,
        KeyCode::Char('g') | KeyCode::Home => s.selected = f.path(f.zoom_root(s)),
        _ => return KeyOutcome::Ignored,
    }
    KeyOutcome::Handled
}

/// `name` in exactly `width` cells: cut with `…`, or padded with spaces.
fn fit_name(name: &str, width: usize) -> String {
    let mut text = if text_width(name) > width && width > 1 {
        super::cut(name, width)
    } else {
        name.chars().take(width).collect()
    };
    while text_width(&text) < width {
        text.push(' ');
    }
    text
}

fn pct(part: u64, whole: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / whole.max(1) as f64)
}

/// Draws the flame graph with an info line about the selection and the search.
pub fn render(buf: &mut Buffer, area: Rect, f: &Flame, s: &FlameState, theme: &Theme) {
    if f.frames[0].value == 0 {
        put(buf, area, 0, 0, "no samples in this result", theme.muted);
        return;
    }
    let info_rows = u16::from(area.height > 2);
    let graph = Rect {
        height: area.height - info_rows,
        ..area
    };
    let sel = f.find(&s.selected);
    let rows = spans(f, s, graph.width);
    let depth_rows = rows.len();
    let height = usize::from(graph.height);
    // Keep the selected depth on screen; otherwise show the root end.
    let sel_depth = f.frames[sel].depth;
    let first = if depth_rows <= height {
        0
    } else if sel_depth >= height {
        sel_depth + 1 - height
    } else {
        0
    };
    let needle = s.search.to_lowercase();
    let zoom_root = f.zoom_root(s);
    for (depth, row) in rows.iter().enumerate() {
        if depth < first || depth >= first + height {
            continue;
        }
        let r = (depth - first) as i32;
        let y = if s.icicle {
            r
        } else {
            i32::from(graph.height) - 1 - r
        };
        for (i, sp) in row.iter().enumerate() {
            let fr = &f.frames[sp.frame];
            let is_ancestor = fr.depth < f.frames[zoom_root].depth;
            let style = if sp.frame == sel {
                theme.selected_row
            } else if !needle.is_empty() && fr.name.to_lowercase().contains(&needle) {
                theme.flame_match
            } else if is_ancestor {
                theme.muted
            } else if (i + depth) % 2 == 0 {
                theme.flame
            } else {
                theme.flame_alt
            };
            let w = usize::from(sp.x1 - sp.x0);
            // The last cell stays unstyled so neighbours stay apart, colours or not.
            let room = if w > 2 { w - 1 } else { w };
            let text = fit_name(&fr.name, room);
            put(buf, graph, i32::from(sp.x0), y, &text, style);
        }
    }
    if info_rows == 0 {
        return;
    }
    let total = f.frames[0].value;
    let fr = &f.frames[sel];
    let zoomed = f.frames[zoom_root].value;
    let mut parts: Vec<(String, Style)> = vec![
        (format!("{} ", fr.name), theme.title),
        (
            format!(
                "{} samples, {} of all{}",
                fr.value,
                pct(fr.value, total),
                if zoom_root == 0 {
                    String::new()
                } else {
                    format!(", {} of zoom", pct(fr.value, zoomed))
                }
            ),
            theme.base,
        ),
    ];
    if !s.search.is_empty() {
        let (samples, frames) = f.search_share(&s.search);
        parts.push((
            format!(
                "  /{}: {} of samples ({frames} frames)",
                s.search,
                pct(samples, total)
            ),
            theme.highlight,
        ));
    }
    parts.push((
        format!("  {}", if s.icicle { "icicle" } else { "flame" }),
        theme.muted,
    ));
    let y = i32::from(area.height) - 1;
    let mut x = 0;
    for (t, st) in parts {
        put(buf, area, x, y, &t, st);
        x += text_width(&t) as i32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flame() -> Flame {
        Flame::from_folded(vec![
            ("main;run;hot_loop".into(), 90),
            ("main;run;io_wait".into(), 6),
            ("main;gc".into(), 2),
        ])
    }

    #[test]
    fn stacks_merge_into_a_tree_with_sorted_children() {
        let f = flame();
        assert_eq!(f.frames[0].value, 98);
        assert_eq!(f.max_depth, 3);
        let main = f.find(&["main".into()]);
        let names: Vec<&str> = f.frames[main]
            .children
            .iter()
            .map(|&c| f.frames[c].name.as_str())
            .collect();
        assert_eq!(names, ["gc", "run"]);
        assert_eq!(f.frames[f.find(&["main".into(), "run".into()])].value, 96);
        assert_eq!(
            f.path(f.find(&["main".into(), "run".into()])),
            ["main", "run"]
        );
    }

    #[test]
    fn search_share_counts_each_sample_once() {
        let f = flame();
        // "run" and "main;run;..." both match "r": samples counted per stack, not per frame.
        assert_eq!(f.search_share("hot"), (90, 1));
        assert_eq!(f.search_share("R"), (96, 1));
        assert_eq!(f.search_share(""), (0, 0));
    }

    #[test]
    fn keys_move_zoom_and_flip() {
        let f = flame();
        let mut s = FlameState::default();
        // Flame: up goes toward the leaves, along the widest child.
        handle_key(&f, &mut s, KeyCode::Char('k'));
        handle_key(&f, &mut s, KeyCode::Char('k'));
        assert_eq!(s.selected, ["main", "run"]);
        handle_key(&f, &mut s, KeyCode::Char('h'));
        assert_eq!(s.selected, ["main", "gc"], "the sibling to the left");
        handle_key(&f, &mut s, KeyCode::Char('l'));
        assert_eq!(handle_key(&f, &mut s, KeyCode::Enter), KeyOutcome::Handled);
        assert_eq!(s.zoom, [vec!["main".to_owned(), "run".to_owned()]]);
        assert_eq!(f.zoom_root(&s), f.find(&s.selected));
        handle_key(&f, &mut s, KeyCode::Char('o'));
        assert!(s.icicle);
        // Icicle: down goes toward the leaves.
        handle_key(&f, &mut s, KeyCode::Char('j'));
        assert_eq!(s.selected, ["main", "run", "hot_loop"]);
        assert_eq!(handle_key(&f, &mut s, KeyCode::Esc), KeyOutcome::Handled);
        assert!(s.zoom.is_empty());
        assert_eq!(handle_key(&f, &mut s, KeyCode::Esc), KeyOutcome::Ignored);
        assert_eq!(
            handle_key(&f, &mut s, KeyCode::Char('x')),
            KeyOutcome::ExportSvg
        );
    }
}
