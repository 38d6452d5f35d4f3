//! allot's engine: the pure core, the sequencer that orders and logs commands, and the
//! embedded API (`Engine`) that the server, the benches and the tests all use.

pub mod clock;
pub mod codec;
pub mod core;
mod engine;
mod pending;
mod recover;
mod sequencer;
pub mod server;
mod snapshotter;
pub mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    BATCH_REQUESTS_MAX_DEFAULT, Engine, EngineConfig, INGRESS_QUEUE_LEN_DEFAULT, OpenError,
    RecoveryReport, SNAPSHOT_EVERY_RECORDS_DEFAULT, SUBMIT_BATCH_REQUESTS_MAX,
};
pub use pending::Pending;
pub use recover::{ReplayFrom, rebuild_state, replay_record};
pub use sequencer::IDLE_WAKE_MS_MAX;
