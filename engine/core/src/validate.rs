//! Argument checks shared by the handlers: the protocol crate's checks, each failure
//! turned into an `InvalidArgument` that says which field broke which limit.

use allot_protocol::check;

use super::command::{Command, ShipmentStep};
use super::limits::{
    CARRIER_BYTES_MAX, PAYMENT_REFERENCE_BYTES_MAX, REASON_BYTES_MAX, TRACKING_BYTES_MAX,
};
use super::outcome::EngineError;

pub fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(message.into())
}

/// A non-empty string of at most `bytes_max` bytes with no control characters.
pub fn text(field: &str, value: &str, bytes_max: usize) -> Result<(), EngineError> {
    check::text(field, value, bytes_max).map_err(invalid)
}

/// A line or movement quantity: at least one, at most `QUANTITY_PER_LINE_MAX`.
pub fn quantity(field: &str, value: u32) -> Result<(), EngineError> {
    check::quantity(field, value).map_err(invalid)
}

/// A stock level (on hand, safety stock, counted): at most `ON_HAND_MAX`.
pub fn level(field: &str, value: u64) -> Result<u32, EngineError> {
    check::level(field, value).map_err(invalid)
}

/// A hold lifetime within its range.
pub fn ttl(ttl_ms: u64) -> Result<u64, EngineError> {
    check::ttl(ttl_ms).map_err(invalid).map(|()| ttl_ms)
}

/// The free text and amounts of an order command that its handler only stores or passes
/// on (payment amount and reference, notes, reasons, carrier and tracking): checked
/// here, before the handler runs, so a malformed one is refused and never logged.
pub fn free_text(command: &Command) -> Result<(), EngineError> {
    let reason = |text: &str| check::text("reason", text, REASON_BYTES_MAX);
    let checked = match command {
        Command::RecordPayment { amount_minor, reference, .. } => {
            check::amount("payment amount", *amount_minor).and_then(|()| {
                check::text("payment reference", reference, PAYMENT_REFERENCE_BYTES_MAX)
            })
        }
        Command::HoldOrder { note, .. } => check::text("note", note, REASON_BYTES_MAX),
        Command::AdvanceShipment { step: ShipmentStep::Ship { carrier, tracking }, .. } => {
            check::text("carrier", carrier, CARRIER_BYTES_MAX)
                .and_then(|()| check::text("tracking number", tracking, TRACKING_BYTES_MAX))
        }
        Command::CancelOrder { reason: text, .. }
        | Command::CancelShipment { reason: text, .. }
        | Command::CancelOrderLines { reason: text, .. } => reason(text),
        _ => Ok(()),
    };
    checked.map_err(invalid)
}
