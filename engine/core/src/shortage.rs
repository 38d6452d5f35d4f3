//! The index of short cells (available below zero), so a shortage page is found in
//! O(log n + page) instead of a scan of every cell on the writer thread.
//!
//! It is derived, never logged or imaged: the stock table records every cell a command
//! touched, `State` re-judges those cells after each command, and loading a snapshot
//! rebuilds the index by one scan. `State::audit` checks it against a full scan.

use std::collections::BTreeSet;
use std::ops::Bound;

use super::ids::{LocationId, SkuId};

/// Short cells, by id (to judge a touched cell cheaply) and by name (the page order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShortageIndex {
    by_id: BTreeSet<(SkuId, LocationId)>,
    by_name: BTreeSet<(Box<str>, Box<str>)>,
}

impl ShortageIndex {
    /// Records whether the cell is short now; `names` gives its SKU and location code
    /// and is called only when the cell enters or leaves the index.
    pub fn set(
        &mut self,
        cell: (SkuId, LocationId),
        short: bool,
        names: impl FnOnce() -> (Box<str>, Box<str>),
    ) {
        let changed = if short { self.by_id.insert(cell) } else { self.by_id.remove(&cell) };
        if !changed {
            return;
        }
        let key = names();
        let in_step = if short { self.by_name.insert(key) } else { self.by_name.remove(&key) };
        assert!(in_step, "the shortage index by name follows the one by id");
    }

    /// Up to `limit` short cells by (SKU, location code), after `after` when given.
    pub fn page(&self, after: Option<(&str, &str)>, limit: usize) -> Vec<(&str, &str)> {
        let start = match after {
            Some((sku, location)) => Bound::Excluded((sku.into(), location.into())),
            None => Bound::Unbounded,
        };
        (self.by_name.range::<(Box<str>, Box<str>), _>((start, Bound::Unbounded)))
            .take(limit)
            .map(|(sku, location)| (&**sku, &**location))
            .collect()
    }

    /// The short cells by id, ascending (for the audit).
    pub fn cells(&self) -> impl Iterator<Item = (SkuId, LocationId)> + '_ {
        self.by_id.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
