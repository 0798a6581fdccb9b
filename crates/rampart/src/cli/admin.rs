//! `rampart admin user add|passwd|list|remove`: the people of the admin
//! plane, in the store of the policy's `[mfa]` section
//! ([`crate::admin::users`]).
//!
//! Threat answered: weak or leaked admin passwords, seeds shown twice.
//! Passwords are read from the terminal without echo (or from stdin's first
//! line when it is not a terminal, for scripts), checked against the policy
//! (12+ characters, not common, not containing the name), and never
//! printed; `add` shows the new TOTP seed once (URI on stdout, QR code and
//! seed on stderr). How it fails: a message on stderr; exit 1 for bad
//! input, a refused password or an unknown user, 2 when the store cannot be
//! reached.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

use crate::admin::config::Role;
use crate::admin::users::{self, UsersError};

/// `rampart admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin users (people): add, passwd, list, remove.
    User {
        /// What to do.
        #[command(subcommand)]
        command: UserCommand,
    },
}

/// `rampart admin user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person with a role; asks for the password, enrols their TOTP
    /// (shown once) for sign-in at POST /admin/login.
    Add {
        /// The policy file (its [mfa] section names the store and key).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
        /// The user name.
        #[arg(long)]
        user: String,
        /// viewer, operator or security-admin.
        #[arg(long)]
        role: String,
    },
    /// Change a person's password (their sessions end).
    Passwd {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
        /// The user name.
        #[arg(long)]
        user: String,
    },
    /// List admin users: names, roles, dates. Never a hash or a seed.
    List {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Remove a person.
    Remove {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: std::path::PathBuf,
        /// The user name.
        #[arg(long)]
        user: String,
    },
}

use super::bad;

fn failed(e: &UsersError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// A new password: twice from the terminal (no echo), or once from stdin.
fn read_password() -> Result<String, ExitCode> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ").map_err(bad)?;
        let again = rpassword::prompt_password("Again: ").map_err(bad)?;
        if first != again {
            return Err(bad("the passwords differ"));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| bad(format!("cannot read the password from stdin: {e}")))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn date(secs: i64) -> String {
    u64::try_from(secs)
        .map(|s| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
                .to_string()
        })
        .unwrap_or_else(|_| "-".into())
}

/// Runs `rampart admin …`.
pub fn admin(command: AdminCommand) -> ExitCode {
    let AdminCommand::User { command } = command;
    match command {
        UserCommand::Add { config, user, role } => {
            let Some(role) = Role::parse(&role) else {
                return bad(format!(
                    "unknown role `{role}`: viewer, operator or security-admin"
                ));
            };
            let pw = match read_password() {
                Ok(p) => p,
                Err(code) => return code,
            };
            super::mfa::run(async move {
                let mfa = super::mfa::open(&config)?;
                let e = users::add(&mfa, &user, role, &pw).await.map_err(|e| failed(&e))?;
                eprintln!(
                    "Added `{user}` ({}). Scan the QR code with an authenticator app; sign-in needs \
                     the password and a code. Shown once.",
                    role.as_str()
                );
                if let Some(q) = super::mfa::qr(e.uri.expose()) {
                    eprintln!("{q}");
                }
                eprintln!("seed: {}", e.secret_base32.expose());
                println!("{}", e.uri.expose());
                Ok(ExitCode::SUCCESS)
            })
        }
        UserCommand::Passwd { config, user } => {
            let pw = match read_password() {
                Ok(p) => p,
                Err(code) => return code,
            };
            super::mfa::run(async move {
                let mfa = super::mfa::open(&config)?;
                users::passwd(&mfa, &user, &pw).await.map_err(|e| failed(&e))?;
                eprintln!(
                    "Changed the password of `{user}` (sessions on running gateways end within their TTL)."
                );
                Ok(ExitCode::SUCCESS)
            })
        }
        UserCommand::List { config } => super::mfa::run(async move {
            let mfa = super::mfa::open(&config)?;
            let list = users::list(&mfa).await.map_err(|e| failed(&e))?;
            println!("{:<32} {:<15} {:<21} PASSWORD CHANGED", "USER", "ROLE", "ADDED");
            for (name, u) in list {
                println!(
                    "{:<32} {:<15} {:<21} {}",
                    name,
                    u.role.as_str(),
                    date(u.created_at),
                    date(u.password_changed_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }),
        UserCommand::Remove { config, user } => super::mfa::run(async move {
            let mfa = super::mfa::open(&config)?;
            match users::remove(&mfa, &user).await.map_err(|e| failed(&e))? {
                true => {
                    eprintln!("Removed `{user}`.");
                    Ok(ExitCode::SUCCESS)
                }
                false => Err(bad(format!("no user `{user}`"))),
            }
        }),
    }
}
