//! allot's wire protocol: every message a client and server exchange, the typed error
//! codes, the handshake, `[u32 length][payload]` framing and the codec.
//!
//! This crate does no I/O. The server and the client read and write bytes; everything
//! about what those bytes mean lives here, so the encoding can change in one place.
//! `docs/protocol.md` specifies the same layout byte by byte.

pub mod check;
pub mod codec;
pub mod error;
pub mod frame;
pub mod limits;
pub mod message;
pub mod model;
pub mod order;
mod permission;
pub mod role;

pub use codec::DecodeError;
pub use error::{Error, ErrorCode};
pub use frame::{Deframer, FrameError};
pub use message::{
    ClientFrame, Command, Hello, Reply, Request, RequestBody, Response, ServerFrame, ServerLimits,
    Welcome,
};
pub use model::{
    CellKey, CellView, HoldId, HoldLineView, HoldState, HoldView, LineRequest, LocationKind,
    LocationSpec, LocationView, Query, Resolution, ShippingCost, ShortagePage,
};
pub use role::Role;

/// The protocol version this crate speaks; `Hello` names it and the server refuses any
/// other with `UnsupportedVersion`.
pub const PROTOCOL_VERSION: u16 = 1;

/// The TLS application protocol (ALPN) name.
pub const ALPN: &[u8] = b"allot/1";
