//! Checks that this host can load the probes, with errors that name the fix.

use std::path::Path;

/// Why the probes cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Neither root nor the capabilities eBPF needs.
    #[error(
        "pxtop needs root, or CAP_BPF and CAP_PERFMON (plus CAP_SYS_RESOURCE), to load eBPF \
         probes; run it with sudo"
    )]
    Privileges,
    /// The kernel has no BTF, so CO-RE relocations cannot be resolved.
    #[error(
        "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); pxtop needs a kernel built \
         with CONFIG_DEBUG_INFO_BTF=y (any distribution kernel since 5.8 has it)"
    )]
    NoBtf,
    /// tracefs is not mounted and could not be mounted.
    #[error(
        "tracefs is not mounted and mounting it failed ({0}); run `mount -t tracefs nodev \
         /sys/kernel/tracing` as root"
    )]
    Tracefs(String),
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Checks privileges and kernel BTF, and mounts tracefs if it is not (tracepoints attach
/// through it).
pub fn preflight() -> Result<(), PreflightError> {
    let caps = effective_caps().unwrap_or(0);
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        return Err(PreflightError::Privileges);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    ensure_tracefs()
}

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn ensure_tracefs() -> Result<(), PreflightError> {
    if Path::new("/sys/kernel/tracing/events").exists()
        || Path::new("/sys/kernel/debug/tracing/events").exists()
    {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status()
        .map_err(|e| PreflightError::Tracefs(e.to_string()))?;
    if status.success() && Path::new("/sys/kernel/tracing/events").exists() {
        Ok(())
    } else {
        Err(PreflightError::Tracefs(format!(
            "mount exited with {status}"
        )))
    }
}

/// One line of `pxtop doctor`: what was checked, whether it passed, what was seen, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked, e.g. "kernel version".
    pub name: String,
    /// Whether this node passes.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    pub fix: String,
}

/// The oldest kernel the probes load on (CAP_BPF/CAP_PERFMON, ring buffers, BTF everywhere).
pub const MIN_KERNEL: (u32, u32) = (5, 8);
/// RLIMIT_MEMLOCK below this fails on kernels that still charge BPF maps to it (< 5.11).
const MIN_MEMLOCK: u64 = 64 << 20;
const CAP_SYS_RESOURCE: u32 = 24;

/// Every requirement of the capture on this node, checked without changing anything (tracefs
/// is not mounted here, unlike [`preflight`]): kernel version, BTF, capabilities, the
/// tracepoints the probes attach to, and RLIMIT_MEMLOCK.
pub fn doctor() -> Vec<Check> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = parse_release(release.trim());
    let caps = effective_caps();
    vec![
        kernel_check(release.trim(), version),
        btf_check(Path::new("/sys/kernel/btf/vmlinux").exists()),
        caps_check(caps),
        tracepoints_check(tracefs_events().as_deref()),
        memlock_check(
            std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|l| memlock_soft(&l)),
            version,
            caps,
        ),
    ]
}

fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn kernel_check(release: &str, version: Option<(u32, u32)>) -> Check {
    let ok = version.is_some_and(|v| v >= MIN_KERNEL);
    Check {
        name: "kernel version".into(),
        ok,
        detail: format!(
            "{} (need >= {}.{})",
            if release.is_empty() {
                "unknown"
            } else {
                release
            },
            MIN_KERNEL.0,
            MIN_KERNEL.1
        ),
        fix: "upgrade the node's kernel to 5.8 or later".into(),
    }
}

fn btf_check(present: bool) -> Check {
    Check {
        name: "kernel BTF".into(),
        ok: present,
        detail: if present {
            "/sys/kernel/btf/vmlinux present".into()
        } else {
            "/sys/kernel/btf/vmlinux missing".into()
        },
        fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (distribution kernels since 5.8)"
            .into(),
    }
}

fn caps_check(caps: Option<u64>) -> Check {
    let has = |c: u32| caps.is_some_and(|caps| caps & (1u64 << c) != 0);
    let (ok, detail) = if has(CAP_SYS_ADMIN) {
        (true, "CAP_SYS_ADMIN (root)".to_string())
    } else if has(CAP_BPF) && has(CAP_PERFMON) {
        (true, "CAP_BPF and CAP_PERFMON".to_string())
    } else {
        let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
            .iter()
            .filter(|(c, _)| !has(*c))
            .map(|(_, n)| *n)
            .collect();
        (false, format!("missing {}", missing.join(" and ")))
    };
    Check {
        name: "capabilities".into(),
        ok,
        detail,
        fix: "run as root (sudo), or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE (the PEM \
              DaemonSet does)"
            .into(),
    }
}

/// tracefs's `events` directory, where mounted.
fn tracefs_events() -> Option<std::path::PathBuf> {
    [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_dir())
}

/// Every tracepoint a probe attaches to, as (category, name).
pub fn required_tracepoints() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = crate::socket::TRACEPOINTS
        .iter()
        .map(|sc| ("syscalls".to_string(), format!("sys_exit_{sc}")))
        .collect();
    out.push(("syscalls".into(), "sys_enter_close".into()));
    out.extend(
        crate::tcp_stats::TRACEPOINTS
            .iter()
            .map(|(_, cat, name)| (cat.to_string(), name.to_string())),
    );
    out
}

fn tracepoints_check(events: Option<&Path>) -> Check {
    let fix_mount = "mount tracefs: `mount -t tracefs nodev /sys/kernel/tracing` (as root; the \
                     PEM DaemonSet mounts the host's /sys)";
    let Some(events) = events else {
        return Check {
            name: "tracepoints".into(),
            ok: false,
            detail: "tracefs is not mounted (or not readable)".into(),
            fix: fix_mount.into(),
        };
    };
    let wanted = required_tracepoints();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(cat, name)| !events.join(cat).join(name).exists())
        .map(|(cat, name)| format!("{cat}:{name}"))
        .collect();
    Check {
        name: "tracepoints".into(),
        ok: missing.is_empty(),
        detail: if missing.is_empty() {
            format!("{} present in {}", wanted.len(), events.display())
        } else {
            format!("missing {}", missing.join(", "))
        },
        fix: "use a kernel with CONFIG_FTRACE_SYSCALLS=y and the sock, tcp and skb events \
              (distribution kernels have them)"
            .into(),
    }
}

/// The soft RLIMIT_MEMLOCK from /proc/PID/limits, `u64::MAX` for unlimited.
fn memlock_soft(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line
        .trim_start_matches("Max locked memory")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

fn memlock_check(soft: Option<u64>, version: Option<(u32, u32)>, caps: Option<u64>) -> Check {
    let shown = match soft {
        Some(u64::MAX) => "unlimited".to_string(),
        Some(n) => format!("{} KiB", n >> 10),
        None => "unknown".to_string(),
    };
    let accounted = version.is_some_and(|v| v >= (5, 11));
    let can_raise = caps.is_some_and(|c| c & (1u64 << CAP_SYS_RESOURCE) != 0);
    let (ok, detail) = if accounted {
        (
            true,
            format!("{shown} (unused: since 5.11 BPF memory is charged to the cgroup)"),
        )
    } else if soft.is_some_and(|s| s >= MIN_MEMLOCK) {
        (true, shown)
    } else if can_raise {
        (true, format!("{shown} (raised at start: CAP_SYS_RESOURCE)"))
    } else {
        (
            false,
            format!("{shown} (need >= {} MiB before 5.11)", MIN_MEMLOCK >> 20),
        )
    };
    Check {
        name: "RLIMIT_MEMLOCK".into(),
        ok,
        detail,
        fix: "`ulimit -l unlimited`, or grant CAP_SYS_RESOURCE so pxtopd raises it".into(),
    }
}

#[cfg(test)]
mod doctor_tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn kernel_releases_parse_and_compare() {
        assert_eq!(parse_release("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0"), Some((5, 4)));
        assert!(!kernel_check("5.4.0", Some((5, 4))).ok);
        assert!(kernel_check("5.8.0", Some((5, 8))).ok);
        assert!(!kernel_check("", None).ok);
    }

    #[test]
    fn capabilities_and_memlock_decide_by_the_rules() {
        assert!(caps_check(Some(1 << CAP_SYS_ADMIN)).ok);
        assert!(caps_check(Some((1 << CAP_BPF) | (1 << CAP_PERFMON))).ok);
        let c = caps_check(Some(1 << CAP_BPF));
        assert!(!c.ok);
        assert_eq!(c.detail, "missing CAP_PERFMON");
        assert!(memlock_check(Some(64 << 10), Some((6, 1)), Some(0)).ok);
        assert!(!memlock_check(Some(64 << 10), Some((5, 10)), Some(0)).ok);
        assert!(memlock_check(Some(64 << 10), Some((5, 10)), Some(1 << CAP_SYS_RESOURCE)).ok);
        assert!(memlock_check(Some(u64::MAX), Some((5, 10)), Some(0)).ok);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max locked memory         8388608              8388608              bytes\n";
        assert_eq!(memlock_soft(limits), Some(8 << 20));
    }

    #[test]
    fn tracepoints_are_looked_up_in_tracefs() {
        let dir = std::env::temp_dir().join(format!("pxtop-doctor-{}", std::process::id()));
        for (cat, name) in required_tracepoints() {
            std::fs::create_dir_all(dir.join(cat).join(name)).unwrap();
        }
        assert!(tracepoints_check(Some(&dir)).ok);
        std::fs::remove_dir_all(dir.join("skb")).unwrap();
        let c = tracepoints_check(Some(&dir));
        assert!(!c.ok);
        assert_eq!(c.detail, "missing skb:kfree_skb");
        assert!(!tracepoints_check(None).ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// On this machine (root, kernel with BTF) every check passes; the same checks a user runs.
    #[test]
    fn this_node_passes_when_root() {
        match preflight() {
            Ok(()) => {}
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("CI must run the eBPF checks, but: {e}"),
        }
        for c in doctor() {
            assert!(c.ok, "{c:?}");
        }
    }
}
