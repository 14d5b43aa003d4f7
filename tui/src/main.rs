//! The `pxtop` binary: parses the command line, sets up logging, and calls [`pxtop::run`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use pxtop::cli::Cli;
use tracing_subscriber::EnvFilter;

// NB: `pxtop --local` runs the capture agent in this process; see pxtopd's main for why.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs go to stderr, except in the TUI, which owns the screen: there they go to a file in the
/// cache directory (only when a filter asks for them).
fn init_tracing(tui: bool) {
    let filter = std::env::var("PXTOP_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    // kube's client logs the failures pxtop reports itself (with a hint); not twice.
    let env_filter = EnvFilter::new(filter.as_deref().unwrap_or("warn,kube_client=off"));
    if !tui {
        tracing_subscriber::fmt()
            .with_env_filter(env_filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    if filter.is_none() {
        return;
    }
    let Some(dir) = dirs::cache_dir().map(|d| d.join("pxtop")) else {
        return;
    };
    let file = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("pxtop.log"))
    });
    if let Ok(file) = file {
        tracing_subscriber::fmt()
            .with_env_filter(env_filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.command.is_none());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pxtop: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pxtop::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pxtop: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}
