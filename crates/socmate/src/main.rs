//! `socmate` binary: parse the command line and hand over to [`socmate::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    socmate::cli::main(socmate::cli::Cli::parse())
}
