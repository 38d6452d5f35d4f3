//! Handlers for stock movements: receipts, adjustments, cycle counts, safety stock and
//! transfers. Every movement is attributable: the logged command carries its reason.

use super::ids::{LocationId, SkuId};
use super::limits::{ON_HAND_MAX, REASON_BYTES_MAX, SKU_BYTES_MAX};
use super::outcome::{EngineError, Outcome, Reply};
use super::state::State;
use super::validate::{invalid, level, quantity, text};

impl State {
    pub(crate) fn receive(&mut self, sku: &str, location: &str, units: u32) -> Outcome {
        quantity("quantity", units)?;
        let (sku_id, location_id) = self.cell_key_or_new(sku, location)?;
        let on_hand = self.on_hand(sku_id, location_id);
        let new_on_hand =
            level("on_hand after the receipt", u64::from(on_hand) + u64::from(units))?;
        self.set_on_hand(sku, location_id, new_on_hand)
    }

    pub(crate) fn adjust(
        &mut self,
        sku: &str,
        location: &str,
        delta: i64,
        reason: &str,
    ) -> Outcome {
        if delta == 0 {
            return Err(invalid("adjustment delta is zero"));
        }
        text("reason", reason, REASON_BYTES_MAX)?;
        let (sku_id, location_id) = self.cell_key_or_new(sku, location)?;
        let on_hand = i64::from(self.on_hand(sku_id, location_id));
        let new_on_hand =
            on_hand.checked_add(delta).filter(|value| *value >= 0).ok_or_else(|| {
                invalid(format!(
                    "on_hand is {on_hand}; an adjustment of {delta} would make it negative"
                ))
            })?;
        let new_on_hand = level("on_hand after the adjustment", new_on_hand as u64)?;
        self.set_on_hand(sku, location_id, new_on_hand)
    }

    pub(crate) fn cycle_count(
        &mut self,
        sku: &str,
        location: &str,
        expected: u32,
        counted: u32,
    ) -> Outcome {
        level("counted", u64::from(counted))?;
        let (sku_id, location_id) = self.cell_key_or_new(sku, location)?;
        let actual = self.on_hand(sku_id, location_id);
        if actual != expected {
            return Err(EngineError::CompareFailed { actual });
        }
        self.set_on_hand(sku, location_id, counted)
    }

    pub(crate) fn set_safety_stock(&mut self, sku: &str, location: &str, units: u32) -> Outcome {
        level("safety stock", u64::from(units))?;
        let (_, location_id) = self.cell_key_or_new(sku, location)?;
        let sku_id = self.skus.intern(sku);
        self.stock.cell_or_insert(sku_id, location_id).safety_stock = units;
        Ok(Reply::Cell(self.cell_view(sku_id, location_id)))
    }

    pub(crate) fn transfer(&mut self, sku: &str, from: &str, to: &str, units: u32) -> Outcome {
        quantity("quantity", units)?;
        if from == to {
            return Err(invalid("transfer source and destination are the same location"));
        }
        let sku_id = self.sku_id(sku)?;
        let from_id = self.location_id(from)?;
        let to_id = self.location_id(to)?;
        let available = self.stock.available(sku_id, from_id);
        if available < i64::from(units) {
            return Err(EngineError::InsufficientStock { line: 0, available });
        }
        let to_on_hand = self.on_hand(Some(sku_id), to_id);
        level("on_hand at the destination", u64::from(to_on_hand) + u64::from(units))?;
        self.stock.cell_mut(sku_id, from_id).expect("source has stock").on_hand -= units;
        self.stock.cell_or_insert(sku_id, to_id).on_hand += units;
        let from = self.cell_view(sku_id, from_id);
        let to = self.cell_view(sku_id, to_id);
        Ok(Reply::Transferred { from, to })
    }

    /// The id of a SKU the engine has seen.
    pub(crate) fn sku_id(&self, sku: &str) -> Result<SkuId, EngineError> {
        if sku.len() > SKU_BYTES_MAX {
            return Err(invalid(format!("sku is {} bytes, over {SKU_BYTES_MAX}", sku.len())));
        }
        self.skus.get(sku).ok_or_else(|| EngineError::NotFound(format!("sku {sku}")))
    }

    /// Checks that a cell may be created: the location exists and the SKU is valid and
    /// fits. Returns the SKU's id if it is known already, so callers can read the current
    /// level without interning anything before every check has passed.
    fn cell_key_or_new(
        &self,
        sku: &str,
        location: &str,
    ) -> Result<(Option<SkuId>, LocationId), EngineError> {
        text("sku", sku, SKU_BYTES_MAX)?;
        let location_id = self.location_id(location)?;
        match self.skus.get(sku) {
            Some(sku_id) => Ok((Some(sku_id), location_id)),
            None if self.skus.len() >= self.caps.skus_max => {
                let cap = self.caps.skus_max;
                Err(EngineError::Overloaded(format!("{cap} skus in memory, the cap")))
            }
            None => Ok((None, location_id)),
        }
    }

    /// `on_hand` of a cell; a SKU or cell that does not exist yet has none.
    fn on_hand(&self, sku: Option<SkuId>, location: LocationId) -> u32 {
        let cell = sku.and_then(|sku| self.stock.cell(sku, location));
        cell.map_or(0, |cell| cell.on_hand)
    }

    /// Interns the SKU if new and sets the cell's `on_hand`; the last step of a movement.
    fn set_on_hand(&mut self, sku: &str, location: LocationId, on_hand: u32) -> Outcome {
        debug_assert!(on_hand <= ON_HAND_MAX);
        let sku_id = self.skus.intern(sku);
        self.stock.cell_or_insert(sku_id, location).on_hand = on_hand;
        Ok(Reply::Cell(self.cell_view(sku_id, location)))
    }
}
