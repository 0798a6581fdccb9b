//! The admin listener: health, readiness, metrics, and token-guarded
//! reload, on its own port only.

use http::Method;
use rampart_testkit::{admin_request, Harness, ADMIN_TOKEN};

use crate::ROUTES;

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::start(ROUTES).await;
    let r = admin_request(Method::GET, &h.admin_url("/healthz"), None).await;
    assert_eq!(r.status, 200);
    let r = admin_request(Method::GET, &h.admin_url("/readyz"), None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_method_status_and_outcome() {
    let h = Harness::start(ROUTES).await;
    let c = h.client();
    for _ in 0..3 {
        assert_eq!(c.get("/v1/accounts").await.status, 200);
    }
    assert_eq!(c.get("/nope").await.status, 404);
    assert_eq!(c.get("/delay/2000").await.status, 504);
    let m = h.metrics().await;
    let has = |needle: &str| assert!(m.contains(needle), "missing {needle} in:\n{m}");
    has(r#"rampart_requests_total{route="accounts-list",method="GET",status="200",outcome="forwarded"} 3"#);
    has(r#"rampart_requests_total{route="unmatched",method="GET",status="404",outcome="not-found"} 1"#);
    has(r#"rampart_requests_total{route="delay",method="GET",status="504",outcome="upstream-timeout"} 1"#);
    has(r#"rampart_upstream_errors_total{upstream="backend",kind="timeout"} 1"#);
    has(r#"rampart_request_duration_seconds_count{route="accounts-list"} 3"#);
    has(r#"rampart_connections_total{listener="public"}"#);
    has(r#"rampart_open_connections{listener="public"}"#);
    has("rampart_policy_generation 1");
    assert!(m.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn reload_needs_the_admin_token() {
    let h = Harness::start(ROUTES).await;
    let url = h.admin_url("/admin/reload");
    let r = admin_request(Method::POST, &url, None).await;
    assert_eq!(r.status, 401);
    let r = admin_request(Method::POST, &url, Some("wrong-token-wrong-token-wrong")).await;
    assert_eq!(r.status, 401);
    let r = admin_request(Method::POST, &url, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 2);
}

/// Every route of `admin::router`, with each method it answers and a
/// body where it takes one: none of them exists on a data-plane listener,
/// even with a valid admin token, and nothing reaches the upstream.
#[tokio::test]
async fn admin_endpoints_are_not_on_the_data_plane() {
    let h = Harness::start(ROUTES).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    // The token is a real one: the admin listener knows it.
    let r = admin_request(Method::GET, &h.admin_url("/admin/whoami"), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let login = r#"{"user": "alice", "password": "Tr4vel-by-Night-Tr@in", "code": "123456"}"#;
    let ban = r#"{"cidr": "203.0.113.9/32", "ttl": "1m", "reason": "test"}"#;
    let revocation = r#"{"jti": "t-1", "ttl": "1m", "reason": "test"}"#;
    let endpoints: &[(Method, &str, &str)] = &[
        (Method::GET, "/healthz", ""),
        (Method::GET, "/readyz", ""),
        (Method::GET, "/metrics", ""),
        (Method::POST, "/admin/login", login),
        (Method::POST, "/admin/logout", ""),
        (Method::GET, "/admin/whoami", ""),
        (Method::GET, "/admin/keys", ""),
        (Method::DELETE, "/admin/keys?id=rk_test_1", ""),
        (
            Method::POST,
            "/admin/keys",
            r#"{"client": "partner-a", "scopes": "accounts:read"}"#,
        ),
        (
            Method::POST,
            "/admin/keys/rotate",
            r#"{"id": "aaaaaaaaaaaaaaaa"}"#,
        ),
        (Method::GET, "/admin/users", ""),
        (
            Method::POST,
            "/admin/users",
            r#"{"user": "bob", "role": "viewer", "password": "Tr4vel-by-Night-Tr@in"}"#,
        ),
        (Method::DELETE, "/admin/users?user=alice", ""),
        (Method::GET, "/admin/mfa", ""),
        (Method::POST, "/admin/mfa", r#"{"user": "cust-001"}"#),
        (Method::DELETE, "/admin/mfa?user=alice", ""),
        (Method::POST, "/admin/reload", ""),
        (Method::GET, "/admin/identity/jwks", ""),
        (Method::GET, "/admin/bans", ""),
        (Method::POST, "/admin/bans", ban),
        (Method::DELETE, "/admin/bans?cidr=203.0.113.9/32", ""),
        (Method::GET, "/admin/revocations", ""),
        (Method::POST, "/admin/revocations", revocation),
        (Method::DELETE, "/admin/revocations?jti=t-1", ""),
    ];
    let c = h.client();
    for (method, path, body) in endpoints {
        let bare = path.split('?').next().unwrap();
        // GET too, whatever the endpoint's own method (without a body).
        let mut tries = vec![(Method::GET, bare, "")];
        if *method != Method::GET {
            tries.push((method.clone(), path, body));
        }
        for (m, p, b) in tries {
            let mut headers = vec![("authorization", auth.as_str())];
            if !b.is_empty() {
                headers.push(("content-type", "application/json"));
            }
            let r = c.send(m.clone(), p, &headers, b.to_string()).await;
            assert_eq!(r.status, 404, "{m} {p}: {}", r.text());
            assert_eq!(crate::authz::problem(&r), "not-found", "{m} {p}");
        }
    }
    assert_eq!(h.upstream.count(), 0, "{:?}", h.upstream.requests());
    // Nothing the data plane saw changed the admin state.
    let r = admin_request(Method::GET, &h.admin_url("/admin/bans"), Some(ADMIN_TOKEN)).await;
    assert!(!r.text().contains("203.0.113.9"), "{}", r.text());
    let r = admin_request(Method::GET, &h.admin_url("/admin/revocations"), Some(ADMIN_TOKEN)).await;
    assert!(!r.text().contains("t-1"), "{}", r.text());
    let m = h.metrics().await;
    assert!(
        m.contains("rampart_policy_generation 1"),
        "a reload happened:\n{m}"
    );
}

#[tokio::test]
async fn a_request_the_client_abandons_is_still_observed_once() {
    let h = Harness::start(&ROUTES.replace("timeout = \"500ms\"", "timeout = \"5s\"")).await;
    let c = h.client_h2();
    // Dropping the response future resets the HTTP/2 stream mid-request.
    let gone = tokio::time::timeout(std::time::Duration::from_millis(200), c.get("/delay/2000")).await;
    assert!(gone.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let m = h.metrics().await;
    assert!(
        m.contains(
            r#"rampart_requests_total{route="delay",method="GET",status="499",outcome="client-cancelled"} 1"#
        ),
        "{m}"
    );
    // The same connection still serves.
    assert_eq!(c.get("/v1/accounts").await.status, 200);
}

/// A policy with machine tokens of each role, and people ([mfa]).
fn roles_policy() -> String {
    format!(
        r#"{ROUTES}
[mfa]
key_file = "mfa.key"
max_failures = 3

[[admin.tokens]]
name = "dashboards"
file = "viewer.token"
role = "viewer"

[[admin.tokens]]
name = "secops"
file = "secadmin.token"
role = "security-admin"
"#
    )
}

const VIEWER: &str = "viewer-token-0123456789abcdef";
const SECADMIN: &str = "secadmin-token-0123456789abcdef";
const MFA_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn roles_harness() -> Harness {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{}",
        rampart_testkit::base_policy(&upstream.url()),
        roles_policy()
    );
    Harness::start_with_files(
        upstream,
        &policy,
        &[
            ("viewer.token", VIEWER),
            ("secadmin.token", SECADMIN),
            ("mfa.key", MFA_KEY),
        ],
    )
    .await
}

#[tokio::test]
async fn every_endpoint_needs_its_role() {
    let h = roles_harness().await;
    let ban = r#"{"cidr": "203.0.113.9/32", "ttl": "1m", "reason": "test"}"#;
    let send = |m: Method, p: &str, who: Option<&'static str>, body: &'static str| {
        let url = h.admin_url(p);
        async move {
            rampart_testkit::admin_send(m, &url, who, body)
                .await
                .status
                .as_u16()
        }
    };
    // No credential: 401 everywhere but health, readiness and sign-in;
    // unknown paths too, so the API cannot be mapped from outside.
    for p in [
        "/metrics",
        "/admin/bans",
        "/admin/users",
        "/admin/nothing-here",
        "/x",
    ] {
        assert_eq!(send(Method::GET, p, None, "").await, 401, "{p}");
    }
    assert_eq!(send(Method::GET, "/healthz", None, "").await, 200);
    // Viewer reads, cannot act.
    assert_eq!(send(Method::GET, "/metrics", Some(VIEWER), "").await, 200);
    assert_eq!(send(Method::GET, "/admin/bans", Some(VIEWER), "").await, 200);
    assert_eq!(send(Method::POST, "/admin/bans", Some(VIEWER), ban).await, 403);
    assert_eq!(send(Method::POST, "/admin/reload", Some(VIEWER), "").await, 403);
    // Operator (the [admin] token_file's default role) acts on traffic,
    // not on credentials.
    assert_eq!(
        send(Method::POST, "/admin/bans", Some(ADMIN_TOKEN), ban).await,
        201
    );
    assert_eq!(
        send(Method::DELETE, "/admin/mfa?user=nobody", Some(ADMIN_TOKEN), "").await,
        403
    );
    assert_eq!(
        send(Method::DELETE, "/admin/users?user=nobody", Some(ADMIN_TOKEN), "").await,
        403
    );
    // Security-admin may do both.
    assert_eq!(
        send(Method::DELETE, "/admin/mfa?user=nobody", Some(SECADMIN), "").await,
        200
    );
    assert_eq!(
        send(
            Method::DELETE,
            "/admin/bans?cidr=203.0.113.9/32",
            Some(SECADMIN),
            ""
        )
        .await,
        200
    );
    assert_eq!(
        send(Method::GET, "/admin/nothing-here", Some(VIEWER), "").await,
        404
    );
    let who =
        rampart_testkit::admin_request(Method::GET, &h.admin_url("/admin/whoami"), Some(SECADMIN)).await;
    assert_eq!(
        who.json(),
        serde_json::json!({"who": "machine:secops", "role": "security-admin"})
    );
}

#[tokio::test]
async fn people_sign_in_with_password_and_code_and_are_locked_out_after_failures() {
    use rampart::mfa::totp;
    let h = roles_harness().await;
    let mfa = rampart::cli::mfa::open(&h.policy_path).unwrap();
    // The password policy refuses weak ones.
    for weak in ["short", "qwertyuiop123", "ops-alice-2026!!", "Password2026!"] {
        let e = rampart::admin::users::add(&mfa, "alice", rampart::admin::config::Role::Operator, weak).await;
        assert!(
            matches!(e, Err(rampart::admin::users::UsersError::Password(_))),
            "{weak}: {e:?}"
        );
    }
    let pw = "Tr4vel-by-Night-Tr@in";
    let e = rampart::admin::users::add(&mfa, "alice", rampart::admin::config::Role::Operator, pw)
        .await
        .unwrap();
    let seed = totp::base32_decode(e.secret_base32.expose()).unwrap();
    let code = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        totp::totp(totp::Algorithm::Sha1, &seed, now, 6)
    };
    let login = |user: &str, pw: &str, code: String| {
        let url = h.admin_url("/admin/login");
        let body = serde_json::json!({"user": user, "password": pw, "code": code}).to_string();
        async move {
            let r = rampart_testkit::admin_send(Method::POST, &url, None, &body).await;
            (
                r.status.as_u16(),
                r.json(),
                r.header("retry-after").map(str::to_owned),
            )
        }
    };
    // Wrong password, unknown user: the same 401.
    assert_eq!(login("alice", "wrong password here", code()).await.0, 401);
    assert_eq!(login("mallory", pw, code()).await.0, 401);
    // One code for the sign-in and its replay (a new 30 s step in between
    // would make a fresh one).
    let first = code();
    let (status, body, _) = login("alice", pw, first.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "operator");
    let token = body["token"].as_str().unwrap().to_owned();
    let who = rampart_testkit::admin_request(Method::GET, &h.admin_url("/admin/whoami"), Some(&token)).await;
    assert_eq!(
        who.json(),
        serde_json::json!({"who": "user:alice", "role": "operator"})
    );
    // The role holds: an operator reloads, but cannot remove users.
    let r = rampart_testkit::admin_request(Method::POST, &h.admin_url("/admin/reload"), Some(&token)).await;
    assert_eq!(r.status, 200);
    let r = rampart_testkit::admin_request(
        Method::DELETE,
        &h.admin_url("/admin/users?user=alice"),
        Some(&token),
    )
    .await;
    assert_eq!(r.status, 403);
    // The same code again is a replay.
    assert_eq!(login("alice", pw, first).await.0, 401);
    // Three failures in a row: locked, even with everything right.
    let (s1, _, _) = login("alice", "wrong password here", code()).await;
    let (s2, _, _) = login("alice", "wrong password here", code()).await;
    assert_eq!((s1, s2), (401, 429), "replay + 2 wrong passwords = 3 failures");
    let (status, _, retry) = login("alice", pw, code()).await;
    assert_eq!(status, 429);
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 55);
    // Logging out ends the session.
    let r = rampart_testkit::admin_request(Method::POST, &h.admin_url("/admin/logout"), Some(&token)).await;
    assert_eq!(r.json()["ended"], true);
    let r = rampart_testkit::admin_request(Method::GET, &h.admin_url("/admin/whoami"), Some(&token)).await;
    assert_eq!(r.status, 401);
    // Users are listed without secrets.
    let r = rampart_testkit::admin_request(Method::GET, &h.admin_url("/admin/users"), Some(VIEWER)).await;
    assert_eq!(r.json()["users"][0]["user"], "alice");
    assert!(!r.text().contains("argon2") && !r.text().contains(e.secret_base32.expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_use_client_certificates_on_the_admin_tls_listener() {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{ROUTES}\n[admin.tls]\ncert = \"server.pem\"\nkey = \"server.key\"\nclient_auth = \"optional\"\nclient_ca = \"ca.pem\"\n\n[[admin.clients]]\nsubject = \"demo-fintech\"\nrole = \"viewer\"\n",
        rampart_testkit::base_policy(&upstream.url())
    );
    let h = Harness::start_with(upstream, &policy).await;
    let addr = h.server().admin_addr();
    let with_cert = rampart_testkit::Client::with_identity(
        &h.pki.ca_cert_pem,
        addr,
        rampart_testkit::Alpn::Http1,
        &h.pki.client_cert_pem,
        &h.pki.client_key_pem,
    );
    let r = with_cert.get("/admin/whoami").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"who": "cert:demo-fintech", "role": "viewer"})
    );
    assert_eq!(with_cert.get("/metrics").await.status, 200);
    let r = with_cert.send(Method::POST, "/admin/reload", &[], "").await;
    assert_eq!(r.status, 403, "a viewer certificate cannot reload");
    // Without a certificate: only a token works.
    let plain = rampart_testkit::Client::new(&h.pki.ca_cert_pem, addr, rampart_testkit::Alpn::Http1);
    assert_eq!(plain.get("/admin/whoami").await.status, 401);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = plain
        .send(Method::POST, "/admin/reload", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// People and customers' one-time-code factors made over the admin API
/// (`security-admin`; the trail records the action, never the password or
/// the seed): the person signs in with the password and a code of the
/// seed in the answer; the enrolment's seed makes codes the store accepts.
#[tokio::test]
async fn people_and_enrolments_are_made_over_the_admin_api_by_a_security_admin() {
    use rampart::mfa::totp;
    use rampart_testkit::admin_send;
    let h = roles_harness().await;
    let users = h.admin_url("/admin/users");
    let pw = "Tr4vel-by-Night-Tr@in";
    let body = serde_json::json!({"user": "bob", "role": "operator", "password": pw}).to_string();
    // A viewer may not; weak passwords, bad roles and bad bodies are 400.
    assert_eq!(
        admin_send(Method::POST, &users, Some(VIEWER), &body).await.status,
        403
    );
    for (bad, why) in [
        (
            serde_json::json!({"user": "bob", "role": "operator", "password": "short"}),
            "weak password",
        ),
        (
            serde_json::json!({"user": "bob", "role": "root", "password": pw}),
            "unknown role",
        ),
        (
            serde_json::json!({"user": "b", "role": "operator", "password": pw}),
            "bad name",
        ),
        (serde_json::json!({"user": "bob"}), "missing fields"),
    ] {
        let r = admin_send(Method::POST, &users, Some(SECADMIN), &bad.to_string()).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert!(
            !r.text().contains(pw) && !r.text().contains("short"),
            "{why}: echoed"
        );
    }
    let r = admin_send(Method::POST, &users, Some(SECADMIN), &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let made = r.json();
    assert_eq!(made["role"], "operator");
    assert!(
        made["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/"),
        "{made}"
    );
    assert_eq!(
        admin_send(Method::POST, &users, Some(SECADMIN), &body)
            .await
            .status,
        409
    );
    let seed = totp::base32_decode(made["secret"].as_str().unwrap()).unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let login = serde_json::json!({"user": "bob", "password": pw, "code": totp::totp(totp::Algorithm::Sha1, &seed, now(), 6)});
    let r = admin_send(
        Method::POST,
        &h.admin_url("/admin/login"),
        None,
        &login.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "operator");

    // A customer's factor for transaction confirmation.
    let url = h.admin_url("/admin/mfa");
    let body = r#"{"user": "cust-042", "algorithm": "SHA256", "digits": 8}"#;
    assert_eq!(
        admin_send(Method::POST, &url, Some(VIEWER), body).await.status,
        403
    );
    let r = admin_send(
        Method::POST,
        &url,
        Some(SECADMIN),
        r#"{"user": "cust-042", "digits": 7}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin_send(Method::POST, &url, Some(SECADMIN), body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let e = r.json();
    assert_eq!(
        (e["algorithm"].as_str(), e["digits"].as_u64()),
        (Some("SHA256"), Some(8))
    );
    assert_eq!(
        admin_send(Method::POST, &url, Some(SECADMIN), body).await.status,
        409
    );
    let seed = totp::base32_decode(e["secret"].as_str().unwrap()).unwrap();
    let mfa = rampart::cli::mfa::open(&h.policy_path).unwrap();
    let code = totp::totp(totp::Algorithm::Sha256, &seed, now(), 8);
    mfa.confirm("cust-042", &code).await.unwrap();
    let listed = admin_send(Method::GET, &url, Some(VIEWER), "").await.text();
    assert!(
        listed.contains("cust-042") && !listed.contains(e["secret"].as_str().unwrap()),
        "{listed}"
    );
}
