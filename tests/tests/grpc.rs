//! End to end: a Python gRPC server and client (Debian's `python3-grpcio`, generic handlers on
//! raw bytes) on loopback: a burst of unary calls, calls that fail with NOT_FOUND and
//! server-streaming calls over one HTTP/2 connection, captured by the real probes in an
//! in-process pxtopd; the rows `pxtop run px/http_data -o json` prints must show each call once,
//! with its path, payload, gRPC status and message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{collections::HashMap, process::Command, time::Duration};

use pxtop_e2e::{Backend, grpc::GrpcServer, may_use_ebpf, pxtop_bin};

const CALLS: usize = 1000;
const ERRORS: usize = 10;
const STREAMS: usize = 5;

/// A gRPC message as `http_events` renders a gRPC body: the 5-byte length prefix (not
/// compressed, big-endian length) escaped as `\xNN`, the payload (printable here) as is.
fn escaped_message(payload: &str) -> String {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut s = String::from("\\x00");
    for b in len {
        s.push_str(&format!("\\x{b:02x}"));
    }
    s.push_str(payload);
    s
}

/// The `http_events` rows of the server on `port`, as `pxtop run px/http_data` prints them.
fn captured(backend: &Backend, port: u16) -> Vec<serde_json::Value> {
    let out = Command::new(pxtop_bin())
        .args(["--addr", &backend.url, "run", "px/http_data"])
        .args([
            "--arg",
            "start_time=-10m",
            "--arg",
            "max_rows=100000",
            "-o",
            "json",
        ])
        .env("PXTOP_TOKEN", &backend.token)
        .output()
        .expect("run pxtop (build it first: cargo build --workspace)");
    assert!(
        out.status.success(),
        "pxtop run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .filter(|v| v["local_port"] == serde_json::json!(port))
        .collect()
}

fn headers(row: &serde_json::Value, col: &str) -> serde_json::Map<String, serde_json::Value> {
    let text = row[col].as_str().unwrap_or_default();
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => panic!("{col} is not a JSON object: {row}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_captured_exactly_and_served_by_pxtop_run() {
    if !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    let server = GrpcServer::start().expect("start the Python gRPC server");
    let port = server.port;
    let lines = tokio::task::spawn_blocking(move || {
        let lines = server.client(CALLS, ERRORS, STREAMS);
        (server, lines)
    })
    .await
    .expect("join");
    let (server, lines) = (lines.0, lines.1.expect("run the Python gRPC client"));
    // The client's own view first: what each call got.
    let sent: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let mut w = l.splitn(4, ' ');
            let mut next = || w.next().unwrap_or_default().to_string();
            (next(), next(), next(), next())
        })
        .collect();
    assert_eq!(sent.len(), CALLS + ERRORS + STREAMS, "{lines:?}");
    for (method, payload, status, reply) in &sent {
        match method.as_str() {
            "Say" => assert_eq!((status.as_str(), reply), ("0", &format!("echo:{payload}"))),
            "Fail" => assert_eq!((status.as_str(), reply.as_str()), ("5", "no such thing")),
            _ => assert_eq!(
                reply,
                &(0..3)
                    .map(|k| format!("part-{k}:{payload}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    // Rows are flushed every 100 ms; give the agent a moment, longer if it is slow.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut rows = captured(&backend, port);
    for _ in 0..20 {
        if rows.len() >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rows = captured(&backend, port);
    }
    let mut by_body: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &rows {
        by_body
            .entry(r["req_body"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(r);
    }
    let found = sent
        .iter()
        .filter(|(_, p, _, _)| by_body.contains_key(&escaped_message(p)))
        .count();
    eprintln!(
        "grpc fidelity: {found}/{} calls captured ({} rows for port {port}; {} unary, {} errors, \
         {} streams sent)",
        sent.len(),
        rows.len(),
        CALLS,
        ERRORS,
        STREAMS
    );
    // Only the server's side: the client ends of loopback connections are not captured.
    assert!(
        rows.iter().all(|r| r["trace_role"] == 2),
        "{:?}",
        rows.iter().find(|r| r["trace_role"] != 2)
    );
    let missing: Vec<_> = sent
        .iter()
        .filter(|(_, p, _, _)| !by_body.contains_key(&escaped_message(p)))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "not captured, e.g. {missing:?}");
    assert_eq!(rows.len(), sent.len(), "one row per call, no duplicates");

    for (method, payload, _, _) in &sent {
        let got = &by_body[&escaped_message(payload)];
        assert_eq!(got.len(), 1, "{method} {payload}: {got:?}");
        let r = got[0];
        assert_eq!(r["major_version"], 2, "{r}");
        assert_eq!(r["req_method"], "POST", "{r}");
        let path = format!("/pxtop.Echo/{method}");
        assert_eq!(r["req_path"], path.as_str(), "{r}");
        assert_eq!(r["resp_status"], 200, "{r}");
        assert!(r["latency"].as_i64().unwrap_or(0) > 0, "{r}");
        let req_h = headers(r, "req_headers");
        assert_eq!(req_h[":path"], path.as_str(), "{r}");
        assert_eq!(req_h[":method"], "POST", "{r}");
        assert!(
            req_h["content-type"]
                .as_str()
                .unwrap()
                .starts_with("application/grpc"),
            "{r}"
        );
        let resp_h = headers(r, "resp_headers");
        assert_eq!(resp_h[":status"], "200", "{r}");
        let body = r["resp_body"].as_str().unwrap();
        match method.as_str() {
            "Say" => {
                assert_eq!(resp_h["grpc-status"], "0", "{r}");
                assert_eq!(body, escaped_message(&format!("echo:{payload}")), "{r}");
            }
            "Fail" => {
                assert_eq!(resp_h["grpc-status"], "5", "{r}");
                assert_eq!(resp_h["grpc-message"], "no such thing", "{r}");
                assert_eq!(body, "", "{r}");
            }
            _ => {
                assert_eq!(resp_h["grpc-status"], "0", "{r}");
                let want: String = (0..3)
                    .map(|k| escaped_message(&format!("part-{k}:{payload}")))
                    .collect();
                assert_eq!(body, want, "{r}");
            }
        }
    }
    drop(server);
    backend.stop().await.expect("pxtopd stopped cleanly");
}
