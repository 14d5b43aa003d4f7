//! Cluster mode: Kelvin's registry of live PEMs, the fleet that fans a query's PEM part out to
//! them over gRPC, and the PEM side of that exchange (its `Pem` service and its heartbeat).
//!
//! PEMs find Kelvin, not the other way round: each PEM heartbeats `Registry.Heartbeat` with
//! its name and address every [`HEARTBEAT_INTERVAL`]. Kelvin keeps every PEM it has heard
//! from; one silent for [`STALE_AFTER`] is down: queries skip it and say so in a warning
//! (never silently), until it has been silent for [`FORGET_AFTER`]. A PEM that restarts
//! heartbeats again and is back; a Kelvin that restarts learns the fleet from the next round
//! of heartbeats, and until then says that it is still listening for PEMs.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arrow::array::RecordBatch;
use futures::StreamExt;
use pxtop_engine::{Engine, PemAnswer, PemFleet, PemRequest, ipc_decode};
use pxtop_proto::{
    AUTH_HEADER,
    v1::{
        self, FragmentChunk, HeartbeatAck, PemHeartbeat, RunFragmentsRequest,
        pem_client::PemClient,
        pem_server::{Pem, PemServer},
        registry_client::RegistryClient,
        registry_server::Registry,
    },
};
use tokio::sync::Mutex;
use tonic::{
    Request, Response, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

use crate::{MAX_MESSAGE_BYTES, TokenCheck, encode_table};

/// How often PEMs heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// A PEM silent this long is down: queries skip it with a warning.
pub const STALE_AFTER: Duration = Duration::from_secs(7);
/// A Kelvin younger than this may not have heard from every PEM yet (one heartbeat round).
pub const REGISTER_GRACE: Duration = Duration::from_secs(3);
/// A PEM silent this long is forgotten (no more warnings about it).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// One PEM Kelvin has heard from.
#[derive(Debug, Clone)]
struct Member {
    addr: String,
    started_ns: i64,
    last_seen: Instant,
    channel: Channel,
}

/// What [`PemRegistry::members`] reports of one PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The PEM's name (its node).
    pub name: String,
    /// Where Kelvin reaches it.
    pub addr: String,
    /// Whether it heartbeated within [`STALE_AFTER`].
    pub live: bool,
    /// Time since its last heartbeat.
    pub silent_for: Duration,
}

/// Kelvin's view of the fleet: every PEM heard from recently, live or not.
#[derive(Debug)]
pub struct PemRegistry {
    members: Mutex<BTreeMap<String, Member>>,
    started: Instant,
    token: Arc<str>,
    /// How long a PEM may take to answer a query's part.
    pem_timeout: Duration,
}

impl PemRegistry {
    /// An empty registry; queries to PEMs carry `token` and wait `pem_timeout` for each.
    pub fn new(token: &str, pem_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            members: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            token: token.into(),
            pem_timeout,
        })
    }

    /// Records a heartbeat.
    async fn heartbeat(&self, beat: PemHeartbeat) -> Result<(), Status> {
        if beat.name.is_empty() || beat.addr.is_empty() {
            return Err(Status::invalid_argument(
                "a heartbeat needs the PEM's name and address",
            ));
        }
        let mut members = self.members.lock().await;
        let now = Instant::now();
        if let Some(m) = members.get_mut(&beat.name)
            && m.addr == beat.addr
        {
            if m.started_ns != beat.started_ns {
                tracing::info!(pem = %beat.name, "PEM restarted");
                m.started_ns = beat.started_ns;
            }
            m.last_seen = now;
            return Ok(());
        }
        let endpoint = Endpoint::from_shared(format!("http://{}", beat.addr)).map_err(|e| {
            Status::invalid_argument(format!("PEM address {:?} is not host:port: {e}", beat.addr))
        })?;
        tracing::info!(pem = %beat.name, addr = %beat.addr, "PEM joined");
        let channel = endpoint
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        members.insert(
            beat.name,
            Member {
                addr: beat.addr,
                started_ns: beat.started_ns,
                last_seen: now,
                channel,
            },
        );
        Ok(())
    }

    /// Every PEM heard from within [`FORGET_AFTER`], by name.
    pub async fn members(&self) -> Vec<MemberStatus> {
        let now = Instant::now();
        let mut members = self.members.lock().await;
        members.retain(|_, m| now - m.last_seen < FORGET_AFTER);
        members
            .iter()
            .map(|(name, m)| MemberStatus {
                name: name.clone(),
                addr: m.addr.clone(),
                live: now - m.last_seen < STALE_AFTER,
                silent_for: now - m.last_seen,
            })
            .collect()
    }

    /// The PEMs heard from within `FORGET_AFTER` of `now` (stale ones included: the caller
    /// names them), cloned out of the lock.
    async fn remembered(&self, now: Instant) -> Vec<(String, Member)> {
        self.members
            .lock()
            .await
            .iter()
            .filter(|(_, m)| now - m.last_seen < FORGET_AFTER)
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect()
    }

    /// Every PEM's `pxtop doctor` checks, asked in parallel; a PEM that is down or does not
    /// answer within the PEM timeout is listed with the reason.
    pub async fn doctor(&self) -> Vec<v1::NodeDoctor> {
        let now = Instant::now();
        let members = self.remembered(now).await;
        let mut nodes =
            futures::future::join_all(members.into_iter().map(|(name, m)| async move {
                let failed = |error: String| v1::NodeDoctor {
                    node: name.clone(),
                    checks: Vec::new(),
                    error,
                };
                let silent = now - m.last_seen;
                if silent >= STALE_AFTER {
                    return failed(format!(
                        "no heartbeat for {}s; is its node down?",
                        silent.as_secs()
                    ));
                }
                let mut req = Request::new(v1::DoctorRequest {});
                req.set_timeout(self.pem_timeout);
                match bearer(&self.token) {
                    Ok(v) => {
                        req.metadata_mut().insert(AUTH_HEADER, v);
                    }
                    Err(e) => return failed(e),
                }
                let mut client = PemClient::new(m.channel);
                let call = client.doctor(req);
                match tokio::time::timeout(self.pem_timeout, call).await {
                    Ok(Ok(r)) => {
                        let mut d = r.into_inner();
                        d.node = name;
                        d
                    }
                    Ok(Err(e)) => failed(format!("{} (at {})", describe(e), m.addr)),
                    Err(_) => failed(format!(
                        "no answer within {:?} (at {})",
                        self.pem_timeout, m.addr
                    )),
                }
            }))
            .await;
        if nodes.is_empty() {
            nodes.push(v1::NodeDoctor {
                node: "(no PEM)".into(),
                checks: Vec::new(),
                error: "no PEM has registered with Kelvin; see `kubectl get pods` for the \
                        pxtop-pem DaemonSet"
                    .into(),
            });
        }
        nodes
    }

    /// Asks one PEM for its part.
    async fn ask(
        &self,
        channel: Channel,
        request: &PemRequest,
    ) -> Result<(Vec<Vec<RecordBatch>>, u64), String> {
        let mut client = PemClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut req = Request::new(RunFragmentsRequest {
            source: request.source.to_string(),
            args: request.args.clone().into_iter().collect(),
            now_ns: request.now_ns,
            max_output_rows: request.max_output_rows as u64,
        });
        req.set_timeout(self.pem_timeout);
        req.metadata_mut()
            .insert(AUTH_HEADER, bearer(&self.token).map_err(|e| e.to_string())?);
        let call = async {
            let mut stream = client
                .run_fragments(req)
                .await
                .map_err(describe)?
                .into_inner();
            let mut parts: Vec<Vec<RecordBatch>> = Vec::new();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(describe)?;
                bytes += chunk.arrow_ipc.len() as u64;
                let i = chunk.fragment as usize;
                if i >= parts.len() {
                    parts.resize_with(i + 1, Vec::new);
                }
                parts[i].extend(
                    ipc_decode(&chunk.arrow_ipc)
                        .map_err(|e| format!("undecodable Arrow IPC from the PEM: {e}"))?,
                );
            }
            Ok((parts, bytes))
        };
        tokio::time::timeout(self.pem_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {:?} (--pem-timeout)",
                    self.pem_timeout
                ))
            })
    }
}

/// The live PEMs, as a fleet the engine fans queries out to.
#[derive(Debug, Clone)]
pub struct RemoteFleet(pub Arc<PemRegistry>);

#[tonic::async_trait]
impl PemFleet for RemoteFleet {
    async fn run(&self, request: &PemRequest) -> Vec<PemAnswer> {
        let now = Instant::now();
        let registry = &self.0;
        let members = registry.remembered(now).await;
        let mut answers =
            futures::future::join_all(members.into_iter().map(|(name, m)| async move {
                let silent = now - m.last_seen;
                if silent >= STALE_AFTER {
                    return PemAnswer {
                        pem: name,
                        result: Err(format!(
                            "no heartbeat for {}s (last at {}); is its node down?",
                            silent.as_secs(),
                            m.addr
                        )),
                        wire_bytes: 0,
                    };
                }
                let (result, wire_bytes) = match registry.ask(m.channel, request).await {
                    Ok((parts, bytes)) => (Ok(parts), bytes),
                    Err(e) => (Err(format!("{e} (at {})", m.addr)), 0),
                };
                PemAnswer {
                    pem: name,
                    result,
                    wire_bytes,
                }
            }))
            .await;
        if registry.started.elapsed() < REGISTER_GRACE {
            // Just restarted: PEMs that have not heartbeated yet are unknown, not down.
            answers.push(PemAnswer {
                pem: "(not yet registered)".into(),
                result: Err(format!(
                    "Kelvin started {}s ago and is still hearing from PEMs; rerun in a few \
                     seconds for every node",
                    registry.started.elapsed().as_secs()
                )),
                wire_bytes: 0,
            });
        }
        answers
    }
}

/// Kelvin's `Registry` service.
#[derive(Debug, Clone)]
pub struct RegistryService(pub Arc<PemRegistry>);

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn heartbeat(
        &self,
        request: Request<PemHeartbeat>,
    ) -> Result<Response<HeartbeatAck>, Status> {
        self.0.heartbeat(request.into_inner()).await?;
        Ok(Response::new(HeartbeatAck {
            interval_ms: HEARTBEAT_INTERVAL.as_millis() as u64,
        }))
    }
}

/// A PEM's `Pem` service: runs a query's PEM part on this node's engine.
#[derive(Clone)]
pub struct PemService {
    engine: Arc<Engine>,
    health: Arc<dyn crate::HealthSource>,
}

impl std::fmt::Debug for PemService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemService").finish_non_exhaustive()
    }
}

impl PemService {
    /// The service over this node's engine, with its node checks from `health`.
    pub fn new(engine: Arc<Engine>, health: Arc<dyn crate::HealthSource>) -> Self {
        Self { engine, health }
    }
}

type ChunkStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<FragmentChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Pem for PemService {
    type RunFragmentsStream = ChunkStream;

    async fn doctor(
        &self,
        _request: Request<v1::DoctorRequest>,
    ) -> Result<Response<v1::NodeDoctor>, Status> {
        Ok(Response::new(self.health.doctor()))
    }

    async fn run_fragments(
        &self,
        request: Request<RunFragmentsRequest>,
    ) -> Result<Response<Self::RunFragmentsStream>, Status> {
        let r = request.into_inner();
        let req = PemRequest {
            source: r.source.into(),
            args: r.args.into_iter().collect(),
            now_ns: r.now_ns,
            max_output_rows: usize::try_from(r.max_output_rows)
                .map_err(|_| Status::invalid_argument("max_output_rows is too large"))?,
        };
        let parts = self
            .engine
            .run_pem_part(&req)
            .await
            .map_err(crate::to_status)?;
        let mut chunks = Vec::new();
        for (i, batches) in parts.iter().enumerate() {
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => Arc::new(arrow::datatypes::Schema::empty()),
            };
            for arrow_ipc in encode_table(&schema, batches)
                .map_err(|e| Status::internal(format!("encoding fragment {i}: {e}")))?
            {
                chunks.push(Ok(FragmentChunk {
                    fragment: i as u32,
                    arrow_ipc,
                }));
            }
        }
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }
}

/// The `Pem` service with the token check, ready for a tonic server.
pub fn pem_server(
    engine: Arc<Engine>,
    health: Arc<dyn crate::HealthSource>,
    token: &str,
) -> tonic::service::interceptor::InterceptedService<PemServer<PemService>, TokenCheck> {
    let server = PemServer::new(PemService::new(engine, health))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::service::interceptor::InterceptedService::new(server, TokenCheck::new(token))
}

/// What a PEM says of itself in heartbeats.
#[derive(Debug, Clone)]
pub struct PemIdentity {
    /// Its node's name.
    pub name: String,
    /// Where Kelvin reaches its `Pem` service, host:port.
    pub addr: String,
    /// When it started, ns since the epoch.
    pub started_ns: i64,
}

/// Heartbeats Kelvin at `kelvin` (host:port) forever, reconnecting with backoff when Kelvin is
/// away. Logs the first failure of a streak and the recovery, not every retry. With
/// `kelvin_ca` (PEM), speaks TLS to Kelvin and trusts only certificates that CA signed, for
/// Kelvin's host name in `kelvin`.
pub async fn heartbeat_loop(
    kelvin: String,
    token: String,
    kelvin_ca: Option<Vec<u8>>,
    me: PemIdentity,
) {
    let mut backoff = Duration::from_millis(200);
    let mut failing = false;
    let scheme = if kelvin_ca.is_some() { "https" } else { "http" };
    let endpoint = match Endpoint::from_shared(format!("{scheme}://{kelvin}")) {
        Ok(e) => e.connect_timeout(Duration::from_secs(3)),
        Err(e) => {
            tracing::error!("--kelvin {kelvin:?} is not host:port ({e}); not registering");
            return;
        }
    };
    let endpoint = match kelvin_ca {
        Some(ca) => match endpoint.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("--kelvin-ca cannot be used: {e}; not registering");
                return;
            }
        },
        None => endpoint,
    };
    let mut client = RegistryClient::new(endpoint.connect_lazy());
    loop {
        let mut req = Request::new(PemHeartbeat {
            name: me.name.clone(),
            addr: me.addr.clone(),
            started_ns: me.started_ns,
            version: env!("CARGO_PKG_VERSION").to_string(),
        });
        req.set_timeout(Duration::from_secs(3));
        let next = match bearer(&token) {
            Ok(v) => {
                req.metadata_mut().insert(AUTH_HEADER, v);
                match client.heartbeat(req).await {
                    Ok(ack) => {
                        if failing {
                            tracing::info!("registered with Kelvin at {kelvin} again");
                        }
                        failing = false;
                        backoff = Duration::from_millis(200);
                        Duration::from_millis(ack.into_inner().interval_ms.clamp(100, 60_000))
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(
                                "cannot reach Kelvin at {kelvin}: {}; retrying",
                                describe(e)
                            );
                        }
                        failing = true;
                        backoff = (backoff * 2).min(HEARTBEAT_INTERVAL);
                        backoff
                    }
                }
            }
            Err(e) => {
                tracing::error!("the token cannot be sent as a header: {e}");
                return;
            }
        };
        tokio::time::sleep(next).await;
    }
}

fn bearer(token: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, String> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token has characters a header cannot carry".to_string())
}

/// A gRPC failure as one line.
fn describe(s: Status) -> String {
    match s.code() {
        tonic::Code::Unauthenticated => format!(
            "refused: {} (PEMs and Kelvin must share one token)",
            s.message()
        ),
        tonic::Code::Unavailable => format!("unreachable: {}", s.message()),
        tonic::Code::DeadlineExceeded => "deadline exceeded".to_string(),
        _ => format!("{}: {}", s.code(), s.message()),
    }
}
