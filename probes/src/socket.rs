//! The socket tracer: `bpf/socket_trace.bpf.c` loaded and attached with aya, and its events.
//!
//! The `#[repr(C)]` structs below mirror `bpf/socket_trace.h` field for field (size asserts on
//! both sides). Events are decoded from the ring buffer's bytes with `offset_of!` on those
//! mirrors, which keeps the layout in one place without `unsafe` reads.

use std::{
    io,
    mem::{offset_of, size_of},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{TracePoint, UProbe, uprobe::UProbeScope},
};
use tokio::io::unix::AsyncFd;

/// Largest capture per event the kernel side supports (`PXT_MAX_CAPTURE`).
pub const MAX_CAPTURE: u32 = 16384;

const EV_DATA: u32 = 1;
const EV_OPEN: u32 = 2;
const EV_CLOSE: u32 = 3;

/// `pxt_data_header.flags`: plaintext of a TLS library call (`PXT_DATA_TLS`).
const DATA_TLS: u16 = 1;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Mirror of `struct pxt_data_header`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawDataHeader {
    /// Event kind.
    pub kind: u32,
    /// Process id.
    pub tgid: u32,
    /// File descriptor.
    pub fd: i32,
    /// 0 egress, 1 ingress.
    pub dir: u32,
    /// Connection generation.
    pub gen_: u64,
    /// Syscall entry (monotonic ns).
    pub enter_ts: u64,
    /// Syscall exit (monotonic ns).
    pub exit_ts: u64,
    /// Stream offset of the first byte.
    pub pos: u64,
    /// Bytes really moved.
    pub size: u64,
    /// Bytes that follow.
    pub captured: u32,
    /// Role known to the kernel.
    pub role: u16,
    /// `DATA_TLS`: plaintext from a TLS library call.
    pub flags: u16,
}
const _: () = assert!(size_of::<RawDataHeader>() == 64);

/// Mirror of `struct pxt_open_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawOpenEvent {
    /// Event kind.
    pub kind: u32,
    /// Process id.
    pub tgid: u32,
    /// File descriptor.
    pub fd: i32,
    /// Role.
    pub role: u32,
    /// Connection generation.
    pub gen_: u64,
    /// When it was first seen (monotonic ns).
    pub ts: u64,
    /// Process start, ns since boot (boot clock).
    pub start_boottime_ns: u64,
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// Padding.
    pub pad: u16,
    /// Local address (network order; 4 bytes used for IPv4).
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
    /// Thread name.
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<RawOpenEvent>() == 96);

/// Mirror of `struct pxt_close_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawCloseEvent {
    /// Event kind.
    pub kind: u32,
    /// Process id.
    pub tgid: u32,
    /// File descriptor.
    pub fd: i32,
    /// Role.
    pub role: u32,
    /// Connection generation.
    pub gen_: u64,
    /// When it closed (monotonic ns).
    pub ts: u64,
    /// Bytes written over the connection's life.
    pub wr_bytes: u64,
    /// Bytes read.
    pub rd_bytes: u64,
}
const _: () = assert!(size_of::<RawCloseEvent>() == 48);

/// Which way bytes moved, seen from the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The process wrote (sent).
    Egress,
    /// The process read (received).
    Ingress,
}

/// The traced process's side of a connection (Pixie's `trace_role` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// It connected.
    Client = 1,
    /// It accepted.
    Server = 2,
    /// It was already connected when the agent started.
    Unknown = 4,
}

impl Role {
    fn from_raw(v: u32) -> Role {
        match v {
            1 => Role::Client,
            2 => Role::Server,
            _ => Role::Unknown,
        }
    }
}

/// Bytes a syscall moved on a traced socket.
#[derive(Debug, Clone, Copy)]
pub struct DataEvent<'a> {
    /// Process id.
    pub tgid: u32,
    /// File descriptor.
    pub fd: i32,
    /// Connection generation: with (tgid, fd), identifies the connection.
    pub generation: u64,
    /// Direction.
    pub dir: Direction,
    /// Role as the kernel knows it.
    pub role: Role,
    /// Syscall entry, monotonic ns.
    pub enter_ts: u64,
    /// Syscall exit, monotonic ns.
    pub exit_ts: u64,
    /// Offset of the first byte in this direction's stream.
    pub pos: u64,
    /// Bytes really moved (may exceed `data.len()`: capture cap, sendfile, too many iovecs).
    pub size: u64,
    /// Plaintext of a TLS library call (`SSL_read`/`SSL_write`), whose positions count the
    /// plaintext stream; the connection's ciphertext is not sent once this is seen.
    pub encrypted: bool,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// A connection seen for the first time.
#[derive(Debug, Clone)]
pub struct OpenEvent {
    /// Process id.
    pub tgid: u32,
    /// File descriptor.
    pub fd: i32,
    /// Connection generation.
    pub generation: u64,
    /// When, monotonic ns.
    pub ts: u64,
    /// Role.
    pub role: Role,
    /// Process start, ns since boot (boot clock, as `/proc/PID/stat` counts it).
    pub process_start_boottime_ns: u64,
    /// Local endpoint.
    pub local: SocketAddr,
    /// Remote endpoint.
    pub remote: SocketAddr,
    /// Thread name at the time.
    pub comm: String,
}

/// A traced connection closed.
#[derive(Debug, Clone, Copy)]
pub struct CloseEvent {
    /// Process id.
    pub tgid: u32,
    /// File descriptor.
    pub fd: i32,
    /// Connection generation.
    pub generation: u64,
    /// When, monotonic ns.
    pub ts: u64,
    /// Role.
    pub role: Role,
    /// Bytes written over its life.
    pub wr_bytes: u64,
    /// Bytes read over its life.
    pub rd_bytes: u64,
}

/// One event from the socket tracer.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Bytes moved.
    Data(DataEvent<'a>),
    /// A connection appeared.
    Open(OpenEvent),
    /// A connection closed.
    Close(CloseEvent),
}

/// The kernel side's cumulative counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Data events received from the kernel.
    pub events: u64,
    /// Events the ring buffer had no room for.
    pub lost: u64,
    /// Data events cut to the capture cap.
    pub truncated: u64,
    /// True bytes moved on traced sockets, summed over the data events received.
    pub bytes: u64,
    /// Events user space could not decode (a layout mismatch: a bug).
    pub malformed: u64,
    /// TLS calls whose socket could not be told (plaintext dropped).
    pub tls_no_fd: u64,
    /// Data events carrying TLS plaintext, and their bytes (also in `events`, `bytes`).
    pub tls_events: u64,
    /// Bytes of TLS plaintext.
    pub tls_bytes: u64,
}

/// How to load the tracer.
#[derive(Debug, Clone)]
pub struct TracerConfig {
    /// Bytes captured per event (at most [`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// The process to leave out (the agent itself).
    pub self_tgid: u32,
    /// Capture no data on the client end of loopback connections (both ends are traced on
    /// this host; open/close events and byte counts are still reported). On when the agent
    /// keeps only one record per request, as by default.
    pub skip_loopback_clients: bool,
}

impl Default for TracerConfig {
    fn default() -> Self {
        Self {
            capture_bytes: MAX_CAPTURE,
            ring_bytes: 32 << 20,
            self_tgid: std::process::id(),
            skip_loopback_clients: true,
        }
    }
}

/// Why the tracer could not load.
#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    /// The host is not fit (privileges, BTF, tracefs).
    #[error(transparent)]
    Preflight(#[from] crate::PreflightError),
    /// A bad configuration value.
    #[error("invalid tracer configuration: {0}")]
    Config(String),
    /// The kernel refused the programs or maps.
    #[error("loading the socket tracer failed: {0}")]
    Load(String),
    /// No tracepoint could be attached.
    #[error("attaching the socket tracer failed: {0}")]
    Attach(String),
    /// Reading the ring buffer failed.
    #[error("reading the socket tracer's ring buffer failed: {0}")]
    Io(#[from] io::Error),
}

/// The syscalls whose enter/exit tracepoints the tracer attaches (benchmarks attach the same
/// set to measure the floor).
pub const TRACEPOINTS: &[&str] = &[
    "read",
    "write",
    "recvfrom",
    "sendto",
    "readv",
    "writev",
    "recvmsg",
    "sendmsg",
    "connect",
    "accept",
    "accept4",
    "sendfile64",
];

/// A TLS library whose read/write calls are probed.
#[derive(Debug, Clone)]
pub struct TlsAttachment {
    /// The library file.
    pub path: std::path::PathBuf,
    /// The functions attached (`SSL_read`, ...).
    pub functions: Vec<String>,
}

/// One attached (or failed) tracepoint.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// `syscalls:sys_enter_read` and so on.
    pub tracepoint: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The loaded and attached socket tracer.
pub struct SocketTracer {
    // NB: keeps the programs and links alive; dropping it detaches everything.
    ebpf: Ebpf,
    /// TLS libraries probed, and whether the uprobe programs are loaded.
    tls: Vec<TlsAttachment>,
    tls_loaded: bool,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    attachments: Vec<Attachment>,
    malformed: u64,
    /// Data events and their true bytes, as received.
    data_events: u64,
    data_bytes: u64,
    tls_events: u64,
    tls_bytes: u64,
    /// The last drain stopped at its bound with events left in the ring.
    behind: bool,
}

impl std::fmt::Debug for SocketTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketTracer")
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

static SOCKET_TRACE_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/socket_trace.bpf.o"));

impl SocketTracer {
    /// Checks the host, loads the programs and attaches them. Must run inside a tokio runtime.
    pub fn load(config: &TracerConfig) -> Result<Self, TracerError> {
        crate::preflight()?;
        if config.capture_bytes > MAX_CAPTURE {
            return Err(TracerError::Config(format!(
                "capture_bytes {} exceeds the maximum {MAX_CAPTURE}",
                config.capture_bytes
            )));
        }
        if !config.ring_bytes.is_power_of_two() || config.ring_bytes < 4096 {
            return Err(TracerError::Config(format!(
                "ring_bytes {} must be a power of two of at least 4096",
                config.ring_bytes
            )));
        }
        let wakeup = u64::from(config.ring_bytes / 4);
        let mut ebpf = EbpfLoader::new()
            .override_global("self_tgid", &config.self_tgid, true)
            .override_global("capture_bytes", &config.capture_bytes, true)
            .override_global("wakeup_bytes", &wakeup, true)
            .override_global(
                "skip_loopback_clients",
                &u32::from(config.skip_loopback_clients),
                true,
            )
            .map_max_entries("events", config.ring_bytes)
            .load(SOCKET_TRACE_OBJ)
            .map_err(|e| TracerError::Load(error_chain(&e)))?;

        let attachments = attach_per_syscall(&mut ebpf)?;

        let ring = ebpf
            .take_map("events")
            .ok_or_else(|| TracerError::Load("map \"events\" missing from the object".into()))?;
        let ring = RingBuf::try_from(ring).map_err(|e| TracerError::Load(e.to_string()))?;
        let ring = register_ring(ring)?;
        let counters = ebpf
            .take_map("counters")
            .ok_or_else(|| TracerError::Load("map \"counters\" missing from the object".into()))?;
        let counters =
            PerCpuArray::try_from(counters).map_err(|e| TracerError::Load(e.to_string()))?;
        Ok(Self {
            ebpf,
            tls: Vec::new(),
            tls_loaded: false,
            ring,
            counters,
            attachments,
            malformed: 0,
            data_events: 0,
            data_bytes: 0,
            tls_events: 0,
            tls_bytes: 0,
            behind: false,
        })
    }

    /// The tracepoints and whether each attached.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Attaches the TLS uprobes (`SSL_read`/`SSL_write` and the `_ex` variants, entry and
    /// return) to `lib`: from then on every process mapping that file, running or started
    /// later, has its TLS plaintext captured. Fails if no read/write pair attached.
    pub fn attach_tls(&mut self, lib: &crate::tls::Library) -> Result<&TlsAttachment, String> {
        if !self.tls_loaded {
            for (_, enter, ret) in crate::tls::SSL_FUNCTIONS {
                for prog in [enter, ret] {
                    let p: &mut UProbe = self
                        .ebpf
                        .program_mut(prog)
                        .ok_or_else(|| format!("program {prog} missing from the object"))?
                        .try_into()
                        .map_err(|e| error_chain(&e))?;
                    p.load().map_err(|e| error_chain(&e))?;
                }
            }
            self.tls_loaded = true;
        }
        let mut functions = Vec::new();
        let mut errors = Vec::new();
        for (sym, enter, ret) in crate::tls::SSL_FUNCTIONS {
            let mut ok = true;
            for prog in [enter, ret] {
                let attached = self
                    .ebpf
                    .program_mut(prog)
                    .ok_or_else(|| format!("program {prog} missing"))
                    .and_then(|p| {
                        let p: &mut UProbe = p.try_into().map_err(|e| error_chain(&e))?;
                        p.attach(*sym, &lib.path, UProbeScope::AllProcesses)
                            .map_err(|e| error_chain(&e))
                    });
                if let Err(e) = attached {
                    errors.push(format!("{sym}: {e}"));
                    ok = false;
                    break;
                }
            }
            if ok {
                functions.push((*sym).to_string());
            }
        }
        let usable = functions
            .iter()
            .any(|f| f == "SSL_read" || f == "SSL_read_ex")
            && functions
                .iter()
                .any(|f| f == "SSL_write" || f == "SSL_write_ex");
        if !usable {
            return Err(format!(
                "{}: no SSL_read/SSL_write pair attached ({})",
                lib.path.display(),
                errors.join("; ")
            ));
        }
        self.tls.push(TlsAttachment {
            path: lib.path.clone(),
            functions,
        });
        self.tls.last().ok_or_else(|| "unreachable".to_string())
    }

    /// The TLS libraries probed so far.
    pub fn tls_attachments(&self) -> &[TlsAttachment] {
        &self.tls
    }

    /// Waits until events are ready or `tick` passes (events are not signalled one by one, see
    /// the C side), then hands up to `max` available events to `f`. Returns how many it
    /// handed.
    ///
    /// NB: bounded so the caller's loop (flushing rows, writing status) keeps turning while
    /// producers keep the ring non-empty; a call after one that stopped at `max` does not
    /// wait, so a reader that is behind catches up at full speed.
    pub async fn next_batch(
        &mut self,
        tick: Duration,
        max: usize,
        mut f: impl FnMut(Event<'_>),
    ) -> Result<usize, TracerError> {
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
                    if let Event::Data(d) = &ev {
                        self.data_events += 1;
                        self.data_bytes += d.size;
                        if d.encrypted {
                            self.tls_events += 1;
                            self.tls_bytes += d.size;
                        }
                    }
                    f(ev)
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

    /// The kernel side's counters, summed over CPUs.
    pub fn counters(&self) -> Counters {
        let sum = |i: u32| {
            self.counters
                .get(&i, 0)
                .map(|v| v.iter().copied().sum::<u64>())
                .unwrap_or(0)
        };
        // NB: events and bytes are counted here, from what arrived: counting them in the
        // kernel too cost every captured syscall two more map updates.
        Counters {
            events: self.data_events,
            lost: sum(1),
            truncated: sum(2),
            bytes: self.data_bytes,
            malformed: self.malformed,
            tls_no_fd: sum(4),
            tls_events: self.tls_events,
            tls_bytes: self.tls_bytes,
        }
    }
}

#[expect(
    unsafe_code,
    reason = "tokio's AsyncFd registration is unsafe: the fd must outlive it"
)]
pub(crate) fn register_ring(ring: RingBuf<MapData>) -> io::Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the RingBuf owns its map's fd and keeps it open and unchanged until it is
    // dropped, and the AsyncFd owns the RingBuf, so the fd outlives the registration.
    unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))
}

/// One program per syscall tracepoint; a missing non-essential one is reported, not fatal.
fn attach_per_syscall(ebpf: &mut Ebpf) -> Result<Vec<Attachment>, TracerError> {
    let mut attachments = Vec::new();
    let mut programs: Vec<(String, String)> = Vec::new();
    for sc in TRACEPOINTS {
        programs.push((format!("exit_{sc}"), format!("sys_exit_{sc}")));
    }
    programs.push(("enter_close".to_string(), "sys_enter_close".to_string()));
    for (prog, tp) in &programs {
        let result = attach(ebpf, prog, "syscalls", tp);
        if let Err(e) = &result {
            tracing::warn!(tracepoint = %tp, error = %e, "tracepoint not attached");
        }
        attachments.push(Attachment {
            tracepoint: format!("syscalls:{tp}"),
            error: result.err(),
        });
    }
    let essential = ["sys_exit_read", "sys_exit_write", "sys_enter_close"];
    if let Some(failed) = attachments
        .iter()
        .find(|a| a.error.is_some() && essential.iter().any(|e| a.tracepoint.ends_with(e)))
    {
        return Err(TracerError::Attach(format!(
            "{}: {}",
            failed.tracepoint,
            failed.error.clone().unwrap_or_default()
        )));
    }
    Ok(attachments)
}

fn attach(ebpf: &mut Ebpf, prog: &str, category: &str, tp: &str) -> Result<(), String> {
    let program = ebpf
        .program_mut(prog)
        .ok_or_else(|| format!("program {prog} missing from the object"))?;
    let program: &mut TracePoint = program.try_into().map_err(|e| error_chain(&e))?;
    program.load().map_err(|e| error_chain(&e))?;
    program.attach(category, tp).map_err(|e| error_chain(&e))?;
    Ok(())
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn addr(family: u16, raw: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    };
    SocketAddr::new(ip, port)
}

/// Decodes one ring buffer record; `None` if it is not a well-formed event.
pub fn decode(b: &[u8]) -> Option<Event<'_>> {
    match u32_at(b, 0)? {
        EV_DATA => {
            type H = RawDataHeader;
            let captured = u32_at(b, offset_of!(H, captured))? as usize;
            let data = b.get(size_of::<H>()..size_of::<H>() + captured)?;
            let dir = if u32_at(b, offset_of!(H, dir))? == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            Some(Event::Data(DataEvent {
                tgid: u32_at(b, offset_of!(H, tgid))?,
                fd: i32_at(b, offset_of!(H, fd))?,
                generation: u64_at(b, offset_of!(H, gen_))?,
                dir,
                role: Role::from_raw(u32::from(u16_at(b, offset_of!(H, role))?)),
                enter_ts: u64_at(b, offset_of!(H, enter_ts))?,
                exit_ts: u64_at(b, offset_of!(H, exit_ts))?,
                pos: u64_at(b, offset_of!(H, pos))?,
                size: u64_at(b, offset_of!(H, size))?,
                encrypted: u16_at(b, offset_of!(H, flags))? & DATA_TLS != 0,
                data,
            }))
        }
        EV_OPEN => {
            type O = RawOpenEvent;
            if b.len() < size_of::<O>() {
                return None;
            }
            let arr = |off: usize| -> Option<[u8; 16]> { b.get(off..off + 16)?.try_into().ok() };
            let family = u16_at(b, offset_of!(O, family))?;
            if family != AF_INET && family != AF_INET6 {
                return None;
            }
            let comm = arr(offset_of!(O, comm))?;
            let comm_len = comm.iter().position(|c| *c == 0).unwrap_or(comm.len());
            Some(Event::Open(OpenEvent {
                tgid: u32_at(b, offset_of!(O, tgid))?,
                fd: i32_at(b, offset_of!(O, fd))?,
                generation: u64_at(b, offset_of!(O, gen_))?,
                ts: u64_at(b, offset_of!(O, ts))?,
                role: Role::from_raw(u32_at(b, offset_of!(O, role))?),
                process_start_boottime_ns: u64_at(b, offset_of!(O, start_boottime_ns))?,
                local: addr(
                    family,
                    &arr(offset_of!(O, laddr))?,
                    u16_at(b, offset_of!(O, lport))?,
                ),
                remote: addr(
                    family,
                    &arr(offset_of!(O, raddr))?,
                    u16_at(b, offset_of!(O, rport))?,
                ),
                comm: String::from_utf8_lossy(&comm[..comm_len]).into_owned(),
            }))
        }
        EV_CLOSE => {
            type C = RawCloseEvent;
            if b.len() < size_of::<C>() {
                return None;
            }
            Some(Event::Close(CloseEvent {
                tgid: u32_at(b, offset_of!(C, tgid))?,
                fd: i32_at(b, offset_of!(C, fd))?,
                generation: u64_at(b, offset_of!(C, gen_))?,
                ts: u64_at(b, offset_of!(C, ts))?,
                role: Role::from_raw(u32_at(b, offset_of!(C, role))?),
                wr_bytes: u64_at(b, offset_of!(C, wr_bytes))?,
                rd_bytes: u64_at(b, offset_of!(C, rd_bytes))?,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_data_event_and_rejects_short_ones() {
        let mut b = vec![0u8; 64 + 5];
        b[0..4].copy_from_slice(&EV_DATA.to_ne_bytes());
        b[4..8].copy_from_slice(&42u32.to_ne_bytes());
        b[8..12].copy_from_slice(&7i32.to_ne_bytes());
        b[12..16].copy_from_slice(&1u32.to_ne_bytes());
        b[offset_of!(RawDataHeader, pos)..][..8].copy_from_slice(&100u64.to_ne_bytes());
        b[offset_of!(RawDataHeader, size)..][..8].copy_from_slice(&9000u64.to_ne_bytes());
        b[offset_of!(RawDataHeader, captured)..][..4].copy_from_slice(&5u32.to_ne_bytes());
        b[offset_of!(RawDataHeader, role)..][..2].copy_from_slice(&2u16.to_ne_bytes());
        b[offset_of!(RawDataHeader, flags)..][..2].copy_from_slice(&1u16.to_ne_bytes());
        b[64..].copy_from_slice(b"hello");
        let Some(Event::Data(d)) = decode(&b) else {
            panic!("not decoded")
        };
        assert_eq!(
            (d.tgid, d.fd, d.dir, d.role),
            (42, 7, Direction::Ingress, Role::Server)
        );
        assert_eq!((d.pos, d.size, d.data), (100, 9000, &b"hello"[..]));
        assert!(d.encrypted);
        assert!(
            decode(&b[..66]).is_none(),
            "captured says 5 bytes, only 2 present"
        );
        assert!(decode(&[9, 0, 0, 0]).is_none());
    }
}
