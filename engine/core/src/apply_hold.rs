//! Handlers for cart holds: reserve, extend, release (all or part), commit, expire.

use allot_protocol::check;

use super::apply_order::{decision, needs_of};
use super::command::{DeliveryRequest, ItemQuantity, LineRequest};
use super::hold::{Hold, HoldLine};
use super::ids::HoldId;
use super::limits::{HOLD_TTL_MS_DEFAULT, LINES_PER_HOLD_MAX, ORDER_NUMBER_BYTES_MAX};
use super::outcome::{EngineError, HoldState, Outcome, Reply, Resolution};
use super::state::State;
use super::validate::{invalid, quantity, text, ttl};

impl State {
    pub(crate) fn reserve(
        &mut self,
        lines: &[LineRequest],
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> Outcome {
        let ttl_ms = ttl(ttl_ms.unwrap_or(HOLD_TTL_MS_DEFAULT))?;
        self.room_for_a_hold()?;
        let merged = self.merge_lines(lines)?;
        for line in &merged {
            let available = self.stock.available(line.sku, line.location);
            if available < i64::from(line.quantity) {
                let line = self.first_request_line(lines, line);
                return Err(EngineError::InsufficientStock { line, available });
            }
        }
        let (hold, expires_at_ms) = self.hold_cells(merged, ttl_ms, now_ms);
        Ok(Reply::HoldPlaced { hold, expires_at_ms })
    }

    /// `Overloaded` when the hold table is at its cap (the configured one, else the
    /// ceiling): only new holds are refused.
    fn room_for_a_hold(&self) -> Result<(), EngineError> {
        let cap = self.caps.holds_max;
        if self.holds.holds.len() >= cap {
            return Err(EngineError::Overloaded(format!("{cap} holds in memory, the cap")));
        }
        Ok(())
    }

    /// Holds `lines` (checked available) until `now + ttl`: the mutating half of a
    /// reserve, shared by holds that name their locations and routed ones.
    fn hold_cells(&mut self, lines: Vec<HoldLine>, ttl_ms: u64, now_ms: u64) -> (HoldId, u64) {
        for line in &lines {
            self.stock.cell_mut(line.sku, line.location).expect("checked available").held +=
                line.quantity;
        }
        let id = self.holds.next_id;
        self.holds.next_id += 1;
        let expires_at_ms = now_ms + ttl_ms;
        let hold = Hold {
            state: HoldState::Held,
            lines: lines.into_boxed_slice(),
            created_at_ms: now_ms,
            expires_at_ms,
            order_number: None,
        };
        self.holds.holds.insert(id, hold);
        self.holds.expiry.insert(id, expires_at_ms);
        self.counters.holds_placed += 1;
        (id, expires_at_ms)
    }

    /// A hold whose lines name no location: routed as an order to `destination` would
    /// be, all lines or none, and the decision kept with the hold.
    pub(crate) fn reserve_routed(
        &mut self,
        items: &[ItemQuantity],
        destination: &DeliveryRequest,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> Outcome {
        check::items("hold lines", items).map_err(invalid)?;
        check::delivery(destination).map_err(invalid)?;
        let ttl_ms = ttl(ttl_ms.unwrap_or(HOLD_TTL_MS_DEFAULT))?;
        self.room_for_a_hold()?;
        let needs = needs_of(items, |sku| self.sku_id(sku))?;
        let delivery = self.order_delivery(destination)?;
        let plan = self.plan(&needs, &delivery, None, self.routing_weights.shipments_max);
        if let Some(short) = plan.unfilled.first() {
            let line = (items.iter())
                .position(|item| self.skus.get(&item.sku) == Some(short.sku))
                .expect("needs come from items");
            let available = self.routable_units(&plan, short.sku);
            return Err(EngineError::InsufficientStock { line: line as u32, available });
        }
        let lines: Vec<HoldLine> = (plan.allocations.iter())
            .flat_map(|allocation| {
                let location = allocation.location;
                allocation.lines.iter().map(move |need| HoldLine {
                    sku: need.sku,
                    location,
                    quantity: need.quantity,
                })
            })
            .collect();
        if lines.len() > LINES_PER_HOLD_MAX {
            let count = lines.len();
            return Err(invalid(format!("routed to {count} cells, over {LINES_PER_HOLD_MAX}")));
        }
        let views = lines.iter().map(|line| self.hold_line_view(line)).collect();
        let (hold, expires_at_ms) = self.hold_cells(lines, ttl_ms, now_ms);
        self.holds.routed.insert(hold, decision(&plan));
        Ok(Reply::RoutedHoldPlaced { hold, expires_at_ms, lines: views })
    }

    pub(crate) fn extend_hold(&mut self, id: HoldId, ttl_ms: u64, now_ms: u64) -> Outcome {
        let ttl_ms = ttl(ttl_ms)?;
        self.live_hold(id, now_ms)?;
        let expires_at_ms = now_ms + ttl_ms;
        self.holds.holds.get_mut(&id).expect("live").expires_at_ms = expires_at_ms;
        self.holds.expiry.insert(id, expires_at_ms);
        Ok(Reply::HoldExtended { hold: id, expires_at_ms })
    }

    pub(crate) fn release_hold(
        &mut self,
        id: HoldId,
        lines: &[LineRequest],
        now_ms: u64,
    ) -> Outcome {
        let hold = self.live_hold(id, now_ms)?;
        let units_held = hold.units();
        let releases = self.releases_for(id, hold, lines, "releasing")?;
        let released: u64 = releases.iter().map(|(_, units)| u64::from(*units)).sum();
        if lines.is_empty() || released == units_held {
            self.free_hold(id, Resolution::Released, now_ms);
            self.counters.holds_released += 1;
            let state = HoldState::Resolved(Resolution::Released);
            return Ok(Reply::HoldReleased { hold: id, state, units_held: 0 });
        }
        let hold = self.holds.holds.get_mut(&id).expect("live");
        for (index, units) in &releases {
            let line = &mut hold.lines[*index];
            line.quantity -= units;
            self.stock.cell_mut(line.sku, line.location).expect("held cell exists").held -= units;
        }
        hold.retain_lines(|line| line.quantity > 0);
        let units_held = units_held - released;
        Ok(Reply::HoldReleased { hold: id, state: HoldState::Held, units_held })
    }

    pub(crate) fn commit_hold(&mut self, id: HoldId, order_number: &str, now_ms: u64) -> Outcome {
        self.live_hold(id, now_ms)?;
        text("order number", order_number, ORDER_NUMBER_BYTES_MAX)?;
        let hold = self.holds.holds.get_mut(&id).expect("live");
        hold.order_number = Some(order_number.into());
        for line in &hold.lines {
            let cell = self.stock.cell_mut(line.sku, line.location).expect("held cell exists");
            cell.held -= line.quantity;
            cell.allocated += line.quantity;
            *self.committed_outside.entry((line.sku, line.location)).or_default() +=
                u64::from(line.quantity);
        }
        self.holds.commit_outside(id, now_ms);
        self.counters.holds_committed += 1;
        Ok(Reply::HoldCommitted { hold: id })
    }

    /// Called by the tick for a hold past its deadline.
    pub(crate) fn expire_hold(&mut self, id: HoldId, now_ms: u64) {
        self.free_hold(id, Resolution::Expired, now_ms);
        self.counters.holds_expired += 1;
    }

    /// Gives every held unit back to its cell and resolves the hold.
    fn free_hold(&mut self, id: HoldId, how: Resolution, now_ms: u64) {
        let hold = &self.holds.holds[&id];
        for line in &hold.lines {
            self.stock.cell_mut(line.sku, line.location).expect("held cell exists").held -=
                line.quantity;
        }
        self.holds.resolve(id, how, now_ms);
    }

    /// A hold that can still be changed; a resolved one (or one past its deadline that
    /// the next tick will expire) answers precisely how it ended, from its tombstone
    /// once it left the table, until its retention ends (then `NotFound`).
    pub(crate) fn live_hold(&self, id: HoldId, now_ms: u64) -> Result<&Hold, EngineError> {
        let Some(hold) = self.holds.holds.get(&id) else {
            return Err(match self.holds.tombstones.fate(id) {
                Some(fate) => EngineError::AlreadyResolved { how: fate.resolution() },
                None => EngineError::NotFound(format!("hold {id}")),
            });
        };
        if let Some(how) = hold.resolution() {
            return Err(EngineError::AlreadyResolved { how });
        }
        if hold.expires_at_ms <= now_ms {
            return Err(EngineError::AlreadyResolved { how: Resolution::Expired });
        }
        Ok(hold)
    }

    /// Resolves request lines to cells and sums lines that hit the same cell, in order of
    /// first appearance, so the availability check sees the whole request per cell.
    fn merge_lines(&self, lines: &[LineRequest]) -> Result<Vec<HoldLine>, EngineError> {
        if lines.is_empty() {
            return Err(invalid("a hold needs at least one line"));
        }
        if lines.len() > LINES_PER_HOLD_MAX {
            return Err(invalid(format!("{} lines, over {LINES_PER_HOLD_MAX}", lines.len())));
        }
        let mut merged: Vec<HoldLine> = Vec::with_capacity(lines.len());
        for line in lines {
            quantity("line quantity", line.quantity)?;
            let sku = self.sku_id(&line.sku)?;
            let location = self.location_id(&line.location)?;
            if !self.locations[location as usize].active {
                return Err(invalid(format!("location {} is not active", line.location)));
            }
            match merged.iter_mut().find(|held| held.sku == sku && held.location == location) {
                Some(held) => held.quantity += line.quantity,
                None => merged.push(HoldLine { sku, location, quantity: line.quantity }),
            }
        }
        Ok(merged)
    }

    /// Index of the first request line that hit `merged`'s cell (for error reports).
    fn first_request_line(&self, lines: &[LineRequest], merged: &HoldLine) -> u32 {
        let position = lines.iter().position(|line| {
            self.skus.get(&line.sku) == Some(merged.sku)
                && self.location_codes.get(&line.location) == Some(merged.location)
        });
        position.expect("merged lines come from request lines") as u32
    }

    /// For a partial release (or settlement of committed units, `verb` saying which):
    /// (hold line index, units) per request line, checked against what each hold line
    /// has. Empty `lines` answers an empty list; the caller takes it as everything.
    pub(crate) fn releases_for(
        &self,
        id: HoldId,
        hold: &Hold,
        lines: &[LineRequest],
        verb: &str,
    ) -> Result<Vec<(usize, u32)>, EngineError> {
        if lines.len() > LINES_PER_HOLD_MAX {
            return Err(invalid(format!("{} lines, over {LINES_PER_HOLD_MAX}", lines.len())));
        }
        let mut releases: Vec<(usize, u32)> = Vec::with_capacity(lines.len());
        for line in lines {
            quantity("release quantity", line.quantity)?;
            let sku = self.sku_id(&line.sku)?;
            let location = self.location_id(&line.location)?;
            let index = hold
                .lines
                .iter()
                .position(|held| held.sku == sku && held.location == location)
                .ok_or_else(|| {
                    invalid(format!("hold {id} has no line {} at {}", line.sku, line.location))
                })?;
            match releases.iter_mut().find(|(existing, _)| *existing == index) {
                Some((_, units)) => *units += line.quantity,
                None => releases.push((index, line.quantity)),
            }
        }
        for (index, units) in &releases {
            let held = hold.lines[*index].quantity;
            if *units > held {
                return Err(invalid(format!("{verb} {units} units of a line that holds {held}")));
            }
        }
        Ok(releases)
    }
}
