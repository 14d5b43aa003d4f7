//! The embedded backend: pxtopd's [`pxtopd::run`] on pxtopd's default address
//! (127.0.0.1:50451, so `pxtop run ...` in a second terminal finds it with no flags; a free port
//! when that one is taken) with the same token pxtopd would use (`PXTOP_TOKEN`, else the local
//! token file), started before the TUI takes over the screen (so a failed preflight prints one plain
//! line) and shut down when the command ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{Client, ClientError};

/// How long the embedded backend may take to answer its first request (probes load first).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Failures of the embedded backend; each names the fix.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// This host cannot capture (not root, no BTF, no tracefs): pxtopd's one-line message.
    #[error("--local: {0}")]
    Preflight(#[from] pxtopd::PreflightError),
    /// No loopback port.
    #[error("--local: cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The backend stopped with an error.
    #[error("--local: the embedded backend stopped: {0}")]
    Exited(#[source] pxtopd::Error),
    /// The backend task panicked or was cancelled.
    #[error("--local: the embedded backend crashed: {0}")]
    Crashed(String),
    /// The backend never answered.
    #[error(
        "--local: the embedded backend did not answer within {}s (last error: {last}); run `pxtopd` separately to see its log",
        READY_TIMEOUT.as_secs()
    )]
    NotReady {
        /// The last connection error.
        last: String,
    },
    /// A client for the backend could not be built.
    #[error("--local: {0}")]
    Client(#[from] ClientError),
}

/// The running embedded backend.
#[derive(Debug)]
pub struct LocalBackend {
    addr: String,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), pxtopd::Error>>,
}

fn task_outcome(
    joined: Result<Result<(), pxtopd::Error>, tokio::task::JoinError>,
) -> Result<(), LocalError> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(LocalError::Exited(e)),
        Err(e) => Err(LocalError::Crashed(e.to_string())),
    }
}

impl LocalBackend {
    /// Checks the host, starts the backend on 127.0.0.1:50451 (or a free port) and waits until it answers.
    pub async fn start() -> Result<Self, LocalError> {
        pxtopd::preflight()?;
        let listener = match TcpListener::bind(pxtopd::DEFAULT_LISTEN).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "{} is taken; using a free port", pxtopd::DEFAULT_LISTEN);
                TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .map_err(LocalError::Bind)?
            }
        };
        let port = listener.local_addr().map_err(LocalError::Bind)?.port();
        let token = match pxtopd::token::resolve_server_token() {
            Ok((t, _)) => t,
            Err(e) => {
                tracing::warn!(error = %e, "no local token file; using a one-off token");
                pxtopd::token::random()
            }
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender (pxtop exiting abruptly) also means stop.
            let _ = stopped.await;
        };
        let config = pxtopd::Config::new(token.clone());
        let task = tokio::spawn(pxtopd::run(listener, config, shutdown));
        let mut backend = LocalBackend {
            addr: format!("http://127.0.0.1:{port}"),
            token,
            stop: Some(stop),
            task,
        };
        backend.wait_ready().await?;
        tracing::info!(addr = backend.addr, "embedded backend ready");
        Ok(backend)
    }

    /// Polls ListScripts until it answers, the backend task ends, or the timeout passes.
    async fn wait_ready(&mut self) -> Result<(), LocalError> {
        let mut client = Client::new(&self.addr, Some(&self.token))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last = tokio::select! {
                joined = &mut self.task => {
                    // Finished before answering: it can only have failed (or stopped early).
                    task_outcome(joined)?;
                    return Err(LocalError::Crashed("it stopped before serving".into()));
                }
                answer = client.list_scripts() => match answer {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                },
            };
            if Instant::now() >= deadline {
                return Err(LocalError::NotReady { last });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL to connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops the backend and waits for it (probes detached, server drained).
    pub async fn shutdown(mut self) -> Result<(), LocalError> {
        if let Some(stop) = self.stop.take() {
            // The task may already have ended; then the outcome below says why.
            let _ = stop.send(());
        }
        task_outcome((&mut self.task).await)
    }
}
