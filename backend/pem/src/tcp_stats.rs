//! TCP health: drains the TCP health probe (`pxtop_probes::tcp_stats`: retransmits, drops with
//! their reason, state changes) into `tcp_stats_events`, one row per connection and event kind
//! (and drop reason, and state) per flush window.
//!
//! Counting happens here rather than in a kernel map: the events are rare next to syscalls,
//! and user space can name drop reasons from the running kernel ([`DropReasons`]), turn the
//! kernel's cumulative byte counters into per-row deltas, and fill in the local port of a
//! `CLOSE -> SYN_SENT` change (connect changes the state before it picks the port) from the
//! connection's next event in the same window. State changes are not merged: each is a row.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use parking_lot::Mutex;
use pxtop_probes::{
    DropReasons, TcpEvent, TcpEventKind, TcpStatsProbe, clock, tcp_stats::tcp_state_name,
};
use pxtop_store::{
    Store, TcpStatsBuilder, TcpStatsRow,
    schema::{format_upid, tcp_event},
};
use tokio::sync::watch;

use crate::ProbeHealth;

/// The probe's name in `probe_status`.
pub const PROBE: &str = "tcp_stats";

/// Connections whose byte counters are remembered at most (those whose close was never seen,
/// e.g. lost events, would otherwise pile up); past it the memory starts over.
const MAX_TRACKED: usize = 65_536;

/// What one row counts: a connection (by process and endpoints) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: TcpEventKind,
    owner: Option<(u32, u64)>,
    local: SocketAddr,
    remote: SocketAddr,
    reason: u32,
    state: i32,
}

#[derive(Debug, Default)]
struct Counts {
    last_ts: u64,
    events: i64,
    tx: i64,
    rx: i64,
    sock: u64,
}

/// Turns probe events into `tcp_stats_events` rows.
#[derive(Debug)]
pub struct TcpStatsCollector {
    asid: u32,
    reasons: DropReasons,
    /// Monotonic → wall clock.
    offset_ns: i64,
    counts: HashMap<Key, Counts>,
    /// State changes of this window, in order, with their socket.
    changes: Vec<(u64, TcpStatsRow)>,
    /// Each socket's local end as seen this window (to fill a port still 0 at connect).
    local_of: HashMap<u64, SocketAddr>,
    /// Each live socket's byte counters as last reported.
    bytes: HashMap<u64, (u64, u64)>,
}

impl TcpStatsCollector {
    /// A collector for node `asid`, naming drop reasons with `reasons`.
    pub fn new(asid: u32, reasons: DropReasons) -> Self {
        Self {
            asid,
            reasons,
            offset_ns: clock::monotonic_to_realtime_offset(),
            counts: HashMap::new(),
            changes: Vec::new(),
            local_of: HashMap::new(),
            bytes: HashMap::new(),
        }
    }

    /// Bytes moved since the socket's previous report.
    fn bytes_delta(&mut self, e: &TcpEvent) -> (i64, i64) {
        if e.sock == 0 || e.kind == TcpEventKind::Drop {
            return (0, 0);
        }
        if self.bytes.len() >= MAX_TRACKED {
            self.bytes.clear();
        }
        let (tx0, rx0) = self
            .bytes
            .insert(e.sock, (e.tx_bytes, e.rx_bytes))
            .unwrap_or((0, 0));
        if e.kind == TcpEventKind::StateChange && tcp_state_name(e.state) == "CLOSE" {
            self.bytes.remove(&e.sock);
        }
        (
            e.tx_bytes.saturating_sub(tx0) as i64,
            e.rx_bytes.saturating_sub(rx0) as i64,
        )
    }

    fn upid(&self, owner: Option<(u32, u64)>) -> String {
        owner.map_or_else(String::new, |(tgid, start_ns)| {
            format_upid(self.asid, tgid, start_ns / (1_000_000_000 / clock::USER_HZ))
        })
    }

    /// Counts one event.
    pub fn add(&mut self, e: &TcpEvent) {
        let owner = e.tgid.map(|t| (t, e.process_start_boottime_ns));
        if e.sock != 0 && e.local.port() != 0 {
            self.local_of.insert(e.sock, e.local);
        }
        let (tx, rx) = self.bytes_delta(e);
        if e.kind == TcpEventKind::StateChange {
            let row = TcpStatsRow {
                time_ns: e.ts as i64 + self.offset_ns,
                upid: self.upid(owner),
                remote_addr: e.remote.ip().to_string(),
                remote_port: i64::from(e.remote.port()),
                local_addr: e.local.ip().to_string(),
                local_port: i64::from(e.local.port()),
                event: tcp_event::STATE_CHANGE,
                old_state: tcp_state_name(e.old_state).to_string(),
                state: tcp_state_name(e.state).to_string(),
                tx,
                rx,
                ..TcpStatsRow::default()
            };
            self.changes.push((e.sock, row));
            return;
        }
        let key = Key {
            kind: e.kind,
            owner,
            local: e.local,
            remote: e.remote,
            reason: if e.kind == TcpEventKind::Drop {
                e.drop_reason
            } else {
                0
            },
            state: e.state,
        };
        let c = self.counts.entry(key).or_default();
        c.last_ts = c.last_ts.max(e.ts);
        c.events += 1;
        c.tx += tx;
        c.rx += rx;
        c.sock = e.sock;
    }

    /// The window's rows (the collector starts a new window).
    pub fn take_rows(&mut self) -> Vec<TcpStatsRow> {
        let mut rows = Vec::with_capacity(self.counts.len() + self.changes.len());
        let counts = std::mem::take(&mut self.counts);
        for (k, c) in counts {
            let mut local = k.local;
            if local.port() == 0
                && let Some(l) = self.local_of.get(&c.sock)
            {
                local = *l;
            }
            let (retransmits, drops, event) = match k.kind {
                TcpEventKind::Retransmit => (c.events, 0, tcp_event::RETRANSMIT),
                _ => (0, c.events, tcp_event::DROP),
            };
            rows.push(TcpStatsRow {
                time_ns: c.last_ts as i64 + self.offset_ns,
                upid: self.upid(k.owner),
                remote_addr: k.remote.ip().to_string(),
                remote_port: i64::from(k.remote.port()),
                local_addr: local.ip().to_string(),
                local_port: i64::from(local.port()),
                event,
                retransmits,
                drops,
                drop_reason: if k.kind == TcpEventKind::Drop {
                    self.reasons.name(k.reason)
                } else {
                    String::new()
                },
                state: tcp_state_name(k.state).to_string(),
                tx: c.tx,
                rx: c.rx,
                ..TcpStatsRow::default()
            });
        }
        for (sock, mut row) in self.changes.drain(..) {
            if row.local_port == 0
                && let Some(l) = self.local_of.get(&sock)
            {
                row.local_addr = l.ip().to_string();
                row.local_port = i64::from(l.port());
            }
            rows.push(row);
        }
        self.local_of.clear();
        rows.sort_by_key(|r| r.time_ns);
        rows
    }

    /// Appends the window's rows to `tcp_stats_events`; returns how many.
    pub fn flush(&mut self, store: &Store) -> usize {
        let rows = self.take_rows();
        if rows.is_empty() {
            return 0;
        }
        let mut b = TcpStatsBuilder::with_capacity(rows.len());
        for r in &rows {
            b.append(r);
        }
        if let Err(e) = store.append("tcp_stats_events", b.finish()) {
            tracing::error!(error = %e, "appending tcp_stats_events failed");
        }
        rows.len()
    }
}

/// Drains `probe` every 100 ms (sooner when its ring fills a quarter) and appends a window's
/// rows every `every`, until `stop` says so; keeps the probe's entry in `health` current.
pub(crate) async fn run(
    mut probe: TcpStatsProbe,
    mut collector: TcpStatsCollector,
    every: Duration,
    store: Arc<Store>,
    health: Arc<Mutex<Vec<ProbeHealth>>>,
    mut stop: watch::Receiver<bool>,
) {
    let tick = Duration::from_millis(100);
    let mut last_flush = tokio::time::Instant::now();
    loop {
        let stopping = *stop.borrow();
        tokio::select! {
            r = probe.next_batch(tick, 4096, |e| collector.add(e)) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "TCP health probe read failed");
                    tokio::time::sleep(tick).await;
                }
            }
            changed = stop.changed() => {
                // NB: the handle dropped without a shutdown: nothing will ever read the rows.
                if changed.is_err() {
                    return;
                }
            }
        }
        let now = tokio::time::Instant::now();
        if stopping || now - last_flush >= every {
            last_flush = now;
            collector.flush(&store);
            let c = probe.counters();
            if let Some(p) = health.lock().iter_mut().find(|p| p.name == PROBE) {
                p.events = c.events;
                p.lost = c.lost;
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

    fn ev(kind: TcpEventKind, sock: u64, local: &str, ts: u64) -> TcpEvent {
        TcpEvent {
            kind,
            ts,
            sock,
            tgid: Some(42),
            process_start_boottime_ns: 3_000_000_000,
            local: local.parse().unwrap(),
            remote: "10.0.0.2:443".parse().unwrap(),
            drop_reason: 0,
            old_state: 0,
            state: 1,
            tx_bytes: 0,
            rx_bytes: 0,
        }
    }

    #[test]
    fn counts_per_connection_names_reasons_and_fills_the_connect_port() {
        let reasons = DropReasons::parse(
            r#"__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 12, "NETFILTER_DROP" })"#,
        );
        let mut c = TcpStatsCollector::new(1, reasons);
        // connect: SYN_SENT before the port is chosen, then a SYN retransmit with it.
        c.add(&TcpEvent {
            old_state: 7,
            state: 2,
            ..ev(TcpEventKind::StateChange, 9, "10.0.0.1:0", 1)
        });
        for ts in 2..5 {
            c.add(&TcpEvent {
                state: 2,
                tx_bytes: 0,
                ..ev(TcpEventKind::Retransmit, 9, "10.0.0.1:5555", ts)
            });
        }
        c.add(&TcpEvent {
            drop_reason: 12,
            ..ev(TcpEventKind::Drop, 9, "10.0.0.1:5555", 6)
        });
        c.add(&TcpEvent {
            drop_reason: 77,
            tgid: None,
            ..ev(TcpEventKind::Drop, 0, "10.0.0.1:22", 7)
        });
        let rows = c.take_rows();
        assert_eq!(rows.len(), 4, "{rows:#?}");
        let upid = format_upid(1, 42, 300);
        let change = rows.iter().find(|r| r.event == "state_change").unwrap();
        assert_eq!(
            (
                change.local_port,
                change.old_state.as_str(),
                change.state.as_str()
            ),
            (5555, "CLOSE", "SYN_SENT")
        );
        assert_eq!(change.upid, upid);
        let re = rows.iter().find(|r| r.event == "retransmit").unwrap();
        assert_eq!(
            (re.retransmits, re.drops, re.state.as_str()),
            (3, 0, "SYN_SENT")
        );
        let drops: Vec<_> = rows.iter().filter(|r| r.event == "drop").collect();
        assert_eq!(drops[0].drop_reason, "NETFILTER_DROP");
        assert_eq!(drops[0].upid, upid);
        assert_eq!(
            (drops[1].drop_reason.as_str(), drops[1].upid.as_str()),
            ("reason 77", "")
        );
        assert!(c.take_rows().is_empty(), "a new window starts empty");
    }

    #[test]
    fn bytes_are_deltas_per_connection_until_it_closes() {
        let mut c = TcpStatsCollector::new(1, DropReasons::default());
        let at = |tx, rx, state, ts| TcpEvent {
            tx_bytes: tx,
            rx_bytes: rx,
            state,
            ..ev(TcpEventKind::StateChange, 5, "10.0.0.1:5555", ts)
        };
        c.add(&at(100, 10, 1, 1));
        c.add(&TcpEvent {
            tx_bytes: 250,
            rx_bytes: 10,
            ..ev(TcpEventKind::Retransmit, 5, "10.0.0.1:5555", 2)
        });
        c.add(&at(400, 30, 7, 3));
        // The socket's address reused by a new connection: counted from zero again.
        c.add(&at(50, 5, 1, 4));
        let bytes: Vec<_> = c.take_rows().iter().map(|r| (r.tx, r.rx)).collect();
        assert_eq!(bytes, [(100, 10), (150, 0), (150, 20), (50, 5)]);
    }
}
