//! Criterion benches of the embedded durable pipeline (sequencer + WAL fdatasync, no
//! network) and of recovery: DESIGN §6 targets ≥ 2 M holds/s with 64 submitters and
//! ≥ 3 M records/s of WAL replay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_bench::{Catalogue, CatalogueSpec};
use allot_engine::core::{Reply, Request};
use allot_engine::{Engine, EngineConfig, ReplayFrom, SUBMIT_BATCH_REQUESTS_MAX, rebuild_state};
use allot_snapshots::FsStorage;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SUBMITTERS: usize = 64;
const HOLDS_PER_BATCH: usize = 64;
/// Holds live for an hour so none expire while a bench runs.
const HOLD_TTL_MS: u64 = 60 * 60 * 1_000;
/// Enough stock that a bench never runs a cell dry.
const UNITS_PER_CELL: u32 = 1_000_000;
const REPLAY_RECORDS: usize = 1_000_000;

fn catalogue() -> Catalogue {
    Catalogue::new(CatalogueSpec {
        n_skus: 10_000,
        n_locations: 50,
        locations_per_sku: 10,
        units_per_cell: UNITS_PER_CELL,
        seed: 6,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Submits `requests` in batches from one thread and checks every one succeeded.
fn submit_all(engine: &Engine, requests: impl Iterator<Item = Request>) -> usize {
    let requests: Vec<Request> = requests.collect();
    for chunk in requests.chunks(SUBMIT_BATCH_REQUESTS_MAX) {
        let outcomes = engine.submit_batch(chunk.to_vec()).wait().expect("batch accepted");
        assert!(outcomes.iter().all(Result::is_ok), "setup request failed");
    }
    requests.len()
}

fn loaded_engine(dir: &std::path::Path, catalogue: &Catalogue, config: EngineConfig) -> Engine {
    let engine = Engine::open(dir, config).expect("engine opens");
    submit_all(&engine, catalogue.setup_requests());
    engine
}

/// `SUBMITTERS` tasks, each with its own pre-drawn holds, run until all are answered.
fn run_submitters(
    engine: &Engine,
    catalogue: &Catalogue,
    holds: u64,
    batched: bool,
    round: u64,
) -> Duration {
    let per_task = (holds as usize).div_ceil(SUBMITTERS);
    let work: Vec<Vec<Request>> = (0..SUBMITTERS)
        .map(|task| {
            let mut draws = catalogue.holds(round * 1_000 + task as u64).with_ttl(HOLD_TTL_MS);
            (0..per_task).map(|_| draws.one_line()).collect()
        })
        .collect();
    let runtime = runtime();
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = work
            .into_iter()
            .map(|requests| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    if batched {
                        submit_batches(&engine, requests).await
                    } else {
                        submit_one_at_a_time(&engine, requests).await
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("submitter finished");
        }
    });
    started.elapsed()
}

async fn submit_one_at_a_time(engine: &Engine, requests: Vec<Request>) {
    for request in requests {
        let reply = engine.submit(request).await;
        assert!(matches!(reply, Ok(Reply::HoldPlaced { .. })), "hold failed: {reply:?}");
    }
}

async fn submit_batches(engine: &Engine, requests: Vec<Request>) {
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let batch: Vec<Request> = requests.by_ref().take(HOLDS_PER_BATCH).collect();
        let outcomes = engine.submit_batch(batch).await.expect("batch accepted");
        assert!(outcomes.iter().all(Result::is_ok), "a hold failed");
    }
}

fn pipeline(c: &mut Criterion) {
    let catalogue = catalogue();
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = loaded_engine(dir.path(), &catalogue, EngineConfig::default());
    let mut group = c.benchmark_group("pipeline");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(1));
    let mut round = 0;
    group.bench_function("one_at_a_time_64_submitters", |b| {
        b.iter_custom(|holds| {
            round += 1;
            run_submitters(&engine, &catalogue, holds, false, round)
        })
    });
    group.bench_function("batches_of_64_from_64_submitters", |b| {
        b.iter_custom(|holds| {
            round += 1;
            run_submitters(&engine, &catalogue, holds, true, round)
        })
    });
    group.finish();
    engine.shutdown();
}

/// A directory whose log holds the catalogue and `REPLAY_RECORDS` one-line holds, and
/// no snapshot, so recovery replays every record.
fn log_to_replay(dir: &std::path::Path) -> u64 {
    let catalogue = catalogue();
    let config = EngineConfig {
        snapshot_every_records: 0,
        snapshot_on_shutdown: false,
        ..EngineConfig::default()
    };
    let engine = loaded_engine(dir, &catalogue, config);
    let mut draws = catalogue.holds(99).with_ttl(HOLD_TTL_MS);
    submit_all(&engine, (0..REPLAY_RECORDS).map(|_| draws.one_line()));
    engine.shutdown();
    let (_, report) =
        rebuild_state(Arc::new(FsStorage), dir, ReplayFrom::WholeLog).expect("replays");
    report.records_replayed
}

fn replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = log_to_replay(dir.path());
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(records));
    group.bench_function(format!("replay_{records}_records"), |b| {
        // Dropping the rebuilt state is not part of recovery; keep it out of the timing.
        b.iter_with_large_drop(|| {
            rebuild_state(Arc::new(FsStorage), dir.path(), ReplayFrom::WholeLog).expect("replays")
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline, replay);
criterion_main!(benches);
