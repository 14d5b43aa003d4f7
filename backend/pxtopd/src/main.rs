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
#[command(version)]
struct Args {
    /// Address to serve gRPC on. Keep it on loopback unless a network policy protects it.
    #[arg(long, env = "PXTOP_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
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
    /// Sample every CPU's stacks at 99 Hz (perf_event) and write the counts, symbolized, to
    /// stack_traces (px/perf_flamegraph) this often (0 turns the profiler off).
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    profiler_push_interval: std::time::Duration,
    /// Bytes of each HTTP body kept in tables (bodies are cut with "... [TRUNCATED]").
    #[arg(long, default_value = "1KiB", value_parser = parse_bytes)]
    body_limit: u64,
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
    /// Serve queries without loading probes (no root needed; tables stay empty).
    #[arg(long)]
    no_capture: bool,
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
    if !args.no_capture {
        pxtopd::preflight()?;
    }
    let (token, source) = token::resolve_server_token()
        .map_err(|e| anyhow::anyhow!("token: {e}; or set {}", token::ENV))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; pick a free port with --listen 127.0.0.1:PORT",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let mut config = Config::new(token);
    config.node_budget_bytes = args.node_budget;
    config.table_budgets = args.table_budgets;
    config.capture = !args.no_capture;
    if args.script_timeout.is_zero() {
        anyhow::bail!("--script-timeout must be more than 0, e.g. 30s");
    }
    config.engine.script_timeout = args.script_timeout;
    config.engine.max_operations = args.script_max_operations;
    config.engine.max_call_depth = usize::try_from(args.script_max_call_depth)?;
    config.engine.max_output_rows = usize::try_from(args.max_output_rows)?;
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
    config.pem.profiler_push_interval =
        (!args.profiler_push_interval.is_zero()).then_some(args.profiler_push_interval);
    config.pem.ring_bytes = u32::try_from(args.ring_size)
        .ok()
        .filter(|n| n.is_power_of_two() && *n >= 4096)
        .ok_or_else(|| {
            anyhow::anyhow!("--ring-size must be a power of two from 4KiB to 2GiB, e.g. 32MiB")
        })?;
    eprintln!("pxtopd listening on {addr}");
    match source {
        token::Source::Env => eprintln!("token: from {}", token::ENV),
        token::Source::File(p) => eprintln!("token: in {}", p.display()),
    }
    pxtopd::run(listener, config, shutdown_signal()).await?;
    eprintln!("pxtopd stopped");
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
        let a = Args::try_parse_from(["pxtopd"]).unwrap();
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
        .unwrap();
        assert_eq!(a.script_max_operations, 100);
        assert_eq!(a.script_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(a.max_output_rows, 50);
        assert!(Args::try_parse_from(["pxtopd", "--script-max-operations", "0"]).is_err());
    }
}
