//! Process → container → pod, from the process's cgroup path (`/proc/PID/cgroup`).
//!
//! The kubelet puts every container in a cgroup whose path names the pod's UID and the
//! container's id, in one of a few layouts that depend on the cgroup driver (systemd or
//! cgroupfs), the cgroup version and the runtime (containerd, CRI-O, Docker). This module reads
//! those layouts; the Kubernetes watchers then map the pod UID and container id to a pod.
//!
//! Written by hand: no maintained crate parses container ids out of cgroup paths (the cgroup
//! crates manage cgroups, they don't classify them), and the formats are a handful of path
//! shapes, each covered by a test below with a path recorded from a real node.

use std::fmt;

/// The container runtime that named the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd (`cri-containerd-ID.scope`, or a bare id under `kubepods/…/podUID/`).
    Containerd,
    /// CRI-O (`crio-ID.scope`, `crio-ID`).
    CriO,
    /// Docker, directly or through the kubelet's dockershim / cri-dockerd (`docker-ID.scope`,
    /// `/docker/ID`).
    Docker,
    /// A 64-hex id under a pod's cgroup with no runtime prefix: the cgroupfs driver, whose
    /// path does not say which runtime made it.
    Unknown,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Unknown => "unknown",
        })
    }
}

/// The pod's quality-of-service class, as the kubelet's cgroup hierarchy encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Pods directly under `kubepods` (requests equal limits).
    Guaranteed,
    /// `kubepods/burstable` or `kubepods-burstable.slice`.
    Burstable,
    /// `kubepods/besteffort` or `kubepods-besteffort.slice`.
    BestEffort,
}

/// What a cgroup path says about the process in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The container id: 64 lowercase hex digits, as the runtime and the pod status
    /// (`containerStatuses[].containerID`, after the `runtime://` prefix) name it.
    pub container_id: String,
    /// Who made it.
    pub runtime: Runtime,
    /// The pod's UID with dashes (`metadata.uid`), when the container belongs to a pod.
    pub pod_uid: Option<String>,
    /// The pod's QoS class, when the container belongs to a pod.
    pub qos: Option<QosClass>,
}

/// Reads the contents of `/proc/PID/cgroup` (v1: one line per hierarchy; v2: `0::/path`) and
/// returns the container the process runs in, or `None` for a process on the host.
pub fn parse_proc_cgroup(contents: &str) -> Option<ContainerRef> {
    // v2 first (`0::`), then any v1 hierarchy: on hybrid hosts they agree, and v1 hosts list a
    // dozen controllers with the same path.
    let mut lines: Vec<&str> = contents.lines().collect();
    lines.sort_by_key(|l| !l.starts_with("0::"));
    lines.into_iter().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        parse_cgroup_path(path)
    })
}

/// Classifies one cgroup path (the part after `N:controllers:`).
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (last, parents) = segments.split_last()?;
    let (container_id, mut runtime) = container_segment(last)?;
    // cgroup v1 Docker: a bare id under `/docker/`.
    if runtime == Runtime::Unknown && parents.last() == Some(&"docker") {
        runtime = Runtime::Docker;
    }
    let mut pod_uid = None;
    let mut qos = None;
    let mut in_kubepods = false;
    for seg in parents {
        let seg = seg.strip_suffix(".slice").unwrap_or(seg);
        // systemd driver: kubepods-burstable-pod<uid with underscores>.slice, nested inside
        // kubepods.slice/kubepods-burstable.slice; cgroupfs: kubepods/burstable/pod<uid>.
        if seg == "kubepods" || seg.ends_with("-kubepods") || seg.starts_with("kubepods-") {
            in_kubepods = true;
        }
        if !in_kubepods {
            continue;
        }
        // cgroupfs: `pod<uid-with-dashes>`; systemd: `kubepods-QOS-pod<uid_with_underscores>`.
        let leaf = seg.rfind("-pod").map_or(seg, |i| &seg[i + 1..]);
        if seg.contains("burstable") {
            qos = Some(QosClass::Burstable);
        } else if seg.contains("besteffort") {
            qos = Some(QosClass::BestEffort);
        }
        if let Some(uid) = leaf.strip_prefix("pod") {
            let uid = uid.replace('_', "-");
            if is_uid(&uid) {
                pod_uid = Some(uid);
            }
        }
    }
    if pod_uid.is_some() && qos.is_none() {
        qos = Some(QosClass::Guaranteed);
    }
    // A bare id outside kubepods is not a container we can name (e.g. a systemd unit that
    // happens to be hex); one with a runtime prefix is (plain Docker on a node).
    if runtime == Runtime::Unknown && pod_uid.is_none() {
        return None;
    }
    Some(ContainerRef {
        container_id,
        runtime,
        pod_uid,
        qos,
    })
}

/// The container id and runtime named by the last path segment, if it names one.
fn container_segment(seg: &str) -> Option<(String, Runtime)> {
    let seg = seg.strip_suffix(".scope").unwrap_or(seg);
    const PREFIXES: [(&str, Runtime); 4] = [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("docker-", Runtime::Docker),
        ("containerd-", Runtime::Containerd),
    ];
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = seg.strip_prefix(prefix) {
            // `crio-conmon-ID` is CRI-O's monitor process, not the container.
            return is_container_id(id).then(|| (id.to_string(), runtime));
        }
    }
    is_container_id(seg).then(|| (seg.to_string(), Runtime::Unknown))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `8-4-4-4-12` hex, as Kubernetes UIDs are, or 32 hex digits: a static pod's UID, the hash
/// of its manifest the kubelet names it by (its mirror pod in the API carries it in the
/// `kubernetes.io/config.mirror` annotation).
fn is_uid(s: &str) -> bool {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Strips the `runtime://` prefix of a pod status's `containerID`, giving the id
/// [`ContainerRef::container_id`] holds.
pub fn status_container_id(s: &str) -> &str {
    s.split_once("://").map_or(s, |(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7d9d7a1c0c5e3e6f4b2a19087c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d";
    const UID: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
    const UID_: &str = "0a1b2c3d_4e5f_6071_8293_a4b5c6d7e8f9";

    fn pod(runtime: Runtime, qos: QosClass) -> Option<ContainerRef> {
        Some(ContainerRef {
            container_id: ID.into(),
            runtime,
            pod_uid: Some(UID.into()),
            qos: Some(qos),
        })
    }

    #[test]
    fn containerd_systemd_driver_cgroup_v2() {
        let f = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            parse_proc_cgroup(&f),
            pod(Runtime::Containerd, QosClass::Burstable)
        );
    }

    #[test]
    fn containerd_cgroupfs_driver_cgroup_v1() {
        let f = format!(
            "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n11:memory:/kubepods/besteffort/pod{UID}/{ID}\n1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n"
        );
        assert_eq!(
            parse_proc_cgroup(&f),
            pod(Runtime::Unknown, QosClass::BestEffort)
        );
    }

    #[test]
    fn guaranteed_pods_sit_directly_under_kubepods() {
        let systemd =
            format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope");
        let cgroupfs = format!("/kubepods/pod{UID}/{ID}");
        assert_eq!(
            parse_proc_cgroup(&systemd),
            pod(Runtime::Containerd, QosClass::Guaranteed)
        );
        assert_eq!(
            parse_cgroup_path(&cgroupfs),
            pod(Runtime::Unknown, QosClass::Guaranteed)
        );
    }

    #[test]
    fn crio_systemd_and_cgroupfs_and_conmon() {
        let systemd = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
        );
        assert_eq!(
            parse_proc_cgroup(&systemd),
            pod(Runtime::CriO, QosClass::BestEffort)
        );
        let cgroupfs = format!("/kubepods/burstable/pod{UID}/crio-{ID}");
        assert_eq!(
            parse_cgroup_path(&cgroupfs),
            pod(Runtime::CriO, QosClass::Burstable)
        );
        let conmon = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-conmon-{ID}.scope"
        );
        assert_eq!(parse_cgroup_path(&conmon), None);
    }

    #[test]
    fn docker_in_and_out_of_kubernetes() {
        let k8s = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope"
        );
        assert_eq!(
            parse_proc_cgroup(&k8s),
            pod(Runtime::Docker, QosClass::Burstable)
        );
        let plain_v2 = format!("0::/system.slice/docker-{ID}.scope");
        let plain_v1 = format!("4:cpu,cpuacct:/docker/{ID}");
        let want = Some(ContainerRef {
            container_id: ID.into(),
            runtime: Runtime::Docker,
            pod_uid: None,
            qos: None,
        });
        assert_eq!(parse_proc_cgroup(&plain_v2), want);
        assert_eq!(parse_proc_cgroup(&plain_v1), want);
    }

    #[test]
    fn static_pods_name_their_manifest_hash() {
        let hash = "3f2a9c4b5d6e7f8091a2b3c4d5e6f708";
        let f = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope"
        );
        let c = parse_proc_cgroup(&f).unwrap();
        assert_eq!(c.pod_uid.as_deref(), Some(hash));
        let v1 = format!("11:memory:/kubepods/burstable/pod{hash}/{ID}");
        assert_eq!(
            parse_proc_cgroup(&v1).unwrap().pod_uid.as_deref(),
            Some(hash)
        );
    }

    #[test]
    fn kind_style_nesting_under_kubelet_slice() {
        let f = format!(
            "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            parse_proc_cgroup(&f),
            pod(Runtime::Containerd, QosClass::BestEffort)
        );
    }

    #[test]
    fn host_processes_are_not_containers() {
        for f in [
            "0::/init.scope",
            "0::/user.slice/user-0.slice/session-3.scope",
            "0::/system.slice/nginx.service",
            "0::/",
            "",
            "garbage",
            "12:memory:/kubepods/burstable/podnot-a-uid/abc",
        ] {
            assert_eq!(parse_proc_cgroup(f), None, "{f:?}");
        }
    }

    #[test]
    fn this_process_parses_without_panicking() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        // The test host is not a Kubernetes node: no pod.
        assert!(parse_proc_cgroup(&own).and_then(|c| c.pod_uid).is_none());
    }

    #[test]
    fn status_ids_lose_their_runtime_prefix() {
        assert_eq!(status_container_id(&format!("containerd://{ID}")), ID);
        assert_eq!(status_container_id(&format!("cri-o://{ID}")), ID);
        assert_eq!(status_container_id(ID), ID);
    }
}
