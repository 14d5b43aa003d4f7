//! Compiles `bpf/*.bpf.c` with clang-19 into BPF objects in `OUT_DIR` (embedded by the crate).
use std::{env, path::PathBuf, process::Command};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PROGRAMS: &[&str] = &["socket_trace", "tcp_stats", "profiler"];

fn main() -> Result<()> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang-19".to_string());
    let arch = match env::var("CARGO_CFG_TARGET_ARCH")?.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        other => return Err(format!("pxtop's probes do not support target arch {other}").into()),
    };
    println!("cargo:rerun-if-env-changed=CLANG");
    for header in [
        "bpf/vmlinux_min.h",
        "bpf/socket_trace.h",
        "bpf/sock_fd.h",
        "bpf/tcp_stats.h",
        "bpf/profiler.h",
    ] {
        println!("cargo:rerun-if-changed={header}");
    }
    for prog in PROGRAMS {
        let src = format!("bpf/{prog}.bpf.c");
        println!("cargo:rerun-if-changed={src}");
        let obj = out.join(format!("{prog}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-target", "bpf", "-g", "-O2", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{}", arch.0))
            .arg(format!("-I/usr/include/{}", arch.1))
            .args(["-c", &src, "-o"])
            .arg(&obj)
            .status()
            .map_err(|e| {
                format!(
                    "cannot run {clang} to build the eBPF probes ({e}); install it with \
                     tools/setup-debian.sh (Debian package clang-19) or set CLANG"
                )
            })?;
        if !status.success() {
            return Err(format!("{clang} failed to compile {src}").into());
        }
    }
    Ok(())
}
