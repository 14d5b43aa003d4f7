//! Store hot paths: appending agent-sized batches, and snapshotting for a query.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_store::{Store, StoreConfig, TimeRange, fixtures};

fn bench(c: &mut Criterion) {
    let batches = fixtures::http_events(100_000, 0, 1);
    // Agent flushes are small: re-slice into 256-row appends.
    let small: Vec<_> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .step_by(256)
                .map(|o| b.slice(o, 256.min(b.num_rows() - o)))
        })
        .collect();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("append_100k_rows_in_256_row_batches", |b| {
        b.iter(|| {
            let store = Store::new(StoreConfig::default());
            for batch in &small {
                store
                    .append("http_events", batch.clone())
                    .unwrap_or_default();
            }
            store
        })
    });
    let store = Store::new(StoreConfig::default());
    for batch in fixtures::http_events(1_000_000, 0, 1) {
        store.append("http_events", batch).unwrap_or_default();
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("scan_last_10_percent_of_1m_rows", |b| {
        b.iter(|| {
            store.scan(
                "http_events",
                TimeRange {
                    start_ns: Some(900_000 * 1_000_000),
                    end_ns: None,
                },
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
