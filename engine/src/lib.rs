//! allot's engine: the sequencer that orders and logs commands, snapshots of the state,
//! recovery, and the embedded API (`Engine`) that the server, the benches and the tests
//! all use. The pure state machine is `allot-core`, re-exported here as [`core`]; the
//! network server is `allot-server`, so an embedding program compiles no network stack.

pub mod clock;
pub mod codec;
mod engine;
mod open_report;
mod pending;
mod recover;
mod sequencer;
mod snapshotter;
pub mod wire;

/// The pure core, for programs that embed the engine and speak its types.
pub use allot_core as core;

pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "fault-injection")]
pub use engine::ShadowFault;
pub use engine::{
    BATCH_REQUESTS_MAX_DEFAULT, Engine, EngineConfig, INGRESS_QUEUE_LEN_DEFAULT,
    SHUTDOWN_DEADLINE_MS_DEFAULT, SNAPSHOT_EVERY_LOG_BYTES_DEFAULT, SNAPSHOT_EVERY_MS_DEFAULT,
    SNAPSHOT_EVERY_RECORDS_DEFAULT, SUBMIT_BATCH_REQUESTS_MAX,
};
pub use open_report::{OpenError, RecoveryReport};
pub use pending::Pending;
pub use recover::{ReplayFrom, rebuild_state, replay_record};
pub use sequencer::IDLE_WAKE_MS_MAX;
pub use snapshotter::{
    SNAPSHOT_RETRY_DELAY_MS_MAX, SNAPSHOT_RETRY_DELAY_MS_MIN, SNAPSHOTTER_WAKE_MS_MAX,
};

#[cfg(test)]
mod core_tests;
