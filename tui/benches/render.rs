//! Frame render time of the TUI on ratatui's TestBackend (120x40, buffer diff included, no
//! terminal I/O): a 30-service map, a 100,000-row table (scrolled to the middle, sorted); and,
//! for scale, loading a 100,000-row result, one filter keystroke over it (substring and regex)
//! and an incremental refresh that adds 100 rows to it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::{FixedOffset, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pxtop::client::{QueryResult, ResultTable};
use pxtop::theme::Theme;
use pxtop::tui::{App, RefreshInfo, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn result(name: &str, spec: &str, b: RecordBatch) -> QueryResult {
    QueryResult {
        tables: vec![ResultTable {
            name: name.into(),
            widget_json: spec.into(),
            schema: b.schema(),
            batches: vec![b],
        }],
        stats: None,
    }
}

fn app(script: &str, r: QueryResult) -> App {
    let mut app = App::new(
        "http://127.0.0.1:50451",
        Duration::from_secs(2),
        FixedOffset::east_opt(0).unwrap(),
    );
    app.start_script(script);
    app.set_result(script, Ok(r), at());
    app
}

/// 30 services in four tiers, 66 edges (the same shape as the snapshot test's map).
fn map_batch() -> RecordBatch {
    let tiers: [Vec<String>; 4] = [
        (0..2).map(|i| format!("entry-{i}")).collect(),
        (0..8).map(|i| format!("service-{i}")).collect(),
        (0..10).map(|i| format!("backend-{i}")).collect(),
        (0..10).map(|i| format!("store-{i}")).collect(),
    ];
    let mut edges: Vec<(String, String)> = Vec::new();
    let mut add = |a: &str, b: &str| {
        let e = (a.to_owned(), b.to_owned());
        if !edges.contains(&e) {
            edges.push(e);
        }
    };
    for (i, a) in tiers[0].iter().enumerate() {
        for j in 0..4 {
            add(a, &tiers[1][(i * 4 + j) % 8]);
        }
    }
    for (i, a) in tiers[1].iter().enumerate() {
        for k in [i * 3, i * 3 + 1, i * 7 + 5] {
            add(a, &tiers[2][k % 10]);
        }
    }
    for (j, a) in tiers[2].iter().enumerate() {
        add(a, &tiers[3][j]);
        add(a, &tiers[3][(j + 3) % 10]);
    }
    let n = edges.len();
    batch(vec![
        (
            "from_entity",
            Arc::new(StringArray::from_iter_values(
                edges.iter().map(|e| e.0.as_str()),
            )),
        ),
        (
            "to_entity",
            Arc::new(StringArray::from_iter_values(
                edges.iter().map(|e| e.1.as_str()),
            )),
        ),
        (
            "requests",
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|k| 4000 - 37 * k),
            )),
        ),
        (
            "error_rate",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|k| (k % 7) as f64 * 0.01),
            )),
        ),
        (
            "latency_p99",
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|k| 900_000 + 350_000 * (k % 17)),
            )),
        ),
    ])
}

/// 100,000 http_data-like rows.
fn big_batch() -> RecordBatch {
    const ROWS: i64 = 100_000;
    let paths = [
        "/api/cart",
        "/api/checkout",
        "/healthz",
        "/metrics",
        "/api/users/42",
    ];
    batch(vec![
        (
            "time_",
            Arc::new(arrow::array::TimestampNanosecondArray::from_iter_values(
                (0..ROWS).map(|i| 1_700_000_000_000_000_000 + i * 1_000_000),
            )),
        ),
        (
            "remote_addr",
            Arc::new(StringArray::from_iter_values(
                (0..ROWS).map(|i| format!("10.0.{}.{}", i % 7, i % 250)),
            )),
        ),
        (
            "req_path",
            Arc::new(StringArray::from_iter_values(
                (0..ROWS).map(|i| paths[(i % 5) as usize]),
            )),
        ),
        (
            "resp_status",
            Arc::new(Int64Array::from_iter_values(
                (0..ROWS).map(|i| if i % 17 == 0 { 503 } else { 200 }),
            )),
        ),
        (
            "latency",
            Arc::new(Int64Array::from_iter_values(
                (0..ROWS).map(|i| 50_000 + (i * 7919) % 40_000_000),
            )),
        ),
        (
            "resp_body",
            Arc::new(StringArray::from_iter_values((0..ROWS).map(|i| {
                format!("{{\"ok\":true,\"id\":{i},\"items\":[1,2,3]}}")
            }))),
        ),
    ])
}

fn at() -> RefreshInfo {
    RefreshInfo {
        at: NaiveDate::from_ymd_opt(2023, 11, 14)
            .unwrap()
            .and_hms_opt(22, 13, 23)
            .unwrap(),
        took: Duration::from_millis(12),
    }
}

fn bench(c: &mut Criterion) {
    let theme = Theme::default_theme().unwrap();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();

    let map = app(
        "px/service_edge_stats",
        result(
            "service_edge_stats",
            r#"{"widget":"graph","from":"from_entity","to":"to_entity","edge":["requests","error_rate","latency_p99"]}"#,
            map_batch(),
        ),
    );
    c.bench_function("frame: 30-service map (120x40)", |b| {
        b.iter(|| {
            terminal
                .draw(|f| render(f, black_box(&map), &theme))
                .unwrap();
        })
    });

    let big = big_batch();
    let mut table = app(
        "px/http_data",
        result(
            "http_data",
            r#"{"widget":"table","sort":"-time_"}"#,
            big.clone(),
        ),
    );
    table.set_body_area(ratatui::layout::Rect::new(1, 3, 118, 35));
    // Sorted by latency (the fifth column), selection in the middle.
    for code in [KeyCode::Char('l'); 4] {
        table.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
    table.handle_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE));
    for _ in 0..1000 {
        table.handle_key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
    }
    c.bench_function("frame: 100k-row table (120x40)", |b| {
        b.iter(|| {
            terminal
                .draw(|f| render(f, black_box(&table), &theme))
                .unwrap();
        })
    });

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    // One filter keystroke re-filters and re-sorts the 100k rows; this types a character and
    // deletes it (two passes), substring then regex.
    for (name, regex) in [("substring", false), ("regex", true)] {
        let mut filtered = table.clone();
        filtered.handle_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
        if regex {
            filtered.handle_key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL));
        }
        for c in "check".chars() {
            filtered.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        group.bench_function(format!("filter keystroke x2, 100k rows ({name})"), |b| {
            b.iter(|| {
                filtered.handle_key(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::NONE));
                filtered.handle_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
            })
        });
    }
    // An incremental refresh (each refresh of an event table, and each follow poll) that
    // brings 100 new rows to the 100k shown, at the 100k cap: de-duplication of the overlap,
    // the append, the 100 oldest leaving and the re-sort (by latency here) of all rows.
    let since = 1_700_000_000_000_000_000 + 100_000 * 1_000_000;
    let poll = result(
        "http_data",
        r#"{"widget":"table","sort":"-time_"}"#,
        big.slice(0, 100),
    );
    group.bench_function(
        "incremental refresh: +100 rows at the 100k cap, re-sorted",
        |b| {
            b.iter_batched(
                || table.clone(),
                |mut app| {
                    let added = app.append_result("px/http_data", Ok(poll.clone()), since, at());
                    assert_eq!(added, 100);
                    app
                },
                criterion::BatchSize::LargeInput,
            )
        },
    );
    // What the TUI does to each batch as it arrives: repeated strings to dictionaries, the
    // rest copied out of the decoded message.
    group.bench_function("100k-row batch compacted on arrival", |b| {
        b.iter(|| black_box(pxtop::client::compact(&big)))
    });
    group.bench_function("100k-row result formatted for display", |b| {
        b.iter(|| {
            black_box(app(
                "px/http_data",
                result("http_data", r#"{"widget":"table"}"#, big.clone()),
            ));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
