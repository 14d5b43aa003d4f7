//! The client and the `pxtop` binary against the fake pxtopd: output formats, script files,
//! arguments, tokens and exit statuses.

use std::collections::HashMap;
use std::process::Output;

use pxtop::client::{Client, ScriptSource};

use super::fake;

/// Runs the real binary with `args`, `PXTOP_TOKEN=token` (or none) and no user config.
async fn pxtop(args: &[&str], token: Option<&str>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pxtop"));
    cmd.args(args)
        .env_remove("PXTOP_ADDR")
        .env_remove("PXTOP_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("PXTOP_LOG")
        // No stray ~/.config/pxtop/local.token from the machine running the tests.
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path());
    if let Some(t) = token {
        cmd.env("PXTOP_TOKEN", t);
    }
    cmd.output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn client_concatenates_the_parts_of_a_table() {
    let addr = fake::spawn().await;
    let mut client = Client::new(&addr, Some(fake::TOKEN)).unwrap();
    let result = client
        .execute(&ScriptSource::Name("px/http_data".into()), HashMap::new())
        .await
        .unwrap();
    assert_eq!(result.tables.len(), 1);
    assert_eq!(result.tables[0].name, "http_data");
    assert_eq!(result.tables[0].batches.len(), 2);
    assert_eq!(result.num_rows(), 5);
    assert!(result.stats.unwrap().truncated);
}

#[tokio::test]
async fn run_prints_json_lines_with_the_table_name_first() {
    let addr = fake::spawn().await;
    let out = pxtop(
        &["run", "px/http_data", "--json", "--addr", &addr],
        Some(fake::TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        lines[0].starts_with(r#"{"_tableName_":"http_data","time_":"#),
        "{}",
        lines[0]
    );
    assert_eq!(first["time_"], super::render::T0);
    assert_eq!(first["latency"], 1_834_000);
    assert_eq!(first["req_path"], "/api/cart");
    // The truncation warning goes to stderr, keeping stdout clean for jq.
    assert!(
        stderr(&out).contains("cut at the row limit"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn run_defaults_to_a_text_table_and_does_csv() {
    let addr = fake::spawn().await;
    let out = pxtop(&["run", "px/http_data", "--addr", &addr], Some(fake::TOKEN)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("http_data\n+"), "{text}");
    assert!(text.contains("| /api/checkout"), "{text}");
    assert!(text.trim_end().ends_with("5 rows"), "{text}");

    let out = pxtop(
        &["run", "px/http_data", "-o", "csv", "--addr", &addr],
        Some(fake::TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    assert!(csv.starts_with("_tableName_,time_,remote_addr,"), "{csv}");
    // Bodies with line breaks are quoted over several lines; records start with the name.
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("http_data,")).count(),
        5,
        "{csv}"
    );
}

#[tokio::test]
async fn run_sends_a_file_as_source_with_its_args() {
    let addr = fake::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.rhai");
    std::fs::write(&path, "px::display(px::DataFrame(\"http_events\"));\n").unwrap();
    let path = path.to_str().unwrap();
    let out = pxtop(
        &[
            "run",
            path,
            "--arg",
            "start_time=-1m",
            "--arg",
            "b=2",
            "-o",
            "json",
            "--addr",
            &addr,
        ],
        Some(fake::TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"{"_tableName_":"echo","source":"px::display(px::DataFrame(\"http_events\"));","args":"b=2,start_time=-1m"}"#
    );
}

#[tokio::test]
async fn run_help_describes_the_script_instead_of_running_it() {
    let addr = fake::spawn().await;
    let out = pxtop(
        &["run", "px/http_data", "--help", "--addr", &addr],
        Some(fake::TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Recent HTTP requests"), "{text}");
    assert!(text.contains("Usage: pxtop run px/http_data"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("start_time") && l.contains("\"-5m\"") && l.contains("how far")),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.rhai");
    std::fs::write(&path, "px::param(\"limit\", 10, \"rows\");\n").unwrap();
    let out = pxtop(
        &["run", path.to_str().unwrap(), "-h", "--addr", &addr],
        Some(fake::TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("limit") && l.contains("int") && l.contains("\"10\"")),
        "{text}"
    );

    // Without a script, --help is clap's help for `run`.
    let out = pxtop(&["run", "--help"], None).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Usage: pxtop run"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn sql_sends_the_query_as_an_argument_of_the_sql_script() {
    let addr = fake::spawn().await;
    let query = r#"SELECT "req_path", 'it''s' FROM http_events"#;
    let out = pxtop(
        &["sql", query, "-o", "json", "--addr", &addr],
        Some(fake::TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(row["source"], pxtop::cli::SQL_SCRIPT);
    assert_eq!(row["args"], format!("query={query}"));
}

#[tokio::test]
async fn errors_exit_non_zero_with_one_line_naming_the_fix() {
    let addr = fake::spawn().await;
    let out = pxtop(&["run", "px/nope", "--addr", &addr], Some(fake::TOKEN)).await;
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "pxtop: no script named 'px/nope' (see `pxtop scripts`)\n"
    );
    assert!(out.stdout.is_empty());

    let out = pxtop(&["scripts", "--addr", &addr], Some("wrong")).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("refused the token"), "{err}");
    assert!(err.contains("set PXTOP_TOKEN"), "{err}");
}

#[tokio::test]
async fn scripts_and_tables_list_what_the_server_has() {
    let addr = fake::spawn().await;
    let out = pxtop(&["scripts", "--addr", &addr], Some(fake::TOKEN)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("px/http_data"), "{text}");
    assert!(text.contains("--arg start_time=-5m"), "{text}");

    let out = pxtop(&["tables", "--json", "--addr", &addr], Some(fake::TOKEN)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(row["name"], "http_events");
    assert_eq!(row["rows"], 5);
}

/// `--local` runs the real backend in-process: as root it captures and answers; otherwise it
/// fails with one line naming the fix, before touching the terminal.
#[tokio::test]
async fn local_runs_the_embedded_backend_or_names_the_fix() {
    let out = pxtop(&["--local", "run", "px/probe_status", "-o", "json"], None).await;
    let err = stderr(&out);
    if out.status.success() {
        let text = stdout(&out);
        assert!(text.contains("\"probe\":\"socket_tracer\""), "{text}");
    } else {
        // In CI (root, BTF) the embedded backend must run: a failure there is not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "--local must work in CI: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("root") || err.contains("BTF") || err.contains("tracefs"),
            "{err}"
        );
    }
}
