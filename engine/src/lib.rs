//! allot's engine: the pure core, the sequencer that orders and logs commands, and the
//! embedded API (`Engine`) that the server, the benches and the tests all use.

pub mod codec;
pub mod core;
