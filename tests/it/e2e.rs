//! End to end over QUIC: a real `allotd` process driven through `allot_client`, for every
//! operation, pipelining, batches, authentication, and `kill -9` under load.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allot_client::protocol::{
    Command, ErrorCode, HoldState, LineRequest, LocationSpec, Query, Reply, RequestBody, Resolution,
};
use allot_client::{Client, ClientConfig, Trust};
use allot_tests::allotd::Allotd;

use crate::support::{line, location_spec, runtime, server_code};

fn config(allotd: &Allotd) -> ClientConfig {
    let mut config = ClientConfig::from_data_dir(allotd.addr().to_string(), allotd.data_dir())
        .expect("the development certificate and token");
    config.client_name = "e2e".into();
    config
}

async fn connect(allotd: &Allotd) -> Client {
    Client::connect(config(allotd)).await.expect("connect to allotd")
}

/// A location at the given coordinates (microdegrees).
fn location(code: &str, latitude_e6: i32, longitude_e6: i32) -> LocationSpec {
    LocationSpec { latitude_e6, longitude_e6, ..location_spec(code) }
}

#[test]
fn every_location_and_stock_operation_works_through_the_client() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        assert_eq!(client.ping().await.unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(client.role().name(), "admin");

        let ldn = client.upsert_location(location("LDN", 51_507_000, -127_000)).await.unwrap();
        assert_eq!(ldn.code, "LDN");
        client.upsert_location(location("MAN", 53_480_000, -2_242_000)).await.unwrap();
        let codes: Vec<String> =
            client.locations().await.unwrap().into_iter().map(|spec| spec.code).collect();
        assert_eq!(codes, ["LDN", "MAN"]);
        assert_eq!(client.location("MAN").await.unwrap().latitude_e6, 53_480_000);

        let cell = client.receive("TEE", "LDN", 10).await.unwrap();
        assert_eq!((cell.on_hand, cell.available), (10, 10));
        let cell = client.adjust("TEE", "LDN", -2, "damaged").await.unwrap();
        assert_eq!(cell.on_hand, 8);
        let cell = client.cycle_count("TEE", "LDN", 8, 12).await.unwrap();
        assert_eq!(cell.on_hand, 12);
        let stale = client.cycle_count("TEE", "LDN", 8, 3).await.unwrap_err();
        assert_eq!(server_code(stale), ErrorCode::CompareFailed { actual: 12 });
        let cell = client.set_safety_stock("TEE", "LDN", 2).await.unwrap();
        assert_eq!(cell.available, 10);
        let (from, to) = client.transfer("TEE", "LDN", "MAN", 4).await.unwrap();
        assert_eq!((from.on_hand, to.on_hand), (8, 4));
        let cells = client.sku_stock("TEE").await.unwrap();
        assert_eq!(cells.iter().map(|cell| cell.on_hand).collect::<Vec<_>>(), [8, 4]);
        assert_eq!(client.cell("TEE", "MAN").await.unwrap().available, 4);
        assert!(client.shortages().await.unwrap().is_empty());

        let inactive = client.deactivate_location("MAN").await.unwrap();
        assert!(!inactive.active);
        let refused = client.reserve(vec![line("TEE", "MAN", 1)], None).await.unwrap_err();
        assert_eq!(server_code(refused), ErrorCode::InvalidArgument);
        let unknown = client.cell("NOPE", "LDN").await.unwrap_err();
        assert_eq!(server_code(unknown), ErrorCode::NotFound);
    });
}

#[test]
fn every_hold_operation_works_through_the_client() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        client.upsert_location(location("LDN", 51_507_000, -127_000)).await.unwrap();
        client.receive("TEE", "LDN", 10).await.unwrap();
        client.receive("CAP", "LDN", 5).await.unwrap();

        let placed = client
            .reserve(vec![line("TEE", "LDN", 3), line("CAP", "LDN", 1)], Some(60_000))
            .await
            .unwrap();
        let view = client.hold(placed.hold).await.unwrap();
        assert_eq!(view.state, HoldState::Held);
        assert_eq!(view.lines.len(), 2);
        assert_eq!(view.expires_at_ms, placed.expires_at_ms);
        assert_eq!(client.cell("TEE", "LDN").await.unwrap().held, 3);

        let extended = client.extend_hold(placed.hold, 120_000).await.unwrap();
        assert!(extended > placed.expires_at_ms);
        let released = client.release_hold(placed.hold, vec![line("TEE", "LDN", 1)]).await.unwrap();
        assert_eq!((released.state, released.units_held), (HoldState::Held, 3));
        client.commit_hold(placed.hold, "ORDER-1").await.unwrap();
        let view = client.hold(placed.hold).await.unwrap();
        assert_eq!(view.state, HoldState::Resolved(Resolution::Committed));
        assert_eq!(view.order_number.as_deref(), Some("ORDER-1"));
        let cell = client.cell("TEE", "LDN").await.unwrap();
        assert_eq!((cell.held, cell.allocated, cell.available), (0, 2, 8));

        let again = client.commit_hold(placed.hold, "ORDER-1").await.unwrap_err();
        assert_eq!(server_code(again), ErrorCode::AlreadyResolved { how: Resolution::Committed });

        // The outside order system ships one unit and cancels the rest.
        let left =
            client.consume_committed(placed.hold, vec![line("TEE", "LDN", 1)]).await.unwrap();
        assert_eq!(left, 2);
        let cell = client.cell("TEE", "LDN").await.unwrap();
        assert_eq!((cell.on_hand, cell.allocated, cell.available), (9, 1, 8));
        assert_eq!(client.release_committed(placed.hold, vec![]).await.unwrap(), 0);
        let cell = client.cell("CAP", "LDN").await.unwrap();
        assert_eq!((cell.on_hand, cell.allocated, cell.available), (5, 0, 5));
        let twice = client.consume_committed(placed.hold, vec![]).await.unwrap_err();
        assert_eq!(server_code(twice), ErrorCode::InvalidTransition { from: "settled".into() });
        let too_many = client.reserve(vec![line("CAP", "LDN", 9)], None).await.unwrap_err();
        assert_eq!(server_code(too_many), ErrorCode::InsufficientStock { line: 0, available: 5 });
        let missing = client.hold(999_999).await.unwrap_err();
        assert_eq!(server_code(missing), ErrorCode::NotFound);
        let zero = client.reserve(vec![line("CAP", "LDN", 0)], None).await.unwrap_err();
        assert_eq!(server_code(zero), ErrorCode::InvalidArgument);
    });
}

#[test]
fn a_retry_with_the_same_key_gets_the_original_hold() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        client.upsert_location(location("LDN", 51_507_000, -127_000)).await.unwrap();
        client.receive("TEE", "LDN", 10).await.unwrap();
        let lines = vec![line("TEE", "LDN", 2)];
        let first = client.reserve_with_key("cart-7-attempt", lines.clone(), None).await.unwrap();
        let other_client = connect(&allotd).await;
        let retry =
            other_client.reserve_with_key("cart-7-attempt", lines.clone(), None).await.unwrap();
        assert_eq!(retry.hold, first.hold);
        assert_eq!(client.cell("TEE", "LDN").await.unwrap().held, 2);
        let conflict = client
            .reserve_with_key("cart-7-attempt", vec![line("TEE", "LDN", 3)], None)
            .await
            .unwrap_err();
        assert_eq!(server_code(conflict), ErrorCode::IdempotencyConflict);
    });
}

#[test]
fn ten_thousand_pipelined_requests_on_one_connection_all_succeed() {
    const HOLDS: u32 = 10_000;
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        client.upsert_location(location("LDN", 51_507_000, -127_000)).await.unwrap();
        client.receive("TEE", "LDN", HOLDS).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..HOLDS {
            let client = client.clone();
            tasks.spawn(async move { client.reserve(vec![line("TEE", "LDN", 1)], None).await });
        }
        let mut holds = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            holds.push(joined.expect("task").expect("a pipelined hold").hold);
        }
        holds.sort_unstable();
        holds.dedup();
        assert_eq!(holds.len(), HOLDS as usize);
        let cell = client.cell("TEE", "LDN").await.unwrap();
        assert_eq!((cell.held, cell.available), (HOLDS, 0));
        let over = client.reserve(vec![line("TEE", "LDN", 1)], None).await.unwrap_err();
        assert_eq!(server_code(over), ErrorCode::InsufficientStock { line: 0, available: 0 });
    });
}

#[test]
fn a_batch_is_answered_in_request_order_with_an_outcome_each() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        client.upsert_location(location("LDN", 51_507_000, -127_000)).await.unwrap();
        client.receive("TEE", "LDN", 2).await.unwrap();
        let reserve = |quantity| RequestBody::Command {
            idempotency_key: None,
            command: Command::Reserve { lines: vec![line("TEE", "LDN", quantity)], ttl_ms: None },
        };
        let cell = RequestBody::Query(Query::Cell { sku: "TEE".into(), location: "LDN".into() });
        let outcomes = client
            .batch(vec![reserve(1), reserve(5), RequestBody::Ping, reserve(1), cell])
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 5);
        assert!(matches!(outcomes[0], Ok(Reply::HoldPlaced { .. })));
        let short = outcomes[1].clone().unwrap_err();
        assert_eq!(server_code(short), ErrorCode::InsufficientStock { line: 0, available: 1 });
        assert!(matches!(outcomes[2], Ok(Reply::Pong { .. })));
        assert!(matches!(outcomes[3], Ok(Reply::HoldPlaced { .. })));
        let Ok(Reply::Cell(cell)) = &outcomes[4] else { panic!("{:?}", outcomes[4]) };
        assert_eq!(cell.held, 2);
    });
}

#[test]
fn a_wrong_token_is_refused_as_unauthorized() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let mut wrong = config(&allotd);
        wrong.token = "not-the-token".into();
        let Err(error) = Client::connect(wrong).await else {
            panic!("a wrong token must be refused");
        };
        assert_eq!(server_code(error), ErrorCode::Unauthorized);
        let pinned = ClientConfig::new(
            allotd.addr().to_string(),
            Trust::PinnedCert(allotd.cert_path()),
            allotd.admin_token(),
        );
        let client = Client::connect(pinned).await.expect("the right token connects");
        client.ping().await.unwrap();
    });
}

/// Holds acknowledged to the load, by id: what must survive the crash.
type Acknowledged = Arc<Mutex<BTreeMap<u64, LineRequest>>>;

#[test]
fn every_acknowledged_hold_survives_kill_9_under_load() {
    const SKUS: u32 = 50;
    const LOADERS: usize = 16;
    let mut allotd = Allotd::start();
    let loading = runtime();
    let acknowledged: Acknowledged = Arc::default();
    loading.block_on(async {
        let client = connect(&allotd).await;
        client.upsert_location(location("LDN", 51_507_000, -127_000)).await.unwrap();
        for sku in 0..SKUS {
            client.receive(format!("SKU-{sku}"), "LDN", 1_000_000).await.unwrap();
        }
        let mut config = config(&allotd);
        config.retries = 0;
        let loader = Client::connect(config).await.unwrap();
        for worker in 0..LOADERS {
            tokio::spawn(load(loader.clone(), worker, acknowledged.clone()));
        }
        while acknowledged.lock().unwrap().len() < 2_000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    allotd.kill9();
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    loading.shutdown_timeout(Duration::from_secs(1));
    allotd.restart();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        for (hold, wanted) in &acknowledged {
            let view = client.hold(*hold).await.expect("an acknowledged hold after restart");
            assert_eq!(view.state, HoldState::Held, "hold {hold}");
            assert_eq!(view.lines.len(), 1);
            assert_eq!(view.lines[0].sku, wanted.sku);
            assert_eq!(view.lines[0].quantity, wanted.quantity);
        }
        let mut held_by_holds = BTreeMap::<String, u64>::new();
        let highest = *acknowledged.keys().last().expect("some holds were acknowledged");
        // Holds made durable but not yet answered when the process died exist too; every
        // unit held must belong to some hold.
        for hold in 1..=highest + LOADERS as u64 {
            if let Ok(view) = client.hold(hold).await {
                for line in view.lines {
                    *held_by_holds.entry(line.sku).or_default() += u64::from(line.quantity);
                }
            }
        }
        for sku in 0..SKUS {
            let sku = format!("SKU-{sku}");
            let cell = client.cell(sku.as_str(), "LDN").await.unwrap();
            assert_eq!(u64::from(cell.held), held_by_holds.get(&sku).copied().unwrap_or(0));
        }
    });
    assert!(acknowledged.len() >= 2_000);
}

async fn load(client: Client, worker: usize, acknowledged: Acknowledged) {
    for round in 0u32.. {
        let wanted =
            line(&format!("SKU-{}", (worker as u32 * 7 + round) % 50), "LDN", 1 + round % 3);
        match client.reserve(vec![wanted.clone()], Some(3_600_000)).await {
            Ok(placed) => {
                acknowledged.lock().unwrap().insert(placed.hold, wanted);
            }
            Err(_) => return,
        }
    }
}
