//! Engine tests: every DataFrame operation, the bundled scripts on fixture data, and errors.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use arrow::{
    array::{
        Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
        TimestampNanosecondArray,
    },
    compute::concat_batches,
    datatypes::{Float64Type, Int64Type},
};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{CmdEvent, CmdEventsBuilder, Store, StoreConfig, fixtures, schema};

use crate::{Engine, EngineConfig, EngineError, ErrorKind, OutputTable, SqlDialect, normalize_sql};

const SERVICES: [&str; 4] = ["frontend", "cart", "checkout", "users"];
const ROWS: usize = 20_000;

/// Names the four fixture services; other upids are unknown.
#[derive(Debug)]
struct Services;

impl Metadata for Services {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        let i = (0..4).find(|i| fixtures::upid(*i) == upid)?;
        match key {
            CtxKey::Service => Some(SERVICES[i as usize].to_string()),
            CtxKey::Pid => Some((1001 + i).to_string()),
            _ => None,
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

struct Fixture {
    engine: Engine,
    batches: Vec<RecordBatch>,
}

/// `ROWS` rows (20 s of traffic) ending a minute ago.
fn fixture_with(config: EngineConfig) -> Fixture {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let start = now_ns() - 80_000_000_000;
    let batches = fixtures::http_events(ROWS, start, 42);
    for b in &batches {
        store.append("http_events", b.clone()).unwrap();
    }
    Fixture {
        engine: Engine::new(store, Arc::new(Services), config),
        batches,
    }
}

fn fixture() -> Fixture {
    fixture_with(EngineConfig::default())
}

fn args(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

async fn run_args(
    e: &Engine,
    src: &str,
    kv: &[(&str, &str)],
) -> Result<Vec<OutputTable>, EngineError> {
    let c = e.compile(src, &args(kv))?;
    e.execute(c).await
}

async fn run(e: &Engine, src: &str) -> Vec<OutputTable> {
    run_args(e, src, &[]).await.unwrap()
}

fn one(t: &OutputTable) -> RecordBatch {
    concat_batches(&t.schema, &t.batches).unwrap()
}

fn ints(b: &RecordBatch, name: &str) -> Vec<i64> {
    let c = b.column_by_name(name).unwrap();
    if let Some(a) = c.as_any().downcast_ref::<Int64Array>() {
        return a.iter().map(|v| v.unwrap()).collect();
    }
    if let Some(a) = c.as_any().downcast_ref::<TimestampNanosecondArray>() {
        return a.iter().map(|v| v.unwrap()).collect();
    }
    panic!("{name} is {}", c.data_type());
}

fn floats(b: &RecordBatch, name: &str) -> Vec<f64> {
    let c = b.column_by_name(name).unwrap();
    c.as_any()
        .downcast_ref::<Float64Array>()
        .unwrap_or_else(|| panic!("{name} is {}", c.data_type()))
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn strs(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = b.column_by_name(name).unwrap();
    c.as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("{name} is {}", c.data_type()))
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn names(b: &RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Per fixture row: (service, req_path, resp_status, latency, req_method).
fn fixture_rows(batches: &[RecordBatch]) -> Vec<(String, String, i64, i64, String)> {
    let svc: HashMap<String, &str> = (0..4)
        .map(|i| (fixtures::upid(i), SERVICES[i as usize]))
        .collect();
    let mut out = Vec::new();
    for b in batches {
        let upid = b.column_by_name("upid").unwrap().as_string::<i32>();
        let path = b.column_by_name("req_path").unwrap().as_string::<i32>();
        let status = b
            .column_by_name("resp_status")
            .unwrap()
            .as_primitive::<Int64Type>();
        let lat = b
            .column_by_name("latency")
            .unwrap()
            .as_primitive::<Int64Type>();
        let method = b.column_by_name("req_method").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                svc[upid.value(i)].to_string(),
                path.value(i).to_string(),
                status.value(i),
                lat.value(i),
                method.value(i).to_string(),
            ));
        }
    }
    out
}

// ---- operations ----

#[tokio::test]
async fn column_access_by_index_col_and_property() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           df.a = df["latency"];
           df.b = df.col("latency");
           df.c = df.latency;
           px::display(df.select(["a", "b", "c", "latency"]).head(10), "t");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(names(&b), ["a", "b", "c", "latency"]);
    assert_eq!(b.num_rows(), 10);
    assert_eq!(ints(&b, "a"), ints(&b, "latency"));
    assert_eq!(ints(&b, "b"), ints(&b, "latency"));
    assert_eq!(ints(&b, "c"), ints(&b, "latency"));
}

#[tokio::test]
async fn assignment_adds_and_replaces_columns_with_arithmetic() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m").head(50);
           df["latency_ms"] = df["latency"] / 1000000.0;
           df.orig = df.latency;
           df.latency = df.latency * 2 + 1 - 1;
           df.rem = df.orig % 1000;
           df.neg = -df.orig;
           df.lit = 7;
           px::display(df.select(["orig", "latency", "latency_ms", "rem", "neg", "lit"]), "t");"#,
    )
    .await;
    let b = one(&out[0]);
    let orig = ints(&b, "orig");
    assert_eq!(
        ints(&b, "latency"),
        orig.iter().map(|v| v * 2).collect::<Vec<_>>()
    );
    for (ms, o) in floats(&b, "latency_ms").iter().zip(&orig) {
        assert!((ms - *o as f64 / 1e6).abs() < 1e-9);
    }
    assert_eq!(
        ints(&b, "rem"),
        orig.iter().map(|v| v % 1000).collect::<Vec<_>>()
    );
    assert_eq!(ints(&b, "neg"), orig.iter().map(|v| -v).collect::<Vec<_>>());
    assert!(ints(&b, "lit").iter().all(|v| *v == 7));
    // Replacing kept the column's place: latency stays where it was in the table.
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events");
           df.latency = df.latency + 1;
           px::display(df.head(1), "t");"#,
    )
    .await;
    let cols = names(&one(&out[0]));
    assert_eq!(cols.len(), 23);
    assert_eq!(cols[21], "latency");
}

#[tokio::test]
async fn filter_with_comparisons_and_boolean_operators() {
    let f = fixture();
    let rows = fixture_rows(&f.batches);
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           let a = df.filter(df.resp_status >= 400 & df.req_method == "GET");
           let b = df[df.resp_status < 300 | df.resp_status == 404];
           let c = df.filter(!(df.resp_status != 500));
           let d = df.filter(df.req_path.contains("orders") & df.req_path.starts_with("/api"));
           px::display(a.agg(#{ n: ["latency", "count"] }), "a");
           px::display(b.agg(#{ n: ["latency", "count"] }), "b");
           px::display(c.agg(#{ n: ["latency", "count"] }), "c");
           px::display(d.agg(#{ n: ["latency", "count"] }), "d");"#,
    )
    .await;
    let n = |i: usize| ints(&one(&out[i]), "n")[0] as usize;
    let get = rows.iter().filter(|r| r.2 >= 400 && r.4 == "GET").count();
    assert_eq!(n(0), get);
    assert_eq!(
        n(1),
        rows.iter().filter(|r| r.2 < 300 || r.2 == 404).count()
    );
    assert_eq!(n(2), rows.iter().filter(|r| r.2 == 500).count());
    assert_eq!(
        n(3),
        rows.iter()
            .filter(|r| r.1.starts_with("/api/orders"))
            .count()
    );
    assert!(n(2) > 0 && n(3) > 0);
}

#[tokio::test]
async fn select_drop_head_and_column_lists() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           px::display(df.select(["req_path", "latency"]).head(3), "sel");
           px::display(df[["latency"]].head(2), "idx");
           px::display(df.drop(["req_headers", "resp_headers"]).head(), "drop");
           px::display(df.select("upid").head(0), "none");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(names(&b), ["req_path", "latency"]);
    assert_eq!(b.num_rows(), 3);
    assert_eq!(names(&one(&out[1])), ["latency"]);
    let d = one(&out[2]);
    assert_eq!(d.num_columns(), 21);
    assert_eq!(d.num_rows(), 5);
    assert!(!names(&d).contains(&"req_headers".to_string()));
    assert_eq!(one(&out[3]).num_rows(), 0);
}

#[tokio::test]
async fn sort_ascending_descending_and_by_several_keys() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           px::display(df.sort("-latency").head(100), "desc");
           px::display(df.sort("latency").head(100), "asc");
           px::display(df.sort(["resp_status", "-latency"]).head(5000), "multi");"#,
    )
    .await;
    let desc = ints(&one(&out[0]), "latency");
    assert!(desc.windows(2).all(|w| w[0] >= w[1]));
    let max = fixture_rows(&f.batches).iter().map(|r| r.3).max().unwrap();
    assert_eq!(desc[0], max);
    let asc = ints(&one(&out[1]), "latency");
    assert!(asc.windows(2).all(|w| w[0] <= w[1]));
    let m = one(&out[2]);
    let (s, l) = (ints(&m, "resp_status"), ints(&m, "latency"));
    for i in 1..s.len() {
        assert!(s[i - 1] < s[i] || (s[i - 1] == s[i] && l[i - 1] >= l[i]));
    }
}

#[tokio::test]
async fn groupby_agg_matches_a_hand_count() {
    let f = fixture();
    let rows = fixture_rows(&f.batches);
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           df.failure = df.resp_status >= 400;
           let s = df.groupby("resp_status").agg(#{
               n: ["latency", "count"], total: ["latency", "sum"], lo: ["latency", "min"],
               hi: ["latency", "max"], avg: ["latency", "mean"], fails: ["failure", "sum"],
           });
           px::display(s.sort("resp_status"), "t");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(
        names(&b),
        ["resp_status", "avg", "fails", "hi", "lo", "n", "total"]
    );
    let status = ints(&b, "resp_status");
    assert_eq!(status, [200, 201, 204, 301, 404, 500]);
    for (i, s) in status.iter().enumerate() {
        let mine: Vec<i64> = rows.iter().filter(|r| r.2 == *s).map(|r| r.3).collect();
        assert_eq!(ints(&b, "n")[i], mine.len() as i64, "status {s}");
        assert_eq!(ints(&b, "total")[i], mine.iter().sum::<i64>());
        assert_eq!(ints(&b, "lo")[i], *mine.iter().min().unwrap());
        assert_eq!(ints(&b, "hi")[i], *mine.iter().max().unwrap());
        let avg = mine.iter().sum::<i64>() as f64 / mine.len() as f64;
        assert!((floats(&b, "avg")[i] - avg).abs() < 1e-3);
        assert_eq!(
            ints(&b, "fails")[i],
            if *s >= 400 { mine.len() as i64 } else { 0 }
        );
    }
}

#[tokio::test]
async fn percentiles_are_ordered_and_close_to_exact() {
    let f = fixture();
    let mut lat: Vec<i64> = fixture_rows(&f.batches).iter().map(|r| r.3).collect();
    lat.sort_unstable();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           px::display(df.agg(#{ p50: ["latency", "p50"], p90: ["latency", "p90"],
               p99: ["latency", "p99"], med: ["latency", "median"], n: ["latency", "count"] }), "t");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 1);
    let p = |n: &str| {
        let c = b.column_by_name(n).unwrap();
        arrow::compute::cast(c, &arrow::datatypes::DataType::Float64)
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0)
    };
    assert_eq!(ints(&b, "n")[0], ROWS as i64);
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99"));
    let exact = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64;
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("med", 0.5)] {
        let rel = (p(name) - exact(q)).abs() / exact(q);
        assert!(rel < 0.05, "{name}: {} vs exact {}", p(name), exact(q));
    }
}

#[tokio::test]
async fn ctx_in_all_three_spellings() {
    let f = fixture();
    let rows = fixture_rows(&f.batches);
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           df.a = df.ctx("service");
           df.b = px::ctx(df, "service");
           df.c = df.ctx["service"];
           df.pid = df.ctx("pid");
           df.pod = df.ctx("pod");
           px::display(df.groupby(["a", "b", "c", "pid", "pod"]).agg(#{ n: ["upid", "count"] }).sort("a"), "t");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(strs(&b, "a"), ["cart", "checkout", "frontend", "users"]);
    assert_eq!(strs(&b, "a"), strs(&b, "b"));
    assert_eq!(strs(&b, "a"), strs(&b, "c"));
    assert_eq!(strs(&b, "pid"), ["1002", "1003", "1001", "1004"]);
    // Unknown to the metadata: an empty string, as in Pixie.
    assert!(strs(&b, "pod").iter().all(String::is_empty));
    let cart = rows.iter().filter(|r| r.0 == "cart").count() as i64;
    assert_eq!(ints(&b, "n")[0], cart);
}

#[tokio::test]
async fn select_now_params_and_widgets() {
    let f = fixture();
    let src = r#"// A test script.
        let n = px::param("n", 3, "rows");
        let x = px::param("x", 1.5, "factor");
        let on = px::param("on", true, "switch");
        let s = px::param("s", "GET", "method");
        let df = px::DataFrame("http_events", px::now() - 3600000000000);
        df = df.filter(df.req_method == s & df.time_ >= px::now() - 3600000000000);
        df.kind = px::select(df.resp_status >= 400, "bad", "ok");
        df.f = df.latency * x;
        if !on { df = df.head(0); }
        px::display(df.head(n), "t", #{ widget: "table", sort: ["-latency"], limit: 5 });
        px::display(df.head(1), "plain");"#;
    let out = run_args(&f.engine, src, &[("n", "4"), ("s", "POST"), ("x", "2")])
        .await
        .unwrap();
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 4);
    assert!(strs(&b, "req_method").iter().all(|m| m == "POST"));
    for (k, s) in strs(&b, "kind").iter().zip(ints(&b, "resp_status")) {
        assert_eq!(k, if s >= 400 { "bad" } else { "ok" });
    }
    for (f, l) in floats(&b, "f").iter().zip(ints(&b, "latency")) {
        assert_eq!(*f, l as f64 * 2.0);
    }
    let w: serde_json::Value = serde_json::from_str(out[0].widget.as_deref().unwrap()).unwrap();
    assert_eq!(
        w,
        serde_json::json!({ "widget": "table", "sort": ["-latency"], "limit": 5 })
    );
    assert_eq!(out[1].widget, None);
    assert_eq!(out[1].name, "plain");
    let off = run_args(&f.engine, src, &[("on", "false")]).await.unwrap();
    assert_eq!(one(&off[0]).num_rows(), 0);
}

#[tokio::test]
async fn time_range_limits_rows() {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let now = now_ns();
    // 1,000 rows two hours ago and 1,000 rows a minute ago.
    for b in fixtures::http_events(1000, now - 7_200_000_000_000, 1)
        .into_iter()
        .chain(fixtures::http_events(1000, now - 60_000_000_000, 2))
    {
        store.append("http_events", b).unwrap();
    }
    let e = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let count = |start: &str, end: &str| {
        let src = format!(
            r#"let df = px::DataFrame("http_events", "{start}", "{end}");
               px::display(df.agg(#{{ n: ["latency", "count"] }}), "t");"#
        );
        let e = &e;
        async move { ints(&one(&run(e, &src).await[0]), "n")[0] }
    };
    assert_eq!(count("-5m", "").await, 1000);
    assert_eq!(count("-3h", "").await, 2000);
    assert_eq!(count("-3h", "-1h").await, 1000);
    let abs = (now - 60_000_000_000 + 500_000_000).to_string();
    assert_eq!(count(&abs, "").await, 500);
}

#[tokio::test]
async fn output_is_capped_and_marked_truncated() {
    let f = fixture_with(EngineConfig {
        max_output_rows: 100,
        ..EngineConfig::default()
    });
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events");
           px::display(df, "all");
           px::display(df.head(100), "exact");"#,
    )
    .await;
    assert!(out[0].truncated);
    assert_eq!(one(&out[0]).num_rows(), 100);
    assert!(!out[1].truncated);
    assert_eq!(one(&out[1]).num_rows(), 100);
}

#[tokio::test]
async fn engine_and_its_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
    send_sync::<crate::Compiled>();
    let f = fixture();
    let c = f
        .engine
        .compile(f.engine.script_source("px/http_data").unwrap(), &args(&[]))
        .unwrap();
    let fut = f.engine.execute(c);
    send(&fut);
    assert_eq!(fut.await.unwrap().len(), 1);
}

// ---- bundled scripts ----

#[tokio::test]
async fn bundled_scripts_are_listed_with_descriptions_and_params() {
    let f = fixture();
    let s = f.engine.scripts();
    let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for want in [
        "px/conn_stats",
        "px/http_data",
        "px/probe_status",
        "px/services",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(s.iter().all(|s| !s.description.is_empty()));
    let by_name = |n: &str| s.iter().find(|s| s.name == n).unwrap();
    let params: Vec<(&str, &str)> = by_name("px/http_data")
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.default.as_str()))
        .collect();
    assert_eq!(
        params,
        [("start_time", "-5m"), ("service", ""), ("max_rows", "1000")]
    );
    assert!(
        s.iter()
            .all(|s| s.params.iter().all(|p| !p.help.is_empty()))
    );
    assert_eq!(by_name("px/cql_data").params[0].name, "start_time");
    // A script over a table without a data source yet still lists its parameters.
    assert_eq!(by_name("px/process_stats").params[0].name, "start_time");
    assert_eq!(
        f.engine.script_source("http_data").unwrap(),
        f.engine.script_source("px/http_data").unwrap()
    );
}

#[tokio::test]
async fn http_data_shows_newest_requests_first() {
    let f = fixture();
    let src = f.engine.script_source("px/http_data").unwrap();
    let out = run(&f.engine, src).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "http_data");
    assert!(!out[0].truncated);
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 1000);
    assert_eq!(
        names(&b)[..6],
        [
            "time_",
            "service",
            "req_method",
            "req_path",
            "resp_status",
            "latency"
        ]
    );
    let t = ints(&b, "time_");
    assert!(t.windows(2).all(|w| w[0] > w[1]));
    let newest = f
        .batches
        .iter()
        .flat_map(|b| ints(b, "time_"))
        .max()
        .unwrap();
    assert_eq!(t[0], newest);
    assert!(
        strs(&b, "service")
            .iter()
            .all(|s| SERVICES.contains(&s.as_str()))
    );

    let out = run_args(&f.engine, src, &[("service", "cart"), ("max_rows", "10")])
        .await
        .unwrap();
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 10);
    assert!(strs(&b, "service").iter().all(|s| s == "cart"));
}

#[tokio::test]
async fn http_request_stats_match_a_hand_count() {
    let f = fixture();
    let rows = fixture_rows(&f.batches);
    let src = f.engine.script_source("px/http_request_stats").unwrap();
    let out = run(&f.engine, src).await;
    let b = one(&out[0]);
    assert_eq!(
        names(&b),
        [
            "service",
            "req_path",
            "requests",
            "errors",
            "error_rate",
            "latency_p50",
            "latency_p90",
            "latency_p99"
        ]
    );
    let groups: std::collections::BTreeSet<_> = rows.iter().map(|r| (&r.0, &r.1)).collect();
    assert_eq!(b.num_rows(), groups.len());
    assert_eq!(groups.len(), 4 * 9, "4 services x 9 distinct paths");
    let (svc, path) = (strs(&b, "service"), strs(&b, "req_path"));
    let (req, errs, rate) = (
        ints(&b, "requests"),
        ints(&b, "errors"),
        floats(&b, "error_rate"),
    );
    let (p50, p99) = (ints(&b, "latency_p50"), ints(&b, "latency_p99"));
    for i in 0..b.num_rows() {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.0 == svc[i] && r.1 == path[i])
            .collect();
        assert_eq!(req[i], mine.len() as i64, "{} {}", svc[i], path[i]);
        assert_eq!(errs[i], mine.iter().filter(|r| r.2 >= 400).count() as i64);
        assert!((rate[i] - errs[i] as f64 / req[i] as f64).abs() < 1e-9);
        let lo = mine.iter().map(|r| r.3).min().unwrap();
        let hi = mine.iter().map(|r| r.3).max().unwrap();
        assert!(lo <= p50[i] && p50[i] <= p99[i] && p99[i] <= hi);
    }
    assert_eq!(req.iter().sum::<i64>(), ROWS as i64);
    // Sorted by service, then path.
    let keys: Vec<_> = svc.iter().zip(&path).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn probe_status_compiles_and_runs_on_an_empty_table() {
    let f = fixture();
    let src = f.engine.script_source("px/probe_status").unwrap();
    let out = run(&f.engine, src).await;
    assert_eq!(out[0].name, "probe_status");
    assert_eq!(out[0].schema.field(0).name(), "time_");
    assert_eq!(
        out[0]
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        0
    );
}

#[tokio::test]
async fn protocol_data_scripts_compile_and_run_on_empty_tables() {
    let f = fixture();
    for (script, table, col) in [
        ("px/conn_stats", "conn_stats", ""),
        ("px/redis_data", "redis_data", "req_args"),
        ("px/pgsql_data", "pgsql_data", "req"),
        ("px/mysql_data", "mysql_data", "req_body"),
    ] {
        let src = f.engine.script_source(script).unwrap();
        let out = run(&f.engine, src).await;
        assert_eq!(out[0].name, table);
        if script == "px/conn_stats" {
            continue;
        }
        let names: Vec<&str> = out[0]
            .schema
            .fields()
            .iter()
            .map(|c| c.name().as_str())
            .collect();
        assert_eq!(
            &names[..4],
            ["time_", "service", "req_cmd", col],
            "{script}"
        );
        let rows: usize = out[0].batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 0, "{script}");
    }
}

// ---- SQL normalization ----

const PGSQL_ROWS: usize = 3_000;

/// A `pgsql_events` fixture row as the stats should see it: (service, normalized statement,
/// failed, latency).
type PgsqlRow = (String, String, bool, i64);

/// `PGSQL_ROWS` `pgsql_events` rows, one per millisecond ending a minute ago: five statement
/// shapes with varying literals (simple queries and prepared executions of the same statement,
/// a batch insert that sometimes fails, an IN list, a statement that does not parse) over the
/// four fixture services. Returns the store and (service, normalized statement, failed,
/// latency) per row, worked out by hand.
fn pgsql_fixture() -> (Arc<Store>, Vec<PgsqlRow>) {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let start = now_ns() - 80_000_000_000;
    let mut b = CmdEventsBuilder::with_capacity(schema::pgsql_events(), PGSQL_ROWS);
    let mut expect = Vec::new();
    for i in 0..PGSQL_ROWS {
        let svc = i % 4;
        let (cmd, req, resp, key) = match i % 5 {
            0 => (
                "QUERY",
                format!("SELECT * FROM users WHERE id = {i}"),
                "SELECT 1".to_string(),
                "SELECT * FROM users WHERE id = ?",
            ),
            1 => (
                "EXECUTE",
                format!("query=[SELECT * FROM users WHERE id = $1] params=[{i}]"),
                "SELECT 1".to_string(),
                "SELECT * FROM users WHERE id = ?",
            ),
            2 => (
                "QUERY",
                format!(
                    "INSERT INTO orders (user_id, total)\n  VALUES ({i}, {i}.5), (-{i}, 'it''s')"
                ),
                if i % 7 == 0 {
                    "ERROR 23505: duplicate key value violates unique constraint".to_string()
                } else {
                    "INSERT 0 2".to_string()
                },
                "INSERT INTO orders (user_id, total) VALUES (?, ?)",
            ),
            3 => (
                "QUERY",
                format!("SELECT name FROM items WHERE id IN (1, 2, {i}) -- cart\n"),
                format!("SELECT {}", i % 3),
                "SELECT name FROM items WHERE id IN (?)",
            ),
            _ => (
                "PARSE",
                format!("SELEC {i}"),
                "ERROR 42601: syntax error at or near \"SELEC\"".to_string(),
                "SELEC ?",
            ),
        };
        let latency = 100_000 + ((i * 7919) % 5_000) as i64 * 1_000;
        b.append(&CmdEvent {
            time_ns: start + i as i64 * 1_000_000,
            upid: fixtures::upid(svc as u32).into(),
            remote_addr: "10.0.0.9".into(),
            remote_port: 40_000,
            local_addr: "10.0.1.2".into(),
            local_port: 5432,
            trace_role: schema::trace_role::SERVER,
            encrypted: false,
            proto: &[cmd.into(), req.as_str().into(), resp.as_str().into()],
            latency,
            px_info: "".into(),
        });
        expect.push((
            SERVICES[svc].to_string(),
            key.to_string(),
            resp.starts_with("ERROR "),
            latency,
        ));
    }
    store.append("pgsql_events", b.finish()).unwrap();
    (store, expect)
}

#[tokio::test]
async fn normalize_functions_on_fixture_rows() {
    let (store, expect) = pgsql_fixture();
    let e = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let src = r#"
        let df = px::DataFrame("pgsql_events");
        df.pg = df.req.normalize_pgsql();
        df.my = px::normalize_mysql(df.req);
        df.cut = df.req.normalize_pgsql().starts_with("SELECT");
        px::display(df.select(["time_", "req", "pg", "my", "cut"]).sort("time_"));
    "#;
    let out = run(&e, src).await;
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), PGSQL_ROWS);
    let (req, pg, my) = (strs(&b, "req"), strs(&b, "pg"), strs(&b, "my"));
    for i in 0..b.num_rows() {
        assert_eq!(pg[i], expect[i].1, "{}", req[i]);
        assert_eq!(pg[i], normalize_sql(&req[i], SqlDialect::Postgres));
        assert_eq!(my[i], normalize_sql(&req[i], SqlDialect::MySql));
    }
    // The dialects differ where they should: `$1` is a placeholder in PostgreSQL, a name in
    // MySQL; the rest (`'it''s'`, `-- cart`) reads the same in both.
    let differ: Vec<usize> = (0..pg.len()).filter(|&i| pg[i] != my[i]).collect();
    assert_eq!(differ.len(), PGSQL_ROWS / 5);
    assert!(differ.iter().all(|&i| req[i].starts_with("query=[")));
    assert_eq!(my[1], "SELECT * FROM users WHERE id = $1");
    let cut = b.column_by_name("cut").unwrap().as_boolean();
    assert_eq!(
        cut.true_count(),
        expect.iter().filter(|r| r.1.starts_with("SELECT")).count()
    );
    // A filter on the normalized text plans and runs like any other expression.
    let src = r#"
        let df = px::DataFrame("pgsql_events");
        df = df.filter(df.req.normalize_pgsql() == "SELEC ?");
        px::display(df.agg(#{ n: ["latency", "count"] }));
    "#;
    let out = run(&e, src).await;
    assert_eq!(ints(&one(&out[0]), "n"), [(PGSQL_ROWS / 5) as i64]);
}

#[tokio::test]
async fn normalize_needs_a_text_column() {
    let (store, _) = pgsql_fixture();
    let e = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let src = "let df = px::DataFrame(\"pgsql_events\");\ndf.q = df.latency.normalize_pgsql();\npx::display(df);";
    let err = run_args(&e, src, &[]).await.unwrap_err();
    assert_eq!(err.position(), Some((2, 3)), "{err}");
    assert!(err.to_string().contains("normalize_pgsql"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // Other string types are fine: `lower` may answer in Utf8View.
    let src = "let df = px::DataFrame(\"pgsql_events\");\ndf.q = df.req.lower().normalize_mysql();\npx::display(df.select([\"q\"]).head(1));";
    let out = run_args(&e, src, &[]).await.unwrap();
    assert_eq!(
        strs(&one(&out[0]), "q"),
        ["select * from users where id = ?"]
    );
}

#[tokio::test]
async fn pgsql_stats_match_a_hand_count() {
    let (store, expect) = pgsql_fixture();
    let e = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let src = e.script_source("px/pgsql_stats").unwrap();
    let out = run(&e, src).await;
    assert_eq!(out[0].name, "pgsql_stats");
    let b = one(&out[0]);
    assert_eq!(
        names(&b),
        [
            "service",
            "query",
            "requests",
            "errors",
            "error_rate",
            "latency_p50",
            "latency_p99",
            "total_latency"
        ]
    );
    let mut groups: BTreeMap<(String, String), Vec<(bool, i64)>> = BTreeMap::new();
    for (svc, key, failed, latency) in &expect {
        groups
            .entry((svc.clone(), key.clone()))
            .or_default()
            .push((*failed, *latency));
    }
    assert_eq!(groups.len(), 4 * 4, "4 services x 4 statements");
    assert_eq!(b.num_rows(), groups.len());
    let (svc, query) = (strs(&b, "service"), strs(&b, "query"));
    let (req, errs, rate) = (
        ints(&b, "requests"),
        ints(&b, "errors"),
        floats(&b, "error_rate"),
    );
    let (p50, p99, total) = (
        ints(&b, "latency_p50"),
        ints(&b, "latency_p99"),
        ints(&b, "total_latency"),
    );
    for i in 0..b.num_rows() {
        let mine = &groups[&(svc[i].clone(), query[i].clone())];
        assert_eq!(req[i], mine.len() as i64, "{} {}", svc[i], query[i]);
        assert_eq!(errs[i], mine.iter().filter(|r| r.0).count() as i64);
        assert!((rate[i] - errs[i] as f64 / req[i] as f64).abs() < 1e-9);
        assert_eq!(total[i], mine.iter().map(|r| r.1).sum::<i64>());
        let lo = mine.iter().map(|r| r.1).min().unwrap();
        let hi = mine.iter().map(|r| r.1).max().unwrap();
        assert!(lo <= p50[i] && p50[i] <= p99[i] && p99[i] <= hi);
    }
    // Simple queries and prepared executions of one statement are one row.
    let users = (0..b.num_rows())
        .find(|&i| query[i] == "SELECT * FROM users WHERE id = ?")
        .unwrap();
    assert!(req[users] > (PGSQL_ROWS / 4 / 5) as i64 + 10);
    // Batch inserts fail now and then; a statement that does not parse always does.
    assert!(
        (0..b.num_rows())
            .any(|i| query[i].starts_with("INSERT") && errs[i] > 0 && errs[i] < req[i])
    );
    assert!((0..b.num_rows()).all(|i| (query[i] == "SELEC ?") == (rate[i] == 1.0)));
    // Sorted by total latency, descending.
    assert!(total.windows(2).all(|w| w[0] >= w[1]));

    // By request count, one service, two rows.
    let out = run_args(
        &e,
        src,
        &[
            ("sort_by", "-requests"),
            ("service", "cart"),
            ("max_rows", "2"),
        ],
    )
    .await
    .unwrap();
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 2);
    assert!(strs(&b, "service").iter().all(|s| s == "cart"));
    assert_eq!(strs(&b, "query")[0], "SELECT * FROM users WHERE id = ?");
    let req = ints(&b, "requests");
    assert!(req[0] >= req[1]);
}

#[tokio::test]
async fn mysql_stats_runs_once_mysql_events_exists() {
    let f = fixture();
    let src = f.engine.script_source("px/mysql_stats").unwrap();
    if !f
        .engine
        .store
        .table_names()
        .iter()
        .any(|t| t == "mysql_events")
    {
        // NB: the table comes with the MySQL parser; until then the script says so where it
        // reads it. When this branch stops running, the other one tests the script.
        let e = run_args(&f.engine, src, &[]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("\"mysql_events\""), "{e}");
        // The rest of the script over a stand-in with mysql_events' column names and types:
        // http_events has `req_body` (text), `resp_status` (int) and `latency`.
        let scan = "px::DataFrame(\"mysql_events\", start_time);";
        assert!(src.contains(scan));
        let stand_in = src.replace(
            scan,
            "px::DataFrame(\"http_events\", start_time);\ndf.req_cmd = df.resp_status % 2 + 3;",
        );
        let out = run_args(&f.engine, &stand_in, &[("max_rows", "1000")])
            .await
            .unwrap();
        let b = one(&out[0]);
        assert_eq!(names(&b)[..4], ["service", "req_cmd", "query", "requests"]);
        assert_eq!(ints(&b, "requests").iter().sum::<i64>(), ROWS as i64);
        assert!(
            strs(&b, "query")
                .iter()
                .all(|q| q.is_empty() || q == "{?:?}")
        );
        let total = ints(&b, "total_latency");
        assert!(total.windows(2).all(|w| w[0] >= w[1]));
        return;
    }
    let out = run(&f.engine, src).await;
    assert_eq!(out[0].name, "mysql_stats");
    let b = one(&out[0]);
    assert_eq!(
        names(&b),
        [
            "service",
            "req_cmd",
            "query",
            "requests",
            "errors",
            "error_rate",
            "latency_p50",
            "latency_p99",
            "total_latency"
        ]
    );
    assert_eq!(b.num_rows(), 0);
}

// ---- errors ----

#[tokio::test]
async fn syntax_errors_name_line_and_column() {
    let f = fixture();
    let e = f
        .engine
        .compile(
            "let df = px::DataFrame(\"http_events\");\nlet x = (1 + ;\n",
            &args(&[]),
        )
        .unwrap_err();
    assert_eq!(e.position().map(|p| p.0), Some(2));
    assert!(e.to_string().starts_with("line 2, column "), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn unknown_table_lists_tables_at_the_call() {
    let f = fixture();
    let e = f
        .engine
        .compile(
            "let a = 1;\nlet df = px::DataFrame(\"http_event\");\n",
            &args(&[]),
        )
        .unwrap_err();
    let m = e.to_string();
    assert_eq!(e.position(), Some((2, 14)), "{m}");
    assert!(
        m.contains("\"http_event\"")
            && m.contains(
                "http_events, conn_stats, pgsql_events, mysql_events, redis_events, cql_events, \
                 dns_events, probe_status"
            ),
        "{m}"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn unknown_columns_list_the_columns_at_the_use() {
    let f = fixture();
    for (src, pos) in [
        (
            "let df = px::DataFrame(\"http_events\");\ndf = df.filter(df.latncy > 5);",
            (2, 18),
        ),
        (
            "let df = px::DataFrame(\"probe_status\");\nlet x = df[\"nope\"];",
            (2, 11),
        ),
        (
            "let df = px::DataFrame(\"probe_status\");\ndf = df.select([\"probe\", \"nope\"]);",
            (2, 9),
        ),
        (
            "let df = px::DataFrame(\"probe_status\");\ndf = df.sort(\"-nope\");",
            (2, 9),
        ),
        (
            "let df = px::DataFrame(\"probe_status\");\ndf = df.groupby(\"nope\");",
            (2, 9),
        ),
    ] {
        let e = f.engine.compile(src, &args(&[])).unwrap_err();
        let m = e.to_string();
        assert_eq!(e.position(), Some(pos), "{src}: {m}");
        assert!(m.contains("unknown column"), "{m}");
        assert!(m.contains("time_, upid, "), "{m}");
    }
    // A column used with a DataFrame that no longer has it.
    let e = f
        .engine
        .compile(
            "let df = px::DataFrame(\"http_events\");\nlet s = df.select([\"upid\"]);\n\
             let t = s.filter(df.latency > 1);",
            &args(&[]),
        )
        .unwrap_err();
    assert_eq!(e.position().map(|p| p.0), Some(3), "{e}");
    assert!(e.to_string().contains("\"latency\""), "{e}");
}

#[tokio::test]
async fn bad_and_unknown_arguments() {
    let f = fixture();
    let src = f.engine.script_source("px/http_data").unwrap();
    let e = f
        .engine
        .compile(src, &args(&[("max_rows", "lots")]))
        .unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with("line 4, column"), "{m}");
    assert!(
        m.contains("max_rows=\"lots\"") && m.contains("max_rows=1000"),
        "{m}"
    );

    let e = f
        .engine
        .compile(src, &args(&[("start_time", "yesterday")]))
        .unwrap_err();
    assert!(e.to_string().contains("\"yesterday\""), "{e}");
    assert_eq!(e.position().map(|p| p.0), Some(6), "{e}");

    let e = f
        .engine
        .compile(src, &args(&[("strat_time", "-1m"), ("max_rows", "5")]))
        .unwrap_err();
    assert!(matches!(e, EngineError::UnknownArgs { .. }));
    assert_eq!(
        e.to_string(),
        "unknown argument \"strat_time\"; this script takes: start_time, service, max_rows"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn other_script_mistakes_explain_themselves() {
    let f = fixture();
    let cases: &[(&str, &str)] = &[
        (
            "let df = px::DataFrame(\"http_events\");",
            "displays nothing",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\npx::display(df, \"a\");\npx::display(df, \"a\");",
            "displayed twice",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\npx::display(df.agg(#{ x: [\"latency\", \"p100\"] }));",
            "unknown function \"p100\"",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\npx::display(df.agg(#{ x: \"latency\" }));",
            "[column, function]",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf = df.filter(df.latency > 1 && df.latency < 5);",
            "& and |",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.s = df.ctx(\"flavour\");",
            "unknown ctx key \"flavour\"",
        ),
        (
            "let df = px::DataFrame(\"http_events\").select([\"latency\"]);\ndf.s = df.ctx(\"service\");",
            "needs the upid column",
        ),
        (
            "let df = px::DataFrame(\"http_events\").head(-1);",
            "0 or more",
        ),
        (
            "let df = px::DataFrame(\"http_events\", \"-1m\", \"-2m\");",
            "not before",
        ),
        (
            "px::param(\"a\", 1);\npx::param(\"a\", 2);",
            "declared twice",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf = df.filter(df.req_path);",
            "cannot plan",
        ),
        ("loop { }", "not loop over data"),
    ];
    for (src, want) in cases {
        let e = f.engine.compile(src, &args(&[])).unwrap_err();
        assert!(e.to_string().contains(want), "{src}: {e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{src}: {e}");
    }
}

#[tokio::test]
async fn unknown_script_lists_the_bundled_ones() {
    let f = fixture();
    let e = f.engine.script_source("px/http_dat").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "unknown script \"px/http_dat\"; scripts are: px/agent_status, px/cluster, \
             px/conn_stats, "
        ),
        "{msg}"
    );
    assert!(
        msg.contains(" px/http_data, px/http_data_filtered, "),
        "{msg}"
    );
}
