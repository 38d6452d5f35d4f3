//! Idempotency keys: a retried request with the same key gets the original answer.
//!
//! Only successful outcomes are remembered: a request that failed changed nothing, so
//! running it again is as safe as answering the old error, and may now succeed.
//!
//! The keys live in [`IDEMPOTENCY_SHARDS`] hash maps chosen by a hash of the key. A single
//! map of millions of keys doubles in one go, and the writer stood still for seconds while
//! it did (seen at 0.9 M and 1.8 M keys under load); a shard holds a 256th of the keys,
//! so its growth is a 256th of that pause.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use super::ids::FastMap;
use super::outcome::Reply;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    /// Stable fingerprint of the command the key was first used with.
    pub fingerprint: u64,
    pub reply: Reply,
    pub recorded_at_ms: u64,
}

/// What a key lookup found.
pub enum Seen<'a> {
    New,
    Same(&'a Reply),
    Different,
}

/// Hash maps the keys are spread over (a power of two).
pub const IDEMPOTENCY_SHARDS: usize = 256;
/// Seed of the shard choice; fixed, so a key's shard never depends on the process.
const SHARD_SEED: u64 = 0x5eed_1de4_7e4c_0001;

#[derive(Debug, Clone)]
pub struct IdempotencyTable {
    shards: Vec<FastMap<Box<str>, IdempotencyEntry>>,
    /// Keys in the order they were recorded; engine time never goes back, so the front
    /// is always the oldest.
    order: VecDeque<Box<str>>,
}

impl Default for IdempotencyTable {
    fn default() -> Self {
        IdempotencyTable {
            shards: (0..IDEMPOTENCY_SHARDS).map(|_| FastMap::default()).collect(),
            order: VecDeque::new(),
        }
    }
}

impl IdempotencyTable {
    fn shard(&self, key: &str) -> &FastMap<Box<str>, IdempotencyEntry> {
        &self.shards[shard_of(key)]
    }

    fn shard_mut(&mut self, key: &str) -> &mut FastMap<Box<str>, IdempotencyEntry> {
        &mut self.shards[shard_of(key)]
    }

    fn entry(&self, key: &str) -> &IdempotencyEntry {
        &self.shard(key)[key]
    }

    pub fn check(&self, key: &str, fingerprint: u64) -> Seen<'_> {
        match self.shard(key).get(key) {
            None => Seen::New,
            Some(entry) if entry.fingerprint == fingerprint => Seen::Same(&entry.reply),
            Some(_) => Seen::Different,
        }
    }

    pub fn record(&mut self, key: &str, fingerprint: u64, reply: Reply, now_ms: u64) {
        let entry = IdempotencyEntry { fingerprint, reply, recorded_at_ms: now_ms };
        let previous = self.shard_mut(key).insert(key.into(), entry);
        assert!(previous.is_none(), "a key is recorded once");
        self.order.push_back(key.into());
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// When the oldest key falls out of retention.
    pub fn oldest_recorded_at_ms(&self) -> Option<u64> {
        let key = self.order.front()?;
        Some(self.entry(key).recorded_at_ms)
    }

    /// Forgets keys recorded at or before `cutoff_ms`.
    pub fn forget_until(&mut self, cutoff_ms: u64) {
        while let Some(key) = self.order.front() {
            if self.entry(key).recorded_at_ms > cutoff_ms {
                break;
            }
            let key = self.order.pop_front().expect("front exists");
            self.shard_mut(&key).remove(&key);
        }
    }

    /// Entries oldest first: the canonical order for snapshots.
    pub fn iter_in_order(&self) -> impl Iterator<Item = (&str, &IdempotencyEntry)> {
        self.order.iter().map(|key| (&**key, self.entry(key)))
    }

    pub fn from_ordered(entries: Vec<(String, IdempotencyEntry)>) -> IdempotencyTable {
        let mut table = IdempotencyTable::default();
        for (key, entry) in entries {
            table.order.push_back(key.as_str().into());
            table.shard_mut(&key).insert(key.into(), entry);
        }
        table
    }
}

/// The shard of `key`: the top bits of a fixed-seed hash, so the shard maps, which hash
/// with the low bits, still spread their keys evenly.
fn shard_of(key: &str) -> usize {
    let hash = FixedState::with_seed(SHARD_SEED).hash_one(key);
    (hash >> (u64::BITS - IDEMPOTENCY_SHARDS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(hold: u64) -> Reply {
        Reply::HoldCommitted { hold }
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut table = IdempotencyTable::default();
        let keys = 100_000;
        for n in 0..keys {
            table.record(&format!("client-7f3a-{n}"), 1, reply(n), n);
        }
        let sizes: Vec<usize> = table.shards.iter().map(|shard| shard.len()).collect();
        let mean = keys as usize / IDEMPOTENCY_SHARDS;
        assert!(sizes.iter().all(|&size| size > mean / 2 && size < mean * 2), "{sizes:?}");
        assert_eq!(table.len(), keys as usize);
    }

    #[test]
    fn keys_are_forgotten_oldest_first_and_listed_in_order() {
        let mut table = IdempotencyTable::default();
        for n in 0..1_000u64 {
            table.record(&format!("key-{n}"), n, reply(n), n * 10);
        }
        table.forget_until(4_990);
        assert_eq!(table.len(), 500);
        assert_eq!(table.oldest_recorded_at_ms(), Some(5_000));
        assert!(matches!(table.check("key-499", 499), Seen::New));
        assert!(matches!(
            table.check("key-500", 500),
            Seen::Same(&Reply::HoldCommitted { hold: 500 })
        ));
        assert!(matches!(table.check("key-500", 1), Seen::Different));
        let listed: Vec<&str> = table.iter_in_order().map(|(key, _)| key).collect();
        let expected: Vec<String> = (500..1_000).map(|n| format!("key-{n}")).collect();
        assert_eq!(listed, expected);
        let rebuilt = IdempotencyTable::from_ordered(
            table.iter_in_order().map(|(key, entry)| (key.to_owned(), entry.clone())).collect(),
        );
        assert!(rebuilt.iter_in_order().eq(table.iter_in_order()));
    }
}
