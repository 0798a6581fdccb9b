//! Connection limits: slow clients are cut off while others are served;
//! idle connections close; a full listener sheds connections.

use std::time::{Duration, Instant};

use rampart_testkit::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ROUTES;

async fn tls_connect(h: &Harness) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    rampart_testkit::tls_connect(&h.pki.ca_cert_pem, h.addr()).await
}

/// Harness with listener limits: the limits table must directly follow the
/// listener, so it is spliced into the base policy.
async fn harness_with_limits(limits: &str) -> Harness {
    let upstream = rampart_testkit::RecordingUpstream::start().await;
    let base = rampart_testkit::base_policy(&upstream.url())
        .replace("[admin]", &format!("[listeners.limits]\n{limits}\n\n[admin]"));
    Harness::start_with(upstream, &format!("{base}\n{ROUTES}")).await
}

#[tokio::test]
async fn slow_header_client_is_cut_off_while_others_are_served() {
    let h = harness_with_limits("header_read_timeout = \"1s\"").await;
    let mut slow = tls_connect(&h).await;
    slow.write_all(b"GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Meanwhile, a normal client is served promptly, several times.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(h.client().get("/v1/accounts").await.status, 200);
        assert!(t.elapsed() < Duration::from_millis(500));
    }
    // The slow client trickles one header line every 300 ms and is cut off
    // at the 1 s header-read deadline, not kept alive by the trickle.
    let mut closed_at = None;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow
            .write_all(format!("X-Trickle-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            closed_at = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(10), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_at = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => {
                // hyper may answer 408 before closing: still a cut-off.
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(!text.contains("200 OK"), "slow client was served: {text}");
            }
            Err(_) => {}
        }
    }
    let closed_at = closed_at.expect("slow client was never cut off");
    assert!(
        closed_at >= Duration::from_millis(900) && closed_at < Duration::from_secs(4),
        "{closed_at:?}"
    );
    assert_eq!(h.upstream.count(), 5);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let h = harness_with_limits("idle_timeout = \"300ms\"").await;
    let mut c = tls_connect(&h).await;
    c.write_all(b"GET /v1/accounts HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Now idle: the server closes within a few ticks of 300 ms.
    let t = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "idle connection was not closed");
    assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_full_listener_sheds_new_connections() {
    let h = harness_with_limits("max_connections = 2").await;
    let _a = tls_connect(&h).await;
    let _b = tls_connect(&h).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third connection is closed at once, so its request fails.
    let r = h
        .client()
        .try_send(http::Method::GET, "/v1/accounts", &[], "")
        .await;
    assert!(
        r.is_err(),
        "third connection was served: {:?}",
        r.map(|r| r.status)
    );
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
}

#[tokio::test]
async fn a_slow_download_is_not_cut_by_the_idle_timeout() {
    let h = harness_with_limits("idle_timeout = \"300ms\"\nheader_read_timeout = \"500ms\"").await;
    // Headers come at once; the body takes ~1.2 s, well past both timeouts.
    let t = Instant::now();
    let r = h.client().get("/slow/6/200").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "chunk\n".repeat(6), "body cut after {:?}", t.elapsed());
    assert!(t.elapsed() >= Duration::from_millis(1100));
}

#[tokio::test]
async fn a_client_that_never_finishes_the_tls_handshake_is_cut_off() {
    let h = harness_with_limits("tls_handshake_timeout = \"300ms\"").await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    // Half a ClientHello record header, then silence.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0)) | Ok(Err(_))), "still open: {end:?}");
    assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
    let m = h.metrics().await;
    assert!(
        m.contains(r#"rampart_tls_handshake_failures_total{listener="public"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_read_timeout() {
    // idle_timeout is long: only the first-request deadline can close it.
    let h = harness_with_limits("header_read_timeout = \"400ms\"\nidle_timeout = \"60s\"").await;
    let mut c = tls_connect(&h).await;
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0)) | Ok(Err(_))), "still open: {end:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(350) && t.elapsed() < Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn connections_still_busy_after_the_drain_grace_are_closed_by_force() {
    let mut h = Harness::start(&ROUTES.replace("timeout = \"500ms\"", "timeout = \"10s\"")).await;
    let c = h.client();
    let stuck = tokio::spawn(async move { c.try_send(http::Method::GET, "/delay/5000", &[], "").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let server = h.server.take().unwrap();
    server.shutdown(Duration::from_millis(300)).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?}",
        t.elapsed()
    );
    let r = tokio::time::timeout(Duration::from_secs(2), stuck)
        .await
        .expect("client still waiting")
        .unwrap();
    assert!(
        r.is_err(),
        "the stuck request was answered: {:?}",
        r.map(|r| r.status)
    );
}

#[tokio::test]
async fn one_client_cannot_take_more_than_its_connections() {
    let h = harness_with_limits("max_connections_per_client = 2").await;
    let _a = tls_connect(&h).await;
    let _b = tls_connect(&h).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third connection from 127.0.0.1 is closed at once...
    let r = h
        .client()
        .try_send(http::Method::GET, "/v1/accounts", &[], "")
        .await;
    assert!(r.is_err(), "third connection was served");
    // ...while another address still gets in.
    let other =
        rampart_testkit::Client::from_address(&h.pki.ca_cert_pem, h.addr(), "127.0.0.2".parse().unwrap());
    assert_eq!(other.get("/v1/accounts").await.status, 200);
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.client().get("/v1/accounts").await.status, 200);
}
