//! The order vocabulary shared by the wire and the engine: orders and their lines,
//! shipments, returns, payment events, routing decisions, pages and KPIs.
//!
//! Like `model`, these types are encoded both on the wire and in the engine's log; the
//! variant order of every enum is part of both formats and of `docs/protocol.md`.

use serde::{Deserialize, Serialize};

use crate::model::HoldId;

/// Engine-assigned id of an order; sequential from 1, so a higher id is a newer order.
pub type OrderId = u64;
/// Engine-assigned id of a shipment; sequential from 1.
pub type ShipmentId = u64;
/// Engine-assigned id of a return (RMA); sequential from 1.
pub type ReturnId = u64;

/// Where an order came from; its external number is unique per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    Web,
    App,
    Marketplace,
    Pos,
    CallCentre,
    B2b,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Web,
        Channel::App,
        Channel::Marketplace,
        Channel::Pos,
        Channel::CallCentre,
        Channel::B2b,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Marketplace => "marketplace",
            Channel::Pos => "pos",
            Channel::CallCentre => "call_centre",
            Channel::B2b => "b2b",
        }
    }

    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|channel| channel.name() == name)
    }
}

/// A customer's delivery address: a point for routing, and the postal part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// Microdegrees, as locations are given.
    pub latitude_e6: i32,
    pub longitude_e6: i32,
    /// ISO 3166-1 alpha-2, two upper-case letters.
    pub country: String,
    pub postcode: String,
}

/// How the customer gets the goods.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeliveryRequest {
    /// Shipped to an address; routing picks the locations.
    Ship { to: Address },
    /// Collected at a store; only that store fulfils it.
    Pickup { location: String },
}

/// One line of an order: a SKU, how many, at what unit price (minor units).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
}

/// A new order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub channel: Channel,
    /// The channel's own order number; placing the same number again on the same channel
    /// answers with the order already placed.
    pub external_number: String,
    pub customer: String,
    pub delivery: DeliveryRequest,
    /// ISO 4217 code of every price on the order.
    pub currency: String,
    pub lines: Vec<OrderLine>,
    /// A live hold to convert: its stock becomes the order's allocation. Its lines must
    /// match the order's, SKU for SKU and unit for unit.
    pub hold: Option<HoldId>,
    /// Without stock for every unit the order is refused, unless this is set: then what
    /// cannot be allocated now waits as a backorder.
    pub allow_backorder: bool,
}

/// A quantity of one SKU: for routed holds, cancellations, short picks and returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemQuantity {
    pub sku: String,
    pub quantity: u32,
}

/// What the payment service reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentEvent {
    Authorised,
    Failed,
    Captured,
    Refunded,
}

/// An order's payment state. `Failed` may be followed by a new authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentState {
    Pending,
    Authorised,
    Captured,
    Failed,
    Refunded,
    /// A return was refunded while the payment was only authorised: no money was taken,
    /// so the authorisation is voided rather than refunded.
    Voided,
}

impl PaymentState {
    pub fn name(self) -> &'static str {
        match self {
            PaymentState::Pending => "pending",
            PaymentState::Authorised => "authorised",
            PaymentState::Captured => "captured",
            PaymentState::Failed => "failed",
            PaymentState::Refunded => "refunded",
            PaymentState::Voided => "voided",
        }
    }
}

/// Why an order is stopped before it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderHoldReason {
    Manual,
    Fraud,
}

/// An order's aggregate state (DESIGN §2), derived from its shipments and quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrderState {
    /// Placed, waiting for a usable payment.
    Pending,
    /// Paid (authorised or captured), allocated, nothing started.
    Confirmed,
    /// Stopped by a manual or fraud hold before everything left.
    OnHold,
    /// Some units wait for stock.
    Backordered,
    /// A location has started on it.
    InProgress,
    PartiallyShipped,
    Shipped,
    Delivered,
    PartiallyReturned,
    Returned,
    Cancelled,
}

impl OrderState {
    pub const ALL: [OrderState; 11] = [
        OrderState::Pending,
        OrderState::Confirmed,
        OrderState::OnHold,
        OrderState::Backordered,
        OrderState::InProgress,
        OrderState::PartiallyShipped,
        OrderState::Shipped,
        OrderState::Delivered,
        OrderState::PartiallyReturned,
        OrderState::Returned,
        OrderState::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Confirmed => "confirmed",
            OrderState::OnHold => "on_hold",
            OrderState::Backordered => "backordered",
            OrderState::InProgress => "in_progress",
            OrderState::PartiallyShipped => "partially_shipped",
            OrderState::Shipped => "shipped",
            OrderState::Delivered => "delivered",
            OrderState::PartiallyReturned => "partially_returned",
            OrderState::Returned => "returned",
            OrderState::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|state| state.name() == name)
    }
}

/// How a shipment reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Delivery {
    Ship,
    Pickup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShipmentState {
    Allocated,
    Released,
    Picking,
    Packed,
    Shipped,
    Delivered,
    ReadyForPickup,
    PickedUp,
    Cancelled,
}

impl ShipmentState {
    pub fn name(self) -> &'static str {
        match self {
            ShipmentState::Allocated => "allocated",
            ShipmentState::Released => "released",
            ShipmentState::Picking => "picking",
            ShipmentState::Packed => "packed",
            ShipmentState::Shipped => "shipped",
            ShipmentState::Delivered => "delivered",
            ShipmentState::ReadyForPickup => "ready_for_pickup",
            ShipmentState::PickedUp => "picked_up",
            ShipmentState::Cancelled => "cancelled",
        }
    }
}

/// A fulfilment step a location reports for a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShipmentStep {
    /// Released to the floor: it appears on the location's pick list.
    Release,
    StartPicking,
    Pack,
    /// Handed to a carrier: consumes `on_hand` and `allocated` at the location.
    Ship {
        carrier: String,
        tracking: String,
    },
    Deliver,
    ReadyForPickup,
    /// Collected by the customer: consumes `on_hand` and `allocated` at the store.
    PickUp,
}

/// A return's lifecycle: `requested → authorised → received → refunded | exchanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReturnState {
    Requested,
    Authorised,
    Received,
    Refunded,
    Exchanged,
}

impl ReturnState {
    pub fn name(self) -> &'static str {
        match self {
            ReturnState::Requested => "requested",
            ReturnState::Authorised => "authorised",
            ReturnState::Received => "received",
            ReturnState::Refunded => "refunded",
            ReturnState::Exchanged => "exchanged",
        }
    }
}

/// What a returned unit is fit for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReturnCondition {
    /// Back on sale: `on_hand` goes up at the receiving location.
    Resellable,
    /// Written off, with the reason.
    Damaged { reason: String },
}

/// Units of one SKU received back, and their condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReturnReceipt {
    pub sku: String,
    pub quantity: u32,
    pub condition: ReturnCondition,
}

/// The routing rule that decided where an order's stock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoutingRule {
    /// Pickup: the order stays at its store.
    Pickup,
    /// One location had everything; it scored lowest among those that did.
    OneLocation,
    /// No single location could; split over the fewest found.
    Split,
    /// No location could supply anything.
    NoLocation,
    /// Converted from a hold whose lines named their locations.
    FromHold,
}

/// What routing made of one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    Chosen,
    Inactive,
    DoesNotShip,
    NoPickup,
    /// Not the order's pickup store.
    NotThePickupStore,
    AtCapacity,
    /// Has none of what the order still needed when it was considered.
    NoStock,
    /// Passed the filter; routing chose others.
    Eligible,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Chosen => "chosen",
            Verdict::Inactive => "inactive",
            Verdict::DoesNotShip => "does_not_ship",
            Verdict::NoPickup => "no_pickup",
            Verdict::NotThePickupStore => "not_the_pickup_store",
            Verdict::AtCapacity => "at_capacity",
            Verdict::NoStock => "no_stock",
            Verdict::Eligible => "eligible",
        }
    }
}

/// Why one location was or was not chosen, with the figures that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentView {
    pub location: String,
    pub distance_m: u64,
    pub shipping_cost_minor: i64,
    pub workload_penalty_minor: i64,
    pub score: i64,
    pub verdict: Verdict,
}

/// A routing decision as it was recorded: the rule, how many locations were looked at,
/// and the assessments kept (the chosen ones first, then the best of the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingView {
    pub rule: RoutingRule,
    pub locations_considered: u32,
    pub assessments: Vec<AssessmentView>,
}

/// One order line and where its units are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineView {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub cancelled: u32,
    pub backordered: u32,
    /// Units in shipments that have left their location.
    pub shipped: u32,
    /// Units received back on returns.
    pub returned: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentView {
    pub shipment: ShipmentId,
    pub order: OrderId,
    pub location: String,
    pub delivery: Delivery,
    pub state: ShipmentState,
    pub lines: Vec<ItemQuantity>,
    pub carrier: Option<String>,
    pub tracking: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order: OrderId,
    pub channel: Channel,
    pub external_number: String,
    pub customer: String,
    pub delivery: DeliveryRequest,
    pub currency: String,
    pub state: OrderState,
    pub payment: PaymentState,
    pub hold: Option<OrderHoldReason>,
    pub lines: Vec<OrderLineView>,
    pub shipments: Vec<ShipmentView>,
    pub returns: Vec<ReturnId>,
    pub routing: RoutingView,
    pub placed_at_ms: u64,
    /// The hold it was converted from.
    pub from_hold: Option<HoldId>,
    /// The return it replaces goods for.
    pub exchange_for: Option<ReturnId>,
    /// Sum of quantity × unit price over the lines, in minor units of `currency`.
    pub total_minor: i64,
}

/// An order in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order: OrderId,
    pub channel: Channel,
    pub external_number: String,
    pub customer: String,
    pub state: OrderState,
    pub placed_at_ms: u64,
    pub units: u64,
    pub total_minor: i64,
}

/// One page of orders; `next` is the cursor for the following page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    pub next: Option<OrderId>,
}

/// One page of shipments (a pick list); `next` is the cursor for the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentPage {
    pub shipments: Vec<ShipmentView>,
    pub next: Option<ShipmentId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLineView {
    pub sku: String,
    pub requested: u32,
    pub resellable: u32,
    pub damaged: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnView {
    pub rma: ReturnId,
    pub order: OrderId,
    pub state: ReturnState,
    pub reason: String,
    pub lines: Vec<ReturnLineView>,
    /// Where it was received, once it was.
    pub received_at: Option<String>,
    /// Reasons given for damaged units, in receipt order.
    pub damage_reasons: Vec<String>,
    pub refunded_minor: i64,
    pub exchange_order: Option<OrderId>,
    pub requested_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Orders in one channel and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCount {
    pub channel: Channel,
    pub state: OrderState,
    pub orders: u64,
}

/// Open shipments at a location against its daily capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationWorkload {
    pub location: String,
    pub open_shipments: u32,
    pub open_units: u64,
    pub daily_capacity: u32,
}

/// The KPIs of DESIGN §2. Rates are in basis points (1/100 of a percent) so the view is
/// exact; each comes with the counts it is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KpiView {
    /// Non-zero counts only, by channel then state.
    pub orders_by_channel_state: Vec<OrderCount>,
    pub holds_placed: u64,
    /// Holds refused for want of stock since the engine started (refusals are not
    /// logged, so this count starts again at a restart).
    pub holds_refused_since_start: u64,
    pub hold_success_rate_bp: Option<u32>,
    pub holds_expired: u64,
    pub orders_placed: u64,
    pub orders_split: u64,
    pub split_rate_bp: Option<u32>,
    pub units_ordered: u64,
    /// Units allocated when their order was placed (the rest were backordered).
    pub units_filled_at_placement: u64,
    pub fill_rate_bp: Option<u32>,
    /// From placement to a shipment leaving its location, over every shipment shipped.
    pub placement_to_ship_p50_ms: Option<u64>,
    pub placement_to_ship_p95_ms: Option<u64>,
    pub units_shipped: u64,
    pub units_returned: u64,
    pub return_rate_bp: Option<u32>,
    /// Every location with open shipments, in code order.
    pub open_workload: Vec<LocationWorkload>,
}
