//! The lookups cluster metadata answers, kept as hash maps beside the kube-rs reflector stores:
//! container id and pod UID → pod, pod IP → pod, ClusterIP → service, endpoint IP → services,
//! pod → services (through endpoint slices), node IP → node.
//!
//! The reflector stores hold the objects; this index holds what each object contributed to the
//! maps, so an update or delete removes exactly its old entries before adding the new ones. A
//! relist (the watcher's `InitDone`) rebuilds the kind's part from the store, which drops
//! objects deleted while the watch was down. Pure data: no I/O, no async; unit-tested here,
//! served by [`crate::cluster`].

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use k8s_openapi::api::{
    core::v1::{Node, Pod, Service},
    discovery::v1::EndpointSlice,
};

use crate::cgroup::status_container_id;

/// `namespace/name`, the way pods and services are named in rows (as Pixie names them).
pub type Key = String;

fn key(ns: &str, name: &str) -> Key {
    format!("{ns}/{name}")
}

/// The pod's controller, as its owner reference names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, ...
    pub kind: String,
    /// The owner's name (same namespace as the pod).
    pub name: String,
}

/// What the index keeps of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.nodeName` (empty while unscheduled).
    pub node: String,
    /// `status.podIPs`, unless the pod shares its node's network (then they name the node).
    pub ips: Vec<IpAddr>,
    /// (container id without `runtime://`, container name), init and ephemeral ones included.
    pub containers: Vec<(String, String)>,
    /// The controlling owner reference.
    pub owner: Option<Owner>,
    /// A static pod's UID as the kubelet (and so its cgroups) knows it: the mirror pod in the
    /// API has another UID and carries this one in `kubernetes.io/config.mirror`.
    pub mirror_uid: Option<String>,
}

impl PodInfo {
    /// What a pod contributes; `None` for an object without namespace or name.
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone()?;
        let name = meta.name.clone()?;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        // A finished pod keeps its IP in status, but the IP may already be another pod's.
        let finished = status
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        let ips = if host_network || finished {
            Vec::new()
        } else {
            let mut ips: Vec<IpAddr> = status
                .and_then(|s| s.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|p| p.ip.parse().ok())
                .collect();
            if ips.is_empty()
                && let Some(ip) = status.and_then(|s| s.pod_ip.as_deref())
                && let Ok(ip) = ip.parse()
            {
                ips.push(ip);
            }
            ips
        };
        let containers = status
            .into_iter()
            .flat_map(|s| {
                [
                    &s.container_statuses,
                    &s.init_container_statuses,
                    &s.ephemeral_container_statuses,
                ]
            })
            .flatten()
            .flatten()
            .filter_map(|c| {
                let id = status_container_id(c.container_id.as_deref()?);
                (!id.is_empty()).then(|| (id.to_string(), c.name.clone()))
            })
            .collect();
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| Owner {
                kind: o.kind.clone(),
                name: o.name.clone(),
            });
        let mirror_uid = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/config.mirror"))
            .cloned();
        Some(Self {
            namespace,
            name,
            uid: meta.uid.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            ips,
            containers,
            owner,
            mirror_uid,
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> Key {
        key(&self.namespace, &self.name)
    }

    /// The name of the container with id `id`, if it is one of this pod's.
    pub fn container_name(&self, id: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, n)| n.as_str())
    }
}

/// What the index keeps of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `spec.clusterIPs` (none for headless services).
    pub cluster_ips: Vec<IpAddr>,
}

impl ServiceInfo {
    pub fn from_service(svc: &Service) -> Option<Self> {
        let spec = svc.spec.as_ref();
        let mut cluster_ips: Vec<IpAddr> = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if cluster_ips.is_empty()
            && let Some(ip) = spec.and_then(|s| s.cluster_ip.as_deref())
            && let Ok(ip) = ip.parse()
        {
            cluster_ips.push(ip);
        }
        Some(Self {
            namespace: svc.metadata.namespace.clone()?,
            name: svc.metadata.name.clone()?,
            cluster_ips,
        })
    }
}

/// What an endpoint slice says: its service's endpoints, by address and by pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    /// The service, `namespace/name` (from the `kubernetes.io/service-name` label).
    pub service: Key,
    pub addrs: Vec<IpAddr>,
    /// The pods behind the endpoints (`targetRef` of kind Pod), `namespace/name`.
    pub pods: Vec<Key>,
}

impl SliceInfo {
    /// `None` for a slice that names no service (custom slices without the label).
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        let ns = slice.metadata.namespace.as_deref()?;
        let service = slice
            .metadata
            .labels
            .as_ref()?
            .get("kubernetes.io/service-name")?;
        let mut addrs = Vec::new();
        let mut pods = Vec::new();
        for ep in &slice.endpoints {
            addrs.extend(ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
            if let Some(t) = &ep.target_ref
                && t.kind.as_deref() == Some("Pod")
                && let Some(name) = &t.name
            {
                pods.push(key(t.namespace.as_deref().unwrap_or(ns), name));
            }
        }
        Some(Self {
            service: key(ns, service),
            addrs,
            pods,
        })
    }
}

/// A multiset of keys: several slices (and several endpoints) may name the same service.
type Counted = BTreeMap<Key, u32>;

fn count_add<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Counted>, k: K, v: &Key) {
    *m.entry(k).or_default().entry(v.clone()).or_default() += 1;
}

fn count_remove<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Counted>, k: &K, v: &Key) {
    if let Some(set) = m.get_mut(k) {
        if let Some(n) = set.get_mut(v) {
            *n -= 1;
            if *n == 0 {
                set.remove(v);
            }
        }
        if set.is_empty() {
            m.remove(k);
        }
    }
}

/// Removes `k → v` only if `k` still maps to `v` (another object may have taken `k` since).
fn remove_if<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Key>, k: &K, v: &Key) {
    if m.get(k) == Some(v) {
        m.remove(k);
    }
}

/// The cluster's lookups. See the module doc.
#[derive(Debug, Default)]
pub struct Index {
    /// This node's name: container ids and UIDs are indexed only for its pods (only its
    /// processes are looked up by container), pod IPs for every pod.
    node: String,
    pods: HashMap<Key, Arc<PodInfo>>,
    by_container: HashMap<String, Key>,
    by_uid: HashMap<String, Key>,
    by_pod_ip: HashMap<IpAddr, Key>,
    services: HashMap<Key, ServiceInfo>,
    by_cluster_ip: HashMap<IpAddr, Key>,
    slices: HashMap<Key, SliceInfo>,
    by_endpoint_ip: HashMap<IpAddr, Counted>,
    pod_services: HashMap<Key, Counted>,
    nodes: HashMap<String, Vec<IpAddr>>,
    by_node_ip: HashMap<IpAddr, String>,
}

impl Index {
    /// An empty index for the node `node`.
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_string(),
            ..Self::default()
        }
    }

    /// Adds or replaces a pod.
    pub fn apply_pod(&mut self, pod: &Pod) {
        let Some(info) = PodInfo::from_pod(pod) else {
            return;
        };
        let k = info.key();
        self.remove_pod_key(&k);
        if info.node == self.node {
            for (id, _) in &info.containers {
                self.by_container.insert(id.clone(), k.clone());
            }
            if !info.uid.is_empty() {
                self.by_uid.insert(info.uid.clone(), k.clone());
            }
            if let Some(m) = &info.mirror_uid {
                self.by_uid.insert(m.clone(), k.clone());
            }
        }
        for ip in &info.ips {
            self.by_pod_ip.insert(*ip, k.clone());
        }
        self.pods.insert(k, Arc::new(info));
    }

    /// Removes a pod.
    pub fn delete_pod(&mut self, pod: &Pod) {
        if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
            self.remove_pod_key(&key(ns, name));
        }
    }

    fn remove_pod_key(&mut self, k: &Key) {
        let Some(old) = self.pods.remove(k) else {
            return;
        };
        for (id, _) in &old.containers {
            remove_if(&mut self.by_container, id, k);
        }
        remove_if(&mut self.by_uid, &old.uid, k);
        if let Some(m) = &old.mirror_uid {
            remove_if(&mut self.by_uid, m, k);
        }
        for ip in &old.ips {
            remove_if(&mut self.by_pod_ip, ip, k);
        }
    }

    /// Replaces every pod with `pods` (after a relist).
    pub fn reset_pods<'a>(&mut self, pods: impl IntoIterator<Item = &'a Pod>) {
        self.pods.clear();
        self.by_container.clear();
        self.by_uid.clear();
        self.by_pod_ip.clear();
        for p in pods {
            self.apply_pod(p);
        }
    }

    /// Adds or replaces a service.
    pub fn apply_service(&mut self, svc: &Service) {
        let Some(info) = ServiceInfo::from_service(svc) else {
            return;
        };
        let k = key(&info.namespace, &info.name);
        self.remove_service_key(&k);
        for ip in &info.cluster_ips {
            self.by_cluster_ip.insert(*ip, k.clone());
        }
        self.services.insert(k, info);
    }

    /// Removes a service.
    pub fn delete_service(&mut self, svc: &Service) {
        if let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) {
            self.remove_service_key(&key(ns, name));
        }
    }

    fn remove_service_key(&mut self, k: &Key) {
        if let Some(old) = self.services.remove(k) {
            for ip in &old.cluster_ips {
                remove_if(&mut self.by_cluster_ip, ip, k);
            }
        }
    }

    /// Replaces every service with `svcs`.
    pub fn reset_services<'a>(&mut self, svcs: impl IntoIterator<Item = &'a Service>) {
        self.services.clear();
        self.by_cluster_ip.clear();
        for s in svcs {
            self.apply_service(s);
        }
    }

    /// Adds or replaces an endpoint slice.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let Some(sk) = slice_key(slice) else { return };
        self.remove_slice_key(&sk);
        let Some(info) = SliceInfo::from_slice(slice) else {
            return;
        };
        for ip in &info.addrs {
            count_add(&mut self.by_endpoint_ip, *ip, &info.service);
        }
        for p in &info.pods {
            count_add(&mut self.pod_services, p.clone(), &info.service);
        }
        self.slices.insert(sk, info);
    }

    /// Removes an endpoint slice.
    pub fn delete_slice(&mut self, slice: &EndpointSlice) {
        if let Some(sk) = slice_key(slice) {
            self.remove_slice_key(&sk);
        }
    }

    fn remove_slice_key(&mut self, sk: &Key) {
        if let Some(old) = self.slices.remove(sk) {
            for ip in &old.addrs {
                count_remove(&mut self.by_endpoint_ip, ip, &old.service);
            }
            for p in &old.pods {
                count_remove(&mut self.pod_services, p, &old.service);
            }
        }
    }

    /// Replaces every endpoint slice with `slices`.
    pub fn reset_slices<'a>(&mut self, slices: impl IntoIterator<Item = &'a EndpointSlice>) {
        self.slices.clear();
        self.by_endpoint_ip.clear();
        self.pod_services.clear();
        for s in slices {
            self.apply_slice(s);
        }
    }

    /// Adds or replaces a node.
    pub fn apply_node(&mut self, node: &Node) {
        let Some(name) = node.metadata.name.clone() else {
            return;
        };
        self.remove_node_name(&name);
        let addrs: Vec<IpAddr> = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        for ip in &addrs {
            self.by_node_ip.insert(*ip, name.clone());
        }
        self.nodes.insert(name, addrs);
    }

    /// Removes a node.
    pub fn delete_node(&mut self, node: &Node) {
        if let Some(name) = &node.metadata.name {
            self.remove_node_name(name);
        }
    }

    fn remove_node_name(&mut self, name: &str) {
        if let Some(old) = self.nodes.remove(name) {
            for ip in &old {
                if self.by_node_ip.get(ip).map(String::as_str) == Some(name) {
                    self.by_node_ip.remove(ip);
                }
            }
        }
    }

    /// Replaces every node with `nodes`.
    pub fn reset_nodes<'a>(&mut self, nodes: impl IntoIterator<Item = &'a Node>) {
        self.nodes.clear();
        self.by_node_ip.clear();
        for n in nodes {
            self.apply_node(n);
        }
    }

    /// The pod running container `container_id` on this node, else the pod with UID
    /// `pod_uid` (a container whose status the API does not show yet).
    pub fn pod_for_container(
        &self,
        container_id: &str,
        pod_uid: Option<&str>,
    ) -> Option<Arc<PodInfo>> {
        let k = self
            .by_container
            .get(container_id)
            .or_else(|| self.by_uid.get(pod_uid?))?;
        self.pods.get(k).cloned()
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, k: &str) -> Option<Arc<PodInfo>> {
        self.pods.get(k).cloned()
    }

    /// The pod whose IP is `ip` (host-network and finished pods excluded).
    pub fn pod_by_ip(&self, ip: &IpAddr) -> Option<Arc<PodInfo>> {
        self.pods.get(self.by_pod_ip.get(ip)?).cloned()
    }

    /// The services (`namespace/name`, sorted) whose endpoint slices name pod `pod_key`.
    pub fn services_of_pod(&self, pod_key: &str) -> Vec<Key> {
        self.pod_services
            .get(pod_key)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The service whose ClusterIP is `ip`.
    pub fn service_by_cluster_ip(&self, ip: &IpAddr) -> Option<&ServiceInfo> {
        self.services.get(self.by_cluster_ip.get(ip)?)
    }

    /// The services (sorted) with an endpoint at `ip`.
    pub fn services_by_endpoint_ip(&self, ip: &IpAddr) -> Vec<Key> {
        self.by_endpoint_ip
            .get(ip)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The node with address `ip`.
    pub fn node_by_ip(&self, ip: &IpAddr) -> Option<&str> {
        self.by_node_ip.get(ip).map(String::as_str)
    }

    /// How many pods, services, slices and nodes are indexed.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.pods.len(),
            self.services.len(),
            self.slices.len(),
            self.nodes.len(),
        ]
    }
}

fn slice_key(slice: &EndpointSlice) -> Option<Key> {
    Some(key(
        slice.metadata.namespace.as_deref()?,
        slice.metadata.name.as_deref()?,
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::{
            core::v1::{
                ContainerStatus, NodeAddress, NodeStatus, ObjectReference, PodIP, PodSpec,
                PodStatus, ServiceSpec,
            },
            discovery::v1::Endpoint,
        },
        apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    };

    use super::*;

    const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn pod(ns: &str, name: &str, node: &str, ip: Option<&str>, cid: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                owner_references: Some(vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "web-7d4".into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ips: ip.map(|ip| vec![PodIP { ip: ip.into() }]),
                container_statuses: cid.map(|c| {
                    vec![ContainerStatus {
                        name: "app".into(),
                        container_id: Some(format!("containerd://{c}")),
                        ..ContainerStatus::default()
                    }]
                }),
                ..PodStatus::default()
            }),
        }
    }

    fn slice(ns: &str, name: &str, svc: &str, eps: &[(&str, &str)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([("kubernetes.io/service-name".to_string(), svc.to_string())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(ip, pod)| Endpoint {
                    addresses: vec![ip.to_string()],
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some(pod.to_string()),
                        namespace: Some(ns.into()),
                        ..ObjectReference::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
            ports: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn container_ids_and_uids_index_only_this_nodes_pods_ips_every_pod() {
        let mut ix = Index::new("node-a");
        ix.apply_pod(&pod("shop", "web-1", "node-a", Some("10.0.0.5"), Some(C1)));
        ix.apply_pod(&pod("shop", "web-2", "node-b", Some("10.0.1.5"), Some(C2)));
        let p = ix.pod_for_container(C1, None).unwrap();
        assert_eq!(p.key(), "shop/web-1");
        assert_eq!(p.container_name(C1), Some("app"));
        assert_eq!(
            p.owner,
            Some(Owner {
                kind: "ReplicaSet".into(),
                name: "web-7d4".into()
            })
        );
        assert!(ix.pod_for_container(C2, None).is_none());
        assert_eq!(ix.pod_by_ip(&ip("10.0.1.5")).unwrap().key(), "shop/web-2");
        // A container the status does not list yet is found by its pod's UID.
        assert_eq!(
            ix.pod_for_container("ff", Some("uid-web-1")).unwrap().key(),
            "shop/web-1"
        );
    }

    #[test]
    fn updates_replace_old_entries_and_deletes_remove_them() {
        let mut ix = Index::new("node-a");
        ix.apply_pod(&pod("shop", "web-1", "node-a", None, None));
        assert!(ix.pod_by_ip(&ip("10.0.0.5")).is_none());
        ix.apply_pod(&pod("shop", "web-1", "node-a", Some("10.0.0.5"), Some(C1)));
        assert!(ix.pod_for_container(C1, None).is_some());
        // Restarted container: new id, the old one no longer answers.
        ix.apply_pod(&pod("shop", "web-1", "node-a", Some("10.0.0.5"), Some(C2)));
        assert!(ix.pod_for_container(C1, None).is_none());
        assert!(ix.pod_for_container(C2, None).is_some());
        // The IP moved to a new pod before the old one's delete arrived: the delete must not
        // take the new owner's entry.
        ix.apply_pod(&pod("shop", "web-3", "node-a", Some("10.0.0.5"), None));
        ix.delete_pod(&pod("shop", "web-1", "node-a", None, None));
        assert_eq!(ix.pod_by_ip(&ip("10.0.0.5")).unwrap().key(), "shop/web-3");
        assert!(ix.pod_for_container(C2, None).is_none());
        assert_eq!(ix.counts()[0], 1);
    }

    #[test]
    fn finished_and_host_network_pods_do_not_claim_ips() {
        let mut ix = Index::new("node-a");
        let mut done = pod("batch", "job-1", "node-a", Some("10.0.0.9"), None);
        if let Some(s) = done.status.as_mut() {
            s.phase = Some("Succeeded".into());
        }
        ix.apply_pod(&done);
        let mut host = pod("kube-system", "proxy", "node-a", Some("192.168.1.10"), None);
        if let Some(s) = host.spec.as_mut() {
            s.host_network = Some(true);
        }
        ix.apply_pod(&host);
        assert!(ix.pod_by_ip(&ip("10.0.0.9")).is_none());
        assert!(ix.pod_by_ip(&ip("192.168.1.10")).is_none());
    }

    #[test]
    fn static_pods_are_found_by_their_mirror_uid() {
        let mut ix = Index::new("node-a");
        let mut p = pod("kube-system", "etcd-node-a", "node-a", None, None);
        p.metadata.annotations = Some(
            [(
                "kubernetes.io/config.mirror".to_string(),
                "3f2a9c4b5d6e7f8091a2b3c4d5e6f708".to_string(),
            )]
            .into(),
        );
        ix.apply_pod(&p);
        assert_eq!(
            ix.pod_for_container("x", Some("3f2a9c4b5d6e7f8091a2b3c4d5e6f708"))
                .unwrap()
                .key(),
            "kube-system/etcd-node-a"
        );
    }

    #[test]
    fn services_by_cluster_ip_endpoint_ip_and_pod() {
        let mut ix = Index::new("node-a");
        ix.apply_service(&Service {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.20".into()),
                cluster_ips: Some(vec!["10.96.0.20".into()]),
                ..ServiceSpec::default()
            }),
            status: None,
        });
        assert_eq!(
            ix.service_by_cluster_ip(&ip("10.96.0.20")).unwrap().name,
            "web"
        );
        ix.apply_slice(&slice("shop", "web-abc", "web", &[("10.0.0.5", "web-1")]));
        ix.apply_slice(&slice("shop", "web-def", "web", &[("10.0.0.5", "web-1")]));
        ix.apply_slice(&slice("shop", "all-x", "all", &[("10.0.0.5", "web-1")]));
        assert_eq!(ix.services_of_pod("shop/web-1"), ["shop/all", "shop/web"]);
        assert_eq!(
            ix.services_by_endpoint_ip(&ip("10.0.0.5")),
            ["shop/all", "shop/web"]
        );
        // Two slices named the pod for `web`: removing one keeps it.
        ix.delete_slice(&slice("shop", "web-abc", "web", &[]));
        assert_eq!(ix.services_of_pod("shop/web-1"), ["shop/all", "shop/web"]);
        // A slice update that drops the endpoint removes it.
        ix.apply_slice(&slice("shop", "web-def", "web", &[]));
        ix.delete_slice(&slice("shop", "all-x", "all", &[]));
        assert!(ix.services_of_pod("shop/web-1").is_empty());
        assert!(ix.services_by_endpoint_ip(&ip("10.0.0.5")).is_empty());
    }

    #[test]
    fn relist_drops_what_is_gone() {
        let mut ix = Index::new("node-a");
        let a = pod("shop", "a", "node-a", Some("10.0.0.1"), Some(C1));
        let b = pod("shop", "b", "node-a", Some("10.0.0.2"), Some(C2));
        ix.apply_pod(&a);
        ix.apply_pod(&b);
        ix.reset_pods([&b]);
        assert!(ix.pod_for_container(C1, None).is_none());
        assert!(ix.pod_by_ip(&ip("10.0.0.1")).is_none());
        assert_eq!(ix.pod_by_ip(&ip("10.0.0.2")).unwrap().key(), "shop/b");
    }

    #[test]
    fn nodes_by_internal_ip() {
        let mut ix = Index::new("node-a");
        ix.apply_node(&Node {
            metadata: ObjectMeta {
                name: Some("node-a".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "192.168.1.10".into(),
                    },
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: "node-a".into(),
                    },
                ]),
                ..NodeStatus::default()
            }),
        });
        assert_eq!(ix.node_by_ip(&ip("192.168.1.10")), Some("node-a"));
        ix.reset_nodes([]);
        assert_eq!(ix.node_by_ip(&ip("192.168.1.10")), None);
    }
}
