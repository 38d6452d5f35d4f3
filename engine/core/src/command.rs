//! Commands (what changes state, and is logged) and queries (what reads it).
//!
//! Commands carry the retailer's own strings; the core interns them when it applies the
//! command, so the log holds exactly what the client asked and replays without any
//! outside lookup table.

use serde::{Deserialize, Serialize};

pub use allot_protocol::model::{LineRequest, LocationKind, LocationSpec, Query, ShippingCost};
pub use allot_protocol::order::{
    Address, Channel, DeliveryRequest, ItemQuantity, OrderHoldReason, OrderId, OrderLine,
    PaymentEvent, PlaceOrder, ReturnCondition, ReturnId, ReturnReceipt, ShipmentId, ShipmentStep,
};

use super::ids::HoldId;
use super::routing::RoutingWeights;

/// A mutating request as the log records it: an optional idempotency key and the command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    pub idempotency_key: Option<String>,
    pub command: Command,
}

impl Request {
    pub fn new(command: Command) -> Request {
        Request { idempotency_key: None, command }
    }

    pub fn with_key(key: impl Into<String>, command: Command) -> Request {
        Request { idempotency_key: Some(key.into()), command }
    }
}

/// Everything that can change the engine's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Create a location, or replace every attribute of an existing one.
    UpsertLocation(LocationSpec),
    /// Stop holding and routing at a location; its stock stays where it is.
    DeactivateLocation {
        location: String,
    },
    /// Goods received (a purchase order, an ASN): `on_hand` goes up.
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
    /// Cycle count: set `on_hand` to `counted` only if it is still `expected`
    /// (compare-and-set, so a count taken before a concurrent movement is refused).
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
    /// Move units between two locations; limited by what is available at the source.
    Transfer {
        sku: String,
        from: String,
        to: String,
        quantity: u32,
    },
    /// Hold stock for a cart, all lines or none.
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
    /// The engine clock advanced: expire due holds and forget retained records past
    /// their retention. Issued only by the sequencer, logged like any other command.
    Tick,
    /// New routing weights. Issued by the engine at start when its configuration
    /// differs from the state's, and logged, so replay routes as the live engine did.
    SetRoutingWeights(RoutingWeights),
    /// Hold stock for a cart whose lines name no location; routing picks them.
    ReserveRouted {
        lines: Vec<ItemQuantity>,
        destination: DeliveryRequest,
        ttl_ms: Option<u64>,
    },
    /// Place an order: convert a hold, or route and allocate afresh.
    PlaceOrder(PlaceOrder),
    /// A payment event for an order.
    RecordPayment {
        order: OrderId,
        event: PaymentEvent,
        amount_minor: i64,
        reference: String,
    },
    /// Stop an order before it leaves.
    HoldOrder {
        order: OrderId,
        reason: OrderHoldReason,
        note: String,
    },
    ReleaseOrderHold {
        order: OrderId,
    },
    /// Cancel everything of an order that has not left.
    CancelOrder {
        order: OrderId,
        reason: String,
    },
    CancelShipment {
        shipment: ShipmentId,
        reason: String,
    },
    /// Cancel some units: backordered ones first, then from open shipments.
    CancelOrderLines {
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: String,
    },
    AdvanceShipment {
        shipment: ShipmentId,
        step: ShipmentStep,
    },
    /// Units a location could not find: written off there, routed again or backordered.
    ShortPick {
        shipment: ShipmentId,
        missing: Vec<ItemQuantity>,
    },
    AllocateBackorders {
        order: OrderId,
    },
    RequestReturn {
        order: OrderId,
        lines: Vec<ItemQuantity>,
        reason: String,
    },
    AuthoriseReturn {
        rma: ReturnId,
    },
    ReceiveReturn {
        rma: ReturnId,
        location: String,
        lines: Vec<ReturnReceipt>,
    },
    RefundReturn {
        rma: ReturnId,
        amount_minor: i64,
    },
    ExchangeReturn {
        rma: ReturnId,
        order: PlaceOrder,
    },
    /// The outside system shipped units of a hold committed by `CommitHold`: they leave
    /// `on_hand` and `allocated`. Empty `lines` means every unit still committed.
    ConsumeCommitted {
        hold: HoldId,
        lines: Vec<LineRequest>,
    },
    /// The outside order of a committed hold was cancelled: its units leave `allocated`
    /// and are available again. Empty `lines` means every unit still committed.
    ReleaseCommitted {
        hold: HoldId,
        lines: Vec<LineRequest>,
    },
}

impl Command {
    /// Short name for logs and metrics.
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
            Command::Tick => "tick",
            Command::SetRoutingWeights(_) => "set_routing_weights",
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

/// A client's command as the log records it. The wire's `Command` is a separate type
/// because its variant order is frozen by `docs/protocol.md` while the log's is frozen
/// by the files already written, and only the log has `Tick`.
impl From<allot_protocol::Command> for Command {
    fn from(command: allot_protocol::Command) -> Command {
        use allot_protocol::Command as Wire;
        match command {
            Wire::UpsertLocation(spec) => Command::UpsertLocation(spec),
            Wire::DeactivateLocation { location } => Command::DeactivateLocation { location },
            Wire::Receive { sku, location, quantity } => {
                Command::Receive { sku, location, quantity }
            }
            Wire::Adjust { sku, location, delta, reason } => {
                Command::Adjust { sku, location, delta, reason }
            }
            Wire::CycleCount { sku, location, expected, counted } => {
                Command::CycleCount { sku, location, expected, counted }
            }
            Wire::SetSafetyStock { sku, location, quantity } => {
                Command::SetSafetyStock { sku, location, quantity }
            }
            Wire::Transfer { sku, from, to, quantity } => {
                Command::Transfer { sku, from, to, quantity }
            }
            Wire::Reserve { lines, ttl_ms } => Command::Reserve { lines, ttl_ms },
            Wire::ExtendHold { hold, ttl_ms } => Command::ExtendHold { hold, ttl_ms },
            Wire::ReleaseHold { hold, lines } => Command::ReleaseHold { hold, lines },
            Wire::CommitHold { hold, order_number } => Command::CommitHold { hold, order_number },
            Wire::ReserveRouted { lines, destination, ttl_ms } => {
                Command::ReserveRouted { lines, destination, ttl_ms }
            }
            Wire::PlaceOrder(order) => Command::PlaceOrder(order),
            Wire::RecordPayment { order, event, amount_minor, reference } => {
                Command::RecordPayment { order, event, amount_minor, reference }
            }
            Wire::HoldOrder { order, reason, note } => Command::HoldOrder { order, reason, note },
            Wire::ReleaseOrderHold { order } => Command::ReleaseOrderHold { order },
            Wire::CancelOrder { order, reason } => Command::CancelOrder { order, reason },
            Wire::CancelShipment { shipment, reason } => {
                Command::CancelShipment { shipment, reason }
            }
            Wire::CancelOrderLines { order, lines, reason } => {
                Command::CancelOrderLines { order, lines, reason }
            }
            Wire::AdvanceShipment { shipment, step } => Command::AdvanceShipment { shipment, step },
            Wire::ShortPick { shipment, missing } => Command::ShortPick { shipment, missing },
            Wire::AllocateBackorders { order } => Command::AllocateBackorders { order },
            Wire::RequestReturn { order, lines, reason } => {
                Command::RequestReturn { order, lines, reason }
            }
            Wire::AuthoriseReturn { rma } => Command::AuthoriseReturn { rma },
            Wire::ReceiveReturn { rma, location, lines } => {
                Command::ReceiveReturn { rma, location, lines }
            }
            Wire::RefundReturn { rma, amount_minor } => Command::RefundReturn { rma, amount_minor },
            Wire::ExchangeReturn { rma, order } => Command::ExchangeReturn { rma, order },
            Wire::ConsumeCommitted { hold, lines } => Command::ConsumeCommitted { hold, lines },
            Wire::ReleaseCommitted { hold, lines } => Command::ReleaseCommitted { hold, lines },
        }
    }
}
