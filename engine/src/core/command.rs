//! Commands (what changes state, and is logged) and queries (what reads it).
//!
//! Commands carry the retailer's own strings; the core interns them when it applies the
//! command, so the log holds exactly what the client asked and replays without any
//! outside lookup table.

use serde::{Deserialize, Serialize};

pub use allot_protocol::model::{LineRequest, LocationKind, LocationSpec, Query, ShippingCost};

use super::ids::HoldId;

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
    DeactivateLocation { location: String },
    /// Goods received (a purchase order, an ASN): `on_hand` goes up.
    Receive { sku: String, location: String, quantity: u32 },
    /// A correction of `on_hand` by `delta`, with the retailer's reason code.
    Adjust { sku: String, location: String, delta: i64, reason: String },
    /// Cycle count: set `on_hand` to `counted` only if it is still `expected`
    /// (compare-and-set, so a count taken before a concurrent movement is refused).
    CycleCount { sku: String, location: String, expected: u32, counted: u32 },
    /// Units kept back from sale at a cell.
    SetSafetyStock { sku: String, location: String, quantity: u32 },
    /// Move units between two locations; limited by what is available at the source.
    Transfer { sku: String, from: String, to: String, quantity: u32 },
    /// Hold stock for a cart, all lines or none.
    Reserve { lines: Vec<LineRequest>, ttl_ms: Option<u64> },
    /// Move a live hold's deadline to `now + ttl_ms`.
    ExtendHold { hold: HoldId, ttl_ms: u64 },
    /// Release the named quantities of a live hold, or all of it when `lines` is empty.
    ReleaseHold { hold: HoldId, lines: Vec<LineRequest> },
    /// Turn a live hold into an allocation for an order.
    CommitHold { hold: HoldId, order_number: String },
    /// The engine clock advanced: expire due holds and forget retained records past
    /// their retention. Issued only by the sequencer, logged like any other command.
    Tick,
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
        }
    }
}
