//! What the harness was acknowledged, kept apart from what it merely sent: per stock cell,
//! the change in `held`, `allocated` and `on_hand` the answers imply, with a margin for
//! requests whose outcome is unknown (a timeout or a lost connection after the client's
//! retries).
//!
//! Each load slot keeps its own ledger; they are merged after the run and compared with
//! the server's counters by [`audit`](super::audit).

use std::collections::HashMap;

use allot_protocol::order::{OrderId, OrderState};
use allot_protocol::{HoldId, Resolution};
use foldhash::fast::RandomState;
use serde::Serialize;

use super::ack_log::AckLog;
use crate::CellPick;

pub use crate::UNITS_PER_LINE;
/// Holds per outcome each ledger keeps to check one by one after the run.
pub const SAMPLED_HOLDS_PER_OUTCOME_MAX: usize = 64;
/// Orders per final state (delivered, returned, cancelled) the merged ledger keeps to
/// check one by one after the run.
pub const SAMPLED_ORDERS_PER_STATE_MAX: usize = 64;
/// Refused steps the ledger keeps the words of, for the audit's details.
pub const PROBLEMS_KEPT_MAX: usize = 10;
/// The final order states `lifecycle` samples.
pub const SAMPLED_ORDER_STATES: [OrderState; 3] =
    [OrderState::Delivered, OrderState::Returned, OrderState::Cancelled];

/// The change a cell's counters should show after the run, once every expiry the ledger
/// counts on is due: `held` within `held ..= held + held_unknown`, and the same for
/// `allocated` and `on_hand`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    pub held: i64,
    pub held_unknown: u64,
    pub allocated: i64,
    pub allocated_unknown: u64,
    pub on_hand: i64,
    pub on_hand_unknown: u64,
}

/// What the answers say became of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Held,
    Resolved(Resolution),
}

/// What the answers added up to; the report shows it as `ledger`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub holds_acked: u64,
    pub commits_acked: u64,
    /// `checkout`: committed holds acknowledged as shipped by the outside order system.
    pub consumes_acked: u64,
    pub releases_acked: u64,
    /// Holds left to expire, or found expired.
    pub expiries: u64,
    /// Requests with no answer after every retry: each may or may not have been applied.
    pub unknown_outcomes: u64,
    /// `flash-sale`: buyers who got their unit, who found it sold out everywhere, and who
    /// gave up after too many attempts.
    pub sold: u64,
    pub sold_out: u64,
    pub gave_up: u64,
    /// `lifecycle`: orders acknowledged as placed; refused for want of stock; refused for
    /// any other reason (the audit fails on those).
    pub orders_placed: u64,
    pub orders_short: u64,
    pub orders_refused: u64,
    /// `lifecycle`: orders seen through to their final state.
    pub orders_delivered: u64,
    pub orders_returned: u64,
    pub orders_cancelled: u64,
    /// `lifecycle`: orders given up on after unknown outcomes (their cells get a margin),
    /// and orders whose steps the server kept refusing (the audit fails on those).
    pub orders_abandoned: u64,
    pub orders_stuck: u64,
    /// `lifecycle`: order reads made to learn where an order stood after an unknown
    /// outcome or a refusal.
    pub resyncs: u64,
    pub shipments_shipped: u64,
    pub units_shipped: u64,
    pub returns_refunded: u64,
    pub units_restocked: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.holds_acked += other.holds_acked;
        self.commits_acked += other.commits_acked;
        self.consumes_acked += other.consumes_acked;
        self.releases_acked += other.releases_acked;
        self.expiries += other.expiries;
        self.unknown_outcomes += other.unknown_outcomes;
        self.sold += other.sold;
        self.sold_out += other.sold_out;
        self.gave_up += other.gave_up;
        self.orders_placed += other.orders_placed;
        self.orders_short += other.orders_short;
        self.orders_refused += other.orders_refused;
        self.orders_delivered += other.orders_delivered;
        self.orders_returned += other.orders_returned;
        self.orders_cancelled += other.orders_cancelled;
        self.orders_abandoned += other.orders_abandoned;
        self.orders_stuck += other.orders_stuck;
        self.resyncs += other.resyncs;
        self.shipments_shipped += other.shipments_shipped;
        self.units_shipped += other.units_shipped;
        self.returns_refunded += other.returns_refunded;
        self.units_restocked += other.units_restocked;
    }
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// Touched on every acknowledgement, so hashed with foldhash rather than SipHash.
    pub cells: HashMap<CellPick, Expect, RandomState>,
    pub tally: Tally,
    /// Unix milliseconds by which every expiry counted on is due.
    pub settle_at_ms: u64,
    pub samples: Vec<(HoldId, Outcome)>,
    /// How many of `samples` are held, committed, released, expired.
    sampled: [usize; 4],
    /// Orders in their final state, to check one by one after the run.
    pub order_samples: Vec<(OrderId, OrderState)>,
    /// How many of `order_samples` are in each of [`SAMPLED_ORDER_STATES`].
    orders_sampled: [usize; 3],
    /// What the server said when it refused an order or kept refusing its steps.
    pub problems: Vec<String>,
    ack_log: Option<AckLog>,
}

impl Ledger {
    pub fn new(ack_log: Option<AckLog>) -> Ledger {
        Ledger { ack_log, ..Ledger::default() }
    }

    fn cell(&mut self, pick: CellPick) -> &mut Expect {
        self.cells.entry(pick).or_default()
    }

    fn sample(&mut self, hold: HoldId, outcome: Outcome) {
        let index = match outcome {
            Outcome::Held => 0,
            Outcome::Resolved(Resolution::Committed) => 1,
            Outcome::Resolved(Resolution::Released) => 2,
            Outcome::Resolved(Resolution::Expired) => 3,
        };
        if self.sampled[index] < SAMPLED_HOLDS_PER_OUTCOME_MAX {
            self.sampled[index] += 1;
            self.samples.push((hold, outcome));
        }
    }

    /// The server acknowledged hold `hold` of one unit on each of `lines`.
    pub fn hold_acked(&mut self, hold: HoldId, lines: &[CellPick]) {
        self.tally.holds_acked += 1;
        for &pick in lines {
            self.cell(pick).held += i64::from(UNITS_PER_LINE);
        }
        if let Some(log) = &self.ack_log {
            log.record(hold, lines);
        }
    }

    /// A hold that stays live to the end of the run (and past the audit).
    pub fn stays_held(&mut self, hold: HoldId) {
        self.sample(hold, Outcome::Held);
    }

    /// A hold request went unanswered: it may be holding its lines.
    pub fn hold_unknown(&mut self, lines: &[CellPick]) {
        self.tally.unknown_outcomes += 1;
        for &pick in lines {
            self.cell(pick).held_unknown += u64::from(UNITS_PER_LINE);
        }
    }

    pub fn committed(&mut self, hold: HoldId, lines: &[CellPick]) {
        self.tally.commits_acked += 1;
        for &pick in lines {
            let cell = self.cell(pick);
            cell.held -= i64::from(UNITS_PER_LINE);
            cell.allocated += i64::from(UNITS_PER_LINE);
        }
        self.sample(hold, Outcome::Resolved(Resolution::Committed));
    }

    /// A committed hold's units were shipped by the outside order system: they left
    /// `allocated` and `on_hand`.
    pub fn consumed(&mut self, _hold: HoldId, lines: &[CellPick]) {
        self.tally.consumes_acked += 1;
        for &pick in lines {
            let cell = self.cell(pick);
            cell.allocated -= i64::from(UNITS_PER_LINE);
            cell.on_hand -= i64::from(UNITS_PER_LINE);
        }
    }

    /// A shipment of committed units went unanswered: they may have left `allocated`
    /// and `on_hand`, or may still be there.
    pub fn consume_unknown(&mut self, lines: &[CellPick]) {
        self.tally.unknown_outcomes += 1;
        for &pick in lines {
            let cell = self.cell(pick);
            cell.allocated -= i64::from(UNITS_PER_LINE);
            cell.allocated_unknown += u64::from(UNITS_PER_LINE);
            cell.on_hand -= i64::from(UNITS_PER_LINE);
            cell.on_hand_unknown += u64::from(UNITS_PER_LINE);
        }
    }

    pub fn released(&mut self, hold: HoldId, lines: &[CellPick]) {
        self.tally.releases_acked += 1;
        for &pick in lines {
            self.cell(pick).held -= i64::from(UNITS_PER_LINE);
        }
        self.sample(hold, Outcome::Resolved(Resolution::Released));
    }

    /// A hold that is, or will be by `expires_at_ms`, expired: its units come back.
    pub fn expires(&mut self, hold: HoldId, lines: &[CellPick], expires_at_ms: u64) {
        self.tally.expiries += 1;
        for &pick in lines {
            self.cell(pick).held -= i64::from(UNITS_PER_LINE);
        }
        self.settle_at_ms = self.settle_at_ms.max(expires_at_ms);
        self.sample(hold, Outcome::Resolved(Resolution::Expired));
    }

    /// A commit went unanswered: the hold was either committed or expires by
    /// `expires_at_ms`; its units leave `held` either way and may be `allocated`.
    pub fn commit_unknown(&mut self, lines: &[CellPick], expires_at_ms: u64) {
        self.tally.unknown_outcomes += 1;
        for &pick in lines {
            let cell = self.cell(pick);
            cell.held -= i64::from(UNITS_PER_LINE);
            cell.allocated_unknown += u64::from(UNITS_PER_LINE);
        }
        self.settle_at_ms = self.settle_at_ms.max(expires_at_ms);
    }

    /// A release went unanswered: released or expired by `expires_at_ms`, the units come
    /// back either way.
    pub fn release_unknown(&mut self, lines: &[CellPick], expires_at_ms: u64) {
        self.tally.unknown_outcomes += 1;
        for &pick in lines {
            self.cell(pick).held -= i64::from(UNITS_PER_LINE);
        }
        self.settle_at_ms = self.settle_at_ms.max(expires_at_ms);
    }

    /// `units` of an order shipped from `pick`: they leave `on_hand` (and `allocated`,
    /// where placing the order put them, so that nets to nothing).
    pub fn shipped(&mut self, pick: CellPick, units: u32) {
        self.tally.units_shipped += u64::from(units);
        self.cell(pick).on_hand -= i64::from(units);
    }

    /// `units` received back as resellable at `pick`.
    pub fn restocked(&mut self, pick: CellPick, units: u32) {
        self.tally.units_restocked += u64::from(units);
        self.cell(pick).on_hand += i64::from(units);
    }

    /// An order given up on may still hold `units` allocated at `pick`.
    pub fn allocation_unknown(&mut self, pick: CellPick, units: u32) {
        self.cell(pick).allocated_unknown += u64::from(units);
    }

    /// A shipment given up on may have shipped `units` from `pick` (so `on_hand` fell) or
    /// may still have them allocated there.
    pub fn ship_unknown(&mut self, pick: CellPick, units: u32) {
        let cell = self.cell(pick);
        cell.on_hand -= i64::from(units);
        cell.on_hand_unknown += u64::from(units);
        cell.allocated_unknown += u64::from(units);
    }

    /// A return given up on may have put `units` back on hand at `pick`.
    pub fn restock_unknown(&mut self, pick: CellPick, units: u32) {
        self.cell(pick).on_hand_unknown += u64::from(units);
    }

    /// Order `order` reached `state`, its last: counted, and sampled while there is room.
    pub fn order_finished(&mut self, order: OrderId, state: OrderState) {
        match state {
            OrderState::Delivered => self.tally.orders_delivered += 1,
            OrderState::Returned | OrderState::PartiallyReturned => {
                self.tally.orders_returned += 1;
            }
            OrderState::Cancelled => self.tally.orders_cancelled += 1,
            _ => {}
        }
        self.sample_order(order, state);
    }

    fn sample_order(&mut self, order: OrderId, state: OrderState) {
        if let Some(index) = SAMPLED_ORDER_STATES.iter().position(|&sampled| sampled == state)
            && self.orders_sampled[index] < SAMPLED_ORDERS_PER_STATE_MAX
        {
            self.orders_sampled[index] += 1;
            self.order_samples.push((order, state));
        }
    }

    /// Keeps what the server said about an order it would not take or move, while there
    /// is room.
    pub fn problem(&mut self, what: String) {
        if self.problems.len() < PROBLEMS_KEPT_MAX {
            self.problems.push(what);
        }
    }

    /// Adds another slot's ledger to this one.
    pub fn absorb(&mut self, other: Ledger) {
        for (pick, expect) in other.cells {
            let cell = self.cell(pick);
            cell.held += expect.held;
            cell.held_unknown += expect.held_unknown;
            cell.allocated += expect.allocated;
            cell.allocated_unknown += expect.allocated_unknown;
            cell.on_hand += expect.on_hand;
            cell.on_hand_unknown += expect.on_hand_unknown;
        }
        self.tally += other.tally;
        self.settle_at_ms = self.settle_at_ms.max(other.settle_at_ms);
        self.samples.extend(other.samples);
        for (order, state) in other.order_samples {
            self.sample_order(order, state);
        }
        for problem in other.problems {
            self.problem(problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: CellPick = CellPick { sku: 1, location: 2 };
    const B: CellPick = CellPick { sku: 3, location: 4 };

    #[test]
    fn resolutions_move_units_between_counters() {
        let mut ledger = Ledger::new(None);
        ledger.hold_acked(1, &[A, B]);
        ledger.hold_acked(2, &[A]);
        ledger.hold_acked(3, &[B]);
        ledger.committed(1, &[A, B]);
        ledger.released(2, &[A]);
        ledger.expires(3, &[B], 5_000);
        assert_eq!(ledger.cells[&A], Expect { held: 0, allocated: 1, ..Expect::default() });
        assert_eq!(ledger.cells[&B], Expect { held: 0, allocated: 1, ..Expect::default() });
        assert_eq!(
            (ledger.tally.holds_acked, ledger.tally.commits_acked, ledger.tally.releases_acked),
            (3, 1, 1)
        );
        assert_eq!((ledger.tally.expiries, ledger.settle_at_ms), (1, 5_000));
    }

    #[test]
    fn unknown_outcomes_widen_the_margin_only() {
        let mut ledger = Ledger::new(None);
        ledger.hold_unknown(&[A]);
        ledger.hold_acked(7, &[B]);
        ledger.commit_unknown(&[B], 9_000);
        assert_eq!(ledger.cells[&A], Expect { held_unknown: 1, ..Expect::default() });
        assert_eq!(ledger.cells[&B], Expect { allocated_unknown: 1, ..Expect::default() });
        assert_eq!((ledger.tally.unknown_outcomes, ledger.settle_at_ms), (2, 9_000));
    }

    #[test]
    fn merged_ledgers_add_up() {
        let mut left = Ledger::new(None);
        left.hold_acked(1, &[A]);
        let mut right = Ledger::new(None);
        right.hold_acked(2, &[A]);
        right.expires(2, &[A], 3_000);
        right.hold_acked(3, &[A]);
        left.absorb(right);
        assert_eq!(left.cells[&A].held, 2);
        assert_eq!((left.tally.holds_acked, left.tally.expiries, left.settle_at_ms), (3, 1, 3_000));
    }

    #[test]
    fn shipping_and_restocking_move_on_hand_and_margins_widen_it() {
        let mut ledger = Ledger::new(None);
        ledger.shipped(A, 3);
        ledger.restocked(A, 1);
        ledger.ship_unknown(B, 2);
        ledger.restock_unknown(B, 1);
        ledger.allocation_unknown(B, 4);
        assert_eq!(ledger.cells[&A], Expect { on_hand: -2, ..Expect::default() });
        let b =
            Expect { on_hand: -2, on_hand_unknown: 3, allocated_unknown: 6, ..Expect::default() };
        assert_eq!(ledger.cells[&B], b);
        assert_eq!((ledger.tally.units_shipped, ledger.tally.units_restocked), (3, 1));
        let mut other = Ledger::new(None);
        other.shipped(A, 1);
        ledger.absorb(other);
        assert_eq!(ledger.cells[&A].on_hand, -3);
    }

    #[test]
    fn order_samples_are_bounded_per_final_state_across_ledgers() {
        let mut ledger = Ledger::new(None);
        for order in 0..100 {
            ledger.order_finished(order, OrderState::Delivered);
        }
        let mut other = Ledger::new(None);
        for order in 100..200 {
            other.order_finished(order, OrderState::Delivered);
        }
        other.order_finished(500, OrderState::Cancelled);
        ledger.absorb(other);
        assert_eq!(ledger.order_samples.len(), SAMPLED_ORDERS_PER_STATE_MAX + 1);
        assert_eq!((ledger.tally.orders_delivered, ledger.tally.orders_cancelled), (200, 1));
    }

    #[test]
    fn samples_are_bounded_per_outcome() {
        let mut ledger = Ledger::new(None);
        for hold in 0..1_000 {
            ledger.hold_acked(hold, &[A]);
            ledger.stays_held(hold);
        }
        ledger.hold_acked(5_000, &[A]);
        ledger.released(5_000, &[A]);
        assert_eq!(ledger.samples.len(), SAMPLED_HOLDS_PER_OUTCOME_MAX + 1);
    }
}
