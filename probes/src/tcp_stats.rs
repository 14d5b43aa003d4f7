//! The TCP health probe: `bpf/tcp_stats.bpf.c` (tracepoints `tcp:tcp_retransmit_skb`,
//! `skb:kfree_skb`, `sock:inet_sock_set_state`, plus the exits of `accept`/`accept4` to learn
//! which process owns an accepted socket) loaded and attached with aya, and its events.
//!
//! `RawTcpEvent` mirrors `bpf/tcp_stats.h` field for field (size asserts on both sides).
//! Drop reasons are numbers of the kernel's `enum skb_drop_reason`, which changes between
//! kernel versions: [`DropReasons::from_tracefs`] reads their names from the running kernel's
//! `skb:kfree_skb` format (its `__print_symbolic` table) instead of a table frozen here.

use std::{
    collections::HashMap,
    io,
    mem::{offset_of, size_of},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
};
use tokio::io::unix::AsyncFd;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Mirror of `struct pxt_tcp_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawTcpEvent {
    /// Monotonic ns.
    pub ts: u64,
    /// The socket's kernel address (0: none known).
    pub sk: u64,
    /// Owner process start, ns since boot.
    pub start_boottime_ns: u64,
    /// `tcp_sock.bytes_sent`.
    pub tx_bytes: u64,
    /// `tcp_sock.bytes_received`.
    pub rx_bytes: u64,
    /// `enum pxt_tcp_kind`.
    pub kind: u32,
    /// Owner process (0: unknown).
    pub tgid: u32,
    /// `enum skb_drop_reason`.
    pub reason: u32,
    /// State before a change.
    pub old_state: i32,
    /// State after a change, or the socket's state.
    pub state: i32,
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// Padding.
    pub pad: u16,
    /// Padding.
    pub pad2: u32,
    /// Local address (network order).
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
}
const _: () = assert!(size_of::<RawTcpEvent>() == 104);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpEventKind {
    /// A segment was retransmitted.
    Retransmit,
    /// A TCP segment was dropped (with a reason).
    Drop,
    /// A TCP socket changed state.
    StateChange,
}

impl TcpEventKind {
    /// The name tables use: `retransmit`, `drop`, `state_change`.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpEventKind::Retransmit => "retransmit",
            TcpEventKind::Drop => "drop",
            TcpEventKind::StateChange => "state_change",
        }
    }
}

/// One event of the TCP health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEvent {
    /// What happened.
    pub kind: TcpEventKind,
    /// When, monotonic ns.
    pub ts: u64,
    /// The socket's kernel address, a key for the connection while it lives (0: none known,
    /// e.g. a drop before socket lookup).
    pub sock: u64,
    /// The process that set the socket up (connect, listen, accept), if the probe saw it.
    pub tgid: Option<u32>,
    /// That process's start, ns since boot (boot clock, as `/proc/PID/stat` counts it).
    pub process_start_boottime_ns: u64,
    /// This host's end.
    pub local: SocketAddr,
    /// The other end.
    pub remote: SocketAddr,
    /// For drops: the kernel's `enum skb_drop_reason` value (see [`DropReasons`]).
    pub drop_reason: u32,
    /// For state changes: the state before (`TCP_*` numbers, see [`tcp_state_name`]).
    pub old_state: i32,
    /// The state after a change; for retransmits and drops the socket's state (0: unknown).
    pub state: i32,
    /// Bytes sent on the connection so far (`tcp_sock.bytes_sent`; retransmits and state
    /// changes only, else 0).
    pub tx_bytes: u64,
    /// Bytes received so far (`tcp_sock.bytes_received`).
    pub rx_bytes: u64,
}

/// The probe's cumulative counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStatsCounters {
    /// Events received.
    pub events: u64,
    /// Events the ring buffer had no room for.
    pub lost: u64,
    /// Records user space could not decode (a layout mismatch: a bug).
    pub malformed: u64,
}

/// How to load the probe.
#[derive(Debug, Clone)]
pub struct TcpStatsConfig {
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
}

impl Default for TcpStatsConfig {
    fn default() -> Self {
        Self {
            ring_bytes: 4 << 20,
        }
    }
}

/// Why the probe could not load.
#[derive(Debug, thiserror::Error)]
pub enum TcpStatsError {
    /// The host is not fit (privileges, BTF, tracefs).
    #[error(transparent)]
    Preflight(#[from] crate::PreflightError),
    /// A bad configuration value.
    #[error("invalid TCP health probe configuration: {0}")]
    Config(String),
    /// The kernel refused the programs or maps.
    #[error("loading the TCP health probe failed: {0}")]
    Load(String),
    /// A tracepoint could not be attached.
    #[error("attaching the TCP health probe failed: {0}")]
    Attach(String),
    /// Reading the ring buffer failed.
    #[error("reading the TCP health probe's ring buffer failed: {0}")]
    Io(#[from] io::Error),
}

/// (program, tracepoint category, tracepoint).
pub const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("tcp_retransmit", "tcp", "tcp_retransmit_skb"),
    ("tcp_drop", "skb", "kfree_skb"),
    ("tcp_set_state", "sock", "inet_sock_set_state"),
    ("tcp_exit_accept", "syscalls", "sys_exit_accept"),
    ("tcp_exit_accept4", "syscalls", "sys_exit_accept4"),
];

/// The loaded and attached TCP health probe.
pub struct TcpStatsProbe {
    // NB: keeps the programs and links alive; dropping it detaches everything.
    _ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    events: u64,
    malformed: u64,
    behind: bool,
}

impl std::fmt::Debug for TcpStatsProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStatsProbe")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

static TCP_STATS_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp_stats.bpf.o"));

impl TcpStatsProbe {
    /// Checks the host, loads the programs and attaches every tracepoint (all are needed: a
    /// failure is an error). Must run inside a tokio runtime.
    pub fn load(config: &TcpStatsConfig) -> Result<Self, TcpStatsError> {
        crate::preflight()?;
        if !config.ring_bytes.is_power_of_two() || config.ring_bytes < 4096 {
            return Err(TcpStatsError::Config(format!(
                "ring_bytes {} must be a power of two of at least 4096",
                config.ring_bytes
            )));
        }
        let wakeup = u64::from(config.ring_bytes / 4);
        let mut ebpf = EbpfLoader::new()
            .override_global("wakeup_bytes", &wakeup, true)
            .map_max_entries("tcp_events", config.ring_bytes)
            .load(TCP_STATS_OBJ)
            .map_err(|e| TcpStatsError::Load(crate::socket::error_chain(&e)))?;
        for (prog, category, tp) in TRACEPOINTS {
            attach(&mut ebpf, prog, category, tp)
                .map_err(|e| TcpStatsError::Attach(format!("{category}:{tp}: {e}")))?;
        }
        let ring = ebpf
            .take_map("tcp_events")
            .ok_or_else(|| TcpStatsError::Load("map \"tcp_events\" missing".into()))?;
        let ring = RingBuf::try_from(ring).map_err(|e| TcpStatsError::Load(e.to_string()))?;
        let ring = crate::socket::register_ring(ring)?;
        let counters = ebpf
            .take_map("tcp_counters")
            .ok_or_else(|| TcpStatsError::Load("map \"tcp_counters\" missing".into()))?;
        let counters =
            PerCpuArray::try_from(counters).map_err(|e| TcpStatsError::Load(e.to_string()))?;
        Ok(Self {
            _ebpf: ebpf,
            ring,
            counters,
            events: 0,
            malformed: 0,
            behind: false,
        })
    }

    /// Waits until events are ready or `tick` passes (they are not signalled one by one), then
    /// hands up to `max` available events to `f`. Returns how many it handed. A call after one
    /// that stopped at `max` does not wait.
    pub async fn next_batch(
        &mut self,
        tick: Duration,
        max: usize,
        mut f: impl FnMut(&TcpEvent),
    ) -> Result<usize, TcpStatsError> {
        if !self.behind
            && let Ok(guard) = tokio::time::timeout(tick, self.ring.readable_mut()).await
        {
            guard?.clear_ready();
        }
        let mut n = 0;
        let ring = self.ring.get_mut();
        self.behind = false;
        while let Some(item) = ring.next() {
            match decode(&item) {
                Some(ev) => {
                    self.events += 1;
                    f(&ev);
                }
                None => self.malformed += 1,
            }
            n += 1;
            if n >= max {
                self.behind = true;
                break;
            }
        }
        Ok(n)
    }

    /// The counters, the kernel's summed over CPUs.
    pub fn counters(&self) -> TcpStatsCounters {
        let lost = self
            .counters
            .get(&0, 0)
            .map(|v| v.iter().copied().sum::<u64>())
            .unwrap_or(0);
        TcpStatsCounters {
            events: self.events,
            lost,
            malformed: self.malformed,
        }
    }
}

fn attach(ebpf: &mut Ebpf, prog: &str, category: &str, tp: &str) -> Result<(), String> {
    let program = ebpf
        .program_mut(prog)
        .ok_or_else(|| format!("program {prog} missing from the object"))?;
    let program: &mut TracePoint = program
        .try_into()
        .map_err(|e| crate::socket::error_chain(&e))?;
    program.load().map_err(|e| crate::socket::error_chain(&e))?;
    program
        .attach(category, tp)
        .map_err(|e| crate::socket::error_chain(&e))?;
    Ok(())
}

fn addr(family: u16, raw: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if family == AF_INET6 {
        // NB: a v4-mapped address (an IPv6 socket talking IPv4) reads as the IPv4 address, as
        // the socket tracer's rows show it.
        IpAddr::V6(Ipv6Addr::from(*raw)).to_canonical()
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    };
    SocketAddr::new(ip, port)
}

/// Decodes one ring buffer record; `None` if it is not a well-formed event.
pub fn decode(b: &[u8]) -> Option<TcpEvent> {
    type R = RawTcpEvent;
    if b.len() < size_of::<R>() {
        return None;
    }
    let u16_at = |off: usize| Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?));
    let u32_at = |off: usize| Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?));
    let i32_at = |off: usize| Some(i32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?));
    let u64_at = |off: usize| Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?));
    let arr = |off: usize| -> Option<[u8; 16]> { b.get(off..off + 16)?.try_into().ok() };
    let kind = match u32_at(offset_of!(R, kind))? {
        1 => TcpEventKind::Retransmit,
        2 => TcpEventKind::Drop,
        3 => TcpEventKind::StateChange,
        _ => return None,
    };
    let family = u16_at(offset_of!(R, family))?;
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    let tgid = u32_at(offset_of!(R, tgid))?;
    Some(TcpEvent {
        kind,
        ts: u64_at(offset_of!(R, ts))?,
        sock: u64_at(offset_of!(R, sk))?,
        tgid: (tgid != 0).then_some(tgid),
        process_start_boottime_ns: u64_at(offset_of!(R, start_boottime_ns))?,
        local: addr(
            family,
            &arr(offset_of!(R, laddr))?,
            u16_at(offset_of!(R, lport))?,
        ),
        remote: addr(
            family,
            &arr(offset_of!(R, raddr))?,
            u16_at(offset_of!(R, rport))?,
        ),
        drop_reason: u32_at(offset_of!(R, reason))?,
        old_state: i32_at(offset_of!(R, old_state))?,
        state: i32_at(offset_of!(R, state))?,
        tx_bytes: u64_at(offset_of!(R, tx_bytes))?,
        rx_bytes: u64_at(offset_of!(R, rx_bytes))?,
    })
}

/// The name of a TCP state (`include/net/tcp_states.h`, unchanged since Linux 2.6 and listed
/// in the `sock:inet_sock_set_state` format), without its `TCP_` prefix; "" for 0 (unknown).
pub fn tcp_state_name(state: i32) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "",
    }
}

/// Names of the running kernel's drop reasons (`enum skb_drop_reason`, e.g. 12 →
/// `NETFILTER_DROP` on 6.18), whose numbers change between kernel versions.
#[derive(Debug, Clone, Default)]
pub struct DropReasons(HashMap<u32, String>);

impl DropReasons {
    /// Reads them from the `skb:kfree_skb` tracepoint's format in tracefs.
    pub fn from_tracefs() -> io::Result<Self> {
        for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            let p = Path::new(dir).join("events/skb/kfree_skb/format");
            if let Ok(text) = std::fs::read_to_string(&p) {
                return Ok(Self::parse(&text));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no skb/kfree_skb tracepoint format in tracefs",
        ))
    }

    /// Parses a format file: the `{ N, "NAME" }` pairs of `__print_symbolic(REC->reason, ...)`.
    pub fn parse(format: &str) -> Self {
        let mut names = HashMap::new();
        let Some(start) = format.find("__print_symbolic(REC->reason") else {
            return Self(names);
        };
        let mut rest = &format[start..];
        while let Some(open) = rest.find('{') {
            rest = &rest[open + 1..];
            let Some(close) = rest.find('}') else { break };
            let pair = &rest[..close];
            rest = &rest[close + 1..];
            if let Some((num, name)) = pair.split_once(',')
                && let Ok(n) = num.trim().parse::<u32>()
            {
                names.insert(n, name.trim().trim_matches('"').to_string());
            }
        }
        Self(names)
    }

    /// The reason's name, or `reason N` if this kernel did not list it.
    pub fn name(&self, reason: u32) -> String {
        self.0
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("reason {reason}"))
    }

    /// How many names are known.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no names are known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_read_from_the_format() {
        let fmt = r#"print fmt: "skbaddr=%p reason: %s", REC->skbaddr, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 128, "MAX" })"#;
        let r = DropReasons::parse(fmt);
        assert_eq!(r.len(), 4);
        assert_eq!(r.name(12), "NETFILTER_DROP");
        assert_eq!(r.name(3), "NO_SOCKET");
        assert_eq!(r.name(999), "reason 999");
    }

    #[test]
    fn decodes_an_event_and_rejects_short_or_unknown_ones() {
        let mut b = vec![0u8; size_of::<RawTcpEvent>()];
        let put = |b: &mut Vec<u8>, off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(&mut b, offset_of!(RawTcpEvent, kind), &2u32.to_ne_bytes());
        put(&mut b, offset_of!(RawTcpEvent, tgid), &77u32.to_ne_bytes());
        put(
            &mut b,
            offset_of!(RawTcpEvent, reason),
            &12u32.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(RawTcpEvent, family),
            &AF_INET.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(RawTcpEvent, lport),
            &8080u16.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(RawTcpEvent, rport),
            &40000u16.to_ne_bytes(),
        );
        put(&mut b, offset_of!(RawTcpEvent, laddr), &[10, 0, 0, 1]);
        put(&mut b, offset_of!(RawTcpEvent, raddr), &[10, 0, 0, 2]);
        let e = decode(&b).unwrap();
        assert_eq!(e.kind, TcpEventKind::Drop);
        assert_eq!(e.tgid, Some(77));
        assert_eq!(e.drop_reason, 12);
        assert_eq!(e.local.to_string(), "10.0.0.1:8080");
        assert_eq!(e.remote.to_string(), "10.0.0.2:40000");
        assert!(decode(&b[..50]).is_none());
        put(&mut b, offset_of!(RawTcpEvent, kind), &9u32.to_ne_bytes());
        assert!(decode(&b).is_none());
    }
}
