//! `rampart demo`: a sample bank, the gateway in front of it, and the admin
//! listener, in one process, with nothing to set up.
//!
//! It generates a throw-away CA and server certificate ([`pki`]), starts the
//! sample bank API ([`bank`]) on an ephemeral loopback port, renders the demo
//! policy (`config/demo/rampart.toml`) into the demo directory, starts the
//! gateway from that file exactly as `rampart serve` would, writes
//! `demo.json`, and prints `curl` lines. Everything binds to 127.0.0.1.

pub mod bank;
pub mod idp;
pub mod pki;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

/// The audience the demo's tokens are for.
pub const AUDIENCE: &str = "https://localhost/demo-bank";

/// The creditor the demo customer consented to pay (RFC 9396 details of the
/// DPoP-bound tokens).
pub const CONSENTED_CREDITOR: &str = "DE89370400440532013000";

/// The demo customer enrolled for transaction confirmation.
pub const TOTP_USER: &str = "cust-001";

/// The demo policy template, with `@GATEWAY_BIND@`, `@ADMIN_BIND@`,
/// `@BANK_URL@`, `@IDP_URL@` and `@GATEWAY_AUDIENCE@` placeholders.
pub const POLICY_TEMPLATE: &str = include_str!("../../../../config/demo/rampart.toml");

/// The demo bank's OpenAPI document (the policy's `[[apis]]` spec).
pub const OPENAPI: &str = include_str!("../../../../config/demo/bank-openapi.yaml");

/// Writes the demo's RFC 9421 keys: the partner's signing key (private, in
/// `tokens/`) with its public JWKS, and the gateway's response-signing key.
fn signing_keys(dir: &Path) -> Result<serde_json::Value, String> {
    use jsonwebtoken::Algorithm;
    let gen = |what: &str| {
        crate::authn::sign::SigningKey::generate(Algorithm::EdDSA)
            .map_err(|e| format!("cannot make the {what} key: {e}"))
    };
    let partner = gen("partner signing")?;
    let response = gen("response signing")?;
    let private = |k: &crate::authn::sign::SigningKey| {
        k.private_jwk()
            .map(|m| serde_json::Value::Object(m).to_string())
            .map_err(|e| e.to_string())
    };
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(|e| format!("{}: {e}", tokens.display()))?;
    let key_file = tokens.join("partner-sign.jwk");
    pki::write_private(&key_file, &private(&partner)?).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let jwks = dir.join("partner-sign.jwks.json");
    std::fs::write(&jwks, partner.jwks().to_string()).map_err(|e| format!("{}: {e}", jwks.display()))?;
    let response_file = dir.join("response-signing.jwk");
    pki::write_private(&response_file, &private(&response)?)
        .map_err(|e| format!("{}: {e}", response_file.display()))?;
    let response_jwks = dir.join("response-signing.jwks.json");
    std::fs::write(&response_jwks, response.jwks().to_string())
        .map_err(|e| format!("{}: {e}", response_jwks.display()))?;
    Ok(json!({
        "key_file": key_file.display().to_string(),
        "keyid": partner.kid(),
        "client": "demo-partner",
        "response_jwks": response_jwks.display().to_string(),
    }))
}

/// Renders the demo policy template.
pub fn render_policy(gateway: SocketAddr, admin: SocketAddr, bank_url: &str, idp_url: &str) -> String {
    POLICY_TEMPLATE
        .replace("@GATEWAY_BIND@", &gateway.to_string())
        .replace("@ADMIN_BIND@", &admin.to_string())
        .replace("@BANK_URL@", bank_url)
        .replace("@IDP_URL@", idp_url)
        .replace("@GATEWAY_AUDIENCE@", AUDIENCE)
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(dir: PathBuf, port: u16, admin_port: u16) -> ExitCode {
    match start(&dir, port, admin_port).await {
        Ok((server, info, (bank, idp))) => {
            print_banner(&info);
            server.run_until_signal().await;
            bank.abort();
            drop(idp);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// Starts everything and writes `demo.json`; returns the running gateway,
/// the contents of `demo.json` and the bank's task.
pub async fn start(
    dir: &Path,
    port: u16,
    admin_port: u16,
) -> Result<
    (
        crate::runtime::Server,
        serde_json::Value,
        (tokio::task::JoinHandle<()>, idp::DemoIdp),
    ),
    String,
> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pki = pki::TestPki::generate(&["localhost", "127.0.0.1", "::1"])
        .map_err(|e| format!("cannot generate the demo PKI: {e}"))?;
    let files = pki
        .write(&dir)
        .map_err(|e| format!("cannot write the demo PKI: {e}"))?;
    let token = random_token();
    pki::write_private(&dir.join("admin.token"), &format!("{token}\n"))
        .map_err(|e| format!("cannot write the admin token: {e}"))?;

    let bank_tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot start the sample bank: {e}"))?;
    let bank_addr = bank_tcp.local_addr().map_err(|e| e.to_string())?;
    let bank = tokio::spawn(async move {
        if let Err(e) = axum::serve(bank_tcp, bank::router()).await {
            tracing::error!(error = %e, "sample bank stopped");
        }
    });
    let bank_url = format!("http://{bank_addr}");
    let idp = idp::DemoIdp::start(&pki.server_cert_pem, &pki.server_key_pem).await?;
    // A new pepper each run: keys from an earlier run could not be checked,
    // so their store goes too.
    for stale in ["api-keys.db", "api-keys.db-wal", "api-keys.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    pki::write_private(&dir.join("api-keys.pepper"), &format!("{}\n", random_token()))
        .map_err(|e| format!("cannot write the API-key pepper: {e}"))?;
    // A new sealing key each run, and so a new store of enrolments.
    for stale in ["mfa.db", "mfa.db-wal", "mfa.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    pki::write_private(&dir.join("mfa.key"), &format!("{}\n", random_key_b64()))
        .map_err(|e| format!("cannot write the MFA key: {e}"))?;
    let tokens = idp.mint_tokens(&dir, AUDIENCE)?;
    audit_keys(&dir)?;
    let spec_path = dir.join("bank-openapi.yaml");
    std::fs::write(&spec_path, OPENAPI).map_err(|e| format!("cannot write {}: {e}", spec_path.display()))?;
    let signing = signing_keys(&dir)?;

    let gateway_bind = SocketAddr::from(([127, 0, 0, 1], port));
    let admin_bind = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let policy_path = dir.join("rampart.toml");
    std::fs::write(
        &policy_path,
        render_policy(gateway_bind, admin_bind, &bank_url, &idp.issuer),
    )
    .map_err(|e| format!("cannot write {}: {e}", policy_path.display()))?;
    if let Ok(loaded) = crate::config::LoadedConfig::from_file(&policy_path) {
        crate::telemetry::init(&loaded.config.logging);
    }
    let server = crate::runtime::start(&policy_path).await.map_err(|e| match e {
        crate::runtime::StartError::Bind { addr, source, .. }
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            format!("{addr} is in use: pass --port/--admin-port (0 picks a free port)")
        }
        other => other.to_string(),
    })?;
    let api_keys = partner_key(&policy_path, &dir).await?;
    let totp = enrol_customer(&policy_path, &dir).await?;
    let gw_port = server.first_addr().map(|a| a.port()).unwrap_or(port);
    let admin_addr = server.admin_addr();
    let gateway_url = format!("https://localhost:{gw_port}");
    let admin_url = format!("http://{admin_addr}");
    let ca = files.ca_cert.display().to_string();
    let curl = |args: &str| format!("curl --cacert {ca} {args}");
    let tokens_dir = dir.join("tokens");
    let tok = |name: &str| format!("$(cat {}/{name}.jwt)", tokens_dir.display());
    let bearer = |name: &str| format!("-H \"Authorization: Bearer {}\"", tok(name));
    // A fresh DPoP proof for each request, made by this binary.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "rampart".into());
    let payments_url = format!("{gateway_url}/v1/payments");
    let dpop = format!(
        "-H \"Authorization: DPoP {t}\" -H \"DPoP: $({exe} token dpop --key {k} --method POST --url {payments_url} --token {t})\"",
        t = tok("dpop_bound"),
        k = tokens_dir.join("dpop_key.jwk").display(),
    );
    let pay = |amount: &str, iban: &str| {
        format!(
            "-d '{{\"debtor_account\":\"acc-1001\",\"instructed_amount\":{{\"amount\":\"{amount}\",\"currency\":\"EUR\"}},\"creditor\":{{\"name\":\"ACME Energy GmbH\",\"iban\":\"{iban}\"}},\"remittance_information\":\"Invoice 2026-117\"}}'"
        )
    };
    let payment = pay("125.00", CONSENTED_CREDITOR);
    let dpop_sca = format!(
        "-H \"Authorization: DPoP {t}\" -H \"DPoP: $({exe} token dpop --key {k} --method POST --url {payments_url} --token {t})\"",
        t = tok("dpop_bound_sca"),
        k = tokens_dir.join("dpop_key.jwk").display(),
    );
    let totp_code = format!(
        "$({exe} mfa code --secret $(cat {}/customer_a.totp))",
        tokens_dir.display()
    );
    let json = "-H 'content-type: application/json'";
    let malformed = pay("125.005", CONSENTED_CREDITOR);
    let injected = "-d '{\"debtor_account\":\"acc-1001\",\"instructed_amount\":{\"amount\":\"125.00\",\"currency\":\"EUR\"},\"creditor\":{\"name\":\"ACME Energy GmbH\",\"iban\":\"DE89370400440532013000\"},\"remittance_information\":\"x\\u0027 OR \\u00271\\u0027=\\u00271\"}'";
    let sig_headers = dir.join("signature.headers");
    let sign = format!(
        "{exe} sign --key {k} --method POST --url {payments_url} -H \"authorization: DPoP {t}\" {payment} --out {out}",
        k = signing["key_file"].as_str().unwrap_or(""),
        t = tok("dpop_bound"),
        out = sig_headers.display(),
    );
    let examples = vec![
        (
            "Customer A's accounts (the demo IdP's token; the bank sees only the identity)",
            curl(&format!("{} {gateway_url}/v1/accounts", bearer("customer_a"))),
        ),
        (
            "Customer B sees only their own accounts; A's account is 403 for B (the gateway's ownership rule: the bank never sees the request)",
            format!(
                "{}; echo; {}",
                curl(&format!("{} {gateway_url}/v1/accounts", bearer("customer_b"))),
                curl(&format!("-i {} {gateway_url}/v1/accounts/acc-1001", bearer("customer_b")))
            ),
        ),
        ("No token: 401 with WWW-Authenticate (Bearer and DPoP)", curl(&format!("-i {gateway_url}/v1/accounts"))),
        (
            "An expired token, a token for another audience: 401 invalid_token, the cause never told",
            format!(
                "{}; echo; {}",
                curl(&format!("-i {} {gateway_url}/v1/accounts", bearer("expired"))),
                curl(&format!("-i {} {gateway_url}/v1/accounts", bearer("wrong_audience")))
            ),
        ),
        (
            "Balances of one account",
            curl(&format!("{} {gateway_url}/v1/accounts/acc-1001/balances", bearer("customer_a"))),
        ),
        (
            "Transactions, paged",
            curl(&format!(
                "{} '{gateway_url}/v1/accounts/acc-1001/transactions?page=2&page_size=5'",
                bearer("customer_a")
            )),
        ),
        (
            "Payments need a sender-constrained token (FAPI 2.0): a plain bearer token is 401",
            curl(&format!(
                "-i -X POST {} -H 'content-type: application/json' -H 'Idempotency-Key: demo-payment-0' {payment} {payments_url}",
                bearer("customer_a")
            )),
        ),
        (
            "Initiate a payment with the DPoP-bound token and a fresh proof (run it twice: the second answer is replayed, idempotent-replayed: true)",
            curl(&format!(
                "-i -X POST {dpop} -H 'content-type: application/json' -H 'Idempotency-Key: demo-payment-1' {payment} {payments_url}"
            )),
        ),
        (
            "A payment to a creditor the customer did not consent to (RFC 9396 authorization_details): 403 insufficient-authorization-details",
            curl(&format!(
                "-i -X POST {dpop} {json} -H 'Idempotency-Key: demo-rar-1' {} {payments_url}",
                pay("125.00", "FR1420041010050500013M02606")
            )),
        ),
        (
            "A payment above 1000 EUR needs a stronger authentication (RFC 9470): 401 with WWW-Authenticate: ... error=\"insufficient_user_authentication\", acr_values=\"urn:demo:acr:strong\"",
            curl(&format!(
                "-i -X POST {dpop} {json} -H 'Idempotency-Key: demo-big-1' {} {payments_url}",
                pay("2500.00", CONSENTED_CREDITOR)
            )),
        ),
        (
            "With the stepped-up token it also needs the customer's one-time code (above 500 EUR): without it 403 confirmation-required",
            curl(&format!(
                "-i -X POST {dpop_sca} {json} -H 'Idempotency-Key: demo-big-2' {} {payments_url}",
                pay("2500.00", CONSENTED_CREDITOR)
            )),
        ),
        (
            "Confirmed with the current TOTP code (the demo customer's seed is in tokens/customer_a.totp): 201; the same code again is a replay, 403 confirmation-failed",
            format!(
                "CODE={totp_code}; {}; echo; {}",
                curl(&format!(
                    "-s -o /dev/null -w '%{{http_code}}' -X POST {dpop_sca} {json} -H \"X-Confirmation-Code: $CODE\" -H 'Idempotency-Key: demo-big-3' {} {payments_url}",
                    pay("2500.00", CONSENTED_CREDITOR)
                )),
                curl(&format!(
                    "-i -X POST {dpop_sca} {json} -H \"X-Confirmation-Code: $CODE\" -H 'Idempotency-Key: demo-big-4' {} {payments_url}",
                    pay("2600.00", CONSENTED_CREDITOR)
                ))
            ),
        ),
        (
            "A malformed payment (an amount with three decimals, which the bank's API does not accept): 422 schema-violation, with the pointer /instructed_amount/amount and never the value",
            curl(&format!(
                "-i -X POST {dpop} -H 'content-type: application/json' -H 'Idempotency-Key: demo-malformed-1' {malformed} {payments_url}"
            )),
        ),
        (
            "An injected payment (SQL in the remittance text): 400 injection-detected, pointer /remittance_information; the bank never sees it",
            curl(&format!(
                "-i -X POST {dpop} -H 'content-type: application/json' -H 'Idempotency-Key: demo-injected-1' {injected} {payments_url}"
            )),
        ),
        (
            "A payment signed by the demo partner (RFC 9421 over method, URL, authority, Content-Digest and Authorization): verified, and the answer carries the gateway's own Signature",
            format!(
                "{sign} && curl -i --cacert {ca} -X POST {dpop} -H @{h} -H 'content-type: application/json' -H 'Idempotency-Key: demo-signed-1' {payment} {payments_url}",
                h = sig_headers.display()
            ),
        ),
        (
            "The same signature with the amount changed: 400 invalid-digest (the body no longer matches what was signed)",
            format!(
                "{sign} && curl -i --cacert {ca} -X POST {dpop} -H @{h} -H 'content-type: application/json' -H 'Idempotency-Key: demo-signed-2' {} {payments_url}",
                payment.replace("125.00", "225.00"),
                h = sig_headers.display()
            ),
        ),
        (
            "Payments are limited to 10 a minute per customer (the payments above count too): the loop reaches the limit, then 429 with Retry-After and RateLimit headers",
            format!(
                "for i in 1 2 3 4 5 6 7 8 9 10; do curl -s -o /dev/null -w '%{{http_code}} ' --cacert {ca} -X POST {dpop} -H 'content-type: application/json' -H \"Idempotency-Key: demo-limit-$i\" {payment} {payments_url}; done; echo; curl -i --cacert {ca} -X POST {dpop} -H 'content-type: application/json' -H 'Idempotency-Key: demo-limit-11' {payment} {payments_url}"
            ),
        ),
        (
            "A partner's API key, and its daily quota: RateLimit-Policy and RateLimit on every answer",
            curl(&format!(
                "-i -H \"X-API-Key: $(cat {}/partner.key)\" {gateway_url}/v1/accounts",
                tokens_dir.display()
            )),
        ),
        ("An undeclared path: 404 problem+json, no server software named", curl(&format!("-i {gateway_url}/internal/admin"))),
        ("A wrong method: 405 with Allow", curl(&format!("-i -X DELETE {gateway_url}/v1/accounts"))),
        ("Traversal is refused, not routed", curl(&format!("-i --path-as-is {gateway_url}/v1/accounts/..%2F..%2Fadmin"))),
        ("An upstream stack trace, scrubbed", curl(&format!("-i {gateway_url}/v1/debug/fail"))),
        ("A slow upstream: 504 after the route's 2s timeout", curl(&format!("-i '{gateway_url}/v1/debug/slow?ms=5000'"))),
        ("TLS 1.1 is refused", format!("openssl s_client -connect 127.0.0.1:{gw_port} -tls1_1 </dev/null")),
        (
            "Prometheus metrics (the admin API needs a credential: here the demo's admin token, role operator)",
            format!("curl -H \"Authorization: Bearer $(cat {}/admin.token)\" {admin_url}/metrics", dir.display()),
        ),
        (
            "Reload the policy after editing it",
            format!("curl -X POST -H \"Authorization: Bearer $(cat {}/admin.token)\" {admin_url}/admin/reload", dir.display()),
        ),
        (
            "The audit trail: every request above, redacted (card numbers, IBANs, e-mails and tokens masked), decrypted for you",
            format!("{exe} audit show --config {}", policy_path.display()),
        ),
        (
            "Verify its hash chain and signatures (exit 0 intact; edit a byte of a segment in audit/ and it names the entry, exit 1)",
            format!("{exe} audit verify --config {}", policy_path.display()),
        ),
        (
            "Export it for a SIEM (JSON lines)",
            format!("{exe} audit export --config {} --format jsonl", policy_path.display()),
        ),
    ];
    let info = json!({
        "gateway_url": gateway_url,
        "admin_url": admin_url,
        "upstream_url": bank_url,
        "ca_cert": ca,
        "client_cert": files.client_cert.display().to_string(),
        "client_key": files.client_key.display().to_string(),
        "admin_token": token,
        "policy": policy_path.display().to_string(),
        "openapi": spec_path.display().to_string(),
        "signing": signing,
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "tokens": tokens,
        "api_keys": api_keys,
        "totp": totp,
        "audit": {
            "dir": dir.join("audit").display().to_string(),
            "show": format!("{exe} audit show --config {}", policy_path.display()),
            "verify": format!("{exe} audit verify --config {}", policy_path.display()),
        },
        "examples": examples.iter().map(|(what, cmd)| json!({"what": what, "command": cmd})).collect::<Vec<_>>(),
    });
    let json_path = dir.join("demo.json");
    let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    pki::write_private(&json_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    // Give the listeners a moment to be scheduled before printing lines a
    // user may paste at once.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok((server, info, (bank, idp)))
}

/// The audit trail's keys: made once and kept, so that the trail continues
/// across runs (a trail whose keys are gone is moved aside).
fn audit_keys(dir: &Path) -> Result<(), String> {
    let master = dir.join("audit-master.key");
    let signing = dir.join("audit-signing.pem");
    if master.exists() && signing.exists() {
        return Ok(());
    }
    let trail = dir.join("audit");
    if trail.exists() {
        let aside = dir.join(format!(
            "audit.orphaned-{}",
            random_token().get(..8).unwrap_or("old")
        ));
        std::fs::rename(&trail, &aside).map_err(|e| format!("cannot move {} aside: {e}", trail.display()))?;
    }
    use base64::Engine as _;
    let key = crate::audit::crypto::random_key().map_err(|e| e.to_string())?;
    let (private, public, _) = crate::audit::crypto::generate_signing_key().map_err(|e| e.to_string())?;
    pki::write_private(&master, &base64::engine::general_purpose::STANDARD.encode(key))
        .and_then(|()| pki::write_private(&signing, &private))
        .and_then(|()| pki::write_private(&dir.join("audit-signing.pub.pem"), &public))
        .map_err(|e| format!("cannot write the audit keys: {e}"))
}

/// Makes the demo partner's API key (a fresh store each run).
async fn partner_key(policy_path: &Path, dir: &Path) -> Result<serde_json::Value, String> {
    let loaded = crate::config::LoadedConfig::from_file(policy_path).map_err(|e| e.to_string())?;
    let cfg = loaded
        .config
        .api_keys
        .as_ref()
        .ok_or("the demo policy has no [api_keys]")?;
    let policy =
        crate::authn::ApiKeysPolicy::from_config(cfg, &loaded).map_err(|p| loaded.problems(p).to_string())?;
    let keys = crate::authn::ApiKeys::new(&policy, crate::clock::SystemClock::shared())
        .map_err(|e| e.to_string())?;
    let new = keys
        .create("partner-fintech", vec!["accounts:read".into()], None)
        .await
        .map_err(|e| format!("cannot create the demo API key: {e}"))?;
    let file = dir.join("tokens").join("partner.key");
    pki::write_private(&file, new.key.expose()).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(
        json!({"partner": {"key": new.key.expose(), "file": file.display().to_string(), "client": "partner-fintech"}}),
    )
}

fn print_banner(info: &serde_json::Value) {
    let s = |k: &str| info.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    println!();
    println!("Rampart demo is running. Ctrl-C stops it.");
    println!();
    println!(
        "  gateway   {}   (HTTPS, test CA: {})",
        s("gateway_url"),
        s("ca_cert")
    );
    println!("  admin     {}", s("admin_url"));
    println!(
        "  upstream  {}   (the sample bank; clients never call it directly)",
        s("upstream_url")
    );
    println!("  policy    {}", s("policy"));
    println!();
    if let Some(examples) = info.get("examples").and_then(|e| e.as_array()) {
        for e in examples {
            let what = e.get("what").and_then(|v| v.as_str()).unwrap_or("");
            let cmd = e.get("command").and_then(|v| v.as_str()).unwrap_or("");
            println!("# {what}");
            println!("{cmd}");
            println!();
        }
    }
}

/// Enrols the demo customer for TOTP confirmation; the seed goes to
/// `tokens/customer_a.totp` and `demo.json` (it is demo data).
async fn enrol_customer(policy_path: &Path, dir: &Path) -> Result<serde_json::Value, String> {
    let mfa =
        crate::cli::mfa::open(policy_path).map_err(|_| "the demo policy's [mfa] is not valid".to_string())?;
    let e = mfa
        .enrol(TOTP_USER, crate::mfa::totp::Algorithm::Sha1, 6)
        .await
        .map_err(|e| format!("cannot enrol the demo customer: {e}"))?;
    let file = dir.join("tokens").join("customer_a.totp");
    pki::write_private(&file, e.secret_base32.expose()).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(json!({
        "user": TOTP_USER,
        "secret": e.secret_base32.expose(),
        "secret_file": file.display().to_string(),
        "otpauth_uri": e.uri.expose(),
    }))
}

/// 32 random bytes, base64 (a sealing key).
fn random_key_b64() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes().repeat(2));
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable in a meaningful way; a
        // UUID v4 (also from the OS RNG) is the fallback.
        return uuid::Uuid::new_v4().simple().to_string();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
