//! Result tables turned into display rows: every cell's text (times human-readable, latencies
//! in ns/µs/ms/s) plus a typed sort key, so sorting orders numbers as numbers.

use std::cmp::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit};
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

/// One output table ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct TableData {
    /// The output table's name.
    pub name: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// Row-major cells.
    pub rows: Vec<Vec<Cell>>,
    /// The sort the script asked for (`#{ sort: "-requests" }`): column index, descending.
    pub default_sort: Option<(usize, bool)>,
    /// Per column, the widest one-line cell (capped at [`MAX_COLUMN_WIDTH`]).
    pub widths: Vec<usize>,
    /// The widget the spec asks for: `None` for a table, `Err` (why) when the table does not
    /// fit the spec (the table shows instead).
    pub widget: Option<Result<super::views::Widget, String>>,
}

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

fn fitted_widths(columns: &[Column], rows: &[Vec<Cell>]) -> Vec<usize> {
    (0..columns.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|cell| text_width(&one_line(&cell.text)))
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN_WIDTH)
        })
        .collect()
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
    let abs = ns.unsigned_abs() as f64;
    let sign = if ns < 0 { "-" } else { "" };
    if abs < 1e3 {
        format!("{ns} ns")
    } else if abs < 1e6 {
        format!("{sign}{:.1} µs", abs / 1e3)
    } else if abs < 1e9 {
        format!("{sign}{:.2} ms", abs / 1e6)
    } else {
        format!("{sign}{:.2} s", abs / 1e9)
    }
}

/// Nanoseconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` at `offset`.
pub fn human_time(ns: i64, offset: FixedOffset) -> String {
    DateTime::from_timestamp_nanos(ns)
        .with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
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

fn column_cells(field: &Field, array: &ArrayRef, offset: FixedOffset) -> Vec<Cell> {
    let kind = kind_of(field);
    let null = || Cell {
        text: Box::default(),
        key: SortKey::Null,
    };
    let len = array.len();
    match kind {
        ColumnKind::Time | ColumnKind::Duration | ColumnKind::Int => {
            if let Some(ints) = as_i64(array, kind) {
                let ints = ints.as_primitive::<Int64Type>();
                return ints
                    .iter()
                    .map(|v| match v {
                        None => null(),
                        Some(v) => Cell {
                            text: match kind {
                                ColumnKind::Time => human_time(v, offset),
                                ColumnKind::Duration => human_duration(v),
                                _ => v.to_string(),
                            }
                            .into_boxed_str(),
                            key: SortKey::Int(v),
                        },
                    })
                    .collect();
            }
        }
        ColumnKind::Float => {
            if let Some(f) = cast_lossy(array, &DataType::Float64) {
                let f = f.as_primitive::<Float64Type>();
                return (0..len)
                    .map(|i| {
                        if f.is_null(i) {
                            return null();
                        }
                        Cell {
                            text: display_value(array.as_ref(), i).into_boxed_str(),
                            key: SortKey::Float(f.value(i)),
                        }
                    })
                    .collect();
            }
        }
        ColumnKind::Bool => {
            let b = array.as_boolean();
            return b
                .iter()
                .map(|v| match v {
                    None => null(),
                    Some(v) => Cell {
                        text: v.to_string().into_boxed_str(),
                        key: SortKey::Int(i64::from(v)),
                    },
                })
                .collect();
        }
        ColumnKind::Text => {}
    }
    (0..len)
        .map(|i| {
            if array.is_null(i) {
                return null();
            }
            Cell {
                text: display_value(array.as_ref(), i).into_boxed_str(),
                key: SortKey::Text,
            }
        })
        .collect()
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
    /// Formats every cell of `table`; times are shown at `offset` from UTC.
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
        let mut rows = Vec::with_capacity(table.num_rows());
        for batch in &table.batches {
            rows.extend(batch_rows(batch, offset));
        }
        let mut data = TableData {
            name: table.name.clone(),
            default_sort: default_sort(&table.widget_json, &columns),
            widths: fitted_widths(&columns, &rows),
            columns,
            rows,
            widget: None,
        };
        let spec = super::views::Spec::parse(&table.widget_json);
        data.widget = super::views::Widget::build(&spec, table, &data);
        data
    }
}

fn batch_rows(batch: &RecordBatch, offset: FixedOffset) -> Vec<Vec<Cell>> {
    let schema = batch.schema();
    let mut columns: Vec<std::vec::IntoIter<Cell>> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| column_cells(f, a, offset).into_iter())
        .collect();
    (0..batch.num_rows())
        .map(|_| columns.iter_mut().filter_map(Iterator::next).collect())
        .collect()
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
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, DurationMicrosecondArray, Float64Array, Int64Array, StringArray, UInt64Array,
    };
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
        let texts: Vec<_> = data.rows[0].iter().map(|c| &*c.text).collect();
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
        assert_eq!(data.rows[0][1].key, SortKey::Int(1_500_000));
        assert_eq!(data.rows[0][2].key, SortKey::Int(20_000));
        assert_eq!(data.rows[0][3].key, SortKey::Null);
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
