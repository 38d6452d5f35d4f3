//! Answers to retries: the reply a remembered idempotency key stands for, rebuilt from
//! its compact [`Kept`] form, the retried command and the state.
//!
//! What is kept exactly and what is shown as it is now is specified in docs/protocol.md
//! ("Idempotency keys"): replies about holds and the ids a reply names are the
//! original's; cells, a location and an order's or shipment's state are shown as they
//! are at the retry.

use super::command::Command;
use super::idempotency::Kept;
use super::outcome::{HoldState, Reply, Resolution};
use super::state::State;

impl State {
    /// The reply to a retry of `command`, whose first run answered what `kept` keeps.
    pub(crate) fn rebuild_reply(&self, kept: Kept, command: &Command) -> Reply {
        match kept {
            Kept::HoldPlaced { hold, expires_at_ms } => Reply::HoldPlaced { hold, expires_at_ms },
            Kept::HoldExtended { hold, expires_at_ms } => {
                Reply::HoldExtended { hold, expires_at_ms }
            }
            Kept::HoldReleased { hold, units_held } => {
                // Only a release of every unit resolves a hold.
                let state = match units_held {
                    0 => HoldState::Resolved(Resolution::Released),
                    _ => HoldState::Held,
                };
                Reply::HoldReleased { hold, state, units_held }
            }
            Kept::HoldCommitted { hold } => Reply::HoldCommitted { hold },
            Kept::RoutedHoldPlaced { hold, expires_at_ms } => {
                let held = self.holds.holds.get(&hold).filter(|h| h.state == HoldState::Held);
                let lines = (held.into_iter())
                    .flat_map(|hold| hold.lines.iter().map(|line| self.hold_line_view(line)))
                    .collect();
                Reply::RoutedHoldPlaced { hold, expires_at_ms, lines }
            }
            Kept::CommittedSettled { hold, units_committed } => {
                Reply::CommittedSettled { hold, units_committed }
            }
            Kept::Cell => {
                let (sku, location) = match command {
                    Command::Receive { sku, location, .. }
                    | Command::Adjust { sku, location, .. }
                    | Command::CycleCount { sku, location, .. }
                    | Command::SetSafetyStock { sku, location, .. } => (sku, location),
                    other => unreachable!("{} does not answer a cell", other.name()),
                };
                Reply::Cell(self.known_cell_view(sku, location))
            }
            Kept::Transferred => {
                let Command::Transfer { sku, from, to, .. } = command else {
                    unreachable!("{} is not a transfer", command.name())
                };
                let (from, to) = (self.known_cell_view(sku, from), self.known_cell_view(sku, to));
                Reply::Transferred { from, to }
            }
            Kept::Location => {
                let code = match command {
                    Command::UpsertLocation(spec) => &spec.code,
                    Command::DeactivateLocation { location } => location,
                    other => unreachable!("{} does not answer a location", other.name()),
                };
                let id = self.location_codes.get(code).expect("a location is never removed");
                Reply::Location(self.location_view(id))
            }
            Kept::OrderPlaced => {
                let Command::PlaceOrder(order) = command else {
                    unreachable!("{} does not place an order", command.name())
                };
                let placed = self.placed_before(order, None).expect("a placed order is kept");
                placed.expect("the same order under its number")
            }
            Kept::OrderChanged { order } => {
                Reply::OrderChanged { order, state: self.kept_order(order).state }
            }
            Kept::ShipmentChanged { shipment } => {
                let record = self.orders.shipment(shipment).expect("a shipment is kept");
                let order_state = self.kept_order(record.order()).state;
                Reply::ShipmentChanged { shipment, state: record.state, order_state }
            }
            Kept::ShortPicked { shipment, first_rerouted, rerouted, backordered_units } => {
                let state = self.orders.shipment(shipment).expect("a shipment is kept").state;
                let rerouted = (first_rerouted..first_rerouted + u64::from(rerouted)).collect();
                let backordered_units = u64::from(backordered_units);
                Reply::ShortPicked { shipment, state, rerouted, backordered_units }
            }
            Kept::ReturnChanged { rma } => {
                let state = self.orders.return_record(rma).expect("a return is kept").state;
                Reply::ReturnChanged { rma, state }
            }
            Kept::ReturnExchanged { rma, order } => Reply::ReturnExchanged { rma, order },
        }
    }

    fn known_cell_view(&self, sku: &str, location: &str) -> super::outcome::CellView {
        let sku = self.skus.get(sku).expect("a sku is never removed");
        let location = self.location_codes.get(location).expect("a location is never removed");
        self.cell_view(sku, location)
    }

    fn kept_order(&self, order: super::outcome::OrderId) -> &super::order::Order {
        self.orders.order(order).expect("an order is kept")
    }
}
