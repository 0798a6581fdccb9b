#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use super::parse::{parse, Locator};
use super::LoadedConfig;

fn problems(text: &str) -> Vec<(String, Option<usize>, String)> {
    parse(text)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.path, p.line, p.message))
        .collect()
}

#[test]
fn an_empty_policy_parses_to_defaults() {
    let c = parse("").unwrap();
    assert!(c.listeners.is_empty() && c.routes.is_empty());
    assert_eq!(c.admin.bind.to_string(), "127.0.0.1:9901");
    assert_eq!(c.response.hsts, "max-age=63072000; includeSubDomains");
    assert!(!c.dangerous.allow_plain_http);
}

#[test]
fn every_serde_problem_is_reported_with_path_and_line() {
    let text = r#"
[[routes]]
id = "a"
path = "/a"
methds = ["GET"]
upstream = "u"

[[routes]]
id = "b"
path = "/b"
methods = "GET"
upstream = "u"

[[upstreams]]
name = "u"
targets = ["http://127.0.0.1:1"]
connect_timeout = "soon"

[bogus]
x = 1
"#;
    let p = problems(text);
    let find = |path: &str| {
        p.iter()
            .find(|(pp, _, _)| pp == path)
            .unwrap_or_else(|| panic!("{path} in {p:?}"))
    };
    assert_eq!(find("routes[0].methds").1, Some(5));
    assert!(find("routes[0].methds").2.contains("unknown field"));
    assert_eq!(find("routes[1].methods").1, Some(11));
    assert_eq!(find("upstreams[0].connect_timeout").1, Some(17));
    assert_eq!(find("bogus").1, Some(19));
    assert_eq!(p.len(), 4, "{p:?}");
}

#[test]
fn a_misplaced_key_under_a_header_table_names_the_header_path() {
    // `connect_timeout` after `[upstreams.health]` belongs to `health`.
    let text = "[[upstreams]]\nname = \"u\"\ntargets = []\n[upstreams.health]\nmax_failures = 2\nconnect_timeout = \"1s\"\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "upstreams[0].health.connect_timeout");
    assert_eq!(p[0].1, Some(6));
}

#[test]
fn syntax_errors_have_a_line() {
    let p = problems("[[routes]]\nid = \"unterminated\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1, Some(2));
    assert!(p[0].2.starts_with("invalid TOML"));
}

#[test]
fn locator_finds_lines_of_key_paths() {
    let text = "[admin]\nbind = \"127.0.0.1:1\"\n\n[[routes]]\nid = \"a\"\n\n[[routes]]\nid = \"b\"\nupstream = \"x\"\n";
    let l = Locator::new(text);
    assert_eq!(l.line_of_path("admin.bind"), Some(2));
    assert_eq!(l.line_of_path("routes[1].upstream"), Some(9));
    assert_eq!(l.line_of_path("routes[1].id"), Some(8));
    // Absent key: the nearest present parent.
    assert_eq!(l.line_of_path("routes[1].authn"), Some(7));
    assert_eq!(l.line_of_path("listeners"), None);
}

#[test]
fn durations_and_relative_paths() {
    let text =
        "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:1\"]\nrequest_timeout = \"1m 30s\"\n";
    let loaded = LoadedConfig::from_text(Path::new("/etc/rampart/rampart.toml"), text.into()).unwrap();
    assert_eq!(
        loaded.config.upstreams[0].request_timeout,
        Duration::from_secs(90)
    );
    assert_eq!(loaded.config.upstreams[0].connect_timeout, Duration::from_secs(2));
    assert_eq!(
        loaded.resolve(Path::new("certs/a.pem")),
        Path::new("/etc/rampart/certs/a.pem")
    );
    assert_eq!(loaded.resolve(Path::new("/abs/a.pem")), Path::new("/abs/a.pem"));
    let bare = LoadedConfig::from_text(Path::new("rampart.toml"), String::new()).unwrap();
    assert_eq!(bare.resolve(Path::new("a.pem")), Path::new("./a.pem"));
}

#[test]
fn problems_found_after_parsing_get_lines_and_are_sorted() {
    use super::ConfigProblem;
    let r = "path = \"/\"\nmethods = [\"GET\"]\n";
    let text = format!(
        "[[routes]]\nid = \"a\"\n{r}upstream = \"x\"\n\n[[routes]]\nid = \"b\"\n{r}upstream = \"x\"\n"
    );
    let loaded = LoadedConfig::from_text(Path::new("p.toml"), text).unwrap();
    let errs = loaded.problems(vec![
        ConfigProblem::error("routes[1].upstream", "no such upstream"),
        ConfigProblem::error("routes[0].id", "bad"),
    ]);
    assert_eq!(errs.problems[0].line, Some(2));
    assert_eq!(errs.problems[1].line, Some(11));
    assert_eq!(
        errs.render(&errs.problems[1]),
        "p.toml:11: error: routes[1].upstream: no such upstream"
    );
}

#[test]
fn logging_levels_are_checked() {
    use crate::telemetry::check_level;
    for ok in [
        "info",
        "WARN",
        "off",
        "info,rampart::access=warn",
        "debug,hyper=info",
    ] {
        assert!(check_level(ok).is_ok(), "{ok}");
    }
    // `inf` would be a target name: it would silence every other log line.
    for bad in ["inf", "", "verbose", "info,hyper", "=info", "rampart=loud"] {
        assert!(check_level(bad).is_err(), "{bad:?}");
    }
}

/// Invariant 7 for the policy loader: random damage to a real policy never
/// panics; it is reported. (A cheap stand-in until the cargo-fuzz target.)
#[test]
fn damaged_policies_are_reported_never_panic() {
    let example = include_str!("../../../../config/rampart.example.toml");
    let mut rng = crate::testutil::Rng(0x2545_F491_4F6C_DD1D);
    let mut next = move || rng.next();
    let lines: Vec<&str> = example.lines().collect();
    let junk = [
        "[",
        "]",
        "\"",
        "=",
        "[[routes]]",
        "{",
        "}",
        ",",
        "\n",
        "0",
        "-1",
        "\"10s\"",
        "true",
        "\u{0}",
        "é",
    ];
    let mut refused = 0;
    for _ in 0..400 {
        let mut text: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
        for _ in 0..(1 + next() % 4) {
            let i = (next() as usize) % text.len();
            match next() % 4 {
                0 => {
                    text.remove(i);
                }
                1 => {
                    let dup = text[i].clone();
                    text.insert(i, dup);
                }
                2 => {
                    let piece = junk[(next() as usize) % junk.len()];
                    let at = text[i]
                        .char_indices()
                        .map(|(k, _)| k)
                        .nth((next() as usize) % (text[i].chars().count() + 1))
                        .unwrap_or(text[i].len());
                    text[i].insert_str(at, piece);
                }
                _ => text[i].clear(),
            }
        }
        let text = text.join("\n");
        let outcome = std::panic::catch_unwind(|| {
            match LoadedConfig::from_text(Path::new("/nonexistent/rampart.toml"), text.clone()) {
                Err(e) => Err(e.problems.len()),
                Ok(loaded) => crate::gateway::Gateway::build(
                    &loaded,
                    crate::clock::SystemClock::shared(),
                    crate::metrics::Metrics::new(),
                    crate::gateway::ProcessState::new(),
                    1,
                )
                .map(|_| ())
                .map_err(|e| e.problems.len()),
            }
        });
        match outcome {
            Ok(Err(n)) => {
                assert!(n > 0, "an error without problems for:\n{text}");
                refused += 1;
            }
            Ok(Ok(())) => {}
            Err(_) => panic!("the loader panicked on:\n{text}"),
        }
    }
    // The certificate files do not exist here, so every run is refused; the
    // point is that each refusal is a report, not a panic.
    assert_eq!(refused, 400);
}
