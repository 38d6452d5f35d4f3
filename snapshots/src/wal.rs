//! The write-ahead log: the record format, segment files named by their first position,
//! and [`WalWriter`], which makes a batch of records durable with one write and one
//! fdatasync (group commit).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{RecordError, StorageError};
use crate::files::{
    list_positions, parse_position_file_name, position_file_name, read_u32, read_u64,
};
use crate::storage::{Storage, StorageFile};

/// Bytes before the payload: len u32, crc32c u32, position u64, time_ms u64.
pub const RECORD_HEADER_BYTES: usize = 24;
/// Largest payload a record may carry; a length field above it marks the record corrupt.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 1024 * 1024;
/// Size at which the writer starts a new segment before the next batch.
pub const SEGMENT_BYTES_TARGET_DEFAULT: u64 = 64 * 1024 * 1024;
pub const SEGMENT_FILE_PREFIX: &str = "wal-";
pub const SEGMENT_FILE_SUFFIX: &str = ".log";

/// Batch buffer capacity reserved up front, so ordinary batches never grow it.
const BATCH_BUFFER_BYTES_INITIAL: usize = 1024 * 1024;
/// Capacity the batch buffer keeps after a commit; an unusually large batch gives back
/// the rest.
const BATCH_BUFFER_BYTES_RETAINED_MAX: usize = 64 * 1024 * 1024;

const LEN_OFFSET: usize = 0;
const CRC_OFFSET: usize = 4;
const POSITION_OFFSET: usize = 8;
const TIME_OFFSET: usize = 16;
/// The crc32c covers the record from here (position, time_ms) to the end of its payload.
const CRC_COVERED_FROM: usize = POSITION_OFFSET;

/// A record read back from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub position: u64,
    pub time_ms: u64,
    pub payload: &'a [u8],
}

/// `wal-{first_position:020}.log`.
pub fn segment_file_name(first_position: u64) -> String {
    position_file_name(SEGMENT_FILE_PREFIX, first_position, SEGMENT_FILE_SUFFIX)
}

/// The first position of a segment file name, or `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_position_file_name(name, SEGMENT_FILE_PREFIX, SEGMENT_FILE_SUFFIX)
}

/// First positions of the segments in `dir`, ascending.
pub(crate) fn list_segments(storage: &dyn Storage, dir: &Path) -> std::io::Result<Vec<u64>> {
    list_positions(storage, dir, SEGMENT_FILE_PREFIX, SEGMENT_FILE_SUFFIX)
}

/// Appends one encoded record to `buf`.
///
/// # Panics
/// If `payload` is longer than [`RECORD_PAYLOAD_BYTES_MAX`]: such a record could never be
/// read back, and callers bound their payloads well below it.
pub fn encode_record(buf: &mut Vec<u8>, position: u64, time_ms: u64, payload: &[u8]) {
    let start = begin_record(buf, position, time_ms);
    buf.extend_from_slice(payload);
    seal_record(buf, start);
}

/// Pushes a header with len and crc left zero; returns where the record starts.
fn begin_record(buf: &mut Vec<u8>, position: u64, time_ms: u64) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; CRC_COVERED_FROM]);
    buf.extend_from_slice(&position.to_le_bytes());
    buf.extend_from_slice(&time_ms.to_le_bytes());
    start
}

/// Fills in len and crc of the record that starts at `start` and runs to the end of `buf`.
fn seal_record(buf: &mut [u8], start: usize) {
    let record = &mut buf[start..];
    assert!(record.len() >= RECORD_HEADER_BYTES, "a record encoder must only append to the buffer");
    let payload_len = record.len() - RECORD_HEADER_BYTES;
    assert!(
        payload_len <= RECORD_PAYLOAD_BYTES_MAX,
        "record payload of {payload_len} bytes exceeds RECORD_PAYLOAD_BYTES_MAX"
    );
    let crc = crc32c::crc32c(&record[CRC_COVERED_FROM..]);
    // The assert above bounds payload_len far below u32::MAX.
    record[LEN_OFFSET..CRC_OFFSET].copy_from_slice(&(payload_len as u32).to_le_bytes());
    record[CRC_OFFSET..POSITION_OFFSET].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes and verifies the record at the start of `bytes`.
///
/// Returns `Ok(None)` when `bytes` is empty, else the record and the bytes it occupies.
/// The length field is checked against [`RECORD_PAYLOAD_BYTES_MAX`] and the bytes present
/// before anything is sliced; nothing is allocated.
pub fn decode_record(bytes: &[u8]) -> Result<Option<(Record<'_>, usize)>, RecordError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(RecordError::ShortHeader { available: bytes.len() });
    }
    let len = read_u32(bytes, LEN_OFFSET);
    if len as usize > RECORD_PAYLOAD_BYTES_MAX {
        return Err(RecordError::PayloadTooLarge { len });
    }
    let record_bytes = RECORD_HEADER_BYTES + len as usize;
    let Some(record) = bytes.get(..record_bytes) else {
        return Err(RecordError::ShortPayload {
            len,
            available: bytes.len() - RECORD_HEADER_BYTES,
        });
    };
    let stored = read_u32(record, CRC_OFFSET);
    let computed = crc32c::crc32c(&record[CRC_COVERED_FROM..]);
    if stored != computed {
        return Err(RecordError::CrcMismatch { stored, computed });
    }
    let decoded = Record {
        position: read_u64(record, POSITION_OFFSET),
        time_ms: read_u64(record, TIME_OFFSET),
        payload: &record[RECORD_HEADER_BYTES..],
    };
    Ok(Some((decoded, record_bytes)))
}

/// Offset of the first record after `bad_offset` that verifies and whose position could
/// follow a bad record expected at `expected_position`, if any.
///
/// Each record takes at least a header, so a record `k` positions later lies at least
/// `k` headers further on; checking that bound before the crc keeps the scan linear.
pub(crate) fn find_record_after(
    bytes: &[u8],
    bad_offset: usize,
    expected_position: u64,
) -> Option<usize> {
    let last_start = bytes.len().checked_sub(RECORD_HEADER_BYTES)?;
    (bad_offset + 1..=last_start).find(|&offset| {
        let position = read_u64(bytes, offset + POSITION_OFFSET);
        let records_between = ((offset - bad_offset) / RECORD_HEADER_BYTES) as u64;
        let plausible =
            position >= expected_position && position - expected_position <= records_between;
        plausible && matches!(decode_record(&bytes[offset..]), Ok(Some(_)))
    })
}

/// A segment is full once it holds data and has reached the target; an empty segment
/// never is, so a zero target still puts one batch in each segment.
fn segment_is_full(segment_bytes: u64, segment_bytes_target: u64) -> bool {
    segment_bytes > 0 && segment_bytes >= segment_bytes_target
}

/// Creates segment `first_position` and makes its name durable.
fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    first_position: u64,
) -> Result<(PathBuf, Box<dyn StorageFile>), StorageError> {
    let path = dir.join(segment_file_name(first_position));
    let file = storage.create(&path).map_err(StorageError::io("create", &path))?;
    // fdatasync of the file does not cover its directory entry: without this a crash
    // could lose the whole segment after its records were acknowledged.
    storage.sync_dir(dir).map_err(StorageError::io("fsync directory", dir))?;
    Ok((path, file))
}

/// The segment a writer appends to, and its size.
struct OpenSegment {
    path: PathBuf,
    file: Box<dyn StorageFile>,
    bytes: u64,
}

/// Opens the newest segment for appending when it has room, else creates segment
/// `next_position`. Refuses a newest segment that cannot precede `next_position`.
fn open_segment(
    storage: &dyn Storage,
    dir: &Path,
    next_position: u64,
    segment_bytes_target: u64,
) -> Result<OpenSegment, StorageError> {
    let segments = list_segments(storage, dir).map_err(StorageError::io("list", dir))?;
    if let Some(&first) = segments.last() {
        let path = dir.join(segment_file_name(first));
        let bytes = storage.file_len(&path).map_err(StorageError::io("read the size of", &path))?;
        // An empty segment must be named exactly next_position (a crash right after a
        // rollover leaves one); a non-empty one must start before it.
        let contradiction = if bytes == 0 {
            (first != next_position).then_some("is empty but not named for")
        } else {
            (first >= next_position).then_some("already holds")
        };
        if let Some(contradiction) = contradiction {
            let message = format!("the newest segment {contradiction} position {next_position}");
            return Err(StorageError::invalid_input("open the log at", &path, message));
        }
        if !segment_is_full(bytes, segment_bytes_target) {
            let file = storage
                .open_append(&path)
                .map_err(StorageError::io("open for appending", &path))?;
            return Ok(OpenSegment { path, file, bytes });
        }
    }
    let (path, file) = create_segment(storage, dir, next_position)?;
    Ok(OpenSegment { path, file, bytes: 0 })
}

/// Appends records to the log and makes them durable a batch at a time.
pub struct WalWriter {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segment_bytes_target: u64,
    segment: OpenSegment,
    /// Encoded records not yet written; cleared, not reallocated, after each commit.
    batch: Vec<u8>,
    next_position: u64,
    durable_position: u64,
    poisoned: bool,
}

impl fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalWriter")
            .field("segment", &self.segment.path)
            .field("segment_bytes", &self.segment.bytes)
            .field("next_position", &self.next_position)
            .field("durable_position", &self.durable_position)
            .field("pending_records", &self.pending_records())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl WalWriter {
    /// Appends after `next_position - 1`. If the newest segment exists and is under the
    /// target size, appends to it; otherwise creates segment `next_position` and fsyncs
    /// the directory before returning.
    ///
    /// The caller must have replayed the log: `next_position` is one past its last record.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        next_position: u64,
        segment_bytes_target: u64,
    ) -> Result<WalWriter, StorageError> {
        if next_position == 0 {
            let message = "log positions start at 1".to_owned();
            return Err(StorageError::invalid_input("open the log in", dir, message));
        }
        let segment = open_segment(storage.as_ref(), dir, next_position, segment_bytes_target)?;
        Ok(WalWriter {
            storage,
            dir: dir.to_path_buf(),
            segment_bytes_target,
            segment,
            batch: Vec::with_capacity(BATCH_BUFFER_BYTES_INITIAL),
            next_position,
            durable_position: next_position - 1,
            poisoned: false,
        })
    }

    /// Buffers one record whose payload `encode` appends to the batch buffer; returns its
    /// position. Nothing touches the disk here.
    ///
    /// # Panics
    /// If `encode` removes bytes from the buffer or appends more than
    /// [`RECORD_PAYLOAD_BYTES_MAX`].
    pub fn append_with(&mut self, time_ms: u64, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let position = self.next_position;
        let start = begin_record(&mut self.batch, position, time_ms);
        encode(&mut self.batch);
        seal_record(&mut self.batch, start);
        self.next_position += 1;
        position
    }

    /// Buffers one record with a copy of `payload`; see [`WalWriter::append_with`].
    pub fn append(&mut self, time_ms: u64, payload: &[u8]) -> u64 {
        self.append_with(time_ms, |buf| buf.extend_from_slice(payload))
    }

    /// Group commit: one `write_all` of the buffered batch, then one `sync_data`. First
    /// starts a new segment if the current one is full, so a batch never spans two.
    ///
    /// On `Ok` every appended record is durable. On `Err` the writer is poisoned: this
    /// call returns the original error, every later one [`StorageError::Poisoned`], and
    /// nothing more is written.
    pub fn commit(&mut self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.write_batch() {
            // Never retry: after a failed fsync the kernel may have dropped the dirty
            // pages, and a retry could report success for data that is gone.
            self.poisoned = true;
            return Err(error);
        }
        self.durable_position = self.next_position - 1;
        self.batch.clear();
        self.batch.shrink_to(BATCH_BUFFER_BYTES_RETAINED_MAX);
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), StorageError> {
        if segment_is_full(self.segment.bytes, self.segment_bytes_target) {
            self.roll_over()?;
        }
        let segment = &mut self.segment;
        segment.file.write_all(&self.batch).map_err(StorageError::io("write", &segment.path))?;
        segment.bytes += self.batch.len() as u64;
        segment.file.sync_data().map_err(StorageError::io("fdatasync", &segment.path))
    }

    /// Starts the segment named for the first record of the pending batch. The previous
    /// segment needs no sync: every commit already synced it.
    fn roll_over(&mut self) -> Result<(), StorageError> {
        let first_position = self.durable_position + 1;
        let (path, file) = create_segment(self.storage.as_ref(), &self.dir, first_position)?;
        self.segment = OpenSegment { path, file, bytes: 0 };
        Ok(())
    }

    /// The position the next append gets.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// The last position known durable.
    pub fn durable_position(&self) -> u64 {
        self.durable_position
    }

    /// Records appended but not yet committed.
    pub fn pending_records(&self) -> usize {
        (self.next_position - 1 - self.durable_position) as usize
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The segment the next commit writes to (unless it rolls over first).
    pub fn segment_path(&self) -> &Path {
        &self.segment.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(position: u64, time_ms: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_record(&mut buf, position, time_ms, payload);
        buf
    }

    #[test]
    fn records_round_trip() {
        let mut buf = encoded(7, 1_700_000_000_123, b"hold 3 of sku-1");
        encode_record(&mut buf, 8, 1_700_000_000_124, b"");
        let (first, used) = decode_record(&buf).expect("valid").expect("present");
        assert_eq!(
            first,
            Record { position: 7, time_ms: 1_700_000_000_123, payload: b"hold 3 of sku-1" }
        );
        assert_eq!(used, RECORD_HEADER_BYTES + 15);
        let (second, used_second) = decode_record(&buf[used..]).expect("valid").expect("present");
        assert_eq!((second.position, second.payload), (8, &b""[..]));
        assert_eq!(used + used_second, buf.len());
        assert_eq!(decode_record(&buf[buf.len()..]), Ok(None));
    }

    #[test]
    fn header_layout_is_len_crc_position_time() {
        let buf = encoded(0x0102, 0x0304, b"abc");
        assert_eq!(&buf[0..4], &3u32.to_le_bytes());
        assert_eq!(&buf[8..16], &0x0102u64.to_le_bytes());
        assert_eq!(&buf[16..24], &0x0304u64.to_le_bytes());
        assert_eq!(&buf[24..], b"abc");
        let crc = crc32c::crc32c(&buf[8..]);
        assert_eq!(&buf[4..8], &crc.to_le_bytes());
    }

    #[test]
    fn record_matches_the_example_in_docs_storage_md() {
        let buf = encoded(1, 1_700_000_000_000, b"hold");
        let documented = [
            0x04, 0x00, 0x00, 0x00, 0x95, 0x84, 0x46, 0x86, // len 4, crc32c 0x86468495
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // position 1
            0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00, // time_ms 1_700_000_000_000
            b'h', b'o', b'l', b'd',
        ];
        assert_eq!(buf, documented);
    }

    #[test]
    fn crc_covers_position_time_and_payload() {
        let clean = encoded(42, 99, b"payload");
        for index in [POSITION_OFFSET, POSITION_OFFSET + 7, TIME_OFFSET, RECORD_HEADER_BYTES + 3] {
            let mut flipped = clean.clone();
            flipped[index] ^= 0x01;
            assert!(
                matches!(decode_record(&flipped), Err(RecordError::CrcMismatch { .. })),
                "flip at byte {index} went unnoticed"
            );
        }
    }

    #[test]
    fn truncated_records_are_short_not_panics() {
        let buf = encoded(1, 2, b"0123456789");
        assert_eq!(decode_record(&buf[..10]), Err(RecordError::ShortHeader { available: 10 }));
        assert_eq!(
            decode_record(&buf[..RECORD_HEADER_BYTES + 4]),
            Err(RecordError::ShortPayload { len: 10, available: 4 })
        );
    }

    #[test]
    fn length_over_the_max_is_rejected_before_reading_the_payload() {
        let mut buf = encoded(1, 2, b"x");
        let too_long = RECORD_PAYLOAD_BYTES_MAX as u32 + 1;
        buf[..4].copy_from_slice(&too_long.to_le_bytes());
        assert_eq!(decode_record(&buf), Err(RecordError::PayloadTooLarge { len: too_long }));
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_record(&buf), Err(RecordError::PayloadTooLarge { len: u32::MAX }));
    }

    #[test]
    fn a_payload_of_exactly_the_max_round_trips() {
        let payload = vec![0xAB; RECORD_PAYLOAD_BYTES_MAX];
        let buf = encoded(1, 2, &payload);
        let (record, used) = decode_record(&buf).expect("valid").expect("present");
        assert_eq!(record.payload.len(), RECORD_PAYLOAD_BYTES_MAX);
        assert_eq!(used, buf.len());
    }

    #[test]
    #[should_panic(expected = "exceeds RECORD_PAYLOAD_BYTES_MAX")]
    fn encoding_an_oversized_payload_panics_instead_of_writing_an_unreadable_record() {
        encoded(1, 2, &vec![0; RECORD_PAYLOAD_BYTES_MAX + 1]);
    }

    #[test]
    fn scan_finds_the_next_record_after_a_damaged_one() {
        let mut buf = encoded(5, 0, b"damaged");
        let second_offset = buf.len();
        encode_record(&mut buf, 6, 0, b"intact");
        buf[RECORD_HEADER_BYTES] ^= 0xFF;
        assert_eq!(find_record_after(&buf, 0, 5), Some(second_offset));
    }

    #[test]
    fn scan_ignores_records_with_implausible_positions() {
        let mut buf = encoded(5, 0, b"damaged");
        // A record that verifies but lies too close to claim position 9: stale data.
        encode_record(&mut buf, 9, 0, b"stale");
        encode_record(&mut buf, 3, 0, b"older");
        buf[RECORD_HEADER_BYTES] ^= 0xFF;
        assert_eq!(find_record_after(&buf, 0, 5), None);
    }

    #[test]
    fn segment_names_are_first_positions() {
        assert_eq!(segment_file_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(123)), Some(123));
        assert_eq!(parse_segment_file_name("snapshot-00000000000000000001.snap"), None);
    }
}
