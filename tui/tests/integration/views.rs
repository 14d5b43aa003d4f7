//! The widget views (service map, histograms, flame graph, time series, bars, SQL tables) on
//! ratatui's TestBackend: snapshots with data, empty and at 80x24 (stored under
//! snapshots/tui), no panics down to tiny sizes, and the keys of each view.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{Field, Schema};
use chrono::{FixedOffset, NaiveDate};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use pxtop::client::{QueryResult, ResultTable};
use pxtop::theme::Theme;
use pxtop::tui::views::Widget;
use pxtop::tui::{Action, App, RefreshInfo, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

use super::render::T0;

macro_rules! snapshot {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../../../snapshots/tui", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn strs(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn ints(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn floats(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn at() -> RefreshInfo {
    RefreshInfo {
        at: NaiveDate::from_ymd_opt(2023, 11, 14)
            .unwrap()
            .and_hms_opt(22, 13, 23)
            .unwrap(),
        took: Duration::from_micros(12_300),
    }
}

/// An app live on `script` showing `tables` (name, widget spec, rows).
fn app_with(script: &str, tables: Vec<(&str, &str, RecordBatch)>) -> App {
    let mut app = App::new(
        "http://127.0.0.1:50451",
        Duration::from_secs(2),
        FixedOffset::east_opt(0).unwrap(),
    );
    app.start_script(script);
    let result = QueryResult {
        tables: tables
            .into_iter()
            .map(|(name, spec, b)| ResultTable {
                name: name.into(),
                widget_json: spec.into(),
                schema: b.schema(),
                batches: vec![b],
            })
            .collect(),
        stats: None,
    };
    app.set_result(script, Ok(result), at());
    app
}

fn press(app: &mut App, code: KeyCode) -> Action {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn draw_with(app: &mut App, width: u16, height: u16, theme: &Theme) -> String {
    app.set_body_area(pxtop::tui::render::table_body_area(
        Rect::new(0, 0, width, height),
        app,
    ));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, app, theme)).unwrap();
    terminal.backend().to_string()
}

fn draw(app: &mut App, width: u16, height: u16) -> String {
    draw_with(app, width, height, &Theme::default_theme().unwrap())
}

// ---------------------------------------------------------------- service map

const EDGE_SPEC: &str = r#"{"widget":"graph","from":"from_entity","to":"to_entity","edge":["requests","error_rate","latency_p99"]}"#;

/// A 30-service shop: 2 entry points, 8 mid-tier services, 10 back ends, 10 stores, and one
/// call back up (orders → checkout) so the layout must break a cycle. A few edges are slow or
/// failing.
pub fn map_batch() -> RecordBatch {
    let tier0 = ["frontend", "mobile-bff"];
    let tier1 = [
        "auth",
        "cart",
        "catalog",
        "checkout",
        "search",
        "users",
        "reviews",
        "recommend",
    ];
    let tier2 = [
        "payments",
        "shipping",
        "inventory",
        "pricing",
        "email",
        "currency",
        "ads",
        "profile",
        "session",
        "orders",
    ];
    let tier3 = [
        "postgres-main",
        "postgres-ro",
        "redis-cache",
        "redis-session",
        "kafka",
        "elastic",
        "mysql-orders",
        "s3-proxy",
        "memcached",
        "ledger",
    ];
    let mut edges: Vec<(&str, &str)> = Vec::new();
    let mut add = |a: &'static str, b: &'static str| {
        if !edges.contains(&(a, b)) {
            edges.push((a, b));
        }
    };
    for (i, a) in tier0.iter().enumerate() {
        for j in 0..4 {
            add(a, tier1[(i * 4 + j) % 8]);
        }
    }
    for (i, a) in tier1.iter().enumerate() {
        add(a, tier2[(i * 3) % 10]);
        add(a, tier2[(i * 3 + 1) % 10]);
        add(a, tier2[(i * 7 + 5) % 10]);
    }
    for (j, a) in tier2.iter().enumerate() {
        add(a, tier3[j]);
        add(a, tier3[(j + 3) % 10]);
    }
    add("orders", "checkout");
    let n = edges.len();
    let requests: Vec<i64> = (0..n).map(|k| 4_000 - 97 * k as i64).collect();
    let error_rate: Vec<f64> = (0..n)
        .map(|k| match k % 11 {
            3 => 0.021,
            7 if k > 20 => 0.12,
            _ => 0.001 * (k % 3) as f64,
        })
        .collect();
    let p99: Vec<i64> = (0..n)
        .map(|k| match k % 13 {
            5 => 1_500_000_000,
            9 => 320_000_000,
            _ => 900_000 + 350_000 * (k as i64 % 17),
        })
        .collect();
    batch(vec![
        (
            "from_entity",
            strs(&edges.iter().map(|e| e.0).collect::<Vec<_>>()),
        ),
        (
            "to_entity",
            strs(&edges.iter().map(|e| e.1).collect::<Vec<_>>()),
        ),
        ("requests", ints(&requests)),
        ("error_rate", floats(&error_rate)),
        ("latency_p99", ints(&p99)),
    ])
}

fn small_map() -> RecordBatch {
    batch(vec![
        (
            "from_entity",
            strs(&["10.0.0.7", "frontend", "frontend", "checkout", "cart"]),
        ),
        (
            "to_entity",
            strs(&["frontend", "cart", "checkout", "payments", "redis"]),
        ),
        ("requests", ints(&[1200, 800, 310, 305, 790])),
        ("error_rate", floats(&[0.002, 0.0, 0.031, 0.15, 0.0])),
        (
            "latency_p99",
            ints(&[12_000_000, 4_200_000, 48_000_000, 1_250_000_000, 350_000]),
        ),
    ])
}

fn map_app(b: RecordBatch) -> App {
    app_with(
        "px/service_edge_stats",
        vec![("service_edge_stats", EDGE_SPEC, b)],
    )
}

fn graph_of(app: &App) -> &pxtop::tui::views::graph::Graph {
    match app.tables[0].widget.as_ref().unwrap().as_ref().unwrap() {
        Widget::Graph(g) => g,
        w => panic!("not a graph: {w:?}"),
    }
}

#[test]
fn service_map_of_30_services_has_no_overlapping_labels() {
    let app = map_app(map_batch());
    let g = graph_of(&app);
    assert_eq!(g.nodes.len(), 30);
    assert!(g.edges.len() > 40);
    let rects = g.label_rects();
    for (i, a) in rects.iter().enumerate() {
        for b in &rects[i + 1..] {
            assert!(!a.intersects(*b), "labels overlap: {a:?} {b:?}");
        }
    }
    // Every edge points from an earlier layer to a later one, except the one call back up.
    let back: Vec<_> = g
        .edges
        .iter()
        .filter(|e| g.nodes[e.to].layer <= g.nodes[e.from].layer)
        .map(|e| (g.nodes[e.from].name.as_str(), g.nodes[e.to].name.as_str()))
        .collect();
    assert_eq!(back.len(), 1, "{back:?}");
}

#[test]
fn service_map_snapshots() {
    let mut app = map_app(small_map());
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("frontend"));
    assert!(screen.contains("1.2k 0.2% 12ms"), "{screen}");
    assert!(
        screen.contains("✖ payments"),
        "bad health is marked:\n{screen}"
    );
    snapshot!("map", screen);

    press(&mut app, KeyCode::Tab);
    let screen = draw(&mut app, 100, 30);
    assert!(
        screen.contains("⏎ px/service_edge_stats service="),
        "{screen}"
    );
    snapshot!("map_edge_selected", screen);

    let mut app = map_app(map_batch());
    let screen = draw(&mut app, 80, 24);
    snapshot!("map_30_services_80x24", screen);
    let screen = draw(&mut app, 160, 50);
    snapshot!("map_30_services_160x50", screen);

    let mut app = map_app(small_map().slice(0, 0));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("no edges"));
    snapshot!("map_empty", screen);
}

#[test]
fn service_map_keys_select_and_drill_in_and_back() {
    let mut app = map_app(small_map());
    // Nodes in layer order: 10.0.0.7, then frontend, ...
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Action::Run(
            "px/service".into(),
            vec![("service".into(), "frontend".into())]
        )
    );
    assert_eq!(app.script.as_deref(), Some("px/service"));
    assert_eq!(app.script_label().unwrap(), "px/service service=frontend");
    assert!(app.tables.is_empty(), "the old script's tables are gone");
    // Backspace goes back to the map with its arguments.
    assert_eq!(
        press(&mut app, KeyCode::Backspace),
        Action::Run("px/service_edge_stats".into(), vec![])
    );
    let mut app = map_app(small_map());
    press(&mut app, KeyCode::Char('l'));
    // Tab follows the node's first edge out; Enter on an edge drills into its target.
    press(&mut app, KeyCode::Tab);
    let g = graph_of(&app);
    let e = g.selected_edge(&app.views[0].widget.graph).unwrap();
    assert_eq!(g.nodes[g.edges[e].from].name, "frontend");
    let to = g.nodes[g.edges[e].to].name.clone();
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Action::Run("px/service_edge_stats".into(), vec![("service".into(), to)])
    );
    // Esc also goes back when there is nothing else to close, then quits.
    assert_eq!(
        press(&mut app, KeyCode::Esc),
        Action::Run("px/service_edge_stats".into(), vec![])
    );
    assert_eq!(press(&mut app, KeyCode::Esc), Action::Quit);
}

#[test]
fn v_toggles_the_raw_table_and_table_keys_stay_out_of_widgets() {
    let mut app = map_app(small_map());
    // `s` sorts tables; on the map it does nothing.
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.views[0].sort, None);
    assert!(!app.detail);
    press(&mut app, KeyCode::Char('v'));
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("from_entity"), "{screen}");
    assert!(screen.contains("v: service map"));
    press(&mut app, KeyCode::Char('s'));
    assert!(app.views[0].sort.is_some());
    press(&mut app, KeyCode::Char('v'));
    assert!(!draw(&mut app, 100, 30).contains("from_entity"));
    // The toggle survives a refresh.
    press(&mut app, KeyCode::Char('v'));
    let result = QueryResult {
        tables: vec![ResultTable {
            name: "service_edge_stats".into(),
            widget_json: EDGE_SPEC.into(),
            schema: small_map().schema(),
            batches: vec![small_map()],
        }],
        stats: None,
    };
    app.set_result("px/service_edge_stats", Ok(result), at());
    assert!(app.views[0].raw);
}

#[test]
fn a_spec_the_table_does_not_fit_falls_back_to_the_table() {
    let mut app = app_with(
        "s",
        vec![(
            "t",
            r#"{"widget":"graph","from":"src","to":"dst"}"#,
            small_map(),
        )],
    );
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("graph: no column \"src\""), "{screen}");
    assert!(screen.contains("from_entity"));
}

// ---------------------------------------------------------------- histograms

fn hdr(values: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut h = Histogram::<u64>::new(3).unwrap();
    for v in values {
        h.record(v).unwrap();
    }
    let mut out = Vec::new();
    V2Serializer::new().serialize(&h, &mut out).unwrap();
    out
}

const HIST_SPEC: &str = r#"{"widget":"histogram","value":"latency_hist","series":"service"}"#;

fn hist_batch() -> RecordBatch {
    // cart: mostly ~1 ms with a slow tail; checkout: slower, bimodal.
    let cart: Vec<u64> = (0..1000u64)
        .map(|i| match i % 100 {
            0..=79 => 600_000 + i * 700,
            80..=97 => 3_000_000 + i * 5_000,
            _ => 150_000_000,
        })
        .collect();
    let checkout: Vec<u64> = (0..600u64)
        .map(|i| {
            if i % 3 == 0 {
                40_000_000 + i * 20_000
            } else {
                2_000_000 + i * 3_000
            }
        })
        .collect();
    let users: Vec<u64> = (0..50u64).map(|i| 20_000 + i * 100).collect();
    let hists = [hdr(cart), hdr(checkout), hdr(users)];
    batch(vec![
        ("service", strs(&["cart", "checkout", "users"])),
        ("requests", ints(&[1000, 600, 50])),
        (
            "latency_hist",
            Arc::new(BinaryArray::from(
                hists.iter().map(|h| h.as_slice()).collect::<Vec<_>>(),
            )),
        ),
    ])
}

fn hist_app(b: RecordBatch) -> App {
    app_with(
        "px/service_stats",
        vec![("latency_histogram", HIST_SPEC, b)],
    )
}

#[test]
fn histogram_snapshots() {
    let mut app = hist_app(hist_batch());
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains(" cart "));
    assert!(screen.contains("◀ p50"), "{screen}");
    assert!(screen.contains("p99"));
    snapshot!("histogram", screen);

    press(&mut app, KeyCode::Char('c'));
    let screen = draw(&mut app, 100, 30);
    assert!(
        screen.contains(" checkout "),
        "compared side by side:\n{screen}"
    );
    snapshot!("histogram_compare", screen);
    let screen = draw(&mut app, 80, 24);
    snapshot!("histogram_compare_80x24", screen);

    let mut app = hist_app(hist_batch().slice(0, 0));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("no histograms"));
    snapshot!("histogram_empty", screen);
}

#[test]
fn histogram_keys_choose_compare_and_drill() {
    let mut app = hist_app(hist_batch());
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.views[0].widget.histogram.primary, 1);
    press(&mut app, KeyCode::Char('c'));
    let s = app.views[0].widget.histogram;
    assert!(s.compare);
    assert_eq!(s.other, 2, "compares with the next series");
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.views[0].widget.histogram.other, 0);
    assert_eq!(
        app.views[0].widget.histogram.primary, 1,
        "left pane untouched"
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Action::Run("px/service".into(), vec![("service".into(), "cart".into())])
    );
}

// ---------------------------------------------------------------- flame graph

const FLAME_SPEC: &str = r#"{"widget":"flamegraph","stack":"stack_trace","count":"count"}"#;

fn flame_batch() -> RecordBatch {
    batch(vec![
        ("service", strs(&["api"; 7])),
        (
            "stack_trace",
            strs(&[
                "main;server::run;handler::checkout;db::query;libpq::exec",
                "main;server::run;handler::checkout;json::encode",
                "main;server::run;handler::cart;cache::get",
                "main;server::run;handler::cart;json::encode",
                "main;runtime::gc",
                "main;server::run;handler::checkout;db::query;libpq::exec",
                "[kernel];tcp_sendmsg",
            ]),
        ),
        ("count", ints(&[420, 130, 160, 90, 70, 30, 100])),
    ])
}

fn flame_app(b: RecordBatch) -> App {
    app_with(
        "px/perf_flamegraph",
        vec![("perf_flamegraph", FLAME_SPEC, b)],
    )
}

#[test]
fn flame_graph_snapshots() {
    let mut app = flame_app(flame_batch());
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("handler::checkout"), "{screen}");
    assert!(screen.contains("1000 samples, 100.0% of all"), "{screen}");
    snapshot!("flame", screen);

    // Icicle, zoomed into handler::checkout, searching "json".
    press(&mut app, KeyCode::Char('o'));
    for _ in 0..3 {
        press(&mut app, KeyCode::Char('j'));
    }
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('/'));
    for c in "json".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    press(&mut app, KeyCode::Enter);
    let screen = draw(&mut app, 100, 30);
    assert!(
        screen.contains("/json: 22.0% of samples (2 frames)"),
        "{screen}"
    );
    assert!(screen.contains("of zoom"), "{screen}");
    snapshot!("flame_icicle_zoomed_search", screen);
    let screen = draw(&mut app, 80, 24);
    snapshot!("flame_80x24", screen);

    let mut app = flame_app(flame_batch().slice(0, 0));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("no samples"));
    snapshot!("flame_empty", screen);
}

#[test]
fn flame_graph_keys_zoom_search_and_export() {
    let mut app = flame_app(flame_batch());
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.views[0].widget.flame.zoom, [vec!["main".to_owned()]]);
    // `/` types a search (not a table filter); Esc in the prompt clears it.
    press(&mut app, KeyCode::Char('/'));
    press(&mut app, KeyCode::Char('q'));
    assert_eq!(app.views[0].widget.flame.search, "q");
    assert!(app.views[0].filter.is_empty());
    press(&mut app, KeyCode::Enter);
    // Esc: zoom out first, then clear the search, then quit.
    assert_eq!(press(&mut app, KeyCode::Esc), Action::None);
    assert!(app.views[0].widget.flame.zoom.is_empty());
    assert_eq!(press(&mut app, KeyCode::Esc), Action::None);
    assert!(app.views[0].widget.flame.search.is_empty());
    let Action::ExportSvg { name, lines } = press(&mut app, KeyCode::Char('x')) else {
        panic!("x exports");
    };
    assert_eq!(name, "perf_flamegraph");
    assert!(
        lines.contains(&"main;runtime::gc 70".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"main;server::run;handler::checkout;db::query;libpq::exec 450".to_owned()),
        "duplicate stacks merge: {lines:?}"
    );
    // The same writer as `pxtop run -o svg`.
    let mut svg = Vec::new();
    pxtop::output::write_flamegraph_svg(&mut svg, &name, &lines).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("libpq::exec"));
    assert_eq!(press(&mut app, KeyCode::Esc), Action::Quit);
}

// ---------------------------------------------------------------- time series

const TS_SPEC: &str = r#"{"widget":"timeseries","x":"timestamp","y":["rps","error_rate","latency_p99"],"series":"service"}"#;

fn ts_batch() -> RecordBatch {
    let services = ["cart", "checkout", "frontend"];
    let mut t = Vec::new();
    let mut s = Vec::new();
    let mut rps = Vec::new();
    let mut err = Vec::new();
    let mut p99 = Vec::new();
    for w in 0..30i64 {
        for (i, name) in services.iter().enumerate() {
            t.push(T0 + w * 10_000_000_000);
            s.push(*name);
            let fi = i as f64;
            rps.push(20.0 + 10.0 * fi + ((w as f64) / 3.0 + fi).sin() * 5.0);
            err.push(if name == &"checkout" && (18..23).contains(&w) {
                0.2
            } else {
                0.01 * fi
            });
            p99.push(2_000_000 + 1_000_000 * i as i64 + if w == 12 { 90_000_000 } else { 0 });
        }
    }
    batch(vec![
        (
            "timestamp",
            Arc::new(TimestampNanosecondArray::from(t)) as ArrayRef,
        ),
        ("service", strs(&s)),
        ("rps", floats(&rps)),
        ("error_rate", floats(&err)),
        ("latency_p99", ints(&p99)),
    ])
}

fn ts_app(b: RecordBatch) -> App {
    app_with("px/service_stats", vec![("let_over_time", TS_SPEC, b)])
}

#[test]
fn time_series_snapshots() {
    let mut app = ts_app(ts_batch());
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("all 3 series"));
    assert!(screen.contains("rps  (max "), "{screen}");
    assert!(screen.contains("22:13:20"), "{screen}");
    snapshot!("timeseries", screen);

    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("checkout (2/3)"), "{screen}");
    snapshot!("timeseries_one_series_80x24", screen);

    let mut app = ts_app(ts_batch().slice(0, 0));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("no points"));
    snapshot!("timeseries_empty", screen);
}

// ---------------------------------------------------------------- bars

#[test]
fn bar_snapshot_and_drill() {
    let b = batch(vec![
        ("service", strs(&["users", "checkout", "cart", "frontend"])),
        (
            "latency_p99",
            ints(&[45_547_519, 36_405_247, 35_782_655, 23_281_663]),
        ),
    ]);
    let mut app = app_with(
        "px/service_stats",
        vec![(
            "latency_p99",
            r#"{"widget":"bar","x":"service","y":"latency_p99"}"#,
            b,
        )],
    );
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("46ms"), "{screen}");
    snapshot!("bar_80x24", screen);
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Action::Run(
            "px/service".into(),
            vec![("service".into(), "checkout".into())]
        )
    );
}

// ---------------------------------------------------------------- SQL tables

fn sql_batch() -> RecordBatch {
    let long = "SELECT o.id, o.created_at, o.total, c.email, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status IN (?, ?, ?) AND o.created_at > ? ORDER BY o.created_at DESC LIMIT ?";
    batch(vec![
        ("service", strs(&["orders", "orders", "users"])),
        ("req_cmd", ints(&[3, 23, 3])),
        (
            "query",
            strs(&[
                long,
                "UPDATE stock SET qty = qty - ? WHERE sku = ?",
                "SELECT ? FROM dual",
            ]),
        ),
        ("requests", ints(&[1520, 310, 9000])),
        ("errors", ints(&[3, 41, 0])),
        ("error_rate", floats(&[0.00197, 0.132, 0.0])),
        ("latency_p50", ints(&[2_100_000, 850_000, 90_000])),
        ("latency_p99", ints(&[48_000_000, 9_100_000, 400_000])),
        (
            "total_latency",
            ints(&[5_400_000_000, 400_000_000, 900_000_000]),
        ),
    ])
}

#[test]
fn sql_statements_table_and_full_text_in_the_detail() {
    let mut app = app_with(
        "px/mysql_stats",
        vec![(
            "mysql_stats",
            r#"{"widget":"table","sort":"-total_latency"}"#,
            sql_batch(),
        )],
    );
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("SELECT o.id"), "{screen}");
    snapshot!("sql_stats_80x24", screen);
    press(&mut app, KeyCode::Enter);
    let screen = draw(&mut app, 80, 24);
    // The whole statement, wrapped, down to its last words.
    assert!(screen.contains("LIMIT ?"), "{screen}");
    snapshot!("sql_stats_detail_80x24", screen);
}

// ---------------------------------------------------------------- sizes and themes

fn every_view() -> Vec<App> {
    let mut apps = vec![
        map_app(map_batch()),
        hist_app(hist_batch()),
        flame_app(flame_batch()),
        ts_app(ts_batch()),
    ];
    let mut compare = hist_app(hist_batch());
    press(&mut compare, KeyCode::Char('c'));
    apps.push(compare);
    let mut edge = map_app(map_batch());
    press(&mut edge, KeyCode::Tab);
    apps.push(edge);
    apps
}

#[test]
fn tiny_and_resized_terminals_never_panic() {
    let themes = ["dark", "light", "high-contrast"].map(|t| Theme::load(t).unwrap());
    for mut app in every_view() {
        for (w, h) in [
            (20, 5),
            (1, 1),
            (3, 2),
            (80, 24),
            (200, 60),
            (40, 10),
            (120, 8),
        ] {
            for theme in &themes {
                draw_with(&mut app, w, h, theme);
            }
        }
    }
    let mut app = map_app(map_batch());
    let tiny = draw(&mut app, 20, 5);
    snapshot!("map_20x5", tiny);
}

#[test]
fn high_contrast_and_no_color_render_the_map() {
    let mut app = map_app(small_map());
    let hc = Theme::load("high-contrast").unwrap();
    let screen = draw_with(&mut app, 100, 30, &hc);
    assert!(screen.contains("✖ payments"), "{screen}");
    // Without colours, health still reads from the marks.
    let plain = Theme::default_theme().unwrap().without_colors();
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal.draw(|f| render(f, &app, &plain)).unwrap();
    let buf = terminal.backend().buffer();
    assert!(
        buf.content()
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset),
        "NO_COLOR: no colour anywhere"
    );
    let text = terminal.backend().to_string();
    assert!(
        text.contains("✖ payments") && text.contains("▲ checkout"),
        "{text}"
    );
}
