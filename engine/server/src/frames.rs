//! Reads client frames from a QUIC stream through the protocol's `Deframer`: a length
//! prefix is judged before any of its payload is read, and the payload is buffered only
//! as it arrives, so a peer announcing a large frame costs nothing until it sends it.
//!
//! What is buffered is held against the connection's and the server's byte budgets
//! (`budget.rs`): a stream reads only while they have room, and a frame must arrive whole
//! within the frame timeout of its first byte, so a peer cannot pin memory with frames it
//! never finishes.

use std::time::Duration;

use allot_protocol::{ClientFrame, Deframer, Error, ErrorCode, codec};
use quinn::{Chunk, ReadError, RecvStream};
use tokio::time::Instant;

use super::budget::{Full, Held, Kind};

/// Most bytes taken from quinn in one read; bounds the buffer beyond the current frame.
const READ_CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Most bytes taken by the read a waiting stream wakes with: enough for a request sent
/// on its own, and what each stream may hold past the budgets while they are full.
const IDLE_READ_BYTES_MAX: usize = 1024;

/// Why no further frame can be read.
#[derive(Debug)]
pub enum FrameEnd {
    /// The peer finished the stream at a frame boundary.
    Finished,
    /// The peer finished the stream inside a frame.
    Truncated { buffered: usize },
    /// A length prefix over the limit, a payload that is not a client frame, or a frame
    /// that did not arrive in time; the stream cannot be resynchronised, and the peer is
    /// told why.
    Refused(Error),
    /// The stream was reset or the connection lost.
    Broken,
}

/// The frames of one stream, in order.
#[derive(Debug)]
pub struct FrameReader {
    deframer: Deframer,
    /// The bytes buffered, and the last frame returned until the next call.
    held: Held,
    frame_timeout: Duration,
    /// When the first byte of the frame being read arrived.
    frame_started: Option<Instant>,
}

impl FrameReader {
    pub fn new(frame_bytes_max: usize, held: Held, frame_timeout: Duration) -> FrameReader {
        FrameReader {
            deframer: Deframer::with_bytes_max(frame_bytes_max),
            held,
            frame_timeout,
            frame_started: None,
        }
    }

    /// The next frame, reading from `recv` as needed. The frame returned stays held
    /// against the budgets until the next call, while it is being handled.
    pub async fn next(&mut self, recv: &mut RecvStream) -> Result<ClientFrame, FrameEnd> {
        self.held.shrink_to(self.deframer.buffered());
        loop {
            let payload = self.deframer.next_frame().map_err(refused)?;
            if let Some(payload) = payload {
                self.frame_started = None;
                return codec::decode_client(payload).map_err(refused);
            }
            if self.deframer.buffered() > 0 && self.frame_started.is_none() {
                self.frame_started = Some(Instant::now());
            }
            let deadline = self.frame_started.map(|started| started + self.frame_timeout);
            let chunk = self.read(recv, deadline).await?;
            let read_bytes = match &chunk {
                Ok(Some(chunk)) => chunk.bytes.len(),
                _ => 0,
            };
            self.held.set_forced(self.deframer.buffered() + read_bytes);
            match chunk {
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

    /// The next chunk of the stream. Room for a full read is taken from the budgets
    /// first; if nothing has arrived yet, the room goes back while the stream waits, and
    /// the read that ends the wait takes at most `IDLE_READ_BYTES_MAX`, so idle streams
    /// hold no room that busy ones could use.
    async fn read(
        &mut self,
        recv: &mut RecvStream,
        deadline: Option<Instant>,
    ) -> Result<Result<Option<Chunk>, ReadError>, FrameEnd> {
        let room = self.room(deadline).await?;
        // quinn's reads are cancel-safe: one not ready at once is dropped without loss.
        let ready = tokio::select! {
            biased;
            chunk = recv.read_chunk(room, true) => Some(chunk),
            () = std::future::ready(()) => None,
        };
        if let Some(chunk) = ready {
            return Ok(chunk);
        }
        self.held.shrink_to(self.deframer.buffered());
        let wait = recv.read_chunk(IDLE_READ_BYTES_MAX, true);
        match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline, wait).await.map_err(|_| self.timed_out(None))
            }
            None => Ok(wait.await),
        }
    }

    /// Takes room for the next read from the budgets, waiting while they are full, but
    /// not past the current frame's deadline.
    async fn room(&mut self, deadline: Option<Instant>) -> Result<usize, FrameEnd> {
        loop {
            let room = self.held.grow_up_to(READ_CHUNK_BYTES_MAX);
            if room > 0 {
                return Ok(room);
            }
            let full = self.held.buffers().full(Kind::Frames);
            let wait = self.held.buffers().room(Kind::Frames);
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, wait)
                    .await
                    .map_err(|_| self.timed_out(full))?,
                None => wait.await,
            }
        }
    }

    fn timed_out(&self, full: Option<Full>) -> FrameEnd {
        let within = self.frame_timeout.as_millis();
        let buffered = self.deframer.buffered();
        FrameEnd::Refused(match full {
            None => Error::invalid(format!(
                "a frame must arrive whole within {within} ms; {buffered} bytes came"
            )),
            Some(which) => Error::new(
                ErrorCode::Overloaded,
                format!(
                    "a frame was not whole within {within} ms ({buffered} bytes) while {} \
                     held all the bytes it may",
                    match which {
                        Full::Connection => "this connection",
                        Full::Server => "the server",
                    }
                ),
            ),
        })
    }
}

fn refused(error: impl Into<Error>) -> FrameEnd {
    FrameEnd::Refused(error.into())
}
