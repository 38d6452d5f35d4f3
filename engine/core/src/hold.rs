//! Cart holds: the hold table, the expiry wheel and the retention queue of resolved holds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::ids::{HoldId, LocationId, SkuId};
use super::limits::EXPIRY_BUCKET_MS;
use super::order::Decision;
use super::outcome::{HoldState, Resolution};

/// One line of a hold, after lines hitting the same cell were summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldLine {
    pub sku: SkuId,
    pub location: LocationId,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub state: HoldState,
    pub lines: Vec<HoldLine>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
    pub order_number: Option<Box<str>>,
}

impl Hold {
    pub fn units(&self) -> u64 {
        self.lines.iter().map(|line| u64::from(line.quantity)).sum()
    }

    pub fn resolution(&self) -> Option<Resolution> {
        match self.state {
            HoldState::Held => None,
            HoldState::Resolved(how) => Some(how),
        }
    }
}

/// Holds by id, plus the indexes that find the ones due to expire or to be forgotten.
#[derive(Debug, Clone)]
pub struct HoldTable {
    /// Ordered by id. Ids only grow, so inserts append at the right edge of the tree
    /// (cache-hot, and never a whole-table rehash that would stall the writer), and
    /// the snapshot image is written in id order without sorting.
    pub holds: BTreeMap<HoldId, Hold>,
    pub next_id: HoldId,
    pub expiry: ExpiryWheel,
    /// Resolved holds in resolution order; engine time never goes back, so the front is
    /// always the oldest and pruning is a pop.
    pub resolved: VecDeque<(u64, HoldId)>,
    /// Routing decisions of holds placed without locations, kept while the hold is, so
    /// an order converting it records why its stock is where it is.
    pub routed: BTreeMap<HoldId, Decision>,
    /// Holds committed by `CommitHold` to orders outside allot whose units are not yet
    /// all consumed or released. They are kept (not queued for forgetting) until then,
    /// because their lines say what is still committed. Derived: on load, the committed
    /// holds missing from `resolved`.
    pub outside: BTreeSet<HoldId>,
}

impl Default for HoldTable {
    fn default() -> Self {
        HoldTable {
            holds: BTreeMap::new(),
            next_id: 1,
            expiry: ExpiryWheel::default(),
            resolved: VecDeque::new(),
            routed: BTreeMap::new(),
            outside: BTreeSet::new(),
        }
    }
}

impl HoldTable {
    /// Marks a hold resolved and queues it for forgetting after its retention.
    pub fn resolve(&mut self, id: HoldId, how: Resolution, now_ms: u64) {
        let hold = self.holds.get_mut(&id).expect("resolve is called on a known hold");
        assert_eq!(hold.state, HoldState::Held, "only a live hold is resolved");
        hold.state = HoldState::Resolved(how);
        hold.resolved_at_ms = Some(now_ms);
        self.resolved.push_back((now_ms, id));
    }

    /// Marks a hold committed outside allot; it is kept until every unit is settled.
    pub fn commit_outside(&mut self, id: HoldId, now_ms: u64) {
        let hold = self.holds.get_mut(&id).expect("commit is called on a known hold");
        assert_eq!(hold.state, HoldState::Held, "only a live hold is committed");
        hold.state = HoldState::Resolved(Resolution::Committed);
        hold.resolved_at_ms = Some(now_ms);
        self.outside.insert(id);
    }

    /// Every committed unit of an outside hold was consumed or released: it is kept
    /// for its retention (to answer a second settlement precisely), then forgotten.
    pub fn settled(&mut self, id: HoldId, now_ms: u64) {
        assert!(self.outside.remove(&id), "only an outside hold is settled");
        assert!(self.holds[&id].lines.is_empty(), "a settled hold commits nothing");
        self.resolved.push_back((now_ms, id));
    }

    /// Rebuilds `outside` after loading: committed holds not queued for forgetting.
    pub fn rebuild_outside(&mut self) {
        let queued: BTreeSet<HoldId> = self.resolved.iter().map(|(_, id)| *id).collect();
        let committed = HoldState::Resolved(Resolution::Committed);
        self.outside = (self.holds.values())
            .filter(|hold| hold.state == committed && !queued.contains(&hold.id))
            .map(|hold| hold.id)
            .collect();
    }

    /// Forgets at most `max` resolved holds resolved at or before `cutoff_ms`, oldest
    /// first; returns how many.
    pub fn forget_resolved_until(&mut self, cutoff_ms: u64, max: usize) -> usize {
        let mut forgotten = 0;
        while let Some(&(resolved_at, id)) = self.resolved.front() {
            if resolved_at > cutoff_ms || forgotten == max {
                break;
            }
            forgotten += 1;
            self.resolved.pop_front();
            self.routed.remove(&id);
            let removed = self.holds.remove(&id);
            assert!(removed.is_some_and(|hold| hold.state != HoldState::Held));
        }
        forgotten
    }
}

/// Hold ids bucketed by the second their deadline falls in.
///
/// Inserting is a push onto a bucket near the back of a deque: far cheaper than a sorted
/// set on the hot path. Extending a hold leaves its old entry behind; the tick skips
/// entries whose hold has a later deadline or is no longer held. The wheel is an index,
/// not state: snapshots omit it and loading rebuilds it.
#[derive(Debug, Clone, Default)]
pub struct ExpiryWheel {
    /// Bucket index (deadline / EXPIRY_BUCKET_MS) of `buckets[0]`.
    base: u64,
    buckets: VecDeque<Vec<HoldId>>,
    /// Whether `buckets[0]` is sorted by id, descending, so ids pop from its end in
    /// ascending order: the canonical order a bounded tick expires them in.
    front_sorted: bool,
}

impl ExpiryWheel {
    pub fn insert(&mut self, id: HoldId, expires_at_ms: u64) {
        let index = expires_at_ms / EXPIRY_BUCKET_MS;
        if self.buckets.is_empty() {
            self.base = index;
        }
        while index < self.base {
            self.buckets.push_front(Vec::new());
            self.base -= 1;
            self.front_sorted = false;
        }
        let offset = (index - self.base) as usize;
        if offset == 0 {
            self.front_sorted = false;
        }
        if offset >= self.buckets.len() {
            self.buckets.resize_with(offset + 1, Vec::new);
        }
        self.buckets[offset].push(id);
    }

    /// The first time at which a tick has something to look at, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        if self.buckets.is_empty() {
            return None;
        }
        Some((self.base + 1) * EXPIRY_BUCKET_MS)
    }

    /// Removes and returns the next entry, as (bucket index, id), of a bucket that
    /// ended at or before `now_ms`: buckets in order, ids ascending within one. Drops
    /// empty buckets at the front so `next_due_ms` points at real work.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(u64, HoldId)> {
        while let Some(front) = self.buckets.front_mut() {
            let ended = (self.base + 1) * EXPIRY_BUCKET_MS <= now_ms;
            if ended && !self.front_sorted {
                front.sort_unstable_by(|a, b| b.cmp(a));
                self.front_sorted = true;
            }
            if ended && let Some(id) = front.pop() {
                return Some((self.base, id));
            }
            if !front.is_empty() {
                return None;
            }
            self.buckets.pop_front();
            self.base += 1;
            self.front_sorted = false;
        }
        None
    }
}
