//! Loads the real CPU profiler into this kernel, keeps a thread of this process busy, and checks
//! what the drains report. Needs root: skipped with a reason outside CI, a failure in CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use pxtop_probes::{Profiler, ProfilerConfig};

fn may_run() -> bool {
    match pxtop_probes::preflight() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            false
        }
        Err(e) => panic!("CI must run the eBPF tests: {e}"),
    }
}

#[inline(never)]
fn spin(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    x
}

/// Executable mappings of this process's own binary, from `/proc/self/maps`.
fn own_text() -> Vec<(u64, u64)> {
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let exe = exe.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(&exe) && l.split_whitespace().nth(1).unwrap().contains('x'))
        .map(|l| {
            let (a, b) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            )
        })
        .collect()
}

#[test]
fn samples_a_busy_thread_and_drains_every_sample_once() {
    if !may_run() {
        return;
    }
    let mut prof = Profiler::load(&ProfilerConfig::default()).expect("load the profiler");
    assert!(prof.failed_cpus().is_empty(), "{:?}", prof.failed_cpus());
    assert!(!prof.cpus().is_empty());

    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || spin(&stop))
    };
    let me = std::process::id();
    let text = own_text();
    let mut drained = 0u64;
    let mut mine = 0u64;
    let mut mine_in_own_text = 0u64;
    let t0 = Instant::now();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        let before = prof.counters();
        let stacks = prof.drain().expect("drain");
        let after = prof.counters();
        drained += stacks.iter().map(|s| s.count).sum::<u64>();
        // Everything sampled before the flip was drained by now, and nothing sampled after
        // this drain returned was: no sample lost, none counted twice.
        assert!(
            before.samples <= drained + after.dropped,
            "{before:?}: {drained} drained"
        );
        assert!(drained <= after.samples, "{after:?}: {drained} drained");
        for s in stacks.iter().filter(|s| s.tgid == me) {
            mine += s.count;
            assert!(
                !s.user.is_empty() || !s.kernel.is_empty(),
                "a sample of this process with no stack at all: {s:?}"
            );
            if s.user
                .first()
                .is_some_and(|ip| text.iter().any(|(a, b)| (a..b).contains(&ip)))
            {
                mine_in_own_text += s.count;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    black_box(busy.join().unwrap());
    let c = prof.counters();
    eprintln!(
        "{mine} samples of this process ({mine_in_own_text} in its own code) over {:?}; {c:?}",
        t0.elapsed()
    );
    assert!(mine > 0, "this busy process was never sampled");
    assert!(
        mine_in_own_text * 2 > mine,
        "most samples of a thread spinning in its own code have their innermost user frame in \
         the binary: {mine_in_own_text} of {mine}"
    );
    assert_eq!(c.unreadable, 0);
}
