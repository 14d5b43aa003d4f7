//! The Kubernetes API side of cluster mode, through the user's kubeconfig (kube-rs): server-side
//! apply of what `pxtop deploy` renders, waiting for the PEMs and Kelvin with progress, delete,
//! and reaching Kelvin: the CA and token from the Secrets and a port-forward to a ready Kelvin
//! pod behind a local TCP listener the gRPC client connects to. Every call goes through the
//! user's own credentials, so Kubernetes RBAC decides who may deploy, read the Secrets and
//! port-forward, hence who may query.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use super::manifests::{
    self, CA_CONFIGMAP, KELVIN_PORT, KELVIN_SERVICE, PEM_DAEMONSET, Secrets, TLS_SECRET,
    TOKEN_SECRET,
};
use super::pki::Pki;
use crate::client::TlsTrust;

/// The field manager pxtop applies as.
pub const FIELD_MANAGER: &str = "pxtop";

/// Failures talking to the cluster; each names the fix.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig or the context cannot be loaded.
    #[error(
        "cannot use kubeconfig context {context}: {message} (list contexts with `kubectl config get-contexts`; pick one with --context NAME)"
    )]
    Config {
        /// The context asked for.
        context: String,
        /// Why.
        message: String,
    },
    /// The API server refused or failed a call.
    #[error("{what}: {message}{}", hint_suffix(.code, .what))]
    Api {
        /// What was being done (e.g. "reading Secret pxtop/pxtop-token").
        what: String,
        /// The HTTP status code (0 when the call did not get that far).
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// pxtop is not (fully) deployed there.
    #[error(
        "pxtop is not deployed in namespace {namespace} of context {context}: {missing} (deploy with `pxtop deploy --context {context}`)"
    )]
    NotDeployed {
        /// The context.
        context: String,
        /// The namespace.
        namespace: String,
        /// What is missing.
        missing: String,
    },
    /// The rollout did not finish in time.
    #[error(
        "not ready after {}s: {progress} (see `kubectl -n {namespace} get pods` and `kubectl -n {namespace} describe daemonset pxtop-pem`)",
        .timeout.as_secs()
    )]
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// The last progress seen.
        progress: String,
        /// The namespace.
        namespace: String,
    },
    /// The local end of the port-forward cannot be opened.
    #[error("cannot open a local port for the port-forward: {0}")]
    Listen(std::io::Error),
}

fn hint_suffix(code: &u16, what: &str) -> String {
    match code {
        401 => " (your kubeconfig credentials were refused: log in to the cluster again)".into(),
        403 => format!(
            " (Kubernetes RBAC forbids it for your user: ask for that permission{})",
            if what.contains("Secret") {
                ", or get a token and store it with `pxtop auth login`"
            } else {
                ""
            }
        ),
        _ => String::new(),
    }
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let what = what.into();
    move |e| match e {
        kube::Error::Api(s) => KubeError::Api {
            what,
            code: s.code,
            message: s.message,
        },
        other => {
            let unreachable = matches!(other, kube::Error::Service(_) | kube::Error::HyperError(_));
            let mut message = other.to_string();
            if unreachable {
                message.push_str(
                    " (the API server did not answer: is the cluster up and is this the right \
                     context? try `kubectl get nodes`)",
                );
            }
            KubeError::Api {
                what,
                code: 0,
                message,
            }
        }
    }
}

fn is_not_found(e: &KubeError) -> bool {
    matches!(e, KubeError::Api { code: 404, .. })
}

/// A client for kubeconfig context `context` (`None` or empty: the current one), and that
/// context's name (the key tokens are stored under).
pub async fn client_for(context: Option<&str>) -> Result<(kube::Client, String), KubeError> {
    let context = context.filter(|c| !c.is_empty());
    let name = match context {
        Some(c) => c.to_string(),
        None => Kubeconfig::read()
            .ok()
            .and_then(|k| k.current_context)
            .unwrap_or_else(|| "in-cluster".to_string()),
    };
    let config_error = |message: String| KubeError::Config {
        context: name.clone(),
        message,
    };
    let config = match context {
        Some(c) => kube::Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(c.to_string()),
            ..KubeConfigOptions::default()
        })
        .await
        .map_err(|e| config_error(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| config_error(e.to_string()))?,
    };
    let client = kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))?;
    Ok((client, name))
}

/// The kubeconfig's current context, if there is a kubeconfig.
pub fn current_context() -> Option<String> {
    Kubeconfig::read().ok().and_then(|k| k.current_context)
}

/// The API resource of one of the kinds pxtop's manifests use.
fn resource(kind: &str) -> Option<(ApiResource, bool)> {
    Some(match kind {
        "Namespace" => (ApiResource::erase::<Namespace>(&()), false),
        "ServiceAccount" => (ApiResource::erase::<ServiceAccount>(&()), true),
        "ClusterRole" => (ApiResource::erase::<ClusterRole>(&()), false),
        "ClusterRoleBinding" => (ApiResource::erase::<ClusterRoleBinding>(&()), false),
        "Secret" => (ApiResource::erase::<Secret>(&()), true),
        "ConfigMap" => (ApiResource::erase::<ConfigMap>(&()), true),
        "DaemonSet" => (ApiResource::erase::<DaemonSet>(&()), true),
        "Deployment" => (ApiResource::erase::<Deployment>(&()), true),
        "Service" => (ApiResource::erase::<Service>(&()), true),
        _ => return None,
    })
}

fn api_for(client: &kube::Client, obj: &Value) -> Result<(Api<DynamicObject>, String), KubeError> {
    let what = manifests::describe(obj);
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (ar, namespaced) = resource(kind).ok_or_else(|| KubeError::Api {
        what: what.clone(),
        code: 0,
        message: format!("pxtop does not know the kind {kind:?}"),
    })?;
    let api = match (namespaced, obj["metadata"]["namespace"].as_str()) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    Ok((api, what))
}

/// The Secrets a previous deploy left in `namespace`, when both are there and complete:
/// re-deploying keeps them, so tokens and CAs in use stay valid.
pub async fn existing_secrets(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<Secrets>, KubeError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let get = |name: &'static str| {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .map_err(api_error(format!("reading Secret {namespace}/{name}")))
        }
    };
    let (Some(token), Some(tls)) = (get(TOKEN_SECRET).await?, get(TLS_SECRET).await?) else {
        return Ok(None);
    };
    let field = |s: &Secret, k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|v| !v.trim().is_empty())
    };
    Ok(
        match (
            field(&token, "token"),
            field(&tls, "ca.crt"),
            field(&tls, "tls.crt"),
            field(&tls, "tls.key"),
        ) {
            (Some(token), Some(ca_pem), Some(cert_pem), Some(key_pem)) => Some(Secrets {
                token: token.trim().to_string(),
                pki: Pki {
                    ca_pem,
                    cert_pem,
                    key_pem,
                },
            }),
            _ => None,
        },
    )
}

/// Server-side applies `objects` in order as field manager `pxtop` (taking over fields other
/// managers hold), calling `progress` with each object applied.
pub async fn apply(
    client: &kube::Client,
    objects: &[Value],
    progress: &mut dyn FnMut(&str),
) -> Result<(), KubeError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for obj in objects {
        let (api, what) = api_for(client, obj)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(name, &params, &Patch::Apply(obj))
            .await
            .map_err(api_error(format!("applying {what}")))?;
        progress(&format!("applied {what}"));
    }
    Ok(())
}

/// How far the rollout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// PEMs ready, of those the DaemonSet wants.
    pub pems_ready: i32,
    /// PEMs the DaemonSet wants (one per schedulable node).
    pub pems_desired: i32,
    /// Kelvin replicas available, of those wanted.
    pub kelvin_available: i32,
    /// Kelvin replicas wanted.
    pub kelvin_desired: i32,
    /// Both controllers have seen the latest spec and updated every pod.
    pub up_to_date: bool,
}

impl Rollout {
    /// Every PEM and Kelvin is ready on the latest spec.
    pub fn done(&self) -> bool {
        self.up_to_date
            && self.pems_desired > 0
            && self.pems_ready >= self.pems_desired
            && self.kelvin_desired > 0
            && self.kelvin_available >= self.kelvin_desired
    }
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PEMs {}/{} ready, Kelvin {}/{} available",
            self.pems_ready, self.pems_desired, self.kelvin_available, self.kelvin_desired
        )
    }
}

/// The rollout's state now.
pub async fn rollout(client: &kube::Client, namespace: &str) -> Result<Rollout, KubeError> {
    let ds: DaemonSet = Api::namespaced(client.clone(), namespace)
        .get(PEM_DAEMONSET)
        .await
        .map_err(api_error(format!(
            "reading DaemonSet {namespace}/{PEM_DAEMONSET}"
        )))?;
    let dep: Deployment = Api::namespaced(client.clone(), namespace)
        .get(KELVIN_SERVICE)
        .await
        .map_err(api_error(format!(
            "reading Deployment {namespace}/{KELVIN_SERVICE}"
        )))?;
    let ds_status = ds.status.unwrap_or_default();
    let dep_status = dep.status.unwrap_or_default();
    let kelvin_desired = dep.spec.and_then(|s| s.replicas).unwrap_or(1);
    let seen = |observed: Option<i64>, generation: Option<i64>| {
        observed.unwrap_or(0) >= generation.unwrap_or(0)
    };
    let up_to_date = seen(ds_status.observed_generation, ds.metadata.generation)
        && seen(dep_status.observed_generation, dep.metadata.generation)
        && ds_status.updated_number_scheduled.unwrap_or(0) >= ds_status.desired_number_scheduled
        && dep_status.updated_replicas.unwrap_or(0) >= kelvin_desired;
    Ok(Rollout {
        pems_ready: ds_status.number_ready,
        pems_desired: ds_status.desired_number_scheduled,
        kelvin_available: dep_status.available_replicas.unwrap_or(0),
        kelvin_desired,
        up_to_date,
    })
}

/// Polls the rollout every `every` until it is done or `timeout` passes, calling `progress`
/// whenever it changes.
pub async fn wait_ready(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
    every: Duration,
    progress: &mut dyn FnMut(&Rollout),
) -> Result<Rollout, KubeError> {
    let mut last: Option<Rollout> = None;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = rollout(client, namespace).await?;
        if last.as_ref() != Some(&now) {
            progress(&now);
        }
        if now.done() {
            return Ok(now);
        }
        last = Some(now);
        if tokio::time::Instant::now() + every > deadline {
            return Err(KubeError::Timeout {
                timeout,
                progress: last.map(|r| r.to_string()).unwrap_or_default(),
                namespace: namespace.to_string(),
            });
        }
        tokio::time::sleep(every).await;
    }
}

/// What happened to one object on delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Deletion started.
    Deleted(String),
    /// It was not there.
    AlreadyGone(String),
}

/// Deletes `objects` in reverse order (workloads before what they use); missing ones are
/// reported, not errors. Deleting the namespace takes everything in it (Secrets included).
pub async fn delete(client: &kube::Client, objects: &[Value]) -> Result<Vec<Deleted>, KubeError> {
    let mut out = Vec::new();
    for obj in objects.iter().rev() {
        let (api, what) = api_for(client, obj)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        match api
            .delete(name, &DeleteParams::background())
            .await
            .map_err(api_error(format!("deleting {what}")))
        {
            Ok(_) => out.push(Deleted::Deleted(what)),
            Err(e) if is_not_found(&e) => out.push(Deleted::AlreadyGone(what)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What a client needs to reach Kelvin: the token and the CA.
#[derive(Clone)]
pub struct Access {
    /// The bearer token (empty when not asked for).
    pub token: String,
    /// The CA (PEM) Kelvin's certificate is signed by.
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Access(..)")
    }
}

/// Reads the CA (ConfigMap `pxtop-ca`) and, when `need_token`, the token (Secret
/// `pxtop-token`) that `pxtop deploy` made in `namespace`. RBAC decides: a user who may not
/// read them gets the API server's 403 with the fix. Kelvin's key (Secret `pxtop-tls`) is
/// never read.
pub async fn read_access(
    client: &kube::Client,
    context: &str,
    namespace: &str,
    need_token: bool,
) -> Result<Access, KubeError> {
    let not_deployed = |missing: String| KubeError::NotDeployed {
        context: context.to_string(),
        namespace: namespace.to_string(),
        missing,
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let ca_pem = cms
        .get_opt(CA_CONFIGMAP)
        .await
        .map_err(api_error(format!(
            "reading ConfigMap {namespace}/{CA_CONFIGMAP}"
        )))?
        .ok_or_else(|| not_deployed(format!("no ConfigMap {CA_CONFIGMAP}")))?
        .data
        .and_then(|mut d| d.remove("ca.crt"))
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| not_deployed(format!("ConfigMap {CA_CONFIGMAP} has no ca.crt")))?
        .into_bytes();
    let token = if need_token {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(TOKEN_SECRET)
            .await
            .map_err(api_error(format!(
                "reading Secret {namespace}/{TOKEN_SECRET}"
            )))?
            .ok_or_else(|| not_deployed(format!("no Secret {TOKEN_SECRET}")))?;
        let bytes = secret
            .data
            .and_then(|mut d| d.remove("token"))
            .map(|b| b.0)
            .unwrap_or_default();
        let token = String::from_utf8_lossy(&bytes).trim().to_string();
        if token.is_empty() {
            return Err(not_deployed(format!("Secret {TOKEN_SECRET} has no token")));
        }
        token
    } else {
        String::new()
    };
    Ok(Access { token, ca_pem })
}

/// A running, ready Kelvin pod's name.
pub async fn kelvin_pod(
    client: &kube::Client,
    context: &str,
    namespace: &str,
) -> Result<String, KubeError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={KELVIN_SERVICE}")))
        .await
        .map_err(api_error(format!("listing pods in {namespace}")))?;
    let ready = |p: &Pod| {
        let status = p.status.as_ref();
        status.and_then(|s| s.phase.as_deref()) == Some("Running")
            && p.metadata.deletion_timestamp.is_none()
            && status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    list.items
        .iter()
        .find(|p| ready(p))
        .and_then(|p| p.metadata.name.clone())
        .ok_or_else(|| KubeError::NotDeployed {
            context: context.to_string(),
            namespace: namespace.to_string(),
            missing: format!(
                "no ready Kelvin pod ({} found; see `kubectl -n {namespace} get pods`)",
                list.items.len()
            ),
        })
}

/// A local TCP listener whose every connection is forwarded to a pod's port (one port-forward
/// stream per connection). Stops when dropped.
#[derive(Debug)]
pub struct PortForward {
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PortForward {
    /// Starts forwarding 127.0.0.1:<free port> to `pod`'s `port`.
    pub async fn start(pods: Api<Pod>, pod: String, port: u16) -> Result<Self, KubeError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(KubeError::Listen)?;
        let local = listener.local_addr().map_err(KubeError::Listen)?;
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let pods = pods.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    let mut forwarder = match pods.portforward(&pod, &[port]).await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!("port-forward to pod {pod}: {e}");
                            return;
                        }
                    };
                    if let Some(mut upstream) = forwarder.take_stream(port) {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
                    }
                    forwarder.abort();
                });
            }
        });
        Ok(Self { local, task })
    }

    /// The local address to connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything needed to reach one cluster's Kelvin: the context, the token, how to trust its
/// certificate, and the port-forward (kept open as long as this lives).
#[derive(Debug)]
pub struct ClusterRoute {
    /// The kubeconfig context.
    pub context: String,
    /// The address the gRPC client connects to (the local end of the port-forward).
    pub addr: String,
    /// The token to send.
    pub token: String,
    /// The CA and the name Kelvin's certificate holds.
    pub tls: TlsTrust,
    /// The port-forward.
    pub forward: PortForward,
}

/// Opens the route to the Kelvin of `context` (`None`/empty: current) in `namespace`: reads the
/// CA and, unless `token` is given, the token from the Secrets; port-forwards to a ready Kelvin
/// pod.
pub async fn route(
    context: Option<&str>,
    namespace: &str,
    token: Option<String>,
) -> Result<ClusterRoute, KubeError> {
    let (client, context) = client_for(context).await?;
    let access = read_access(&client, &context, namespace, token.is_none()).await?;
    let pod = kelvin_pod(&client, &context, namespace).await?;
    let forward = PortForward::start(Api::namespaced(client, namespace), pod, KELVIN_PORT).await?;
    Ok(ClusterRoute {
        addr: format!("https://{}", forward.local_addr()),
        token: token.unwrap_or(access.token),
        tls: TlsTrust {
            ca_pem: access.ca_pem,
            server_name: Some(format!("{KELVIN_SERVICE}.{namespace}.svc")),
        },
        context,
        forward,
    })
}
