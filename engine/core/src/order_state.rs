//! An order's aggregate state (DESIGN §2), derived from its quantities and flags rather
//! than stored, so it can never disagree with its shipments and lines.

pub use allot_protocol::order::{OrderState, PaymentState};

/// Unit counts over all of an order's lines, and its flags. Every live unit (ordered
/// minus cancelled) is in exactly one of backordered, allocated, in progress or shipped;
/// delivered and returned count units that shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrderTally {
    pub ordered: u64,
    pub cancelled: u64,
    pub backordered: u64,
    /// In shipments not yet released to the floor.
    pub allocated: u64,
    /// In shipments released, being picked, packed or waiting for pickup.
    pub in_progress: u64,
    /// Left their location (delivered ones included).
    pub shipped: u64,
    pub delivered: u64,
    /// Received back from the customer.
    pub returned: u64,
    /// A manual or fraud hold is on.
    pub on_hold: bool,
    pub payment: Option<PaymentState>,
}

impl OrderTally {
    fn live(&self) -> u64 {
        self.ordered - self.cancelled
    }

    /// The tally's own consistency; the engine builds tallies, so a failure is a bug.
    fn assert_consistent(&self) {
        assert!(self.cancelled <= self.ordered, "{self:?}");
        assert_eq!(
            self.backordered + self.allocated + self.in_progress + self.shipped,
            self.live(),
            "every live unit is in one place: {self:?}"
        );
        assert!(self.delivered <= self.shipped && self.returned <= self.delivered, "{self:?}");
    }
}

/// The state an order with `tally` is in. Later stages win: an order with some units
/// delivered and some still picking is partially shipped, not in progress.
pub fn derive(tally: &OrderTally) -> OrderState {
    tally.assert_consistent();
    let live = tally.live();
    if live == 0 {
        return OrderState::Cancelled;
    }
    if tally.returned > 0 {
        return if tally.returned == live {
            OrderState::Returned
        } else {
            OrderState::PartiallyReturned
        };
    }
    if tally.delivered == live {
        return OrderState::Delivered;
    }
    if tally.shipped == live {
        return OrderState::Shipped;
    }
    if tally.on_hold {
        return OrderState::OnHold;
    }
    if tally.shipped > 0 {
        return OrderState::PartiallyShipped;
    }
    if tally.in_progress > 0 {
        return OrderState::InProgress;
    }
    if tally.backordered > 0 {
        return OrderState::Backordered;
    }
    match tally.payment {
        Some(PaymentState::Authorised | PaymentState::Captured) => OrderState::Confirmed,
        Some(
            PaymentState::Pending
            | PaymentState::Failed
            | PaymentState::Refunded
            | PaymentState::Voided,
        )
        | None => OrderState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four units, all allocated, paid.
    fn placed() -> OrderTally {
        OrderTally {
            ordered: 4,
            allocated: 4,
            payment: Some(PaymentState::Authorised),
            ..OrderTally::default()
        }
    }

    #[test]
    fn payment_decides_between_pending_and_confirmed() {
        assert_eq!(derive(&placed()), OrderState::Confirmed);
        for payment in [None, Some(PaymentState::Pending), Some(PaymentState::Failed)] {
            assert_eq!(derive(&OrderTally { payment, ..placed() }), OrderState::Pending);
        }
        let captured = OrderTally { payment: Some(PaymentState::Captured), ..placed() };
        assert_eq!(derive(&captured), OrderState::Confirmed);
    }

    #[test]
    fn each_stage_of_fulfilment_has_its_state() {
        let backordered = OrderTally { allocated: 3, backordered: 1, ..placed() };
        assert_eq!(derive(&backordered), OrderState::Backordered);
        let started = OrderTally { allocated: 1, in_progress: 2, backordered: 1, ..placed() };
        assert_eq!(derive(&started), OrderState::InProgress);
        let partly =
            OrderTally { allocated: 0, in_progress: 1, shipped: 3, delivered: 2, ..placed() };
        assert_eq!(derive(&partly), OrderState::PartiallyShipped);
        let shipped = OrderTally { allocated: 0, shipped: 4, delivered: 3, ..placed() };
        assert_eq!(derive(&shipped), OrderState::Shipped);
        let delivered = OrderTally { allocated: 0, shipped: 4, delivered: 4, ..placed() };
        assert_eq!(derive(&delivered), OrderState::Delivered);
        let part_returned = OrderTally { returned: 1, ..delivered };
        assert_eq!(derive(&part_returned), OrderState::PartiallyReturned);
        let returned = OrderTally { returned: 4, ..delivered };
        assert_eq!(derive(&returned), OrderState::Returned);
    }

    #[test]
    fn cancelled_lines_leave_the_rest_to_decide() {
        let all = OrderTally { cancelled: 4, allocated: 0, ..placed() };
        assert_eq!(derive(&all), OrderState::Cancelled);
        let some = OrderTally { cancelled: 1, allocated: 0, shipped: 3, delivered: 3, ..placed() };
        assert_eq!(derive(&some), OrderState::Delivered, "the live units are all delivered");
    }

    #[test]
    fn a_hold_stops_an_order_until_everything_has_left() {
        let held = OrderTally { on_hold: true, ..placed() };
        assert_eq!(derive(&held), OrderState::OnHold);
        let partly = OrderTally { on_hold: true, allocated: 2, shipped: 2, ..placed() };
        assert_eq!(derive(&partly), OrderState::OnHold);
        let gone = OrderTally { on_hold: true, allocated: 0, shipped: 4, ..placed() };
        assert_eq!(derive(&gone), OrderState::Shipped, "a hold cannot call back a parcel");
    }

    #[test]
    #[should_panic(expected = "every live unit is in one place")]
    fn a_tally_that_loses_units_is_a_bug() {
        derive(&OrderTally { allocated: 3, ..placed() });
    }
}
