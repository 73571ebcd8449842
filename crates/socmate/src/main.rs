//! `socmate` binary: parse the command line (with the configuration file layered in) and hand
//! over to [`socmate::cli`].

use std::process::ExitCode;

use clap::FromArgMatches as _;
use socmate::cli::Cli;
use socmate::config::{ParseError, parse_command_line};

/// mimalloc rather than glibc's allocator: a request allocates dozens of small, short-lived
/// values across the runtime's worker threads, where glibc's arenas took about a tenth of the
/// server's time (docs/benchmarks.md, management API).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match parse_command_line::<Cli>(std::env::args_os().collect()) {
        Ok(parsed) => match Cli::from_arg_matches(&parsed.matches) {
            Ok(cli) => socmate::cli::main(cli, &parsed),
            Err(e) => e.exit(),
        },
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Config(e)) => {
            eprintln!("socmate: invalid configuration: {e}");
            ExitCode::FAILURE
        }
    }
}
