//! Metadata for rows: upid → process, and in a cluster container, pod, service, namespace,
//! node and owner ([`cluster::KubeMetadata`], from kube-rs reflectors), plus remote address →
//! pod or service. Locally, without a cluster, the same lookups fall back to the process name
//! and the host's identity ([`LocalMetadata`]), so `ctx("service")` still groups traffic
//! meaningfully.
#![forbid(unsafe_code)]

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc};

use parking_lot::RwLock;

pub mod cgroup;
pub mod cluster;
pub mod index;

pub use cluster::{KubeMetadata, KubeStatus};

/// What a script can ask of a row's process with `ctx(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtxKey {
    /// The service the process serves: `namespace/name` of the services whose endpoint
    /// slices name its pod, comma-separated, empty for a pod behind none (locally: the process
    /// name).
    Service,
    /// The pod, `namespace/name` (locally: `name-pid`).
    Pod,
    /// The namespace (locally: `local`).
    Namespace,
    /// The node (locally: the host name).
    Node,
    /// The container's name (locally: empty).
    Container,
    /// The process's command line.
    Cmdline,
    /// The process id.
    Pid,
    /// The pod's Deployment, `namespace/name` (through its ReplicaSet), empty if it has none
    /// (locally: empty).
    Deployment,
    /// The pod's top-level controller, `namespace/name`: its Deployment, StatefulSet,
    /// DaemonSet, Job, or a bare ReplicaSet (locally: the process name).
    Owner,
    /// The pod's id, as `network_stats.pod_id` holds it (locally: the inode of the process's
    /// network namespace, as `ls -L -i /proc/PID/ns/net` shows it), so a process's rows join
    /// with its namespace's interface counters.
    PodId,
}

impl CtxKey {
    /// Every key, in the order `--help` lists them.
    pub const ALL: [CtxKey; 10] = [
        CtxKey::Service,
        CtxKey::Pod,
        CtxKey::Namespace,
        CtxKey::Node,
        CtxKey::Container,
        CtxKey::Cmdline,
        CtxKey::Pid,
        CtxKey::Deployment,
        CtxKey::Owner,
        CtxKey::PodId,
    ];

    /// The key's name in scripts.
    pub fn name(self) -> &'static str {
        match self {
            CtxKey::Service => "service",
            CtxKey::Pod => "pod",
            CtxKey::Namespace => "namespace",
            CtxKey::Node => "node",
            CtxKey::Container => "container",
            CtxKey::Cmdline => "cmdline",
            CtxKey::Pid => "pid",
            CtxKey::Deployment => "deployment",
            CtxKey::Owner => "owner",
            CtxKey::PodId => "pod_id",
        }
    }
}

impl fmt::Display for CtxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `ctx` key; its message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCtxKey(pub String);

impl fmt::Display for UnknownCtxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<_> = CtxKey::ALL.iter().map(|k| k.name()).collect();
        write!(
            f,
            "unknown ctx key {:?}; known keys: {}",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownCtxKey {}

impl FromStr for CtxKey {
    type Err = UnknownCtxKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CtxKey::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownCtxKey(s.to_string()))
    }
}

/// Answers `ctx(key)` for a row's upid. Implementations must be cheap: scripts call it per row
/// (the engine caches per distinct upid within a batch).
pub trait Metadata: Send + Sync + fmt::Debug {
    /// The value of `key` for the process `upid` (Pixie's upid string), if known.
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String>;

    /// What the remote address `addr` (an IP, as the tables' `remote_addr` holds it) is in the
    /// cluster: for `Pod`, `Namespace`, `Node`, `Service`, `Deployment`, `Owner` the pod with
    /// that IP, else the service with that ClusterIP or endpoint, else the node. Locally:
    /// nothing.
    fn addr(&self, addr: &str, key: CtxKey) -> Option<String> {
        let _ = (addr, key);
        None
    }
}

/// What is known of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The process name (`comm`, at most 15 bytes).
    pub name: String,
    /// The command line, arguments joined by spaces (empty if it could not be read).
    pub cmdline: String,
}

/// Local metadata: processes on this host, learned from the capture (the kernel reports `comm`
/// when a connection opens, so short-lived clients are named too) and from `/proc`.
#[derive(Debug)]
pub struct LocalMetadata {
    host: String,
    procs: RwLock<HashMap<u32, ProcessInfo>>,
}

impl LocalMetadata {
    /// Metadata for this host.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            host: hostname(),
            procs: RwLock::new(HashMap::new()),
        })
    }

    /// Metadata for this host under another name (a cluster node's name, which need not be
    /// its host name).
    pub fn with_host(host: String) -> Arc<Self> {
        Arc::new(Self {
            host,
            procs: RwLock::new(HashMap::new()),
        })
    }

    /// Records a process seen by the capture. Reads its command line from `/proc` the first
    /// time (the process may already be gone: then the name alone is kept).
    pub fn observe(&self, pid: u32, comm: &str) {
        if self.procs.read().get(&pid).is_some_and(|p| p.name == comm) {
            return;
        }
        let cmdline = read_cmdline(pid).unwrap_or_default();
        self.procs.write().insert(
            pid,
            ProcessInfo {
                name: comm.to_string(),
                cmdline,
            },
        );
    }

    /// What is known of `pid`, reading `/proc` if the capture has not named it.
    pub fn process(&self, pid: u32) -> Option<ProcessInfo> {
        if let Some(p) = self.procs.read().get(&pid) {
            return Some(p.clone());
        }
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let info = ProcessInfo {
            name: name.trim_end().to_string(),
            cmdline: read_cmdline(pid).unwrap_or_default(),
        };
        self.procs.write().insert(pid, info.clone());
        Some(info)
    }

    /// The host name used for `ctx("node")`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Metadata for LocalMetadata {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        let pid = upid_pid(upid)?;
        match key {
            CtxKey::Node => Some(self.host.clone()),
            CtxKey::Namespace => Some("local".to_string()),
            CtxKey::Container | CtxKey::Deployment => Some(String::new()),
            CtxKey::Pid => Some(pid.to_string()),
            CtxKey::Service | CtxKey::Owner => self.process(pid).map(|p| p.name),
            CtxKey::Pod => self.process(pid).map(|p| format!("{}-{pid}", p.name)),
            CtxKey::Cmdline => self.process(pid).map(|p| p.cmdline),
            CtxKey::PodId => netns_inode(pid).map(|ino| ino.to_string()),
        }
    }
}

/// The pid inside a Pixie upid string (`aaaaaaaa-pppp-pppp-ssss-ssssssssssss`).
pub fn upid_pid(upid: &str) -> Option<u32> {
    let mut parts = upid.split('-');
    let _asid = parts.next()?;
    let hi = parts.next()?;
    let lo = parts.next()?;
    u32::from_str_radix(&format!("{hi}{lo}"), 16).ok()
}

/// The inode of `pid`'s network namespace (`/proc/PID/ns/net` links to `net:[INODE]`), the
/// key the PEM's telemetry writes to `network_stats.pod_id`.
fn netns_inode(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

fn read_cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Some(parts.join(" "))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_keys_parse_and_name_the_known_ones() {
        assert_eq!("service".parse::<CtxKey>(), Ok(CtxKey::Service));
        let err = "svc".parse::<CtxKey>().unwrap_err().to_string();
        assert!(err.contains("service, pod, namespace"), "{err}");
    }

    #[test]
    fn local_metadata_names_this_process() {
        let md = LocalMetadata::new();
        let pid = std::process::id();
        let upid = format!(
            "00000001-{:04x}-{:04x}-0000-000000000000",
            pid >> 16,
            pid & 0xffff
        );
        assert_eq!(upid_pid(&upid), Some(pid));
        let name = md.ctx(&upid, CtxKey::Service).unwrap();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(name, comm.trim_end());
        md.observe(pid, "renamed");
        assert_eq!(md.ctx(&upid, CtxKey::Service).as_deref(), Some("renamed"));
        assert_eq!(md.ctx(&upid, CtxKey::Pod), Some(format!("renamed-{pid}")));
        // The network namespace's inode, as `readlink /proc/self/ns/net` prints it.
        let link = std::fs::read_link("/proc/self/ns/net").unwrap();
        let link = link.to_string_lossy();
        let ino = link.trim_start_matches("net:[").trim_end_matches(']');
        assert_eq!(md.ctx(&upid, CtxKey::PodId).as_deref(), Some(ino));
    }
}
