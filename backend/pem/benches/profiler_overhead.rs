//! The CPU profiler's cost to the profiled: a fixed CPU-bound C workload (a fixed number of
//! loop iterations, pinned to one CPU) timed by its own process CPU clock with and without the
//! profiler attached (99 Hz on every CPU, draining every second as the PEM would), the modes
//! alternating round by round so the host's drift cancels; medians of the rounds and of the
//! paired differences. Also the BPF program's own run time per sample, from the kernel's BPF
//! statistics (`kernel.bpf_stats_enabled`, read with bpftool), when bpftool is there.
//!
//! Root and clang-19: `cargo bench -p pxtop-pem --bench profiler_overhead -- --rounds 11`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use pxtop_probes::{Profiler, ProfilerConfig};

const WORKLOAD_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static volatile unsigned long sink;
__attribute__((noinline)) void hot(unsigned long n) { for (unsigned long i = 0; i < n; i++) sink += i * i; }
__attribute__((noinline)) void cold(unsigned long n) { for (unsigned long i = 0; i < n; i++) sink += i * i; }
static double now(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    unsigned long rounds = strtoul(argv[1], 0, 10);
    double cpu0 = now(CLOCK_PROCESS_CPUTIME_ID), wall0 = now(CLOCK_MONOTONIC);
    for (unsigned long r = 0; r < rounds; r++) { hot(300000); cold(100000); }
    printf("%.6f %.6f\n", now(CLOCK_PROCESS_CPUTIME_ID) - cpu0, now(CLOCK_MONOTONIC) - wall0);
    return 0;
}
"#;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (CPU seconds, wall seconds) of one run, pinned to CPU 1.
fn run(bin: &std::path::Path, rounds: u64) -> (f64, f64) {
    let out = Command::new("taskset")
        .args(["-c", "1"])
        .arg(bin)
        .arg(rounds.to_string())
        .output()
        .unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    let v: Vec<f64> = s.split_whitespace().map(|f| f.parse().unwrap()).collect();
    (v[0], v[1])
}

/// The profile program's (run time ns, runs) from bpftool, if stats are on and bpftool exists.
fn prog_stats() -> Option<(u64, u64)> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "name", "profile", "--json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let p = if v.is_array() { v.get(0)?.clone() } else { v };
    Some((p.get("run_time_ns")?.as_u64()?, p.get("run_cnt")?.as_u64()?))
}

fn main() {
    // `cargo bench` passes `--bench`; only our flags matter.
    let rounds = arg("--rounds", 11) as usize;
    let iters = arg("--iters", 4000);
    if let Err(e) = pxtop_probes::preflight() {
        eprintln!("skipped: {e}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("pxtop-profiler-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("workload.c");
    std::fs::write(&src, WORKLOAD_C).unwrap();
    let bin = dir.join("workload");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang-19".to_string());
    let ok = Command::new(&clang)
        .args([
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-mno-omit-leaf-frame-pointer",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{clang} failed");

    let stats_before = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").ok();
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    run(&bin, iters / 4); // warm-up
    let (mut off_cpu, mut on_cpu, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut off_wall, mut on_wall) = (Vec::new(), Vec::new());
    let mut per_sample_ns = Vec::new();
    for round in 0..rounds {
        let a = run(&bin, iters);
        let mut prof = Profiler::load(&ProfilerConfig::default()).expect("load the profiler");
        // Drain every second, as the PEM does every push period (here more often).
        let stop = Arc::new(AtomicBool::new(false));
        let before = prog_stats();
        let b = std::thread::scope(|s| {
            let drainer = s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1000));
                    let _ = prof.drain();
                }
            });
            let b = run(&bin, iters);
            stop.store(true, Ordering::Relaxed);
            drainer.join().unwrap();
            b
        });
        if let (Some((t0, n0)), Some((t1, n1))) = (before, prog_stats())
            && n1 > n0
        {
            per_sample_ns.push((t1 - t0) as f64 / (n1 - n0) as f64);
        }
        drop(prof);
        let c = run(&bin, iters);
        let base = (a.0 + c.0) / 2.0;
        eprintln!(
            "round {round}: off {:.4} s, on {:.4} s, off {:.4} s CPU ({:+.3}%)",
            a.0,
            b.0,
            c.0,
            100.0 * (b.0 - base) / base
        );
        off_cpu.extend([a.0, c.0]);
        on_cpu.push(b.0);
        off_wall.extend([a.1, c.1]);
        on_wall.push(b.1);
        diffs.push(100.0 * (b.0 - base) / base);
    }
    if let Some(s) = stats_before {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", s.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "workload CPU: {:.4} s without the profiler, {:.4} s with it (medians of {} and {} runs); \
         wall {:.4} s vs {:.4} s",
        median(&mut off_cpu),
        median(&mut on_cpu),
        off_cpu.len(),
        on_cpu.len(),
        median(&mut off_wall),
        median(&mut on_wall)
    );
    println!(
        "profiler overhead on the workload's CPU: {:+.3}% (median of {rounds} paired rounds; \
         each round brackets the profiled run between two unprofiled ones)",
        median(&mut diffs)
    );
    if per_sample_ns.is_empty() {
        println!("BPF run time per sample: not measured (bpftool or bpf_stats unavailable)");
    } else {
        let ns = median(&mut per_sample_ns);
        println!(
            "BPF program run time per sample: {ns:.0} ns (median of rounds) = {:.4}% of a CPU \
             at 99 Hz",
            100.0 * ns * 99.0 / 1e9
        );
    }
}
