use clap::Parser;
use sqlflex_import::cli::Cli;
use std::process::ExitCode;

// The loader makes hundreds of thousands of small allocations for a large
// manifest; mimalloc halves their cost compared with the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages a while and commits its arenas eagerly; a
/// plan's many concurrent reads then hold far more than they use. Freed
/// pages go back at once and arenas are committed as they fill, so `plan`
/// of 2,000 databases stays well under 100 MB while `validate` keeps most
/// of mimalloc's speed (docs/performance.md). The numbers are the options'
/// places in `mi_option_e` of the mimalloc v3 that libmimalloc-sys 0.1.49
/// bundles, which names them only in C.
fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for option in [ARENA_EAGER_COMMIT, PURGE_DELAY] {
        // SAFETY: sets an option of the allocator linked in; no memory is
        // touched, and an index mimalloc does not know is ignored by it.
        unsafe { libmimalloc_sys::mi_option_set(option, 0) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
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
