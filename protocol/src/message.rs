//! Every message on the wire: the handshake, requests and responses, batches.
//!
//! A stream carries client frames one way and server frames the other. The variant order
//! of every enum here is part of the byte layout (the codec writes the variant index), so
//! new variants go at the end and none is ever reordered or removed within a protocol
//! version. `docs/protocol.md` lists every index.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::model::{
    CellView, HoldId, HoldLineView, HoldState, HoldView, LineRequest, LocationSpec, Query,
    ShortagePage,
};
use crate::order::{
    DeliveryRequest, ItemQuantity, KpiView, OrderHoldReason, OrderId, OrderPage, OrderState,
    OrderView, PaymentEvent, PlaceOrder, ReturnId, ReturnReceipt, ReturnState, ReturnView,
    RoutingView, ShipmentId, ShipmentPage, ShipmentState, ShipmentStep, ShipmentView,
};
use crate::role::Role;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame on every stream.
    Hello(Hello),
    Request(Request),
    /// Many requests in one frame, answered by one `ServerFrame::Batch` in the same order.
    Batch(Vec<Request>),
}

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The handshake was accepted.
    Welcome(Welcome),
    Response(Response),
    /// The answers to a `ClientFrame::Batch`, one per request, in request order.
    Batch(Vec<Response>),
    /// The stream is refused or broken (bad handshake, malformed or oversized frame);
    /// the server finishes the stream after sending it.
    Refused(Error),
}

/// Opens a stream: which protocol the client speaks and who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    /// A bearer token from the server's configuration; empty when the client
    /// authenticates with a client certificate instead.
    pub token: String,
    /// Free text for the server's logs, such as `checkout-eu-3`.
    pub client_name: String,
}

/// Accepts a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u16,
    /// The server's software version, such as `0.1.0`.
    pub server_version: String,
    /// What the token (or client certificate) may do.
    pub role: Role,
    pub limits: ServerLimits,
}

/// The limits this server enforces, so a client can size its batches and pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLimits {
    pub frame_bytes_max: u32,
    pub batch_requests_max: u32,
    /// Requests a connection may have unanswered at once, over all its streams; at the
    /// limit the server stops reading until answers go out, so a client that sends more
    /// waits (QUIC flow control) rather than failing.
    pub in_flight_requests_max: u32,
    pub lines_per_hold_max: u32,
}

/// One request with the client's id for it; the response carries the id back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub body: RequestBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Answered `Reply::Pong` by the server itself.
    Ping,
    /// A change to the engine's state. With an idempotency key, a retry of the same
    /// command gets the original answer and is applied once.
    Command {
        idempotency_key: Option<String>,
        command: Command,
    },
    Query(Query),
}

/// Every change a client may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Create a location, or replace every attribute of an existing one.
    UpsertLocation(LocationSpec),
    /// Stop holding and routing at a location; its stock stays where it is.
    DeactivateLocation {
        location: String,
    },
    /// Goods received: `on_hand` goes up.
    Receive {
        sku: String,
        location: String,
        quantity: u32,
    },
    /// A correction of `on_hand` by `delta`, with the retailer's reason code.
    Adjust {
        sku: String,
        location: String,
        delta: i64,
        reason: String,
    },
    /// Set `on_hand` to `counted` only if it is still `expected` (compare-and-set).
    CycleCount {
        sku: String,
        location: String,
        expected: u32,
        counted: u32,
    },
    /// Units kept back from sale at a cell.
    SetSafetyStock {
        sku: String,
        location: String,
        quantity: u32,
    },
    /// Move units between two locations, limited by what is available at the source.
    Transfer {
        sku: String,
        from: String,
        to: String,
        quantity: u32,
    },
    /// Hold stock for a cart, all lines or none; `ttl_ms` defaults to 15 minutes.
    Reserve {
        lines: Vec<LineRequest>,
        ttl_ms: Option<u64>,
    },
    /// Move a live hold's deadline to `now + ttl_ms`.
    ExtendHold {
        hold: HoldId,
        ttl_ms: u64,
    },
    /// Release the named quantities of a live hold, or all of it when `lines` is empty.
    ReleaseHold {
        hold: HoldId,
        lines: Vec<LineRequest>,
    },
    /// Turn a live hold into an allocation for an order.
    CommitHold {
        hold: HoldId,
        order_number: String,
    },
    /// Hold stock for a cart whose lines name no location: routing picks them as it
    /// would for an order to `destination`, all lines or none.
    ReserveRouted {
        lines: Vec<ItemQuantity>,
        destination: DeliveryRequest,
        ttl_ms: Option<u64>,
    },
    /// Place an order: convert a hold, or route and allocate afresh.
    PlaceOrder(PlaceOrder),
    /// A payment event for an order, with its amount and the payment service's reference.
    RecordPayment {
        order: OrderId,
        event: PaymentEvent,
        amount_minor: i64,
        reference: String,
    },
    /// Stop an order before it leaves (manual review, suspected fraud).
    HoldOrder {
        order: OrderId,
        reason: OrderHoldReason,
        note: String,
    },
    /// Lift an order's hold.
    ReleaseOrderHold {
        order: OrderId,
    },
    /// Cancel everything of an order that has not left: open shipments and backorders.
    CancelOrder {
        order: OrderId,
        reason: String,
    },
    /// Cancel one shipment that has not left; its units are cancelled on the order.
    CancelShipment {
        shipment: ShipmentId,
        reason: String,
    },
    /// Cancel some units of an order: backordered ones first, then from open shipments.
    CancelOrderLines {
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: String,
    },
    /// A fulfilment step for one shipment.
    AdvanceShipment {
        shipment: ShipmentId,
        step: ShipmentStep,
    },
    /// Units the location could not find while picking: they are written off there and
    /// routed again elsewhere, or backordered.
    ShortPick {
        shipment: ShipmentId,
        missing: Vec<ItemQuantity>,
    },
    /// Try again to allocate an order's backordered units.
    AllocateBackorders {
        order: OrderId,
    },
    /// A customer asks to return units that were delivered.
    RequestReturn {
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: String,
    },
    AuthoriseReturn {
        rma: ReturnId,
    },
    /// The returned units arrived at `location`: resellable ones go back on hand there.
    ReceiveReturn {
        rma: ReturnId,
        location: String,
        lines: Vec<ReturnReceipt>,
    },
    RefundReturn {
        rma: ReturnId,
        amount_minor: i64,
    },
    /// Replace the returned goods: places `order`, linked to the return.
    ExchangeReturn {
        rma: ReturnId,
        order: PlaceOrder,
    },
    /// The outside system shipped units of a hold committed by `CommitHold`: they leave
    /// `on_hand` and `allocated` at their cells. Empty `lines` means every unit the hold
    /// still commits.
    ConsumeCommitted {
        hold: HoldId,
        lines: Vec<LineRequest>,
    },
    /// The outside order of a committed hold was cancelled: its units leave `allocated`
    /// and are available again. Empty `lines` means every unit the hold still commits.
    ReleaseCommitted {
        hold: HoldId,
        lines: Vec<LineRequest>,
    },
}

impl Command {
    /// Short name for logs, metrics and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::UpsertLocation(_) => "upsert_location",
            Command::DeactivateLocation { .. } => "deactivate_location",
            Command::Receive { .. } => "receive",
            Command::Adjust { .. } => "adjust",
            Command::CycleCount { .. } => "cycle_count",
            Command::SetSafetyStock { .. } => "set_safety_stock",
            Command::Transfer { .. } => "transfer",
            Command::Reserve { .. } => "reserve",
            Command::ExtendHold { .. } => "extend_hold",
            Command::ReleaseHold { .. } => "release_hold",
            Command::CommitHold { .. } => "commit_hold",
            Command::ReserveRouted { .. } => "reserve_routed",
            Command::PlaceOrder(_) => "place_order",
            Command::RecordPayment { .. } => "record_payment",
            Command::HoldOrder { .. } => "hold_order",
            Command::ReleaseOrderHold { .. } => "release_order_hold",
            Command::CancelOrder { .. } => "cancel_order",
            Command::CancelShipment { .. } => "cancel_shipment",
            Command::CancelOrderLines { .. } => "cancel_order_lines",
            Command::AdvanceShipment { .. } => "advance_shipment",
            Command::ShortPick { .. } => "short_pick",
            Command::AllocateBackorders { .. } => "allocate_backorders",
            Command::RequestReturn { .. } => "request_return",
            Command::AuthoriseReturn { .. } => "authorise_return",
            Command::ReceiveReturn { .. } => "receive_return",
            Command::RefundReturn { .. } => "refund_return",
            Command::ExchangeReturn { .. } => "exchange_return",
            Command::ConsumeCommitted { .. } => "consume_committed",
            Command::ReleaseCommitted { .. } => "release_committed",
        }
    }
}

/// The answer to one request; `result` is the reply or a typed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub result: Result<Reply, Error>,
}

/// A successful answer. Views of a few hundred bytes are boxed, so the answers the hot
/// path moves and remembers (hold placed, order placed) stay small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Pong {
        server_version: String,
    },
    Location(LocationSpec),
    Locations(Vec<LocationSpec>),
    Cell(CellView),
    Cells(Vec<CellView>),
    Transferred {
        from: CellView,
        to: CellView,
    },
    HoldPlaced {
        hold: HoldId,
        expires_at_ms: u64,
    },
    HoldExtended {
        hold: HoldId,
        expires_at_ms: u64,
    },
    /// Some or all of a hold released; `units_held` is what it still holds.
    HoldReleased {
        hold: HoldId,
        state: HoldState,
        units_held: u64,
    },
    HoldCommitted {
        hold: HoldId,
    },
    Hold(HoldView),
    /// A routed hold: where each line is held.
    RoutedHoldPlaced {
        hold: HoldId,
        expires_at_ms: u64,
        lines: Vec<HoldLineView>,
    },
    /// A new order (or, for a repeated external number, the one already placed).
    OrderPlaced {
        order: OrderId,
        state: OrderState,
        shipments: Vec<ShipmentId>,
        backordered_units: u64,
    },
    /// An order-level change (payment, hold, cancellation, backorder allocation).
    OrderChanged {
        order: OrderId,
        state: OrderState,
    },
    /// A shipment moved; `order_state` is its order's state after the move.
    ShipmentChanged {
        shipment: ShipmentId,
        state: ShipmentState,
        order_state: OrderState,
    },
    /// A short pick: the missing units went to `rerouted` shipments or were backordered.
    ShortPicked {
        shipment: ShipmentId,
        state: ShipmentState,
        rerouted: Vec<ShipmentId>,
        backordered_units: u64,
    },
    ReturnChanged {
        rma: ReturnId,
        state: ReturnState,
    },
    /// A return exchanged for a new order.
    ReturnExchanged {
        rma: ReturnId,
        order: OrderId,
    },
    Order(Box<OrderView>),
    Orders(OrderPage),
    Shipment(Box<ShipmentView>),
    Shipments(ShipmentPage),
    Return(Box<ReturnView>),
    Kpis(Box<KpiView>),
    /// A routing decision.
    Routing(RoutingView),
    /// A page of short cells (`Query::ShortagePage`).
    Shortages(ShortagePage),
    /// Units of a committed hold consumed or released; `units_committed` is what the
    /// hold still commits (zero: every unit is settled).
    CommittedSettled {
        hold: HoldId,
        units_committed: u64,
    },
}
