//! `allot-bench`: the peak-season load harness (see `allot_bench::harness`). Exit status 0
//! when the audit passed, 1 when it failed, 2 when the run could not be made.

use std::process::ExitCode;

use allot_bench::harness::{self, Args};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("allot-bench: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(harness::run(&args));
    match &outcome {
        Ok(report) => print!("{}", report.table()),
        Err(error) => eprintln!("allot-bench: {error}"),
    }
    ExitCode::from(harness::exit_status(&outcome))
}
