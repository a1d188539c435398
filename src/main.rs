//! The `arbiter` command line.
#![forbid(unsafe_code)]

mod cli;
mod logging;

use clap::Parser;
use std::process::ExitCode;

/// Ends the process quietly, as Unix tools do, when standard output is a closed pipe
/// (`arbiter scan ... | head -1`): the reader wants no more, so there is nothing to report.
/// Every other panic is reported as usual.
fn end_quietly_on_a_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        let broken_pipe = std::io::Error::from_raw_os_error(EPIPE).to_string();
        if message.starts_with("failed printing to stdout") && message.ends_with(&broken_pipe) {
            std::process::exit(0);
        }
        report(info);
    }));
}

/// `EPIPE`, the same number on Linux and macOS.
const EPIPE: i32 = 32;

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
