//! The audit trail against real files and a real PostgreSQL: every kind of
//! edit detected at the right entry, crash recovery, key rotation,
//! retention, concurrent writers, fail-closed sinks, the spool, and no
//! secret in anything written. PostgreSQL being unreachable fails the
//! tests (they never skip); each test uses its own tables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::config::AuditPolicy;
use super::crypto::{generate_signing_key, random_key};
use super::record::{link_all, timestamp, Entry, Event, Head, Link, Pending, RequestEvent};
use super::segment::{list_segments, read_segment, Frame, SegmentWriter, HEAD_FILE};
use super::verify::{verify_dir, Fault, Problem, VerifyFailure};
use super::Auditor;
use crate::clock::{Clock, FakeClock};
use crate::config::LoadedConfig;
use rampart_testkit::{postgres_url as pg_url, Cuttable};

const T0: u64 = 1_780_000_000;

/// Key files (`NAME.key`, `NAME.pem`, `NAME.pub.pem`) in `dir`.
fn write_keys(dir: &Path, name: &str) {
    use base64::Engine as _;
    let k = random_key().unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        base64::engine::general_purpose::STANDARD.encode(k),
    )
    .unwrap();
    let (private, public, _) = generate_signing_key().unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), private).unwrap();
    std::fs::write(dir.join(format!("{name}.pub.pem")), public).unwrap();
}

/// A policy from `[audit]` text (relative paths against `dir`).
fn policy(dir: &Path, section: &str) -> AuditPolicy {
    let loaded = LoadedConfig::from_text(&dir.join("rampart.toml"), format!("[audit]\n{section}\n")).unwrap();
    AuditPolicy::from_config(loaded.config.audit.as_ref().unwrap(), &loaded)
        .unwrap_or_else(|p| panic!("{:?}", loaded.problems(p).problems))
}

/// The usual file trail: key `k1`, signing key `s1`.
fn file_section(extra: &str) -> String {
    format!(
        "dir = \"trail\"\nsigning_key_file = \"s1.pem\"\ncheckpoint_every = 5\n{extra}\n\
         [[audit.master_keys]]\nid = \"k1\"\nfile = \"s1.key\"\n"
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<FakeClock>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_keys(dir.path(), "s1");
        Self {
            dir,
            clock: FakeClock::at_unix(T0),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn policy(&self, extra: &str) -> Arc<AuditPolicy> {
        Arc::new(policy(self.dir.path(), &file_section(extra)))
    }

    async fn auditor(&self, extra: &str) -> Arc<Auditor> {
        Auditor::start(self.policy(extra), self.clock.clone())
            .await
            .unwrap()
    }
}

fn request(n: usize) -> Event {
    let mut ex = crate::exchange::test_exchange("198.51.100.7:40000", true);
    ex.route_id = Some(Arc::from("accounts-list"));
    ex.path = Some(format!("/v1/accounts/acc-{n}"));
    ex.outcome = if n.is_multiple_of(3) {
        "rate-limited"
    } else {
        "forwarded"
    };
    Event::Request(Box::new(RequestEvent::from_exchange(
        &ex,
        if n.is_multiple_of(3) { 429 } else { 200 },
        Duration::from_millis(3),
        Some(120),
    )))
}

#[test]
fn flagged_findings_signatures_and_confirmations_are_in_the_record_without_values() {
    let mut ex = crate::exchange::test_exchange("198.51.100.7:40000", true);
    ex.signals = vec![
        crate::validate::Signal {
            kind: "injection:sqli".into(),
            pointer: "/remittance_information".into(),
        },
        crate::validate::Signal {
            kind: "signature:demo-partner".into(),
            pointer: String::new(),
        },
    ];
    ex.confirmed = true;
    let e = RequestEvent::from_exchange(&ex, 201, Duration::from_millis(3), None);
    assert_eq!(
        e.signals,
        [
            "injection:sqli at /remittance_information",
            "signature:demo-partner"
        ]
    );
    assert!(e.confirmed);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["confirmed"], true);
    // Absent when there is nothing to say; old records read back.
    let plain = RequestEvent::from_exchange(
        &crate::exchange::test_exchange("198.51.100.7:40000", true),
        200,
        Duration::ZERO,
        None,
    );
    let json = serde_json::to_value(&plain).unwrap();
    assert!(
        json.get("signals").is_none() && json.get("confirmed").is_none(),
        "{json}"
    );
    let back: RequestEvent = serde_json::from_value(json).unwrap();
    assert!(back.signals.is_empty() && !back.confirmed);
    // Bounded: a client chooses how many findings and how long a pointer.
    ex.signals = (0..100)
        .map(|i| crate::validate::Signal {
            kind: "injection:xss".into(),
            pointer: format!("/{i}/{}", "é".repeat(1000)),
        })
        .collect();
    let e = RequestEvent::from_exchange(&ex, 200, Duration::ZERO, None);
    assert_eq!(e.signals.len(), 32);
    assert!(e.signals.iter().all(|s| s.len() < 300), "{:?}", e.signals[0]);
}

#[tokio::test]
async fn a_writer_whose_every_record_has_come_does_not_linger() {
    // One request at a time, each waiting for its record: nobody else holds
    // a place, so the writer commits at once instead of lingering 10ms.
    // Forty lingers would take 400ms at least.
    let f = Fixture::new();
    let a = f.auditor("durability = \"write\"\nlinger = \"10ms\"").await;
    assert_eq!(a.policy().linger(), Duration::from_millis(10));
    let started = std::time::Instant::now();
    for i in 0..40 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    let took = started.elapsed();
    a.close(Duration::from_secs(5)).await;
    assert!(took < Duration::from_millis(300), "{took:?}");
    // The defaults by durability.
    for (durability, linger) in [("fsync", 200), ("write", 200), ("interval", 1000)] {
        let p = f.policy(&format!("durability = \"{durability}\""));
        assert_eq!(p.linger(), Duration::from_micros(linger), "{durability}");
    }
}

/// Writes `n` requests through a real auditor, closes it.
async fn written(f: &Fixture, extra: &str, n: usize) {
    let a = f.auditor(extra).await;
    for i in 0..n {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    a.close(Duration::from_secs(5)).await;
}

fn verify(f: &Fixture, extra: &str) -> Result<super::verify::Report, VerifyFailure> {
    let p = f.policy(extra);
    verify_dir(&f.path("trail"), p.keys.as_ref(), &p.trusted)
}

#[track_caller]
fn bad(r: Result<super::verify::Report, VerifyFailure>) -> Problem {
    match r {
        Err(VerifyFailure::Bad(p)) => p,
        other => panic!("expected a problem, got {other:?}"),
    }
}

fn frame_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    super::segment::frame_ranges(bytes).unwrap()
}

fn only_segment(dir: &Path) -> PathBuf {
    let segs = list_segments(dir).unwrap();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs[0].1.clone()
}

#[tokio::test]
async fn every_record_is_chained_signed_and_verifies() {
    let f = Fixture::new();
    let a = f.auditor("").await;
    for i in 0..23 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    a.admin_action("admin-token", "ban", "203.0.113.7/32", "ok")
        .await
        .unwrap();
    a.policy_reload("sighup", Some(2), 0, Some("ab".repeat(32)))
        .await
        .unwrap();
    assert!(a.flush().await);
    a.close(Duration::from_secs(5)).await;
    let r = verify(&f, "").unwrap();
    // start + 23 requests + admin + reload, a checkpoint every 5 records,
    // and the seal at close.
    assert_eq!(r.first, 1);
    assert_eq!(r.entries, r.last);
    assert!(r.checkpoints >= 5, "{r:?}");
    assert_eq!(r.last_checkpoint, r.last, "sealed at close: {r:?}");
    assert_eq!(r.head, Some(r.last));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // The trail is encrypted: no plaintext of a record in the file.
    let bytes = std::fs::read(only_segment(&f.path("trail"))).unwrap();
    for needle in [
        &b"accounts-list"[..],
        b"request_id",
        b"198.51.100.7",
        b"admin-token",
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "plaintext in the segment"
        );
    }
}

#[tokio::test]
async fn each_byte_edit_of_a_segment_is_named_at_its_entry() {
    let f = Fixture::new();
    written(&f, "", 20).await;
    let seg = only_segment(&f.path("trail"));
    let original = std::fs::read(&seg).unwrap();
    let frames = frame_ranges(&original);
    assert!(frames.len() > 20);
    // Frame i holds entry i + 1 (the segment starts the trail).
    let mutate = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = original.clone();
        edit(&mut b);
        std::fs::write(&seg, &b).unwrap();
        let p = bad(verify(&f, ""));
        std::fs::write(&seg, &original).unwrap();
        p
    };
    // A changed byte inside entry 8.
    let r = frames[7].clone();
    let p = mutate(&|b| b[r.start + 20] ^= 0x01);
    assert_eq!((p.seq, p.fault), (8, Fault::Modified), "{p}");
    // Entry 8 deleted.
    let r = frames[7].clone();
    let p = mutate(&|b| {
        b.drain(r.clone());
    });
    assert_eq!((p.seq, p.fault), (8, Fault::Modified), "{p}");
    // Entry 8 inserted again after itself.
    let r = frames[7].clone();
    let p = mutate(&|b| {
        let copy = b[r.clone()].to_vec();
        b.splice(r.end..r.end, copy);
    });
    assert_eq!((p.seq, p.fault), (9, Fault::Modified), "{p}");
    // Entries 8 and 9 swapped.
    let (r8, r9) = (frames[7].clone(), frames[8].clone());
    let p = mutate(&|b| {
        let (e8, e9) = (b[r8.clone()].to_vec(), b[r9.clone()].to_vec());
        let mut swapped = e9;
        swapped.extend_from_slice(&e8);
        b.splice(r8.start..r9.end, swapped);
    });
    assert_eq!((p.seq, p.fault), (8, Fault::Modified), "{p}");
    // Truncated after entry 15 (at a frame boundary): the signed head
    // covers more.
    let cut = frames[14].end;
    let p = mutate(&|b| b.truncate(cut));
    assert_eq!((p.seq, p.fault), (16, Fault::Truncated), "{p}");
    // Truncated in the middle of entry 16.
    let cut = frames[15].start + 10;
    let p = mutate(&|b| b.truncate(cut));
    assert_eq!((p.seq, p.fault), (16, Fault::Truncated), "{p}");
    // The header (its first sequence number) changed: the data key no
    // longer unwraps.
    let p = mutate(&|b| b[20] ^= 0x01);
    assert_eq!(p.fault, Fault::Modified, "{p}");
    // A forged signed head.
    let head = f.path("trail").join(HEAD_FILE);
    let text = std::fs::read_to_string(&head).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["seq"] = serde_json::json!(v["seq"].as_u64().unwrap() - 3);
    std::fs::write(&head, v.to_string()).unwrap();
    assert_eq!(bad(verify(&f, "")).fault, Fault::BadHead);
    std::fs::write(&head, text).unwrap();
    assert!(verify(&f, "").is_ok());
}

/// The links of the only segment, decrypted (what someone holding the
/// master key sees).
fn links_of(f: &Fixture) -> (Vec<Link>, u64) {
    let p = f.policy("");
    let seg = only_segment(&f.path("trail"));
    let c = read_segment(&seg, p.keys.as_ref()).unwrap();
    let links = c
        .frames
        .into_iter()
        .map(|fr| match fr {
            Frame::Entry { hash, body } => {
                let e: Entry = serde_json::from_slice(&body).unwrap();
                Link {
                    seq: e.seq,
                    hash,
                    body,
                }
            }
            Frame::Corrupt => panic!("corrupt"),
        })
        .collect();
    (links, c.header.first_seq)
}

/// Rewrites the only segment with `links`, correctly encrypted.
fn rewrite(f: &Fixture, links: &[Link]) {
    let p = f.policy("");
    let dir = f.path("trail");
    std::fs::remove_file(only_segment(&dir)).unwrap();
    let mut w = SegmentWriter::create(&dir, 1, 1, f.clock.now(), p.keys.as_ref()).unwrap();
    w.append(links).unwrap();
    w.sync().unwrap();
}

fn body_of(l: &Link) -> serde_json::Value {
    serde_json::from_slice(&l.body).unwrap()
}

fn set_body(l: &mut Link, v: &serde_json::Value, rehash: bool) {
    l.body = serde_json::to_vec(v).unwrap();
    if rehash {
        l.hash = super::record::sha256(&l.body);
    }
}

#[tokio::test]
async fn edits_by_someone_holding_the_master_key_are_named_at_their_entry() {
    let f = Fixture::new();
    written(&f, "", 20).await;
    let (links, _) = links_of(&f);
    let check = |links: &[Link]| {
        rewrite(&f, links);
        bad(verify(&f, ""))
    };
    // Entry 8's status changed; the stored hash kept.
    let mut l = links.clone();
    let mut v = body_of(&l[7]);
    v["event"]["status"] = serde_json::json!(201);
    set_body(&mut l[7], &v, false);
    let p = check(&l);
    assert_eq!((p.seq, p.fault), (8, Fault::Modified), "{p}");
    // …with its hash recomputed: the next entry's link breaks.
    set_body(&mut l[7], &v, true);
    let p = check(&l);
    assert_eq!((p.seq, p.fault), (9, Fault::ChainBroken), "{p}");
    // Entry 8 deleted.
    let mut l = links.clone();
    l.remove(7);
    let p = check(&l);
    assert_eq!((p.seq, p.fault), (8, Fault::Sequence), "{p}");
    // Entry 8 inserted twice.
    let mut l = links.clone();
    l.insert(8, links[7].clone());
    let p = check(&l);
    assert_eq!((p.seq, p.fault), (9, Fault::Sequence), "{p}");
    // Entries 8 and 9 swapped.
    let mut l = links.clone();
    l.swap(7, 8);
    let p = check(&l);
    assert_eq!((p.seq, p.fault), (8, Fault::Sequence), "{p}");
    // The whole chain recomputed after a change to entry 8 (everything
    // consistent but the signatures): the next checkpoint fails.
    let mut l = links.clone();
    let mut v = body_of(&l[7]);
    v["event"]["status"] = serde_json::json!(201);
    set_body(&mut l[7], &v, true);
    for i in 8..l.len() {
        let prev = super::record::hex(&l[i - 1].hash);
        let mut v = body_of(&l[i]);
        v["prev"] = serde_json::json!(prev);
        if v["event"]["kind"] == "checkpoint" {
            v["event"]["hash"] = serde_json::json!(prev);
        }
        set_body(&mut l[i], &v, true);
    }
    let first_checkpoint_after = l
        .iter()
        .skip(8)
        .find(|x| body_of(x)["event"]["kind"] == "checkpoint")
        .unwrap()
        .seq;
    let p = check(&l);
    assert_eq!(
        (p.seq, p.fault),
        (first_checkpoint_after, Fault::BadCheckpoint),
        "{p}"
    );
    // Untouched, it verifies.
    rewrite(&f, &links);
    verify(&f, "").unwrap();
}

#[tokio::test]
async fn a_torn_last_write_is_a_warning_then_cut_and_recorded_at_restart() {
    let f = Fixture::new();
    written(&f, "", 6).await;
    let seg = only_segment(&f.path("trail"));
    let mut b = std::fs::read(&seg).unwrap();
    b.extend_from_slice(&[0, 0, 1, 0, 42, 42, 42]);
    std::fs::write(&seg, &b).unwrap();
    let r = verify(&f, "").unwrap();
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    // The next start cuts it, says so, and continues the chain.
    written(&f, "", 3).await;
    let r = verify(&f, "").unwrap();
    assert!(r.warnings.is_empty(), "{r:?}");
    let (starts, torn) = starts(&f);
    assert_eq!(starts, 2);
    assert_eq!(torn, 7);
}

/// Start records in the trail, and the torn bytes they report.
fn starts(f: &Fixture) -> (usize, u64) {
    let p = f.policy("");
    let mut n = 0;
    let mut torn = 0;
    super::verify::scan_dir(&f.path("trail"), p.keys.as_ref(), |item| {
        if let super::verify::Item::Entry { body, .. } = item {
            let e: Entry = serde_json::from_slice(body).unwrap();
            if let Event::Start(s) = e.event {
                n += 1;
                torn += s.torn_bytes;
            }
        }
        Ok::<(), ()>(())
    })
    .unwrap()
    .unwrap();
    (n, torn)
}

#[tokio::test]
async fn entries_missing_at_a_restart_are_recorded_and_fail_verification() {
    let f = Fixture::new();
    written(&f, "", 10).await;
    let seg = only_segment(&f.path("trail"));
    let b = std::fs::read(&seg).unwrap();
    let frames = frame_ranges(&b);
    std::fs::write(&seg, &b[..frames[7].end]).unwrap();
    written(&f, "", 2).await;
    let p = bad(verify(&f, ""));
    assert_eq!((p.seq, p.fault), (9, Fault::Lost), "{p}");
}

#[tokio::test]
async fn master_and_signing_keys_rotate_without_rewriting_old_segments() {
    let f = Fixture::new();
    written(&f, "", 7).await;
    let first = std::fs::read(only_segment(&f.path("trail"))).unwrap();
    // New master key k2 first, k1 kept to read old segments; new signing
    // key s2, s1's public key still trusted.
    write_keys(f.dir.path(), "s2");
    let rotated = |trust_old: bool, keep_k1: bool| {
        format!(
            "dir = \"trail\"\nsigning_key_file = \"s2.pem\"\ncheckpoint_every = 5\n{}\n\
             [[audit.master_keys]]\nid = \"k2\"\nfile = \"s2.key\"\n{}",
            if trust_old {
                "verify_keys = [\"s1.pub.pem\"]"
            } else {
                ""
            },
            if keep_k1 {
                "[[audit.master_keys]]\nid = \"k1\"\nfile = \"s1.key\"\n"
            } else {
                ""
            }
        )
    };
    let p2 = Arc::new(policy(f.dir.path(), &rotated(true, true)));
    let a = Auditor::start(p2.clone(), f.clock.clone()).await.unwrap();
    for i in 0..7 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    a.close(Duration::from_secs(5)).await;
    let segs = list_segments(&f.path("trail")).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(
        std::fs::read(&segs[0].1).unwrap(),
        first,
        "the old segment is untouched"
    );
    let c = read_segment(&segs[1].1, p2.keys.as_ref()).unwrap();
    assert_eq!(c.header.key_id, "k2");
    let r = verify_dir(&f.path("trail"), p2.keys.as_ref(), &p2.trusted).unwrap();
    assert_eq!(r.key_ids.len(), 2, "{r:?}");
    // Without k1 the old segment cannot be read: unreadable, not tampered.
    let p = policy(f.dir.path(), &rotated(true, false));
    match verify_dir(&f.path("trail"), p.keys.as_ref(), &p.trusted) {
        Err(VerifyFailure::Unreadable(why)) => assert!(why.contains("k1"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Without trusting s1, its checkpoints do not verify.
    let p = policy(f.dir.path(), &rotated(false, true));
    let prob = bad(verify_dir(&f.path("trail"), p.keys.as_ref(), &p.trusted));
    assert_eq!(prob.fault, Fault::BadCheckpoint, "{prob}");
    assert!(prob.detail.contains("not trusted"), "{prob}");
}

#[tokio::test]
async fn segments_rotate_by_size_and_age_and_retention_leaves_an_anchored_trail() {
    let f = Fixture::new();
    let extra = "segment_max_bytes = 4096\nsegment_max_age = \"1m\"\nretention = \"10m\"";
    let a = f.auditor(extra).await;
    for i in 0..30 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    assert!(a.flush().await);
    let by_size = list_segments(&f.path("trail")).unwrap().len();
    assert!(by_size >= 3, "{by_size} segments");
    // By age: an hour of one record a minute.
    for i in 0..60 {
        f.clock.advance(Duration::from_secs(61));
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    assert!(a.flush().await);
    a.close(Duration::from_secs(5)).await;
    let segs = list_segments(&f.path("trail")).unwrap();
    // Retention kept about the last ten minutes.
    assert!(
        segs.len() < 20 && segs[0].0 > 1,
        "{} segments from {}",
        segs.len(),
        segs[0].0
    );
    let r = verify(&f, extra).unwrap();
    assert!(r.first > 1, "{r:?}");
    // Removing the oldest segment left is not retention: detected.
    std::fs::remove_file(&segs[0].1).unwrap();
    let p = bad(verify(&f, extra));
    assert_eq!((p.seq, p.fault), (1, Fault::Sequence), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_one_valid_chain() {
    let f = Fixture::new();
    let a = f.auditor("").await;
    write_concurrently(std::slice::from_ref(&a), 16, 50).await;
    a.close(Duration::from_secs(5)).await;
    let r = verify(&f, "").unwrap();
    let requests = count_kind(&f, "request");
    assert_eq!(requests, 800);
    assert!(r.entries > 800);
}

/// `tasks` tasks per auditor, each recording `each` requests, all at once.
async fn write_concurrently(nodes: &[Arc<Auditor>], tasks: usize, each: usize) {
    let handles: Vec<_> = nodes
        .iter()
        .flat_map(|node| (0..tasks).map(move |t| (node.clone(), t)))
        .map(|(node, t)| {
            tokio::spawn(async move {
                for i in 0..each {
                    node.admit()
                        .await
                        .unwrap()
                        .record(request(t * 1000 + i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

fn count_kind(f: &Fixture, kind: &str) -> usize {
    let p = f.policy("");
    let mut n = 0;
    super::verify::scan_dir(&f.path("trail"), p.keys.as_ref(), |item| {
        if let super::verify::Item::Entry { body, .. } = item {
            let e: Entry = serde_json::from_slice(body).unwrap();
            n += usize::from(e.event.kind() == kind);
        }
        Ok::<(), ()>(())
    })
    .unwrap()
    .unwrap();
    n
}

#[tokio::test]
async fn a_failing_disk_refuses_new_requests_until_it_returns() {
    let f = Fixture::new();
    let extra = "segment_max_bytes = 4096\nack_timeout = \"300ms\"";
    let a = f.auditor(extra).await;
    for i in 0..3 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    // The directory goes away (a file where it was): the next segment
    // cannot be created.
    let trail = f.path("trail");
    let away = f.path("trail.away");
    std::fs::rename(&trail, &away).unwrap();
    std::fs::write(&trail, "not a directory").unwrap();
    let mut refused = false;
    for i in 0..200 {
        match a.admit().await {
            Ok(p) => {
                let _ = p.record(request(100 + i)).await;
            }
            Err(e) => {
                assert!(e.to_string().contains("failing"), "{e}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "the trail never reported the failure");
    assert!(!a.is_healthy());
    // The disk returns: records held in the writer land, admission resumes.
    std::fs::remove_file(&trail).unwrap();
    std::fs::rename(&away, &trail).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !a.is_healthy() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.admit().await.unwrap().record(request(999)).await.unwrap();
    a.close(Duration::from_secs(5)).await;
    verify(&f, extra).unwrap();
}

#[test]
fn the_policy_refuses_missing_keys_and_bad_values_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = LoadedConfig::from_text(
        &dir.path().join("rampart.toml"),
        "[audit]\nsink = \"postgres\"\non_failure = \"spool\"\nqueue = 0\nlinger = \"50ms\"\ntable = \"Bad-Name\"\n\
         postgres_url = \"postgres://u@h/db\"\n\n[[audit.master_keys]]\nid = \"k1\"\nfile = \"missing.key\"\n\
         [[audit.export]]\nkind = \"syslog\"\naddress = \"tcp://x\"\n"
            .into(),
    )
    .unwrap();
    let problems = AuditPolicy::from_config(loaded.config.audit.as_ref().unwrap(), &loaded).unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "audit.queue",
        "audit.linger",
        "audit.table",
        "audit.master_keys[0].file",
        "audit.signing_key_file",
        "audit.export[0].address",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    // The file sink with spool, an unknown key in the section.
    let p = LoadedConfig::from_text(&dir.path().join("r.toml"), "[audit]\nbogus = 1\n".into()).unwrap_err();
    assert!(
        p.problems.iter().any(|p| p.path.starts_with("audit")),
        "{:?}",
        p.problems
    );
}

// === PostgreSQL ===

fn pg_section(table: &str, extra: &str) -> String {
    format!(
        "sink = \"postgres\"\npostgres_url = \"{}\"\ntable = \"{table}\"\nsigning_key_file = \"s1.pem\"\n\
         checkpoint_every = 5\n{extra}\n[[audit.master_keys]]\nid = \"k1\"\nfile = \"s1.key\"\n",
        pg_url()
    )
}

fn table_name(what: &str) -> String {
    format!(
        "rampart_audit_test_{what}_{}_{}",
        std::process::id(),
        super::record::hex(&random_key().unwrap()[..4])
    )
}

async fn pg_sink(f: &Fixture, table: &str) -> super::postgres::PgSink {
    let p = policy(f.dir.path(), &pg_section(table, ""));
    let super::config::SinkPolicy::Postgres { url, location, .. } = &p.sink else {
        panic!()
    };
    let mut s = super::postgres::PgSink::new(url, location, table, p.signer.clone()).unwrap();
    if let Err(e) = s.ready().await {
        panic!(
            "PostgreSQL is required for these tests and is not usable at {} ({e}); start it or set RAMPART_TEST_POSTGRES_URL",
            pg_url().split('@').next_back().unwrap_or("")
        );
    }
    s
}

async fn sql(f: &Fixture, table: &str, statement: &str) {
    let p = policy(f.dir.path(), &pg_section(table, ""));
    let super::config::SinkPolicy::Postgres { url, .. } = &p.sink else {
        panic!()
    };
    let pool = sqlx::PgPool::connect(url.expose()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_table_keep_one_chain_and_each_edit_is_detected() {
    let f = Fixture::new();
    let table = table_name("chain");
    let p = Arc::new(policy(f.dir.path(), &pg_section(&table, "node = \"node-a\"")));
    let q = Arc::new(policy(f.dir.path(), &pg_section(&table, "node = \"node-b\"")));
    let a = Auditor::start(p.clone(), f.clock.clone()).await.unwrap();
    let b = Auditor::start(q, f.clock.clone()).await.unwrap();
    write_concurrently(&[a.clone(), b.clone()], 4, 25).await;
    a.close(Duration::from_secs(5)).await;
    b.close(Duration::from_secs(5)).await;
    let mut sink = pg_sink(&f, &table).await;
    let r = sink.verify(&p.trusted).await.unwrap();
    assert!(r.entries >= 200 + 2, "{r:?}");
    assert_eq!(r.head, Some(r.last));

    // Each edit on a copy of the table.
    let edits: [(&str, &str, Fault, Option<u64>); 5] = [
        (
            "modified",
            "UPDATE {t} SET body = body || ' ' WHERE seq = 17",
            Fault::Modified,
            Some(17),
        ),
        (
            "deleted",
            "DELETE FROM {t} WHERE seq = 17",
            Fault::Sequence,
            Some(17),
        ),
        (
            "inserted",
            "UPDATE {t} SET seq = -seq WHERE seq >= 17; UPDATE {t} SET seq = 1 - seq WHERE seq < 0; \
             INSERT INTO {t} SELECT 17, prev_hash, hash, time, kind, body FROM {t} WHERE seq = 16",
            Fault::Sequence,
            Some(17),
        ),
        (
            "reordered",
            "UPDATE {t} SET seq = -1 WHERE seq = 17; UPDATE {t} SET seq = 17 WHERE seq = 18; \
             UPDATE {t} SET seq = 18 WHERE seq = -1",
            Fault::Sequence,
            Some(17),
        ),
        (
            "truncated",
            "DELETE FROM {t} WHERE seq > 150",
            Fault::Truncated,
            Some(151),
        ),
    ];
    for (name, edit, fault, seq) in edits {
        let copy = format!("{table}_{name}");
        sql(
            &f,
            &table,
            &format!(
                "CREATE TABLE {copy} AS SELECT * FROM {table}; ALTER TABLE {copy} ADD PRIMARY KEY (seq); \
                 CREATE TABLE {copy}_head AS SELECT * FROM {table}_head; {}",
                edit.replace("{t}", &copy)
            ),
        )
        .await;
        let mut s = pg_sink(&f, &copy).await;
        let got = s.verify(&p.trusted).await;
        s.drop_tables().await.unwrap();
        match got {
            Err(VerifyFailure::Bad(prob)) => {
                assert_eq!(prob.fault, fault, "{name}: {prob}");
                if let Some(seq) = seq {
                    assert_eq!(prob.seq, seq, "{name}: {prob}");
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    sink.drop_tables().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_fails_closed() {
    let f = Fixture::new();
    // Nothing listens on port 1.
    let section = pg_section("rampart_audit_unreachable", "ack_timeout = \"300ms\"")
        .replace(&pg_url(), "postgres://postgres@127.0.0.1:1/test");
    let p = Arc::new(policy(f.dir.path(), &section));
    let a = Auditor::start(p, f.clock.clone()).await.unwrap();
    let e = a.admit().await.unwrap_err();
    assert!(e.to_string().contains("failing"), "{e}");
    assert!(a.admin_action("admin-token", "ban", "x", "ok").await.is_err());
}

/// A PostgreSQL policy whose connections go through a [`Cuttable`].
async fn through_proxy(f: &Fixture, table: &str, extra: &str) -> (Cuttable, Arc<AuditPolicy>) {
    let (proxy, via) = Cuttable::postgres(&pg_url()).await;
    let section = pg_section(table, extra).replace(&pg_url(), &via);
    (proxy, Arc::new(policy(f.dir.path(), &section)))
}

/// The request records in a table, by path, after verifying its chain.
async fn table_requests(f: &Fixture, table: &str, trusted: &super::crypto::TrustedKeys) -> Vec<String> {
    let mut sink = pg_sink(f, table).await;
    sink.verify(trusted).await.unwrap();
    let mut paths = Vec::new();
    sink.scan(|_, _, body| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        if v["event"]["kind"] == "request" {
            paths.push(v["event"]["path"].as_str().unwrap_or("").to_owned());
        }
        Ok::<bool, ()>(true)
    })
    .await
    .unwrap()
    .unwrap();
    sink.drop_tables().await.unwrap();
    paths
}

/// Waits (at most 15 s) until the spool has been moved into the table.
async fn drained(a: &Auditor) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while a.is_spooling() {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each of `n` requests recorded exactly once.
fn each_once(mut paths: Vec<String>, n: usize) {
    paths.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("/v1/accounts/acc-{i}")).collect();
    want.sort();
    assert_eq!(paths, want, "every record, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_not_written_twice() {
    // Without a spool: the writer retries the same batch, and asks the
    // table first whether the lost commit happened.
    let f = Fixture::new();
    let table = table_name("lostcommit");
    let (proxy, p) = through_proxy(&f, &table, "").await;
    let a = Auditor::start(p.clone(), f.clock.clone()).await.unwrap();
    for i in 0..3 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    proxy.lose_the_next_commit_answer();
    a.admit().await.unwrap().record(request(3)).await.unwrap();
    assert!(!proxy.commit_answer_pending(), "the commit was not cut");
    assert!(a.health.failed_commits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    for i in 4..6 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    a.close(Duration::from_secs(5)).await;
    each_once(table_requests(&f, &table, &p.trusted).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_that_starts_the_spool_is_not_moved_twice() {
    // With a spool: the batch goes to the spool with a note, and the drain
    // asks the table before it moves it.
    let f = Fixture::new();
    let table = table_name("lostspool");
    let (proxy, p) = through_proxy(&f, &table, "on_failure = \"spool\"\nspool_dir = \"spool\"").await;
    let a = Auditor::start(p.clone(), f.clock.clone()).await.unwrap();
    for i in 0..3 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    proxy.set(true).await; // keep accepting: the drain may start at once
    proxy.lose_the_next_commit_answer();
    for i in 3..10 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    assert!(!proxy.commit_answer_pending());
    drained(&a).await;
    a.close(Duration::from_secs(5)).await;
    each_once(table_requests(&f, &table, &p.trusted).await, 10);
    assert!(list_segments(&f.path("spool")).unwrap().is_empty());
    assert!(!f.path("spool").join("IN-DOUBT.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_move_whose_answer_is_lost_is_not_moved_twice() {
    let f = Fixture::new();
    let table = table_name("lostmove");
    let (proxy, p) = through_proxy(&f, &table, "on_failure = \"spool\"\nspool_dir = \"spool\"").await;
    let a = Auditor::start(p.clone(), f.clock.clone()).await.unwrap();
    a.admit().await.unwrap().record(request(0)).await.unwrap();
    proxy.set(false).await;
    for i in 1..8 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    assert!(a.is_spooling());
    // The database returns; the first move of the spool commits, and its
    // answer is lost.
    proxy.lose_the_next_commit_answer();
    proxy.set(true).await;
    drained(&a).await;
    assert!(!proxy.commit_answer_pending(), "the move was not cut");
    a.close(Duration::from_secs(5)).await;
    each_once(table_requests(&f, &table, &p.trusted).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_left_from_an_earlier_spool_is_not_applied_to_a_new_one() {
    // A crash can leave IN-DOUBT.json behind (its segment moved and gone).
    // Read by the next episode's drain, it would skip that many of the new
    // segment's events: they would never reach the table.
    let f = Fixture::new();
    let table = table_name("stalenote");
    let (proxy, p) = through_proxy(&f, &table, "on_failure = \"spool\"\nspool_dir = \"spool\"").await;
    let a = Auditor::start(p.clone(), f.clock.clone()).await.unwrap();
    a.admit().await.unwrap().record(request(0)).await.unwrap();
    std::fs::create_dir_all(f.path("spool")).unwrap();
    std::fs::write(
        f.path("spool").join("IN-DOUBT.json"),
        r#"{"known":3,"doubt":null}"#,
    )
    .unwrap();
    proxy.set(false).await;
    for i in 1..8 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    assert!(a.is_spooling());
    proxy.set(true).await;
    drained(&a).await;
    a.close(Duration::from_secs(5)).await;
    each_once(table_requests(&f, &table, &p.trusted).await, 8);
    assert!(!f.path("spool").join("IN-DOUBT.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_keeps_records_while_the_database_is_away_and_moves_them_back() {
    let f = Fixture::new();
    let table = table_name("spool");
    let (proxy, p) = through_proxy(&f, &table, "on_failure = \"spool\"\nspool_dir = \"spool\"").await;
    let a = Auditor::start(p.clone(), f.clock.clone()).await.unwrap();
    for i in 0..5 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    proxy.set(false).await;
    // While the database is away: admitted, answered, spooled to disk.
    for i in 5..25 {
        a.admit().await.unwrap().record(request(i)).await.unwrap();
    }
    assert!(a.is_spooling());
    assert!(!list_segments(&f.path("spool")).unwrap().is_empty());
    proxy.set(true).await;
    drained(&a).await;
    a.close(Duration::from_secs(5)).await;
    each_once(table_requests(&f, &table, &p.trusted).await, 25);
    assert!(list_segments(&f.path("spool")).unwrap().is_empty());
}

// === Redaction: no secret in anything written ===

/// Secrets of every kind the detectors know, each with what must not
/// appear of it.
pub(crate) fn secret_corpus() -> Vec<(&'static str, &'static str)> {
    vec![
        ("4111 1111 1111 1111", "4111111111111111"),
        ("5555-5555-5555-4444", "5555555555554444"),
        ("378282246310005", "378282246310005"),
        ("6011111111111117", "6011111111111117"),
        ("3530111333300000", "3530111333300000"),
        ("DE89370400440532013000", "370400440532013000"),
        ("GB29 NWBK 6016 1331 9268 19", "60161331926819"),
        ("FR1420041010050500013M02606", "20041010050500013"),
        ("NL91ABNA0417164300", "ABNA041716"),
        ("alice.smith@example.com", "alice.smith"),
        ("+44 20 7946 0958", "7946 0958"),
        (
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjdXN0b21lci1hIn0.c2lnbmF0dXJlLXNlY3JldA",
            "c2lnbmF0dXJlLXNlY3JldA",
        ),
        ("Bearer h7Jq2XyZ9pLmN4vB8rT1", "h7Jq2XyZ9pLmN4vB8rT1"),
        (
            "rk_abcdefghijkl_s3cr3tK3yM4terial0987654321zyxw",
            "s3cr3tK3yM4terial",
        ),
        ("password=Hunter2Correct", "Hunter2Correct"),
        ("session=cookieValue9137", "cookieValue9137"),
        ("access_token=opaqueTok3nValue", "opaqueTok3nValue"),
    ]
}

fn grep(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    let digits_only: String = needle.chars().filter(char::is_ascii_digit).collect();
    let has = |x: &[u8]| !x.is_empty() && haystack.windows(x.len()).any(|w| w == x);
    has(n) || (digits_only.len() >= 12 && has(digits_only.as_bytes()))
}

#[tokio::test]
async fn no_secret_reaches_the_segments_the_exports_or_the_database() {
    let f = Fixture::new();
    let table = table_name("redact");
    // A UDP socket standing in for syslog: real datagrams over loopback.
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let exports = format!(
        "[[audit.export]]\nkind = \"file\"\npath = \"siem.jsonl\"\n[[audit.export]]\nkind = \"syslog\"\naddress = \"udp://{}\"\n",
        syslog.local_addr().unwrap()
    );
    let file_policy = Arc::new(policy(f.dir.path(), &format!("{}{exports}", file_section(""))));
    let pg_policy = Arc::new(policy(f.dir.path(), &pg_section(&table, "")));
    let files = Auditor::start(file_policy.clone(), f.clock.clone())
        .await
        .unwrap();
    let pg = Auditor::start(pg_policy.clone(), f.clock.clone()).await.unwrap();
    for (secret, _) in secret_corpus() {
        for a in [&files, &pg] {
            let mut ex = crate::exchange::test_exchange("192.0.2.1:1", true);
            ex.path = Some(format!("/v1/lookup/{}", secret.replace(' ', "%20")));
            ex.query = Some(crate::redact::redact_query(
                &format!("page=1&q={secret}&to={secret}"),
                &file_policy.config.query_params,
            ));
            ex.cause = Some(format!("upstream said: invalid value {secret}"));
            ex.outcome = "invalid-request";
            let ev = Event::Request(Box::new(RequestEvent::from_exchange(
                &ex,
                400,
                Duration::ZERO,
                None,
            )));
            a.admit().await.unwrap().record(ev).await.unwrap();
            a.admin_action(
                &format!("operator {secret}"),
                "revoke",
                secret,
                &format!("failed: {secret}"),
            )
            .await
            .unwrap();
        }
    }
    files.close(Duration::from_secs(5)).await;
    pg.close(Duration::from_secs(5)).await;
    // Everything each sink wrote, decrypted where it is encrypted.
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut plain = Vec::new();
    super::verify::scan_dir(&f.path("trail"), file_policy.keys.as_ref(), |item| {
        if let super::verify::Item::Entry { body, .. } = item {
            plain.extend_from_slice(body);
        }
        Ok::<(), ()>(())
    })
    .unwrap()
    .unwrap();
    assert!(plain.len() > 1000);
    outputs.push(("segments (decrypted)".into(), plain));
    for entry in std::fs::read_dir(f.path("trail")).unwrap() {
        let p = entry.unwrap().path();
        outputs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    outputs.push(("siem.jsonl".into(), std::fs::read(f.path("siem.jsonl")).unwrap()));
    let mut datagrams = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = syslog.recv(&mut buf) {
        datagrams.extend_from_slice(&buf[..n]);
        if datagrams.windows(8).filter(|w| w == b"\"kind\":\"").count() > 50 {
            break;
        }
    }
    assert!(
        datagrams.starts_with(b"<110>1 "),
        "{}",
        String::from_utf8_lossy(&datagrams[..40.min(datagrams.len())])
    );
    outputs.push(("syslog".into(), datagrams));
    let mut sink = pg_sink(&f, &table).await;
    let mut rows = Vec::new();
    sink.scan(|_, _, body| {
        rows.extend_from_slice(body.as_bytes());
        Ok::<bool, ()>(true)
    })
    .await
    .unwrap()
    .unwrap();
    outputs.push(("postgres".into(), rows));
    sink.drop_tables().await.unwrap();
    for (name, bytes) in &outputs {
        for (secret, core) in secret_corpus() {
            assert!(!grep(bytes, core), "{core:?} (of {secret:?}) found in {name}");
        }
    }
    // And the masked forms are there (the detectors ran, not a blanket drop).
    let siem =
        String::from_utf8_lossy(&outputs.iter().find(|(n, _)| n == "siem.jsonl").unwrap().1).into_owned();
    for masked in [
        "**** **** **** 1111",
        "DE89 **** **** **** 3000",
        "[email]",
        "[jwt]",
        "Bearer [redacted]",
    ] {
        assert!(siem.contains(masked), "{masked} not in the export");
    }
}

#[test]
fn linking_is_deterministic_and_checkpoints_sign_the_entry_before() {
    let dir = tempfile::tempdir().unwrap();
    write_keys(dir.path(), "s1");
    let p = policy(dir.path(), &file_section(""));
    let pending: Vec<Pending> = (0..3)
        .map(|i| Pending::Event {
            time: timestamp(std::time::UNIX_EPOCH + Duration::from_secs(i)),
            event: request(usize::try_from(i).unwrap()),
        })
        .chain([Pending::Checkpoint {
            time: timestamp(std::time::UNIX_EPOCH),
        }])
        .collect();
    let (mut h1, mut h2) = (Head::default(), Head::default());
    let a = link_all(&mut h1, None, &p.signer, &pending).unwrap();
    let b = link_all(&mut h2, None, &p.signer, &pending).unwrap();
    assert_eq!(a, b, "Ed25519 and the JSON are deterministic");
    assert_eq!(h1.seq, 4);
    let mut v = super::verify::Verifier::new(&p.trusted, None).unwrap();
    for l in &a {
        v.push("test", &l.hash, &l.body).unwrap();
    }
    let r = v.finish().unwrap();
    assert_eq!((r.entries, r.checkpoints), (4, 1));
}

// === Property: no secret from the input in any sink's output ===

mod secrets_never_appear {
    use proptest::prelude::*;

    use super::super::record::{json_line, link, AdminEvent, Event, Head, RequestEvent};
    use crate::redact::{luhn_valid, redact_query, redact_url_part};

    /// A card number of a known brand, Luhn-valid, written plainly or in
    /// groups; and its digits (which must never appear).
    fn card() -> impl Strategy<Value = (String, String)> {
        let brands = prop::sample::select(vec![
            ("4", 16),
            ("51", 16),
            ("55", 16),
            ("34", 15),
            ("37", 15),
            ("6011", 16),
            ("35", 16),
            ("4", 13),
            ("62", 19),
        ]);
        (
            brands,
            prop::collection::vec(0u8..10, 18),
            prop::sample::select(vec!["", " ", "-"]),
        )
            .prop_map(|((prefix, len), digits, sep)| {
                let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
                d.extend(digits.iter().take(len - 1 - d.len()));
                // The check digit that makes it Luhn-valid.
                let body: String = d.iter().map(|x| char::from(b'0' + x)).collect();
                let plain = (0..10)
                    .map(|c| format!("{body}{c}"))
                    .find(|p| luhn_valid(p))
                    .unwrap();
                assert!(luhn_valid(&plain), "{plain}");
                let written = if sep.is_empty() {
                    plain.clone()
                } else {
                    plain
                        .as_bytes()
                        .chunks(4)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<Vec<_>>()
                        .join(sep)
                };
                (written, plain[..plain.len() - 4].to_string())
            })
    }

    /// A valid IBAN of several countries (digit BBANs), electronic or
    /// printed form; and its BBAN without the last four.
    fn iban() -> impl Strategy<Value = (String, String)> {
        let countries = prop::sample::select(vec![
            ("DE", 18),
            ("FR", 23),
            ("NL", 14),
            ("ES", 20),
            ("IT", 23),
            ("BE", 12),
            ("NO", 11),
            ("AT", 16),
            ("PL", 24),
        ]);
        (countries, prop::collection::vec(0u8..10, 24), any::<bool>()).prop_map(
            |((cc, len), digits, printed)| {
                let bban: String = digits.iter().take(len).map(|x| char::from(b'0' + x)).collect();
                let mut rem: u32 = 0;
                for c in bban.chars().chain(cc.chars()).chain("00".chars()) {
                    let v = c.to_digit(36).unwrap();
                    rem = if v >= 10 {
                        (rem * 100 + v) % 97
                    } else {
                        (rem * 10 + v) % 97
                    };
                }
                let iban = format!("{cc}{:02}{bban}", 98 - rem);
                assert!(crate::redact::iban_valid(&iban), "{iban}");
                let written = if printed {
                    iban.as_bytes()
                        .chunks(4)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    iban.clone()
                };
                (written, bban[..bban.len() - 4].to_string())
            },
        )
    }

    fn email() -> impl Strategy<Value = (String, String)> {
        (
            "[a-z][a-z0-9]{3,8}[._][a-z0-9]{3,8}",
            "[a-z]{3,10}",
            "(com|org|bank|co\\.uk|de)",
        )
            .prop_map(|(local, domain, tld)| (format!("{local}@{domain}.{tld}"), local))
    }

    fn jwt() -> impl Strategy<Value = (String, String)> {
        (
            "[A-Za-z0-9_-]{10,40}",
            "[A-Za-z0-9_-]{16,60}",
            "[A-Za-z0-9_-]{20,60}",
        )
            .prop_map(|(h, p, s)| (format!("eyJ{h}.eyJ{p}.{s}"), s))
    }

    fn bearer() -> impl Strategy<Value = (String, String)> {
        ("(Bearer|DPoP|bearer)", "[A-Za-z]{12,30}[0-9][A-Za-z0-9]{4,10}")
            .prop_map(|(scheme, t)| (format!("{scheme} {t}"), t))
    }

    fn api_key() -> impl Strategy<Value = (String, String)> {
        ("[a-z2-7]{12}", "[A-Za-z0-9]{40}").prop_map(|(id, secret)| (format!("rk_{id}_{secret}"), secret))
    }

    fn password() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(vec![
                "password",
                "passwd",
                "pwd",
                "client_secret",
                "api_key",
                "token",
                "secret",
                "sessionid",
                "PASSWORD",
            ]),
            prop::sample::select(vec!["=", ": ", "\":\"", "=\""]),
            "[A-Za-z0-9!*_-]{10,24}",
        )
            .prop_map(|(k, sep, v)| (format!("{k}{sep}{v}"), v))
    }

    fn cookie() -> impl Strategy<Value = (String, String)> {
        ("(Cookie|cookie|Set-Cookie)", "[A-Za-z0-9]{12,24}")
            .prop_map(|(h, v)| (format!("{h}: sid={v}; theme=dark"), v))
    }

    fn phone() -> impl Strategy<Value = (String, String)> {
        ("[1-9][0-9]{0,2}", "[0-9]{3}", "[0-9]{7,8}").prop_map(|(cc, a, b)| (format!("+{cc} {a} {b}"), b))
    }

    fn secret() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            card(),
            iban(),
            email(),
            jwt(),
            bearer(),
            api_key(),
            password(),
            cookie(),
            phone()
        ]
    }

    fn context() -> impl Strategy<Value = (String, String, String, String)> {
        let sep = prop::sample::select(vec![" ", "/", "=", ", ", "\n", "(", "\"", ": ", "\t"]);
        ("[a-z ]{0,16}", sep.clone(), sep, "[a-z ]{0,16}")
            .prop_map(|(a, b, c, d)| (a, b.to_string(), c.to_string(), d))
    }

    /// What every sink writes for an entry (segment body, JSON lines to
    /// stdout/file/syslog, the PostgreSQL body): `json_line` of its link.
    fn written(event: Event) -> String {
        let mut head = Head::default();
        json_line(&link(&mut head, "2026-01-01T00:00:00.000Z", Some("node-1"), &event).unwrap())
    }

    #[track_caller]
    fn absent(out: &str, core: &str) {
        let digits: String = core.chars().filter(char::is_ascii_digit).collect();
        assert!(!out.contains(core), "{core:?} in {out}");
        if digits.len() >= 9 && digits.len() == core.len() {
            let out_digits: String = out
                .split(|c: char| !c.is_ascii_digit())
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                !out_digits.split(' ').any(|run| run.contains(&digits)),
                "{digits} in {out}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn in_paths_queries_causes_and_admin_records((secret, core) in secret(), (pre, s1, s2, post) in context()) {
            let text = format!("{pre}{s1}{secret}{s2}{post}");
            let mut ex = crate::exchange::test_exchange("192.0.2.1:1", true);
            ex.path = Some(format!("/v1/x/{}", secret.replace(' ', "%20")));
            ex.query = Some(redact_query(&format!("page={}&q={}", secret.replace(' ', "+"), secret), &["page".to_string()]));
            ex.cause = Some(text.clone());
            ex.outcome = "invalid-request";
            let request = written(Event::Request(Box::new(RequestEvent::from_exchange(&ex, 400, std::time::Duration::ZERO, None))));
            absent(&request, &core);
            let admin = written(Event::Admin(AdminEvent {
                actor: crate::redact::redact(&text).into_owned(),
                action: "revoke".into(),
                target: crate::redact::redact(&text).into_owned(),
                outcome: crate::redact::redact(&text).into_owned(),
            }));
            absent(&admin, &core);
            // The access log's path.
            absent(&redact_url_part(&format!("/v1/x/{}", secret.replace(' ', "%20"))), &core);
        }
    }
}
