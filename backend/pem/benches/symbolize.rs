//! Symbolization cost per stack: a stack seen before (the folded-stack cache), a new stack
//! whose frames are all known (normalization plus frame-cache lookups; the first of its process
//! in a drain also reads the process's maps), and a new stack of frames never seen (blazesym's
//! ELF lookups, the file already parsed). Stacks are 8 user
//! frames of this process (its own code and libc) and 5 kernel frames from `/proc/kallsyms`
//! (named only as root; otherwise they show as addresses, which costs the same path).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{hint::black_box, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pxtop_pem::profiler::StackSymbolizer;

/// Executable mappings of this binary: (start, end).
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

fn kernel_stack() -> Vec<u64> {
    let wanted = [
        "vfs_write",
        "ksys_write",
        "__x64_sys_write",
        "do_syscall_64",
        "entry_SYSCALL_64_after_hwframe",
    ];
    let syms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let mut out = Vec::new();
    for w in wanted {
        let addr = syms
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(w))
            .and_then(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
            .unwrap_or(0);
        out.push(addr.max(0xffff_ffff_8100_0000) + 0x10);
    }
    out
}

fn bench(c: &mut Criterion) {
    let me = std::process::id();
    let text = own_text();
    let (lo, hi) = text.iter().copied().max_by_key(|(a, b)| b - a).unwrap();
    let user: Vec<u64> = vec![
        bench as *const () as u64 + 4,
        own_text as *const () as u64 + 4,
        kernel_stack as *const () as u64 + 4,
        libc::getpid as *const () as u64 + 4,
        libc::write as *const () as u64 + 4,
        lo + 0x100,
        lo + (hi - lo) / 2,
        hi - 0x100,
    ];
    let kernel = kernel_stack();
    let mut g = c.benchmark_group("symbolize");

    let mut sym = StackSymbolizer::new();
    black_box(sym.fold(me, 1, &user, &kernel));
    g.bench_function("cached_stack", |b| {
        b.iter(|| black_box(sym.fold(me, 1, &user, &kernel)))
    });

    // A new stack key each time (another start time) over frames already named: the first
    // stack of its process in a drain (its maps are read), then the next ones.
    let mut start = 1_000_000_000u64;
    g.bench_function("new_stack_known_frames_first_of_process_in_drain", |b| {
        b.iter(|| {
            start += 1;
            sym.end_drain();
            black_box(sym.fold(me, start, &user, &kernel))
        })
    });
    let mut start = 2u64;
    g.bench_function("new_stack_known_frames", |b| {
        b.iter(|| {
            start += 1;
            black_box(sym.fold(me, start, &user, &kernel))
        })
    });

    // Frames never named before: addresses stepping through this binary's code, 8 per stack;
    // when they run out, a fresh symbolizer (its first, file-parsing stack untimed).
    let stride = 64u64;
    let per_stack = 8u64;
    g.bench_function("new_stack_new_frames", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut sym = StackSymbolizer::new();
            black_box(sym.fold(me, 1, &user, &[]));
            let mut next = lo;
            for i in 0..iters {
                if next + per_stack * stride >= hi {
                    sym = StackSymbolizer::new();
                    black_box(sym.fold(me, 1, &user, &[]));
                    next = lo;
                }
                let stack: Vec<u64> = (0..per_stack).map(|k| next + k * stride).collect();
                next += per_stack * stride;
                let t0 = Instant::now();
                black_box(sym.fold(me, 10 + i, &stack, &[]));
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
    eprintln!("caches after the runs: {sym:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
