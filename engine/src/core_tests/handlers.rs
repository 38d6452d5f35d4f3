//! Unit tests of the core handlers: each test pins down one behaviour of `State::apply`.

use crate::codec;
use allot_core::limits::{
    EXPIRY_BUCKET_MS, HOLD_RESOLVED_RETENTION_MS, HOLD_TTL_MS_DEFAULT, HOLD_TTL_MS_MAX,
    HOLD_TTL_MS_MIN, IDEMPOTENCY_KEY_BYTES_MAX, IDEMPOTENCY_RETENTION_MS_DEFAULT,
    LINES_PER_HOLD_MAX, LOCATION_CODE_BYTES_MAX, LOCATION_NAME_BYTES_MAX, ON_HAND_MAX,
    ORDER_NUMBER_BYTES_MAX, QUANTITY_PER_LINE_MAX, REASON_BYTES_MAX, RETENTION_GRANULE_MS,
    SKU_BYTES_MAX,
};
use allot_core::outcome::{CellKey, ShortagePage};
use allot_core::{
    Applied, CellView, Command, EngineError, HoldId, HoldLineView, HoldState, HoldView,
    LineRequest, LocationKind, LocationSpec, Outcome, Query, Reply, Request, Resolution,
    ShippingCost, State,
};

/// Engine time the tests start at: a whole second, so bucket arithmetic is easy to read.
const T0: u64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A warehouse that ships, near London: the location most handler tests need.
pub(super) fn spec(code: &str) -> LocationSpec {
    LocationSpec {
        code: code.to_owned(),
        name: format!("{code} site"),
        kind: LocationKind::Warehouse,
        latitude_e6: 51_500_000,
        longitude_e6: -120_000,
        ships: true,
        pickup: false,
        daily_capacity: 500,
        shipping_cost: ShippingCost { base_minor: 300, per_km_minor: 2, currency: "EUR".into() },
        priority: 1,
        active: true,
    }
}

/// A state with the named locations, each created at `T0`.
fn state_with(locations: &[&str]) -> State {
    let mut state = State::new();
    for code in locations {
        ok(&mut state, Command::UpsertLocation(spec(code)), T0);
    }
    state
}

/// A state with locations `W1` and `W2` and the given stock received at `T0`.
fn stocked(cells: &[(&str, &str, u32)]) -> State {
    let mut state = state_with(&["W1", "W2"]);
    for (sku, location, quantity) in cells {
        ok(&mut state, receive(sku, location, *quantity), T0);
    }
    state
}

fn apply(state: &mut State, command: Command, now_ms: u64) -> Applied {
    state.apply(&Request::new(command), now_ms)
}

/// Applies a command that must succeed and change the state; returns its reply.
fn ok(state: &mut State, command: Command, now_ms: u64) -> Reply {
    let name = command.name();
    let applied = apply(state, command, now_ms);
    let reply = applied.outcome.unwrap_or_else(|error| panic!("{name} failed: {error}"));
    assert!(applied.changed, "{name} succeeded but reported no change");
    assert_eq!(state.audit(), Ok(()));
    reply
}

/// Applies a request that must fail; checks that it changed nothing, not even the digest
/// or the engine time of the last change, and returns the error.
fn fails(state: &mut State, request: Request, now_ms: u64) -> EngineError {
    let digest = codec::state_digest(state);
    let last_applied_ms = state.last_applied_ms();
    let applied = state.apply(&request, now_ms);
    let error = match applied.outcome {
        Ok(reply) => panic!("{request:?} succeeded: {reply:?}"),
        Err(error) => error,
    };
    assert!(!applied.changed, "failing {request:?} reported a change");
    assert_eq!(codec::state_digest(state), digest, "failing {request:?} changed the state");
    assert_eq!(state.last_applied_ms(), last_applied_ms);
    assert_eq!(state.audit(), Ok(()));
    error
}

fn fails_cmd(state: &mut State, command: Command, now_ms: u64) -> EngineError {
    fails(state, Request::new(command), now_ms)
}

fn assert_invalid(error: EngineError) {
    assert!(
        matches!(error, EngineError::InvalidArgument(_)),
        "expected InvalidArgument, got {error:?}"
    );
}

fn assert_not_found(error: EngineError) {
    assert!(matches!(error, EngineError::NotFound(_)), "expected NotFound, got {error:?}");
}

fn receive(sku: &str, location: &str, quantity: u32) -> Command {
    Command::Receive { sku: sku.into(), location: location.into(), quantity }
}

fn adjust(sku: &str, location: &str, delta: i64, reason: &str) -> Command {
    Command::Adjust { sku: sku.into(), location: location.into(), delta, reason: reason.into() }
}

fn line(sku: &str, location: &str, quantity: u32) -> LineRequest {
    LineRequest { sku: sku.into(), location: location.into(), quantity }
}

fn reserve(lines: Vec<LineRequest>, ttl_ms: Option<u64>) -> Command {
    Command::Reserve { lines, ttl_ms }
}

fn release(hold: HoldId, lines: Vec<LineRequest>) -> Command {
    Command::ReleaseHold { hold, lines }
}

fn commit(hold: HoldId, order_number: &str) -> Command {
    Command::CommitHold { hold, order_number: order_number.into() }
}

/// Places a hold that must succeed; returns its id and deadline.
fn place(
    state: &mut State,
    lines: Vec<LineRequest>,
    ttl_ms: Option<u64>,
    now_ms: u64,
) -> (HoldId, u64) {
    match ok(state, reserve(lines, ttl_ms), now_ms) {
        Reply::HoldPlaced { hold, expires_at_ms } => (hold, expires_at_ms),
        other => panic!("reserve answered {other:?}"),
    }
}

fn cell(state: &State, sku: &str, location: &str) -> CellView {
    match state.query(&Query::Cell { sku: sku.into(), location: location.into() }) {
        Ok(Reply::Cell(view)) => view,
        other => panic!("cell query answered {other:?}"),
    }
}

/// (on_hand, held, allocated, safety_stock, available) of a cell.
fn counts(state: &State, sku: &str, location: &str) -> (u32, u32, u32, u32, i64) {
    let view = cell(state, sku, location);
    (view.on_hand, view.held, view.allocated, view.safety_stock, view.available)
}

fn hold(state: &State, id: HoldId) -> HoldView {
    match state.query(&Query::Hold { hold: id }) {
        Ok(Reply::Hold(view)) => view,
        other => panic!("hold query answered {other:?}"),
    }
}

fn tick(state: &mut State, now_ms: u64) -> u32 {
    match ok(state, Command::Tick, now_ms) {
        Reply::Ticked { expired } => expired,
        other => panic!("tick answered {other:?}"),
    }
}

fn shortages(state: &State) -> Vec<(String, String, i64)> {
    match state.query(&Query::Shortages) {
        Ok(Reply::Cells(cells)) => {
            cells.into_iter().map(|cell| (cell.sku, cell.location, cell.available)).collect()
        }
        other => panic!("shortages answered {other:?}"),
    }
}

/// The end of the expiry bucket a deadline falls in: the first tick that may expire it.
fn bucket_end(expires_at_ms: u64) -> u64 {
    (expires_at_ms / EXPIRY_BUCKET_MS + 1) * EXPIRY_BUCKET_MS
}

fn already(how: Resolution) -> EngineError {
    EngineError::AlreadyResolved { how }
}

fn round_trip(state: &State) -> State {
    codec::decode_state(&codec::encode_state(state)).expect("a fresh image decodes")
}

// ---------------------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------------------

#[test]
fn upsert_location_creates_a_location_with_every_attribute() {
    let mut state = State::new();
    let mut store = spec("S1");
    store.kind = LocationKind::Store;
    store.pickup = true;
    store.priority = 7;
    let reply = ok(&mut state, Command::UpsertLocation(store.clone()), T0);
    let Reply::Location(view) = reply else { panic!("upsert answered {reply:?}") };
    assert_eq!(view.code, "S1");
    assert_eq!(view.name, store.name);
    assert_eq!(view.kind, LocationKind::Store);
    assert_eq!((view.latitude_e6, view.longitude_e6), (51_500_000, -120_000));
    assert_eq!((view.ships, view.pickup, view.active), (true, true, true));
    assert_eq!((view.daily_capacity, view.priority), (500, 7));
    assert_eq!(view.shipping_cost, store.shipping_cost);
    assert_eq!(state.query(&Query::Location { location: "S1".into() }), Ok(Reply::Location(view)));
}

#[test]
fn upsert_location_replaces_every_attribute_of_an_existing_code() {
    let mut state = state_with(&["W1"]);
    let mut changed = spec("W1");
    changed.name = "renamed".into();
    changed.kind = LocationKind::DropShip;
    changed.ships = false;
    changed.daily_capacity = 3;
    changed.shipping_cost.currency = "GBP".into();
    changed.priority = 9;
    ok(&mut state, Command::UpsertLocation(changed.clone()), T0 + 1);
    let Ok(Reply::Locations(all)) = state.query(&Query::Locations) else { panic!() };
    assert_eq!(all.len(), 1, "an upsert of a known code must not add a location");
    let view = &all[0];
    assert_eq!(view.name, "renamed");
    assert_eq!(view.kind, LocationKind::DropShip);
    assert!(!view.ships);
    assert_eq!(view.daily_capacity, 3);
    assert_eq!(view.shipping_cost.currency, "GBP");
    assert_eq!(view.priority, 9);
}

#[test]
fn upsert_location_rejects_a_malformed_spec_and_changes_nothing() {
    let mut state = state_with(&["W1"]);
    let mut bad = Vec::new();
    bad.push(spec(""));
    bad.push(spec(&"c".repeat(LOCATION_CODE_BYTES_MAX + 1)));
    bad.push(spec("W\n2"));
    let mut long_name = spec("W2");
    long_name.name = "n".repeat(LOCATION_NAME_BYTES_MAX + 1);
    bad.push(long_name);
    let mut latitude = spec("W2");
    latitude.latitude_e6 = 90_000_001;
    bad.push(latitude);
    let mut longitude = spec("W2");
    longitude.longitude_e6 = -180_000_001;
    bad.push(longitude);
    let mut currency = spec("W2");
    currency.shipping_cost.currency = "eur".into();
    bad.push(currency);
    let mut cost = spec("W2");
    cost.shipping_cost.per_km_minor = -1;
    bad.push(cost);
    for spec in bad {
        assert_invalid(fails_cmd(&mut state, Command::UpsertLocation(spec), T0 + 1));
    }
    let at_limit = spec(&"c".repeat(LOCATION_CODE_BYTES_MAX));
    ok(&mut state, Command::UpsertLocation(at_limit), T0 + 1);
}

#[test]
fn locations_query_lists_every_location_in_code_order() {
    let state = state_with(&["W2", "A1", "S9"]);
    let Ok(Reply::Locations(all)) = state.query(&Query::Locations) else { panic!() };
    let codes: Vec<&str> = all.iter().map(|view| view.code.as_str()).collect();
    assert_eq!(codes, ["A1", "S9", "W2"]);
}

#[test]
fn deactivated_location_refuses_holds_but_keeps_its_stock() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let reply = ok(&mut state, Command::DeactivateLocation { location: "W1".into() }, T0 + 1);
    assert!(matches!(reply, Reply::Location(ref view) if !view.active));
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
    let error = fails_cmd(&mut state, reserve(vec![line("sku-1", "W1", 1)], None), T0 + 2);
    assert_invalid(error);
    assert_eq!(counts(&state, "sku-1", "W1").1, 0, "nothing is held at an inactive location");
    // Stock movements at an inactive location still work.
    ok(&mut state, receive("sku-1", "W1", 1), T0 + 3);
    // Upserting the location active again takes holds again.
    ok(&mut state, Command::UpsertLocation(spec("W1")), T0 + 4);
    place(&mut state, vec![line("sku-1", "W1", 1)], None, T0 + 5);
    assert_eq!(counts(&state, "sku-1", "W1"), (11, 1, 0, 0, 10));
}

#[test]
fn deactivating_keeps_existing_holds_resolvable() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (first, _) = place(&mut state, vec![line("sku-1", "W1", 2)], None, T0 + 1);
    let (second, _) = place(&mut state, vec![line("sku-1", "W1", 3)], None, T0 + 1);
    ok(&mut state, Command::DeactivateLocation { location: "W1".into() }, T0 + 2);
    ok(&mut state, commit(first, "order-1"), T0 + 3);
    ok(&mut state, release(second, vec![]), T0 + 3);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 2, 0, 8));
}

#[test]
fn deactivate_unknown_location_is_not_found() {
    let mut state = state_with(&["W1"]);
    let error = fails_cmd(&mut state, Command::DeactivateLocation { location: "nope".into() }, T0);
    assert_not_found(error);
}

// ---------------------------------------------------------------------------------------
// Stock movements
// ---------------------------------------------------------------------------------------

#[test]
fn receive_adds_to_on_hand_and_creates_the_sku() {
    let mut state = state_with(&["W1"]);
    assert_not_found(state.query(&Query::SkuStock { sku: "sku-1".into() }).unwrap_err());
    let reply = ok(&mut state, receive("sku-1", "W1", 4), T0);
    let Reply::Cell(view) = reply else { panic!("receive answered {reply:?}") };
    assert_eq!((view.sku.as_str(), view.location.as_str(), view.on_hand), ("sku-1", "W1", 4));
    ok(&mut state, receive("sku-1", "W1", 6), T0 + 1);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
    assert_eq!(state.cell_count(), 1);
}

#[test]
fn receive_rejects_bad_quantities_and_oversized_levels() {
    let mut state = state_with(&["W1"]);
    let count = Command::CycleCount {
        sku: "sku-1".into(),
        location: "W1".into(),
        expected: 0,
        counted: ON_HAND_MAX - 5,
    };
    ok(&mut state, count, T0);
    assert_invalid(fails_cmd(&mut state, receive("sku-1", "W1", 0), T0));
    assert_invalid(fails_cmd(&mut state, receive("sku-1", "W1", QUANTITY_PER_LINE_MAX + 1), T0));
    assert_invalid(fails_cmd(&mut state, receive("sku-1", "W1", 6), T0));
    ok(&mut state, receive("sku-1", "W1", 5), T0);
    assert_eq!(counts(&state, "sku-1", "W1").0, ON_HAND_MAX);
}

#[test]
fn receive_rejects_malformed_skus_and_unknown_locations() {
    let mut state = state_with(&["W1"]);
    assert_invalid(fails_cmd(&mut state, receive("", "W1", 1), T0));
    assert_invalid(fails_cmd(&mut state, receive(&"s".repeat(SKU_BYTES_MAX + 1), "W1", 1), T0));
    assert_invalid(fails_cmd(&mut state, receive("sku\t1", "W1", 1), T0));
    assert_not_found(fails_cmd(&mut state, receive("sku-1", "nowhere", 1), T0));
    assert_eq!(state.cell_count(), 0);
    ok(&mut state, receive(&"s".repeat(SKU_BYTES_MAX), "W1", 1), T0);
}

#[test]
fn adjust_requires_a_reason() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    assert_invalid(fails_cmd(&mut state, adjust("sku-1", "W1", -1, ""), T0));
    assert_invalid(fails_cmd(
        &mut state,
        adjust("sku-1", "W1", -1, &"r".repeat(REASON_BYTES_MAX + 1)),
        T0,
    ));
    assert_invalid(fails_cmd(&mut state, adjust("sku-1", "W1", -1, "dam\naged"), T0));
    ok(&mut state, adjust("sku-1", "W1", -1, &"r".repeat(REASON_BYTES_MAX)), T0);
    assert_eq!(counts(&state, "sku-1", "W1").0, 4);
}

#[test]
fn adjust_by_zero_is_invalid() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    assert_invalid(fails_cmd(&mut state, adjust("sku-1", "W1", 0, "count"), T0));
}

#[test]
fn adjust_moves_on_hand_both_ways_and_creates_cells() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    ok(&mut state, adjust("sku-1", "W1", 3, "found"), T0);
    ok(&mut state, adjust("sku-1", "W1", -6, "damaged"), T0);
    assert_eq!(counts(&state, "sku-1", "W1").0, 2);
    ok(&mut state, adjust("sku-2", "W2", 7, "opening balance"), T0);
    assert_eq!(counts(&state, "sku-2", "W2"), (7, 0, 0, 0, 7));
}

#[test]
fn adjust_below_zero_on_hand_is_refused() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    assert_invalid(fails_cmd(&mut state, adjust("sku-1", "W1", -6, "damaged"), T0));
    assert_invalid(fails_cmd(&mut state, adjust("sku-1", "W1", i64::MIN, "damaged"), T0));
    assert_invalid(fails_cmd(&mut state, adjust("new-sku", "W1", -1, "damaged"), T0));
    assert_not_found(state.query(&Query::SkuStock { sku: "new-sku".into() }).unwrap_err());
    assert_invalid(fails_cmd(
        &mut state,
        adjust("sku-1", "W1", i64::from(ON_HAND_MAX), "found"),
        T0,
    ));
    ok(&mut state, adjust("sku-1", "W1", -5, "damaged"), T0);
    assert_eq!(counts(&state, "sku-1", "W1"), (0, 0, 0, 0, 0));
}

#[test]
fn negative_adjust_may_leave_a_cell_short_and_shortages_report_it() {
    let mut state = stocked(&[("sku-1", "W1", 5), ("sku-2", "W1", 5)]);
    let (hold_id, _) = place(&mut state, vec![line("sku-1", "W1", 4)], None, T0 + 1);
    assert!(shortages(&state).is_empty());
    ok(&mut state, adjust("sku-1", "W1", -3, "damaged"), T0 + 2);
    assert_eq!(counts(&state, "sku-1", "W1"), (2, 4, 0, 0, -2));
    assert_eq!(shortages(&state), [("sku-1".to_owned(), "W1".to_owned(), -2)]);
    // A short cell refuses further holds, and still lets the existing one commit.
    let error = fails_cmd(&mut state, reserve(vec![line("sku-1", "W1", 1)], None), T0 + 3);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: -2 });
    ok(&mut state, commit(hold_id, "order-1"), T0 + 3);
    assert_eq!(counts(&state, "sku-1", "W1"), (2, 0, 4, 0, -2));
    ok(&mut state, receive("sku-1", "W1", 2), T0 + 4);
    assert!(shortages(&state).is_empty());
}

fn shortage_page(state: &State, after: Option<CellKey>, limit: u32) -> ShortagePage {
    match state.query(&Query::ShortagePage { after, limit }) {
        Ok(Reply::Shortages(page)) => page,
        other => panic!("shortage page answered {other:?}"),
    }
}

#[test]
fn shortage_pages_are_bounded_and_visit_every_short_cell_exactly_once() {
    // 25 SKUs at two locations; every third cell is made short, the others stay whole.
    let mut state = state_with(&["W1", "W2"]);
    let mut expected = Vec::new();
    for index in 0..25 {
        let sku = format!("sku-{index:02}");
        for (offset, location) in ["W1", "W2"].into_iter().enumerate() {
            ok(&mut state, receive(&sku, location, 5), T0);
            if (index * 2 + offset) % 3 == 0 {
                place(&mut state, vec![line(&sku, location, 4)], None, T0);
                ok(&mut state, adjust(&sku, location, -3, "damaged"), T0);
                expected.push((sku.clone(), location.to_owned()));
            }
        }
    }
    let restored = round_trip(&state);
    for state in [&state, &restored] {
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = shortage_page(state, after, 4);
            assert!(page.cells.len() <= 4, "a page holds at most its limit");
            assert!(page.cells.iter().all(|cell| cell.available == -2));
            seen.extend(page.cells.iter().map(|cell| (cell.sku.clone(), cell.location.clone())));
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected, "every short cell once, by sku then location");
        assert_eq!(pages, expected.len().div_ceil(4));
    }
    // The unpaged query answers the first page's cells.
    assert_eq!(shortages(&state).len(), expected.len());
    // A cell that is no longer short leaves the index; one that becomes short joins it.
    ok(&mut state, receive("sku-00", "W1", 2), T0);
    let safety =
        Command::SetSafetyStock { sku: "sku-00".into(), location: "W2".into(), quantity: 6 };
    ok(&mut state, safety, T0);
    let page = shortage_page(&state, None, 1);
    assert_eq!((page.cells[0].sku.as_str(), page.cells[0].location.as_str()), ("sku-00", "W2"));
    for limit in [0, allot_protocol::limits::PAGE_LIMIT_MAX + 1] {
        let query = Query::ShortagePage { after: None, limit };
        assert!(matches!(state.query(&query), Err(EngineError::InvalidArgument(_))), "{limit}");
    }
}

#[test]
fn a_cell_query_names_an_unknown_sku_not_found_and_a_never_stocked_cell_zeros() {
    let state = stocked(&[("sku-1", "W1", 5)]);
    let query = |sku: &str, location: &str| {
        state.query(&Query::Cell { sku: sku.into(), location: location.into() })
    };
    assert_not_found(query("sku-9", "W1").unwrap_err());
    assert_not_found(query("sku-1", "W9").unwrap_err());
    // A known SKU at a known location it was never stocked at: a cell of zeros.
    assert_eq!(counts(&state, "sku-1", "W2"), (0, 0, 0, 0, 0));
    assert_eq!(cell(&state, "sku-1", "W2").location, "W2");
}

#[test]
fn cycle_count_sets_on_hand_when_the_expected_quantity_matches() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let command =
        Command::CycleCount { sku: "sku-1".into(), location: "W1".into(), expected: 5, counted: 3 };
    ok(&mut state, command, T0 + 1);
    assert_eq!(counts(&state, "sku-1", "W1").0, 3);
    // A never-counted cell is expected at zero.
    let fresh =
        Command::CycleCount { sku: "sku-2".into(), location: "W1".into(), expected: 0, counted: 8 };
    ok(&mut state, fresh, T0 + 1);
    assert_eq!(counts(&state, "sku-2", "W1").0, 8);
}

#[test]
fn cycle_count_mismatch_reports_the_actual_quantity_and_changes_nothing() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let stale =
        Command::CycleCount { sku: "sku-1".into(), location: "W1".into(), expected: 4, counted: 0 };
    assert_eq!(fails_cmd(&mut state, stale, T0 + 1), EngineError::CompareFailed { actual: 5 });
    assert_eq!(counts(&state, "sku-1", "W1").0, 5);
    let unknown =
        Command::CycleCount { sku: "sku-9".into(), location: "W1".into(), expected: 2, counted: 0 };
    assert_eq!(fails_cmd(&mut state, unknown, T0 + 1), EngineError::CompareFailed { actual: 0 });
    let too_many = Command::CycleCount {
        sku: "sku-1".into(),
        location: "W1".into(),
        expected: 5,
        counted: ON_HAND_MAX + 1,
    };
    assert_invalid(fails_cmd(&mut state, too_many, T0 + 1));
}

#[test]
fn safety_stock_reduces_available() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let set =
        |quantity| Command::SetSafetyStock { sku: "sku-1".into(), location: "W1".into(), quantity };
    ok(&mut state, set(4), T0 + 1);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 4, 6));
    let error = fails_cmd(&mut state, reserve(vec![line("sku-1", "W1", 7)], None), T0 + 2);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 6 });
    place(&mut state, vec![line("sku-1", "W1", 6)], None, T0 + 2);
    // Raising safety stock over what is left makes the cell short, and it is reported.
    ok(&mut state, set(5), T0 + 3);
    assert_eq!(counts(&state, "sku-1", "W1").4, -1);
    assert_eq!(shortages(&state).len(), 1);
    assert_invalid(fails_cmd(&mut state, set(ON_HAND_MAX + 1), T0 + 4));
    ok(&mut state, set(0), T0 + 4);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 6, 0, 0, 4));
}

#[test]
fn transfer_moves_units_and_updates_both_cells() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let command =
        Command::Transfer { sku: "sku-1".into(), from: "W1".into(), to: "W2".into(), quantity: 4 };
    let reply = ok(&mut state, command, T0 + 1);
    let Reply::Transferred { from, to } = reply else { panic!("transfer answered {reply:?}") };
    assert_eq!((from.location.as_str(), from.on_hand, from.available), ("W1", 6, 6));
    assert_eq!((to.location.as_str(), to.on_hand, to.available), ("W2", 4, 4));
    assert_eq!(counts(&state, "sku-1", "W1").0, 6);
    assert_eq!(counts(&state, "sku-1", "W2").0, 4);
}

#[test]
fn transfer_is_limited_by_what_is_available_at_the_source() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    place(&mut state, vec![line("sku-1", "W1", 3)], None, T0 + 1);
    let safety =
        Command::SetSafetyStock { sku: "sku-1".into(), location: "W1".into(), quantity: 2 };
    ok(&mut state, safety, T0 + 1);
    let transfer = |quantity| Command::Transfer {
        sku: "sku-1".into(),
        from: "W1".into(),
        to: "W2".into(),
        quantity,
    };
    let error = fails_cmd(&mut state, transfer(6), T0 + 2);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 5 });
    ok(&mut state, transfer(5), T0 + 2);
    assert_eq!(counts(&state, "sku-1", "W1"), (5, 3, 0, 2, 0));
    assert_eq!(counts(&state, "sku-1", "W2"), (5, 0, 0, 0, 5));
}

#[test]
fn transfer_rejects_bad_requests() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let transfer = |sku: &str, from: &str, to: &str, quantity| Command::Transfer {
        sku: sku.into(),
        from: from.into(),
        to: to.into(),
        quantity,
    };
    assert_invalid(fails_cmd(&mut state, transfer("sku-1", "W1", "W1", 1), T0));
    assert_invalid(fails_cmd(&mut state, transfer("sku-1", "W1", "W2", 0), T0));
    assert_not_found(fails_cmd(&mut state, transfer("sku-9", "W1", "W2", 1), T0));
    assert_not_found(fails_cmd(&mut state, transfer("sku-1", "W9", "W2", 1), T0));
    assert_not_found(fails_cmd(&mut state, transfer("sku-1", "W1", "W9", 1), T0));
    // A SKU known elsewhere but never stocked at the source has nothing to give.
    let error = fails_cmd(&mut state, transfer("sku-1", "W2", "W1", 1), T0);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 0 });
}

#[test]
fn sku_stock_lists_every_cell_of_the_sku() {
    let mut state = stocked(&[("sku-1", "W2", 3), ("sku-1", "W1", 5), ("sku-2", "W1", 1)]);
    ok(&mut state, Command::UpsertLocation(spec("A0")), T0);
    let Ok(Reply::Cells(cells)) = state.query(&Query::SkuStock { sku: "sku-1".into() }) else {
        panic!()
    };
    let seen: Vec<(&str, u32)> = cells.iter().map(|c| (c.location.as_str(), c.on_hand)).collect();
    assert_eq!(seen, [("W1", 5), ("W2", 3)]);
    // A known SKU at a known location without a cell reads as all zeros.
    assert_eq!(counts(&state, "sku-1", "A0"), (0, 0, 0, 0, 0));
    assert_not_found(
        state.query(&Query::Cell { sku: "sku-9".into(), location: "W1".into() }).unwrap_err(),
    );
    assert_not_found(
        state.query(&Query::Cell { sku: "sku-1".into(), location: "W9".into() }).unwrap_err(),
    );
}

// ---------------------------------------------------------------------------------------
// Reserve
// ---------------------------------------------------------------------------------------

#[test]
fn reserve_holds_every_line_until_now_plus_ttl() {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 4)]);
    let lines = vec![line("sku-1", "W1", 3), line("sku-2", "W2", 4)];
    let (id, expires_at_ms) = place(&mut state, lines, Some(60_000), T0 + 7);
    assert_eq!(id, 1, "hold ids start at 1");
    assert_eq!(expires_at_ms, T0 + 7 + 60_000);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 3, 0, 0, 7));
    assert_eq!(counts(&state, "sku-2", "W2"), (4, 4, 0, 0, 0));
    let view = hold(&state, id);
    assert_eq!(view.state, HoldState::Held);
    assert_eq!(view.created_at_ms, T0 + 7);
    assert_eq!(view.expires_at_ms, expires_at_ms);
    assert_eq!(view.resolved_at_ms, None);
    assert_eq!(
        view.lines,
        [
            HoldLineView { sku: "sku-1".into(), location: "W1".into(), quantity: 3 },
            HoldLineView { sku: "sku-2".into(), location: "W2".into(), quantity: 4 },
        ]
    );
    let (next, default_deadline) = place(&mut state, vec![line("sku-1", "W1", 1)], None, T0 + 8);
    assert_eq!(next, 2, "hold ids are sequential");
    assert_eq!(default_deadline, T0 + 8 + HOLD_TTL_MS_DEFAULT);
    assert_eq!(state.counters().holds_placed, 2);
}

#[test]
fn reserve_sums_lines_hitting_the_same_cell_before_the_check() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let lines = vec![line("sku-1", "W1", 3), line("sku-1", "W1", 3)];
    let error = fails_cmd(&mut state, reserve(lines, None), T0 + 1);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 5 });
    assert_eq!(counts(&state, "sku-1", "W1"), (5, 0, 0, 0, 5));
    assert_eq!(state.hold_count(), 0, "nothing is held afterwards");
    // Lines that fit together are merged into one hold line.
    let (id, _) =
        place(&mut state, vec![line("sku-1", "W1", 2), line("sku-1", "W1", 3)], None, T0 + 2);
    assert_eq!(hold(&state, id).lines.len(), 1);
    assert_eq!(hold(&state, id).lines[0].quantity, 5);
    assert_eq!(counts(&state, "sku-1", "W1"), (5, 5, 0, 0, 0));
}

#[test]
fn reserve_is_all_or_nothing() {
    let mut state = stocked(&[("sku-1", "W1", 5), ("sku-2", "W1", 1)]);
    let lines = vec![line("sku-1", "W1", 5), line("sku-2", "W1", 2)];
    let error = fails_cmd(&mut state, reserve(lines, None), T0 + 1);
    assert_eq!(error, EngineError::InsufficientStock { line: 1, available: 1 });
    assert_eq!(counts(&state, "sku-1", "W1").1, 0);
    assert_eq!(counts(&state, "sku-2", "W1").1, 0);
    assert_eq!(state.hold_count(), 0);
    assert_eq!(state.counters().holds_placed, 0);
}

#[test]
fn insufficient_stock_reports_the_request_line_index_and_the_available_amount() {
    let mut state = stocked(&[("sku-1", "W1", 5), ("sku-2", "W1", 2)]);
    // Merged, sku-2 is the second cell; in the request it is line 2.
    let lines = vec![line("sku-1", "W1", 1), line("sku-1", "W1", 1), line("sku-2", "W1", 3)];
    let error = fails_cmd(&mut state, reserve(lines, None), T0 + 1);
    assert_eq!(error, EngineError::InsufficientStock { line: 2, available: 2 });
    // When the lines of one cell only fail together, the first of them is reported.
    let lines = vec![line("sku-1", "W1", 1), line("sku-2", "W1", 1), line("sku-2", "W1", 2)];
    let error = fails_cmd(&mut state, reserve(lines, None), T0 + 1);
    assert_eq!(error, EngineError::InsufficientStock { line: 1, available: 2 });
    // A known SKU with no cell at the location has nothing available.
    let error = fails_cmd(&mut state, reserve(vec![line("sku-1", "W2", 1)], None), T0 + 1);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 0 });
}

#[test]
fn reserve_counts_held_allocated_and_safety_stock_against_availability() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (first, _) = place(&mut state, vec![line("sku-1", "W1", 3)], None, T0 + 1);
    ok(&mut state, commit(first, "order-1"), T0 + 2);
    place(&mut state, vec![line("sku-1", "W1", 2)], None, T0 + 3);
    let safety =
        Command::SetSafetyStock { sku: "sku-1".into(), location: "W1".into(), quantity: 1 };
    ok(&mut state, safety, T0 + 4);
    let error = fails_cmd(&mut state, reserve(vec![line("sku-1", "W1", 5)], None), T0 + 5);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 4 });
    place(&mut state, vec![line("sku-1", "W1", 4)], None, T0 + 5);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 6, 3, 1, 0));
}

#[test]
fn reserve_with_an_unknown_sku_or_location_is_not_found() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let unknown_sku = vec![line("sku-1", "W1", 1), line("sku-9", "W1", 1)];
    assert_not_found(fails_cmd(&mut state, reserve(unknown_sku, None), T0));
    let unknown_location = vec![line("sku-1", "W1", 1), line("sku-1", "W9", 1)];
    assert_not_found(fails_cmd(&mut state, reserve(unknown_location, None), T0));
    assert_eq!(counts(&state, "sku-1", "W1").1, 0);
}

#[test]
fn reserve_rejects_invalid_arguments() {
    let mut state = stocked(&[("sku-1", "W1", 100)]);
    let one = || vec![line("sku-1", "W1", 1)];
    assert_invalid(fails_cmd(&mut state, reserve(vec![line("sku-1", "W1", 0)], None), T0));
    let huge = vec![line("sku-1", "W1", QUANTITY_PER_LINE_MAX + 1)];
    assert_invalid(fails_cmd(&mut state, reserve(huge, None), T0));
    assert_invalid(fails_cmd(&mut state, reserve(vec![], None), T0));
    let too_many = vec![line("sku-1", "W1", 1); LINES_PER_HOLD_MAX + 1];
    assert_invalid(fails_cmd(&mut state, reserve(too_many, None), T0));
    assert_invalid(fails_cmd(&mut state, reserve(one(), Some(HOLD_TTL_MS_MIN - 1)), T0));
    assert_invalid(fails_cmd(&mut state, reserve(one(), Some(HOLD_TTL_MS_MAX + 1)), T0));
    assert_invalid(fails_cmd(&mut state, reserve(one(), Some(0)), T0));
    assert_eq!(state.hold_count(), 0);
    // The limits themselves are accepted.
    place(&mut state, vec![line("sku-1", "W1", 1); LINES_PER_HOLD_MAX], None, T0);
    place(&mut state, one(), Some(HOLD_TTL_MS_MIN), T0);
    place(&mut state, one(), Some(HOLD_TTL_MS_MAX), T0);
    assert_eq!(counts(&state, "sku-1", "W1").1, LINES_PER_HOLD_MAX as u32 + 2);
}

// ---------------------------------------------------------------------------------------
// Extend, release, commit
// ---------------------------------------------------------------------------------------

#[test]
fn extend_moves_the_deadline_to_now_plus_ttl() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 2)], Some(10_000), T0);
    let reply = ok(&mut state, Command::ExtendHold { hold: id, ttl_ms: 30_000 }, T0 + 9_000);
    assert_eq!(reply, Reply::HoldExtended { hold: id, expires_at_ms: T0 + 39_000 });
    assert_eq!(hold(&state, id).expires_at_ms, T0 + 39_000);
    assert_eq!(counts(&state, "sku-1", "W1").1, 2, "extending keeps what is held");
}

#[test]
fn extend_rejects_a_ttl_out_of_range_and_unknown_holds() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 2)], None, T0);
    let extend = |hold, ttl_ms| Command::ExtendHold { hold, ttl_ms };
    assert_invalid(fails_cmd(&mut state, extend(id, HOLD_TTL_MS_MIN - 1), T0 + 1));
    assert_invalid(fails_cmd(&mut state, extend(id, HOLD_TTL_MS_MAX + 1), T0 + 1));
    assert_not_found(fails_cmd(&mut state, extend(id + 1, 5_000), T0 + 1));
    assert_not_found(fails_cmd(&mut state, extend(0, 5_000), T0 + 1));
}

#[test]
fn extended_hold_is_not_expired_at_its_old_deadline() {
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let (id, old_deadline) = place(&mut state, vec![line("sku-1", "W1", 2)], Some(2_000), T0);
    let reply = ok(&mut state, Command::ExtendHold { hold: id, ttl_ms: 10_000 }, T0 + 1_000);
    assert_eq!(reply, Reply::HoldExtended { hold: id, expires_at_ms: T0 + 11_000 });
    assert_eq!(tick(&mut state, bucket_end(old_deadline)), 0);
    assert_eq!(tick(&mut state, bucket_end(old_deadline) + 5_000), 0);
    assert_eq!(hold(&state, id).state, HoldState::Held);
    assert_eq!(counts(&state, "sku-1", "W1").1, 2);
    // Commands still see it live after its old deadline.
    let part = vec![line("sku-1", "W1", 1)];
    ok(&mut state, release(id, part), T0 + 9_000);
    assert_eq!(tick(&mut state, bucket_end(T0 + 11_000) - 1), 0);
    assert_eq!(hold(&state, id).state, HoldState::Held);
    assert_eq!(tick(&mut state, bucket_end(T0 + 11_000)), 1);
    assert_eq!(hold(&state, id).state, HoldState::Resolved(Resolution::Expired));
    assert_eq!(counts(&state, "sku-1", "W1"), (5, 0, 0, 0, 5));
}

#[test]
fn extended_hold_is_not_expired_before_its_new_bucket_ends() {
    // Deadline T0 + 5_000 (bucket ends T0 + 6_000), extended just before it to
    // T0 + 6_499 (bucket ends T0 + 7_000).
    let mut state = stocked(&[("sku-1", "W1", 5)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 2)], Some(5_000), T0);
    let reply = ok(&mut state, Command::ExtendHold { hold: id, ttl_ms: 1_500 }, T0 + 4_999);
    assert_eq!(reply, Reply::HoldExtended { hold: id, expires_at_ms: T0 + 6_499 });
    // The old bucket has ended and the new deadline has passed, but the new bucket has
    // not ended: a tick must not expire the hold yet.
    assert_eq!(tick(&mut state, T0 + 6_600), 0);
    assert_eq!(hold(&state, id).state, HoldState::Held);
    assert_eq!(tick(&mut state, T0 + 7_000), 1);
    assert_eq!(hold(&state, id).state, HoldState::Resolved(Resolution::Expired));
}

#[test]
fn release_of_part_of_a_hold_keeps_the_rest_held() {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 10)]);
    let lines = vec![line("sku-1", "W1", 4), line("sku-2", "W2", 3)];
    let (id, _) = place(&mut state, lines, None, T0);
    let reply =
        ok(&mut state, release(id, vec![line("sku-1", "W1", 1), line("sku-1", "W1", 2)]), T0 + 1);
    assert_eq!(reply, Reply::HoldReleased { hold: id, state: HoldState::Held, units_held: 4 });
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 1, 0, 0, 9));
    assert_eq!(counts(&state, "sku-2", "W2"), (10, 3, 0, 0, 7));
    // Releasing a whole line drops it from the hold.
    let reply = ok(&mut state, release(id, vec![line("sku-2", "W2", 3)]), T0 + 2);
    assert_eq!(reply, Reply::HoldReleased { hold: id, state: HoldState::Held, units_held: 1 });
    let view = hold(&state, id);
    assert_eq!(view.state, HoldState::Held);
    assert_eq!(
        view.lines,
        [HoldLineView { sku: "sku-1".into(), location: "W1".into(), quantity: 1 }]
    );
    assert_eq!(counts(&state, "sku-2", "W2").1, 0);
    assert_eq!(state.counters().holds_released, 0, "a partial release does not resolve");
}

#[test]
fn release_of_every_remaining_unit_by_lines_resolves_the_hold() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4)], None, T0);
    let reply = ok(&mut state, release(id, vec![line("sku-1", "W1", 4)]), T0 + 1);
    let released = HoldState::Resolved(Resolution::Released);
    assert_eq!(reply, Reply::HoldReleased { hold: id, state: released, units_held: 0 });
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
    assert_eq!(hold(&state, id).state, released);
    assert_eq!(state.counters().holds_released, 1);
}

#[test]
fn release_rejects_lines_the_hold_does_not_have_and_changes_nothing() {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4)], None, T0);
    assert_invalid(fails_cmd(&mut state, release(id, vec![line("sku-1", "W1", 5)]), T0 + 1));
    let split = vec![line("sku-1", "W1", 3), line("sku-1", "W1", 2)];
    assert_invalid(fails_cmd(&mut state, release(id, split), T0 + 1));
    assert_invalid(fails_cmd(&mut state, release(id, vec![line("sku-2", "W1", 1)]), T0 + 1));
    assert_invalid(fails_cmd(&mut state, release(id, vec![line("sku-1", "W1", 0)]), T0 + 1));
    assert_not_found(fails_cmd(&mut state, release(id, vec![line("sku-9", "W1", 1)]), T0 + 1));
    let too_many = vec![line("sku-1", "W1", 1); LINES_PER_HOLD_MAX + 1];
    assert_invalid(fails_cmd(&mut state, release(id, too_many), T0 + 1));
    assert_not_found(fails_cmd(&mut state, release(id + 1, vec![]), T0 + 1));
    assert_eq!(counts(&state, "sku-1", "W1").1, 4);
}

#[test]
fn full_release_gives_every_unit_back() {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4), line("sku-2", "W2", 6)], None, T0);
    let reply = ok(&mut state, release(id, vec![]), T0 + 1);
    let released = HoldState::Resolved(Resolution::Released);
    assert_eq!(reply, Reply::HoldReleased { hold: id, state: released, units_held: 0 });
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
    assert_eq!(counts(&state, "sku-2", "W2"), (10, 0, 0, 0, 10));
    let view = hold(&state, id);
    assert_eq!(view.state, released);
    // A released hold leaves the table: its tombstone keeps only how it ended.
    assert_eq!((view.lines.len(), view.resolved_at_ms, view.created_at_ms), (0, None, 0));
    assert_eq!(state.hold_count(), 0);
    assert_eq!(state.counters().holds_released, 1);
}

#[test]
fn commit_moves_held_units_to_allocated() {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4), line("sku-2", "W2", 6)], None, T0);
    let available_before = (counts(&state, "sku-1", "W1").4, counts(&state, "sku-2", "W2").4);
    assert_eq!(ok(&mut state, commit(id, "order-77"), T0 + 1), Reply::HoldCommitted { hold: id });
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 4, 0, 6));
    assert_eq!(counts(&state, "sku-2", "W2"), (10, 0, 6, 0, 4));
    let available_after = (counts(&state, "sku-1", "W1").4, counts(&state, "sku-2", "W2").4);
    assert_eq!(available_before, available_after, "committing does not change availability");
    let view = hold(&state, id);
    assert_eq!(view.state, HoldState::Resolved(Resolution::Committed));
    assert_eq!(view.order_number.as_deref(), Some("order-77"));
    assert_eq!(view.resolved_at_ms, Some(T0 + 1));
    assert_eq!(state.counters().holds_committed, 1);
}

#[test]
fn commit_rejects_a_malformed_order_number() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4)], None, T0);
    assert_invalid(fails_cmd(&mut state, commit(id, ""), T0 + 1));
    assert_invalid(fails_cmd(
        &mut state,
        commit(id, &"o".repeat(ORDER_NUMBER_BYTES_MAX + 1)),
        T0 + 1,
    ));
    assert_invalid(fails_cmd(&mut state, commit(id, "o\u{7}"), T0 + 1));
    assert_not_found(fails_cmd(&mut state, commit(id + 1, "order-1"), T0 + 1));
    ok(&mut state, commit(id, &"o".repeat(ORDER_NUMBER_BYTES_MAX)), T0 + 1);
}

#[test]
fn resolving_a_committed_hold_again_answers_already_committed() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4)], Some(5_000), T0);
    ok(&mut state, commit(id, "order-1"), T0 + 1);
    let committed = already(Resolution::Committed);
    assert_eq!(fails_cmd(&mut state, commit(id, "order-1"), T0 + 2), committed);
    assert_eq!(fails_cmd(&mut state, commit(id, "order-2"), T0 + 2), committed);
    assert_eq!(fails_cmd(&mut state, release(id, vec![]), T0 + 2), committed);
    let part = vec![line("sku-1", "W1", 1)];
    assert_eq!(fails_cmd(&mut state, release(id, part), T0 + 2), committed);
    let extend = Command::ExtendHold { hold: id, ttl_ms: 5_000 };
    assert_eq!(fails_cmd(&mut state, extend, T0 + 2), committed);
    // Its deadline passing does not turn a committed hold into an expired one.
    assert_eq!(tick(&mut state, T0 + 10_000), 0);
    assert_eq!(fails_cmd(&mut state, commit(id, "order-1"), T0 + 10_000), committed);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 4, 0, 6));
}

#[test]
fn resolving_a_released_hold_again_answers_already_released() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 4)], Some(5_000), T0);
    ok(&mut state, release(id, vec![]), T0 + 1);
    let released = already(Resolution::Released);
    assert_eq!(fails_cmd(&mut state, release(id, vec![]), T0 + 2), released);
    assert_eq!(fails_cmd(&mut state, commit(id, "order-1"), T0 + 2), released);
    let extend = Command::ExtendHold { hold: id, ttl_ms: 5_000 };
    assert_eq!(fails_cmd(&mut state, extend, T0 + 2), released);
    assert_eq!(tick(&mut state, T0 + 10_000), 0);
    assert_eq!(fails_cmd(&mut state, release(id, vec![]), T0 + 10_000), released);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
}

#[test]
fn commands_on_a_hold_past_its_deadline_answer_expired_and_change_nothing() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, deadline) = place(&mut state, vec![line("sku-1", "W1", 4)], Some(3_000), T0 + 200);
    // One millisecond before the deadline the hold is live.
    let part = vec![line("sku-1", "W1", 1)];
    ok(&mut state, release(id, part.clone()), deadline - 1);
    // At the deadline, before any tick, it answers expired and stays counted as held.
    let expired = already(Resolution::Expired);
    assert_eq!(fails_cmd(&mut state, commit(id, "order-1"), deadline), expired);
    assert_eq!(fails_cmd(&mut state, release(id, vec![]), deadline), expired);
    assert_eq!(fails_cmd(&mut state, release(id, part), deadline), expired);
    let extend = Command::ExtendHold { hold: id, ttl_ms: 5_000 };
    assert_eq!(fails_cmd(&mut state, extend.clone(), deadline), expired);
    assert_eq!(hold(&state, id).state, HoldState::Held);
    assert_eq!(counts(&state, "sku-1", "W1").1, 3);
    // After the tick that expires it, the answer is the same and the units are back.
    assert_eq!(tick(&mut state, bucket_end(deadline)), 1);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
    assert_eq!(fails_cmd(&mut state, commit(id, "order-1"), bucket_end(deadline)), expired);
    assert_eq!(fails_cmd(&mut state, extend, bucket_end(deadline)), expired);
    assert_eq!(fails_cmd(&mut state, release(id, vec![]), bucket_end(deadline) + 1), expired);
}

#[test]
fn tick_expires_a_hold_only_once_its_expiry_bucket_has_ended() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, deadline) = place(&mut state, vec![line("sku-1", "W1", 4)], Some(2_000), T0 + 300);
    assert_eq!(deadline, T0 + 2_300);
    assert_eq!(state.next_tick_due_ms(), Some(T0 + 3_000));
    assert_eq!(tick(&mut state, deadline - 1), 0);
    assert_eq!(tick(&mut state, deadline), 0, "the bucket of the deadline has not ended");
    assert_eq!(tick(&mut state, bucket_end(deadline) - 1), 0);
    assert_eq!(hold(&state, id).state, HoldState::Held);
    assert_eq!(counts(&state, "sku-1", "W1").1, 4);
    assert_eq!(tick(&mut state, bucket_end(deadline)), 1);
    let view = hold(&state, id);
    assert_eq!(view.state, HoldState::Resolved(Resolution::Expired));
    assert_eq!((view.lines.len(), view.resolved_at_ms), (0, None), "kept as a tombstone");
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 0, 0, 10));
    assert_eq!(state.counters().holds_expired, 1);
    assert_eq!(tick(&mut state, bucket_end(deadline) + 1_000), 0, "a hold expires once");
    assert_eq!(state.counters().holds_expired, 1);
}

#[test]
fn a_deadline_on_a_bucket_boundary_expires_when_that_bucket_ends() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, deadline) = place(&mut state, vec![line("sku-1", "W1", 4)], Some(2_000), T0);
    assert_eq!(deadline % EXPIRY_BUCKET_MS, 0);
    assert_eq!(tick(&mut state, deadline), 0);
    assert_eq!(tick(&mut state, deadline + EXPIRY_BUCKET_MS - 1), 0);
    assert_eq!(tick(&mut state, deadline + EXPIRY_BUCKET_MS), 1);
    assert_eq!(hold(&state, id).state, HoldState::Resolved(Resolution::Expired));
}

#[test]
fn one_tick_expires_every_due_hold_and_leaves_the_others() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (a, _) = place(&mut state, vec![line("sku-1", "W1", 1)], Some(1_000), T0);
    let (b, _) = place(&mut state, vec![line("sku-1", "W1", 2)], Some(2_500), T0);
    let (c, _) = place(&mut state, vec![line("sku-1", "W1", 3)], Some(9_000), T0);
    let (d, _) = place(&mut state, vec![line("sku-1", "W1", 1)], Some(1_000), T0);
    ok(&mut state, release(d, vec![]), T0 + 1);
    assert_eq!(tick(&mut state, T0 + 5_000), 2);
    assert_eq!(hold(&state, a).state, HoldState::Resolved(Resolution::Expired));
    assert_eq!(hold(&state, b).state, HoldState::Resolved(Resolution::Expired));
    assert_eq!(hold(&state, c).state, HoldState::Held);
    assert_eq!(hold(&state, d).state, HoldState::Resolved(Resolution::Released));
    assert_eq!(counts(&state, "sku-1", "W1").1, 3);
}

#[test]
fn resolved_holds_are_forgotten_after_their_retention() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 1)], None, T0);
    ok(&mut state, release(id, vec![]), T0 + 10);
    // Retention counts from the end of the second it was resolved in.
    let start = T0 + RETENTION_GRANULE_MS;
    tick(&mut state, start + HOLD_RESOLVED_RETENTION_MS - 1);
    let released = already(Resolution::Released);
    let later = start + HOLD_RESOLVED_RETENTION_MS - 1;
    assert_eq!(fails_cmd(&mut state, commit(id, "order-1"), later), released);
    tick(&mut state, start + HOLD_RESOLVED_RETENTION_MS);
    assert_not_found(state.query(&Query::Hold { hold: id }).unwrap_err());
    assert_eq!(state.hold_count(), 0);
    let after = start + HOLD_RESOLVED_RETENTION_MS;
    assert_not_found(fails_cmd(&mut state, commit(id, "order-1"), after));
    // Ids are never reused.
    let (next, _) = place(&mut state, vec![line("sku-1", "W1", 1)], None, after);
    assert_eq!(next, id + 1);
}

fn consume(hold: HoldId, lines: Vec<LineRequest>) -> Command {
    Command::ConsumeCommitted { hold, lines }
}

fn release_committed(hold: HoldId, lines: Vec<LineRequest>) -> Command {
    Command::ReleaseCommitted { hold, lines }
}

fn settled(hold: HoldId, units_committed: u64) -> Reply {
    Reply::CommittedSettled { hold, units_committed }
}

/// Two cells of 10, and a hold of 4 + 2 units on them committed outside allot.
fn committed_outside() -> (State, HoldId) {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 10)]);
    let lines = vec![line("sku-1", "W1", 4), line("sku-2", "W2", 2)];
    let (id, _) = place(&mut state, lines, None, T0);
    ok(&mut state, commit(id, "order-1"), T0 + 1);
    (state, id)
}

#[test]
fn consuming_committed_units_takes_them_from_on_hand_and_allocated() {
    let (mut state, id) = committed_outside();
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 0, 4, 0, 6));
    let reply = ok(&mut state, consume(id, vec![line("sku-1", "W1", 1)]), T0 + 2);
    assert_eq!(reply, settled(id, 5));
    assert_eq!(counts(&state, "sku-1", "W1"), (9, 0, 3, 0, 6), "shipped: gone from both");
    let reply = ok(&mut state, release_committed(id, vec![line("sku-1", "W1", 3)]), T0 + 3);
    assert_eq!(reply, settled(id, 2));
    assert_eq!(counts(&state, "sku-1", "W1"), (9, 0, 0, 0, 9), "cancelled: available again");
    let lines = hold(&state, id).lines;
    assert_eq!(lines, [HoldLineView { sku: "sku-2".into(), location: "W2".into(), quantity: 2 }]);
    assert_eq!(ok(&mut state, consume(id, vec![]), T0 + 4), settled(id, 0));
    assert_eq!(counts(&state, "sku-2", "W2"), (8, 0, 0, 0, 8));
    assert_eq!(hold(&state, id).state, HoldState::Resolved(Resolution::Committed));
}

#[test]
fn settling_committed_units_twice_or_too_many_or_of_the_wrong_hold_is_refused() {
    let (mut state, id) = committed_outside();
    let too_many = consume(id, vec![line("sku-1", "W1", 5)]);
    assert_invalid(fails_cmd(&mut state, too_many, T0 + 2));
    let not_in_hold = release_committed(id, vec![line("sku-2", "W1", 1)]);
    assert_invalid(fails_cmd(&mut state, not_in_hold, T0 + 2));
    assert_not_found(fails_cmd(&mut state, consume(id + 100, vec![]), T0 + 2));
    let (live, _) = place(&mut state, vec![line("sku-1", "W1", 1)], None, T0 + 2);
    let held = EngineError::InvalidTransition { from: "held".into() };
    assert_eq!(fails_cmd(&mut state, consume(live, vec![]), T0 + 2), held);
    ok(&mut state, release(live, vec![]), T0 + 2);
    let released = already(Resolution::Released);
    assert_eq!(fails_cmd(&mut state, release_committed(live, vec![]), T0 + 2), released);
    ok(&mut state, release_committed(id, vec![]), T0 + 3);
    let twice = EngineError::InvalidTransition { from: "settled".into() };
    assert_eq!(fails_cmd(&mut state, consume(id, vec![]), T0 + 4), twice);
    assert_eq!(fails_cmd(&mut state, release_committed(id, vec![]), T0 + 4), twice);
}

#[test]
fn committed_units_a_short_cell_does_not_have_cannot_be_consumed() {
    let (mut state, id) = committed_outside();
    ok(&mut state, adjust("sku-1", "W1", -8, "lost"), T0 + 2);
    assert_eq!(counts(&state, "sku-1", "W1"), (2, 0, 4, 0, -2));
    assert_invalid(fails_cmd(&mut state, consume(id, vec![line("sku-1", "W1", 3)]), T0 + 3));
    ok(&mut state, consume(id, vec![line("sku-1", "W1", 2)]), T0 + 3);
    assert_eq!(counts(&state, "sku-1", "W1"), (0, 0, 2, 0, -2));
}

#[test]
fn a_committed_hold_is_kept_until_settled_then_forgotten_after_its_retention() {
    let (mut state, id) = committed_outside();
    let much_later = T0 + 10 * HOLD_RESOLVED_RETENTION_MS;
    tick(&mut state, much_later);
    assert_eq!(hold(&state, id).lines.len(), 2, "kept while it commits units");
    let mut state = round_trip(&state);
    ok(&mut state, consume(id, vec![line("sku-1", "W1", 4)]), much_later);
    let restored = round_trip(&state);
    assert_eq!(restored.audit(), Ok(()));
    assert_eq!(restored.query(&Query::Hold { hold: id }), state.query(&Query::Hold { hold: id }));
    let mut state = restored;
    ok(&mut state, release_committed(id, vec![]), much_later + 1);
    let start = much_later + RETENTION_GRANULE_MS;
    tick(&mut state, start + HOLD_RESOLVED_RETENTION_MS - 1);
    assert!(state.query(&Query::Hold { hold: id }).is_ok(), "kept for its retention");
    tick(&mut state, start + HOLD_RESOLVED_RETENTION_MS);
    assert_not_found(state.query(&Query::Hold { hold: id }).unwrap_err());
    assert_eq!(counts(&state, "sku-1", "W1"), (6, 0, 0, 0, 6));
}

#[test]
fn a_hold_resolved_at_time_zero_is_kept_for_its_retention() {
    let mut state = State::new();
    ok(&mut state, Command::UpsertLocation(spec("W1")), 0);
    ok(&mut state, receive("sku-1", "W1", 5), 0);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 1)], None, 0);
    ok(&mut state, release(id, vec![]), 0);
    tick(&mut state, 1_000);
    assert_eq!(
        state.query(&Query::Hold { hold: id }).map(|reply| matches!(reply, Reply::Hold(_))),
        Ok(true),
        "a hold released at 0 must stay queryable until {HOLD_RESOLVED_RETENTION_MS}"
    );
}

// ---------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------

#[test]
fn same_key_and_command_returns_the_original_reply_and_changes_nothing() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let request = Request::with_key("cart-1", reserve(vec![line("sku-1", "W1", 3)], Some(60_000)));
    let first = state.apply(&request, T0 + 1);
    assert!(first.changed);
    let digest = codec::state_digest(&state);
    // Retried later, after the stock moved: the same answer, nothing held twice.
    ok(&mut state, receive("sku-1", "W1", 1), T0 + 2);
    let digest_after_receive = codec::state_digest(&state);
    assert_ne!(digest, digest_after_receive);
    let retry = state.apply(&request, T0 + 500);
    assert_eq!(retry, Applied { outcome: first.outcome.clone(), changed: false });
    assert_eq!(codec::state_digest(&state), digest_after_receive);
    assert_eq!(counts(&state, "sku-1", "W1"), (11, 3, 0, 0, 8));
    assert_eq!(state.hold_count(), 1);
    // Even once the command could no longer succeed, the original reply stands.
    let Ok(Reply::HoldPlaced { hold: id, .. }) = first.outcome else { panic!() };
    ok(&mut state, commit(id, "order-1"), T0 + 600);
    let keyed_commit = Request::with_key("commit-1", commit(id, "order-1"));
    assert_eq!(
        state.apply(&keyed_commit, T0 + 700).outcome,
        Err(already(Resolution::Committed)),
        "a keyed request that fails is answered with the error"
    );
    let retry = state.apply(&request, T0 + 800);
    assert_eq!(retry, Applied { outcome: first.outcome, changed: false });
}

#[test]
fn same_key_with_a_different_command_is_a_conflict() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let first = Request::with_key("key-1", reserve(vec![line("sku-1", "W1", 3)], None));
    assert!(state.apply(&first, T0 + 1).changed);
    let other = Request::with_key("key-1", reserve(vec![line("sku-1", "W1", 4)], None));
    assert_eq!(fails(&mut state, other, T0 + 2), EngineError::IdempotencyConflict);
    let other_kind = Request::with_key("key-1", receive("sku-1", "W1", 1));
    assert_eq!(fails(&mut state, other_kind, T0 + 2), EngineError::IdempotencyConflict);
    assert_eq!(counts(&state, "sku-1", "W1"), (10, 3, 0, 0, 7));
}

#[test]
fn a_failed_keyed_request_is_not_remembered() {
    let mut state = stocked(&[("sku-1", "W1", 2)]);
    let request = Request::with_key("cart-1", reserve(vec![line("sku-1", "W1", 3)], None));
    let error = fails(&mut state, request.clone(), T0 + 1);
    assert_eq!(error, EngineError::InsufficientStock { line: 0, available: 2 });
    ok(&mut state, receive("sku-1", "W1", 1), T0 + 2);
    let applied = state.apply(&request, T0 + 3);
    assert!(applied.changed, "the retry runs, now that stock is there");
    assert!(matches!(applied.outcome, Ok(Reply::HoldPlaced { .. })));
    // And the key can then not be used for anything else.
    let other = Request::with_key("cart-1", receive("sku-1", "W1", 1));
    assert_eq!(fails(&mut state, other, T0 + 4), EngineError::IdempotencyConflict);
}

#[test]
fn idempotency_keys_are_forgotten_after_their_retention_by_a_tick() {
    let mut state = stocked(&[("sku-1", "W1", 100)]);
    let request = Request::with_key("receipt-1", receive("sku-1", "W1", 5));
    assert!(state.apply(&request, T0 + 1).changed);
    tick(&mut state, T0 + IDEMPOTENCY_RETENTION_MS_DEFAULT);
    let retry = state.apply(&request, T0 + IDEMPOTENCY_RETENTION_MS_DEFAULT);
    assert!(!retry.changed, "still remembered one millisecond before its retention ends");
    // Without a tick the key is still remembered, even past its retention.
    let retry = state.apply(&request, T0 + 1 + IDEMPOTENCY_RETENTION_MS_DEFAULT + 50);
    assert!(!retry.changed);
    // Retention counts from the end of the second the key was recorded in.
    let start = T0 + RETENTION_GRANULE_MS;
    tick(&mut state, start + IDEMPOTENCY_RETENTION_MS_DEFAULT - 1);
    assert!(!state.apply(&request, start + IDEMPOTENCY_RETENTION_MS_DEFAULT - 1).changed);
    tick(&mut state, start + IDEMPOTENCY_RETENTION_MS_DEFAULT);
    let again = state.apply(&request, start + IDEMPOTENCY_RETENTION_MS_DEFAULT);
    assert!(again.changed, "a forgotten key applies the command again");
    assert_eq!(counts(&state, "sku-1", "W1").0, 110);
}

#[test]
fn an_idempotency_key_recorded_at_time_zero_is_kept_for_its_retention() {
    let mut state = State::new();
    ok(&mut state, Command::UpsertLocation(spec("W1")), 0);
    let request = Request::with_key("receipt-1", receive("sku-1", "W1", 5));
    assert!(state.apply(&request, 0).changed);
    tick(&mut state, 1_000);
    let retry = state.apply(&request, 2_000);
    assert!(
        !retry.changed,
        "a key recorded at 0 must be remembered for {IDEMPOTENCY_RETENTION_MS_DEFAULT} ms"
    );
    assert_eq!(counts(&state, "sku-1", "W1").0, 5);
}

#[test]
fn malformed_idempotency_keys_are_invalid() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let command = receive("sku-1", "W1", 1);
    assert_invalid(fails(&mut state, Request::with_key("", command.clone()), T0));
    let long = "k".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1);
    assert_invalid(fails(&mut state, Request::with_key(long, command.clone()), T0));
    assert_invalid(fails(&mut state, Request::with_key("k\r", command.clone()), T0));
    assert_invalid(fails(&mut state, Request::with_key("tick-1", Command::Tick), T0));
    let longest = "k".repeat(IDEMPOTENCY_KEY_BYTES_MAX);
    assert!(state.apply(&Request::with_key(longest, command), T0).changed);
}

// ---------------------------------------------------------------------------------------
// Change reporting, audit and snapshot images
// ---------------------------------------------------------------------------------------

#[test]
fn every_successful_command_reports_a_change_and_advances_the_last_applied_time() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let mut now = T0;
    let mut step = |state: &mut State, command: Command| {
        now += 10;
        let digest = codec::state_digest(state);
        let reply = ok(state, command, now);
        assert_eq!(state.last_applied_ms(), now);
        assert_ne!(codec::state_digest(state), digest);
        reply
    };
    step(&mut state, Command::UpsertLocation(spec("S1")));
    step(&mut state, receive("sku-1", "W1", 1));
    step(&mut state, adjust("sku-1", "W1", -1, "damaged"));
    let count = Command::CycleCount {
        sku: "sku-1".into(),
        location: "W1".into(),
        expected: 10,
        counted: 9,
    };
    step(&mut state, count);
    let safety =
        Command::SetSafetyStock { sku: "sku-1".into(), location: "W1".into(), quantity: 1 };
    step(&mut state, safety);
    let transfer =
        Command::Transfer { sku: "sku-1".into(), from: "W1".into(), to: "W2".into(), quantity: 1 };
    step(&mut state, transfer);
    let Reply::HoldPlaced { hold: id, .. } =
        step(&mut state, reserve(vec![line("sku-1", "W1", 3)], Some(60_000)))
    else {
        panic!()
    };
    step(&mut state, Command::ExtendHold { hold: id, ttl_ms: 90_000 });
    step(&mut state, release(id, vec![line("sku-1", "W1", 1)]));
    step(&mut state, commit(id, "order-1"));
    step(&mut state, Command::DeactivateLocation { location: "S1".into() });
    step(&mut state, Command::Tick);
}

#[test]
fn failed_requests_change_nothing() {
    let mut state = stocked(&[("sku-1", "W1", 10)]);
    let (id, _) = place(&mut state, vec![line("sku-1", "W1", 2)], Some(5_000), T0);
    let (done, _) = place(&mut state, vec![line("sku-1", "W1", 1)], Some(5_000), T0);
    ok(&mut state, release(done, vec![]), T0);
    assert!(state.apply(&Request::with_key("k", receive("sku-1", "W1", 1)), T0).changed);
    let now = T0 + 100;
    let failing = vec![
        Request::new(receive("sku-1", "W9", 1)),
        Request::new(adjust("sku-1", "W1", -100, "lost")),
        Request::new(Command::CycleCount {
            sku: "sku-1".into(),
            location: "W1".into(),
            expected: 1,
            counted: 1,
        }),
        Request::new(Command::SetSafetyStock {
            sku: "sku-1".into(),
            location: "W9".into(),
            quantity: 1,
        }),
        Request::new(Command::Transfer {
            sku: "sku-1".into(),
            from: "W1".into(),
            to: "W2".into(),
            quantity: 100,
        }),
        Request::new(reserve(vec![line("sku-1", "W1", 5), line("sku-1", "W1", 5)], None)),
        Request::new(Command::ExtendHold { hold: id, ttl_ms: 1 }),
        Request::new(Command::ExtendHold { hold: done, ttl_ms: 5_000 }),
        Request::new(release(id, vec![line("sku-1", "W1", 3)])),
        Request::new(release(done, vec![])),
        Request::new(commit(done, "order-1")),
        Request::new(commit(99, "order-1")),
        Request::new(Command::DeactivateLocation { location: "W9".into() }),
        Request::new(Command::UpsertLocation(spec(""))),
        Request::with_key("k", receive("sku-1", "W1", 2)),
        Request::with_key("tick", Command::Tick),
    ];
    for request in failing {
        fails(&mut state, request, now);
    }
    // A hold past its deadline refuses commands without changing anything.
    fails(&mut state, Request::new(commit(id, "order-1")), T0 + 5_000);
}

#[test]
fn audit_passes_through_a_busy_history() {
    let mut state = stocked(&[("sku-1", "W1", 50), ("sku-2", "W1", 50), ("sku-1", "W2", 50)]);
    let mut ids = Vec::new();
    for round in 0..20u64 {
        let now = T0 + round * 700;
        let lines = vec![line("sku-1", "W1", 1), line("sku-2", "W1", 1), line("sku-1", "W2", 1)];
        ids.push(place(&mut state, lines, Some(1_000 + round * 300), now).0);
        match round % 4 {
            0 => {
                ok(&mut state, commit(ids[round as usize], "order"), now + 1);
            }
            1 => {
                ok(&mut state, release(ids[round as usize], vec![line("sku-2", "W1", 1)]), now + 1);
            }
            _ => {}
        }
        tick(&mut state, now + 2);
    }
    tick(&mut state, T0 + 100_000);
    assert_eq!(state.audit(), Ok(()));
    for cell_key in [("sku-1", "W1"), ("sku-2", "W1"), ("sku-1", "W2")] {
        assert_eq!(counts(&state, cell_key.0, cell_key.1).1, 0, "every hold is resolved");
    }
    let counters = state.counters();
    assert_eq!(counters.holds_placed, 20);
    assert_eq!(counters.holds_committed, 5);
    assert_eq!(counters.holds_released, 0);
    assert_eq!(counters.holds_expired, 15);
}

#[test]
fn a_snapshot_image_round_trips_to_the_same_digest() {
    let mut state = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 10)]);
    let (a, _) = place(&mut state, vec![line("sku-1", "W1", 2)], None, T0 + 1);
    place(&mut state, vec![line("sku-2", "W2", 2), line("sku-1", "W1", 1)], Some(3_000), T0 + 2);
    ok(&mut state, commit(a, "order-1"), T0 + 3);
    assert!(state.apply(&Request::with_key("k1", receive("sku-2", "W1", 4)), T0 + 4).changed);
    ok(&mut state, Command::DeactivateLocation { location: "W2".into() }, T0 + 5);
    let body = codec::encode_state(&state);
    let restored = codec::decode_state(&body).expect("decodes");
    assert_eq!(codec::state_digest(&restored), codec::state_digest(&state));
    assert_eq!(codec::encode_state(&restored), body);
    assert_eq!(restored.audit(), Ok(()));
    assert_eq!(restored.last_applied_ms(), state.last_applied_ms());
    assert_eq!(restored.counters(), state.counters());
    assert_eq!(restored.next_tick_due_ms(), state.next_tick_due_ms());
    for query in [
        Query::Locations,
        Query::SkuStock { sku: "sku-1".into() },
        Query::SkuStock { sku: "sku-2".into() },
        Query::Hold { hold: 1 },
        Query::Hold { hold: 2 },
        Query::Shortages,
    ] {
        assert_eq!(restored.query(&query), state.query(&query), "{query:?}");
    }
}

#[test]
fn a_corrupt_snapshot_body_is_refused() {
    let state = stocked(&[("sku-1", "W1", 10)]);
    let mut body = codec::encode_state(&state);
    body.push(0);
    assert!(codec::decode_state(&body).is_err(), "trailing bytes are refused");
    body.pop();
    body.truncate(body.len() - 1);
    assert!(codec::decode_state(&body).is_err(), "a truncated body is refused");
}

/// Applies the same requests to both states; they must answer and change alike.
fn apply_both(live: &mut State, restored: &mut State, request: Request, now_ms: u64) -> Outcome {
    let expected = live.apply(&request, now_ms);
    let actual = restored.apply(&request, now_ms);
    assert_eq!(actual, expected, "{request:?} at {now_ms}");
    assert_eq!(codec::state_digest(restored), codec::state_digest(live), "after {request:?}");
    expected.outcome
}

#[test]
fn a_decoded_state_behaves_like_the_live_one_including_expiry_of_live_holds() {
    let mut live = stocked(&[("sku-1", "W1", 10), ("sku-2", "W2", 10)]);
    let (short, short_deadline) = place(&mut live, vec![line("sku-1", "W1", 2)], Some(2_000), T0);
    let (long, _) = place(&mut live, vec![line("sku-2", "W2", 3)], Some(60_000), T0);
    let (extended, _) = place(&mut live, vec![line("sku-1", "W1", 1)], Some(2_000), T0);
    ok(&mut live, Command::ExtendHold { hold: extended, ttl_ms: 10_000 }, T0 + 500);
    let keyed = Request::with_key("k1", receive("sku-2", "W1", 4));
    let first = live.apply(&keyed, T0 + 600);
    assert!(first.changed);
    let mut restored = round_trip(&live);

    assert_eq!(apply_both(&mut live, &mut restored, keyed, T0 + 700), first.outcome);
    let conflict = Request::with_key("k1", receive("sku-2", "W1", 5));
    assert_eq!(
        apply_both(&mut live, &mut restored, conflict, T0 + 700),
        Err(EngineError::IdempotencyConflict)
    );
    let outcome = apply_both(
        &mut live,
        &mut restored,
        Request::new(Command::Tick),
        bucket_end(short_deadline),
    );
    assert_eq!(outcome, Ok(Reply::Ticked { expired: 1 }));
    assert_eq!(hold(&restored, short).state, HoldState::Resolved(Resolution::Expired));
    assert_eq!(hold(&restored, extended).state, HoldState::Held);
    let next = Request::new(reserve(vec![line("sku-1", "W1", 9)], None));
    let outcome = apply_both(&mut live, &mut restored, next, bucket_end(short_deadline) + 1);
    assert_eq!(
        outcome,
        Ok(Reply::HoldPlaced {
            hold: 4,
            expires_at_ms: bucket_end(short_deadline) + 1 + HOLD_TTL_MS_DEFAULT
        })
    );
    let outcome =
        apply_both(&mut live, &mut restored, Request::new(commit(long, "order-1")), T0 + 8_000);
    assert_eq!(outcome, Ok(Reply::HoldCommitted { hold: long }));
    let outcome = apply_both(&mut live, &mut restored, Request::new(Command::Tick), T0 + 11_000);
    assert_eq!(outcome, Ok(Reply::Ticked { expired: 1 }));
    assert_eq!(hold(&restored, extended).state, HoldState::Resolved(Resolution::Expired));
    let late = T0 + HOLD_RESOLVED_RETENTION_MS + 20_000;
    let outcome = apply_both(&mut live, &mut restored, Request::new(Command::Tick), late);
    assert_eq!(outcome, Ok(Reply::Ticked { expired: 1 }), "the hold placed after loading");
    assert_not_found(restored.query(&Query::Hold { hold: short }).unwrap_err());
}

#[test]
fn a_decoded_state_expires_an_extended_hold_at_the_same_tick_as_the_live_one() {
    // The live state's expiry index still remembers the hold's first deadline; the
    // decoded one only knows the current one. Both must expire the hold alike.
    let mut live = stocked(&[("sku-1", "W1", 5)]);
    let (id, _) = place(&mut live, vec![line("sku-1", "W1", 2)], Some(5_000), T0);
    ok(&mut live, Command::ExtendHold { hold: id, ttl_ms: 1_500 }, T0 + 4_999);
    let mut restored = round_trip(&live);
    let outcome = apply_both(&mut live, &mut restored, Request::new(Command::Tick), T0 + 6_600);
    assert_eq!(outcome, Ok(Reply::Ticked { expired: 0 }));
    let outcome = apply_both(&mut live, &mut restored, Request::new(Command::Tick), T0 + 7_000);
    assert_eq!(outcome, Ok(Reply::Ticked { expired: 1 }));
    assert_eq!(hold(&restored, id).state, HoldState::Resolved(Resolution::Expired));
}
