//! pxtopd: the backend on one node. Runs the PEM (probes + ingest into the table store) and
//! Kelvin (the gRPC query service) in one process. `pxtop --local` embeds the same [`run`].
#![forbid(unsafe_code)]

pub mod token;

use std::sync::Arc;

use pxtop_engine::{Engine, EngineConfig};
use pxtop_kelvin::{HealthSource, KelvinService, NoProbes};
use pxtop_metadata::{LocalMetadata, Metadata};
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

struct PemHealth(HealthReader);

impl HealthSource for PemHealth {
    fn probes(&self) -> Vec<v1::ProbeHealth> {
        self.0
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

/// Runs the backend on `listener` until `shutdown` completes, then detaches the probes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if config.token.is_empty() {
        return Err(Error::NoToken);
    }
    let store = Arc::new(Store::try_new(StoreConfig {
        node_budget_bytes: config.node_budget_bytes,
        table_budgets: config.table_budgets.clone(),
        ..StoreConfig::default()
    })?);
    let metadata = LocalMetadata::new();
    let pem = if config.capture {
        Some(pxtop_pem::start(config.pem.clone(), store.clone(), metadata.clone()).await?)
    } else {
        None
    };
    let health: Arc<dyn HealthSource> = match &pem {
        Some(p) => Arc::new(PemHealth(p.health_reader())),
        None => Arc::new(NoProbes),
    };
    let metadata: Arc<dyn Metadata + Send + Sync> = metadata;
    let engine = Arc::new(Engine::new(store.clone(), metadata, config.engine.clone()));
    let service = KelvinService::new(engine, store, health);
    let served = pxtop_kelvin::serve(listener, service, &config.token, shutdown).await;
    if let Some(p) = pem {
        p.shutdown().await;
    }
    Ok(served?)
}
