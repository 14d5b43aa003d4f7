//! pxtopd: the backend. By default runs the PEM (probes + ingest into the table store) and
//! Kelvin (the gRPC query service) in one process; `pxtop --local` embeds the same [`run`].
//! In a cluster the two roles run apart: [`run_pem`] on every node, serving its part of each
//! query and heartbeating [`run_kelvin`], which fans queries out and merges them.
#![forbid(unsafe_code)]

pub mod token;

use std::{sync::Arc, time::Duration};

use pxtop_engine::{Engine, EngineConfig};
pub use pxtop_kelvin::ServerTls;
use pxtop_kelvin::{
    HealthSource, KelvinService,
    cluster::{PemIdentity, PemRegistry},
};
use pxtop_metadata::{KubeMetadata, LocalMetadata, Metadata};
pub use pxtop_pem::{DoctorCheck, doctor};
use pxtop_pem::{HealthReader, PemConfig, PemError};
use pxtop_proto::v1;
use pxtop_store::{Store, StoreConfig, StoreError};
use tokio::net::TcpListener;

/// Where pxtopd listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50451";

/// pxtopd's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bearer token clients must send.
    pub token: String,
    /// Bytes all tables together may hold.
    pub node_budget_bytes: u64,
    /// Per-table budget overrides (table name, bytes).
    pub table_budgets: Vec<(String, u64)>,
    /// Whether to load the probes (off: serve queries over an empty store, for tests and demos).
    pub capture: bool,
    /// Capture settings.
    pub pem: PemConfig,
    /// Query settings.
    pub engine: EngineConfig,
    /// This node's name in `ctx("node")` (default: the host name).
    pub node_name: Option<String>,
    /// Whether `ctx(...)` is served from the cluster's API (PEM and all-in-one only).
    pub kube: KubeMode,
    /// How long start-up waits for the metadata watchers' initial lists before serving
    /// anyway (until they arrive, lookups answer locally and the health says what is pending).
    pub kube_sync_timeout: Duration,
    /// Serve pxtop's API (and Kelvin's registry) over TLS with this identity.
    pub tls: Option<pxtop_kelvin::ServerTls>,
}

/// Where `ctx(...)` lookups come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KubeMode {
    /// From the cluster when running in one (`KUBERNETES_SERVICE_HOST` is set), else locally.
    #[default]
    Auto,
    /// From the cluster (in-cluster config or kubeconfig); failing to connect is an error.
    On,
    /// Locally: process names and the host's name.
    Off,
}

impl KubeMode {
    /// Whether to use the cluster, given the environment.
    pub fn wanted(self) -> bool {
        match self {
            KubeMode::Auto => std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
            KubeMode::On => true,
            KubeMode::Off => false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token: String::new(),
            node_budget_bytes: pxtop_store::DEFAULT_NODE_BUDGET_BYTES,
            table_budgets: Vec::new(),
            capture: true,
            pem: PemConfig::default(),
            engine: EngineConfig::default(),
            node_name: None,
            kube: KubeMode::Auto,
            kube_sync_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

impl Config {
    /// Defaults with `token`.
    pub fn new(token: String) -> Self {
        Self {
            token,
            ..Self::default()
        }
    }
}

/// Why this host cannot capture; the message is one line that names the fix.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PreflightError(#[from] PemError);

/// Errors running pxtopd; each names the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An empty token would let anyone in.
    #[error("no token configured: set PXTOP_TOKEN or let pxtopd create its local token file")]
    NoToken,
    /// The store settings are wrong.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The probes could not start.
    #[error("capture could not start: {0}")]
    Pem(#[from] PemError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// `--kube` was asked for and no cluster could be reached.
    #[error(
        "Kubernetes metadata: {0}; run in a pod with a service account (deploy/kubernetes), \
         set KUBECONFIG, or pass --no-kube"
    )]
    Kube(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Checks that this host can run the probes: root (or CAP_BPF + CAP_PERFMON), kernel BTF,
/// tracefs.
pub fn preflight() -> Result<(), PreflightError> {
    Ok(pxtop_pem::preflight()?)
}

/// This node's probe health (when capture runs) and `pxtop doctor` checks.
struct PemHealth {
    node: String,
    reader: Option<HealthReader>,
}

impl HealthSource for PemHealth {
    fn doctor(&self) -> v1::NodeDoctor {
        v1::NodeDoctor {
            node: self.node.clone(),
            checks: doctor()
                .into_iter()
                .map(|c| v1::DoctorCheck {
                    name: c.name,
                    ok: c.ok,
                    detail: c.detail,
                    fix: c.fix,
                })
                .collect(),
            error: String::new(),
        }
    }

    fn probes(&self) -> Vec<v1::ProbeHealth> {
        let Some(reader) = &self.reader else {
            return Vec::new();
        };
        reader
            .get()
            .into_iter()
            .map(|p| v1::ProbeHealth {
                name: p.name,
                attached: p.attached,
                error: p.error.unwrap_or_default(),
                events: p.events,
                lost: p.lost,
                truncated: p.truncated,
            })
            .collect()
    }
}

/// The metadata watchers' health as a `kube_metadata` entry: attached once every kind is
/// listed, the error naming the kinds still pending and the watchers' last errors.
fn kube_health(st: &pxtop_metadata::KubeStatus) -> pxtop_pem::ProbeHealth {
    let mut error = Vec::new();
    if !st.pending.is_empty() {
        error.push(format!(
            "waiting for the first list of {}",
            st.pending.join(", ")
        ));
    }
    error.extend(st.errors.iter().cloned());
    pxtop_pem::ProbeHealth {
        name: "kube_metadata".to_string(),
        attached: st.synced(),
        error: (!error.is_empty()).then(|| error.join("; ")),
        events: st.events,
        ..pxtop_pem::ProbeHealth::default()
    }
}

/// Keeps `kube`'s entry in `health` current (every second), so `probe_status` rows and the
/// `Health` answer show it.
fn report_kube_health(
    kube: &Arc<KubeMetadata>,
    health: HealthReader,
) -> tokio::task::JoinHandle<()> {
    let kube = Arc::downgrade(kube);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let Some(k) = kube.upgrade() else { return };
            health.set(kube_health(&k.status()));
        }
    })
}

/// Starts the cluster metadata for `node` over `local`, waiting up to `timeout` for the
/// watchers' first lists.
async fn start_kube(
    node: &str,
    local: Arc<LocalMetadata>,
    timeout: Duration,
) -> Result<Arc<KubeMetadata>, Error> {
    let kube = KubeMetadata::connect(node.to_string(), local)
        .await
        .map_err(|e| Error::Kube(Box::new(e)))?;
    if kube.wait_synced(timeout).await {
        let [pods, services, slices, nodes] = kube.status().counts;
        tracing::info!(pods, services, slices, nodes, "Kubernetes metadata synced");
    } else {
        // NB: serving anyway: lookups answer locally until the lists arrive, and
        // px/probe_status (kube_metadata) says what is missing.
        tracing::warn!(status = ?kube.status(), ?timeout, "Kubernetes metadata not synced yet");
    }
    Ok(kube)
}

/// One node's data side: its store, metadata, capture (when on) and engine.
struct Node {
    /// The node's name (`ctx("node")`, and the PEM's name in cluster mode).
    name: String,
    store: Arc<Store>,
    engine: Arc<Engine>,
    pem: Option<pxtop_pem::PemHandle>,
    health: Arc<dyn HealthSource>,
    /// Keeps the metadata watchers' health entry current (in a cluster).
    kube_health: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Detaches the probes and stops the health reporting.
    async fn shutdown(self) {
        if let Some(t) = self.kube_health {
            t.abort();
        }
        if let Some(p) = self.pem {
            p.shutdown().await;
        }
    }
}

/// Starts a node's data side; `serves_rows` is false for Kelvin, whose own store stays empty
/// (the PEMs answer `ctx(...)` for their rows).
async fn start_node(config: &Config, capture: bool, serves_rows: bool) -> Result<Node, Error> {
    if config.token.is_empty() {
        return Err(Error::NoToken);
    }
    let store = Arc::new(Store::try_new(StoreConfig {
        node_budget_bytes: config.node_budget_bytes,
        table_budgets: config.table_budgets.clone(),
        ..StoreConfig::default()
    })?);
    let metadata = match &config.node_name {
        Some(name) => LocalMetadata::with_host(name.clone()),
        None => LocalMetadata::new(),
    };
    let name = metadata.host().to_string();
    let kube = if serves_rows && config.kube.wanted() {
        match start_kube(&name, metadata.clone(), config.kube_sync_timeout).await {
            Ok(k) => Some(k),
            Err(e) if config.kube == KubeMode::Auto => {
                tracing::warn!(error = %e, "serving local metadata");
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let pem = if capture {
        Some(pxtop_pem::start(config.pem.clone(), store.clone(), metadata.clone()).await?)
    } else {
        None
    };
    // Without capture, a health list of the watchers' entry alone.
    let reader = match &pem {
        Some(p) => Some(p.health_reader()),
        None => kube.as_ref().map(|_| pxtop_pem::HealthReader::default()),
    };
    let kube_health = kube
        .as_ref()
        .zip(reader.clone())
        .map(|(k, r)| report_kube_health(k, r));
    let health: Arc<dyn HealthSource> = Arc::new(PemHealth {
        node: name.clone(),
        reader,
    });
    let metadata: Arc<dyn Metadata + Send + Sync> = match kube {
        Some(k) => k,
        None => metadata,
    };
    let engine = Arc::new(Engine::new(store.clone(), metadata, config.engine.clone()));
    Ok(Node {
        name,
        store,
        engine,
        pem,
        health,
        kube_health,
    })
}

/// Runs the backend on `listener` until `shutdown` completes, then detaches the probes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let node = start_node(&config, config.capture, true).await?;
    let service = KelvinService::new(node.engine.clone(), node.store.clone(), node.health.clone());
    let served = pxtop_kelvin::serve(
        listener,
        service,
        &config.token,
        config.tls.as_ref(),
        shutdown,
    )
    .await;
    node.shutdown().await;
    Ok(served?)
}

/// How a PEM joins its cluster.
#[derive(Debug, Clone)]
pub struct PemRole {
    /// Kelvin's address, host:port.
    pub kelvin: String,
    /// The address Kelvin reaches this PEM's listener at, host:port.
    pub advertise: String,
    /// Kelvin serves TLS: the CA (PEM) its certificate is signed by.
    pub kelvin_ca: Option<Vec<u8>>,
}

/// The PEM role: captures on this node, serves its part of every query on `listener`, and
/// heartbeats Kelvin (reconnecting by itself when Kelvin restarts) until `shutdown`.
pub async fn run_pem(
    listener: TcpListener,
    config: Config,
    role: PemRole,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let node = start_node(&config, config.capture, true).await?;
    let name = node.name.clone();
    let started_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let beat = tokio::spawn(pxtop_kelvin::cluster::heartbeat_loop(
        role.kelvin,
        config.token.clone(),
        role.kelvin_ca,
        PemIdentity {
            name,
            addr: role.advertise,
            started_ns,
        },
    ));
    let served = tonic::transport::Server::builder()
        .add_service(pxtop_kelvin::cluster::pem_server(
            node.engine.clone(),
            node.health.clone(),
            &config.token,
        ))
        .serve_with_incoming_shutdown(pxtop_kelvin::incoming(listener), shutdown)
        .await;
    beat.abort();
    node.shutdown().await;
    Ok(served?)
}

/// The Kelvin role: serves pxtop's API on `listener` and fans every query out to the PEMs
/// that heartbeat it, waiting `pem_timeout` for each. Captures nothing itself.
pub async fn run_kelvin(
    listener: TcpListener,
    config: Config,
    pem_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let node = start_node(&config, false, false).await?;
    let registry = PemRegistry::new(&config.token, pem_timeout);
    let service = KelvinService::new(node.engine, node.store, node.health).with_registry(registry);
    Ok(pxtop_kelvin::serve(
        listener,
        service,
        &config.token,
        config.tls.as_ref(),
        shutdown,
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use pxtop_metadata::KubeStatus;

    use super::*;

    #[test]
    fn kube_health_names_pending_kinds_and_errors() {
        let h = kube_health(&KubeStatus {
            pending: vec!["pods", "services"],
            errors: vec!["pods: failed to perform initial object list: forbidden".into()],
            events: 3,
            counts: [0; 4],
        });
        assert_eq!(h.name, "kube_metadata");
        assert!(!h.attached);
        assert_eq!(
            h.error.as_deref(),
            Some(
                "waiting for the first list of pods, services; \
                 pods: failed to perform initial object list: forbidden"
            )
        );
        let h = kube_health(&KubeStatus {
            pending: vec![],
            errors: vec![],
            events: 9,
            counts: [4, 3, 3, 2],
        });
        assert!(h.attached && h.error.is_none() && h.events == 9);
    }

    #[test]
    fn kube_mode_flags_override_the_environment() {
        assert!(KubeMode::On.wanted());
        assert!(!KubeMode::Off.wanted());
        assert_eq!(
            KubeMode::Auto.wanted(),
            std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        );
    }

    #[test]
    fn health_reader_entries_are_replaced_by_name() {
        let r = pxtop_pem::HealthReader::default();
        r.set(kube_health(&KubeStatus {
            pending: vec!["pods"],
            errors: vec![],
            events: 0,
            counts: [0; 4],
        }));
        r.set(kube_health(&KubeStatus {
            pending: vec![],
            errors: vec![],
            events: 1,
            counts: [0; 4],
        }));
        let all = r.get();
        assert_eq!(all.len(), 1);
        assert!(all[0].attached);
    }
}
