//! `ember`: train, evaluate and inspect ember models from the shell.
//!
//! The binary is thin: each subcommand parses its arguments, calls one library function and
//! prints the result. With `--json`, the last line printed is one JSON object of results.

mod args;
mod commands;
mod progress;
mod run_info;
mod train_config;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, DataCommand, VaeCommand, ZooCommand};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the context chain joined by ": ".
            eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    ember_kernels::process::tune_for_training();
    exit_quietly_on_closed_pipe();
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
