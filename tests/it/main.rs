//! One integration test binary; each module pins down one behaviour area.
mod corruption;
mod crash;
mod engine_api;
mod faults;
mod idempotency;
mod model;
mod replay;
mod support;
