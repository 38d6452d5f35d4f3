//! Reads `[u32 length][payload]` frames from a QUIC stream. A length prefix is judged
//! before any of its payload is read, and the payload is buffered only as it arrives, so
//! a peer announcing a large frame costs nothing until it actually sends the bytes.

use allot_protocol::frame::{FRAME_PREFIX_BYTES, frame_length};
use allot_protocol::{Error, ErrorCode};
use quinn::RecvStream;

/// Most bytes taken from quinn in one read; bounds the buffer beyond the current frame.
const READ_CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Buffer capacity kept between frames; a larger one (left by a large frame) is freed.
const BUFFER_RETAINED_BYTES_MAX: usize = 256 * 1024;

/// Why no further frame can be read.
#[derive(Debug)]
pub enum FrameEnd {
    /// The peer finished the stream at a frame boundary.
    Finished,
    /// The peer finished the stream inside a frame.
    Truncated { buffered: usize },
    /// A length prefix over the limit; the stream cannot be resynchronised.
    TooLarge(Error),
    /// The stream was reset or the connection lost.
    Broken,
}

/// The frames of one stream, in order.
#[derive(Debug)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Where the next unread frame starts in `buffer`.
    start: usize,
    frame_bytes_max: usize,
}

impl FrameReader {
    pub fn new(frame_bytes_max: usize) -> FrameReader {
        FrameReader { buffer: Vec::new(), start: 0, frame_bytes_max }
    }

    /// The next frame's payload, reading from `recv` as needed.
    pub async fn next<'a>(&'a mut self, recv: &mut RecvStream) -> Result<&'a [u8], FrameEnd> {
        loop {
            if let Some((begin, end)) = self.buffered_frame()? {
                return Ok(&self.buffer[begin..end]);
            }
            self.compact();
            match recv.read_chunk(READ_CHUNK_BYTES_MAX, true).await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk.bytes),
                Ok(None) if self.buffer.is_empty() => return Err(FrameEnd::Finished),
                Ok(None) => return Err(FrameEnd::Truncated { buffered: self.buffer.len() }),
                Err(_) => return Err(FrameEnd::Broken),
            }
        }
    }

    /// The bounds of the next whole frame's payload in `buffer`, if it has arrived.
    fn buffered_frame(&mut self) -> Result<Option<(usize, usize)>, FrameEnd> {
        let unread = &self.buffer[self.start..];
        let Some(prefix) = unread.first_chunk::<FRAME_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let length = frame_length(*prefix).map_err(|error| FrameEnd::TooLarge(error.into()))?;
        if length > self.frame_bytes_max {
            let message = format!(
                "frame of {length} bytes is over this server's {}-byte limit",
                self.frame_bytes_max
            );
            return Err(FrameEnd::TooLarge(Error::new(ErrorCode::FrameTooLarge, message)));
        }
        if unread.len() < FRAME_PREFIX_BYTES + length {
            return Ok(None);
        }
        let begin = self.start + FRAME_PREFIX_BYTES;
        self.start = begin + length;
        Ok(Some((begin, self.start)))
    }

    /// Drops the frames already handed out, before reading more.
    fn compact(&mut self) {
        self.buffer.drain(..self.start);
        self.start = 0;
        if self.buffer.is_empty() && self.buffer.capacity() > BUFFER_RETAINED_BYTES_MAX {
            self.buffer = Vec::new();
        }
    }
}
