//! Orders end to end over QUIC: a real `allotd` driven through `allot_client` for every
//! order flow — placement and routing, holds turned into orders, the shipment lifecycle
//! to delivery and to pickup, order holds, cancellations, short picks, returns and
//! exchanges, the order queries and KPIs, roles, `kill -9` and clean restarts, and bad
//! input. The core's unit tests (`engine/src/core_tests/orders.rs`) pin the details on
//! the same small map; these check that each behaviour holds over the wire.

use std::collections::BTreeMap;

use allot_client::protocol::order::{
    Address, Channel, Delivery, DeliveryRequest, ItemQuantity, KpiView, LocationWorkload,
    OrderCount, OrderHoldReason, OrderId, OrderLine, OrderPage, OrderState, OrderView,
    PaymentEvent, PaymentState, PlaceOrder, ReturnCondition, ReturnId, ReturnReceipt, ReturnState,
    ReturnView, RoutingRule, ShipmentId, ShipmentState, ShipmentStep, ShipmentView, Verdict,
};
use allot_client::protocol::{
    CellView, Command, ErrorCode, HoldState, LineRequest, LocationKind, LocationSpec, Query, Reply,
    Resolution, Role, ShippingCost,
};
use allot_client::{Client, ClientConfig, Trust};
use allot_tests::allotd::Allotd;

use crate::support::{runtime, server_code, snapshots};

// ---------------------------------------------------------------------------------------
// The map, orders and short forms of the calls
// ---------------------------------------------------------------------------------------

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
/// Every order line's unit price, in pence.
const PRICE: i64 = 1_000;

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

fn admin_config(allotd: &Allotd) -> ClientConfig {
    let mut config = ClientConfig::from_data_dir(allotd.addr().to_string(), allotd.data_dir())
        .expect("the development certificate and token");
    config.client_name = "orders-e2e".into();
    config
}

async fn connect(allotd: &Allotd) -> Client {
    Client::connect(admin_config(allotd)).await.expect("connect to allotd")
}

/// The map's four locations, with `stock` as (sku, location, units).
async fn world(client: &Client, stock: &[(&str, &str, u32)]) {
    for (code, latitude, longitude) in MAP {
        client.upsert_location(site(code, latitude, longitude)).await.unwrap();
    }
    for &(sku, location, quantity) in stock {
        client.receive(sku, location, quantity).await.unwrap();
    }
}

fn ship_to((latitude_e6, longitude_e6): (i32, i32)) -> DeliveryRequest {
    DeliveryRequest::Ship {
        to: Address { latitude_e6, longitude_e6, country: "GB".into(), postcode: "BN1 1AA".into() },
    }
}

/// A web order for customer C-1, every unit at [`PRICE`].
fn order(number: &str, delivery: DeliveryRequest, lines: &[(&str, u32)]) -> PlaceOrder {
    PlaceOrder {
        channel: Channel::Web,
        external_number: number.into(),
        customer: "C-1".into(),
        delivery,
        currency: "GBP".into(),
        lines: (lines.iter())
            .map(|&(sku, quantity)| OrderLine {
                sku: sku.into(),
                quantity,
                unit_price_minor: PRICE,
            })
            .collect(),
        hold: None,
        allow_backorder: false,
    }
}

/// An order shipped to Brighton.
fn order_to_brighton(number: &str, lines: &[(&str, u32)]) -> PlaceOrder {
    order(number, ship_to(BRIGHTON), lines)
}

fn items(lines: &[(&str, u32)]) -> Vec<ItemQuantity> {
    lines.iter().map(|&(sku, quantity)| ItemQuantity { sku: sku.into(), quantity }).collect()
}

fn transition(from: &str) -> ErrorCode {
    ErrorCode::InvalidTransition { from: from.into() }
}

fn ship(carrier: &str, tracking: &str) -> ShipmentStep {
    ShipmentStep::Ship { carrier: carrier.into(), tracking: tracking.into() }
}

/// Every step from allocated to delivered.
fn to_delivered() -> [ShipmentStep; 5] {
    [
        ShipmentStep::Release,
        ShipmentStep::StartPicking,
        ShipmentStep::Pack,
        ship("DPD", "TRK-1"),
        ShipmentStep::Deliver,
    ]
}

/// A command that must succeed.
async fn ok(client: &Client, command: Command) -> Reply {
    let name = command.name();
    client.command(command).await.unwrap_or_else(|error| panic!("{name} was refused: {error}"))
}

/// A command that must be refused by the server; its error code.
async fn refused(client: &Client, command: Command) -> ErrorCode {
    let name = command.name();
    match client.command(command).await {
        Ok(reply) => panic!("{name} should have been refused, but answered {reply:?}"),
        Err(error) => server_code(error),
    }
}

async fn ask(client: &Client, query: Query) -> Reply {
    client.query(query.clone()).await.unwrap_or_else(|error| panic!("{query:?}: {error}"))
}

async fn ask_refused(client: &Client, query: Query) -> ErrorCode {
    match client.query(query.clone()).await {
        Ok(reply) => panic!("{query:?} should have been refused, but answered {reply:?}"),
        Err(error) => server_code(error),
    }
}

/// What placing an order answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    order: OrderId,
    state: OrderState,
    shipments: Vec<ShipmentId>,
    backordered_units: u64,
}

fn placed(reply: Reply) -> Placed {
    match reply {
        Reply::OrderPlaced { order, state, shipments, backordered_units } => {
            Placed { order, state, shipments, backordered_units }
        }
        other => panic!("placing an order answered {other:?}"),
    }
}

async fn place(client: &Client, request: PlaceOrder) -> Placed {
    placed(ok(client, Command::PlaceOrder(request)).await)
}

async fn order_view(client: &Client, order: OrderId) -> OrderView {
    match ask(client, Query::Order { order }).await {
        Reply::Order(view) => *view,
        other => panic!("order {order} answered {other:?}"),
    }
}

async fn shipment_view(client: &Client, shipment: ShipmentId) -> ShipmentView {
    match ask(client, Query::Shipment { shipment }).await {
        Reply::Shipment(view) => *view,
        other => panic!("shipment {shipment} answered {other:?}"),
    }
}

async fn return_view(client: &Client, rma: ReturnId) -> ReturnView {
    match ask(client, Query::Return { rma }).await {
        Reply::Return(view) => *view,
        other => panic!("return {rma} answered {other:?}"),
    }
}

async fn kpis(client: &Client) -> KpiView {
    match ask(client, Query::Kpis).await {
        Reply::Kpis(view) => *view,
        other => panic!("KPIs answered {other:?}"),
    }
}

async fn page(client: &Client, query: Query) -> OrderPage {
    match ask(client, query).await {
        Reply::Orders(page) => page,
        other => panic!("an order list answered {other:?}"),
    }
}

fn ids(page: &OrderPage) -> Vec<OrderId> {
    page.orders.iter().map(|summary| summary.order).collect()
}

/// The shipments on a location's pick list (one page of up to 100).
async fn pick_list(client: &Client, location: &str) -> Vec<ShipmentId> {
    let query = Query::PickList { location: location.into(), after: None, limit: 100 };
    match ask(client, query).await {
        Reply::Shipments(page) => page.shipments.iter().map(|s| s.shipment).collect(),
        other => panic!("a pick list answered {other:?}"),
    }
}

/// (on_hand, held, allocated) of a cell.
async fn cell(client: &Client, sku: &str, location: &str) -> (u32, u32, u32) {
    let cell = client.cell(sku, location).await.unwrap_or_else(|e| panic!("{sku}@{location}: {e}"));
    (cell.on_hand, cell.held, cell.allocated)
}

/// An authorised payment for the order's total.
async fn pay(client: &Client, order: OrderId) -> Reply {
    let total = order_view(client, order).await.total_minor;
    let event = Command::RecordPayment {
        order,
        event: PaymentEvent::Authorised,
        amount_minor: total,
        reference: format!("PSP-{order}"),
    };
    ok(client, event).await
}

async fn step(client: &Client, shipment: ShipmentId, step: ShipmentStep) -> Reply {
    ok(client, Command::AdvanceShipment { shipment, step }).await
}

async fn step_refused(client: &Client, shipment: ShipmentId, step: ShipmentStep) -> ErrorCode {
    refused(client, Command::AdvanceShipment { shipment, step }).await
}

async fn walk(client: &Client, shipment: ShipmentId, steps: &[ShipmentStep]) {
    for next in steps {
        step(client, shipment, next.clone()).await;
    }
}

fn shipment_changed(shipment: ShipmentId, state: ShipmentState, order_state: OrderState) -> Reply {
    Reply::ShipmentChanged { shipment, state, order_state }
}

/// The shipment of `view` at `location`.
fn shipment_at<'a>(view: &'a OrderView, location: &str) -> &'a ShipmentView {
    (view.shipments.iter())
        .find(|shipment| shipment.location == location)
        .unwrap_or_else(|| panic!("order {} has no shipment at {location}", view.order))
}

// ---------------------------------------------------------------------------------------
// 1. Placement and routing
// ---------------------------------------------------------------------------------------

#[test]
fn orders_are_routed_split_found_by_number_idempotent_refused_or_backordered_over_the_wire() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(
            &client,
            &[
                ("A", "LDN", 5),
                ("A", "GLA", 5),
                ("B", "LDN", 5),
                ("B", "GLA", 5),
                ("C", "LDN", 1),
                ("C", "GLA", 1),
                ("D", "LDN", 5),
                ("E", "GLA", 5),
                ("E", "MAN", 5),
            ],
        )
        .await;

        // Edinburgh: Glasgow has everything and is nearest.
        let request = order("W-1", ship_to(EDINBURGH), &[("A", 2), ("B", 1)]);
        let first = place(&client, request.clone()).await;
        assert_eq!(
            (first.state, first.shipments.len(), first.backordered_units),
            (OrderState::Pending, 1, 0)
        );
        let view = order_view(&client, first.order).await;
        assert_eq!(view.shipments[0].location, "GLA");
        assert_eq!(view.shipments[0].shipment, first.shipments[0]);
        assert_eq!(view.shipments[0].state, ShipmentState::Allocated);
        assert_eq!(view.total_minor, 3 * PRICE);
        assert_eq!(view.routing.rule, RoutingRule::OneLocation);
        assert_eq!(view.routing.locations_considered, 4);
        let chosen = &view.routing.assessments[0];
        assert_eq!((chosen.location.as_str(), chosen.verdict), ("GLA", Verdict::Chosen));
        assert!((60_000..80_000).contains(&chosen.distance_m), "{}", chosen.distance_m);
        let london = (view.routing.assessments.iter()).find(|a| a.location == "LDN").unwrap();
        assert_eq!(london.verdict, Verdict::Eligible);
        assert!(london.distance_m > chosen.distance_m && london.score > chosen.score);
        assert_eq!(cell(&client, "A", "GLA").await, (5, 0, 2));
        assert_eq!(cell(&client, "A", "LDN").await, (5, 0, 0));

        // By number, on its channel only.
        let by_number =
            Query::OrderByNumber { channel: Channel::Web, external_number: "W-1".into() };
        let Reply::Order(found) = ask(&client, by_number).await else { panic!() };
        assert_eq!(*found, view);
        let elsewhere =
            Query::OrderByNumber { channel: Channel::App, external_number: "W-1".into() };
        assert_eq!(ask_refused(&client, elsewhere).await, ErrorCode::NotFound);

        // The same number again (under another idempotency key) answers the same order and
        // allocates nothing more; another order under it is a conflict.
        let again = place(&client, request.clone()).await;
        assert_eq!(again, first);
        assert_eq!(cell(&client, "A", "GLA").await, (5, 0, 2), "allocated once");
        let other = order("W-1", ship_to(EDINBURGH), &[("A", 3), ("B", 1)]);
        assert_eq!(
            refused(&client, Command::PlaceOrder(other)).await,
            ErrorCode::IdempotencyConflict
        );
        let other_channel = PlaceOrder { channel: Channel::App, ..request };
        let app = place(&client, other_channel).await;
        assert_ne!(app.order, first.order, "numbers are unique per channel");

        // No single location has D and E: split over the fewest, Manchester being
        // nearer Brighton than Glasgow.
        let split = place(&client, order_to_brighton("W-2", &[("D", 1), ("E", 1)])).await;
        assert_eq!(split.shipments.len(), 2);
        let view = order_view(&client, split.order).await;
        assert_eq!(view.routing.rule, RoutingRule::Split);
        let mut locations: Vec<&str> = view.shipments.iter().map(|s| s.location.as_str()).collect();
        locations.sort_unstable();
        assert_eq!(locations, ["LDN", "MAN"]);
        assert_eq!(
            (cell(&client, "E", "MAN").await, cell(&client, "E", "GLA").await),
            ((5, 0, 1), (5, 0, 0))
        );

        // Three of C when two exist: refused, naming the line and what is available.
        let short = order_to_brighton("W-3", &[("A", 1), ("C", 3)]);
        assert_eq!(
            refused(&client, Command::PlaceOrder(short.clone())).await,
            ErrorCode::InsufficientStock { line: 1, available: 2 }
        );
        assert_eq!(
            (cell(&client, "C", "LDN").await, cell(&client, "C", "GLA").await),
            ((1, 0, 0), (1, 0, 0))
        );
        let missing = Query::OrderByNumber { channel: Channel::Web, external_number: "W-3".into() };
        assert_eq!(ask_refused(&client, missing).await, ErrorCode::NotFound);

        // With backorders allowed the same order is taken, one unit waiting.
        let backorder = place(&client, PlaceOrder { allow_backorder: true, ..short }).await;
        assert_eq!((backorder.state, backorder.backordered_units), (OrderState::Backordered, 1));
        let view = order_view(&client, backorder.order).await;
        let c_line = view.lines.iter().find(|line| line.sku == "C").unwrap();
        assert_eq!((c_line.quantity, c_line.backordered), (3, 1));
        let shipments_before = view.shipments.len();
        let retry = Command::AllocateBackorders { order: backorder.order };
        assert_eq!(
            ok(&client, retry.clone()).await,
            Reply::OrderChanged { order: backorder.order, state: OrderState::Backordered },
            "nothing came in yet"
        );
        // The receipt fills the waiting order by itself; an explicit retry finds nothing.
        let received = client.receive("C", "MAN", 4).await.unwrap();
        assert_eq!((received.on_hand, received.allocated), (4, 1));
        assert_eq!(refused(&client, retry.clone()).await, transition("pending"));
        let view = order_view(&client, backorder.order).await;
        assert_eq!(view.lines.iter().map(|line| line.backordered).sum::<u32>(), 0);
        assert_eq!(view.shipments.len(), shipments_before + 1);
        let filled = view.shipments.last().unwrap();
        assert_eq!(filled.location, "MAN");
        assert_eq!(filled.lines, items(&[("C", 1)]));
        assert_eq!(cell(&client, "C", "MAN").await, (4, 0, 1));
        assert_eq!(
            refused(&client, retry).await,
            transition("pending"),
            "nothing left to allocate"
        );
    });
}

// ---------------------------------------------------------------------------------------
// 2. Holds become orders
// ---------------------------------------------------------------------------------------

#[test]
fn a_hold_becomes_an_order_where_it_was_held_and_a_routed_hold_picks_its_location() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 5), ("A", "GLA", 5)]).await;

        let reserve = Command::Reserve {
            lines: vec![LineRequest { sku: "A".into(), location: "LDN".into(), quantity: 2 }],
            ttl_ms: Some(600_000),
        };
        let Reply::HoldPlaced { hold, .. } = ok(&client, reserve).await else { panic!() };
        assert_eq!(cell(&client, "A", "LDN").await, (5, 2, 0));

        let wrong =
            PlaceOrder { hold: Some(hold), ..order("W-0", ship_to(EDINBURGH), &[("A", 3)]) };
        assert_eq!(refused(&client, Command::PlaceOrder(wrong)).await, ErrorCode::InvalidArgument);
        assert_eq!(
            cell(&client, "A", "LDN").await,
            (5, 2, 0),
            "a refused conversion keeps the hold"
        );

        // Edinburgh is nearer Glasgow, but the hold's units are in London: they stay there.
        let right =
            PlaceOrder { hold: Some(hold), ..order("W-1", ship_to(EDINBURGH), &[("A", 2)]) };
        let first = place(&client, right).await;
        assert_eq!(cell(&client, "A", "LDN").await, (5, 0, 2), "held became allocated");
        assert_eq!(cell(&client, "A", "GLA").await, (5, 0, 0));
        let view = order_view(&client, first.order).await;
        assert_eq!((view.from_hold, view.routing.rule), (Some(hold), RoutingRule::FromHold));
        assert_eq!(view.shipments[0].location, "LDN");
        // The converted hold is a tombstone: committed, nothing else kept (the order
        // records the hold it came from).
        let converted = client.hold(hold).await.unwrap();
        assert_eq!(converted.state, HoldState::Resolved(Resolution::Committed));
        assert_eq!((converted.order_number, converted.lines.len()), (None, 0));
        let twice = PlaceOrder { hold: Some(hold), ..order_to_brighton("W-2", &[("A", 2)]) };
        assert_eq!(
            refused(&client, Command::PlaceOrder(twice)).await,
            ErrorCode::AlreadyResolved { how: Resolution::Committed }
        );

        // A routed hold: the engine picks Glasgow for Edinburgh and says so.
        let routed = Command::ReserveRouted {
            lines: items(&[("A", 2)]),
            destination: ship_to(EDINBURGH),
            ttl_ms: None,
        };
        let Reply::RoutedHoldPlaced { hold: routed_hold, lines, .. } = ok(&client, routed).await
        else {
            panic!()
        };
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].sku.as_str(), lines[0].location.as_str(), lines[0].quantity),
            ("A", "GLA", 2)
        );
        assert_eq!(cell(&client, "A", "GLA").await, (5, 2, 0));
        let view = client.hold(routed_hold).await.unwrap();
        assert_eq!((view.state, view.lines), (HoldState::Held, lines));
        let why = client.hold_routing(routed_hold).await.unwrap();
        assert_eq!(
            (why.rule, why.assessments[0].location.as_str()),
            (RoutingRule::OneLocation, "GLA")
        );
        assert_eq!(why.assessments[0].verdict, Verdict::Chosen);
        let second = place(
            &client,
            PlaceOrder { hold: Some(routed_hold), ..order("W-3", ship_to(EDINBURGH), &[("A", 2)]) },
        )
        .await;
        let view = order_view(&client, second.order).await;
        assert_eq!(
            view.routing.rule,
            RoutingRule::OneLocation,
            "the routed hold's reasons are kept"
        );
        assert_eq!(view.shipments[0].location, "GLA");
        assert_eq!(cell(&client, "A", "GLA").await, (5, 0, 2));

        let too_many = Command::ReserveRouted {
            lines: items(&[("A", 9)]),
            destination: ship_to(EDINBURGH),
            ttl_ms: None,
        };
        assert_eq!(
            refused(&client, too_many).await,
            ErrorCode::InsufficientStock { line: 0, available: 6 }
        );
    });
}

// ---------------------------------------------------------------------------------------
// 3–5. Shipments: to delivery, to pickup, and stopped by a fraud hold
// ---------------------------------------------------------------------------------------

#[test]
fn a_paid_order_walks_to_delivered_and_shipping_consumes_stock_where_it_ships() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 5), ("A", "GLA", 5)]).await;
        let placed = place(&client, order_to_brighton("W-1", &[("A", 2)])).await;
        let (id, shipment) = (placed.order, placed.shipments[0]);
        assert_eq!(placed.state, OrderState::Pending);

        assert_eq!(
            step_refused(&client, shipment, ShipmentStep::Release).await,
            transition("pending")
        );
        assert!(pick_list(&client, "LDN").await.is_empty());
        assert_eq!(
            pay(&client, id).await,
            Reply::OrderChanged { order: id, state: OrderState::Confirmed }
        );
        assert_eq!(order_view(&client, id).await.payment, PaymentState::Authorised);
        assert_eq!(
            step_refused(&client, shipment, ShipmentStep::Pack).await,
            transition("allocated")
        );
        assert_eq!(
            step_refused(&client, shipment, ship("DPD", "TRK-1")).await,
            transition("allocated")
        );

        assert_eq!(
            step(&client, shipment, ShipmentStep::Release).await,
            shipment_changed(shipment, ShipmentState::Released, OrderState::InProgress)
        );
        assert_eq!(pick_list(&client, "LDN").await, [shipment]);
        assert!(pick_list(&client, "GLA").await.is_empty());
        assert_eq!(
            step(&client, shipment, ShipmentStep::StartPicking).await,
            shipment_changed(shipment, ShipmentState::Picking, OrderState::InProgress)
        );
        assert_eq!(pick_list(&client, "LDN").await, [shipment]);
        assert_eq!(
            step(&client, shipment, ShipmentStep::Pack).await,
            shipment_changed(shipment, ShipmentState::Packed, OrderState::InProgress)
        );
        assert!(pick_list(&client, "LDN").await.is_empty(), "packed is off the pick list");
        assert_eq!(cell(&client, "A", "LDN").await, (5, 0, 2), "nothing consumed before it ships");

        assert_eq!(
            step(&client, shipment, ship("DPD", "TRK-1")).await,
            shipment_changed(shipment, ShipmentState::Shipped, OrderState::Shipped)
        );
        assert_eq!(cell(&client, "A", "LDN").await, (3, 0, 0));
        assert_eq!(cell(&client, "A", "GLA").await, (5, 0, 0));
        let view = shipment_view(&client, shipment).await;
        assert_eq!(
            (view.carrier.as_deref(), view.tracking.as_deref()),
            (Some("DPD"), Some("TRK-1"))
        );
        assert_eq!(view.state, ShipmentState::Shipped);
        assert_eq!(order_view(&client, id).await.state, OrderState::Shipped);
        assert_eq!(
            refused(&client, Command::CancelOrder { order: id, reason: "late".into() }).await,
            transition("shipped"),
            "nothing is left to cancel"
        );

        assert_eq!(
            step(&client, shipment, ShipmentStep::Deliver).await,
            shipment_changed(shipment, ShipmentState::Delivered, OrderState::Delivered)
        );
        let view = order_view(&client, id).await;
        assert_eq!((view.state, view.lines[0].shipped), (OrderState::Delivered, 2));
        assert_eq!(view.shipments[0].state, ShipmentState::Delivered);
        assert_eq!(
            step_refused(&client, shipment, ShipmentStep::Deliver).await,
            transition("delivered")
        );
        assert_eq!(cell(&client, "A", "LDN").await, (3, 0, 0), "delivery consumes nothing more");
        assert_eq!(
            step_refused(&client, 999_999, ShipmentStep::Release).await,
            ErrorCode::NotFound
        );
    });
}

#[test]
fn a_pickup_order_is_made_ready_and_collected_at_its_store_and_cannot_ship() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 5), ("A", "MAN", 5)]).await;
        let pickup = DeliveryRequest::Pickup { location: "MAN".into() };
        let placed = place(&client, order("W-1", pickup, &[("A", 2)])).await;
        let (id, shipment) = (placed.order, placed.shipments[0]);
        let view = order_view(&client, id).await;
        assert_eq!(view.routing.rule, RoutingRule::Pickup);
        assert_eq!(
            (view.shipments[0].location.as_str(), view.shipments[0].delivery),
            ("MAN", Delivery::Pickup)
        );
        assert_eq!(cell(&client, "A", "MAN").await, (5, 0, 2));

        pay(&client, id).await;
        walk(
            &client,
            shipment,
            &[ShipmentStep::Release, ShipmentStep::StartPicking, ShipmentStep::Pack],
        )
        .await;
        assert_eq!(
            step_refused(&client, shipment, ship("DPD", "TRK-1")).await,
            transition("packed")
        );
        assert_eq!(
            step_refused(&client, shipment, ShipmentStep::PickUp).await,
            transition("packed")
        );
        assert_eq!(
            step(&client, shipment, ShipmentStep::ReadyForPickup).await,
            shipment_changed(shipment, ShipmentState::ReadyForPickup, OrderState::InProgress)
        );
        assert_eq!(
            step_refused(&client, shipment, ShipmentStep::Deliver).await,
            transition("ready_for_pickup")
        );
        assert_eq!(cell(&client, "A", "MAN").await, (5, 0, 2));
        assert_eq!(
            step(&client, shipment, ShipmentStep::PickUp).await,
            shipment_changed(shipment, ShipmentState::PickedUp, OrderState::Delivered)
        );
        assert_eq!(cell(&client, "A", "MAN").await, (3, 0, 0));
        assert_eq!(cell(&client, "A", "LDN").await, (5, 0, 0));
        assert_eq!(order_view(&client, id).await.lines[0].shipped, 2);

        // A ship-to order cannot be made ready for pickup.
        let shipped = place(&client, order_to_brighton("W-2", &[("A", 1)])).await;
        pay(&client, shipped.order).await;
        walk(
            &client,
            shipped.shipments[0],
            &[ShipmentStep::Release, ShipmentStep::StartPicking, ShipmentStep::Pack],
        )
        .await;
        assert_eq!(
            step_refused(&client, shipped.shipments[0], ShipmentStep::ReadyForPickup).await,
            transition("packed")
        );
    });
}

#[test]
fn a_fraud_hold_blocks_release_until_it_is_lifted() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 5)]).await;
        let placed = place(&client, order_to_brighton("W-1", &[("A", 1)])).await;
        let (id, shipment) = (placed.order, placed.shipments[0]);
        pay(&client, id).await;
        let hold = Command::HoldOrder {
            order: id,
            reason: OrderHoldReason::Fraud,
            note: "velocity".into(),
        };
        assert_eq!(
            ok(&client, hold.clone()).await,
            Reply::OrderChanged { order: id, state: OrderState::OnHold }
        );
        let view = order_view(&client, id).await;
        assert_eq!((view.state, view.hold), (OrderState::OnHold, Some(OrderHoldReason::Fraud)));
        assert_eq!(refused(&client, hold).await, transition("on_hold"));
        assert_eq!(
            step_refused(&client, shipment, ShipmentStep::Release).await,
            transition("on_hold")
        );
        assert_eq!(shipment_view(&client, shipment).await.state, ShipmentState::Allocated);
        assert!(pick_list(&client, "LDN").await.is_empty());

        assert_eq!(
            ok(&client, Command::ReleaseOrderHold { order: id }).await,
            Reply::OrderChanged { order: id, state: OrderState::Confirmed }
        );
        assert_eq!(
            step(&client, shipment, ShipmentStep::Release).await,
            shipment_changed(shipment, ShipmentState::Released, OrderState::InProgress)
        );
        assert_eq!(pick_list(&client, "LDN").await, [shipment]);
        assert_eq!(
            refused(&client, Command::ReleaseOrderHold { order: id }).await,
            transition("in_progress"),
            "no hold to lift"
        );
    });
}

// ---------------------------------------------------------------------------------------
// 6–7. Cancellations and short picks
// ---------------------------------------------------------------------------------------

#[test]
fn cancelling_an_order_a_shipment_or_some_lines_frees_the_stock_and_cannot_happen_twice() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 5), ("B", "GLA", 5), ("C", "LDN", 2)]).await;

        // The whole order.
        let whole = place(&client, order_to_brighton("W-1", &[("A", 2), ("B", 1)])).await;
        assert_eq!(whole.shipments.len(), 2);
        assert_eq!(
            (cell(&client, "A", "LDN").await, cell(&client, "B", "GLA").await),
            ((5, 0, 2), (5, 0, 1))
        );
        let cancel = Command::CancelOrder { order: whole.order, reason: "customer".into() };
        assert_eq!(
            ok(&client, cancel.clone()).await,
            Reply::OrderChanged { order: whole.order, state: OrderState::Cancelled }
        );
        assert_eq!(
            (cell(&client, "A", "LDN").await, cell(&client, "B", "GLA").await),
            ((5, 0, 0), (5, 0, 0))
        );
        let view = order_view(&client, whole.order).await;
        assert!(view.shipments.iter().all(|s| s.state == ShipmentState::Cancelled), "{view:?}");
        assert_eq!(view.lines.iter().map(|l| l.cancelled).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(refused(&client, cancel).await, transition("cancelled"));
        let shipment = Command::CancelShipment { shipment: whole.shipments[0], reason: "x".into() };
        assert_eq!(refused(&client, shipment).await, transition("cancelled"));

        // One shipment of a split order.
        let split = place(&client, order_to_brighton("W-2", &[("A", 1), ("B", 1)])).await;
        let view = order_view(&client, split.order).await;
        let glasgow = shipment_at(&view, "GLA").shipment;
        let cancel = Command::CancelShipment { shipment: glasgow, reason: "carrier".into() };
        assert_eq!(
            ok(&client, cancel.clone()).await,
            shipment_changed(glasgow, ShipmentState::Cancelled, OrderState::Pending)
        );
        assert_eq!(
            (cell(&client, "A", "LDN").await, cell(&client, "B", "GLA").await),
            ((5, 0, 1), (5, 0, 0))
        );
        let view = order_view(&client, split.order).await;
        let b_line = view.lines.iter().find(|line| line.sku == "B").unwrap();
        assert_eq!(b_line.cancelled, 1);
        assert_eq!(shipment_at(&view, "LDN").state, ShipmentState::Allocated);
        assert_eq!(refused(&client, cancel).await, transition("cancelled"));

        // Some lines: backordered units go first, then units in shipments.
        let request = PlaceOrder { allow_backorder: true, ..order_to_brighton("W-3", &[("C", 3)]) };
        let partial = place(&client, request).await;
        assert_eq!(partial.backordered_units, 1);
        let cancel_lines = |quantity| Command::CancelOrderLines {
            order: partial.order,
            lines: items(&[("C", quantity)]),
            reason: "changed mind".into(),
        };
        assert_eq!(refused(&client, cancel_lines(4)).await, ErrorCode::InvalidArgument);
        assert_eq!(
            ok(&client, cancel_lines(2)).await,
            Reply::OrderChanged { order: partial.order, state: OrderState::Pending }
        );
        let view = order_view(&client, partial.order).await;
        assert_eq!((view.lines[0].backordered, view.lines[0].cancelled), (0, 2));
        assert_eq!(
            cell(&client, "C", "LDN").await,
            (2, 0, 1),
            "one of the two allocated was freed"
        );
        assert_eq!(
            ok(&client, cancel_lines(1)).await,
            Reply::OrderChanged { order: partial.order, state: OrderState::Cancelled }
        );
        let view = order_view(&client, partial.order).await;
        assert_eq!(view.shipments[0].state, ShipmentState::Cancelled);
        assert_eq!(cell(&client, "C", "LDN").await, (2, 0, 0));
        assert_eq!(refused(&client, cancel_lines(1)).await, ErrorCode::InvalidArgument);
        let cancel = Command::CancelOrder { order: partial.order, reason: "again".into() };
        assert_eq!(refused(&client, cancel).await, transition("cancelled"));
    });
}

#[test]
fn a_short_pick_writes_units_off_where_they_were_missing_and_reroutes_or_backorders_them() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 3), ("A", "BHM", 1)]).await;
        let placed = place(&client, order_to_brighton("W-1", &[("A", 3)])).await;
        let (id, shipment) = (placed.order, placed.shipments[0]);
        assert_eq!(order_view(&client, id).await.shipments[0].location, "LDN");
        pay(&client, id).await;
        let short = Command::ShortPick { shipment, missing: items(&[("A", 2)]) };
        assert_eq!(refused(&client, short.clone()).await, transition("allocated"));
        step(&client, shipment, ShipmentStep::Release).await;
        let too_many = Command::ShortPick { shipment, missing: items(&[("A", 4)]) };
        assert_eq!(refused(&client, too_many).await, ErrorCode::InvalidArgument);

        let Reply::ShortPicked { shipment: short_one, state, rerouted, backordered_units } =
            ok(&client, short).await
        else {
            panic!()
        };
        assert_eq!((short_one, state, backordered_units), (shipment, ShipmentState::Released, 1));
        assert_eq!(rerouted.len(), 1);
        assert!(!placed.shipments.contains(&rerouted[0]), "a new shipment");
        assert_eq!(
            cell(&client, "A", "LDN").await,
            (1, 0, 1),
            "two written off, one still to pick"
        );
        assert_eq!(cell(&client, "A", "BHM").await, (1, 0, 1), "one rerouted to Birmingham");

        let view = order_view(&client, id).await;
        assert_eq!((view.state, view.lines[0].backordered), (OrderState::InProgress, 1));
        let birmingham = shipment_at(&view, "BHM");
        assert_eq!(
            (birmingham.shipment, birmingham.state),
            (rerouted[0], ShipmentState::Allocated)
        );
        assert_eq!(birmingham.lines, items(&[("A", 1)]));
        assert_eq!(shipment_at(&view, "LDN").lines, items(&[("A", 1)]));

        // The rest ships; the backordered unit is still owed.
        walk(
            &client,
            shipment,
            &[ShipmentStep::StartPicking, ShipmentStep::Pack, ship("DPD", "T-1")],
        )
        .await;
        assert_eq!(cell(&client, "A", "LDN").await, (0, 0, 0));
        assert_eq!(order_view(&client, id).await.state, OrderState::PartiallyShipped);
    });
}

// ---------------------------------------------------------------------------------------
// 8. Returns
// ---------------------------------------------------------------------------------------

#[test]
fn a_return_is_received_resellable_and_damaged_at_a_location_then_refunded_or_exchanged() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 5), ("B", "LDN", 5)]).await;
        let placed = place(&client, order_to_brighton("W-1", &[("A", 3)])).await;
        let id = placed.order;
        pay(&client, id).await;
        let request = |quantity| Command::RequestReturn {
            order: id,
            lines: items(&[("A", quantity)]),
            reason: "size".into(),
        };
        assert_eq!(
            refused(&client, request(1)).await,
            ErrorCode::InvalidArgument,
            "not delivered yet"
        );
        walk(&client, placed.shipments[0], &to_delivered()).await;
        assert_eq!(cell(&client, "A", "LDN").await, (2, 0, 0));
        assert_eq!(
            refused(&client, request(4)).await,
            ErrorCode::InvalidArgument,
            "more than delivered"
        );

        let Reply::ReturnChanged { rma, state } = ok(&client, request(2)).await else { panic!() };
        assert_eq!(state, ReturnState::Requested);
        assert_eq!(
            refused(&client, request(2)).await,
            ErrorCode::InvalidArgument,
            "one left to return"
        );
        let receive = Command::ReceiveReturn {
            rma,
            location: "MAN".into(),
            lines: vec![
                ReturnReceipt {
                    sku: "A".into(),
                    quantity: 1,
                    condition: ReturnCondition::Resellable,
                },
                ReturnReceipt {
                    sku: "A".into(),
                    quantity: 1,
                    condition: ReturnCondition::Damaged { reason: "torn".into() },
                },
            ],
        };
        assert_eq!(refused(&client, receive.clone()).await, transition("requested"));
        assert_eq!(
            ok(&client, Command::AuthoriseReturn { rma }).await,
            Reply::ReturnChanged { rma, state: ReturnState::Authorised }
        );
        assert_eq!(
            ok(&client, receive).await,
            Reply::ReturnChanged { rma, state: ReturnState::Received }
        );
        assert_eq!(
            cell(&client, "A", "MAN").await,
            (1, 0, 0),
            "the resellable unit is back on hand there"
        );
        assert_eq!(cell(&client, "A", "LDN").await, (2, 0, 0), "the damaged one is not");
        let view = order_view(&client, id).await;
        assert_eq!(
            (view.state, view.lines[0].returned, view.returns.clone()),
            (OrderState::PartiallyReturned, 2, vec![rma])
        );

        let refund = |amount_minor| Command::RefundReturn { rma, amount_minor };
        assert_eq!(refused(&client, refund(2 * PRICE + 1)).await, ErrorCode::InvalidArgument);
        assert_eq!(
            ok(&client, refund(2 * PRICE)).await,
            Reply::ReturnChanged { rma, state: ReturnState::Refunded }
        );
        let record = return_view(&client, rma).await;
        assert_eq!(
            (record.order, record.state, record.refunded_minor),
            (id, ReturnState::Refunded, 2 * PRICE)
        );
        assert_eq!(
            (record.lines[0].requested, record.lines[0].resellable, record.lines[0].damaged),
            (2, 1, 1)
        );
        assert_eq!(
            (record.received_at.as_deref(), record.damage_reasons),
            (Some("MAN"), vec!["torn".to_owned()])
        );
        assert_eq!(
            order_view(&client, id).await.payment,
            PaymentState::Voided,
            "the payment was only authorised: refunding the return voids it"
        );
        assert_eq!(refused(&client, refund(1)).await, transition("refunded"));

        // An exchange: the returned unit comes back resellable, a new linked order goes out.
        let placed = place(&client, order_to_brighton("W-2", &[("A", 1)])).await;
        pay(&client, placed.order).await;
        walk(&client, placed.shipments[0], &to_delivered()).await;
        assert_eq!(cell(&client, "A", "LDN").await, (1, 0, 0));
        let request = Command::RequestReturn {
            order: placed.order,
            lines: items(&[("A", 1)]),
            reason: "colour".into(),
        };
        let Reply::ReturnChanged { rma, .. } = ok(&client, request).await else { panic!() };
        ok(&client, Command::AuthoriseReturn { rma }).await;
        let receipt = vec![ReturnReceipt {
            sku: "A".into(),
            quantity: 1,
            condition: ReturnCondition::Resellable,
        }];
        ok(&client, Command::ReceiveReturn { rma, location: "LDN".into(), lines: receipt }).await;
        assert_eq!(cell(&client, "A", "LDN").await, (2, 0, 0));
        let exchange =
            Command::ExchangeReturn { rma, order: order_to_brighton("W-2-X", &[("B", 1)]) };
        let Reply::ReturnExchanged { rma: exchanged, order: new_order } =
            ok(&client, exchange).await
        else {
            panic!()
        };
        assert_eq!(exchanged, rma);
        let new_view = order_view(&client, new_order).await;
        assert_eq!(
            (new_view.exchange_for, new_view.external_number.as_str()),
            (Some(rma), "W-2-X")
        );
        assert_eq!(new_view.state, OrderState::Pending);
        assert_eq!(order_view(&client, placed.order).await.state, OrderState::Returned);
        let record = return_view(&client, rma).await;
        assert_eq!(
            (record.state, record.exchange_order),
            (ReturnState::Exchanged, Some(new_order))
        );
        assert_eq!(cell(&client, "B", "LDN").await, (5, 0, 1));
    });
}

// ---------------------------------------------------------------------------------------
// 9. Queries and KPIs
// ---------------------------------------------------------------------------------------

#[test]
fn a_customers_history_pages_newest_first_and_orders_by_state_filter_by_location() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 50), ("A", "GLA", 50)]).await;
        let mut mine = Vec::new();
        let mut in_glasgow = Vec::new();
        for n in 0..5 {
            let to = if n % 2 == 0 { BRIGHTON } else { EDINBURGH };
            let placed = place(&client, order(&format!("W-{n}"), ship_to(to), &[("A", 1)])).await;
            if n % 2 == 1 {
                in_glasgow.push(placed.order);
            }
            mine.push(placed.order);
        }
        let theirs = place(
            &client,
            PlaceOrder { customer: "C-2".into(), ..order_to_brighton("W-9", &[("A", 1)]) },
        )
        .await;
        mine.reverse();

        let history = |before| Query::CustomerOrders { customer: "C-1".into(), before, limit: 2 };
        let first = page(&client, history(None)).await;
        assert_eq!(ids(&first), mine[..2]);
        assert_eq!(first.next, Some(mine[1]));
        assert!(
            first
                .orders
                .iter()
                .all(|o| o.customer == "C-1" && o.units == 1 && o.total_minor == PRICE)
        );
        let second = page(&client, history(first.next)).await;
        assert_eq!(ids(&second), mine[2..4]);
        let last = page(&client, history(second.next)).await;
        assert_eq!((ids(&last), last.next), (mine[4..].to_vec(), None));
        let theirs_page = page(
            &client,
            Query::CustomerOrders { customer: "C-2".into(), before: None, limit: 10 },
        )
        .await;
        assert_eq!(ids(&theirs_page), [theirs.order]);
        let nobody = page(
            &client,
            Query::CustomerOrders { customer: "C-404".into(), before: None, limit: 10 },
        )
        .await;
        assert_eq!((nobody.orders.len(), nobody.next), (0, None));

        let by_state = |state, location: Option<&str>, after| Query::OrdersByState {
            state,
            location: location.map(str::to_owned),
            after,
            limit: 10,
        };
        let glasgow = page(&client, by_state(OrderState::Pending, Some("GLA"), None)).await;
        assert_eq!(ids(&glasgow), in_glasgow);
        let london = page(&client, by_state(OrderState::Pending, Some("LDN"), None)).await;
        assert_eq!(london.orders.len(), 4);
        let everywhere = page(&client, by_state(OrderState::Pending, None, None)).await;
        assert_eq!(everywhere.orders.len(), 6);
        assert!(ids(&everywhere).windows(2).all(|pair| pair[0] < pair[1]), "oldest first");
        let after =
            page(&client, by_state(OrderState::Pending, Some("GLA"), Some(in_glasgow[0]))).await;
        assert_eq!(ids(&after), in_glasgow[1..]);

        // Paying moves an order out of pending and into confirmed.
        pay(&client, in_glasgow[0]).await;
        let glasgow = page(&client, by_state(OrderState::Pending, Some("GLA"), None)).await;
        assert_eq!(ids(&glasgow), in_glasgow[1..]);
        let confirmed = page(&client, by_state(OrderState::Confirmed, None, None)).await;
        assert_eq!(ids(&confirmed), [in_glasgow[0]]);
        let unknown = by_state(OrderState::Pending, Some("NOWHERE"), None);
        assert_eq!(ask_refused(&client, unknown).await, ErrorCode::NotFound);
    });
}

#[test]
fn kpis_count_orders_by_channel_and_state_and_report_every_rate_and_open_workload() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let client = connect(&allotd).await;
        world(&client, &[("A", "LDN", 10), ("B", "GLA", 10), ("C", "LDN", 1)]).await;
        let before = kpis(&client).await;
        assert_eq!(
            (before.orders_placed, before.split_rate_bp, before.fill_rate_bp),
            (0, None, None)
        );
        assert_eq!((before.placement_to_ship_p50_ms, before.return_rate_bp), (None, None));
        assert!(before.orders_by_channel_state.is_empty() && before.open_workload.is_empty());

        // Web: two of A from London, shipped, delivered and one returned.
        let shipped = place(&client, order_to_brighton("W-1", &[("A", 2)])).await;
        pay(&client, shipped.order).await;
        walk(&client, shipped.shipments[0], &to_delivered()).await;
        let request = Command::RequestReturn {
            order: shipped.order,
            lines: items(&[("A", 1)]),
            reason: "size".into(),
        };
        let Reply::ReturnChanged { rma, .. } = ok(&client, request).await else { panic!() };
        ok(&client, Command::AuthoriseReturn { rma }).await;
        let receipt = vec![ReturnReceipt {
            sku: "A".into(),
            quantity: 1,
            condition: ReturnCondition::Resellable,
        }];
        ok(&client, Command::ReceiveReturn { rma, location: "LDN".into(), lines: receipt }).await;
        // App: split over London and Glasgow.
        let split =
            PlaceOrder { channel: Channel::App, ..order_to_brighton("A-1", &[("A", 1), ("B", 1)]) };
        assert_eq!(place(&client, split).await.shipments.len(), 2);
        // Web: two of C where one exists, one backordered.
        let short = PlaceOrder { allow_backorder: true, ..order_to_brighton("W-2", &[("C", 2)]) };
        assert_eq!(place(&client, short).await.backordered_units, 1);
        // One hold placed, one refused.
        let line = |sku: &str, location: &str, quantity| LineRequest {
            sku: sku.into(),
            location: location.into(),
            quantity,
        };
        ok(&client, Command::Reserve { lines: vec![line("A", "LDN", 1)], ttl_ms: None }).await;
        let too_many = Command::Reserve { lines: vec![line("B", "GLA", 99)], ttl_ms: None };
        assert!(matches!(refused(&client, too_many).await, ErrorCode::InsufficientStock { .. }));

        let kpis = kpis(&client).await;
        let count = |channel, state, orders| OrderCount { channel, state, orders };
        assert_eq!(
            kpis.orders_by_channel_state,
            [
                count(Channel::Web, OrderState::Backordered, 1),
                count(Channel::Web, OrderState::PartiallyReturned, 1),
                count(Channel::App, OrderState::Pending, 1),
            ]
        );
        assert_eq!(
            (kpis.orders_placed, kpis.orders_split, kpis.split_rate_bp),
            (3, 1, Some(3_333))
        );
        assert_eq!(
            (kpis.units_ordered, kpis.units_filled_at_placement, kpis.fill_rate_bp),
            (6, 5, Some(8_333))
        );
        assert!(kpis.placement_to_ship_p50_ms.is_some() && kpis.placement_to_ship_p95_ms.is_some());
        assert!(kpis.placement_to_ship_p50_ms <= kpis.placement_to_ship_p95_ms);
        assert_eq!(
            (kpis.units_shipped, kpis.units_returned, kpis.return_rate_bp),
            (2, 1, Some(5_000))
        );
        assert_eq!(
            (kpis.holds_placed, kpis.holds_refused_since_start, kpis.hold_success_rate_bp),
            (1, 1, Some(5_000))
        );
        let workload = |location: &str, open_shipments, open_units| LocationWorkload {
            location: location.into(),
            open_shipments,
            open_units,
            daily_capacity: 100,
        };
        assert_eq!(kpis.open_workload, [workload("GLA", 1, 1), workload("LDN", 2, 2)]);
    });
}

// ---------------------------------------------------------------------------------------
// 10. Roles
// ---------------------------------------------------------------------------------------

const ADMIN_TOKEN: &str = "orders-e2e-admin-token";
const CHECKOUT_TOKEN: &str = "orders-e2e-checkout-token";
const FULFILMENT_TOKEN: &str = "orders-e2e-fulfilment-token";

#[test]
fn checkout_places_orders_but_cannot_move_shipments_and_fulfilment_the_reverse() {
    let dir = tempfile::Builder::new().prefix("allot-orders-roles-").tempdir().expect("tempdir");
    let config = dir.path().join("allotd.toml");
    let mut text = String::new();
    for (name, role, token) in [
        ("ops", "admin", ADMIN_TOKEN),
        ("shop", "checkout", CHECKOUT_TOKEN),
        ("warehouse", "fulfilment", FULFILMENT_TOKEN),
    ] {
        text += &format!("[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken = \"{token}\"\n");
    }
    std::fs::write(&config, text).expect("write the configuration");
    let data_dir = dir.path().join("data");
    let allotd = Allotd::start_in(&data_dir, &["--config", config.to_str().expect("utf-8 path")]);
    let as_role = |token: &str| {
        let trust = Trust::PinnedCert(allotd.cert_path());
        let mut config = ClientConfig::new(allotd.addr().to_string(), trust, token);
        config.client_name = "orders-e2e-roles".into();
        Client::connect(config)
    };
    runtime().block_on(async {
        let admin = as_role(ADMIN_TOKEN).await.expect("admin connects");
        let checkout = as_role(CHECKOUT_TOKEN).await.expect("checkout connects");
        let fulfilment = as_role(FULFILMENT_TOKEN).await.expect("fulfilment connects");
        assert_eq!((checkout.role(), fulfilment.role()), (Role::Checkout, Role::Fulfilment));
        world(&admin, &[("A", "LDN", 5)]).await;

        let placed = place(&checkout, order_to_brighton("W-1", &[("A", 2)])).await;
        let (id, shipment) = (placed.order, placed.shipments[0]);
        pay(&checkout, id).await;
        assert_eq!(
            step_refused(&checkout, shipment, ShipmentStep::Release).await,
            ErrorCode::Unauthorized
        );
        let cancel = Command::CancelOrder { order: id, reason: "nope".into() };
        assert_eq!(refused(&checkout, cancel.clone()).await, ErrorCode::Unauthorized);
        assert_eq!(
            refused(&checkout, Command::ShortPick { shipment, missing: items(&[("A", 1)]) }).await,
            ErrorCode::Unauthorized
        );
        assert_eq!(shipment_view(&checkout, shipment).await.state, ShipmentState::Allocated);

        let refused_order = Command::PlaceOrder(order_to_brighton("W-2", &[("A", 1)]));
        assert_eq!(refused(&fulfilment, refused_order).await, ErrorCode::Unauthorized);
        let by_number =
            Query::OrderByNumber { channel: Channel::Web, external_number: "W-2".into() };
        assert_eq!(ask_refused(&admin, by_number).await, ErrorCode::NotFound, "nothing was placed");
        let payment = Command::RecordPayment {
            order: id,
            event: PaymentEvent::Captured,
            amount_minor: 2 * PRICE,
            reference: "PSP".into(),
        };
        assert_eq!(refused(&fulfilment, payment).await, ErrorCode::Unauthorized);
        assert_eq!(refused(&fulfilment, cancel).await, ErrorCode::Unauthorized);
        assert_eq!(
            order_view(&fulfilment, id).await.payment,
            PaymentState::Authorised,
            "queries are open"
        );

        walk(
            &fulfilment,
            shipment,
            &[
                ShipmentStep::Release,
                ShipmentStep::StartPicking,
                ShipmentStep::Pack,
                ship("DPD", "T"),
            ],
        )
        .await;
        assert_eq!(order_view(&checkout, id).await.state, OrderState::Shipped);
        assert_eq!(cell(&admin, "A", "LDN").await, (3, 0, 0));
    });
}

// ---------------------------------------------------------------------------------------
// 11. Durability
// ---------------------------------------------------------------------------------------

/// Everything a client was told, read back: every order's view, every cell, the KPIs.
#[derive(Debug, PartialEq, Eq)]
struct Books {
    orders: BTreeMap<OrderId, OrderView>,
    cells: Vec<CellView>,
    kpis: KpiView,
}

async fn read_books(
    client: &Client,
    orders: impl IntoIterator<Item = OrderId>,
    skus: &[&str],
) -> Books {
    let mut views = BTreeMap::new();
    for id in orders {
        views.insert(id, order_view(client, id).await);
    }
    let mut cells = Vec::new();
    for sku in skus {
        cells.extend(client.sku_stock(*sku).await.unwrap());
    }
    Books { orders: views, cells, kpis: kpis(client).await }
}

#[test]
fn every_acknowledged_order_shipment_and_cell_survives_kill_9_and_a_clean_restart() {
    const ORDERS: usize = 60;
    const SKUS: [&str; 3] = ["A", "B", "C"];
    let mut allotd = Allotd::start();
    let rt = runtime();
    // What each acknowledgement said: the order's state, and each shipment's.
    let mut acked_orders: BTreeMap<OrderId, OrderState> = BTreeMap::new();
    let mut acked_shipments: BTreeMap<ShipmentId, ShipmentState> = BTreeMap::new();
    let (books_before, retried_placement) = rt.block_on(async {
        let client = connect(&allotd).await;
        world(
            &client,
            &[("A", "LDN", 500), ("A", "GLA", 500), ("B", "MAN", 500), ("C", "BHM", 20)],
        )
        .await;
        // Placed concurrently, every one acknowledged before the crash.
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..ORDERS {
            let client = client.clone();
            let to = if n % 2 == 0 { BRIGHTON } else { EDINBURGH };
            let lines: &[(&str, u32)] =
                if n % 3 == 0 { &[("A", 2), ("B", 1)] } else { &[("A", 1)] };
            let mut request = order(&format!("D-{n}"), ship_to(to), lines);
            request.customer = format!("C-{}", n % 7);
            let key = format!("place-D-{n}");
            tasks.spawn(async move {
                let reply = client
                    .command_with_key(key.clone(), Command::PlaceOrder(request.clone()))
                    .await;
                (key, request, placed(reply.expect("placing an order")))
            });
        }
        let mut placements = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (key, request, placed) = joined.expect("a placing task");
            acked_orders.insert(placed.order, placed.state);
            for &shipment in &placed.shipments {
                acked_shipments.insert(shipment, ShipmentState::Allocated);
            }
            placements.push((key, request, placed));
        }
        placements.sort_by_key(|(_, _, placed)| placed.order);
        // A backordered one.
        let request =
            PlaceOrder { allow_backorder: true, ..order_to_brighton("D-short", &[("C", 25)]) };
        let backordered = place(&client, request).await;
        assert_eq!(backordered.backordered_units, 5);
        acked_orders.insert(backordered.order, backordered.state);
        // Walk some to shipped, some further, cancel some.
        for (n, (_, _, placed)) in placements.iter().enumerate() {
            let id = placed.order;
            match n % 5 {
                0 => {}
                1 => {
                    let Reply::OrderChanged { state, .. } = pay(&client, id).await else {
                        panic!()
                    };
                    acked_orders.insert(id, state);
                }
                2 | 3 => {
                    pay(&client, id).await;
                    let all = to_delivered();
                    // Shipped and left there, or delivered too.
                    let steps = if n % 5 == 2 { &all[..4] } else { &all[..] };
                    for &shipment in &placed.shipments {
                        for next in steps {
                            let reply = step(&client, shipment, next.clone()).await;
                            let Reply::ShipmentChanged { state, order_state, .. } = reply else {
                                panic!()
                            };
                            acked_shipments.insert(shipment, state);
                            acked_orders.insert(id, order_state);
                        }
                    }
                }
                _ => {
                    let cancel = Command::CancelOrder { order: id, reason: "customer".into() };
                    let Reply::OrderChanged { state, .. } = ok(&client, cancel).await else {
                        panic!()
                    };
                    acked_orders.insert(id, state);
                    for &shipment in &placed.shipments {
                        acked_shipments.insert(shipment, ShipmentState::Cancelled);
                    }
                }
            }
        }
        let books = read_books(&client, acked_orders.keys().copied(), &SKUS).await;
        // One that has shipped since: a retry must still get the original answer.
        let retried = placements[2].clone();
        assert_eq!(acked_orders[&retried.2.order], OrderState::Shipped);
        (books, retried)
    });
    allotd.kill9();
    rt.shutdown_background();
    let newest_snapshot = |allotd: &Allotd| snapshots(allotd.data_dir()).last().map(|s| s.0);
    let snapshot_before = newest_snapshot(&allotd);
    allotd.restart();

    let check = |allotd: &Allotd, when: &str| {
        runtime().block_on(async {
            let client = connect(allotd).await;
            let books = read_books(&client, acked_orders.keys().copied(), &SKUS).await;
            for (id, state) in &acked_orders {
                assert_eq!(books.orders[id].state, *state, "order {id} {when}");
            }
            let shipments: BTreeMap<ShipmentId, ShipmentState> = (books.orders.values())
                .flat_map(|view| view.shipments.iter().map(|s| (s.shipment, s.state)))
                .collect();
            for (shipment, state) in &acked_shipments {
                assert_eq!(shipments.get(shipment), Some(state), "shipment {shipment} {when}");
            }
            assert_eq!(books, books_before, "{when}");
            // Shipping took exactly the units acknowledged as shipped out of on_hand, at the
            // location each shipment left from.
            let mut gone_in_all = 0;
            for location in ["LDN", "GLA"] {
                let gone: u32 = (books.orders.values())
                    .flat_map(|view| view.shipments.iter())
                    .filter(|s| {
                        s.location == location
                            && matches!(s.state, ShipmentState::Shipped | ShipmentState::Delivered)
                    })
                    .flat_map(|s| s.lines.iter().filter(|l| l.sku == "A").map(|l| l.quantity))
                    .sum();
                assert_eq!(cell(&client, "A", location).await.0, 500 - gone, "{location} {when}");
                gone_in_all += gone;
            }
            assert!(gone_in_all > 0);
            // A placement retried under its idempotency key is not placed again: it answers
            // the same order as it is now (shipped since, perhaps), exactly as the same
            // number under a new key does.
            let (key, request, placed) = &retried_placement;
            let retry =
                client.command_with_key(key.clone(), Command::PlaceOrder(request.clone())).await;
            let retry = self::placed(retry.expect("a retried placement"));
            let again = place(&client, request.clone()).await;
            assert_eq!(
                (again.order, again.shipments.clone()),
                (placed.order, placed.shipments.clone()),
                "{when}"
            );
            assert_eq!(
                (retry.order, retry.state, retry.shipments, retry.backordered_units),
                (again.order, again.state, again.shipments.clone(), again.backordered_units),
                "{when}"
            );
            assert_eq!(
                read_books(&client, acked_orders.keys().copied(), &SKUS).await,
                books_before,
                "{when}"
            );
        });
    };
    check(&allotd, "after kill -9");

    // A clean stop writes a snapshot; starting from it gives the same books.
    let status = allotd.terminate();
    assert!(status.success(), "allotd exited with {status}");
    let snapshot_after = newest_snapshot(&allotd);
    assert!(snapshot_after > snapshot_before, "a final snapshot: {snapshot_after:?}");
    allotd.restart();
    check(&allotd, "after a snapshot and a clean restart");

    // And the engine goes on from there: new ids follow the old ones.
    runtime().block_on(async {
        let client = connect(&allotd).await;
        let newest = *acked_orders.keys().last().unwrap();
        let next = place(&client, order_to_brighton("D-after", &[("A", 1)])).await;
        assert_eq!(next.order, newest + 1);
        let newest_shipment = *acked_shipments.keys().last().unwrap();
        assert!(next.shipments[0] > newest_shipment);
    });
}

// ---------------------------------------------------------------------------------------
// 12. Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn bad_order_input_gets_a_typed_error_and_leaves_other_clients_unaffected() {
    let allotd = Allotd::start();
    runtime().block_on(async {
        let setup = connect(&allotd).await;
        world(&setup, &[("A", "LDN", 100)]).await;
        let offender = connect(&allotd).await;
        let bystander = connect(&allotd).await;
        let mine = place(&bystander, order_to_brighton("OK-1", &[("A", 2)])).await;
        let before = (order_view(&bystander, mine.order).await, cell(&bystander, "A", "LDN").await);

        let with = |edit: &dyn Fn(&mut PlaceOrder)| {
            let mut request = order_to_brighton("BAD-1", &[("A", 1)]);
            edit(&mut request);
            Command::PlaceOrder(request)
        };
        let bad: Vec<(&str, Command, ErrorCode)> = vec![
            ("zero quantity", with(&|o| o.lines[0].quantity = 0), ErrorCode::InvalidArgument),
            (
                "negative price",
                with(&|o| o.lines[0].unit_price_minor = -1),
                ErrorCode::InvalidArgument,
            ),
            ("unknown sku", with(&|o| o.lines[0].sku = "NO-SUCH-SKU".into()), ErrorCode::NotFound),
            (
                "65 lines",
                with(&|o| {
                    o.lines = (0..65)
                        .map(|n| OrderLine {
                            sku: format!("S-{n}"),
                            quantity: 1,
                            unit_price_minor: 1,
                        })
                        .collect()
                }),
                ErrorCode::InvalidArgument,
            ),
            ("no lines", with(&|o| o.lines.clear()), ErrorCode::InvalidArgument),
            (
                "a sku on two lines",
                with(&|o| o.lines.push(o.lines[0].clone())),
                ErrorCode::InvalidArgument,
            ),
            ("bad currency", with(&|o| o.currency = "gbp".into()), ErrorCode::InvalidArgument),
            ("empty customer", with(&|o| o.customer.clear()), ErrorCode::InvalidArgument),
            (
                "unknown pickup store",
                with(&|o| o.delivery = DeliveryRequest::Pickup { location: "NOWHERE".into() }),
                ErrorCode::NotFound,
            ),
            ("unknown hold", with(&|o| o.hold = Some(999_999)), ErrorCode::NotFound),
            (
                "negative payment",
                Command::RecordPayment {
                    order: mine.order,
                    event: PaymentEvent::Authorised,
                    amount_minor: -5,
                    reference: "PSP".into(),
                },
                ErrorCode::InvalidArgument,
            ),
            (
                "unknown order",
                Command::RecordPayment {
                    order: 999_999,
                    event: PaymentEvent::Authorised,
                    amount_minor: 5,
                    reference: "PSP".into(),
                },
                ErrorCode::NotFound,
            ),
            (
                "empty carrier",
                Command::AdvanceShipment { shipment: mine.shipments[0], step: ship("", "T") },
                ErrorCode::InvalidArgument,
            ),
            (
                "zero cancelled",
                Command::CancelOrderLines {
                    order: mine.order,
                    lines: items(&[("A", 0)]),
                    reason: "r".into(),
                },
                ErrorCode::InvalidArgument,
            ),
            (
                "a return of nothing delivered",
                Command::RequestReturn {
                    order: mine.order,
                    lines: items(&[("A", 1)]),
                    reason: "r".into(),
                },
                ErrorCode::InvalidArgument,
            ),
        ];
        for (what, command, code) in bad {
            assert_eq!(refused(&offender, command).await, code, "{what}");
        }
        let bad_queries = [
            Query::CustomerOrders { customer: "C-1".into(), before: None, limit: 0 },
            Query::OrdersByState {
                state: OrderState::Pending,
                location: None,
                after: None,
                limit: 0,
            },
            Query::PickList { location: "LDN".into(), after: None, limit: 0 },
            Query::CustomerOrders { customer: "C-1".into(), before: None, limit: 1_001 },
        ];
        for query in bad_queries {
            assert_eq!(ask_refused(&offender, query).await, ErrorCode::InvalidArgument);
        }
        assert_eq!(
            ask_refused(&offender, Query::Order { order: 999_999 }).await,
            ErrorCode::NotFound
        );

        // Nothing was placed or changed; the bystander carries on, and so does the offender.
        let missing =
            Query::OrderByNumber { channel: Channel::Web, external_number: "BAD-1".into() };
        assert_eq!(ask_refused(&bystander, missing).await, ErrorCode::NotFound);
        assert_eq!(
            (order_view(&bystander, mine.order).await, cell(&bystander, "A", "LDN").await),
            before
        );
        assert_eq!(kpis(&bystander).await.orders_placed, 1);
        assert_eq!(
            pay(&bystander, mine.order).await,
            Reply::OrderChanged { order: mine.order, state: OrderState::Confirmed }
        );
        walk(&bystander, mine.shipments[0], &to_delivered()).await;
        assert_eq!(order_view(&bystander, mine.order).await.state, OrderState::Delivered);
        let theirs = place(&offender, order_to_brighton("OK-2", &[("A", 1)])).await;
        assert_eq!(theirs.order, mine.order + 1);
        assert_eq!(cell(&bystander, "A", "LDN").await, (98, 0, 1));
    });
}
