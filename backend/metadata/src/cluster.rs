//! [`KubeMetadata`]: `ctx(...)` and remote-address lookups served from the cluster's API.
//!
//! One kube-rs watcher per kind (pods, services, endpoint slices, nodes cluster-wide; replica
//! sets and namespaces) feeds a `runtime::reflector` store; each event also updates the
//! [`Index`] of derived lookups. A process is named by reading `/proc/PID/cgroup` once per upid
//! (cached), taking its container id and pod UID ([`crate::cgroup`]) and finding the pod in the
//! index; owners come from the pod's controller reference, a ReplicaSet's resolved to its
//! Deployment through the replica-set store. Host processes (no container), and containers
//! whose pod the API has not shown yet, fall back to [`LocalMetadata`]'s answers.
//!
//! Pods are watched cluster-wide (one watch): remote addresses may be any pod's, and the
//! container and UID indexes keep only this node's pods, the only ones whose processes this
//! PEM sees. Stored objects are trimmed (managed fields, last-applied annotations; pods to the
//! fields the index reads; replica sets' specs; nodes' image lists) to cut memory per pod.

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    core::v1::{Namespace, Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;

use crate::{
    CtxKey, LocalMetadata, Metadata,
    cgroup::{ContainerRef, parse_proc_cgroup},
    index::{Index, PodInfo},
    upid_pid,
};

/// Reads a process's `/proc/PID/cgroup` (replaceable in tests).
pub type CgroupReader = Arc<dyn Fn(u32) -> Option<String> + Send + Sync>;

/// `/proc/PID/cgroup` from the host's `/proc` (PEMs run with `hostPID: true`).
pub fn proc_cgroup_reader() -> CgroupReader {
    Arc::new(|pid| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok())
}

/// The kinds watched, in the order [`KubeStatus`] lists them.
pub const KINDS: [&str; 6] = [
    "pods",
    "services",
    "endpointslices",
    "nodes",
    "namespaces",
    "replicasets",
];

/// One watcher's state.
#[derive(Debug, Default)]
struct KindState {
    synced: AtomicBool,
    events: AtomicU64,
    error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Shared {
    index: RwLock<Index>,
    kinds: [KindState; 6],
    /// Counts kinds whose initial list has arrived; [`KubeMetadata::wait_synced`] watches it.
    synced: tokio::sync::watch::Sender<usize>,
}

/// Where the watchers are: synced kinds, and the last error of each that has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeStatus {
    /// Kinds whose initial list has not arrived.
    pub pending: Vec<&'static str>,
    /// `kind: error` for watchers whose last attempt failed and that have not received an
    /// event since (they retry with backoff).
    pub errors: Vec<String>,
    /// Watch events applied, all kinds together.
    pub events: u64,
    /// Pods, services, endpoint slices and nodes indexed.
    pub counts: [usize; 4],
}

impl KubeStatus {
    /// Every kind listed at least once.
    pub fn synced(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Cluster metadata. See the module doc.
pub struct KubeMetadata {
    node: String,
    local: Arc<LocalMetadata>,
    shared: Arc<Shared>,
    replicasets: Store<ReplicaSet>,
    namespaces: Store<Namespace>,
    cgroup: CgroupReader,
    /// upid → the container its process runs in (`None`: a host process). A process's cgroup
    /// is fixed once it runs in a container, so the answer is kept; the pod is looked up each
    /// time, since it may appear in the API after the process starts.
    procs: RwLock<HashMap<String, Option<Arc<ContainerRef>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Upids remembered before the cache starts over (about 200 bytes each).
const PROC_CACHE_MAX: usize = 65_536;

impl fmt::Debug for KubeMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeMetadata")
            .field("node", &self.node)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Drop for KubeMetadata {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeMetadata {
    /// Connects with the in-cluster (or kubeconfig) configuration and starts the watchers.
    /// Must run inside a tokio runtime.
    pub async fn connect(
        node: String,
        local: Arc<LocalMetadata>,
    ) -> Result<Arc<Self>, kube::Error> {
        let client = Client::try_default().await?;
        Ok(Self::start(client, node, local, proc_cgroup_reader()))
    }

    /// Starts the watchers on `client` for the node `node`. Must run inside a tokio runtime.
    pub fn start(
        client: Client,
        node: String,
        local: Arc<LocalMetadata>,
        cgroup: CgroupReader,
    ) -> Arc<Self> {
        let shared = Arc::new(Shared {
            index: RwLock::new(Index::new(&node)),
            kinds: Default::default(),
            synced: tokio::sync::watch::channel(0).0,
        });
        let mut tasks = Vec::new();
        let (_, w) = reflector::store::<Pod>();
        tasks.push(spawn_kind(
            Api::all(client.clone()),
            w,
            shared.clone(),
            0,
            trim_pod,
            |ix, ev| match ev {
                Change::Apply(p) => ix.apply_pod(p),
                Change::Delete(p) => ix.delete_pod(p),
                Change::Reset(all) => ix.reset_pods(all.iter().map(|p| &**p)),
            },
        ));
        let (_, w) = reflector::store::<Service>();
        tasks.push(spawn_kind(
            Api::all(client.clone()),
            w,
            shared.clone(),
            1,
            trim_meta,
            |ix, ev| match ev {
                Change::Apply(s) => ix.apply_service(s),
                Change::Delete(s) => ix.delete_service(s),
                Change::Reset(all) => ix.reset_services(all.iter().map(|s| &**s)),
            },
        ));
        let (_, w) = reflector::store::<EndpointSlice>();
        tasks.push(spawn_kind(
            Api::all(client.clone()),
            w,
            shared.clone(),
            2,
            trim_meta,
            |ix, ev| match ev {
                Change::Apply(s) => ix.apply_slice(s),
                Change::Delete(s) => ix.delete_slice(s),
                Change::Reset(all) => ix.reset_slices(all.iter().map(|s| &**s)),
            },
        ));
        let (_, w) = reflector::store::<Node>();
        tasks.push(spawn_kind(
            Api::all(client.clone()),
            w,
            shared.clone(),
            3,
            |n: &mut Node| {
                trim_meta(n);
                // Images and volumes are most of a node's status; only addresses are read.
                if let Some(s) = n.status.as_mut() {
                    s.images = None;
                    s.volumes_attached = None;
                    s.volumes_in_use = None;
                }
            },
            |ix, ev| match ev {
                Change::Apply(n) => ix.apply_node(n),
                Change::Delete(n) => ix.delete_node(n),
                Change::Reset(all) => ix.reset_nodes(all.iter().map(|n| &**n)),
            },
        ));
        let (namespaces, w) = reflector::store::<Namespace>();
        tasks.push(spawn_kind(
            Api::all(client.clone()),
            w,
            shared.clone(),
            4,
            trim_meta,
            |_, _| {},
        ));
        let (replicasets, w) = reflector::store::<ReplicaSet>();
        tasks.push(spawn_kind(
            Api::all(client),
            w,
            shared.clone(),
            5,
            |rs: &mut ReplicaSet| {
                trim_meta(rs);
                // Only the owner reference is read; the spec holds a whole pod template.
                rs.spec = None;
                rs.status = None;
            },
            |_, _| {},
        ));
        Arc::new(Self {
            node,
            local,
            shared,
            replicasets,
            namespaces,
            cgroup,
            procs: RwLock::new(HashMap::new()),
            tasks,
        })
    }

    /// Waits until every kind has been listed once, or `timeout`; true if they all were.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == KINDS.len()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The watchers' state, for health reports.
    pub fn status(&self) -> KubeStatus {
        let mut pending = Vec::new();
        let mut errors = Vec::new();
        let mut events = 0;
        for (kind, st) in KINDS.iter().zip(&self.shared.kinds) {
            if !st.synced.load(Ordering::Relaxed) {
                pending.push(*kind);
            }
            if let Some(e) = &*st.error.lock() {
                errors.push(format!("{kind}: {e}"));
            }
            events += st.events.load(Ordering::Relaxed);
        }
        KubeStatus {
            pending,
            errors,
            events,
            counts: self.shared.index.read().counts(),
        }
    }

    /// The node this metadata serves.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Namespaces known (from the namespace watcher).
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .namespaces
            .state()
            .iter()
            .map(|n| n.name_any())
            .collect();
        v.sort();
        v
    }

    /// The local fallback, which the capture also names processes in.
    pub fn local(&self) -> &Arc<LocalMetadata> {
        &self.local
    }

    /// The container `upid`'s process runs in, from its cgroup (cached per upid).
    fn container(&self, upid: &str, pid: u32) -> Option<Arc<ContainerRef>> {
        if let Some(c) = self.procs.read().get(upid) {
            return c.clone();
        }
        // NB: a process gone before its first lookup reads as a host process; its rows still
        // get the local answers (name from the capture).
        let c = (self.cgroup)(pid)
            .and_then(|s| parse_proc_cgroup(&s))
            .map(Arc::new);
        let mut procs = self.procs.write();
        if procs.len() >= PROC_CACHE_MAX {
            procs.clear();
        }
        procs.insert(upid.to_string(), c.clone());
        c
    }

    /// The pod's top-level owner: (kind, name), a ReplicaSet resolved to its Deployment.
    fn owner(&self, pod: &PodInfo) -> Option<(String, String)> {
        let o = pod.owner.as_ref()?;
        if o.kind == "ReplicaSet"
            && let Some(rs) = self
                .replicasets
                .get(&ObjectRef::new(&o.name).within(&pod.namespace))
            && let Some(d) = rs
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true))
        {
            return Some((d.kind.clone(), d.name.clone()));
        }
        Some((o.kind.clone(), o.name.clone()))
    }

    /// `key` for a process in `pod`, container `container_id`.
    fn pod_ctx(&self, pod: &PodInfo, container_id: &str, key: CtxKey) -> Option<String> {
        Some(match key {
            CtxKey::Pod => pod.key(),
            CtxKey::Namespace => pod.namespace.clone(),
            CtxKey::Node => pod.node.clone(),
            CtxKey::Container => pod
                .container_name(container_id)
                .unwrap_or(container_id)
                .to_string(),
            CtxKey::Service => self
                .shared
                .index
                .read()
                .services_of_pod(&pod.key())
                .join(","),
            CtxKey::Deployment => match self.owner(pod) {
                Some((kind, name)) if kind == "Deployment" => format!("{}/{name}", pod.namespace),
                _ => String::new(),
            },
            CtxKey::Owner => self
                .owner(pod)
                .map(|(_, name)| format!("{}/{name}", pod.namespace))
                .unwrap_or_default(),
            CtxKey::Cmdline | CtxKey::Pid | CtxKey::PodId => return None,
        })
    }
}

impl Metadata for KubeMetadata {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        // NB: pod_id stays the network namespace's inode in a cluster too: that is what
        // network_stats.pod_id holds (read per process from /proc, not from the API).
        if matches!(key, CtxKey::Cmdline | CtxKey::Pid | CtxKey::PodId) {
            return self.local.ctx(upid, key);
        }
        let pid = upid_pid(upid)?;
        let Some(c) = self.container(upid, pid) else {
            // A host process.
            return self.local.ctx(upid, key);
        };
        let pod = self
            .shared
            .index
            .read()
            .pod_for_container(&c.container_id, c.pod_uid.as_deref());
        match pod {
            Some(pod) => self.pod_ctx(&pod, &c.container_id, key),
            // A container the API has not shown (yet): what is known of it, else local.
            None => match key {
                CtxKey::Container => Some(c.container_id.clone()),
                CtxKey::Node => Some(self.node.clone()),
                _ => self.local.ctx(upid, key),
            },
        }
    }

    fn addr(&self, addr: &str, key: CtxKey) -> Option<String> {
        let ip: IpAddr = addr.parse().ok()?;
        let ix = self.shared.index.read();
        if let Some(pod) = ix.pod_by_ip(&ip) {
            drop(ix);
            return self
                .pod_ctx(&pod, "", key)
                .filter(|_| key != CtxKey::Container);
        }
        if let Some(svc) = ix.service_by_cluster_ip(&ip) {
            return match key {
                CtxKey::Service => Some(format!("{}/{}", svc.namespace, svc.name)),
                CtxKey::Namespace => Some(svc.namespace.clone()),
                _ => None,
            };
        }
        // Endpoints outside any pod (e.g. a Service over an external host).
        let svcs = ix.services_by_endpoint_ip(&ip);
        if key == CtxKey::Service && !svcs.is_empty() {
            return Some(svcs.join(","));
        }
        match key {
            CtxKey::Node => ix.node_by_ip(&ip).map(str::to_string),
            _ => None,
        }
    }
}

/// What a watch event does to the index.
enum Change<'a, K> {
    Apply(&'a K),
    Delete(&'a K),
    /// A relist finished: the store holds exactly these.
    Reset(Vec<Arc<K>>),
}

/// Drops what no lookup reads and what makes objects big: managed fields and the
/// `kubectl apply` copy of the whole object.
fn trim_meta<K: ResourceExt>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Keeps of a pod what the index reads: its metadata (labels and owners), node, host
/// networking, phase, IPs and containers' names and ids. Specs and statuses are most of a
/// pod's memory.
fn trim_pod(p: &mut Pod) {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    trim_meta(p);
    p.spec = p.spec.take().map(|s| PodSpec {
        node_name: s.node_name,
        host_network: s.host_network,
        ..PodSpec::default()
    });
    let ids = |v: Option<Vec<ContainerStatus>>| {
        v.map(|v| {
            v.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    container_id: c.container_id,
                    ..ContainerStatus::default()
                })
                .collect()
        })
    };
    p.status = p.status.take().map(|s| PodStatus {
        phase: s.phase,
        pod_ip: s.pod_ip,
        pod_ips: s.pod_ips,
        container_statuses: ids(s.container_statuses),
        init_container_statuses: ids(s.init_container_statuses),
        ephemeral_container_statuses: ids(s.ephemeral_container_statuses),
        ..PodStatus::default()
    });
}

fn spawn_kind<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    shared: Arc<Shared>,
    slot: usize,
    trim: fn(&mut K),
    on: fn(&mut Index, Change<'_, K>),
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
{
    let reader = writer.as_reader();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(trim)
        .reflect(writer);
    tokio::spawn(drive(stream, reader, shared, slot, on))
}

async fn drive<K, S>(
    stream: S,
    reader: Store<K>,
    shared: Arc<Shared>,
    slot: usize,
    on: fn(&mut Index, Change<'_, K>),
) where
    K: Resource<DynamicType = ()> + Clone + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>>,
{
    let mut stream = std::pin::pin!(stream);
    let st = &shared.kinds[slot];
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(kind = KINDS[slot], error = %e, "kube watcher");
                *st.error.lock() = Some(e.to_string());
                continue;
            }
        };
        st.events.fetch_add(1, Ordering::Relaxed);
        // The watcher recovered (it retries with backoff, resuming or relisting).
        st.error.lock().take();
        match &ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                on(&mut shared.index.write(), Change::Apply(o));
            }
            watcher::Event::Delete(o) => on(&mut shared.index.write(), Change::Delete(o)),
            watcher::Event::Init => {}
            watcher::Event::InitDone => {
                // The reflector has already swapped the store to the new list.
                on(&mut shared.index.write(), Change::Reset(reader.state()));
                if !st.synced.swap(true, Ordering::Relaxed) {
                    shared.synced.send_modify(|n| *n += 1);
                    tracing::debug!(kind = KINDS[slot], "kube watcher synced");
                }
            }
        }
    }
}
