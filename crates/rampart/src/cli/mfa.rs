//! `rampart mfa enrol|list|reset|rekey|code`: customers' one-time-code
//! enrolments in the store named by the policy's `[mfa]` section
//! ([`crate::mfa`]), and a code generator for development.
//!
//! Threat answered: seeds leaking through the tool. A seed is shown once,
//! at enrolment (the `otpauth://` URI on stdout, a QR code and the base32
//! seed on stderr for a human at a terminal); `list` shows users,
//! parameters, key ids and dates, never a seed. How it fails: a message on
//! stderr; exit 1 for bad input, a policy problem or an unknown user, 2 when
//! the store cannot be reached.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::mfa::totp::{self, Algorithm};
use crate::mfa::{Mfa, MfaError, MfaPolicy, MfaState};

/// `rampart mfa …`.
#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Enrol a customer for TOTP transaction confirmation: prints the
    /// otpauth:// URI (stdout) and a QR code and the seed (stderr), once.
    Enrol {
        /// The policy file (its [mfa] section names the store and key).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
        /// The customer: the `sub` of their tokens.
        #[arg(long)]
        user: String,
        /// HMAC: SHA1 (what most apps use), SHA256 or SHA512.
        #[arg(long, default_value = "SHA1")]
        algorithm: String,
        /// Code length: 6 or 8.
        #[arg(long, default_value_t = 6)]
        digits: u32,
    },
    /// List enrolments: users, algorithm, digits, key id, date. Never a seed.
    List {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Remove a customer's enrolment (a lost device); they enrol again.
    Reset {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
        /// The customer.
        #[arg(long)]
        user: String,
    },
    /// Reseal every enrolment under the current key (after a rotation:
    /// the old key can then leave `old_keys`).
    Rekey {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Print the current code of a base32 seed (development and demos).
    Code {
        /// The seed, base32 (or `-` to read it from stdin).
        #[arg(long)]
        secret: String,
        /// HMAC: SHA1, SHA256 or SHA512.
        #[arg(long, default_value = "SHA1")]
        algorithm: String,
        /// Code length: 6 or 8.
        #[arg(long, default_value_t = 6)]
        digits: u32,
    },
}

use super::bad;

fn failed(e: &MfaError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(if e.is_unavailable() { 2 } else { 1 })
}

/// Loads the policy and builds [`Mfa`] from `[mfa]` only (the rest of the
/// policy need not be valid here).
pub fn open(config: &Path) -> Result<Mfa, ExitCode> {
    let loaded = super::load_policy(config)?;
    let Some(section) = &loaded.config.mfa else {
        return Err(bad(format!(
            "{}: the policy has no [mfa] section",
            config.display()
        )));
    };
    let policy = MfaPolicy::from_config(section, &loaded, loaded.config.redis.is_some())
        .map_err(|p| super::section_problems(&loaded, p))?;
    let clock = SystemClock::shared();
    Ok(Mfa::new(policy, MfaState::new(clock.clone()), None, clock))
}

/// Runs one command on a current-thread runtime.
pub fn run<T>(f: impl std::future::Future<Output = Result<T, ExitCode>>) -> ExitCode
where
    T: Into<ExitCode>,
{
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => match rt.block_on(f) {
            Ok(t) => t.into(),
            Err(code) => code,
        },
        Err(e) => bad(format!("cannot start the async runtime: {e}")),
    }
}

fn algorithm(s: &str) -> Result<Algorithm, ExitCode> {
    Algorithm::parse(s).ok_or_else(|| bad(format!("unknown algorithm `{s}`: use SHA1, SHA256 or SHA512")))
}

/// A QR code of `text` for a terminal (two rows per character line).
pub fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

fn date(secs: i64) -> String {
    u64::try_from(secs)
        .map(|s| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string())
        .unwrap_or_else(|_| "-".into())
}

/// Runs `rampart mfa …`.
pub fn mfa(command: MfaCommand) -> ExitCode {
    match command {
        MfaCommand::Enrol {
            config,
            user,
            algorithm: alg,
            digits,
        } => run(async move {
            let alg = algorithm(&alg)?;
            let m = open(&config)?;
            let e = m.enrol(&user, alg, digits).await.map_err(|e| failed(&e))?;
            eprintln!(
                "Enrolled `{user}` ({}, {digits} digits, sealed under key {}). Scan the QR code with an \
                 authenticator app, or enter the seed by hand. Shown once.",
                alg.as_str(),
                e.factor.secret.key_id
            );
            if let Some(q) = qr(e.uri.expose()) {
                eprintln!("{q}");
            }
            eprintln!("seed: {}", e.secret_base32.expose());
            println!("{}", e.uri.expose());
            Ok(ExitCode::SUCCESS)
        }),
        MfaCommand::List { config } => run(async move {
            let m = open(&config)?;
            let list = m.list().await.map_err(|e| failed(&e))?;
            println!(
                "{:<32} {:<7} {:<6} {:<8} ENROLLED",
                "USER", "ALG", "DIGITS", "KEY"
            );
            for (user, f) in list {
                println!(
                    "{:<32} {:<7} {:<6} {:<8} {}",
                    user,
                    f.algorithm.as_str(),
                    f.digits,
                    f.secret.key_id,
                    date(f.created_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }),
        MfaCommand::Reset { config, user } => run(async move {
            let m = open(&config)?;
            match m.reset(&user).await.map_err(|e| failed(&e))? {
                true => {
                    eprintln!("Removed the enrolment of `{user}`.");
                    Ok(ExitCode::SUCCESS)
                }
                false => Err(bad(format!("`{user}` has no enrolment"))),
            }
        }),
        MfaCommand::Rekey { config } => run(async move {
            let m = open(&config)?;
            let n = m.rekey().await.map_err(|e| failed(&e))?;
            eprintln!("Resealed {n} enrolment(s) under key {}.", m.keys().current_id());
            Ok(ExitCode::SUCCESS)
        }),
        MfaCommand::Code {
            secret,
            algorithm: alg,
            digits,
        } => {
            let alg = match algorithm(&alg) {
                Ok(a) => a,
                Err(code) => return code,
            };
            let secret = if secret == "-" {
                let mut s = String::new();
                if std::io::stdin().read_line(&mut s).is_err() {
                    return bad("cannot read the seed from stdin");
                }
                s
            } else {
                secret
            };
            let Some(seed) = totp::base32_decode(secret.trim()).filter(|s| !s.is_empty()) else {
                return bad("the seed is not base32");
            };
            if digits != 6 && digits != 8 {
                return bad("digits must be 6 or 8");
            }
            let now = SystemClock::new()
                .now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            println!("{}", totp::totp(alg, &seed, now, digits));
            ExitCode::SUCCESS
        }
    }
}
