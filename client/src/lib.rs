//! allot's async client over QUIC.
