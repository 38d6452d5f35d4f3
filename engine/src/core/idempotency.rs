//! Idempotency keys: a retried request with the same key gets the original answer.
//!
//! Only successful outcomes are remembered: a request that failed changed nothing, so
//! running it again is as safe as answering the old error, and may now succeed.

use std::collections::VecDeque;

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

#[derive(Debug, Clone, Default)]
pub struct IdempotencyTable {
    entries: FastMap<Box<str>, IdempotencyEntry>,
    /// Keys in the order they were recorded; engine time never goes back, so the front
    /// is always the oldest.
    order: VecDeque<Box<str>>,
}

impl IdempotencyTable {
    pub fn check(&self, key: &str, fingerprint: u64) -> Seen<'_> {
        match self.entries.get(key) {
            None => Seen::New,
            Some(entry) if entry.fingerprint == fingerprint => Seen::Same(&entry.reply),
            Some(_) => Seen::Different,
        }
    }

    pub fn record(&mut self, key: &str, fingerprint: u64, reply: Reply, now_ms: u64) {
        let entry = IdempotencyEntry { fingerprint, reply, recorded_at_ms: now_ms };
        let previous = self.entries.insert(key.into(), entry);
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
        Some(self.entries[key].recorded_at_ms)
    }

    /// Forgets keys recorded at or before `cutoff_ms`.
    pub fn forget_until(&mut self, cutoff_ms: u64) {
        while let Some(key) = self.order.front() {
            if self.entries[key].recorded_at_ms > cutoff_ms {
                break;
            }
            let key = self.order.pop_front().expect("front exists");
            self.entries.remove(&key);
        }
    }

    /// Entries oldest first: the canonical order for snapshots.
    pub fn iter_in_order(&self) -> impl Iterator<Item = (&str, &IdempotencyEntry)> {
        self.order.iter().map(|key| (&**key, &self.entries[key]))
    }

    pub fn from_ordered(entries: Vec<(String, IdempotencyEntry)>) -> IdempotencyTable {
        let mut table = IdempotencyTable::default();
        for (key, entry) in entries {
            table.order.push_back(key.as_str().into());
            table.entries.insert(key.into(), entry);
        }
        table
    }
}
