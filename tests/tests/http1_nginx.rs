//! End to end: nginx from Debian on loopback, a few hundred requests of varied methods, paths,
//! statuses and body sizes over keep-alive and pipelined connections, captured by the real
//! probes in an in-process pxtopd; the rows must match what was sent, through gRPC and through
//! `pxtop run ... -o json` as a user would run it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{collections::HashMap, process::Command, time::Duration};

use arrow::{
    array::{AsArray, RecordBatch},
    datatypes::Int64Type,
    ipc::reader::StreamReader,
};
use pxtop_e2e::{
    Backend,
    client::{self, Exchange, Request},
    may_use_ebpf,
    nginx::Nginx,
    pxtop_bin,
};
use pxtop_proto::v1::{
    ExecuteScriptRequest, execute_script_response::Result as R, pxtop_client::PxtopClient,
};

/// The plan: (pipelined?, requests) per connection. Every path carries a unique `n` so each
/// captured row is matched to exactly one request.
fn plan() -> Vec<(bool, Vec<Request>)> {
    let mut n = 0;
    let mut next = |base: &str| {
        n += 1;
        format!("{base}?n={n}")
    };
    let mut conns = Vec::new();
    for c in 0..6 {
        let mut reqs = Vec::new();
        for i in 0..30 {
            let r = match (c * 30 + i) % 15 {
                0 => Request::new("GET", next("/status/200")),
                1 => Request::new("POST", next("/status/201")).body(vec![b'p'; 10]),
                2 => Request::new("GET", next("/status/204")),
                3 => Request::new("GET", next("/redirect")),
                4 => Request::new("GET", next("/status/404")),
                5 => Request::new("DELETE", next("/status/500")),
                6 => Request::new("PUT", next("/status/200")).body(vec![b'u'; 4096]),
                7 => Request::new("HEAD", next("/status/200")),
                8 => Request::new("GET", next(&format!("/files/{}.txt", [0, 1, 1024][i % 3]))),
                9 => Request::new("GET", next("/files/100000.txt")),
                10 => Request::new("GET", next("/copy/16384.txt")),
                11 => {
                    Request::new("GET", next("/gzip/100000.txt")).header("Accept-Encoding", "gzip")
                }
                12 => Request::new("POST", next("/status/201")).body(vec![b'b'; 64 * 1024]),
                13 if i % 2 == 0 => Request::new("GET", next("/files/1048576.txt")),
                13 => Request::new("POST", next("/status/201")).body(vec![b'm'; 1 << 20]),
                _ => Request::new("POST", next("/status/201")).body(Vec::new()),
            };
            reqs.push(r);
        }
        conns.push((false, reqs));
    }
    for _ in 0..4 {
        let mut reqs = Vec::new();
        for i in 0..25 {
            reqs.push(match i % 5 {
                0 => Request::new("GET", next("/status/200")),
                1 => Request::new("HEAD", next("/status/404")),
                2 => Request::new("POST", next("/status/201")).body(vec![b'x'; 300]),
                3 => Request::new("GET", next("/copy/1024.txt")),
                _ => Request::new("GET", next("/status/500")),
            });
        }
        conns.push((true, reqs));
    }
    conns
}

fn send(port: u16) -> anyhow::Result<Vec<Exchange>> {
    let handles: Vec<_> = plan()
        .into_iter()
        .map(|(pipelined, reqs)| {
            std::thread::spawn(move || {
                if pipelined {
                    client::pipelined(port, &reqs)
                } else {
                    client::keep_alive(port, &reqs)
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??,
        );
    }
    Ok(all)
}

#[derive(Debug, Clone)]
struct Row {
    method: String,
    status: i64,
    latency: i64,
    req_body_size: i64,
    resp_body_size: i64,
    trace_role: i64,
}

fn decode(ipc: &[u8]) -> Vec<RecordBatch> {
    StreamReader::try_new(std::io::Cursor::new(ipc.to_vec()), None)
        .expect("arrow ipc stream")
        .collect::<Result<Vec<_>, _>>()
        .expect("arrow batches")
}

/// Rows captured for nginx on `port`, by path, via gRPC with an inline script.
async fn captured(backend: &Backend, port: u16) -> HashMap<String, Vec<Row>> {
    let mut client = PxtopClient::connect(backend.url.clone())
        .await
        .expect("connect");
    let source = format!(
        "let df = px::DataFrame(\"http_events\", \"-10m\");\n\
         df = df.filter(df.local_port == {port});\n\
         px::display(df, \"rows\");\n"
    );
    let mut req = tonic::Request::new(ExecuteScriptRequest {
        source,
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", backend.token).parse().expect("header"),
    );
    let mut stream = client
        .execute_script(req)
        .await
        .expect("execute")
        .into_inner();
    let mut rows: HashMap<String, Vec<Row>> = HashMap::new();
    while let Some(msg) = stream.message().await.expect("stream") {
        let Some(R::Batch(b)) = msg.result else {
            continue;
        };
        for batch in decode(&b.arrow_ipc) {
            let s = |n: &str| batch.column_by_name(n).expect(n).as_string::<i32>().clone();
            let i = |n: &str| {
                batch
                    .column_by_name(n)
                    .expect(n)
                    .as_primitive::<Int64Type>()
                    .clone()
            };
            let (path, method) = (s("req_path"), s("req_method"));
            let (status, latency, role) = (i("resp_status"), i("latency"), i("trace_role"));
            let (req_size, resp_size) = (i("req_body_size"), i("resp_body_size"));
            for r in 0..batch.num_rows() {
                rows.entry(path.value(r).to_string())
                    .or_default()
                    .push(Row {
                        method: method.value(r).to_string(),
                        status: status.value(r),
                        latency: latency.value(r),
                        req_body_size: req_size.value(r),
                        resp_body_size: resp_size.value(r),
                        trace_role: role.value(r),
                    });
            }
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_traffic_is_captured_exactly_and_served_by_pxtop_run() {
    if !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    let nginx = Nginx::start().expect("start nginx");
    let port = nginx.port;
    let sent = tokio::task::spawn_blocking(move || send(port))
        .await
        .expect("join")
        .expect("send the requests");
    assert!(sent.len() >= 280, "{}", sent.len());
    // The client's own view first: nginx answered what the config says.
    for e in &sent {
        let want: u16 = if e.path.starts_with("/redirect") {
            301
        } else if let Some(code) = e.path.strip_prefix("/status/") {
            code[..3].parse().expect("code")
        } else {
            200
        };
        assert_eq!(e.status, want, "{e:?}");
    }

    let mut rows = HashMap::new();
    for _ in 0..50 {
        rows = captured(&backend, port).await;
        if rows.values().map(Vec::len).sum::<usize>() >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let total: usize = rows.values().map(Vec::len).sum();
    let missing: Vec<_> = sent
        .iter()
        .filter(|e| !rows.contains_key(&e.path))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} requests not captured, e.g. {:?}",
        missing.len(),
        sent.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(total, sent.len(), "one row per request, no duplicates");
    for e in &sent {
        let r = &rows[&e.path][0];
        assert_eq!(r.method, e.method, "{e:?} {r:?}");
        assert_eq!(r.status, i64::from(e.status), "{e:?} {r:?}");
        assert_eq!(r.trace_role, 2, "nginx's side is the server: {e:?}");
        assert!(r.latency > 0, "{e:?} {r:?}");
        assert!(
            r.latency as u128 <= e.elapsed.as_nanos(),
            "captured latency above the client's: {e:?} {r:?}"
        );
        assert_eq!(r.req_body_size, e.req_body_size as i64, "{e:?} {r:?}");
        assert_eq!(r.resp_body_size, e.resp_body_size as i64, "{e:?} {r:?}");
    }

    // The same rows as a user gets them.
    let out = Command::new(pxtop_bin())
        .args([
            "--addr",
            &backend.url,
            "run",
            "px/http_data",
            "--arg",
            "start_time=-10m",
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
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let mut by_path: HashMap<String, serde_json::Value> = HashMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(line.starts_with("{\"_tableName_\":"), "{line}");
        assert!(v["time_"].is_i64(), "time_ as integer ns: {line}");
        if v["local_port"] == serde_json::json!(port) {
            by_path.insert(v["req_path"].as_str().unwrap_or_default().to_string(), v);
        }
    }
    assert_eq!(
        by_path.len(),
        sent.len(),
        "pxtop run shows every request once"
    );
    for e in &sent {
        let v = &by_path[&e.path];
        assert_eq!(v["req_method"], serde_json::json!(e.method));
        assert_eq!(v["resp_status"], serde_json::json!(e.status));
        assert!(v["latency"].as_i64().unwrap_or(0) > 0);
    }

    // Loss is visible: probe_status counts events, and this load lost none.
    // NB: probe_status is sampled every second; wait for a sample taken after the load.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status = Command::new(pxtop_bin())
        .args([
            "--addr",
            &backend.url,
            "run",
            "-o",
            "json",
            "px/probe_status",
        ])
        .env("PXTOP_TOKEN", &backend.token)
        .output()
        .expect("run pxtop");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = String::from_utf8_lossy(&status.stdout);
    // NB: one row per probe per sample (socket_tracer, tls_tracer): the socket tracer's last.
    let last = text
        .lines()
        .rfind(|l| l.contains("\"probe\":\"socket_tracer\""))
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
    assert!(
        v["events"].as_i64().unwrap_or(0) > 0,
        "probe_status: {text} {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(v["lost"], serde_json::json!(0), "{last}");

    // conn_stats: nginx's server side of these connections, recognised as HTTP, with bytes.
    let out = Command::new(pxtop_bin())
        .args(["--addr", &backend.url, "run", "-o", "json", "px/conn_stats"])
        .env("PXTOP_TOKEN", &backend.token)
        .output()
        .expect("run pxtop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let server_http: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["trace_role"] == 2 && v["protocol"] == 1)
        .collect();
    assert!(!server_http.is_empty(), "conn_stats: {text}");
    let opened: i64 = server_http
        .iter()
        .map(|v| v["conn_open"].as_i64().unwrap_or(0))
        .sum();
    let sent: i64 = server_http
        .iter()
        .map(|v| v["bytes_sent"].as_i64().unwrap_or(0))
        .sum();
    let recv: i64 = server_http
        .iter()
        .map(|v| v["bytes_recv"].as_i64().unwrap_or(0))
        .sum();
    assert!(opened >= 1 && sent > 0 && recv > 0, "conn_stats: {text}");
    drop(nginx);
    backend.stop().await.expect("pxtopd stopped cleanly");
}
