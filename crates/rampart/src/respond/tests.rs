#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use super::config::ResponseConfig;
use super::*;
use crate::route::path::PathError;
use crate::upstream::UpstreamError;

fn exchange() -> Exchange {
    crate::exchange::test_exchange("192.0.2.1:1000", true)
}

#[test]
fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
    let mut h = HeaderMap::new();
    h.insert("connection", HeaderValue::from_static("close, X-Custom-Hop"));
    h.insert("x-custom-hop", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    h.insert("upgrade", HeaderValue::from_static("h2c"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("x-kept"));
}

#[test]
fn invalid_response_settings_are_all_reported() {
    let cfg = ResponseConfig {
        strip_headers: vec!["bad header".into()],
        add_headers: [("x-ok".to_string(), "bad\nvalue".to_string())]
            .into_iter()
            .collect(),
        hsts: "max-age=1\u{0}".into(),
        problem_type_base: "problems/".into(),
        request_id_header: "x request".into(),
    };
    let p = Responder::from_config(&cfg).unwrap_err();
    let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "response.strip_headers[0]",
            "response.add_headers.x-ok",
            "response.hsts",
            "response.problem_type_base",
            "response.request_id_header"
        ]
    );
}

#[tokio::test]
async fn a_refusal_body_never_contains_the_internal_cause() {
    let r = Responder::from_config(&ResponseConfig::default()).unwrap();
    let ex = exchange();
    let cases = [
        Reject::BadPath(PathError::Traversal),
        Reject::Upstream(UpstreamError::Connect {
            upstream: Arc::from("core-ledger"),
            detail: "tcp connect error: 10.1.2.3:8443 refused".into(),
        }),
        Reject::Upstream(UpstreamError::Timeout {
            upstream: Arc::from("core-ledger"),
            timeout: Duration::from_secs(30),
        }),
        Reject::MethodNotAllowed {
            allow: vec![Method::GET, Method::POST],
        },
    ];
    for reject in cases {
        let resp = r.reject(&reject, &ex);
        let status = resp.status();
        let allow = resp.headers().get("allow").cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        for leak in ["core-ledger", "10.1.2.3", "refused", "traversal", "30s"] {
            assert!(!text.to_lowercase().contains(leak), "{leak} in {text}");
        }
        assert_eq!(status, reject.class().status);
        if let Reject::MethodNotAllowed { .. } = reject {
            assert_eq!(allow.unwrap(), "GET, POST");
        }
    }
}

#[test]
fn hsts_only_on_tls_connections() {
    let r = Responder::from_config(&ResponseConfig::default()).unwrap();
    let mut ex = exchange();
    let resp = r.reject(&Reject::NoRoute, &ex);
    assert!(resp.headers().contains_key("strict-transport-security"));
    let mut conn = (*ex.conn).clone();
    conn.tls = None;
    ex.conn = Arc::new(conn);
    let resp = r.reject(&Reject::NoRoute, &ex);
    assert!(!resp.headers().contains_key("strict-transport-security"));
}
