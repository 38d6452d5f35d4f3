//! The engine's only use of the codec: log payloads and snapshot bodies as bincode 2.
//!
//! Keeping every encode and decode here means the on-disk encoding can change in one
//! place. The configuration is fixed (little endian, variable-length integers) and
//! decoding is bounded, so a corrupt payload is an error, never a huge allocation.

use allot_core::image::Image;
use allot_core::{Request, State};

/// Largest log payload decoded (matches the WAL's record limit).
pub const LOG_PAYLOAD_BYTES_MAX: usize = 1024 * 1024;
/// Largest snapshot body decoded.
pub const SNAPSHOT_BODY_BYTES_MAX: usize = 64 * 1024 * 1024 * 1024;

fn log_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LOG_PAYLOAD_BYTES_MAX>()
}

fn snapshot_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<SNAPSHOT_BODY_BYTES_MAX>()
}

/// Appends the encoding of a logged request to `buffer`.
pub fn encode_request(request: &Request, buffer: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write(request, buffer, log_config())
        .expect("writing to a Vec cannot fail and requests are bounded");
}

pub fn decode_request(payload: &[u8]) -> Result<Request, String> {
    let (request, read) = bincode::serde::decode_from_slice(payload, log_config())
        .map_err(|error| format!("undecodable log payload: {error}"))?;
    if read != payload.len() {
        return Err(format!("log payload has {} trailing bytes", payload.len() - read));
    }
    Ok(request)
}

/// The canonical snapshot body of a state.
pub fn encode_state(state: &State) -> Vec<u8> {
    bincode::serde::encode_to_vec(state.image(), snapshot_config())
        .expect("encoding to a Vec cannot fail")
}

pub fn decode_state(body: &[u8]) -> Result<State, String> {
    let (image, read): (Image, usize) = bincode::serde::decode_from_slice(body, snapshot_config())
        .map_err(|error| format!("undecodable snapshot body: {error}"))?;
    if read != body.len() {
        return Err(format!("snapshot body has {} trailing bytes", body.len() - read));
    }
    Ok(State::from_image(image))
}

/// A stable digest of the state's canonical image: equal digests, equal states.
pub fn state_digest(state: &State) -> u64 {
    allot_core::fnv64(&encode_state(state))
}
