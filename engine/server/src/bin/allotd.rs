//! `allotd`, the allot server: reads its configuration (file < environment < flags),
//! serves QUIC until SIGINT or SIGTERM, then shuts down cleanly.
//!
//! When it is ready it prints exactly one line to stdout, `allotd listening on <addr>`,
//! with the address actually bound; scripts and tests wait for that line. Logs go to
//! stderr, filtered by `RUST_LOG` (default `info`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use allot_server::memory_budget::{MemoryBudget, machine_memory_bytes};
use allot_server::{Flags, Server, ServerConfig};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// The allot order engine's QUIC server.
#[derive(Debug, Parser)]
#[command(name = "allotd", version)]
struct Cli {
    /// TOML configuration file (see engine/server/allotd.example.toml).
    #[arg(long, value_name = "FILE", env = "ALLOTD_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the log, snapshots and development files [default: ./allot-data].
    #[arg(long, value_name = "DIR", env = "ALLOTD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on; port 0 picks a free one [default: 127.0.0.1:7411].
    #[arg(long, value_name = "ADDR", env = "ALLOTD_LISTEN")]
    listen: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; logs redirected to a file stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let cli = Cli::parse();
    let flags = Flags { config: cli.config, data_dir: cli.data_dir, listen: cli.listen };
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match ServerConfig::load(&flags, &env) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let budget = MemoryBudget::of(&config, machine_memory_bytes());
    if let Err(error) = budget.check() {
        return fail(&error);
    }
    tracing::info!(budget = %budget.describe(), "memory budget");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = config.network_threads_for(cores);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    runtime.block_on(run(config))
}

async fn run(config: ServerConfig) -> ExitCode {
    // Signals are caught before the ready line, so a SIGTERM right after it is clean too.
    let (mut interrupt, mut terminate) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(error), _) | (_, Err(error)) => {
                return fail(&format!("cannot handle signals: {error}"));
            }
        };
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(error) => return fail(&error),
    };
    let mut stdout = std::io::stdout().lock();
    let announced = writeln!(stdout, "allotd listening on {}", server.local_addr())
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(error) = announced {
        tracing::warn!(%error, "cannot write the listening line to stdout");
    }
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("allotd: {error}");
    ExitCode::FAILURE
}
