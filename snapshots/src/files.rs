//! Helpers shared by the file formats: little-endian fields and file names numbered by log position.

use std::io;
use std::path::Path;

use crate::storage::Storage;

/// Digits of the zero-padded position in a file name: enough for any `u64`, so names sort
/// in position order.
const POSITION_DIGITS: usize = 20;

/// `{prefix}{position, 20 digits}{suffix}`.
pub(crate) fn position_file_name(prefix: &str, position: u64, suffix: &str) -> String {
    format!("{prefix}{position:0width$}{suffix}", width = POSITION_DIGITS)
}

/// The position in a name made by [`position_file_name`], or `None` for any other name.
pub(crate) fn parse_position_file_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != POSITION_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Twenty digits can still exceed u64::MAX; such a name is not one of ours.
    digits.parse().ok()
}

/// Positions of the files in `dir` named `{prefix}{position}{suffix}`, ascending.
pub(crate) fn list_positions(
    storage: &dyn Storage,
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> io::Result<Vec<u64>> {
    let mut positions: Vec<u64> = storage
        .list(dir)?
        .iter()
        .filter_map(|name| parse_position_file_name(name, prefix, suffix))
        .collect();
    positions.sort_unstable();
    Ok(positions)
}

/// The little-endian `u32` at `offset`; the caller has checked that it lies inside `bytes`.
pub(crate) fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut field = [0; 4];
    field.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(field)
}

/// The little-endian `u64` at `offset`; the caller has checked that it lies inside `bytes`.
pub(crate) fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut field = [0; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_names_round_trip_and_sort_by_position() {
        let small = position_file_name("wal-", 9, ".log");
        let large = position_file_name("wal-", 10, ".log");
        assert_eq!(small, "wal-00000000000000000009.log");
        assert!(small < large);
        assert_eq!(parse_position_file_name(&large, "wal-", ".log"), Some(10));
        let max = position_file_name("wal-", u64::MAX, ".log");
        assert_eq!(parse_position_file_name(&max, "wal-", ".log"), Some(u64::MAX));
    }

    #[test]
    fn foreign_names_are_not_parsed() {
        for name in [
            "LOCK",
            "wal-1.log",
            "wal-00000000000000000001.log.tmp",
            "wal-0000000000000000000x.log",
            "wal-99999999999999999999.log",
            "snapshot-00000000000000000001.snap",
        ] {
            assert_eq!(parse_position_file_name(name, "wal-", ".log"), None, "{name}");
        }
    }
}
