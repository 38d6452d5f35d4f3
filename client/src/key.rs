//! Idempotency keys: unique per client instance and call, so a retried command is
//! applied exactly once (DESIGN §7).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use allot_protocol::limits::IDEMPOTENCY_KEY_BYTES_MAX;

use crate::error::ClientError;

/// Random bytes identifying one client instance; 128 bits make a collision between
/// clients negligible without any coordination.
pub const CLIENT_ID_BYTES: usize = 16;

/// Makes keys `<32 hex digits of client id>-<counter>`: at most 53 bytes.
#[derive(Debug)]
pub(crate) struct KeyGenerator {
    prefix: String,
    counter: AtomicU64,
}

impl KeyGenerator {
    /// A generator with a fresh random client id.
    pub(crate) fn new() -> Result<KeyGenerator, ClientError> {
        let mut id = [0u8; CLIENT_ID_BYTES];
        rustls::crypto::ring::default_provider().secure_random.fill(&mut id).map_err(|_| {
            ClientError::Config("no secure random source for idempotency keys".into())
        })?;
        Ok(KeyGenerator::from_id(id))
    }

    fn from_id(id: [u8; CLIENT_ID_BYTES]) -> KeyGenerator {
        let mut prefix = String::with_capacity(2 * CLIENT_ID_BYTES);
        for byte in id {
            let _ = write!(prefix, "{byte:02x}");
        }
        KeyGenerator { prefix, counter: AtomicU64::new(1) }
    }

    /// The next key; never the same twice for this generator.
    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}-{n}", self.prefix);
        debug_assert!(key.len() <= IDEMPOTENCY_KEY_BYTES_MAX);
        key
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_are_unique_and_fit_the_protocol_limit() {
        let keys = KeyGenerator::new().unwrap();
        let made: HashSet<String> = (0..10_000).map(|_| keys.next()).collect();
        assert_eq!(made.len(), 10_000);
        let others = KeyGenerator::new().unwrap();
        assert!(!made.contains(&others.next()), "two clients draw different ids");
    }

    #[test]
    fn the_longest_key_is_within_64_bytes() {
        let keys = KeyGenerator::from_id([0xab; CLIENT_ID_BYTES]);
        keys.counter.store(u64::MAX, Ordering::Relaxed);
        let longest = keys.next();
        assert_eq!(longest, format!("{}-{}", "ab".repeat(CLIENT_ID_BYTES), u64::MAX));
        assert!(longest.len() <= IDEMPOTENCY_KEY_BYTES_MAX, "{} bytes", longest.len());
        assert!(allot_protocol::check::text("key", &longest, IDEMPOTENCY_KEY_BYTES_MAX).is_ok());
    }
}
