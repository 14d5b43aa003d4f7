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
