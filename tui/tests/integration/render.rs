//! Whole-screen snapshots of the TUI on ratatui's TestBackend (100x30 unless noted), from
//! fixture results built in memory; stored under /work/main/snapshots/tui.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{FixedOffset, NaiveDate};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxtop::client::{QueryResult, ResultTable};
use pxtop::theme::Theme;
use pxtop::tui::{Action, App, RefreshInfo, render};
use pxtop_proto::v1::{ExecutionStats, ScriptInfo, ScriptParam};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

pub const T0: i64 = 1_700_000_000_000_000_000;

pub fn http_events() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time_",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            false,
        ),
        Field::new("remote_addr", DataType::Utf8, true),
        Field::new("remote_port", DataType::Int64, true),
        Field::new("req_method", DataType::Utf8, true),
        Field::new("req_path", DataType::Utf8, true),
        Field::new("resp_status", DataType::Int64, true),
        Field::new("latency", DataType::Int64, true),
        Field::new("req_body", DataType::Utf8, true),
        Field::new("resp_body", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampNanosecondArray::from(vec![
                T0,
                T0 + 250_000_000,
                T0 + 1_000_000_000,
                T0 + 1_500_000_000,
                T0 + 2_750_000_000,
            ])),
            Arc::new(StringArray::from(vec![
                "10.0.0.7",
                "10.0.0.7",
                "10.0.0.9",
                "127.0.0.1",
                "10.0.0.9",
            ])),
            Arc::new(Int64Array::from(vec![51234, 51236, 40100, 8080, 40102])),
            Arc::new(StringArray::from(vec!["GET", "POST", "GET", "GET", "DELETE"])),
            Arc::new(StringArray::from(vec![
                "/api/cart",
                "/api/checkout",
                "/healthz",
                "/metrics",
                "/api/cart/42",
            ])),
            Arc::new(Int64Array::from(vec![
                Some(200),
                Some(503),
                Some(200),
                Some(200),
                None,
            ])),
            Arc::new(Int64Array::from(vec![
                1_834_000,
                250_000_000,
                850,
                12_345,
                3_100_000,
            ])),
            Arc::new(StringArray::from(vec![
                "",
                "{\"items\":[1,2,3],\n \"coupon\":\"SAVE10\"}",
                "",
                "",
                "",
            ])),
            Arc::new(StringArray::from(vec![
                "{\"cart\":[]}",
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: delayed connect error: 111",
                "ok",
                "# HELP http_requests_total\n# TYPE http_requests_total counter",
                "",
            ])),
        ],
    )
    .unwrap()
}

fn table(name: &str, widget_json: &str, batch: RecordBatch) -> ResultTable {
    ResultTable {
        name: name.into(),
        widget_json: widget_json.into(),
        schema: batch.schema(),
        batches: vec![batch],
    }
}

fn stats_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("req_path", DataType::Utf8, false),
        Field::new("requests", DataType::Int64, false),
        Field::new("p99_latency", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["/api/cart", "/healthz"])),
            Arc::new(Int64Array::from(vec![120, 3])),
            Arc::new(Int64Array::from(vec![4_200_000, 900])),
        ],
    )
    .unwrap()
}

pub fn scripts() -> Vec<ScriptInfo> {
    let param = |name: &str, default: &str, help: &str| ScriptParam {
        name: name.into(),
        default_value: default.into(),
        help: help.into(),
        r#type: String::new(),
    };
    vec![
        ScriptInfo {
            name: "px/http_data".into(),
            description: "Recent HTTP requests and responses, newest first.".into(),
            params: vec![
                param("start_time", "-5m", "how far back to look"),
                param("max_rows", "1000", "at most this many rows"),
            ],
        },
        ScriptInfo {
            name: "px/http_stats".into(),
            description: "Requests, errors and latency quantiles per endpoint.".into(),
            params: vec![param("start_time", "-5m", "how far back to look")],
        },
        ScriptInfo {
            name: "px/tables".into(),
            description: "Rows and bytes per table.".into(),
            params: vec![],
        },
    ]
}

fn at() -> RefreshInfo {
    RefreshInfo {
        at: NaiveDate::from_ymd_opt(2023, 11, 14)
            .unwrap()
            .and_hms_opt(22, 13, 23)
            .unwrap(),
        took: Duration::from_micros(34_700),
    }
}

fn app() -> App {
    let mut app = App::new(
        "http://127.0.0.1:50451",
        Duration::from_secs(2),
        FixedOffset::east_opt(0).unwrap(),
    );
    app.set_scripts(Ok(scripts()));
    app
}

/// An app showing px/http_data with the fixture rows.
fn live_app() -> App {
    let mut app = app();
    assert_eq!(
        app.start_script("px/http_data"),
        Action::Run("px/http_data".into(), vec![])
    );
    let result = QueryResult {
        tables: vec![table("http_data", r#"{"widget":"table"}"#, http_events())],
        stats: Some(ExecutionStats {
            rows: 5,
            ..ExecutionStats::default()
        }),
    };
    app.set_result("px/http_data", Ok(result), at());
    app
}

fn press(app: &mut App, code: KeyCode) -> Action {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// Renders `app` on a `width`x`height` TestBackend, measuring the viewport as the loop does.
fn draw(app: &mut App, width: u16, height: u16) -> String {
    let theme = Theme::default_theme().unwrap();
    app.set_body_area(pxtop::tui::render::table_body_area(
        Rect::new(0, 0, width, height),
        app,
    ));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, app, &theme)).unwrap();
    terminal.backend().to_string()
}

macro_rules! snapshot {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../../../snapshots/tui", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

#[test]
fn picker() {
    let mut app = app();
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("px/http_data"));
    assert!(screen.contains("start_time"));
    snapshot!("picker", screen);
}

#[test]
fn picker_filtered_by_typing() {
    let mut app = app();
    type_text(&mut app, "stats");
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("Scripts (1/3)"));
    snapshot!("picker_filtered", screen);
}

#[test]
fn picker_switching_cluster_context() {
    let mut app = app();
    type_text(&mut app, "ctx prod-eu");
    let screen = draw(&mut app, 100, 30);
    assert!(
        screen.contains("Enter: switch to context prod-eu"),
        "{screen}"
    );
    assert!(screen.contains("Switch cluster"), "{screen}");
    snapshot!("picker_ctx", screen);
}

#[test]
fn picker_while_loading() {
    let mut app = App::new(
        "http://127.0.0.1:50451",
        Duration::from_secs(2),
        FixedOffset::east_opt(0).unwrap(),
    );
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("loading scripts"));
    snapshot!("picker_loading", screen);
}

#[test]
fn live_table() {
    let mut app = live_app();
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("2023-11-14 22:13:20.000"));
    assert!(screen.contains("1.83 ms"));
    assert!(screen.contains("22:13:23 (35 ms)"));
    snapshot!("table", screen);
}

#[test]
fn table_sorted_by_latency_descending() {
    let mut app = live_app();
    // l moves to latency, the 7th column; s sorts by it, s again reverses.
    for _ in 0..6 {
        press(&mut app, KeyCode::Char('l'));
    }
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('s'));
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("latency ▼"));
    let slowest = screen.find("250.00 ms").unwrap();
    let fastest = screen.find("850 ns").unwrap();
    assert!(slowest < fastest, "descending order expected:\n{screen}");
    snapshot!("table_sorted", screen);
}

#[test]
fn detail_pane_shows_every_column_with_bodies_wrapped() {
    let mut app = live_app();
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Enter);
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("row 2/5"));
    assert!(screen.contains("J/K scroll"), "{screen}");
    snapshot!("detail_top", screen);
    // The JSON body is pretty-printed; J scrolls down to its end.
    for _ in 0..8 {
        press(&mut app, KeyCode::Char('J'));
    }
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("\"coupon\": \"SAVE10\""), "{screen}");
    snapshot!("detail", screen);
}

#[test]
fn help_overlay() {
    let mut app = live_app();
    press(&mut app, KeyCode::Char('?'));
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("reverse the sort"));
    snapshot!("help", screen);
}

#[test]
fn failed_refresh_shows_the_error_and_keeps_data() {
    let mut app = live_app();
    app.set_result(
        "px/http_data",
        Err("cannot connect to pxtopd at http://127.0.0.1:50451: connection refused".into()),
        at(),
    );
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("error: cannot connect"));
    assert!(screen.contains("/api/checkout"));
    snapshot!("error_status", screen);
}

#[test]
fn filter_prompt_narrows_rows() {
    let mut app = live_app();
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "api");
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("3/5 rows"));
    assert!(!screen.contains("/healthz"));
    snapshot!("filter", screen);
}

#[test]
fn second_output_table_via_tab_and_paused() {
    let mut app = live_app();
    let result = QueryResult {
        tables: vec![
            table("http_data", "{}", http_events()),
            table("stats", r#"{"sort":"-requests"}"#, stats_batch()),
        ],
        stats: None,
    };
    app.set_result("px/http_data", Ok(result), at());
    press(&mut app, KeyCode::Tab);
    assert_eq!(press(&mut app, KeyCode::Char('p')), Action::SetPaused(true));
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("PAUSED"));
    assert!(screen.contains("requests ▼"));
    snapshot!("second_table_paused", screen);
}

#[test]
fn empty_result_and_tiny_terminal() {
    let mut app = app();
    app.start_script("px/http_data");
    let empty = http_events().slice(0, 0);
    let result = QueryResult {
        tables: vec![table("http_data", "{}", empty)],
        stats: None,
    };
    app.set_result("px/http_data", Ok(result), at());
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("no rows"));
    snapshot!("empty", screen);

    let mut app = live_app();
    let tiny = draw(&mut app, 40, 10);
    snapshot!("tiny", tiny);
}

#[test]
fn columns_scroll_sideways_to_the_bodies() {
    let mut app = live_app();
    assert!(draw(&mut app, 100, 30).contains("cols 1-7/9"));
    // l moves the column cursor; columns scroll once it passes the right edge.
    for _ in 0..8 {
        press(&mut app, KeyCode::Char('l'));
        draw(&mut app, 100, 30);
    }
    let screen = draw(&mut app, 100, 30);
    assert!(screen.contains("cols 7-9/9"), "{screen}");
    assert!(screen.contains("upstream connect error"));
    snapshot!("table_scrolled", screen);
}

#[test]
fn snapshots_live_in_the_shared_folder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots/tui");
    // The path insta writes to is relative to this file; keep the two in step.
    assert!(
        file!().ends_with("tests/integration/render.rs"),
        "{}",
        file!()
    );
    assert!(
        dir.join("table.snap").exists() || std::env::var_os("INSTA_UPDATE").is_some(),
        "snapshots expected in {}",
        dir.display()
    );
}

// ------------------------------------------------ columns, regex, palette form, banners

fn ctrl_key(app: &mut App, c: char) -> Action {
    app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

#[test]
fn regex_filter_and_its_errors_at_80x24() {
    let mut app = live_app();
    press(&mut app, KeyCode::Char('/'));
    ctrl_key(&mut app, 'r');
    type_text(&mut app, "^/api/(cart|checkout)");
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains(" re/^/api/(cart|checkout)"), "{screen}");
    assert!(screen.contains("3/5 rows"), "{screen}");
    snapshot!("filter_regex_80x24", screen);
    type_text(&mut app, "(");
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("bad regex"), "{screen}");
    snapshot!("filter_regex_bad_80x24", screen);
}

#[test]
fn hidden_and_moved_columns_at_80x24() {
    let mut app = live_app();
    // Hide time_, then move latency to the front.
    press(&mut app, KeyCode::Char('-'));
    for _ in 0..5 {
        press(&mut app, KeyCode::Char('l'));
    }
    for _ in 0..5 {
        press(&mut app, KeyCode::Char('<'));
    }
    let screen = draw(&mut app, 80, 24);
    assert!(!screen.contains("time_"), "{screen}");
    assert!(screen.contains("1 hidden"), "{screen}");
    let header = screen.lines().nth(2).unwrap();
    assert!(
        header
            .trim_start_matches(['"', '│', ' '])
            .starts_with("latency"),
        "{header}"
    );
    snapshot!("columns_hidden_moved_80x24", screen);
}

#[test]
fn palette_form_at_80x24() {
    let mut app = app();
    type_text(&mut app, "hd");
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Tab);
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("Arguments"), "{screen}");
    assert!(screen.contains("[1000▏]"), "{screen}");
    assert!(screen.contains("[-5m]"), "{screen}");
    snapshot!("palette_form_80x24", screen);
}

#[test]
fn backend_down_banner_keeps_the_last_data() {
    let mut app = live_app();
    app.set_result(
        "px/http_data",
        Err("cannot connect to pxtopd at http://127.0.0.1:50451: connection refused".into()),
        at(),
    );
    app.set_retry(3, Duration::from_secs(4));
    for (w, h) in [(100, 30), (80, 24)] {
        let screen = draw(&mut app, w, h);
        assert!(screen.contains("backend unreachable"), "{screen}");
        assert!(screen.contains("retry in 4s"), "{screen}");
        assert!(screen.contains("showing data from 22:13:23"), "{screen}");
        assert!(screen.contains("/api/checkout"), "{screen}");
        snapshot!(format!("backend_down_{w}x{h}"), screen);
    }
}

#[test]
fn slow_query_banner_and_esc_cancels() {
    let mut app = live_app();
    app.set_in_flight(Some(Duration::from_millis(2_300)));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("running px/http_data… 2.3 s"), "{screen}");
    assert!(screen.contains("Esc cancels"), "{screen}");
    snapshot!("slow_query_80x24", screen);
    assert_eq!(press(&mut app, KeyCode::Esc), Action::Cancel);
    app.cancelled();
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("refresh paused (p resu"), "{screen}");
    assert!(screen.contains("query cancelled"), "{screen}");
}

#[test]
fn help_at_80x24_scrolls_through_every_binding() {
    let mut app = live_app();
    press(&mut app, KeyCode::Char('?'));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("j/k scroll"), "{screen}");
    snapshot!("help_80x24", screen);
    for _ in 0..60 {
        press(&mut app, KeyCode::Char('j'));
    }
    let screen = draw(&mut app, 80, 24);
    // The last section is in view at the end.
    assert!(screen.contains("search, flip, write SVG"), "{screen}");
    snapshot!("help_80x24_end", screen);
}

#[test]
fn follow_mode_shows_in_the_title_and_status() {
    let mut app = live_app();
    press(&mut app, KeyCode::Char('F'));
    let screen = draw(&mut app, 80, 24);
    assert!(screen.contains("FOLLOW"), "{screen}");
    assert!(screen.contains("5/5"), "{screen}");
}

#[test]
fn every_table_mode_survives_any_terminal_size() {
    let mut states: Vec<App> = Vec::new();
    let mut s = live_app();
    states.push(s.clone());
    press(&mut s, KeyCode::Enter);
    states.push(s.clone());
    press(&mut s, KeyCode::Esc);
    press(&mut s, KeyCode::Char('?'));
    states.push(s.clone());
    let mut s = live_app();
    press(&mut s, KeyCode::Char('/'));
    type_text(&mut s, "zz");
    states.push(s.clone());
    let mut s = live_app();
    s.set_result("px/http_data", Err("down".into()), at());
    s.set_retry(2, Duration::from_secs(2));
    states.push(s.clone());
    s.set_in_flight(Some(Duration::from_secs(1)));
    states.push(s);
    let mut s = app();
    press(&mut s, KeyCode::Tab);
    states.push(s);
    for mut app in states {
        for (w, h) in [(1, 1), (3, 2), (20, 5), (40, 10), (80, 24), (200, 60)] {
            let screen = draw(&mut app, w, h);
            assert_eq!(screen.lines().count(), usize::from(h));
        }
    }
}
