//! Threat: traffic from networks the bank refuses, internal routes reached
//! from outside, and clients forging `X-Forwarded-For` to look internal.
//! Method: real connections from different loopback source addresses
//! (127.0.0.1 and 127.0.0.2), through real TLS; refusals must not reach
//! the recording upstream, and a valid call from the allowed address shows
//! each refusal is not vacuous.

use std::net::IpAddr;

use http::Method;
use rampart_testkit::{base_policy, Client, Harness, RecordingUpstream};

use crate::ROUTES;

fn from(h: &Harness, ip: &str) -> Client {
    Client::from_address(&h.pki.ca_cert_pem, h.addr(), ip.parse::<IpAddr>().unwrap())
}

#[tokio::test]
async fn a_denied_network_is_dropped_before_tls() {
    let h = Harness::start(&format!("{ROUTES}\n[ip_filter]\ndeny = [\"127.0.0.2/32\"]\n")).await;
    let r = from(&h, "127.0.0.2")
        .try_send(Method::GET, "/v1/accounts", &[], "")
        .await;
    assert!(r.is_err(), "a denied peer was served: {:?}", r.map(|r| r.status));
    assert_eq!(from(&h, "127.0.0.1").get("/v1/accounts").await.status, 200);
    assert_eq!(h.upstream.count(), 1);
    let m = h.metrics().await;
    assert!(
        m.contains(r#"rampart_connections_denied_total{listener="public"} 1"#),
        "{m}"
    );
    // Refused before the handshake: no TLS failure was counted.
    assert!(!m.contains("rampart_tls_handshake_failures_total{"), "{m}");
}

#[tokio::test]
async fn route_allow_and_deny_lists_judge_the_client_address() {
    let routes = ROUTES.replacen(
        "id = \"accounts-list\"\npath = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n",
        "id = \"accounts-list\"\npath = \"/v1/accounts\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\nip_filter = { allow = [\"127.0.0.1/32\"] }\n",
        1,
    );
    assert_ne!(routes, ROUTES);
    let h = Harness::start(&routes).await;
    let r = from(&h, "127.0.0.2").get("/v1/accounts").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/ip-denied");
    assert!(!r.text().contains("127.0.0.2"), "address echoed: {}", r.text());
    assert_eq!(h.upstream.count(), 0);
    // Other routes are open to both; the allowed address passes here too.
    assert_eq!(from(&h, "127.0.0.2").get("/v1/accounts/acc-1").await.status, 200);
    assert_eq!(from(&h, "127.0.0.1").get("/v1/accounts").await.status, 200);
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let upstream = RecordingUpstream::start().await;
    let routes = ROUTES.replacen(
        "authn = \"none\"\n",
        "authn = \"none\"\nip_filter = { deny = [\"203.0.113.0/24\"] }\n",
        1,
    );
    let policy = format!(
        "{}\n{routes}\n[ip_filter]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        base_policy(&upstream.url())
    );
    let h = Harness::start_with(upstream, &policy).await;
    let spoof = [("x-forwarded-for", "203.0.113.7")];
    // From the trusted proxy (127.0.0.1) the header is believed: the client
    // is in the route's deny list.
    let r = from(&h, "127.0.0.1")
        .send(Method::GET, "/v1/accounts", &spoof, "")
        .await;
    assert_eq!(r.status, 403);
    // From anyone else it is a claim and is ignored.
    let r = from(&h, "127.0.0.2")
        .send(Method::GET, "/v1/accounts", &spoof, "")
        .await;
    assert_eq!(r.status, 200);
    let seen = &h.upstream.requests()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.2");
    // Through the trusted proxy with an allowed client, the chain is kept
    // and extended with the proxy, and Forwarded names the client.
    let r = from(&h, "127.0.0.1")
        .send(
            Method::GET,
            "/v1/accounts",
            &[("x-forwarded-for", "198.51.100.4")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = &h.upstream.requests()[1];
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.4, 127.0.0.1");
    assert!(seen.headers["forwarded"]
        .to_str()
        .unwrap()
        .starts_with("for=198.51.100.4;proto=https"));
}

fn cli(h: &Harness, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .arg("--admin")
        .arg(format!("http://{}", h.server().admin_addr()))
        .arg("--token-file")
        .arg(h.path("admin.token"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_bans_and_unbans_with_the_cli() {
    let h = Harness::start(ROUTES).await;
    let banned = from(&h, "127.0.0.2");
    assert_eq!(banned.get("/v1/accounts").await.status, 200);
    let (code, out) = tokio::task::block_in_place(|| {
        cli(
            &h,
            &["ban", "127.0.0.2", "--ttl", "10m", "--reason", "card testing"],
        )
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"cidr\":\"127.0.0.2/32\""), "{out}");
    // New connections from the banned address are closed before TLS.
    let fresh = from(&h, "127.0.0.2");
    assert!(fresh
        .try_send(Method::GET, "/v1/accounts", &[], "")
        .await
        .is_err());
    assert_eq!(from(&h, "127.0.0.1").get("/v1/accounts").await.status, 200);
    let (_, list) = tokio::task::block_in_place(|| cli(&h, &["bans"]));
    assert!(list.contains("card testing"), "{list}");
    let (code, out) = tokio::task::block_in_place(|| cli(&h, &["unban", "127.0.0.2"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"removed\":true"), "{out}");
    assert_eq!(from(&h, "127.0.0.2").get("/v1/accounts").await.status, 200);
    // Without the token the admin API refuses.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["bans", "--admin", &format!("http://{}", h.server().admin_addr())])
        .env("RAMPART_ADMIN_TOKEN", "not-the-token-not-the-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn a_ban_ends_by_itself_and_also_covers_clients_behind_a_trusted_proxy() {
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{ROUTES}\n[ip_filter]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        base_policy(&upstream.url())
    );
    let h = Harness::start_with(upstream, &policy).await;
    let ban = |cidr: &str, ttl: &str| {
        let body = format!("{{\"cidr\":\"{cidr}\",\"ttl\":\"{ttl}\"}}");
        let url = h.admin_url("/admin/bans");
        async move {
            rampart_testkit::admin_send(Method::POST, &url, Some(rampart_testkit::ADMIN_TOKEN), &body)
                .await
                .status
                .as_u16()
        }
    };
    assert_eq!(ban("198.51.100.0/24", "700ms").await, 201);
    assert_eq!(ban("not-an-ip", "1m").await, 400);
    assert_eq!(ban("192.0.2.1", "90d").await, 400);
    // A client behind the trusted proxy, in the banned network: 403.
    let c = from(&h, "127.0.0.1");
    let r = c
        .send(
            Method::GET,
            "/v1/accounts",
            &[("x-forwarded-for", "198.51.100.20")],
            "",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/ip-denied");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let r = c
        .send(
            Method::GET,
            "/v1/accounts",
            &[("x-forwarded-for", "198.51.100.20")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "the ban should have ended");
}
