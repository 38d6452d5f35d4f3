//! `docs/protocol.md` against the code: every golden vector, every variant index and every
//! limit in the document must be what the codec and `limits.rs` say, byte for byte.

use allot_protocol::codec::{decode_client, decode_server, encode_payload, frame};
use allot_protocol::limits;
use allot_protocol::order::{
    Address, Channel, Delivery, DeliveryRequest, ItemQuantity, KpiView, OrderHoldReason, OrderLine,
    OrderPage, OrderState, OrderView, PaymentEvent, PaymentState, PlaceOrder, ReturnCondition,
    ReturnState, ReturnView, RoutingRule, RoutingView, ShipmentPage, ShipmentState, ShipmentStep,
    ShipmentView, Verdict,
};
use allot_protocol::{
    CellKey, CellView, ClientFrame, Command, Error, ErrorCode, Hello, HoldLineView, HoldState,
    HoldView, LineRequest, LocationKind, LocationSpec, Query, Reply, Request, RequestBody,
    Resolution, Response, Role, ServerFrame, ServerLimits, ShippingCost, ShortagePage, Welcome,
};
use serde::Serialize;

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// Every `### vector: NAME` section of the document with the bytes of its `hex` block.
fn documented_vectors(document: &str) -> Vec<(String, Vec<u8>)> {
    let mut vectors: Vec<(String, Vec<u8>)> = Vec::new();
    let mut lines = document.lines();
    let mut current: Option<String> = None;
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("### vector: ") {
            assert!(current.is_none(), "vector {current:?} has no hex block");
            current = Some(name.trim().to_owned());
        } else if line.starts_with('#') && !line.starts_with("####") {
            assert!(current.is_none(), "vector {current:?} has no hex block before {line:?}");
        } else if line.trim() == "```hex" {
            let name = current.take().expect("a hex block belongs to a vector heading");
            let mut bytes = Vec::new();
            for hex_line in lines.by_ref().take_while(|line| line.trim() != "```") {
                let data = hex_line.split('#').next().unwrap_or("");
                for byte in data.split_whitespace() {
                    let value = u8::from_str_radix(byte, 16)
                        .unwrap_or_else(|_| panic!("vector {name}: {byte:?} is not a hex byte"));
                    bytes.push(value);
                }
            }
            assert!(
                vectors.iter().all(|(existing, _)| *existing != name),
                "vector {name} appears twice"
            );
            vectors.push((name, bytes));
        }
    }
    assert!(current.is_none(), "vector {current:?} has no hex block");
    vectors
}

#[derive(Debug, PartialEq)]
enum Message {
    Client(ClientFrame),
    Server(ServerFrame),
}

/// Every vector the document must contain.
const VECTOR_NAMES: &[&str] = &[
    "hello",
    "welcome",
    "refused_unsupported_version",
    "ping",
    "pong",
    "reserve_two_lines",
    "hold_placed",
    "insufficient_stock",
    "query_cell",
    "cell",
    "batch_of_two",
    "batch_answer",
    "hold_committed",
    "already_resolved",
    "release_all",
    "hold_released",
    "extend_hold",
    "hold_extended",
    "upsert_location",
    "deactivate_location",
    "receive",
    "adjust",
    "cycle_count",
    "compare_failed",
    "set_safety_stock",
    "transfer",
    "transferred",
    "place_order",
    "order_placed",
    "advance_shipment_ship",
    "shipment_changed",
    "query_pick_list",
    "pick_list",
    "invalid_transition",
    "consume_committed",
    "committed_settled",
    "query_shortage_page",
    "shortages",
];

fn request(id: u64, body: RequestBody) -> ClientFrame {
    ClientFrame::Request(Request { id, body })
}

fn command(id: u64, idempotency_key: Option<&str>, command: Command) -> ClientFrame {
    let idempotency_key = idempotency_key.map(str::to_owned);
    request(id, RequestBody::Command { idempotency_key, command })
}

fn response(id: u64, result: Result<Reply, Error>) -> ServerFrame {
    ServerFrame::Response(Response { id, result })
}

fn line(sku: &str, location: &str, quantity: u32) -> LineRequest {
    LineRequest { sku: sku.into(), location: location.into(), quantity }
}

fn cell_view(location: &str, counts: [u32; 4], available: i64) -> CellView {
    let [on_hand, held, allocated, safety_stock] = counts;
    CellView {
        sku: "TEE-RED-M".into(),
        location: location.into(),
        on_hand,
        held,
        allocated,
        safety_stock,
        available,
    }
}

fn hold_view(state: HoldState, resolved_at_ms: Option<u64>, order: Option<&str>) -> HoldView {
    HoldView {
        hold: 17,
        state,
        lines: vec![HoldLineView {
            sku: "TEE-RED-M".into(),
            location: "LDN-1".into(),
            quantity: 2,
        }],
        created_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_000_600_000,
        resolved_at_ms,
        order_number: order.map(str::to_owned),
    }
}

/// The order of the `place_order` vector: shipped to London, two lines, no hold.
fn sample_order() -> PlaceOrder {
    PlaceOrder {
        channel: Channel::Web,
        external_number: "W-1001".into(),
        customer: "C-42".into(),
        delivery: DeliveryRequest::Ship {
            to: Address {
                latitude_e6: 51_501_009,
                longitude_e6: -141_588,
                country: "GB".into(),
                postcode: "SW1A 1AA".into(),
            },
        },
        currency: "GBP".into(),
        lines: vec![
            OrderLine { sku: "TEE-RED-M".into(), quantity: 2, unit_price_minor: 1_500 },
            OrderLine { sku: "CAP-BLK".into(), quantity: 1, unit_price_minor: 999 },
        ],
        hold: None,
        allow_backorder: false,
    }
}

/// The value each vector of the document encodes.
fn vector_message(name: &str) -> Option<Message> {
    use Message::{Client, Server};
    let tee = || "TEE-RED-M".to_owned();
    let ldn = || "LDN-1".to_owned();
    Some(match name {
        "hello" => Client(ClientFrame::Hello(Hello {
            protocol_version: 1,
            token: "s3cret-token".into(),
            client_name: "checkout-1".into(),
        })),
        "welcome" => Server(ServerFrame::Welcome(Welcome {
            protocol_version: 1,
            server_version: "0.1.0".into(),
            role: Role::Checkout,
            limits: ServerLimits {
                frame_bytes_max: 4_194_304,
                batch_requests_max: 1_024,
                in_flight_requests_max: 4_096,
                lines_per_hold_max: 64,
            },
        })),
        "refused_unsupported_version" => Server(ServerFrame::Refused(Error::new(
            ErrorCode::UnsupportedVersion,
            "protocol version 2 is not supported; this server speaks 1",
        ))),
        "ping" => Client(request(1, RequestBody::Ping)),
        "pong" => Server(response(1, Ok(Reply::Pong { server_version: "0.1.0".into() }))),
        "reserve_two_lines" => Client(command(
            2,
            Some("cart-42-a1"),
            Command::Reserve {
                lines: vec![line("TEE-RED-M", "LDN-1", 2), line("CAP-BLK", "MAN-2", 1)],
                ttl_ms: Some(600_000),
            },
        )),
        "hold_placed" => Server(response(
            2,
            Ok(Reply::HoldPlaced { hold: 17, expires_at_ms: 1_700_000_600_000 }),
        )),
        "insufficient_stock" => Server(response(
            6,
            Err(Error::new(
                ErrorCode::InsufficientStock { line: 1, available: 0 },
                "insufficient stock on line 1: 0 available",
            )),
        )),
        "query_cell" => {
            Client(request(3, RequestBody::Query(Query::Cell { sku: tee(), location: ldn() })))
        }
        "cell" => Server(response(3, Ok(Reply::Cell(cell_view("LDN-1", [10, 2, 1, 1], 6))))),
        "batch_of_two" => Client(ClientFrame::Batch(vec![
            Request { id: 4, body: RequestBody::Query(Query::Hold { hold: 17 }) },
            Request {
                id: 5,
                body: RequestBody::Command {
                    idempotency_key: None,
                    command: Command::CommitHold { hold: 17, order_number: "O-1001".into() },
                },
            },
        ])),
        "batch_answer" => Server(ServerFrame::Batch(vec![
            Response { id: 4, result: Ok(Reply::Hold(hold_view(HoldState::Held, None, None))) },
            Response { id: 5, result: Ok(Reply::HoldCommitted { hold: 17 }) },
        ])),
        "hold_committed" => Server(response(
            10,
            Ok(Reply::Hold(hold_view(
                HoldState::Resolved(Resolution::Committed),
                Some(1_700_000_042_000),
                Some("O-1001"),
            ))),
        )),
        "already_resolved" => Server(response(
            7,
            Err(Error::new(
                ErrorCode::AlreadyResolved { how: Resolution::Committed },
                "hold already committed",
            )),
        )),
        "release_all" => {
            Client(command(9, Some("rel-42"), Command::ReleaseHold { hold: 17, lines: vec![] }))
        }
        "hold_released" => Server(response(
            9,
            Ok(Reply::HoldReleased {
                hold: 17,
                state: HoldState::Resolved(Resolution::Released),
                units_held: 0,
            }),
        )),
        "extend_hold" => {
            Client(command(17, None, Command::ExtendHold { hold: 17, ttl_ms: 300_000 }))
        }
        "hold_extended" => Server(response(
            17,
            Ok(Reply::HoldExtended { hold: 17, expires_at_ms: 1_700_000_360_000 }),
        )),
        "upsert_location" => Client(command(
            8,
            None,
            Command::UpsertLocation(LocationSpec {
                code: ldn(),
                name: "London DC".into(),
                kind: LocationKind::Warehouse,
                latitude_e6: 51_507_400,
                longitude_e6: -127_800,
                ships: true,
                pickup: false,
                daily_capacity: 5_000,
                shipping_cost: ShippingCost {
                    base_minor: 395,
                    per_km_minor: 2,
                    currency: "GBP".into(),
                },
                priority: 1,
                active: true,
            }),
        )),
        "deactivate_location" => {
            Client(command(11, None, Command::DeactivateLocation { location: "MAN-2".into() }))
        }
        "receive" => Client(command(
            12,
            None,
            Command::Receive { sku: tee(), location: ldn(), quantity: 40 },
        )),
        "adjust" => Client(command(
            13,
            None,
            Command::Adjust { sku: tee(), location: ldn(), delta: -3, reason: "damaged".into() },
        )),
        "cycle_count" => Client(command(
            14,
            None,
            Command::CycleCount { sku: tee(), location: ldn(), expected: 37, counted: 36 },
        )),
        "compare_failed" => Server(response(
            14,
            Err(Error::new(
                ErrorCode::CompareFailed { actual: 35 },
                "on_hand is 35, not the expected quantity",
            )),
        )),
        "set_safety_stock" => Client(command(
            15,
            None,
            Command::SetSafetyStock { sku: tee(), location: ldn(), quantity: 2 },
        )),
        "transfer" => Client(command(
            16,
            None,
            Command::Transfer { sku: tee(), from: ldn(), to: "MAN-2".into(), quantity: 5 },
        )),
        "transferred" => Server(response(
            16,
            Ok(Reply::Transferred {
                from: cell_view("LDN-1", [31, 0, 2, 2], 27),
                to: cell_view("MAN-2", [5, 0, 0, 0], 5),
            }),
        )),
        "place_order" => {
            Client(command(20, Some("web-W-1001"), Command::PlaceOrder(sample_order())))
        }
        "order_placed" => Server(response(
            20,
            Ok(Reply::OrderPlaced {
                order: 501,
                state: OrderState::Pending,
                shipments: vec![901, 902],
                backordered_units: 0,
            }),
        )),
        "advance_shipment_ship" => Client(command(
            21,
            None,
            Command::AdvanceShipment {
                shipment: 901,
                step: ShipmentStep::Ship {
                    carrier: "DHL".into(),
                    tracking: "JD014600003828".into(),
                },
            },
        )),
        "shipment_changed" => Server(response(
            21,
            Ok(Reply::ShipmentChanged {
                shipment: 901,
                state: ShipmentState::Shipped,
                order_state: OrderState::PartiallyShipped,
            }),
        )),
        "query_pick_list" => Client(request(
            22,
            RequestBody::Query(Query::PickList {
                location: "MAN-2".into(),
                after: None,
                limit: 50,
            }),
        )),
        "pick_list" => Server(response(
            22,
            Ok(Reply::Shipments(ShipmentPage {
                shipments: vec![ShipmentView {
                    shipment: 902,
                    order: 501,
                    location: "MAN-2".into(),
                    delivery: Delivery::Ship,
                    state: ShipmentState::Released,
                    lines: vec![ItemQuantity { sku: "CAP-BLK".into(), quantity: 1 }],
                    carrier: None,
                    tracking: None,
                    created_at_ms: 1_700_000_100_000,
                    updated_at_ms: 1_700_000_160_000,
                }],
                next: None,
            })),
        )),
        "invalid_transition" => Server(response(
            23,
            Err(Error::new(
                ErrorCode::InvalidTransition { from: "released".into() },
                "invalid transition from state released",
            )),
        )),
        "consume_committed" => Client(command(
            24,
            Some("ship-17-1"),
            Command::ConsumeCommitted {
                hold: 17,
                lines: vec![LineRequest { sku: tee(), location: ldn(), quantity: 2 }],
            },
        )),
        "committed_settled" => {
            Server(response(24, Ok(Reply::CommittedSettled { hold: 17, units_committed: 1 })))
        }
        "query_shortage_page" => Client(request(
            25,
            RequestBody::Query(Query::ShortagePage {
                after: Some(CellKey { sku: "CAP-BLK".into(), location: "MAN-2".into() }),
                limit: 100,
            }),
        )),
        "shortages" => Server(response(
            25,
            Ok(Reply::Shortages(ShortagePage {
                cells: vec![CellView {
                    sku: tee(),
                    location: ldn(),
                    on_hand: 3,
                    held: 4,
                    allocated: 1,
                    safety_stock: 0,
                    available: -2,
                }],
                next: None,
            })),
        )),
        _ => return None,
    })
}

/// Whether `bytes` is the frame of `message`, and its payload decodes back to `message`.
fn check_vector(name: &str, bytes: &[u8]) -> Result<(), String> {
    let message = vector_message(name).ok_or_else(|| format!("{name}: no such vector"))?;
    let (encoded, decoded) = match &message {
        Message::Client(value) => {
            (frame(value), decode_client(&bytes[4.min(bytes.len())..]).map(Message::Client))
        }
        Message::Server(value) => {
            (frame(value), decode_server(&bytes[4.min(bytes.len())..]).map(Message::Server))
        }
    };
    if encoded != bytes {
        return Err(format!(
            "{name}: the document has\n  {}\nthe codec writes\n  {}",
            hex(bytes),
            hex(&encoded)
        ));
    }
    let decoded = decoded.map_err(|error| format!("{name}: {error}"))?;
    if decoded != message {
        return Err(format!("{name}: decodes as {decoded:?}"));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect::<Vec<_>>().join(" ")
}

fn assert_vector(name: &str) {
    let document = document();
    let vectors = documented_vectors(&document);
    let (_, bytes) = vectors
        .iter()
        .find(|(documented, _)| documented == name)
        .unwrap_or_else(|| panic!("docs/protocol.md has no vector {name}"));
    if let Err(failure) = check_vector(name, bytes) {
        panic!("{failure}");
    }
}

#[test]
fn every_vector_in_the_document_is_what_the_codec_writes_and_reads() {
    let vectors = documented_vectors(&document());
    let failures: Vec<String> =
        vectors.iter().filter_map(|(name, bytes)| check_vector(name, bytes).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_document_has_every_named_vector_and_no_other() {
    let vectors = documented_vectors(&document());
    let documented: Vec<&str> = vectors.iter().map(|(name, _)| name.as_str()).collect();
    for name in VECTOR_NAMES {
        assert!(documented.contains(name), "docs/protocol.md has no vector {name}");
        assert!(vector_message(name).is_some(), "no message for vector {name}");
    }
    for name in &documented {
        assert!(VECTOR_NAMES.contains(name), "vector {name} is not in VECTOR_NAMES");
    }
}

#[test]
fn a_hello_encodes_as_documented() {
    assert_vector("hello");
}

#[test]
fn a_welcome_encodes_as_documented() {
    assert_vector("welcome");
}

#[test]
fn a_refused_unsupported_version_encodes_as_documented() {
    assert_vector("refused_unsupported_version");
}

#[test]
fn a_ping_request_encodes_as_documented() {
    assert_vector("ping");
}

#[test]
fn a_reserve_with_two_lines_ttl_and_key_encodes_as_documented() {
    assert_vector("reserve_two_lines");
}

#[test]
fn a_cell_query_and_its_answer_encode_as_documented() {
    assert_vector("query_cell");
    assert_vector("cell");
}

#[test]
fn a_batch_of_two_requests_and_its_answer_encode_as_documented() {
    assert_vector("batch_of_two");
    assert_vector("batch_answer");
}

#[test]
fn a_hold_placed_response_encodes_as_documented() {
    assert_vector("hold_placed");
}

#[test]
fn an_insufficient_stock_error_encodes_as_documented() {
    assert_vector("insufficient_stock");
}

#[test]
fn an_already_resolved_error_encodes_as_documented() {
    assert_vector("already_resolved");
}

#[test]
fn an_upsert_location_encodes_as_documented() {
    assert_vector("upsert_location");
}

#[test]
fn a_shipped_two_line_order_without_a_hold_and_its_answer_encode_as_documented() {
    assert_vector("place_order");
    assert_vector("order_placed");
}

#[test]
fn a_ship_step_with_carrier_and_tracking_and_its_answer_encode_as_documented() {
    assert_vector("advance_shipment_ship");
    assert_vector("shipment_changed");
}

#[test]
fn a_pick_list_query_and_its_page_encode_as_documented() {
    assert_vector("query_pick_list");
    assert_vector("pick_list");
}

#[test]
fn an_invalid_transition_error_encodes_as_documented() {
    assert_vector("invalid_transition");
}

/// The rows `| index | variant | …` of the table under the heading "### `NAME`".
fn documented_variants(document: &str, type_name: &str) -> Vec<(u32, String)> {
    let heading = format!("### `{type_name}`");
    let mut lines = document.lines().skip_while(|line| line.trim() != heading);
    assert!(lines.next().is_some(), "docs/protocol.md has no heading {heading}");
    let mut variants = Vec::new();
    for line in lines.take_while(|line| !line.starts_with('#')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 || !cells[0].is_empty() {
            continue;
        }
        if let Ok(index) = cells[1].parse::<u32>() {
            variants.push((index, cells[2].trim_matches('`').to_owned()));
        }
    }
    variants
}

/// The variant index the codec writes for `value`, and the variant's name.
fn index_and_name<T: Serialize + std::fmt::Debug>(value: &T) -> (u32, String) {
    let payload = encode_payload(value);
    let index = u32::from_le_bytes(payload[..4].try_into().expect("an enum starts with a u32"));
    let debug = format!("{value:?}");
    let name = debug.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("");
    (index, name.to_owned())
}

/// How many variants the decoder accepts at the position `prefix` leads to: the first
/// index it rejects as an unknown variant.
fn variant_count(prefix: &[u8], decode: fn(&[u8]) -> Result<(), String>) -> u32 {
    (0..64u32)
        .find(|index| {
            let mut payload = prefix.to_vec();
            payload.extend_from_slice(&index.to_le_bytes());
            decode(&payload).is_err_and(|error| error.contains("variant index"))
        })
        .expect("an enum has fewer than 64 variants")
}

fn client(payload: &[u8]) -> Result<(), String> {
    decode_client(payload).map(drop).map_err(|error| error.0)
}

fn server(payload: &[u8]) -> Result<(), String> {
    decode_server(payload).map(drop).map_err(|error| error.0)
}

fn sample_hello() -> Hello {
    Hello { protocol_version: 1, token: String::new(), client_name: String::new() }
}

fn sample_spec() -> LocationSpec {
    LocationSpec {
        code: "L".into(),
        name: String::new(),
        kind: LocationKind::Store,
        latitude_e6: 0,
        longitude_e6: 0,
        ships: false,
        pickup: false,
        daily_capacity: 0,
        shipping_cost: ShippingCost { base_minor: 0, per_km_minor: 0, currency: "EUR".into() },
        priority: 0,
        active: true,
    }
}

fn sample_cell() -> CellView {
    cell_view("L", [0; 4], 0)
}

fn sample_shipment() -> ShipmentView {
    ShipmentView {
        shipment: 1,
        order: 1,
        location: "L".into(),
        delivery: Delivery::Pickup,
        state: ShipmentState::Allocated,
        lines: vec![],
        carrier: None,
        tracking: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn sample_order_view() -> OrderView {
    OrderView {
        order: 1,
        channel: Channel::Pos,
        external_number: "P-1".into(),
        customer: "C".into(),
        delivery: DeliveryRequest::Pickup { location: "L".into() },
        currency: "EUR".into(),
        state: OrderState::Pending,
        payment: PaymentState::Pending,
        hold: None,
        lines: vec![],
        shipments: vec![],
        returns: vec![],
        routing: RoutingView {
            rule: RoutingRule::Pickup,
            locations_considered: 1,
            assessments: vec![],
        },
        placed_at_ms: 0,
        from_hold: None,
        exchange_for: None,
        total_minor: 0,
    }
}

fn sample_return_view() -> ReturnView {
    ReturnView {
        rma: 1,
        order: 1,
        state: ReturnState::Requested,
        reason: "r".into(),
        lines: vec![],
        received_at: None,
        damage_reasons: vec![],
        refunded_minor: 0,
        exchange_order: None,
        requested_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn sample_kpis() -> KpiView {
    KpiView {
        orders_by_channel_state: vec![],
        holds_placed: 0,
        holds_refused_since_start: 0,
        hold_success_rate_bp: None,
        holds_expired: 0,
        orders_placed: 0,
        orders_split: 0,
        split_rate_bp: None,
        units_ordered: 0,
        units_filled_at_placement: 0,
        fill_rate_bp: None,
        placement_to_ship_p50_ms: None,
        placement_to_ship_p95_ms: None,
        units_shipped: 0,
        units_returned: 0,
        return_rate_bp: None,
        open_workload: vec![],
    }
}

fn check_variants<T: Serialize + std::fmt::Debug>(
    document: &str,
    type_name: &str,
    samples: &[T],
    count: u32,
    failures: &mut Vec<String>,
) {
    let mut in_code: Vec<(u32, String)> = samples.iter().map(index_and_name).collect();
    in_code.sort();
    let indices: Vec<u32> = in_code.iter().map(|(index, _)| *index).collect();
    if indices != (0..count).collect::<Vec<_>>() {
        failures.push(format!("{type_name}: samples cover {indices:?}, the codec has {count}"));
    }
    let documented = documented_variants(document, type_name);
    if documented != in_code {
        failures.push(format!(
            "{type_name}: the document lists {documented:?}, the code has {in_code:?}"
        ));
    }
}

#[test]
fn every_variant_index_in_the_document_is_the_codes() {
    let document = document();
    let mut failures = Vec::new();
    let request_prefix = [1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
    let response_prefix = [1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
    let ping = Request { id: 1, body: RequestBody::Ping };
    let pong = Response { id: 1, result: Ok(Reply::HoldCommitted { hold: 1 }) };

    let samples = [
        ClientFrame::Hello(sample_hello()),
        ClientFrame::Request(ping.clone()),
        ClientFrame::Batch(vec![]),
    ];
    check_variants(&document, "ClientFrame", &samples, variant_count(&[], client), &mut failures);

    let welcome = Welcome {
        protocol_version: 1,
        server_version: String::new(),
        role: Role::Read,
        limits: ServerLimits {
            frame_bytes_max: 0,
            batch_requests_max: 0,
            in_flight_requests_max: 0,
            lines_per_hold_max: 0,
        },
    };
    let samples = [
        ServerFrame::Welcome(welcome),
        ServerFrame::Response(pong.clone()),
        ServerFrame::Batch(vec![]),
        ServerFrame::Refused(Error::invalid("")),
    ];
    check_variants(&document, "ServerFrame", &samples, variant_count(&[], server), &mut failures);

    let samples = [
        RequestBody::Ping,
        RequestBody::Command {
            idempotency_key: None,
            command: Command::CommitHold { hold: 1, order_number: "O".into() },
        },
        RequestBody::Query(Query::Locations),
    ];
    let count = variant_count(&request_prefix, client);
    check_variants(&document, "RequestBody", &samples, count, &mut failures);

    let sku = || "S".to_owned();
    let location = || "L".to_owned();
    let samples = [
        Command::UpsertLocation(sample_spec()),
        Command::DeactivateLocation { location: location() },
        Command::Receive { sku: sku(), location: location(), quantity: 1 },
        Command::Adjust { sku: sku(), location: location(), delta: 1, reason: "r".into() },
        Command::CycleCount { sku: sku(), location: location(), expected: 0, counted: 1 },
        Command::SetSafetyStock { sku: sku(), location: location(), quantity: 1 },
        Command::Transfer { sku: sku(), from: location(), to: "M".into(), quantity: 1 },
        Command::Reserve { lines: vec![], ttl_ms: None },
        Command::ExtendHold { hold: 1, ttl_ms: 1_000 },
        Command::ReleaseHold { hold: 1, lines: vec![] },
        Command::CommitHold { hold: 1, order_number: "O".into() },
        Command::ReserveRouted {
            lines: vec![],
            destination: DeliveryRequest::Pickup { location: location() },
            ttl_ms: None,
        },
        Command::PlaceOrder(sample_order()),
        Command::RecordPayment {
            order: 1,
            event: PaymentEvent::Authorised,
            amount_minor: 0,
            reference: "r".into(),
        },
        Command::HoldOrder { order: 1, reason: OrderHoldReason::Fraud, note: "n".into() },
        Command::ReleaseOrderHold { order: 1 },
        Command::CancelOrder { order: 1, reason: "r".into() },
        Command::CancelShipment { shipment: 1, reason: "r".into() },
        Command::CancelOrderLines { order: 1, lines: vec![], reason: "r".into() },
        Command::AdvanceShipment { shipment: 1, step: ShipmentStep::Release },
        Command::ShortPick { shipment: 1, missing: vec![] },
        Command::AllocateBackorders { order: 1 },
        Command::RequestReturn { order: 1, lines: vec![], reason: "r".into() },
        Command::AuthoriseReturn { rma: 1 },
        Command::ReceiveReturn { rma: 1, location: location(), lines: vec![] },
        Command::RefundReturn { rma: 1, amount_minor: 0 },
        Command::ExchangeReturn { rma: 1, order: sample_order() },
        Command::ConsumeCommitted { hold: 1, lines: vec![] },
        Command::ReleaseCommitted { hold: 1, lines: vec![] },
    ];
    let command_prefix = [&request_prefix[..], &[1, 0, 0, 0, 0]].concat();
    let count = variant_count(&command_prefix, client);
    check_variants(&document, "Command", &samples, count, &mut failures);

    let samples = [
        Query::Cell { sku: sku(), location: location() },
        Query::SkuStock { sku: sku() },
        Query::Hold { hold: 1 },
        Query::Location { location: location() },
        Query::Locations,
        Query::Shortages,
        Query::Order { order: 1 },
        Query::OrderByNumber { channel: Channel::Web, external_number: "W".into() },
        Query::CustomerOrders { customer: "C".into(), before: None, limit: 1 },
        Query::OrdersByState { state: OrderState::Pending, location: None, after: None, limit: 1 },
        Query::PickList { location: location(), after: None, limit: 1 },
        Query::Shipment { shipment: 1 },
        Query::Return { rma: 1 },
        Query::Kpis,
        Query::HoldRouting { hold: 1 },
        Query::ShortagePage { after: None, limit: 1 },
    ];
    let query_prefix = [&request_prefix[..], &[2, 0, 0, 0]].concat();
    let count = variant_count(&query_prefix, client);
    check_variants(&document, "Query", &samples, count, &mut failures);

    let samples = [
        Reply::Pong { server_version: String::new() },
        Reply::Location(sample_spec()),
        Reply::Locations(vec![]),
        Reply::Cell(sample_cell()),
        Reply::Cells(vec![]),
        Reply::Transferred { from: sample_cell(), to: sample_cell() },
        Reply::HoldPlaced { hold: 1, expires_at_ms: 0 },
        Reply::HoldExtended { hold: 1, expires_at_ms: 0 },
        Reply::HoldReleased { hold: 1, state: HoldState::Held, units_held: 0 },
        Reply::HoldCommitted { hold: 1 },
        Reply::Hold(hold_view(HoldState::Held, None, None)),
        Reply::RoutedHoldPlaced { hold: 1, expires_at_ms: 0, lines: vec![] },
        Reply::OrderPlaced {
            order: 1,
            state: OrderState::Pending,
            shipments: vec![],
            backordered_units: 0,
        },
        Reply::OrderChanged { order: 1, state: OrderState::Confirmed },
        Reply::ShipmentChanged {
            shipment: 1,
            state: ShipmentState::Released,
            order_state: OrderState::InProgress,
        },
        Reply::ShortPicked {
            shipment: 1,
            state: ShipmentState::Picking,
            rerouted: vec![],
            backordered_units: 0,
        },
        Reply::ReturnChanged { rma: 1, state: ReturnState::Authorised },
        Reply::ReturnExchanged { rma: 1, order: 2 },
        Reply::Order(Box::new(sample_order_view())),
        Reply::Orders(OrderPage { orders: vec![], next: None }),
        Reply::Shipment(Box::new(sample_shipment())),
        Reply::Shipments(ShipmentPage { shipments: vec![], next: None }),
        Reply::Return(Box::new(sample_return_view())),
        Reply::Kpis(Box::new(sample_kpis())),
        Reply::Routing(sample_order_view().routing),
        Reply::Shortages(allot_protocol::ShortagePage { cells: vec![], next: None }),
        Reply::CommittedSettled { hold: 1, units_committed: 0 },
    ];
    let ok_prefix = [&response_prefix[..], &[0, 0, 0, 0]].concat();
    let count = variant_count(&ok_prefix, server);
    check_variants(&document, "Reply", &samples, count, &mut failures);

    let samples = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::InsufficientStock { line: 0, available: 0 },
        ErrorCode::InvalidTransition { from: "held".into() },
        ErrorCode::IdempotencyConflict,
        ErrorCode::AlreadyResolved { how: Resolution::Expired },
        ErrorCode::Unauthorized,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::CompareFailed { actual: 0 },
    ];
    let refused = [3, 0, 0, 0];
    check_variants(
        &document,
        "ErrorCode",
        &samples,
        variant_count(&refused, server),
        &mut failures,
    );

    let samples = [Role::Checkout, Role::Fulfilment, Role::Admin, Role::Read];
    // Welcome, protocol version 1, an empty server version, then the role.
    let welcome_prefix = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let count = variant_count(&welcome_prefix, server);
    check_variants(&document, "Role", &samples, count, &mut failures);

    let samples = [
        LocationKind::Warehouse,
        LocationKind::Store,
        LocationKind::ThirdParty,
        LocationKind::DropShip,
    ];
    // Reply::Location with an empty code and an empty name, then the kind.
    let location_prefix = [&response_prefix[..], &[0, 0, 0, 0, 1, 0, 0, 0], &[0; 16]].concat();
    let count = variant_count(&location_prefix, server);
    check_variants(&document, "LocationKind", &samples, count, &mut failures);

    let samples = [HoldState::Held, HoldState::Resolved(Resolution::Released)];
    // Reply::HoldReleased for hold 0, then the state.
    let released_prefix = [&response_prefix[..], &[0, 0, 0, 0, 8, 0, 0, 0], &[0; 8]].concat();
    let count = variant_count(&released_prefix, server);
    check_variants(&document, "HoldState", &samples, count, &mut failures);

    let samples = [Resolution::Committed, Resolution::Released, Resolution::Expired];
    // Refused with ErrorCode::AlreadyResolved, then how.
    let count = variant_count(&[3, 0, 0, 0, 5, 0, 0, 0], server);
    check_variants(&document, "Resolution", &samples, count, &mut failures);

    check_order_variants(&document, &command_prefix, &query_prefix, &ok_prefix, &mut failures);

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The variant indices of the order vocabulary (`order.rs`), each reached through a
/// command, query or reply that carries it.
fn check_order_variants(
    document: &str,
    command_prefix: &[u8],
    query_prefix: &[u8],
    ok_prefix: &[u8],
    failures: &mut Vec<String>,
) {
    let concat = |parts: &[&[u8]]| parts.concat();
    let u64_zero = [0u8; 8];
    let u32_zero = [0u8; 4];

    // Query::OrderByNumber, then the channel.
    let count = variant_count(&concat(&[query_prefix, &[7, 0, 0, 0]]), client);
    check_variants(document, "Channel", &Channel::ALL, count, failures);

    // Query::OrdersByState, then the state.
    let count = variant_count(&concat(&[query_prefix, &[9, 0, 0, 0]]), client);
    check_variants(document, "OrderState", &OrderState::ALL, count, failures);

    // Command::ReserveRouted with no lines, then the destination.
    let count = variant_count(&concat(&[command_prefix, &[11, 0, 0, 0], &u64_zero]), client);
    let samples = [
        DeliveryRequest::Ship {
            to: Address {
                latitude_e6: 0,
                longitude_e6: 0,
                country: "GB".into(),
                postcode: "P".into(),
            },
        },
        DeliveryRequest::Pickup { location: "L".into() },
    ];
    check_variants(document, "DeliveryRequest", &samples, count, failures);

    // Command::RecordPayment for order 0, then the event.
    let count = variant_count(&concat(&[command_prefix, &[13, 0, 0, 0], &u64_zero]), client);
    let samples = [
        PaymentEvent::Authorised,
        PaymentEvent::Failed,
        PaymentEvent::Captured,
        PaymentEvent::Refunded,
    ];
    check_variants(document, "PaymentEvent", &samples, count, failures);

    // Command::HoldOrder for order 0, then the reason.
    let count = variant_count(&concat(&[command_prefix, &[14, 0, 0, 0], &u64_zero]), client);
    let samples = [OrderHoldReason::Manual, OrderHoldReason::Fraud];
    check_variants(document, "OrderHoldReason", &samples, count, failures);

    // Command::AdvanceShipment for shipment 0, then the step.
    let count = variant_count(&concat(&[command_prefix, &[19, 0, 0, 0], &u64_zero]), client);
    let samples = [
        ShipmentStep::Release,
        ShipmentStep::StartPicking,
        ShipmentStep::Pack,
        ShipmentStep::Ship { carrier: "C".into(), tracking: "T".into() },
        ShipmentStep::Deliver,
        ShipmentStep::ReadyForPickup,
        ShipmentStep::PickUp,
    ];
    check_variants(document, "ShipmentStep", &samples, count, failures);

    // Command::ReceiveReturn for return 0 at "", one line of "" × 0, then its condition.
    let one = 1u64.to_le_bytes();
    let prefix =
        concat(&[command_prefix, &[24, 0, 0, 0], &u64_zero, &u64_zero, &one, &u64_zero, &u32_zero]);
    let samples = [ReturnCondition::Resellable, ReturnCondition::Damaged { reason: "r".into() }];
    check_variants(document, "ReturnCondition", &samples, variant_count(&prefix, client), failures);

    // Reply::ShipmentChanged for shipment 0, then the state.
    let count = variant_count(&concat(&[ok_prefix, &[14, 0, 0, 0], &u64_zero]), server);
    let samples = [
        ShipmentState::Allocated,
        ShipmentState::Released,
        ShipmentState::Picking,
        ShipmentState::Packed,
        ShipmentState::Shipped,
        ShipmentState::Delivered,
        ShipmentState::ReadyForPickup,
        ShipmentState::PickedUp,
        ShipmentState::Cancelled,
    ];
    check_variants(document, "ShipmentState", &samples, count, failures);

    // Reply::ReturnChanged for return 0, then the state.
    let count = variant_count(&concat(&[ok_prefix, &[16, 0, 0, 0], &u64_zero]), server);
    let samples = [
        ReturnState::Requested,
        ReturnState::Authorised,
        ReturnState::Received,
        ReturnState::Refunded,
        ReturnState::Exchanged,
    ];
    check_variants(document, "ReturnState", &samples, count, failures);

    // Reply::Shipment: shipment 0, order 0, location "", then the delivery.
    let prefix = concat(&[ok_prefix, &[20, 0, 0, 0], &u64_zero, &u64_zero, &u64_zero]);
    let samples = [Delivery::Ship, Delivery::Pickup];
    check_variants(document, "Delivery", &samples, variant_count(&prefix, server), failures);

    // Reply::Order: order 0, Web, "", "", pickup at "", currency "", Pending, then the
    // payment state.
    let payment_prefix = concat(&[
        ok_prefix,
        &[18, 0, 0, 0],
        &u64_zero,
        &u32_zero,
        &u64_zero,
        &u64_zero,
        &[1, 0, 0, 0],
        &u64_zero,
        &u64_zero,
        &u32_zero,
    ]);
    let samples = [
        PaymentState::Pending,
        PaymentState::Authorised,
        PaymentState::Captured,
        PaymentState::Failed,
        PaymentState::Refunded,
        PaymentState::Voided,
    ];
    let count = variant_count(&payment_prefix, server);
    check_variants(document, "PaymentState", &samples, count, failures);

    // … payment Pending, no hold, no lines, shipments or returns, then the routing rule.
    let rule_prefix = concat(&[&payment_prefix, &u32_zero, &[0], &[0; 24]]);
    let samples = [
        RoutingRule::Pickup,
        RoutingRule::OneLocation,
        RoutingRule::Split,
        RoutingRule::NoLocation,
        RoutingRule::FromHold,
    ];
    let count = variant_count(&rule_prefix, server);
    check_variants(document, "RoutingRule", &samples, count, failures);

    // … rule Pickup, 0 considered, one assessment of "" with zero figures, then its verdict.
    let verdict_prefix = concat(&[&rule_prefix, &u32_zero, &u32_zero, &one, &u64_zero, &[0; 32]]);
    let samples = [
        Verdict::Chosen,
        Verdict::Inactive,
        Verdict::DoesNotShip,
        Verdict::NoPickup,
        Verdict::NotThePickupStore,
        Verdict::AtCapacity,
        Verdict::NoStock,
        Verdict::Eligible,
    ];
    let count = variant_count(&verdict_prefix, server);
    check_variants(document, "Verdict", &samples, count, failures);
}

#[test]
fn every_limit_in_the_document_is_the_constant_in_limits_rs() {
    let document = document();
    let expected: &[(&str, u64)] = &[
        ("FRAME_BYTES_MAX", limits::FRAME_BYTES_MAX as u64),
        ("BATCH_REQUESTS_MAX", limits::BATCH_REQUESTS_MAX as u64),
        ("TOKEN_BYTES_MAX", limits::TOKEN_BYTES_MAX as u64),
        ("CLIENT_NAME_BYTES_MAX", limits::CLIENT_NAME_BYTES_MAX as u64),
        ("SKU_BYTES_MAX", limits::SKU_BYTES_MAX as u64),
        ("LOCATION_CODE_BYTES_MAX", limits::LOCATION_CODE_BYTES_MAX as u64),
        ("ORDER_NUMBER_BYTES_MAX", limits::ORDER_NUMBER_BYTES_MAX as u64),
        ("IDEMPOTENCY_KEY_BYTES_MAX", limits::IDEMPOTENCY_KEY_BYTES_MAX as u64),
        ("REASON_BYTES_MAX", limits::REASON_BYTES_MAX as u64),
        ("LOCATION_NAME_BYTES_MAX", limits::LOCATION_NAME_BYTES_MAX as u64),
        ("LINES_PER_HOLD_MAX", limits::LINES_PER_HOLD_MAX as u64),
        ("QUANTITY_PER_LINE_MAX", u64::from(limits::QUANTITY_PER_LINE_MAX)),
        ("ON_HAND_MAX", u64::from(limits::ON_HAND_MAX)),
        ("HOLD_TTL_MS_MIN", limits::HOLD_TTL_MS_MIN),
        ("HOLD_TTL_MS_DEFAULT", limits::HOLD_TTL_MS_DEFAULT),
        ("HOLD_TTL_MS_MAX", limits::HOLD_TTL_MS_MAX),
        ("LATITUDE_E6_MAX", limits::LATITUDE_E6_MAX.unsigned_abs().into()),
        ("LONGITUDE_E6_MAX", limits::LONGITUDE_E6_MAX.unsigned_abs().into()),
        ("LINES_PER_ORDER_MAX", limits::LINES_PER_ORDER_MAX as u64),
        ("CUSTOMER_BYTES_MAX", limits::CUSTOMER_BYTES_MAX as u64),
        ("POSTCODE_BYTES_MAX", limits::POSTCODE_BYTES_MAX as u64),
        ("CARRIER_BYTES_MAX", limits::CARRIER_BYTES_MAX as u64),
        ("TRACKING_BYTES_MAX", limits::TRACKING_BYTES_MAX as u64),
        ("PAYMENT_REFERENCE_BYTES_MAX", limits::PAYMENT_REFERENCE_BYTES_MAX as u64),
        ("PRICE_MINOR_MAX", limits::PRICE_MINOR_MAX.unsigned_abs()),
        ("PAGE_LIMIT_MAX", u64::from(limits::PAGE_LIMIT_MAX)),
    ];
    let mut documented = Vec::new();
    for line in document.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, name, value, ..] = cells[..] else { continue };
        let Some(name) = name.strip_prefix('`').and_then(|name| name.strip_suffix('`')) else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            continue;
        }
        let value: u64 = value
            .replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("limit {name} has the value {value:?}"));
        documented.push((name.to_owned(), value));
    }
    let expected: Vec<(String, u64)> =
        expected.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect();
    assert_eq!(documented, expected);
}

#[test]
fn a_string_is_a_u64_byte_length_then_utf8() {
    assert_eq!(encode_payload(&"ab".to_owned()), [2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);
    assert_eq!(encode_payload(&"é".to_owned()), [2, 0, 0, 0, 0, 0, 0, 0, 0xc3, 0xa9]);
    assert_eq!(encode_payload(&String::new()), [0; 8]);
}

#[test]
fn an_option_is_a_tag_byte_then_the_value() {
    assert_eq!(encode_payload(&Some(5u16)), [1, 5, 0]);
    assert_eq!(encode_payload(&None::<u16>), [0]);
}

#[test]
fn an_enum_is_a_u32_variant_index_then_its_fields() {
    assert_eq!(encode_payload(&Role::Read), [3, 0, 0, 0]);
    assert_eq!(encode_payload(&HoldState::Resolved(Resolution::Expired)), [1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(
        encode_payload(&ErrorCode::CompareFailed { actual: 258 }),
        [11, 0, 0, 0, 2, 1, 0, 0]
    );
}

#[test]
fn a_result_is_index_zero_for_ok_and_one_for_err() {
    assert_eq!(encode_payload(&Ok::<u8, u8>(7)), [0, 0, 0, 0, 7]);
    assert_eq!(encode_payload(&Err::<u8, u8>(7)), [1, 0, 0, 0, 7]);
}

#[test]
fn integers_are_fixed_width_little_endian_and_bools_one_byte() {
    assert_eq!(encode_payload(&0x0102u16), [2, 1]);
    assert_eq!(encode_payload(&-2i32), [0xfe, 0xff, 0xff, 0xff]);
    assert_eq!(encode_payload(&1u64), [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(encode_payload(&-1i64), [0xff; 8]);
    assert_eq!(encode_payload(&true), [1]);
    assert_eq!(encode_payload(&false), [0]);
}

#[test]
fn a_vec_is_a_u64_count_then_its_items() {
    assert_eq!(encode_payload(&vec![1u32, 2]), [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
}

/// A location upsert's payload and the offset of its `ships` byte.
fn upsert_payload_and_ships_offset() -> (Vec<u8>, usize) {
    let upsert = |ships| {
        let mut spec = sample_spec();
        spec.ships = ships;
        encode_payload(&command(1, None, Command::UpsertLocation(spec)))
    };
    let (off, on) = (upsert(false), upsert(true));
    let offset = (0..off.len()).find(|&index| off[index] != on[index]).expect("ships differs");
    assert_eq!((off[offset], on[offset]), (0, 1));
    (on, offset)
}

#[test]
fn a_bool_byte_other_than_zero_or_one_does_not_decode() {
    let (mut payload, ships) = upsert_payload_and_ships_offset();
    assert!(decode_client(&payload).is_ok());
    payload[ships] = 2;
    assert!(decode_client(&payload).is_err());
}

#[test]
fn an_option_tag_other_than_zero_or_one_does_not_decode() {
    let mut payload = encode_payload(&command(1, None, Command::ExtendHold { hold: 1, ttl_ms: 1 }));
    // ClientFrame::Request (4 bytes), id (8), RequestBody::Command (4), then the key's tag.
    assert_eq!(payload[16], 0);
    payload[16] = 2;
    assert!(decode_client(&payload).is_err());
}

#[test]
fn an_unknown_variant_index_does_not_decode() {
    assert!(decode_client(&[3, 0, 0, 0]).is_err());
    assert!(decode_server(&[4, 0, 0, 0]).is_err());
}

#[test]
fn a_result_index_other_than_zero_or_one_does_not_decode() {
    let mut payload = encode_payload(&response(1, Ok(Reply::HoldCommitted { hold: 1 })));
    // ServerFrame::Response (4 bytes), id (8), then the result's index.
    assert_eq!(payload[12..16], [0, 0, 0, 0]);
    payload[12] = 2;
    assert!(decode_server(&payload).is_err());
    payload[12] = 1;
    assert!(decode_server(&payload).is_err(), "an Err holding a Reply's bytes");
}

#[test]
fn a_string_that_is_not_utf8_does_not_decode() {
    let mut payload =
        encode_payload(&request(1, RequestBody::Query(Query::SkuStock { sku: "ab".into() })));
    let at = payload.len() - 2;
    assert_eq!(payload[at..], *b"ab");
    payload[at..].copy_from_slice(&[0xff, 0xfe]);
    assert!(decode_client(&payload).is_err());
}

#[test]
fn the_length_prefix_counts_the_payload_only() {
    let ping = request(1, RequestBody::Ping);
    let payload = encode_payload(&ping);
    let framed = frame(&ping);
    assert_eq!(framed[..4], (payload.len() as u32).to_le_bytes());
    assert_eq!(framed[4..], payload[..]);
}
