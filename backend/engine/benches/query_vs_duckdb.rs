//! `px/http_request_stats` over 10 M rows, three ways, in one run:
//! - pxtop on one node (the whole plan in one engine);
//! - pxtop split over three in-process PEMs and a Kelvin (bytes shipped PEM → Kelvin counted,
//!   against the rows' raw Arrow IPC bytes);
//! - DuckDB (Python `duckdb`, PyPI) running the same query over the same rows exported as an
//!   Arrow IPC file, with the upid → service mapping as a 4-row table joined in (pxtop's
//!   `ctx("service")`).
//!
//! `cargo bench -p pxtop-engine --bench query_vs_duckdb -- [--rows N] [--rounds R]
//! [--python PATH]`. The Python needs `duckdb` and `pyarrow`
//! (`python3 -m venv v && v/bin/pip install duckdb pyarrow`); without them the DuckDB rows are
//! skipped with a note. Medians of R rounds; DuckDB and pxtop both use every core.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: fails loudly, prints its figures"
)]

use std::{
    collections::BTreeMap,
    io::Write,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use pxtop_engine::{Engine, EngineConfig, InProcessFleet, ipc_encode};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{Store, StoreConfig, fixtures};

const SERVICES: [&str; 4] = ["frontend", "cart", "checkout", "users"];
const NOW: i64 = 1_800_000_000_000_000_000;

#[derive(Debug)]
struct Services;

impl Metadata for Services {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        let i = (0..4).find(|i| fixtures::upid(*i) == upid)?;
        (key == CtxKey::Service).then(|| SERVICES[i as usize].to_string())
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn big_store() -> Store {
    Store::new(StoreConfig {
        node_budget_bytes: 64 << 30,
        ..StoreConfig::default()
    })
}

fn main() {
    let rows: usize = arg("--rows", "10000000").parse().unwrap();
    let rounds: usize = arg("--rounds", "5").parse().unwrap();
    let python = arg("--python", "/var/tmp/pxtop-bench-venv/bin/python3");
    // One row per 10 µs ending before NOW, so "-1h" covers them all.
    let start = NOW - rows as i64 * 10_000 - 1_000_000_000;
    let batches = fixtures::http_events_every(rows, start, 10_000, 7);
    let all = Arc::new(big_store());
    let pems: Vec<Arc<Store>> = (0..3).map(|_| Arc::new(big_store())).collect();
    for (i, b) in batches.iter().enumerate() {
        all.append("http_events", b.clone()).unwrap();
        pems[i % 3].append("http_events", b.clone()).unwrap();
    }
    let engine = |s: Arc<Store>| Engine::new(s, Arc::new(Services), EngineConfig::default());
    let single = engine(all);
    let kelvin = engine(Arc::new(big_store()));
    let fleet = InProcessFleet {
        pems: pems
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("pem-{i}"), Arc::new(engine(s))))
            .collect(),
    };
    let source = single
        .script_source("px/http_request_stats")
        .unwrap()
        .to_string();
    let args = BTreeMap::from([("start_time".to_string(), "-1h".to_string())]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut t_single = Vec::new();
    let mut t_split = Vec::new();
    let mut t_compile = Vec::new();
    let mut shipped = 0;
    let mut groups = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let c = single.compile_at(&source, &args, NOW).unwrap();
        t_compile.push(t.elapsed());
        let out = rt.block_on(single.execute(c)).unwrap();
        t_single.push(t.elapsed());
        groups = out[0].batches.iter().map(|b| b.num_rows()).sum::<usize>();
        let t = Instant::now();
        let c = kelvin.compile_at(&source, &args, NOW).unwrap();
        let out = rt.block_on(kelvin.execute_split(c, &fleet)).unwrap();
        t_split.push(t.elapsed());
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        shipped = out.pem_bytes;
    }
    let raw = ipc_encode(&batches).unwrap();
    println!("rows: {rows}, groups: {groups}, rounds: {rounds}");
    println!(
        "script compile (rhai -> plan): median {:.3} ms",
        median(t_compile).as_secs_f64() * 1e3
    );
    let single_med = median(t_single);
    println!(
        "pxtop single node: median {:.1} ms",
        single_med.as_secs_f64() * 1e3
    );
    println!(
        "pxtop 3 PEMs + Kelvin (in process, IPC round trip): median {:.1} ms",
        median(t_split).as_secs_f64() * 1e3
    );
    println!(
        "shipped PEM -> Kelvin: {shipped} bytes for 3 PEMs; raw rows {} bytes ({:.0}x less)",
        raw.len(),
        raw.len() as f64 / shipped.max(1) as f64
    );

    // The same rows for DuckDB, as one Arrow IPC file (stream format).
    let dir = std::env::temp_dir().join("pxtop-bench-duckdb");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("http_events.arrows");
    std::fs::write(&data, &raw).unwrap();
    drop(raw);
    let script = dir.join("duckdb_query.py");
    std::fs::File::create(&script)
        .unwrap()
        .write_all(DUCKDB_SCRIPT.as_bytes())
        .unwrap();
    let upids: Vec<String> = (0..4).map(fixtures::upid).collect();
    let out = Command::new(&python)
        .arg(&script)
        .arg(&data)
        .arg(rounds.to_string())
        .args(&upids)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            print!("{text}");
            let ms: Option<f64> = text
                .lines()
                .find_map(|l| l.strip_prefix("duckdb median ms: "))
                .and_then(|v| v.trim().parse().ok());
            if let Some(ms) = ms {
                println!(
                    "pxtop single / duckdb (its faster way): {:.2}x",
                    single_med.as_secs_f64() * 1e3 / ms
                );
            }
        }
        Ok(o) => eprintln!(
            "duckdb skipped: {python} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("duckdb skipped: cannot run {python}: {e}"),
    }
    let _ = std::fs::remove_file(&data);
}

/// The same query in DuckDB: per service and path, requests, errors, error rate and latency
/// quantiles (DuckDB's `approx_quantile` is a t-digest, as pxtop's `pNN`).
const DUCKDB_SCRIPT: &str = r#"
import statistics, sys, time
import duckdb, pyarrow.ipc as ipc
path, rounds, upids = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
table = ipc.open_stream(path).read_all()
con = duckdb.connect()
con.register("http_events", table)
con.execute("CREATE TABLE services(upid VARCHAR, service VARCHAR)")
for u, s in zip(upids, ["frontend", "cart", "checkout", "users"]):
    con.execute("INSERT INTO services VALUES (?, ?)", [u, s])
q = """
SELECT s.service, e.req_path, count(e.latency) AS requests,
       sum(CAST(e.resp_status >= 400 AS BIGINT)) AS errors,
       avg(CAST(e.resp_status >= 400 AS BIGINT)) AS error_rate,
       CAST(approx_quantile(e.latency, 0.5) AS BIGINT) AS latency_p50,
       CAST(approx_quantile(e.latency, 0.9) AS BIGINT) AS latency_p90,
       CAST(approx_quantile(e.latency, 0.99) AS BIGINT) AS latency_p99
FROM http_events e LEFT JOIN services s ON e.upid = s.upid
GROUP BY s.service, e.req_path ORDER BY s.service, e.req_path
"""
def timed(sql):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    return rows, statistics.median(times) * 1e3
rows, arrow_ms = timed(q)
# DuckDB at its best: the rows copied into its own columnar table first.
con.execute("CREATE TABLE native AS SELECT * FROM http_events")
native_rows, native_ms = timed(q.replace("FROM http_events e", "FROM native e"))
assert len(native_rows) == len(rows)
print(f"duckdb over the Arrow table: median ms {arrow_ms:.1f}")
print(f"duckdb over its native table: median ms {native_ms:.1f}")
print(f"duckdb median ms: {min(arrow_ms, native_ms):.1f}")
threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
print(f"duckdb groups: {len(rows)}, threads: {threads}")
"#;
