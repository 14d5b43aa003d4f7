//! Kelvin: the query service. Serves pxtop's gRPC API: runs scripts on the engine and streams
//! each output table as Arrow IPC, lists scripts and tables, reports probe health. Every call
//! needs the bearer token; a wrong or missing token is refused before any work is done.
//!
//! Every query runs split (ARCHITECTURE.md §10): the PEMs of a [`PemFleet`] run each output's
//! part below its first aggregation and Kelvin merges their answers. On one node the fleet is
//! the local engine, in process; cluster mode gives it remote PEMs.
#![forbid(unsafe_code)]

mod auth;
pub mod cluster;
mod ipc;

use std::{collections::BTreeMap, pin::Pin, sync::Arc, time::Instant};

use futures::Stream;
use pxtop_engine::{Engine, EngineError, ErrorKind, InProcessFleet, PemFleet};
use pxtop_proto::v1::{
    self, ExecuteScriptRequest, ExecuteScriptResponse, ExecutionStats, HealthRequest,
    HealthResponse, ListScriptsRequest, ListScriptsResponse, ListTablesRequest, ListTablesResponse,
    TableBatch,
    execute_script_response::Result as Reply,
    pxtop_server::{Pxtop, PxtopServer},
    registry_server::RegistryServer,
};
use pxtop_store::Store;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

pub use auth::TokenCheck;
pub use ipc::{MAX_MESSAGE_BYTES, TARGET_MESSAGE_BYTES, encode_table};

/// Where `Health` gets probe status from (the PEM, when capture runs), and `Doctor` this
/// node's checks.
pub trait HealthSource: Send + Sync + 'static {
    /// Each probe's health.
    fn probes(&self) -> Vec<v1::ProbeHealth>;

    /// This node's `pxtop doctor` checks, under its name.
    fn doctor(&self) -> v1::NodeDoctor {
        v1::NodeDoctor {
            error: "this backend runs no node checks".into(),
            ..v1::NodeDoctor::default()
        }
    }
}

/// No probes (capture off).
#[derive(Debug, Default)]
pub struct NoProbes;

impl HealthSource for NoProbes {
    fn probes(&self) -> Vec<v1::ProbeHealth> {
        Vec::new()
    }
}

/// The service.
pub struct KelvinService {
    engine: Arc<Engine>,
    fleet: Arc<dyn PemFleet>,
    store: Arc<Store>,
    health: Arc<dyn HealthSource>,
    /// Cluster mode: the PEMs that heartbeat this Kelvin.
    registry: Option<Arc<cluster::PemRegistry>>,
}

impl std::fmt::Debug for KelvinService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KelvinService").finish_non_exhaustive()
    }
}

impl KelvinService {
    /// A service over `engine` and `store`, whose one PEM is that engine, in process.
    pub fn new(engine: Arc<Engine>, store: Arc<Store>, health: Arc<dyn HealthSource>) -> Self {
        let fleet = Arc::new(InProcessFleet {
            pems: vec![("local".to_string(), engine.clone())],
        });
        Self {
            engine,
            fleet,
            store,
            health,
            registry: None,
        }
    }

    /// Cluster mode: queries fan out to the PEMs that heartbeat `registry`, and the service
    /// also serves `Registry` for them.
    #[must_use]
    pub fn with_registry(mut self, registry: Arc<cluster::PemRegistry>) -> Self {
        self.fleet = Arc::new(cluster::RemoteFleet(registry.clone()));
        self.registry = Some(registry);
        self
    }

    /// The same service with queries fanned out to `fleet`.
    #[must_use]
    pub fn with_fleet(mut self, fleet: Arc<dyn PemFleet>) -> Self {
        self.fleet = fleet;
        self
    }

    /// Compiles and runs one request; the replies to stream.
    async fn run_script(&self, req: ExecuteScriptRequest) -> Result<Vec<Reply>, Status> {
        let source = match (req.name.is_empty(), req.source.is_empty()) {
            (false, true) => self
                .engine
                .script_source(&req.name)
                .map_err(to_status)?
                .to_string(),
            (true, false) => req.source,
            (false, false) => {
                return Err(Status::invalid_argument(
                    "give either a script name or script source, not both",
                ));
            }
            (true, true) => {
                return Err(Status::invalid_argument(
                    "no script: give a bundled script name (see `pxtop scripts`) or source",
                ));
            }
        };
        if req.describe_only {
            let info = self
                .engine
                .describe(&req.name, &source)
                .map_err(to_status)?;
            return Ok(vec![Reply::Info(v1::ScriptInfo {
                name: info.name,
                description: info.description,
                params: info.params.into_iter().map(to_param).collect(),
            })]);
        }
        let args: BTreeMap<String, String> = req.args.into_iter().collect();
        let t0 = Instant::now();
        let compiled = self.engine.compile(&source, &args).map_err(to_status)?;
        let compile_ns = t0.elapsed().as_nanos() as u64;
        let t1 = Instant::now();
        let outcome = self
            .engine
            .execute_split(compiled, self.fleet.as_ref())
            .await
            .map_err(to_status)?;
        let tables = outcome.tables;
        let execute_ns = t1.elapsed().as_nanos() as u64;
        let mut replies = Vec::new();
        let mut rows = 0u64;
        let mut truncated = false;
        let mut warnings = outcome.warnings;
        for t in &tables {
            rows += t.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            if t.truncated {
                truncated = true;
                warnings.push(format!(
                    "table {:?} was cut to its first rows; add a filter or head() to see less",
                    t.name
                ));
            }
            let widget_json = t.widget.clone().unwrap_or_default();
            for arrow_ipc in encode_table(&t.schema, &t.batches).map_err(|e| {
                Status::internal(format!("encoding table {:?} as Arrow IPC: {e}", t.name))
            })? {
                replies.push(Reply::Batch(TableBatch {
                    table_name: t.name.clone(),
                    widget_json: widget_json.clone(),
                    arrow_ipc,
                }));
            }
        }
        replies.push(Reply::Stats(ExecutionStats {
            rows,
            compile_ns,
            execute_ns,
            warnings,
            truncated,
        }));
        Ok(replies)
    }
}

fn to_param(p: pxtop_engine::ParamInfo) -> v1::ScriptParam {
    v1::ScriptParam {
        name: p.name,
        default_value: p.default,
        help: p.help,
        r#type: p.ty,
    }
}

/// Maps engine errors to gRPC codes; the message is the engine's, which names the fix.
fn to_status(e: EngineError) -> Status {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::InvalidArgument => Status::invalid_argument(msg),
        ErrorKind::NotFound => Status::not_found(msg),
        ErrorKind::Internal => Status::internal(msg),
        ErrorKind::Unavailable => Status::unavailable(msg),
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<ExecuteScriptResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Pxtop for KelvinService {
    type ExecuteScriptStream = ReplyStream;

    async fn execute_script(
        &self,
        request: Request<ExecuteScriptRequest>,
    ) -> Result<Response<Self::ExecuteScriptStream>, Status> {
        let replies = self.run_script(request.into_inner()).await?;
        let stream = futures::stream::iter(
            replies
                .into_iter()
                .map(|r| Ok(ExecuteScriptResponse { result: Some(r) })),
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_scripts(
        &self,
        _request: Request<ListScriptsRequest>,
    ) -> Result<Response<ListScriptsResponse>, Status> {
        let scripts = self
            .engine
            .scripts()
            .into_iter()
            .map(|s| v1::ScriptInfo {
                name: s.name,
                description: s.description,
                params: s.params.into_iter().map(to_param).collect(),
            })
            .collect();
        Ok(Response::new(ListScriptsResponse { scripts }))
    }

    async fn list_tables(
        &self,
        _request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        let stats = self.store.stats();
        let tables = stats
            .into_iter()
            .map(|s| {
                let columns = self
                    .store
                    .schema(s.name)
                    .map(|schema| {
                        schema
                            .fields()
                            .iter()
                            .map(|f| v1::ColumnInfo {
                                name: f.name().clone(),
                                data_type: f.data_type().to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                v1::TableInfo {
                    name: s.name.to_string(),
                    columns,
                    rows: s.rows,
                    bytes: s.bytes,
                    budget_bytes: s.budget_bytes,
                    dropped_rows: s.dropped_rows,
                }
            })
            .collect();
        Ok(Response::new(ListTablesResponse { tables }))
    }

    async fn health(
        &self,
        _request: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        let mut probes = self.health.probes();
        if let Some(registry) = &self.registry {
            // In cluster mode each PEM shows as one line: live or how long it has been silent.
            probes.extend(
                registry
                    .members()
                    .await
                    .into_iter()
                    .map(|m| v1::ProbeHealth {
                        name: format!("pem/{}", m.name),
                        attached: m.live,
                        error: if m.live {
                            String::new()
                        } else {
                            format!(
                                "no heartbeat for {}s from {}",
                                m.silent_for.as_secs(),
                                m.addr
                            )
                        },
                        ..v1::ProbeHealth::default()
                    }),
            );
        }
        Ok(Response::new(HealthResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            probes,
        }))
    }

    async fn doctor(
        &self,
        _request: Request<v1::DoctorRequest>,
    ) -> Result<Response<v1::DoctorResponse>, Status> {
        let nodes = match &self.registry {
            Some(r) => r.doctor().await,
            None => vec![self.health.doctor()],
        };
        Ok(Response::new(v1::DoctorResponse { nodes }))
    }
}

/// Kelvin's TLS identity: a PEM certificate (chain) and its PEM private key. With one, Kelvin
/// serves gRPC over TLS (rustls) only; a plaintext client's connection is dropped in the
/// handshake.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

impl ServerTls {
    /// Reads `cert` and `key` (PEM files).
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<Self> {
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(Self {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// tonic's server TLS settings for this identity.
    pub fn config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}

/// A gRPC server builder, serving TLS with `tls` when given. A certificate or key rustls cannot
/// use is an error here, before anything is served.
pub fn server_builder(
    tls: Option<&ServerTls>,
) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let builder = tonic::transport::Server::builder();
    match tls {
        Some(t) => builder.tls_config(t.config()),
        None => Ok(builder),
    }
}

/// Accepted connections of `listener`, with Nagle's algorithm off. A server given its own
/// listener (`serve_with_incoming`) does not get tonic's `tcp_nodelay`; without it a reply's
/// last small frame waits for the client's delayed ACK, about 40 ms per call on Linux.
pub fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves `service` on `listener` until `shutdown` completes, over TLS when `tls` is given.
/// Requests must carry `authorization: Bearer <token>`.
pub async fn serve(
    listener: TcpListener,
    service: KelvinService,
    token: &str,
    tls: Option<&ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let registry = service.registry.clone();
    let server = PxtopServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let server =
        tonic::service::interceptor::InterceptedService::new(server, TokenCheck::new(token));
    let registry = registry.map(|r| {
        tonic::service::interceptor::InterceptedService::new(
            RegistryServer::new(cluster::RegistryService(r)),
            TokenCheck::new(token),
        )
    });
    server_builder(tls)?
        .add_service(server)
        .add_optional_service(registry)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}
