//! KubeMetadata against a mock API server: tower-test's `mock::pair` stands in for the HTTP
//! connection under a real `kube::Client`, serving recorded list responses and then watch
//! events (fixtures/*.jsonl) when the test releases them: a pod is added, becomes Running
//! with an IP and a container, joins its service's endpoint slice, and is deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use http::{Request, Response};
use kube::client::Body;
use pxtop_metadata::{
    CtxKey, KubeMetadata, LocalMetadata, Metadata, cluster::CgroupReader, cluster::KINDS,
};
use tokio::sync::{Mutex, mpsc};

const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
const C2: &str = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2";
const C3: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn upid(pid: u32) -> String {
    format!(
        "00000001-{:04x}-{:04x}-0000-000000000000",
        pid >> 16,
        pid & 0xffff
    )
}

/// The cgroup files of this fake node's processes.
fn cgroups() -> CgroupReader {
    let uid = |n: u32| format!("aaaaaaaa_0000_4000_8000_00000000000{n}");
    let path = |n: u32, c: &str| {
        format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{c}.scope\n",
            uid(n)
        )
    };
    let files: HashMap<u32, String> = [
        (1001, path(1, C1)),
        (1002, path(2, C2)),
        (1003, "0::/system.slice/sshd.service\n".to_string()),
        (1004, path(3, C3)),
    ]
    .into();
    Arc::new(move |pid| files.get(&pid).cloned())
}

/// Serves `mock` until the test ends: lists from fixtures at once, each watch with the next
/// body queued for its kind (held open until there is one).
fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
) -> HashMap<&'static str, mpsc::UnboundedSender<String>> {
    let mut senders = HashMap::new();
    let mut queues = HashMap::new();
    for kind in KINDS {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        senders.insert(kind, tx);
        queues.insert(kind.to_string(), Arc::new(Mutex::new(rx)));
    }
    tokio::spawn(async move {
        handle.allow(u64::MAX);
        while let Some((req, send)) = handle.next_request().await {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let kind = path.rsplit('/').next().unwrap_or("").to_string();
            let Some(queue) = queues.get(&kind).cloned() else {
                panic!("unexpected request {path}?{query}");
            };
            if query.contains("watch=true") {
                tokio::spawn(async move {
                    let body = queue.lock().await.recv().await;
                    if let Some(body) = body {
                        send.send_response(
                            Response::builder()
                                .status(200)
                                .body(Body::from(body.into_bytes()))
                                .unwrap(),
                        );
                    } else {
                        std::future::pending::<()>().await;
                    }
                });
            } else {
                let body = fixture(&format!("{kind}.list.json"));
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(Body::from(body.into_bytes()))
                        .unwrap(),
                );
            }
        }
    });
    senders
}

/// Waits (bounded) until `f` holds; the watchers apply events on their own tasks.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn lookups_follow_list_and_watch_events() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let watches = serve(handle);
    let client = kube::Client::new(svc, "default");
    let local = LocalMetadata::with_host("node-a".to_string());
    local.observe(1002, "web");
    local.observe(1003, "sshd");
    let md = KubeMetadata::start(client, "node-a".to_string(), local, cgroups());
    assert!(md.wait_synced(Duration::from_secs(10)).await, "{md:?}");
    let st = md.status();
    assert!(st.synced() && st.errors.is_empty(), "{st:?}");
    assert_eq!(st.counts, [4, 3, 3, 2]);
    assert_eq!(md.namespaces(), ["default", "kube-system", "shop"]);

    // A pod's process: container id → pod, namespace, service, owner through its ReplicaSet.
    let web = upid(1001);
    let ctx = |u: &str, k| md.ctx(u, k);
    assert_eq!(
        ctx(&web, CtxKey::Pod).as_deref(),
        Some("shop/web-7d4-abcde")
    );
    assert_eq!(ctx(&web, CtxKey::Namespace).as_deref(), Some("shop"));
    assert_eq!(ctx(&web, CtxKey::Service).as_deref(), Some("shop/web"));
    assert_eq!(ctx(&web, CtxKey::Node).as_deref(), Some("node-a"));
    assert_eq!(ctx(&web, CtxKey::Container).as_deref(), Some("app"));
    assert_eq!(ctx(&web, CtxKey::Deployment).as_deref(), Some("shop/web"));
    assert_eq!(ctx(&web, CtxKey::Owner).as_deref(), Some("shop/web"));
    assert_eq!(ctx(&web, CtxKey::Pid).as_deref(), Some("1001"));
    // A StatefulSet's pod, behind a headless service.
    let db = upid(1004);
    assert_eq!(ctx(&db, CtxKey::Pod).as_deref(), Some("shop/db-0"));
    assert_eq!(ctx(&db, CtxKey::Service).as_deref(), Some("shop/db"));
    assert_eq!(ctx(&db, CtxKey::Owner).as_deref(), Some("shop/db"));
    assert_eq!(ctx(&db, CtxKey::Deployment).as_deref(), Some(""));
    // A host process: the local answers.
    let sshd = upid(1003);
    assert_eq!(ctx(&sshd, CtxKey::Service).as_deref(), Some("sshd"));
    assert_eq!(ctx(&sshd, CtxKey::Namespace).as_deref(), Some("local"));
    assert_eq!(ctx(&sshd, CtxKey::Node).as_deref(), Some("node-a"));
    // A container the API has not shown yet: its id and node, else the local answers.
    let new = upid(1002);
    assert_eq!(ctx(&new, CtxKey::Container).as_deref(), Some(C2));
    assert_eq!(ctx(&new, CtxKey::Service).as_deref(), Some("web"));

    // Remote addresses: pod IPs (this node's and another's), ClusterIPs, endpoints, nodes.
    let addr = |a: &str, k| md.addr(a, k);
    assert_eq!(
        addr("10.244.2.5", CtxKey::Pod).as_deref(),
        Some("shop/web-7d4-zzzzz")
    );
    assert_eq!(addr("10.244.2.5", CtxKey::Node).as_deref(), Some("node-b"));
    assert_eq!(
        addr("10.244.2.5", CtxKey::Service).as_deref(),
        Some("shop/web")
    );
    assert_eq!(
        addr("10.96.0.20", CtxKey::Service).as_deref(),
        Some("shop/web")
    );
    assert_eq!(addr("10.96.0.20", CtxKey::Pod), None);
    assert_eq!(
        addr("192.168.1.1", CtxKey::Service).as_deref(),
        Some("default/kubernetes")
    );
    // kube-proxy shares its node's network: the IP names the node, not the pod.
    assert_eq!(addr("192.168.1.10", CtxKey::Pod), None);
    assert_eq!(
        addr("192.168.1.10", CtxKey::Node).as_deref(),
        Some("node-a")
    );
    assert_eq!(addr("10.244.1.6", CtxKey::Pod), None);
    assert_eq!(addr("not an ip", CtxKey::Pod), None);

    // The pod comes: ADDED (Pending), MODIFIED (Running, IP, container), joins the slice.
    watches["pods"].send(fixture("pods.watch-1.jsonl")).unwrap();
    watches["endpointslices"]
        .send(fixture("endpointslices.watch-1.jsonl"))
        .unwrap();
    eventually("the new pod's service", || {
        md.ctx(&new, CtxKey::Service).as_deref() == Some("shop/web")
    })
    .await;
    assert_eq!(
        ctx(&new, CtxKey::Pod).as_deref(),
        Some("shop/web-7d4-fghij")
    );
    assert_eq!(ctx(&new, CtxKey::Deployment).as_deref(), Some("shop/web"));
    assert_eq!(ctx(&new, CtxKey::Container).as_deref(), Some("app"));
    assert_eq!(
        addr("10.244.1.6", CtxKey::Pod).as_deref(),
        Some("shop/web-7d4-fghij")
    );
    assert_eq!(md.status().counts[0], 5);

    // The pod goes: DELETED, and the slice drops it.
    watches["pods"].send(fixture("pods.watch-2.jsonl")).unwrap();
    watches["endpointslices"]
        .send(fixture("endpointslices.watch-2.jsonl"))
        .unwrap();
    eventually("the pod's IP forgotten", || {
        md.addr("10.244.1.6", CtxKey::Pod).is_none()
    })
    .await;
    eventually("the slice updated", || {
        md.addr("10.244.1.6", CtxKey::Service).is_none()
    })
    .await;
    assert_eq!(ctx(&new, CtxKey::Pod), Some(format!("web-{}", 1002)));
    assert_eq!(ctx(&new, CtxKey::Container).as_deref(), Some(C2));
    assert_eq!(md.status().counts[0], 4);
    // The others are untouched.
    assert_eq!(
        ctx(&web, CtxKey::Pod).as_deref(),
        Some("shop/web-7d4-abcde")
    );
    let st = md.status();
    assert!(st.errors.is_empty(), "{st:?}");
}

#[tokio::test]
async fn an_unreachable_api_is_reported_not_waited_on_forever() {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        handle.allow(u64::MAX);
        while let Some((_req, send)) = handle.next_request().await {
            send.send_response(
                Response::builder()
                    .status(403)
                    .body(Body::from(
                        br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"forbidden","reason":"Forbidden","code":403}"#
                            .to_vec(),
                    ))
                    .unwrap(),
            );
        }
    });
    let client = kube::Client::new(svc, "default");
    let local = LocalMetadata::with_host("node-a".to_string());
    local.observe(1003, "sshd");
    let md = KubeMetadata::start(client, "node-a".to_string(), local, cgroups());
    assert!(!md.wait_synced(Duration::from_millis(300)).await);
    eventually("errors reported", || {
        md.status().errors.len() == KINDS.len()
    })
    .await;
    let st = md.status();
    assert_eq!(st.pending, KINDS);
    assert!(st.errors[0].starts_with("pods: "), "{st:?}");
    assert!(st.errors[0].contains("forbidden"), "{st:?}");
    // Lookups still answer, locally.
    assert_eq!(
        md.ctx(&upid(1003), CtxKey::Service).as_deref(),
        Some("sshd")
    );
}
