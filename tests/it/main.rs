//! One integration test binary; each module pins down one behaviour area.
mod bench_harness;
mod cli;
mod corruption;
mod crash;
mod e2e;
mod engine_api;
mod faults;
mod idempotency;
mod model;
mod mtls;
mod orders_e2e;
mod orders_model;
mod replay;
mod server_abuse;
mod support;
