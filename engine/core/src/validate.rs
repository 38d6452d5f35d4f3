//! Argument checks shared by the handlers: the protocol crate's checks, each failure
//! turned into an `InvalidArgument` that says which field broke which limit.

use allot_protocol::check;

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
