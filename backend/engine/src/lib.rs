//! pxtop's script engine: rhai scripts in a PxL-like dialect compiled to DataFusion logical
//! plans over the [`Store`], then run to Arrow output tables.
//!
//! [`Engine::compile`] runs the script (which only builds plans; no data is read) and
//! [`Engine::execute`] runs the plans. Bundled scripts (`scripts/px/*.rhai`) are embedded at
//! build time.
#![forbid(unsafe_code)]

mod ctx;
mod error;
mod frame;
mod hdr;
mod provider;
mod script;
mod split;
mod sql;
mod time;
mod udf;

#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use arrow::{array::RecordBatch, datatypes::SchemaRef};
use datafusion::{
    logical_expr::{LogicalPlan, LogicalPlanBuilder},
    prelude::SessionContext,
};
use pxtop_metadata::Metadata;
use pxtop_store::Store;

pub use error::{EngineError, ErrorKind};
pub use split::{InProcessFleet, PemAnswer, PemFleet, PemRequest, ipc_decode, ipc_encode};
pub use sql::{SqlDialect, normalize_sql};
pub use time::parse_time;

use script::{Env, Planned, State};

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Engine limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rows kept per output table; more set [`OutputTable::truncated`].
    pub max_output_rows: usize,
    /// Deadline for running a script and, separately, for executing its queries.
    pub script_timeout: Duration,
    /// rhai operations a script may run (a script only builds queries, so few are needed).
    pub max_operations: u64,
    /// How deeply a script's function calls may nest.
    pub max_call_depth: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_output_rows: 10_000,
            script_timeout: Duration::from_secs(30),
            max_operations: 5_000_000,
            max_call_depth: 32,
        }
    }
}

/// A script parameter, as declared by `px::param(name, default, help)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Its name (`start_time`).
    pub name: String,
    /// Its type, from the default: `int`, `float`, `bool` or `string`.
    pub ty: String,
    /// Its default, rendered as text (`-5m`, `1000`).
    pub default: String,
    /// What it does.
    pub help: String,
}

/// A bundled script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// `px/http_data`.
    pub name: String,
    /// Its first `//` comment line.
    pub description: String,
    /// Its parameters, in declaration order.
    pub params: Vec<ParamInfo>,
}

/// A script compiled to plans, ready for [`Engine::execute`].
#[derive(Debug, Clone)]
pub struct Compiled {
    outputs: Vec<Planned>,
    params: Vec<ParamInfo>,
    /// What it was compiled from, so PEMs can compile the same plans.
    request: PemRequest,
}

impl Compiled {
    /// Output table names, in display order.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.iter().map(|o| o.name.as_str()).collect()
    }

    /// The parameters the script declared.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// The logical plan of each output, indented, for debugging.
    pub fn explain(&self) -> String {
        self.outputs
            .iter()
            .map(|o| format!("{}:\n{}\n", o.name, o.plan.display_indent()))
            .collect()
    }
}

/// One computed output table.
#[derive(Debug, Clone)]
pub struct OutputTable {
    /// The name given to `px::display`.
    pub name: String,
    /// The widget spec as JSON (`{"widget":"table",...}`), if the script gave one.
    pub widget: Option<String>,
    /// Its columns.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// Whether rows beyond [`EngineConfig::max_output_rows`] were dropped.
    pub truncated: bool,
}

/// Compiles and runs scripts against a store.
#[derive(Debug)]
pub struct Engine {
    store: Arc<Store>,
    metadata: Arc<dyn Metadata + Send + Sync>,
    config: EngineConfig,
    infos: OnceLock<Vec<ScriptInfo>>,
}

impl Engine {
    /// An engine over `store`, answering `ctx(...)` from `metadata`.
    pub fn new(
        store: Arc<Store>,
        metadata: Arc<dyn Metadata + Send + Sync>,
        config: EngineConfig,
    ) -> Self {
        Self {
            store,
            metadata,
            config,
            infos: OnceLock::new(),
        }
    }

    /// The bundled scripts, sorted by name.
    pub fn scripts(&self) -> Vec<ScriptInfo> {
        self.infos
            .get_or_init(|| {
                BUNDLED
                    .iter()
                    .map(|(name, source)| ScriptInfo {
                        name: (*name).to_string(),
                        description: description(source),
                        params: self.declared_params(name, source),
                    })
                    .collect()
            })
            .clone()
    }

    /// The parameters `source` declares, also when it fails later (a script over a table whose
    /// data source is not built yet still lists its arguments).
    fn declared_params(&self, name: &str, source: &str) -> Vec<ParamInfo> {
        let env = Arc::new(Env {
            store: self.store.clone(),
            metadata: self.metadata.clone(),
            args: BTreeMap::new(),
            now_ns: wall_ns(),
            state: Mutex::new(State::default()),
        });
        if let Err(e) = script::run(&env, source, &self.config) {
            tracing::debug!("bundled script {name} does not compile here: {e}");
        }
        std::mem::take(&mut env.state.lock().unwrap_or_else(|p| p.into_inner()).params)
    }

    /// The source of a bundled script, by `px/http_data` or `http_data`.
    pub fn script_source(&self, name: &str) -> Result<&str, EngineError> {
        BUNDLED
            .iter()
            .find(|(n, _)| *n == name || n.strip_prefix("px/") == Some(name))
            .map(|(_, s)| *s)
            .ok_or_else(|| EngineError::UnknownScript {
                name: name.to_string(),
                known: BUNDLED.iter().map(|(n, _)| (*n).to_string()).collect(),
            })
    }

    /// What `source` declares (description and parameters), from running it with no
    /// arguments; it need not display anything. Reads no data.
    pub fn describe(&self, name: &str, source: &str) -> Result<ScriptInfo, EngineError> {
        let env = Arc::new(Env {
            store: self.store.clone(),
            metadata: self.metadata.clone(),
            args: BTreeMap::new(),
            now_ns: 0,
            state: Mutex::new(State::default()),
        });
        script::run(&env, source, &self.config)?;
        let state = std::mem::take(&mut *env.state.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(ScriptInfo {
            name: name.to_string(),
            description: description(source),
            params: state.params,
        })
    }

    /// Runs `source` with `args` to build its plans. Reads no data.
    pub fn compile(
        &self,
        source: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<Compiled, EngineError> {
        self.compile_at(source, args, wall_ns())
    }

    /// [`Engine::compile`] with "now" given (ns since the epoch): relative times (`-5m`) and
    /// `px::now()` resolve against it, so the same script compiles to the same plans on every
    /// node of a query, and golden tests are reproducible.
    pub fn compile_at(
        &self,
        source: &str,
        args: &BTreeMap<String, String>,
        now_ns: i64,
    ) -> Result<Compiled, EngineError> {
        let env = Arc::new(Env {
            store: self.store.clone(),
            metadata: self.metadata.clone(),
            args: args.clone(),
            now_ns,
            state: Mutex::new(State::default()),
        });
        script::run(&env, source, &self.config)?;
        let state = std::mem::take(&mut *env.state.lock().unwrap_or_else(|p| p.into_inner()));
        let unknown: Vec<String> = args
            .keys()
            .filter(|k| !state.params.iter().any(|p| &p.name == *k))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(EngineError::UnknownArgs {
                names: unknown,
                params: state.params.iter().map(|p| p.name.clone()).collect(),
            });
        }
        if state.outputs.is_empty() {
            return Err(EngineError::NoOutput);
        }
        Ok(Compiled {
            outputs: state.outputs,
            params: state.params,
            request: PemRequest {
                source: Arc::from(source),
                args: args.clone(),
                now_ns,
                max_output_rows: self.config.max_output_rows,
            },
        })
    }

    /// Runs the plans of `compiled`, each output capped at `max_output_rows`.
    pub async fn execute(&self, compiled: Compiled) -> Result<Vec<OutputTable>, EngineError> {
        let timeout = self.config.script_timeout;
        tokio::time::timeout(timeout, self.run(compiled))
            .await
            .unwrap_or(Err(EngineError::Timeout(timeout)))
    }

    async fn run(&self, compiled: Compiled) -> Result<Vec<OutputTable>, EngineError> {
        let max = compiled.request.max_output_rows;
        let plans = capped(&compiled.outputs, max)?;
        run_plans(&split::session(), compiled.outputs, plans, max).await
    }

    /// PEM side of a split query: compiles the script as Kelvin did and runs every fragment
    /// on this node's data (see `split.rs`). Results are per fragment, in Kelvin's order.
    pub async fn run_pem_part(
        &self,
        request: &PemRequest,
    ) -> Result<Vec<Vec<RecordBatch>>, EngineError> {
        let compiled = self.compile_at(&request.source, &request.args, request.now_ns)?;
        let plans = capped(&compiled.outputs, request.max_output_rows)?;
        let timeout = self.config.script_timeout;
        tokio::time::timeout(timeout, split::run_fragments(&plans))
            .await
            .unwrap_or(Err(datafusion::error::DataFusionError::Execution(format!(
                "the PEM part did not finish within {timeout:?}"
            ))))
            .map_err(|e| EngineError::Execution {
                output: "(PEM part)".into(),
                message: e.strip_backtrace(),
            })
    }

    /// Kelvin side of a split query: every PEM in `fleet` runs the part of each output below
    /// its first aggregation (or its rows' filters, projections and limit), and this runs the
    /// rest over their merged answers. PEMs that fail are named in the warnings; if none
    /// answers the query fails.
    pub async fn execute_split(
        &self,
        compiled: Compiled,
        fleet: &dyn PemFleet,
    ) -> Result<SplitOutcome, EngineError> {
        let timeout = self.config.script_timeout;
        tokio::time::timeout(timeout, self.run_split(compiled, fleet))
            .await
            .unwrap_or(Err(EngineError::Timeout(timeout)))
    }

    async fn run_split(
        &self,
        compiled: Compiled,
        fleet: &dyn PemFleet,
    ) -> Result<SplitOutcome, EngineError> {
        let failed = |e: datafusion::error::DataFusionError| EngineError::Execution {
            output: "(split)".into(),
            message: e.strip_backtrace(),
        };
        let max = compiled.request.max_output_rows;
        let plans = capped(&compiled.outputs, max)?;
        let split = split::split_all(&plans).map_err(failed)?;
        let answers = fleet.run(&compiled.request).await;
        let mut warnings = Vec::new();
        let mut merged: Vec<Vec<RecordBatch>> = vec![Vec::new(); split.fragments.len()];
        let mut answered = Vec::new();
        let mut pem_bytes = 0;
        for a in answers {
            match a.result {
                Ok(parts) if parts.len() == merged.len() => {
                    for (m, p) in merged.iter_mut().zip(parts) {
                        m.extend(p);
                    }
                    pem_bytes += a.wire_bytes;
                    answered.push(a.pem);
                }
                Ok(parts) => warnings.push(format!(
                    "PEM {} answered {} fragments where {} were asked; its rows are left out \
                     (is it on this Kelvin's version?)",
                    a.pem,
                    parts.len(),
                    merged.len()
                )),
                Err(e) => warnings.push(format!(
                    "PEM {} did not answer, its rows are missing: {e}",
                    a.pem
                )),
            }
        }
        if answered.is_empty() {
            return Err(EngineError::NoPem { warnings });
        }
        let ctx = split::kelvin_session(&split.fragments, merged, &answered)
            .await
            .map_err(failed)?;
        let tables = run_plans(&ctx, compiled.outputs, split.outputs, max).await?;
        Ok(SplitOutcome {
            tables,
            warnings,
            pems: answered,
            pem_bytes,
            fragments: split.fragments.len(),
        })
    }
}

/// What [`Engine::execute_split`] returns.
#[derive(Debug)]
pub struct SplitOutcome {
    /// The outputs, as [`Engine::execute`] returns them.
    pub tables: Vec<OutputTable>,
    /// PEMs that did not answer, and why.
    pub warnings: Vec<String>,
    /// The PEMs whose answers are in the tables.
    pub pems: Vec<String>,
    /// Bytes the PEMs' answers took on the wire.
    pub pem_bytes: u64,
    /// Fragments each PEM ran.
    pub fragments: usize,
}

/// Each output's plan with the row cap on top: one row past the cap tells whether anything
/// was cut.
fn capped(outputs: &[Planned], max: usize) -> Result<Vec<LogicalPlan>, EngineError> {
    outputs
        .iter()
        .map(|o| {
            LogicalPlanBuilder::new_from_arc(o.plan.clone())
                .limit(0, Some(max.saturating_add(1)))
                .and_then(LogicalPlanBuilder::build)
                .map_err(|e| EngineError::Execution {
                    output: o.name.clone(),
                    message: e.strip_backtrace(),
                })
        })
        .collect()
}

async fn run_plans(
    ctx: &SessionContext,
    outputs: Vec<Planned>,
    plans: Vec<LogicalPlan>,
    max: usize,
) -> Result<Vec<OutputTable>, EngineError> {
    let mut out = Vec::with_capacity(outputs.len());
    for (o, plan) in outputs.into_iter().zip(plans) {
        let failed = |e: datafusion::error::DataFusionError| EngineError::Execution {
            output: o.name.clone(),
            message: e.strip_backtrace(),
        };
        let df = ctx.execute_logical_plan(plan).await.map_err(failed)?;
        let logical: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(failed)?;
        let schema = batches.first().map_or(logical, RecordBatch::schema);
        let (batches, truncated) = cap(batches, max);
        out.push(OutputTable {
            name: o.name,
            widget: o.widget,
            schema,
            batches,
            truncated,
        });
    }
    Ok(out)
}

/// Now, in ns since the Unix epoch.
fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Keeps the first `max` rows.
fn cap(batches: Vec<RecordBatch>, max: usize) -> (Vec<RecordBatch>, bool) {
    let mut kept = Vec::with_capacity(batches.len());
    let mut rows = 0;
    for b in batches {
        if rows + b.num_rows() > max {
            let take = max - rows;
            if take > 0 {
                kept.push(b.slice(0, take));
            }
            return (kept, true);
        }
        rows += b.num_rows();
        kept.push(b);
    }
    (kept, false)
}

/// A script's first `//` comment line.
fn description(source: &str) -> String {
    source
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("//"))
        .map(|l| l.trim_start_matches('/').trim().to_string())
        .unwrap_or_default()
}
