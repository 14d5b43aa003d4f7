//! The CPU profiler for real: a C program built by the test spends a known share of its CPU
//! time in `hot()` and the rest in `cold()`; its flame graph must show that share. Also the
//! PEM's wiring: `stack_traces` rows and the profiler's `probe_status`, and a profiler that
//! cannot attach leaving the PEM running with the reason. Needs root and clang-19 (as the probes'
//! build does): skipped with a reason outside CI, a failure in CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use arrow::{array::AsArray, compute::concat_batches, datatypes::Int64Type};
use pxtop_metadata::LocalMetadata;
use pxtop_pem::{
    PemConfig,
    profiler::{StackSymbolizer, rows},
};
use pxtop_probes::{Profiler, ProfilerConfig};
use pxtop_store::{Store, StoreConfig, TimeRange, schema::parse_upid};

/// The workload: `hot()` runs three times as long as `cold()` per round (by iteration count,
/// and measured: each call is timed with the thread's CPU clock). It works until it has used
/// `argv[1]` CPU seconds, prints `hot_seconds cold_seconds total_seconds`, then waits for its
/// stdin to close, so its maps are still there when the test symbolizes its stacks.
const HOT_COLD_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void hot(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i * i;
}

__attribute__((noinline)) void cold(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i * i;
}

int main(int argc, char **argv) {
    double budget = argc > 1 ? atof(argv[1]) : 3.0;
    unsigned long n = argc > 2 ? strtoul(argv[2], 0, 10) : 200000;
    double t_hot = 0, t_cold = 0, start = cpu_now();
    while (cpu_now() - start < budget) {
        double a = cpu_now();
        hot(3 * n);
        double b = cpu_now();
        cold(n);
        double c = cpu_now();
        t_hot += b - a;
        t_cold += c - b;
    }
    printf("%f %f %f\n", t_hot, t_cold, cpu_now() - start);
    fflush(stdout);
    char buf[16];
    while (fread(buf, 1, sizeof buf, stdin) > 0) {}
    return 0;
}
"#;

/// The tolerance on the hot share, in percentage points. Sampling error: with n samples the
/// share's standard deviation is sqrt(p(1-p)/n) (2.2 points at p = 0.75 and n = 400, the ~4 s
/// of CPU this runs at 99 Hz; 3.1 points at 200 samples, the fewest the test accepts). Bias:
/// samples in `main` and `clock_gettime` between the calls belong to neither function (~1%).
/// 10 points is over 3 standard deviations above both.
const TOLERANCE_PP: f64 = 10.0;

fn compiler() -> String {
    std::env::var("CLANG").unwrap_or_else(|_| "clang-19".to_string())
}

fn may_run() -> bool {
    let fail = |why: String| {
        if std::env::var_os("CI").is_some() {
            panic!("CI must run the eBPF tests: {why}");
        }
        eprintln!("skipped: {why}");
        false
    };
    if let Err(e) = pxtop_probes::preflight() {
        return fail(e.to_string());
    }
    if Command::new(compiler()).arg("--version").output().is_err() {
        return fail(format!(
            "no {}: run tools/setup-debian.sh (Debian package clang-19) or set CLANG",
            compiler()
        ));
    }
    true
}

/// Builds the workload with frame pointers (the kernel walks user stacks through them) and
/// symbols, into a fresh directory, with clang-19 (already needed for the probes; `CLANG`
/// overrides it as in `probes/build.rs`). NB: `-mno-omit-leaf-frame-pointer` too, and not gcc:
/// gcc 12 gives leaf functions such as `hot()` no frame of their own even with
/// `-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer`, and a frame-pointer walk from inside
/// such a function skips its caller (`main`).
fn build_workload() -> PathBuf {
    // One directory per call: the tests run in parallel threads of one process, and each
    // removes its own when done.
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pxtop-profiler-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("hot_cold.c");
    std::fs::write(&src, HOT_COLD_C).unwrap();
    let bin = dir.join("hot_cold");
    let out = Command::new(compiler())
        .args([
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-mno-omit-leaf-frame-pointer",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        compiler(),
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

struct Workload {
    child: Child,
    /// (hot, cold, total) CPU seconds as the program measured them.
    measured: (f64, f64, f64),
}

impl Workload {
    /// Runs it for `cpu_seconds` of CPU and waits for its report; it stays alive until dropped.
    fn run(bin: &Path, cpu_seconds: f64) -> Self {
        let mut child = Command::new(bin)
            .arg(cpu_seconds.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(v.len(), 3, "the workload printed {line:?}");
        Self {
            child,
            measured: (v[0], v[1], v[2]),
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn flame_graph_shows_the_hot_functions_real_share() {
    if !may_run() {
        return;
    }
    let bin = build_workload();
    let mut prof = Profiler::load(&ProfilerConfig::default()).expect("load the profiler");
    // Samples from before the workload are not its.
    prof.drain().unwrap();
    let work = Workload::run(&bin, 4.0);
    let stacks = prof.drain().unwrap();
    let mut sym = StackSymbolizer::new();
    let rows = rows(&mut sym, 1, 0, &stacks);
    let pid = work.child.id();
    let mine: Vec<_> = rows
        .iter()
        .filter(|r| parse_upid(&r.upid).map(|u| u.1) == Some(pid))
        .collect();
    let total: i64 = mine.iter().map(|r| r.count).sum();
    let frames = |r: &&pxtop_store::StackTraceRow| {
        r.stack_trace
            .split(';')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let share = |f: &str| {
        mine.iter()
            .filter(|r| frames(r).iter().any(|x| x == f))
            .map(|r| r.count)
            .sum::<i64>() as f64
            / total.max(1) as f64
    };
    let (t_hot, t_cold, t_total) = work.measured;
    let expected = t_hot / t_total;
    let got = share("hot");
    let mut report: Vec<String> = mine
        .iter()
        .map(|r| format!("{} {}", r.stack_trace, r.count))
        .collect();
    report.sort();
    eprintln!(
        "hot_cold: measured hot {t_hot:.3} s, cold {t_cold:.3} s of {t_total:.3} s CPU \
         (hot {:.1}%); sampled {total} times, hot {:.1}%, cold {:.1}%\n{}",
        100.0 * expected,
        100.0 * got,
        100.0 * share("cold"),
        report.join("\n")
    );
    assert!(
        total >= 200,
        "{total} samples of a process that used {t_total:.1} s of CPU at 99 Hz"
    );
    assert!(
        (100.0 * (got - expected)).abs() <= TOLERANCE_PP,
        "hot() took {:.1}% of the samples, but {:.1}% of the CPU time",
        100.0 * got,
        100.0 * expected
    );
    assert!(
        (100.0 * (share("cold") - t_cold / t_total)).abs() <= TOLERANCE_PP,
        "cold() took {:.1}% of the samples, but {:.1}% of the CPU time",
        100.0 * share("cold"),
        100.0 * t_cold / t_total
    );
    // Stacks through hot() or cold() have main() below it, root first. A frame-pointer walk
    // from a sample taken on the first instruction of hot() (before `push rbp`) or after its
    // `pop rbp` reads main's frame as hot's and so skips main: a few such samples are the
    // method's known limit, not an error. More than 2% of the samples would be.
    let mut without_main = 0;
    for r in &mine {
        let f = frames(r);
        for func in ["hot", "cold"] {
            if let Some(at) = f.iter().position(|x| x == func) {
                let main = f.iter().position(|x| x == "main");
                if main.is_none_or(|m| m >= at) {
                    without_main += r.count;
                }
            }
        }
    }
    assert!(
        without_main as f64 <= 0.02 * total as f64,
        "{without_main} of {total} samples in hot() or cold() have no main() below them"
    );
    // The same stacks again (the next drain of a steady workload): the workload's come from
    // the folded-stack cache, and no frame is symbolized again.
    let before = sym.stats();
    let again = pxtop_pem::profiler::rows(&mut sym, 1, 0, &stacks);
    let after = sym.stats();
    let of_workload = |rs: &[pxtop_store::StackTraceRow]| -> Vec<pxtop_store::StackTraceRow> {
        rs.iter()
            .filter(|r| parse_upid(&r.upid).map(|u| u.1) == Some(pid))
            .cloned()
            .collect()
    };
    assert_eq!(of_workload(&again), of_workload(&rows));
    assert_eq!(
        after.frame_misses, before.frame_misses,
        "{before:?} → {after:?}"
    );
    let workload_stacks = stacks.iter().filter(|s| s.tgid == pid).count() as u64;
    assert!(
        after.stack_hits - before.stack_hits >= workload_stacks,
        "{before:?} → {after:?}, {workload_stacks} stacks of the workload"
    );
    drop(work);
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
}

fn stack_rows(store: &Store) -> Vec<(String, String, i64)> {
    let snap = store.scan("stack_traces", TimeRange::ALL).unwrap();
    let b = concat_batches(&snap.schema, &snap.batches).unwrap();
    let upid = b.column_by_name("upid").unwrap().as_string::<i32>();
    let stack = b.column_by_name("stack_trace").unwrap().as_string::<i32>();
    let count = b
        .column_by_name("count")
        .unwrap()
        .as_primitive::<Int64Type>();
    (0..b.num_rows())
        .map(|i| {
            (
                upid.value(i).to_string(),
                stack.value(i).to_string(),
                count.value(i),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pem_writes_stack_traces_and_reports_the_profiler() {
    if !may_run() {
        return;
    }
    let bin = build_workload();
    let store = Arc::new(Store::new(StoreConfig::default()));
    let pem = pxtop_pem::start(
        PemConfig {
            profiler_push_interval: Some(Duration::from_millis(500)),
            tls_scan_interval: None,
            process_stats_interval: None,
            ..PemConfig::default()
        },
        store.clone(),
        LocalMetadata::new(),
    )
    .await
    .expect("start the PEM");
    let p = pem
        .health()
        .into_iter()
        .find(|p| p.name == "cpu_profiler")
        .expect("the profiler is in the PEM's health");
    assert!(p.attached && p.error.is_none(), "{p:?}");
    let dir = bin.parent().unwrap().to_path_buf();
    let work = tokio::task::spawn_blocking(move || Workload::run(&bin, 1.0))
        .await
        .unwrap();
    let pid = work.child.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, after_comm) = stat.rsplit_once(')').unwrap();
    // Field 22 of proc_pid_stat(5), counted from 1 at pid: starttime.
    let start_ticks: u64 = after_comm
        .split_whitespace()
        .nth(22 - 3)
        .unwrap()
        .parse()
        .unwrap();
    // Shutdown drains once more, while the workload is still alive.
    let health = pem.health_reader();
    pem.shutdown().await;
    drop(work);
    let _ = std::fs::remove_dir_all(&dir);
    let rows = stack_rows(&store);
    let mine: Vec<_> = rows
        .iter()
        .filter(|(u, _, _)| parse_upid(u).map(|u| u.1) == Some(pid))
        .collect();
    assert!(
        mine.iter()
            .any(|(_, s, _)| s.split(';').any(|f| f == "hot")),
        "no stack of the workload shows hot(): {mine:?}"
    );
    // The upid carries the process's real start time, so rows join with other tables.
    assert!(
        mine.iter()
            .all(|(u, _, _)| parse_upid(u).unwrap().2 == start_ticks)
    );
    let p = health
        .get()
        .into_iter()
        .find(|p| p.name == "cpu_profiler")
        .unwrap();
    let sampled: i64 = rows.iter().map(|r| r.2).sum();
    assert!(
        p.events >= sampled as u64,
        "{p:?} vs {sampled} samples in rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiler_that_cannot_attach_leaves_the_pem_running_and_says_why() {
    if !may_run() {
        return;
    }
    let store = Arc::new(Store::new(StoreConfig::default()));
    // Far above kernel.perf_event_max_sample_rate: perf_event_open refuses it.
    let pem = pxtop_pem::start(
        PemConfig {
            profiler_frequency_hz: 1 << 40,
            tls_scan_interval: None,
            process_stats_interval: None,
            ..PemConfig::default()
        },
        store.clone(),
        LocalMetadata::new(),
    )
    .await
    .expect("the PEM starts without its profiler");
    let health = pem.health();
    let p = health.iter().find(|p| p.name == "cpu_profiler").unwrap();
    assert!(!p.attached, "{p:?}");
    let error = p.error.clone().unwrap_or_default();
    assert!(error.contains("perf_event_open"), "{error}");
    assert!(
        health
            .iter()
            .any(|p| p.name == "socket_tracer" && p.attached),
        "{health:?}"
    );
    // probe_status carries the reason.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pem.shutdown().await;
    let snap = store.scan("probe_status", TimeRange::ALL).unwrap();
    let b = concat_batches(&snap.schema, &snap.batches).unwrap();
    let probe = b.column_by_name("probe").unwrap().as_string::<i32>();
    let err = b.column_by_name("error").unwrap().as_string::<i32>();
    assert!(
        (0..b.num_rows())
            .any(|i| probe.value(i) == "cpu_profiler" && err.value(i).contains("perf_event_open")),
        "no probe_status row says why the profiler is off"
    );
}
