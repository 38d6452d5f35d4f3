//! DESIGN §6 `lifecycle` as a flow: every order is placed, paid for, read once to learn
//! its shipments, and each shipment is released, picked, packed, shipped and delivered in
//! turn; 2 % are cancelled right after placement instead, and 8 % of delivered orders are
//! returned, one RMA per shipment, received as resellable at the location the shipment
//! left from (so returned units go back to the cell they came out of) and refunded.
//!
//! The steps of one order go one at a time; a load slot keeps as many orders going as it
//! sends requests per frame. When an answer is lost (a timeout or a dropped connection
//! after the client's retries) or a step is refused, the flow reads the order (or the
//! return) to learn where it stands and goes on from there; a placement whose answer was
//! lost is sent again, which is safe because a repeated external number answers the order
//! already placed. An order that keeps failing is given up on: its cells get a margin in
//! the ledger, and if the server refused it (rather than going unheard) the audit fails.
//!
//! The ledger books what the answers say happened to stock: a shipment shipped takes its
//! units off `on_hand` at its location (its allocation, made at placement, goes with it,
//! so `allocated` nets to nothing), a return received puts them back. A cancelled order
//! leaves every counter as it found it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use allot_client::ClientError;
use allot_protocol::order::{
    Address, Channel, DeliveryRequest, ItemQuantity, OrderId, OrderLine, OrderState, OrderView,
    PaymentEvent, PaymentState, PlaceOrder, ReturnCondition, ReturnId, ReturnReceipt, ReturnState,
    ReturnView, ShipmentId, ShipmentState, ShipmentStep, ShipmentView,
};
use allot_protocol::{Command, ErrorCode, Query, Reply, RequestBody};

use super::args::Settings;
use super::ledger::Ledger;
use super::workload::{Answer, Flow, Kind, Note, Outgoing, command};
use crate::{Catalogue, CellPick, Rng, UNITS_PER_LINE};

/// DESIGN §6 `lifecycle`: the share of orders cancelled right after placement, and the
/// share of delivered orders returned.
pub const LIFECYCLE_CANCEL_SHARE: f64 = 0.02;
pub const LIFECYCLE_RETURN_SHARE: f64 = 0.08;
/// Lines on an order: 1 to 3 distinct SKUs, uniformly, each of [`UNITS_PER_LINE`].
pub const ORDER_LINES_MAX: usize = 3;
/// Lost answers and refusals one order may meet before the flow gives up on it.
pub const ORDER_PROBLEMS_MAX: u32 = 4;
/// `Overloaded` answers (nothing applied) one order's steps may get before the flow
/// gives up on it.
pub const ORDER_OVERLOADED_MAX: u32 = 1_000;
/// Distinct customers orders are spread over.
pub const CUSTOMERS: u64 = 1_000_000;
/// Ship-to points are drawn in the box the catalogue's locations are in (the contiguous
/// United States), in microdegrees.
pub const SHIP_TO_LATITUDE_E6: (i64, i64) = (25_000_000, 49_000_000);
pub const SHIP_TO_LONGITUDE_E6: (i64, i64) = (-124_000_000, -67_000_000);
pub const CURRENCY: &str = "USD";
pub const COUNTRY: &str = "US";
/// Carriers shipments go with, by shipment id.
pub const CARRIERS: [&str; 3] = ["UPS", "FedEx", "USPS"];
/// Channels orders come from, drawn uniformly.
pub const CHANNELS: [Channel; 3] = [Channel::Web, Channel::App, Channel::Marketplace];
pub const CANCEL_REASON: &str = "customer changed their mind";
pub const RETURN_REASON: &str = "does not fit";

/// The price of one unit of SKU `sku`, in minor units: 4.99 to 104.49.
pub fn unit_price_minor(sku: u32) -> i64 {
    499 + i64::from(sku % 200) * 50
}

/// A step of one order, carried in its request's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Place,
    Pay,
    Cancel,
    /// Read the order: to learn its shipments, or where it stands after a lost answer or
    /// a refusal.
    Read,
    /// The next fulfilment step of the order's shipment number `ship`.
    Advance {
        ship: usize,
    },
    Return {
        ship: usize,
        step: ReturnStep,
    },
    /// Read the return of shipment `ship`, after a lost answer or a refusal.
    ReadReturn {
        ship: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnStep {
    Request,
    Authorise,
    Receive,
    Refund,
}

/// What a drawn order is meant to come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Return,
    Cancel,
}

#[derive(Debug, Clone)]
struct Shipment {
    id: ShipmentId,
    location: u32,
    /// `(sku, units)`.
    lines: Vec<(u32, u32)>,
    state: ShipmentState,
    /// Its units are booked off `on_hand`.
    shipped: bool,
    /// A return was asked for (its answer may have been lost).
    return_requested: bool,
    rma: Option<ReturnId>,
    /// `None` with an `rma`: not known, to be read.
    return_state: Option<ReturnState>,
    /// Its returned units are booked back on `on_hand`.
    restocked: bool,
}

impl Shipment {
    fn picks(&self) -> impl Iterator<Item = (CellPick, u32)> + '_ {
        self.lines.iter().map(|&(sku, units)| (CellPick { sku, location: self.location }, units))
    }
}

#[derive(Debug, Clone)]
struct Order {
    place: PlaceOrder,
    /// `(sku, units)`, as placed.
    lines: Vec<(u32, u32)>,
    fate: Fate,
    id: Option<OrderId>,
    /// A placement was sent and its answer lost: the order may exist.
    place_unknown: bool,
    paid: bool,
    cancelled: bool,
    /// Known once the order has been read.
    shipments: Option<Vec<Shipment>>,
    /// What the flow knows may be out of date: read the order before the next step.
    stale: bool,
    problems: u32,
    overloaded: u32,
    /// The server refused one of its steps (rather than its answer being lost).
    refused: bool,
    last_problem: String,
}

impl Order {
    fn total_minor(&self) -> i64 {
        self.place.lines.iter().map(|line| line.unit_price_minor * i64::from(line.quantity)).sum()
    }

    fn describe(&self) -> String {
        match self.id {
            Some(id) => format!("order {id} ({})", self.place.external_number),
            None => format!("order {}", self.place.external_number),
        }
    }
}

/// What an order needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Send(Step),
    Done(OrderState),
    /// In a state the flow has no step for.
    Stuck(String),
}

fn plan(order: &Order) -> Plan {
    let Some(_) = order.id else { return Plan::Send(Step::Place) };
    if order.stale {
        return Plan::Send(Step::Read);
    }
    if order.cancelled {
        return Plan::Done(OrderState::Cancelled);
    }
    if order.fate == Fate::Cancel {
        return Plan::Send(Step::Cancel);
    }
    if !order.paid {
        return Plan::Send(Step::Pay);
    }
    let Some(shipments) = &order.shipments else { return Plan::Send(Step::Read) };
    if shipments.is_empty() {
        return Plan::Stuck("placed with no shipment".into());
    }
    for (ship, shipment) in shipments.iter().enumerate() {
        match shipment.state {
            ShipmentState::Delivered | ShipmentState::Cancelled => {}
            ShipmentState::Allocated
            | ShipmentState::Released
            | ShipmentState::Picking
            | ShipmentState::Packed
            | ShipmentState::Shipped => return Plan::Send(Step::Advance { ship }),
            ShipmentState::ReadyForPickup | ShipmentState::PickedUp => {
                return Plan::Stuck(format!(
                    "shipment {} is {}, a pickup state",
                    shipment.id,
                    shipment.state.name()
                ));
            }
        }
    }
    if order.fate == Fate::Deliver {
        return Plan::Done(OrderState::Delivered);
    }
    for (ship, shipment) in shipments.iter().enumerate() {
        if shipment.state == ShipmentState::Cancelled {
            continue;
        }
        let step = match (shipment.rma, shipment.return_state) {
            (None, _) => ReturnStep::Request,
            (Some(_), None) => return Plan::Send(Step::ReadReturn { ship }),
            (Some(_), Some(ReturnState::Requested)) => ReturnStep::Authorise,
            (Some(_), Some(ReturnState::Authorised)) => ReturnStep::Receive,
            (Some(_), Some(ReturnState::Received)) => ReturnStep::Refund,
            (Some(_), Some(ReturnState::Refunded | ReturnState::Exchanged)) => continue,
        };
        return Plan::Send(Step::Return { ship, step });
    }
    Plan::Done(OrderState::Returned)
}

/// The fulfilment step that moves a shipment on from `state`.
fn step_from(state: ShipmentState, shipment: ShipmentId) -> Option<ShipmentStep> {
    Some(match state {
        ShipmentState::Allocated => ShipmentStep::Release,
        ShipmentState::Released => ShipmentStep::StartPicking,
        ShipmentState::Picking => ShipmentStep::Pack,
        ShipmentState::Packed => ShipmentStep::Ship {
            carrier: CARRIERS[(shipment % CARRIERS.len() as u64) as usize].to_owned(),
            tracking: format!("TRK{shipment:012}"),
        },
        ShipmentState::Shipped => ShipmentStep::Deliver,
        _ => return None,
    })
}

/// How the answer to a step left its order.
enum Answered {
    /// Plan its next step.
    Go,
    /// Send the same step again (it was not applied).
    Again,
    /// The order is gone (never placed); nothing to do.
    Dropped,
    /// A lost answer or a refusal: count it and plan again (which reads first).
    Problem { refused: bool, what: String },
}

/// `lifecycle`'s flow for one load slot.
pub struct LifecycleFlow {
    catalogue: Arc<Catalogue>,
    rng: Rng,
    stream: u64,
    order_prefix: String,
    /// Orders under way, by the flow's own number.
    orders: HashMap<u64, Order>,
    /// Follow-ups ready to go, oldest first.
    ready: VecDeque<Outgoing>,
    drawn: u64,
    winding_down: bool,
}

impl LifecycleFlow {
    pub fn new(settings: &Settings, catalogue: &Arc<Catalogue>, stream: u64) -> LifecycleFlow {
        LifecycleFlow {
            catalogue: catalogue.clone(),
            rng: catalogue.stream_rng(stream),
            stream,
            order_prefix: settings.order_prefix.clone(),
            orders: HashMap::new(),
            ready: VecDeque::new(),
            drawn: 0,
            winding_down: false,
        }
    }

    /// Orders under way.
    pub fn orders_open(&self) -> usize {
        self.orders.len()
    }

    /// A new order: 1–3 distinct SKUs by Zipf popularity, a ship-to point, a customer, a
    /// channel and a fate.
    fn draw(&mut self) -> Order {
        self.drawn += 1;
        let rng = &mut self.rng;
        let size = (1 + rng.below(ORDER_LINES_MAX as u64) as usize).min(self.catalogue.sku_count());
        let mut skus: Vec<u32> = Vec::with_capacity(size);
        while skus.len() < size {
            let sku = self.catalogue.draw_popular_sku(rng) as u32;
            if !skus.contains(&sku) {
                skus.push(sku);
            }
        }
        let fate = if rng.unit() < LIFECYCLE_CANCEL_SHARE {
            Fate::Cancel
        } else if rng.unit() < LIFECYCLE_RETURN_SHARE {
            Fate::Return
        } else {
            Fate::Deliver
        };
        let to = Address {
            latitude_e6: rng.between(SHIP_TO_LATITUDE_E6.0, SHIP_TO_LATITUDE_E6.1) as i32,
            longitude_e6: rng.between(SHIP_TO_LONGITUDE_E6.0, SHIP_TO_LONGITUDE_E6.1) as i32,
            country: COUNTRY.to_owned(),
            postcode: format!("{:05}", rng.below(100_000)),
        };
        let customer = format!("CUST-{:06}", rng.below(CUSTOMERS));
        let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
        let place = PlaceOrder {
            channel,
            external_number: format!("{}-{}-{}", self.order_prefix, self.stream, self.drawn),
            customer,
            delivery: DeliveryRequest::Ship { to },
            currency: CURRENCY.to_owned(),
            lines: skus
                .iter()
                .map(|&sku| OrderLine {
                    sku: self.catalogue.sku(sku as usize).to_owned(),
                    quantity: UNITS_PER_LINE,
                    unit_price_minor: unit_price_minor(sku),
                })
                .collect(),
            hold: None,
            allow_backorder: false,
        };
        Order {
            place,
            lines: skus.iter().map(|&sku| (sku, UNITS_PER_LINE)).collect(),
            fate,
            id: None,
            place_unknown: false,
            paid: false,
            cancelled: false,
            shipments: None,
            stale: false,
            problems: 0,
            overloaded: 0,
            refused: false,
            last_problem: String::new(),
        }
    }

    /// The request for `step` of order `number`.
    fn request(&self, number: u64, order: &mut Order, step: Step) -> Outgoing {
        let id = order.id.unwrap_or_default();
        let note = Note::Order { order: number, step };
        let (kind, body) = match step {
            Step::Place => (Kind::Place, command(Command::PlaceOrder(order.place.clone()))),
            Step::Pay => (
                Kind::Pay,
                command(Command::RecordPayment {
                    order: id,
                    event: PaymentEvent::Authorised,
                    amount_minor: order.total_minor(),
                    reference: format!("PAY-{id}"),
                }),
            ),
            Step::Cancel => (
                Kind::Cancel,
                command(Command::CancelOrder { order: id, reason: CANCEL_REASON.to_owned() }),
            ),
            Step::Read => (Kind::Read, RequestBody::Query(Query::Order { order: id })),
            Step::Advance { ship } => {
                let shipment = &order.shipments.as_ref().expect("planned from shipments")[ship];
                let step = step_from(shipment.state, shipment.id).expect("planned from a state");
                (Kind::Step, command(Command::AdvanceShipment { shipment: shipment.id, step }))
            }
            Step::ReadReturn { ship } => {
                let shipment = &order.shipments.as_ref().expect("planned from shipments")[ship];
                let rma = shipment.rma.expect("planned from a known return");
                (Kind::Read, RequestBody::Query(Query::Return { rma }))
            }
            Step::Return { ship, step } => {
                let shipment = &mut order.shipments.as_mut().expect("planned from shipments")[ship];
                (Kind::Return, command(self.return_command(id, shipment, step)))
            }
        };
        Outgoing { kind, body, note }
    }

    fn return_command(&self, order: OrderId, shipment: &mut Shipment, step: ReturnStep) -> Command {
        let rma = shipment.rma.unwrap_or_default();
        let catalogue = &self.catalogue;
        match step {
            ReturnStep::Request => {
                shipment.return_requested = true;
                let lines = shipment
                    .lines
                    .iter()
                    .map(|&(sku, quantity)| ItemQuantity {
                        sku: catalogue.sku(sku as usize).to_owned(),
                        quantity,
                    })
                    .collect();
                Command::RequestReturn { order, lines, reason: RETURN_REASON.to_owned() }
            }
            ReturnStep::Authorise => Command::AuthoriseReturn { rma },
            ReturnStep::Receive => Command::ReceiveReturn {
                rma,
                location: catalogue.location_code(shipment.location as usize).to_owned(),
                lines: shipment
                    .lines
                    .iter()
                    .map(|&(sku, quantity)| ReturnReceipt {
                        sku: catalogue.sku(sku as usize).to_owned(),
                        quantity,
                        condition: ReturnCondition::Resellable,
                    })
                    .collect(),
            },
            ReturnStep::Refund => Command::RefundReturn {
                rma,
                amount_minor: shipment
                    .lines
                    .iter()
                    .map(|&(sku, units)| unit_price_minor(sku) * i64::from(units))
                    .sum(),
            },
        }
    }

    /// Plans order `number`'s next step: queues it, or books the order as done or given up.
    fn go_on(&mut self, number: u64, mut order: Order, ledger: &mut Ledger) {
        match plan(&order) {
            Plan::Send(step) => {
                let outgoing = self.request(number, &mut order, step);
                self.orders.insert(number, order);
                self.ready.push_back(outgoing);
            }
            Plan::Done(state) => {
                let id = order.id.expect("a done order was placed");
                if let Some(shipments) = &order.shipments {
                    ledger.tally.returns_refunded += shipments
                        .iter()
                        .filter(|shipment| shipment.return_state == Some(ReturnState::Refunded))
                        .count() as u64;
                }
                ledger.order_finished(id, state);
            }
            Plan::Stuck(why) => {
                order.refused = true;
                order.last_problem = why;
                give_up(&self.catalogue, &order, ledger);
            }
        }
    }

    /// Applies the answer to `step` to what the flow knows of `order`.
    fn answered(
        &self,
        order: &mut Order,
        step: Step,
        answer: &Answer,
        ledger: &mut Ledger,
    ) -> Answered {
        let reply = match answer {
            Ok(reply) => reply,
            Err(ClientError::Server(error)) if error.code == ErrorCode::Overloaded => {
                order.overloaded += 1;
                if order.overloaded <= ORDER_OVERLOADED_MAX {
                    // Nothing was applied; a placement not yet sent in earnest can simply
                    // not happen once the run is winding down.
                    if step == Step::Place && !order.place_unknown && self.winding_down {
                        return Answered::Dropped;
                    }
                    return Answered::Again;
                }
                if step == Step::Place && !order.place_unknown {
                    ledger.tally.orders_refused += 1;
                    ledger.problem(format!("{}: placement overloaded", order.describe()));
                    return Answered::Dropped;
                }
                return Answered::Problem { refused: true, what: error.to_string() };
            }
            Err(error) if error.is_outcome_unknown() => {
                if step == Step::Place {
                    order.place_unknown = true;
                }
                return Answered::Problem { refused: false, what: error.to_string() };
            }
            // Refused, so never placed: had a lost placement made the order, placing the
            // same number again would have answered it.
            Err(error) if step == Step::Place => {
                if matches!(error.code(), Some(ErrorCode::InsufficientStock { .. })) {
                    ledger.tally.orders_short += 1;
                } else {
                    ledger.tally.orders_refused += 1;
                    ledger.problem(format!("{}: placement refused: {error}", order.describe()));
                }
                return Answered::Dropped;
            }
            Err(error) => return Answered::Problem { refused: true, what: error.to_string() },
        };
        match self.applied(order, step, reply, ledger) {
            Ok(()) => Answered::Go,
            Err(what) => Answered::Problem { refused: true, what },
        }
    }

    /// Books a successful answer; an answer that does not fit the step is a problem.
    fn applied(
        &self,
        order: &mut Order,
        step: Step,
        reply: &Reply,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        let unexpected = || format!("{step:?} answered {}", allot_client::reply_name(reply));
        match (step, reply) {
            (Step::Place, Reply::OrderPlaced { order: id, .. }) => {
                if order.id.is_none() {
                    ledger.tally.orders_placed += 1;
                }
                order.id = Some(*id);
            }
            (Step::Pay, Reply::OrderChanged { .. }) => order.paid = true,
            (Step::Cancel, Reply::OrderChanged { state: OrderState::Cancelled, .. }) => {
                order.cancelled = true;
            }
            (Step::Read, Reply::Order(view)) if Some(view.order) == order.id => {
                self.absorb_order(order, view, ledger)?;
            }
            (Step::Advance { ship }, Reply::ShipmentChanged { shipment, state, .. }) => {
                let moved = &mut shipments(order)?[ship];
                if moved.id != *shipment {
                    return Err(unexpected());
                }
                moved.state = *state;
                book_shipped(moved, ledger);
            }
            (Step::Return { ship, step }, Reply::ReturnChanged { rma, state }) => {
                let returned = &mut shipments(order)?[ship];
                if step != ReturnStep::Request && returned.rma != Some(*rma) {
                    return Err(unexpected());
                }
                returned.rma = Some(*rma);
                returned.return_state = Some(*state);
                if matches!(
                    state,
                    ReturnState::Received | ReturnState::Refunded | ReturnState::Exchanged
                ) && !returned.restocked
                {
                    returned.restocked = true;
                    for (pick, units) in returned.picks() {
                        ledger.restocked(pick, units);
                    }
                }
            }
            (Step::ReadReturn { ship }, Reply::Return(view)) => {
                let returned = &mut shipments(order)?[ship];
                if returned.rma != Some(view.rma) {
                    return Err(unexpected());
                }
                self.absorb_return(returned, view, ledger)?;
            }
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    /// Learns where an order stands from its view: payment, cancellation, shipments
    /// (booking any that shipped) and returns (matching one asked for without an answer).
    fn absorb_order(
        &self,
        order: &mut Order,
        view: &OrderView,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        order.paid = matches!(view.payment, PaymentState::Authorised | PaymentState::Captured);
        order.cancelled = view.state == OrderState::Cancelled;
        let known = order.shipments.get_or_insert_with(Vec::new);
        for seen in &view.shipments {
            let index = match known.iter().position(|shipment| shipment.id == seen.shipment) {
                Some(index) => index,
                None => {
                    known.push(self.shipment(seen)?);
                    known.len() - 1
                }
            };
            known[index].state = seen.state;
            book_shipped(&mut known[index], ledger);
        }
        for &rma in &view.returns {
            if known.iter().any(|shipment| shipment.rma == Some(rma)) {
                continue;
            }
            // Only a return asked for whose answer was lost can be new to the flow.
            let Some(asked) = known
                .iter_mut()
                .find(|shipment| shipment.return_requested && shipment.rma.is_none())
            else {
                return Err(format!("return {rma} was not asked for"));
            };
            asked.rma = Some(rma);
            asked.return_state = None;
        }
        order.stale = false;
        Ok(())
    }

    /// A shipment the flow first learns of from its view.
    fn shipment(&self, seen: &ShipmentView) -> Result<Shipment, String> {
        let catalogue = &self.catalogue;
        let location = catalogue
            .location_index(&seen.location)
            .ok_or_else(|| format!("shipment at unknown location {}", seen.location))?;
        let mut lines = Vec::with_capacity(seen.lines.len());
        for line in &seen.lines {
            let sku = catalogue
                .sku_index(&line.sku)
                .ok_or_else(|| format!("shipment of unknown SKU {}", line.sku))?;
            lines.push((sku, line.quantity));
        }
        Ok(Shipment {
            id: seen.shipment,
            location,
            lines,
            state: ShipmentState::Allocated,
            shipped: false,
            return_requested: false,
            rma: None,
            return_state: None,
            restocked: false,
        })
    }

    /// Learns where a return stands from its view, booking its resellable units once it
    /// has been received.
    fn absorb_return(
        &self,
        shipment: &mut Shipment,
        view: &ReturnView,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        shipment.return_state = Some(view.state);
        let received = matches!(
            view.state,
            ReturnState::Received | ReturnState::Refunded | ReturnState::Exchanged
        );
        if !received || shipment.restocked {
            return Ok(());
        }
        let at = view.received_at.as_deref().ok_or("a received return names no location")?;
        let location =
            self.catalogue.location_index(at).ok_or_else(|| format!("return to unknown {at}"))?;
        shipment.restocked = true;
        for line in &view.lines {
            let sku = self
                .catalogue
                .sku_index(&line.sku)
                .ok_or_else(|| format!("return of unknown SKU {}", line.sku))?;
            if line.resellable > 0 {
                ledger.restocked(CellPick { sku, location }, line.resellable);
            }
        }
        Ok(())
    }
}

fn shipments(order: &mut Order) -> Result<&mut Vec<Shipment>, String> {
    order.shipments.as_mut().ok_or_else(|| "a shipment step before the order was read".into())
}

/// Books a shipment's units off `on_hand` the first time it is seen shipped.
fn book_shipped(shipment: &mut Shipment, ledger: &mut Ledger) {
    if matches!(shipment.state, ShipmentState::Shipped | ShipmentState::Delivered)
        && !shipment.shipped
    {
        shipment.shipped = true;
        ledger.tally.shipments_shipped += 1;
        for (pick, units) in shipment.picks() {
            ledger.shipped(pick, units);
        }
    }
}

/// Gives up on `order`: whatever it may still have done to stock gets a margin. If the
/// server refused it, it is stuck (the audit fails); if only answers were lost, abandoned.
fn give_up(catalogue: &Catalogue, order: &Order, ledger: &mut Ledger) {
    if order.refused {
        ledger.tally.orders_stuck += 1;
        ledger.problem(format!("{}: stuck: {}", order.describe(), order.last_problem));
    } else {
        ledger.tally.unknown_outcomes += 1;
        if order.id.is_some() {
            ledger.tally.orders_abandoned += 1;
        }
    }
    match &order.shipments {
        // Placed (or perhaps placed) where routing chose: any cell stocking its SKUs.
        None if order.id.is_some() || order.place_unknown => {
            for &(sku, units) in &order.lines {
                for &location in catalogue.stocked_at(sku as usize) {
                    ledger.allocation_unknown(CellPick { sku, location }, units);
                }
            }
        }
        None => {}
        Some(shipments) => {
            for shipment in shipments {
                for (pick, units) in shipment.picks() {
                    match shipment.state {
                        ShipmentState::Shipped
                        | ShipmentState::Delivered
                        | ShipmentState::Cancelled => {}
                        // The step to ship may have gone through.
                        ShipmentState::Packed => ledger.ship_unknown(pick, units),
                        _ => ledger.allocation_unknown(pick, units),
                    }
                    if shipment.return_requested && !shipment.restocked {
                        ledger.restock_unknown(pick, units);
                    }
                }
            }
        }
    }
}

impl Flow for LifecycleFlow {
    fn next(&mut self) -> Option<Outgoing> {
        if let Some(ready) = self.ready.pop_front() {
            return Some(ready);
        }
        if self.winding_down {
            return None;
        }
        let mut order = self.draw();
        let number = self.drawn;
        let outgoing = self.request(number, &mut order, Step::Place);
        self.orders.insert(number, order);
        Some(outgoing)
    }

    fn answer(&mut self, note: Note, answer: &Answer, ledger: &mut Ledger) {
        let Note::Order { order: number, step } = note else { return };
        let Some(mut order) = self.orders.remove(&number) else { return };
        match self.answered(&mut order, step, answer, ledger) {
            Answered::Go => self.go_on(number, order, ledger),
            Answered::Again => {
                let outgoing = self.request(number, &mut order, step);
                self.orders.insert(number, order);
                self.ready.push_back(outgoing);
            }
            Answered::Dropped => {}
            Answered::Problem { refused, what } => {
                order.problems += 1;
                order.refused |= refused;
                order.last_problem = format!("{step:?}: {what}");
                if order.problems > ORDER_PROBLEMS_MAX {
                    give_up(&self.catalogue, &order, ledger);
                    return;
                }
                match step {
                    // Placing again answers the order if the lost placement made one.
                    Step::Place => {}
                    // A return the flow knows: read it.
                    Step::Return { ship, .. } | Step::ReadReturn { ship }
                        if order
                            .shipments
                            .as_ref()
                            .is_some_and(|shipments| shipments[ship].rma.is_some()) =>
                    {
                        if let Some(shipments) = order.shipments.as_mut() {
                            shipments[ship].return_state = None;
                        }
                    }
                    _ => order.stale = true,
                }
                if step != Step::Place {
                    ledger.tally.resyncs += 1;
                }
                self.go_on(number, order, ledger);
            }
        }
    }

    fn finished(&self) -> bool {
        self.winding_down && self.orders.is_empty()
    }

    fn wind_down(&mut self) {
        // Orders under way go on to their end; no new ones start. A placement waiting to
        // go again after `Overloaded` never reached the server: it is dropped.
        self.winding_down = true;
        let orders = &mut self.orders;
        self.ready.retain(|outgoing| {
            let Note::Order { order: number, step: Step::Place } = outgoing.note else {
                return true;
            };
            if orders.get(&number).is_some_and(|order| order.place_unknown) {
                return true;
            }
            orders.remove(&number);
            false
        });
    }
}

#[cfg(test)]
mod tests;
