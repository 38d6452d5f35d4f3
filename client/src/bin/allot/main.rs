//! `allot`, the operator CLI: locations, stock, holds, orders, shipments, returns, KPIs
//! and CSV imports against `allotd`.
//!
//! Exit status: 0 on success, 1 on any error (from the server, the connection, a file or
//! a failed import row), 2 for bad arguments.

mod args;
mod import;
mod output;
mod parse;
mod run;

use std::process::ExitCode;

use allot_client::ClientError;
use clap::Parser;

use crate::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let as_json = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let error = ClientError::Config(format!("cannot start the async runtime: {error}"));
            output::print_error(&error, as_json);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(output) => {
            output.print(as_json);
            if output.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            output::print_error(&error, as_json);
            ExitCode::FAILURE
        }
    }
}
