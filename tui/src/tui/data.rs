//! Result tables for display: the Arrow arrays as they arrived, formatted on demand (times
//! human-readable, latencies in ns/µs/ms/s), with typed sort keys so numbers sort as numbers.
//! Only what is on screen is ever formatted and kept: the rows in view, the detail pane.

use std::cmp::Ordering;
use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, FixedOffset};

use crate::client::ResultTable;
use crate::output::display_value;

/// How a column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A point in time (ns since the epoch), shown as a date and time.
    Time,
    /// A duration in ns, shown with a unit (`850 ns`, `12.3 µs`, `4.56 ms`).
    Duration,
    /// An integer.
    Int,
    /// A floating-point number.
    Float,
    /// `true`/`false`.
    Bool,
    /// Anything else, as arrow displays it.
    Text,
}

impl ColumnKind {
    /// Numbers read best right-aligned.
    pub fn right_aligned(self) -> bool {
        matches!(
            self,
            ColumnKind::Duration | ColumnKind::Int | ColumnKind::Float
        )
    }
}

/// A column's name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// How it is shown.
    pub kind: ColumnKind,
}

/// What rows sort by: typed, so `9 < 10` and times order by instant.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// A null; sorts before everything.
    Null,
    /// Integers, times and durations (ns), booleans (0/1).
    Int(i64),
    /// Floats.
    Float(f64),
    /// Text: the cell's own text (not copied: a table of 100,000 rows keeps one copy).
    Text,
}

impl SortKey {
    /// A total order of keys: nulls first, then numbers (ints and floats compared by value),
    /// then text (all text keys equal here: [`Cell::sort_cmp`] orders them by their text).
    pub fn total_cmp(&self, other: &SortKey) -> Ordering {
        use SortKey::{Float, Int, Null, Text};
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Int(a), Float(b)) => (*a as f64).total_cmp(b),
            (Float(a), Int(b)) => a.total_cmp(&(*b as f64)),
            (Text, Text) => Ordering::Equal,
            (Text, _) => Ordering::Greater,
            (_, Text) => Ordering::Less,
        }
    }
}

/// One cell: its full text (newlines kept, for the detail pane) and its sort key. 32 bytes
/// plus the text: a 100,000-row, 20-column result is 2 million of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The display text; empty for null.
    pub text: Box<str>,
    /// What the cell sorts by.
    pub key: SortKey,
}

impl Cell {
    /// The order rows sort in by this column: [`SortKey::total_cmp`], text by its text.
    pub fn sort_cmp(&self, other: &Cell) -> Ordering {
        match (&self.key, &other.key) {
            (SortKey::Text, SortKey::Text) => self.text.cmp(&other.text),
            (a, b) => a.total_cmp(b),
        }
    }
}

/// One output table ready to draw. It keeps the Arrow arrays it arrived as (shared with the
/// decoded result, not copied) and formats only what is asked for: the rows on screen, the
/// detail pane, a filter pass. A 100,000-row, 20-column result is its wire size in memory, not
/// two million formatted strings.
#[derive(Debug, Clone)]
pub struct TableData {
    /// The output table's name.
    pub name: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The sort the script asked for (`#{ sort: "-requests" }`): column index, descending.
    pub default_sort: Option<(usize, bool)>,
    /// Per column, the widest one-line cell (capped at [`MAX_COLUMN_WIDTH`]).
    pub widths: Vec<usize>,
    /// The widget the spec asks for: `None` for a table, `Err` (why) when the table does not
    /// fit the spec (the table shows instead).
    pub widget: Option<Result<super::views::Widget, String>>,
    /// Per column, its values: one chunk per record batch.
    values: Vec<Vec<Chunk>>,
    /// The first row of each batch, ascending (`starts[0] == 0`).
    starts: Vec<usize>,
    /// Rows over all batches.
    len: usize,
    /// Where times are shown.
    offset: FixedOffset,
}

/// One batch's values of one column, typed for formatting and sorting.
#[derive(Debug, Clone)]
enum Chunk {
    /// Times (ns since the epoch), durations (ns) and integers.
    Int(ColumnKind, Int64Array),
    /// Floats: the values to sort by, and the array as it came to show (decimals keep their
    /// scale).
    Float(Float64Array, ArrayRef),
    /// Booleans.
    Bool(BooleanArray),
    /// UTF-8 strings of any offset width or layout (or a dictionary of them, see
    /// [`crate::client::compact`]), borrowed as they are.
    Str(ArrayRef),
    /// Anything else, as arrow displays it; sorted by that text.
    Other(ArrayRef),
}

impl Chunk {
    fn new(field: &Field, array: &ArrayRef) -> Chunk {
        let kind = kind_of(field);
        match kind {
            ColumnKind::Time | ColumnKind::Duration | ColumnKind::Int => {
                if let Some(ints) = as_i64(array, kind) {
                    return Chunk::Int(kind, ints.as_primitive::<Int64Type>().clone());
                }
            }
            ColumnKind::Float => {
                if let Some(f) = cast_lossy(array, &DataType::Float64) {
                    return Chunk::Float(f.as_primitive::<Float64Type>().clone(), array.clone());
                }
            }
            ColumnKind::Bool => return Chunk::Bool(array.as_boolean().clone()),
            ColumnKind::Text => {}
        }
        match array.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Chunk::Str(array.clone()),
            DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                Chunk::Str(array.clone())
            }
            _ => Chunk::Other(array.clone()),
        }
    }

    fn array(&self) -> &dyn Array {
        match self {
            Chunk::Int(_, a) => a,
            Chunk::Float(a, _) => a,
            Chunk::Bool(a) => a,
            Chunk::Str(a) | Chunk::Other(a) => a.as_ref(),
        }
    }

    fn key(&self, i: usize) -> SortKey {
        if self.array().is_null(i) {
            return SortKey::Null;
        }
        match self {
            Chunk::Int(_, a) => SortKey::Int(a.value(i)),
            Chunk::Float(a, _) => SortKey::Float(a.value(i)),
            Chunk::Bool(a) => SortKey::Int(i64::from(a.value(i))),
            Chunk::Str(_) | Chunk::Other(_) => SortKey::Text,
        }
    }

    /// The string of a [`Chunk::Str`] value, without copying.
    fn str(&self, i: usize) -> Option<&str> {
        let Chunk::Str(a) = self else {
            return None;
        };
        if a.is_null(i) {
            return Some("");
        }
        Some(match a.data_type() {
            DataType::Utf8 => a.as_string::<i32>().value(i),
            DataType::LargeUtf8 => a.as_string::<i64>().value(i),
            DataType::Dictionary(..) => {
                let d = a.as_dictionary::<arrow::datatypes::Int32Type>();
                let key = usize::try_from(d.keys().value(i)).unwrap_or_default();
                d.values().as_string::<i32>().value(key)
            }
            _ => a.as_string_view().value(i),
        })
    }

    /// Value `i`'s text: borrowed for strings, else written into `buf`. Empty for null.
    fn text<'a>(&'a self, i: usize, offset: FixedOffset, buf: &'a mut String) -> &'a str {
        if let Some(s) = self.str(i) {
            return s;
        }
        buf.clear();
        if self.array().is_null(i) {
            return buf;
        }
        match self {
            Chunk::Int(ColumnKind::Time, a) => push_time(buf, a.value(i), offset),
            Chunk::Int(ColumnKind::Duration, a) => push_duration(buf, a.value(i)),
            Chunk::Int(_, a) => {
                let _ = write!(buf, "{}", a.value(i));
            }
            Chunk::Bool(a) => buf.push_str(if a.value(i) { "true" } else { "false" }),
            Chunk::Float(_, shown) | Chunk::Other(shown) => {
                buf.push_str(&display_value(shown.as_ref(), i));
            }
            // Borrowed above.
            Chunk::Str(_) => {}
        }
        buf
    }
}

impl Chunk {
    /// Feeds value `i` to `h` (for telling rows apart when a follow poll overlaps).
    fn hash_value(&self, i: usize, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        if self.array().is_null(i) {
            0u8.hash(h);
            return;
        }
        1u8.hash(h);
        match self {
            Chunk::Int(_, a) => a.value(i).hash(h),
            Chunk::Float(a, _) => a.value(i).to_bits().hash(h),
            Chunk::Bool(a) => a.value(i).hash(h),
            Chunk::Str(_) => self.str(i).hash(h),
            Chunk::Other(a) => display_value(a.as_ref(), i).hash(h),
        }
    }

    /// The values where `mask` is true, copied into a new chunk.
    fn filter(&self, mask: &BooleanArray) -> Result<Chunk, ArrowError> {
        self.map(|a| arrow::compute::filter(a, mask))
    }

    /// This chunk's values then `other`'s, copied into one chunk (of the same variant).
    fn concat(&self, other: &Chunk) -> Result<Chunk, ArrowError> {
        Ok(match (self, other) {
            (Chunk::Int(kind, a), Chunk::Int(_, b)) => Chunk::Int(
                *kind,
                arrow::compute::concat(&[a, b])?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            (Chunk::Float(a, shown), Chunk::Float(b, other_shown)) => Chunk::Float(
                arrow::compute::concat(&[a, b])?
                    .as_primitive::<Float64Type>()
                    .clone(),
                arrow::compute::concat(&[shown.as_ref(), other_shown.as_ref()])?,
            ),
            (Chunk::Bool(a), Chunk::Bool(b)) => {
                Chunk::Bool(arrow::compute::concat(&[a, b])?.as_boolean().clone())
            }
            (Chunk::Str(a), Chunk::Str(b)) => {
                // One batch's strings may be a dictionary and the next's not.
                let b = arrow::compute::cast(b, a.data_type())?;
                Chunk::Str(arrow::compute::concat(&[a.as_ref(), b.as_ref()])?)
            }
            (Chunk::Other(a), Chunk::Other(b)) => {
                Chunk::Other(arrow::compute::concat(&[a.as_ref(), b.as_ref()])?)
            }
            _ => {
                let kinds = "chunks of different kinds".into();
                return Err(ArrowError::InvalidArgumentError(kinds));
            }
        })
    }

    /// The values at `indices`, copied into a new chunk.
    fn take(&self, indices: &arrow::array::UInt32Array) -> Result<Chunk, ArrowError> {
        self.map(|a| arrow::compute::take(a, indices, None))
    }

    /// `f` applied to each array of this chunk (a kernel keeping the type: take, filter).
    fn map(
        &self,
        f: impl Fn(&dyn Array) -> Result<ArrayRef, ArrowError>,
    ) -> Result<Chunk, ArrowError> {
        Ok(match self {
            Chunk::Int(kind, a) => Chunk::Int(*kind, f(a)?.as_primitive::<Int64Type>().clone()),
            Chunk::Float(a, shown) => Chunk::Float(
                f(a)?.as_primitive::<Float64Type>().clone(),
                f(shown.as_ref())?,
            ),
            Chunk::Bool(a) => Chunk::Bool(f(a)?.as_boolean().clone()),
            Chunk::Str(a) => Chunk::Str(f(a.as_ref())?),
            Chunk::Other(a) => Chunk::Other(f(a.as_ref())?),
        })
    }
}

/// The largest time in a time chunk.
fn chunk_max(chunk: &Chunk) -> Option<i64> {
    match chunk {
        Chunk::Int(_, a) => arrow::compute::max(a),
        _ => None,
    }
}

/// The hash of row `i` of one batch's chunks (see [`TableData::append`]).
fn hash_row<'a>(chunks: impl IntoIterator<Item = &'a Chunk>, i: usize) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for chunk in chunks {
        chunk.hash_value(i, &mut h);
    }
    std::hash::Hasher::finish(&h)
}

/// A row's position in the chunks: (batch, index in it).
fn locate(starts: &[usize], row: usize) -> (usize, usize) {
    let batch = starts.partition_point(|&s| s <= row).saturating_sub(1);
    (batch, row - starts.get(batch).copied().unwrap_or(0))
}

/// What a sort compares: the typed key, with text borrowed where the array holds strings.
enum Ordered<'a> {
    Key(SortKey),
    Text(std::borrow::Cow<'a, str>),
}

impl Ordered<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ordered::Text(a), Ordered::Text(b)) => a.cmp(b),
            (Ordered::Key(a), Ordered::Key(b)) => a.total_cmp(b),
            (Ordered::Key(a), Ordered::Text(_)) => a.total_cmp(&SortKey::Text),
            (Ordered::Text(_), Ordered::Key(b)) => SortKey::Text.total_cmp(b),
        }
    }
}

impl TableData {
    /// Rows in the table.
    pub fn num_rows(&self) -> usize {
        self.len
    }

    /// What the cell at (`row`, `column`) sorts by; `Null` when out of range.
    pub fn key(&self, row: usize, column: usize) -> SortKey {
        self.chunk(row, column)
            .map_or(SortKey::Null, |(chunk, i)| chunk.key(i))
    }

    /// The full text of the cell at (`row`, `column`): newlines kept, empty for null or out
    /// of range. Strings are borrowed; everything else is formatted now.
    pub fn text(&self, row: usize, column: usize) -> std::borrow::Cow<'_, str> {
        let Some((chunk, i)) = self.chunk(row, column) else {
            return std::borrow::Cow::Borrowed("");
        };
        if let Some(s) = chunk.str(i) {
            return std::borrow::Cow::Borrowed(s);
        }
        let mut buf = String::new();
        chunk.text(i, self.offset, &mut buf);
        std::borrow::Cow::Owned(buf)
    }

    /// The cell at (`row`, `column`), formatted.
    pub fn cell(&self, row: usize, column: usize) -> Option<Cell> {
        let (chunk, i) = self.chunk(row, column)?;
        let mut buf = String::new();
        let text = chunk.text(i, self.offset, &mut buf).into();
        Some(Cell {
            text,
            key: chunk.key(i),
        })
    }

    /// Every cell of `row`, formatted; `None` when out of range.
    pub fn row(&self, row: usize) -> Option<Vec<Cell>> {
        (row < self.len).then(|| {
            (0..self.columns.len())
                .filter_map(|c| self.cell(row, c))
                .collect()
        })
    }

    fn chunk(&self, row: usize, column: usize) -> Option<(&Chunk, usize)> {
        if row >= self.len {
            return None;
        }
        let (batch, i) = locate(&self.starts, row);
        Some((self.values.get(column)?.get(batch)?, i))
    }

    /// The `time_` column, when the table has one holding times: what follow mode tails by.
    pub fn time_column(&self) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == "time_" && c.kind == ColumnKind::Time)
    }

    /// Whether the table is an event log: shown as a table and sorted by its `time_` by the
    /// script's spec (`sort: "-time_"`), as `px/http_data` is. Such a table holds the events
    /// of a window, newest kept ([`Keep`]), so new rows can be added to it rather than the
    /// whole table fetched again; a table with times sorted by anything else (the slowest
    /// requests, the largest bodies) is a ranking and is refreshed whole.
    pub fn is_event_log(&self) -> bool {
        self.widget.is_none()
            && self
                .time_column()
                .is_some_and(|t| self.default_sort.is_some_and(|(c, _)| c == t))
    }

    /// The newest `time_` (ns since the epoch), if the table has times and rows.
    pub fn newest_time(&self) -> Option<i64> {
        let t = self.time_column()?;
        self.values.get(t)?.iter().filter_map(chunk_max).max()
    }

    /// Appends the rows of `table` (an incremental refresh of the same script, run from
    /// `since`) that this table does not hold yet, then lets go of the rows `keep` no longer
    /// wants. A poll overlaps the rows already shown (rows can arrive slightly out of time
    /// order), so rows at or after `since` that are already here are dropped: they are told
    /// apart by all their values. Returns how many rows were added, or `None` when `table`
    /// does not have this table's columns or this table has no `time_` (the caller replaces
    /// it instead).
    pub fn append(&mut self, table: &ResultTable, since: i64, keep: Keep) -> Option<usize> {
        let t = self.time_column()?;
        let same = table.schema.fields().len() == self.columns.len()
            && table
                .schema
                .fields()
                .iter()
                .zip(&self.columns)
                .all(|(f, c)| *f.name() == c.name && kind_of(f) == c.kind);
        if !same {
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        for (b, chunk) in self.values.get(t)?.iter().enumerate() {
            let Chunk::Int(_, times) = chunk else {
                continue;
            };
            for i in 0..times.len() {
                if times.is_valid(i) && times.value(i) >= since {
                    seen.insert(self.row_hash(b, i));
                }
            }
        }
        let mut added = 0;
        for batch in table.batches.iter().filter(|b| b.num_rows() > 0) {
            let schema = batch.schema();
            let chunks: Vec<Chunk> = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, a)| Chunk::new(f, a))
                .collect();
            let new: Vec<u32> = (0..batch.num_rows())
                .filter(|&i| !seen.contains(&hash_row(&chunks, i)))
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
            if new.is_empty() {
                continue;
            }
            let chunks = if new.len() == batch.num_rows() {
                chunks
            } else {
                let indices = arrow::array::UInt32Array::from(new.clone());
                chunks
                    .iter()
                    .map(|c| c.take(&indices))
                    .collect::<Result<_, _>>()
                    .ok()?
            };
            added += new.len();
            self.push_chunks(chunks, new.len());
        }
        self.evict(t, keep);
        Some(added)
    }

    /// Adds one batch's chunks (`rows` rows) after the last. Polls bring a few rows each, so
    /// a last chunk smaller than [`SMALL_CHUNK_ROWS`] takes them in (one copy of at most that
    /// many rows) instead of the table growing a chunk per poll.
    fn push_chunks(&mut self, chunks: Vec<Chunk>, rows: usize) {
        let mut buf = String::new();
        for (w, chunk) in self.widths.iter_mut().zip(&chunks) {
            *w = (*w).max(chunk_width(chunk, self.offset, &mut buf));
        }
        let last_rows = self.starts.last().map(|&s| self.len - s);
        let merged: Option<Vec<Chunk>> =
            last_rows.filter(|&n| n < SMALL_CHUNK_ROWS).and_then(|_| {
                self.values
                    .iter()
                    .zip(&chunks)
                    .map(|(column, new)| column.last()?.concat(new).ok())
                    .collect()
            });
        match merged {
            Some(merged) => {
                for (column, chunk) in self.values.iter_mut().zip(merged) {
                    column.pop();
                    column.push(chunk);
                }
            }
            None => {
                self.starts.push(self.len);
                for (column, chunk) in self.values.iter_mut().zip(chunks) {
                    column.push(chunk);
                }
            }
        }
        self.len += rows;
    }

    /// Lets go of the rows `keep` does not want (by the time column `t`; rows without a
    /// time go too), keeping the rest in their order. Batch by batch: a batch kept whole is
    /// not copied, one with nothing kept is dropped, and a batch cut in part is copied and
    /// its old arrays freed before the next, so this never holds the table twice.
    fn evict(&mut self, t: usize, keep: Keep) {
        let Some(time_chunks) = self.values.get(t) else {
            return;
        };
        let mut oldest_kept = keep.not_before.unwrap_or(i64::MIN);
        if self.len > keep.newest {
            let mut times = Vec::with_capacity(self.len);
            for chunk in time_chunks {
                if let Chunk::Int(_, a) = chunk {
                    times.extend(a.iter().map(|v| v.unwrap_or(i64::MIN)));
                }
            }
            if let Some(k) = times
                .len()
                .checked_sub(keep.newest)
                .filter(|&k| k < times.len())
            {
                let (_, nth, _) = times.select_nth_unstable(k);
                oldest_kept = oldest_kept.max(*nth);
            }
        }
        let all_kept = |chunk: &Chunk| match chunk {
            Chunk::Int(_, a) => {
                a.null_count() == 0 && arrow::compute::min(a).is_none_or(|m| m >= oldest_kept)
            }
            _ => true,
        };
        if oldest_kept == i64::MIN || time_chunks.iter().all(all_kept) {
            return;
        }
        let masks: Vec<BooleanArray> = time_chunks
            .iter()
            .map(|c| match c {
                Chunk::Int(_, a) => a
                    .iter()
                    .map(|v| Some(v.is_some_and(|v| v >= oldest_kept)))
                    .collect(),
                _ => BooleanArray::from(vec![true; c.array().len()]),
            })
            .collect();
        let mut starts = Vec::with_capacity(masks.len());
        let mut len = 0;
        let mut columns: Vec<std::vec::IntoIter<Chunk>> = std::mem::take(&mut self.values)
            .into_iter()
            .map(Vec::into_iter)
            .collect();
        let mut values: Vec<Vec<Chunk>> = columns.iter().map(|_| Vec::new()).collect();
        for mask in &masks {
            let kept = mask.true_count();
            let batch: Vec<Chunk> = columns.iter_mut().filter_map(Iterator::next).collect();
            if kept == 0 {
                continue;
            }
            let batch = if kept == mask.len() {
                batch
            } else {
                // On an arrow error (it has none for these types) the batch stays whole.
                match batch.iter().map(|c| c.filter(mask)).collect() {
                    Ok(cut) => cut,
                    Err(_) => batch,
                }
            };
            starts.push(len);
            len += batch.first().map_or(0, |c| c.array().len());
            for (column, chunk) in values.iter_mut().zip(batch) {
                column.push(chunk);
            }
        }
        self.values = values;
        self.starts = starts;
        self.len = len;
    }

    fn row_hash(&self, batch: usize, i: usize) -> u64 {
        hash_row(self.values.iter().filter_map(|c| c.get(batch)), i)
    }

    /// Per row, whether any of its cells' full text satisfies `hit` (nulls are empty text).
    /// Column by column, so a row already matched is not formatted again.
    pub fn rows_where_any(&self, hit: impl Fn(&str) -> bool) -> Vec<bool> {
        let mut out = vec![false; self.len];
        let mut buf = String::new();
        for chunks in &self.values {
            for (chunk, &start) in chunks.iter().zip(&self.starts) {
                for i in 0..chunk.array().len() {
                    let Some(seen) = out.get_mut(start + i) else {
                        break;
                    };
                    if !*seen && hit(chunk.text(i, self.offset, &mut buf)) {
                        *seen = true;
                    }
                }
            }
        }
        out
    }

    /// Sorts `rows` by `column` (stable: equal keys keep their order); nulls first, then
    /// numbers by value, then text.
    pub fn sort_rows(&self, rows: &mut [usize], column: usize, descending: bool) {
        let Some(chunks) = self.values.get(column) else {
            return;
        };
        let mut buf = String::new();
        let mut keys: Vec<Ordered<'_>> = Vec::with_capacity(self.len);
        for chunk in chunks {
            for i in 0..chunk.array().len() {
                keys.push(match chunk {
                    Chunk::Str(_) if !chunk.array().is_null(i) => {
                        Ordered::Text(chunk.str(i).unwrap_or_default().into())
                    }
                    Chunk::Other(_) if !chunk.array().is_null(i) => {
                        Ordered::Text(chunk.text(i, self.offset, &mut buf).to_owned().into())
                    }
                    _ => Ordered::Key(chunk.key(i)),
                });
            }
        }
        let null = Ordered::Key(SortKey::Null);
        rows.sort_by(|&a, &b| {
            let ord = keys
                .get(a)
                .unwrap_or(&null)
                .cmp(keys.get(b).unwrap_or(&null));
            if descending { ord.reverse() } else { ord }
        });
    }
}

/// Which rows a table keeps after an incremental refresh ([`TableData::append`]): what a
/// whole run of an event script (`sort("-time_").head(max_rows)` over its window) would return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// At most this many rows: the newest by `time_`.
    pub newest: usize,
    /// None older than this (ns since the epoch): the start of the script's time window.
    pub not_before: Option<i64>,
}

/// A last chunk with fewer rows than this takes in the next poll's rows (see
/// [`TableData::append`]).
const SMALL_CHUNK_ROWS: usize = 1024;

/// The widest a column gets from fitting; longer cells are cut with `…` (Enter shows all).
pub const MAX_COLUMN_WIDTH: usize = 48;

/// Cells the table's selection marker takes before the first column.
pub const MARKER_WIDTH: usize = 1;

/// The columns of `order` (table column indices, display order) that fit in `width` from
/// position `first`, as (table column, width); the last may be cut. A column is as wide as its
/// widest cell or its header (plus the arrow when sorted by it).
pub fn columns_in_view(
    table: &TableData,
    order: &[usize],
    sort: Option<super::app::Sort>,
    first: usize,
    width: usize,
) -> Vec<(usize, usize)> {
    const SPACING: usize = 1;
    const MIN_PARTIAL: usize = 6;
    let mut out = Vec::new();
    let mut used = 0;
    for &i in order.iter().skip(first) {
        let Some(column) = table.columns.get(i) else {
            continue;
        };
        let arrow = if sort.is_some_and(|s| s.column == i) {
            2
        } else {
            0
        };
        let cells = table.widths.get(i).copied().unwrap_or(0);
        let w = cells
            .max(text_width(&column.name) + arrow)
            .min(MAX_COLUMN_WIDTH);
        let need = if out.is_empty() { w } else { w + SPACING };
        if used + need <= width {
            out.push((i, w));
            used += need;
            continue;
        }
        let left = width.saturating_sub(used + if out.is_empty() { 0 } else { SPACING });
        if left >= MIN_PARTIAL || out.is_empty() {
            out.push((i, left));
        }
        break;
    }
    out
}

/// Display width in terminal cells.
pub fn text_width(s: &str) -> usize {
    ratatui::text::Span::raw(s).width()
}

/// The widest one-line text of each column, capped at [`MAX_COLUMN_WIDTH`]. Times all print
/// alike, so one is measured; strings are measured only up to the cap.
fn fitted_widths(values: &[Vec<Chunk>], offset: FixedOffset) -> Vec<usize> {
    let mut buf = String::new();
    values
        .iter()
        .map(|chunks| {
            let mut widest = 0;
            for chunk in chunks {
                widest = widest.max(chunk_width(chunk, offset, &mut buf));
                if widest >= MAX_COLUMN_WIDTH {
                    break;
                }
            }
            widest
        })
        .collect()
}

/// The widest one-line value of one chunk, capped at [`MAX_COLUMN_WIDTH`] (a time chunk is
/// measured at its first value: times all print alike).
fn chunk_width(chunk: &Chunk, offset: FixedOffset, buf: &mut String) -> usize {
    let time = matches!(chunk, Chunk::Int(ColumnKind::Time, _));
    let mut widest = 0;
    for i in 0..chunk.array().len() {
        if chunk.array().is_null(i) {
            continue;
        }
        widest = widest.max(capped_width(chunk.text(i, offset, buf)));
        if time || widest >= MAX_COLUMN_WIDTH {
            break;
        }
    }
    widest.min(MAX_COLUMN_WIDTH)
}

/// The one-line width of `text`, looking no further than enough characters to pass the cap.
fn capped_width(text: &str) -> usize {
    const LOOK: usize = MAX_COLUMN_WIDTH * 4;
    let head = match text.char_indices().nth(LOOK) {
        Some((at, _)) => &text[..at],
        None => text,
    };
    text_width(&one_line(head))
}

/// Columns holding nanosecond durations by Pixie's naming (`latency`, `total_latency`,
/// `cpu_ns`) and the stats scripts' quantiles (`latency_p50`, `latency_p99`, `latency_max`).
fn is_duration_name(name: &str) -> bool {
    name.ends_with("latency") || name.ends_with("_ns") || name.starts_with("latency_")
}

fn kind_of(field: &Field) -> ColumnKind {
    let name = field.name();
    match field.data_type() {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => ColumnKind::Time,
        DataType::Duration(_) => ColumnKind::Duration,
        t if t.is_integer() && name == "time_" => ColumnKind::Time,
        t if t.is_numeric() && is_duration_name(name) => ColumnKind::Duration,
        t if t.is_integer() => ColumnKind::Int,
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            ColumnKind::Float
        }
        DataType::Boolean => ColumnKind::Bool,
        _ => ColumnKind::Text,
    }
}

/// Nanoseconds with a unit that keeps three significant figures or so.
pub fn human_duration(ns: i64) -> String {
    let mut s = String::new();
    push_duration(&mut s, ns);
    s
}

fn push_duration(out: &mut String, ns: i64) {
    let abs = ns.unsigned_abs() as f64;
    let sign = if ns < 0 { "-" } else { "" };
    let _ = if abs < 1e3 {
        write!(out, "{ns} ns")
    } else if abs < 1e6 {
        write!(out, "{sign}{:.1} µs", abs / 1e3)
    } else if abs < 1e9 {
        write!(out, "{sign}{:.2} ms", abs / 1e6)
    } else {
        write!(out, "{sign}{:.2} s", abs / 1e9)
    };
}

/// Nanoseconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` at `offset`.
pub fn human_time(ns: i64, offset: FixedOffset) -> String {
    let mut s = String::new();
    push_time(&mut s, ns, offset);
    s
}

fn push_time(out: &mut String, ns: i64, offset: FixedOffset) {
    // Parsed once: a filter pass formats every time in the table.
    static ITEMS: std::sync::LazyLock<Vec<chrono::format::Item<'static>>> =
        std::sync::LazyLock::new(|| {
            chrono::format::StrftimeItems::new("%Y-%m-%d %H:%M:%S%.3f")
                .parse_to_owned()
                .unwrap_or_default()
        });
    let t = DateTime::from_timestamp_nanos(ns).with_timezone(&offset);
    let _ = write!(out, "{}", t.format_with_items(ITEMS.iter()));
}

/// Casts, turning values that do not fit into nulls rather than failing the whole column.
fn cast_lossy(array: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    cast_with_options(array, to, &options).ok()
}

/// The column as i64 nanoseconds (times, durations) or plain i64 (integers).
fn as_i64(array: &ArrayRef, kind: ColumnKind) -> Option<ArrayRef> {
    let normalised = match array.data_type() {
        DataType::Timestamp(_, _) => {
            cast_lossy(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?
        }
        DataType::Date32 | DataType::Date64 => {
            cast_lossy(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?
        }
        DataType::Duration(_) => cast_lossy(array, &DataType::Duration(TimeUnit::Nanosecond))?,
        t if t.is_floating() && kind == ColumnKind::Duration => {
            // Averaged latencies arrive as floats; whole nanoseconds are precise enough.
            let f = cast_lossy(array, &DataType::Float64)?;
            let f = f.as_primitive::<Float64Type>();
            let ints: arrow::array::Int64Array = f.iter().map(|v| v.map(|v| v as i64)).collect();
            return Some(std::sync::Arc::new(ints));
        }
        _ => array.clone(),
    };
    cast_lossy(&normalised, &DataType::Int64)
}

/// The `sort` entry of a widget spec (`"-requests"`: by requests, descending).
fn default_sort(widget_json: &str, columns: &[Column]) -> Option<(usize, bool)> {
    let spec: serde_json::Value = serde_json::from_str(widget_json).ok()?;
    let sort = spec.get("sort")?.as_str()?;
    let (name, descending) = match sort.strip_prefix('-') {
        Some(name) => (name, true),
        None => (sort.strip_prefix('+').unwrap_or(sort), false),
    };
    let index = columns.iter().position(|c| c.name == name)?;
    Some((index, descending))
}

impl TableData {
    /// Takes `table`'s arrays (shared, not copied); times are shown at `offset` from UTC.
    pub fn from_result(table: &ResultTable, offset: FixedOffset) -> Self {
        let columns: Vec<Column> = table
            .schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                kind: kind_of(f),
            })
            .collect();
        let mut values: Vec<Vec<Chunk>> = (0..columns.len())
            .map(|_| Vec::with_capacity(table.batches.len()))
            .collect();
        let mut starts = Vec::with_capacity(table.batches.len());
        let mut len = 0;
        for batch in table.batches.iter().filter(|b| b.num_rows() > 0) {
            starts.push(len);
            len += batch.num_rows();
            let schema = batch.schema();
            for ((chunks, field), array) in
                values.iter_mut().zip(schema.fields()).zip(batch.columns())
            {
                chunks.push(Chunk::new(field, array));
            }
        }
        let mut data = TableData {
            name: table.name.clone(),
            default_sort: default_sort(&table.widget_json, &columns),
            widths: fitted_widths(&values, offset),
            columns,
            widget: None,
            values,
            starts,
            len,
            offset,
        };
        let spec = super::views::Spec::parse(&table.widget_json);
        data.widget = super::views::Widget::build(&spec, table, &data);
        data
    }
}

/// A cell's text on one line: line breaks become `↵`, tabs spaces, other controls dropped.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('↵'),
            '\t' => out.push(' '),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::array::{DurationMicrosecondArray, RecordBatch, StringArray, UInt64Array};
    use arrow::datatypes::Schema;

    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(human_duration(850), "850 ns");
        assert_eq!(human_duration(12_345), "12.3 µs");
        assert_eq!(human_duration(4_560_000), "4.56 ms");
        assert_eq!(human_duration(2_500_000_000), "2.50 s");
        assert_eq!(human_duration(-12_345), "-12.3 µs");
    }

    #[test]
    fn times_are_dates_at_the_offset() {
        assert_eq!(
            human_time(1_700_000_000_123_456_789, utc()),
            "2023-11-14 22:13:20.123"
        );
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            human_time(1_700_000_000_123_456_789, plus2),
            "2023-11-15 00:13:20.123"
        );
    }

    #[test]
    fn columns_are_formatted_by_kind_and_sort_by_value() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time_", DataType::Int64, false),
            Field::new("latency", DataType::Int64, true),
            Field::new("took", DataType::Duration(TimeUnit::Microsecond), true),
            Field::new("resp_status", DataType::Int64, true),
            Field::new("bytes", DataType::UInt64, true),
            Field::new("ratio", DataType::Float64, true),
            Field::new("encrypted", DataType::Boolean, true),
            Field::new("req_path", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1_700_000_000_000_000_000])),
                Arc::new(Int64Array::from(vec![Some(1_500_000)])),
                Arc::new(DurationMicrosecondArray::from(vec![Some(20)])),
                Arc::new(Int64Array::from(vec![None])),
                Arc::new(UInt64Array::from(vec![Some(10)])),
                Arc::new(Float64Array::from(vec![Some(0.25)])),
                Arc::new(BooleanArray::from(vec![Some(true)])),
                Arc::new(StringArray::from(vec![Some("/a\r\nb")])),
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from(vec![Some(1_000)])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let table = ResultTable {
            name: "t".into(),
            widget_json: r#"{"widget":"table","sort":"-latency"}"#.into(),
            schema,
            batches: vec![batch],
        };
        let data = TableData::from_result(&table, utc());
        let kinds: Vec<_> = data.columns.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ColumnKind::Time,
                ColumnKind::Duration,
                ColumnKind::Duration,
                ColumnKind::Int,
                ColumnKind::Int,
                ColumnKind::Float,
                ColumnKind::Bool,
                ColumnKind::Text,
                ColumnKind::Time,
            ]
        );
        let row = data.row(0).unwrap();
        let texts: Vec<_> = row.iter().map(|c| &*c.text).collect();
        assert_eq!(
            texts,
            vec![
                "2023-11-14 22:13:20.000",
                "1.50 ms",
                "20.0 µs",
                "",
                "10",
                "0.25",
                "true",
                "/a\r\nb",
                "1970-01-01 00:00:01.000"
            ]
        );
        assert_eq!(data.key(0, 1), SortKey::Int(1_500_000));
        assert_eq!(data.key(0, 2), SortKey::Int(20_000));
        assert_eq!(data.key(0, 3), SortKey::Null);
        assert_eq!(data.key(1, 1), SortKey::Null, "out of range");
        assert_eq!(data.text(0, 7), "/a\r\nb");
        assert_eq!(data.default_sort, Some((1, true)));
    }

    #[test]
    fn sort_keys_order_numbers_numerically_and_nulls_first() {
        let cell = |text: &str, key| Cell {
            text: text.into(),
            key,
        };
        let mut cells = [
            cell("10", SortKey::Int(10)),
            cell("b", SortKey::Text),
            cell("", SortKey::Null),
            cell("9.5", SortKey::Float(9.5)),
            cell("9", SortKey::Int(9)),
            cell("a", SortKey::Text),
        ];
        cells.sort_by(Cell::sort_cmp);
        let texts: Vec<&str> = cells.iter().map(|c| &*c.text).collect();
        assert_eq!(texts, ["", "9", "9.5", "10", "a", "b"]);
        assert_eq!(std::mem::size_of::<Cell>(), 32);
    }

    /// An http_data-like result (req_path, time_ ns), shown newest first (also used by the
    /// app's tests).
    pub(crate) fn events(rows: &[(i64, &str)]) -> ResultTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("req_path", DataType::Utf8, false),
            Field::new("time_", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            ],
        )
        .unwrap();
        ResultTable {
            name: "http_data".into(),
            widget_json: r#"{"widget":"table","sort":"-time_"}"#.into(),
            schema,
            batches: vec![batch],
        }
    }

    fn paths(data: &TableData) -> Vec<String> {
        (0..data.num_rows())
            .map(|r| data.text(r, 0).into_owned())
            .collect()
    }

    fn keep(newest: usize, not_before: Option<i64>) -> Keep {
        Keep { newest, not_before }
    }

    /// Where the time values of the table's first chunk live (to tell a chunk kept as it
    /// was from a copy).
    fn first_times_at(data: &TableData) -> *const i64 {
        match &data.values[1][0] {
            Chunk::Int(_, a) => a.values().as_ptr(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incremental_refreshes_add_only_rows_not_shown_and_keep_what_a_whole_run_would() {
        let mut data =
            TableData::from_result(&events(&[(30, "/c"), (20, "/b"), (10, "/a")]), utc());
        assert!(data.is_event_log());
        assert_eq!(data.newest_time(), Some(30));
        // The poll overlaps from 20: /b and /c are already here; /late arrived after the last
        // poll with an older time; /d is new.
        let poll = events(&[(40, "/d"), (30, "/c"), (25, "/late"), (20, "/b")]);
        assert_eq!(data.append(&poll, 20, keep(100, None)), Some(2));
        assert_eq!(paths(&data), ["/c", "/b", "/a", "/d", "/late"]);
        assert_eq!(data.newest_time(), Some(40));
        // The same poll again adds nothing.
        assert_eq!(data.append(&poll, 20, keep(100, None)), Some(0));

        // The window moved past 20: the rows before it leave, the rest keep their order.
        assert_eq!(data.append(&events(&[]), 40, keep(100, Some(21))), Some(0));
        assert_eq!(paths(&data), ["/c", "/d", "/late"]);
        // Over the row cap, the oldest go.
        let many: Vec<(i64, String)> = (50..60).map(|t| (t, format!("/n{t}"))).collect();
        let many: Vec<(i64, &str)> = many.iter().map(|(t, p)| (*t, p.as_str())).collect();
        assert_eq!(data.append(&events(&many), 40, keep(4, None)), Some(10));
        assert_eq!(paths(&data), ["/n56", "/n57", "/n58", "/n59"]);
        assert_eq!(
            data.widths[0], 5,
            "widths never shrink as rows come and go: no jumping"
        );

        // Another table's columns are not appended.
        let other = TableData::from_result(&events(&[(1, "/x")]), utc());
        let mut no_time = other.clone();
        no_time.columns[1].kind = ColumnKind::Int;
        assert_eq!(
            no_time.append(&events(&[(2, "/y")]), 0, keep(10, None)),
            None
        );
    }

    #[test]
    fn polls_of_a_few_rows_fill_one_chunk_and_whole_chunks_are_kept_or_dropped_uncopied() {
        let first: Vec<(i64, String)> = (-2000..0).map(|t| (t, format!("/{t}"))).collect();
        let first: Vec<(i64, &str)> = first.iter().map(|(t, p)| (*t, p.as_str())).collect();
        let mut data = TableData::from_result(&events(&first), utc());
        let loaded = first_times_at(&data);
        for t in 1..=3000 {
            let path = format!("/{t}");
            let poll = events(&[(t, path.as_str()), (t - 1, "/dup")]);
            // "/dup" at t - 1 is new each time (its time differs): two rows per poll.
            assert_eq!(data.append(&poll, t - 1, keep(1_000_000, None)), Some(2));
        }
        assert_eq!(data.num_rows(), 2000 + 2 * 3000);
        assert!(
            data.starts.len() <= 1 + 6000 / SMALL_CHUNK_ROWS + 1,
            "{} chunks",
            data.starts.len()
        );
        assert_eq!(loaded, first_times_at(&data), "a large chunk is not copied");
        let mut rows: Vec<usize> = (0..data.num_rows()).collect();
        data.sort_rows(&mut rows, 1, true);
        assert_eq!(data.text(rows[0], 0), "/3000");

        // The window passes the first load: its chunk goes whole, the others stay as they
        // were.
        let second = first_times_at(&{
            let mut d = data.clone();
            d.values.iter_mut().for_each(|c| drop(c.remove(0)));
            d
        });
        assert_eq!(
            data.append(&events(&[]), 2998, keep(1_000_000, Some(0))),
            Some(0)
        );
        assert_eq!(data.num_rows(), 6000);
        assert_eq!(second, first_times_at(&data));
    }

    #[test]
    fn dictionary_strings_show_sort_filter_and_merge_with_plain_ones() {
        let rows: Vec<(i64, &str)> = (0..8).map(|t| (t, ["/b", "/a"][t as usize % 2])).collect();
        let mut sent = events(&rows);
        sent.batches = sent.batches.iter().map(crate::client::compact).collect();
        assert!(matches!(
            sent.batches[0].column(0).data_type(),
            DataType::Dictionary(..)
        ));
        let mut data = TableData::from_result(&sent, utc());
        assert_eq!(paths(&data)[..3], ["/b", "/a", "/b"]);
        // A poll of one row stays plain; it joins the dictionary chunk.
        assert_eq!(
            data.append(&events(&[(9, "/c")]), 8, keep(100, None)),
            Some(1)
        );
        assert_eq!(data.starts.len(), 1);
        assert_eq!(data.text(8, 0), "/c");
        let mut rows: Vec<usize> = (0..9).collect();
        data.sort_rows(&mut rows, 0, false);
        assert_eq!(data.text(rows[0], 0), "/a");
        assert_eq!(data.text(rows[8], 0), "/c");
        let hits = data.rows_where_any(|t| t == "/c");
        assert_eq!(hits.iter().filter(|h| **h).count(), 1);
    }

    #[test]
    fn filters_and_sorts_work_on_the_arrays() {
        let data = TableData::from_result(
            &events(&[(3, "/b"), (1, "/A/x"), (2, "/c"), (4, "/a")]),
            utc(),
        );
        let hits = data.rows_where_any(|t| t.to_lowercase().contains("/a"));
        assert_eq!(hits, [false, true, false, true]);
        let mut rows: Vec<usize> = (0..4).collect();
        data.sort_rows(&mut rows, 0, false);
        assert_eq!(rows, [1, 3, 0, 2], "text by its bytes: /A/x < /a < /b < /c");
        data.sort_rows(&mut rows, 1, true);
        assert_eq!(rows, [3, 0, 2, 1]);
    }

    #[test]
    fn latency_quantile_columns_are_durations() {
        let f = |n: &str| kind_of(&Field::new(n, DataType::Int64, true));
        assert_eq!(f("latency_p99"), ColumnKind::Duration);
        assert_eq!(f("total_latency"), ColumnKind::Duration);
        assert_eq!(f("requests"), ColumnKind::Int);
    }

    #[test]
    fn one_line_marks_line_breaks() {
        assert_eq!(one_line("a\r\nb\tc\u{7}"), "a↵b c");
    }

    #[test]
    fn unknown_or_missing_sort_specs_are_ignored() {
        let cols = vec![Column {
            name: "a".into(),
            kind: ColumnKind::Int,
        }];
        assert_eq!(default_sort(r#"{"sort":"a"}"#, &cols), Some((0, false)));
        assert_eq!(default_sort(r#"{"sort":"-zz"}"#, &cols), None);
        assert_eq!(default_sort("", &cols), None);
    }
}
