//! Idempotency keys: a retried request with the same key gets an answer equivalent to the original.
//!
//! Only successful outcomes are remembered: a request that failed changed nothing, so
//! running it again is as safe as answering the old error, and may now succeed.
//!
//! Every key is a fixed-size [`IdempotencyEntry`] of 48 bytes: a 128-bit hash of the key
//! (never the key itself), the fingerprint of the command it came with and a compact
//! [`Kept`] outcome (the reply's kind and the ids it names) from which the reply is
//! rebuilt. Two distinct keys share a 128-bit hash with probability about n²/2¹²⁹: for
//! the most keys ever kept ([`IDEMPOTENCY_KEYS_MAX`], 2²⁴) that is 2⁻⁸¹, far below the
//! odds of a memory error; and even then the second key only gets the first one's answer
//! if its command has the same fingerprint, that is, if it is the same request.
//!
//! Entries sit in a queue in the order they were recorded (engine time never goes back,
//! so the front is the oldest), with one time mark per distinct recording time, and an
//! index of 4-byte queue positions spread over [`IDEMPOTENCY_SHARDS`] hash tables chosen
//! by the key hash: a single table of millions of keys doubles in one go and stalls the
//! writer; a shard holds a 256th of the keys, so its growth is a 256th of that pause.
//!
//! The table is bounded: a key older than the policy's retention is forgotten by a tick,
//! and a key recorded while the table holds `keys_max` pushes the oldest out early (the
//! state counts those in `Counters::idempotency_keys_forgotten_early`). A full table
//! never refuses a request.

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::chunked::Chunked;
use super::ids::HoldId;
pub use super::limits::{IDEMPOTENCY_KEYS_MAX, IDEMPOTENCY_RETENTION_MS_DEFAULT};
use super::outcome::{OrderId, Reply, ReturnId, ShipmentId};
use super::retention::RetentionMarks;

/// How long keys are remembered and how many at most: a setting of the engine, not
/// state (the same log replayed under the same policy rebuilds the same table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyPolicy {
    /// Engine milliseconds a key is remembered after it was recorded.
    pub retention_ms: u64,
    /// Most keys remembered; the oldest are forgotten early past it.
    pub keys_max: usize,
}

impl Default for IdempotencyPolicy {
    fn default() -> Self {
        IdempotencyPolicy {
            retention_ms: IDEMPOTENCY_RETENTION_MS_DEFAULT,
            keys_max: IDEMPOTENCY_KEYS_MAX,
        }
    }
}

/// What a key's first request answered, compactly: enough to rebuild an equivalent
/// reply from the retried command (the same command, its fingerprint says) and the
/// state. Replies that show cells, a location or an order are rebuilt as they are now;
/// the rest are kept exactly (docs/protocol.md, "Idempotency keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kept {
    HoldPlaced {
        hold: HoldId,
        expires_at_ms: u64,
    },
    HoldExtended {
        hold: HoldId,
        expires_at_ms: u64,
    },
    HoldReleased {
        hold: HoldId,
        units_held: u64,
    },
    HoldCommitted {
        hold: HoldId,
    },
    /// The lines are rebuilt from the hold as it is now.
    RoutedHoldPlaced {
        hold: HoldId,
        expires_at_ms: u64,
    },
    CommittedSettled {
        hold: HoldId,
        units_committed: u64,
    },
    /// The cell the command names, as it is now.
    Cell,
    /// Both cells the transfer names, as they are now.
    Transferred,
    /// The location the command names, as it is now.
    Location,
    /// Answered as placing the same order again by its number is.
    OrderPlaced,
    OrderChanged {
        order: OrderId,
    },
    ShipmentChanged {
        shipment: ShipmentId,
    },
    /// The short-picked shipment's state is rebuilt; the reroutes, consecutive ids
    /// created by the one command, and the backordered units are kept.
    ShortPicked {
        shipment: ShipmentId,
        first_rerouted: ShipmentId,
        rerouted: u8,
        backordered_units: u32,
    },
    ReturnChanged {
        rma: ReturnId,
    },
    ReturnExchanged {
        rma: ReturnId,
        order: OrderId,
    },
}

impl Kept {
    /// The compact form of a command's successful reply.
    pub fn of(reply: &Reply) -> Kept {
        match *reply {
            Reply::HoldPlaced { hold, expires_at_ms } => Kept::HoldPlaced { hold, expires_at_ms },
            Reply::HoldExtended { hold, expires_at_ms } => {
                Kept::HoldExtended { hold, expires_at_ms }
            }
            Reply::HoldReleased { hold, units_held, .. } => Kept::HoldReleased { hold, units_held },
            Reply::HoldCommitted { hold } => Kept::HoldCommitted { hold },
            Reply::RoutedHoldPlaced { hold, expires_at_ms, .. } => {
                Kept::RoutedHoldPlaced { hold, expires_at_ms }
            }
            Reply::CommittedSettled { hold, units_committed } => {
                Kept::CommittedSettled { hold, units_committed }
            }
            Reply::Cell(_) => Kept::Cell,
            Reply::Transferred { .. } => Kept::Transferred,
            Reply::Location(_) => Kept::Location,
            Reply::OrderPlaced { .. } => Kept::OrderPlaced,
            Reply::OrderChanged { order, .. } => Kept::OrderChanged { order },
            Reply::ShipmentChanged { shipment, .. } => Kept::ShipmentChanged { shipment },
            Reply::ShortPicked { shipment, ref rerouted, backordered_units, .. } => {
                let first_rerouted = rerouted.first().copied().unwrap_or(0);
                let consecutive = (rerouted.iter().enumerate())
                    .all(|(index, &id)| id == first_rerouted + index as u64);
                assert!(consecutive, "one short pick creates consecutive shipments");
                Kept::ShortPicked {
                    shipment,
                    first_rerouted,
                    rerouted: u8::try_from(rerouted.len()).expect("reroutes per order are few"),
                    backordered_units: u32::try_from(backordered_units)
                        .expect("one order's units fit in u32"),
                }
            }
            Reply::ReturnChanged { rma, .. } => Kept::ReturnChanged { rma },
            Reply::ReturnExchanged { rma, order } => Kept::ReturnExchanged { rma, order },
            ref other => unreachable!("a command that changes state does not answer {other:?}"),
        }
    }
}

/// One remembered key: 48 bytes, whatever the key and the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    /// FNV-1a 128 of the key's bytes, as two halves (8-byte aligned, unlike `u128`).
    pub key: [u64; 2],
    /// Stable fingerprint of the command the key was first used with.
    pub fingerprint: u64,
    pub kept: Kept,
}

/// What a key lookup found.
pub enum Seen {
    New,
    Same(Kept),
    Different,
}

/// Hash tables the index is spread over (a power of two).
pub const IDEMPOTENCY_SHARDS: usize = 256;

const _: () = assert!(IDEMPOTENCY_KEYS_MAX <= u32::MAX as usize, "positions are u32");

#[derive(Debug, Clone)]
pub struct IdempotencyTable {
    policy: IdempotencyPolicy,
    /// Entries oldest first, in chunks: growth never copies millions of entries.
    entries: Chunked<IdempotencyEntry>,
    /// Sequence number of `entries[0]`; entry `n` has `first_seq + n`.
    first_seq: u64,
    /// (retention start, sequence number of the first entry recorded in that second),
    /// oldest first; the front mark covers `entries[0]`.
    marks: RetentionMarks,
    /// Per shard: sequence numbers (mod 2³²) of the entries whose key hash falls in it.
    shards: Vec<HashTable<u32>>,
}

impl Default for IdempotencyTable {
    fn default() -> Self {
        IdempotencyTable::with_policy(IdempotencyPolicy::default())
    }
}

/// The hash of an idempotency key: FNV-1a 128, a fixed function of the key's bytes, so
/// the image holds the same value on every build.
pub fn key_hash(key: &str) -> [u64; 2] {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for &byte in key.as_bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    [(hash >> 64) as u64, hash as u64]
}

/// The index hash of a key hash: both halves mixed, since FNV's low bits alone spread
/// similar keys poorly.
fn index_hash(key: [u64; 2]) -> u64 {
    (key[0] ^ key[1].rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The shard of a key: the top bits of its index hash (the tables probe with the low).
fn shard_of(hash: u64) -> usize {
    (hash >> (u64::BITS - IDEMPOTENCY_SHARDS.trailing_zeros())) as usize
}

impl IdempotencyTable {
    pub fn with_policy(policy: IdempotencyPolicy) -> IdempotencyTable {
        assert!(policy.keys_max > 0 && policy.keys_max <= IDEMPOTENCY_KEYS_MAX);
        IdempotencyTable {
            policy,
            entries: Chunked::default(),
            first_seq: 0,
            marks: RetentionMarks::default(),
            shards: (0..IDEMPOTENCY_SHARDS).map(|_| HashTable::new()).collect(),
        }
    }

    pub fn policy(&self) -> IdempotencyPolicy {
        self.policy
    }

    /// Changes the policy; a table over the new `keys_max` sheds its oldest keys at the
    /// next record.
    pub fn set_policy(&mut self, policy: IdempotencyPolicy) {
        assert!(policy.keys_max > 0 && policy.keys_max <= IDEMPOTENCY_KEYS_MAX);
        self.policy = policy;
    }

    fn position(&self, seq: u32) -> usize {
        seq.wrapping_sub(self.first_seq as u32) as usize
    }

    pub fn check(&self, key: &str, fingerprint: u64) -> Seen {
        let key = key_hash(key);
        let hash = index_hash(key);
        let found = self.shards[shard_of(hash)]
            .find(hash, |&seq| self.entries[self.position(seq)].key == key);
        match found.map(|&seq| &self.entries[self.position(seq)]) {
            None => Seen::New,
            Some(entry) if entry.fingerprint == fingerprint => Seen::Same(entry.kept),
            Some(_) => Seen::Different,
        }
    }

    /// Remembers `key`; returns how many older keys it pushed out early (0 or more,
    /// more only after the policy shrank).
    pub fn record(&mut self, key: &str, fingerprint: u64, kept: Kept, now_ms: u64) -> u64 {
        let mut forgotten = 0;
        while self.entries.len() >= self.policy.keys_max {
            self.forget_oldest();
            forgotten += 1;
        }
        let entry = IdempotencyEntry { key: key_hash(key), fingerprint, kept };
        self.push(entry, now_ms);
        forgotten
    }

    fn push(&mut self, entry: IdempotencyEntry, now_ms: u64) {
        let seq = self.first_seq + self.entries.len() as u64;
        self.marks.record(seq, now_ms);
        let hash = index_hash(entry.key);
        self.entries.push_back(entry);
        let Self { entries, shards, first_seq, .. } = self;
        let first = *first_seq as u32;
        let shard = &mut shards[shard_of(hash)];
        assert!(
            shard
                .find(hash, |&other| entries[other.wrapping_sub(first) as usize].key == entry.key)
                .is_none(),
            "a key is recorded once"
        );
        shard.insert_unique(hash, seq as u32, |&other| {
            index_hash(entries[other.wrapping_sub(first) as usize].key)
        });
    }

    fn forget_oldest(&mut self) {
        let entry = self.entries.front().copied().expect("a front to forget");
        let hash = index_hash(entry.key);
        let seq = self.first_seq as u32;
        let found = self.shards[shard_of(hash)].find_entry(hash, |&other| other == seq);
        found.expect("every entry is indexed").remove();
        self.entries.pop_front();
        self.first_seq += 1;
        self.marks.forget_before(self.first_seq, self.entries.is_empty());
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the oldest key's retention started (the end of the second it was recorded).
    pub fn oldest_recorded_at_ms(&self) -> Option<u64> {
        self.marks.oldest_ms()
    }

    /// When the oldest key falls out of retention (a tick from then on forgets it): a
    /// key is kept for times before its retention start plus the retention.
    pub fn next_forget_ms(&self) -> Option<u64> {
        let at_ms = self.oldest_recorded_at_ms()?;
        Some(at_ms.saturating_add(self.policy.retention_ms))
    }

    /// Forgets at most `max` keys whose retention ended at or before `now_ms`, oldest
    /// first; returns how many.
    pub fn forget_due(&mut self, now_ms: u64, max: usize) -> usize {
        let mut forgotten = 0;
        while forgotten < max && self.next_forget_ms().is_some_and(|due_ms| due_ms <= now_ms) {
            self.forget_oldest();
            forgotten += 1;
        }
        forgotten
    }

    /// Entries oldest first, with their recording times: the canonical order for images.
    pub fn iter_in_order(&self) -> impl Iterator<Item = (u64, &IdempotencyEntry)> {
        let mut start_ms = self.marks.starts_from(self.first_seq);
        self.entries.iter().map(move |entry| (start_ms(), entry))
    }

    /// Rebuilds a table from entries oldest first, each with its recording time.
    pub fn from_ordered(
        policy: IdempotencyPolicy,
        entries: impl IntoIterator<Item = (u64, IdempotencyEntry)>,
    ) -> IdempotencyTable {
        let mut table = IdempotencyTable::with_policy(policy);
        for (at_ms, entry) in entries {
            table.push(entry, at_ms);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(hold: u64) -> Kept {
        Kept::HoldCommitted { hold }
    }

    fn small(keys_max: usize) -> IdempotencyTable {
        IdempotencyTable::with_policy(IdempotencyPolicy { retention_ms: 10_000, keys_max })
    }

    #[test]
    fn an_entry_is_fixed_size_and_at_most_48_bytes() {
        assert!(size_of::<IdempotencyEntry>() <= 48, "{}", size_of::<IdempotencyEntry>());
        assert!(size_of::<Kept>() <= 24, "{}", size_of::<Kept>());
    }

    #[test]
    fn key_hash_is_stable_across_builds() {
        // FNV-1a 128 of "" is its offset basis; of "a", the published test vector.
        assert_eq!(key_hash(""), [0x6c62_272e_07bb_0142, 0x62b8_2175_6295_c58d]);
        assert_eq!(key_hash("a"), [0xd228_cb69_6f1a_8caf, 0x78912b704e4a8964]);
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut table = IdempotencyTable::default();
        let keys = 100_000;
        for n in 0..keys {
            table.record(&format!("client-7f3a-{n}"), 1, kept(n), n);
        }
        let sizes: Vec<usize> = table.shards.iter().map(|shard| shard.len()).collect();
        let mean = keys as usize / IDEMPOTENCY_SHARDS;
        assert!(sizes.iter().all(|&size| size > mean / 2 && size < mean * 2), "{sizes:?}");
        assert_eq!(table.len(), keys as usize);
    }

    #[test]
    fn keys_are_forgotten_oldest_first_in_bounded_steps_and_listed_in_order() {
        let mut table = small(10_000);
        for n in 0..1_000u64 {
            table.record(&format!("key-{n}"), n, kept(n), n * 1_000);
        }
        // A key recorded at 499 000 is due at 509 000 (retention 10 000).
        assert_eq!(table.forget_due(508_999, 1_000), 499);
        assert_eq!(table.forget_due(508_999, 1_000), 0);
        assert_eq!(table.forget_due(509_000, 1_000), 1);
        assert_eq!(table.len(), 500);
        assert_eq!(table.oldest_recorded_at_ms(), Some(500_000));
        assert!(matches!(table.check("key-499", 499), Seen::New));
        assert!(matches!(
            table.check("key-500", 500),
            Seen::Same(Kept::HoldCommitted { hold: 500 })
        ));
        assert!(matches!(table.check("key-500", 1), Seen::Different));
        // Everything is due by 2 000 000, but one call forgets at most its bound.
        assert_eq!(table.forget_due(2_000_000, 200), 200);
        assert_eq!(table.oldest_recorded_at_ms(), Some(700_000));
        let listed: Vec<u64> = table.iter_in_order().map(|(at, _)| at).collect();
        assert_eq!(listed, (700..1_000).map(|n| n * 1_000).collect::<Vec<_>>());
        let rebuilt = IdempotencyTable::from_ordered(
            table.policy(),
            table.iter_in_order().map(|(at, entry)| (at, *entry)),
        );
        assert!(rebuilt.iter_in_order().eq(table.iter_in_order()));
        assert!(matches!(rebuilt.check("key-999", 999), Seen::Same(_)));
    }

    #[test]
    fn a_full_table_forgets_its_oldest_key_instead_of_refusing() {
        let mut table = small(3);
        for n in 0..3u64 {
            assert_eq!(table.record(&format!("key-{n}"), n, kept(n), 1_000), 0);
        }
        assert_eq!(table.record("key-3", 3, kept(3), 2_000), 1);
        assert_eq!(table.len(), 3);
        assert!(matches!(table.check("key-0", 0), Seen::New));
        assert!(matches!(table.check("key-1", 1), Seen::Same(_)));
        assert!(matches!(table.check("key-3", 3), Seen::Same(_)));
        assert_eq!(table.oldest_recorded_at_ms(), Some(1_000));
        table.record("key-4", 4, kept(4), 3_000);
        table.record("key-5", 5, kept(5), 3_000);
        assert_eq!(table.oldest_recorded_at_ms(), Some(2_000));
    }

    #[test]
    fn keys_recorded_within_one_second_share_a_time_mark_and_are_forgotten_together() {
        let mut table = small(10_000);
        for n in 0..100u64 {
            table.record(&format!("key-{n}"), n, kept(n), 5_001 + n * 9);
        }
        assert_eq!(table.marks.len(), 1, "one mark for the second, not one per batch");
        assert_eq!(table.oldest_recorded_at_ms(), Some(6_000));
        assert_eq!(table.forget_due(15_999, 1_000), 0, "kept whole seconds past recording");
        assert_eq!(table.forget_due(16_000, 1_000), 100);
    }
}
