//! `rampart audit verify|show|export|keygen`: the operator's tools for the
//! audit trail named by the policy's `[audit]` section ([`crate::audit`]).
//!
//! - `verify` replays the chain, checkpoints and signed head; it names the
//!   first bad entry. Exit 0 intact, 1 tampered (or entries recorded as
//!   lost), 2 the trail, its keys or the policy cannot be read.
//! - `show` decrypts and prints entries for an authorised operator (it
//!   needs the master key), `--from`/`--to` (RFC 3339, or a duration ago
//!   such as `1h`) and `--filter key=value` (`status=429`,
//!   `principal.subject=customer-a`, `route=payment*`).
//! - `export --format jsonl` prints the same entries as JSON lines for a
//!   SIEM: `{"seq":…,"hash":"…","entry":{…}}`.
//! - `keygen --dir DIR` writes a master key and an Ed25519 signing key.
//!
//! Threat answered: a trail nobody can check, or a tool that leaks it. The
//! tools print only what the trail holds (already redacted); they never
//! print keys. How it fails: a message on stderr and the exit code above;
//! a frame that does not open is reported by `show`/`export` (exit 1), and
//! never printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use serde_json::Value;

use crate::audit::config::{AuditPolicy, SinkPolicy};
use crate::audit::crypto::KeyProvider;
use crate::audit::postgres::PgSink;
use crate::audit::record::{json_line, Link};
use crate::audit::verify::{scan_dir, verify_dir, Item, Report, VerifyFailure};
use crate::config::LoadedConfig;

/// `rampart audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the trail: chain, checkpoints, signed head. Exit 0 intact, 1
    /// tampered, 2 unreadable.
    Verify {
        /// The policy file (its [audit] section).
        #[command(flatten)]
        trail: TrailArgs,
    },
    /// Decrypt and print entries.
    Show {
        /// The policy file (its [audit] section).
        #[command(flatten)]
        trail: TrailArgs,
        /// Which entries.
        #[command(flatten)]
        select: SelectArgs,
        /// Print each entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print entries for a SIEM.
    Export {
        /// The policy file (its [audit] section).
        #[command(flatten)]
        trail: TrailArgs,
        /// Which entries.
        #[command(flatten)]
        select: SelectArgs,
        /// Output format: `jsonl` (one `{"seq","hash","entry"}` per line).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Write a new master key (`audit-master.key`) and Ed25519 signing key
    /// (`audit-signing.pem`, `audit-signing.pub.pem`) into DIR.
    Keygen {
        /// Where to write them.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Which policy and trail.
#[derive(Debug, clap::Args)]
pub struct TrailArgs {
    /// The policy file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Read segments from DIR instead of the policy's `[audit] dir` (a
    /// copy of the trail).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Which entries.
#[derive(Debug, clap::Args)]
pub struct SelectArgs {
    /// From this time (RFC 3339, or a duration ago: `1h`, `30m`).
    #[arg(long)]
    pub from: Option<String>,
    /// Until this time (RFC 3339, or a duration ago).
    #[arg(long)]
    pub to: Option<String>,
    /// Only entries where KEY (a field, `event.` optional:
    /// `status`, `principal.subject`, `kind`) equals VALUE (`*` at the end:
    /// a prefix). Repeatable: all must match.
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// Runs `rampart audit …`.
pub fn run(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Verify { trail } => verify(&trail),
        AuditCommand::Show { trail, select, json } => {
            read(&trail, &select, if json { Out::Json } else { Out::Text })
        }
        AuditCommand::Export {
            trail,
            select,
            format,
        } => {
            if format != "jsonl" {
                eprintln!("error: unknown --format `{format}` (only `jsonl`)");
                return ExitCode::from(2);
            }
            read(&trail, &select, Out::Jsonl)
        }
        AuditCommand::Keygen { dir, force } => keygen(&dir, force),
    }
}

fn unreadable(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The `[audit]` policy of a policy file (the rest need not be valid).
fn policy(args: &TrailArgs) -> Result<AuditPolicy, ExitCode> {
    let loaded = LoadedConfig::from_file(&args.config).map_err(|errors| {
        for p in &errors.problems {
            eprintln!("{}", errors.render(p));
        }
        ExitCode::from(2)
    })?;
    let Some(section) = &loaded.config.audit else {
        return Err(unreadable(format!(
            "{}: the policy has no [audit] section",
            args.config.display()
        )));
    };
    let mut policy = AuditPolicy::from_config(section, &loaded).map_err(|p| {
        let errors = loaded.problems(p);
        for p in &errors.problems {
            eprintln!("{}", errors.render(p));
        }
        ExitCode::from(2)
    })?;
    if let Some(dir) = &args.dir {
        policy.sink = SinkPolicy::File { dir: dir.clone() };
    }
    Ok(policy)
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unreadable(format!("cannot start the async runtime: {e}")))
}

fn pg_sink(policy: &AuditPolicy) -> Option<Result<PgSink, ExitCode>> {
    match &policy.sink {
        SinkPolicy::Postgres {
            url, location, table, ..
        } => Some(PgSink::new(url, location, table, policy.signer.clone()).map_err(unreadable)),
        SinkPolicy::File { .. } => None,
    }
}

fn verify(args: &TrailArgs) -> ExitCode {
    let policy = match policy(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let result = match pg_sink(&policy) {
        None => match &policy.sink {
            SinkPolicy::File { dir } => verify_dir(dir, policy.keys.as_ref(), &policy.trusted),
            SinkPolicy::Postgres { .. } => return unreadable("unreachable"),
        },
        Some(Err(code)) => return code,
        Some(Ok(mut pg)) => match runtime() {
            Ok(rt) => rt.block_on(pg.verify(&policy.trusted)),
            Err(code) => return code,
        },
    };
    match result {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            println!("OK: {}", summary(&report, &policy.describe()));
            ExitCode::SUCCESS
        }
        Err(VerifyFailure::Bad(p)) => {
            println!("TAMPERED: {} ({})", p, policy.describe());
            println!("first bad entry: {}", p.seq);
            ExitCode::from(1)
        }
        Err(VerifyFailure::Unreadable(why)) => unreadable(why),
    }
}

fn summary(r: &Report, trail: &str) -> String {
    if r.entries == 0 {
        return format!("{trail}: an empty trail");
    }
    let keys: Vec<&str> = r.key_ids.iter().map(String::as_str).collect();
    format!(
        "{trail}: entries {}..{} ({} entries), {} signed checkpoint(s) (last at {}; key(s) {}){}{}",
        r.first,
        r.last,
        r.entries,
        r.checkpoints,
        r.last_checkpoint,
        if keys.is_empty() {
            "-".to_string()
        } else {
            keys.join(", ")
        },
        if r.segments > 0 {
            format!(", {} segment(s)", r.segments)
        } else {
            String::new()
        },
        r.head.map_or(String::new(), |h| format!(", signed head at {h}")),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Text,
    Json,
    Jsonl,
}

/// A time bound: RFC 3339, or a duration before now.
fn bound(flag: &str, v: &str) -> Result<SystemTime, ExitCode> {
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(t);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH));
    }
    Err(unreadable(format!(
        "invalid {flag} `{v}`: write an RFC 3339 time (2026-12-03T10:00:00Z) or a duration ago (1h)"
    )))
}

/// Entry selection.
struct Select {
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    filters: Vec<(Vec<String>, String)>,
}

impl Select {
    fn new(a: &SelectArgs) -> Result<Self, ExitCode> {
        let from = a.from.as_deref().map(|v| bound("--from", v)).transpose()?;
        let to = a.to.as_deref().map(|v| bound("--to", v)).transpose()?;
        let mut filters = Vec::new();
        for f in &a.filter {
            let Some((k, v)) = f.split_once('=') else {
                return Err(unreadable(format!("invalid --filter `{f}`: write KEY=VALUE")));
            };
            filters.push((k.split('.').map(str::to_owned).collect(), v.to_string()));
        }
        Ok(Self { from, to, filters })
    }

    fn matches(&self, entry: &Value) -> bool {
        let time = entry
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
        if let (Some(from), Some(t)) = (self.from, time) {
            if t < from {
                return false;
            }
        }
        if let (Some(to), Some(t)) = (self.to, time) {
            if t > to {
                return false;
            }
        }
        self.filters.iter().all(|(path, want)| {
            let found = lookup(entry, path).or_else(|| entry.get("event").and_then(|e| lookup(e, path)));
            let Some(found) = found else { return false };
            let text = match found {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match want.strip_suffix('*') {
                Some(prefix) => text.starts_with(prefix),
                None => text == *want,
            }
        })
    }
}

fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// `show` and `export`.
fn read(args: &TrailArgs, select: &SelectArgs, out: Out) -> ExitCode {
    let select = match Select::new(select) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let policy = match policy(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut damaged = 0u64;
    let mut unparsable = 0u64;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut print = |seq: u64, hash: &[u8; 32], body: &[u8]| -> bool {
        use std::io::Write;
        let Ok(entry) = serde_json::from_slice::<Value>(body) else {
            unparsable += 1;
            return true;
        };
        if !select.matches(&entry) {
            return true;
        }
        let line = match out {
            Out::Jsonl => json_line(&Link {
                seq,
                hash: *hash,
                body: body.to_vec(),
            }),
            Out::Json => String::from_utf8_lossy(body).into_owned(),
            Out::Text => text_line(&entry),
        };
        printed += 1;
        // A closed pipe (`| head`) ends the listing.
        writeln!(stdout.lock(), "{line}").is_ok()
    };
    let scanned: Result<(), String> = match pg_sink(&policy) {
        None => {
            let SinkPolicy::File { dir } = &policy.sink else {
                return unreadable("no trail");
            };
            read_dir(dir, policy.keys.as_ref(), &mut damaged, &mut print)
        }
        Some(Err(code)) => return code,
        Some(Ok(mut pg)) => match runtime() {
            Ok(rt) => rt.block_on(async {
                pg.scan(|seq, hash, body| {
                    let mut h = [0u8; 32];
                    if hash.len() == 32 {
                        h.copy_from_slice(hash);
                    }
                    Ok::<bool, ()>(print(u64::try_from(seq).unwrap_or(0), &h, body.as_bytes()))
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }),
            Err(code) => return code,
        },
    };
    if let Err(why) = scanned {
        return unreadable(why);
    }
    damaged += unparsable;
    if damaged > 0 {
        eprintln!(
            "error: {damaged} {} could not be read and {} not printed; run `rampart audit verify`",
            entries(damaged),
            if damaged == 1 { "was" } else { "were" }
        );
        return ExitCode::from(1);
    }
    if out == Out::Text {
        eprintln!("{printed} {}", entries(printed));
    }
    ExitCode::SUCCESS
}

fn entries(n: u64) -> &'static str {
    if n == 1 {
        "entry"
    } else {
        "entries"
    }
}

fn read_dir(
    dir: &Path,
    keys: &dyn KeyProvider,
    damaged: &mut u64,
    print: &mut impl FnMut(u64, &[u8; 32], &[u8]) -> bool,
) -> Result<(), String> {
    let mut stop = false;
    let scanned = scan_dir(dir, keys, |item| {
        if stop {
            return Err(());
        }
        match item {
            Item::Entry { hash, body, .. } => {
                let seq = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(Value::as_u64))
                    .unwrap_or(0);
                stop = !print(seq, hash, body);
            }
            Item::Corrupt { location } => {
                eprintln!("warning: {location}: the entry does not decrypt or authenticate");
                *damaged += 1;
            }
            Item::Torn { .. } => {}
        }
        Ok(())
    });
    match scanned {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// One entry as a line of text.
fn text_line(entry: &Value) -> String {
    let seq = entry.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let time = s(entry, "time");
    let e = entry.get("event").cloned().unwrap_or(Value::Null);
    let kind = s(&e, "kind");
    let detail = match kind {
        "request" => {
            let who = e
                .get("principal")
                .map(|p| {
                    let id = p
                        .get("subject")
                        .or_else(|| p.get("client_id"))
                        .and_then(Value::as_str)
                        .unwrap_or("-");
                    format!("{id} ({})", s(p, "method"))
                })
                .unwrap_or_else(|| "-".into());
            let query = e
                .get("query")
                .and_then(Value::as_str)
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let mut cause = e
                .get("cause")
                .and_then(Value::as_str)
                .map(|c| format!(" cause=\"{c}\""))
                .unwrap_or_default();
            if e.get("confirmed").and_then(Value::as_bool) == Some(true) {
                cause.push_str(" confirmed");
            }
            if let Some(signals) = e.get("signals").and_then(Value::as_array) {
                let list: Vec<&str> = signals.iter().filter_map(Value::as_str).collect();
                cause.push_str(&format!(" signals=\"{}\"", list.join(", ")));
            }
            format!(
                "{} {}{} -> {} {} route={} who={} ip={} {}ms id={}{}",
                s(&e, "method"),
                s(&e, "path"),
                query,
                e.get("status").map(Value::to_string).unwrap_or_default(),
                s(&e, "outcome"),
                s(&e, "route"),
                who,
                s(&e, "client_ip"),
                e.get("latency_ms").map(Value::to_string).unwrap_or_default(),
                s(&e, "request_id"),
                cause,
            )
        }
        "admin" => format!(
            "{} {} {} -> {}",
            s(&e, "actor"),
            s(&e, "action"),
            s(&e, "target"),
            s(&e, "outcome")
        ),
        "reload" => format!(
            "{} -> {} generation={} problems={}",
            s(&e, "trigger"),
            s(&e, "outcome"),
            e.get("generation")
                .map(Value::to_string)
                .unwrap_or_else(|| "-".into()),
            e.get("problems").map(Value::to_string).unwrap_or_default()
        ),
        "checkpoint" => format!(
            "signed by key {} over entry {}",
            s(&e, "key_id"),
            e.get("covers").map(Value::to_string).unwrap_or_default()
        ),
        "start" => format!(
            "writer started (rampart {}) after entry {}",
            s(&e, "version"),
            e.get("resumed_after")
                .map(Value::to_string)
                .unwrap_or_else(|| "-".into())
        ),
        "retention" => format!(
            "segments {} deleted; the trail now starts at {}",
            e.get("segments").map(Value::to_string).unwrap_or_default(),
            e.get("first_kept").map(Value::to_string).unwrap_or_default()
        ),
        _ => e.to_string(),
    };
    format!("{seq:>8} {time} {kind:<10} {detail}")
}

fn keygen(dir: &Path, force: bool) -> ExitCode {
    let master = dir.join("audit-master.key");
    let signing = dir.join("audit-signing.pem");
    let public = dir.join("audit-signing.pub.pem");
    if !force {
        for p in [&master, &signing, &public] {
            if p.exists() {
                eprintln!(
                    "error: {} exists (--force overwrites it; old segments need the old key)",
                    p.display()
                );
                return ExitCode::from(1);
            }
        }
    }
    let generated = crate::audit::crypto::random_key()
        .and_then(|k| crate::audit::crypto::generate_signing_key().map(|s| (k, s)));
    let (key, (private_pem, public_pem, key_id)) = match generated {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    use base64::Engine as _;
    let master_text = format!("{}\n", base64::engine::general_purpose::STANDARD.encode(key));
    for (path, text) in [
        (&master, master_text.as_str()),
        (&signing, &private_pem),
        (&public, &public_pem),
    ] {
        if let Err(e) = crate::demo::pki::write_private(path, text) {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    eprintln!(
        "wrote {}, {} and {} (signing key id {key_id})",
        master.display(),
        signing.display(),
        public.display()
    );
    println!(
        "[audit]\ndir = \"audit\"\nsigning_key_file = \"{}\"\n\n[[audit.master_keys]]\nid = \"k1\"\nfile = \"{}\"",
        signing.display(),
        master.display()
    );
    ExitCode::SUCCESS
}
