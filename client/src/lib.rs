//! allot's async client over QUIC: one connection shared by every clone of a [`Client`],
//! pipelined requests, batch frames, per-request timeouts, lazy reconnects, and retries
//! under the same idempotency key so a command is applied exactly once.
//!
//! ```no_run
//! # async fn example() -> Result<(), allot_client::ClientError> {
//! use allot_client::{Client, ClientConfig};
//!
//! let client = Client::connect(ClientConfig::from_data_dir("127.0.0.1:7411", "data")?).await?;
//! client.receive("SKU-1", "LDN", 10).await?;
//! let cell = client.cell("SKU-1", "LDN").await?;
//! println!("{} available", cell.available);
//! # Ok(()) }
//! ```

mod client;
pub mod config;
mod connection;
mod error;
mod key;
mod orders;
mod pending;
mod tls;
mod typed;

/// The wire types the client speaks, re-exported so callers need no second dependency.
pub use allot_protocol as protocol;

pub use client::Client;
pub use config::{ClientCert, ClientConfig, Trust};
pub use error::ClientError;
pub use key::CLIENT_ID_BYTES;
pub use orders::{
    OrderChanged, OrderPlaced, ReturnChanged, ReturnExchanged, RoutedHoldPlaced, ShipmentChanged,
    ShortPicked,
};
pub use typed::{HoldPlaced, HoldReleased, reply_name};
