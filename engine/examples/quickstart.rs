//! Runs the embedded engine on a data directory: creates a location, receives stock,
//! holds some of it and reads it back. Run it twice to see state survive a restart.
//!
//! `cargo run -p allot-engine --example quickstart -- [DATA_DIR]` (default `./data`).

use allot_engine::core::{
    Command, LineRequest, LocationKind, LocationSpec, Query, Reply, Request, ShippingCost,
};
use allot_engine::{Engine, EngineConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::args().nth(1).unwrap_or_else(|| "data".to_owned());
    let engine = Engine::open(&data_dir, EngineConfig::default())?;
    println!("opened {data_dir}: {:?}", engine.recovery_report());

    let store = LocationSpec {
        code: "LDN-1".into(),
        name: "London flagship".into(),
        kind: LocationKind::Store,
        latitude_e6: 51_507_400,
        longitude_e6: -127_800,
        ships: true,
        pickup: true,
        daily_capacity: 500,
        shipping_cost: ShippingCost { base_minor: 399, per_km_minor: 2, currency: "GBP".into() },
        priority: 1,
        active: true,
    };
    engine.submit(Request::new(Command::UpsertLocation(store))).wait()?;
    let receipt =
        Command::Receive { sku: "TEE-RED-M".into(), location: "LDN-1".into(), quantity: 10 };
    engine.submit(Request::new(receipt)).wait()?;

    let line = LineRequest { sku: "TEE-RED-M".into(), location: "LDN-1".into(), quantity: 2 };
    let reserve = Command::Reserve { lines: vec![line], ttl_ms: None };
    let Reply::HoldPlaced { hold, expires_at_ms } = engine.submit(Request::new(reserve)).wait()?
    else {
        return Err("unexpected reply to a reserve".into());
    };
    println!("hold {hold} placed, expires at {expires_at_ms} ms");

    let cell = Query::Cell { sku: "TEE-RED-M".into(), location: "LDN-1".into() };
    println!("{:?}", engine.query(cell).wait()?);
    println!("{:?}", engine.query(Query::Hold { hold }).wait()?);
    engine.shutdown();
    Ok(())
}
