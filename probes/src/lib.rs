//! pxtop's eBPF probes: C programs (`bpf/*.bpf.c`) compiled by `build.rs` with clang-19,
//! loaded and attached with aya. The only crate that imports aya.
//!
//! The socket tracer runs on syscall tracepoints only (this project must not require kprobes).
//! Events are drained in batches through a borrowing callback rather than a `Stream` of owned
//! events: the data bytes are read straight out of the ring buffer, so a captured request costs
//! no allocation on its way to the parser.
//!
//! The CPU profiler (`profiler`) is a `perf_event` program on every CPU whose stack counts are
//! aggregated in the kernel and drained periodically.

pub mod clock;
pub mod preflight;
pub mod profiler;
pub mod socket;
pub mod tcp_stats;
pub mod tls;

pub use preflight::{Check, PreflightError, doctor, preflight};
pub use profiler::{Profiler, ProfilerConfig, ProfilerCounters, ProfilerError, StackCount};
pub use socket::{
    CloseEvent, Counters, DataEvent, Direction, Event, OpenEvent, Role, SocketTracer,
    TlsAttachment, TracerConfig, TracerError,
};
pub use tcp_stats::{
    DropReasons, TcpEvent, TcpEventKind, TcpStatsConfig, TcpStatsCounters, TcpStatsError,
    TcpStatsProbe,
};
