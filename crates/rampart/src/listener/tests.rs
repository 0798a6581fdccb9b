#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;

fn policies(text: &str) -> Result<Vec<ListenerPolicy>, Vec<ConfigProblem>> {
    let loaded = LoadedConfig::from_text(Path::new("/nonexistent/p.toml"), text.into()).unwrap();
    policies_from_config(&loaded.config, &loaded)
}

fn paths(p: &[ConfigProblem]) -> Vec<&str> {
    p.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn plain_http_needs_the_dangerous_switch() {
    let text = "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\n";
    assert_eq!(paths(&policies(text).unwrap_err()), ["listeners[0].tls"]);
    let ok = policies(&format!("{text}[dangerous]\nallow_plain_http = true\n")).unwrap();
    assert!(ok[0].tls.is_none());
}

#[test]
fn limits_names_and_admin_port_are_checked_together() {
    let text = "[admin]\nbind = \"127.0.0.1:9901\"\n[dangerous]\nallow_plain_http = true\n\
        [[listeners]]\nname = \"a\"\nbind = \"0.0.0.0:9901\"\n[listeners.limits]\nmax_header_bytes = 1\nmax_uri_length = 10\nmax_concurrent_streams = 0\nheader_read_timeout = \"0s\"\n\
        [[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\n";
    let p = policies(text).unwrap_err();
    let got = paths(&p);
    for want in [
        "listeners[0].bind",
        "listeners[0].limits.max_header_bytes",
        "listeners[0].limits.max_uri_length",
        "listeners[0].limits.max_concurrent_streams",
        "listeners[0].limits.header_read_timeout",
        "listeners[1].name",
    ] {
        assert!(got.contains(&want), "{want} in {got:?}");
    }
}

#[test]
fn client_ca_rules_and_missing_files_are_reported() {
    let text = "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\ncert = \"none.pem\"\nkey = \"none.key\"\nclient_auth = \"required\"\n";
    let p = policies(text).unwrap_err();
    assert_eq!(
        paths(&p),
        [
            "listeners[0].tls.cert",
            "listeners[0].tls.key",
            "listeners[0].tls.client_ca"
        ]
    );
    assert!(p[0].message.contains("none.pem"));
}

#[test]
fn no_listener_is_a_problem() {
    assert_eq!(paths(&policies("").unwrap_err()), ["listeners"]);
}
