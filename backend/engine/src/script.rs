//! The script dialect: rhai plus a `px` module and the `DataFrame`, `Expr` and `GroupBy` types.
//! A fresh rhai engine runs each script (its functions close over that run's arguments and
//! outputs), sandboxed: bounded operations, call depth, sizes, and a deadline.
//!
//! Dialect, in brief (see `scripts/px/*.rhai`):
//! - `px::param(name, default, help)`: the argument `name`, parsed as `default`'s type (int,
//!   float, bool or string; listed with the script's params), else `default`.
//! - `px::DataFrame(table, start?, end?)`: times are `"-5m"`-style, ns integers, RFC 3339 or
//!   `""` (unbounded). `px::now()` is ns since the epoch. A table Pixie has whose data source
//!   pxtop lacks yet fails with the store's "no data source" message, never an empty frame.
//! - `px::schemas()`: a DataFrame of `table_name`, `column_name`, `column_type` (Pixie's type
//!   names), one row per column of every table the store holds.
//! - `px::sql("SELECT ...")`: a DataFrame planned by DataFusion's SQL planner, every table
//!   under its name (`time_` bounds still prune); queries only, no DDL/DML.
//! - Columns: `df["x"]`, `df.x`, `df.col("x")`; assign with `df["y"] = expr` or `df.y = expr`.
//! - `Expr` operators `+ - * / % == != < <= > >= & | ! -` with columns and literals. Combine
//!   conditions with `&`/`|`: rhai's `&&`/`||` need bools.
//! - `Expr` methods (most also as `px::f(e, ..)`): `contains`, `starts_with`, `ends_with`,
//!   `lower`, `upper`, `is_null`, `is_not_null`; `matches(re)` / `px::regex_match(re, e)`
//!   (Rust regex syntax, checked at the call); `substring(start, len)` (start from 0, as in
//!   PxL); `length()`; `replace(from, to)` (literal text, every occurrence);
//!   `cast("int" | "float" | "string" | "bool")`; `format_duration()` (ns to `"1.23 ms"`) and
//!   `format_bytes()` (`"1.2 MiB"`), nulls stay null; `normalize_pgsql`, `normalize_mysql`
//!   (literals to `?`, see `sql.rs`). `px::select(cond, a, b)` is an if/else per row.
//! - Time: `px::bin(e, window)` floors a time (stays a time) or an integer to a multiple of the
//!   window (ns, or a duration like `"10s"`); `px::rate(e, window)` is `e` per second over the
//!   window (Float64); `px::seconds(n)`, `px::minutes(n)`, `px::hours(n)`,
//!   `px::milliseconds(n)`, `px::microseconds(n)`, `px::nanoseconds(n)`, `px::duration("10s")`
//!   are ns integers.
//! - `df.filter(cond)` (or `df[cond]`), `df.select([..])` (or `df[[..]]`), `df.drop([..])`,
//!   `df.head(n = 5)`, `df.sort("-x")` / `df.sort(["a", "-b"])`.
//! - `df.merge(right, how, left_on, right_on, suffixes = ["_x", "_y"])`: a join on equal keys,
//!   `how` one of inner, left, right, outer; `*_on` a column or an array of them. Output: the
//!   left's columns, then the right's; names on both sides get the suffixes.
//!   `df.append(other)`: the rows of both; columns must match by name and type.
//! - `df.groupby([..]).agg(#{ out: ["col", "fn"] })`, `df.agg(#{..})` with fn one of count,
//!   count_distinct (nunique), any (some value of the group), sum, mean, min, max, median,
//!   p1..p99 (integer columns: from an HDR histogram shared by
//!   a column's percentiles, within 0.1%, merged exactly across PEMs; negative integers count
//!   as 0; other columns: t-digest, approximate), quantiles (a struct of p01, p10, p50, p90, p99; integers
//!   for integer input) and hdr_histogram (hdr): an HDR histogram with 3 significant digits (a
//!   value read back is within 0.1% of a recorded one), as the V2-serialized Binary, which
//!   merges exactly across partial aggregates. Read it with `h.hdr_quantile(q)` (Int64),
//!   `h.hdr_count()` and `h.hdr_buckets()`: JSON `[{"le":ns,"count":n},...]`, buckets doubling
//!   from 1 ns, for the histogram widget.
//! - `df.ctx("service")`, `px::ctx(df, "service")`, `df.ctx["service"]`: from `upid`. Keys:
//!   service, pod, namespace, node, container, cmdline, pid, and pod_id (what
//!   `network_stats.pod_id` holds, so a process's rows join with its namespace's counters).
//! - `px::addr_ctx(df.remote_addr, "pod")`: what an address is in the cluster (`pod`,
//!   `service`, `namespace`, `node`, `deployment`, `owner`); empty when unknown or local.
//! - `px::display(df, name?, widget?)`: an output table; `widget` a map (sent as JSON).
//! - Limits (`EngineConfig`, pxtopd flags): operations (`--script-max-operations`), call
//!   depth (`--script-max-call-depth`), the deadline (`--script-timeout`), and rows per output
//!   (`--max-output-rows`).
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, Waker},
    time::Instant,
};

use arrow::{
    array::{RecordBatch, StringArray},
    datatypes::{DataType, Field, Schema},
};
use datafusion::{
    common::ScalarValue,
    datasource::{MemTable, provider_as_source},
    execution::context::SQLOptions,
    functions::{
        regex::expr_fn::regexp_like,
        string::expr_fn::{contains, ends_with, lower, replace, starts_with, upper},
        unicode::expr_fn::{character_length, substring},
    },
    logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Operator, cast, when},
    prelude::{SessionContext, lit},
};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::Store;
use rhai::{Array, Dynamic, FLOAT, INT, ImmutableString, Map, Module, NativeCallContext};

use crate::{
    EngineConfig, ParamInfo,
    ctx::CtxUdf,
    error::{EngineError, ErrorKind, RhaiResult, fault, invalid},
    frame::{ColExpr, Frame, Grouped, binop, df_err, names, to_expr},
    hdr,
    provider::{StoreTable, time_filter},
    sql::{NormalizeUdf, SqlDialect},
    time::{parse_duration, parse_time},
    udf,
};

/// One `px::display` call: an output table to compute.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) name: String,
    pub(crate) widget: Option<String>,
    pub(crate) plan: Arc<LogicalPlan>,
}

/// What a script run declared.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) params: Vec<ParamInfo>,
    pub(crate) outputs: Vec<Planned>,
}

/// What one script run sees.
pub(crate) struct Env {
    pub(crate) store: Arc<Store>,
    pub(crate) metadata: Arc<dyn Metadata + Send + Sync>,
    pub(crate) args: BTreeMap<String, String>,
    pub(crate) now_ns: i64,
    pub(crate) state: Mutex<State>,
}

impl Env {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // NB: a panic while holding the lock cannot leave State half-updated in a way that
        // matters (each update is one push), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `px::param(name, default, help)`: the argument if given (parsed as the default's type),
    /// else the default.
    fn param(&self, name: &str, default: Dynamic, help: &str) -> RhaiResult<Dynamic> {
        let mut st = self.state();
        if st.params.iter().any(|p| p.name == name) {
            return Err(invalid(format!(
                "parameter {name:?} is declared twice; declare each px::param once"
            )));
        }
        let shown = if default.is_unit() {
            String::new()
        } else {
            default.to_string()
        };
        let ty = if default.is_int() {
            "int"
        } else if default.is_float() {
            "float"
        } else if default.is_bool() {
            "bool"
        } else {
            "string"
        };
        st.params.push(ParamInfo {
            name: name.to_string(),
            ty: ty.to_string(),
            default: shown.clone(),
            help: help.to_string(),
        });
        let Some(raw) = self.args.get(name) else {
            return Ok(default);
        };
        let t = raw.trim();
        let expected = |what: &str| {
            invalid(format!(
                "argument {name}={raw:?} is not {what}; pass e.g. {name}={shown}"
            ))
        };
        if default.is_int() {
            t.parse::<INT>()
                .map(Dynamic::from)
                .map_err(|_| expected("a whole number"))
        } else if default.is_float() {
            t.parse::<FLOAT>()
                .map(Dynamic::from)
                .map_err(|_| expected("a number"))
        } else if default.is_bool() {
            match t {
                "true" | "1" | "yes" => Ok(Dynamic::TRUE),
                "false" | "0" | "no" => Ok(Dynamic::FALSE),
                _ => Err(expected("true or false")),
            }
        } else {
            Ok(Dynamic::from(raw.clone()))
        }
    }

    /// `px::DataFrame(table, start, end)`.
    fn dataframe(&self, table: &str, start: &Dynamic, end: &Dynamic) -> RhaiResult<Frame> {
        let name = self
            .store
            .resolve(table)
            .map_err(|e| fault(ErrorKind::NotFound, e.to_string()))?;
        let schema = self
            .store
            .schema(name)
            .map_err(|e| fault(ErrorKind::NotFound, e.to_string()))?;
        let start = self.time_arg(start, "start_time")?;
        let end = self.time_arg(end, "end_time")?;
        if let (Some(s), Some(e)) = (start, end)
            && s >= e
        {
            return Err(invalid(format!(
                "start time {s} is not before end time {e}; pass an earlier start_time"
            )));
        }
        let provider = Arc::new(StoreTable::new(self.store.clone(), name, schema));
        let mut b =
            LogicalPlanBuilder::scan(name, provider_as_source(provider), None).map_err(df_err)?;
        if let Some(f) = time_filter(start, end) {
            b = b.filter(f).map_err(df_err)?;
        }
        Ok(Frame {
            plan: Arc::new(b.build().map_err(df_err)?),
            origin: Arc::from(name),
        })
    }

    fn time_arg(&self, d: &Dynamic, what: &str) -> RhaiResult<Option<i64>> {
        if d.is_unit() {
            return Ok(None);
        }
        if let Ok(i) = d.as_int() {
            return Ok(Some(i));
        }
        if d.is_string() {
            let s = d.to_string();
            if s.trim().is_empty() {
                return Ok(None);
            }
            return parse_time(&s, self.now_ns)
                .map(Some)
                .map_err(|e| invalid(format!("{what}: {e}")));
        }
        Err(invalid(format!(
            "{what}: expected a time like \"-5m\" or ns since the epoch, got a {}",
            d.type_name()
        )))
    }

    /// `px::schemas()`: one row per table the store holds and column, with Pixie's type names.
    fn schemas(&self) -> RhaiResult<Frame> {
        let (mut tables, mut columns, mut types) = (Vec::new(), Vec::new(), Vec::new());
        for name in self.store.table_names() {
            let schema = self
                .store
                .schema(&name)
                .map_err(|e| fault(ErrorKind::Internal, e.to_string()))?;
            for f in schema.fields() {
                tables.push(name.clone());
                columns.push(f.name().clone());
                types.push(pixie_type(f.data_type()));
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("column_type", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(tables)),
                Arc::new(StringArray::from(columns)),
                Arc::new(StringArray::from(types)),
            ],
        )
        .map_err(|e| fault(ErrorKind::Internal, e.to_string()))?;
        let table = MemTable::try_new(schema, vec![vec![batch]]).map_err(df_err)?;
        let plan = LogicalPlanBuilder::scan("schemas", provider_as_source(Arc::new(table)), None)
            .and_then(LogicalPlanBuilder::build)
            .map_err(df_err)?;
        Ok(Frame {
            plan: Arc::new(plan),
            origin: Arc::from("schemas"),
        })
    }

    /// `px::display(df, name, widget)`.
    fn display(&self, df: Frame, name: &str, widget: &Dynamic) -> RhaiResult<()> {
        if name.trim().is_empty() {
            return Err(invalid("px::display needs a non-empty output name"));
        }
        let widget = if widget.is_unit() {
            None
        } else if widget.is_string() {
            Some(serde_json::json!({ "widget": widget.to_string() }).to_string())
        } else if widget.is_map() {
            Some(to_json(widget).to_string())
        } else {
            return Err(invalid(format!(
                "px::display: the widget spec must be a map like #{{ widget: \"table\" }}, got a {}",
                widget.type_name()
            )));
        };
        let mut st = self.state();
        if st.outputs.iter().any(|o| o.name == name) {
            return Err(invalid(format!(
                "output {name:?} is displayed twice; give each px::display its own name"
            )));
        }
        st.outputs.push(Planned {
            name: name.to_string(),
            widget,
            plan: df.plan,
        });
        Ok(())
    }

    /// `px::sql(query)`: DataFusion's SQL planner over every store table (the same provider as
    /// `px::DataFrame`, so `time_` bounds still prune), with the dialect's functions.
    fn sql(&self, query: &str) -> RhaiResult<Frame> {
        let ctx = SessionContext::new();
        let mut tables = Vec::new();
        for t in self.store.table_names() {
            let Ok(name) = self.store.resolve(&t) else {
                continue;
            };
            let schema = self
                .store
                .schema(name)
                .map_err(|e| fault(ErrorKind::Internal, e.to_string()))?;
            let provider = Arc::new(StoreTable::new(self.store.clone(), name, schema));
            ctx.register_table(name, provider).map_err(df_err)?;
            tables.push(name);
        }
        for f in [
            udf::format_duration_udf(),
            udf::format_bytes_udf(),
            hdr::quantile_udf(),
            hdr::count_udf(),
            hdr::buckets_udf(),
        ] {
            ctx.register_udf(f);
        }
        ctx.register_udaf(hdr::HdrUdaf::udaf());
        let failed = |e: datafusion::error::DataFusionError| {
            invalid(format!(
                "px::sql: {}; tables are: {}",
                e.strip_backtrace(),
                tables.join(", ")
            ))
        };
        let state = ctx.state();
        let planning = std::pin::pin!(state.create_logical_plan(query));
        // NB: every table is registered in memory, so planning never waits; polling once keeps
        // the script side synchronous.
        let plan = match planning.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r.map_err(failed)?,
            Poll::Pending => {
                return Err(fault(
                    ErrorKind::Internal,
                    "px::sql: planning did not finish at once",
                ));
            }
        };
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                invalid(format!(
                    "px::sql: {}; only queries (SELECT ...) are allowed",
                    e.strip_backtrace()
                ))
            })?;
        Ok(Frame {
            plan: Arc::new(plan),
            origin: Arc::from("px::sql"),
        })
    }

    /// `df.ctx(key)`.
    fn ctx(&self, df: &Frame, key: &str) -> RhaiResult<ColExpr> {
        let key: CtxKey = key.parse().map_err(|e| invalid(format!("{e}")))?;
        let upid = df.col("upid").map_err(|_| {
            invalid(format!(
                "ctx({key}) needs the upid column, which this DataFrame no longer has; call \
                 ctx before select/groupby drops it (columns: {})",
                df.columns().join(", ")
            ))
        })?;
        Ok(ColExpr(
            CtxUdf::udf(self.metadata.clone(), key).call(vec![upid.0]),
        ))
    }
}

/// A column type as Pixie names it (`INT64`, `STRING`, `TIME64NS`, ...), so `px/schemas` reads
/// as Pixie's does.
fn pixie_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Int64 => "INT64".to_string(),
        DataType::Float64 => "FLOAT64".to_string(),
        DataType::Utf8 => "STRING".to_string(),
        DataType::Timestamp(_, _) => "TIME64NS".to_string(),
        other => other.to_string(),
    }
}

/// A rhai value as JSON (for widget specs).
fn to_json(d: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if d.is_unit() {
        Value::Null
    } else if let Ok(b) = d.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Value::from(i)
    } else if let Ok(f) = d.as_float() {
        Value::from(f)
    } else if let Some(a) = d.read_lock::<Array>() {
        Value::Array(a.iter().map(to_json).collect())
    } else if let Some(m) = d.read_lock::<Map>() {
        Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
    } else {
        Value::String(d.to_string())
    }
}

/// Runs `source`, filling `env.state`.
pub(crate) fn run(env: &Arc<Env>, source: &str, limits: &EngineConfig) -> Result<(), EngineError> {
    let engine = build(env, limits);
    let ast = engine.compile(source).map_err(EngineError::from_parse)?;
    engine
        .run_ast(&ast)
        .map_err(|e| EngineError::from_rhai(*e, limits))
}

fn build(env: &Arc<Env>, limits: &EngineConfig) -> rhai::Engine {
    let mut engine = rhai::Engine::new();
    let timeout = limits.script_timeout;
    // Scripts build queries; they never need much of anything.
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(1 << 20)
        .set_max_array_size(10_000)
        .set_max_map_size(10_000)
        .set_max_variables(1_000)
        .set_max_functions(1_000)
        .set_max_modules(0);
    let deadline = Instant::now() + timeout;
    engine.on_progress(move |ops| {
        (ops % 4096 == 0 && Instant::now() > deadline).then(|| Dynamic::from("deadline"))
    });
    engine.on_print(|s| tracing::debug!(target: "pxtop_engine::script", "{s}"));
    engine.on_debug(|s, _, pos| tracing::debug!(target: "pxtop_engine::script", "{pos:?}: {s}"));
    engine
        .register_type_with_name::<Frame>("DataFrame")
        .register_type_with_name::<ColExpr>("Expr")
        .register_type_with_name::<Grouped>("GroupBy")
        .register_type_with_name::<CtxProxy>("Ctx");
    register_frame(&mut engine, env);
    register_expr(&mut engine);
    engine.register_static_module("px", px_module(env).into());
    engine
}

/// `df.ctx` (no call), so PxL's `df.ctx["service"]` works too.
#[derive(Debug, Clone)]
struct CtxProxy(Frame);

fn register_frame(engine: &mut rhai::Engine, env: &Arc<Env>) {
    engine
        .register_fn("col", |f: &mut Frame, name: &str| f.col(name))
        .register_indexer_get(|f: &mut Frame, name: ImmutableString| f.col(&name))
        .register_indexer_get(|f: &mut Frame, cond: ColExpr| f.filter(cond.0))
        .register_indexer_get(|f: &mut Frame, cols: Array| {
            f.select(&names(&Dynamic::from(cols), "df[[...]]")?)
        })
        .register_indexer_set(|f: &mut Frame, name: ImmutableString, v: Dynamic| {
            let e = to_expr(v, &format!("df[{name:?}] = ..."))?;
            f.set(&name, e)
        })
        .register_fn("filter", |f: &mut Frame, cond: ColExpr| f.filter(cond.0))
        .register_fn("filter", |_: &mut Frame, cond: bool| -> RhaiResult<Frame> {
            Err(invalid(format!(
                "filter got the plain bool {cond}, not a column condition; compare a column, \
                 like df.filter(df.resp_status >= 400)"
            )))
        })
        .register_fn("select", |f: &mut Frame, cols: Dynamic| {
            f.select(&names(&cols, "select")?)
        })
        .register_fn("drop", |f: &mut Frame, cols: Dynamic| {
            f.drop_cols(&names(&cols, "drop")?)
        })
        .register_fn("head", |f: &mut Frame, n: INT| f.head(n))
        .register_fn("head", |_: &mut Frame, n: Dynamic| -> RhaiResult<Frame> {
            Err(invalid(format!(
                "head takes a row count like head(10), got a {}",
                n.type_name()
            )))
        })
        .register_fn(
            "merge",
            |f: &mut Frame, right: Frame, how: &str, left_on: Dynamic, right_on: Dynamic| {
                merge(f, &right, how, &left_on, &right_on, &Dynamic::UNIT)
            },
        )
        .register_fn(
            "merge",
            |f: &mut Frame,
             right: Frame,
             how: &str,
             left_on: Dynamic,
             right_on: Dynamic,
             suffixes: Dynamic| {
                merge(f, &right, how, &left_on, &right_on, &suffixes)
            },
        )
        .register_fn("append", |f: &mut Frame, other: Frame| f.append(&other))
        .register_fn("head", |f: &mut Frame| f.head(5))
        .register_fn("sort", |f: &mut Frame, keys: Dynamic| {
            f.sort(&names(&keys, "sort")?)
        })
        .register_fn("groupby", |f: &mut Frame, keys: Dynamic| {
            f.groupby(names(&keys, "groupby")?)
        })
        .register_fn("agg", |g: &mut Grouped, spec: Map| {
            g.frame.aggregate(&g.keys, &spec)
        })
        .register_fn("agg", |f: &mut Frame, spec: Map| f.aggregate(&[], &spec))
        .register_fn("columns", |f: &mut Frame| -> Array {
            f.columns().into_iter().map(Dynamic::from).collect()
        })
        .register_fn("to_string", |f: &mut Frame| {
            f.plan.display_indent().to_string()
        })
        .register_fn("to_debug", |f: &mut Frame| {
            f.plan.display_indent().to_string()
        })
        .register_fn("to_string", |e: &mut ColExpr| e.0.to_string())
        .register_fn("to_debug", |e: &mut ColExpr| e.0.to_string())
        .register_get("ctx", |f: &mut Frame| CtxProxy(f.clone()));
    let e = env.clone();
    engine.register_fn("ctx", move |f: &mut Frame, key: &str| e.ctx(f, key));
    let e = env.clone();
    engine.register_indexer_get(move |p: &mut CtxProxy, key: ImmutableString| e.ctx(&p.0, &key));
}

fn register_expr(engine: &mut rhai::Engine) {
    let ops = [
        ("+", Operator::Plus),
        ("-", Operator::Minus),
        ("*", Operator::Multiply),
        ("/", Operator::Divide),
        ("%", Operator::Modulo),
        ("==", Operator::Eq),
        ("!=", Operator::NotEq),
        ("<", Operator::Lt),
        ("<=", Operator::LtEq),
        (">", Operator::Gt),
        (">=", Operator::GtEq),
        ("&", Operator::And),
        ("|", Operator::Or),
    ];
    for (name, op) in ops {
        let f = binop(op);
        engine
            .register_fn(name, move |a: ColExpr, b: ColExpr| ColExpr(f(a.0, b.0)))
            .register_fn(name, move |a: ColExpr, b: INT| ColExpr(f(a.0, lit(b))))
            .register_fn(name, move |a: INT, b: ColExpr| ColExpr(f(lit(a), b.0)))
            .register_fn(name, move |a: ColExpr, b: FLOAT| ColExpr(f(a.0, lit(b))))
            .register_fn(name, move |a: FLOAT, b: ColExpr| ColExpr(f(lit(a), b.0)))
            .register_fn(name, move |a: ColExpr, b: ImmutableString| {
                ColExpr(f(a.0, lit(b.as_str())))
            })
            .register_fn(name, move |a: ImmutableString, b: ColExpr| {
                ColExpr(f(lit(a.as_str()), b.0))
            })
            .register_fn(name, move |a: ColExpr, b: bool| ColExpr(f(a.0, lit(b))))
            .register_fn(name, move |a: bool, b: ColExpr| ColExpr(f(lit(a), b.0)));
    }
    engine
        .register_fn("-", |a: ColExpr| ColExpr(-a.0))
        .register_fn("!", |a: ColExpr| ColExpr(!a.0))
        .register_fn("contains", |a: &mut ColExpr, s: &str| {
            ColExpr(contains(a.0.clone(), lit(s)))
        })
        .register_fn("starts_with", |a: &mut ColExpr, s: &str| {
            ColExpr(starts_with(a.0.clone(), lit(s)))
        })
        .register_fn("ends_with", |a: &mut ColExpr, s: &str| {
            ColExpr(ends_with(a.0.clone(), lit(s)))
        })
        .register_fn("lower", |a: &mut ColExpr| ColExpr(lower(a.0.clone())))
        .register_fn("upper", |a: &mut ColExpr| ColExpr(upper(a.0.clone())))
        .register_fn("is_null", |a: &mut ColExpr| ColExpr(a.0.clone().is_null()))
        .register_fn("is_not_null", |a: &mut ColExpr| {
            ColExpr(a.0.clone().is_not_null())
        })
        .register_fn("normalize_pgsql", |a: &mut ColExpr| {
            normalized(a.0.clone(), SqlDialect::Postgres)
        })
        .register_fn("normalize_mysql", |a: &mut ColExpr| {
            normalized(a.0.clone(), SqlDialect::MySql)
        })
        .register_fn("matches", |a: &mut ColExpr, re: &str| {
            regex_match(a.0.clone(), re)
        })
        .register_fn("substring", |a: &mut ColExpr, start: INT, len: INT| {
            substring_of(a.0.clone(), start, len)
        })
        .register_fn("length", |a: &mut ColExpr| {
            ColExpr(character_length(a.0.clone()))
        })
        .register_fn("replace", |a: &mut ColExpr, from: &str, to: &str| {
            ColExpr(replace(a.0.clone(), lit(from), lit(to)))
        })
        .register_fn("cast", |a: &mut ColExpr, ty: &str| cast_to(a.0.clone(), ty))
        .register_fn("format_duration", |a: &mut ColExpr| {
            ColExpr(udf::format_duration_udf().call(vec![a.0.clone()]))
        })
        .register_fn("format_bytes", |a: &mut ColExpr| {
            ColExpr(udf::format_bytes_udf().call(vec![a.0.clone()]))
        })
        .register_fn("hdr_quantile", |a: &mut ColExpr, q: FLOAT| {
            hdr_quantile(a.0.clone(), q)
        })
        .register_fn("hdr_count", |a: &mut ColExpr| {
            ColExpr(hdr::count_udf().call(vec![a.0.clone()]))
        })
        .register_fn("hdr_buckets", |a: &mut ColExpr| {
            ColExpr(hdr::buckets_udf().call(vec![a.0.clone()]))
        });
}

/// `df.merge(...)`'s arguments, checked.
fn merge(
    f: &Frame,
    right: &Frame,
    how: &str,
    left_on: &Dynamic,
    right_on: &Dynamic,
    suffixes: &Dynamic,
) -> RhaiResult<Frame> {
    let left_on = names(left_on, "merge left_on")?;
    let right_on = names(right_on, "merge right_on")?;
    let suffixes = if suffixes.is_unit() {
        vec!["_x".to_string(), "_y".to_string()]
    } else {
        names(suffixes, "merge suffixes")?
    };
    let [sx, sy] = suffixes.as_slice() else {
        return Err(invalid(format!(
            "merge: suffixes must be two strings like [\"_x\", \"_y\"], got {} of them",
            suffixes.len()
        )));
    };
    f.merge(right, how, &left_on, &right_on, (sx, sy))
}

/// `e.matches(re)`: the pattern is checked here, so a bad one fails at the call, not mid-query.
fn regex_match(e: Expr, re: &str) -> RhaiResult<ColExpr> {
    regex::Regex::new(re).map_err(|err| {
        invalid(format!(
            "invalid regular expression {re:?}: {err}; escape special characters with \\\\ \
             (e.g. \"\\\\.\" for a dot)"
        ))
    })?;
    Ok(ColExpr(regexp_like(e, lit(re), None)))
}

/// `e.substring(start, len)`: `start` counts from 0, as in PxL (DataFusion's from 1).
fn substring_of(e: Expr, start: INT, len: INT) -> RhaiResult<ColExpr> {
    if start < 0 || len < 0 {
        return Err(invalid(format!(
            "substring({start}, {len}): start (from 0) and length must be 0 or more"
        )));
    }
    Ok(ColExpr(substring(
        e,
        lit(start.saturating_add(1)),
        lit(len),
    )))
}

/// `e.cast("int" | "float" | "string" | "bool")`.
fn cast_to(e: Expr, ty: &str) -> RhaiResult<ColExpr> {
    let to = match ty {
        "int" | "int64" => DataType::Int64,
        "float" | "float64" => DataType::Float64,
        "string" | "str" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        other => {
            return Err(invalid(format!(
                "cast({other:?}): unknown type; use \"int\", \"float\", \"string\" or \"bool\""
            )));
        }
    };
    Ok(ColExpr(cast(e, to)))
}

/// `h.hdr_quantile(q)`.
fn hdr_quantile(h: Expr, q: FLOAT) -> RhaiResult<ColExpr> {
    if !(0.0..=1.0).contains(&q) {
        return Err(invalid(format!(
            "hdr_quantile({q}): the quantile must be between 0 and 1, like 0.99"
        )));
    }
    Ok(ColExpr(hdr::quantile_udf().call(vec![h, lit(q)])))
}

/// A window as ns: an integer, or a duration string like `"10s"`.
fn window_ns(d: &Dynamic, what: &str) -> RhaiResult<i64> {
    let ns = if let Ok(i) = d.as_int() {
        i
    } else if d.is_string() {
        parse_duration(&d.to_string()).map_err(|e| invalid(format!("{what}: {e}")))?
    } else {
        return Err(invalid(format!(
            "{what}: expected a window in ns or a duration like \"10s\", got a {}",
            d.type_name()
        )));
    };
    if ns <= 0 {
        return Err(invalid(format!(
            "{what}: the window must be positive, got {ns} ns; pass e.g. \"10s\""
        )));
    }
    Ok(ns)
}

/// `px::bin(e, window)`.
fn bin(e: Expr, window: &Dynamic) -> RhaiResult<ColExpr> {
    let w = window_ns(window, "px::bin window")?;
    Ok(ColExpr(udf::bin_udf().call(vec![e, lit(w)])))
}

/// `px::rate(e, window)`: `e` per second over the window.
fn rate(e: Expr, window: &Dynamic) -> RhaiResult<ColExpr> {
    let w = window_ns(window, "px::rate window")?;
    #[expect(clippy::cast_precision_loss, reason = "windows are far below 2^53 ns")]
    let secs = w as f64 / 1e9;
    Ok(ColExpr(
        cast(e, DataType::Float64) / lit(ScalarValue::Float64(Some(secs))),
    ))
}

/// `px::seconds(n)` etc.: `n` units as ns.
fn scaled(n: &Dynamic, unit_ns: i64, what: &str) -> RhaiResult<INT> {
    if let Ok(i) = n.as_int() {
        return Ok(i.saturating_mul(unit_ns));
    }
    if let Ok(f) = n.as_float() {
        #[expect(clippy::cast_precision_loss, reason = "unit sizes are exact in f64")]
        let ns = f * unit_ns as f64;
        #[expect(clippy::cast_possible_truncation, reason = "ns are whole; saturates")]
        return Ok(ns as i64);
    }
    Err(invalid(format!(
        "{what}: expected a number, got a {}",
        n.type_name()
    )))
}

/// `e.normalize_pgsql()` / `e.normalize_mysql()`: the statement text with literals as `?`.
fn normalized(e: datafusion::prelude::Expr, dialect: SqlDialect) -> ColExpr {
    ColExpr(NormalizeUdf::udf(dialect).call(vec![e]))
}

fn px_module(env: &Arc<Env>) -> Module {
    let mut m = Module::new();
    let e = env.clone();
    m.set_native_fn(
        "param",
        move |c: NativeCallContext<'_>, name: &str, default: Dynamic, help: &str| {
            placed(&c, e.param(name, default, help))
        },
    );
    let e = env.clone();
    m.set_native_fn(
        "param",
        move |c: NativeCallContext<'_>, name: &str, default: Dynamic| {
            placed(&c, e.param(name, default, ""))
        },
    );
    let e = env.clone();
    m.set_native_fn("DataFrame", move |c: NativeCallContext<'_>, table: &str| {
        placed(&c, e.dataframe(table, &Dynamic::UNIT, &Dynamic::UNIT))
    });
    let e = env.clone();
    m.set_native_fn(
        "DataFrame",
        move |c: NativeCallContext<'_>, table: &str, start: Dynamic| {
            placed(&c, e.dataframe(table, &start, &Dynamic::UNIT))
        },
    );
    let e = env.clone();
    m.set_native_fn(
        "DataFrame",
        move |c: NativeCallContext<'_>, table: &str, start: Dynamic, end: Dynamic| {
            placed(&c, e.dataframe(table, &start, &end))
        },
    );
    let e = env.clone();
    m.set_native_fn("display", move |c: NativeCallContext<'_>, df: Frame| {
        placed(&c, e.display(df, "output", &Dynamic::UNIT))
    });
    let e = env.clone();
    m.set_native_fn(
        "display",
        move |c: NativeCallContext<'_>, df: Frame, name: &str| {
            placed(&c, e.display(df, name, &Dynamic::UNIT))
        },
    );
    let e = env.clone();
    m.set_native_fn(
        "display",
        move |c: NativeCallContext<'_>, df: Frame, name: &str, widget: Dynamic| {
            placed(&c, e.display(df, name, &widget))
        },
    );
    let now = env.now_ns;
    m.set_native_fn("now", move || Ok(now));
    let e = env.clone();
    m.set_native_fn("schemas", move |c: NativeCallContext<'_>| {
        placed(&c, e.schemas())
    });
    let e = env.clone();
    m.set_native_fn(
        "ctx",
        move |c: NativeCallContext<'_>, df: Frame, key: &str| placed(&c, e.ctx(&df, key)),
    );
    let e = env.clone();
    m.set_native_fn(
        "addr_ctx",
        move |c: NativeCallContext<'_>, addr: Dynamic, key: &str| {
            let build = || {
                let addr = to_expr(addr, "px::addr_ctx address")?;
                let key: CtxKey = key.parse().map_err(|e| invalid(format!("{e}")))?;
                Ok(ColExpr(
                    CtxUdf::addr_udf(e.metadata.clone(), key).call(vec![addr]),
                ))
            };
            placed(&c, build())
        },
    );
    m.set_native_fn(
        "select",
        |c: NativeCallContext<'_>, cond: Dynamic, a: Dynamic, b: Dynamic| {
            let build = || {
                let cond = to_expr(cond, "px::select condition")?;
                let a = to_expr(a, "px::select value")?;
                let b = to_expr(b, "px::select value")?;
                when(cond, a).otherwise(b).map(ColExpr).map_err(df_err)
            };
            placed(&c, build())
        },
    );
    m.set_native_fn("contains", |a: ColExpr, s: &str| {
        Ok(ColExpr(contains(a.0, lit(s))))
    });
    m.set_native_fn("normalize_pgsql", |a: ColExpr| {
        Ok(normalized(a.0, SqlDialect::Postgres))
    });
    m.set_native_fn("normalize_mysql", |a: ColExpr| {
        Ok(normalized(a.0, SqlDialect::MySql))
    });
    m.set_native_fn(
        "regex_match",
        |c: NativeCallContext<'_>, re: &str, a: ColExpr| placed(&c, regex_match(a.0, re)),
    );
    m.set_native_fn(
        "substring",
        |c: NativeCallContext<'_>, a: ColExpr, start: INT, len: INT| {
            placed(&c, substring_of(a.0, start, len))
        },
    );
    m.set_native_fn("length", |a: ColExpr| Ok(ColExpr(character_length(a.0))));
    m.set_native_fn("replace", |a: ColExpr, from: &str, to: &str| {
        Ok(ColExpr(replace(a.0, lit(from), lit(to))))
    });
    m.set_native_fn("cast", |c: NativeCallContext<'_>, a: ColExpr, ty: &str| {
        placed(&c, cast_to(a.0, ty))
    });
    m.set_native_fn(
        "bin",
        |c: NativeCallContext<'_>, a: ColExpr, window: Dynamic| placed(&c, bin(a.0, &window)),
    );
    m.set_native_fn(
        "rate",
        |c: NativeCallContext<'_>, a: ColExpr, window: Dynamic| placed(&c, rate(a.0, &window)),
    );
    for (name, unit) in [
        ("nanoseconds", 1),
        ("microseconds", 1_000),
        ("milliseconds", 1_000_000),
        ("seconds", 1_000_000_000),
        ("minutes", 60_000_000_000),
        ("hours", 3_600_000_000_000),
    ] {
        m.set_native_fn(name, move |c: NativeCallContext<'_>, n: Dynamic| {
            placed(&c, scaled(&n, unit, name))
        });
    }
    m.set_native_fn("duration", |c: NativeCallContext<'_>, s: &str| {
        placed(
            &c,
            parse_duration(s).map_err(|e| invalid(format!("px::duration: {e}"))),
        )
    });
    m.set_native_fn("format_duration", |a: ColExpr| {
        Ok(ColExpr(udf::format_duration_udf().call(vec![a.0])))
    });
    m.set_native_fn("format_bytes", |a: ColExpr| {
        Ok(ColExpr(udf::format_bytes_udf().call(vec![a.0])))
    });
    m.set_native_fn(
        "hdr_quantile",
        |c: NativeCallContext<'_>, h: ColExpr, q: FLOAT| placed(&c, hdr_quantile(h.0, q)),
    );
    m.set_native_fn("hdr_count", |h: ColExpr| {
        Ok(ColExpr(hdr::count_udf().call(vec![h.0])))
    });
    m.set_native_fn("hdr_buckets", |h: ColExpr| {
        Ok(ColExpr(hdr::buckets_udf().call(vec![h.0])))
    });
    let e = env.clone();
    m.set_native_fn("sql", move |c: NativeCallContext<'_>, query: &str| {
        placed(&c, e.sql(query))
    });
    m
}

/// Gives an error from a `px::` function the call's position: rhai places errors of method and
/// operator calls itself, but not of calls into a module.
fn placed<T>(c: &NativeCallContext<'_>, r: RhaiResult<T>) -> RhaiResult<T> {
    r.map_err(|mut e| {
        if e.position().is_none() {
            e.set_position(c.call_position());
        }
        e
    })
}
