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

    fn addr(&self, addr: &str, key: CtxKey) -> Option<String> {
        match (addr, key) {
            ("10.0.0.9", CtxKey::Pod) => Some("shop/client-0".to_string()),
            ("10.0.0.9", CtxKey::Service) => Some("shop/client".to_string()),
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

// ---- the grown API: expressions, aggregates, merge/append, sql, limits ----

fn ordered_paths(b: &RecordBatch) -> Vec<String> {
    strs(b, "req_path")
}

#[tokio::test]
async fn string_functions_match_rust() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m").head(300);
           df.api = df.req_path.matches("^/api/v[0-9]");
           df.api2 = px::regex_match("cart", df.req_path);
           df.sub = df.req_path.substring(1, 3);
           df.sub2 = px::substring(df.req_path, 0, 100);
           df.len = df.req_path.length();
           df.len2 = px::length(df.req_path);
           df.rep = df.req_path.replace("/", "|");
           df.status_s = df.resp_status.cast("string");
           df.lat_f = df.latency.cast("float");
           df.path_is = df.req_path.cast("string") == df.req_path;
           px::display(df, "t");"#,
    )
    .await;
    let b = one(&out[0]);
    let paths = ordered_paths(&b);
    let re = regex::Regex::new("^/api/v[0-9]").unwrap();
    let bools = |n: &str| -> Vec<bool> {
        b.column_by_name(n)
            .unwrap()
            .as_boolean()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    };
    assert_eq!(
        bools("api"),
        paths.iter().map(|p| re.is_match(p)).collect::<Vec<_>>()
    );
    assert_eq!(
        bools("api2"),
        paths.iter().map(|p| p.contains("cart")).collect::<Vec<_>>()
    );
    assert_eq!(
        strs(&b, "sub"),
        paths
            .iter()
            .map(|p| p.chars().skip(1).take(3).collect::<String>())
            .collect::<Vec<_>>()
    );
    assert_eq!(strs(&b, "sub2"), paths);
    let lens: Vec<i64> = paths.iter().map(|p| p.chars().count() as i64).collect();
    let len_col = |n: &str| -> Vec<i64> {
        let c = b.column_by_name(n).unwrap();
        arrow::compute::cast(c, &arrow::datatypes::DataType::Int64)
            .unwrap()
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    };
    assert_eq!(len_col("len"), lens);
    assert_eq!(len_col("len2"), lens);
    assert_eq!(
        strs(&b, "rep"),
        paths
            .iter()
            .map(|p| p.replace('/', "|"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        strs(&b, "status_s"),
        ints(&b, "resp_status")
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        floats(&b, "lat_f"),
        ints(&b, "latency")
            .iter()
            .map(|v| *v as f64)
            .collect::<Vec<_>>()
    );
    assert!(bools("path_is").iter().all(|v| *v));
}

#[tokio::test]
async fn expression_mistakes_fail_at_the_call() {
    let f = fixture();
    let cases: &[(&str, &str)] = &[
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = df.req_path.matches(\"(unclosed\");",
            "invalid regular expression \"(unclosed\"",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = px::regex_match(\"[\", df.req_path);",
            "invalid regular expression",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = df.req_path.substring(-1, 2);",
            "0 or more",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = df.latency.cast(\"decimal\");",
            "use \"int\", \"float\", \"string\" or \"bool\"",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = px::bin(df.time_, \"10 parsecs\");",
            "duration \"10 parsecs\" is not understood",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = px::bin(df.time_, 0);",
            "must be positive",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.x = px::bin(df.time_, [1]);",
            "expected a window in ns or a duration",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf = df.head(\"x\");",
            "head takes a row count like head(10), got a string",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\ndf.h = df.latency.hdr_quantile(1.5);",
            "between 0 and 1",
        ),
        (
            "let df = px::DataFrame(\"http_events\");\npx::display(df.agg(#{ h: [\"req_path\", \"hdr\"] }));",
            "hdr_histogram needs an integer column",
        ),
    ];
    for (src, want) in cases {
        let e = f.engine.compile(src, &args(&[])).unwrap_err();
        assert!(e.to_string().contains(want), "{src}: {e}");
        assert_eq!(e.position().map(|p| p.0), Some(2), "{src}: {e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{src}: {e}");
    }
}

#[tokio::test]
async fn bin_durations_and_rate() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"if px::seconds(2) != 2000000000 || px::minutes(1) != 60000000000
              || px::milliseconds(3) != 3000000 || px::duration("10s") != 10000000000
              || px::seconds(0.5) != 500000000 || px::hours(1) != 3600000000000 {
               throw "duration helpers";
           }
           let df = px::DataFrame("http_events", "-5m");
           df.t = px::bin(df.time_, "5s");
           df.l = px::bin(df.latency, px::milliseconds(1));
           let s = df.groupby("t").agg(#{ n: ["latency", "count"] }).sort("t");
           s.rps = px::rate(s.n, "5s");
           px::display(s, "per_window");
           px::display(df.select(["latency", "l"]).head(50), "lat");"#,
    )
    .await;
    let b = one(&out[0]);
    assert!(
        matches!(
            b.schema().field_with_name("t").unwrap().data_type(),
            arrow::datatypes::DataType::Timestamp(..)
        ),
        "time stays a time"
    );
    let mut want: std::collections::BTreeMap<i64, i64> = Default::default();
    for batch in &f.batches {
        for t in ints(batch, "time_") {
            *want
                .entry(t.div_euclid(5_000_000_000) * 5_000_000_000)
                .or_default() += 1;
        }
    }
    assert_eq!(ints(&b, "t"), want.keys().copied().collect::<Vec<_>>());
    assert_eq!(ints(&b, "n"), want.values().copied().collect::<Vec<_>>());
    assert_eq!(
        floats(&b, "rps"),
        want.values().map(|n| *n as f64 / 5.0).collect::<Vec<_>>()
    );
    let l = one(&out[1]);
    for (lat, bin) in ints(&l, "latency").into_iter().zip(ints(&l, "l")) {
        assert_eq!(bin, lat - lat % 1_000_000);
    }
}

#[tokio::test]
async fn format_functions_on_columns() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m").head(100);
           df.d = px::format_duration(df.latency);
           df.d2 = df.latency.format_duration();
           df.s = px::format_bytes(df.resp_body_size);
           px::display(df, "t");"#,
    )
    .await;
    let b = one(&out[0]);
    let want: Vec<String> = ints(&b, "latency")
        .iter()
        .map(|v| crate::udf::format_duration(*v as f64))
        .collect();
    assert_eq!(strs(&b, "d"), want);
    assert_eq!(strs(&b, "d2"), want);
    assert!(
        strs(&b, "d")
            .iter()
            .all(|s| s.ends_with(" ms") || s.ends_with(" µs"))
    );
    let sizes: Vec<String> = ints(&b, "resp_body_size")
        .iter()
        .map(|v| crate::udf::format_bytes(*v as f64))
        .collect();
    assert_eq!(strs(&b, "s"), sizes);
}

#[tokio::test]
async fn any_count_distinct_quantiles_and_hdr_match_a_hand_count() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           let s = df.groupby("req_method").agg(#{
               n: ["latency", "count"],
               paths: ["req_path", "count_distinct"],
               paths2: ["req_path", "nunique"],
               some_path: ["req_path", "any"],
               q: ["latency", "quantiles"],
               h: ["latency", "hdr_histogram"],
           }).sort("req_method");
           s.p50 = s.h.hdr_quantile(0.5);
           s.p99 = px::hdr_quantile(s.h, 0.99);
           s.hn = s.h.hdr_count();
           s.buckets = px::hdr_buckets(s.h);
           px::display(s, "t");"#,
    )
    .await;
    let b = one(&out[0]);
    let rows = fixture_rows(&f.batches);
    let methods = strs(&b, "req_method");
    let q = b.column_by_name("q").unwrap().as_struct();
    let q_names: Vec<String> = q.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(q_names, ["p01", "p10", "p50", "p90", "p99"]);
    let q50 = q.column_by_name("p50").unwrap().as_primitive::<Int64Type>();
    let q01 = q.column_by_name("p01").unwrap().as_primitive::<Int64Type>();
    let q99 = q.column_by_name("p99").unwrap().as_primitive::<Int64Type>();
    for (i, m) in methods.iter().enumerate() {
        let mine: Vec<_> = rows.iter().filter(|r| &r.4 == m).collect();
        let paths: std::collections::BTreeSet<&String> = mine.iter().map(|r| &r.1).collect();
        assert_eq!(ints(&b, "n")[i], mine.len() as i64);
        assert_eq!(ints(&b, "paths")[i], paths.len() as i64);
        assert_eq!(ints(&b, "paths2")[i], paths.len() as i64);
        assert!(paths.contains(&strs(&b, "some_path")[i]));
        let mut lat: Vec<i64> = mine.iter().map(|r| r.3).collect();
        lat.sort_unstable();
        let exact = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).max(1) - 1] as f64;
        // hdr: within 0.1% of the exact nearest-rank value.
        for (col, p) in [("p50", 0.5), ("p99", 0.99)] {
            let got = ints(&b, col)[i] as f64;
            assert!(
                (got - exact(p)).abs() / exact(p) <= 0.001,
                "{m} {col}: {got} vs {}",
                exact(p)
            );
        }
        // t-digest: within 5%.
        assert!((q50.value(i) as f64 - exact(0.5)).abs() / exact(0.5) < 0.05);
        assert!(q01.value(i) <= q50.value(i) && q50.value(i) <= q99.value(i));
        // NB: with 2+ partitions the hdr aggregate ran as partial + final, so this count is
        // the merge of partial states.
        assert_eq!(ints(&b, "hn")[i], mine.len() as i64);
        let buckets: serde_json::Value = serde_json::from_str(&strs(&b, "buckets")[i]).unwrap();
        let total: u64 = buckets
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, mine.len() as u64);
    }
}

#[tokio::test]
async fn aggregates_over_an_empty_frame() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           df = df.filter(df.latency < 0);
           let s = df.agg(#{
               n: ["latency", "count"],
               d: ["req_path", "count_distinct"],
               a: ["req_path", "any"],
               h: ["latency", "hdr"],
           });
           s.hn = s.h.hdr_count();
           s.p = s.h.hdr_quantile(0.5);
           px::display(s, "t");
           px::display(df.groupby("req_path").agg(#{ q: ["latency", "quantiles"] }), "g");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 1);
    assert_eq!(ints(&b, "n"), [0]);
    assert_eq!(ints(&b, "d"), [0]);
    assert!(b.column_by_name("a").unwrap().is_null(0));
    assert_eq!(ints(&b, "hn"), [0]);
    assert!(b.column_by_name("p").unwrap().is_null(0));
    assert_eq!(one(&out[1]).num_rows(), 0);
}

#[tokio::test]
async fn merge_joins_with_suffixes_and_nulls() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           let n = df.groupby("req_path").agg(#{ n: ["latency", "count"] });
           let errs = df.filter(df.resp_status >= 500).groupby("req_path")
               .agg(#{ n: ["latency", "count"] });
           let get = df.filter(df.req_method == "GET").groupby(["req_path"])
               .agg(#{ gets: ["latency", "count"] });
           px::display(n.merge(errs, "inner", "req_path", "req_path").sort("req_path_x"), "inner");
           let l = n.merge(get, "left", ["req_path"], ["req_path"], ["", "_get"]).sort("req_path");
           l.gets_s = px::format_duration(l.gets);
           px::display(l, "left");
           px::display(get.merge(n, "outer", "req_path", "req_path"), "outer");
           px::display(get.merge(n, "right", "req_path", "req_path"), "right");"#,
    )
    .await;
    let rows = fixture_rows(&f.batches);
    type Row = (String, String, i64, i64, String);
    let count = |pred: &dyn Fn(&Row) -> bool| {
        let mut m: std::collections::BTreeMap<String, i64> = Default::default();
        for r in rows.iter().filter(|r| pred(r)) {
            *m.entry(r.1.clone()).or_default() += 1;
        }
        m
    };
    let all = count(&|_| true);
    let errs = count(&|r| r.2 >= 500);
    let gets = count(&|r| r.4 == "GET");

    let b = one(&out[0]);
    assert_eq!(names(&b), ["req_path_x", "n_x", "req_path_y", "n_y"]);
    assert_eq!(
        strs(&b, "req_path_x"),
        errs.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!(strs(&b, "req_path_y"), strs(&b, "req_path_x"));
    assert_eq!(
        ints(&b, "n_x"),
        errs.keys().map(|k| all[k]).collect::<Vec<_>>()
    );
    assert_eq!(ints(&b, "n_y"), errs.values().copied().collect::<Vec<_>>());

    let b = one(&out[1]);
    assert_eq!(
        names(&b),
        ["req_path", "n", "req_path_get", "gets", "gets_s"]
    );
    assert_eq!(
        strs(&b, "req_path"),
        all.keys().cloned().collect::<Vec<_>>()
    );
    let g = b
        .column_by_name("gets")
        .unwrap()
        .as_primitive::<Int64Type>();
    let gs = b.column_by_name("gets_s").unwrap();
    for (i, p) in all.keys().enumerate() {
        assert_eq!(g.is_null(i), !gets.contains_key(p), "{p}");
        assert_eq!(gs.is_null(i), g.is_null(i), "format_duration keeps nulls");
        if let Some(n) = gets.get(p) {
            assert_eq!(g.value(i), *n);
        }
    }
    assert!(gets.len() < all.len(), "the fixture has non-GET-only paths");
    assert_eq!(one(&out[2]).num_rows(), all.len());
    assert_eq!(one(&out[3]).num_rows(), all.len());
}

#[tokio::test]
async fn merge_and_append_mistakes_explain_themselves() {
    let f = fixture();
    let pre = "let df = px::DataFrame(\"http_events\");\n";
    let cases: &[(&str, &str)] = &[
        (
            "df = df.merge(df, \"sideways\", \"upid\", \"upid\");",
            "use \"inner\", \"left\", \"right\" or \"outer\"",
        ),
        (
            "df = df.merge(df, \"inner\", \"nope\", \"upid\");",
            "unknown column \"nope\"",
        ),
        (
            "df = df.merge(df.select([\"upid\"]), \"inner\", \"upid\", \"latency\");",
            "its columns are: upid",
        ),
        (
            "df = df.merge(df, \"inner\", [\"upid\", \"req_path\"], \"upid\");",
            "as many columns each",
        ),
        (
            "df = df.merge(df, \"inner\", \"upid\", \"upid\", [\"_a\"]);",
            "two strings",
        ),
        (
            "df = df.select([\"upid\", \"latency\"]).append(df.select([\"upid\", \"req_path\"]));",
            "latency is missing from the appended frame; req_path is only in the appended frame",
        ),
        (
            "let o = df.select([\"upid\"]); o.latency = o.upid;\ndf = df.select([\"upid\", \"latency\"]).append(o);",
            "latency is Int64 here but Utf8 in the appended frame",
        ),
    ];
    for (src, want) in cases {
        let src = format!("{pre}{src}");
        let e = f.engine.compile(&src, &args(&[])).unwrap_err();
        assert!(e.to_string().contains(want), "{src}: {e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{src}: {e}");
    }
}

#[tokio::test]
async fn append_stacks_rows_and_reorders_columns() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"let df = px::DataFrame("http_events", "-5m");
           let a = df.select(["req_path", "latency"]).head(10);
           let b = df.filter(df.resp_status >= 500).select(["latency", "req_path"]).head(5);
           px::display(a.append(b), "t");"#,
    )
    .await;
    let b = one(&out[0]);
    assert_eq!(names(&b), ["req_path", "latency"]);
    assert_eq!(b.num_rows(), 15);
}

#[tokio::test]
async fn sql_plans_over_store_tables() {
    let f = fixture();
    let out = run(
        &f.engine,
        r#"px::display(px::sql(`SELECT req_method, count(*) AS n,
               format_duration(max(latency)) AS worst FROM http_events
               WHERE time_ > now() - interval '5 minutes'
               GROUP BY req_method ORDER BY req_method`), "sql");"#,
    )
    .await;
    let b = one(&out[0]);
    let rows = fixture_rows(&f.batches);
    let mut want: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for r in &rows {
        let e = want.entry(r.4.as_str()).or_default();
        e.0 += 1;
        e.1 = e.1.max(r.3);
    }
    assert_eq!(
        strs(&b, "req_method"),
        want.keys().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        ints(&b, "n"),
        want.values().map(|v| v.0).collect::<Vec<_>>()
    );
    assert_eq!(
        strs(&b, "worst"),
        want.values()
            .map(|v| crate::udf::format_duration(v.1 as f64))
            .collect::<Vec<_>>()
    );

    // The query arrives as an argument, unescaped, as `pxtop sql` sends it.
    let src = r#"px::display(px::sql(px::param("query", "", "SQL query")), "sql");"#;
    let out = run_args(
        &f.engine,
        src,
        &[(
            "query",
            "SELECT count(*) AS n FROM http_events WHERE req_path LIKE '%\"%'",
        )],
    )
    .await
    .unwrap();
    assert_eq!(ints(&one(&out[0]), "n"), [0]);

    for (q, want) in [
        ("SELEC 1", "px::sql: "),
        ("SELECT * FROM nope", "tables are: "),
        ("SELECT nope FROM http_events", "nope"),
        ("CREATE TABLE t (a INT)", "only queries"),
    ] {
        let e = f.engine.compile(src, &args(&[("query", q)])).unwrap_err();
        assert!(e.to_string().contains(want), "{q}: {e}");
        assert_eq!(e.position().map(|p| p.0), Some(1), "{q}: {e}");
    }
}

#[tokio::test]
async fn sandbox_limits_stop_runaway_scripts_and_name_the_flag() {
    let f = fixture_with(EngineConfig {
        max_operations: 20_000,
        max_call_depth: 8,
        ..EngineConfig::default()
    });
    let e = f.engine.compile("loop { }", &args(&[])).unwrap_err();
    assert!(
        e.to_string().contains("more than 20000 operations")
            && e.to_string().contains("--script-max-operations"),
        "{e}"
    );
    let e = f
        .engine
        .compile("fn f(x) { f(x + 1) }\nf(1);", &args(&[]))
        .unwrap_err();
    assert!(
        e.to_string().contains("deeper than 8")
            && e.to_string().contains("--script-max-call-depth"),
        "{e}"
    );
    let f = fixture_with(EngineConfig {
        script_timeout: std::time::Duration::from_millis(50),
        max_operations: 0,
        ..EngineConfig::default()
    });
    let e = f.engine.compile("loop { }", &args(&[])).unwrap_err();
    assert!(e.to_string().contains("--script-timeout"), "{e}");
}

#[tokio::test]
async fn params_carry_their_type() {
    let f = fixture();
    let c = f
        .engine
        .compile(
            r#"px::param("a", 1, "an int"); px::param("b", 0.5); px::param("c", true);
               px::param("d", "-5m", "a time");
               px::display(px::DataFrame("http_events").head(1));"#,
            &args(&[]),
        )
        .unwrap();
    let tys: Vec<(&str, &str, &str)> = c
        .params()
        .iter()
        .map(|p| (p.name.as_str(), p.ty.as_str(), p.default.as_str()))
        .collect();
    assert_eq!(
        tys,
        [
            ("a", "int", "1"),
            ("b", "float", "0.5"),
            ("c", "bool", "true"),
            ("d", "string", "-5m")
        ]
    );
}

#[tokio::test]
async fn describe_lists_params_without_needing_outputs() {
    let f = fixture();
    let info = f
        .engine
        .describe(
            "mine.rhai",
            "// Mine: a test script.\npx::param(\"limit\", 10, \"rows\");\npx::param(\"svc\", \"\");",
        )
        .unwrap();
    assert_eq!(info.description, "Mine: a test script.");
    let got: Vec<(&str, &str, &str, &str)> = info
        .params
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.ty.as_str(),
                p.default.as_str(),
                p.help.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("limit", "int", "10", "rows"), ("svc", "string", "", "")]
    );
    let e = f.engine.describe("x", "loop {").unwrap_err();
    assert!(e.to_string().contains("syntax error"), "{e}");
}

#[tokio::test]
async fn addr_ctx_names_remote_addresses() {
    let (store, _) = pgsql_fixture();
    let e = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let src = r#"
        let df = px::DataFrame("pgsql_events");
        df.peer = px::addr_ctx(df.remote_addr, "pod");
        df.peer_svc = px::addr_ctx(df.remote_addr, "service");
        df.none = px::addr_ctx(df.local_addr, "pod");
        df = df.groupby(["peer", "peer_svc", "none"]).agg(#{ n: ["latency", "count"] });
        px::display(df);
    "#;
    let out = run(&e, src).await;
    let b = one(&out[0]);
    assert_eq!(b.num_rows(), 1);
    assert_eq!(strs(&b, "peer"), ["shop/client-0"]);
    assert_eq!(strs(&b, "peer_svc"), ["shop/client"]);
    assert_eq!(strs(&b, "none"), [""]);
    let err = run_args(
        &e,
        r#"let df = px::DataFrame("pgsql_events"); df.x = px::addr_ctx(df.remote_addr, "svc");"#,
        &[],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("known keys"), "{err}");
}
