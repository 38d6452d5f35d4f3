//! Cart holds: the hold table (a slab behind a sliding index by id), the expiry wheel and
//! the tombstones that resolved holds leave behind for their retention.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::chunked::Chunked;
use super::ids::{HoldId, LocationId, SkuId};
use super::limits::EXPIRY_BUCKET_MS;
use super::order::Decision;
use super::outcome::{HoldState, Resolution};
use super::retention::RetentionMarks;

/// One line of a hold, after lines hitting the same cell were summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldLine {
    pub sku: SkuId,
    pub location: LocationId,
    pub quantity: u32,
}

/// A hold still in the table: held, or committed outside allot with units to settle.
/// Its id is its key; once resolved any other way it leaves the table for a
/// [`Fate`] byte in [`Tombstones`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub state: HoldState,
    /// Exactly as many as the hold has (no growth slack); one line is one 12-byte slice.
    pub lines: Box<[HoldLine]>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
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

    /// Keeps the lines `keep` accepts, in order.
    pub fn retain_lines(&mut self, keep: impl FnMut(&HoldLine) -> bool) {
        let mut lines = std::mem::take(&mut self.lines).into_vec();
        lines.retain(keep);
        self.lines = lines.into_boxed_slice();
    }
}

/// How a hold that left the table ended: all a second resolution needs to be answered
/// precisely. One byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Fate {
    Released = 1,
    Expired = 2,
    /// Converted into an order by `PlaceOrder`: its units left with the order.
    Ordered = 3,
    /// Committed outside allot, then every unit consumed or released.
    Settled = 4,
}

impl Fate {
    pub fn resolution(self) -> Resolution {
        match self {
            Fate::Released => Resolution::Released,
            Fate::Expired => Resolution::Expired,
            Fate::Ordered | Fate::Settled => Resolution::Committed,
        }
    }

    fn from_byte(byte: u8) -> Option<Fate> {
        match byte {
            1 => Some(Fate::Released),
            2 => Some(Fate::Expired),
            3 => Some(Fate::Ordered),
            4 => Some(Fate::Settled),
            _ => None,
        }
    }
}

/// Holds by id: a slab of records reached through a dense index of positions, one u32
/// per id from the oldest one it still covers. Ids only grow and a hold lives at most
/// its TTL (extensions aside), so the index is a sliding window; a hold that would keep
/// it longer than [`HOLD_INDEX_SPAN_MAX`] ids moves to an ordered map beside it. Where a
/// hold sits is not state: lookups and id-order iteration answer the same either way.
#[derive(Debug, Clone)]
pub struct HoldMap {
    /// Slab position per id from `first_id` on; [`NO_SLOT`] where the id has none.
    index: Chunked<u32>,
    first_id: HoldId,
    /// The records, in chunks: growth never copies the holds already there.
    slots: Chunked<Option<Hold>>,
    /// Free positions in `slots`, reused before it grows.
    free: Vec<u32>,
    /// Holds whose ids fell behind the index window: few, long-lived ones.
    far: BTreeMap<HoldId, Hold>,
    len: usize,
    /// Ids the window covers at most: [`HOLD_INDEX_SPAN_MAX`] but in tests.
    span: u64,
}

impl Default for HoldMap {
    fn default() -> Self {
        HoldMap::with_span(HOLD_INDEX_SPAN_MAX)
    }
}

/// Ids one index window covers at most (4 B each: 64 MiB at most): a hold older than
/// this many newer holds moves to the ordered map so the window can slide on.
pub const HOLD_INDEX_SPAN_MAX: u64 = 16 * 1024 * 1024;
const NO_SLOT: u32 = u32::MAX;

const _: () = assert!(super::limits::HOLDS_MAX < NO_SLOT as usize, "slab positions fit u32");

impl HoldMap {
    fn with_span(span: u64) -> HoldMap {
        HoldMap {
            index: Chunked::default(),
            first_id: 0,
            slots: Chunked::default(),
            free: Vec::new(),
            far: BTreeMap::new(),
            len: 0,
            span,
        }
    }

    fn slot_of(&self, id: HoldId) -> Option<u32> {
        let offset = id.checked_sub(self.first_id)?;
        let slot = *self.index.get(usize::try_from(offset).ok()?)?;
        (slot != NO_SLOT).then_some(slot)
    }

    pub fn get(&self, id: &HoldId) -> Option<&Hold> {
        match self.slot_of(*id) {
            Some(slot) => self.slots[slot as usize].as_ref(),
            None => self.far.get(id),
        }
    }

    pub fn get_mut(&mut self, id: &HoldId) -> Option<&mut Hold> {
        match self.slot_of(*id) {
            Some(slot) => self.slots[slot as usize].as_mut(),
            None => self.far.get_mut(id),
        }
    }

    pub fn contains_key(&self, id: &HoldId) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds hold `id`, which must be newer than every hold added before.
    pub fn insert(&mut self, id: HoldId, hold: Hold) {
        if self.index.is_empty() {
            self.first_id = id;
        }
        let end = self.first_id + self.index.len() as u64;
        assert!(id >= end && !self.far.contains_key(&id), "hold ids only grow");
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(hold);
                slot
            }
            None => {
                self.slots.push_back(Some(hold));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.extend_to(self.index.len() + (id - end) as usize, NO_SLOT);
        self.index.push_back(slot);
        self.len += 1;
        self.slide(id);
    }

    /// Drops empty ids from the window's front, and moves a hold that is
    /// [`HOLD_INDEX_SPAN_MAX`] ids behind `newest` to the ordered map.
    fn slide(&mut self, newest: HoldId) {
        while let Some(&slot) = self.index.front() {
            let too_old = newest - self.first_id >= self.span;
            if slot != NO_SLOT && !too_old {
                break;
            }
            self.index.pop_front();
            if slot != NO_SLOT {
                let hold = self.slots[slot as usize].take().expect("indexed slot is full");
                self.free.push(slot);
                self.far.insert(self.first_id, hold);
            }
            self.first_id += 1;
        }
    }

    pub fn remove(&mut self, id: &HoldId) -> Option<Hold> {
        let removed = match self.slot_of(*id) {
            Some(slot) => {
                self.index[(*id - self.first_id) as usize] = NO_SLOT;
                self.free.push(slot);
                self.slots[slot as usize].take()
            }
            None => self.far.remove(id),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        // Empty ids at the front go now; the window never starts at a hole.
        while self.index.front() == Some(&NO_SLOT) {
            self.index.pop_front();
            self.first_id += 1;
        }
        if self.index.is_empty() && self.len == self.far.len() {
            // Nothing indexed: give the slab back rather than keep a peak's worth.
            self.slots = Chunked::default();
            self.free = Vec::new();
        }
        removed
    }

    /// (id, hold) in id order: the far map's ids are all below the window's.
    pub fn iter(&self) -> impl Iterator<Item = (HoldId, &Hold)> {
        let far = self.far.iter().map(|(id, hold)| (*id, hold));
        let window = self.index.iter().enumerate().filter(|(_, slot)| **slot != NO_SLOT).map(
            move |(offset, slot)| {
                let hold = self.slots[*slot as usize].as_ref().expect("indexed slot is full");
                (self.first_id + offset as u64, hold)
            },
        );
        far.chain(window)
    }

    pub fn values(&self) -> impl Iterator<Item = &Hold> {
        self.iter().map(|(_, hold)| hold)
    }
}

impl std::ops::Index<&HoldId> for HoldMap {
    type Output = Hold;

    fn index(&self, id: &HoldId) -> &Hold {
        self.get(id).expect("the hold is in the table")
    }
}

/// Resolved holds kept as one [`Fate`] byte each, to answer a second resolution
/// precisely, until their retention ends. The bytes sit in a window by id (from the
/// oldest kept); a hold resolved after the window passed its id (one that outlived every
/// hold kept) goes to a small ordered map. Forgetting follows resolution order: a queue
/// of ids with one time mark per distinct resolution time. About 9 bytes per tombstone
/// (1 in the window, 8 in the queue) plus the window's bytes for holds still live.
#[derive(Debug, Clone, Default)]
pub struct Tombstones {
    /// `Fate` as a byte per id from `first_id` on; 0 where the id has none here.
    window: Chunked<u8>,
    first_id: HoldId,
    late: BTreeMap<HoldId, Fate>,
    /// Ids in resolution order; `queue[0]` has sequence number `first_seq`.
    queue: Chunked<HoldId>,
    first_seq: u64,
    /// (retention start, sequence number of the first id resolved in that second),
    /// oldest first.
    marks: RetentionMarks,
}

impl Tombstones {
    pub fn fate(&self, id: HoldId) -> Option<Fate> {
        let in_window = (id.checked_sub(self.first_id))
            .and_then(|offset| self.window.get(usize::try_from(offset).ok()?))
            .and_then(|&byte| Fate::from_byte(byte));
        in_window.or_else(|| self.late.get(&id).copied())
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn push(&mut self, id: HoldId, fate: Fate, now_ms: u64) {
        assert!(self.fate(id).is_none(), "a hold is resolved once");
        if self.window.is_empty() {
            self.first_id = id;
        }
        if id < self.first_id {
            self.late.insert(id, fate);
        } else {
            let offset = (id - self.first_id) as usize;
            self.window.extend_to(offset + 1, 0);
            self.window[offset] = fate as u8;
        }
        self.marks.record(self.first_seq + self.queue.len() as u64, now_ms);
        self.queue.push_back(id);
    }

    /// When the oldest tombstone's retention of `retention_ms` ends (a tombstone is
    /// kept for times before the end of its resolution's second plus the retention).
    pub fn next_forget_ms(&self, retention_ms: u64) -> Option<u64> {
        Some(self.marks.oldest_ms()?.saturating_add(retention_ms))
    }

    /// Forgets at most `max` tombstones whose retention ended at or before `now_ms`,
    /// oldest first; returns how many.
    pub fn forget_due(&mut self, now_ms: u64, retention_ms: u64, max: usize) -> usize {
        let mut forgotten = 0;
        while forgotten < max && self.next_forget_ms(retention_ms).is_some_and(|at| at <= now_ms) {
            let id = self.queue.pop_front().expect("a mark covers an id");
            self.first_seq += 1;
            self.marks.forget_before(self.first_seq, self.queue.is_empty());
            if self.late.remove(&id).is_none() {
                let offset = id.checked_sub(self.first_id).expect("in the window") as usize;
                self.window[offset] = 0;
            }
            forgotten += 1;
        }
        while self.window.front() == Some(&0) {
            self.window.pop_front();
            self.first_id += 1;
        }
        forgotten
    }

    /// (retention start, id, fate) in resolution order: the canonical order for images.
    pub fn iter_in_order(&self) -> impl Iterator<Item = (u64, HoldId, Fate)> + '_ {
        let mut start_ms = self.marks.starts_from(self.first_seq);
        (self.queue.iter())
            .map(move |&id| (start_ms(), id, self.fate(id).expect("a queued id has a tombstone")))
    }
}

/// Holds by id, plus the indexes that find the ones due to expire or to be forgotten.
#[derive(Debug, Clone)]
pub struct HoldTable {
    /// Live holds, and holds committed outside allot with units still to settle.
    pub holds: HoldMap,
    pub next_id: HoldId,
    pub expiry: ExpiryWheel,
    /// What became of holds that left `holds`, while their retention lasts.
    pub tombstones: Tombstones,
    /// Routing decisions of holds placed without locations, kept while the hold is in
    /// `holds`, so an order converting it records why its stock is where it is.
    pub routed: BTreeMap<HoldId, Decision>,
    /// Holds committed by `CommitHold` to orders outside allot whose units are not yet
    /// all consumed or released, with when they were committed. They stay whole in
    /// `holds` until then, because their lines say what is still committed.
    pub outside: BTreeMap<HoldId, u64>,
}

impl Default for HoldTable {
    fn default() -> Self {
        HoldTable {
            holds: HoldMap::default(),
            next_id: 1,
            expiry: ExpiryWheel::default(),
            tombstones: Tombstones::default(),
            routed: BTreeMap::new(),
            outside: BTreeMap::new(),
        }
    }
}

impl HoldTable {
    /// Resolves a live hold: it leaves the table for a tombstone (`Committed` here is a
    /// conversion into an order; `CommitHold` uses [`HoldTable::commit_outside`]).
    pub fn resolve(&mut self, id: HoldId, how: Resolution, now_ms: u64) {
        let hold = self.holds.remove(&id).expect("resolve is called on a known hold");
        assert_eq!(hold.state, HoldState::Held, "only a live hold is resolved");
        let fate = match how {
            Resolution::Released => Fate::Released,
            Resolution::Expired => Fate::Expired,
            Resolution::Committed => Fate::Ordered,
        };
        self.routed.remove(&id);
        self.tombstones.push(id, fate, now_ms);
    }

    /// Marks a hold committed outside allot; it is kept until every unit is settled.
    pub fn commit_outside(&mut self, id: HoldId, now_ms: u64) {
        let hold = self.holds.get_mut(&id).expect("commit is called on a known hold");
        assert_eq!(hold.state, HoldState::Held, "only a live hold is committed");
        hold.state = HoldState::Resolved(Resolution::Committed);
        self.outside.insert(id, now_ms);
    }

    /// Every committed unit of an outside hold was consumed or released: it leaves the
    /// table for a tombstone that answers a second settlement precisely.
    pub fn settled(&mut self, id: HoldId, now_ms: u64) {
        assert!(self.outside.remove(&id).is_some(), "only an outside hold is settled");
        let hold = self.holds.remove(&id).expect("an outside hold is in the table");
        assert!(hold.lines.is_empty(), "a settled hold commits nothing");
        self.routed.remove(&id);
        self.tombstones.push(id, Fate::Settled, now_ms);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(units: u32) -> Hold {
        Hold {
            state: HoldState::Held,
            lines: vec![HoldLine { sku: 1, location: 2, quantity: units }].into_boxed_slice(),
            created_at_ms: 0,
            expires_at_ms: 1,
            order_number: None,
        }
    }

    #[test]
    fn a_live_hold_record_and_a_fate_stay_small() {
        assert!(size_of::<Hold>() <= 56, "Hold is {} B", size_of::<Hold>());
        assert_eq!(size_of::<Option<Hold>>(), size_of::<Hold>(), "a slab slot costs no tag");
        assert_eq!(size_of::<Fate>(), 1);
    }

    #[test]
    fn a_hold_that_outlives_the_index_span_moves_aside_and_is_still_found_in_id_order() {
        let mut map = HoldMap::with_span(4);
        for id in 1..=10 {
            map.insert(id, hold(id as u32));
            if id != 1 && id != 7 {
                assert_eq!(map.remove(&id).map(|h| h.units()), Some(id));
            }
        }
        assert_eq!(map.far.len(), 1, "hold 1 fell behind the window");
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&1).map(Hold::units), Some(1));
        assert_eq!(map.get(&7).map(Hold::units), Some(7));
        assert!(map.get(&5).is_none());
        let ids: Vec<HoldId> = map.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1, 7]);
        map.get_mut(&1).expect("kept").expires_at_ms = 9;
        assert_eq!(map.remove(&1).map(|h| h.expires_at_ms), Some(9));
        assert_eq!(map.remove(&7).map(|h| h.units()), Some(7));
        assert!(map.is_empty() && map.slots.is_empty(), "an empty map gives its slab back");
        map.insert(11, hold(11));
        assert_eq!(map.get(&11).map(Hold::units), Some(11));
    }

    #[test]
    fn tombstones_answer_until_forgotten_in_resolution_order_and_in_bounded_steps() {
        let mut tombstones = Tombstones::default();
        tombstones.push(5, Fate::Released, 1_000);
        tombstones.push(9, Fate::Expired, 1_000);
        // Resolved after the window started past it: kept aside, answered the same.
        tombstones.push(3, Fate::Ordered, 1_001);
        tombstones.push(6, Fate::Settled, 2_500);
        assert_eq!(tombstones.fate(3), Some(Fate::Ordered));
        assert_eq!(tombstones.fate(6).map(Fate::resolution), Some(Resolution::Committed));
        assert_eq!(tombstones.fate(7), None);
        assert_eq!(tombstones.next_forget_ms(1_000), Some(2_000));
        assert_eq!(tombstones.forget_due(1_999, 1_000, 10), 0);
        assert_eq!(tombstones.forget_due(4_000, 1_000, 1), 1, "at most the bound");
        assert_eq!(tombstones.fate(5), None);
        assert_eq!(tombstones.fate(9), Some(Fate::Expired));
        let kept: Vec<(u64, HoldId, Fate)> = tombstones.iter_in_order().collect();
        // Retention counts from the end of the second: resolved at 1 001 and 2 500, kept
        // until 3 000 and 4 000 with a retention of 1 000.
        let expected =
            [(1_000, 9, Fate::Expired), (2_000, 3, Fate::Ordered), (3_000, 6, Fate::Settled)];
        assert_eq!(kept, expected);
        assert_eq!(tombstones.forget_due(3_999, 1_000, 10), 2);
        assert_eq!(tombstones.fate(6), Some(Fate::Settled));
        assert_eq!(tombstones.forget_due(4_000, 1_000, 10), 1);
        assert!(
            tombstones.is_empty() && tombstones.window.is_empty() && tombstones.late.is_empty()
        );
    }
}
