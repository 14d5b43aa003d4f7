//! Split plans: three PEMs in this process, each holding a third of the rows, must give what
//! one node holding every row gives, for every bundled script and for plan shapes the scripts
//! don't cover (aggregations over aggregations, limits with and without sorts, union).

use std::{collections::BTreeMap, sync::Arc};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{Store, StoreConfig, fixtures};
use serde_json::Value;

use crate::{
    BUNDLED, Engine, EngineConfig, EngineError, InProcessFleet, OutputTable, PemAnswer, PemFleet,
    PemRequest,
};

const SERVICES: [&str; 4] = ["frontend", "cart", "checkout", "users"];
const NOW: i64 = 1_800_000_000_000_000_000;
const ROWS: usize = 30_000;

#[derive(Debug)]
struct Services;

impl Metadata for Services {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        let i = (0..4).find(|i| fixtures::upid(*i) == upid)?;
        match key {
            CtxKey::Service => Some(SERVICES[i as usize].to_string()),
            _ => None,
        }
    }
}

struct Cluster {
    /// Arrow IPC bytes of every row, as PEMs would ship them unaggregated.
    raw_bytes: usize,
    single: Engine,
    kelvin: Engine,
    fleet: InProcessFleet,
}

fn engine(store: Arc<Store>) -> Engine {
    Engine::new(store, Arc::new(Services), EngineConfig::default())
}

/// Every table's fixture (`fixtures::fill`) plus `ROWS` more HTTP rows over the 30 s before
/// `NOW`: all on one node, and dealt out in slices to three PEMs. Kelvin's own store is empty,
/// as in a cluster.
fn cluster() -> Cluster {
    let source = Store::new(StoreConfig::default());
    fixtures::fill(&source, NOW - 270_000_000_000).unwrap();
    for b in fixtures::http_events(ROWS, NOW - 31_000_000_000, 7) {
        source.append("http_events", b).unwrap();
    }
    let all = Arc::new(Store::new(StoreConfig::default()));
    let pems: Vec<Arc<Store>> = (0..3)
        .map(|_| Arc::new(Store::new(StoreConfig::default())))
        .collect();
    let mut raw = Vec::new();
    for table in source.table_names() {
        let snap = source.scan(&table, pxtop_store::TimeRange::ALL).unwrap();
        for (i, b) in snap.batches.iter().enumerate() {
            // NB: slices smaller than a batch, so every PEM holds every service and path.
            let len = b.num_rows() / 4;
            for j in 0..4 {
                let n = if j == 3 { b.num_rows() - 3 * len } else { len };
                let part = b.slice(j * len, n);
                all.append(&table, part.clone()).unwrap();
                pems[(i + j) % 3].append(&table, part).unwrap();
            }
            if table == "http_events" {
                raw.push(b.clone());
            }
        }
    }
    Cluster {
        raw_bytes: crate::ipc_encode(&raw).unwrap().len(),
        single: engine(all),
        kelvin: engine(Arc::new(Store::new(StoreConfig::default()))),
        fleet: InProcessFleet {
            pems: pems
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("pem-{i}"), Arc::new(engine(s))))
                .collect(),
        },
    }
}

fn rows(t: &OutputTable) -> Vec<serde_json::Map<String, Value>> {
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = t.batches.iter().collect();
    w.write_batches(&refs).unwrap();
    w.finish().unwrap();
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&bytes).unwrap()
}

/// Approximate quantile columns (t-digest states merged across PEMs).
fn approximate(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    c.contains("p50") || c.contains("p90") || c.contains("p99") || c.contains("quantile")
}

/// Rows keyed by their exact columns, so row order (ties in a sort) doesn't matter.
fn keyed(t: &OutputTable) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut v: Vec<_> = rows(t)
        .into_iter()
        .map(|r| {
            let key: Vec<String> = r
                .iter()
                .filter(|(k, v)| !approximate(k) && !v.is_f64())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (key.join(","), r)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Relative error of merged t-digest quantiles (float columns) allowed against one digest
/// over all rows.
const QUANTILE_TOLERANCE: f64 = 0.05;

fn assert_same(script: &str, single: &[OutputTable], split: &[OutputTable]) -> f64 {
    let mut worst = 0.0_f64;
    assert_eq!(single.len(), split.len(), "{script}: output count");
    for (a, b) in single.iter().zip(split) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.truncated, b.truncated, "{script}/{}: truncated", a.name);
        let (ra, rb) = (keyed(a), keyed(b));
        assert_eq!(ra.len(), rb.len(), "{script}/{}: row count", a.name);
        for ((ka, xa), (kb, xb)) in ra.iter().zip(&rb) {
            assert_eq!(ka, kb, "{script}/{}: exact columns", a.name);
            for (col, va) in xa {
                let vb = &xb[col];
                // Integer percentiles come from HDR histograms, which merge exactly.
                if va.is_i64() || vb.is_i64() {
                    assert_eq!(va, vb, "{script}/{}: {col}", a.name);
                    continue;
                }
                if let (Some(fa), Some(fb)) = (va.as_f64(), vb.as_f64()) {
                    let rel = (fa - fb).abs() / fa.abs().max(1e-12);
                    if approximate(col) {
                        worst = worst.max(rel);
                        assert!(
                            rel <= QUANTILE_TOLERANCE,
                            "{script}/{}: {col} single {fa} split {fb}",
                            a.name
                        );
                    } else {
                        assert!(
                            rel <= 1e-9 || (fa - fb).abs() < 1e-12,
                            "{script}/{}: {col} single {fa} split {fb}",
                            a.name
                        );
                    }
                }
            }
        }
    }
    worst
}

async fn both(c: &Cluster, script: &str, source: &str, args: &BTreeMap<String, String>) -> f64 {
    let single = c
        .single
        .execute(c.single.compile_at(source, args, NOW).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{script} single: {e}"));
    let compiled = c.kelvin.compile_at(source, args, NOW).unwrap();
    let split = c
        .kelvin
        .execute_split(compiled, &c.fleet)
        .await
        .unwrap_or_else(|e| panic!("{script} split: {e}"));
    assert!(split.warnings.is_empty(), "{:?}", split.warnings);
    assert_eq!(split.pems.len(), 3);
    assert_same(script, &single, &split.tables)
}

#[tokio::test]
async fn every_bundled_script_gives_the_single_node_result() {
    let c = cluster();
    let mut worst = 0.0_f64;
    let mut ran = 0;
    for (name, source) in BUNDLED {
        let compiled = c.kelvin.compile_at(source, &BTreeMap::new(), NOW);
        match compiled {
            Ok(_) => {}
            // Scripts over tables this build doesn't collect yet fail alike everywhere.
            Err(e) if e.to_string().contains("no data source") => continue,
            Err(e) => panic!("{name}: {e}"),
        }
        worst = worst.max(both(&c, name, source, &BTreeMap::new()).await);
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} scripts ran");
    eprintln!("worst relative quantile difference split vs single: {worst:.5}");
}

const SHAPES: &[(&str, &str)] = &[
    (
        "aggregate_of_aggregate",
        r#"let df = px::DataFrame("http_events", "-1m");
           df.service = df.ctx("service");
           let per = df.groupby(["service", "req_path"]).agg(#{ n: ["latency", "count"], slow: ["latency", "max"] });
           let top = per.groupby(["service"]).agg(#{ paths: ["req_path", "count"], n: ["n", "sum"], worst: ["slow", "max"] });
           px::display(top.filter(top.n > 10), "t");"#,
    ),
    (
        "global_aggregate",
        r#"let df = px::DataFrame("http_events", "-1m");
           df.err = df.resp_status >= 500;
           px::display(df.agg(#{ n: ["latency", "count"], e: ["err", "mean"], lo: ["latency", "min"], p99: ["latency", "p99"], med: ["latency", "median"] }), "t");"#,
    ),
    (
        "sorted_head",
        r#"let df = px::DataFrame("http_events", "-1m");
           px::display(df.sort("-latency").head(25)[["time_", "req_path", "latency"]], "t");"#,
    ),
    (
        "head_then_aggregate",
        r#"let df = px::DataFrame("http_events", "-1m").sort("time_").head(1000);
           px::display(df.groupby("req_method").agg(#{ n: ["latency", "count"] }), "t");"#,
    ),
    (
        "filtered_rows_sorted",
        r#"let df = px::DataFrame("http_events", "-1m");
           df = df.filter(df.resp_status >= 500 & df.req_path.contains("/api"));
           px::display(df.sort(["req_path", "-time_"])[["time_", "req_path", "resp_status"]], "t");"#,
    ),
];

#[tokio::test]
async fn plan_shapes_give_the_single_node_result() {
    let c = cluster();
    for (name, source) in SHAPES {
        both(&c, name, source, &BTreeMap::new()).await;
    }
}

#[tokio::test]
async fn pems_ship_partial_states_not_rows_for_aggregations() {
    let c = cluster();
    let source = crate::BUNDLED
        .iter()
        .find(|(n, _)| *n == "px/http_request_stats")
        .unwrap()
        .1;
    let compiled = c.kelvin.compile_at(source, &BTreeMap::new(), NOW).unwrap();
    let out = c.kelvin.execute_split(compiled, &c.fleet).await.unwrap();
    let raw = c.raw_bytes;
    assert_eq!(out.fragments, 1);
    // 4 services x 12 paths x 3 PEMs partial rows, each with a few t-digests.
    assert!(
        (out.pem_bytes as usize) * 10 < raw,
        "shipped {} of {raw} raw bytes",
        out.pem_bytes
    );
}

/// A fleet whose second PEM is down.
struct OneDown(InProcessFleet);

#[async_trait]
impl PemFleet for OneDown {
    async fn run(&self, request: &PemRequest) -> Vec<PemAnswer> {
        let mut answers = self.0.run(request).await;
        answers[1].result = Err("connection refused".into());
        answers
    }
}

#[tokio::test]
async fn a_pem_that_fails_is_named_and_the_others_still_answer() {
    let c = cluster();
    let src = r#"px::display(px::DataFrame("http_events", "-1m").agg(#{ n: ["latency", "count"] }), "t");"#;
    let fleet = OneDown(c.fleet);
    let compiled = c.kelvin.compile_at(src, &BTreeMap::new(), NOW).unwrap();
    let out = c.kelvin.execute_split(compiled, &fleet).await.unwrap();
    assert_eq!(out.pems, ["pem-0", "pem-2"]);
    assert_eq!(out.warnings.len(), 1);
    assert!(out.warnings[0].contains("pem-1") && out.warnings[0].contains("refused"));
    let n = rows(&out.tables[0])[0]["n"].as_i64().unwrap();
    assert!(n > 0 && (n as usize) < ROWS, "{n}");

    struct AllDown;
    #[async_trait]
    impl PemFleet for AllDown {
        async fn run(&self, _: &PemRequest) -> Vec<PemAnswer> {
            vec![PemAnswer {
                pem: "pem-0".into(),
                result: Err("timed out".into()),
                wire_bytes: 0,
            }]
        }
    }
    let compiled = c.kelvin.compile_at(src, &BTreeMap::new(), NOW).unwrap();
    let err = c
        .kelvin
        .execute_split(compiled, &AllDown)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NoPem { .. }), "{err}");
    assert!(err.to_string().contains("pem-0") && err.to_string().contains("timed out"));
}
