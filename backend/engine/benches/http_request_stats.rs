//! `px/http_request_stats` over 1,000,000 fixture rows: compile plus execute, end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    collections::BTreeMap,
    hint::black_box,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use criterion::{Criterion, criterion_group, criterion_main};
use pxtop_engine::{Engine, EngineConfig};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{Store, StoreConfig, fixtures};

const ROWS: usize = 1_000_000;

/// Names the four fixture services.
#[derive(Debug)]
struct Services;

impl Metadata for Services {
    fn ctx(&self, upid: &str, _key: CtxKey) -> Option<String> {
        (0..4)
            .find(|i| fixtures::upid(*i) == upid)
            .map(|i| ["frontend", "cart", "checkout", "users"][i as usize].to_string())
    }
}

#[expect(
    clippy::expect_used,
    reason = "benchmark setup: failing loudly is the point"
)]
fn bench(c: &mut Criterion) {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64;
    // One row per ms: 1,000 s of traffic ending about now.
    let start = now - ROWS as i64 * 1_000_000 - 1_000_000_000;
    for b in fixtures::http_events(ROWS, start, 7) {
        store.append("http_events", b).expect("append fixture rows");
    }
    let engine = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let source = engine
        .script_source("px/http_request_stats")
        .expect("bundled script")
        .to_string();
    let args = BTreeMap::from([("start_time".to_string(), "-1h".to_string())]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Sanity: every row is counted once.
    let out = rt
        .block_on(engine.execute(engine.compile(&source, &args).expect("compile")))
        .expect("execute");
    let counted: usize = out[0].batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(counted, 4 * 9, "4 services x 9 distinct paths");

    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.bench_function("px/http_request_stats 1M rows", |b| {
        b.iter(|| {
            let compiled = engine.compile(&source, &args).expect("compile");
            black_box(rt.block_on(engine.execute(compiled)).expect("execute"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
