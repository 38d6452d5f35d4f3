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
    /// A length prefix over `FRAME_BYTES_MAX`.
    TooLarge { length: u64 },
    /// The stream ended inside a frame, `buffered` bytes into it.
    Truncated { buffered: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { length } => {
                write!(f, "frame of {length} bytes is over the {FRAME_BYTES_MAX}-byte limit")
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

/// The payload length a prefix announces, if it is within the limit.
pub fn frame_length(prefix: [u8; FRAME_PREFIX_BYTES]) -> Result<usize, FrameError> {
    let length = u32::from_le_bytes(prefix);
    if length as usize > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge { length: u64::from(length) });
    }
    Ok(length as usize)
}

/// Splits a byte stream into frame payloads, whatever pieces the bytes arrive in.
#[derive(Debug, Default)]
pub struct Deframer {
    buffer: Vec<u8>,
    /// Where the next unread frame starts in `buffer`.
    start: usize,
}

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // Drop frames already handed out; what remains is less than one frame.
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame's payload, `None` if more bytes are needed. After an error
    /// the stream cannot be resynchronised; the caller closes it.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let unread = &self.buffer[self.start..];
        let Some(prefix) = unread.first_chunk::<FRAME_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let length = frame_length(*prefix)?;
        let end = FRAME_PREFIX_BYTES + length;
        if unread.len() < end {
            return Ok(None);
        }
        let payload_start = self.start + FRAME_PREFIX_BYTES;
        self.start += end;
        Ok(Some(&self.buffer[payload_start..payload_start + length]))
    }

    /// The stream has ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffer.len() - self.start {
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
        assert_eq!(
            deframer.next_frame(),
            Err(FrameError::TooLarge { length: u64::from(u32::MAX) })
        );
        let error: Error = FrameError::TooLarge { length: 1 << 32 }.into();
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
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let mut deframer = Deframer::new();
        deframer.push(&[5, 0, 0, 0, 1, 2]);
        assert_eq!(deframer.next_frame(), Ok(None));
        assert_eq!(deframer.finish(), Err(FrameError::Truncated { buffered: 6 }));
    }
}
