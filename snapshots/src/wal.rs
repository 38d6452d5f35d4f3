//! The write-ahead log: the record format, batches framed so that recovery can tell a
//! whole batch from a torn one, segment files named by their first position and
//! starting with a versioned header, and [`WalWriter`], which makes a batch of records
//! durable with one write and one fdatasync (group commit).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{BatchError, RecordError, SegmentHeaderError, StorageError};
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

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ALLOTWAL";
/// The log format this build writes and the only one it reads.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// magic 8, version u32, first position u64, header crc32c u32.
pub const SEGMENT_HEADER_BYTES: usize = 24;
const SEGMENT_VERSION_OFFSET: usize = 8;
pub(crate) const SEGMENT_FIRST_POSITION_OFFSET: usize = 12;
const SEGMENT_HEADER_CRC_OFFSET: usize = 20;

/// First bytes of every batch.
pub const BATCH_MAGIC: [u8; 4] = *b"BTCH";
/// magic 4, record count u32, first position u64, body length u64, body crc32c u32,
/// header crc32c u32.
pub const BATCH_HEADER_BYTES: usize = 32;
/// Largest batch body (its records) a header may claim; a larger claim marks the batch
/// bad. Nothing is allocated from it: the body is a slice of the segment in memory.
pub const BATCH_BODY_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// How many batches the writer may have written but not yet synced at once. Recovery
/// treats damage within the final this-many batches of the log as a possible torn tail
/// (they may never have reached the disk whole) and damage before them as corruption.
/// Today each commit syncs its batch before the next is written, so it is 1; a writer
/// that pipelines syncs must raise it.
pub const BATCHES_UNSYNCED_MAX: usize = 1;
const BATCH_RECORD_COUNT_OFFSET: usize = 4;
const BATCH_FIRST_POSITION_OFFSET: usize = 8;
const BATCH_BODY_LEN_OFFSET: usize = 16;
const BATCH_BODY_CRC_OFFSET: usize = 24;
const BATCH_HEADER_CRC_OFFSET: usize = 28;

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

/// A verified segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub first_position: u64,
}

/// The header every segment starts with.
pub fn encode_segment_header(first_position: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0; SEGMENT_HEADER_BYTES];
    header[..SEGMENT_VERSION_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
    header[SEGMENT_VERSION_OFFSET..SEGMENT_FIRST_POSITION_OFFSET]
        .copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    header[SEGMENT_FIRST_POSITION_OFFSET..SEGMENT_HEADER_CRC_OFFSET]
        .copy_from_slice(&first_position.to_le_bytes());
    let crc = crc32c::crc32c(&header[..SEGMENT_HEADER_CRC_OFFSET]);
    header[SEGMENT_HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Verifies the header at the start of a segment file: magic, then version (so that a
/// later format, whose header may be laid out differently, is reported as such), then crc.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, SegmentHeaderError> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(SegmentHeaderError::Short { available: bytes.len() });
    }
    if bytes[..SEGMENT_VERSION_OFFSET] != SEGMENT_MAGIC {
        return Err(SegmentHeaderError::BadMagic);
    }
    let version = read_u32(bytes, SEGMENT_VERSION_OFFSET);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(SegmentHeaderError::UnsupportedVersion { version });
    }
    let stored = read_u32(bytes, SEGMENT_HEADER_CRC_OFFSET);
    let computed = crc32c::crc32c(&bytes[..SEGMENT_HEADER_CRC_OFFSET]);
    if stored != computed {
        return Err(SegmentHeaderError::CrcMismatch { stored, computed });
    }
    Ok(SegmentHeader { version, first_position: read_u64(bytes, SEGMENT_FIRST_POSITION_OFFSET) })
}

/// A batch whose header, body crc and records all verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    pub first_position: u64,
    pub record_count: u32,
    /// The records, back to back.
    pub body: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The batch's records with their offsets inside the body.
    pub fn records(&self) -> impl Iterator<Item = (usize, Record<'a>)> + 'a {
        let body = self.body;
        let mut offset = 0;
        std::iter::from_fn(move || {
            // decode_batch verified every record, so this stops only at the end.
            let (record, used) = decode_record(&body[offset..]).ok()??;
            let at = offset;
            offset += used;
            Some((at, record))
        })
    }

    /// The position of the batch's last record.
    pub fn last_position(&self) -> u64 {
        self.first_position + u64::from(self.record_count) - 1
    }
}

/// Fills in the header of the batch occupying all of `buf`, whose body crc is `body_crc`.
fn seal_batch(buf: &mut [u8], first_position: u64, record_count: u32, body_crc: u32) {
    let body_bytes = (buf.len() - BATCH_HEADER_BYTES) as u64;
    let header = &mut buf[..BATCH_HEADER_BYTES];
    header[..BATCH_RECORD_COUNT_OFFSET].copy_from_slice(&BATCH_MAGIC);
    header[BATCH_RECORD_COUNT_OFFSET..BATCH_FIRST_POSITION_OFFSET]
        .copy_from_slice(&record_count.to_le_bytes());
    header[BATCH_FIRST_POSITION_OFFSET..BATCH_BODY_LEN_OFFSET]
        .copy_from_slice(&first_position.to_le_bytes());
    header[BATCH_BODY_LEN_OFFSET..BATCH_BODY_CRC_OFFSET].copy_from_slice(&body_bytes.to_le_bytes());
    header[BATCH_BODY_CRC_OFFSET..BATCH_HEADER_CRC_OFFSET].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..BATCH_HEADER_CRC_OFFSET]);
    header[BATCH_HEADER_CRC_OFFSET..].copy_from_slice(&header_crc.to_le_bytes());
}

/// Encodes one batch of records `first_position..` with the given times and payloads;
/// what [`WalWriter::commit`] writes for the same records.
pub fn encode_batch(buf: &mut Vec<u8>, first_position: u64, records: &[(u64, &[u8])]) {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let start = buf.len();
    buf.extend_from_slice(&[0; BATCH_HEADER_BYTES]);
    for (index, &(time_ms, payload)) in records.iter().enumerate() {
        let position = first_position.checked_add(index as u64).expect("positions fit a u64");
        encode_record(buf, position, time_ms, payload);
    }
    let body_crc = crc32c::crc32c(&buf[start + BATCH_HEADER_BYTES..]);
    let count = u32::try_from(records.len()).expect("batch record count fits a u32");
    seal_batch(&mut buf[start..], first_position, count, body_crc);
}

/// Verifies the header of the batch at the start of `bytes` (magic and header crc) and
/// returns its first position, record count and body length.
fn decode_batch_header(bytes: &[u8]) -> Result<(u64, u32, u64), BatchError> {
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::ShortHeader { available: bytes.len() });
    }
    if bytes[..BATCH_RECORD_COUNT_OFFSET] != BATCH_MAGIC {
        return Err(BatchError::BadMagic);
    }
    let stored = read_u32(bytes, BATCH_HEADER_CRC_OFFSET);
    let computed = crc32c::crc32c(&bytes[..BATCH_HEADER_CRC_OFFSET]);
    if stored != computed {
        return Err(BatchError::HeaderCrcMismatch { stored, computed });
    }
    Ok((
        read_u64(bytes, BATCH_FIRST_POSITION_OFFSET),
        read_u32(bytes, BATCH_RECORD_COUNT_OFFSET),
        read_u64(bytes, BATCH_BODY_LEN_OFFSET),
    ))
}

/// Decodes and verifies the batch at the start of `bytes`: header, body length against
/// the maximum and the bytes present, body crc, and every record (contiguous positions
/// from the header's first position, as many as the header says, filling the body).
///
/// Returns `Ok(None)` when `bytes` is empty, else the batch and the bytes it occupies.
/// When the body crc fails, the error names the first record that fails its own crc, if
/// any, so that damage is reported at the record it hit.
pub fn decode_batch(bytes: &[u8]) -> Result<Option<(Batch<'_>, usize)>, BatchError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let (first_position, record_count, body_len) = decode_batch_header(bytes)?;
    if record_count == 0 {
        return Err(BatchError::NoRecords);
    }
    if body_len > BATCH_BODY_BYTES_MAX {
        return Err(BatchError::BodyTooLarge { len: body_len });
    }
    let available = (bytes.len() - BATCH_HEADER_BYTES) as u64;
    if body_len > available {
        return Err(BatchError::ShortBody { len: body_len, available });
    }
    // body_len is at most the bytes present, so it fits a usize.
    let batch_bytes = BATCH_HEADER_BYTES + body_len as usize;
    let body = &bytes[BATCH_HEADER_BYTES..batch_bytes];
    let stored = read_u32(bytes, BATCH_BODY_CRC_OFFSET);
    let computed = crc32c::crc32c(body);
    let crc_matches = stored == computed;
    let mut offset = 0;
    let mut found = 0u64;
    while offset < body.len() {
        let (record, used) = match decode_record(&body[offset..]) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => break,
            Err(error) => return Err(BatchError::Record { offset, error }),
        };
        if !crc_matches {
            // This record verifies on its own; keep looking for the damaged one.
            offset += used;
            continue;
        }
        // Wrapping: only a crafted batch reaches the end of the position range, and the
        // position check then fails instead of overflowing.
        let expected = first_position.wrapping_add(found);
        if record.position != expected {
            return Err(BatchError::RecordPosition { offset, position: record.position, expected });
        }
        found += 1;
        offset += used;
    }
    if !crc_matches {
        return Err(BatchError::BodyCrcMismatch { stored, computed });
    }
    if found != u64::from(record_count) {
        return Err(BatchError::RecordCount { header: record_count, found });
    }
    Ok(Some((Batch { first_position, record_count, body }, batch_bytes)))
}

/// Offsets of the batch headers after `bad_offset` that verify and whose first position
/// could follow a bad batch expected to start at `expected_position`: at least that, and
/// at most one more per record header that fits in between. Stale batches (reused disk
/// blocks, positions already seen) therefore do not count.
///
/// The scan checks the magic before the crc, so it is linear in practice; from a batch
/// found it jumps over that batch's body.
pub(crate) fn find_batches_after(
    bytes: &[u8],
    bad_offset: usize,
    expected_position: u64,
) -> Vec<usize> {
    let mut found = Vec::new();
    let mut offset = bad_offset + 1;
    while offset + BATCH_HEADER_BYTES <= bytes.len() {
        if bytes[offset..offset + BATCH_RECORD_COUNT_OFFSET] != BATCH_MAGIC {
            offset += 1;
            continue;
        }
        let Ok((first_position, _, body_len)) = decode_batch_header(&bytes[offset..]) else {
            offset += 1;
            continue;
        };
        let records_between = ((offset - bad_offset) / RECORD_HEADER_BYTES) as u64;
        let plausible = first_position >= expected_position
            && first_position - expected_position <= records_between;
        if !plausible {
            offset += 1;
            continue;
        }
        found.push(offset);
        let next = usize::try_from(body_len)
            .ok()
            .and_then(|body| offset.checked_add(BATCH_HEADER_BYTES)?.checked_add(body));
        offset = next.unwrap_or(usize::MAX).max(offset + 1);
    }
    found
}

/// A record found by [`scan_segment`], with where it lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt<'a> {
    pub offset: usize,
    pub bytes: usize,
    pub record: Record<'a>,
}

/// A batch found by [`scan_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAt {
    pub offset: usize,
    pub bytes: usize,
    pub first_position: u64,
    pub record_count: u32,
}

/// What a segment file holds, read front to back until its end or the first bytes that
/// do not verify. For tools and tests; recovery applies its own rules on top of this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan<'a> {
    /// The header, if it verified.
    pub header: Option<SegmentHeader>,
    pub batches: Vec<BatchAt>,
    pub records: Vec<RecordAt<'a>>,
    /// Where reading stopped early, and why.
    pub stopped: Option<(usize, String)>,
}

/// Reads a whole segment file; see [`SegmentScan`].
pub fn scan_segment(bytes: &[u8]) -> SegmentScan<'_> {
    let mut scan =
        SegmentScan { header: None, batches: Vec::new(), records: Vec::new(), stopped: None };
    match decode_segment_header(bytes) {
        Ok(header) => scan.header = Some(header),
        Err(error) => {
            scan.stopped = Some((0, error.to_string()));
            return scan;
        }
    }
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        match decode_batch(&bytes[offset..]) {
            Ok(None) => break,
            Ok(Some((batch, used))) => {
                let first_position = batch.first_position;
                let record_count = batch.record_count;
                scan.batches.push(BatchAt { offset, bytes: used, first_position, record_count });
                let body_offset = offset + BATCH_HEADER_BYTES;
                scan.records.extend(batch.records().map(|(at, record)| RecordAt {
                    offset: body_offset + at,
                    bytes: RECORD_HEADER_BYTES + record.payload.len(),
                    record,
                }));
                offset += used;
            }
            Err(error) => {
                scan.stopped = Some((offset + error.offset_in_batch(), error.to_string()));
                break;
            }
        }
    }
    scan
}
/// A segment is full once it holds a batch and has reached the target; one without
/// batches never is, so a tiny target still puts one batch in each segment.
fn segment_is_full(segment_bytes: u64, segment_bytes_target: u64) -> bool {
    segment_bytes > SEGMENT_HEADER_BYTES as u64 && segment_bytes >= segment_bytes_target
}

/// Creates segment `first_position`, writes its header and makes both durable.
fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    first_position: u64,
) -> Result<(PathBuf, Box<dyn StorageFile>), StorageError> {
    let path = dir.join(segment_file_name(first_position));
    let mut file = storage.create(&path).map_err(StorageError::io("create", &path))?;
    file.write_all(&encode_segment_header(first_position))
        .map_err(StorageError::io("write", &path))?;
    // The header is synced before any batch is written, so a torn header can only be
    // found in a segment that holds no batch: recovery may then treat it as a torn tail.
    file.sync_data().map_err(StorageError::io("fdatasync", &path))?;
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
        // A segment without batches must be named exactly next_position (a crash right
        // after a rollover leaves one); one with batches must start before it.
        let holds_batches = bytes > SEGMENT_HEADER_BYTES as u64;
        let contradiction = if holds_batches {
            (first >= next_position).then_some("already holds")
        } else {
            (first != next_position).then_some("holds no records but is not named for")
        };
        if let Some(contradiction) = contradiction {
            let message = format!("the newest segment {contradiction} position {next_position}");
            return Err(StorageError::invalid_input("open the log at", &path, message));
        }
        if bytes >= SEGMENT_HEADER_BYTES as u64 && !segment_is_full(bytes, segment_bytes_target) {
            let file = storage
                .open_append(&path)
                .map_err(StorageError::io("open for appending", &path))?;
            return Ok(OpenSegment { path, file, bytes });
        }
        // A newest segment shorter than its header (recovery cut a torn header) is
        // created again below, under the same name.
    }
    let (path, file) = create_segment(storage, dir, next_position)?;
    Ok(OpenSegment { path, file, bytes: SEGMENT_HEADER_BYTES as u64 })
}

/// Appends records to the log and makes them durable a batch at a time.
pub struct WalWriter {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segment_bytes_target: u64,
    segment: OpenSegment,
    /// The pending batch, header space first, then encoded records; cleared, not
    /// reallocated, after each commit.
    batch: Vec<u8>,
    /// CRC-32C of the records in `batch`, extended as each one is sealed.
    batch_body_crc: u32,
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
    /// target size, appends to it; otherwise creates segment `next_position` (header
    /// synced, directory fsynced) before returning.
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
            batch_body_crc: 0,
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
    /// [`RECORD_PAYLOAD_BYTES_MAX`], or if the batch would exceed
    /// [`BATCH_BODY_BYTES_MAX`] or `u32::MAX` records (far beyond any batch the engine
    /// builds).
    pub fn append_with(&mut self, time_ms: u64, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        assert!(self.pending_records() < u32::MAX as usize, "batch exceeds u32::MAX records");
        if self.batch.is_empty() {
            // Room for the batch header, filled in at commit.
            self.batch.extend_from_slice(&[0; BATCH_HEADER_BYTES]);
            self.batch_body_crc = 0;
        }
        let position = self.next_position;
        let start = begin_record(&mut self.batch, position, time_ms);
        encode(&mut self.batch);
        seal_record(&mut self.batch, start);
        assert!(
            (self.batch.len() - BATCH_HEADER_BYTES) as u64 <= BATCH_BODY_BYTES_MAX,
            "batch body exceeds BATCH_BODY_BYTES_MAX"
        );
        self.batch_body_crc = crc32c::crc32c_append(self.batch_body_crc, &self.batch[start..]);
        self.next_position += 1;
        position
    }

    /// Buffers one record with a copy of `payload`; see [`WalWriter::append_with`].
    pub fn append(&mut self, time_ms: u64, payload: &[u8]) -> u64 {
        self.append_with(time_ms, |buf| buf.extend_from_slice(payload))
    }

    /// Group commit: one `write_all` of the buffered batch (header, then its records),
    /// then one `sync_data`. First starts a new segment if the current one is full, so a
    /// batch never spans two.
    ///
    /// At most [`BATCHES_UNSYNCED_MAX`] batches are ever written but not yet synced:
    /// today one, since each commit syncs its own batch before returning.
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
        let first_position = self.durable_position + 1;
        // append_with bounds the count to u32::MAX.
        let record_count = self.pending_records() as u32;
        seal_batch(&mut self.batch, first_position, record_count, self.batch_body_crc);
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
    /// segment needs no sync: every commit already synced it, so no segment but the
    /// newest ever holds an unsynced batch.
    fn roll_over(&mut self) -> Result<(), StorageError> {
        let first_position = self.durable_position + 1;
        let (path, file) = create_segment(self.storage.as_ref(), &self.dir, first_position)?;
        self.segment = OpenSegment { path, file, bytes: SEGMENT_HEADER_BYTES as u64 };
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

    /// Bytes the next commit writes: the pending batch with its header, or 0.
    pub fn pending_bytes(&self) -> u64 {
        self.batch.len() as u64
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

    fn batch_of(first_position: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let records: Vec<(u64, &[u8])> = payloads.iter().map(|p| (0, *p)).collect();
        let mut buf = Vec::new();
        encode_batch(&mut buf, first_position, &records);
        buf
    }

    #[test]
    fn batches_round_trip_with_their_records() {
        let mut buf = batch_of(5, &[b"one", b"", b"three"]);
        let first_len = buf.len();
        buf.extend_from_slice(&batch_of(8, &[b"four"]));
        let (batch, used) = decode_batch(&buf).expect("valid").expect("present");
        assert_eq!(used, first_len);
        assert_eq!((batch.first_position, batch.record_count, batch.last_position()), (5, 3, 7));
        let records: Vec<(u64, &[u8])> =
            batch.records().map(|(_, r)| (r.position, r.payload)).collect();
        assert_eq!(records, [(5, &b"one"[..]), (6, b""), (7, b"three")]);
        let (second, _) = decode_batch(&buf[used..]).expect("valid").expect("present");
        assert_eq!(second.first_position, 8);
        assert_eq!(decode_batch(&buf[buf.len()..]), Ok(None));
    }

    #[test]
    fn batch_matches_the_example_in_docs_storage_md() {
        let mut buf = Vec::new();
        encode_batch(&mut buf, 1, &[(1_700_000_000_000, b"hold")]);
        let documented = [
            b'B', b'T', b'C', b'H', // magic
            0x01, 0x00, 0x00, 0x00, // record count 1
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // first position 1
            0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // body length 28
            0xce, 0x13, 0x44, 0x6d, // body crc32c 0x6d4413ce
            0x1e, 0x35, 0x97, 0xe0, // header crc32c 0xe097351e
        ];
        assert_eq!(&buf[..BATCH_HEADER_BYTES], documented);
        assert_eq!(buf[BATCH_HEADER_BYTES..], encoded(1, 1_700_000_000_000, b"hold"));
    }

    #[test]
    fn segment_header_matches_the_example_in_docs_storage_md() {
        let documented = [
            b'A', b'L', b'L', b'O', b'T', b'W', b'A', b'L', // magic
            0x01, 0x00, 0x00, 0x00, // format version 1
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // first position 1
            0xe1, 0x9f, 0x02, 0xb5, // header crc32c 0xb5029fe1
        ];
        assert_eq!(encode_segment_header(1), documented);
        assert_eq!(
            decode_segment_header(&documented),
            Ok(SegmentHeader { version: 1, first_position: 1 })
        );
    }

    #[test]
    fn an_unknown_segment_version_is_reported_as_such_even_with_a_matching_crc() {
        let mut header = encode_segment_header(9);
        header[SEGMENT_VERSION_OFFSET..SEGMENT_FIRST_POSITION_OFFSET]
            .copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&header[..SEGMENT_HEADER_CRC_OFFSET]);
        header[SEGMENT_HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_segment_header(&header),
            Err(SegmentHeaderError::UnsupportedVersion { version: 2 })
        );
    }

    #[test]
    fn damaged_or_short_segment_headers_are_typed_errors() {
        let header = encode_segment_header(9);
        assert_eq!(
            decode_segment_header(&header[..10]),
            Err(SegmentHeaderError::Short { available: 10 })
        );
        assert_eq!(decode_segment_header(&[0; 24]), Err(SegmentHeaderError::BadMagic));
        let mut flipped = header;
        flipped[SEGMENT_FIRST_POSITION_OFFSET] ^= 1;
        assert!(matches!(
            decode_segment_header(&flipped),
            Err(SegmentHeaderError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn every_byte_of_a_batch_is_covered_by_a_check() {
        let clean = batch_of(3, &[b"alpha", b"beta"]);
        for index in 0..clean.len() {
            let mut flipped = clean.clone();
            flipped[index] ^= 0x01;
            assert!(decode_batch(&flipped).is_err(), "flip at byte {index} went unnoticed");
        }
    }

    #[test]
    fn damage_in_a_batch_body_names_the_record_it_hit() {
        let clean = batch_of(3, &[b"alpha", b"beta"]);
        let second = BATCH_HEADER_BYTES + RECORD_HEADER_BYTES + 5;
        let mut flipped = clean.clone();
        flipped[second + RECORD_HEADER_BYTES + 1] ^= 0x40;
        let error = decode_batch(&flipped).expect_err("damaged");
        assert!(matches!(error, BatchError::Record { error: RecordError::CrcMismatch { .. }, .. }));
        assert_eq!(error.offset_in_batch(), second);
    }

    #[test]
    fn a_batch_cut_short_is_a_typed_error_not_a_panic() {
        let clean = batch_of(1, &[b"0123456789"]);
        for cut in 1..clean.len() {
            assert!(decode_batch(&clean[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn scan_finds_the_batch_after_a_damaged_one() {
        let mut buf = batch_of(5, &[b"damaged"]);
        let second_offset = buf.len();
        buf.extend_from_slice(&batch_of(6, &[b"intact"]));
        buf.extend_from_slice(&batch_of(7, &[b"also intact"]));
        buf[BATCH_HEADER_BYTES + RECORD_HEADER_BYTES] ^= 0xFF;
        let third_offset = second_offset + batch_of(6, &[b"intact"]).len();
        assert_eq!(find_batches_after(&buf, 0, 5), [second_offset, third_offset]);
    }

    #[test]
    fn scan_ignores_batches_with_implausible_positions() {
        let mut buf = batch_of(5, &[b"damaged"]);
        // A batch that verifies but lies too close to claim position 9: stale data.
        buf.extend_from_slice(&batch_of(9, &[b"stale"]));
        buf.extend_from_slice(&batch_of(3, &[b"older"]));
        buf[BATCH_HEADER_BYTES] ^= 0xFF;
        assert!(find_batches_after(&buf, 0, 5).is_empty());
    }

    #[test]
    fn segment_names_are_first_positions() {
        assert_eq!(segment_file_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(123)), Some(123));
        assert_eq!(parse_segment_file_name("snapshot-00000000000000000001.snap"), None);
    }
}
