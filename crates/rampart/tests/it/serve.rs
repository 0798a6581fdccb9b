//! `rampart serve` as an operator runs it: the real binary, its JSON logs,
//! and its signals (SIGHUP reloads, SIGTERM drains and exits 0).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rampart_testkit::{base_policy, Alpn, Client, RecordingUpstream, TestPki};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::ROUTES;

/// A `rampart serve` process on a policy in a temp dir.
pub struct Served {
    _dir: tempfile::TempDir,
    pub pki: TestPki,
    pub policy: PathBuf,
    pub addr: std::net::SocketAddr,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Everything printed so far.
    pub printed: String,
}

impl Served {
    /// Writes `policy` (plus the test PKI and an admin token) and starts the
    /// binary; returns once the `public` listener logged its address.
    pub async fn start(policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(&["localhost"]).unwrap();
        pki.write(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("admin.token"),
            "x-admin-token-of-sufficient-length",
        )
        .unwrap();
        let path = dir.path().join("rampart.toml");
        std::fs::write(&path, policy).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
            // One worker: the single-threaded runtime (the demo test runs
            // the multi-threaded one).
            .args(["serve", "--workers", "1", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = String::new();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                printed.push_str(&line);
                printed.push('\n');
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["message"] == "listening" && v["listener"] == "public" {
                    return v["addr"].as_str().unwrap().parse().unwrap();
                }
            }
            panic!("gateway exited: {printed}");
        })
        .await
        .expect("gateway did not start");
        Self {
            _dir: dir,
            pki,
            policy: path,
            addr,
            child,
            stdout,
            printed,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.pki.ca_cert_pem, self.addr, Alpn::Http1)
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap();
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Reads log lines until one satisfies `pred` (bounded).
    pub async fn wait_for_line(&mut self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let printed = &mut self.printed;
        let stdout = &mut self.stdout;
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                printed.push_str(&line);
                printed.push('\n');
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if pred(&v) {
                    return v;
                }
            }
            panic!("process ended first");
        })
        .await
        .unwrap_or_else(|_| panic!("no such line in:\n{}", self.printed))
    }

    /// SIGTERM, then everything the process printed; asserts exit 0.
    pub async fn stop(mut self) -> String {
        self.signal("TERM");
        let rest = tokio::time::timeout(Duration::from_secs(10), async {
            let mut s = String::new();
            while let Ok(Some(line)) = self.stdout.next_line().await {
                s.push_str(&line);
                s.push('\n');
            }
            s
        })
        .await
        .unwrap();
        self.printed.push_str(&rest);
        let status = self.child.wait().await.unwrap();
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr)
            .await
            .unwrap();
        self.printed.push_str(&stderr);
        assert!(status.success(), "exit {status:?}\n{}", self.printed);
        self.printed
    }
}

fn with_route(upstream: &str, extra: &str) -> String {
    format!("{}\n{ROUTES}\n{extra}", base_policy(upstream))
}

#[tokio::test]
async fn sighup_reloads_the_policy_and_a_broken_one_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let mut s = Served::start(&with_route(&upstream.url(), "")).await;
    assert_eq!(s.client().get("/v2/cards").await.status, 404);

    let cards = "[[routes]]\nid = \"cards\"\npath = \"/v2/cards\"\nmethods = [\"GET\"]\nupstream = \"backend\"\nauthn = \"none\"\n";
    std::fs::write(&s.policy, with_route(&upstream.url(), cards)).unwrap();
    s.signal("HUP");
    let v = s.wait_for_line(|v| v["message"] == "policy reloaded").await;
    assert_eq!(v["generation"], 2);
    assert_eq!(s.client().get("/v2/cards").await.status, 200);

    // A broken policy: logged with its line, and the running one stays.
    std::fs::write(&s.policy, with_route(&upstream.url(), "[[routes]]\nid = \"x\"\n")).unwrap();
    s.signal("HUP");
    let v = s
        .wait_for_line(|v| v["message"].as_str().unwrap_or("").contains("reload refused"))
        .await;
    assert!(v["problem"].as_str().unwrap().contains("rampart.toml:"), "{v}");
    assert_eq!(s.client().get("/v2/cards").await.status, 200);
    s.stop().await;
}
