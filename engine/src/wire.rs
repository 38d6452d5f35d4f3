//! Conversions between the core's types and the wire's: the engine's replies and errors
//! become protocol replies and typed error codes. Pure functions; the server calls them.

use allot_protocol::{Error, ErrorCode};

use allot_core::{EngineError, Reply, Request};

/// A client's command with its idempotency key, as the engine takes it.
pub fn request(idempotency_key: Option<String>, command: allot_protocol::Command) -> Request {
    Request { idempotency_key, command: command.into() }
}

/// The wire form of a reply. `Ticked` and `RoutingWeightsSet` answer only the engine's own
/// commands, which no client can send, so meeting it here is a bug and is reported as `Unavailable`.
pub fn reply(reply: Reply) -> Result<allot_protocol::Reply, Error> {
    use allot_protocol::Reply as Wire;
    Ok(match reply {
        Reply::Location(view) => Wire::Location(view),
        Reply::Locations(views) => Wire::Locations(views),
        Reply::Cell(view) => Wire::Cell(view),
        Reply::Cells(views) => Wire::Cells(views),
        Reply::Transferred { from, to } => Wire::Transferred { from, to },
        Reply::HoldPlaced { hold, expires_at_ms } => Wire::HoldPlaced { hold, expires_at_ms },
        Reply::HoldExtended { hold, expires_at_ms } => Wire::HoldExtended { hold, expires_at_ms },
        Reply::HoldReleased { hold, state, units_held } => {
            Wire::HoldReleased { hold, state, units_held }
        }
        Reply::HoldCommitted { hold } => Wire::HoldCommitted { hold },
        Reply::Hold(view) => Wire::Hold(view),
        Reply::RoutedHoldPlaced { hold, expires_at_ms, lines } => {
            Wire::RoutedHoldPlaced { hold, expires_at_ms, lines }
        }
        Reply::OrderPlaced { order, state, shipments, backordered_units } => {
            Wire::OrderPlaced { order, state, shipments, backordered_units }
        }
        Reply::OrderChanged { order, state } => Wire::OrderChanged { order, state },
        Reply::ShipmentChanged { shipment, state, order_state } => {
            Wire::ShipmentChanged { shipment, state, order_state }
        }
        Reply::ShortPicked { shipment, state, rerouted, backordered_units } => {
            Wire::ShortPicked { shipment, state, rerouted, backordered_units }
        }
        Reply::ReturnChanged { rma, state } => Wire::ReturnChanged { rma, state },
        Reply::ReturnExchanged { rma, order } => Wire::ReturnExchanged { rma, order },
        Reply::Order(view) => Wire::Order(view),
        Reply::Orders(page) => Wire::Orders(page),
        Reply::Shipment(view) => Wire::Shipment(view),
        Reply::Shipments(page) => Wire::Shipments(page),
        Reply::Return(view) => Wire::Return(view),
        Reply::Kpis(view) => Wire::Kpis(view),
        Reply::Routing(view) => Wire::Routing(view),
        Reply::Shortages(page) => Wire::Shortages(page),
        Reply::CommittedSettled { hold, units_committed } => {
            Wire::CommittedSettled { hold, units_committed }
        }
        Reply::Ticked { .. } | Reply::RoutingWeightsSet => {
            return Err(Error::new(ErrorCode::Unavailable, "internal tick reply reached a client"));
        }
    })
}

/// The wire form of an engine error: its typed code and its message.
pub fn error(error: EngineError) -> Error {
    let message = error.to_string();
    let code = match error {
        EngineError::InvalidArgument(_) => ErrorCode::InvalidArgument,
        EngineError::NotFound(_) => ErrorCode::NotFound,
        EngineError::InsufficientStock { line, available } => {
            ErrorCode::InsufficientStock { line, available }
        }
        EngineError::AlreadyResolved { how } => ErrorCode::AlreadyResolved { how },
        EngineError::IdempotencyConflict => ErrorCode::IdempotencyConflict,
        EngineError::InvalidTransition { from } => ErrorCode::InvalidTransition { from },
        EngineError::CompareFailed { actual } => ErrorCode::CompareFailed { actual },
        EngineError::Overloaded(_) => ErrorCode::Overloaded,
        EngineError::Unavailable(_) => ErrorCode::Unavailable,
    };
    Error { code, message }
}

/// One engine outcome as a response's result.
pub fn outcome(outcome: Result<Reply, EngineError>) -> Result<allot_protocol::Reply, Error> {
    outcome.map_err(error).and_then(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use allot_core::{Command, Resolution};

    #[test]
    fn insufficient_stock_keeps_its_line_and_available_count() {
        let wire = error(EngineError::InsufficientStock { line: 2, available: 5 });
        assert_eq!(wire.code, ErrorCode::InsufficientStock { line: 2, available: 5 });
        assert!(wire.message.contains("line 2"), "{}", wire.message);
    }

    #[test]
    fn already_resolved_says_how() {
        let wire = error(EngineError::AlreadyResolved { how: Resolution::Expired });
        assert_eq!(wire.code, ErrorCode::AlreadyResolved { how: Resolution::Expired });
    }

    #[test]
    fn a_tick_reply_never_reaches_a_client() {
        let wire = outcome(Ok(Reply::Ticked { expired: 3 })).unwrap_err();
        assert_eq!(wire.code, ErrorCode::Unavailable);
    }

    #[test]
    fn a_wire_command_becomes_the_same_logged_command() {
        let wire = allot_protocol::Command::CommitHold { hold: 9, order_number: "O-9".into() };
        let logged = request(Some("k-1".into()), wire);
        assert_eq!(logged.command, Command::CommitHold { hold: 9, order_number: "O-9".into() });
        assert_eq!(logged.idempotency_key.as_deref(), Some("k-1"));
    }
}
