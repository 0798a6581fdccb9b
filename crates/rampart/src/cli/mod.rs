//! The command line: `serve`, `check`, `demo`, the ban and revocation
//! commands (clients of the admin API), API-key management
//! `keys create|list|rotate|revoke` ([`api_keys`]), one-time-code
//! enrolments `mfa enrol|list|reset|rekey` ([`mfa`]), admin users
//! `admin user add|passwd|list|remove` ([`admin`]), the audit trail's
//! `audit verify|show|export|keygen` ([`audit`]), and the developer
//! commands `keys gen`, `token` ([`dev`]) and `mfa code`.
//!
//! Exit codes: 0 success; 1 the policy has problems or the gateway could not
//! start; 2 usage error (wrong flags, missing file argument).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod dev;
pub mod mfa;
pub mod sign;

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
    /// Ban an address or network on a running gateway (through its admin
    /// API): its connections are closed before TLS until the ban ends.
    Ban {
        /// Address or CIDR, e.g. 203.0.113.7 or 203.0.113.0/24.
        cidr: String,
        /// How long, e.g. 10m, 2h (at most 30 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Why (kept with the ban; never shown to clients).
        #[arg(long, default_value = "")]
        reason: String,
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Lift a ban on a running gateway.
    Unban {
        /// Address or CIDR, exactly as banned.
        cidr: String,
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the bans in force on a running gateway.
    Bans {
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke a token (`--jti`), a subject (`--sub`) or a client
    /// (`--client-id`) on a running gateway (through its admin API): its
    /// requests get 401 invalid_token until the revocation ends.
    Revoke {
        /// What to revoke.
        #[command(flatten)]
        target: RevocationTarget,
        /// How long, e.g. 1h, 30d (at most 366 days). Make it outlast the
        /// tokens concerned.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Why (kept with the entry; never shown to clients).
        #[arg(long, default_value = "")]
        reason: String,
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Lift a revocation on a running gateway.
    Unrevoke {
        /// What to lift, exactly as revoked.
        #[command(flatten)]
        target: RevocationTarget,
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the revocations in force on a running gateway.
    Revocations {
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Signing keys (`gen`) and API keys (`create`, `list`, `rotate`, `revoke`).
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: dev::KeysCommand,
    },
    /// Identity forwarding (`[identity]`): `jwks` prints the public JWKS
    /// upstreams verify the gateway-signed identity JWT with.
    Identity {
        /// What to do.
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// One-time codes (RFC 6238 TOTP) for transaction confirmation:
    /// `enrol`, `list`, `reset`, `rekey` on the [mfa] store; `code` prints
    /// a seed's current code (development).
    Mfa {
        /// What to do.
        #[command(subcommand)]
        command: mfa::MfaCommand,
    },
    /// The admin plane's people: `user add|passwd|list|remove` (password
    /// and TOTP, in the [mfa] store).
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// The audit trail: `verify` (exit 0 intact, 1 tampered, 2 unreadable),
    /// `show`, `export --format jsonl`, `keygen`.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Sign a request with RFC 9421 HTTP message signatures (and an RFC
    /// 9530 Content-Digest): prints the header lines to send.
    Sign(sign::SignArgs),
    /// Verify a request's RFC 9421 signature against a JWKS. Exit 0 valid,
    /// 1 refused, 2 usage.
    Verify(sign::VerifyArgs),
    /// Test tokens and DPoP proofs.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: dev::TokenCommand,
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

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Admin listener URL.
    #[arg(long, default_value = "http://127.0.0.1:9901", value_name = "URL")]
    pub admin: String,
    /// File holding the admin token (else RAMPART_ADMIN_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// For an https:// admin URL ([admin.tls]): the CA bundle (PEM) its
    /// certificate chains to (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

/// Exactly one of `--jti`, `--sub`, `--client-id`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RevocationTarget {
    /// A token's `jti`.
    #[arg(long)]
    pub jti: Option<String>,
    /// A subject (`sub`): every token of it.
    #[arg(long)]
    pub sub: Option<String>,
    /// A client (`client_id`): every token issued to it.
    #[arg(long)]
    pub client_id: Option<String>,
}

impl RevocationTarget {
    /// The admin API's name for it, and the value.
    fn pair(&self) -> (&'static str, &str) {
        match (&self.jti, &self.sub, &self.client_id) {
            (Some(v), _, _) => ("jti", v),
            (_, Some(v), _) => ("sub", v),
            (_, _, Some(v)) => ("client_id", v),
            // clap requires one.
            (None, None, None) => ("jti", ""),
        }
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            deny_warnings,
        } => check(&config, deny_warnings),
        Command::Ban {
            cidr,
            ttl,
            reason,
            admin,
        } => {
            let body = serde_json::json!({ "cidr": cidr, "ttl": ttl, "reason": reason }).to_string();
            admin_command(&admin, http::Method::POST, "/admin/bans", Some(body))
        }
        Command::Unban { cidr, admin } => {
            let q: String =
                percent_encoding::utf8_percent_encode(&cidr, percent_encoding::NON_ALPHANUMERIC).to_string();
            admin_command(
                &admin,
                http::Method::DELETE,
                &format!("/admin/bans?cidr={q}"),
                None,
            )
        }
        Command::Revoke {
            target,
            ttl,
            reason,
            admin,
        } => {
            let (kind, value) = target.pair();
            let body = serde_json::json!({ kind: value, "ttl": ttl, "reason": reason }).to_string();
            admin_command(&admin, http::Method::POST, "/admin/revocations", Some(body))
        }
        Command::Unrevoke { target, admin } => {
            let (kind, value) = target.pair();
            let q = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
            admin_command(
                &admin,
                http::Method::DELETE,
                &format!("/admin/revocations?{kind}={q}"),
                None,
            )
        }
        Command::Revocations { admin } => {
            admin_command(&admin, http::Method::GET, "/admin/revocations", None)
        }
        Command::Keys { command } => dev::keys(command),
        Command::Token { command } => dev::token(command),
        Command::Mfa { command } => mfa::mfa(command),
        Command::Admin { command } => admin::admin(command),
        Command::Audit { command } => audit::run(command),
        Command::Sign(args) => sign::sign(args),
        Command::Verify(args) => sign::verify(args),
        Command::Identity {
            command: IdentityCommand::Jwks { config },
        } => identity_jwks(&config),
        Command::Bans { admin } => admin_command(&admin, http::Method::GET, "/admin/bans", None),
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

/// Prints `error: msg` and returns exit code 1 (bad input, a policy
/// problem, an unknown id).
pub(crate) fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

/// Loads a policy for a command that needs one section of it (the rest
/// need not be valid): the loaded file, or exit 1 with its problems.
pub(crate) fn load_policy(config: &std::path::Path) -> Result<crate::config::LoadedConfig, ExitCode> {
    crate::config::LoadedConfig::from_file(config).map_err(|errors| {
        print_problems(&errors);
        ExitCode::from(1)
    })
}

/// Prints the problems of one section and returns exit code 1.
pub(crate) fn section_problems(
    loaded: &crate::config::LoadedConfig,
    problems: Vec<crate::config::ConfigProblem>,
) -> ExitCode {
    print_problems(&loaded.problems(problems));
    ExitCode::from(1)
}

fn print_problems(errors: &ConfigErrors) {
    for p in &errors.problems {
        eprintln!("{}", errors.render(p));
    }
}

/// `rampart identity …`.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Print the public JWKS of `[identity] jwt_key_file` (after validating
    /// the whole policy, as `check` does), for the upstreams to verify the
    /// identity JWT with. Exit 1 if the policy is invalid or has no JWT.
    Jwks {
        /// The policy file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
}

fn identity_jwks(config: &std::path::Path) -> ExitCode {
    match crate::runtime::check(config) {
        Ok(gw) => match gw.identity.jwks() {
            Some(jwks) => {
                println!("{jwks:#}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "{}: [identity] has no jwt_header and jwt_key_file: no identity JWT is signed",
                    config.display()
                );
                ExitCode::from(1)
            }
        },
        Err(errors) => {
            print_problems(&errors);
            ExitCode::from(1)
        }
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

/// Calls the admin API and prints its JSON answer; exit 0 on 2xx, 1 otherwise.
fn admin_command(args: &AdminArgs, method: http::Method, path: &str, body: Option<String>) -> ExitCode {
    let token = match &args.token_file {
        Some(f) => std::fs::read_to_string(f)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("{}: {e}", f.display())),
        None => std::env::var("RAMPART_ADMIN_TOKEN")
            .map_err(|_| "no --token-file and RAMPART_ADMIN_TOKEN is not set".to_string()),
    };
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(2);
        }
    };
    let url = format!("{}{path}", args.admin.trim_end_matches('/'));
    let cacert = args.cacert.clone();
    let call = async move {
        use http_body_util::BodyExt;
        let uri: http::Uri = url.parse().map_err(|e| format!("bad admin URL: {e}"))?;
        let authority = uri.authority().cloned().ok_or("the admin URL needs a host")?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") | None => false,
            Some(other) => {
                return Err(format!(
                    "the admin URL must be http:// or https://, not {other}://"
                ))
            }
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot reach {authority}: {e}"))?;
        let mut sender = if https {
            let roots = match &cacert {
                Some(f) => crate::tls::load_roots(f)?,
                None => crate::tls::system_roots(),
            };
            let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_protocol_versions(crate::tls::VERSIONS)
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS to {authority}: {e}"))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender
        };
        let req = http::Request::builder()
            .method(method)
            .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(http::header::HOST, authority.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&text).into_owned()))
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(call) {
        Ok((status, text)) => {
            println!("{text}");
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!("rampart: the admin API answered {status}");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("rampart: {e}");
            ExitCode::from(1)
        }
    }
}
