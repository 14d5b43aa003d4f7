//! The script-side values: a lazily planned `DataFrame` and a column `Expr`. Each operation
//! checks column names against the frame's schema at once (so the error points at the call that
//! named the column) and adds one node to a DataFusion logical plan.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::{
    common::{
        Column, DFSchema, DataFusionError, ScalarValue,
        tree_node::{Transformed, TreeNode},
    },
    functions::core::expr_fn::named_struct,
    functions_aggregate::expr_fn::{
        approx_percentile_cont, avg, count, count_distinct, first_value, max, median, min, sum,
    },
    logical_expr::{
        BinaryExpr, Expr, ExprSchemable, JoinType, LogicalPlan, LogicalPlanBuilder, Operator,
        SortExpr, cast,
    },
    prelude::{ident, lit},
};
use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map};

use crate::{
    error::{RhaiResult, invalid},
    hdr::{self, HdrUdaf},
};

/// Aggregate functions scripts may name, for error messages.
pub(crate) const AGG_FUNCS: &str = "count, count_distinct (nunique), any, sum, mean, min, max, \
     median, p50, p90, p99 (any p1..p99), quantiles, hdr_histogram (hdr)";

/// A column expression (rhai type `Expr`).
#[derive(Debug, Clone)]
pub(crate) struct ColExpr(pub(crate) Expr);

/// A DataFrame (rhai type `DataFrame`): a logical plan, built lazily.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) plan: Arc<LogicalPlan>,
    /// The table it reads, for messages.
    pub(crate) origin: Arc<str>,
}

/// `df.groupby(keys)` waiting for `.agg(...)` (rhai type `GroupBy`).
#[derive(Debug, Clone)]
pub(crate) struct Grouped {
    pub(crate) frame: Frame,
    pub(crate) keys: Vec<String>,
}

/// A DataFusion planning error as a script error.
pub(crate) fn df_err(e: DataFusionError) -> Box<EvalAltResult> {
    invalid(format!(
        "cannot plan this operation: {}",
        e.strip_backtrace()
    ))
}

/// A script value as an expression: an `Expr`, or a number, string or bool literal.
pub(crate) fn to_expr(d: Dynamic, what: &str) -> RhaiResult<Expr> {
    if d.is::<ColExpr>() {
        return Ok(d.cast::<ColExpr>().0);
    }
    if let Ok(i) = d.as_int() {
        return Ok(lit(i));
    }
    if let Ok(f) = d.as_float() {
        return Ok(lit(f));
    }
    if let Ok(b) = d.as_bool() {
        return Ok(lit(b));
    }
    if d.is_string() {
        return Ok(lit(d.to_string()));
    }
    Err(invalid(format!(
        "{what}: expected a column expression (like df.latency) or a number, string or bool, \
         got a {}",
        d.type_name()
    )))
}

/// Names from a string or an array of strings.
pub(crate) fn names(d: &Dynamic, what: &str) -> RhaiResult<Vec<String>> {
    let bad = || {
        invalid(format!(
            "{what}: expected a column name or an array of column names like [\"service\", \
             \"req_path\"], got a {}",
            d.type_name()
        ))
    };
    if d.is_string() {
        return Ok(vec![d.to_string()]);
    }
    let arr = d.read_lock::<Array>().ok_or_else(bad)?;
    arr.iter()
        .map(|v| {
            if v.is_string() {
                Ok(v.to_string())
            } else {
                Err(bad())
            }
        })
        .collect()
}

impl Frame {
    fn schema(&self) -> &DFSchema {
        self.plan.schema()
    }

    /// The frame's column names, in order.
    pub(crate) fn columns(&self) -> Vec<String> {
        self.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn has(&self, name: &str) -> bool {
        self.schema().fields().iter().any(|f| f.name() == name)
    }

    fn unknown_column(&self, name: &str) -> Box<EvalAltResult> {
        invalid(format!(
            "unknown column {name:?} in the DataFrame over {:?}; its columns are: {}",
            self.origin,
            self.columns().join(", ")
        ))
    }

    fn derive(&self, b: Result<LogicalPlanBuilder, DataFusionError>) -> RhaiResult<Frame> {
        let plan = b.and_then(LogicalPlanBuilder::build).map_err(df_err)?;
        Ok(Frame {
            plan: Arc::new(plan),
            origin: self.origin.clone(),
        })
    }

    fn builder(&self) -> LogicalPlanBuilder {
        LogicalPlanBuilder::new_from_arc(self.plan.clone())
    }

    /// `df["name"]`.
    pub(crate) fn col(&self, name: &str) -> RhaiResult<ColExpr> {
        if self.has(name) {
            Ok(ColExpr(ident(name)))
        } else {
            Err(self.unknown_column(name))
        }
    }

    /// Checks that `e` only names this frame's columns, and gives integer literals compared
    /// with a timestamp column the timestamp type (scripts write times as ns integers).
    fn prepare(&self, e: Expr) -> RhaiResult<Expr> {
        if let Some(c) = e.column_refs().into_iter().find(|c| !self.has(&c.name)) {
            return Err(self.unknown_column(&c.name));
        }
        let schema = self.schema();
        let is_ts = |x: &Expr| {
            matches!(x, Expr::Column(_))
                && matches!(x.get_type(schema), Ok(DataType::Timestamp(..)))
        };
        let as_ts = |x: &Expr| match x {
            Expr::Literal(ScalarValue::Int64(Some(v)), _) => {
                Some(lit(ScalarValue::TimestampNanosecond(Some(*v), None)))
            }
            _ => None,
        };
        e.transform_up(|node| {
            if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &node
                && matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                )
            {
                if is_ts(left)
                    && let Some(r) = as_ts(right)
                {
                    let new = Expr::BinaryExpr(BinaryExpr::new(left.clone(), *op, Box::new(r)));
                    return Ok(Transformed::yes(new));
                }
                if is_ts(right)
                    && let Some(l) = as_ts(left)
                {
                    let new = Expr::BinaryExpr(BinaryExpr::new(Box::new(l), *op, right.clone()));
                    return Ok(Transformed::yes(new));
                }
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
        .map_err(df_err)
    }

    /// `df.filter(cond)`.
    pub(crate) fn filter(&self, cond: Expr) -> RhaiResult<Frame> {
        let cond = self.prepare(cond)?;
        self.derive(self.builder().filter(cond))
    }

    /// `df["name"] = value`: replaces the column in place or appends it.
    pub(crate) fn set(&mut self, name: &str, value: Expr) -> RhaiResult<()> {
        let value = self.prepare(value)?.alias(name);
        let mut exprs: Vec<Expr> = Vec::with_capacity(self.schema().fields().len() + 1);
        let mut value = Some(value);
        for (q, f) in self.schema().iter() {
            if f.name() == name {
                if let Some(v) = value.take() {
                    exprs.push(v);
                }
            } else {
                exprs.push(Expr::Column(Column::new(q.cloned(), f.name())));
            }
        }
        exprs.extend(value);
        *self = self.derive(self.builder().project(exprs))?;
        Ok(())
    }

    /// `df.select([...])`.
    pub(crate) fn select(&self, cols: &[String]) -> RhaiResult<Frame> {
        let exprs = cols
            .iter()
            .map(|c| self.col(c).map(|e| e.0))
            .collect::<RhaiResult<Vec<_>>>()?;
        self.derive(self.builder().project(exprs))
    }

    /// `df.drop([...])`.
    pub(crate) fn drop_cols(&self, cols: &[String]) -> RhaiResult<Frame> {
        if let Some(c) = cols.iter().find(|c| !self.has(c)) {
            return Err(self.unknown_column(c));
        }
        let exprs: Vec<Expr> = self
            .schema()
            .iter()
            .filter(|(_, f)| !cols.iter().any(|c| c == f.name()))
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
            .collect();
        if exprs.is_empty() {
            return Err(invalid(format!(
                "drop would remove every column ({}); keep at least one",
                self.columns().join(", ")
            )));
        }
        self.derive(self.builder().project(exprs))
    }

    /// `df.head(n)`.
    pub(crate) fn head(&self, n: i64) -> RhaiResult<Frame> {
        let n = usize::try_from(n)
            .map_err(|_| invalid(format!("head({n}): the row count must be 0 or more")))?;
        self.derive(self.builder().limit(0, Some(n)))
    }

    /// `df.sort("-latency")` / `df.sort(["service", "-latency"])`: `-` means descending.
    pub(crate) fn sort(&self, keys: &[String]) -> RhaiResult<Frame> {
        if keys.is_empty() {
            return Err(invalid(
                "sort needs at least one column, like sort(\"-latency\")",
            ));
        }
        let exprs = keys
            .iter()
            .map(|k| {
                let (name, asc) = match k.strip_prefix('-') {
                    Some(n) => (n, false),
                    None => (k.strip_prefix('+').unwrap_or(k), true),
                };
                // NB: nulls last either way, so the interesting rows come first.
                self.col(name).map(|e| e.0.sort(asc, !asc))
            })
            .collect::<RhaiResult<Vec<SortExpr>>>()?;
        self.derive(self.builder().sort(exprs))
    }

    /// `df.groupby(keys)`.
    pub(crate) fn groupby(&self, keys: Vec<String>) -> RhaiResult<Grouped> {
        if let Some(k) = keys.iter().find(|k| !self.has(k)) {
            return Err(self.unknown_column(k));
        }
        Ok(Grouped {
            frame: self.clone(),
            keys,
        })
    }

    /// `df.agg(spec)` or `df.groupby(keys).agg(spec)`: `spec` maps output names to
    /// `[column, function]`. Output columns: the keys, then the aggregates by name.
    ///
    /// NB: the Aggregate node holds only aggregate calls (so it splits cleanly into partial
    /// and final steps); casts and structs built from them go in a projection above it.
    pub(crate) fn aggregate(&self, keys: &[String], spec: &Map) -> RhaiResult<Frame> {
        if spec.is_empty() {
            return Err(invalid(
                "agg needs at least one aggregate, like agg(#{ requests: [\"latency\", \"count\"] })",
            ));
        }
        let group = keys
            .iter()
            .map(|k| self.col(k).map(|e| e.0))
            .collect::<RhaiResult<Vec<_>>>()?;
        let mut aggs = Vec::new();
        let mut finish: Vec<Expr> = keys.iter().map(ident).collect();
        for (name, v) in spec {
            let (parts, done) = self.agg_expr(name, v)?;
            // NB: percentiles of one column share their histogram (same alias, same call).
            for p in parts {
                if !aggs
                    .iter()
                    .any(|a: &Expr| a.schema_name().to_string() == p.schema_name().to_string())
                {
                    aggs.push(p);
                }
            }
            finish.push(done.alias(name.as_str()));
        }
        let plan = self
            .builder()
            .aggregate(group, aggs)
            .and_then(|b| b.project(finish));
        self.derive(plan)
    }

    /// One `out: [column, function]`: the aggregate calls (aliased to internal names) and the
    /// expression over their results that gives the output column.
    fn agg_expr(&self, out: &str, v: &Dynamic) -> RhaiResult<(Vec<Expr>, Expr)> {
        let shape = || {
            invalid(format!(
                "aggregate {out:?}: expected [column, function] like {out}: [\"latency\", \
                 \"p50\"]; functions are {AGG_FUNCS}"
            ))
        };
        let pair = v.read_lock::<Array>().ok_or_else(shape)?;
        let [c, f] = pair.as_slice() else {
            return Err(shape());
        };
        let input = if c.is_string() {
            self.col(&c.to_string())?.0
        } else if c.is::<ColExpr>() {
            self.prepare(c.clone().cast::<ColExpr>().0)?
        } else {
            return Err(shape());
        };
        let func = f
            .read_lock::<ImmutableString>()
            .ok_or_else(shape)?
            .to_string();
        let ty = input.get_type(self.schema()).map_err(df_err)?;
        // Booleans count as 0/1, so `mean` of a condition is a rate (as in PxL).
        let numeric = if ty == DataType::Boolean {
            cast(input.clone(), DataType::Int64)
        } else {
            input.clone()
        };
        // NB: DataFusion's percentiles are Float64; integer columns (ns latencies) read better
        // as integers, as in Pixie.
        let int_like = ty.is_integer() || ty == DataType::Boolean;
        // Integer percentiles (ns latencies, sizes) read one shared HDR histogram per input
        // column: 3 significant digits, and partial states from PEMs merge exactly. Others
        // use DataFusion's t-digest, whose merged states are approximate.
        let hdr_name = format!("__hdr({numeric})");
        let pct = |q: f64| -> (Expr, Option<Expr>) {
            if int_like {
                let h = HdrUdaf::udaf()
                    .call(vec![cast(numeric.clone(), DataType::Int64)])
                    .alias(hdr_name.clone());
                (
                    h,
                    Some(hdr::quantile_udf().call(vec![ident(&hdr_name), lit(q)])),
                )
            } else {
                let p = approx_percentile_cont(numeric.clone().sort(true, false), lit(q), None);
                (p, None)
            }
        };
        let tmp = |i: usize| format!("__{out}_{i}");
        let single = |e: Expr| (vec![e.alias(tmp(0))], ident(tmp(0)));
        let parts = match func.as_str() {
            "count" => single(count(input)),
            "count_distinct" | "nunique" => single(count_distinct(input)),
            "any" => single(first_value(input, vec![])),
            "sum" => single(sum(numeric)),
            "mean" | "avg" => single(avg(numeric)),
            "min" => single(min(input)),
            "max" => single(max(input)),
            "median" => single(median(numeric)),
            "hdr_histogram" | "hdr" => {
                if !(int_like || matches!(ty, DataType::Timestamp(..) | DataType::Duration(_))) {
                    return Err(invalid(format!(
                        "aggregate {out:?}: hdr_histogram needs an integer column (ns \
                         latencies, sizes), got {ty}; cast it with .cast(\"int\")"
                    )));
                }
                single(HdrUdaf::udaf().call(vec![cast(numeric, DataType::Int64)]))
            }
            "quantiles" => {
                let mut calls = Vec::new();
                let mut fields = Vec::new();
                for (i, (label, q)) in QUANTILES.iter().enumerate() {
                    fields.push(lit(*label));
                    match pct(*q) {
                        (h, Some(read)) => {
                            calls.push(h);
                            fields.push(read);
                        }
                        (p, None) => {
                            calls.push(p.alias(tmp(i)));
                            fields.push(ident(tmp(i)));
                        }
                    }
                }
                (calls, named_struct(fields))
            }
            p => match percentile(p) {
                Some(q) => match pct(q) {
                    (h, Some(read)) => (vec![h], read),
                    (p, None) => single(p),
                },
                None => {
                    return Err(invalid(format!(
                        "aggregate {out:?}: unknown function {p:?}; functions are {AGG_FUNCS}"
                    )));
                }
            },
        };
        Ok(parts)
    }

    /// `df.merge(right, how, left_on, right_on, suffixes)`: a join on equal keys. Output
    /// columns: the left's, then the right's; names on both sides get the suffixes.
    pub(crate) fn merge(
        &self,
        right: &Frame,
        how: &str,
        left_on: &[String],
        right_on: &[String],
        suffixes: (&str, &str),
    ) -> RhaiResult<Frame> {
        let join_type = match how {
            "inner" => JoinType::Inner,
            "left" => JoinType::Left,
            "right" => JoinType::Right,
            "outer" | "full" => JoinType::Full,
            other => {
                return Err(invalid(format!(
                    "merge: how={other:?} is not a join kind; use \"inner\", \"left\", \
                     \"right\" or \"outer\""
                )));
            }
        };
        if left_on.is_empty() || left_on.len() != right_on.len() {
            return Err(invalid(format!(
                "merge: left_on ({}) and right_on ({}) must name as many columns each, at \
                 least one",
                left_on.join(", "),
                right_on.join(", ")
            )));
        }
        if let Some(c) = left_on.iter().find(|c| !self.has(c)) {
            return Err(self.unknown_column(c));
        }
        if let Some(c) = right_on.iter().find(|c| !right.has(c)) {
            return Err(right.unknown_column(c));
        }
        let (lq, rq) = ("__left", "__right");
        let lcols = self.columns();
        let rcols = right.columns();
        let mut exprs = Vec::with_capacity(lcols.len() + rcols.len());
        let mut seen = std::collections::BTreeSet::new();
        for (q, cols, other, sfx) in [
            (lq, &lcols, &rcols, suffixes.0),
            (rq, &rcols, &lcols, suffixes.1),
        ] {
            for c in cols {
                let name = if other.contains(c) {
                    format!("{c}{sfx}")
                } else {
                    c.clone()
                };
                if !seen.insert(name.clone()) {
                    return Err(invalid(format!(
                        "merge: two output columns would be named {name:?}; pass other \
                         suffixes, like [\"_left\", \"_right\"]"
                    )));
                }
                exprs.push(Expr::Column(Column::new(Some(q), c)).alias(name));
            }
        }
        let key = |q: &str, cs: &[String]| -> Vec<Column> {
            cs.iter().map(|c| Column::new(Some(q), c)).collect()
        };
        let rplan = LogicalPlanBuilder::new_from_arc(right.plan.clone())
            .alias(rq)
            .and_then(LogicalPlanBuilder::build)
            .map_err(df_err)?;
        let plan = self
            .builder()
            .alias(lq)
            .and_then(|b| {
                b.join(
                    rplan,
                    join_type,
                    (key(lq, left_on), key(rq, right_on)),
                    None,
                )
            })
            .and_then(|b| b.project(exprs))
            .and_then(LogicalPlanBuilder::build)
            .map_err(df_err)?;
        Ok(Frame {
            plan: Arc::new(plan),
            origin: Arc::from(format!("{} merged with {}", self.origin, right.origin)),
        })
    }

    /// `df.append(other)`: the rows of both (union all). Columns must match by name and type;
    /// `other`'s are reordered to this frame's order.
    pub(crate) fn append(&self, other: &Frame) -> RhaiResult<Frame> {
        let mine = self.schema();
        let theirs = other.schema();
        let ty = |s: &DFSchema, n: &str| {
            s.fields()
                .iter()
                .find(|f| f.name() == n)
                .map(|f| f.data_type().clone())
        };
        let mut problems = Vec::new();
        for f in mine.fields() {
            match ty(theirs, f.name()) {
                None => problems.push(format!("{} is missing from the appended frame", f.name())),
                Some(t) if &t != f.data_type() => problems.push(format!(
                    "{} is {} here but {t} in the appended frame",
                    f.name(),
                    f.data_type()
                )),
                Some(_) => {}
            }
        }
        for f in theirs.fields() {
            if ty(mine, f.name()).is_none() {
                problems.push(format!("{} is only in the appended frame", f.name()));
            }
        }
        if !problems.is_empty() {
            return Err(invalid(format!(
                "append needs the same columns with the same types: {}; select, drop or cast \
                 columns so both match",
                problems.join("; ")
            )));
        }
        let order: Vec<Expr> = mine
            .fields()
            .iter()
            .filter_map(|f| theirs.iter().find(|(_, t)| t.name() == f.name()))
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
            .collect();
        let reordered = LogicalPlanBuilder::new_from_arc(other.plan.clone())
            .project(order)
            .and_then(LogicalPlanBuilder::build)
            .map_err(df_err)?;
        let plan = self
            .builder()
            .union(reordered)
            .and_then(LogicalPlanBuilder::build)
            .map_err(df_err)?;
        Ok(Frame {
            plan: Arc::new(plan),
            origin: self.origin.clone(),
        })
    }
}

/// `quantiles`' fields.
const QUANTILES: [(&str, f64); 5] = [
    ("p01", 0.01),
    ("p10", 0.10),
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
];

/// `p50` -> 0.5.
fn percentile(s: &str) -> Option<f64> {
    let n: u8 = s.strip_prefix('p')?.parse().ok()?;
    (1..=99).contains(&n).then(|| f64::from(n) / 100.0)
}

/// Expressions for operators: `a <op> b` for every pairing of `Expr` and literal.
pub(crate) fn binop(op: Operator) -> impl Fn(Expr, Expr) -> Expr + Copy + Send + Sync + 'static {
    move |a, b| Expr::BinaryExpr(BinaryExpr::new(Box::new(a), op, Box::new(b)))
}
