//! Unit tests of orders in the core: placement and routing on a small map, payments,
//! holds, shipments to delivery and pickup, cancellations, short picks, backorders,
//! returns, queries and KPIs; and a property test that random order flows keep every
//! stock counter balanced and never oversell.

use allot_protocol::order::{
    Address, Channel, DeliveryRequest, ItemQuantity, OrderHoldReason, OrderLine, OrderPage,
    PaymentEvent, PaymentState, PlaceOrder, ReturnCondition, ReturnReceipt, ReturnState,
    RoutingRule, ShipmentStep, Verdict,
};

use crate::codec;
use allot_core::outcome::{OrderState, ShipmentState};
use allot_core::{
    Command, EngineError, LocationKind, LocationSpec, Query, Reply, Request, ShippingCost, State,
};

const T0: u64 = 1_700_000_000_000;

/// (code, latitude, longitude): London, Birmingham, Manchester, Glasgow.
const MAP: [(&str, i32, i32); 4] = [
    ("LDN", 51_507_400, -127_800),
    ("BHM", 52_486_200, -1_890_400),
    ("MAN", 53_480_800, -2_242_600),
    ("GLA", 55_864_200, -4_251_800),
];
/// A customer in Brighton (nearest London) and one in Edinburgh (nearest Glasgow).
const BRIGHTON: (i32, i32) = (50_822_500, -137_200);
const EDINBURGH: (i32, i32) = (55_953_300, -3_188_300);

fn site(code: &str, latitude_e6: i32, longitude_e6: i32) -> LocationSpec {
    LocationSpec {
        code: code.into(),
        name: code.into(),
        kind: LocationKind::Warehouse,
        latitude_e6,
        longitude_e6,
        ships: true,
        pickup: true,
        daily_capacity: 100,
        shipping_cost: ShippingCost { base_minor: 300, per_km_minor: 1, currency: "GBP".into() },
        priority: 1,
        active: true,
    }
}

fn apply(state: &mut State, command: Command, now_ms: u64) -> Result<Reply, EngineError> {
    let applied = state.apply(&Request::new(command), now_ms);
    assert_eq!(state.audit(), Ok(()));
    applied.outcome
}

fn ok(state: &mut State, command: Command) -> Reply {
    let name = command.name();
    apply(state, command, T0).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The map, with `stock` as (sku, location, units).
fn world(stock: &[(&str, &str, u32)]) -> State {
    let mut state = State::new();
    for (code, latitude, longitude) in MAP {
        ok(&mut state, Command::UpsertLocation(site(code, latitude, longitude)));
    }
    for (sku, location, quantity) in stock {
        let receive = Command::Receive {
            sku: (*sku).into(),
            location: (*location).into(),
            quantity: *quantity,
        };
        ok(&mut state, receive);
    }
    state
}

fn ship_to((latitude_e6, longitude_e6): (i32, i32)) -> DeliveryRequest {
    DeliveryRequest::Ship {
        to: Address { latitude_e6, longitude_e6, country: "GB".into(), postcode: "BN1 1AA".into() },
    }
}

fn order(number: &str, delivery: DeliveryRequest, lines: &[(&str, u32)]) -> PlaceOrder {
    PlaceOrder {
        channel: Channel::Web,
        external_number: number.into(),
        customer: "C-1".into(),
        delivery,
        currency: "GBP".into(),
        lines: (lines.iter())
            .map(|(sku, quantity)| OrderLine {
                sku: (*sku).into(),
                quantity: *quantity,
                unit_price_minor: 1_000,
            })
            .collect(),
        hold: None,
        allow_backorder: false,
    }
}

/// Places an order; returns its id and shipments.
fn place(state: &mut State, request: PlaceOrder) -> (u64, Vec<u64>) {
    match ok(state, Command::PlaceOrder(request)) {
        Reply::OrderPlaced { order, shipments, .. } => (order, shipments),
        other => panic!("{other:?}"),
    }
}

fn view(state: &State, id: u64) -> allot_protocol::order::OrderView {
    match state.query(&Query::Order { order: id }) {
        Ok(Reply::Order(view)) => *view,
        other => panic!("{other:?}"),
    }
}

fn cell(state: &State, sku: &str, location: &str) -> (u32, u32, u32) {
    match state.query(&Query::Cell { sku: sku.into(), location: location.into() }) {
        Ok(Reply::Cell(cell)) => (cell.on_hand, cell.held, cell.allocated),
        other => panic!("{other:?}"),
    }
}

fn pay(state: &mut State, order: u64) {
    let event = Command::RecordPayment {
        order,
        event: PaymentEvent::Authorised,
        amount_minor: 1,
        reference: "PSP-1".into(),
    };
    ok(state, event);
}

fn step(state: &mut State, shipment: u64, step: ShipmentStep) -> Result<Reply, EngineError> {
    apply(state, Command::AdvanceShipment { shipment, step }, T0)
}

fn ship(carrier: &str) -> ShipmentStep {
    ShipmentStep::Ship { carrier: carrier.into(), tracking: "TRK-1".into() }
}

fn walk_to_delivered(state: &mut State, shipment: u64) {
    for next in [
        ShipmentStep::Release,
        ShipmentStep::StartPicking,
        ShipmentStep::Pack,
        ship("DPD"),
        ShipmentStep::Deliver,
    ] {
        step(state, shipment, next).unwrap();
    }
}

fn transition(from: &str) -> EngineError {
    EngineError::InvalidTransition { from: from.into() }
}

fn items(lines: &[(&str, u32)]) -> Vec<ItemQuantity> {
    lines
        .iter()
        .map(|(sku, quantity)| ItemQuantity { sku: (*sku).into(), quantity: *quantity })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Placing and routing
// ---------------------------------------------------------------------------------------

#[test]
fn the_nearest_location_with_everything_wins_and_the_reasons_are_recorded() {
    let mut state = world(&[("A", "LDN", 5), ("A", "GLA", 5), ("B", "LDN", 5), ("B", "GLA", 5)]);
    let (id, shipments) =
        place(&mut state, order("W-1", ship_to(EDINBURGH), &[("A", 2), ("B", 1)]));
    let order = view(&state, id);
    assert_eq!((shipments.len(), order.shipments[0].location.as_str()), (1, "GLA"));
    assert_eq!(order.routing.rule, RoutingRule::OneLocation);
    assert_eq!(order.routing.locations_considered, 4);
    let chosen = &order.routing.assessments[0];
    assert_eq!((chosen.location.as_str(), chosen.verdict), ("GLA", Verdict::Chosen));
    assert!((60_000..80_000).contains(&chosen.distance_m), "{}", chosen.distance_m);
    let london = order.routing.assessments.iter().find(|a| a.location == "LDN").unwrap();
    assert_eq!(london.verdict, Verdict::Eligible);
    assert!(london.distance_m > chosen.distance_m && london.score > chosen.score);
    assert_eq!(cell(&state, "A", "GLA"), (5, 0, 2));
    assert_eq!(order.state, OrderState::Pending);
    pay(&mut state, id);
    assert_eq!(view(&state, id).state, OrderState::Confirmed);
}

#[test]
fn one_location_with_everything_beats_a_closer_split() {
    // Brighton is nearest London, which has only A; Birmingham has both.
    let mut state = world(&[("A", "LDN", 5), ("A", "BHM", 5), ("B", "BHM", 5)]);
    let (id, shipments) = place(&mut state, order("W-1", ship_to(BRIGHTON), &[("A", 1), ("B", 1)]));
    let order = view(&state, id);
    assert_eq!((shipments.len(), order.shipments[0].location.as_str()), (1, "BHM"));
    assert_eq!(order.routing.rule, RoutingRule::OneLocation);
}

#[test]
fn an_order_no_location_can_fill_alone_is_split_over_the_fewest() {
    let mut state = world(&[("A", "LDN", 5), ("B", "GLA", 5), ("B", "MAN", 5)]);
    let (id, shipments) = place(&mut state, order("W-1", ship_to(BRIGHTON), &[("A", 1), ("B", 1)]));
    let order = view(&state, id);
    assert_eq!(shipments.len(), 2);
    assert_eq!(order.routing.rule, RoutingRule::Split);
    let mut locations: Vec<&str> = order.shipments.iter().map(|s| s.location.as_str()).collect();
    locations.sort();
    assert_eq!(locations, ["LDN", "MAN"], "Manchester is nearer Brighton than Glasgow");
    let Ok(Reply::Kpis(kpis)) = state.query(&Query::Kpis) else { panic!() };
    assert_eq!((kpis.orders_split, kpis.split_rate_bp), (1, Some(10_000)));
}

#[test]
fn a_location_at_capacity_is_passed_over() {
    let mut state = world(&[("A", "LDN", 5), ("A", "BHM", 5)]);
    ok(
        &mut state,
        Command::UpsertLocation(LocationSpec {
            daily_capacity: 1,
            ..site("LDN", MAP[0].1, MAP[0].2)
        }),
    );
    let (first, _) = place(&mut state, order("W-1", ship_to(BRIGHTON), &[("A", 1)]));
    let (second, _) = place(&mut state, order("W-2", ship_to(BRIGHTON), &[("A", 1)]));
    assert_eq!(view(&state, first).shipments[0].location, "LDN");
    let second = view(&state, second);
    assert_eq!(second.shipments[0].location, "BHM");
    let london = second.routing.assessments.iter().find(|a| a.location == "LDN").unwrap();
    assert_eq!(london.verdict, Verdict::AtCapacity);
}

#[test]
fn a_pickup_order_stays_at_its_store_and_is_collected_there() {
    let mut state = world(&[("A", "LDN", 5), ("A", "MAN", 5)]);
    let pickup = DeliveryRequest::Pickup { location: "MAN".into() };
    let (id, shipments) = place(&mut state, order("W-1", pickup, &[("A", 2)]));
    let order = view(&state, id);
    assert_eq!(
        (order.shipments[0].location.as_str(), order.routing.rule),
        ("MAN", RoutingRule::Pickup)
    );
    pay(&mut state, id);
    for next in [ShipmentStep::Release, ShipmentStep::StartPicking, ShipmentStep::Pack] {
        step(&mut state, shipments[0], next).unwrap();
    }
    assert_eq!(step(&mut state, shipments[0], ship("DPD")), Err(transition("packed")));
    step(&mut state, shipments[0], ShipmentStep::ReadyForPickup).unwrap();
    step(&mut state, shipments[0], ShipmentStep::PickUp).unwrap();
    assert_eq!(cell(&state, "A", "MAN"), (3, 0, 0));
    assert_eq!(view(&state, id).state, OrderState::Delivered);
}

#[test]
fn without_stock_an_order_is_refused_or_backordered_and_filled_when_stock_comes() {
    let mut state = world(&[("A", "LDN", 1), ("A", "GLA", 1)]);
    let refused =
        apply(&mut state, Command::PlaceOrder(order("W-1", ship_to(BRIGHTON), &[("A", 3)])), T0);
    assert_eq!(refused, Err(EngineError::InsufficientStock { line: 0, available: 2 }));
    let backorder =
        PlaceOrder { allow_backorder: true, ..order("W-1", ship_to(BRIGHTON), &[("A", 3)]) };
    let Reply::OrderPlaced { order: id, state: placed, backordered_units, .. } =
        ok(&mut state, Command::PlaceOrder(backorder))
    else {
        panic!()
    };
    assert_eq!((placed, backordered_units), (OrderState::Backordered, 1));
    assert_eq!(view(&state, id).lines[0].backordered, 1);
    assert_eq!(
        apply(&mut state, Command::AllocateBackorders { order: id }, T0).unwrap(),
        Reply::OrderChanged { order: id, state: OrderState::Backordered }
    );
    let receipt = Command::Receive { sku: "A".into(), location: "MAN".into(), quantity: 4 };
    let Reply::Cell(cell) = ok(&mut state, receipt) else { panic!() };
    assert_eq!((cell.on_hand, cell.allocated, cell.available), (4, 1, 3), "the receipt filled it");
    let order = view(&state, id);
    assert_eq!((order.lines[0].backordered, order.shipments.len()), (0, 3));
    assert_eq!(order.state, OrderState::Pending);
    let nothing_left = apply(&mut state, Command::AllocateBackorders { order: id }, T0);
    assert_eq!(nothing_left, Err(transition("pending")));
    let Ok(Reply::Kpis(kpis)) = state.query(&Query::Kpis) else { panic!() };
    assert_eq!(
        (kpis.units_ordered, kpis.units_filled_at_placement, kpis.fill_rate_bp),
        (3, 2, Some(6_666))
    );
}

#[test]
fn arriving_stock_fills_the_oldest_backorders_first() {
    let mut state = world(&[("A", "LDN", 1)]);
    let backorder =
        |number: &str| PlaceOrder { allow_backorder: true, ..order_named(number, &[("A", 2)]) };
    let (first, _) = place(&mut state, backorder("W-1"));
    let (second, _) = place(&mut state, backorder("W-2"));
    assert_eq!(
        (view(&state, first).lines[0].backordered, view(&state, second).lines[0].backordered),
        (1, 2)
    );
    ok(&mut state, Command::Receive { sku: "A".into(), location: "BHM".into(), quantity: 2 });
    assert_eq!(view(&state, first).lines[0].backordered, 0, "the oldest order is filled first");
    assert_eq!(view(&state, second).lines[0].backordered, 1, "the next gets what is left");
    let transfer =
        Command::Transfer { sku: "A".into(), from: "LDN".into(), to: "GLA".into(), quantity: 1 };
    assert!(
        matches!(apply(&mut state, transfer, T0), Err(EngineError::InsufficientStock { .. })),
        "LDN's unit is allocated"
    );
    ok(&mut state, Command::Receive { sku: "A".into(), location: "GLA".into(), quantity: 5 });
    let second = view(&state, second);
    assert_eq!((second.lines[0].backordered, second.state), (0, OrderState::Pending));
    assert_eq!(cell(&state, "A", "GLA"), (5, 0, 1));
}

#[test]
fn an_order_converts_its_hold_and_must_match_it() {
    let mut state = world(&[("A", "LDN", 5)]);
    let reserve = Command::Reserve {
        lines: vec![allot_core::LineRequest {
            sku: "A".into(),
            location: "LDN".into(),
            quantity: 2,
        }],
        ttl_ms: None,
    };
    let Reply::HoldPlaced { hold, .. } = ok(&mut state, reserve) else { panic!() };
    let wrong = PlaceOrder { hold: Some(hold), ..order("W-1", ship_to(EDINBURGH), &[("A", 3)]) };
    assert!(matches!(
        apply(&mut state, Command::PlaceOrder(wrong), T0),
        Err(EngineError::InvalidArgument(_))
    ));
    let right = PlaceOrder { hold: Some(hold), ..order("W-1", ship_to(EDINBURGH), &[("A", 2)]) };
    let (id, _) = place(&mut state, right);
    assert_eq!(cell(&state, "A", "LDN"), (5, 0, 2), "held became allocated, where it was held");
    let order = view(&state, id);
    assert_eq!((order.from_hold, order.routing.rule), (Some(hold), RoutingRule::FromHold));
    let again = PlaceOrder { hold: Some(hold), ..order_named("W-2", &[("A", 2)]) };
    assert!(matches!(
        apply(&mut state, Command::PlaceOrder(again), T0),
        Err(EngineError::AlreadyResolved { .. })
    ));
    // Its units leave with the order's shipments, never as units committed outside.
    for settle in [
        Command::ConsumeCommitted { hold, lines: vec![] },
        Command::ReleaseCommitted { hold, lines: vec![] },
    ] {
        assert_eq!(apply(&mut state, settle, T0), Err(transition("ordered")));
    }
    assert_eq!(cell(&state, "A", "LDN"), (5, 0, 2));
}

fn order_named(number: &str, lines: &[(&str, u32)]) -> PlaceOrder {
    order(number, ship_to(BRIGHTON), lines)
}

#[test]
fn a_routed_hold_is_placed_where_routing_says_and_an_order_keeps_its_reasons() {
    let mut state = world(&[("A", "LDN", 5), ("A", "GLA", 5)]);
    let reserve = Command::ReserveRouted {
        lines: items(&[("A", 2)]),
        destination: ship_to(EDINBURGH),
        ttl_ms: None,
    };
    let Reply::RoutedHoldPlaced { hold, lines, .. } = ok(&mut state, reserve) else { panic!() };
    assert_eq!((lines[0].location.as_str(), lines[0].quantity), ("GLA", 2));
    let Ok(Reply::Routing(why)) = state.query(&Query::HoldRouting { hold }) else { panic!() };
    assert_eq!((why.rule, why.locations_considered), (RoutingRule::OneLocation, 4));
    let glasgow = &why.assessments[0];
    assert_eq!((glasgow.location.as_str(), glasgow.verdict), ("GLA", Verdict::Chosen));
    let named = Command::Reserve {
        lines: vec![allot_core::LineRequest {
            sku: "A".into(),
            location: "LDN".into(),
            quantity: 1,
        }],
        ttl_ms: None,
    };
    let Reply::HoldPlaced { hold: named, .. } = ok(&mut state, named) else { panic!() };
    let not_routed = state.query(&Query::HoldRouting { hold: named });
    assert!(
        matches!(not_routed, Err(EngineError::NotFound(why)) if why.contains("named its locations"))
    );
    assert_eq!(cell(&state, "A", "GLA"), (5, 2, 0));
    let (id, _) = place(
        &mut state,
        PlaceOrder { hold: Some(hold), ..order("W-1", ship_to(EDINBURGH), &[("A", 2)]) },
    );
    assert_eq!(view(&state, id).routing.rule, RoutingRule::OneLocation);
    let too_many = Command::ReserveRouted {
        lines: items(&[("A", 9)]),
        destination: ship_to(EDINBURGH),
        ttl_ms: None,
    };
    assert_eq!(
        apply(&mut state, too_many, T0),
        Err(EngineError::InsufficientStock { line: 0, available: 7 }),
        "Glasgow has 3 left after the order, London 4 after the named hold"
    );
}

#[test]
fn the_same_number_again_answers_the_same_order_and_another_order_under_it_conflicts() {
    let mut state = world(&[("A", "LDN", 5)]);
    let first = ok(&mut state, Command::PlaceOrder(order_named("W-1", &[("A", 1)])));
    let repeat = Request::new(Command::PlaceOrder(order_named("W-1", &[("A", 1)])));
    let again = state.apply(&repeat, T0 + 5);
    assert_eq!((again.outcome, again.changed), (Ok(first), false), "answered, not logged");
    assert_eq!(state.last_applied_ms(), T0);
    let keyed = Request::with_key("k-1", Command::PlaceOrder(order_named("W-1", &[("A", 1)])));
    let digest = codec::state_digest(&state);
    assert!(!state.apply(&keyed, T0 + 6).changed);
    assert_eq!(codec::state_digest(&state), digest, "an unlogged repeat leaves no key behind");
    assert_eq!(cell(&state, "A", "LDN"), (5, 0, 1), "allocated once");
    let other = apply(&mut state, Command::PlaceOrder(order_named("W-1", &[("A", 2)])), T0);
    assert_eq!(other, Err(EngineError::IdempotencyConflict));
    let other_channel = PlaceOrder { channel: Channel::App, ..order_named("W-1", &[("A", 2)]) };
    place(&mut state, other_channel);
}

// ---------------------------------------------------------------------------------------
// Shipments, holds, cancellation, short picks
// ---------------------------------------------------------------------------------------

#[test]
fn an_order_walks_to_delivered_and_shipping_consumes_on_hand() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 2)]));
    assert_eq!(step(&mut state, shipments[0], ShipmentStep::Release), Err(transition("pending")));
    pay(&mut state, id);
    assert_eq!(step(&mut state, shipments[0], ShipmentStep::Pack), Err(transition("allocated")));
    step(&mut state, shipments[0], ShipmentStep::Release).unwrap();
    assert_eq!(view(&state, id).state, OrderState::InProgress);
    for next in [ShipmentStep::StartPicking, ShipmentStep::Pack] {
        step(&mut state, shipments[0], next).unwrap();
    }
    assert_eq!(cell(&state, "A", "LDN"), (5, 0, 2));
    let no_carrier = step(&mut state, shipments[0], ship(""));
    assert!(
        matches!(no_carrier, Err(EngineError::InvalidArgument(why)) if why.contains("carrier"))
    );
    let shipped = step(&mut state, shipments[0], ship("DPD")).unwrap();
    assert_eq!(
        shipped,
        Reply::ShipmentChanged {
            shipment: shipments[0],
            state: ShipmentState::Shipped,
            order_state: OrderState::Shipped
        }
    );
    assert_eq!(cell(&state, "A", "LDN"), (3, 0, 0));
    step(&mut state, shipments[0], ShipmentStep::Deliver).unwrap();
    let order = view(&state, id);
    assert_eq!((order.state, order.lines[0].shipped), (OrderState::Delivered, 2));
    assert_eq!(order.shipments[0].carrier.as_deref(), Some("DPD"));
    assert_eq!(step(&mut state, shipments[0], ShipmentStep::Deliver), Err(transition("delivered")));
}

#[test]
fn a_fraud_hold_stops_the_floor_until_it_is_lifted() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 1)]));
    pay(&mut state, id);
    let hold =
        Command::HoldOrder { order: id, reason: OrderHoldReason::Fraud, note: "velocity".into() };
    assert_eq!(
        ok(&mut state, hold.clone()),
        Reply::OrderChanged { order: id, state: OrderState::OnHold }
    );
    assert_eq!(apply(&mut state, hold, T0), Err(transition("on_hold")));
    assert_eq!(step(&mut state, shipments[0], ShipmentStep::Release), Err(transition("on_hold")));
    ok(&mut state, Command::ReleaseOrderHold { order: id });
    step(&mut state, shipments[0], ShipmentStep::Release).unwrap();
}

#[test]
fn cancelling_an_order_frees_its_allocation_and_a_second_cancel_is_refused() {
    let mut state = world(&[("A", "LDN", 5), ("B", "GLA", 5)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 2), ("B", 1)]));
    assert_eq!(shipments.len(), 2);
    let cancel = Command::CancelOrder { order: id, reason: "customer".into() };
    assert_eq!(
        ok(&mut state, cancel.clone()),
        Reply::OrderChanged { order: id, state: OrderState::Cancelled }
    );
    assert_eq!((cell(&state, "A", "LDN"), cell(&state, "B", "GLA")), ((5, 0, 0), (5, 0, 0)));
    assert_eq!(apply(&mut state, cancel, T0), Err(transition("cancelled")));
    let cancel_shipment = Command::CancelShipment { shipment: shipments[0], reason: "x".into() };
    assert_eq!(apply(&mut state, cancel_shipment, T0), Err(transition("cancelled")));
}

#[test]
fn cancelling_some_lines_takes_backorders_first_then_shipments() {
    let mut state = world(&[("A", "LDN", 2)]);
    let request = PlaceOrder { allow_backorder: true, ..order_named("W-1", &[("A", 3)]) };
    let (id, shipments) = place(&mut state, request);
    let cancel = |quantity| Command::CancelOrderLines {
        order: id,
        lines: items(&[("A", quantity)]),
        reason: "r".into(),
    };
    assert!(matches!(apply(&mut state, cancel(4), T0), Err(EngineError::InvalidArgument(_))));
    ok(&mut state, cancel(2));
    let order = view(&state, id);
    assert_eq!((order.lines[0].backordered, order.lines[0].cancelled), (0, 2));
    assert_eq!(cell(&state, "A", "LDN"), (2, 0, 1));
    ok(&mut state, cancel(1));
    assert_eq!(view(&state, id).state, OrderState::Cancelled);
    assert_eq!(view(&state, id).shipments[0].state, ShipmentState::Cancelled);
    assert_eq!(shipments.len(), 1);
}

#[test]
fn a_short_pick_writes_the_units_off_and_reroutes_them_or_backorders_them() {
    let mut state = world(&[("A", "LDN", 3), ("A", "BHM", 1)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 3)]));
    pay(&mut state, id);
    let short = Command::ShortPick { shipment: shipments[0], missing: items(&[("A", 2)]) };
    assert_eq!(apply(&mut state, short.clone(), T0), Err(transition("allocated")));
    step(&mut state, shipments[0], ShipmentStep::Release).unwrap();
    let Reply::ShortPicked { rerouted, backordered_units, state: left, .. } = ok(&mut state, short)
    else {
        panic!()
    };
    assert_eq!((rerouted.len(), backordered_units, left), (1, 1, ShipmentState::Released));
    assert_eq!(cell(&state, "A", "LDN"), (1, 0, 1), "two written off, one still to pick");
    assert_eq!(cell(&state, "A", "BHM"), (1, 0, 1));
    let order = view(&state, id);
    assert_eq!((order.state, order.lines[0].backordered), (OrderState::InProgress, 1));
}

// ---------------------------------------------------------------------------------------
// Returns
// ---------------------------------------------------------------------------------------

#[test]
fn a_return_is_received_resellable_back_on_hand_and_damaged_written_off_then_refunded() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 3)]));
    pay(&mut state, id);
    let early =
        Command::RequestReturn { order: id, lines: items(&[("A", 1)]), reason: "size".into() };
    assert!(matches!(apply(&mut state, early.clone(), T0), Err(EngineError::InvalidArgument(_))));
    walk_to_delivered(&mut state, shipments[0]);
    let too_many =
        Command::RequestReturn { order: id, lines: items(&[("A", 4)]), reason: "size".into() };
    assert!(matches!(apply(&mut state, too_many, T0), Err(EngineError::InvalidArgument(_))));
    let request =
        Command::RequestReturn { order: id, lines: items(&[("A", 2)]), reason: "size".into() };
    let Reply::ReturnChanged { rma, .. } = ok(&mut state, request) else { panic!() };
    let receive = Command::ReceiveReturn {
        rma,
        location: "MAN".into(),
        lines: vec![
            ReturnReceipt { sku: "A".into(), quantity: 1, condition: ReturnCondition::Resellable },
            ReturnReceipt {
                sku: "A".into(),
                quantity: 1,
                condition: ReturnCondition::Damaged { reason: "torn".into() },
            },
        ],
    };
    assert_eq!(apply(&mut state, receive.clone(), T0), Err(transition("requested")));
    ok(&mut state, Command::AuthoriseReturn { rma });
    ok(&mut state, receive);
    assert_eq!(
        cell(&state, "A", "MAN"),
        (1, 0, 0),
        "the resellable unit is on hand where it came back"
    );
    assert_eq!(cell(&state, "A", "LDN"), (2, 0, 0));
    assert_eq!(view(&state, id).state, OrderState::PartiallyReturned);
    let capture = Command::RecordPayment {
        order: id,
        event: PaymentEvent::Captured,
        amount_minor: 3_000,
        reference: "PSP-1".into(),
    };
    ok(&mut state, capture);
    let refund = |amount_minor| Command::RefundReturn { rma, amount_minor };
    assert!(matches!(apply(&mut state, refund(2_001), T0), Err(EngineError::InvalidArgument(_))));
    assert_eq!(
        ok(&mut state, refund(2_000)),
        Reply::ReturnChanged { rma, state: ReturnState::Refunded }
    );
    let Ok(Reply::Return(record)) = state.query(&Query::Return { rma }) else { panic!() };
    assert_eq!(
        (record.lines[0].resellable, record.lines[0].damaged, record.damage_reasons),
        (1, 1, vec!["torn".to_owned()])
    );
    let Ok(Reply::Kpis(kpis)) = state.query(&Query::Kpis) else { panic!() };
    assert_eq!((kpis.units_shipped, kpis.units_returned, kpis.return_rate_bp), (3, 2, Some(6_666)));
}

/// A delivered order of `units` of "A" with a return of all of them authorised; answers
/// (order, rma).
fn authorised_return(state: &mut State, units: u32) -> (u64, u64) {
    let (id, shipments) = place(state, order_named("W-1", &[("A", units)]));
    pay(state, id);
    walk_to_delivered(state, shipments[0]);
    let request =
        Command::RequestReturn { order: id, lines: items(&[("A", units)]), reason: "size".into() };
    let Reply::ReturnChanged { rma, .. } = ok(state, request) else { panic!() };
    ok(state, Command::AuthoriseReturn { rma });
    (id, rma)
}

/// Refused through `State::apply` itself, as an embedding program would send it: the
/// answer is `InvalidArgument` and the state is byte for byte what it was.
fn refused_unchanged(state: &mut State, command: Command) -> String {
    let digest = codec::state_digest(state);
    let applied = state.apply(&Request::new(command), T0);
    assert!(!applied.changed);
    assert_eq!(codec::state_digest(state), digest, "a refused receipt changed the state");
    match applied.outcome {
        Err(EngineError::InvalidArgument(message)) => message,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn the_core_refuses_an_absurd_returned_quantity_and_changes_nothing() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (_, rma) = authorised_return(&mut state, 2);
    let receipt = |quantity| ReturnReceipt {
        sku: "A".into(),
        quantity,
        condition: ReturnCondition::Resellable,
    };
    let absurd =
        Command::ReceiveReturn { rma, location: "LDN".into(), lines: vec![receipt(u32::MAX)] };
    let message = refused_unchanged(&mut state, absurd);
    assert!(message.contains("returned quantity"), "{message}");
    // Lines each within the per-line limit, whose sum passes what a counter can hold.
    let lines = vec![receipt(allot_protocol::limits::QUANTITY_PER_LINE_MAX); 5_000];
    let summed = Command::ReceiveReturn { rma, location: "LDN".into(), lines };
    let message = refused_unchanged(&mut state, summed);
    assert!(message.contains("receipt lines"), "{message}");
    assert_eq!(cell(&state, "A", "LDN"), (3, 0, 0));
}

/// A delivered and returned unit of "A", received back at London; answers (order, rma).
fn received_return(state: &mut State) -> (u64, u64) {
    let (id, rma) = authorised_return(state, 1);
    let receipt =
        ReturnReceipt { sku: "A".into(), quantity: 1, condition: ReturnCondition::Resellable };
    ok(state, Command::ReceiveReturn { rma, location: "LDN".into(), lines: vec![receipt] });
    (id, rma)
}

fn payment_event(order: u64, event: PaymentEvent) -> Command {
    Command::RecordPayment { order, event, amount_minor: 1_000, reference: "PSP-2".into() }
}

#[test]
fn refunding_a_return_whose_payment_was_only_authorised_voids_the_authorisation() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, rma) = received_return(&mut state);
    assert_eq!(
        apply(&mut state, payment_event(id, PaymentEvent::Refunded), T0),
        Err(transition("authorised")),
        "a payment event cannot refund an authorisation"
    );
    let refund = Command::RefundReturn { rma, amount_minor: 1_000 };
    assert_eq!(ok(&mut state, refund), Reply::ReturnChanged { rma, state: ReturnState::Refunded });
    assert_eq!(view(&state, id).payment, PaymentState::Voided, "no money was taken");
    for event in [PaymentEvent::Captured, PaymentEvent::Refunded, PaymentEvent::Authorised] {
        assert_eq!(
            apply(&mut state, payment_event(id, event), T0),
            Err(transition("voided")),
            "a voided authorisation takes no further payment event"
        );
    }
}

#[test]
fn refunding_a_return_whose_payment_was_captured_refunds_it() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, rma) = received_return(&mut state);
    ok(&mut state, payment_event(id, PaymentEvent::Captured));
    ok(&mut state, Command::RefundReturn { rma, amount_minor: 1_000 });
    assert_eq!(view(&state, id).payment, PaymentState::Refunded);
}

#[test]
fn refunding_a_return_whose_payment_failed_is_refused_with_the_payment_state() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, rma) = received_return(&mut state);
    ok(&mut state, payment_event(id, PaymentEvent::Failed));
    let refund = Command::RefundReturn { rma, amount_minor: 1_000 };
    assert_eq!(apply(&mut state, refund, T0), Err(transition("failed")));
    assert_eq!(view(&state, id).payment, PaymentState::Failed);
}

#[test]
fn releasing_a_shipment_to_the_floor_counts_as_starting_the_order() {
    let mut state = world(&[("A", "LDN", 5)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 1)]));
    pay(&mut state, id);
    assert_eq!(view(&state, id).state, OrderState::Confirmed);
    let released = step(&mut state, shipments[0], ShipmentStep::Release);
    assert_eq!(
        released,
        Ok(Reply::ShipmentChanged {
            shipment: shipments[0],
            state: ShipmentState::Released,
            order_state: OrderState::InProgress,
        }),
        "released, not yet picked, is already in progress"
    );
}

#[test]
fn an_exchange_places_a_new_order_linked_to_the_return() {
    let mut state = world(&[("A", "LDN", 5), ("B", "LDN", 5)]);
    let (id, shipments) = place(&mut state, order_named("W-1", &[("A", 1)]));
    pay(&mut state, id);
    walk_to_delivered(&mut state, shipments[0]);
    let request =
        Command::RequestReturn { order: id, lines: items(&[("A", 1)]), reason: "colour".into() };
    let Reply::ReturnChanged { rma, .. } = ok(&mut state, request) else { panic!() };
    ok(&mut state, Command::AuthoriseReturn { rma });
    let receipt = vec![ReturnReceipt {
        sku: "A".into(),
        quantity: 1,
        condition: ReturnCondition::Resellable,
    }];
    ok(&mut state, Command::ReceiveReturn { rma, location: "LDN".into(), lines: receipt });
    let exchange = Command::ExchangeReturn { rma, order: order_named("W-1-X", &[("B", 1)]) };
    let Reply::ReturnExchanged { order: new_order, .. } = ok(&mut state, exchange) else {
        panic!()
    };
    assert_eq!(view(&state, new_order).exchange_for, Some(rma));
    assert_eq!(view(&state, id).state, OrderState::Returned);
    assert_eq!(cell(&state, "B", "LDN"), (5, 0, 1));
}

// ---------------------------------------------------------------------------------------
// Queries, KPIs, snapshots
// ---------------------------------------------------------------------------------------

fn page(state: &State, query: Query) -> OrderPage {
    match state.query(&query) {
        Ok(Reply::Orders(page)) => page,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_customers_history_pages_newest_first_and_states_filter_by_location() {
    let mut state = world(&[("A", "LDN", 50), ("A", "GLA", 50)]);
    for n in 0..5 {
        let to = if n % 2 == 0 { ship_to(BRIGHTON) } else { ship_to(EDINBURGH) };
        place(&mut state, order(&format!("W-{n}"), to, &[("A", 1)]));
    }
    place(&mut state, PlaceOrder { customer: "C-2".into(), ..order_named("W-9", &[("A", 1)]) });
    let first =
        page(&state, Query::CustomerOrders { customer: "C-1".into(), before: None, limit: 2 });
    assert_eq!(first.orders.iter().map(|o| o.order).collect::<Vec<_>>(), [5, 4]);
    let second = page(
        &state,
        Query::CustomerOrders { customer: "C-1".into(), before: first.next, limit: 2 },
    );
    assert_eq!(second.orders.iter().map(|o| o.order).collect::<Vec<_>>(), [3, 2]);
    let last = page(
        &state,
        Query::CustomerOrders { customer: "C-1".into(), before: second.next, limit: 2 },
    );
    assert_eq!((last.orders.len(), last.next), (1, None));
    // A bound that is not one of the customer's orders (another's, or none at all).
    let ids = |state: &State, customer: &str, before: Option<u64>| -> Vec<u64> {
        let query = Query::CustomerOrders { customer: customer.into(), before, limit: 10 };
        page(state, query).orders.iter().map(|o| o.order).collect()
    };
    assert_eq!(ids(&state, "C-1", Some(6)), [5, 4, 3, 2, 1]);
    assert_eq!(ids(&state, "C-1", Some(99)), [5, 4, 3, 2, 1]);
    assert_eq!(ids(&state, "C-1", Some(1)), Vec::<u64>::new());
    assert_eq!(ids(&state, "C-2", Some(6)), Vec::<u64>::new());
    assert_eq!(ids(&state, "C-2", None), [6]);
    let loaded = codec::decode_state(&codec::encode_state(&state)).unwrap();
    for (customer, before) in [("C-1", None), ("C-1", Some(4)), ("C-2", None)] {
        assert_eq!(ids(&loaded, customer, before), ids(&state, customer, before));
    }
    let in_glasgow = Query::OrdersByState {
        state: OrderState::Pending,
        location: Some("GLA".into()),
        after: None,
        limit: 10,
    };
    assert_eq!(page(&state, in_glasgow).orders.iter().map(|o| o.order).collect::<Vec<_>>(), [2, 4]);
    let unknown =
        state.query(&Query::CustomerOrders { customer: "C-1".into(), before: None, limit: 0 });
    assert!(matches!(unknown, Err(EngineError::InvalidArgument(_))));
}

#[test]
fn the_pick_list_shows_what_is_released_or_being_picked_oldest_first() {
    let mut state = world(&[("A", "LDN", 50)]);
    let mut shipments = Vec::new();
    for n in 0..3 {
        let (id, placed) = place(&mut state, order_named(&format!("W-{n}"), &[("A", 1)]));
        pay(&mut state, id);
        shipments.push(placed[0]);
    }
    step(&mut state, shipments[2], ShipmentStep::Release).unwrap();
    step(&mut state, shipments[0], ShipmentStep::Release).unwrap();
    step(&mut state, shipments[0], ShipmentStep::StartPicking).unwrap();
    let list =
        |after| match state.query(&Query::PickList { location: "LDN".into(), after, limit: 1 }) {
            Ok(Reply::Shipments(page)) => page,
            other => panic!("{other:?}"),
        };
    let first = list(None);
    assert_eq!((first.shipments[0].shipment, first.next), (shipments[0], Some(shipments[0])));
    let second = list(first.next);
    assert_eq!((second.shipments[0].shipment, second.next), (shipments[2], None));
}

#[test]
fn orders_survive_a_snapshot_and_a_replay_byte_for_byte() {
    let mut state = world(&[("A", "LDN", 5), ("B", "GLA", 5)]);
    let mut log = Vec::new();
    let mut run = |state: &mut State, command: Command| {
        let request = Request::new(command);
        let applied = state.apply(&request, T0);
        if applied.changed {
            log.push(request);
        }
        applied.outcome
    };
    let Ok(Reply::OrderPlaced { order: id, shipments, .. }) =
        run(&mut state, Command::PlaceOrder(order_named("W-1", &[("A", 2), ("B", 1)])))
    else {
        panic!()
    };
    run(
        &mut state,
        Command::RecordPayment {
            order: id,
            event: PaymentEvent::Authorised,
            amount_minor: 1,
            reference: "P".into(),
        },
    )
    .unwrap();
    run(
        &mut state,
        Command::AdvanceShipment { shipment: shipments[0], step: ShipmentStep::Release },
    )
    .unwrap();
    let image = codec::encode_state(&state);
    let restored = codec::decode_state(&image).unwrap();
    assert_eq!(codec::state_digest(&restored), codec::state_digest(&state));
    assert_eq!(restored.audit(), Ok(()));
    assert_eq!(restored.query(&Query::Kpis), state.query(&Query::Kpis));
    assert_eq!(
        restored.query(&Query::PickList { location: "LDN".into(), after: None, limit: 5 }),
        state.query(&Query::PickList { location: "LDN".into(), after: None, limit: 5 })
    );
    let mut replayed = world(&[("A", "LDN", 5), ("B", "GLA", 5)]);
    for request in &log {
        replayed.apply(request, T0);
    }
    assert_eq!(codec::state_digest(&replayed), codec::state_digest(&state));
}

#[test]
fn numbers_addresses_returns_and_reasons_read_back_the_same_after_a_snapshot_load() {
    let mut state = world(&[("A", "LDN", 5), ("B", "GLA", 5)]);
    let web = order("W-1", ship_to(BRIGHTON), &[("A", 2), ("B", 1)]);
    let (id, shipments) = place(&mut state, web.clone());
    // The same number on another channel is another order.
    let app = PlaceOrder { channel: Channel::App, currency: "EUR".into(), ..web };
    let (other, _) = place(&mut state, app);
    pay(&mut state, id);
    walk_to_delivered(&mut state, shipments[0]);
    let request =
        Command::RequestReturn { order: id, lines: items(&[("A", 1)]), reason: "size".into() };
    ok(&mut state, request);
    let restored = codec::decode_state(&codec::encode_state(&state)).unwrap();
    for loaded in [&state, &restored] {
        let by_number = |channel| {
            let query = Query::OrderByNumber { channel, external_number: "W-1".into() };
            match loaded.query(&query) {
                Ok(Reply::Order(view)) => (view.order, view.currency),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(by_number(Channel::Web), (id, "GBP".to_owned()));
        assert_eq!(by_number(Channel::App), (other, "EUR".to_owned()));
        let missing = Query::OrderByNumber { channel: Channel::Pos, external_number: "W-1".into() };
        assert!(matches!(loaded.query(&missing), Err(EngineError::NotFound(_))));
        let order = view(loaded, id);
        assert_eq!((order.external_number.as_str(), order.returns.len()), ("W-1", 1));
        assert_eq!(order.delivery, ship_to(BRIGHTON));
        assert_eq!(order.routing.rule, RoutingRule::Split);
        assert!(order.routing.assessments.iter().any(|a| a.verdict == Verdict::Chosen));
    }
    assert_eq!(view(&restored, id), view(&state, id));
    assert_eq!(view(&restored, other), view(&state, other));
}

#[test]
fn replies_stay_small_because_large_views_are_boxed() {
    // Every answer is moved through the writer's batch and every keyed one is remembered
    // for a day in the idempotency table: order views must not make each of them large.
    // The largest inline answer is a transfer's two cells, which predates orders.
    let size = std::mem::size_of::<Reply>();
    assert!(size <= 144, "Reply is {size} bytes");
}
