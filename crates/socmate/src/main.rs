//! `socmate` binary: parse the command line and hand over to [`socmate::cli`].

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> std::process::ExitCode {
    let matches = socmate::cli::Cli::command().get_matches();
    match socmate::cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => socmate::cli::main(cli, &matches),
        Err(e) => e.exit(),
    }
}
