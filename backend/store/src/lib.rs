//! pxtop's table store: per table a ring of Arrow record batches with min/max `time_`,
//! a byte budget carved from one node budget, oldest batch dropped first (counted), and
//! snapshots pruned by time. No tokio, no I/O.
//!
//! Small appends (the agent flushes every ~100 ms) collect in a per-table "hot" list and are
//! concatenated into one sealed batch of about [`StoreConfig::seal_rows`] rows, so queries scan
//! few, large batches. Readers take a snapshot (cheap `Arc` clones of batches) under a read lock
//! and never block writers for longer than that copy.
#![forbid(unsafe_code)]

pub mod rows;
pub mod schema;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

use std::collections::VecDeque;

use arrow::{
    array::{Array, RecordBatch, TimestampNanosecondArray},
    compute::concat_batches,
    datatypes::SchemaRef,
    error::ArrowError,
};
use parking_lot::RwLock;

pub use rows::{
    CmdEvent, CmdEventsBuilder, ConnStatsBuilder, ConnStatsRow, HttpEvent, HttpEventsBuilder,
    NetworkStatsBuilder, NetworkStatsRow, ProbeStatusBuilder, ProbeStatusRow, ProcessStatsBuilder,
    ProcessStatsRow, StackTraceRow, StackTracesBuilder, TcpStatsBuilder, TcpStatsRow, Val,
};
pub use schema::{PlannedTable, TableDef};

/// Default node budget: 1 GiB split across tables by their `budget_percent`.
pub const DEFAULT_NODE_BUDGET_BYTES: u64 = 1 << 30;

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bytes all tables together may hold.
    pub node_budget_bytes: u64,
    /// Per-table budgets that override the node split, by table name.
    pub table_budgets: Vec<(String, u64)>,
    /// Rows collected before small appends are sealed into one batch.
    pub seal_rows: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            node_budget_bytes: DEFAULT_NODE_BUDGET_BYTES,
            table_budgets: Vec::new(),
            seal_rows: 8192,
        }
    }
}

/// A time window in ns since the Unix epoch: `start_ns <= time_ < end_ns`; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub start_ns: Option<i64>,
    /// Exclusive upper bound.
    pub end_ns: Option<i64>,
}

impl TimeRange {
    /// Everything.
    pub const ALL: TimeRange = TimeRange {
        start_ns: None,
        end_ns: None,
    };

    /// Whether a batch spanning `[min, max]` may hold rows in this range.
    fn overlaps(&self, min: i64, max: i64) -> bool {
        self.start_ns.is_none_or(|s| max >= s) && self.end_ns.is_none_or(|e| min < e)
    }
}

/// The batches of one table that may hold rows in a time range, oldest first. Rows outside the
/// range can still be present: pruning is per batch, callers filter rows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The table's schema.
    pub schema: SchemaRef,
    /// Batches, oldest first.
    pub batches: Vec<RecordBatch>,
}

impl Snapshot {
    /// Rows in all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// One table's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// Canonical name.
    pub name: &'static str,
    /// Rows held now.
    pub rows: u64,
    /// Bytes held now (Arrow buffer memory).
    pub bytes: u64,
    /// The byte budget.
    pub budget_bytes: u64,
    /// Rows appended since start.
    pub appended_rows: u64,
    /// Rows dropped to stay within budget since start.
    pub dropped_rows: u64,
    /// Batches held now.
    pub batches: u64,
}

/// Store errors. Each names the offending value and what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such table.
    #[error("unknown table {name:?}; tables are: {}", known.join(", "))]
    UnknownTable {
        /// What was asked for.
        name: String,
        /// The tables that exist.
        known: Vec<String>,
    },
    /// A table Pixie has whose data source pxtop does not have yet.
    #[error(
        "no data source: table {name:?} is not collected yet (it comes with {feature}); tables \
         with data sources: {}",
        known.join(", ")
    )]
    NoDataSource {
        /// The table's canonical name.
        name: &'static str,
        /// The feature that will collect it.
        feature: &'static str,
        /// The tables that exist.
        known: Vec<String>,
    },
    /// A batch whose columns differ from the table's schema.
    #[error("batch for table {table:?} does not match its schema: {detail}")]
    SchemaMismatch {
        /// The table.
        table: &'static str,
        /// What differs.
        detail: String,
    },
    /// A per-table budget named a table that does not exist.
    #[error("table budget names unknown table {name:?}; tables are: {}", known.join(", "))]
    UnknownBudgetTable {
        /// The name given.
        name: String,
        /// The tables that exist.
        known: Vec<String>,
    },
    /// Arrow failed (concatenating batches).
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

#[derive(Debug)]
struct Held {
    batch: RecordBatch,
    min_t: i64,
    max_t: i64,
    bytes: u64,
}

impl Held {
    fn new(batch: RecordBatch) -> Self {
        let (min_t, max_t) = time_bounds(&batch);
        let bytes = batch.get_array_memory_size() as u64;
        Self {
            batch,
            min_t,
            max_t,
            bytes,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    sealed: VecDeque<Held>,
    hot: Vec<Held>,
    hot_rows: usize,
    bytes: u64,
    rows: u64,
    appended_rows: u64,
    dropped_rows: u64,
}

#[derive(Debug)]
struct Table {
    def: TableDef,
    budget_bytes: u64,
    inner: RwLock<Inner>,
}

/// The node's tables.
#[derive(Debug)]
pub struct Store {
    tables: Vec<Table>,
    seal_rows: usize,
}

impl Store {
    /// A store holding every table of [`schema::all_tables`], budgets split from the node budget.
    /// Per-table overrides naming unknown tables are ignored; [`Store::try_new`] rejects them.
    pub fn new(config: StoreConfig) -> Self {
        let defs = schema::all_tables();
        let tables = defs
            .into_iter()
            .map(|def| {
                let budget_bytes = config
                    .table_budgets
                    .iter()
                    .find(|(n, _)| n == def.name || def.aliases.contains(&n.as_str()))
                    .map_or(
                        config.node_budget_bytes / 100 * u64::from(def.budget_percent),
                        |(_, b)| *b,
                    );
                Table {
                    def,
                    budget_bytes,
                    inner: RwLock::new(Inner::default()),
                }
            })
            .collect();
        Self {
            tables,
            seal_rows: config.seal_rows.max(1),
        }
    }

    /// Like [`Store::new`], but a per-table budget for an unknown table is an error.
    pub fn try_new(config: StoreConfig) -> Result<Self, StoreError> {
        let defs = schema::all_tables();
        for (name, _) in &config.table_budgets {
            if !defs
                .iter()
                .any(|d| d.name == name || d.aliases.contains(&name.as_str()))
            {
                return Err(StoreError::UnknownBudgetTable {
                    name: name.clone(),
                    known: defs.iter().map(|d| d.name.to_string()).collect(),
                });
            }
        }
        Ok(Self::new(config))
    }

    /// Canonical table names, in a stable order.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.def.name.to_string()).collect()
    }

    /// The canonical name of a table or alias.
    pub fn resolve(&self, name: &str) -> Result<&'static str, StoreError> {
        self.table(name).map(|t| t.def.name)
    }

    /// A table's schema.
    pub fn schema(&self, name: &str) -> Result<SchemaRef, StoreError> {
        self.table(name).map(|t| t.def.schema.clone())
    }

    fn table(&self, name: &str) -> Result<&Table, StoreError> {
        let name = name.strip_suffix(".beta").unwrap_or(name);
        if let Some(t) = self
            .tables
            .iter()
            .find(|t| t.def.name == name || t.def.aliases.contains(&name))
        {
            return Ok(t);
        }
        match schema::planned_tables()
            .iter()
            .find(|p| p.name == name || p.aliases.contains(&name))
        {
            Some(p) => Err(StoreError::NoDataSource {
                name: p.name,
                feature: p.feature,
                known: self.table_names(),
            }),
            None => Err(StoreError::UnknownTable {
                name: name.to_string(),
                known: self.table_names(),
            }),
        }
    }

    /// Appends rows. The oldest batches are dropped (and counted) while the table is over budget.
    pub fn append(&self, name: &str, batch: RecordBatch) -> Result<(), StoreError> {
        let table = self.table(name)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        check_schema(table, &batch)?;
        let held = Held::new(batch);
        let rows = held.batch.num_rows();
        let mut inner = table.inner.write();
        inner.rows += rows as u64;
        inner.appended_rows += rows as u64;
        inner.bytes += held.bytes;
        if rows >= self.seal_rows && inner.hot.is_empty() {
            inner.sealed.push_back(held);
        } else {
            inner.hot_rows += rows;
            inner.hot.push(held);
            if inner.hot_rows >= self.seal_rows {
                seal(&table.def.schema, &mut inner)?;
            }
        }
        while inner.bytes > table.budget_bytes {
            if inner.sealed.is_empty() {
                if inner.hot.is_empty() {
                    break;
                }
                seal(&table.def.schema, &mut inner)?;
            }
            let Some(old) = inner.sealed.pop_front() else {
                break;
            };
            inner.bytes -= old.bytes;
            inner.rows -= old.batch.num_rows() as u64;
            inner.dropped_rows += old.batch.num_rows() as u64;
        }
        Ok(())
    }

    /// The batches of `name` that may hold rows in `range`, oldest first.
    pub fn scan(&self, name: &str, range: TimeRange) -> Result<Snapshot, StoreError> {
        let table = self.table(name)?;
        let inner = table.inner.read();
        let batches = inner
            .sealed
            .iter()
            .chain(inner.hot.iter())
            .filter(|h| range.overlaps(h.min_t, h.max_t))
            .map(|h| h.batch.clone())
            .collect();
        Ok(Snapshot {
            schema: table.def.schema.clone(),
            batches,
        })
    }

    /// Counters of every table.
    pub fn stats(&self) -> Vec<TableStats> {
        self.tables
            .iter()
            .map(|t| {
                let i = t.inner.read();
                TableStats {
                    name: t.def.name,
                    rows: i.rows,
                    bytes: i.bytes,
                    budget_bytes: t.budget_bytes,
                    appended_rows: i.appended_rows,
                    dropped_rows: i.dropped_rows,
                    batches: (i.sealed.len() + i.hot.len()) as u64,
                }
            })
            .collect()
    }
}

fn check_schema(table: &Table, batch: &RecordBatch) -> Result<(), StoreError> {
    let want = table.def.schema.fields();
    let got = batch.schema();
    let got = got.fields();
    if want.len() != got.len() {
        return Err(StoreError::SchemaMismatch {
            table: table.def.name,
            detail: format!("{} columns, expected {}", got.len(), want.len()),
        });
    }
    for (w, g) in want.iter().zip(got.iter()) {
        if w.name() != g.name() || w.data_type() != g.data_type() {
            return Err(StoreError::SchemaMismatch {
                table: table.def.name,
                detail: format!(
                    "column {:?} ({}) where {:?} ({}) was expected",
                    g.name(),
                    g.data_type(),
                    w.name(),
                    w.data_type()
                ),
            });
        }
    }
    Ok(())
}

/// Concatenates the hot batches into one sealed batch.
fn seal(schema: &SchemaRef, inner: &mut Inner) -> Result<(), StoreError> {
    if inner.hot.is_empty() {
        return Ok(());
    }
    let hot = std::mem::take(&mut inner.hot);
    inner.hot_rows = 0;
    let old_bytes: u64 = hot.iter().map(|h| h.bytes).sum();
    let batch = concat_batches(schema, hot.iter().map(|h| &h.batch))?;
    let held = Held::new(batch);
    inner.bytes = inner.bytes - old_bytes + held.bytes;
    inner.sealed.push_back(held);
    Ok(())
}

/// Min and max of the `time_` column (column 0 in every table).
fn time_bounds(batch: &RecordBatch) -> (i64, i64) {
    let Some(times) = batch
        .columns()
        .first()
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
    else {
        return (i64::MIN, i64::MAX);
    };
    if times.null_count() > 0 || times.is_empty() {
        return (i64::MIN, i64::MAX);
    }
    let values = times.values();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for &v in values.iter() {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests;
