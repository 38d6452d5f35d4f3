//! Reads client frames from a QUIC stream through the protocol's `Deframer`: a length
//! prefix is judged before any of its payload is read, and the payload is buffered only
//! as it arrives, so a peer announcing a large frame costs nothing until it sends it.

use allot_protocol::{ClientFrame, Deframer, Error, codec};
use quinn::RecvStream;

/// Most bytes taken from quinn in one read; bounds the buffer beyond the current frame.
const READ_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// Why no further frame can be read.
#[derive(Debug)]
pub enum FrameEnd {
    /// The peer finished the stream at a frame boundary.
    Finished,
    /// The peer finished the stream inside a frame.
    Truncated { buffered: usize },
    /// A length prefix over the limit, or a payload that is not a client frame; the
    /// stream cannot be resynchronised, and the peer is told why.
    Refused(Error),
    /// The stream was reset or the connection lost.
    Broken,
}

/// The frames of one stream, in order.
#[derive(Debug)]
pub struct FrameReader {
    deframer: Deframer,
}

impl FrameReader {
    pub fn new(frame_bytes_max: usize) -> FrameReader {
        FrameReader { deframer: Deframer::with_bytes_max(frame_bytes_max) }
    }

    /// The next frame, reading from `recv` as needed.
    pub async fn next(&mut self, recv: &mut RecvStream) -> Result<ClientFrame, FrameEnd> {
        loop {
            let payload = self.deframer.next_frame().map_err(refused)?;
            if let Some(payload) = payload {
                return codec::decode_client(payload).map_err(refused);
            }
            match recv.read_chunk(READ_CHUNK_BYTES_MAX, true).await {
                Ok(Some(chunk)) => self.deframer.push(&chunk.bytes),
                Ok(None) => {
                    return Err(match self.deframer.finish() {
                        Ok(()) => FrameEnd::Finished,
                        Err(_) => FrameEnd::Truncated { buffered: self.deframer.buffered() },
                    });
                }
                Err(_) => return Err(FrameEnd::Broken),
            }
        }
    }
}

fn refused(error: impl Into<Error>) -> FrameEnd {
    FrameEnd::Refused(error.into())
}
