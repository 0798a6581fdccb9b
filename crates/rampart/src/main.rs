//! The `rampart` binary. Everything happens in [`rampart::cli`].

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
