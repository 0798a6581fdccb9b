//! The command line: `serve`, `check`, `demo`.
//!
//! Exit codes: 0 success; 1 the policy has problems or the gateway could not
//! start; 2 usage error (wrong flags, missing file argument).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigErrors, Severity};

/// Rampart: a security gateway for banking APIs.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway from a policy file. SIGHUP or POST /admin/reload
    /// reloads it; SIGTERM or Ctrl-C drains in-flight requests and stops.
    Serve {
        /// The policy file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Worker threads. Default: the CPUs this process may run on (its
        /// affinity mask), or TOKIO_WORKER_THREADS. With 1, a single-threaded
        /// runtime is used (cheaper per request on one core).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Validate a policy file without binding any port: every problem with
    /// its line and key path, then warnings about insecure choices.
    /// Exit 0 clean (warnings allowed), 1 problems, 2 usage.
    Check {
        /// The policy file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Treat warnings as problems (exit 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Start a sample bank API, the gateway in front of it (HTTPS with a
    /// generated test CA) and the admin listener; write DIR/demo.json and
    /// print ready-to-paste curl lines. Runs until Ctrl-C.
    Demo {
        /// Where to write the CA, keys, policy and demo.json.
        #[arg(long, default_value = "rampart-demo", value_name = "DIR")]
        dir: PathBuf,
        /// Gateway HTTPS port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Admin port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        /// Worker threads (as for `serve`).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            deny_warnings,
        } => check(&config, deny_warnings),
        Command::Serve { config, workers } => with_runtime(workers, async move { serve(config).await }),
        Command::Demo {
            dir,
            port,
            admin_port,
            workers,
        } => with_runtime(
            workers,
            async move { crate::demo::run(dir, port, admin_port).await },
        ),
    }
}

/// How many worker threads: the flag, else `TOKIO_WORKER_THREADS`, else the
/// CPUs in this process's affinity mask (so `taskset -c 0 rampart serve`
/// gets one).
fn worker_count(flag: Option<usize>) -> usize {
    flag.or_else(|| {
        std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
    })
    .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
    .unwrap_or(1)
    .max(1)
}

fn with_runtime(workers: Option<usize>, f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let n = worker_count(workers);
    let built = if n == 1 {
        // One core: no work-stealing machinery to pay for.
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()
    };
    match built {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("rampart: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_problems(errors: &ConfigErrors) {
    for p in &errors.problems {
        eprintln!("{}", errors.render(p));
    }
}

fn check(config: &std::path::Path, deny_warnings: bool) -> ExitCode {
    match crate::runtime::check(config) {
        Ok(gw) => {
            let warnings = ConfigErrors::new(config, gw.warnings.clone());
            print_problems(&warnings);
            let n = warnings.problems.len();
            if deny_warnings && n > 0 {
                eprintln!("{}: {n} warning(s), denied by --deny-warnings", config.display());
                return ExitCode::from(1);
            }
            println!(
                "{}: OK ({} route(s), {} upstream(s), {} listener(s), {n} warning(s))",
                config.display(),
                gw.router.len(),
                gw.upstreams.len(),
                gw.listeners.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_problems(&errors);
            let n = errors
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            eprintln!("{}: {n} problem(s)", config.display());
            ExitCode::from(1)
        }
    }
}

async fn serve(config: PathBuf) -> ExitCode {
    // Logging settings come from the policy; read them before anything logs.
    let logging = crate::config::LoadedConfig::from_file(&config)
        .map(|l| l.config.logging)
        .unwrap_or_default();
    crate::telemetry::init(&logging);
    match crate::runtime::start(&config).await {
        Ok(server) => {
            server.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(crate::runtime::StartError::Config(errors)) => {
            print_problems(&errors);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rampart: {e}");
            ExitCode::from(1)
        }
    }
}
