//! `rampart sign` and `rampart verify`: RFC 9421 message signatures for
//! developers. `sign` prints the `Content-Digest`, `Signature-Input` and
//! `Signature` header lines for a request (one per line, as `curl -H @FILE`
//! reads them); `verify` checks such a request against a JWKS, as the
//! gateway would.
//!
//! Threat answered: none; these are test tools (the signing code is the
//! gateway's own, [`crate::validate::signature`]). How it fails: a message
//! on stderr and exit 1 (2 for bad arguments).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::validate::signature::{self, Message, RouteSignature, Signatures};

/// What to sign or verify: a request.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// Method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The full request URL, e.g. https://localhost:8443/v1/payments.
    #[arg(long)]
    pub url: String,
    /// A header, `name: value` (repeatable), e.g. -H "authorization: DPoP …".
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// The body.
    #[arg(long, short = 'd', conflicts_with = "data_file")]
    pub data: Option<String>,
    /// The body, from a file.
    #[arg(long)]
    pub data_file: Option<PathBuf>,
}

/// `rampart sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The private key (JWK or PKCS#8 PEM; EdDSA or ES256), e.g. from
    /// `rampart keys gen --alg EdDSA`.
    #[arg(long)]
    pub key: PathBuf,
    /// `keyid` (default: the key's `kid`).
    #[arg(long)]
    pub keyid: Option<String>,
    /// Covered components, space-separated (default: @method @target-uri
    /// @authority, and content-digest and authorization when present).
    #[arg(long)]
    pub components: Option<String>,
    /// Signature label.
    #[arg(long, default_value = "sig1")]
    pub label: String,
    /// Leave out the `nonce` (the gateway requires one by default).
    #[arg(long)]
    pub no_nonce: bool,
    /// Write the header lines to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The request.
    #[command(flatten)]
    pub request: RequestArgs,
}

/// `rampart verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The signer's public keys (JWKS).
    #[arg(long)]
    pub jwks: PathBuf,
    /// Components the signature must cover (space-separated).
    #[arg(long)]
    pub components: Option<String>,
    /// Oldest `created` accepted, e.g. 5m.
    #[arg(long, default_value = "5m")]
    pub max_age: String,
    /// The request (with its Signature-Input, Signature and Content-Digest
    /// headers given with -H).
    #[command(flatten)]
    pub request: RequestArgs,
}

struct Parsed {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn parse(r: &RequestArgs) -> Result<Parsed, String> {
    let url = url::Url::parse(&r.url).map_err(|e| format!("--url: {e}"))?;
    let host = url.host_str().ok_or("--url needs a host")?;
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut headers = HeaderMap::new();
    for h in &r.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}`: write `name: value`"))?;
        let name = HeaderName::from_bytes(k.trim().to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("{k}: {e}"))?;
        let value = HeaderValue::from_str(v.trim()).map_err(|e| format!("{k}: {e}"))?;
        headers.append(name, value);
    }
    let body = match (&r.data, &r.data_file) {
        (Some(d), _) => d.clone().into_bytes(),
        (None, Some(f)) => std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?,
        (None, None) => Vec::new(),
    };
    Ok(Parsed {
        method: r.method.to_ascii_uppercase(),
        scheme: url.scheme().to_owned(),
        authority,
        path: url.path().to_owned(),
        query: url.query().map(str::to_owned),
        headers,
        body,
    })
}

impl Parsed {
    fn message(&self) -> Message<'_> {
        Message::request(
            &self.method,
            &self.scheme,
            &self.authority,
            &self.path,
            self.query.as_deref(),
            &self.headers,
        )
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("rampart: {e}");
    ExitCode::from(1)
}

/// Runs `rampart sign`.
pub fn sign(a: SignArgs) -> ExitCode {
    let mut req = match parse(&a.request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(2);
        }
    };
    let key = match std::fs::read_to_string(&a.key)
        .map_err(|e| format!("{}: {e}", a.key.display()))
        .and_then(|t| crate::authn::sign::SigningKey::load(&t, None).map_err(|e| e.to_string()))
    {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let mut lines = Vec::new();
    if !req.body.is_empty() {
        let digest = signature::content_digest(&req.body);
        if let Ok(v) = HeaderValue::from_str(&digest) {
            req.headers.insert("content-digest", v);
        }
        lines.push(format!("Content-Digest: {digest}"));
    }
    let components: Vec<String> = match &a.components {
        Some(c) => c.split_whitespace().map(str::to_owned).collect(),
        None => {
            let mut c: Vec<String> = ["@method", "@target-uri", "@authority"]
                .map(String::from)
                .to_vec();
            for h in ["content-digest", "authorization"] {
                if req.headers.contains_key(h) {
                    c.push(h.into());
                }
            }
            c
        }
    };
    let keyid = a.keyid.clone().unwrap_or_else(|| key.kid().to_owned());
    let nonce = (!a.no_nonce).then(crate::authn::sign::random_id);
    let now = crate::authn::sign::unix_now();
    match signature::sign_message(
        &key,
        &keyid,
        &components,
        now,
        nonce.as_deref(),
        &req.message(),
        &a.label,
    ) {
        Ok((input, sig)) => {
            lines.push(format!("Signature-Input: {input}"));
            lines.push(format!("Signature: {sig}"));
        }
        Err(e) => return fail(e),
    }
    let text = format!("{}\n", lines.join("\n"));
    match &a.out {
        Some(f) => match std::fs::write(f, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("{}: {e}", f.display())),
        },
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

/// Runs `rampart verify`.
pub fn verify(a: VerifyArgs) -> ExitCode {
    let req = match parse(&a.request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(2);
        }
    };
    let keys = match std::fs::read_to_string(&a.jwks)
        .map_err(|e| format!("{}: {e}", a.jwks.display()))
        .and_then(|t| signature::keys_from_jwks(&t))
    {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let Ok(max_age) = humantime::parse_duration(&a.max_age) else {
        eprintln!("rampart: --max-age: not a duration");
        return ExitCode::from(2);
    };
    let clock = crate::clock::SystemClock::shared();
    let sigs = Signatures {
        clients: vec![signature::Client {
            name: "cli".into(),
            keys,
        }],
        max_age,
        clock_skew: std::time::Duration::from_secs(10),
        nonces: Arc::new(crate::authn::dpop::MemoryReplayCache::new(16, clock.clone())),
        response_key: None,
        clock: clock.clone(),
    };
    let route = RouteSignature {
        required: true,
        clients: vec![0],
        components: a
            .components
            .as_deref()
            .map(|c| c.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_else(|| {
                vec![
                    "@method".into(),
                    "@target-uri".into(),
                    "@authority".into(),
                    "content-digest".into(),
                ]
            }),
        require_nonce: false,
        sign_response: false,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    match rt.block_on(sigs.verify(&route, &req.message(), &req.body)) {
        Ok(Some(v)) => {
            println!("signature valid (keyid {})", v.keyid);
            ExitCode::SUCCESS
        }
        Ok(None) => fail("no signature"),
        Err(e) => fail(format!("signature refused: {e}")),
    }
}
