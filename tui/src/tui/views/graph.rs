//! The service map (`graph` widget): nodes from the `from`/`to` columns, one edge per row with
//! its `edge` columns as a label, laid out in layers left to right and coloured by health.
//!
//! Layout (once per result, in terminal cells, so drawing only copies it): cycles are broken by
//! reversing DFS back edges, layers are longest paths from the sources, the order inside a layer
//! comes from barycentric sweeps (the order with the fewest crossings wins). Each edge's label
//! sits in the gutter right of its source's layer, on a row of its own in that gutter, as near
//! the middle of its two ends as is free; node names and gutters never share columns, so no two
//! labels overlap by construction (a test checks it at 30 services). Lines are braille.
//!
//! NB: hand-written rather than `rust-sugiyama`: that crate gives float coordinates for vertices
//! only, while a terminal needs integer rows and columns and a place for every edge label; the
//! layering and sweeps themselves are the short part.

use crossterm::event::KeyCode;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::widgets::Widget as _;
use ratatui::widgets::canvas::{Canvas, Line as CanvasLine};

use super::{KeyOutcome, MetricKind, column, cut, number, put};
use crate::theme::{HealthLevel, Theme};
use crate::tui::data::{ColumnKind, TableData, text_width};

/// Node names longer than this are cut.
const MAX_NAME: usize = 28;
/// Free cells on each side of an edge label in its gutter (room for the line and the arrow).
const GUTTER_PAD: u16 = 3;

/// A service (node) placed on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Layer (column), from 0.
    pub layer: usize,
    /// Left cell of its label.
    pub x: u16,
    /// Its row.
    pub y: u16,
    /// The (cut) name, drawn after a health mark and a space.
    pub label: String,
    /// Health inputs from the edges into it.
    pub stats: EdgeStats,
    /// Requests into it, error rate and p99 (ns) over those edges, when known.
    pub summary: Vec<(String, String)>,
}

impl Node {
    /// Label width in cells.
    pub fn width(&self) -> u16 {
        u16::try_from(text_width(&self.label) + 2).unwrap_or(u16::MAX)
    }
}

/// An edge (one result row) placed on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Source node index.
    pub from: usize,
    /// Target node index.
    pub to: usize,
    /// The `edge` columns, formatted: (column, value).
    pub metrics: Vec<(String, String)>,
    /// The label drawn: the values, space-separated.
    pub label: String,
    /// Left cell of the label.
    pub x: u16,
    /// Row of the label.
    pub y: u16,
    /// Health inputs.
    pub stats: EdgeStats,
}

impl Edge {
    /// Label width in cells.
    pub fn width(&self) -> u16 {
        u16::try_from(text_width(&self.label)).unwrap_or(u16::MAX)
    }
}

/// The laid-out map.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Nodes, in order of first appearance.
    pub nodes: Vec<Node>,
    /// Edges, in row order.
    pub edges: Vec<Edge>,
    /// Width of the whole map in cells.
    pub width: u16,
    /// Height of the whole map in cells.
    pub height: u16,
    /// Node indices in selection order (by layer, then row).
    pub node_order: Vec<usize>,
    /// Edge indices in selection order (by gutter, then row).
    pub edge_order: Vec<usize>,
    /// The `to` column's name (what a node is: a service, a pod, an address).
    pub node_column: String,
}

/// What is selected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphState {
    /// An edge (else a node).
    pub on_edge: bool,
    /// Position in `node_order` or `edge_order`.
    pub index: usize,
}

/// What health is judged by (the theme's thresholds decide when drawing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EdgeStats {
    /// Requests (a count or a rate, as the table has it).
    pub requests: Option<f64>,
    /// Error rate, a fraction.
    pub error_rate: Option<f64>,
    /// p99 latency, ns.
    pub p99: Option<f64>,
}

impl EdgeStats {
    /// The level by `theme`'s thresholds.
    pub fn level(&self, theme: &Theme) -> HealthLevel {
        theme.health.level(self.error_rate, self.p99)
    }
}

impl Graph {
    /// Builds and lays out the map from the `from`/`to` columns, labelling edges with `edge`.
    pub fn build(data: &TableData, from: &str, to: &str, edge: &[String]) -> Result<Self, String> {
        let from_i = column(data, "graph", from)?;
        let to_i = column(data, "graph", to)?;
        let metric_cols = edge
            .iter()
            .map(|name| column(data, "graph", name).map(|i| (name.clone(), i)))
            .collect::<Result<Vec<_>, _>>()?;
        // Health inputs, wherever the table has them (shown on the edge or not).
        let find = |pred: &dyn Fn(&str, ColumnKind) -> bool| {
            data.columns.iter().position(|c| pred(&c.name, c.kind))
        };
        let requests_i = find(&|n, _| n == "requests" || n == "rps");
        let error_i = find(&|n, _| n == "error_rate");
        let p99_i = find(&|n, k| {
            n.contains("p99")
                && matches!(
                    k,
                    ColumnKind::Duration | ColumnKind::Int | ColumnKind::Float
                )
        });

        let mut names: Vec<String> = Vec::new();
        let mut index_of = std::collections::HashMap::<String, usize>::new();
        let mut intern = |name: &str| -> usize {
            if let Some(&i) = index_of.get(name) {
                return i;
            }
            names.push(name.to_owned());
            index_of.insert(name.to_owned(), names.len() - 1);
            names.len() - 1
        };
        let mut raw_edges = Vec::new();
        for r in 0..data.num_rows() {
            let Some(row) = data.row(r) else {
                continue;
            };
            let (Some(f), Some(t)) = (row.get(from_i), row.get(to_i)) else {
                continue;
            };
            if f.text.is_empty() && t.text.is_empty() {
                continue;
            }
            let a = intern(&f.text);
            let b = intern(&t.text);
            let metrics: Vec<(String, String)> = metric_cols
                .iter()
                .map(|(name, i)| {
                    let cell = &row[*i];
                    let kind = MetricKind::of(name, data.columns[*i].kind);
                    let text = match (kind, number(&cell.key)) {
                        (MetricKind::Text, _) | (_, None) => cell.text.to_string(),
                        (k, Some(v)) => k.format(v),
                    };
                    (name.clone(), text)
                })
                .collect();
            let get = |i: Option<usize>| i.and_then(|i| row.get(i)).and_then(|c| number(&c.key));
            let stats = EdgeStats {
                requests: get(requests_i),
                error_rate: get(error_i),
                p99: get(p99_i),
            };
            raw_edges.push((a, b, metrics, stats));
        }
        Ok(layout(names, raw_edges, to))
    }

    /// The selected node, if a node is selected.
    pub fn selected_node(&self, state: &GraphState) -> Option<usize> {
        (!state.on_edge)
            .then(|| self.node_order.get(state.index).copied())
            .flatten()
    }

    /// The selected edge, if an edge is selected.
    pub fn selected_edge(&self, state: &GraphState) -> Option<usize> {
        state
            .on_edge
            .then(|| self.edge_order.get(state.index).copied())
            .flatten()
    }

    /// Where Enter goes for the selection: the script and its arguments.
    pub fn drill(&self, state: &GraphState) -> Option<(String, super::Args)> {
        if let Some(e) = self.selected_edge(state) {
            let edge = &self.edges[e];
            let to = &self.nodes[edge.to].name;
            return Some((
                "px/service_edge_stats".into(),
                vec![("service".into(), to.clone())],
            ));
        }
        let n = self.selected_node(state)?;
        Some((
            "px/service".into(),
            vec![("service".into(), self.nodes[n].name.clone())],
        ))
    }

    /// Every label's rectangle (nodes, then edges), for overlap checks.
    pub fn label_rects(&self) -> Vec<Rect> {
        self.nodes
            .iter()
            .map(|n| Rect::new(n.x, n.y, n.width(), 1))
            .chain(self.edges.iter().map(|e| Rect::new(e.x, e.y, e.width(), 1)))
            .collect()
    }
}

fn health_mark(h: HealthLevel) -> &'static str {
    match h {
        HealthLevel::Ok => "●",
        HealthLevel::Warn => "▲",
        HealthLevel::Bad => "✖",
    }
}

/// An edge before layout: source, target, formatted metrics, health inputs.
type RawEdge = (usize, usize, Vec<(String, String)>, EdgeStats);

/// Cycle breaking, layering, ordering and placement.
fn layout(names: Vec<String>, raw_edges: Vec<RawEdge>, node_column: &str) -> Graph {
    let n = names.len();
    // Successors without duplicates or self loops.
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (a, b, _, _) in &raw_edges {
        if a != b && !succ[*a].contains(b) {
            succ[*a].push(*b);
        }
    }
    let dag = acyclic(&succ);
    let layer = longest_path_layers(n, &dag);
    let layers_n = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); layers_n];
    for (v, &l) in layer.iter().enumerate() {
        layers[l].push(v);
    }
    order_layers(&mut layers, &dag, &layer);

    // Node rows: each layer centred on the tallest, two rows per node.
    let tallest = layers.iter().map(Vec::len).max().unwrap_or(0);
    let mut y = vec![0u16; n];
    let mut pos_in_layer = vec![0usize; n];
    for l in &layers {
        let top = tallest - l.len();
        for (i, &v) in l.iter().enumerate() {
            y[v] = u16::try_from(top + 2 * i).unwrap_or(u16::MAX);
            pos_in_layer[v] = i;
        }
    }

    // Node health from the edges into each node: error rate weighted by requests, worst p99.
    let mut into: Vec<(f64, f64, f64, Option<f64>, bool)> = vec![(0.0, 0.0, 0.0, None, false); n];
    for (_, b, _, s) in &raw_edges {
        let e = &mut into[*b];
        let w = s.requests.unwrap_or(1.0);
        e.0 += w;
        if let Some(r) = s.error_rate {
            e.1 += r * w;
            e.2 += w;
        }
        if let Some(p) = s.p99 {
            e.3 = Some(e.3.map_or(p, |q: f64| q.max(p)));
        }
        e.4 = true;
    }
    let node_stats: Vec<EdgeStats> = into
        .iter()
        .map(|&(req, err, err_w, p99, any)| EdgeStats {
            requests: any.then_some(req),
            error_rate: (err_w > 0.0).then(|| err / err_w),
            p99,
        })
        .collect();

    let mut nodes: Vec<Node> = names
        .into_iter()
        .enumerate()
        .map(|(v, name)| {
            let s = &node_stats[v];
            let mut summary = Vec::new();
            if let Some(r) = s.requests {
                summary.push(("requests in".to_owned(), super::compact_count(r)));
            }
            if let Some(e) = s.error_rate {
                summary.push(("error rate".to_owned(), MetricKind::Ratio.format(e)));
            }
            if let Some(p) = s.p99 {
                summary.push(("worst p99".to_owned(), super::compact_duration(p)));
            }
            Node {
                label: cut(&name, MAX_NAME),
                name,
                layer: layer[v],
                x: 0,
                y: y[v],
                stats: *s,
                summary,
            }
        })
        .collect();

    let mut edges: Vec<Edge> = raw_edges
        .into_iter()
        .map(|(from, to, metrics, stats)| {
            let label = metrics
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            Edge {
                from,
                to,
                label: if label.is_empty() {
                    "─".into()
                } else {
                    label
                },
                metrics,
                x: 0,
                y: 0,
                stats,
            }
        })
        .collect();

    // Columns: node column widths, then each gutter as wide as its widest label.
    let mut node_w = vec![0u16; layers_n];
    for node in &nodes {
        node_w[node.layer] = node_w[node.layer].max(node.width());
    }
    let mut gutter_w = vec![0u16; layers_n];
    for e in &edges {
        let g = nodes[e.from].layer;
        gutter_w[g] = gutter_w[g].max(e.width());
    }
    let mut col_x = vec![0u16; layers_n];
    let mut gutter_x = vec![0u16; layers_n];
    let mut x = 0u16;
    for l in 0..layers_n {
        col_x[l] = x;
        x = x.saturating_add(node_w[l]);
        gutter_x[l] = x.saturating_add(GUTTER_PAD);
        let g = if gutter_w[l] > 0 {
            gutter_w[l] + 2 * GUTTER_PAD
        } else if l + 1 < layers_n {
            2 * GUTTER_PAD
        } else {
            0
        };
        x = x.saturating_add(g);
    }
    let width = x;
    for node in &mut nodes {
        node.x = col_x[node.layer];
    }

    // Edge label rows: per gutter, nearest free row to the middle of the edge's ends.
    let mut by_gutter: Vec<Vec<usize>> = vec![Vec::new(); layers_n];
    for (i, e) in edges.iter().enumerate() {
        by_gutter[nodes[e.from].layer].push(i);
    }
    let mut height = u16::try_from((2 * tallest).saturating_sub(1)).unwrap_or(u16::MAX);
    let mut edge_order = Vec::with_capacity(edges.len());
    for (g, list) in by_gutter.iter_mut().enumerate() {
        let want = |e: &Edge| (u32::from(nodes[e.from].y) + u32::from(nodes[e.to].y)) / 2;
        list.sort_by_key(|&i| {
            (
                want(&edges[i]),
                nodes[edges[i].to].y,
                nodes[edges[i].from].y,
            )
        });
        let mut taken: Vec<bool> = Vec::new();
        for &i in list.iter() {
            let desired = want(&edges[i]) as usize;
            let row = nearest_free(&mut taken, desired);
            edges[i].y = u16::try_from(row).unwrap_or(u16::MAX);
            edges[i].x = gutter_x[g];
            height = height.max(edges[i].y.saturating_add(1));
        }
        let mut sorted = list.clone();
        sorted.sort_by_key(|&i| edges[i].y);
        edge_order.extend(sorted);
    }
    let mut node_order: Vec<usize> = (0..n).collect();
    node_order.sort_by_key(|&v| (nodes[v].layer, nodes[v].y));
    Graph {
        nodes,
        edges,
        width,
        height,
        node_order,
        edge_order,
        node_column: node_column.to_owned(),
    }
}

/// Takes the free row nearest `desired` (below first on ties).
fn nearest_free(taken: &mut Vec<bool>, desired: usize) -> usize {
    let mut d = 0usize;
    loop {
        for row in [Some(desired + d), desired.checked_sub(d)]
            .into_iter()
            .flatten()
        {
            if taken.len() <= row {
                taken.resize(row + 1, false);
            }
            if !taken[row] {
                taken[row] = true;
                return row;
            }
        }
        d += 1;
    }
}

/// The successor lists with DFS back edges reversed (so the result has no cycles).
fn acyclic(succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = succ.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut dag: Vec<Vec<usize>> = vec![Vec::new(); n];
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = succ[v].get(*next) {
                *next += 1;
                match state[w] {
                    1 => {
                        if !dag[w].contains(&v) {
                            dag[w].push(v);
                        }
                    }
                    0 => {
                        dag[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    _ => dag[v].push(w),
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    dag
}

/// Each node's layer: the longest path to it from a source.
fn longest_path_layers(n: usize, dag: &[Vec<usize>]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    for ws in dag {
        for &w in ws {
            indegree[w] += 1;
        }
    }
    let mut queue: std::collections::VecDeque<usize> =
        (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut layer = vec![0usize; n];
    while let Some(v) = queue.pop_front() {
        for &w in &dag[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    layer
}

/// Crossings between edges joining the same pair of layers.
fn crossings(layers: &[Vec<usize>], dag: &[Vec<usize>], layer: &[usize]) -> usize {
    let mut pos = vec![0usize; layer.len()];
    for l in layers {
        for (i, &v) in l.iter().enumerate() {
            pos[v] = i;
        }
    }
    let edges: Vec<(usize, usize)> = dag
        .iter()
        .enumerate()
        .flat_map(|(v, ws)| ws.iter().map(move |&w| (v, w)))
        .collect();
    let mut count = 0;
    for (i, &(a1, b1)) in edges.iter().enumerate() {
        for &(a2, b2) in &edges[i + 1..] {
            if layer[a1] == layer[a2] && layer[b1] == layer[b2] {
                let da = pos[a1] as isize - pos[a2] as isize;
                let db = pos[b1] as isize - pos[b2] as isize;
                if da * db < 0 {
                    count += 1;
                }
            }
        }
    }
    count
}

/// Barycentric sweeps, down then up, keeping the order with the fewest crossings.
fn order_layers(layers: &mut [Vec<usize>], dag: &[Vec<usize>], layer: &[usize]) {
    let n = layer.len();
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (v, ws) in dag.iter().enumerate() {
        for &w in ws {
            pred[w].push(v);
        }
    }
    let mut best = layers.to_vec();
    let mut best_crossings = crossings(layers, dag, layer);
    for sweep in 0..8 {
        // Relative positions (0..1) so layers of different sizes compare.
        let mut rel = vec![0.0f64; n];
        let update = |rel: &mut Vec<f64>, l: &[usize]| {
            for (i, &v) in l.iter().enumerate() {
                rel[v] = (i as f64 + 0.5) / l.len() as f64;
            }
        };
        for l in layers.iter() {
            update(&mut rel, l);
        }
        let down = sweep % 2 == 0;
        let order: Vec<usize> = if down {
            (0..layers.len()).collect()
        } else {
            (0..layers.len()).rev().collect()
        };
        for li in order {
            let neighbours = if down { &pred } else { dag };
            let bary: Vec<(usize, f64)> = layers[li]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let b = if ns.is_empty() {
                        rel[v]
                    } else {
                        ns.iter().map(|&u| rel[u]).sum::<f64>() / ns.len() as f64
                    };
                    (v, b)
                })
                .collect();
            let mut sorted = bary;
            sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
            layers[li] = sorted.into_iter().map(|(v, _)| v).collect();
            update(&mut rel, &layers[li]);
        }
        let c = crossings(layers, dag, layer);
        if c < best_crossings {
            best_crossings = c;
            best = layers.to_vec();
        }
    }
    layers.clone_from_slice(&best);
}

fn level_style(theme: &Theme, h: HealthLevel) -> Style {
    match h {
        HealthLevel::Ok => theme.health_ok,
        HealthLevel::Warn => theme.health_warn,
        HealthLevel::Bad => theme.health_bad,
    }
}

/// Handles a service-map key.
pub fn handle_key(g: &Graph, s: &mut GraphState, code: KeyCode) -> KeyOutcome {
    let len = if s.on_edge {
        g.edge_order.len()
    } else {
        g.node_order.len()
    };
    match code {
        KeyCode::Char('j') | KeyCode::Down => {
            s.index = (s.index + 1).min(len.saturating_sub(1));
        }
        KeyCode::Char('k') | KeyCode::Up => s.index = s.index.saturating_sub(1),
        KeyCode::Char('g') | KeyCode::Home => s.index = 0,
        KeyCode::Char('G') | KeyCode::End => s.index = len.saturating_sub(1),
        KeyCode::Char('h') | KeyCode::Left | KeyCode::Char('l') | KeyCode::Right => {
            let right = matches!(code, KeyCode::Char('l') | KeyCode::Right);
            if let Some(e) = g.selected_edge(s) {
                let edge = &g.edges[e];
                let target = if right { edge.to } else { edge.from };
                select_node(g, s, target);
            } else if let Some(v) = g.selected_node(s) {
                let node = &g.nodes[v];
                let want = if right {
                    node.layer + 1
                } else if node.layer == 0 {
                    return KeyOutcome::Handled;
                } else {
                    node.layer - 1
                };
                let nearest = g
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.layer == want)
                    .min_by_key(|(_, m)| m.y.abs_diff(node.y))
                    .map(|(i, _)| i);
                if let Some(t) = nearest {
                    select_node(g, s, t);
                }
            }
        }
        KeyCode::Tab => {
            if let Some(e) = g.selected_edge(s) {
                let to = g.edges[e].to;
                select_node(g, s, to);
            } else if let Some(v) = g.selected_node(s) {
                // Follow the node's first edge out (else in) on the map.
                let out = g.edge_order.iter().position(|&e| g.edges[e].from == v);
                let any = out.or_else(|| g.edge_order.iter().position(|&e| g.edges[e].to == v));
                if let Some(i) = any {
                    *s = GraphState {
                        on_edge: true,
                        index: i,
                    };
                }
            } else if !g.node_order.is_empty() {
                *s = GraphState::default();
            }
        }
        KeyCode::Enter => {
            return match g.drill(s) {
                Some((script, args)) => KeyOutcome::Drill(script, args),
                None => KeyOutcome::Handled,
            };
        }
        _ => return KeyOutcome::Ignored,
    }
    KeyOutcome::Handled
}

fn select_node(g: &Graph, s: &mut GraphState, v: usize) {
    if let Some(i) = g.node_order.iter().position(|&n| n == v) {
        *s = GraphState {
            on_edge: false,
            index: i,
        };
    }
}

/// The first visible column/row so that `at..at+len` shows inside `view` of `total`.
fn offset_for(at: u16, len: u16, view: u16, total: u16) -> u16 {
    if total <= view {
        return 0;
    }
    let centre = at.saturating_add(len / 2);
    centre
        .saturating_sub(view / 2)
        .min(total.saturating_sub(view))
}

/// Draws the map, scrolled to keep the selection in view, with a line about the selection.
pub fn render(buf: &mut Buffer, area: Rect, g: &Graph, s: &GraphState, theme: &Theme) {
    if g.nodes.is_empty() {
        put(buf, area, 0, 0, "no edges in this result", theme.muted);
        return;
    }
    // The selection's line, and the drill-down's on a line of its own when there is room.
    let info_rows = match area.height {
        0..=2 => 0,
        3..=8 => 1,
        _ => 2,
    };
    let mut map = Rect {
        height: area.height - info_rows,
        ..area
    };
    // A map shorter than the room is centred (leaving a blank line above the info).
    if g.height < map.height {
        let spare = map.height - g.height;
        map.y += spare / 2;
        map.height = g.height;
    }
    let sel_node = g.selected_node(s);
    let sel_edge = g.selected_edge(s);
    let (fx, fy, fw) = match (sel_node, sel_edge) {
        (Some(v), _) => (g.nodes[v].x, g.nodes[v].y, g.nodes[v].width()),
        (_, Some(e)) => (g.edges[e].x, g.edges[e].y, g.edges[e].width()),
        _ => (0, 0, 0),
    };
    let ox = offset_for(fx, fw, map.width, g.width);
    let oy = offset_for(fy, 1, map.height, g.height);
    let to_canvas = |cx: f64, cy: f64| -> (f64, f64) {
        (cx + 0.5, f64::from(map.height) - (cy - f64::from(oy)) - 0.5)
    };
    let fg = |st: Style| st.fg.unwrap_or(Color::Reset);
    let line_color = fg(theme.border);
    let selected_color = fg(theme.highlight);
    let segments: Vec<(f64, f64, f64, f64, Color)> = g
        .edges
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            let a = &g.nodes[e.from];
            let b = &g.nodes[e.to];
            let color = if sel_edge == Some(i) {
                selected_color
            } else {
                line_color
            };
            let (x1, y1) = to_canvas(f64::from(a.x + a.width()), f64::from(a.y));
            let (x2, y2) = to_canvas(f64::from(e.x) - 1.0, f64::from(e.y));
            let (x3, y3) = to_canvas(f64::from(e.x + e.width()), f64::from(e.y));
            let forward = b.layer > a.layer;
            let bx = if forward {
                f64::from(b.x) - 1.0
            } else {
                f64::from(b.x + b.width())
            };
            let (x4, y4) = to_canvas(bx, f64::from(b.y));
            [(x1, y1, x2, y2, color), (x3, y3, x4, y4, color)]
        })
        .collect();
    Canvas::default()
        .marker(Marker::Braille)
        .x_bounds([f64::from(ox), f64::from(ox) + f64::from(map.width)])
        .y_bounds([0.0, f64::from(map.height)])
        .paint(|ctx| {
            for &(x1, y1, x2, y2, color) in &segments {
                ctx.draw(&CanvasLine {
                    x1,
                    y1,
                    x2,
                    y2,
                    color,
                });
            }
        })
        .render(map, buf);

    let rel = |x: u16, y: u16| (i32::from(x) - i32::from(ox), i32::from(y) - i32::from(oy));
    for (i, e) in g.edges.iter().enumerate() {
        let b = &g.nodes[e.to];
        let (arrow, ax) = if b.layer > g.nodes[e.from].layer {
            ("▶", b.x.saturating_sub(1))
        } else {
            ("◀", b.x + b.width())
        };
        let (x, y) = rel(ax, b.y);
        let arrow_style = if sel_edge == Some(i) {
            theme.highlight
        } else {
            theme.border
        };
        put(buf, map, x, y, arrow, arrow_style);
    }
    for (i, e) in g.edges.iter().enumerate() {
        let style = if sel_edge == Some(i) {
            theme.selected_row
        } else {
            level_style(theme, e.stats.level(theme))
        };
        let (x, y) = rel(e.x, e.y);
        put(buf, map, x, y, &e.label, style);
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let level = node.stats.level(theme);
        let style = if sel_node == Some(i) {
            theme.selected_row
        } else {
            level_style(theme, level)
        };
        let (x, y) = rel(node.x, node.y);
        let text = format!("{} {}", health_mark(level), node.label);
        put(buf, map, x, y, &text, style);
    }

    if info_rows == 0 {
        return;
    }
    let info_y = i32::from(area.height) - i32::from(info_rows);
    let mut spans: Vec<(String, Style)> = Vec::new();
    if let Some(e) = sel_edge {
        let edge = &g.edges[e];
        spans.push((
            format!("{} → {} ", g.nodes[edge.from].name, g.nodes[edge.to].name),
            theme.title,
        ));
        for (k, v) in &edge.metrics {
            spans.push((format!(" {k} "), theme.field_name));
            spans.push((v.clone(), theme.base));
        }
    } else if let Some(v) = sel_node {
        let node = &g.nodes[v];
        spans.push((format!("{} ", node.name), theme.title));
        for (k, val) in &node.summary {
            spans.push((format!(" {k} "), theme.field_name));
            spans.push((val.clone(), theme.base));
        }
    }
    let mut x = 0i32;
    for (text, style) in spans {
        put(buf, area, x, info_y, &text, style);
        x += text_width(&text) as i32;
    }
    if info_rows > 1
        && let Some((script, args)) = g.drill(s)
    {
        let args: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let text = format!("⏎ {script} {}", args.join(" "));
        put(buf, area, 0, info_y + 1, &text, theme.muted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(err: f64, p99_ms: f64) -> EdgeStats {
        EdgeStats {
            requests: Some(100.0),
            error_rate: Some(err),
            p99: Some(p99_ms * 1e6),
        }
    }

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut names: Vec<String> = Vec::new();
        let mut idx = |s: &str| {
            names.iter().position(|n| n == s).unwrap_or_else(|| {
                names.push(s.to_owned());
                names.len() - 1
            })
        };
        let raw: Vec<_> = edges
            .iter()
            .map(|(a, b)| {
                let a = idx(a);
                let b = idx(b);
                (
                    a,
                    b,
                    vec![("requests".to_owned(), "12".to_owned())],
                    stats(0.0, 1.0),
                )
            })
            .collect();
        layout(names, raw, "to")
    }

    #[test]
    fn layers_follow_longest_paths_and_cycles_do_not_hang() {
        let g = graph(&[("a", "b"), ("b", "c"), ("a", "c"), ("c", "a")]);
        let layer = |n: &str| g.nodes.iter().find(|x| x.name == n).unwrap().layer;
        assert_eq!((layer("a"), layer("b"), layer("c")), (0, 1, 2));
    }

    #[test]
    fn barycentric_sweeps_remove_avoidable_crossings() {
        // a1→b2 and a2→b1 cross in arrival order; the sweeps untangle them.
        let g = graph(&[("a1", "b2"), ("a2", "b1"), ("a1", "x"), ("x", "b2")]);
        let y = |n: &str| g.nodes.iter().find(|x| x.name == n).unwrap().y;
        assert_eq!(y("a1") < y("a2"), y("b2") < y("b1"), "{g:#?}");
    }

    #[test]
    fn health_levels_follow_the_theme_thresholds() {
        let mut theme = Theme::default_theme().unwrap();
        assert_eq!(stats(0.0, 10.0).level(&theme), HealthLevel::Ok);
        assert_eq!(stats(0.02, 10.0).level(&theme), HealthLevel::Warn);
        assert_eq!(stats(0.0, 2000.0).level(&theme), HealthLevel::Bad);
        theme.health.error_rate_bad = 0.015;
        assert_eq!(stats(0.02, 10.0).level(&theme), HealthLevel::Bad);
    }

    #[test]
    fn nearest_free_row_spreads_around_the_wish() {
        let mut taken = Vec::new();
        assert_eq!(nearest_free(&mut taken, 3), 3);
        assert_eq!(nearest_free(&mut taken, 3), 4);
        assert_eq!(nearest_free(&mut taken, 3), 2);
        assert_eq!(nearest_free(&mut taken, 0), 0);
        assert_eq!(nearest_free(&mut taken, 0), 1);
    }
}
