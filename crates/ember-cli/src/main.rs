//! `ember`: train, evaluate and inspect ember models from the shell (see the `ember_cli` library).

fn main() -> std::process::ExitCode {
    ember_cli::main()
}
