//! Argument checks shared by the handlers; each failure is an `InvalidArgument` that
//! says which field broke which limit.

use super::limits::{ON_HAND_MAX, QUANTITY_PER_LINE_MAX};
use super::outcome::EngineError;

pub fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(message.into())
}

/// A non-empty string of at most `bytes_max` bytes with no control characters.
pub fn text(field: &str, value: &str, bytes_max: usize) -> Result<(), EngineError> {
    if value.is_empty() {
        return Err(invalid(format!("{field} is empty")));
    }
    if value.len() > bytes_max {
        return Err(invalid(format!("{field} is {} bytes, over {bytes_max}", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!("{field} contains a control character")));
    }
    Ok(())
}

/// A line or movement quantity: at least one, at most `QUANTITY_PER_LINE_MAX`.
pub fn quantity(field: &str, value: u32) -> Result<(), EngineError> {
    if value == 0 {
        return Err(invalid(format!("{field} is zero")));
    }
    if value > QUANTITY_PER_LINE_MAX {
        return Err(invalid(format!("{field} {value} is over {QUANTITY_PER_LINE_MAX}")));
    }
    Ok(())
}

/// A stock level (on hand, safety stock, counted): at most `ON_HAND_MAX`.
pub fn level(field: &str, value: u64) -> Result<u32, EngineError> {
    if value > u64::from(ON_HAND_MAX) {
        return Err(invalid(format!("{field} {value} is over {ON_HAND_MAX}")));
    }
    Ok(value as u32)
}
