//! The CPU profiler's user-space half: drains the kernel's stack counts every push period,
//! symbolizes them with `blazesym` and appends `stack_traces` rows (one per process and
//! distinct folded stack per period, Pixie's shape).
//!
//! Symbolization, and what it costs:
//! - A stack seen before (same process, same addresses) is one hash lookup: its folded text is
//!   cached under (pid, process start, user addresses, kernel addresses).
//! - A new stack's user addresses are turned into (ELF file, file offset) by blazesym's
//!   normalizer (`/proc/PID/maps` is read once per process per drain); each frame is then
//!   looked up in a cache keyed by (the file's device and inode, file offset), so a function
//!   already named in any process costs a hash lookup. Build ids are not read: blazesym reads
//!   one per file per normalization, which tripled the cost of a new stack (~22 µs against
//!   ~7 µs here), and device and inode already tell files apart on one node. Only offsets not seen before go
//!   to blazesym's ELF symbolizer, which itself keeps each parsed file (by device and inode).
//! - Kernel addresses are named from `/proc/kallsyms` (blazesym's kernel source), cached by
//!   address.
//!
//! What shows names: native code with an ELF symbol table (`.symtab` or `.dynsym`): C, C++ and
//! Rust (demangled) and Go (its binaries keep `.symtab` unless built with `-ldflags=-s`), and
//! the vDSO. No DWARF is read, so inlined functions are attributed to their caller. What shows
//! only addresses: code without symbols (stripped binaries keep only their exported `.dynsym`
//! names), and JIT-compiled code in anonymous memory: Java (HotSpot), Node.js (V8), .NET, LuaJIT,
//! PyPy. Perf maps (`/tmp/perf-PID.map`, written by `--perf-basic-prof` and perf-map-agent) are
//! not read. Interpreted languages (CPython, Ruby, Perl, PHP) show the interpreter's own C frames
//! (`_PyEval_EvalFrameDefault`, `vm_exec`), not the script's functions. User stacks are walked by
//! the kernel through frame pointers, so code built without them (most distribution libraries,
//! `-O2` C without `-fno-omit-frame-pointer`) yields short or broken stacks below the first such
//! frame.
//!
//! A process that exits before the drain keeps its addresses unnamed (its maps are gone), as in
//! Pixie.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use blazesym::{
    Pid,
    normalize::{NormalizeOpts, Normalizer, UserMeta},
    symbolize::{
        Input, Symbolized, Symbolizer,
        source::{Elf, Kernel, Source},
    },
};
use parking_lot::Mutex;
use pxtop_probes::{Profiler, StackCount};
use pxtop_store::{
    StackTraceRow, StackTracesBuilder, Store,
    schema::{format_upid, stack_trace_id},
};

use crate::ProbeHealth;

/// The probe's name in `probe_status`.
pub const PROBE_NAME: &str = "cpu_profiler";

/// Folded stacks kept; past this many the cache starts over (a long-running node sees new
/// stacks forever: pids are reused, processes come and go).
const MAX_CACHED_STACKS: usize = 200_000;
/// Named frames kept; past this many the cache starts over.
const MAX_CACHED_FRAMES: usize = 1_000_000;

/// What identifies an ELF file across processes and mount namespaces: its device and inode
/// (of the file the mapping's `/proc/PID/map_files` link points to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ModuleKey {
    dev: u64,
    ino: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StackKey {
    tgid: u32,
    start_ticks: u64,
    user: Box<[u64]>,
    kernel: Box<[u64]>,
    lost: (bool, bool),
}

/// Where a stack the kernel could not store would be (see `pxtop_probes::StackCount`).
const USER_LOST: &str = "[user stack lost]";
const KERNEL_LOST: &str = "[kernel stack lost]_[k]";

/// Hits and misses of the symbolizer's caches since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SymbolizerStats {
    /// Stacks answered from the folded-stack cache.
    pub stack_hits: u64,
    /// Stacks symbolized frame by frame.
    pub stack_misses: u64,
    /// Frames answered from the frame caches while symbolizing new stacks.
    pub frame_hits: u64,
    /// Frames sent to blazesym.
    pub frame_misses: u64,
}

/// Turns raw stacks into folded text, with the caches described in the module doc.
pub struct StackSymbolizer {
    normalizer: Normalizer,
    symbolizer: Symbolizer,
    /// (module, file offset) → function name (or `module+0xOFFSET`).
    frames: HashMap<(ModuleKey, u64), Arc<str>>,
    /// Kernel address → `function_[k]`.
    kernel: HashMap<u64, Arc<str>>,
    stacks: HashMap<StackKey, Arc<str>>,
    /// `/proc/PID/map_files/...` → (module, file name), for the current drain only: the paths
    /// name one process's mappings, and pids are reused.
    modules: HashMap<PathBuf, (ModuleKey, Arc<str>)>,
    stats: SymbolizerStats,
}

impl std::fmt::Debug for StackSymbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSymbolizer")
            .field("stacks", &self.stacks.len())
            .field("frames", &self.frames.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for StackSymbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl StackSymbolizer {
    /// Empty caches.
    pub fn new() -> Self {
        Self {
            normalizer: drain_normalizer(),
            symbolizer: Symbolizer::builder()
                .enable_code_info(false)
                .enable_inlined_fns(false)
                .enable_demangling(true)
                .build(),
            frames: HashMap::new(),
            kernel: HashMap::new(),
            stacks: HashMap::new(),
            modules: HashMap::new(),
            stats: SymbolizerStats::default(),
        }
    }

    /// The caches' hits and misses so far.
    pub fn stats(&self) -> SymbolizerStats {
        self.stats
    }

    /// Forgets per-drain state (processes' mappings, which `/proc/PID/map_files` path is which
    /// file); the caches keyed by inode and address stay.
    pub fn end_drain(&mut self) {
        self.modules.clear();
        self.normalizer = drain_normalizer();
        if self.stacks.len() > MAX_CACHED_STACKS {
            self.stacks.clear();
        }
        if self.frames.len() + self.kernel.len() > MAX_CACHED_FRAMES {
            self.frames.clear();
            self.kernel.clear();
        }
    }

    /// The folded text of one stack of process `tgid` (started at `start_ticks`): frames root
    /// first, separated by `;`, kernel frames (above the user ones) suffixed `_[k]`. `user` and
    /// `kernel` are innermost first, as the kernel gives them.
    pub fn fold(&mut self, tgid: u32, start_ticks: u64, user: &[u64], kernel: &[u64]) -> Arc<str> {
        self.fold_sample(tgid, start_ticks, (user, false), (kernel, false))
    }

    /// [`StackSymbolizer::fold`] for a sample whose user or kernel stack the kernel could not
    /// store (the flags): a `[user stack lost]` or `[kernel stack lost]_[k]` frame stands in.
    pub fn fold_sample(
        &mut self,
        tgid: u32,
        start_ticks: u64,
        (user, user_lost): (&[u64], bool),
        (kernel, kernel_lost): (&[u64], bool),
    ) -> Arc<str> {
        let key = StackKey {
            tgid,
            start_ticks,
            user: user.into(),
            kernel: kernel.into(),
            lost: (user_lost, kernel_lost),
        };
        if let Some(s) = self.stacks.get(&key) {
            self.stats.stack_hits += 1;
            return s.clone();
        }
        self.stats.stack_misses += 1;
        let (mut user_frames, complete) = self.user_frames(tgid, user);
        let mut kernel_frames = self.kernel_frames(kernel);
        if user_lost {
            user_frames.push(USER_LOST.into());
        }
        if kernel_lost {
            kernel_frames.push(KERNEL_LOST.into());
        }
        let mut text = String::new();
        for f in user_frames.iter().rev().chain(kernel_frames.iter().rev()) {
            if !text.is_empty() {
                text.push(';');
            }
            text.push_str(f);
        }
        if text.is_empty() {
            text.push_str("[no stack]");
        }
        let text: Arc<str> = text.into();
        // NB: a stack whose process could not be read is not cached: the failure may pass
        // (and a process that is gone will not be sampled again).
        if complete {
            self.stacks.insert(key, text.clone());
        }
        text
    }

    /// Names of a process's user frames, innermost first; false if its maps could not be read.
    fn user_frames(&mut self, tgid: u32, addrs: &[u64]) -> (Vec<Arc<str>>, bool) {
        if addrs.is_empty() {
            return (Vec::new(), true);
        }
        let raw = |a: u64| -> Arc<str> { format!("0x{a:x}").into() };
        let lookup = call_sites(addrs);
        let opts = NormalizeOpts {
            sorted_addrs: false,
            map_files: true,
            ..NormalizeOpts::default()
        };
        let Self {
            normalizer,
            symbolizer,
            frames,
            modules,
            stats,
            ..
        } = self;
        let Ok(normalized) = normalizer.normalize_user_addrs_opts(Pid::from(tgid), &lookup, &opts)
        else {
            return (addrs.iter().map(|a| raw(*a)).collect(), false);
        };
        let mut out: Vec<Option<Arc<str>>> = vec![None; addrs.len()];
        // Misses, per file: (index in `out`, file offset).
        let mut misses: HashMap<&Path, Vec<(usize, u64)>> = HashMap::new();
        for (i, (off, meta)) in normalized.outputs.iter().enumerate() {
            match normalized.meta.get(*meta) {
                Some(UserMeta::Elf(elf)) => {
                    let (module, _) = module(modules, &elf.path);
                    if let Some(name) = frames.get(&(module, *off)) {
                        stats.frame_hits += 1;
                        out[i] = Some(name.clone());
                    } else {
                        misses.entry(&elf.path).or_default().push((i, *off));
                    }
                }
                Some(UserMeta::Sym(sym)) => out[i] = Some(sym.name.as_ref().into()),
                _ => {}
            }
        }
        for (path, wanted) in misses {
            let (module, file) = module(modules, path);
            let offsets: Vec<u64> = wanted.iter().map(|(_, off)| *off).collect();
            stats.frame_misses += offsets.len() as u64;
            let mut src = Elf::new(path);
            src.debug_syms = false;
            let names = symbolizer
                .symbolize(&Source::Elf(src), Input::FileOffset(&offsets))
                .unwrap_or_default();
            for (k, (i, off)) in wanted.into_iter().enumerate() {
                let name: Arc<str> = match names.get(k) {
                    Some(Symbolized::Sym(sym)) => sym.name.as_ref().into(),
                    _ => format!("{file}+0x{off:x}").into(),
                };
                frames.insert((module, off), name.clone());
                out[i] = Some(name);
            }
        }
        let frames = out
            .into_iter()
            .zip(addrs)
            .map(|(name, a)| name.unwrap_or_else(|| raw(*a)))
            .collect();
        (frames, true)
    }

    /// Names of kernel frames, innermost first, each suffixed `_[k]`.
    fn kernel_frames(&mut self, addrs: &[u64]) -> Vec<Arc<str>> {
        let lookup = call_sites(addrs);
        let missing: Vec<u64> = lookup
            .iter()
            .copied()
            .filter(|a| !self.kernel.contains_key(a))
            .collect();
        self.stats.frame_hits += (lookup.len() - missing.len()) as u64;
        if !missing.is_empty() {
            self.stats.frame_misses += missing.len() as u64;
            let src = Source::Kernel(Kernel {
                // NB: kallsyms only: without DWARF a vmlinux adds nothing, and looking for one
                // searches several directories.
                vmlinux: blazesym::MaybeDefault::None,
                ..Kernel::default()
            });
            let names = self
                .symbolizer
                .symbolize(&src, Input::AbsAddr(&missing))
                .unwrap_or_default();
            for (k, a) in missing.iter().enumerate() {
                let name: Arc<str> = match names.get(k) {
                    Some(Symbolized::Sym(sym)) => format!("{}_[k]", sym.name).into(),
                    _ => format!("0x{a:x}_[k]").into(),
                };
                self.kernel.insert(*a, name);
            }
        }
        lookup
            .iter()
            .map(|a| {
                self.kernel
                    .get(a)
                    .cloned()
                    .unwrap_or_else(|| format!("0x{a:x}_[k]").into())
            })
            .collect()
    }
}

/// A normalizer for one drain: it reads each process's `/proc/PID/maps` once and keeps it until
/// the drain ends; a new one starts from scratch, so mappings
/// that changed since are seen.
fn drain_normalizer() -> Normalizer {
    Normalizer::builder()
        .enable_vma_caching(true)
        .enable_build_ids(false)
        .build()
}

/// The identity and file name of the ELF file at `path` (a `/proc/PID/map_files` link),
/// remembered in `modules` for the rest of the drain.
fn module(
    modules: &mut HashMap<PathBuf, (ModuleKey, Arc<str>)>,
    path: &Path,
) -> (ModuleKey, Arc<str>) {
    if let Some(m) = modules.get(path) {
        return m.clone();
    }
    let key = std::fs::metadata(path).map_or(ModuleKey { dev: 0, ino: 0 }, |m| ModuleKey {
        dev: m.dev(),
        ino: m.ino(),
    });
    let file: Arc<str> = std::fs::read_link(path)
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "[unknown]".to_string())
        .into();
    modules.insert(path.to_path_buf(), (key, file.clone()));
    (key, file)
}

/// The addresses to name: the innermost is where the CPU was; the others are return
/// addresses, which point after their call and may be past the end of the calling function
/// (a call to a `noreturn` function ends it), so the byte before is looked up instead.
fn call_sites(addrs: &[u64]) -> Vec<u64> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| if i == 0 { *a } else { a.saturating_sub(1) })
        .collect()
}

/// Process start times (clock ticks since boot, `/proc/PID/stat` field 22) by pid, read once
/// per drain; 0 for a process that is gone.
fn start_ticks(tgid: u32, cache: &mut HashMap<u32, u64>) -> u64 {
    *cache.entry(tgid).or_insert_with(|| {
        procfs::process::Process::new(tgid as i32)
            .and_then(|p| p.stat())
            .map_or(0, |s| s.starttime)
    })
}

/// One drain's stacks as `stack_traces` rows stamped `time_ns`: folded, and summed per
/// (process, folded text), since different addresses in the same functions fold alike.
pub fn rows(
    sym: &mut StackSymbolizer,
    asid: u32,
    time_ns: i64,
    stacks: &[StackCount],
) -> Vec<StackTraceRow> {
    let mut starts = HashMap::new();
    let mut sums: HashMap<(u32, u64, Arc<str>), i64> = HashMap::new();
    for s in stacks {
        let start = start_ticks(s.tgid, &mut starts);
        let text = sym.fold_sample(
            s.tgid,
            start,
            (&s.user, s.user_lost),
            (&s.kernel, s.kernel_lost),
        );
        *sums.entry((s.tgid, start, text)).or_default() += s.count as i64;
    }
    sym.end_drain();
    let mut rows: Vec<StackTraceRow> = sums
        .into_iter()
        .map(|((tgid, start, text), count)| StackTraceRow {
            time_ns,
            upid: format_upid(asid, tgid, start),
            stack_trace_id: stack_trace_id(&text),
            stack_trace: text.to_string(),
            count,
        })
        .collect();
    rows.sort_by(|a, b| (&a.upid, &a.stack_trace).cmp(&(&b.upid, &b.stack_trace)));
    rows
}

fn append(store: &Store, rows: &[StackTraceRow]) {
    if rows.is_empty() {
        return;
    }
    let mut b = StackTracesBuilder::with_capacity(rows.len());
    for r in rows {
        b.append(r);
    }
    if let Err(e) = store.append("stack_traces", b.finish()) {
        tracing::error!(error = %e, "appending stack_traces failed");
    }
}

/// The profiler's thread: drains into `stack_traces` every push period until its stop sender
/// is used or dropped (then once more, so the last period's samples are kept).
#[derive(Debug)]
pub(crate) struct ProfilerThread {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ProfilerThread {
    /// Starts draining `profiler` every `every`, keeping its `probe_status` counters in
    /// `health`. NB: a thread of its own, not a task: blazesym's symbolizer is not `Send`, and
    /// draining and symbolizing make syscalls and read files.
    pub(crate) fn start(
        profiler: Profiler,
        every: Duration,
        asid: u32,
        store: Arc<Store>,
        health: Arc<Mutex<Vec<ProbeHealth>>>,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pxtop-profiler".to_string())
            .spawn(move || drain_loop(profiler, every, asid, &store, &health, &stopped))?;
        Ok(Self { stop, thread })
    }

    /// Drains once more and waits for the thread to end.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let thread = self.thread;
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_or(true, |r| r.is_err())
        {
            tracing::warn!("the CPU profiler thread ended abnormally");
        }
    }
}

fn drain_loop(
    mut profiler: Profiler,
    every: Duration,
    asid: u32,
    store: &Store,
    health: &Mutex<Vec<ProbeHealth>>,
    stopped: &std::sync::mpsc::Receiver<()>,
) {
    let mut sym = StackSymbolizer::new();
    let mut next = std::time::Instant::now() + every;
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        let stopping = !matches!(
            stopped.recv_timeout(wait),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        next += every;
        let drained = profiler.drain();
        if let Ok(stacks) = &drained {
            append(store, &rows(&mut sym, asid, crate::wall_clock_ns(), stacks));
        }
        let c = profiler.counters();
        if let Some(p) = health.lock().iter_mut().find(|p| p.name == PROBE_NAME) {
            p.events = c.samples;
            p.lost = c.collisions + c.dropped + c.unreadable;
            if let Err(e) = &drained {
                tracing::warn!(error = %e, "CPU profiler drain failed");
                p.error = Some(e.to_string());
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn here() -> u64 {
        here as *const () as u64
    }

    #[test]
    fn a_function_of_this_process_is_named_and_the_stack_cached() {
        let mut sym = StackSymbolizer::new();
        let me = std::process::id();
        let addr = here();
        // As the kernel gives it: innermost first; a return address one past a call in `here`.
        let text = sym.fold(me, 1, &[addr, addr + 2], &[]);
        assert!(text.contains("here"), "{text}");
        assert_eq!(text.split(';').count(), 2, "{text}");
        assert_eq!(sym.stats().stack_misses, 1);
        assert_eq!(sym.fold(me, 1, &[addr, addr + 2], &[]), text);
        assert_eq!(sym.stats().stack_hits, 1);
        // The same function in another stack: its frames come from the frame cache.
        let before = sym.stats();
        sym.fold(me, 1, &[addr + 1], &[]);
        assert_eq!(
            sym.stats().frame_misses,
            before.frame_misses,
            "{:?}",
            sym.stats()
        );
    }

    #[test]
    fn unknown_addresses_show_as_hex_and_kernel_frames_as_k() {
        let mut sym = StackSymbolizer::new();
        // Nothing is mapped at page 1 of any process.
        let text = sym.fold(std::process::id(), 1, &[0x1234], &[]);
        assert_eq!(&*text, "0x1234");
        assert_eq!(&*sym.fold(1, 1, &[], &[]), "[no stack]");
        // A kernel address with no symbol still says it is the kernel's.
        let text = sym.fold(1, 1, &[], &[0x10]);
        assert!(text.ends_with("_[k]"), "{text}");
        // A stack the kernel could not store says so where it would be.
        let text = sym.fold_sample(1, 1, (&[], true), (&[0x10], false));
        assert_eq!(&*text, "[user stack lost];0x10_[k]");
    }
}
