//! `allot-bench`, the load harness: it loads a catalogue into a server, drives one of the
//! DESIGN §6 workloads at it over QUIC (closed or open loop), measures throughput and
//! latency, and audits the server's counters against everything it was acknowledged.
//!
//! A run goes: connect → setup (timed apart) → baseline read → load (warm-up, then the
//! measured window) → wait for the expiries it counts on → read again → audit → report.

pub mod ack_log;
pub mod args;
pub mod audit;
pub mod driver;
pub mod ledger;
pub mod lifecycle;
pub mod report;
pub mod setup;
pub mod target;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use allot_client::Client;

pub use args::{Args, Settings, WorkloadKind};
pub use report::Report;

use ack_log::AckLogWriter;
use driver::{Progress, Window};
use setup::SetupReport;
use target::Embedded;
use workload::Buyers;

use crate::{Catalogue, CatalogueSpec};

/// How long after the last expiry it counts on the audit waits before reading: one expiry
/// bucket (holds expire at the end of theirs), the writer's longest idle sleep, and room
/// for a busy machine.
pub const EXPIRY_SETTLE_MS: u64 = 1_000 + allot_engine::IDLE_WAKE_MS_MAX + 1_750;

/// Why a run could not be completed (a failed audit is not one: it is in the report).
#[derive(Debug)]
pub enum HarnessError {
    Args(String),
    Target(String),
    Setup(String),
    Audit(String),
    Io(String),
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HarnessError::Args(message) => write!(f, "arguments: {message}"),
            HarnessError::Target(message) => write!(f, "target: {message}"),
            HarnessError::Setup(message) => write!(f, "setup: {message}"),
            HarnessError::Audit(message) => write!(f, "audit: {message}"),
            HarnessError::Io(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// `allot-bench`'s exit status for a run: 0 when the audit passed, 1 when it failed, 2
/// when the run could not be made.
pub fn exit_status(outcome: &Result<Report, HarnessError>) -> u8 {
    match outcome {
        Ok(report) if report.audit.passed => 0,
        Ok(_) => 1,
        Err(_) => 2,
    }
}

/// The catalogue a run of `settings` loads.
pub fn catalogue(settings: &Settings) -> Catalogue {
    let catalogue = Catalogue::new(CatalogueSpec {
        n_skus: settings.skus,
        n_locations: settings.locations,
        locations_per_sku: settings.stocked_per_sku,
        units_per_cell: settings.units_per_cell,
        seed: settings.seed,
    })
    .with_sku_prefix(&settings.sku_prefix);
    match settings.workload {
        WorkloadKind::Lifecycle => catalogue.with_daily_capacity(args::LIFECYCLE_DAILY_CAPACITY),
        WorkloadKind::Hold | WorkloadKind::Checkout | WorkloadKind::FlashSale => catalogue,
    }
}

/// Runs what `args` ask for and returns the report (its audit may have failed).
pub async fn run(args: &Args) -> Result<Report, HarnessError> {
    let mut settings = Settings::resolve(args).map_err(HarnessError::Args)?;
    let (embedded, config) = if args.embedded {
        let (embedded, config) = Embedded::start().await?;
        settings.target = format!("embedded allotd at {}", embedded.addr());
        (Some(embedded), config)
    } else {
        (None, target::remote_config(args)?)
    };
    let clients = target::connect(config, settings.connections, settings.timeout_ms).await?;
    let report = run_on(&settings, &clients, args).await;
    for client in &clients {
        client.close().await;
    }
    if let Some(embedded) = embedded {
        embedded.stop().await;
    }
    let report = report?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("the report serialises");
        std::fs::write(path, json + "\n").map_err(|error| {
            HarnessError::Io(format!("cannot write {}: {error}", path.display()))
        })?;
    }
    Ok(report)
}

async fn run_on(
    settings: &Settings,
    clients: &[Client],
    args: &Args,
) -> Result<Report, HarnessError> {
    let catalogue = Arc::new(catalogue(settings));
    let (requests, setup_time) = setup::load_catalogue(clients, &catalogue).await?;
    let baseline_started = Instant::now();
    let before = audit::read_cells(clients, &catalogue).await?;
    let setup = SetupReport {
        requests,
        seconds: setup_time.as_secs_f64(),
        baseline_seconds: baseline_started.elapsed().as_secs_f64(),
    };
    let (ack_log, ack_writer) = match &args.ack_log {
        Some(path) => {
            let (log, writer) = AckLogWriter::create(path, catalogue.clone()).map_err(|error| {
                HarnessError::Io(format!("cannot write {}: {error}", path.display()))
            })?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };

    let window = Window::new(
        Instant::now(),
        Duration::from_secs_f64(settings.warmup_s),
        Duration::from_secs_f64(settings.duration_s),
    );
    let progress = Arc::new(Progress::default());
    let buyers = Arc::new(Buyers::new(settings.buyers.unwrap_or(0)));
    let headline = if settings.workload == WorkloadKind::Lifecycle { "orders" } else { "holds" };
    let printer = (!args.quiet)
        .then(|| tokio::spawn(print_progress(window, progress.clone(), buyers.clone(), headline)));
    let load = driver::run_load(
        settings,
        clients,
        &catalogue,
        ack_log.as_ref(),
        window,
        &progress,
        &buyers,
    )
    .await;
    if let Some(printer) = printer {
        printer.abort();
    }
    drop(ack_log);
    if let Some(writer) = ack_writer {
        writer.finish().map_err(|error| HarnessError::Io(format!("ack log: {error}")))?;
    }

    settle(load.ledger.settle_at_ms).await;
    let after = audit::read_cells(clients, &catalogue).await?;
    let sampled = audit::read_samples(clients, &load.ledger).await?;
    let orders = audit::read_order_samples(clients, &load.ledger).await?;
    let audit =
        audit::check(settings, &catalogue, &before, &after, &load.ledger, &sampled, &orders);
    let elapsed = load
        .recorder
        .last_done
        .map_or(Duration::ZERO, |done| done.saturating_duration_since(window.measure_from));
    Ok(Report::new(
        settings.clone(),
        &load.recorder,
        elapsed.as_secs_f64(),
        setup,
        &load.ledger,
        audit,
        load.saturated,
    ))
}

/// Waits until every expiry due by `settle_at_ms` (Unix milliseconds) has happened.
async fn settle(settle_at_ms: u64) {
    if settle_at_ms == 0 {
        return;
    }
    let now_ms =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
    let wait_ms = (settle_at_ms + EXPIRY_SETTLE_MS).saturating_sub(now_ms);
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
}

/// One line a second on stderr: phase, requests and holds (or orders) placed per second,
/// errors so far.
async fn print_progress(
    window: Window,
    progress: Arc<Progress>,
    buyers: Arc<Buyers>,
    headline: &'static str,
) {
    let mut ticks = tokio::time::interval_at(
        (window.start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let (mut requests_then, mut placed_then) = (0, 0);
    loop {
        let tick = ticks.tick().await.into_std();
        let requests = progress.requests.load(Ordering::Relaxed);
        let placed = progress.placed.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        // The line covers the second before `tick`.
        let phase = if tick <= window.measure_from { "warm-up" } else { "measure" };
        let buyers = match buyers.claimed() {
            0 => String::new(),
            claimed => format!("  buyers {claimed}"),
        };
        eprintln!(
            "[{:>4.0} s {phase}] {:>9} req/s {:>9} {headline}/s  errors {errors}{buyers}",
            tick.duration_since(window.start).as_secs_f64(),
            requests - requests_then,
            placed - placed_then,
        );
        (requests_then, placed_then) = (requests, placed);
    }
}
