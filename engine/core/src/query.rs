//! Answers to queries, and the client-facing views of cells, holds and locations.

use allot_protocol::check;
use allot_protocol::limits::SHORTAGES_UNPAGED_MAX;

use super::command::Query;
use super::hold::{Hold, HoldLine};
use super::ids::{HoldId, LocationId, SkuId};
use super::outcome::{
    CellKey, CellView, EngineError, HoldLineView, HoldView, LocationView, Outcome, Reply,
    ShortagePage,
};
use super::state::State;
use super::validate::invalid;

impl State {
    /// Answers a query from the current state; changes nothing.
    pub fn query(&self, query: &Query) -> Outcome {
        match query {
            Query::Cell { sku, location } => {
                let sku_id = self.sku_id(sku)?;
                let location_id = self.location_id(location)?;
                Ok(Reply::Cell(self.cell_view(sku_id, location_id)))
            }
            Query::SkuStock { sku } => {
                let sku_id = self.sku_id(sku)?;
                let mut cells: Vec<CellView> = self.stock.skus[sku_id as usize]
                    .cells
                    .iter()
                    .map(|cell| self.cell_view(sku_id, cell.location))
                    .collect();
                cells.sort_by(|a, b| a.location.cmp(&b.location));
                Ok(Reply::Cells(cells))
            }
            Query::Hold { hold } => self.hold_view(*hold).map(Reply::Hold),
            Query::Location { location } => {
                Ok(Reply::Location(self.location_view(self.location_id(location)?)))
            }
            Query::Locations => {
                let mut locations: Vec<LocationView> =
                    (0..self.locations.len() as u32).map(|id| self.location_view(id)).collect();
                locations.sort_by(|a, b| a.code.cmp(&b.code));
                Ok(Reply::Locations(locations))
            }
            Query::Shortages => {
                let page = self.shortage_page(None, SHORTAGES_UNPAGED_MAX)?;
                Ok(Reply::Cells(page.cells))
            }
            Query::ShortagePage { after, limit } => {
                self.shortage_page(after.as_ref(), *limit).map(Reply::Shortages)
            }
            Query::Order { order } => self.order_query(*order),
            Query::OrderByNumber { channel, external_number } => {
                self.order_by_number(*channel, external_number)
            }
            Query::CustomerOrders { customer, before, limit } => {
                self.customer_orders(customer, *before, *limit)
            }
            Query::OrdersByState { state, location, after, limit } => {
                self.orders_by_state(*state, location.as_deref(), *after, *limit)
            }
            Query::PickList { location, after, limit } => self.pick_list(location, *after, *limit),
            Query::Shipment { shipment } => self.shipment_query(*shipment),
            Query::Return { rma } => self.return_query(*rma),
            Query::Kpis => self.kpis(),
            Query::HoldRouting { hold } => self.hold_routing(*hold),
        }
    }

    /// Short cells after `after`, from the shortage index: the work is the page's, not
    /// the number of cells'.
    fn shortage_page(
        &self,
        after: Option<&CellKey>,
        limit: u32,
    ) -> Result<ShortagePage, EngineError> {
        check::page_limit(limit).map_err(invalid)?;
        if let Some(after) = after {
            check::cell(&after.sku, &after.location).map_err(invalid)?;
        }
        let after = after.map(|key| (key.sku.as_str(), key.location.as_str()));
        // One more than asked says whether another page follows.
        let mut keys = self.shortages.page(after, limit as usize + 1);
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        let cells: Vec<CellView> = (keys.iter())
            .map(|(sku, location)| {
                let sku = self.skus.get(sku).expect("an indexed cell's sku is known");
                let location = self.location_codes.get(location).expect("and its location");
                self.cell_view(sku, location)
            })
            .collect();
        let next = (cells.last().filter(|_| more))
            .map(|cell| CellKey { sku: cell.sku.clone(), location: cell.location.clone() });
        Ok(ShortagePage { cells, next })
    }

    /// A cell's counters; a cell that was never touched reads as all zeros.
    pub(crate) fn cell_view(&self, sku: SkuId, location: LocationId) -> CellView {
        let cell = self.stock.cell(sku, location).copied().unwrap_or_default();
        CellView {
            sku: self.skus.name(sku).to_owned(),
            location: self.location_codes.name(location).to_owned(),
            on_hand: cell.on_hand,
            held: cell.held,
            allocated: cell.allocated,
            safety_stock: cell.safety_stock,
            available: cell.available(),
        }
    }

    pub(crate) fn location_view(&self, id: LocationId) -> LocationView {
        self.locations[id as usize].clone()
    }

    pub(crate) fn hold_line_view(&self, line: &HoldLine) -> HoldLineView {
        HoldLineView {
            sku: self.skus.name(line.sku).to_owned(),
            location: self.location_codes.name(line.location).to_owned(),
            quantity: line.quantity,
        }
    }

    /// A hold in the table in full; a resolved one that left it, from its tombstone,
    /// which keeps only how it ended: no lines, times or order number.
    fn hold_view(&self, id: HoldId) -> Result<HoldView, EngineError> {
        let Some(hold) = self.holds.holds.get(&id) else {
            let fate = (self.holds.tombstones.fate(id))
                .ok_or_else(|| EngineError::NotFound(format!("hold {id}")))?;
            return Ok(HoldView {
                hold: id,
                state: super::outcome::HoldState::Resolved(fate.resolution()),
                lines: Vec::new(),
                created_at_ms: 0,
                expires_at_ms: 0,
                resolved_at_ms: None,
                order_number: None,
            });
        };
        let hold: &Hold = hold;
        let lines = hold.lines.iter().map(|line| self.hold_line_view(line)).collect();
        Ok(HoldView {
            hold: id,
            state: hold.state,
            lines,
            created_at_ms: hold.created_at_ms,
            expires_at_ms: hold.expires_at_ms,
            resolved_at_ms: self.holds.outside.get(&id).copied(),
            order_number: hold.order_number.as_deref().map(str::to_owned),
        })
    }
}
