//! Unit tests of the pure core that need the engine's codec (state digests, snapshot
//! images): the handlers one behaviour at a time, and orders.

mod handlers;
mod orders;
mod retention;
