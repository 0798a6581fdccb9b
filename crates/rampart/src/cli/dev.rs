//! Developer commands: `rampart keys gen`, `rampart token mint`,
//! `rampart token dpop`. They make signing keys, a JWKS to publish, access
//! tokens and DPoP proofs for trying a policy out; the signing code is
//! [`crate::authn::sign`]. (`rampart keys create|list|rotate|revoke`, for
//! API keys, are parsed here and run by [`super::api_keys`].)
//!
//! Threat answered: none; these are test tools. Private keys are written
//! with mode 0600 when written to files. How it fails: a message on stderr
//! and exit 1 (2 for bad arguments).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use clap::Subcommand;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::authn::sign::SigningKey;
use crate::authn::thumbprint::x5t_s256;
use crate::clock::{Clock, SystemClock};

/// `rampart keys …`: signing keys (`gen`) and API keys
/// (`create`, `list`, `rotate`, `revoke`; see [`super::api_keys`]).
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a signing key: prints `{"private_jwk" | "private_key_pem", "jwks"}`
    /// (RSA private keys are PKCS#8 PEM).
    Gen {
        /// ES256 (P-256), EdDSA (Ed25519) or PS256 (RSA-PSS 2048).
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Also write DIR/private.jwk (or private.pem, mode 0600) and DIR/jwks.json.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Create an API key for a client; prints it once (on stdout).
    /// Exit 0 ok, 1 bad input or policy, 2 store unreachable.
    Create {
        /// The policy file; its [api_keys] section names the store and pepper.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The client (partner, application) the key is for.
        #[arg(long)]
        client: String,
        /// Granted scopes, space-separated, e.g. "accounts:read payments:write".
        #[arg(long)]
        scopes: String,
        /// Lifetime, e.g. 90d (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List API keys: id, client, scopes, dates, state (never the keys).
    List {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Replace a key by a new one for the same client and scopes; the old
    /// key keeps working until the overlap ends. Prints the new key once.
    Rotate {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The id of the key to replace (from `rampart keys list`).
        key_id: String,
        /// How long the old key stays valid [default: 24h].
        #[arg(long, value_name = "DURATION")]
        overlap: Option<String>,
        /// Lifetime of the new key (default: the old key's lifetime, if it had one).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Revoke a key now (gateways refuse it within `cache_ttl`).
    Revoke {
        /// The policy file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The id of the key (from `rampart keys list`).
        key_id: String,
    },
}

/// `rampart token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint an access token (`typ` `at+jwt`) signed with a key from `keys gen`.
    Mint {
        /// The issuer's private key file (private JWK or PKCS#8 PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Algorithm for a PEM RSA key (PS256 or RS256).
        #[arg(long)]
        alg: Option<String>,
        /// `iss`.
        #[arg(long)]
        iss: String,
        /// `sub`.
        #[arg(long)]
        sub: String,
        /// `aud` (repeatable).
        #[arg(long, required = true)]
        aud: Vec<String>,
        /// `scope`, space-separated.
        #[arg(long, default_value = "")]
        scope: String,
        /// `client_id`.
        #[arg(long)]
        client_id: Option<String>,
        /// `acr`.
        #[arg(long)]
        acr: Option<String>,
        /// `amr` (repeatable).
        #[arg(long)]
        amr: Vec<String>,
        /// `auth_time` (Unix seconds); default now.
        #[arg(long)]
        auth_time: Option<i64>,
        /// Lifetime, e.g. 5m.
        #[arg(long, default_value = "5m")]
        ttl: String,
        /// Bind to a DPoP key: `cnf.jkt` = thumbprint of this private key file.
        #[arg(long, value_name = "FILE")]
        dpop_key: Option<PathBuf>,
        /// Bind to a client certificate: `cnf.x5t#S256` of this PEM certificate.
        #[arg(long, value_name = "FILE")]
        cert: Option<PathBuf>,
    },
    /// Make a DPoP proof for one request.
    Dpop {
        /// The client's private key file (private JWK or PKCS#8 PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Algorithm for a PEM RSA key (PS256 or RS256).
        #[arg(long)]
        alg: Option<String>,
        /// The request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request URL.
        #[arg(long)]
        url: String,
        /// The access token the proof goes with (sets `ath`).
        #[arg(long)]
        token: Option<String>,
        /// A server nonce (`DPoP-Nonce`).
        #[arg(long)]
        nonce: Option<String>,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

fn parse_alg(s: &str) -> Result<Algorithm, ExitCode> {
    match s {
        "ES256" | "EdDSA" | "PS256" | "RS256" => s.parse().map_err(|_| ExitCode::from(2)),
        _ => {
            eprintln!("error: unsupported algorithm `{s}`; use ES256, EdDSA or PS256");
            Err(ExitCode::from(2))
        }
    }
}

fn load_key(path: &Path, alg: Option<&str>) -> Result<SigningKey, ExitCode> {
    let alg = alg.map(parse_alg).transpose()?;
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    SigningKey::load(&text, alg).map_err(|e| fail(format!("{}: {e}", path.display())))
}

fn now() -> i64 {
    let secs = SystemClock::new()
        .now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Runs `rampart keys …`.
pub fn keys(cmd: KeysCommand) -> ExitCode {
    match cmd {
        KeysCommand::Gen { alg, out_dir } => {
            let alg = match parse_alg(&alg) {
                Ok(a) => a,
                Err(code) => return code,
            };
            let key = match SigningKey::generate(alg) {
                Ok(k) => k,
                Err(e) => return fail(e),
            };
            let (private, name, value) = match key.private_jwk() {
                Ok(jwk) => {
                    let v = Value::Object(jwk);
                    (format!("{v:#}\n"), "private_jwk", v)
                }
                Err(_) => match key.to_pkcs8_pem() {
                    Ok(pem) => (pem.clone(), "private_key_pem", Value::String(pem)),
                    Err(e) => return fail(e),
                },
            };
            if let Some(dir) = out_dir {
                let file = if name == "private_jwk" {
                    "private.jwk"
                } else {
                    "private.pem"
                };
                let written = std::fs::create_dir_all(&dir)
                    .and_then(|_| crate::demo::pki::write_private(&dir.join(file), &private))
                    .and_then(|_| std::fs::write(dir.join("jwks.json"), format!("{:#}\n", key.jwks())));
                if let Err(e) = written {
                    return fail(format!("{}: {e}", dir.display()));
                }
            }
            println!("{:#}", json!({ name: value, "jwks": key.jwks() }));
            ExitCode::SUCCESS
        }
        KeysCommand::Create {
            config,
            client,
            scopes,
            expires,
        } => super::api_keys::create(&config, &client, &scopes, expires.as_deref()),
        KeysCommand::List { config } => super::api_keys::list(&config),
        KeysCommand::Rotate {
            config,
            key_id,
            overlap,
            expires,
        } => super::api_keys::rotate(&config, &key_id, overlap.as_deref(), expires.as_deref()),
        KeysCommand::Revoke { config, key_id } => super::api_keys::revoke(&config, &key_id),
    }
}

/// Runs `rampart token …`.
pub fn token(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::Mint {
            key,
            alg,
            iss,
            sub,
            aud,
            scope,
            client_id,
            acr,
            amr,
            auth_time,
            ttl,
            dpop_key,
            cert,
        } => {
            let key = match load_key(&key, alg.as_deref()) {
                Ok(k) => k,
                Err(code) => return code,
            };
            let ttl = match humantime::parse_duration(&ttl) {
                Ok(d) if d > Duration::ZERO => d,
                _ => {
                    eprintln!("error: invalid --ttl `{ttl}`");
                    return ExitCode::from(2);
                }
            };
            let now = now();
            let mut claims = json!({
                "iss": iss,
                "sub": sub,
                "aud": if aud.len() == 1 { json!(aud[0]) } else { json!(aud) },
                "iat": now,
                "exp": now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
                "jti": crate::authn::sign::random_id(),
                "auth_time": auth_time.unwrap_or(now),
            });
            if !scope.is_empty() {
                claims["scope"] = json!(scope);
            }
            if let Some(c) = client_id {
                claims["client_id"] = json!(c);
            }
            if let Some(a) = acr {
                claims["acr"] = json!(a);
            }
            if !amr.is_empty() {
                claims["amr"] = json!(amr);
            }
            let mut cnf = serde_json::Map::new();
            if let Some(path) = dpop_key {
                match load_key(&path, None) {
                    Ok(k) => {
                        cnf.insert("jkt".into(), json!(k.thumbprint()));
                    }
                    Err(code) => return code,
                }
            }
            if let Some(path) = cert {
                match crate::tls::load_certs(&path) {
                    Ok(certs) => {
                        if let Some(c) = certs.first() {
                            cnf.insert("x5t#S256".into(), json!(x5t_s256(c)));
                        }
                    }
                    Err(e) => return fail(e),
                }
            }
            if !cnf.is_empty() {
                claims["cnf"] = Value::Object(cnf);
            }
            match key.mint(&claims) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        TokenCommand::Dpop {
            key,
            alg,
            method,
            url,
            token,
            nonce,
        } => {
            let key = match load_key(&key, alg.as_deref()) {
                Ok(k) => k,
                Err(code) => return code,
            };
            match key.dpop_proof(&method, &url, token.as_deref(), now(), nonce.as_deref()) {
                Ok(p) => {
                    println!("{p}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}
