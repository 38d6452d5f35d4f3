//! Interning of the retailer's string identifiers into dense integer ids.
//!
//! Dense ids let stock and locations live in flat vectors indexed by id. The lookup map
//! is never iterated, so its hasher's random seed cannot leak into state or output.

use std::collections::HashMap;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Dense id of a SKU, in order of first appearance.
pub type SkuId = u32;
/// Dense id of a location, in order of creation.
pub type LocationId = u32;
/// Engine-assigned id of a hold; sequential from 1.
pub type HoldId = u64;

/// A two-way map between strings and dense ids; ids are assigned in insertion order.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    ids: FastMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Returns the id of `name`, assigning the next one if it is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id =
            u32::try_from(self.names.len()).expect("interner ids fit in u32 (bounded by SKUS_MAX)");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }

    /// Rebuilds an interner from names in id order (snapshot load).
    pub fn from_names(names: Vec<Box<str>>) -> Interner {
        let ids = names.iter().enumerate().map(|(id, name)| (name.clone(), id as u32)).collect();
        Interner { ids, names }
    }
}

/// 64-bit FNV-1a: a stable, seedless hash for fingerprints and digests that are stored in
/// snapshots, so they must not change between runs or builds. Fed through `Hash` it is
/// only as stable as the type's `Hash` impl: stored values go through [`fingerprint`].
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    // Integers are hashed little endian and lengths and enum discriminants at 64 bits,
    // so a fingerprint stored in a snapshot means the same on every platform.
    fn write_u16(&mut self, value: u16) {
        self.write(&value.to_le_bytes());
    }

    fn write_u32(&mut self, value: u32) {
        self.write(&value.to_le_bytes());
    }

    fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    fn write_u128(&mut self, value: u128) {
        self.write(&value.to_le_bytes());
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_i16(&mut self, value: i16) {
        self.write(&value.to_le_bytes());
    }

    fn write_i32(&mut self, value: i32) {
        self.write(&value.to_le_bytes());
    }

    fn write_i64(&mut self, value: i64) {
        self.write(&value.to_le_bytes());
    }

    fn write_isize(&mut self, value: isize) {
        self.write_i64(value as i64);
    }
}

/// Stable fingerprint of a value: FNV-1a over its canonical bytes (see `canonical`), so
/// it is the same in every build and on every platform, unlike a derived `Hash`.
pub fn fingerprint<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    let mut hasher = Fnv64::default();
    super::canonical::write(value, &mut hasher)
        .unwrap_or_else(|error| panic!("fingerprinted values have canonical bytes: {error}"));
    std::hash::Hasher::finish(&hasher)
}

/// FNV-1a of raw bytes (state digests).
pub fn fnv64(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = Fnv64::default();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod fingerprint_tests {
    use super::fingerprint;
    use crate::{Command, LineRequest};

    /// Fingerprints are stored in snapshots: if this value changes, keys recorded before
    /// an upgrade would read as conflicts after it. The golden value is FNV-1a of the
    /// canonical bytes that `canonical`'s own test spells out, computed outside Rust.
    #[test]
    fn command_fingerprint_is_stable_across_builds() {
        let command = Command::Reserve {
            lines: vec![LineRequest { sku: "SKU-1".into(), location: "LDN".into(), quantity: 2 }],
            ttl_ms: Some(60_000),
        };
        assert_eq!(fingerprint(&command), GOLDEN);
    }

    const GOLDEN: u64 = 12_646_954_805_107_954_295;
}
