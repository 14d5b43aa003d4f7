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
use pxtop_metadata::{LocalMetadata, Metadata};
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
    /// Serve pxtop's API (and Kelvin's registry) over TLS with this identity.
    pub tls: Option<pxtop_kelvin::ServerTls>,
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

/// One node's data side: its store, metadata, capture (when on) and engine.
struct Node {
    /// The node's name (`ctx("node")`, and the PEM's name in cluster mode).
    name: String,
    store: Arc<Store>,
    engine: Arc<Engine>,
    pem: Option<pxtop_pem::PemHandle>,
    health: Arc<dyn HealthSource>,
}

async fn start_node(config: &Config, capture: bool) -> Result<Node, Error> {
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
    let pem = if capture {
        Some(pxtop_pem::start(config.pem.clone(), store.clone(), metadata.clone()).await?)
    } else {
        None
    };
    let health: Arc<dyn HealthSource> = Arc::new(PemHealth {
        node: name.clone(),
        reader: pem.as_ref().map(|p| p.health_reader()),
    });
    let metadata: Arc<dyn Metadata + Send + Sync> = metadata;
    let engine = Arc::new(Engine::new(store.clone(), metadata, config.engine.clone()));
    Ok(Node {
        name,
        store,
        engine,
        pem,
        health,
    })
}

/// Runs the backend on `listener` until `shutdown` completes, then detaches the probes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let node = start_node(&config, config.capture).await?;
    let service = KelvinService::new(node.engine, node.store, node.health);
    let served = pxtop_kelvin::serve(
        listener,
        service,
        &config.token,
        config.tls.as_ref(),
        shutdown,
    )
    .await;
    if let Some(p) = node.pem {
        p.shutdown().await;
    }
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
    let node = start_node(&config, config.capture).await?;
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
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let served = tonic::transport::Server::builder()
        .add_service(pxtop_kelvin::cluster::pem_server(
            node.engine.clone(),
            node.health.clone(),
            &config.token,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    beat.abort();
    if let Some(p) = node.pem {
        p.shutdown().await;
    }
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
    let node = start_node(&config, false).await?;
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
