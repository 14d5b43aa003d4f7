//! Harness for pxtop's end-to-end tests: real servers from Debian packages started on loopback
//! with configs the tests write, a raw-socket HTTP/1 load client whose every request is known,
//! and the pxtopd backend run in-process with real probes.
#![forbid(unsafe_code)]

pub mod client;
pub mod dnsmasq;
pub mod grpc;
pub mod mariadb;
pub mod nginx;
pub mod postgres;
pub mod redis;

use std::time::Duration;

/// Whether this test may use eBPF here: true as root; outside CI a non-root run skips with a
/// one-line reason; in CI (`CI` set) a missing privilege is a failure, not a skip.
pub fn may_use_ebpf() -> bool {
    match pxtop_pem::preflight() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            false
        }
        Err(e) => panic!("CI must run the eBPF tests, but: {e}"),
    }
}

/// A running in-process pxtopd (PEM with real probes + Kelvin) on a loopback port.
pub struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The token it accepts.
    pub token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), pxtopd::Error>>>,
}

impl Backend {
    /// Starts pxtopd with capture on, port 0.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let token = format!("e2e-{}", std::process::id());
        let mut config = pxtopd::Config {
            token: token.clone(),
            capture: true,
            ..pxtopd::Config::default()
        };
        // NB: every second instead of Pixie's 10 s, so tests see samples soon.
        config.pem.conn_stats_interval = Duration::from_secs(1);
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(pxtopd::run(listener, config, async move {
            let _ = rx.await;
        }));
        // NB: run() attaches the probes before it serves, so the first answer means capture is on.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if task.is_finished() {
                let res = task.await?;
                anyhow::bail!("pxtopd stopped at start: {res:?}");
            }
            if health(&url, &token).await.is_ok() {
                break;
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("pxtopd did not answer within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            url,
            token,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops it and reports how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => Ok(t.await??),
            None => Ok(()),
        }
    }
}

/// The `pxtop` binary built alongside these tests (target/<profile>/pxtop).
pub fn pxtop_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("PXTOP_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/e2e-HASH -> target/debug/pxtop
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    dir.join("pxtop")
}

async fn health(url: &str, token: &str) -> anyhow::Result<()> {
    let mut client = pxtop_proto::v1::pxtop_client::PxtopClient::connect(url.to_string()).await?;
    let mut req = tonic::Request::new(pxtop_proto::v1::HealthRequest {});
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    client.health(req).await?;
    Ok(())
}
