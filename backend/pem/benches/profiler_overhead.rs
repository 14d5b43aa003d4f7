//! The CPU profiler's cost to the profiled: a fixed CPU-bound C workload (a fixed number of
//! loop iterations) pinned to CPU 1 at real-time priority (`chrt -f 50 taskset -c 1`: the
//! host's other work cannot preempt it and pollute its caches mid-run), timed by its own
//! `CLOCK_PROCESS_CPUTIME_ID`, run without the profiler and with it at 99 Hz and at a high
//! frequency (default 9,999 Hz) in every round, the order rotating round by round so the
//! host's drift cancels. Reported: per mode the median of the per-round ratios (profiled /
//! unprofiled CPU time) with their quartiles and extremes; the cost of one sample to the
//! workload, from the high-frequency runs (extra CPU time / samples that hit the workload,
//! counted from the profiler's own drained counts for its pid), meant to amplify the effect
//! above the host's noise (on the development VM it is not linear in the rate: see
//! BENCHMARKS.md, so its 99 Hz projection is a lower bound at best); and the BPF
//! program's own run time per sample from the kernel's BPF statistics
//! (`kernel.bpf_stats_enabled`, read with bpftool), × 99 Hz.
//!
//! First (`--interleave-seconds N`, default 120, 0 skips), the interleaved measurement: one
//! long workload run while the profiler is loaded and unloaded every 2 s; the CPU the
//! profiler takes from the workload shows as gaps in a clock-reading loop (one band of gap
//! sizes grows by about one gap per sample), and its throughput is compared on vs off.
//!
//! Root, clang-19, bpftool, util-linux (`chrt`, `taskset`):
//! `cargo bench -p pxtop-pem --bench profiler_overhead -- --rounds 30 --iters 1000`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    process::{Command, Stdio},
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
    if (argc > 3) { /* argv: gaps SECONDS x */
        /* Gap mode: read the clock in a tight loop for argv[2] seconds; a gap between two reads
           above 1 us is time the CPU spent elsewhere (an interrupt, a sample, the host). Every
           ~20 ms print the window's start and end, then for gaps under 1 ms their count and
           total (ns), longer gaps' total (the host descheduling the vCPU, RT throttling), and
           the count and total of each power-of-two band: 1-2, 2-4, ..., 512-1024 us. */
        double secs = strtod(argv[2], 0), t0 = now(CLOCK_MONOTONIC), last = t0, prev = t0;
        unsigned long n = 0, bn[10] = {0}; double stolen = 0, big = 0, bs[10] = {0};
        for (;;) {
            double t = now(CLOCK_MONOTONIC), gap = t - prev;
            prev = t;
            if (gap > 1e-6) {
                if (gap < 1e-3) {
                    int b = 0;
                    while (b < 9 && gap >= 2e-6 * (1 << b)) b++;
                    n++; stolen += gap; bn[b]++; bs[b] += gap;
                } else big += gap;
            }
            if (t - last >= 0.02) {
                printf("%.9f %.9f %lu %.0f %.0f", last, t, n, stolen * 1e9, big * 1e9);
                for (int b = 0; b < 10; b++) printf(" %lu %.0f", bn[b], bs[b] * 1e9);
                printf("\n");
                last = t; n = 0; stolen = 0; big = 0;
                for (int b = 0; b < 10; b++) { bn[b] = 0; bs[b] = 0; }
                if (t - t0 >= secs) return 0;
            }
        }
    }
    if (argc > 2) {
        /* Stream mode: hot() in small chunks for argv[2] seconds; every ~20 ms of wall time, print
           the window's end (CLOCK_MONOTONIC) and the iterations done in it. */
        double secs = strtod(argv[2], 0), t0 = now(CLOCK_MONOTONIC), last = t0;
        unsigned long chunk = strtoul(argv[1], 0, 10), done = 0;
        for (;;) {
            hot(chunk);
            done += chunk;
            double t = now(CLOCK_MONOTONIC);
            if (t - last >= 0.02) {
                printf("%.9f %.9f %lu\n", last, t, done);
                last = t;
                done = 0;
                if (t - t0 >= secs) return 0;
            }
        }
    }
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

/// The `q` quantile (0..=1) of `v`, nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "small"
    )]
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// One run: (CPU seconds, wall seconds, pid).
fn run(bin: &std::path::Path, iters: u64) -> (f64, f64, u32) {
    let child = Command::new("chrt")
        .args(["-f", "50", "taskset", "-c", "1"])
        .arg(bin)
        .arg(iters.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // chrt and taskset exec: the pid is the workload's.
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "workload failed: {:?}", out.status);
    let s = String::from_utf8(out.stdout).unwrap();
    let v: Vec<f64> = s.split_whitespace().map(|f| f.parse().unwrap()).collect();
    (v[0], v[1], pid)
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

/// A profiled run: (CPU s, wall s, samples of the workload, BPF ns per program run).
fn profiled(bin: &std::path::Path, iters: u64, hz: u64) -> (f64, f64, u64, Option<f64>) {
    let mut prof = Profiler::load(&ProfilerConfig {
        frequency_hz: hz,
        ..ProfilerConfig::default()
    })
    .expect("load the profiler");
    let stop = Arc::new(AtomicBool::new(false));
    let before = prog_stats();
    let mut counts = Vec::new();
    let (cpu, wall, pid) = std::thread::scope(|s| {
        // Drain every second, as the PEM does every push period (here more often).
        let drainer = s.spawn(|| {
            let mut got = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                got.extend(prof.drain().unwrap_or_default());
            }
            got
        });
        let r = run(bin, iters);
        stop.store(true, Ordering::Relaxed);
        counts = drainer.join().unwrap();
        r
    });
    counts.extend(prof.drain().unwrap());
    let per_run = match (before, prog_stats()) {
        (Some((t0, n0)), Some((t1, n1))) if n1 > n0 => Some((t1 - t0) as f64 / (n1 - n0) as f64),
        _ => None,
    };
    drop(prof);
    let samples = counts
        .iter()
        .filter(|c| c.tgid == pid)
        .map(|c| c.count)
        .sum();
    (cpu, wall, samples, per_run)
}

/// CLOCK_MONOTONIC in seconds (the clock the stream-mode workload stamps its windows with).
fn monotonic() -> f64 {
    pxtop_probes::clock::monotonic_ns() as f64 / 1e9
}

/// Runs the workload (`chrt -f 50 taskset -c 1 BIN ARGS..`) while the profiler is loaded at
/// `hz` for `period` seconds and unloaded for `period` seconds, over and over, for `seconds`.
/// Returns the workload's output (one line per ~20 ms window, starting with the window's
/// CLOCK_MONOTONIC start and end) and the phases: (from, to, profiler loaded).
fn toggling(
    bin: &std::path::Path,
    args: &[String],
    seconds: f64,
    period: f64,
    hz: u64,
) -> (String, Vec<(f64, f64, bool)>) {
    let mut child = Command::new("chrt")
        .args(["-f", "50", "taskset", "-c", "1"])
        .arg(bin)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes: a full pipe would stall the workload.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let end = monotonic() + seconds;
    let mut phases = Vec::new();
    let mut on = false;
    while monotonic() < end {
        let prof = on.then(|| {
            Profiler::load(&ProfilerConfig {
                frequency_hz: hz,
                ..ProfilerConfig::default()
            })
            .expect("load the profiler")
        });
        let from = monotonic();
        std::thread::sleep(Duration::from_secs_f64(period));
        let to = monotonic();
        drop(prof);
        phases.push((from, to, on));
        on = !on;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "workload failed: {status:?}");
    (reader.join().unwrap(), phases)
}

/// Sums the workload's window columns over each phase, leaving out windows within `MARGIN` of
/// a switch (loading and unloading the profiler sends IPIs to every CPU): per phase, the
/// seconds covered and the column sums (`None` when no window fits).
fn per_phase(out: &str, phases: &[(f64, f64, bool)]) -> Vec<Option<(f64, Vec<f64>)>> {
    const MARGIN: f64 = 0.25;
    let windows: Vec<Vec<f64>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
        .collect();
    phases
        .iter()
        .map(|&(from, to, _)| {
            let mut t = 0.0;
            let mut sums: Vec<f64> = Vec::new();
            for w in &windows {
                if w[0] >= from + MARGIN && w[1] <= to - MARGIN {
                    t += w[1] - w[0];
                    sums.resize(w.len() - 2, 0.0);
                    for (s, v) in sums.iter_mut().zip(&w[2..]) {
                        *s += v;
                    }
                }
            }
            (t > 0.0).then_some((t, sums))
        })
        .collect()
}

/// For each on-phase with off-phases either side: `f(on) − mean(f(before), f(after))`, so
/// the host's drift (slow next to the cycle) cancels.
fn paired(
    phases: &[(f64, f64, bool)],
    values: &[Option<f64>],
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    (1..phases.len().saturating_sub(1))
        .filter(|&i| phases[i].2)
        .filter_map(|i| match (values[i - 1], values[i], values[i + 1]) {
            (Some(a), Some(on), Some(b)) => Some(f(on, (a + b) / 2.0)),
            _ => None,
        })
        .collect()
}

/// Throughput, interleaved: the workload in stream mode (iterations every ~20 ms) with the
/// profiler toggled; per on-period, the slowdown (off throughput / on throughput − 1).
fn interleaved_throughput(bin: &std::path::Path, seconds: f64, hz: u64) -> Vec<f64> {
    let args = ["20000".to_string(), format!("{seconds}")];
    let (out, phases) = toggling(bin, &args, seconds, 2.0, hz);
    let rates: Vec<Option<f64>> = per_phase(&out, &phases)
        .into_iter()
        .map(|p| p.map(|(t, s)| s[0] / t))
        .collect();
    paired(&phases, &rates, |on, off| off / on - 1.0)
}

/// Per power-of-two gap band (1-2 µs … 512-1024 µs): the on-minus-off medians of gaps per
/// second and of the share of the CPU they take.
fn bands(phases: &[(f64, f64, bool)], sums: &[Option<(f64, Vec<f64>)>]) -> Vec<(f64, f64)> {
    (0..10)
        .map(|b| {
            let col = |k: usize| -> Vec<Option<f64>> {
                sums.iter()
                    .map(|p| p.as_ref().map(|(t, s)| s[3 + 2 * b + k] / t))
                    .collect()
            };
            let n = paired(phases, &col(0), |on, off| on - off);
            let ns = paired(phases, &col(1), |on, off| on - off);
            (quantile(&n, 0.5), quantile(&ns, 0.5) / 1e9)
        })
        .collect()
}

/// Stolen time, interleaved: the workload in gap mode (it reads the clock in a loop and counts
/// gaps of 1 µs to 1 ms: time its CPU spent on something else) with the profiler toggled.
/// Per on-period, against the off-periods either side: the extra share of the CPU stolen in
/// gaps, the extra gaps per second, the extra share in pauses over 1 ms; and per gap band.
#[expect(clippy::type_complexity, reason = "a bench's report")]
fn interleaved_stolen(
    bin: &std::path::Path,
    seconds: f64,
    hz: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<(f64, f64)>) {
    let args = ["gaps".to_string(), format!("{seconds}"), "x".to_string()];
    let (out, phases) = toggling(bin, &args, seconds, 2.0, hz);
    let sums = per_phase(&out, &phases);
    if std::env::var_os("PXTOP_BENCH_VERBOSE").is_some() {
        for (p, s) in phases.iter().zip(&sums) {
            if let Some((t, s)) = s {
                eprintln!(
                    "profiler {}: {:.0} gaps/s, {:.3}% stolen in gaps, {:.3}% in host pauses",
                    if p.2 { "on " } else { "off" },
                    s[0] / t,
                    100.0 * s[1] / 1e9 / t,
                    100.0 * s[2] / 1e9 / t
                );
            }
        }
    }
    let share: Vec<Option<f64>> = sums
        .iter()
        .map(|p| p.as_ref().map(|(t, s)| s[1] / 1e9 / t))
        .collect();
    let rate: Vec<Option<f64>> = sums
        .iter()
        .map(|p| p.as_ref().map(|(t, s)| s[0] / t))
        .collect();
    let pauses: Vec<Option<f64>> = sums
        .iter()
        .map(|p| p.as_ref().map(|(t, s)| s[2] / 1e9 / t))
        .collect();
    (
        paired(&phases, &share, |on, off| on - off),
        paired(&phases, &rate, |on, off| on - off),
        paired(&phases, &pauses, |on, off| on - off),
        bands(&phases, &sums),
    )
}

fn pct(r: f64) -> String {
    format!("{:+.2}%", 100.0 * (r - 1.0))
}

fn main() {
    // `cargo bench` passes `--bench`; only our flags matter.
    let rounds = arg("--rounds", 30) as usize;
    let iters = arg("--iters", 1000);
    let high = arg("--high-hz", 9999);
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
    // Per round: CPU time off, at 99 Hz, at the high rate; samples; BPF ns per run.
    let seconds = arg("--interleave-seconds", 120) as f64;
    if seconds > 0.0 {
        let stats = |v: &[f64], show: &dyn Fn(f64) -> String| {
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            format!(
                "median {}, quartiles {} … {}, mean {} ({} on-periods)",
                show(quantile(v, 0.5)),
                show(quantile(v, 0.25)),
                show(quantile(v, 0.75)),
                show(mean),
                v.len()
            )
        };
        let (share, gaps, pauses, bands) = interleaved_stolen(&bin, seconds, 99);
        let points = |x: f64| format!("{:+.3}%", 100.0 * x);
        println!(
            "stolen from the workload's CPU, 99 Hz on vs off every 2 s for {seconds:.0} s: {}",
            stats(&share, &points)
        );
        println!(
            "  in pauses over 1 ms (host, RT throttling), on vs off: {}",
            stats(&pauses, &points)
        );
        let per_s = |x: f64| format!("{x:+.1}/s");
        println!("  gaps of 1 µs–1 ms, on vs off: {}", stats(&gaps, &per_s));
        for (b, (n, share)) in bands.iter().enumerate() {
            println!(
                "  gaps of {}–{} µs, on − off (medians): {n:+.1}/s, {:+.4}% of the CPU",
                1 << b,
                2 << b,
                100.0 * share
            );
        }
        let slow = interleaved_throughput(&bin, seconds, 99);
        println!(
            "throughput, 99 Hz on vs off every 2 s for {seconds:.0} s: slowdown {}",
            stats(&slow, &points)
        );
    }
    if rounds == 0 {
        if let Some(s) = stats_before {
            let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", s.trim());
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let (mut off, mut on99, mut onhi) = (Vec::new(), Vec::new(), Vec::new());
    let (mut r99, mut rhi) = (Vec::new(), Vec::new());
    let (mut s99, mut shi, mut per_sample_us) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bpf99, mut bpfhi) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut res = [(0.0, 0, None); 3];
        for k in 0..3 {
            let mode = (round + k) % 3;
            res[mode] = match mode {
                0 => (run(&bin, iters).0, 0, None),
                1 => {
                    let (c, _, s, b) = profiled(&bin, iters, 99);
                    (c, s, b)
                }
                _ => {
                    let (c, _, s, b) = profiled(&bin, iters, high);
                    (c, s, b)
                }
            };
        }
        let (a, b, c) = (res[0], res[1], res[2]);
        off.push(a.0);
        on99.push(b.0);
        onhi.push(c.0);
        r99.push(b.0 / a.0);
        rhi.push(c.0 / a.0);
        s99.push(b.1 as f64);
        shi.push(c.1 as f64);
        if c.1 > 0 {
            per_sample_us.push((c.0 - a.0) * 1e6 / c.1 as f64);
        }
        bpf99.extend(b.2);
        bpfhi.extend(c.2);
        eprintln!(
            "round {round}: off {:.4} s, 99 Hz {:.4} s ({}, {} samples), {high} Hz {:.4} s ({}, {} samples)",
            a.0,
            b.0,
            pct(b.0 / a.0),
            b.1,
            c.0,
            pct(c.0 / a.0),
            c.1
        );
    }
    if let Some(s) = stats_before {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", s.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let q = |v: &[f64]| {
        format!(
            "median {}, quartiles {} … {}, extremes {} … {}",
            pct(quantile(v, 0.5)),
            pct(quantile(v, 0.25)),
            pct(quantile(v, 0.75)),
            pct(quantile(v, 0.0)),
            pct(quantile(v, 1.0))
        )
    };
    let cpu_off = quantile(&off, 0.5);
    println!(
        "workload CPU time, medians of {rounds} rounds: {cpu_off:.4} s unprofiled, {:.4} s at 99 Hz, \
         {:.4} s at {high} Hz",
        quantile(&on99, 0.5),
        quantile(&onhi, 0.5)
    );
    println!("99 Hz / unprofiled, per round: {}", q(&r99));
    println!("{high} Hz / unprofiled, per round: {}", q(&rhi));
    let hz99 = quantile(&s99, 0.5) / cpu_off;
    let hzhi = quantile(&shi, 0.5) / cpu_off;
    println!(
        "samples of the workload per run (median): {:.0} at 99 Hz ({hz99:.1} per CPU second), \
         {:.0} at {high} Hz ({hzhi:.0} per CPU second)",
        quantile(&s99, 0.5),
        quantile(&shi, 0.5)
    );
    if !per_sample_us.is_empty() {
        let us = quantile(&per_sample_us, 0.5);
        println!(
            "cost of one sample to the workload (from the {high} Hz rounds): median {us:.2} µs, \
             quartiles {:.2} … {:.2} µs => at 99 Hz, were it linear in the rate: {:.3}% of the \
             workload's CPU",
            quantile(&per_sample_us, 0.25),
            quantile(&per_sample_us, 0.75),
            us * 1e-6 * hz99 * 100.0
        );
    }
    for (name, v) in [("99 Hz", &bpf99), ("high rate", &bpfhi)] {
        if v.is_empty() {
            println!(
                "BPF run time per sample ({name}): not measured (bpftool or bpf_stats unavailable)"
            );
        } else {
            let ns = quantile(v, 0.5);
            println!(
                "BPF program run time per sample ({name} rounds, every CPU): median {ns:.0} ns => \
                 {:.4}% of a CPU at 99 Hz",
                100.0 * ns * 99.0 / 1e9
            );
        }
    }
}
