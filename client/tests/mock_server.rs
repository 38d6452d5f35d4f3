//! The client against an in-process mock server: handshake, trust, pipelining, batches,
//! retries under the same key, timeouts, malformed frames and reconnects.

mod mock;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use allot_client::protocol::order::{Channel, DeliveryRequest, OrderLine, OrderState, PlaceOrder};
use allot_client::protocol::{Command, ErrorCode, Reply, RequestBody, Role};
use allot_client::{Client, ClientConfig, ClientError, Trust};
use mock::{GARBAGE, LIMITS, Mock, SILENT};

fn receive(sku: &str, quantity: u32) -> RequestBody {
    let command = Command::Receive { sku: sku.into(), location: "LDN".into(), quantity };
    RequestBody::Command { idempotency_key: None, command }
}

#[tokio::test]
async fn the_handshake_gives_role_and_limits_and_ping_gives_the_version() {
    let mock = Mock::start();
    let client = mock.client().await;
    assert_eq!(client.role(), Role::Admin);
    assert_eq!(client.limits(), LIMITS);
    assert_eq!(client.welcome().server_version, "mock-1");
    assert_eq!(client.ping().await.unwrap(), "mock-1");
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_servers_code() {
    let mock = Mock::start();
    let mut config = mock.config();
    config.token = "wrong".into();
    let error = Client::connect(config).await.unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::Unauthorized), "{error}");
    assert!(matches!(error, ClientError::Refused(_)));
}

#[tokio::test]
async fn a_certificate_other_than_the_pinned_one_fails_tls() {
    let mock = Mock::start();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let path = mock.dir.path().join("other.pem");
    std::fs::write(&path, other.cert.pem()).unwrap();
    let mut config = mock.config();
    config.trust = Trust::PinnedCert(path);
    let error = Client::connect(config).await.unwrap_err();
    assert!(matches!(error, ClientError::Tls(_)), "{error}");
}

#[tokio::test]
async fn a_ca_file_verifies_the_chain_and_the_name() {
    let mock = Mock::start();
    let mut config = mock.config();
    config.trust = Trust::CaFile(mock.dir.path().join("dev-cert.pem"));
    let client = Client::connect(config.clone()).await.unwrap();
    assert_eq!(client.ping().await.unwrap(), "mock-1");
    config.server_name = "elsewhere.example".into();
    let error = Client::connect(config).await.unwrap_err();
    assert!(matches!(error, ClientError::Tls(_)), "{error}");
}

#[tokio::test]
async fn no_server_is_a_connect_error_within_the_connect_timeout() {
    let mock = Mock::start();
    let mut config = mock.config();
    config.addr = "127.0.0.1:9".into();
    config.connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let error = Client::connect(config).await.unwrap_err();
    assert!(matches!(error, ClientError::Connect(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn pipelined_calls_from_many_tasks_stay_within_the_in_flight_limit() {
    let mock = Mock::start();
    let client = mock.client().await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        calls.spawn(async move { client.receive("SKU-1", "LDN", 1).await });
    }
    while let Some(call) = calls.join_next().await {
        call.unwrap().unwrap();
    }
    assert_eq!(mock.on_hand("SKU-1", "LDN"), 100);
    assert_eq!(mock.state.applied.load(Ordering::SeqCst), 100);
    let seen = mock.state.in_flight_max_seen.load(Ordering::SeqCst);
    assert!(seen <= LIMITS.in_flight_requests_max as usize, "{seen} in flight");
    assert!(seen > 1, "calls were pipelined");
}

#[tokio::test]
async fn a_batch_is_split_into_frames_and_answered_in_request_order() {
    let mock = Mock::start();
    let client = mock.client().await;
    let mut bodies: Vec<RequestBody> = (0..20).map(|n| receive(&format!("SKU-{n}"), 1)).collect();
    bodies[13] = receive("SKU-13", 0);
    let results = client.batch(bodies).await.unwrap();
    assert_eq!(results.len(), 20);
    for (n, result) in results.iter().enumerate() {
        match result {
            Ok(Reply::Cell(cell)) => assert_eq!(cell.sku, format!("SKU-{n}")),
            Err(error) => {
                assert_eq!(n, 13);
                assert_eq!(error.code(), Some(&ErrorCode::InvalidArgument));
            }
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(mock.state.applied.load(Ordering::SeqCst), 19);
    assert!(client.batch(vec![]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_command_lost_with_its_connection_is_retried_under_its_key_and_applied_once() {
    let mock = Mock::start();
    let client = mock.client().await;
    mock.state.drop_after_apply.store(1, Ordering::SeqCst);
    let cell = client.receive("SKU-1", "LDN", 5).await.unwrap();
    assert_eq!(cell.on_hand, 5);
    assert_eq!(mock.on_hand("SKU-1", "LDN"), 5);
    assert_eq!(mock.state.applied.load(Ordering::SeqCst), 1);
    assert_eq!(mock.state.connections.load(Ordering::SeqCst), 2, "the client reconnected");
}

#[tokio::test]
async fn a_caller_key_survives_a_new_client() {
    let mock = Mock::start();
    let receipt = Command::Receive { sku: "SKU-1".into(), location: "LDN".into(), quantity: 3 };
    let first = mock.client().await;
    first.command_with_key("asn-1", receipt.clone()).await.unwrap();
    let second = mock.client().await;
    let again = second.command_with_key("asn-1", receipt).await.unwrap();
    assert!(matches!(again, Reply::Cell(cell) if cell.on_hand == 3));
    assert_eq!(mock.state.applied.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unanswered_request_times_out_after_its_retries() {
    let mock = Mock::start();
    let mut config = mock.config();
    config.request_timeout = Duration::from_millis(200);
    config.retries = 1;
    let client = Client::connect(config).await.unwrap();
    let started = Instant::now();
    assert_eq!(client.location(SILENT).await.unwrap_err(), ClientError::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(400), "two attempts");
    assert_eq!(client.ping().await.unwrap(), "mock-1", "the connection is still usable");
}

#[tokio::test]
async fn a_malformed_frame_is_a_protocol_error_and_the_next_call_reconnects() {
    let mock = Mock::start();
    let client = mock.client().await;
    let error = client.location(GARBAGE).await.unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error}");
    assert_eq!(client.ping().await.unwrap(), "mock-1");
    assert_eq!(mock.state.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_server_error_is_typed_and_not_retried() {
    let mock = Mock::start();
    let client = mock.client().await;
    let error = client.cell("NOPE", "LDN").await.unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::NotFound));
    assert_eq!(error.name(), "NotFound");
}

#[tokio::test]
async fn after_close_the_next_call_opens_a_new_connection() {
    let mock = Mock::start();
    let client = mock.client().await;
    client.close().await;
    assert_eq!(client.ping().await.unwrap(), "mock-1");
    assert_eq!(mock.state.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_client_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Client>();
    assert_send_sync::<ClientConfig>();
}

fn web_order(number: &str, lines: u32) -> PlaceOrder {
    PlaceOrder {
        channel: Channel::Web,
        external_number: number.into(),
        customer: "C-1".into(),
        delivery: DeliveryRequest::Pickup { location: "LDN".into() },
        currency: "EUR".into(),
        lines: (0..lines)
            .map(|n| OrderLine { sku: format!("SKU-{n}"), quantity: 1, unit_price_minor: 100 })
            .collect(),
        hold: None,
        allow_backorder: false,
    }
}

#[tokio::test]
async fn a_placed_order_comes_back_typed_and_a_keyed_retry_gets_the_first_answer() {
    let mock = Mock::start();
    let client = mock.client().await;
    let placed = client.place_order(web_order("W-1", 2)).await.unwrap();
    assert_eq!(placed.state, OrderState::Pending);
    assert_eq!(placed.shipments, [placed.order * 100 + 1, placed.order * 100 + 2]);
    let first = client.place_order_with_key("order-W-2", web_order("W-2", 1)).await.unwrap();
    let again = mock.client().await;
    let retry = again.place_order_with_key("order-W-2", web_order("W-2", 1)).await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(mock.state.applied.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_pick_list_is_read_page_by_page_through_its_cursor() {
    let mock = Mock::start();
    let client = mock.client().await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = client.pick_list("LDN", after, 2).await.unwrap();
        assert!(page.shipments.len() <= 2);
        seen.extend(page.shipments.iter().map(|shipment| shipment.shipment));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}
