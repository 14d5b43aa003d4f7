//! Cluster mode in one process, over real gRPC on loopback: three PEM services holding their
//! own rows heartbeat one Kelvin; a query returns the union; a PEM that dies is named in a
//! warning and its rows are missing; restarting it heals; restarting Kelvin heals; wrong
//! tokens are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::{sync::Arc, time::Duration};

use pxtop_engine::{Engine, EngineConfig};
use pxtop_kelvin::{
    HealthSource, KelvinService, NoProbes, ServerTls,
    cluster::{PemIdentity, PemRegistry, heartbeat_loop, pem_server},
};
use pxtop_metadata::LocalMetadata;
use pxtop_proto::v1::{
    ExecuteScriptRequest, HealthRequest, execute_script_response::Result as Reply,
    pxtop_client::PxtopClient,
};
use pxtop_store::{Store, StoreConfig, fixtures};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::Request;

const TOKEN: &str = "cluster-test-token";
const ROWS_PER_PEM: usize = 1000;
const SCRIPT: &str = r#"
let df = px::DataFrame("http_events", "-5m");
px::display(df.groupby(["req_method"]).agg(#{ n: ["latency", "count"] }), "by_method");
"#;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn engine(store: Arc<Store>) -> Arc<Engine> {
    Arc::new(Engine::new(
        store,
        LocalMetadata::new(),
        EngineConfig::default(),
    ))
}

/// A running server and the means to stop it.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
    beat: Option<JoinHandle<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(b) = self.beat.take() {
            b.abort();
        }
        let _ = self.stop.take().unwrap().send(());
        let _ = self.served.await;
    }
}

/// A PEM named `name` serving `engine` on `addr` (port 0: any), heartbeating `kelvin`.
async fn start_pem(
    name: &str,
    engine: Arc<Engine>,
    addr: &str,
    kelvin: &str,
    token: &str,
) -> (Running, String) {
    start_pem_with(name, engine, addr, kelvin, token, Arc::new(NoProbes), None).await
}

/// [`start_pem`] with its node checks from `health`, trusting Kelvin by `kelvin_ca` (TLS).
async fn start_pem_with(
    name: &str,
    engine: Arc<Engine>,
    addr: &str,
    kelvin: &str,
    token: &str,
    health: Arc<dyn HealthSource>,
    kelvin_ca: Option<Vec<u8>>,
) -> (Running, String) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel();
    let svc = pem_server(engine, health, TOKEN);
    let served = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(pxtop_kelvin::incoming(listener), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    let beat = tokio::spawn(heartbeat_loop(
        kelvin.to_string(),
        token.to_string(),
        kelvin_ca,
        PemIdentity {
            name: name.to_string(),
            addr: addr.clone(),
            started_ns: now_ns(),
        },
    ));
    (
        Running {
            stop: Some(tx),
            served,
            beat: Some(beat),
        },
        addr,
    )
}

async fn start_kelvin(addr: &str) -> (Running, String) {
    start_kelvin_with(addr, None).await
}

async fn start_kelvin_with(addr: &str, tls: Option<ServerTls>) -> (Running, String) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let store = Arc::new(Store::new(StoreConfig::default()));
    let registry = PemRegistry::new(TOKEN, Duration::from_secs(5));
    let service = KelvinService::new(engine(store.clone()), store, Arc::new(NoProbes))
        .with_registry(registry);
    let (tx, rx) = oneshot::channel();
    let served = tokio::spawn(async move {
        pxtop_kelvin::serve(listener, service, TOKEN, tls.as_ref(), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (
        Running {
            stop: Some(tx),
            served,
            beat: None,
        },
        addr,
    )
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// Runs [`SCRIPT`] through Kelvin: the total row count and the warnings.
async fn query(kelvin: &str) -> Result<(u64, Vec<String>), tonic::Status> {
    let mut client = PxtopClient::connect(format!("http://{kelvin}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut stream = client
        .execute_script(authed(
            ExecuteScriptRequest {
                source: SCRIPT.into(),
                ..Default::default()
            },
            TOKEN,
        ))
        .await?
        .into_inner();
    let mut total = 0u64;
    let mut warnings = Vec::new();
    while let Some(msg) = stream.message().await? {
        match msg.result {
            Some(Reply::Batch(b)) => {
                for batch in pxtop_engine::ipc_decode(&b.arrow_ipc).unwrap() {
                    let n = arrow::compute::cast(
                        batch.column_by_name("n").unwrap(),
                        &arrow::datatypes::DataType::UInt64,
                    )
                    .unwrap();
                    let n = n
                        .as_any()
                        .downcast_ref::<arrow::array::UInt64Array>()
                        .unwrap();
                    total += n.values().iter().sum::<u64>();
                }
            }
            Some(Reply::Stats(s)) => warnings = s.warnings,
            _ => {}
        }
    }
    Ok((total, warnings))
}

/// Polls until the query gives `want` rows with no warnings.
async fn until_whole(kelvin: &str, want: u64) -> (u64, Vec<String>) {
    let mut last = (0, Vec::new());
    for _ in 0..100 {
        if let Ok(r) = query(kelvin).await {
            if r.0 == want && r.1.is_empty() {
                return r;
            }
            last = r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("never got all {want} rows without warnings; last: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pems_union_partial_results_and_healing() {
    let (kelvin, kelvin_addr) = start_kelvin("127.0.0.1:0").await;
    let mut engines = Vec::new();
    let mut pems = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..3u64 {
        let store = Arc::new(Store::new(StoreConfig::default()));
        for b in fixtures::http_events(ROWS_PER_PEM, now_ns() - 20_000_000_000, i + 1) {
            store.append("http_events", b).unwrap();
        }
        let e = engine(store);
        let (running, addr) = start_pem(
            &format!("pem-{i}"),
            e.clone(),
            "127.0.0.1:0",
            &kelvin_addr,
            TOKEN,
        )
        .await;
        engines.push(e);
        pems.push(Some(running));
        addrs.push(addr);
    }
    let all = 3 * ROWS_PER_PEM as u64;
    // Every PEM registered and answered: the union.
    let (n, _) = until_whole(&kelvin_addr, all).await;
    assert_eq!(n, all);

    // Health lists each PEM as live.
    let mut client = PxtopClient::connect(format!("http://{kelvin_addr}"))
        .await
        .unwrap();
    let health = client
        .health(authed(HealthRequest {}, TOKEN))
        .await
        .unwrap()
        .into_inner();
    let live: Vec<_> = health
        .probes
        .iter()
        .filter(|p| p.name.starts_with("pem/") && p.attached)
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(live, ["pem/pem-0", "pem/pem-1", "pem/pem-2"]);

    // A PEM dies: partial results, and the warning names it.
    pems[1].take().unwrap().stop().await;
    let (n, warnings) = query(&kelvin_addr).await.unwrap();
    assert_eq!(n, 2 * ROWS_PER_PEM as u64);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("PEM pem-1 did not answer") && warnings[0].contains(&addrs[1]),
        "{warnings:?}"
    );

    // It comes back (same address, new process): whole again, no operator action.
    let (running, _) = start_pem("pem-1", engines[1].clone(), &addrs[1], &kelvin_addr, TOKEN).await;
    pems[1] = Some(running);
    until_whole(&kelvin_addr, all).await;

    // Kelvin restarts on its address: the PEMs' heartbeats find it again.
    kelvin.stop().await;
    assert!(query(&kelvin_addr).await.is_err());
    let (kelvin, again) = start_kelvin(&kelvin_addr).await;
    assert_eq!(again, kelvin_addr);
    until_whole(&kelvin_addr, all).await;

    // A PEM with the wrong token is refused: it never joins.
    let store = Arc::new(Store::new(StoreConfig::default()));
    for b in fixtures::http_events(10, now_ns() - 10_000_000_000, 99) {
        store.append("http_events", b).unwrap();
    }
    let (intruder, _) = start_pem(
        "intruder",
        engine(store),
        "127.0.0.1:0",
        &kelvin_addr,
        "wrong-token",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (n, warnings) = query(&kelvin_addr).await.unwrap();
    assert_eq!((n, warnings.len()), (all, 0), "{warnings:?}");

    // A client with a wrong token is refused before any work.
    let err = client
        .health(authed(HealthRequest {}, "nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    intruder.stop().await;
    for p in pems.into_iter().flatten() {
        p.stop().await;
    }
    kelvin.stop().await;
}

/// A node whose checks are given: each PEM answers Kelvin's `Doctor` with its own.
struct NodeChecks {
    node: &'static str,
    memlock_ok: bool,
}

impl HealthSource for NodeChecks {
    fn probes(&self) -> Vec<pxtop_proto::v1::ProbeHealth> {
        Vec::new()
    }

    fn doctor(&self) -> pxtop_proto::v1::NodeDoctor {
        pxtop_proto::v1::NodeDoctor {
            node: self.node.into(),
            checks: vec![pxtop_proto::v1::DoctorCheck {
                name: "RLIMIT_MEMLOCK".into(),
                ok: self.memlock_ok,
                detail: self.node.into(),
                fix: "ulimit -l".into(),
            }],
            error: String::new(),
        }
    }
}

fn tls_for(names: &[&str]) -> (ServerTls, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        ServerTls {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        },
        ca_cert.pem().into_bytes(),
    )
}

/// PEMs heartbeat a TLS Kelvin trusting its CA; Kelvin's `Doctor` gathers every PEM's checks
/// by node; a PEM with the wrong CA never registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pems_register_over_tls_and_doctor_asks_each() {
    let (tls, ca) = tls_for(&["localhost"]);
    let (kelvin, kelvin_addr) = start_kelvin_with("127.0.0.1:0", Some(tls)).await;
    let port = kelvin_addr.rsplit(':').next().unwrap();
    let kelvin_name = format!("localhost:{port}");
    let mut pems = Vec::new();
    for (node, memlock_ok) in [("node-a", true), ("node-b", false)] {
        let store = Arc::new(Store::new(StoreConfig::default()));
        let (pem, _) = start_pem_with(
            node,
            engine(store),
            "127.0.0.1:0",
            &kelvin_name,
            TOKEN,
            Arc::new(NodeChecks { node, memlock_ok }),
            Some(ca.clone()),
        )
        .await;
        pems.push(pem);
    }
    let (_, wrong_ca) = tls_for(&["localhost"]);
    let store = Arc::new(Store::new(StoreConfig::default()));
    let (stranger, _) = start_pem_with(
        "node-c",
        engine(store),
        "127.0.0.1:0",
        &kelvin_name,
        TOKEN,
        Arc::new(NodeChecks {
            node: "node-c",
            memlock_ok: true,
        }),
        Some(wrong_ca),
    )
    .await;

    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{kelvin_name}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&ca)),
        )
        .unwrap();
    let mut client = PxtopClient::new(endpoint.connect_lazy());
    let mut nodes = Vec::new();
    for _ in 0..100 {
        let r = client
            .doctor(authed(pxtop_proto::v1::DoctorRequest {}, TOKEN))
            .await
            .unwrap()
            .into_inner();
        nodes = r.nodes;
        if nodes.len() == 2 && nodes.iter().all(|n| n.error.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<(String, bool)> = nodes
        .iter()
        .map(|n| (n.node.clone(), n.checks.iter().all(|c| c.ok)))
        .collect();
    assert_eq!(
        seen,
        [("node-a".to_string(), true), ("node-b".to_string(), false)]
    );
    assert_eq!(nodes[1].checks[0].detail, "node-b");
    stranger.stop().await;
    for p in pems {
        p.stop().await;
    }
    kelvin.stop().await;
}
