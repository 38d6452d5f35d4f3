//! The shipment lifecycle (DESIGN §2) as a transition table: which event may move a
//! shipment from which state, for shipped and for pickup deliveries. An event that does
//! not apply is refused with the state the shipment is in, which the caller turns into
//! `InvalidTransition { from }`.
//!
//! ```text
//! ship:    allocated → released → picking → packed → shipped → delivered
//! pickup:  allocated → released → picking → packed → ready_for_pickup → picked_up
//! either:  any state before it leaves the building → cancelled
//! ```

pub use allot_protocol::order::{Delivery, ShipmentState};

/// What happens to a shipment. Carrier and tracking ride with `Ship` in the command; the
/// table only needs to know that it shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShipmentEvent {
    Release,
    StartPicking,
    Pack,
    Ship,
    Deliver,
    ReadyForPickup,
    PickUp,
    Cancel,
}

/// The lifecycle rules on the wire's `ShipmentState` (a `Copy` value, so taken by value).
#[allow(clippy::wrong_self_convention)]
pub trait Lifecycle: Sized {
    /// The state `event` moves a `delivery` shipment to, or `Err(self)` if it may not.
    fn after(self, delivery: Delivery, event: ShipmentEvent) -> Result<Self, Self>;
    /// Still in the building: its stock is allocated, not yet consumed.
    fn is_open(self) -> bool;
    /// Work has started at the location (released to the floor or further).
    fn is_in_progress(self) -> bool;
    /// Left the location: shipping consumed `on_hand` (DESIGN §2).
    fn has_left(self) -> bool;
    /// In the customer's hands.
    fn is_delivered(self) -> bool;
}

impl Lifecycle for ShipmentState {
    /// The state `event` moves a `delivery` shipment to, or `Err(self)` if it may not.
    fn after(
        self,
        delivery: Delivery,
        event: ShipmentEvent,
    ) -> Result<ShipmentState, ShipmentState> {
        use ShipmentEvent as E;
        use ShipmentState as S;
        let next = match (delivery, self, event) {
            (_, S::Allocated, E::Release) => S::Released,
            (_, S::Released, E::StartPicking) => S::Picking,
            (_, S::Picking, E::Pack) => S::Packed,
            (Delivery::Ship, S::Packed, E::Ship) => S::Shipped,
            (Delivery::Ship, S::Shipped, E::Deliver) => S::Delivered,
            (Delivery::Pickup, S::Packed, E::ReadyForPickup) => S::ReadyForPickup,
            (Delivery::Pickup, S::ReadyForPickup, E::PickUp) => S::PickedUp,
            (_, state, E::Cancel) if state.is_open() => S::Cancelled,
            _ => return Err(self),
        };
        Ok(next)
    }

    /// Still in the building: its stock is allocated, not yet consumed.
    fn is_open(self) -> bool {
        matches!(
            self,
            ShipmentState::Allocated
                | ShipmentState::Released
                | ShipmentState::Picking
                | ShipmentState::Packed
                | ShipmentState::ReadyForPickup
        )
    }

    /// Work has started at the location (released to the floor or further).
    fn is_in_progress(self) -> bool {
        self.is_open() && self != ShipmentState::Allocated
    }

    /// Left the location: shipping consumed `on_hand` (DESIGN §2).
    fn has_left(self) -> bool {
        matches!(self, ShipmentState::Shipped | ShipmentState::Delivered | ShipmentState::PickedUp)
    }

    /// In the customer's hands.
    fn is_delivered(self) -> bool {
        matches!(self, ShipmentState::Delivered | ShipmentState::PickedUp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ShipmentEvent as E;
    use ShipmentState as S;

    const STATES: [S; 9] = [
        S::Allocated,
        S::Released,
        S::Picking,
        S::Packed,
        S::Shipped,
        S::Delivered,
        S::ReadyForPickup,
        S::PickedUp,
        S::Cancelled,
    ];
    const EVENTS: [E; 8] = [
        E::Release,
        E::StartPicking,
        E::Pack,
        E::Ship,
        E::Deliver,
        E::ReadyForPickup,
        E::PickUp,
        E::Cancel,
    ];

    fn walk(delivery: Delivery, events: &[E]) -> Result<S, S> {
        events.iter().try_fold(S::Allocated, |state, &event| state.after(delivery, event))
    }

    #[test]
    fn a_shipped_order_walks_from_allocated_to_delivered() {
        let path = [E::Release, E::StartPicking, E::Pack, E::Ship, E::Deliver];
        assert_eq!(walk(Delivery::Ship, &path), Ok(S::Delivered));
    }

    #[test]
    fn a_pickup_walks_from_allocated_to_picked_up_and_never_ships() {
        let path = [E::Release, E::StartPicking, E::Pack, E::ReadyForPickup, E::PickUp];
        assert_eq!(walk(Delivery::Pickup, &path), Ok(S::PickedUp));
        assert_eq!(S::Packed.after(Delivery::Pickup, E::Ship), Err(S::Packed));
        assert_eq!(S::Packed.after(Delivery::Ship, E::ReadyForPickup), Err(S::Packed));
    }

    #[test]
    fn a_refused_event_names_the_state_it_found() {
        assert_eq!(walk(Delivery::Ship, &[E::Pack]), Err(S::Allocated));
        assert_eq!(walk(Delivery::Ship, &[E::Release, E::Release]), Err(S::Released));
        assert_eq!(S::Delivered.after(Delivery::Ship, E::Cancel), Err(S::Delivered));
        assert_eq!(S::Cancelled.after(Delivery::Ship, E::Release), Err(S::Cancelled));
    }

    #[test]
    fn only_shipments_still_in_the_building_can_be_cancelled() {
        for state in STATES {
            for delivery in [Delivery::Ship, Delivery::Pickup] {
                let cancelled = state.after(delivery, E::Cancel);
                assert_eq!(cancelled.is_ok(), state.is_open(), "{state:?}");
            }
        }
    }

    #[test]
    fn terminal_states_accept_nothing_and_every_move_goes_forward() {
        let rank = |state: S| STATES.iter().position(|&other| other == state).unwrap();
        for state in STATES {
            for delivery in [Delivery::Ship, Delivery::Pickup] {
                for event in EVENTS {
                    match state.after(delivery, event) {
                        Ok(S::Cancelled) => assert!(state.is_open()),
                        Ok(next) => assert!(rank(next) > rank(state), "{state:?} → {next:?}"),
                        Err(from) => assert_eq!(from, state),
                    }
                }
                if matches!(state, S::Delivered | S::PickedUp | S::Cancelled) {
                    assert!(EVENTS.iter().all(|&event| state.after(delivery, event).is_err()));
                }
            }
        }
    }

    #[test]
    fn stock_follows_the_state() {
        assert!(S::Packed.is_open() && !S::Packed.has_left());
        assert!(S::Shipped.has_left() && !S::Shipped.is_open() && !S::Shipped.is_delivered());
        assert!(S::PickedUp.has_left() && S::PickedUp.is_delivered());
        assert!(!S::Cancelled.is_open() && !S::Cancelled.has_left());
        assert!(!S::Allocated.is_in_progress() && S::Released.is_in_progress());
    }
}
