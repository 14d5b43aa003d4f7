//! `pxtopd`: runs the PEM and Kelvin on this node.

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;

// NB: the agent allocates a few small strings per captured request; glibc's malloc spent
// ~20% of pxtopd's CPU under wrk (BENCHMARKS.md), mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use pxtopd::{Config, DEFAULT_LISTEN, token};

/// pxtopd: the pxtop backend on this node. Captures network traffic with eBPF (no code
/// changes), parses it into in-memory tables and serves scripts over gRPC to `pxtop`.
///
/// Clients authenticate with a token: PXTOP_TOKEN if set, else a random token that pxtopd
/// writes to ~/.config/pxtop/local.token (mode 0600), which a local `pxtop` reads by itself.
///
/// Example: sudo pxtopd --listen 127.0.0.1:50451, then: pxtop run px/http_data -o json
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// Run one role of a cluster instead of both on this node.
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    all: AllInOne,
}

/// The default: PEM and Kelvin in one process.
#[derive(Debug, clap::Args)]
struct AllInOne {
    /// Address to serve gRPC on. Keep it on loopback unless a network policy protects it.
    #[arg(long, env = "PXTOP_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    capture: CaptureArgs,
    #[command(flatten)]
    query: QueryArgs,
}

/// TLS on the API port.
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// Serve gRPC over TLS with this certificate (PEM; the chain, leaf first). Clients then
    /// connect with https:// and trust its CA (`pxtop --ca CA.pem`); plaintext is refused.
    #[arg(
        long,
        env = "PXTOP_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "PXTOP_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The identity to serve, checked now so a bad file fails at start with the fix.
    fn load(&self) -> anyhow::Result<Option<pxtop_kelvin::ServerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let tls = pxtop_kelvin::ServerTls::from_files(cert, key)
            .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?;
        pxtop_kelvin::server_builder(Some(&tls)).map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert/--tls-key cannot be used: {}; give a PEM certificate and its PEM \
                 private key",
                error_chain(&e)
            )
        })?;
        Ok(Some(tls))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[derive(Debug, clap::Subcommand)]
enum Role {
    /// A node's agent in a cluster: captures on this node, keeps its tables, runs its part of
    /// every query, and heartbeats Kelvin (re-registering by itself after either restarts).
    ///
    /// Example: pxtopd pem --kelvin kelvin.pxtop:50451 --listen 0.0.0.0:50452
    ///          --advertise $POD_IP:50452 --node-name $NODE_NAME
    Pem(PemArgs),
    /// The cluster's query service: serves pxtop's API and fans every query out to the PEMs
    /// that heartbeat it, merging their answers; PEMs that don't answer are named in a
    /// warning. Captures nothing itself.
    ///
    /// Example: pxtopd kelvin --listen 0.0.0.0:50451
    Kelvin(KelvinArgs),
}

#[derive(Debug, clap::Args)]
struct PemArgs {
    /// Kelvin's address, host:port.
    #[arg(long, env = "PXTOP_KELVIN")]
    kelvin: String,
    /// Kelvin serves TLS: the CA certificate (PEM) to trust it by; its certificate must name
    /// --kelvin's host.
    #[arg(long, env = "PXTOP_KELVIN_CA", value_name = "PATH")]
    kelvin_ca: Option<std::path::PathBuf>,
    /// Address to serve Kelvin's queries on.
    #[arg(long, env = "PXTOP_LISTEN", default_value = "127.0.0.1:50452")]
    listen: SocketAddr,
    /// Address Kelvin reaches this PEM at, host:port (default: --listen, which then must not
    /// be 0.0.0.0). In Kubernetes: $(POD_IP):50452.
    #[arg(long, env = "PXTOP_ADVERTISE")]
    advertise: Option<String>,
    /// This node's name: the PEM's name in warnings and ctx("node") in rows (default: the
    /// host name). In Kubernetes: the downward API's spec.nodeName.
    #[arg(long, env = "PXTOP_NODE_NAME")]
    node_name: Option<String>,
    #[command(flatten)]
    capture: CaptureArgs,
    #[command(flatten)]
    query: QueryArgs,
}

#[derive(Debug, clap::Args)]
struct KelvinArgs {
    /// Address to serve pxtop's API and the PEMs' heartbeats on.
    #[arg(long, env = "PXTOP_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// How long to wait for each PEM's part of a query; a PEM slower than this is named in a
    /// warning and its rows are left out. Keep it below --script-timeout.
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    pem_timeout: std::time::Duration,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    query: QueryArgs,
}

/// What the node keeps and captures.
#[derive(Debug, clap::Args)]
struct CaptureArgs {
    /// Memory all tables together may hold, e.g. 512MiB, 2GiB. Oldest rows go first.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    node_budget: u64,
    /// Budget of one table, overriding its share of --node-budget, e.g. http_events=256MiB.
    /// Repeatable.
    #[arg(long = "table-budget", value_name = "TABLE=SIZE", value_parser = parse_table_budget)]
    table_budgets: Vec<(String, u64)>,
    /// Bytes captured per syscall (the true size is always recorded).
    #[arg(long, default_value = "16KiB", value_parser = parse_bytes)]
    capture_bytes: u64,
    /// Size of the kernel→agent ring buffer, a power of two (e.g. 4MiB, 32MiB). Larger rides
    /// out longer agent stalls; smaller stays in CPU cache. Overflow is counted as lost events
    /// in px/probe_status.
    #[arg(long, default_value = "32MiB", value_parser = parse_bytes)]
    ring_size: u64,
    /// Which client-side records to keep: `remote` (Pixie's rule: only when the server is not
    /// on this host, whose own record already counts the request; the client end of a
    /// loopback connection is then not captured at all) or `all`.
    #[arg(long, value_enum, default_value_t = ClientRecords::Remote)]
    client_records: ClientRecords,
    /// Capture TLS plaintext: uprobes on SSL_read/SSL_write of every OpenSSL (`libssl.so*`)
    /// mapped on the host, looked for every this often (0 turns TLS capture off).
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    tls_scan_interval: std::time::Duration,
    /// Sample every process's CPU, memory and I/O (px/process_stats) and every network
    /// namespace's interface counters (px/network_stats) from /proc this often (0 turns it
    /// off).
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    process_stats_interval: std::time::Duration,
    /// Count TCP retransmits, drops (with the kernel's reason) and state changes per connection
    /// (px/tcp_retransmits, px/tcp_drops) over windows this long (0 turns the probe off).
    #[arg(long, default_value = "1s", value_parser = parse_seconds)]
    tcp_stats_interval: std::time::Duration,
    /// Sample every CPU's stacks at 99 Hz (perf_event) and write the counts, symbolized, to
    /// stack_traces (px/perf_flamegraph) this often (0 turns the profiler off).
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    profiler_push_interval: std::time::Duration,
    /// Bytes of each HTTP body kept in tables (bodies are cut with "... [TRUNCATED]").
    #[arg(long, default_value = "1KiB", value_parser = parse_bytes)]
    body_limit: u64,
    /// Serve queries without loading probes (no root needed; tables stay empty).
    #[arg(long)]
    no_capture: bool,
    /// Whose traffic to capture: `node` (every process on this kernel) or `netns` (only
    /// processes in pxtopd's own network namespace: several PEMs sharing one kernel, each in
    /// a namespace, as in tests and dev clusters).
    #[arg(long, value_enum, default_value_t = CaptureScope::Node)]
    capture_scope: CaptureScope,
    /// Name rows after the cluster's pods, services, namespaces, nodes and owners, watching
    /// the Kubernetes API (the pod's service account, else KUBECONFIG). Default: on when
    /// KUBERNETES_SERVICE_HOST is set (in a pod), falling back to local names if the API
    /// cannot be reached; with --kube that is an error.
    #[arg(long, conflicts_with = "no_kube")]
    kube: bool,
    /// Never watch the Kubernetes API: rows are named after processes and this host.
    #[arg(long)]
    no_kube: bool,
    /// How long start-up waits for the Kubernetes API's first lists before serving anyway
    /// (lookups answer locally until they arrive; px/probe_status's kube_metadata row says
    /// what is pending).
    #[arg(long, default_value = "30s", value_parser = parse_seconds)]
    kube_sync_timeout: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CaptureScope {
    Node,
    Netns,
}

/// Limits on scripts and their results.
#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// Deadline for running a script, and separately for computing its tables (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = parse_seconds)]
    script_timeout: std::time::Duration,
    /// Script operations allowed (scripts only build queries; this stops runaway loops).
    #[arg(long, default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    script_max_operations: u64,
    /// How deeply a script's function calls may nest.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1000))]
    script_max_call_depth: u64,
    /// Rows kept per output table; more are cut and the client warned.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_output_rows: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ClientRecords {
    Remote,
    All,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 4096, 64KiB, 512MiB or 2GiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}; use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `10s`, `2s`, `0`: whole or fractional seconds.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let n = s.trim().strip_suffix('s').unwrap_or(s.trim());
    n.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a duration in seconds, e.g. 10s or 0"))
}

fn parse_table_budget(s: &str) -> Result<(String, u64), String> {
    let (name, size) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write TABLE=SIZE, e.g. http_events=256MiB"))?;
    Ok((name.trim().to_string(), parse_bytes(size)?))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pxtopd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let (token, source) = token::resolve_server_token()
        .map_err(|e| anyhow::anyhow!("token: {e}; or set {}", token::ENV))?;
    let mut config = Config::new(token);
    let (listen, role) = match args.role {
        None => {
            apply_capture(&mut config, &args.all.capture)?;
            apply_query(&mut config, &args.all.query)?;
            config.tls = args.all.tls.load()?;
            (args.all.listen, None)
        }
        Some(Role::Pem(p)) => {
            apply_capture(&mut config, &p.capture)?;
            apply_query(&mut config, &p.query)?;
            config.node_name = p.node_name.clone();
            let advertise = match p.advertise {
                Some(a) => a,
                None if p.listen.ip().is_unspecified() => anyhow::bail!(
                    "--listen {} is every interface: say which address Kelvin reaches this \
                     PEM at with --advertise HOST:PORT",
                    p.listen
                ),
                None => p.listen.to_string(),
            };
            let kelvin_ca = p
                .kelvin_ca
                .as_ref()
                .map(|path| {
                    std::fs::read(path)
                        .map_err(|e| anyhow::anyhow!("--kelvin-ca {}: {e}", path.display()))
                })
                .transpose()?;
            let role = pxtopd::PemRole {
                kelvin: p.kelvin,
                advertise,
                kelvin_ca,
            };
            (p.listen, Some(Ok(role)))
        }
        Some(Role::Kelvin(k)) => {
            apply_query(&mut config, &k.query)?;
            config.tls = k.tls.load()?;
            config.capture = false;
            if k.pem_timeout.is_zero() {
                anyhow::bail!("--pem-timeout must be more than 0, e.g. 10s");
            }
            (k.listen, Some(Err(k.pem_timeout)))
        }
    };
    if config.capture {
        pxtopd::preflight()?;
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {e}; pick a free port with --listen 127.0.0.1:PORT"
        )
    })?;
    let addr = listener.local_addr()?;
    if config.tls.is_some() {
        eprintln!("TLS: on (clients connect with https:// and trust its CA)");
    }
    match &role {
        None => eprintln!("pxtopd listening on {addr}"),
        Some(Ok(p)) => eprintln!(
            "pxtopd pem listening on {addr} (advertised as {}), registering with Kelvin at {}",
            p.advertise, p.kelvin
        ),
        Some(Err(_)) => eprintln!("pxtopd kelvin listening on {addr}"),
    }
    match source {
        token::Source::Env => eprintln!("token: from {}", token::ENV),
        token::Source::File(p) => eprintln!("token: in {}", p.display()),
    }
    match role {
        None => pxtopd::run(listener, config, shutdown_signal()).await?,
        Some(Ok(p)) => pxtopd::run_pem(listener, config, p, shutdown_signal()).await?,
        Some(Err(t)) => pxtopd::run_kelvin(listener, config, t, shutdown_signal()).await?,
    }
    eprintln!("pxtopd stopped");
    Ok(())
}

fn apply_capture(config: &mut Config, args: &CaptureArgs) -> anyhow::Result<()> {
    config.node_budget_bytes = args.node_budget;
    config.table_budgets = args.table_budgets.clone();
    config.capture = !args.no_capture;
    config.pem.own_netns_only = args.capture_scope == CaptureScope::Netns;
    config.kube = match (args.kube, args.no_kube) {
        (true, _) => pxtopd::KubeMode::On,
        (_, true) => pxtopd::KubeMode::Off,
        _ => pxtopd::KubeMode::Auto,
    };
    config.kube_sync_timeout = args.kube_sync_timeout;
    config.pem.capture_bytes = u32::try_from(args.capture_bytes)
        .map_err(|_| anyhow::anyhow!("--capture-bytes is too large"))?;
    config.pem.body_limit = usize::try_from(args.body_limit)?;
    config.pem.client_side = match args.client_records {
        ClientRecords::Remote => pxtop_pem::ClientSide::RemoteOnly,
        ClientRecords::All => pxtop_pem::ClientSide::All,
    };
    config.pem.tls_scan_interval =
        (!args.tls_scan_interval.is_zero()).then_some(args.tls_scan_interval);
    config.pem.process_stats_interval =
        (!args.process_stats_interval.is_zero()).then_some(args.process_stats_interval);
    config.pem.tcp_stats_interval =
        (!args.tcp_stats_interval.is_zero()).then_some(args.tcp_stats_interval);
    config.pem.profiler_push_interval =
        (!args.profiler_push_interval.is_zero()).then_some(args.profiler_push_interval);
    config.pem.ring_bytes = u32::try_from(args.ring_size)
        .ok()
        .filter(|n| n.is_power_of_two() && *n >= 4096)
        .ok_or_else(|| {
            anyhow::anyhow!("--ring-size must be a power of two from 4KiB to 2GiB, e.g. 32MiB")
        })?;
    Ok(())
}

fn apply_query(config: &mut Config, args: &QueryArgs) -> anyhow::Result<()> {
    if args.script_timeout.is_zero() {
        anyhow::bail!("--script-timeout must be more than 0, e.g. 30s");
    }
    config.engine.script_timeout = args.script_timeout;
    config.engine.max_operations = args.script_max_operations;
    config.engine.max_call_depth = usize::try_from(args.script_max_call_depth)?;
    config.engine.max_output_rows = usize::try_from(args.max_output_rows)?;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_bad_ones_name_the_fix() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert!(parse_bytes("lots").unwrap_err().contains("512MiB"));
        assert!(
            parse_bytes("3TB")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert_eq!(
            parse_table_budget("http_events=1MiB"),
            Ok(("http_events".into(), 1 << 20))
        );
        assert!(parse_table_budget("http_events").is_err());
    }
}

#[cfg(test)]
mod script_limit_tests {
    use clap::Parser;

    use super::Args;

    #[test]
    fn script_limits_parse_and_default_to_the_engine_defaults() {
        let a = Args::try_parse_from(["pxtopd"]).unwrap().all.query;
        let d = pxtop_engine::EngineConfig::default();
        assert_eq!(a.script_max_operations, d.max_operations);
        assert_eq!(a.script_timeout, d.script_timeout);
        assert_eq!(a.max_output_rows as usize, d.max_output_rows);
        assert_eq!(a.script_max_call_depth as usize, d.max_call_depth);
        let a = Args::try_parse_from([
            "pxtopd",
            "--script-max-operations",
            "100",
            "--script-timeout",
            "2.5s",
            "--max-output-rows",
            "50",
        ])
        .unwrap()
        .all
        .query;
        assert_eq!(a.script_max_operations, 100);
        assert_eq!(a.script_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(a.max_output_rows, 50);
        assert!(Args::try_parse_from(["pxtopd", "--script-max-operations", "0"]).is_err());
    }

    #[test]
    fn roles_parse_with_their_own_flags() {
        let a = Args::try_parse_from([
            "pxtopd",
            "pem",
            "--kelvin",
            "10.0.0.1:50451",
            "--listen",
            "0.0.0.0:50452",
            "--advertise",
            "10.0.0.7:50452",
            "--node-name",
            "node-7",
            "--no-capture",
        ])
        .unwrap();
        let Some(super::Role::Pem(p)) = a.role else {
            panic!("not a PEM: {a:?}")
        };
        assert_eq!(p.kelvin, "10.0.0.1:50451");
        assert_eq!(p.advertise.as_deref(), Some("10.0.0.7:50452"));
        assert_eq!(p.node_name.as_deref(), Some("node-7"));
        assert!(p.capture.no_capture);
        assert!(!p.capture.kube && !p.capture.no_kube);
        let a = Args::try_parse_from(["pxtopd", "pem", "--kelvin", "k:1", "--no-kube"]).unwrap();
        let Some(super::Role::Pem(p)) = a.role else {
            panic!("not a PEM: {a:?}")
        };
        assert!(p.capture.no_kube);
        assert!(Args::try_parse_from(["pxtopd", "--kube", "--no-kube"]).is_err());
        assert!(Args::try_parse_from(["pxtopd", "kelvin", "--kube"]).is_err());
        let a = Args::try_parse_from(["pxtopd", "kelvin", "--pem-timeout", "5s"]).unwrap();
        let Some(super::Role::Kelvin(k)) = a.role else {
            panic!("not Kelvin: {a:?}")
        };
        assert_eq!(k.pem_timeout, std::time::Duration::from_secs(5));
        // Kelvin captures nothing, so capture flags are refused there.
        assert!(Args::try_parse_from(["pxtopd", "kelvin", "--no-capture"]).is_err());
        // A PEM must know its Kelvin.
        assert!(Args::try_parse_from(["pxtopd", "pem"]).is_err());
    }

    #[test]
    fn tls_flags_come_in_pairs_and_bad_files_name_the_flags() {
        let a = Args::try_parse_from([
            "pxtopd",
            "kelvin",
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/k.pem",
        ])
        .unwrap();
        let Some(super::Role::Kelvin(k)) = a.role else {
            panic!("not Kelvin: {a:?}")
        };
        assert_eq!(
            k.tls.tls_cert.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        // A certificate without its key (or the reverse) is refused by clap.
        assert!(Args::try_parse_from(["pxtopd", "--tls-cert", "/c.pem"]).is_err());
        assert!(Args::try_parse_from(["pxtopd", "kelvin", "--tls-key", "/k.pem"]).is_err());
        let a = Args::try_parse_from([
            "pxtopd",
            "pem",
            "--kelvin",
            "kelvin:1",
            "--kelvin-ca",
            "/ca.pem",
        ])
        .unwrap();
        let Some(super::Role::Pem(p)) = a.role else {
            panic!("not a PEM: {a:?}")
        };
        assert_eq!(
            p.kelvin_ca.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );

        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let tls = |cert: &std::path::Path, key: &std::path::Path| super::TlsArgs {
            tls_cert: Some(cert.to_path_buf()),
            tls_key: Some(key.to_path_buf()),
        };
        let err = tls(&cert, &key).load().unwrap_err().to_string();
        assert!(err.starts_with("--tls-cert/--tls-key: "), "{err}");
        assert!(err.contains("c.pem"), "{err}");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = tls(&cert, &key).load().unwrap_err().to_string();
        assert!(
            err.starts_with("--tls-cert/--tls-key cannot be used: "),
            "{err}"
        );
        assert!(
            err.ends_with("give a PEM certificate and its PEM private key"),
            "{err}"
        );
    }
}
