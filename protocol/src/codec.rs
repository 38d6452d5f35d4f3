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
use crate::frame::{self, FRAME_PREFIX_BYTES, FrameError};
use crate::limits::FRAME_BYTES_MAX;
use crate::message::{ClientFrame, ServerFrame};

fn config() -> impl bincode::config::Config {
    config_limited::<FRAME_BYTES_MAX>()
}

fn config_limited<const BYTES_MAX: usize>() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<BYTES_MAX>()
}

/// Decode limits tried from the smallest: the decoder allocates what a length inside the
/// payload claims before it sees whether the bytes are there, so the limit must be close
/// to the payload's real size or a 14-byte frame could make it allocate 4 MiB.
const DECODE_LIMIT_SMALL_BYTES: usize = 4 * 1024;
const DECODE_LIMIT_MEDIUM_BYTES: usize = 64 * 1024;
const DECODE_LIMIT_LARGE_BYTES: usize = 1024 * 1024;

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

/// Appends one whole frame, `[u32 length LE][payload]`, to `out`, if its payload is
/// within `bytes_max`; otherwise `out` is left as it was. A reply listing every cell of a
/// SKU is as large as the data, so a sender must be able to find out and answer otherwise.
pub fn try_write_frame<T: Serialize>(
    message: &T,
    bytes_max: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    bincode::serde::encode_into_std_write(message, &mut *out, config())
        .expect("writing to a Vec cannot fail");
    let length = out.len() - start - FRAME_PREFIX_BYTES;
    let bytes_max = bytes_max.min(FRAME_BYTES_MAX);
    if length > bytes_max {
        out.truncate(start);
        return Err(frame::too_large(length, bytes_max));
    }
    let prefix = u32::try_from(length).expect("bounded by FRAME_BYTES_MAX").to_le_bytes();
    out[start..start + FRAME_PREFIX_BYTES].copy_from_slice(&prefix);
    Ok(())
}

/// [`try_write_frame`] within `FRAME_BYTES_MAX`, for messages bounded by construction
/// (requests whose strings and lines are within their limits, single answers).
///
/// Panics if the payload is over the limit: that is a bug on the sending side.
pub fn write_frame<T: Serialize>(message: &T, out: &mut Vec<u8>) {
    try_write_frame(message, FRAME_BYTES_MAX, out).expect("a bounded message fits a frame");
}

/// The frame a message would make, for callers that send one message at a time.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(message, &mut out);
    out
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let length = payload.len();
    let decoded = if length <= DECODE_LIMIT_SMALL_BYTES {
        bincode::serde::decode_from_slice(payload, config_limited::<DECODE_LIMIT_SMALL_BYTES>())
    } else if length <= DECODE_LIMIT_MEDIUM_BYTES {
        bincode::serde::decode_from_slice(payload, config_limited::<DECODE_LIMIT_MEDIUM_BYTES>())
    } else if length <= DECODE_LIMIT_LARGE_BYTES {
        bincode::serde::decode_from_slice(payload, config_limited::<DECODE_LIMIT_LARGE_BYTES>())
    } else {
        bincode::serde::decode_from_slice(payload, config())
    };
    let (message, read) = decoded.map_err(|error| DecodeError(error.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_frame_claiming_a_long_string_is_refused_by_the_small_limit() {
        // A Hello whose token claims 4 000 000 bytes, in a 14-byte payload.
        let payload = [0, 0, 0, 0, 1, 0, 0x00, 0x09, 0x3d, 0, 0, 0, 0, 0];
        let error = decode_client(&payload).unwrap_err();
        assert!(error.0.contains("LimitExceeded"), "{error}");
    }

    #[test]
    fn a_message_as_long_as_a_decode_limit_still_decodes() {
        for length in [DECODE_LIMIT_SMALL_BYTES, DECODE_LIMIT_MEDIUM_BYTES] {
            // ClientFrame::Hello: tag (4) + version (2) + token length (8) + token +
            // client-name length (8): fill the token so the payload is exactly `length`.
            let token = "t".repeat(length - 4 - 2 - 8 - 8);
            let hello = ClientFrame::Hello(crate::message::Hello {
                protocol_version: 1,
                token,
                client_name: String::new(),
            });
            let payload = encode_payload(&hello);
            assert_eq!(payload.len(), length);
            assert_eq!(decode_client(&payload), Ok(hello));
        }
    }
}
