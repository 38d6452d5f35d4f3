//! The pure core: model, commands, `apply`, expiry and queries.
//!
//! Nothing in this crate does I/O, reads a clock, draws a random number or imports
//! tokio, quinn or `std::time`: time is passed in with each command. That is what makes
//! replay exact and the core testable on its own (as quinn-proto beside quinn).

pub mod chunked;
pub mod command;
pub mod hold;
pub mod idempotency;
pub mod ids;
pub mod image;
pub mod limits;
pub mod order;
pub mod order_state;
pub mod outcome;
pub mod retention;
mod retry;
pub mod routing;
pub mod shipment;
pub mod shortage;
pub mod state;
pub mod stock;

mod apply_committed;
mod apply_hold;
mod apply_location;
mod apply_order;
mod apply_return;
mod apply_shipment;
mod apply_stock;
mod canonical;
mod query;
mod query_order;
mod validate;

pub use command::{Command, LineRequest, LocationKind, LocationSpec, Query, Request, ShippingCost};
pub use ids::{HoldId, fingerprint, fnv64};
pub use outcome::{
    CellView, EngineError, HoldLineView, HoldState, HoldView, LocationView, Outcome, Reply,
    Resolution,
};
pub use state::{Applied, Counters, State};
