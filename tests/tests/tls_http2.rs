//! End to end: HTTP/2 and TLS against nginx from Debian on loopback, captured by the real probes
//! in an in-process pxtopd and read back with `pxtop run px/http_data -o json`:
//! - curl `--http2-prior-knowledge` (h2c): many requests on one connection, so the HPACK
//!   dynamic table carries over between requests;
//! - curl `--http2` over TLS (ALPN h2): nginx's `SSL_read`/`SSL_write` plaintext is HTTP/2;
//! - Python's `ssl` (`SSL_read_ex`/`SSL_write_ex`) with HTTP/1.1 keep-alive over TLS, a burst.
//!
//! Every request must appear exactly once with its method, path and status, `major_version`
//! right, and `encrypted` true exactly for the TLS ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{collections::HashMap, process::Command, time::Duration};

use pxtop_e2e::{Backend, may_use_ebpf, nginx::Nginx, pxtop_bin};

/// Runs curl with `args` then `urls` (one connection when curl can reuse it); returns the
/// status codes it printed, one per URL.
fn curl(args: &[&str], urls: &[String]) -> Vec<u16> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "%{http_code}\\n"]).args(args);
    for u in urls {
        cmd.args(["-o", "/dev/null", u]);
    }
    let out = cmd
        .output()
        .expect("curl is installed by tools/setup-debian.sh");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("status"))
        .collect()
}

/// `n` HTTP/1.1 requests over one TLS connection from Python's ssl module; prints statuses.
fn python_tls(port: u16, n: usize) -> Vec<u16> {
    let script = format!(
        r#"
import http.client, ssl
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", {port}, context=ctx)
for i in range({n}):
    path = "/status/%s?n=py%d" % ("200" if i % 4 else "404", i)
    if i % 5 == 0:
        c.request("POST", path.replace("/status/200", "/status/201").replace("/status/404", "/status/201"), body=b"x" * 100)
    else:
        c.request("GET", path)
    r = c.getresponse()
    r.read()
    print(r.status)
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("status"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_tls_plaintext_are_captured_exactly() {
    if !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    // NB: the TLS probes attach to the system libssl at start (a uprobe on a library file
    // covers every process that maps it later), so nginx may start right away.
    let nginx = Nginx::start().expect("start nginx");
    let (h2c, tls) = (nginx.h2c_port, nginx.tls_port);

    // (path, method, status, major version, encrypted) of everything sent.
    let mut sent: Vec<(String, &str, u16, i64, bool)> = Vec::new();
    let code = |i: usize| ["200", "404", "500", "201"][i % 4];
    // NB: one request per curl: curl 7.88 (bookworm) fails a second request on an h2c
    // connection with "Error in the HTTP2 framing layer". The TLS batches below reuse theirs.
    for batch in 0..100 {
        let urls = vec![format!(
            "http://127.0.0.1:{h2c}/status/{}?n=h2c{batch}",
            code(batch)
        )];
        let got = curl(&["--http2-prior-knowledge"], &urls);
        assert_eq!(got.len(), urls.len());
        for (u, s) in urls.iter().zip(got) {
            let path = u.split_once(&format!("{h2c}")).unwrap().1.to_string();
            sent.push((path, "GET", s, 2, false));
        }
    }
    for batch in 0..4 {
        let urls: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    "https://127.0.0.1:{tls}/status/{}?n=h2tls{batch}x{i}",
                    code(i)
                )
            })
            .collect();
        let got = curl(&["-k", "--http2"], &urls);
        for (u, s) in urls.iter().zip(got) {
            let path = u.split_once(&format!("{tls}")).unwrap().1.to_string();
            sent.push((path, "GET", s, 2, true));
        }
    }
    let statuses = tokio::task::spawn_blocking(move || python_tls(tls, 1000))
        .await
        .expect("join");
    for (i, s) in statuses.into_iter().enumerate() {
        let code = if i % 5 == 0 {
            "201"
        } else if i % 4 == 0 {
            "404"
        } else {
            "200"
        };
        let method = if i % 5 == 0 { "POST" } else { "GET" };
        sent.push((format!("/status/{code}?n=py{i}"), method, s, 1, true));
    }

    // Rows as a user gets them; poll until the flushes have caught up.
    let mut by_path: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
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
            .expect("run pxtop");
        assert!(
            out.status.success(),
            "pxtop run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        by_path.clear();
        for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let port = row["local_port"].as_i64().unwrap_or(0);
            if port == i64::from(h2c) || port == i64::from(tls) {
                let path = row["req_path"].as_str().unwrap_or_default().to_string();
                by_path.entry(path).or_default().push(row);
            }
        }
        if by_path.values().map(Vec::len).sum::<usize>() >= sent.len() {
            break;
        }
    }
    let captured: usize = sent.iter().filter(|s| by_path.contains_key(&s.0)).count();
    eprintln!(
        "fidelity: {captured}/{} (h2c 100, h2 over TLS 200, HTTP/1.1 over TLS 1000)",
        sent.len()
    );
    let status = Command::new(pxtop_bin())
        .args([
            "--addr",
            &backend.url,
            "run",
            "px/probe_status",
            "-o",
            "json",
        ])
        .env("PXTOP_TOKEN", &backend.token)
        .output()
        .expect("run pxtop");
    let status = String::from_utf8_lossy(&status.stdout);
    for (path, method, code, major, encrypted) in &sent {
        let rows = by_path
            .get(path)
            .unwrap_or_else(|| panic!("not captured: {path} (probe_status: {status})"));
        assert_eq!(rows.len(), 1, "one row per request: {path}: {rows:?}");
        let r = &rows[0];
        assert_eq!(r["req_method"], *method, "{r}");
        assert_eq!(r["resp_status"], i64::from(*code), "{r}");
        assert_eq!(r["major_version"], *major, "{r}");
        assert_eq!(r["encrypted"], *encrypted, "{r}");
        assert_eq!(r["trace_role"], 2, "nginx's side: {r}");
        assert!(r["latency"].as_i64().unwrap() > 0, "{r}");
        if *major == 2 {
            // Decoded by HPACK, dynamic table and all: the pseudo-headers are there.
            let h = r["req_headers"].as_str().unwrap();
            assert!(h.contains(":authority"), "{r}");
        }
        if *method == "POST" {
            assert_eq!(r["req_body_size"], 100, "{r}");
        }
    }
    drop(nginx);
    backend.stop().await.expect("pxtopd stopped cleanly");
}
