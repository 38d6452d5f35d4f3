//! What applying a command or answering a query returns: replies and typed errors.

use serde::{Deserialize, Serialize};

use super::ids::HoldId;
pub use allot_protocol::model::{
    CellKey, CellView, HoldLineView, HoldState, HoldView, LocationView, Resolution, ShortagePage,
};
pub use allot_protocol::order::{
    KpiView, OrderId, OrderPage, OrderState, OrderView, ReturnId, ReturnState, ReturnView,
    RoutingView, ShipmentId, ShipmentPage, ShipmentState, ShipmentView,
};

/// The answer to one command or query.
pub type Outcome = Result<Reply, EngineError>;

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Location(LocationView),
    Locations(Vec<LocationView>),
    Cell(CellView),
    Cells(Vec<CellView>),
    Transferred {
        from: CellView,
        to: CellView,
    },
    /// A new hold; kept small because it is the hot path's answer.
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
    Ticked {
        expired: u32,
    },
    /// Answers the engine's own `SetRoutingWeights`.
    RoutingWeightsSet,
    RoutedHoldPlaced {
        hold: HoldId,
        expires_at_ms: u64,
        lines: Vec<HoldLineView>,
    },
    OrderPlaced {
        order: OrderId,
        state: OrderState,
        shipments: Vec<ShipmentId>,
        backordered_units: u64,
    },
    OrderChanged {
        order: OrderId,
        state: OrderState,
    },
    ShipmentChanged {
        shipment: ShipmentId,
        state: ShipmentState,
        order_state: OrderState,
    },
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
    Routing(RoutingView),
    Shortages(ShortagePage),
    /// Committed units consumed or released; `units_committed` is what the hold still
    /// commits (zero: settled).
    CommittedSettled {
        hold: HoldId,
        units_committed: u64,
    },
}

/// A typed error: the wire maps each variant to an error code (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineError {
    /// The request is malformed or breaks a limit; the message says which.
    InvalidArgument(String),
    /// A named SKU, location or hold does not exist.
    NotFound(String),
    /// Request line `line` (0-based; the first line naming the cell) asked, together
    /// with every other line on the same cell, for more than the cell had available.
    InsufficientStock { line: u32, available: i64 },
    /// The hold was already resolved; `how` says which way.
    AlreadyResolved { how: Resolution },
    /// The idempotency key was used before with a different request (or an order's
    /// external number with a different order).
    IdempotencyConflict,
    /// The order, shipment or return is in state `from`, which does not allow the change.
    InvalidTransition { from: String },
    /// A cycle count's expected quantity no longer matches `on_hand`.
    CompareFailed { actual: u32 },
    /// A memory limit is reached; nothing was applied, and a retry later may succeed.
    Overloaded(String),
    /// The engine is not taking requests (stopped, or failed on storage).
    Unavailable(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::InvalidArgument(message) => write!(f, "invalid argument: {message}"),
            EngineError::NotFound(what) => write!(f, "not found: {what}"),
            EngineError::InsufficientStock { line, available } => {
                write!(f, "insufficient stock on line {line}: {available} available")
            }
            EngineError::AlreadyResolved { how } => write!(f, "hold already {how}"),
            EngineError::IdempotencyConflict => {
                write!(f, "idempotency key already used with a different request")
            }
            EngineError::InvalidTransition { from } => {
                write!(f, "invalid transition from state {from}")
            }
            EngineError::CompareFailed { actual } => {
                write!(f, "on_hand is {actual}, not the expected quantity")
            }
            EngineError::Overloaded(why) => write!(f, "overloaded: {why}"),
            EngineError::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

impl std::error::Error for EngineError {}
