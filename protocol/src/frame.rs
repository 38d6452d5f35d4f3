//! Framing: every message travels as `[u32 length, little endian][payload]`.
//!
//! [`frame_length`] judges a length prefix before the payload is read, so a prefix over
//! `FRAME_BYTES_MAX` (say, 4 GiB) is refused without allocating. [`Deframer`] does the
//! same over a byte stream that arrives in arbitrary pieces, with no I/O of its own.

use crate::error::{Error, ErrorCode};
use crate::limits::FRAME_BYTES_MAX;

/// Bytes in a frame's length prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// A byte stream that is not a sequence of acceptable frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame of `length` payload bytes, over the limit of `bytes_max`.
    TooLarge { length: u64, bytes_max: u64 },
    /// The stream ended inside a frame, `buffered` bytes into it.
    Truncated { buffered: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { length, bytes_max } => {
                write!(f, "frame of {length} bytes is over the {bytes_max}-byte limit")
            }
            FrameError::Truncated { buffered } => {
                write!(f, "stream ended {buffered} bytes into a frame")
            }
        }
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for Error {
    fn from(error: FrameError) -> Error {
        let code = match error {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::Truncated { .. } => ErrorCode::InvalidArgument,
        };
        Error::new(code, error.to_string())
    }
}

/// The payload length a prefix announces, if it is within `bytes_max`.
pub fn frame_length(
    prefix: [u8; FRAME_PREFIX_BYTES],
    bytes_max: usize,
) -> Result<usize, FrameError> {
    let length = u32::from_le_bytes(prefix) as usize;
    if length > bytes_max {
        return Err(too_large(length, bytes_max));
    }
    Ok(length)
}

pub(crate) fn too_large(length: usize, bytes_max: usize) -> FrameError {
    FrameError::TooLarge { length: length as u64, bytes_max: bytes_max as u64 }
}

/// Appends `[u32 length LE][payload]` to `out`, if the payload is within `bytes_max`
/// (itself at most `FRAME_BYTES_MAX`).
pub fn append_frame(payload: &[u8], bytes_max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let bytes_max = bytes_max.min(FRAME_BYTES_MAX);
    if payload.len() > bytes_max {
        return Err(too_large(payload.len(), bytes_max));
    }
    let length = u32::try_from(payload.len()).expect("bounded by FRAME_BYTES_MAX");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Buffer capacity kept between frames; a larger one, left by a large frame, is freed so
/// an idle stream does not hold megabytes.
const BUFFER_RETAINED_BYTES_MAX: usize = 256 * 1024;

/// Splits a byte stream into frame payloads, whatever pieces the bytes arrive in.
#[derive(Debug)]
pub struct Deframer {
    buffer: Vec<u8>,
    /// Where the next unread frame starts in `buffer`.
    start: usize,
    bytes_max: usize,
}

impl Default for Deframer {
    fn default() -> Deframer {
        Deframer::with_bytes_max(FRAME_BYTES_MAX)
    }
}

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// A deframer refusing frames over `bytes_max` (itself at most `FRAME_BYTES_MAX`),
    /// for a peer configured with a lower limit.
    pub fn with_bytes_max(bytes_max: usize) -> Deframer {
        Deframer { buffer: Vec::new(), start: 0, bytes_max: bytes_max.min(FRAME_BYTES_MAX) }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // Drop frames already handed out; what remains is less than one frame.
        self.buffer.drain(..self.start);
        self.start = 0;
        if self.buffer.is_empty() && self.buffer.capacity() > BUFFER_RETAINED_BYTES_MAX {
            self.buffer = Vec::new();
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame's payload, `None` if more bytes are needed. A length prefix
    /// over the limit is an error as soon as its four bytes are in, before any payload.
    /// After an error the stream cannot be resynchronised; the caller closes it.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let unread = &self.buffer[self.start..];
        let Some(prefix) = unread.first_chunk::<FRAME_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let length = frame_length(*prefix, self.bytes_max)?;
        let end = FRAME_PREFIX_BYTES + length;
        if unread.len() < end {
            return Ok(None);
        }
        let payload_start = self.start + FRAME_PREFIX_BYTES;
        self.start += end;
        Ok(Some(&self.buffer[payload_start..payload_start + length]))
    }

    /// Bytes received that no returned frame covers yet.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The stream has ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_four_gib_length_prefix_is_too_large_before_any_payload_arrives() {
        let mut deframer = Deframer::new();
        deframer.push(&u32::MAX.to_le_bytes());
        let (length, bytes_max) = (u64::from(u32::MAX), FRAME_BYTES_MAX as u64);
        assert_eq!(deframer.next_frame(), Err(FrameError::TooLarge { length, bytes_max }));
        let error: Error = FrameError::TooLarge { length: 1 << 32, bytes_max }.into();
        assert_eq!(error.code, ErrorCode::FrameTooLarge);
    }

    #[test]
    fn frames_split_across_pushes_come_out_whole() {
        let mut stream = Vec::new();
        for payload in [&b"abc"[..], b"", b"hello"] {
            stream.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            stream.extend_from_slice(payload);
        }
        let mut deframer = Deframer::new();
        let mut payloads = Vec::new();
        for byte in &stream {
            deframer.push(std::slice::from_ref(byte));
            while let Some(payload) = deframer.next_frame().unwrap() {
                payloads.push(payload.to_vec());
            }
        }
        assert_eq!(payloads, vec![b"abc".to_vec(), vec![], b"hello".to_vec()]);
        assert_eq!(deframer.finish(), Ok(()));
    }

    #[test]
    fn a_lower_limit_refuses_a_frame_the_protocol_would_allow() {
        let mut deframer = Deframer::with_bytes_max(16);
        deframer.push(&17u32.to_le_bytes());
        assert_eq!(deframer.next_frame(), Err(FrameError::TooLarge { length: 17, bytes_max: 16 }));
        let mut out = Vec::new();
        assert_eq!(
            append_frame(&[0; 17], 16, &mut out),
            Err(FrameError::TooLarge { length: 17, bytes_max: 16 })
        );
        assert!(out.is_empty(), "nothing is appended for a refused frame");
        append_frame(&[7; 16], 16, &mut out).unwrap();
        assert_eq!(out[..4], 16u32.to_le_bytes());
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let mut deframer = Deframer::new();
        deframer.push(&[5, 0, 0, 0, 1, 2]);
        assert_eq!(deframer.next_frame(), Ok(None));
        assert_eq!(deframer.finish(), Err(FrameError::Truncated { buffered: 6 }));
    }
}
