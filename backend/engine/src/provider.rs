//! A DataFusion table over one store table. `time_` bounds in the query's filters go to
//! [`Store::scan`], which drops whole batches outside them; DataFusion still filters rows
//! (the pushdown is `Inexact`).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::{
    catalog::{Session, TableProvider},
    common::{DataFusionError, Result, ScalarValue},
    datasource::memory::MemorySourceConfig,
    logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType},
    physical_plan::ExecutionPlan,
};
use pxtop_store::{Store, TimeRange};

/// The time column every table starts with.
pub(crate) const TIME_COL: &str = "time_";

/// One store table, as DataFusion sees it.
#[derive(Debug)]
pub(crate) struct StoreTable {
    store: Arc<Store>,
    name: &'static str,
    schema: SchemaRef,
}

impl StoreTable {
    pub(crate) fn new(store: Arc<Store>, name: &'static str, schema: SchemaRef) -> Self {
        Self {
            store,
            name,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for StoreTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if time_bound(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = time_range(filters);
        let snap = self
            .store
            .scan(self.name, range)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // NB: spread batches over the session's partitions so aggregation uses every core.
        let n = state
            .config_options()
            .execution
            .target_partitions
            .clamp(1, snap.batches.len().max(1));
        let mut parts = vec![Vec::new(); n];
        for (i, b) in snap.batches.into_iter().enumerate() {
            parts[i % n].push(b);
        }
        let exec =
            MemorySourceConfig::try_new_exec(&parts, self.schema.clone(), projection.cloned())?;
        Ok(exec)
    }
}

/// The tightest `[start, end)` the filters imply for `time_` (they are ANDed).
pub(crate) fn time_range(filters: &[Expr]) -> TimeRange {
    let mut range = TimeRange::ALL;
    for f in filters {
        for b in conjuncts(f) {
            match time_bound(b) {
                Some(Bound::Start(s)) => {
                    range.start_ns = Some(range.start_ns.map_or(s, |x| x.max(s)));
                }
                Some(Bound::End(e)) => {
                    range.end_ns = Some(range.end_ns.map_or(e, |x| x.min(e)));
                }
                Some(Bound::Both(s, e)) => {
                    range.start_ns = Some(range.start_ns.map_or(s, |x| x.max(s)));
                    range.end_ns = Some(range.end_ns.map_or(e, |x| x.min(e)));
                }
                None => {}
            }
        }
    }
    range
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        other => vec![other],
    }
}

/// A bound on `time_` one filter implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// `time_ >= ns`.
    Start(i64),
    /// `time_ < ns`.
    End(i64),
    /// Both (an AND of two bounds).
    Both(i64, i64),
}

fn time_bound(e: &Expr) -> Option<Bound> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    if *op == Operator::And {
        let (l, r) = (time_bound(left)?, time_bound(right)?);
        return match (l, r) {
            (Bound::Start(s), Bound::End(e)) | (Bound::End(e), Bound::Start(s)) => {
                Some(Bound::Both(s, e))
            }
            (Bound::Start(a), Bound::Start(b)) => Some(Bound::Start(a.max(b))),
            (Bound::End(a), Bound::End(b)) => Some(Bound::End(a.min(b))),
            _ => None,
        };
    }
    // Normalise to `time_ <op> value`.
    let (op, value) = match (is_time_col(left), is_time_col(right)) {
        (true, false) => (*op, ns_literal(right)?),
        (false, true) => (op.swap()?, ns_literal(left)?),
        _ => return None,
    };
    match op {
        Operator::GtEq => Some(Bound::Start(value)),
        Operator::Gt => Some(Bound::Start(value.saturating_add(1))),
        Operator::Lt => Some(Bound::End(value)),
        Operator::LtEq => Some(Bound::End(value.saturating_add(1))),
        Operator::Eq => Some(Bound::Both(value, value.saturating_add(1))),
        _ => None,
    }
}

fn is_time_col(e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == TIME_COL)
}

fn ns_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _)
        | Expr::Literal(ScalarValue::Int64(Some(v)), _) => Some(*v),
        Expr::Cast(c) => ns_literal(&c.expr),
        Expr::TryCast(c) => ns_literal(&c.expr),
        _ => None,
    }
}

/// `time_ >= start AND time_ < end` for the bounds given.
pub(crate) fn time_filter(start: Option<i64>, end: Option<i64>) -> Option<Expr> {
    use datafusion::prelude::{ident, lit};
    let ts = |v: i64| lit(ScalarValue::TimestampNanosecond(Some(v), None));
    let s = start.map(|v| ident(TIME_COL).gt_eq(ts(v)));
    let e = end.map(|v| ident(TIME_COL).lt(ts(v)));
    match (s, e) {
        (Some(s), Some(e)) => Some(s.and(e)),
        (s, e) => s.or(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_from_filters() {
        let f = time_filter(Some(10), Some(20));
        let r = time_range(&f.into_iter().collect::<Vec<_>>());
        assert_eq!(
            r,
            TimeRange {
                start_ns: Some(10),
                end_ns: Some(20)
            }
        );
        // Two filters narrow each other; unrelated ones are ignored.
        use datafusion::prelude::{ident, lit};
        let ts = |v: i64| lit(ScalarValue::TimestampNanosecond(Some(v), None));
        let filters = vec![
            ident("time_").gt(ts(15)),
            ts(18).gt_eq(ident("time_")),
            ident("latency").gt(lit(5_i64)),
        ];
        assert_eq!(
            time_range(&filters),
            TimeRange {
                start_ns: Some(16),
                end_ns: Some(19)
            }
        );
        assert_eq!(time_range(&[]), TimeRange::ALL);
    }
}
