//! The CPU profiler: `bpf/profiler.bpf.c`, a `perf_event` program sampling every online CPU at
//! ~99 Hz (software `CPU_CLOCK`, so it works in VMs without a PMU), loaded and attached with
//! aya, and the drain that reads the counts the kernel aggregated.
//!
//! The kernel side double-buffers: [`Profiler::drain`] flips `side[0]`, waits out samples still
//! being recorded on the old side (a perf_event program runs with preemption off and takes
//! microseconds; the wait is [`FLIP_GRACE`]), then reads and empties the old side's count and
//! stack maps while new samples land on the other side. No sample is lost or read twice across
//! drains, and stack ids stay valid until the counts naming them are read.

use std::{mem::size_of, time::Duration};

use aya::{
    Ebpf, EbpfLoader, Pod,
    maps::{Array, HashMap, MapData, PerCpuArray, StackTraceMap},
    programs::perf_event::{
        PerfEvent, PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent,
    },
    util::online_cpus,
};

/// `-EEXIST` from `bpf_get_stackid`: the stack's bucket held another stack.
const STACK_COLLISION: i32 = -17;

/// How long [`Profiler::drain`] waits after flipping sides before it reads the old side.
pub const FLIP_GRACE: Duration = Duration::from_millis(5);

/// Mirror of `struct pxt_stack_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawStackKey {
    /// Process id.
    pub tgid: u32,
    /// User stack id in the side's stack map; negative: none.
    pub user_stack_id: i32,
    /// Kernel stack id; negative: none (the sample interrupted user mode).
    pub kernel_stack_id: i32,
}
const _: () = assert!(size_of::<RawStackKey>() == 12);

// SAFETY: `RawStackKey` is `repr(C)`, made of plain integers, with no padding (12 bytes, asserted
// above): every bit pattern the kernel writes is a valid value.
#[expect(
    unsafe_code,
    reason = "aya reads map keys as plain bytes; Pod says that is sound"
)]
unsafe impl Pod for RawStackKey {}

/// `enum pxt_prof_counter`.
const C_SAMPLES: u32 = 0;
const C_IDLE: u32 = 1;
const C_COLLISIONS: u32 = 2;
const C_DROPPED: u32 = 3;

/// How to load the profiler.
#[derive(Debug, Clone)]
pub struct ProfilerConfig {
    /// Samples per second on each CPU.
    pub frequency_hz: u64,
    /// Distinct stacks (user and kernel together) each side can hold per push period. Each
    /// entry is ~1 KiB of kernel memory (127 frames), allocated up front, twice (two sides).
    pub stack_entries: u32,
    /// Distinct (process, user stack, kernel stack) counts each side can hold.
    pub count_entries: u32,
}

impl Default for ProfilerConfig {
    fn default() -> Self {
        Self {
            frequency_hz: 99,
            // NB: ~17 MiB per side. Distinct stacks per 10 s on a busy node are a few thousand;
            // a stack map drops a stack whose hash bucket is taken, so it is kept sparse.
            stack_entries: 16384,
            count_entries: 16384,
        }
    }
}

/// Why the profiler could not load.
#[derive(Debug, thiserror::Error)]
pub enum ProfilerError {
    /// The host is not fit (privileges, BTF).
    #[error(transparent)]
    Preflight(#[from] crate::PreflightError),
    /// The kernel refused the program or maps.
    #[error("loading the CPU profiler failed: {0}")]
    Load(String),
    /// No CPU could be sampled.
    #[error("attaching the CPU profiler failed: {0}")]
    Attach(String),
    /// Reading or emptying the maps failed.
    #[error("draining the CPU profiler's maps failed: {0}")]
    Drain(String),
}

/// One distinct stack of one process, and how often it was sampled since the last drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCount {
    /// Process id.
    pub tgid: u32,
    /// User-space return addresses, innermost first (empty: none, e.g. a kernel thread).
    pub user: Vec<u64>,
    /// Kernel addresses, innermost first (empty: the samples interrupted user mode).
    pub kernel: Vec<u64>,
    /// Samples.
    pub count: u64,
    /// The user stack was there but not stored: its stack-map bucket held another stack.
    pub user_lost: bool,
    /// The same for the kernel stack.
    pub kernel_lost: bool,
}

/// The kernel side's cumulative counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfilerCounters {
    /// Samples of tasks other than the idle task.
    pub samples: u64,
    /// Samples of the idle task (not kept).
    pub idle: u64,
    /// Stacks not stored because their stack-map bucket held another stack (the sample is
    /// kept, without that stack).
    pub collisions: u64,
    /// Samples not counted because the count map was full.
    pub dropped: u64,
    /// Counts whose stack could not be read back (a bug if ever non-zero).
    pub unreadable: u64,
}

/// The loaded and attached profiler.
pub struct Profiler {
    // NB: keeps the program and its perf links alive; dropping it stops sampling.
    _ebpf: Ebpf,
    side: Array<MapData, u32>,
    stacks: [StackTraceMap<MapData>; 2],
    counts: [HashMap<MapData, RawStackKey, u64>; 2],
    counters: PerCpuArray<MapData, u64>,
    active: u32,
    cpus: Vec<u32>,
    failed_cpus: Vec<String>,
    unreadable: u64,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("cpus", &self.cpus)
            .field("failed_cpus", &self.failed_cpus)
            .finish_non_exhaustive()
    }
}

static PROFILER_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler.bpf.o"));

impl Profiler {
    /// Checks the host, loads the program and attaches it to every online CPU. Fails only if
    /// no CPU could be sampled; CPUs that failed are listed by [`Profiler::failed_cpus`].
    pub fn load(config: &ProfilerConfig) -> Result<Self, ProfilerError> {
        crate::preflight()?;
        let mut loader = EbpfLoader::new();
        for name in ["stacks_0", "stacks_1"] {
            loader.map_max_entries(name, config.stack_entries);
        }
        for name in ["counts_0", "counts_1"] {
            loader.map_max_entries(name, config.count_entries);
        }
        let mut ebpf = loader
            .load(PROFILER_OBJ)
            .map_err(|e| ProfilerError::Load(crate::socket::error_chain(&e)))?;

        let prog: &mut PerfEvent = ebpf
            .program_mut("profile")
            .ok_or_else(|| ProfilerError::Load("program \"profile\" missing".into()))?
            .try_into()
            .map_err(|e| ProfilerError::Load(crate::socket::error_chain(&e)))?;
        prog.load()
            .map_err(|e| ProfilerError::Load(crate::socket::error_chain(&e)))?;
        let online = online_cpus()
            .map_err(|(what, e)| ProfilerError::Attach(format!("reading {what}: {e}")))?;
        let mut cpus = Vec::new();
        let mut failed_cpus = Vec::new();
        for cpu in online {
            let attached = prog.attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(config.frequency_hz),
                false,
            );
            match attached {
                Ok(_) => cpus.push(cpu),
                Err(e) => {
                    failed_cpus.push(format!("cpu {cpu}: {}", crate::socket::error_chain(&e)))
                }
            }
        }
        if cpus.is_empty() {
            return Err(ProfilerError::Attach(failed_cpus.join("; ")));
        }

        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| ProfilerError::Load(format!("map \"{name}\" missing")))
        };
        let load_err = |e: aya::maps::MapError| ProfilerError::Load(e.to_string());
        let side = Array::try_from(take("side")?).map_err(load_err)?;
        let stacks = [
            StackTraceMap::try_from(take("stacks_0")?).map_err(load_err)?,
            StackTraceMap::try_from(take("stacks_1")?).map_err(load_err)?,
        ];
        let counts = [
            HashMap::try_from(take("counts_0")?).map_err(load_err)?,
            HashMap::try_from(take("counts_1")?).map_err(load_err)?,
        ];
        let counters = PerCpuArray::try_from(take("counters")?).map_err(load_err)?;
        Ok(Self {
            _ebpf: ebpf,
            side,
            stacks,
            counts,
            counters,
            active: 0,
            cpus,
            failed_cpus,
            unreadable: 0,
        })
    }

    /// The CPUs being sampled.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// CPUs that could not be sampled, with why.
    pub fn failed_cpus(&self) -> &[String] {
        &self.failed_cpus
    }

    /// Every distinct (process, user stack, kernel stack) sampled since the last drain, with
    /// its count; the maps it came from are emptied. Blocks for [`FLIP_GRACE`] plus a few
    /// syscalls per stack: call it off the async executor.
    pub fn drain(&mut self) -> Result<Vec<StackCount>, ProfilerError> {
        let old = self.active as usize;
        let new = 1 - self.active;
        self.side
            .set(0, new, 0)
            .map_err(|e| ProfilerError::Drain(format!("flipping sides: {e}")))?;
        self.active = new;
        std::thread::sleep(FLIP_GRACE);

        let entries: Vec<(RawStackKey, u64)> =
            self.counts[old].iter().filter_map(Result::ok).collect();
        let stacks = &self.stacks[old];
        let read = |id: i32, unreadable: &mut u64| -> Vec<u64> {
            if id < 0 {
                return Vec::new();
            }
            match stacks.get(&(id as u32), 0) {
                Ok(s) => s.frames().iter().map(|f| f.ip).collect(),
                Err(_) => {
                    *unreadable += 1;
                    Vec::new()
                }
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, count) in &entries {
            out.push(StackCount {
                tgid: key.tgid,
                user: read(key.user_stack_id, &mut self.unreadable),
                kernel: read(key.kernel_stack_id, &mut self.unreadable),
                count: *count,
                user_lost: key.user_stack_id == STACK_COLLISION,
                kernel_lost: key.kernel_stack_id == STACK_COLLISION,
            });
        }

        // Empty the old side for its next turn.
        for (key, _) in &entries {
            let _ = self.counts[old].remove(key);
        }
        // NB: keys the iteration above missed (none are added while this side is idle, but a
        // failed read must not leave a count to be reported twice).
        let left: Vec<RawStackKey> = self.counts[old].keys().filter_map(Result::ok).collect();
        for key in &left {
            let _ = self.counts[old].remove(key);
        }
        let ids: Vec<u32> = self.stacks[old]
            .stack_ids()
            .filter_map(Result::ok)
            .collect();
        for id in &ids {
            let _ = self.stacks[old].remove(id);
        }
        Ok(out)
    }

    /// The kernel side's counters, summed over CPUs.
    pub fn counters(&self) -> ProfilerCounters {
        let sum = |i: u32| {
            self.counters
                .get(&i, 0)
                .map(|v| v.iter().copied().sum::<u64>())
                .unwrap_or(0)
        };
        ProfilerCounters {
            samples: sum(C_SAMPLES),
            idle: sum(C_IDLE),
            collisions: sum(C_COLLISIONS),
            dropped: sum(C_DROPPED),
            unreadable: self.unreadable,
        }
    }
}
