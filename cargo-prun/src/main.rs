//! `cargo prun`: builds a workspace's tests and runs every test binary under one schedule.
//!
//! build (cargo) → discover (handshake) → plan (selection, config, priority) → schedule (prun's
//! dispatcher) → execute (worker and test processes) → report (human, JSON, JUnit).

mod archive;
mod build;
mod cli;
mod diagnose;
mod discover;
mod doctests;
mod event;
mod execute;
mod exit;
mod files;
mod filterset;
mod history;
mod list;
mod merge;
mod nextest_config;
mod os;
mod partition;
mod plan;
mod prepare;
mod private;
mod record;
mod report;
mod rerun;
mod run;
mod run_dir;
mod timings;

use cli::{Cargo, Command};

/// See the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let Cargo::Prun(prun) = Cargo::parse_command_line();
    let result = match prun.command {
        None => run::run(prun.run).map_err(Error::from),
        Some(Command::Run(cli)) => run::run(*cli).map_err(Error::from),
        Some(Command::List { format, mut run }) => {
            run.take_libtest_args();
            list::list(&run, format).map_err(Error::from)
        }
        Some(Command::Merge(args)) => merge::merge(&args).map_err(Error::from),
        Some(Command::Timings { action }) => timings::timings(action).map_err(Error::from),
        Some(Command::Bisect(args)) => diagnose::bisect(&args).map_err(Error::from),
        Some(Command::Archive(args)) => archive::archive(&args).map_err(Error::from),
    };
    std::process::exit(match result {
        Ok(code) => code,
        Err(error) => error.exit_code(),
    });
}

/// Why a command failed, whichever it was.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Run(#[from] run::Error),
    #[error(transparent)]
    Merge(#[from] merge::Error),
    #[error(transparent)]
    Timings(#[from] timings::Error),
    #[error(transparent)]
    Bisect(#[from] diagnose::BisectError),
    #[error(transparent)]
    Archive(#[from] archive::Error),
}

impl Error {
    /// The one place an error becomes an exit code: cargo's own when its build failed (it said
    /// why), else the message and [`exit::USAGE`].
    fn exit_code(self) -> i32 {
        let build = match &self {
            Error::Run(run::Error::Prepare(error))
            | Error::Bisect(diagnose::BisectError::Prepare(error)) => error.build_failed(),
            _ => None,
        };
        if let Some(code) = build {
            return code;
        }
        eprintln!("error: {self}");
        exit::USAGE
    }
}
