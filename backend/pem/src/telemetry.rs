//! System telemetry sampled from `/proc`: `process_stats` (per process, from
//! `/proc/PID/{stat,io}`) and `network_stats` (per network namespace, from `/proc/PID/net/dev`
//! of one process in it), in one walk over the processes.

use std::{collections::HashSet, os::unix::fs::MetadataExt, time::Duration};

use procfs::process::Process;
use pxtop_store::{
    NetworkStatsBuilder, NetworkStatsRow, ProcessStatsBuilder, ProcessStatsRow, Store,
    schema::format_upid,
};
use tokio::sync::watch;

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags: kernel threads have no memory or I/O of their own.
const PF_KTHREAD: u32 = 0x0020_0000;

/// Reads `/proc` into `process_stats` and `network_stats` rows.
#[derive(Debug, Clone)]
pub struct ProcSampler {
    asid: u32,
    ns_per_tick: i64,
    page_bytes: i64,
}

/// One walk's rows.
#[derive(Debug, Default)]
pub struct Sample {
    /// One per user-space process that could be read.
    pub processes: Vec<ProcessStatsRow>,
    /// One per network namespace.
    pub networks: Vec<NetworkStatsRow>,
    /// Processes skipped: gone mid-read, or not readable.
    pub skipped: usize,
}

impl ProcSampler {
    /// A sampler for this node (`asid`), with the kernel's clock tick rate and page size.
    pub fn new(asid: u32) -> Self {
        let ticks = procfs::ticks_per_second().max(1);
        Self {
            asid,
            ns_per_tick: (1_000_000_000 / ticks) as i64,
            page_bytes: procfs::page_size() as i64,
        }
    }

    /// One process's row; `None` when it is gone or a kernel thread, or its `stat` is not
    /// readable. Its I/O columns are 0 when `/proc/PID/io` is not readable.
    pub fn process(&self, proc: &Process, time_ns: i64) -> Option<ProcessStatsRow> {
        let stat = proc.stat().ok()?;
        if stat.flags & PF_KTHREAD != 0 {
            return None;
        }
        let io = proc.io().ok();
        let io = |f: fn(&procfs::process::Io) -> u64| io.as_ref().map_or(0, |i| f(i) as i64);
        Some(ProcessStatsRow {
            time_ns,
            // NB: `starttime` is in USER_HZ ticks since boot, as the kernel's open events give
            // it (`pem::ingest`), so rows join with the capture tables on upid.
            upid: format_upid(self.asid, stat.pid as u32, stat.starttime),
            major_faults: stat.majflt as i64,
            minor_faults: stat.minflt as i64,
            cpu_utime_ns: stat.utime as i64 * self.ns_per_tick,
            cpu_ktime_ns: stat.stime as i64 * self.ns_per_tick,
            num_threads: stat.num_threads,
            vsize_bytes: stat.vsize as i64,
            rss_bytes: stat.rss as i64 * self.page_bytes,
            rchar_bytes: io(|i| i.rchar),
            wchar_bytes: io(|i| i.wchar),
            read_bytes: io(|i| i.read_bytes),
            write_bytes: io(|i| i.write_bytes),
        })
    }

    /// Every process now, and each network namespace's counters, stamped `time_ns`.
    pub fn sample(&self, time_ns: i64) -> Sample {
        let mut out = Sample::default();
        let Ok(all) = procfs::process::all_processes() else {
            tracing::warn!("/proc is not readable; process_stats and network_stats stay empty");
            return out;
        };
        let mut seen_netns = HashSet::new();
        for proc in all {
            let Ok(proc) = proc else {
                out.skipped += 1;
                continue;
            };
            let Some(row) = self.process(&proc, time_ns) else {
                out.skipped += 1;
                continue;
            };
            out.processes.push(row);
            let Some(ino) = netns_inode(proc.pid()) else {
                continue;
            };
            if seen_netns.contains(&ino) {
                continue;
            }
            // NB: the namespace counts as seen only once its counters were read, so a process
            // that vanishes before its net/dev is read leaves the namespace to the next one.
            if let Some(row) = network(&proc, ino, time_ns) {
                seen_netns.insert(ino);
                out.networks.push(row);
            }
        }
        out
    }
}

/// The inode of `pid`'s network namespace (`/proc/PID/ns/net`), if it is still there.
pub fn netns_inode(pid: i32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// The counters of the network namespace `proc` is in (inode `ino`), summed over its interfaces
/// but `lo`.
fn network(proc: &Process, ino: u64, time_ns: i64) -> Option<NetworkStatsRow> {
    let devs = proc.dev_status().ok()?;
    let mut row = NetworkStatsRow {
        time_ns,
        pod_id: ino.to_string(),
        ..NetworkStatsRow::default()
    };
    for d in devs.values().filter(|d| d.name != "lo") {
        row.rx_bytes += d.recv_bytes as i64;
        row.rx_packets += d.recv_packets as i64;
        row.rx_errors += d.recv_errs as i64;
        row.rx_drops += d.recv_drop as i64;
        row.tx_bytes += d.sent_bytes as i64;
        row.tx_packets += d.sent_packets as i64;
        row.tx_errors += d.sent_errs as i64;
        row.tx_drops += d.sent_drop as i64;
    }
    Some(row)
}

/// Samples `/proc` into the store every `every` (the first at once) until `stop` says so.
/// NB: off the capture loop, on a blocking thread: a walk reads three files per process.
pub(crate) async fn run(
    every: Duration,
    asid: u32,
    store: std::sync::Arc<Store>,
    mut stop: watch::Receiver<bool>,
) {
    let sampler = ProcSampler::new(asid);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let s = sampler.clone();
        let Ok(sample) =
            tokio::task::spawn_blocking(move || s.sample(crate::wall_clock_ns())).await
        else {
            return;
        };
        append(&store, &sample);
    }
}

/// Appends a sample's rows to their tables.
pub fn append(store: &Store, sample: &Sample) {
    if !sample.processes.is_empty() {
        let mut b = ProcessStatsBuilder::with_capacity(sample.processes.len());
        for r in &sample.processes {
            b.append(r);
        }
        if let Err(e) = store.append("process_stats", b.finish()) {
            tracing::error!(error = %e, "appending process_stats failed");
        }
    }
    if !sample.networks.is_empty() {
        let mut b = NetworkStatsBuilder::with_capacity(sample.networks.len());
        for r in &sample.networks {
            b.append(r);
        }
        if let Err(e) = store.append("network_stats", b.finish()) {
            tracing::error!(error = %e, "appending network_stats failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        hint::black_box,
        process::{Child, Command},
        time::Instant,
    };

    use super::*;

    /// Memory the busy child holds, touched.
    const BUSY_BYTES: usize = 64 << 20;
    /// Spinning threads in the busy child besides its main thread.
    const BUSY_THREADS: usize = 2;

    /// The busy child the sampling test watches: a Python process that holds [`BUSY_BYTES`]
    /// (touched) and spins on [`BUSY_THREADS`] threads besides its main one until killed.
    const BUSY_CHILD: &str = "import sys, threading\n\
mem = b'\\x01' * int(sys.argv[1])\n\
def spin():\n    x = 0\n    while True:\n        x = (x * 6364136223846793005 + 1) & 0xffffffffffffffff\n\
for _ in range(int(sys.argv[2])):\n    threading.Thread(target=spin, daemon=True).start()\n\
spin()\n";

    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `/proc/PID/stat`'s fields from the 4th (ppid) on, parsed by hand.
    fn stat_fields(pid: i32) -> Vec<u64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let (_, rest) = s.rsplit_once(')').unwrap();
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse::<i64>().unwrap_or(0) as u64)
            .collect()
    }

    /// CPU ns of all of `pid`'s threads, from `/proc/PID/task/*/schedstat` (the scheduler's
    /// own ns count: independent of the tick rate).
    fn schedstat_ns(pid: i32) -> i64 {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| {
                let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
                s.split_whitespace().next()?.parse::<i64>().ok()
            })
            .sum()
    }

    fn status_field(pid: i32, name: &str) -> i64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = s.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn process_row_matches_proc() {
        let child = Command::new("python3")
            .args(["-c", BUSY_CHILD])
            .arg(BUSY_BYTES.to_string())
            .arg(BUSY_THREADS.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let child = Killed(child);
        let pid = child.0.id() as i32;
        // Until its memory is touched, its threads run and it has burnt some CPU.
        let deadline = Instant::now() + Duration::from_secs(20);
        while status_field(pid, "VmRSS:") * 1024 < BUSY_BYTES as i64
            || status_field(pid, "Threads:") < 1 + BUSY_THREADS as i64
            || schedstat_ns(pid) < 200_000_000
        {
            assert!(
                Instant::now() < deadline,
                "the busy child did not get going"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let sampler = ProcSampler::new(1);
        let before_ns = schedstat_ns(pid);
        let stat_before = stat_fields(pid);
        let t0 = Instant::now();
        let row = sampler
            .process(&Process::new(pid).unwrap(), 7)
            .expect("a live process has a row");
        let elapsed = t0.elapsed().as_nanos() as i64;
        let after_ns = schedstat_ns(pid);
        let stat = stat_fields(pid);
        let rss_kib = status_field(pid, "VmRSS:");
        let threads = status_field(pid, "Threads:");

        assert_eq!(row.time_ns, 7);
        // Field 22 of proc_pid_stat(5) (counted from 1 at pid): starttime.
        assert_eq!(row.upid, format_upid(1, pid as u32, stat[22 - 4]));
        assert_eq!(row.num_threads, threads);
        // RSS: the same pages counted twice within microseconds; the child allocates no more.
        assert!(
            (row.rss_bytes - rss_kib * 1024).abs() <= 1 << 20,
            "rss {} vs VmRSS {} KiB",
            row.rss_bytes,
            rss_kib
        );
        assert!(row.rss_bytes >= BUSY_BYTES as i64);
        assert!(row.vsize_bytes >= row.rss_bytes);
        // CPU: utime+stime are the scheduler's ns rounded to ticks (10 ms at 100 Hz) per
        // thread; schedstat read just before and after brackets the read.
        let cpu = row.cpu_utime_ns + row.cpu_ktime_ns;
        let tolerance = 30_000_000 * (1 + BUSY_THREADS as i64) + 2 * elapsed;
        assert!(
            cpu >= before_ns - tolerance && cpu <= after_ns + tolerance,
            "cpu {cpu} ns vs schedstat {before_ns}..{after_ns} ns"
        );
        // Fields 14 and 15 (utime, stime) in ticks: the kernel keeps each monotonic, so the
        // row's values lie between two reads bracketing it. This is what tells user from
        // kernel time; how a busy process splits the two depends on the machine's load.
        let ns_per_tick = 1_000_000_000 / procfs::ticks_per_second() as i64;
        for (name, field, value) in [
            ("utime", 14, row.cpu_utime_ns),
            ("stime", 15, row.cpu_ktime_ns),
        ] {
            let (lo, hi) = (stat_before[field - 4], stat[field - 4]);
            assert!(
                (lo as i64 * ns_per_tick..=hi as i64 * ns_per_tick).contains(&value),
                "{name} {value} ns vs /proc/{pid}/stat {lo}..{hi} ticks"
            );
        }
        assert!(row.cpu_utime_ns > 0, "a spinning process has user time");
        assert!(row.minor_faults >= (BUSY_BYTES / 4096 / 2) as i64);
    }

    #[test]
    fn a_process_that_is_gone_is_skipped() {
        let mut child = Command::new("true").spawn().unwrap();
        let proc = Process::new(child.id() as i32).unwrap();
        child.wait().unwrap();
        assert!(ProcSampler::new(1).process(&proc, 0).is_none());
    }

    /// `/proc/net/dev` of this process's namespace summed over interfaces but `lo`:
    /// (rx bytes, rx packets, tx bytes, tx packets).
    fn net_dev_now() -> [i64; 4] {
        let s = std::fs::read_to_string("/proc/self/net/dev").unwrap();
        let mut sum = [0; 4];
        for line in s.lines().skip(2) {
            let (name, counters) = line.split_once(':').unwrap();
            if name.trim() == "lo" {
                continue;
            }
            let c: Vec<i64> = counters
                .split_whitespace()
                .map(|f| f.parse().unwrap())
                .collect();
            for (s, v) in sum.iter_mut().zip([c[0], c[1], c[8], c[9]]) {
                *s += v;
            }
        }
        sum
    }

    #[test]
    fn each_network_namespace_once_with_its_counters() {
        let before = net_dev_now();
        let sample = ProcSampler::new(1).sample(5);
        let mine = netns_inode(std::process::id() as i32).unwrap().to_string();
        let rows: Vec<_> = sample
            .networks
            .iter()
            .filter(|r| r.pod_id == mine)
            .collect();
        assert_eq!(rows.len(), 1, "{:?}", sample.networks);
        let r = rows[0];
        assert_eq!(r.time_ns, 5);
        let got = [r.rx_bytes, r.rx_packets, r.tx_bytes, r.tx_packets];
        for (g, b) in got.iter().zip(before) {
            assert!(*g >= b, "counters {got:?} went back from {before:?}");
        }
        let mut ids: Vec<_> = sample.networks.iter().map(|r| &r.pod_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), sample.networks.len(), "one row per namespace");
        // This process is in the sample too, once.
        let me = format_upid(1, std::process::id(), 0);
        let me = &me[..18];
        assert_eq!(
            sample
                .processes
                .iter()
                .filter(|p| p.upid.starts_with(me))
                .count(),
            1
        );
    }

    #[test]
    fn samples_land_in_the_store() {
        let store = Store::new(pxtop_store::StoreConfig::default());
        let sample = ProcSampler::new(1).sample(5);
        append(&store, &sample);
        let rows = |name| store.stats().iter().find(|s| s.name == name).unwrap().rows;
        assert_eq!(rows("process_stats"), sample.processes.len() as u64);
        assert_eq!(rows("network_stats"), sample.networks.len() as u64);
    }

    /// The cost of sampling, per process: the median of five walks over every process on
    /// this machine (`cargo test -p pxtop-pem sampling_cost -- --nocapture` prints it).
    #[test]
    fn sampling_cost_per_process() {
        let sampler = ProcSampler::new(1);
        let mut per_proc_ns: Vec<f64> = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                let s = black_box(sampler.sample(0));
                let n = s.processes.len() + s.skipped;
                t0.elapsed().as_nanos() as f64 / n.max(1) as f64
            })
            .collect();
        per_proc_ns.sort_by(f64::total_cmp);
        let procs = procfs::process::all_processes().unwrap().count();
        eprintln!(
            "process_stats + network_stats sampling: {:.1} µs per process (median of 5 walks \
             over {procs} processes)",
            per_proc_ns[2] / 1000.0
        );
    }
}
