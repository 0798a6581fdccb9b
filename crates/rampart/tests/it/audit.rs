//! The audit trail end to end: real requests over TLS through the gateway,
//! the real `rampart` binary for `serve`, `audit verify|show|export`,
//! `kill -9` under load, a real PostgreSQL, and grep for secrets over every
//! file and log line written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use rampart_testkit::{
    admin_request, admin_send, base_policy, postgres_url, Client, Cuttable, Harness, RecordingUpstream,
    TestResponse, ADMIN_TOKEN,
};
use serde_json::Value;

use crate::{checked_policy, example_section, rampart, Run, ROUTES};

/// Key files for `[audit]`: a master key and an Ed25519 signing key.
fn key_files() -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    let k = rampart::audit::crypto::random_key().unwrap();
    let (private, public, _) = rampart::audit::crypto::generate_signing_key().unwrap();
    vec![
        (
            "audit-master.key",
            base64::engine::general_purpose::STANDARD.encode(k),
        ),
        ("audit-signing.pem", private),
        ("audit-signing.pub.pem", public),
    ]
}

/// A directory holding [`key_files`].
fn keys_dir() -> tempfile::TempDir {
    let keys = tempfile::tempdir().unwrap();
    for (name, content) in key_files() {
        std::fs::write(keys.path().join(name), content).unwrap();
    }
    keys
}

/// `[audit]` over files in `audit/` (paths relative to the policy, or under
/// `keys` when given).
fn audit_section(keys: Option<&Path>, extra: &str) -> String {
    let at = |f: &str| keys.map_or(f.to_string(), |d| d.join(f).display().to_string());
    format!(
        "\n[audit]\ndir = \"{}\"\nsigning_key_file = \"{}\"\ncheckpoint_every = 10\n{extra}\n\
         [[audit.master_keys]]\nid = \"k1\"\nfile = \"{}\"\n",
        keys.map_or("audit".to_string(), |d| d.join("audit").display().to_string()),
        at("audit-signing.pem"),
        at("audit-master.key")
    )
}

const LIMITED: &str = "
[[routes]]
id = \"limited\"
path = \"/v1/limited\"
methods = [\"GET\"]
upstream = \"backend\"
authn = \"none\"

[[routes.rate_limit]]
algorithm = \"fixed_window\"
limit = 1
per = \"1h\"
";

async fn harness(extra: &str) -> Harness {
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{ROUTES}\n{LIMITED}\n{}",
        base_policy(&upstream.url()),
        audit_section(None, extra)
    );
    let files = key_files();
    let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    Harness::start_with_files(upstream, &policy, &files).await
}

fn audit(args: &[&str]) -> Run {
    rampart(&[&["audit"], args].concat())
}

/// Every entry `rampart audit export` prints.
fn export(policy: &Path, extra: &[&str]) -> Vec<Value> {
    let p = policy.to_str().unwrap();
    let mut args = vec!["export", "--config", p, "--format", "jsonl"];
    args.extend_from_slice(extra);
    let r = audit(&args);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    r.out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn requests(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .map(|e| &e["entry"]["event"])
        .filter(|e| e["kind"] == "request")
        .collect()
}

#[tokio::test]
async fn every_request_accepted_or_refused_has_exactly_one_record() {
    let mut h = harness("").await;
    let c = h.client();
    let mut answered = Vec::new();
    for (method, path, status) in [
        (Method::GET, "/v1/accounts?page=2&token=s3cr3t-query-value", 200),
        (Method::GET, "/v1/limited", 200),
        (Method::GET, "/v1/limited", 429),
        (Method::GET, "/no/such/endpoint", 404),
        (Method::DELETE, "/v1/accounts", 405),
        (Method::GET, "/status/503", 503),
    ] {
        let r = c.send(method, path, &[], "").await;
        assert_eq!(r.status, status, "{path}");
        answered.push((r.header("x-request-id").unwrap().to_string(), status));
    }
    // Admin actions (and a refused, unauthenticated one) and a reload.
    let url = h.admin_url("/admin/bans");
    let body = r#"{"cidr": "203.0.113.9/32", "ttl": "10m", "reason": "test"}"#;
    assert_eq!(
        admin_send(Method::POST, &url, Some(ADMIN_TOKEN), body)
            .await
            .status,
        201
    );
    assert_eq!(
        admin_send(Method::POST, &url, Some("wrong"), body).await.status,
        401
    );
    let r = admin_request(Method::POST, &h.admin_url("/admin/reload"), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    h.stop().await;

    let entries = export(&h.policy_path, &[]);
    let reqs = requests(&entries);
    assert_eq!(reqs.len(), answered.len(), "{reqs:#?}");
    for (id, status) in &answered {
        let mine: Vec<_> = reqs.iter().filter(|e| e["request_id"] == id.as_str()).collect();
        assert_eq!(mine.len(), 1, "{id}");
        let e = mine[0];
        assert_eq!(e["status"], *status, "{e}");
        assert!(e["interaction_id"].as_str().is_some_and(|s| s.len() == 36));
        assert_eq!(e["client_ip"], "127.0.0.1");
        assert!(e["latency_ms"].as_f64().is_some());
    }
    let by_status = |s: u16| reqs.iter().find(|e| e["status"] == s).unwrap();
    let ok = by_status(200);
    assert_eq!(ok["route"], "accounts-list");
    assert_eq!(ok["outcome"], "forwarded");
    assert_eq!(ok["upstream_status"], 200);
    assert!(ok["upstream_ms"].as_f64().is_some());
    assert!(ok["bytes_out"].as_u64().is_some());
    assert_eq!(ok["query"], "page=2&token=[redacted]", "{ok}");
    let limited = by_status(429);
    assert_eq!(limited["outcome"], "rate-limited");
    assert!(
        limited["rate_limit"].as_str().unwrap().contains("r=0"),
        "{limited}"
    );
    assert!(
        limited["cause"].as_str().unwrap().contains("rate limited"),
        "{limited}"
    );
    assert!(limited.get("upstream_status").is_none());
    assert_eq!(by_status(404)["outcome"], "not-found");
    assert_eq!(by_status(405)["method"], "DELETE");
    assert_eq!(by_status(503)["upstream_status"], 503);

    let admin: Vec<_> = entries
        .iter()
        .map(|e| &e["entry"]["event"])
        .filter(|e| e["kind"] == "admin")
        .collect();
    assert_eq!(admin.len(), 3, "{admin:#?}");
    assert_eq!(admin[0]["actor"], "machine:admin");
    assert_eq!(admin[0]["action"], "POST /admin/bans");
    assert_eq!(admin[0]["target"], "cidr=203.0.113.9/32");
    assert_eq!(admin[0]["outcome"], "ok (201)");
    assert_eq!(admin[1]["actor"], "anonymous");
    assert_eq!(admin[1]["outcome"], "refused (401)");
    let reload: Vec<_> = entries
        .iter()
        .map(|e| &e["entry"]["event"])
        .filter(|e| e["kind"] == "reload")
        .collect();
    assert_eq!(reload.len(), 1);
    assert_eq!(reload[0]["trigger"], "admin-api");
    assert_eq!(reload[0]["generation"], 2);
    assert_eq!(reload[0]["policy_sha256"].as_str().unwrap().len(), 64);

    // The CLI verifies it; show filters it.
    let p = h.policy_path.to_str().unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
    assert!(v.out.starts_with("OK: "), "{}", v.out);
    let s = audit(&["show", "--config", p, "--filter", "status=429"]);
    assert_eq!(s.code, 0, "{}", s.err);
    assert_eq!(s.out.lines().count(), 1, "{}", s.out);
    assert!(
        s.out.contains("rate-limited") && s.out.contains("/v1/limited"),
        "{}",
        s.out
    );
    let s = audit(&[
        "show",
        "--config",
        p,
        "--filter",
        "kind=admin",
        "--filter",
        "actor=anon*",
    ]);
    assert_eq!(s.out.lines().count(), 1, "{}", s.out);
    let s = audit(&[
        "show",
        "--config",
        p,
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2000-01-02T00:00:00Z",
    ]);
    assert_eq!((s.code, s.out.as_str()), (0, ""), "{}", s.err);
    let s = audit(&["show", "--config", p, "--filter", "nonsense"]);
    assert_eq!(s.code, 2);
    let s = audit(&["export", "--config", p, "--format", "csv"]);
    assert_eq!(s.code, 2);
}

fn frames(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    rampart::audit::segment::frame_ranges(bytes).unwrap()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_hand_edited_segment_fails_verify_at_the_right_entry_with_exit_codes_for_scripts() {
    let mut h = harness("").await;
    let c = h.client();
    for _ in 0..12 {
        assert_eq!(c.get("/v1/accounts").await.status, 200);
    }
    h.stop().await;
    let p = h.policy_path.to_str().unwrap();
    assert_eq!(audit(&["verify", "--config", p]).code, 0);
    let seg = segments(&h.path("audit")).remove(0);
    let original = std::fs::read(&seg).unwrap();
    // One byte of entry 7 (frame 6) changed, as a hex editor would.
    let mut edited = original.clone();
    let r = frames(&original)[6].clone();
    edited[r.start + 30] ^= 0x20;
    std::fs::write(&seg, &edited).unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 1, "{}{}", v.out, v.err);
    assert!(v.out.contains("TAMPERED: entry 7: modified"), "{}", v.out);
    assert!(v.out.contains("first bad entry: 7"), "{}", v.out);
    // show refuses to print what does not authenticate.
    assert_eq!(audit(&["show", "--config", p]).code, 1);
    std::fs::write(&seg, &original).unwrap();
    assert_eq!(audit(&["verify", "--config", p]).code, 0);
    // Unreadable: no such trail, no [audit], usage: 2.
    let v = audit(&["verify", "--config", p, "--dir", "/nonexistent/audit"]);
    assert_eq!(v.code, 2, "{}", v.err);
    let bare = h.path("bare.toml");
    std::fs::write(&bare, "[dangerous]\nallow_plain_http = true\n").unwrap();
    assert_eq!(audit(&["verify", "--config", bare.to_str().unwrap()]).code, 2);
    assert_eq!(audit(&["verify"]).code, 2);
}

#[tokio::test]
async fn the_gateway_answers_503_while_the_disk_fails_and_recovers_without_losing_records() {
    let mut h = harness("segment_max_bytes = 4096\nack_timeout = \"300ms\"").await;
    let c = h.client();
    let mut ids = vec![answered(&c).await];
    let trail = h.path("audit");
    let away = h.path("audit.away");
    std::fs::rename(&trail, &away).unwrap();
    std::fs::write(&trail, "the disk is gone").unwrap();
    refused_from_now_on(&c, &h.upstream, &mut ids).await;
    std::fs::remove_file(&trail).unwrap();
    std::fs::rename(&away, &trail).unwrap();
    ids.push(answered_again(&c).await);
    h.stop().await;
    each_answered_request_recorded_once(&h.policy_path, &ids);
}

/// `GET /v1/accounts`, which must be answered 200: its request id.
async fn answered(c: &Client) -> String {
    let r = c.get("/v1/accounts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-request-id").unwrap().to_string()
}

/// A 503 `overloaded` problem document.
fn assert_overloaded(r: &TestResponse) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    assert_eq!(r.json()["type"], "https://rampart.dev/problems/overloaded");
}

/// Once the sink fails: requests admitted before the writer finds out are
/// answered 200 (after ack_timeout; their ids go to `ids`, their records
/// held); then every request gets 503 `overloaded` and none reaches the
/// upstream.
async fn refused_from_now_on(c: &Client, upstream: &RecordingUpstream, ids: &mut Vec<String>) {
    for _ in 0..200 {
        let before = upstream.count();
        let r = c.get("/v1/accounts").await;
        match r.status.as_u16() {
            200 => ids.push(r.header("x-request-id").unwrap().to_string()),
            503 => {
                assert_overloaded(&r);
                for _ in 0..5 {
                    assert_overloaded(&c.get("/v1/accounts").await);
                }
                assert_eq!(upstream.count(), before, "refused requests reached the upstream");
                return;
            }
            s => panic!("{s}: {}", r.text()),
        }
    }
    panic!("never refused while the sink failed");
}

/// Once the sink is back: polls (503 `overloaded` meanwhile) until a
/// request is answered 200 again; its request id.
async fn answered_again(c: &Client) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = c.get("/v1/accounts").await;
        if r.status == 200 {
            return r.header("x-request-id").unwrap().to_string();
        }
        assert_overloaded(&r);
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `rampart audit verify` passes on the trail of `policy`, and each of
/// `ids` has exactly one request record in it.
fn each_answered_request_recorded_once(policy: &Path, ids: &[String]) {
    let p = policy.to_str().unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
    let entries = export(policy, &[]);
    let recorded: Vec<&str> = requests(&entries)
        .iter()
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    for id in ids {
        let n = recorded.iter().filter(|r| **r == id.as_str()).count();
        assert_eq!(n, 1, "answered request {id} has {n} records");
    }
}

#[tokio::test]
async fn changing_the_audit_section_needs_a_restart() {
    let h = harness("").await;
    let text = std::fs::read_to_string(&h.policy_path).unwrap();
    std::fs::write(
        &h.policy_path,
        text.replace("checkpoint_every = 10", "checkpoint_every = 11"),
    )
    .unwrap();
    let r = admin_request(Method::POST, &h.admin_url("/admin/reload"), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("needs a restart"), "{}", r.text());
}

/// Secrets sent in every place a client can put them, and what of each
/// must never be written anywhere.
const SECRETS: &[(&str, &str)] = &[
    ("4111111111111111", "4111111111111111"),
    ("5555-5555-5555-4444", "5555555555554444"),
    ("378282246310005", "378282246310005"),
    ("DE89370400440532013000", "370400440532013000"),
    ("GB29NWBK60161331926819", "60161331926819"),
    ("alice.smith%40example.com", "alice.smith"),
    (
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2VjcmV0LXNpZ25hdHVyZQ",
        "c2VjcmV0LXNpZ25hdHVyZQ",
    ),
    (
        "rk_abcdefghijkl_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp",
        "Zz9Yy8Xx7Ww6Vv5Uu4",
    ),
];

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn no_secret_sent_by_a_client_is_in_any_log_file_or_sink() {
    let keys = keys_dir();
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{ROUTES}\n[logging]\nlevel = \"info,rampart=debug\"\n{}[[audit.export]]\nkind = \"stdout\"\n[[audit.export]]\nkind = \"file\"\npath = \"{}\"\n",
        base_policy(&upstream.url()),
        audit_section(Some(keys.path()), ""),
        keys.path().join("siem.jsonl").display()
    );
    let s = crate::serve::Served::start(&policy).await;
    let c = s.client();
    for (secret, _) in SECRETS {
        let bearer = format!("Bearer {secret}");
        let cookie = format!("session={secret}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("cookie", cookie.as_str()),
            ("x-api-key", secret),
        ];
        for path in [
            format!("/v1/accounts/{secret}"),
            format!("/v1/accounts?q={secret}&page={secret}"),
            format!("/v1/nowhere/{secret}"),
        ] {
            let r = c.send(Method::GET, &path, &headers, "").await;
            assert!(r.status.as_u16() < 500, "{path}: {}", r.status);
        }
    }
    let printed = s.stop().await;
    assert!(
        printed.contains("\"kind\":\"request\""),
        "the stdout export is empty"
    );
    let mut outputs: Vec<(String, Vec<u8>)> = vec![("stdout and stderr".into(), printed.into_bytes())];
    let policy_path = s_policy(&keys);
    let decrypted = export(&policy_path, &[]);
    assert!(requests(&decrypted).len() >= SECRETS.len() * 3);
    outputs.push(("audit export".into(), serde_json::to_vec(&decrypted).unwrap()));
    let mut files = Vec::new();
    all_files(keys.path(), &mut files);
    for f in files {
        outputs.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    for (name, bytes) in &outputs {
        for (secret, core) in SECRETS {
            assert!(!contains(bytes, core), "{core} (of {secret}) in {name}");
        }
    }
    let export_text = String::from_utf8_lossy(&outputs[1].1).into_owned();
    assert!(
        export_text.contains("**** **** **** 1111"),
        "masked card not in the export"
    );
}

/// A policy for the CLI naming the same trail as the served one (its
/// `[audit]` uses absolute paths under `keys`).
fn s_policy(keys: &tempfile::TempDir) -> PathBuf {
    let p = keys.path().join("cli.toml");
    std::fs::write(&p, audit_section(Some(keys.path()), "")).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_under_load_every_answered_request_has_a_record() {
    // durability = "fsync" (the default): nothing answered is lost.
    kill_9_under_load("", Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_with_durability_write_every_answered_request_has_a_record() {
    // The record is written before the response; a killed process leaves
    // its writes in the kernel (only a power loss can take the last
    // fsync_interval).
    kill_9_under_load("durability = \"write\"", Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_with_durability_interval_only_the_last_moments_can_be_lost() {
    // Nobody waits for the record: what the writer had not yet written
    // (its linger, 1ms, and what was queued) can be lost, nothing older.
    // 100ms is a margin for a loaded machine; runs with 1ms passed too.
    kill_9_under_load("durability = \"interval\"", Duration::from_millis(100)).await;
}

/// Load from 16 tasks, `kill -9` in the middle of it: every request
/// answered more than `window` before the kill has exactly its record, the
/// chain verifies, and a restart continues it.
async fn kill_9_under_load(extra: &str, window: Duration) {
    let keys = keys_dir();
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{ROUTES}\n[logging]\nlevel = \"info\"\naccess_log = false\n{}",
        base_policy(&upstream.url()),
        audit_section(Some(keys.path()), extra)
    );
    let s = crate::serve::Served::start(&policy).await;
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, std::time::Instant)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..16)
        .map(|_| {
            let c = s.client();
            let (answered, stop) = (answered.clone(), stop.clone());
            tokio::spawn(async move {
                // Bounded: at most 2000 requests per task, and only until
                // the gateway is killed.
                for _ in 0..2000 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    match c.try_send(Method::GET, "/v1/accounts", &[], "").await {
                        Ok(r) => {
                            if let Some(id) = r.header("x-request-id") {
                                answered
                                    .lock()
                                    .unwrap()
                                    .push((id.to_string(), std::time::Instant::now()));
                            }
                        }
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Let the load run (past the window, so that some answers are older
    // than it), then kill -9 in the middle of it.
    let began = std::time::Instant::now();
    let deadline = began + Duration::from_secs(20);
    while answered.lock().unwrap().len() < 300 || began.elapsed() < window * 4 {
        assert!(std::time::Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::time::Instant::now();
    s.signal("KILL");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in load {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 300);
    let older = answered
        .iter()
        .filter(|(_, at)| killed.saturating_duration_since(*at) > window)
        .count();
    assert!(
        older >= 100,
        "only {older} answers older than {window:?}: the check would be vacuous"
    );
    let cli = s_policy(&keys);
    let v = audit(&["verify", "--config", cli.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
    let recorded: Vec<String> = requests(&export(&cli, &[]))
        .iter()
        .filter_map(|e| e["request_id"].as_str().map(str::to_owned))
        .collect();
    let once: std::collections::HashSet<&String> = recorded.iter().collect();
    assert_eq!(once.len(), recorded.len(), "a request recorded twice");
    let missing: Vec<_> = answered
        .iter()
        .filter(|(id, at)| {
            !once.contains(id) && (window.is_zero() || killed.saturating_duration_since(*at) > window)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} requests answered more than {window:?} before the kill have no record",
        missing.len(),
        answered.len()
    );
    // A restart continues the same chain.
    drop(s);
    let s = crate::serve::Served::start(&policy).await;
    assert_eq!(s.client().get("/v1/accounts").await.status, 200);
    s.stop().await;
    let v = audit(&["verify", "--config", cli.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
}

#[tokio::test]
async fn a_postgres_trail_is_verified_by_the_cli_and_an_edited_row_is_named() {
    let url = postgres_url();
    let table = format!("rampart_audit_it_{}_{}", std::process::id(), rand_suffix());
    let mut h = harness(&format!(
        "sink = \"postgres\"\npostgres_url = \"{url}\"\ntable = \"{table}\""
    ))
    .await;
    let c = h.client();
    for _ in 0..8 {
        assert_eq!(c.get("/v1/accounts").await.status, 200);
    }
    h.stop().await;
    let p = h.policy_path.to_str().unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
    assert_eq!(requests(&export(&h.policy_path, &[])).len(), 8);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET body = replace(body, '\"status\":200', '\"status\":403') WHERE seq = 4"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 1, "{}{}", v.out, v.err);
    assert!(v.out.contains("first bad entry: 4"), "{}", v.out);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE {table}; DROP TABLE {table}_head"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// A gateway whose trail is a PostgreSQL table reached through a
/// [`Cuttable`], so that the test can take the database away mid-run.
struct PgThroughProxy {
    h: Harness,
    proxy: Cuttable,
    /// The URL through the proxy, as the policy has it.
    via: String,
    table: String,
}

impl PgThroughProxy {
    async fn start(extra: &str) -> Self {
        let (proxy, via) = Cuttable::postgres(&postgres_url()).await;
        let table = format!("rampart_audit_it_{}_{}", std::process::id(), rand_suffix());
        // No checkpoint on the interval: the writer only commits what the
        // test's requests send.
        let h = harness(&format!(
            "sink = \"postgres\"\npostgres_url = \"{via}\"\ntable = \"{table}\"\ncheckpoint_interval = \"1h\"\n{extra}"
        ))
        .await;
        Self { h, proxy, via, table }
    }

    /// With `queue = 1`: takes the database away and fills the queue. The
    /// writer takes the first record and retries it; the second waits in
    /// the queue. Both requests had room, so both were forwarded and are
    /// answered once ack_timeout passes (records unconfirmed, still held):
    /// their ids go to `ids`. Returns the requests the upstream has seen.
    /// Cuts the database. The request admitted before the writer finds
    /// out is answered (its record held); returns once the trail reports
    /// the failure, with the upstream's count then.
    async fn cut_until_failing(&self, c: &Client, ids: &mut Vec<String>) -> usize {
        self.proxy.set(false).await;
        ids.push(answered(c).await);
        let audit = self.h.server().runtime().snapshot().auditor().unwrap().clone();
        crate::redis::wait_until("the trail noticed the cut", || !audit.is_healthy()).await;
        self.h.upstream.count()
    }

    /// Asserts that the upstream has seen exactly `n` requests.
    fn forwarded(&self, n: usize) {
        assert_eq!(self.h.upstream.count(), n, "requests forwarded");
    }

    /// Waits until every record sent so far is committed.
    async fn flushed(&self) {
        let audit = self.h.server().runtime().snapshot().auditor().unwrap().clone();
        let flushed = tokio::time::timeout(Duration::from_secs(15), audit.flush()).await;
        assert_eq!(flushed.ok(), Some(true), "the held records were never committed");
    }

    /// Stops the gateway, then checks with the CLI, straight on the
    /// database, that the table's chain verifies and that each of `ids`
    /// has exactly one request record. Drops the tables.
    async fn stop_and_check(mut self, ids: &[String]) {
        self.h.stop().await;
        let url = postgres_url();
        let text = std::fs::read_to_string(&self.h.policy_path).unwrap();
        self.h.write_policy(&text.replace(&self.via, &url));
        each_answered_request_recorded_once(&self.h.policy_path, ids);
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE {t}; DROP TABLE {t}_head",
            t = self.table
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn losing_postgres_mid_run_answers_503_forwards_nothing_and_loses_no_answered_request() {
    let t = PgThroughProxy::start("ack_timeout = \"300ms\"").await;
    let c = t.h.client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(answered(&c).await);
    }
    t.proxy.set(false).await;
    refused_from_now_on(&c, &t.h.upstream, &mut ids).await;
    // The database returns: the held records land, requests pass again.
    t.proxy.set(true).await;
    ids.push(answered_again(&c).await);
    for _ in 0..3 {
        ids.push(answered(&c).await);
    }
    t.stop_and_check(&ids).await;
}

#[tokio::test]
async fn with_block_a_request_waits_while_the_trail_fails_up_to_block_timeout() {
    // `block` holds a request while the sink fails (and while the queue is
    // full), at most block_timeout, then 503. The queue has room here: a
    // request forwarded while the sink fails would have its record only in
    // memory.
    let block = Duration::from_secs(3);
    let t = PgThroughProxy::start(&format!(
        "on_failure = \"block\"\nack_timeout = \"200ms\"\nblock_timeout = \"{}s\"",
        block.as_secs()
    ))
    .await;
    let c = t.h.client();
    let mut ids = vec![answered(&c).await];
    let reached = t.cut_until_failing(&c, &mut ids).await;
    // The next request waits: no answer, nothing forwarded.
    let waiting = {
        let c = t.h.client();
        tokio::spawn(async move { c.get("/v1/accounts").await })
    };
    let mut waiting = std::pin::pin!(waiting);
    let started = std::time::Instant::now();
    assert!(
        tokio::time::timeout(block / 3, &mut waiting).await.is_err(),
        "answered while the trail was failing"
    );
    t.forwarded(reached);
    // The database returns within block_timeout: the request completes.
    t.proxy.set(true).await;
    let r = waiting.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < block, "{:?}", started.elapsed());
    t.forwarded(reached + 1);
    ids.push(r.header("x-request-id").unwrap().to_string());
    t.flushed().await;

    // Away again, longer than block_timeout: the next request gets 503
    // once block_timeout has passed, unforwarded.
    let reached = t.cut_until_failing(&c, &mut ids).await;
    let started = std::time::Instant::now();
    let r = c.get("/v1/accounts").await;
    let waited = started.elapsed();
    assert_overloaded(&r);
    assert!(waited >= block, "refused after {waited:?}, before block_timeout");
    assert!(
        waited < block * 2,
        "refused after {waited:?}, long after block_timeout"
    );
    t.forwarded(reached);
    t.proxy.set(true).await;
    t.flushed().await;
    ids.push(answered(&c).await);
    t.stop_and_check(&ids).await;
}

fn rand_suffix() -> String {
    let k = rampart::audit::crypto::random_key().unwrap();
    rampart::audit::record::hex(&k[..4])
}

#[test]
fn the_example_audit_section_passes_check() {
    let section = example_section("audit");
    assert!(section.len() >= 10, "{section:?}");
    let dir = tempfile::tempdir().unwrap();
    let r = audit(&["keygen", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("[audit]"), "{}", r.out);
    assert_eq!(
        audit(&["keygen", "--dir", dir.path().to_str().unwrap()]).code,
        1,
        "refuses to overwrite"
    );
    let file = checked_policy(dir.path(), &section);
    // No trail yet: unreadable, exit 2.
    let v = audit(&["verify", "--config", file.to_str().unwrap()]);
    assert_eq!(v.code, 2, "{}{}", v.out, v.err);
}

/// After a demo session (called by the demo test): the printed lines name
/// the audit commands, `rampart audit verify` passes, a hand-edited segment
/// fails at the right entry, and no test secret is in any file the demo
/// wrote or in what it printed.
pub fn check_demo_trail(demo_dir: &Path, printed: &str, customer_token: &str) {
    assert!(printed.contains("audit show --config"), "{printed}");
    assert!(printed.contains("audit verify --config"), "{printed}");
    let policy = demo_dir.join("rampart.toml");
    let p = policy.to_str().unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 0, "{}{}", v.out, v.err);
    let entries = export(&policy, &[]);
    let reqs = requests(&entries);
    assert!(reqs.len() >= 15, "{}", entries.len());
    // Every confirmation attempt (issue 4): the one the code confirmed, and
    // the refused ones with their outcome; never the code.
    let confirmed: Vec<_> = reqs.iter().filter(|e| e["confirmed"] == true).collect();
    assert_eq!(confirmed.len(), 1, "{confirmed:#?}");
    assert_eq!(confirmed[0]["status"], 201);
    assert_eq!(confirmed[0]["route"], "payment-create");
    for outcome in ["confirmation-required", "confirmation-failed"] {
        assert!(
            reqs.iter().any(|e| e["outcome"] == outcome && e["status"] == 403),
            "no {outcome} record"
        );
    }
    let shown = audit(&["show", "--config", p, "--filter", "status=201"]);
    assert_eq!(shown.code, 0, "{}", shown.err);
    assert!(shown.out.contains(" confirmed"), "{}", shown.out);
    // Grep every file the demo wrote, and what it printed.
    let mut files = Vec::new();
    all_files(demo_dir, &mut files);
    let mut outputs: Vec<(String, Vec<u8>)> = vec![("demo output".into(), printed.as_bytes().to_vec())];
    outputs.push(("audit export".into(), serde_json::to_vec(&entries).unwrap()));
    for f in &files {
        outputs.push((f.display().to_string(), std::fs::read(f).unwrap()));
    }
    for (name, bytes) in &outputs {
        for secret in ["4111111111111111", "60161331926819", "alice.smith"] {
            assert!(!contains(bytes, secret), "{secret} in {name}");
        }
        // The customer's token is in the demo's own token files, by design;
        // nowhere else.
        let own = name.contains("/tokens/") || name.ends_with("demo.json");
        assert!(
            own || !contains(bytes, customer_token),
            "the customer's token in {name}"
        );
    }
    // A hand-edited segment fails at the entry that was edited.
    let seg = segments(&demo_dir.join("audit")).remove(0);
    let original = std::fs::read(&seg).unwrap();
    let mut edited = original.clone();
    let r = frames(&original)[4].clone();
    edited[r.end - 3] ^= 0x01;
    std::fs::write(&seg, &edited).unwrap();
    let v = audit(&["verify", "--config", p]);
    assert_eq!(v.code, 1, "{}{}", v.out, v.err);
    assert!(v.out.contains("first bad entry: 5"), "{}", v.out);
    std::fs::write(&seg, &original).unwrap();
}

/// Issue 4: every admin action appears in the audit trail with who did it:
/// a person signed in with password and code, a machine token with a role
/// too small, a failed sign-in; never a password or a code.
#[tokio::test]
async fn admin_actions_of_people_and_machines_are_in_the_trail_with_their_actors() {
    use rampart::mfa::totp;
    let upstream = RecordingUpstream::start().await;
    let policy = format!(
        "{}\n{ROUTES}\n{}\n[mfa]\nkey_file = \"mfa.key\"\n\n[[admin.tokens]]\nname = \"dashboards\"\nfile = \"viewer.token\"\nrole = \"viewer\"\n\n[[admin.tokens]]\nname = \"secops\"\nfile = \"secadmin.token\"\nrole = \"security-admin\"\n\n[api_keys]\nstore = \"sqlite://keys.db\"\npepper_file = \"pepper\"\n",
        base_policy(&upstream.url()),
        audit_section(None, "")
    );
    let mut files = key_files();
    files.push(("mfa.key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()));
    files.push(("viewer.token", "viewer-token-0123456789abcdef".into()));
    files.push(("secadmin.token", "secadmin-token-0123456789abcdef".into()));
    files.push((
        "pepper",
        "an-example-pepper-of-at-least-32-bytes-0123456789".into(),
    ));
    let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    let h = Harness::start_with_files(upstream, &policy, &files).await;
    let mfa = rampart::cli::mfa::open(&h.policy_path).unwrap();
    let pw = "Tr4vel-by-Night-Tr@in";
    let e = rampart::admin::users::add(&mfa, "alice", rampart::admin::config::Role::Operator, pw)
        .await
        .unwrap();
    let seed = totp::base32_decode(e.secret_base32.expose()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp::totp(totp::Algorithm::Sha1, &seed, now, 6);
    let login =
        |pw: &str, code: &str| serde_json::json!({"user": "alice", "password": pw, "code": code}).to_string();
    let r = admin_send(
        Method::POST,
        &h.admin_url("/admin/login"),
        None,
        &login("not her password", &code),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = admin_send(
        Method::POST,
        &h.admin_url("/admin/login"),
        None,
        &login(pw, &code),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r.json()["token"].as_str().unwrap().to_owned();
    let ban = r#"{"cidr": "203.0.113.77/32", "ttl": "5m", "reason": "test"}"#;
    assert_eq!(
        admin_send(Method::POST, &h.admin_url("/admin/bans"), Some(&session), ban)
            .await
            .status,
        201
    );
    let r = admin_send(
        Method::POST,
        &h.admin_url("/admin/reload"),
        Some("viewer-token-0123456789abcdef"),
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    // A person and a customer's factor made over the API: the password and
    // the seeds are in the answers only.
    let bob_pw = "Another-Long-Passphrase-9";
    let add = serde_json::json!({"user": "bob", "role": "viewer", "password": bob_pw}).to_string();
    let secops = Some("secadmin-token-0123456789abcdef");
    let r = admin_send(Method::POST, &h.admin_url("/admin/users"), secops, &add).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let bob_seed = r.json()["secret"].as_str().unwrap().to_owned();
    let r = admin_send(
        Method::POST,
        &h.admin_url("/admin/mfa"),
        secops,
        r#"{"user": "cust-001"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let cust_seed = r.json()["secret"].as_str().unwrap().to_owned();
    let r = admin_send(
        Method::POST,
        &h.admin_url("/admin/keys"),
        secops,
        r#"{"client": "fintech-7", "scopes": "accounts:read"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (key_id, api_key) = (
        r.json()["id"].as_str().unwrap().to_owned(),
        r.json()["key"].as_str().unwrap().to_owned(),
    );
    let entries = export(&h.policy_path, &[]);
    let admin: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| &e["entry"]["event"])
        .filter(|e| e["kind"] == "admin")
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("anonymous", "POST /admin/login", "refused (401)"),
        ("anonymous", "POST /admin/login", "ok (200)"),
        ("user:alice", "POST /admin/bans", "ok (201)"),
        ("machine:dashboards", "POST /admin/reload", "refused (403)"),
        ("machine:secops", "POST /admin/users", "ok (201)"),
        ("machine:secops", "POST /admin/mfa", "ok (201)"),
        ("machine:secops", "POST /admin/keys", "ok (201)"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(admin, want);
    // Who signed in is the login's target; the password and code are not in
    // any file of the trail.
    let logins: Vec<_> = entries
        .iter()
        .map(|e| &e["entry"]["event"])
        .filter(|e| e["action"] == "POST /admin/login")
        .collect();
    assert!(logins.iter().all(|e| e["target"] == "user=alice"), "{logins:?}");
    let mut written = Vec::new();
    all_files(&h.dir.path().join("audit"), &mut written);
    let everything: Vec<u8> = written.iter().flat_map(|f| std::fs::read(f).unwrap()).collect();
    let exported = format!("{entries:?}");
    // The key issued is named by its id, never the key.
    let issued: Vec<_> = entries
        .iter()
        .map(|e| &e["entry"]["event"])
        .filter(|e| e["action"] == "POST /admin/keys")
        .collect();
    assert_eq!(
        issued[0]["target"],
        format!("client=fintech-7&issued={key_id}").as_str(),
        "{issued:?}"
    );
    let secret_part = api_key.rsplit('_').next().unwrap().to_owned();
    for secret in [
        pw,
        code.as_str(),
        session.as_str(),
        bob_pw,
        &bob_seed,
        &cust_seed,
        &api_key,
        &secret_part,
    ] {
        assert!(
            !contains(&everything, secret) && !exported.contains(secret),
            "{secret} in the trail"
        );
    }
}
