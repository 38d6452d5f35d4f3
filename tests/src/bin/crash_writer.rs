//! Crash-test child: opens an engine on a data directory and places, releases and
//! commits holds from several threads, printing one line per acknowledgement, until it
//! is killed. The parent test kills it with SIGKILL at a random moment and checks that
//! everything printed survived.
//!
//! Usage: `crash_writer <data-dir> <seed>`.

use std::io::Write;
use std::sync::Arc;

use allot_engine::core::{
    Command, EngineError, LineRequest, LocationKind, LocationSpec, Query, Reply, Request,
    ShippingCost,
};
use allot_engine::{Engine, EngineConfig};
use allot_tests::{Ack, Rng};

/// Small enough that the child rolls segments, writes snapshots and trims the log
/// while it is being killed.
const SEGMENT_BYTES_TARGET: u64 = 64 * 1024;
const SNAPSHOT_EVERY_RECORDS: u64 = 1_500;
const WRITER_THREADS: u64 = 8;
const SKUS: u64 = 24;
const LOCATIONS: [&str; 2] = ["L1", "L2"];
const UNITS_PER_CELL: u32 = 1_000_000;
const HOLD_TTL_MS: u64 = 24 * 60 * 60 * 1_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let data_dir = args.next().expect("usage: crash_writer <data-dir> <seed>");
    let seed: u64 = args.next().and_then(|seed| seed.parse().ok()).expect("a numeric seed");
    let config = EngineConfig {
        segment_bytes_target: SEGMENT_BYTES_TARGET,
        snapshot_every_records: SNAPSHOT_EVERY_RECORDS,
        ..EngineConfig::default()
    };
    let engine = Engine::open(&data_dir, config).expect("engine opens");
    set_up_catalogue(&engine);
    println!("ready");
    let stdout = Arc::new(std::io::stdout());
    let workers: Vec<_> = (0..WRITER_THREADS)
        .map(|thread| {
            let engine = engine.clone();
            let stdout = stdout.clone();
            std::thread::spawn(move || drive(&engine, &stdout, Rng::new(seed * 1_000 + thread)))
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

fn set_up_catalogue(engine: &Engine) {
    let exists = engine.query(Query::Location { location: LOCATIONS[0].into() }).wait();
    if exists.is_ok() {
        return;
    }
    for code in LOCATIONS {
        engine
            .submit(Request::new(Command::UpsertLocation(location(code))))
            .wait()
            .expect("location");
        for sku in 0..SKUS {
            let receive = Command::Receive {
                sku: sku_name(sku),
                location: code.into(),
                quantity: UNITS_PER_CELL,
            };
            engine.submit(Request::new(receive)).wait().expect("receipt");
        }
    }
}

/// Places holds and resolves some of the ones it placed, forever.
fn drive(engine: &Engine, stdout: &std::io::Stdout, mut rng: Rng) {
    let mut placed: Vec<u64> = Vec::new();
    loop {
        let roll = rng.below(100);
        let ack = if roll < 70 || placed.is_empty() {
            place(engine, &mut rng)
        } else {
            let hold = placed.swap_remove(rng.below(placed.len() as u64) as usize);
            resolve(engine, hold, roll < 85)
        };
        match ack {
            Ok(ack) => {
                if let Ack::Placed { hold, .. } = &ack {
                    placed.push(*hold);
                }
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}", ack.to_line());
                let _ = out.flush();
            }
            Err(EngineError::Overloaded(_)) => std::thread::yield_now(),
            Err(error) => panic!("unexpected error: {error}"),
        }
    }
}

fn place(engine: &Engine, rng: &mut Rng) -> Result<Ack, EngineError> {
    let lines: Vec<LineRequest> = (0..1 + rng.below(3))
        .map(|_| LineRequest {
            sku: sku_name(rng.below(SKUS)),
            location: LOCATIONS[rng.below(2) as usize].into(),
            quantity: 1 + rng.below(3) as u32,
        })
        .collect();
    let reserve = Command::Reserve { lines: lines.clone(), ttl_ms: Some(HOLD_TTL_MS) };
    match engine.submit(Request::new(reserve)).wait()? {
        Reply::HoldPlaced { hold, .. } => {
            let lines =
                lines.into_iter().map(|line| (line.sku, line.location, line.quantity)).collect();
            Ok(Ack::Placed { hold, lines })
        }
        other => panic!("unexpected reply to a reserve: {other:?}"),
    }
}

fn resolve(engine: &Engine, hold: u64, release: bool) -> Result<Ack, EngineError> {
    if release {
        engine.submit(Request::new(Command::ReleaseHold { hold, lines: Vec::new() })).wait()?;
        Ok(Ack::Released { hold })
    } else {
        let order_number = format!("ORD-{hold}");
        engine.submit(Request::new(Command::CommitHold { hold, order_number })).wait()?;
        Ok(Ack::Committed { hold })
    }
}

fn sku_name(index: u64) -> String {
    format!("SKU-{index:03}")
}

fn location(code: &str) -> LocationSpec {
    LocationSpec {
        code: code.into(),
        name: format!("warehouse {code}"),
        kind: LocationKind::Warehouse,
        latitude_e6: 52_000_000,
        longitude_e6: 0,
        ships: true,
        pickup: false,
        daily_capacity: 10_000,
        shipping_cost: ShippingCost { base_minor: 300, per_km_minor: 1, currency: "EUR".into() },
        priority: 1,
        active: true,
    }
}
