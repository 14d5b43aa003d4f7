//! Kernel clocks: BPF timestamps are `CLOCK_MONOTONIC` ns; tables want ns since the epoch.

/// Reads a clock in ns.
#[expect(unsafe_code, reason = "clock_gettime is a libc call")]
fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// `CLOCK_MONOTONIC` now, in ns (what `bpf_ktime_get_ns` returns).
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC).max(0) as u64
}

/// Add this to a monotonic timestamp to get ns since the Unix epoch. Read both clocks
/// back to back, keeping the tightest of a few tries.
pub fn monotonic_to_realtime_offset() -> i64 {
    let mut best = (i64::MAX, 0);
    for _ in 0..5 {
        let a = read(libc::CLOCK_MONOTONIC);
        let r = read(libc::CLOCK_REALTIME);
        let b = read(libc::CLOCK_MONOTONIC);
        if b - a < best.0 {
            best = (b - a, r - (a + (b - a) / 2));
        }
    }
    best.1
}

/// Clock ticks per second for `/proc/PID/stat` start times (USER_HZ).
pub const USER_HZ: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_maps_monotonic_now_to_wall_clock_now() {
        let off = monotonic_to_realtime_offset();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let mapped = monotonic_ns() as i64 + off;
        assert!((mapped - wall).abs() < 50_000_000, "{mapped} vs {wall}");
    }
}
