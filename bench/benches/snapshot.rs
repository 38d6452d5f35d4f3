//! Snapshot cost with 1 M stock cells and 1 M live three-line holds (standing in for open
//! orders until orders exist): how long a snapshot takes, and how much a client
//! submitting holds one at a time notices while it is written (DESIGN §6: ≤ 3 s, writer
//! pause ≤ 1 ms). Prints a table; `cargo bench -p allot-bench --bench snapshot`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use allot_bench::{Catalogue, CatalogueSpec};
use allot_engine::core::{Reply, Request};
use allot_engine::{Engine, EngineConfig, SUBMIT_BATCH_REQUESTS_MAX};

const CELLS_SKUS: usize = 100_000;
const LOCATIONS_PER_SKU: usize = 10;
const LIVE_HOLDS: usize = 1_000_000;
const HOLD_TTL_MS: u64 = 60 * 60 * 1_000;
const PROBE_WINDOW: Duration = Duration::from_secs(3);

fn main() {
    let catalogue = Catalogue::new(CatalogueSpec {
        n_skus: CELLS_SKUS,
        n_locations: 50,
        locations_per_sku: LOCATIONS_PER_SKU,
        units_per_cell: 1_000_000,
        seed: 11,
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let config = EngineConfig {
        snapshot_every_records: 0,
        snapshot_on_shutdown: false,
        ..EngineConfig::default()
    };
    let engine = Engine::open(dir.path(), config).expect("engine opens");
    let loading = Instant::now();
    submit_all(&engine, catalogue.setup_requests().collect());
    let mut draws = catalogue.holds(1).with_ttl(HOLD_TTL_MS);
    submit_all(&engine, (0..LIVE_HOLDS).map(|_| draws.cart(3)).collect());
    println!(
        "loaded {} cells and {LIVE_HOLDS} three-line holds in {:.1} s",
        catalogue.cell_count(),
        loading.elapsed().as_secs_f64()
    );

    let quiet = probe_latencies(&engine, &catalogue, None);
    let snapshot_took = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let during = probe_latencies(&engine, &catalogue, Some(snapshot_took.clone()));
    let snapshot_took = *snapshot_took.lock().expect("lock");
    let bytes: u64 = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".snap"))
        .map(|entry| entry.metadata().map(|meta| meta.len()).unwrap_or(0))
        .max()
        .unwrap_or(0);
    println!(
        "snapshot: {:.2} s, {:.1} MiB",
        snapshot_took.as_secs_f64(),
        bytes as f64 / 1_048_576.0
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9}",
        "one-at-a-time hold latency", "holds", "p50 µs", "p99 µs", "max µs"
    );
    print_row("no snapshot", &quiet);
    print_row("while a snapshot is written", &during);
    engine.shutdown();
}

fn submit_all(engine: &Engine, requests: Vec<Request>) {
    for chunk in requests.chunks(SUBMIT_BATCH_REQUESTS_MAX) {
        let outcomes = engine.submit_batch(chunk.to_vec()).wait().expect("batch accepted");
        assert!(outcomes.iter().all(Result::is_ok), "a setup request failed");
    }
}

/// Places one-line holds one at a time for `PROBE_WINDOW`, returning each latency. With
/// `snapshot`, a snapshot is requested at the start of the window and its duration stored.
fn probe_latencies(
    engine: &Engine,
    catalogue: &Catalogue,
    snapshot: Option<Arc<std::sync::Mutex<Duration>>>,
) -> Vec<Duration> {
    let done = Arc::new(AtomicBool::new(false));
    let snapshotter = snapshot.map(|took| {
        let engine = engine.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            engine.snapshot().wait().expect("snapshot written");
            *took.lock().expect("lock") = started.elapsed();
            done.store(true, Ordering::SeqCst);
        })
    });
    let mut draws = catalogue.holds(2).with_ttl(HOLD_TTL_MS);
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < PROBE_WINDOW
        || (snapshotter.is_some() && !done.load(Ordering::SeqCst))
    {
        let request = draws.one_line();
        let sent = Instant::now();
        let reply = engine.submit(request).wait();
        latencies.push(sent.elapsed());
        assert!(matches!(reply, Ok(Reply::HoldPlaced { .. })), "probe hold failed: {reply:?}");
    }
    if let Some(thread) = snapshotter {
        thread.join().expect("snapshot thread");
    }
    latencies
}

fn print_row(label: &str, latencies: &[Duration]) {
    let mut sorted: Vec<Duration> = latencies.to_vec();
    sorted.sort_unstable();
    let at = |quantile: f64| sorted[((sorted.len() - 1) as f64 * quantile) as usize].as_micros();
    println!("{label:<34} {:>8} {:>9} {:>9} {:>9}", sorted.len(), at(0.5), at(0.99), at(1.0));
}
