//! Typed error codes (DESIGN §4): what went wrong, in a form a client can branch on, with
//! a message for people.

use serde::{Deserialize, Serialize};

use crate::model::Resolution;

/// An error as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for Error {}

/// Every error code. The variant index is the code's number on the wire; new codes go at
/// the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request is malformed or breaks a limit; the message says which.
    InvalidArgument,
    /// A named SKU, location or hold does not exist.
    NotFound,
    /// Request line `line` (0-based), with every other line on the same cell, asked for
    /// more than the cell had available.
    InsufficientStock { line: u32, available: i64 },
    /// The object is in state `from`, which does not allow the requested change.
    InvalidTransition { from: String },
    /// The idempotency key was used before with a different request.
    IdempotencyConflict,
    /// The hold was already resolved; `how` says which way.
    AlreadyResolved { how: Resolution },
    /// No valid token or client certificate, or the role may not do this.
    Unauthorized,
    /// A limit is reached (queue, memory, in-flight requests); nothing was applied and a
    /// retry later may succeed.
    Overloaded,
    /// The engine is not taking requests (stopping, or failed on storage).
    Unavailable,
    /// A frame's length prefix is over the limit.
    FrameTooLarge,
    /// `Hello` named a protocol version this server does not speak.
    UnsupportedVersion,
    /// A cycle count's expected quantity no longer matches `on_hand`, which is `actual`.
    CompareFailed { actual: u32 },
}

impl ErrorCode {
    /// The code's name as `docs/protocol.md` and the CLI's JSON output spell it.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "InvalidArgument",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::InsufficientStock { .. } => "InsufficientStock",
            ErrorCode::InvalidTransition { .. } => "InvalidTransition",
            ErrorCode::IdempotencyConflict => "IdempotencyConflict",
            ErrorCode::AlreadyResolved { .. } => "AlreadyResolved",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Overloaded => "Overloaded",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::FrameTooLarge => "FrameTooLarge",
            ErrorCode::UnsupportedVersion => "UnsupportedVersion",
            ErrorCode::CompareFailed { .. } => "CompareFailed",
        }
    }
}
