//! The codec: bincode 2.0 over serde, with a fixed configuration and a decode limit.
//!
//! Configuration: little endian, fixed-width integers (a `u32` is always 4 bytes, a
//! length always a `u64`), enum variants as a `u32` index, `Option` as a one-byte tag.
//! Fixed widths make `docs/protocol.md` simple to implement in any language. Decoding is
//! bounded by `FRAME_BYTES_MAX`, so a length inside a payload that claims gigabytes is
//! refused before anything is allocated, and a payload with trailing bytes is refused.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::frame::FRAME_PREFIX_BYTES;
use crate::limits::FRAME_BYTES_MAX;
use crate::message::{ClientFrame, ServerFrame};

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<FRAME_BYTES_MAX>()
}

/// A payload that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for Error {
    fn from(error: DecodeError) -> Error {
        Error::invalid(error.to_string())
    }
}

/// The payload of one message, without the length prefix.
pub fn encode_payload<T: Serialize>(message: &T) -> Vec<u8> {
    let mut payload = Vec::new();
    bincode::serde::encode_into_std_write(message, &mut payload, config())
        .expect("writing to a Vec cannot fail");
    payload
}

/// Appends one whole frame, `[u32 length LE][payload]`, to `out`.
///
/// Panics if the payload is over `FRAME_BYTES_MAX`: callers bound what they send (a
/// batch's size, every string's length), so an oversized frame is a bug on this side.
pub fn write_frame<T: Serialize>(message: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    bincode::serde::encode_into_std_write(message, &mut *out, config())
        .expect("writing to a Vec cannot fail");
    let length = out.len() - start - FRAME_PREFIX_BYTES;
    assert!(length <= FRAME_BYTES_MAX, "frame of {length} bytes is over {FRAME_BYTES_MAX}");
    let prefix = u32::try_from(length).expect("bounded by FRAME_BYTES_MAX").to_le_bytes();
    out[start..start + FRAME_PREFIX_BYTES].copy_from_slice(&prefix);
}

/// The frame a message would make, for callers that send one message at a time.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(message, &mut out);
    out
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let (message, read) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|error| DecodeError(error.to_string()))?;
    if read != payload.len() {
        return Err(DecodeError(format!("{} trailing bytes", payload.len() - read)));
    }
    Ok(message)
}

/// Decodes a payload a client sent.
pub fn decode_client(payload: &[u8]) -> Result<ClientFrame, DecodeError> {
    decode(payload)
}

/// Decodes a payload a server sent.
pub fn decode_server(payload: &[u8]) -> Result<ServerFrame, DecodeError> {
    decode(payload)
}
