//! Every message survives encode → frame → deframe → decode unchanged, however the bytes
//! are split; and no input, however malformed, panics the decoders or the deframer or
//! makes them allocate what a length merely claims.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use allot_protocol::codec::{decode_client, decode_server, encode_payload, frame, write_frame};
use allot_protocol::limits::FRAME_BYTES_MAX;
use allot_protocol::{
    CellView, ClientFrame, Command, Deframer, Error, ErrorCode, FrameError, Hello, HoldLineView,
    HoldState, HoldView, LineRequest, LocationKind, LocationSpec, Query, Reply, Request,
    RequestBody, Resolution, Response, Role, ServerFrame, ServerLimits, ShippingCost, Welcome,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Counts the bytes each thread asks the allocator for, so a test can see what one call
/// allocated while other tests run on other threads.
struct CountingAllocator;

thread_local! {
    static BYTES_ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    let _ = BYTES_ALLOCATED.try_with(|total| total.set(total.get().saturating_add(bytes)));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The result of `call` and the bytes it allocated on this thread.
fn allocated_by<T>(call: impl FnOnce() -> T) -> (T, usize) {
    let before = BYTES_ALLOCATED.with(Cell::get);
    let result = call();
    (result, BYTES_ALLOCATED.with(Cell::get) - before)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[A-Z0-9-]{0,12}", 1 => ".{0,6}"]
}

fn line() -> impl Strategy<Value = LineRequest> {
    (text(), text(), any::<u32>()).prop_map(|(sku, location, quantity)| LineRequest {
        sku,
        location,
        quantity,
    })
}

fn location_kind() -> impl Strategy<Value = LocationKind> {
    prop_oneof![
        Just(LocationKind::Warehouse),
        Just(LocationKind::Store),
        Just(LocationKind::ThirdParty),
        Just(LocationKind::DropShip),
    ]
}

fn location_spec() -> impl Strategy<Value = LocationSpec> {
    (
        (text(), text(), location_kind(), any::<i32>(), any::<i32>()),
        (any::<bool>(), any::<bool>(), any::<u32>()),
        (any::<i64>(), any::<i64>(), text(), any::<u32>(), any::<bool>()),
    )
        .prop_map(
            |(
                (code, name, kind, latitude_e6, longitude_e6),
                (ships, pickup, daily_capacity),
                (base_minor, per_km_minor, currency, priority, active),
            )| LocationSpec {
                code,
                name,
                kind,
                latitude_e6,
                longitude_e6,
                ships,
                pickup,
                daily_capacity,
                shipping_cost: ShippingCost { base_minor, per_km_minor, currency },
                priority,
                active,
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        location_spec().prop_map(Command::UpsertLocation),
        text().prop_map(|location| Command::DeactivateLocation { location }),
        (text(), text(), any::<u32>()).prop_map(|(sku, location, quantity)| Command::Receive {
            sku,
            location,
            quantity
        }),
        (text(), text(), any::<i64>(), text()).prop_map(|(sku, location, delta, reason)| {
            Command::Adjust { sku, location, delta, reason }
        }),
        (text(), text(), any::<u32>(), any::<u32>()).prop_map(
            |(sku, location, expected, counted)| Command::CycleCount {
                sku,
                location,
                expected,
                counted
            }
        ),
        (text(), text(), any::<u32>()).prop_map(|(sku, location, quantity)| {
            Command::SetSafetyStock { sku, location, quantity }
        }),
        (text(), text(), text(), any::<u32>())
            .prop_map(|(sku, from, to, quantity)| Command::Transfer { sku, from, to, quantity }),
        (vec(line(), 0..4), any::<Option<u64>>())
            .prop_map(|(lines, ttl_ms)| Command::Reserve { lines, ttl_ms }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(hold, ttl_ms)| Command::ExtendHold { hold, ttl_ms }),
        (any::<u64>(), vec(line(), 0..4))
            .prop_map(|(hold, lines)| Command::ReleaseHold { hold, lines }),
        (any::<u64>(), text())
            .prop_map(|(hold, order_number)| Command::CommitHold { hold, order_number }),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        (text(), text()).prop_map(|(sku, location)| Query::Cell { sku, location }),
        text().prop_map(|sku| Query::SkuStock { sku }),
        any::<u64>().prop_map(|hold| Query::Hold { hold }),
        text().prop_map(|location| Query::Location { location }),
        Just(Query::Locations),
        Just(Query::Shortages),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let body = prop_oneof![
        Just(RequestBody::Ping),
        (proptest::option::of(text()), command()).prop_map(|(idempotency_key, command)| {
            RequestBody::Command { idempotency_key, command }
        }),
        query().prop_map(RequestBody::Query),
    ];
    (any::<u64>(), body).prop_map(|(id, body)| Request { id, body })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u16>(), text(), text()).prop_map(|(protocol_version, token, client_name)| {
            ClientFrame::Hello(Hello { protocol_version, token, client_name })
        }),
        request().prop_map(ClientFrame::Request),
        vec(request(), 0..4).prop_map(ClientFrame::Batch),
    ]
}

fn resolution() -> impl Strategy<Value = Resolution> {
    prop_oneof![Just(Resolution::Committed), Just(Resolution::Released), Just(Resolution::Expired)]
}

fn hold_state() -> impl Strategy<Value = HoldState> {
    prop_oneof![Just(HoldState::Held), resolution().prop_map(HoldState::Resolved)]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Checkout), Just(Role::Fulfilment), Just(Role::Admin), Just(Role::Read)]
}

fn cell_view() -> impl Strategy<Value = CellView> {
    (text(), text(), any::<[u32; 4]>(), any::<i64>()).prop_map(
        |(sku, location, [on_hand, held, allocated, safety_stock], available)| CellView {
            sku,
            location,
            on_hand,
            held,
            allocated,
            safety_stock,
            available,
        },
    )
}

fn hold_view() -> impl Strategy<Value = HoldView> {
    let line = (text(), text(), any::<u32>()).prop_map(|(sku, location, quantity)| HoldLineView {
        sku,
        location,
        quantity,
    });
    (
        (any::<u64>(), hold_state(), vec(line, 0..3)),
        (any::<u64>(), any::<u64>(), any::<Option<u64>>(), proptest::option::of(text())),
    )
        .prop_map(
            |(
                (hold, state, lines),
                (created_at_ms, expires_at_ms, resolved_at_ms, order_number),
            )| {
                HoldView {
                    hold,
                    state,
                    lines,
                    created_at_ms,
                    expires_at_ms,
                    resolved_at_ms,
                    order_number,
                }
            },
        )
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        text().prop_map(|server_version| Reply::Pong { server_version }),
        location_spec().prop_map(Reply::Location),
        vec(location_spec(), 0..3).prop_map(Reply::Locations),
        cell_view().prop_map(Reply::Cell),
        vec(cell_view(), 0..3).prop_map(Reply::Cells),
        (cell_view(), cell_view()).prop_map(|(from, to)| Reply::Transferred { from, to }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(hold, expires_at_ms)| Reply::HoldPlaced { hold, expires_at_ms }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(hold, expires_at_ms)| Reply::HoldExtended { hold, expires_at_ms }),
        (any::<u64>(), hold_state(), any::<u64>()).prop_map(|(hold, state, units_held)| {
            Reply::HoldReleased { hold, state, units_held }
        }),
        any::<u64>().prop_map(|hold| Reply::HoldCommitted { hold }),
        hold_view().prop_map(Reply::Hold),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::InvalidArgument),
        Just(ErrorCode::NotFound),
        (any::<u32>(), any::<i64>())
            .prop_map(|(line, available)| ErrorCode::InsufficientStock { line, available }),
        text().prop_map(|from| ErrorCode::InvalidTransition { from }),
        Just(ErrorCode::IdempotencyConflict),
        resolution().prop_map(|how| ErrorCode::AlreadyResolved { how }),
        Just(ErrorCode::Unauthorized),
        Just(ErrorCode::Overloaded),
        Just(ErrorCode::Unavailable),
        Just(ErrorCode::FrameTooLarge),
        Just(ErrorCode::UnsupportedVersion),
        any::<u32>().prop_map(|actual| ErrorCode::CompareFailed { actual }),
    ]
}

fn error() -> impl Strategy<Value = Error> {
    (error_code(), text()).prop_map(|(code, message)| Error { code, message })
}

fn response() -> impl Strategy<Value = Response> {
    let result = prop_oneof![reply().prop_map(Ok), error().prop_map(Err)];
    (any::<u64>(), result).prop_map(|(id, result)| Response { id, result })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let welcome = (any::<u16>(), text(), role(), any::<[u32; 4]>()).prop_map(
        |(protocol_version, server_version, role, limits)| {
            let [frame_bytes_max, batch_requests_max, in_flight_requests_max, lines_per_hold_max] =
                limits;
            ServerFrame::Welcome(Welcome {
                protocol_version,
                server_version,
                role,
                limits: ServerLimits {
                    frame_bytes_max,
                    batch_requests_max,
                    in_flight_requests_max,
                    lines_per_hold_max,
                },
            })
        },
    );
    prop_oneof![
        welcome,
        response().prop_map(ServerFrame::Response),
        vec(response(), 0..3).prop_map(ServerFrame::Batch),
        error().prop_map(ServerFrame::Refused),
    ]
}

/// Feeds `stream` to a deframer in pieces cut at `cuts`; the payloads, and how it ended.
fn deframe(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    let mut deframer = Deframer::new();
    let mut payloads = Vec::new();
    let mut start = 0;
    for cut in cuts {
        deframer.push(&stream[start..cut]);
        start = cut;
        loop {
            match deframer.next_frame() {
                Ok(Some(payload)) => payloads.push(payload.to_vec()),
                Ok(None) => break,
                Err(error) => return (payloads, Err(error)),
            }
        }
    }
    (payloads, deframer.finish())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_client_frame_decodes_to_itself(message in client_frame()) {
        let payload = encode_payload(&message);
        prop_assert_eq!(decode_client(&payload), Ok(message.clone()));
        let framed = frame(&message);
        prop_assert_eq!(&framed[..4], &(payload.len() as u32).to_le_bytes()[..]);
        prop_assert_eq!(&framed[4..], &payload[..]);
    }

    #[test]
    fn every_server_frame_decodes_to_itself(message in server_frame()) {
        let payload = encode_payload(&message);
        prop_assert_eq!(decode_server(&payload), Ok(message.clone()));
        let framed = frame(&message);
        prop_assert_eq!(&framed[..4], &(payload.len() as u32).to_le_bytes()[..]);
        prop_assert_eq!(&framed[4..], &payload[..]);
    }

    #[test]
    fn frames_split_at_arbitrary_points_deframe_to_the_same_payloads(
        client in vec(client_frame(), 1..5),
        server in vec(server_frame(), 1..5),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut stream = Vec::new();
        client.iter().for_each(|message| write_frame(message, &mut stream));
        let (payloads, end) = deframe(&stream, &cuts);
        prop_assert_eq!(end, Ok(()));
        let decoded: Vec<ClientFrame> =
            payloads.iter().map(|payload| decode_client(payload).unwrap()).collect();
        prop_assert_eq!(decoded, client);

        let mut stream = Vec::new();
        server.iter().for_each(|message| write_frame(message, &mut stream));
        let (payloads, end) = deframe(&stream, &cuts);
        prop_assert_eq!(end, Ok(()));
        let expected: Vec<Vec<u8>> = server.iter().map(encode_payload).collect();
        prop_assert_eq!(payloads, expected);
    }

    #[test]
    fn every_proper_prefix_of_a_payload_is_an_error(message in client_frame(), cut in any::<usize>()) {
        let payload = encode_payload(&message);
        let cut = cut % payload.len();
        prop_assert!(decode_client(&payload[..cut]).is_err());
    }

    #[test]
    fn a_payload_with_bytes_after_the_message_is_an_error(
        message in server_frame(),
        extra in vec(any::<u8>(), 1..8),
    ) {
        let mut payload = encode_payload(&message);
        payload.extend_from_slice(&extra);
        let error = decode_server(&payload).unwrap_err();
        prop_assert!(error.0.contains("trailing"), "{}", error);
    }

    #[test]
    fn a_valid_frame_with_one_byte_changed_never_panics_and_decodes_consistently(
        message in client_frame(),
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut payload = encode_payload(&message);
        let at = at % payload.len();
        payload[at] = byte;
        if let Ok(decoded) = decode_client(&payload) {
            prop_assert_eq!(encode_payload(&decoded), payload.clone());
        }
        if let Ok(decoded) = decode_server(&payload) {
            prop_assert_eq!(encode_payload(&decoded), payload);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..200)) {
        if let Ok(decoded) = decode_client(&bytes) {
            prop_assert_eq!(encode_payload(&decoded), bytes.clone());
        }
        if let Ok(decoded) = decode_server(&bytes) {
            prop_assert_eq!(encode_payload(&decoded), bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_deframer(
        bytes in vec(any::<u8>(), 0..200),
        cuts in vec(any::<usize>(), 0..6),
    ) {
        let (payloads, end) = deframe(&bytes, &cuts);
        let framed: usize = payloads.iter().map(|payload| 4 + payload.len()).sum();
        prop_assert!(framed <= bytes.len());
        if end.is_ok() {
            prop_assert_eq!(framed, bytes.len());
        }
    }
}

#[test]
fn a_string_length_claiming_two_to_the_sixty_bytes_is_an_error_without_allocating_it() {
    // ClientFrame::Hello, protocol version 1, then a token length of 2^60.
    let mut payload = vec![0, 0, 0, 0, 1, 0];
    payload.extend_from_slice(&(1u64 << 60).to_le_bytes());
    payload.extend_from_slice(b"short");
    let (decoded, bytes) = allocated_by(|| decode_client(&payload));
    assert!(decoded.is_err());
    assert!(bytes < 64 * 1024, "{bytes} bytes allocated");

    let token = "t".repeat(100_000);
    let hello =
        ClientFrame::Hello(Hello { protocol_version: 1, token, client_name: String::new() });
    let payload = encode_payload(&hello);
    let (decoded, bytes) = allocated_by(|| decode_client(&payload));
    assert_eq!(decoded, Ok(hello));
    assert!(bytes >= 100_000, "a real string of 100,000 bytes counted as {bytes}");
}

#[test]
fn a_vec_count_claiming_two_to_the_sixty_items_is_an_error_allocating_at_most_a_megabyte() {
    // ClientFrame::Batch with a count of 2^60 and one ping after it.
    let mut payload = vec![2, 0, 0, 0];
    payload.extend_from_slice(&(1u64 << 60).to_le_bytes());
    payload.extend_from_slice(&encode_payload(&Request { id: 1, body: RequestBody::Ping }));
    let (decoded, bytes) = allocated_by(|| decode_client(&payload));
    assert!(decoded.is_err());
    assert!(bytes <= 1024 * 1024 + 64 * 1024, "{bytes} bytes allocated");
}

#[test]
fn a_length_prefix_over_the_limit_is_too_large_before_the_payload_arrives() {
    let mut deframer = Deframer::new();
    deframer.push(&(FRAME_BYTES_MAX as u32 + 1).to_le_bytes());
    let length = FRAME_BYTES_MAX as u64 + 1;
    assert_eq!(
        deframer.next_frame(),
        Err(FrameError::TooLarge { length, bytes_max: FRAME_BYTES_MAX as u64 })
    );

    let mut deframer = Deframer::new();
    deframer.push(&(FRAME_BYTES_MAX as u32).to_le_bytes());
    assert_eq!(deframer.next_frame(), Ok(None));
    assert_eq!(deframer.finish(), Err(FrameError::Truncated { buffered: 4 }));
}

#[test]
fn a_payload_of_exactly_the_frame_limit_decodes_and_one_byte_more_does_not() {
    // A Hello's fixed part: variant (4), version (2), two string lengths (16).
    let hello = |bytes: usize| {
        let token = "t".repeat(bytes - 22);
        ClientFrame::Hello(Hello { protocol_version: 1, token, client_name: String::new() })
    };
    let at_limit = hello(FRAME_BYTES_MAX);
    let payload = encode_payload(&at_limit);
    assert_eq!(payload.len(), FRAME_BYTES_MAX);
    assert_eq!(decode_client(&payload), Ok(at_limit));
    assert!(decode_client(&encode_payload(&hello(FRAME_BYTES_MAX + 1))).is_err());
}

#[test]
fn an_empty_payload_is_an_error_and_an_empty_batch_decodes() {
    assert!(decode_client(&[]).is_err());
    assert!(decode_server(&[]).is_err());
    let empty_batch = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(decode_client(&empty_batch), Ok(ClientFrame::Batch(vec![])));
}
