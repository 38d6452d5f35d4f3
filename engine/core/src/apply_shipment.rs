//! Handlers for shipments: fulfilment steps, cancellation and short picks.

use allot_protocol::check;

use super::apply_order::{needs_of, transition};
use super::command::{ItemQuantity, ShipmentStep};
use super::order_state::PaymentState;
use super::outcome::{EngineError, OrderState, Outcome, Reply, ShipmentId, ShipmentState};
use super::shipment::{Lifecycle, ShipmentEvent};
use super::state::State;
use super::validate::invalid;
use crate::order::Shipment;

impl State {
    pub(crate) fn advance_shipment(
        &mut self,
        id: ShipmentId,
        step: &ShipmentStep,
        now_ms: u64,
    ) -> Outcome {
        let shipment = self.known_shipment(id)?;
        let event = event_of(step);
        self.check_order_allows(shipment, event)?;
        let next = (shipment.state.after(shipment.delivery, event))
            .map_err(|from| transition(from.name()))?;
        let (location, order) = (shipment.location(), shipment.order());
        if next.has_left() && !shipment.state.has_left() {
            self.consume(id, now_ms);
            self.close_shipment(id, next, now_ms);
        } else {
            let shipment = self.orders.shipment_mut(id);
            shipment.state = next;
            shipment.updated_at_ms = now_ms;
            if self.orders.shipment(id).expect("exists").is_on_floor() {
                self.orders.floor.insert((location, id));
            } else {
                self.orders.floor.remove(&(location, id));
            }
        }
        if let ShipmentStep::Ship { carrier, tracking } = step {
            let shipment = self.orders.shipment_mut(id);
            shipment.hand_over(carrier, tracking);
        }
        let order_state = self.orders.refresh(order);
        Ok(Reply::ShipmentChanged { shipment: id, state: next, order_state })
    }

    /// A hold stops everything but delivery of what already left; the floor gets work
    /// only once the payment is good.
    fn check_order_allows(
        &self,
        shipment: &Shipment,
        event: ShipmentEvent,
    ) -> Result<(), EngineError> {
        let order = self.orders.order(shipment.order()).expect("a shipment's order exists");
        if order.hold.is_some() && event != ShipmentEvent::Deliver {
            return Err(transition(OrderState::OnHold.name()));
        }
        let paid = matches!(order.payment, PaymentState::Authorised | PaymentState::Captured);
        if event == ShipmentEvent::Release && !paid {
            return Err(transition(order.payment.name()));
        }
        Ok(())
    }

    /// Shipping (or handing over at pickup) consumes `on_hand` and `allocated` at the
    /// location. A cell a negative adjustment left short cannot go below zero on hand.
    fn consume(&mut self, id: ShipmentId, now_ms: u64) {
        let shipment = self.orders.shipment(id).expect("exists");
        let (location, order, units) = (shipment.location(), shipment.order(), shipment.units());
        for line in &shipment.lines {
            let cell = self.stock.cell_mut(line.sku, location).expect("allocated cell");
            cell.allocated -= line.quantity;
            cell.on_hand = cell.on_hand.saturating_sub(line.quantity);
        }
        let placed_at_ms = self.orders.order(order).expect("exists").placed_at_ms;
        let kpis = &mut self.orders.kpis;
        kpis.units_shipped += units;
        kpis.placement_to_ship.record(now_ms - placed_at_ms);
    }

    pub(crate) fn cancel_shipment(&mut self, id: ShipmentId, now_ms: u64) -> Outcome {
        let shipment = self.known_shipment(id)?;
        if !shipment.state.is_open() {
            return Err(transition(shipment.state.name()));
        }
        let order = shipment.order();
        self.cancel_open_shipment(id, now_ms);
        let order_state = self.orders.refresh(order);
        Ok(Reply::ShipmentChanged { shipment: id, state: ShipmentState::Cancelled, order_state })
    }

    /// Units the location could not find: written off there (`on_hand` and `allocated`
    /// go down), then routed to other locations or backordered.
    pub(crate) fn short_pick(
        &mut self,
        id: ShipmentId,
        missing: &[ItemQuantity],
        now_ms: u64,
    ) -> Outcome {
        check::items("missing lines", missing).map_err(invalid)?;
        let shipment = self.known_shipment(id)?;
        if !shipment.is_on_floor() {
            return Err(transition(shipment.state.name()));
        }
        let needs = needs_of(missing, |sku| self.sku_id(sku))?;
        for need in &needs {
            let on_shipment = shipment.units_of(need.sku);
            if need.quantity > on_shipment {
                let sku = self.skus.name(need.sku);
                let message =
                    format!("{} of {sku} missing, the shipment has {on_shipment}", need.quantity);
                return Err(invalid(message));
            }
        }
        let (location, order) = (shipment.location(), shipment.order());
        for need in &needs {
            let cell = self.stock.cell_mut(need.sku, location).expect("allocated cell");
            cell.on_hand = cell.on_hand.saturating_sub(need.quantity);
            // With `allocated` going down in step, available at the location is unchanged:
            // the missing units were never there to sell.
            self.take_from_shipment(id, *need, now_ms);
        }
        let (rerouted, backordered_units) = self.reroute(order, &needs, Some(location), now_ms);
        self.orders.refresh(order);
        let state = self.orders.shipment(id).expect("exists").state;
        Ok(Reply::ShortPicked { shipment: id, state, rerouted, backordered_units })
    }

    fn known_shipment(&self, id: ShipmentId) -> Result<&Shipment, EngineError> {
        self.orders.shipment(id).ok_or_else(|| EngineError::NotFound(format!("shipment {id}")))
    }
}

fn event_of(step: &ShipmentStep) -> ShipmentEvent {
    match step {
        ShipmentStep::Release => ShipmentEvent::Release,
        ShipmentStep::StartPicking => ShipmentEvent::StartPicking,
        ShipmentStep::Pack => ShipmentEvent::Pack,
        ShipmentStep::Ship { .. } => ShipmentEvent::Ship,
        ShipmentStep::Deliver => ShipmentEvent::Deliver,
        ShipmentStep::ReadyForPickup => ShipmentEvent::ReadyForPickup,
        ShipmentStep::PickUp => ShipmentEvent::PickUp,
    }
}
