//! The `coffer` binary.
//!
//! Exit codes, as the Vault CLI: 0 success; 1 an API or other error; 2 a usage error, "no
//! value found", or (for `status`) a sealed server.

#![forbid(unsafe_code)]

use clap::Parser;

use coffer::cli::{normalize_args, Cli, Command};

/// mimalloc instead of glibc malloc: the allocator was a fifth of a cluster node's CPU under
/// writes (`_int_malloc`, `malloc_consolidate`; `bench/RESULTS.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args())) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let is_server = matches!(cli.command, Command::Server(_));
    let runtime = if is_server {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Server(args) => match runtime.block_on(coffer::cli::server::run(args)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                std::process::ExitCode::from(1)
            }
        },
        command => {
            // Client commands log warnings only (e.g. the skip-verify warning of the client).
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("off,coffer=warn"))
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .without_time()
                .with_target(false)
                .try_init();
            std::process::ExitCode::from(runtime.block_on(coffer::cli::dispatch(cli.global, command)))
        }
    }
}
