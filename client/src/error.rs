//! What can go wrong in a call: a typed error from the server, or a failure on the way.

use allot_protocol::{Error, ErrorCode};

/// Every error a [`Client`](crate::Client) call can return.
///
/// Only [`ClientError::Timeout`] and [`ClientError::ConnectionLost`] leave a command's
/// outcome unknown; retrying it with the same idempotency key applies it at most once
/// (DESIGN §7). The client does that retry itself, up to `ClientConfig::retries` times.
///
/// ```
/// use allot_client::ClientError;
/// use allot_client::protocol::{Error, ErrorCode};
///
/// let error = ClientError::Server(Error::new(ErrorCode::NotFound, "hold 9"));
/// assert_eq!(error.code(), Some(&ErrorCode::NotFound));
/// assert_eq!(error.name(), "NotFound");
/// assert!(!error.is_outcome_unknown());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered the request with a typed error; nothing was applied.
    Server(Error),
    /// The server refused the handshake (`Unauthorized`, `UnsupportedVersion`, …).
    Refused(Error),
    /// No answer within the request timeout; the outcome is unknown.
    Timeout,
    /// The connection broke with the request unanswered; the outcome is unknown.
    ConnectionLost(String),
    /// No connection could be made (address, network, timeout); nothing was sent.
    Connect(String),
    /// The TLS handshake failed: an untrusted or mismatched certificate, no common ALPN.
    Tls(String),
    /// The server broke the protocol (a malformed frame, an unexpected reply); the
    /// connection is dropped.
    Protocol(String),
    /// The request encodes to more bytes than the server takes in one frame; not sent.
    FrameTooLarge { bytes: usize, bytes_max: usize },
    /// The configuration cannot be used: a missing file, an unreadable certificate.
    Config(String),
}

impl ClientError {
    /// The server's error code, for errors that carry one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            ClientError::Server(error) | ClientError::Refused(error) => Some(&error.code),
            _ => None,
        }
    }

    /// A stable name for scripts: the server's code name (`NotFound`, `Unauthorized`),
    /// else the variant's name (`Timeout`, `ConnectionLost`, …).
    pub fn name(&self) -> &'static str {
        match self {
            ClientError::Server(error) | ClientError::Refused(error) => error.code.name(),
            ClientError::Timeout => "Timeout",
            ClientError::ConnectionLost(_) => "ConnectionLost",
            ClientError::Connect(_) => "Connect",
            ClientError::Tls(_) => "Tls",
            ClientError::Protocol(_) => "Protocol",
            ClientError::FrameTooLarge { .. } => "FrameTooLarge",
            ClientError::Config(_) => "Config",
        }
    }

    /// The text after the name: the server's message, or what failed locally.
    pub fn message(&self) -> String {
        match self {
            ClientError::Server(error) | ClientError::Refused(error) => error.message.clone(),
            ClientError::Timeout => "no answer within the request timeout".into(),
            ClientError::ConnectionLost(message)
            | ClientError::Connect(message)
            | ClientError::Tls(message)
            | ClientError::Protocol(message)
            | ClientError::Config(message) => message.clone(),
            ClientError::FrameTooLarge { bytes, bytes_max } => {
                format!(
                    "request of {bytes} bytes is over the server's {bytes_max}-byte frame limit"
                )
            }
        }
    }

    /// Whether the request may have been applied without the client hearing so.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, ClientError::Timeout | ClientError::ConnectionLost(_))
    }

    /// Whether the client retries the call by itself: an unknown outcome (same key, so
    /// applied once), or a failed reconnect (nothing was sent on that attempt).
    pub(crate) fn is_transient(&self) -> bool {
        self.is_outcome_unknown() || matches!(self, ClientError::Connect(_))
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Server(error) => write!(f, "{error}"),
            ClientError::Refused(error) => write!(f, "refused by the server: {error}"),
            ClientError::Timeout => f.write_str("request timed out (outcome unknown)"),
            ClientError::ConnectionLost(reason) => {
                write!(f, "connection lost (outcome unknown): {reason}")
            }
            ClientError::Connect(reason) => write!(f, "cannot connect: {reason}"),
            ClientError::Tls(reason) => write!(f, "TLS handshake failed: {reason}"),
            ClientError::Protocol(reason) => write!(f, "protocol violation: {reason}"),
            ClientError::FrameTooLarge { .. } => write!(f, "{}", self.message()),
            ClientError::Config(reason) => write!(f, "configuration: {reason}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Server(error) | ClientError::Refused(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_and_lost_connections_leave_the_outcome_unknown() {
        assert!(ClientError::Timeout.is_outcome_unknown());
        assert!(ClientError::ConnectionLost("reset".into()).is_outcome_unknown());
        let overloaded = ClientError::Server(Error::new(ErrorCode::Overloaded, "queue full"));
        assert!(!overloaded.is_outcome_unknown());
        assert!(!overloaded.is_transient(), "Overloaded is returned, not retried");
        assert!(ClientError::Connect("refused".into()).is_transient());
        assert!(!ClientError::Tls("bad certificate".into()).is_transient());
    }

    #[test]
    fn names_follow_the_server_code_or_the_variant() {
        let refused = ClientError::Refused(Error::new(ErrorCode::Unauthorized, "bad token"));
        assert_eq!(refused.name(), "Unauthorized");
        assert_eq!(refused.code(), Some(&ErrorCode::Unauthorized));
        assert_eq!(ClientError::Timeout.name(), "Timeout");
        assert_eq!(ClientError::Timeout.code(), None);
        let large = ClientError::FrameTooLarge { bytes: 10, bytes_max: 4 };
        assert_eq!(
            large.to_string(),
            "request of 10 bytes is over the server's 4-byte frame limit"
        );
    }
}
