//! The bundled scripts on fixture data of every table, against golden outputs in
//! `snapshots/scripts/` at the repository root (one file per script: each output table's name,
//! widget spec and rows as `pxtop run -o json` prints them). A script without a golden fails, as
//! does a golden without a script.
//!
//! Update the goldens with `INSTA_UPDATE=always cargo test -p pxtop-engine --test scripts` and
//! review the diff: non-empty where the fixture has data, error rates in 0..=1, p50 <= p99.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use anyhow::{Context, Result};
use arrow::{
    array::{ArrayRef, RecordBatch, StringArray},
    compute::cast,
    datatypes::{DataType, Field, Schema},
};
use pxtop_engine::{Engine, EngineConfig, OutputTable};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{Store, StoreConfig, fixtures};

/// "Now" for every script: the fixture's rows end 30 s before it, inside the default `-5m`.
const NOW_NS: i64 = 1_700_000_000_000_000_000;
const START_NS: i64 = NOW_NS - 270_000_000_000;

/// Rows kept per output table in the goldens (the first rows, in the script's order).
const MAX_ROWS: usize = 25;

const SERVICES: [&str; 4] = ["frontend", "cart", "checkout", "users"];

/// The four fixture services as the local metadata would name them (service: the process name,
/// pod: `name-pid`, namespace `local`, one node, pod_id: a network namespace of
/// `fixtures::NETNS`), plus the agent itself (in the host's namespace).
#[derive(Debug)]
struct Local;

impl Metadata for Local {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        // The agent lives in the host's network namespace, each service in one of its own.
        let (name, pid, netns) = if upid == fixtures::agent_upid() {
            ("pxtopd", 900, fixtures::NETNS[0])
        } else {
            let i = (0..4).find(|i| fixtures::upid(*i) == upid)?;
            (
                SERVICES[i as usize],
                1001 + i,
                fixtures::NETNS[i as usize + 1],
            )
        };
        Some(match key {
            CtxKey::Service => name.to_string(),
            CtxKey::Pod => format!("{name}-{pid}"),
            CtxKey::Namespace => "local".to_string(),
            CtxKey::Node => "fixture-host".to_string(),
            CtxKey::Container | CtxKey::Deployment => String::new(),
            CtxKey::Owner => name.to_string(),
            CtxKey::Cmdline => format!("/usr/bin/{name} --port 8080"),
            CtxKey::Pid => pid.to_string(),
            CtxKey::PodId => netns.to_string(),
        })
    }
}

fn engine() -> Result<Engine> {
    let store = Arc::new(Store::new(StoreConfig::default()));
    fixtures::fill(&store, START_NS)?;
    Ok(Engine::new(
        store,
        Arc::new(Local),
        EngineConfig {
            max_output_rows: MAX_ROWS,
            ..EngineConfig::default()
        },
    ))
}

/// A batch as `pxtop run -o json` prints it: `_tableName_` first, times as integer ns.
fn json_lines(name: &str, batch: &RecordBatch) -> Result<String> {
    let mut fields = vec![Field::new("_tableName_", DataType::Utf8, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![name; batch.num_rows()]))];
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let (t, c) = match f.data_type() {
            DataType::Timestamp(..) => (DataType::Int64, cast(c, &DataType::Int64)?),
            t => (t.clone(), c.clone()),
        };
        fields.push(Field::new(f.name(), t, true));
        cols.push(c);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
    let mut out = Vec::new();
    let mut w = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut out);
    w.write(&batch)?;
    w.finish()?;
    drop(w);
    Ok(String::from_utf8(out)?)
}

fn render(tables: &[OutputTable]) -> Result<String> {
    let mut s = String::new();
    for t in tables {
        let rows: usize = t.batches.iter().map(RecordBatch::num_rows).sum();
        s.push_str(&format!(
            "# {} {} ({rows} rows{})\n",
            t.name,
            t.widget.as_deref().unwrap_or("{}"),
            if t.truncated { ", truncated" } else { "" }
        ));
        for b in t.batches.iter().filter(|b| b.num_rows() > 0) {
            s.push_str(&json_lines(&t.name, b)?);
        }
    }
    Ok(s)
}

async fn run(engine: &Engine, name: &str) -> Result<Vec<OutputTable>> {
    let source = engine.script_source(name)?;
    let compiled = engine.compile_at(source, &BTreeMap::new(), NOW_NS)?;
    Ok(engine.execute(compiled).await?)
}

fn snapshot_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../snapshots/scripts"
    ))
}

#[tokio::test]
async fn bundled_scripts_match_their_goldens() -> Result<()> {
    let engine = engine()?;
    let scripts = engine.scripts();
    assert!(scripts.len() >= 40, "{} scripts", scripts.len());
    for s in &scripts {
        let short = s.name.strip_prefix("px/").unwrap_or(&s.name);
        let tables = run(&engine, &s.name)
            .await
            .with_context(|| format!("running {}", s.name))?;
        let text = render(&tables).with_context(|| format!("rendering {}", s.name))?;
        insta::with_settings!({
            snapshot_path => snapshot_dir(),
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => format!("{}: {}", s.name, s.description),
        }, {
            insta::assert_snapshot!(short, text);
        });
    }
    // A golden whose script is gone is stale.
    for entry in std::fs::read_dir(snapshot_dir())? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "snap") {
            let name = format!("px/{stem}");
            assert!(
                scripts.iter().any(|s| s.name == name),
                "{} is not the golden of a bundled script that runs; delete it",
                path.display()
            );
        }
    }
    Ok(())
}

#[test]
fn bundled_scripts_have_a_description_and_help_for_every_param() -> Result<()> {
    let engine = engine()?;
    for s in engine.scripts() {
        assert!(!s.description.is_empty(), "{} has no description", s.name);
        let source = engine.script_source(&s.name)?;
        assert!(
            source.trim_start().starts_with("//"),
            "{} must start with its // description line",
            s.name
        );
        for p in &s.params {
            assert!(
                !p.help.trim().is_empty(),
                "{}: param {} has no help text",
                s.name,
                p.name
            );
        }
    }
    Ok(())
}
