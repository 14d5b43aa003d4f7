//! Plans split between the PEMs and Kelvin.
//!
//! Each output's logical plan is cut into *fragments*, the largest subtrees every PEM can run
//! on its own data whose per-PEM results Kelvin can combine into the single-node answer:
//! - row-wise work over the store (scan with time pruning, filters, projections, union): each
//!   PEM ships its rows;
//! - an aggregation over such work: each PEM runs DataFusion's *partial* aggregate and ships
//!   its partial states (a count, a sum, a t-digest, an HDR histogram, ...), not rows; Kelvin
//!   runs the final aggregate over all PEMs' states;
//! - a limit (with or without a sort) over such work: each PEM ships its own top `k` rows and
//!   Kelvin applies the limit again.
//!
//! Everything above a fragment (final aggregation, joins, sorts, later aggregations) runs at
//! Kelvin, over a [`Gathered`] leaf holding the fragment's combined results.
//!
//! Plans are not serialised: a PEM gets the script, its arguments, the query's "now" and the
//! row cap, compiles the same plans (the compilation is deterministic), cuts them the same way
//! and runs every fragment. Kelvin checks each PEM's result schema against its own fragment's,
//! so a PEM on another version is reported, never merged wrongly.
//!
//! NB: the cut is made on the logical plan, before optimisation, because physical plans depend
//! on the data each node holds (partition counts); the physical partial aggregate is then
//! derived the same way on both sides from the fragment's own physical plan.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow::{
    array::RecordBatch,
    datatypes::{Schema, SchemaRef},
    ipc::{reader::StreamReader, writer::StreamWriter},
};
use async_trait::async_trait;
use datafusion::{
    common::{
        DFSchemaRef, DataFusionError, Result,
        tree_node::{Transformed, TreeNode, TreeNodeRecursion},
    },
    datasource::{memory::MemorySourceConfig, source_as_provider},
    execution::{SessionState, SessionStateBuilder, context::QueryPlanner},
    logical_expr::{
        Expr, Extension, FetchType, LogicalPlan, SkipType, UserDefinedLogicalNode,
        UserDefinedLogicalNodeCore, physical_planning_context::PhysicalPlanningContext,
    },
    physical_plan::{
        ExecutionPlan,
        aggregates::{AggregateExec, AggregateMode},
    },
    physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner},
    prelude::{SessionConfig, SessionContext},
};

use crate::{Engine, provider::StoreTable};

/// What a PEM needs to run its part of a query: the same inputs Kelvin compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemRequest {
    /// The script's source.
    pub source: Arc<str>,
    /// Its arguments.
    pub args: BTreeMap<String, String>,
    /// The query's "now", ns since the epoch: relative times resolve against it everywhere.
    pub now_ns: i64,
    /// Rows kept per output (the cap is part of the plan, so both sides must agree on it).
    pub max_output_rows: usize,
}

/// One PEM's answer: its results for every fragment of the query, in order.
#[derive(Debug)]
pub struct PemAnswer {
    /// The PEM's name (for warnings).
    pub pem: String,
    /// Per fragment, its batches; or why the PEM could not answer.
    pub result: std::result::Result<Vec<Vec<RecordBatch>>, String>,
    /// Bytes the answer took on the wire (Arrow IPC), 0 if unknown.
    pub wire_bytes: u64,
}

/// Kelvin's way to reach the PEMs: send every PEM a request, get one answer per PEM.
#[async_trait]
pub trait PemFleet: Send + Sync {
    /// Asks every live PEM to run the query's fragments.
    async fn run(&self, request: &PemRequest) -> Vec<PemAnswer>;
}

/// How a fragment's per-PEM results combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragmentKind {
    /// Rows, concatenated.
    Rows,
    /// Partial aggregate states, finished by Kelvin.
    Partial,
}

/// A subtree of an output's plan that every PEM runs.
#[derive(Debug, Clone)]
pub(crate) struct Fragment {
    pub(crate) plan: LogicalPlan,
    pub(crate) kind: FragmentKind,
}

/// Kelvin's leaf in place of a fragment: the combined results of every PEM.
#[derive(Debug, Clone)]
pub(crate) struct Gathered {
    id: usize,
    schema: DFSchemaRef,
}

impl PartialEq for Gathered {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
    }
}

impl Eq for Gathered {}

impl PartialOrd for Gathered {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.id.cmp(&o.id))
    }
}

impl Hash for Gathered {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.id.hash(h);
    }
}

impl UserDefinedLogicalNodeCore for Gathered {
    fn name(&self) -> &str {
        "Gathered"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        Vec::new()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gathered: fragment={}", self.id)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

/// Cuts `plan` into fragments (appended to `frags`) and returns Kelvin's plan over them.
pub(crate) fn split(plan: &LogicalPlan, frags: &mut Vec<Fragment>) -> Result<LogicalPlan> {
    if pushable(plan) {
        return Ok(gather(plan.clone(), FragmentKind::Rows, frags));
    }
    match plan {
        LogicalPlan::Aggregate(a) if pushable(&a.input) => {
            return Ok(gather(plan.clone(), FragmentKind::Partial, frags));
        }
        LogicalPlan::Limit(l) => {
            // A PEM's own first `skip + fetch` rows (in the sort's order, if any) hold every
            // row the limit can keep.
            let keep = match (l.get_skip_type()?, l.get_fetch_type()?) {
                (SkipType::Literal(s), FetchType::Literal(Some(f))) => Some(s.saturating_add(f)),
                _ => None,
            };
            let below = l.input.as_ref();
            let under_sort = match below {
                LogicalPlan::Sort(s) if pushable(&s.input) => Some(s),
                _ => None,
            };
            if let Some(k) = keep
                && (pushable(below) || under_sort.is_some())
            {
                let pem = datafusion::logical_expr::LogicalPlanBuilder::from(below.clone())
                    .limit(0, Some(k))?
                    .build()?;
                let leaf = gather(pem, FragmentKind::Rows, frags);
                let child = match under_sort {
                    Some(s) => LogicalPlan::Sort(datafusion::logical_expr::Sort {
                        expr: s.expr.clone(),
                        input: Arc::new(leaf),
                        fetch: s.fetch,
                    }),
                    None => leaf,
                };
                return plan.with_new_exprs(plan.expressions(), vec![child]);
            }
        }
        _ => {}
    }
    let inputs = plan
        .inputs()
        .into_iter()
        .map(|i| split(i, frags))
        .collect::<Result<Vec<_>>>()?;
    if inputs.is_empty() {
        return Ok(plan.clone());
    }
    plan.with_new_exprs(plan.expressions(), inputs)
}

fn gather(plan: LogicalPlan, kind: FragmentKind, frags: &mut Vec<Fragment>) -> LogicalPlan {
    let leaf = Gathered {
        id: frags.len(),
        schema: plan.schema().clone(),
    };
    frags.push(Fragment { plan, kind });
    LogicalPlan::Extension(Extension {
        node: Arc::new(leaf),
    })
}

/// Whether every PEM can run `plan` on its own rows and the union of their results is the
/// single-node result: row-wise operators over store scans.
fn pushable(plan: &LogicalPlan) -> bool {
    let here = match plan {
        LogicalPlan::TableScan(s) => {
            source_as_provider(&s.source).is_ok_and(|p| p.downcast_ref::<StoreTable>().is_some())
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Union(_) => true,
        _ => false,
    };
    // NB: subqueries in expressions may read other tables; they stay at Kelvin.
    here && !plan.expressions().iter().any(has_subquery) && plan.inputs().into_iter().all(pushable)
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

/// A fresh session for running plans.
///
/// NB: without the `aggregate_statistics` rule, which answers `count` and friends from exact
/// statistics by replacing the aggregate with its result: a PEM would then have no partial
/// aggregate to ship. Scans of in-memory batches are cheap anyway.
pub(crate) fn session() -> SessionContext {
    let rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "aggregate_statistics")
        .collect();
    let state = SessionStateBuilder::new()
        .with_config(SessionConfig::new())
        .with_default_features()
        .with_physical_optimizer_rules(rules)
        .build();
    SessionContext::new_with_state(state)
}

/// The fragment's physical plan and, for a partial fragment, where its partial aggregate is.
async fn physical(ctx: &SessionContext, f: &Fragment) -> Result<Arc<dyn ExecutionPlan>> {
    ctx.state().create_physical_plan(&f.plan).await
}

/// The partial aggregate of `plan`'s first (deepest) aggregation: the one DataFusion planned,
/// or one built from a single-stage aggregate. Same on every node for the same fragment.
fn partial_of(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let mut found: Option<Arc<dyn ExecutionPlan>> = None;
    plan.apply(|node| {
        if node.downcast_ref::<AggregateExec>().is_some() {
            found = Some(node.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let node = found.ok_or_else(|| {
        DataFusionError::Internal("an aggregate fragment planned no aggregate".into())
    })?;
    let Some(agg) = node.downcast_ref::<AggregateExec>() else {
        unreachable!("checked above");
    };
    match agg.mode() {
        AggregateMode::Partial => Ok(node.clone()),
        AggregateMode::Single | AggregateMode::SinglePartitioned => {
            Ok(Arc::new(AggregateExec::try_new(
                AggregateMode::Partial,
                agg.group_expr().clone(),
                agg.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                agg.input().clone(),
                agg.input_schema(),
            )?))
        }
        m => Err(DataFusionError::Internal(format!(
            "the deepest aggregate of a fragment is {m:?}, not a partial or single one"
        ))),
    }
}

/// PEM side: runs every fragment of `outputs` (the capped plans of one compiled script).
pub(crate) async fn run_fragments(outputs: &[LogicalPlan]) -> Result<Vec<Vec<RecordBatch>>> {
    let mut frags = Vec::new();
    for plan in outputs {
        split(plan, &mut frags)?;
    }
    let ctx = session();
    let mut out = Vec::with_capacity(frags.len());
    for f in &frags {
        let plan = physical(&ctx, f).await?;
        let plan = match f.kind {
            FragmentKind::Rows => plan,
            FragmentKind::Partial => partial_of(&plan)?,
        };
        out.push(datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?);
    }
    Ok(out)
}

/// Kelvin side: the physical plan that stands for fragment `f` given every PEM's results.
async fn finish(
    ctx: &SessionContext,
    f: &Fragment,
    results: Vec<RecordBatch>,
    pems: &[String],
) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = physical(ctx, f).await?;
    let expected: SchemaRef = match f.kind {
        FragmentKind::Rows => plan.schema(),
        FragmentKind::Partial => partial_of(&plan)?.schema(),
    };
    if let Some(b) = results
        .iter()
        .find(|b| !same_fields(&b.schema(), &expected))
    {
        return Err(DataFusionError::Execution(format!(
            "a PEM answered with columns {:?} where {:?} were expected (PEMs: {}); is every PEM \
             on this Kelvin's version?",
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>(),
            expected
                .fields()
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>(),
            pems.join(", ")
        )));
    }
    let results: Vec<RecordBatch> = results
        .into_iter()
        .map(|b| b.with_schema(expected.clone()))
        .collect::<std::result::Result<_, _>>()?;
    let source: Arc<dyn ExecutionPlan> =
        MemorySourceConfig::try_new_exec(&[results], expected, None)?;
    match f.kind {
        FragmentKind::Rows => Ok(source),
        FragmentKind::Partial => {
            // Replace the deepest aggregate by the gathered states: a partial one is swapped
            // for them (its final stage above stays), a single-stage one becomes final.
            let mut source = Some(source);
            let mut last_agg = None;
            plan.apply(|n| {
                if n.downcast_ref::<AggregateExec>().is_some() {
                    last_agg = Some(Arc::as_ptr(n).cast::<()>());
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            let out = plan.transform_up(|n| {
                if Some(Arc::as_ptr(&n).cast::<()>()) != last_agg {
                    return Ok(Transformed::no(n));
                }
                let Some(agg) = n.downcast_ref::<AggregateExec>() else {
                    return Ok(Transformed::no(n));
                };
                let Some(src) = source.take() else {
                    return Ok(Transformed::no(n));
                };
                let replaced: Arc<dyn ExecutionPlan> = match agg.mode() {
                    AggregateMode::Partial => src,
                    _ => Arc::new(AggregateExec::try_new(
                        AggregateMode::Final,
                        agg.group_expr().as_final(),
                        agg.aggr_expr().to_vec(),
                        agg.filter_expr().to_vec(),
                        src,
                        agg.input_schema(),
                    )?),
                };
                Ok(Transformed::yes(replaced))
            })?;
            Ok(out.data)
        }
    }
}

fn same_fields(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Kelvin's plans for one query: each output's plan over [`Gathered`] leaves, and the
/// fragments those leaves stand for.
#[derive(Debug)]
pub(crate) struct SplitPlans {
    pub(crate) outputs: Vec<LogicalPlan>,
    pub(crate) fragments: Vec<Fragment>,
}

pub(crate) fn split_all(outputs: &[LogicalPlan]) -> Result<SplitPlans> {
    let mut fragments = Vec::new();
    let outputs = outputs
        .iter()
        .map(|p| split(p, &mut fragments))
        .collect::<Result<Vec<_>>>()?;
    Ok(SplitPlans { outputs, fragments })
}

/// A session whose planner turns each [`Gathered`] leaf into Kelvin's finishing plan for it.
pub(crate) async fn kelvin_session(
    fragments: &[Fragment],
    mut results: Vec<Vec<RecordBatch>>,
    pems: &[String],
) -> Result<SessionContext> {
    let ctx = session();
    let mut plans = HashMap::new();
    for (id, f) in fragments.iter().enumerate() {
        let rows = std::mem::take(&mut results[id]);
        plans.insert(id, finish(&ctx, f, rows, pems).await?);
    }
    let state: SessionState = SessionStateBuilder::new_from_existing(ctx.state())
        .with_query_planner(Arc::new(GatherPlanner {
            plans: Arc::new(plans),
        }))
        .build();
    Ok(SessionContext::new_with_state(state))
}

#[derive(Debug)]
struct GatherPlanner {
    plans: Arc<HashMap<usize, Arc<dyn ExecutionPlan>>>,
}

#[async_trait]
impl QueryPlanner for GatherPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(GatherExtension {
            plans: self.plans.clone(),
        })])
        .create_physical_plan(plan, session)
        .await
    }
}

struct GatherExtension {
    plans: Arc<HashMap<usize, Arc<dyn ExecutionPlan>>>,
}

#[async_trait]
impl ExtensionPlanner for GatherExtension {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(node
            .as_any()
            .downcast_ref::<Gathered>()
            .and_then(|g| self.plans.get(&g.id).cloned()))
    }
}

/// Arrow IPC bytes of `batches` (one stream), as a PEM would send them.
pub fn ipc_encode(
    batches: &[RecordBatch],
) -> std::result::Result<Vec<u8>, arrow::error::ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut w = StreamWriter::try_new(Vec::new(), &first.schema())?;
    for b in batches {
        w.write(b)?;
    }
    w.into_inner()
}

/// The batches of one [`ipc_encode`]d stream.
pub fn ipc_decode(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    StreamReader::try_new(bytes, None)?.collect()
}

/// PEMs in this process, each an [`Engine`] over its own store: for tests, benchmarks and
/// single-binary setups. Answers go through Arrow IPC as they would over the wire, so
/// [`PemAnswer::wire_bytes`] is what a PEM would send.
#[derive(Debug, Default)]
pub struct InProcessFleet {
    /// (name, engine) per PEM.
    pub pems: Vec<(String, Arc<Engine>)>,
}

#[async_trait]
impl PemFleet for InProcessFleet {
    async fn run(&self, request: &PemRequest) -> Vec<PemAnswer> {
        futures::future::join_all(self.pems.iter().map(|(name, engine)| async move {
            let mut wire_bytes = 0;
            let result = match engine.run_pem_part(request).await {
                Ok(parts) => parts
                    .iter()
                    .map(|p| {
                        let bytes = ipc_encode(p)?;
                        wire_bytes += bytes.len() as u64;
                        ipc_decode(&bytes)
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            PemAnswer {
                pem: name.clone(),
                result,
                wire_bytes,
            }
        }))
        .await
    }
}
