//! The PEM: the per-node agent. Loads the probes, tracks connections, reassembles streams,
//! infers protocols, parses and stitches requests with responses, and appends rows to the
//! table store.
#![forbid(unsafe_code)]

pub mod ingest;
pub mod profiler;
pub mod tcp_stats;
pub mod telemetry;

use std::{sync::Arc, time::Duration};

use parking_lot::Mutex;
use pxtop_metadata::LocalMetadata;
use pxtop_probes::{
    DropReasons, Profiler, ProfilerConfig, SocketTracer, TcpStatsConfig, TcpStatsProbe,
    TracerConfig, tls,
};
use pxtop_store::{
    ConnStatsBuilder, ProbeStatusBuilder, ProbeStatusRow, Store, schema::format_upid,
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

pub use ingest::{ClientSide, Ingest, IngestConfig, IngestStats};
/// `pxtop doctor`'s checks of this node (kernel, BTF, capabilities, tracepoints, memlock).
pub use pxtop_probes::{Check as DoctorCheck, doctor};

/// How the PEM captures.
#[derive(Debug, Clone)]
pub struct PemConfig {
    /// This node's id in upids (Pixie's asid).
    pub asid: u32,
    /// Bytes captured per syscall event at most; the true size is always recorded.
    pub capture_bytes: u32,
    /// Ring buffer size in bytes (a power of two).
    pub ring_bytes: u32,
    /// Bytes of each request/response body kept in tables (the true size is kept too).
    pub body_limit: usize,
    /// How often parsed rows are appended to the store.
    pub flush_interval: Duration,
    /// How often `probe_status` is sampled.
    pub status_interval: Duration,
    /// How often `conn_stats` is sampled (Pixie: 10 s).
    pub conn_stats_interval: Duration,
    /// Which client-side records to keep.
    pub client_side: ClientSide,
    /// How often to look for TLS libraries to probe (`libssl.so*` mapped by any process);
    /// `None`: no TLS capture.
    pub tls_scan_interval: Option<Duration>,
    /// How often `process_stats` and `network_stats` are sampled from `/proc` (Pixie: 10 s);
    /// `None`: not at all.
    pub process_stats_interval: Option<Duration>,
    /// Capture only processes in pxtopd's own network namespace (several PEMs on one kernel,
    /// each in a namespace: tests and dev clusters). Off: every process on the host.
    pub own_netns_only: bool,
    /// TCP health (`tcp_stats_events`: retransmits, drops, state changes) counted per
    /// connection over windows this long; `None`: the probe is not loaded.
    pub tcp_stats_interval: Option<Duration>,
    /// How often the CPU profiler's stack counts are drained into `stack_traces` (Pixie: 30 s);
    /// `None`: no profiler.
    pub profiler_push_interval: Option<Duration>,
    /// CPU profiler samples per second on each CPU.
    pub profiler_frequency_hz: u64,
}

impl Default for PemConfig {
    fn default() -> Self {
        Self {
            asid: 1,
            capture_bytes: 16 * 1024,
            ring_bytes: 32 << 20,
            body_limit: 1024,
            flush_interval: Duration::from_millis(100),
            status_interval: Duration::from_secs(1),
            conn_stats_interval: Duration::from_secs(10),
            client_side: ClientSide::RemoteOnly,
            tls_scan_interval: Some(Duration::from_secs(10)),
            process_stats_interval: Some(Duration::from_secs(10)),
            own_netns_only: false,
            tcp_stats_interval: Some(Duration::from_secs(1)),
            profiler_push_interval: Some(Duration::from_secs(10)),
            profiler_frequency_hz: 99,
        }
    }
}

/// The health of one probe, for `Health` and the `probe_status` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeHealth {
    /// The probe's name, e.g. `socket_tracer`.
    pub name: String,
    /// Whether it is attached.
    pub attached: bool,
    /// Why it is not (or which of its tracepoints are not), if so.
    pub error: Option<String>,
    /// Events received from the kernel.
    pub events: u64,
    /// Events the kernel could not hand over (ring buffer full).
    pub lost: u64,
    /// Events whose bytes were cut to the capture cap.
    pub truncated: u64,
}

/// Reads the probes' health while the PEM runs.
#[derive(Debug, Clone, Default)]
pub struct HealthReader(Arc<Mutex<Vec<ProbeHealth>>>);

impl HealthReader {
    /// The probes' health and loss counters now.
    pub fn get(&self) -> Vec<ProbeHealth> {
        self.0.lock().clone()
    }

    /// Adds, or replaces by name, the health of a part of the agent that is not a probe (the
    /// Kubernetes metadata watchers), so that `probe_status` and `Health` show it too.
    pub fn set(&self, health: ProbeHealth) {
        let mut h = self.0.lock();
        match h.iter_mut().find(|p| p.name == health.name) {
            Some(p) => *p = health,
            None => h.push(health),
        }
    }
}

/// Errors starting the PEM; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The probes could not be loaded or attached.
    #[error(transparent)]
    Probes(#[from] pxtop_probes::TracerError),
    /// The host cannot run probes.
    #[error(transparent)]
    Preflight(#[from] pxtop_probes::PreflightError),
    /// This process's network namespace could not be read (`--capture-scope netns`).
    #[error("cannot read /proc/self/ns/net, which --capture-scope netns needs: {0}")]
    Netns(std::io::Error),
}

/// A running PEM.
#[derive(Debug)]
pub struct PemHandle {
    health: Arc<Mutex<Vec<ProbeHealth>>>,
    stats: Arc<Mutex<IngestStats>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    telemetry: Option<JoinHandle<()>>,
    tcp_stats: Option<JoinHandle<()>>,
    profiler: Option<profiler::ProfilerThread>,
}

impl PemHandle {
    /// The probes' health and loss counters.
    pub fn health(&self) -> Vec<ProbeHealth> {
        self.health.lock().clone()
    }

    /// A cloneable reader of the probes' health, for services that outlive a borrow.
    pub fn health_reader(&self) -> HealthReader {
        HealthReader(self.health.clone())
    }

    /// Ingest's counters (connections, gaps, rows).
    pub fn ingest_stats(&self) -> IngestStats {
        self.stats.lock().clone()
    }

    /// Detaches the probes and flushes what was parsed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "PEM task ended abnormally");
        }
        if let Some(t) = self.telemetry
            && let Err(e) = t.await
        {
            tracing::warn!(error = %e, "telemetry task ended abnormally");
        }
        if let Some(t) = self.tcp_stats
            && let Err(e) = t.await
        {
            tracing::warn!(error = %e, "TCP health task ended abnormally");
        }
        if let Some(t) = self.profiler {
            t.stop().await;
        }
    }
}

/// Checks that this host can run the probes (root or CAP_BPF+CAP_PERFMON, kernel BTF,
/// tracefs), with a message that names the fix when it cannot.
pub fn preflight() -> Result<(), PemError> {
    Ok(pxtop_probes::preflight()?)
}

/// Loads and attaches the probes and starts ingest into `store`. Must run inside a tokio
/// runtime.
pub async fn start(
    config: PemConfig,
    store: Arc<Store>,
    metadata: Arc<LocalMetadata>,
) -> Result<PemHandle, PemError> {
    let tracer = SocketTracer::load(&TracerConfig {
        capture_bytes: config.capture_bytes,
        ring_bytes: config.ring_bytes,
        self_tgid: std::process::id(),
        // NB: the client end of a loopback connection yields only records the ingest drops.
        skip_loopback_clients: config.client_side == ClientSide::RemoteOnly,
    })?;
    let failed: Vec<String> = tracer
        .attachments()
        .iter()
        .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.tracepoint)))
        .collect();
    let mut probes = vec![ProbeHealth {
        name: "socket_tracer".to_string(),
        attached: true,
        error: (!failed.is_empty()).then(|| failed.join("; ")),
        ..ProbeHealth::default()
    }];
    let tls_libs = config.tls_scan_interval.map(|every| {
        probes.push(ProbeHealth {
            name: "tls_tracer".to_string(),
            error: Some("no libssl found yet".to_string()),
            ..ProbeHealth::default()
        });
        scan_tls_libraries(every)
    });
    let tcp_probe = config
        .tcp_stats_interval
        .and_then(|every| load_tcp_stats(config.asid, &mut probes).map(|p| (p, every)));
    // NB: a profiler that cannot attach leaves the rest of the PEM running; probe_status says
    // why.
    let profiler = config.profiler_push_interval.map(|every| {
        let loaded = Profiler::load(&ProfilerConfig {
            frequency_hz: config.profiler_frequency_hz,
            ..ProfilerConfig::default()
        });
        let failed_cpus = loaded
            .as_ref()
            .map_or_else(|_| Vec::new(), |p| p.failed_cpus().to_vec());
        probes.push(ProbeHealth {
            name: profiler::PROBE_NAME.to_string(),
            attached: loaded.is_ok(),
            error: match &loaded {
                Err(e) => Some(e.to_string()),
                Ok(_) => (!failed_cpus.is_empty()).then(|| failed_cpus.join("; ")),
            },
            ..ProbeHealth::default()
        });
        if let Err(e) = &loaded {
            tracing::warn!(error = %e, "CPU profiler not attached");
        }
        (loaded.ok(), every)
    });
    let health = Arc::new(Mutex::new(probes));
    let stats = Arc::new(Mutex::new(IngestStats::default()));
    let ingest = Ingest::new(
        IngestConfig {
            asid: config.asid,
            body_limit: config.body_limit,
            client_side: config.client_side,
            only_netns: if config.own_netns_only {
                Some(ingest::netns_inode(0).map_err(PemError::Netns)?)
            } else {
                None
            },
            ..IngestConfig::default()
        },
        metadata,
    );
    let (stop, stop_rx) = watch::channel(false);
    let telemetry = config.process_stats_interval.map(|every| {
        tokio::spawn(telemetry::run(
            every,
            config.asid,
            store.clone(),
            stop_rx.clone(),
        ))
    });
    let tcp_stats = tcp_probe.map(|((probe, collector), every)| {
        tokio::spawn(tcp_stats::run(
            probe,
            collector,
            every,
            store.clone(),
            health.clone(),
            stop_rx.clone(),
        ))
    });
    let profiler = match profiler {
        Some((Some(p), every)) => {
            match profiler::ProfilerThread::start(
                p,
                every,
                config.asid,
                store.clone(),
                health.clone(),
            ) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "CPU profiler thread not started");
                    if let Some(h) = health
                        .lock()
                        .iter_mut()
                        .find(|h| h.name == profiler::PROBE_NAME)
                    {
                        h.attached = false;
                        h.error = Some(format!("starting its thread failed: {e}"));
                    }
                    None
                }
            }
        }
        _ => None,
    };
    let task = tokio::spawn(run_loop(
        tracer,
        tls_libs,
        ingest,
        store,
        config,
        health.clone(),
        stats.clone(),
        stop_rx,
    ));
    Ok(PemHandle {
        health,
        stats,
        stop,
        task,
        telemetry,
        tcp_stats,
        profiler,
    })
}

/// Loads the TCP health probe and says how it went in `probes`. The PEM runs without it (its
/// `probe_status` row says why).
fn load_tcp_stats(
    asid: u32,
    probes: &mut Vec<ProbeHealth>,
) -> Option<(TcpStatsProbe, tcp_stats::TcpStatsCollector)> {
    let mut health = ProbeHealth {
        name: tcp_stats::PROBE.to_string(),
        ..ProbeHealth::default()
    };
    let loaded = match TcpStatsProbe::load(&TcpStatsConfig::default()) {
        Ok(probe) => {
            health.attached = true;
            let reasons = DropReasons::from_tracefs().unwrap_or_else(|e| {
                health.error = Some(format!(
                    "drop reasons shown as numbers: their names could not be read ({e})"
                ));
                DropReasons::default()
            });
            Some((probe, tcp_stats::TcpStatsCollector::new(asid, reasons)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "TCP health probe not loaded; tcp_stats_events stays empty");
            health.error = Some(e.to_string());
            None
        }
    };
    probes.push(health);
    loaded
}

/// Events handled per drain before the loop flushes and reports: about 2 ms of work.
const DRAIN_BATCH: usize = 4096;

/// Libraries to probe for TLS, found by a background scan every `every` (the first at once).
/// NB: off the capture loop: reading every process's maps takes milliseconds.
fn scan_tls_libraries(every: Duration) -> mpsc::UnboundedReceiver<tls::Library> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut known = std::collections::HashSet::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let k = known.clone();
            let Ok(found) = tokio::task::spawn_blocking(move || tls::find_libssl(&k)).await else {
                return;
            };
            for lib in found {
                known.insert(lib.id);
                if tx.send(lib).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Attaches the TLS probes to newly found libraries, and says how it went in `health`.
fn attach_tls_libraries(
    tracer: &mut SocketTracer,
    libs: &mut mpsc::UnboundedReceiver<tls::Library>,
    health: &Mutex<Vec<ProbeHealth>>,
    failures: &mut Vec<String>,
) {
    let mut changed = false;
    while let Ok(lib) = libs.try_recv() {
        changed = true;
        match tracer.attach_tls(&lib) {
            Ok(a) => tracing::info!(
                library = %a.path.display(),
                functions = %a.functions.join(","),
                "TLS probes attached"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "TLS probes not attached");
                failures.push(e);
            }
        }
    }
    if !changed {
        return;
    }
    let attached = tracer.tls_attachments();
    let mut h = health.lock();
    if let Some(p) = h.iter_mut().find(|p| p.name == "tls_tracer") {
        p.attached = !attached.is_empty();
        p.error = if attached.is_empty() && failures.is_empty() {
            Some("no libssl found yet".to_string())
        } else {
            (!failures.is_empty()).then(|| failures.join("; "))
        };
    }
}

#[allow(clippy::too_many_arguments, reason = "the loop's state, passed once")]
async fn run_loop(
    mut tracer: SocketTracer,
    mut tls_libs: Option<mpsc::UnboundedReceiver<tls::Library>>,
    mut ingest: Ingest,
    store: Arc<Store>,
    config: PemConfig,
    health: Arc<Mutex<Vec<ProbeHealth>>>,
    stats: Arc<Mutex<IngestStats>>,
    stop: watch::Receiver<bool>,
) {
    // NB: a short drain tick; the kernel wakes us early only when the ring fills.
    let tick = Duration::from_millis(10);
    let mut last_flush = tokio::time::Instant::now();
    // A first probe_status row right away, so health is visible before the first interval.
    let mut last_conn_stats = last_flush;
    let mut last_status = last_flush
        .checked_sub(config.status_interval)
        .unwrap_or(last_flush);
    let upid = format_upid(config.asid, std::process::id(), 0);
    let mut tls_failures = Vec::new();
    loop {
        let stopping = *stop.borrow();
        if let Some(libs) = &mut tls_libs {
            attach_tls_libraries(&mut tracer, libs, &health, &mut tls_failures);
        }
        if let Err(e) = tracer
            .next_batch(tick, DRAIN_BATCH, |ev| ingest.handle(ev))
            .await
        {
            tracing::error!(error = %e, "socket tracer read failed");
            tokio::time::sleep(tick).await;
        }
        let now = tokio::time::Instant::now();
        if stopping || now - last_flush >= config.flush_interval {
            last_flush = now;
            if let Err(e) = ingest.flush(&store) {
                tracing::error!(error = %e, "appending rows failed");
            }
            *stats.lock() = ingest.stats();
        }
        if stopping || now - last_status >= config.status_interval {
            last_status = now;
            let c = tracer.counters();
            let rows: Vec<ProbeStatusRow> = {
                let mut h = health.lock();
                for p in h.iter_mut() {
                    // NB: TLS plaintext shares the socket tracer's ring; its loss counts there,
                    // and TLS calls whose socket was not told count as the TLS probe's loss.
                    // Other probes keep their own counters.
                    match p.name.as_str() {
                        "tls_tracer" => {
                            (p.events, p.lost, p.truncated) = (c.tls_events, c.tls_no_fd, 0)
                        }
                        "socket_tracer" => {
                            (p.events, p.lost, p.truncated) = (c.events, c.lost, c.truncated)
                        }
                        _ => {}
                    }
                }
                h.iter()
                    .map(|p| ProbeStatusRow {
                        time_ns: wall_clock_ns(),
                        upid: upid.clone(),
                        probe: p.name.clone(),
                        attached: p.attached,
                        error: p.error.clone().unwrap_or_default(),
                        events: p.events as i64,
                        lost: p.lost as i64,
                        truncated: p.truncated as i64,
                        bytes: match p.name.as_str() {
                            "tls_tracer" => c.tls_bytes as i64,
                            "socket_tracer" => c.bytes as i64,
                            _ => 0,
                        },
                    })
                    .collect()
            };
            if !rows.is_empty() {
                let mut b = ProbeStatusBuilder::with_capacity(rows.len());
                for row in &rows {
                    b.append(row);
                }
                if let Err(e) = store.append("probe_status", b.finish()) {
                    tracing::error!(error = %e, "appending probe_status failed");
                }
            }
        }
        if stopping || now - last_conn_stats >= config.conn_stats_interval {
            last_conn_stats = now;
            let rows = ingest.sample_conn_stats(wall_clock_ns());
            if !rows.is_empty() {
                let mut b = ConnStatsBuilder::with_capacity(rows.len());
                for r in &rows {
                    b.append(r);
                }
                if let Err(e) = store.append("conn_stats", b.finish()) {
                    tracing::error!(error = %e, "appending conn_stats failed");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
