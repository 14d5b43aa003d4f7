//! SQL normalization: `normalize_sql` per statement (a mix of real-looking statements, each
//! dialect), and `normalize_pgsql` as a column function over 100,000 `pgsql_events` rows
//! against the same script without it.
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

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxtop_engine::{Engine, EngineConfig, SqlDialect, normalize_sql};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{CmdEvent, CmdEventsBuilder, Store, StoreConfig, fixtures, schema};

const ROWS: usize = 100_000;

const STATEMENTS: &[&str] = &[
    "SELECT * FROM users WHERE id = 42",
    "SELECT id, name, email FROM users WHERE email = 'ada@example.com' AND active = true",
    "INSERT INTO orders (user_id, total, note) VALUES (7, 19.99, 'gift'), (8, 5.00, 'n/a')",
    "UPDATE accounts SET balance = balance - 100.50, updated_at = now() WHERE id = 7",
    "SELECT o.id, o.total FROM orders o JOIN users u ON u.id = o.user_id \
     WHERE u.id IN (1, 2, 3, 4, 5, 6, 7, 8) AND o.created_at > '2024-01-01' \
     ORDER BY o.created_at DESC LIMIT 50",
    "DELETE FROM sessions WHERE expires_at < 1700000000",
    "query=[SELECT * FROM items WHERE sku = $1 AND qty > $2] params=['A-1', 3]",
    "BEGIN",
    "SELECT count(*) FROM events -- dashboard\nWHERE kind = 'click' /* hot */ AND ts > 5",
    "INSERT INTO logs (msg) VALUES ('a message cut short by the capture lim",
];

#[derive(Debug)]
struct Services;

impl Metadata for Services {
    fn ctx(&self, _upid: &str, _key: CtxKey) -> Option<String> {
        None
    }
}

fn per_statement(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize_sql");
    g.throughput(Throughput::Elements(STATEMENTS.len() as u64));
    for (name, dialect) in [
        ("pgsql_10_statements", SqlDialect::Postgres),
        ("mysql_10_statements", SqlDialect::MySql),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for s in STATEMENTS {
                    black_box(normalize_sql(black_box(s), dialect));
                }
            });
        });
    }
    g.finish();
}

fn column(c: &mut Criterion) {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let start = now - 3_600_000_000_000;
    let mut b = CmdEventsBuilder::with_capacity(schema::pgsql_events(), 8192);
    for i in 0..ROWS {
        // Half simple queries with their own literals (no two alike), half executions of a
        // few prepared statements (the per-batch memo's good case).
        let req = if i % 2 == 0 {
            format!("SELECT * FROM users WHERE id = {i} AND name = 'user{i}'")
        } else {
            format!(
                "query=[SELECT * FROM items WHERE sku = $1 AND shard = {}] params=['{i}']",
                i % 8
            )
        };
        b.append(&CmdEvent {
            time_ns: start + i as i64 * 1_000_000,
            upid: fixtures::upid((i % 4) as u32).into(),
            proto: &["QUERY".into(), req.as_str().into(), "SELECT 1".into()],
            latency: 1_000_000,
            ..CmdEvent::default()
        });
        if b.len() == 8192 {
            store.append("pgsql_events", b.finish()).unwrap();
        }
    }
    store.append("pgsql_events", b.finish()).unwrap();
    let engine = Engine::new(store, Arc::new(Services), EngineConfig::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("normalize_pgsql_column");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    for (name, expr) in [
        ("baseline_no_normalize", "df.req_cmd"),
        ("normalize", "df.req.normalize_pgsql()"),
    ] {
        let src = format!(
            "let df = px::DataFrame(\"pgsql_events\");\ndf.q = {expr};\n\
             px::display(df.groupby(\"q\").agg(#{{ n: [\"latency\", \"count\"] }}));"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                let compiled = engine.compile(&src, &BTreeMap::new()).unwrap();
                rt.block_on(engine.execute(compiled)).unwrap()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, per_statement, column);
criterion_main!(benches);
