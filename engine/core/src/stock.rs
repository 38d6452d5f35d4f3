//! Per-(SKU, location) stock cells, stored per SKU in a vector sorted by location id.
//!
//! A SKU is stocked at a handful of locations (ten of fifty in the standard workload), so
//! a binary search over a short sorted vector beats a hash map, and each cell costs 20
//! bytes plus the vector's slack.

use serde::{Deserialize, Serialize};

use super::ids::{LocationId, SkuId};

/// The four counters of one (SKU, location) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub location: LocationId,
    pub on_hand: u32,
    pub held: u32,
    pub allocated: u32,
    pub safety_stock: u32,
}

impl Cell {
    pub fn new(location: LocationId) -> Cell {
        Cell { location, ..Cell::default() }
    }

    /// `on_hand − held − allocated − safety_stock`; negative when the cell is short.
    pub fn available(&self) -> i64 {
        i64::from(self.on_hand)
            - i64::from(self.held)
            - i64::from(self.allocated)
            - i64::from(self.safety_stock)
    }
}

/// All cells of one SKU, sorted by location id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuStock {
    pub cells: Vec<Cell>,
}

impl SkuStock {
    pub fn cell(&self, location: LocationId) -> Option<&Cell> {
        let index = self.cells.binary_search_by_key(&location, |cell| cell.location).ok()?;
        Some(&self.cells[index])
    }

    pub fn cell_mut(&mut self, location: LocationId) -> Option<&mut Cell> {
        let index = self.cells.binary_search_by_key(&location, |cell| cell.location).ok()?;
        Some(&mut self.cells[index])
    }

    /// The cell at `location`, created empty if it does not exist yet.
    pub fn cell_or_insert(&mut self, location: LocationId) -> &mut Cell {
        let index = match self.cells.binary_search_by_key(&location, |cell| cell.location) {
            Ok(index) => index,
            Err(index) => {
                self.cells.insert(index, Cell::new(location));
                index
            }
        };
        &mut self.cells[index]
    }
}

/// Stock of every SKU, indexed by `SkuId`.
#[derive(Debug, Clone, Default)]
pub struct StockTable {
    pub skus: Vec<SkuStock>,
    /// Cells handed out for change since `take_touched`: whoever keeps an index over
    /// the counters (the shortage index) re-judges exactly these.
    touched: Vec<(SkuId, LocationId)>,
}

impl StockTable {
    pub fn cell(&self, sku: SkuId, location: LocationId) -> Option<&Cell> {
        self.skus.get(sku as usize)?.cell(location)
    }

    pub fn from_skus(skus: Vec<SkuStock>) -> StockTable {
        StockTable { skus, touched: Vec::new() }
    }

    pub fn cell_mut(&mut self, sku: SkuId, location: LocationId) -> Option<&mut Cell> {
        let cell = self.skus.get_mut(sku as usize)?.cell_mut(location)?;
        self.touched.push((sku, location));
        Some(cell)
    }

    pub fn cell_or_insert(&mut self, sku: SkuId, location: LocationId) -> &mut Cell {
        self.touched.push((sku, location));
        if self.skus.len() <= sku as usize {
            self.skus.resize_with(sku as usize + 1, SkuStock::default);
        }
        self.skus[sku as usize].cell_or_insert(location)
    }

    /// Available units at a cell; a missing cell has none.
    pub fn available(&self, sku: SkuId, location: LocationId) -> i64 {
        self.cell(sku, location).map_or(0, Cell::available)
    }

    /// The cells handed out for change since the last call, each once. Hand the vector
    /// back with [`StockTable::return_touched`], so the hot path allocates nothing.
    pub fn take_touched(&mut self) -> Vec<(SkuId, LocationId)> {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// Gives back what `take_touched` handed out, to be reused, emptied.
    pub fn return_touched(&mut self, mut touched: Vec<(SkuId, LocationId)>) {
        debug_assert!(self.touched.is_empty(), "no cell is touched while the last are judged");
        touched.clear();
        self.touched = touched;
    }

    pub fn cell_count(&self) -> usize {
        self.skus.iter().map(|sku| sku.cells.len()).sum()
    }
}
