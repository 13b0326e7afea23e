//! The library behind the `ember` command: train, evaluate and inspect ember models from the
//! shell.
//!
//! The binary (`src/main.rs`) only calls [`main`]. Each subcommand parses its arguments, calls one
//! library function and prints the result; with `--json`, the last line printed is one JSON object
//! of results. Besides the command itself, the library offers the parser of `--config` files
//! ([`parse_toml`]), for tests and fuzzing:
//!
//! ```
//! use std::path::Path;
//!
//! let config = ember_cli::parse_toml("model = \"lenet5\"\nepochs = 3\n", Path::new("train.toml"))?;
//! assert!(format!("{config:?}").contains("epochs: Some(3)"));
//! let err = ember_cli::parse_toml("epochs = -1", Path::new("train.toml")).unwrap_err();
//! assert!(format!("{err:#}").starts_with("train.toml: not a valid ember config"));
//! # Ok::<(), anyhow::Error>(())
//! ```

mod args;
mod commands;
mod data;
mod device;
mod group;
mod progress;
mod quick;
mod run_info;
mod train_config;

pub use args::TrainSettings;
pub use train_config::parse_toml;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, DataCommand, VaeCommand, ZooCommand};

/// Runs `ember` with the process's arguments; what the binary's `main` returns.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the context chain joined by ": ".
            eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn run(mut cli: Cli) -> anyhow::Result<()> {
    ember_kernels::process::tune_for_training();
    exit_quietly_on_closed_pipe();
    if quick::enabled() {
        eprintln!("warning: {}", quick::shorten(&mut cli.command));
    }
    match cli.command {
        Command::Train(args) => commands::train::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Data(DataCommand::Info(args)) => commands::data_info::run(&args),
        Command::Augment(args) => commands::augment::run(&args),
        Command::Convert(args) => commands::checkpoint::convert(&args),
        Command::Inspect(args) => commands::checkpoint::inspect(&args),
        Command::Finetune(args) => commands::finetune::run(&args),
        Command::Ensemble(args) => commands::fusion::ensemble(&args),
        Command::Distill(args) => commands::fusion::distill(&args),
        Command::Predict(args) => commands::predict::run(&args),
        Command::Zoo(ZooCommand::List(args)) => commands::zoo::list(&args),
        Command::Zoo(ZooCommand::Show(args)) => commands::zoo::show(&args),
        Command::Vae(VaeCommand::Train(args)) => commands::vae::train(&args),
        Command::Vae(VaeCommand::Sample(args)) => commands::vae::sample(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Continual(args) => commands::continual::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
    }
}

/// `ember eval ... | head`: when the reader goes away, end like other command-line tools
/// (SIGPIPE's default action) instead of panicking inside `println!`.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
