//! Cost of cluster lookups and memory per pod.
//!
//! A mock API (tower-test) lists N synthetic pods on this node (each with a container, an IP,
//! a ReplicaSet owned by a Deployment) and N/10 services with one endpoint slice each; the
//! watchers sync and the lookups run against what they built:
//! - `ctx/service/warm`: `ctx(upid, "service")` for a process already seen (cgroup cached);
//! - `ctx/service/new_upid`: a process not seen before (its cgroup text read from memory
//!   and parsed, then the pod found): the first row of each process;
//! - `addr/pod`: `addr(ip, "pod")`, a remote address.
//!
//! Memory: the bytes still allocated once the watchers have synced 1,000 and 5,000 pods
//! (stores, index, client), printed to stderr; their difference / 4 is the cost per 1,000
//! pods without the fixed part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    alloc::System,
    collections::HashMap,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use kube::client::Body;
use pxtop_metadata::{CtxKey, KubeMetadata, LocalMetadata, Metadata, cluster::CgroupReader};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn cid(i: usize) -> String {
    format!("{i:064x}")
}

fn uid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256)
}

fn list(kind: &str, api: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": api, "kind": kind,
        "metadata": {"resourceVersion": "100"}, "items": items}))
    .unwrap()
}

/// List bodies for `n` pods.
fn cluster(n: usize) -> HashMap<&'static str, Vec<u8>> {
    let svcs = n.div_ceil(10);
    let pods = (0..n)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "namespace": "shop", "name": format!("app{}-rs-{i}", i % svcs), "uid": uid(i),
                "resourceVersion": "90", "labels": {"app": format!("app{}", i % svcs)},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": format!("app{}-rs", i % svcs), "uid": "x", "controller": true}]},
              "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "example/app:1.0"}]},
              "status": {"phase": "Running", "podIP": ip(i), "podIPs": [{"ip": ip(i)}],
                "containerStatuses": [{"name": "app", "containerID": format!("containerd://{}", cid(i)),
                  "image": "example/app:1.0", "imageID": "", "ready": true, "restartCount": 0}]}})
        })
        .collect();
    let services = (0..svcs)
        .map(|s| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop",
                "name": format!("app{s}"), "resourceVersion": "80"},
              "spec": {"clusterIP": format!("10.96.{}.{}", s / 256, s % 256),
                "clusterIPs": [format!("10.96.{}.{}", s / 256, s % 256)]}})
        })
        .collect();
    let slices = (0..svcs)
        .map(|s| {
            let eps: Vec<Value> = (0..n)
                .filter(|i| i % svcs == s)
                .map(|i| json!({"addresses": [ip(i)], "targetRef": {"kind": "Pod",
                    "namespace": "shop", "name": format!("app{s}-rs-{i}")}}))
                .collect();
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"namespace": "shop", "name": format!("app{s}-x"), "resourceVersion": "80",
                "labels": {"kubernetes.io/service-name": format!("app{s}")}},
              "addressType": "IPv4", "endpoints": eps})
        })
        .collect();
    let rss = (0..svcs)
        .map(|s| {
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"namespace": "shop",
                "name": format!("app{s}-rs"), "resourceVersion": "70",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": format!("app{s}"), "uid": "d", "controller": true}]}})
        })
        .collect();
    [
        ("pods", list("PodList", "v1", pods)),
        ("services", list("ServiceList", "v1", services)),
        (
            "endpointslices",
            list("EndpointSliceList", "discovery.k8s.io/v1", slices),
        ),
        ("nodes", list("NodeList", "v1", vec![])),
        ("namespaces", list("NamespaceList", "v1", vec![])),
        ("replicasets", list("ReplicaSetList", "apps/v1", rss)),
    ]
    .into()
}

fn cgroup_of(i: usize) -> String {
    format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope\n",
        uid(i).replace('-', "_"),
        cid(i)
    )
}

/// Pid `1000 + i` runs in pod i.
fn cgroups(n: usize) -> CgroupReader {
    Arc::new(move |pid| {
        let i = (pid as usize).checked_sub(1000)?;
        (i < n).then(|| cgroup_of(i))
    })
}

fn upid(pid: u32, start: u64) -> String {
    format!(
        "00000001-{:04x}-{:04x}-{:04x}-{:012x}",
        pid >> 16,
        pid & 0xffff,
        start >> 48,
        start & 0xffff_ffff_ffff
    )
}

fn start(
    rt: &tokio::runtime::Runtime,
    n: usize,
    bodies: HashMap<&'static str, Vec<u8>>,
) -> Arc<KubeMetadata> {
    rt.block_on(async move {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            handle.allow(u64::MAX);
            while let Some((req, send)) = handle.next_request().await {
                if req.uri().query().unwrap_or("").contains("watch=true") {
                    // Watches stay open and quiet.
                    tokio::spawn(async move {
                        std::future::pending::<()>().await;
                        drop(send);
                    });
                    continue;
                }
                let kind = req.uri().path().rsplit('/').next().unwrap_or("");
                let body = bodies.get(kind).cloned().unwrap_or_default();
                send.send_response(Response::builder().body(Body::from(body)).unwrap());
            }
        });
        let client = kube::Client::new(svc, "default");
        let md = KubeMetadata::start(
            client,
            "node-a".into(),
            LocalMetadata::with_host("node-a".into()),
            cgroups(n),
        );
        assert!(md.wait_synced(Duration::from_secs(60)).await);
        md
    })
}

/// Bytes still allocated after syncing `n` pods (the list bodies, which the mock server keeps,
/// are made before counting starts).
fn retained(rt: &tokio::runtime::Runtime, n: usize) -> (isize, Arc<KubeMetadata>) {
    let bodies = cluster(n);
    let region = Region::new(GLOBAL);
    let md = start(rt, n, bodies);
    let s = region.change();
    let net = s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated;
    (net, md)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (m1, md1) = retained(&rt, 1000);
    let (m5, md5) = retained(&rt, 5000);
    eprintln!(
        "memory: {m1} B retained after syncing 1000 pods, {m5} B after 5000; \
         {} B per 1000 pods ({:?}, {:?})",
        (m5 - m1) / 4,
        md1.status().counts,
        md5.status().counts
    );
    drop(md5);
    let md = md1;
    let n = 1000;
    let upids: Vec<String> = (0..n).map(|i| upid(1000 + i as u32, 7)).collect();
    for u in &upids {
        assert!(md.ctx(u, CtxKey::Service).unwrap().starts_with("shop/app"));
    }
    let mut i = 0;
    c.bench_function("ctx/service/warm", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(md.ctx(&upids[i], CtxKey::Service))
        })
    });
    let seq = AtomicU64::new(1_000_000);
    c.bench_function("ctx/service/new_upid", |b| {
        b.iter(|| {
            let s = seq.fetch_add(1, Ordering::Relaxed);
            let u = upid(1000 + (s % n as u64) as u32, s);
            black_box(md.ctx(&u, CtxKey::Service))
        })
    });
    let ips: Vec<String> = (0..n).map(ip).collect();
    assert_eq!(
        md.addr(&ips[5], CtxKey::Pod).as_deref(),
        Some("shop/app5-rs-5")
    );
    c.bench_function("addr/pod", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            black_box(md.addr(&ips[i], CtxKey::Pod))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
