//! The `rampart` binary. Everything happens in [`rampart::cli`].

/// mimalloc: the request path allocates many small, short-lived buffers
/// (header maps, bodies, TLS records); glibc's malloc showed ~10% of the
/// gateway's CPU in profiles under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
