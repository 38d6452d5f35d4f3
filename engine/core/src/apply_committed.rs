//! Units committed outside allot (`CommitHold`) leaving it: the outside system ships
//! them (`ConsumeCommitted`: `on_hand` and `allocated` drop) or cancels them
//! (`ReleaseCommitted`: `allocated` drops, the units are available again), per line and
//! quantity or all at once. Without this, committed units stayed allocated for ever.

use super::command::LineRequest;
use super::hold::{Fate, Hold};
use super::ids::HoldId;
use super::outcome::{EngineError, HoldState, Outcome, Reply, Resolution};
use super::state::State;
use super::validate::invalid;

/// What became of committed units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Shipped by the outside system: they leave `on_hand` too.
    Consume,
    /// Its order was cancelled: they are available again.
    Release,
}

impl Settle {
    fn verb(self) -> &'static str {
        match self {
            Settle::Consume => "consuming",
            Settle::Release => "releasing",
        }
    }
}

impl State {
    /// Consumes or releases `lines` of committed hold `id` (all it has when empty).
    pub(crate) fn settle_committed(
        &mut self,
        id: HoldId,
        lines: &[LineRequest],
        how: Settle,
        now_ms: u64,
    ) -> Outcome {
        let hold = self.committed_outside(id)?;
        let mut settles = self.releases_for(id, hold, lines, how.verb())?;
        if lines.is_empty() {
            settles = hold.lines.iter().enumerate().map(|(i, line)| (i, line.quantity)).collect();
        }
        if how == Settle::Consume {
            self.check_consumable(hold, &settles)?;
        }
        let hold = self.holds.holds.get_mut(&id).expect("checked");
        for &(index, units) in &settles {
            let line = &mut hold.lines[index];
            line.quantity -= units;
            let cell = self.stock.cell_mut(line.sku, line.location).expect("committed cell");
            assert!(cell.allocated >= units, "committed units are allocated");
            cell.allocated -= units;
            if how == Settle::Consume {
                cell.on_hand -= units;
            }
            let key = (line.sku, line.location);
            let outside = self.committed_outside.get_mut(&key).expect("committed units counted");
            *outside -= u64::from(units);
            if *outside == 0 {
                self.committed_outside.remove(&key);
            }
        }
        hold.retain_lines(|line| line.quantity > 0);
        let units_committed = hold.units();
        if units_committed == 0 {
            self.holds.settled(id, now_ms);
        }
        Ok(Reply::CommittedSettled { hold: id, units_committed })
    }

    /// A hold committed outside allot with units still committed; any other answers
    /// precisely why not (from its tombstone once it left the table).
    fn committed_outside(&self, id: HoldId) -> Result<&Hold, EngineError> {
        let from = |state: &str| EngineError::InvalidTransition { from: state.into() };
        let Some(hold) = self.holds.holds.get(&id) else {
            return Err(match self.holds.tombstones.fate(id) {
                // Every unit was consumed or released before.
                Some(Fate::Settled) => from("settled"),
                // Converted by `PlaceOrder`: its units leave with the order's shipments.
                Some(Fate::Ordered) => from("ordered"),
                Some(fate) => EngineError::AlreadyResolved { how: fate.resolution() },
                None => EngineError::NotFound(format!("hold {id}")),
            });
        };
        match hold.state {
            HoldState::Held => Err(from("held")),
            HoldState::Resolved(Resolution::Committed) if self.holds.outside.contains_key(&id) => {
                Ok(hold)
            }
            HoldState::Resolved(how) => unreachable!("a hold {how} is not kept in the table"),
        }
    }

    /// Shipped units must be on hand: a cell counted short cannot ship what it lacks.
    fn check_consumable(&self, hold: &Hold, settles: &[(usize, u32)]) -> Result<(), EngineError> {
        for &(index, units) in settles {
            let line = &hold.lines[index];
            let on_hand = self.stock.cell(line.sku, line.location).map_or(0, |c| c.on_hand);
            if on_hand < units {
                return Err(invalid(format!(
                    "consuming {units} units of {} at {}, which has {on_hand} on hand",
                    self.skus.name(line.sku),
                    self.location_codes.name(line.location)
                )));
            }
        }
        Ok(())
    }
}
