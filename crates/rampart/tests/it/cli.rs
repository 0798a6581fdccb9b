//! The `rampart` binary's `check` command: every invalid policy under
//! `testdata/config/invalid/` produces its expected messages with line
//! numbers and key paths; valid policies pass; exit codes are 0/1/2.

use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_testkit::TestPki;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A temp dir holding a generated PKI under the names the test policies use.
fn pki_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let files = pki.write(dir.path()).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for (from, to) in [
        (&files.server_cert, "server.pem"),
        (&files.server_key, "server.key"),
        (&files.ca_cert, "clients-ca.pem"),
        (&files.ca_cert, "core-ca.pem"),
        (&files.client_cert, "gateway-client.pem"),
        (&files.client_key, "gateway-client.key"),
    ] {
        std::fs::copy(from, certs.join(to)).unwrap();
    }
    std::fs::write(
        dir.path().join("admin.token"),
        "an-admin-token-of-sufficient-length-0001",
    )
    .unwrap();
    std::fs::write(
        certs.join("viewer.token"),
        "a-viewer-token-of-sufficient-length-0002",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mfa.key"),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )
    .unwrap();
    dir
}

fn check(policy: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(policy)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_invalid_policy_reports_its_expected_problems_with_lines() {
    let dir = repo().join("testdata/config/invalid");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
        let tmp = pki_dir();
        let policy = tmp.path().join("rampart.toml");
        std::fs::copy(&path, &policy).unwrap();
        let (code, _out, err) = check(&policy);
        assert_eq!(code, 1, "{}: exit {code}\n{err}", path.display());
        for line in expected
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            assert!(
                err.contains(line),
                "{}: expected\n  {line}\nin\n{err}",
                path.display()
            );
        }
        // Every error line names the file and a line number, except a
        // problem about a whole section that the file does not have.
        for l in err.lines().filter(|l| l.contains(": error: ")) {
            let path = l
                .split(": error: ")
                .nth(1)
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("");
            if !path.contains('.') && !path.contains('[') && !err.contains(&format!("\n{path}")) {
                let section_absent = !std::fs::read_to_string(&policy)
                    .unwrap()
                    .contains(&format!("[{path}]"))
                    && !std::fs::read_to_string(&policy)
                        .unwrap()
                        .contains(&format!("[[{path}]]"));
                if section_absent {
                    continue;
                }
            }
            let after = l.split_once("rampart.toml:").map(|x| x.1).unwrap_or("");
            assert!(
                after.split(':').next().unwrap_or("").parse::<usize>().is_ok(),
                "no line number: {l}"
            );
        }
    }
    assert!(n >= 10, "only {n} invalid policies");
}

#[test]
fn the_example_policy_documents_a_valid_policy() {
    let tmp = pki_dir();
    let policy = tmp.path().join("rampart.toml");
    std::fs::copy(repo().join("config/rampart.example.toml"), &policy).unwrap();
    let (code, out, err) = check(&policy);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("OK"), "{out}");
    // Insecure-but-valid choices in the example are reported as warnings.
    assert!(err.contains("warning"), "{err}");
}

#[test]
fn the_demo_policy_template_renders_to_a_valid_policy() {
    let tmp = pki_dir();
    let text = rampart::demo::render_policy(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        "http://127.0.0.1:1",
        "https://localhost:1",
    );
    let policy = tmp.path().join("rampart.toml");
    std::fs::write(
        tmp.path().join("api-keys.pepper"),
        "a-demo-pepper-of-at-least-32-bytes-0123456789",
    )
    .unwrap();
    std::fs::write(tmp.path().join("audit-master.key"), "0".repeat(64)).unwrap();
    let (signing, _, _) = rampart::audit::crypto::generate_signing_key().unwrap();
    std::fs::write(tmp.path().join("audit-signing.pem"), signing).unwrap();
    // The files `rampart demo` writes beside the policy: the bank's OpenAPI
    // document and the RFC 9421 keys.
    std::fs::write(tmp.path().join("bank-openapi.yaml"), rampart::demo::OPENAPI).unwrap();
    let key = rampart::authn::sign::SigningKey::generate(jsonwebtoken::Algorithm::EdDSA).unwrap();
    std::fs::write(tmp.path().join("partner-sign.jwks.json"), key.jwks().to_string()).unwrap();
    std::fs::write(
        tmp.path().join("response-signing.jwk"),
        serde_json::Value::Object(key.private_jwk().unwrap()).to_string(),
    )
    .unwrap();
    std::fs::write(
        &policy,
        text.replace("\"server.pem\"", "\"certs/server.pem\"")
            .replace("\"server.key\"", "\"certs/server.key\""),
    )
    .unwrap();
    let (code, out, err) = check(&policy);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("8 route(s)"), "{out}");
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    let tmp = pki_dir();
    let policy = tmp.path().join("rampart.toml");
    std::fs::copy(repo().join("config/rampart.example.toml"), &policy).unwrap();
    let out = Command::new(bin())
        .args(["check", "--deny-warnings", "--config"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2_and_missing_files_exit_1() {
    let out = Command::new(bin()).args(["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin()).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin())
        .args(["check", "--config", "/nonexistent/rampart.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the policy file"));
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check", "demo"] {
        assert!(text.contains(cmd), "{text}");
    }
}

/// `rampart keys gen`, `token mint` and `token dpop`, as a developer uses
/// them: a key pair for a test issuer, a DPoP key, a bound token and a
/// proof that the real gateway accepts (and the token alone it refuses).
#[tokio::test]
async fn dev_commands_mint_a_dpop_bound_token_the_gateway_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (idp, client) = (dir.path().join("idp"), dir.path().join("client"));
    run(&[
        "keys",
        "gen",
        "--alg",
        "ES256",
        "--out-dir",
        idp.to_str().unwrap(),
    ]);
    run(&[
        "keys",
        "gen",
        "--alg",
        "EdDSA",
        "--out-dir",
        client.to_str().unwrap(),
    ]);
    let jwks = std::fs::read_to_string(idp.join("jwks.json")).unwrap();
    assert!(!jwks.contains("\"d\""), "the public JWKS holds a private key");
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let policy = format!(
        "{}\n[[issuers]]\nname = \"dev\"\nissuer = \"https://dev-idp.test\"\naudiences = [\"bank-api\"]\njwks_file = \"jwks.json\"\n\n[[routes]]\nid = \"payments\"\npath = \"/v1/payments\"\nmethods = [\"POST\"]\nupstream = \"backend\"\nauthn = [\"jwt:dev\"]\nauthz = \"authenticated\"\nsender_constrained = true\n",
        rampart_testkit::base_policy(&upstream.url())
    );
    let h = rampart_testkit::Harness::start_with_files(upstream, &policy, &[("jwks.json", &jwks)]).await;
    let c = h.client();
    let url = c.url("/v1/payments");
    let token = run(&[
        "token",
        "mint",
        "--key",
        idp.join("private.jwk").to_str().unwrap(),
        "--iss",
        "https://dev-idp.test",
        "--sub",
        "customer-a",
        "--aud",
        "bank-api",
        "--scope",
        "payments:write",
        "--dpop-key",
        client.join("private.jwk").to_str().unwrap(),
    ]);
    let token = token.trim();
    let proof = run(&[
        "token",
        "dpop",
        "--key",
        client.join("private.jwk").to_str().unwrap(),
        "--method",
        "POST",
        "--url",
        &url,
        "--token",
        token,
    ]);
    let auth = format!("DPoP {token}");
    let send = |proof: Option<String>| {
        let (c, auth) = (c.clone(), auth.clone());
        async move {
            let mut headers = vec![("authorization", auth.as_str())];
            let proof = proof.unwrap_or_default();
            if !proof.is_empty() {
                headers.push(("dpop", proof.trim()));
            }
            c.send(http::Method::POST, "/v1/payments", &headers, "{}").await
        }
    };
    assert_eq!(send(None).await.status, 401, "a bound token without its proof");
    let r = send(Some(proof)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        h.upstream.requests().last().unwrap().headers["x-authenticated-subject"],
        "customer-a"
    );
}

#[test]
fn mfa_enrol_list_code_and_reset() {
    let tmp = pki_dir();
    std::fs::write(
        tmp.path().join("mfa.key"),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )
    .unwrap();
    let policy = tmp.path().join("rampart.toml");
    std::fs::write(&policy, "[mfa]\nkey_file = \"mfa.key\"\nissuer = \"Test Bank\"\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let p = policy.to_str().unwrap();
    let (code, uri, err) = run(&[
        "mfa",
        "enrol",
        "--config",
        p,
        "--user",
        "cust-001",
        "--algorithm",
        "SHA256",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        uri.starts_with("otpauth://totp/Test%20Bank:cust%2D001?secret="),
        "{uri}"
    );
    assert!(uri.contains("&algorithm=SHA256&digits=6&period=30"), "{uri}");
    assert!(err.contains('█'), "a QR code on stderr: {err}");
    let seed = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    assert!(err.contains(&format!("seed: {seed}")));
    // Enrolled once; the seed is stored sealed, never in the clear.
    assert_eq!(run(&["mfa", "enrol", "--config", p, "--user", "cust-001"]).0, 1);
    let db = std::fs::read(tmp.path().join("rampart-mfa.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&seed));
    let (code, list, _) = run(&["mfa", "list", "--config", p]);
    assert_eq!(code, 0);
    assert!(
        list.contains("cust-001") && list.contains("SHA256") && list.contains("k1"),
        "{list}"
    );
    assert!(!list.contains(&seed));
    // `mfa code` prints what the gateway will accept now.
    let (code, otp, _) = run(&["mfa", "code", "--secret", &seed, "--algorithm", "SHA256"]);
    assert_eq!(code, 0);
    assert_eq!(otp.trim().len(), 6);
    assert_eq!(run(&["mfa", "code", "--secret", "not base32!"]).0, 1);
    assert_eq!(
        run(&["mfa", "enrol", "--config", p, "--user", "x", "--digits", "7"]).0,
        1
    );
    assert_eq!(run(&["mfa", "reset", "--config", p, "--user", "cust-001"]).0, 0);
    assert_eq!(run(&["mfa", "reset", "--config", p, "--user", "cust-001"]).0, 1);
    // A store that cannot be reached: exit 2.
    std::fs::write(
        &policy,
        "[mfa]\nkey_file = \"mfa.key\"\nstore = \"postgres://u@127.0.0.1:1/db\"\n",
    )
    .unwrap();
    assert_eq!(run(&["mfa", "list", "--config", p]).0, 2);
}

#[test]
fn admin_users_are_added_with_a_checked_password_and_a_totp() {
    use std::io::Write;
    let tmp = pki_dir();
    let policy = tmp.path().join("rampart.toml");
    std::fs::write(&policy, "[mfa]\nkey_file = \"mfa.key\"\n").unwrap();
    let p = policy.to_str().unwrap().to_owned();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(bin())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let add = |user: &str, role: &str, pw: &str| {
        run(
            &[
                "admin", "user", "add", "--config", &p, "--user", user, "--role", role,
            ],
            &format!("{pw}\n"),
        )
    };
    // The password policy, each case.
    for (pw, why) in [
        ("too-short", "at least 12 characters"),
        ("1qaz2wsx3edc", "commonly used"),
        ("Sunshine2026!!", "commonly used"),
        ("my-name-is-bob-ok", "user name"),
    ] {
        let (code, _, err) = add("bob", "operator", pw);
        assert_eq!(code, 1, "{pw}: {err}");
        assert!(err.contains(why), "{pw}: {err}");
        assert!(!err.contains(pw), "the password is echoed: {err}");
    }
    assert_eq!(add("bob", "root", "Tr4vel-by-Night-Tr@in").0, 1, "unknown role");
    let (code, uri, err) = add("bob", "security-admin", "Tr4vel-by-Night-Tr@in");
    assert_eq!(code, 0, "{err}");
    assert!(
        uri.starts_with("otpauth://totp/Rampart:admin%3Abob?secret="),
        "{uri}"
    );
    assert!(err.contains('█'));
    assert_eq!(add("bob", "viewer", "Another-Long-Passphrase").0, 1, "exists");
    let (code, list, _) = run(&["admin", "user", "list", "--config", &p], "");
    assert_eq!(code, 0);
    assert!(list.contains("bob") && list.contains("security-admin"), "{list}");
    assert!(!list.contains("argon2"));
    // The store holds a hash, not the password.
    // (SQLite may still hold the rows in its write-ahead log.)
    let mut db = std::fs::read(tmp.path().join("rampart-mfa.db")).unwrap();
    db.extend(std::fs::read(tmp.path().join("rampart-mfa.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains("Tr4vel-by-Night-Tr@in") && db.contains("$argon2id$"));
    let passwd = |pw: &str| {
        run(
            &["admin", "user", "passwd", "--config", &p, "--user", "bob"],
            &format!("{pw}\n"),
        )
    };
    assert_eq!(passwd("short").0, 1);
    assert_eq!(passwd("A-Different-Long-Passphrase").0, 0);
    let nobody = run(
        &["admin", "user", "passwd", "--config", &p, "--user", "nobody"],
        "Another-Long-Passphrase\n",
    );
    assert_eq!(nobody.0, 1, "no such user: {}", nobody.2);
    assert_eq!(
        run(&["admin", "user", "remove", "--config", &p, "--user", "bob"], "").0,
        0
    );
    assert_eq!(
        run(&["admin", "user", "remove", "--config", &p, "--user", "bob"], "").0,
        1
    );
}
