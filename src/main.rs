use clap::Parser;
use sqlflex_import::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 for usage errors and 0 for --help/--version, which
            // matches the contract; print through clap to keep its colours.
            e.exit();
        }
    };
    sqlflex_import::commands::init_logging(&cli.global);
    sqlflex_import::commands::run(cli).into()
}
