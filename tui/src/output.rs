//! Headless output of `pxtop run` (JSON Lines, text tables, CSV) and of `pxtop scripts` and
//! `pxtop tables`.
//!
//! JSON and CSV go through arrow's own writers after one preparation step ([`export_batch`]):
//! `_tableName_` is prepended and time columns become integer nanoseconds, so `jq` filters
//! written for Pixie's `px run -o json` keep working and no precision is lost. The text
//! listings align columns by hand: a few lines, not worth a table crate.

use std::io::{self, Write};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;
use pxtop_proto::v1::{ScriptInfo, TableInfo};
use serde_json::json;

use crate::cli::OutputFormat;
use crate::client::{QueryResult, ResultTable};

/// Pixie's key for the output table's name in JSON rows (trailing underscore included).
pub const TABLE_NAME_KEY: &str = "_tableName_";

/// Failures writing output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Io(#[from] io::Error),
    /// Arrow could not convert or encode a column.
    #[error("cannot format table '{table}': {source}")]
    Arrow {
        /// The output table's name.
        table: String,
        /// Arrow's error.
        source: ArrowError,
    },
    /// `-o folded|svg` on a script with no flame graph output.
    #[error(
        "-o folded and -o svg need a flame graph output (widget \"flamegraph\"), and this script has none; try px/perf_flamegraph, or -o table"
    )]
    NoFlameGraph,
}

impl OutputError {
    /// True when the reader went away (`pxtop run ... | head`): not worth an error.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            OutputError::Io(e) => e.kind() == io::ErrorKind::BrokenPipe,
            OutputError::Arrow {
                source: ArrowError::IoError(_, e),
                ..
            } => e.kind() == io::ErrorKind::BrokenPipe,
            OutputError::Arrow { .. } | OutputError::NoFlameGraph => false,
        }
    }
}

/// Writes a script's result in `format`.
pub fn write_result(
    out: &mut dyn Write,
    result: &QueryResult,
    format: OutputFormat,
) -> Result<(), OutputError> {
    match format {
        OutputFormat::Json => write_json_lines(out, result),
        OutputFormat::Table => write_tables(out, result),
        OutputFormat::Csv => write_csv(out, result),
        OutputFormat::Folded => {
            let (_, lines) = folded(result)?;
            for l in lines {
                writeln!(out, "{l}")?;
            }
            Ok(())
        }
        OutputFormat::Svg => {
            let (name, lines) = folded(result)?;
            write_flamegraph_svg(out, &name, &lines)
        }
    }
}

/// Writes folded lines (`stack count`) as an inferno flame graph SVG titled `title` (for
/// `-o svg` and the TUI's flame graph export).
pub fn write_flamegraph_svg(
    out: &mut dyn Write,
    title: &str,
    lines: &[String],
) -> Result<(), OutputError> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_owned();
    opts.count_name = "samples".into();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .map_err(OutputError::Io)
}

/// The first output whose widget is a flame graph, as folded lines (`stack count`, stacks
/// with `;` between frames, as the widget's `stack` and `count` columns hold them).
fn folded(result: &QueryResult) -> Result<(String, Vec<String>), OutputError> {
    let spec = |t: &crate::client::ResultTable| -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&t.widget_json).ok()?;
        (v.get("widget")?.as_str()? == "flamegraph").then(|| {
            let col = |k: &str, d: &str| v.get(k).and_then(|c| c.as_str()).unwrap_or(d).to_string();
            (col("stack", "stack_trace"), col("count", "count"))
        })
    };
    let Some((table, (stack, count))) = result.tables.iter().find_map(|t| spec(t).map(|s| (t, s)))
    else {
        return Err(OutputError::NoFlameGraph);
    };
    let arrow_err = |source| OutputError::Arrow {
        table: table.name.clone(),
        source,
    };
    let mut lines = Vec::new();
    for b in &table.batches {
        let column = |name: &str| {
            b.column_by_name(name).cloned().ok_or_else(|| {
                arrow_err(ArrowError::SchemaError(format!(
                    "the flame graph widget names column {name:?}, which the table lacks"
                )))
            })
        };
        let stacks = cast(&column(&stack)?, &DataType::Utf8).map_err(arrow_err)?;
        let counts = cast(&column(&count)?, &DataType::Int64).map_err(arrow_err)?;
        let stacks = arrow::array::AsArray::as_string::<i32>(&stacks);
        let counts = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&counts);
        for (s, c) in stacks.iter().zip(counts.iter()) {
            if let (Some(s), Some(c)) = (s, c)
                && c > 0
                && !s.is_empty()
            {
                // NB: folded lines end in " COUNT"; a space inside a frame is kept.
                lines.push(format!("{s} {c}"));
            }
        }
    }
    Ok((table.name.clone(), lines))
}

/// Prepares a batch for export: `_tableName_` first, then the columns in order, with
/// timestamps and durations as integer nanoseconds.
pub fn export_batch(table_name: &str, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len() + 1);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
    fields.push(Field::new(TABLE_NAME_KEY, DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(vec![
        table_name;
        batch.num_rows()
    ])));
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let (data_type, column) = match field.data_type() {
            DataType::Timestamp(_, tz) => {
                let ns = cast(
                    column,
                    &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
                )?;
                (DataType::Int64, cast(&ns, &DataType::Int64)?)
            }
            DataType::Duration(_) => {
                let ns = cast(column, &DataType::Duration(TimeUnit::Nanosecond))?;
                (DataType::Int64, cast(&ns, &DataType::Int64)?)
            }
            other => (other.clone(), column.clone()),
        };
        fields.push(Field::new(field.name(), data_type, true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn arrow_err(table: &ResultTable) -> impl Fn(ArrowError) -> OutputError + '_ {
    |source| OutputError::Arrow {
        table: table.name.clone(),
        source,
    }
}

/// JSON Lines: one object per row, `_tableName_` first, nulls kept as `null`. Tables with no
/// rows print nothing (as `px run -o json` does).
pub fn write_json_lines(out: &mut dyn Write, result: &QueryResult) -> Result<(), OutputError> {
    for table in &result.tables {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
        for batch in table.batches.iter().filter(|b| b.num_rows() > 0) {
            let batch = export_batch(&table.name, batch).map_err(arrow_err(table))?;
            writer.write(&batch).map_err(arrow_err(table))?;
        }
        writer.finish().map_err(arrow_err(table))?;
    }
    Ok(())
}

/// Each output table as an aligned text table under its name, with a row count.
pub fn write_tables(out: &mut dyn Write, result: &QueryResult) -> Result<(), OutputError> {
    for (i, table) in result.tables.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let pretty = arrow::util::pretty::pretty_format_batches_with_schema(
            table.schema.clone(),
            &table.batches,
        )
        .map_err(arrow_err(table))?;
        let rows = table.num_rows();
        writeln!(out, "{}", table.name)?;
        writeln!(out, "{pretty}")?;
        writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
    }
    Ok(())
}

/// CSV: per output table a header line and its rows, `_tableName_` as the first column;
/// tables are separated by a blank line.
pub fn write_csv(out: &mut dyn Write, result: &QueryResult) -> Result<(), OutputError> {
    for (i, table) in result.tables.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut *out);
        let empty = RecordBatch::new_empty(table.schema.clone());
        // With no rows, still print the header so a reader sees the columns.
        let batches: Vec<&RecordBatch> = if table.num_rows() == 0 {
            vec![&empty]
        } else {
            table.batches.iter().filter(|b| b.num_rows() > 0).collect()
        };
        for batch in batches {
            let batch = export_batch(&table.name, batch).map_err(arrow_err(table))?;
            writer.write(&batch).map_err(arrow_err(table))?;
        }
    }
    Ok(())
}

/// Left-aligns `rows` into columns two spaces apart, trimming trailing blanks.
fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Bytes in binary units, one decimal (`1.5 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `pxtop scripts`: name and description, then one `--arg` line per parameter.
/// `pxtop run SCRIPT --help`: the script's description, usage and parameters.
pub fn write_script_help(out: &mut dyn Write, s: &ScriptInfo) -> Result<(), OutputError> {
    if !s.description.is_empty() {
        writeln!(out, "{}\n", s.description)?;
    }
    let name = if s.name.is_empty() { "SCRIPT" } else { &s.name };
    writeln!(
        out,
        "Usage: pxtop run {name} [--arg NAME=VALUE]... [-o table|json|csv]\n"
    )?;
    if s.params.is_empty() {
        writeln!(out, "Parameters: none")?;
        return Ok(());
    }
    writeln!(out, "Parameters:")?;
    let mut rows = vec![vec![
        "  NAME".to_string(),
        "TYPE".to_string(),
        "DEFAULT".to_string(),
        "HELP".to_string(),
    ]];
    rows.extend(s.params.iter().map(|p| {
        vec![
            format!("  {}", p.name),
            if p.r#type.is_empty() {
                "string".to_string()
            } else {
                p.r#type.clone()
            },
            format!("{:?}", p.default_value),
            p.help.clone(),
        ]
    }));
    write!(out, "{}", align(&rows))?;
    Ok(())
}

pub fn write_scripts(
    out: &mut dyn Write,
    scripts: &[ScriptInfo],
    as_json: bool,
) -> Result<(), OutputError> {
    if as_json {
        for s in scripts {
            let params: Vec<_> = s
                .params
                .iter()
                .map(|p| {
                    json!({"name": p.name, "type": p.r#type, "default": p.default_value, "help": p.help})
                })
                .collect();
            let line = json!({"name": s.name, "description": s.description, "params": params});
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    if scripts.is_empty() {
        writeln!(out, "no scripts")?;
        return Ok(());
    }
    let name_width = scripts
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for s in scripts {
        let line = format!("{:name_width$}  {}", s.name, s.description);
        writeln!(out, "{}", line.trim_end())?;
        let rows: Vec<Vec<String>> = s
            .params
            .iter()
            .map(|p| {
                vec![
                    format!("    --arg {}={}", p.name, p.default_value),
                    p.help.clone(),
                ]
            })
            .collect();
        write!(out, "{}", align(&rows))?;
    }
    Ok(())
}

/// `pxtop tables`: name, rows, bytes, budget and dropped rows; with `verbose`, the columns.
pub fn write_table_infos(
    out: &mut dyn Write,
    tables: &[TableInfo],
    verbose: bool,
    as_json: bool,
) -> Result<(), OutputError> {
    if as_json {
        for t in tables {
            let columns: Vec<_> = t
                .columns
                .iter()
                .map(|c| json!({"name": c.name, "data_type": c.data_type}))
                .collect();
            let mut line = json!({
                "name": t.name, "rows": t.rows, "bytes": t.bytes,
                "budget_bytes": t.budget_bytes, "dropped_rows": t.dropped_rows,
            });
            if verbose && let Some(obj) = line.as_object_mut() {
                obj.insert("columns".into(), columns.into());
            }
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let header = ["NAME", "ROWS", "BYTES", "BUDGET", "DROPPED"].map(String::from);
    let row = |t: &TableInfo| {
        vec![
            t.name.clone(),
            t.rows.to_string(),
            human_bytes(t.bytes),
            human_bytes(t.budget_bytes),
            t.dropped_rows.to_string(),
        ]
    };
    if !verbose {
        let rows: Vec<Vec<String>> = std::iter::once(header.to_vec())
            .chain(tables.iter().map(row))
            .collect();
        write!(out, "{}", align(&rows))?;
        return Ok(());
    }
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write!(out, "{}", align(&[header.to_vec(), row(t)]))?;
        let columns: Vec<Vec<String>> = t
            .columns
            .iter()
            .map(|c| vec![format!("    {}", c.name), c.data_type.clone()])
            .collect();
        write!(out, "{}", align(&columns))?;
    }
    Ok(())
}

/// Rows of a table as one string per cell with arrow's display rules (used by tests and the
/// TUI's fallback formatting).
pub fn display_value(array: &dyn Array, row: usize) -> String {
    let options = arrow::util::display::FormatOptions::default().with_null("null");
    match arrow::util::display::ArrayFormatter::try_new(array, &options) {
        Ok(f) => f.value(row).to_string(),
        Err(e) => format!("<{e}>"),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{BooleanArray, Float64Array, Int64Array, TimestampNanosecondArray};
    use pxtop_proto::v1::{ColumnInfo, ScriptParam};

    use super::*;

    fn http_batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "time_",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("req_path", DataType::Utf8, true),
            Field::new("resp_status", DataType::Int64, true),
            Field::new("latency", DataType::Int64, true),
            Field::new("encrypted", DataType::Boolean, true),
            Field::new("ratio", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![
                    1_700_000_000_123_456_789,
                    1_700_000_001_000_000_000,
                ])),
                Arc::new(StringArray::from(vec![Some("/cart \"x\""), None])),
                Arc::new(Int64Array::from(vec![Some(200), Some(503)])),
                Arc::new(Int64Array::from(vec![Some(1_834_000), None])),
                Arc::new(BooleanArray::from(vec![Some(false), Some(true)])),
                Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN)])),
            ],
        )
        .unwrap()
    }

    fn flame_result() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, true),
            Field::new("stack_trace", DataType::Utf8, true),
            Field::new("count", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["app", "app", "app"])),
                Arc::new(StringArray::from(vec![
                    "main;work;hot_loop",
                    "main;work;cold",
                    "main;idle",
                ])),
                Arc::new(Int64Array::from(vec![90, 8, 0])),
            ],
        )
        .unwrap();
        let mut r = result_of(vec![("stats", vec![http_batch()])]);
        r.tables.push(ResultTable {
            name: "perf_flamegraph".into(),
            widget_json: r#"{"widget":"flamegraph","stack":"stack_trace","count":"count"}"#.into(),
            schema,
            batches: vec![batch],
        });
        r
    }

    #[test]
    fn folded_and_svg_come_from_the_flamegraph_output() {
        let r = flame_result();
        assert_eq!(
            render(&r, OutputFormat::Folded),
            "main;work;hot_loop 90\nmain;work;cold 8\n"
        );
        let svg = render(&r, OutputFormat::Svg);
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{svg:.200}"
        );
        assert!(svg.contains("hot_loop") && svg.contains("perf_flamegraph"));
        // 90 of 98 samples.
        assert!(svg.contains("hot_loop (90 samples, 91.84%)"), "{svg}");
    }

    #[test]
    fn folded_without_a_flamegraph_output_names_the_fix() {
        let r = result_of(vec![("stats", vec![http_batch()])]);
        let mut out = Vec::new();
        let err = write_result(&mut out, &r, OutputFormat::Svg).unwrap_err();
        assert!(err.to_string().contains("px/perf_flamegraph"), "{err}");
    }

    fn result_of(tables: Vec<(&str, Vec<RecordBatch>)>) -> QueryResult {
        QueryResult {
            tables: tables
                .into_iter()
                .map(|(name, batches)| ResultTable {
                    name: name.into(),
                    widget_json: String::new(),
                    schema: batches[0].schema(),
                    batches,
                })
                .collect(),
            stats: None,
        }
    }

    fn render(result: &QueryResult, format: OutputFormat) -> String {
        let mut out = Vec::new();
        write_result(&mut out, result, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_put_table_name_first_and_time_as_integer_ns() {
        let r = result_of(vec![("http_data", vec![http_batch()])]);
        assert_eq!(
            render(&r, OutputFormat::Json),
            concat!(
                r#"{"_tableName_":"http_data","time_":1700000000123456789,"req_path":"/cart \"x\"","resp_status":200,"latency":1834000,"encrypted":false,"ratio":0.5}"#,
                "\n",
                r#"{"_tableName_":"http_data","time_":1700000001000000000,"req_path":null,"resp_status":503,"latency":null,"encrypted":true,"ratio":null}"#,
                "\n",
            )
        );
    }

    #[test]
    fn json_lines_keep_split_tables_in_order_and_skip_empty_ones() {
        let b = http_batch();
        let first = b.slice(0, 1);
        let second = b.slice(1, 1);
        let empty = b.slice(0, 0);
        let r = result_of(vec![
            ("a", vec![first, empty.clone(), second]),
            ("nothing", vec![empty]),
        ]);
        let text = render(&r, OutputFormat::Json);
        let times: Vec<i64> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["_tableName_"], "a");
                v["time_"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(
            times,
            vec![1_700_000_000_123_456_789, 1_700_000_001_000_000_000]
        );
    }

    #[test]
    fn json_lines_of_no_rows_print_nothing() {
        let r = result_of(vec![("t", vec![http_batch().slice(0, 0)])]);
        assert_eq!(render(&r, OutputFormat::Json), "");
        assert_eq!(render(&QueryResult::default(), OutputFormat::Json), "");
    }

    #[test]
    fn microsecond_timestamps_become_nanoseconds() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "time_",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::TimestampMicrosecondArray::from(
                vec![1_000_001],
            ))],
        )
        .unwrap();
        let r = result_of(vec![("t", vec![batch])]);
        assert_eq!(
            render(&r, OutputFormat::Json),
            "{\"_tableName_\":\"t\",\"time_\":1000001000}\n"
        );
    }

    #[test]
    fn text_tables_have_a_heading_and_a_row_count() {
        let b = http_batch();
        let small = b.project(&[1, 2]).unwrap();
        let r = result_of(vec![
            ("http_data", vec![small.clone()]),
            ("one", vec![small.slice(0, 1)]),
        ]);
        assert_eq!(
            render(&r, OutputFormat::Table),
            "\
http_data
+-----------+-------------+
| req_path  | resp_status |
+-----------+-------------+
| /cart \"x\" | 200         |
|           | 503         |
+-----------+-------------+
2 rows

one
+-----------+-------------+
| req_path  | resp_status |
+-----------+-------------+
| /cart \"x\" | 200         |
+-----------+-------------+
1 row
"
        );
    }

    #[test]
    fn empty_text_table_still_shows_columns() {
        let small = http_batch().project(&[1, 2]).unwrap().slice(0, 0);
        let r = result_of(vec![("t", vec![small])]);
        assert_eq!(
            render(&r, OutputFormat::Table),
            "\
t
+----------+-------------+
| req_path | resp_status |
+----------+-------------+
+----------+-------------+
0 rows
"
        );
    }

    #[test]
    fn csv_has_table_name_column_and_integer_times() {
        let b = http_batch().project(&[0, 1, 2]).unwrap();
        let r = result_of(vec![
            ("http_data", vec![b.clone()]),
            ("none", vec![b.slice(0, 0)]),
        ]);
        assert_eq!(
            render(&r, OutputFormat::Csv),
            "\
_tableName_,time_,req_path,resp_status
http_data,1700000000123456789,\"/cart \"\"x\"\"\",200
http_data,1700000001000000000,,503

_tableName_,time_,req_path,resp_status
"
        );
    }

    #[test]
    fn scripts_listing_shows_params() {
        let scripts = vec![
            ScriptInfo {
                name: "px/http_data".into(),
                description: "Recent HTTP requests".into(),
                params: vec![
                    ScriptParam {
                        name: "start_time".into(),
                        default_value: "-5m".into(),
                        help: "how far back".into(),
                        r#type: "string".into(),
                    },
                    ScriptParam {
                        name: "max_rows".into(),
                        default_value: "1000".into(),
                        help: "row limit".into(),
                        r#type: "int".into(),
                    },
                ],
            },
            ScriptInfo {
                name: "px/x".into(),
                description: "X".into(),
                params: vec![],
            },
        ];
        let mut out = Vec::new();
        write_scripts(&mut out, &scripts, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
px/http_data  Recent HTTP requests
    --arg start_time=-5m  how far back
    --arg max_rows=1000   row limit
px/x          X
"
        );
        let mut out = Vec::new();
        write_scripts(&mut out, &scripts[1..], true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"name\":\"px/x\",\"description\":\"X\",\"params\":[]}\n"
        );
    }

    #[test]
    fn tables_listing_with_and_without_columns() {
        let tables = vec![TableInfo {
            name: "http_events".into(),
            columns: vec![
                ColumnInfo {
                    name: "time_".into(),
                    data_type: "Timestamp(ns)".into(),
                },
                ColumnInfo {
                    name: "req_path".into(),
                    data_type: "Utf8".into(),
                },
            ],
            rows: 12,
            bytes: 3 * 1024 * 1024 / 2,
            budget_bytes: 64 * 1024 * 1024,
            dropped_rows: 3,
        }];
        let mut out = Vec::new();
        write_table_infos(&mut out, &tables, false, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
NAME         ROWS  BYTES    BUDGET    DROPPED
http_events  12    1.5 MiB  64.0 MiB  3
"
        );
        let mut out = Vec::new();
        write_table_infos(&mut out, &tables, true, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
NAME         ROWS  BYTES    BUDGET    DROPPED
http_events  12    1.5 MiB  64.0 MiB  3
    time_     Timestamp(ns)
    req_path  Utf8
"
        );
        let mut out = Vec::new();
        write_table_infos(&mut out, &tables, false, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"name\":\"http_events\",\"rows\":12,\"bytes\":1572864,\"budget_bytes\":67108864,\"dropped_rows\":3}\n"
        );
    }

    #[test]
    fn bytes_are_humanized() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let e = OutputError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "x"));
        assert!(e.is_broken_pipe());
        let e = OutputError::Io(io::Error::other("x"));
        assert!(!e.is_broken_pipe());
    }
}
