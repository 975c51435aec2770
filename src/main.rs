use clap::Parser;
use sqlflex_import::cli::Cli;
use std::process::ExitCode;

// The loader makes hundreds of thousands of small allocations for a large
// manifest; mimalloc halves their cost compared with the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
