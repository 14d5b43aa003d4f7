//! Cluster mode for real: one `pxtopd kelvin` on the host and three `pxtopd pem`, each in its
//! own network namespace joined to the host by a veth pair, each capturing the HTTP traffic
//! of a server and client inside its namespace with eBPF. A query through Kelvin returns the
//! union, every row naming its node; killing one PEM gives partial results with a warning
//! naming it; restarting it heals. Needs root: skipped with a reason outside CI, a failure
//! in CI.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pxtop_proto::v1::{
    ExecuteScriptRequest, HealthRequest, execute_script_response::Result as Reply,
    pxtop_client::PxtopClient,
};
use tonic::Request;

const TOKEN: &str = "netns-cluster-token";
const PEMS: usize = 3;
const SCRIPT: &str = r#"
let df = px::DataFrame("http_events", "-5m");
df.node = df.ctx("node");
px::display(df.groupby(["node", "req_path"]).agg(#{ n: ["latency", "count"] }), "paths");
"#;

fn may_run() -> bool {
    match pxtopd::preflight() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            false
        }
        Err(e) => panic!("CI must run the eBPF tests: {e}"),
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Network namespaces joined to the host by veth pairs; removed on drop.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn new(n: usize) -> Self {
        let tag = std::process::id() % 100_000;
        let mut me = Self { names: Vec::new() };
        for i in 0..n {
            let ns = format!("pxt{tag}n{i}");
            let (host, peer) = (format!("pxh{tag}n{i}"), format!("pxp{tag}n{i}"));
            run(&["ip", "netns", "add", &ns]);
            me.names.push(ns.clone());
            run(&[
                "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
            ]);
            run(&["ip", "link", "set", &peer, "netns", &ns]);
            run(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", host_ip(i)),
                "dev",
                &host,
            ]);
            run(&["ip", "link", "set", &host, "up"]);
            let inside = |args: &[&str]| {
                let mut a = vec!["ip", "netns", "exec", &ns];
                a.extend_from_slice(args);
                run(&a);
            };
            inside(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", pem_ip(i)),
                "dev",
                &peer,
            ]);
            inside(&["ip", "link", "set", &peer, "up"]);
            inside(&["ip", "link", "set", "lo", "up"]);
        }
        me
    }

    /// A command run inside namespace `i` (only the network namespace changes: /sys and
    /// tracefs stay the host's, which the probes need).
    fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.names[i]))
            .arg("--")
            .arg(program);
        c
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.names {
            // Deleting the namespace destroys the veth pair with it.
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn host_ip(i: usize) -> String {
    format!("10.231.{}.1", 10 + i)
}

fn pem_ip(i: usize) -> String {
    format!("10.231.{}.2", 10 + i)
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pxtopd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pxtopd"));
    c.env("PXTOP_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    c
}

fn start_pem(ns: &Namespaces, i: usize, kelvin_port: u16) -> Proc {
    let mut c = ns.command(i, env!("CARGO_BIN_EXE_pxtopd"));
    c.env("PXTOP_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .args([
            "pem",
            "--kelvin",
            &format!("{}:{kelvin_port}", host_ip(i)),
            "--listen",
            &format!("{}:50452", pem_ip(i)),
            "--node-name",
            &format!("node-{i}"),
            "--capture-scope",
            "netns",
            "--tls-scan-interval",
            "0",
            "--process-stats-interval",
            "0",
        ]);
    Proc(c.spawn().unwrap())
}

/// `n` HTTP requests to a Python server inside namespace `i`, paths `/node-I/TAG-K`.
fn traffic(ns: &Namespaces, i: usize, tag: &str, n: usize) -> Vec<String> {
    let paths: Vec<String> = (0..n).map(|k| format!("/node-{i}/{tag}-{k}")).collect();
    let urls: Vec<String> = paths
        .iter()
        .map(|p| format!("http://127.0.0.1:8080{p}"))
        .collect();
    let out = ns
        .command(i, "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--retry",
            "30",
            "--retry-connrefused",
        ])
        .args(["--retry-delay", "1"])
        .args(&urls)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl in namespace {i}: {out:?}");
    paths
}

fn authed<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

type Rows = BTreeMap<(String, String), u64>;

/// [`SCRIPT`] through Kelvin: count per (node, path), and the warnings.
async fn query(kelvin: &str) -> Result<(Rows, Vec<String>), tonic::Status> {
    let mut client = PxtopClient::connect(format!("http://{kelvin}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut stream = client
        .execute_script(authed(ExecuteScriptRequest {
            source: SCRIPT.into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let mut rows = Rows::new();
    let mut warnings = Vec::new();
    while let Some(msg) = stream.message().await? {
        match msg.result {
            Some(Reply::Batch(b)) => {
                for batch in pxtop_engine::ipc_decode(&b.arrow_ipc).unwrap() {
                    let col = |name: &str, ty: &arrow::datatypes::DataType| {
                        arrow::compute::cast(batch.column_by_name(name).unwrap(), ty).unwrap()
                    };
                    let utf8 = arrow::datatypes::DataType::Utf8;
                    let (node, path) = (col("node", &utf8), col("req_path", &utf8));
                    let n = col("n", &arrow::datatypes::DataType::UInt64);
                    let node = node.as_any().downcast_ref::<arrow::array::StringArray>();
                    let path = path.as_any().downcast_ref::<arrow::array::StringArray>();
                    let n = n.as_any().downcast_ref::<arrow::array::UInt64Array>();
                    let (node, path, n) = (node.unwrap(), path.unwrap(), n.unwrap());
                    for r in 0..batch.num_rows() {
                        rows.insert((node.value(r).into(), path.value(r).into()), n.value(r));
                    }
                }
            }
            Some(Reply::Stats(s)) => warnings = s.warnings,
            _ => {}
        }
    }
    Ok((rows, warnings))
}

/// Polls until the query answers `want` exactly with no warnings.
async fn until(kelvin: &str, want: &Rows) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        match query(kelvin).await {
            Ok((rows, warnings)) if &rows == want && warnings.is_empty() => return,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("never got {want:?}; last answer: {last:?}");
}

async fn live_pems(kelvin: &str) -> usize {
    let Ok(mut client) = PxtopClient::connect(format!("http://{kelvin}")).await else {
        return 0;
    };
    client
        .health(authed(HealthRequest {}))
        .await
        .map(|h| {
            h.into_inner()
                .probes
                .iter()
                .filter(|p| p.name.starts_with("pem/") && p.attached)
                .count()
        })
        .unwrap_or(0)
}

async fn until_live(kelvin: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_pems(kelvin).await != n {
        assert!(Instant::now() < deadline, "{n} PEMs never registered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kelvin_over_three_pems_in_network_namespaces() {
    if !may_run() {
        return;
    }
    let ns = Namespaces::new(PEMS);
    let kelvin_port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kelvin_addr = format!("127.0.0.1:{kelvin_port}");
    let _kelvin = Proc(
        pxtopd()
            .args(["kelvin", "--listen", &format!("0.0.0.0:{kelvin_port}")])
            .args(["--pem-timeout", "5s"])
            .spawn()
            .unwrap(),
    );
    let mut pems: Vec<Option<Proc>> = (0..PEMS)
        .map(|i| Some(start_pem(&ns, i, kelvin_port)))
        .collect();
    until_live(&kelvin_addr, PEMS).await;

    let _servers: Vec<Proc> = (0..PEMS)
        .map(|i| {
            Proc(
                ns.command(i, "python3")
                    .args(["-m", "http.server", "8080", "--bind", "127.0.0.1"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    // A different number of requests per node, so a row counted twice or on the wrong node
    // shows.
    let mut want = Rows::new();
    for i in 0..PEMS {
        for p in traffic(&ns, i, "before", 3 + 2 * i) {
            want.insert((format!("node-{i}"), p), 1);
        }
    }
    until(&kelvin_addr, &want).await;

    // PEM 1 dies: the others answer, and the warning names it.
    drop(pems[1].take());
    let (rows, warnings) = query(&kelvin_addr).await.unwrap();
    let without_1: Rows = want
        .iter()
        .filter(|((node, _), _)| node != "node-1")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(rows, without_1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("PEM node-1 did not answer"),
        "{warnings:?}"
    );

    // It restarts (its tables start empty: PEMs keep data in memory): it answers again, with
    // the traffic made since.
    pems[1] = Some(start_pem(&ns, 1, kelvin_port));
    // It serves queries only once its probes are attached: wait for its (empty) answer.
    until(&kelvin_addr, &without_1).await;
    let after = traffic(&ns, 1, "after", 2);
    want.retain(|(node, _), _| node != "node-1");
    for p in after {
        want.insert(("node-1".to_string(), p), 1);
    }
    until(&kelvin_addr, &want).await;
}
