//! Verification: replays a trail and names the first entry that is not what
//! the chain says it must be.
//!
//! For each entry, in order: its stored hash must be the SHA-256 of its
//! body (else it was *modified*); its sequence number must be the next one
//! (else one was *deleted*, *inserted* or *moved*); its `prev` must be the
//! previous entry's hash (else the chain is *broken*); a checkpoint's
//! Ed25519 signature must verify with a trusted key over exactly the entry
//! before it. At the end the signed head (written after every commit) must
//! be covered: an entry it names that is missing means the trail was
//! *truncated*. A trail that does not start at 1 must be accounted for by
//! a retention record. The same [`Verifier`] checks segment files and the
//! PostgreSQL table.
//!
//! Threat answered: an edit, deletion, insertion, reordering or truncation
//! of the trail going unnoticed. How it fails: it stops at the first
//! problem and reports it ([`Problem`], exit 1); a trail that cannot be read
//! at all (no directory, unknown key, unreachable database) is
//! [`VerifyFailure::Unreadable`] (exit 2). A write cut short by a crash is a
//! warning, not a problem: nothing in it was ever acknowledged, and the
//! head shows whether anything acknowledged is missing.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::crypto::{KeyProvider, TrustedKeys};
use super::record::{
    checkpoint_message, hex, parse_hash, sha256, Entry, Event, Hash, CHECKPOINT_LABEL, GENESIS, HEAD_LABEL,
};
use super::segment::{list_segments, read_segment, Frame, HEAD_FILE};

/// The head of the trail as last committed, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// Last sequence number committed.
    pub seq: u64,
    /// Its hash (hex).
    pub hash: String,
    /// When (RFC 3339).
    pub time: String,
    /// Signing key id.
    pub key_id: String,
    /// Ed25519 signature (base64url) over the head message.
    pub signature: String,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An entry's content does not match its hash, or its frame does not
    /// authenticate.
    Modified,
    /// A sequence number is not where it must be (deleted, inserted or
    /// moved entries).
    Sequence,
    /// An entry's `prev` is not its predecessor's hash.
    ChainBroken,
    /// A checkpoint does not verify.
    BadCheckpoint,
    /// Entries the signed head covers are missing at the end.
    Truncated,
    /// The gateway recorded, at a restart, that entries were lost.
    Lost,
    /// The signed head itself does not verify.
    BadHead,
}

impl Fault {
    /// A word for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Modified => "modified",
            Fault::Sequence => "deleted, inserted or reordered",
            Fault::ChainBroken => "chain broken",
            Fault::BadCheckpoint => "bad checkpoint",
            Fault::Truncated => "truncated",
            Fault::Lost => "lost",
            Fault::BadHead => "bad head",
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first sequence number that is not as it must be.
    pub seq: u64,
    /// What kind of problem.
    pub fault: Fault,
    /// What exactly, and where (segment file or table).
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {}: {}: {}", self.seq, self.fault.as_str(), self.detail)
    }
}

/// Why verification did not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// The trail is not as written: exit 1.
    #[error("{0}")]
    Bad(Problem),
    /// The trail could not be read at all: exit 2.
    #[error("{0}")]
    Unreadable(String),
}

impl From<Problem> for VerifyFailure {
    fn from(p: Problem) -> Self {
        Self::Bad(p)
    }
}

/// What a successful verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// First sequence number (1, or the first kept after retention).
    pub first: u64,
    /// Last sequence number.
    pub last: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Sequence number of the last checkpoint.
    pub last_checkpoint: u64,
    /// Keys that signed them.
    pub key_ids: BTreeSet<String>,
    /// Segments read (files only).
    pub segments: u64,
    /// The signed head's sequence number, if there was one.
    pub head: Option<u64>,
    /// Things that are not problems but worth knowing (torn writes).
    pub warnings: Vec<String>,
}

/// Checks entries pushed in order.
#[derive(Debug)]
pub struct Verifier<'k> {
    trusted: &'k TrustedKeys,
    expected: u64,
    prev: Hash,
    first: Option<(u64, String)>,
    anchor: Option<(u64, String)>,
    head: Option<(u64, Hash)>,
    report: Report,
}

impl<'k> Verifier<'k> {
    /// A verifier trusting `trusted`, checking against `head` if the trail
    /// has one (its signature is checked here).
    pub fn new(trusted: &'k TrustedKeys, head: Option<&SignedHead>) -> Result<Self, Problem> {
        let mut report = Report::default();
        let head = match head {
            None => None,
            Some(h) => {
                let bad = |detail: String| Problem {
                    seq: h.seq,
                    fault: Fault::BadHead,
                    detail,
                };
                let hash = parse_hash(&h.hash).ok_or_else(|| bad("its hash is not 64 hex digits".into()))?;
                trusted
                    .verify(
                        &h.key_id,
                        &checkpoint_message(HEAD_LABEL, h.seq, &hash),
                        &h.signature,
                    )
                    .map_err(|why| bad(format!("signed head: {why}")))?;
                report.head = Some(h.seq);
                Some((h.seq, hash))
            }
        };
        Ok(Self {
            trusted,
            expected: 1,
            prev: GENESIS,
            first: None,
            anchor: None,
            head,
            report,
        })
    }

    /// The sequence number the next entry must have.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// A frame at `location` that did not authenticate (or a row that is
    /// not an entry): the entry expected there was modified.
    pub fn corrupt(&self, location: &str) -> Problem {
        Problem {
            seq: self.expected,
            fault: Fault::Modified,
            detail: format!(
                "{location}: the entry does not decrypt or authenticate (its bytes were changed)"
            ),
        }
    }

    /// Notes a warning.
    pub fn warn(&mut self, warning: String) {
        self.report.warnings.push(warning);
    }

    /// Checks the next entry: its stored `hash` and `body`, found at
    /// `location`.
    pub fn push(&mut self, location: &str, hash: &Hash, body: &[u8]) -> Result<(), Problem> {
        let at = |seq: u64, fault: Fault, detail: String| Problem {
            seq,
            fault,
            detail: format!("{location}: {detail}"),
        };
        let entry: Entry = serde_json::from_slice(body).map_err(|e| {
            at(
                self.expected,
                Fault::Modified,
                format!("the entry is not a valid record ({e})"),
            )
        })?;
        let computed = sha256(body);
        if self.first.is_none() {
            // The first entry present sets the start (1, or a retention
            // anchor checked at the end).
            self.first = Some((entry.seq, entry.prev.clone()));
            self.expected = entry.seq;
            self.prev = parse_hash(&entry.prev).unwrap_or(GENESIS);
            self.report.first = entry.seq;
        }
        if computed != *hash {
            return Err(at(
                if entry.seq == self.expected {
                    entry.seq
                } else {
                    self.expected
                },
                Fault::Modified,
                "its content does not match its hash".into(),
            ));
        }
        if entry.seq != self.expected {
            let what = if entry.seq > self.expected {
                format!(
                    "found entry {} where {} must be: entries {}..{} are missing or moved",
                    entry.seq,
                    self.expected,
                    self.expected,
                    entry.seq - 1
                )
            } else {
                format!(
                    "found entry {} again where {} must be: an entry was inserted, duplicated or moved",
                    entry.seq, self.expected
                )
            };
            return Err(at(self.expected, Fault::Sequence, what));
        }
        if entry.prev != hex(&self.prev) {
            return Err(at(
                entry.seq,
                Fault::ChainBroken,
                format!(
                    "its prev hash does not match entry {}: an entry before it was changed or replaced",
                    entry.seq.saturating_sub(1)
                ),
            ));
        }
        match &entry.event {
            Event::Checkpoint(c) => {
                if c.covers + 1 != entry.seq || c.hash != entry.prev {
                    return Err(at(
                        entry.seq,
                        Fault::BadCheckpoint,
                        "the checkpoint does not cover the entry before it".into(),
                    ));
                }
                self.trusted
                    .verify(
                        &c.key_id,
                        &checkpoint_message(CHECKPOINT_LABEL, c.covers, &self.prev),
                        &c.signature,
                    )
                    .map_err(|why| at(entry.seq, Fault::BadCheckpoint, why))?;
                self.report.checkpoints += 1;
                self.report.last_checkpoint = entry.seq;
                self.report.key_ids.insert(c.key_id.clone());
            }
            Event::Start(s) => {
                if let Some([from, to]) = s.lost {
                    return Err(at(
                        from,
                        Fault::Lost,
                        format!(
                            "at the restart recorded in entry {}, the gateway found entries {from}..{to} \
                             (covered by the signed head) missing from its files",
                            entry.seq
                        ),
                    ));
                }
            }
            Event::Retention(r) => {
                self.anchor = Some((r.first_kept, r.first_kept_prev.clone()));
            }
            _ => {}
        }
        if let Some((seq, h)) = self.head {
            if seq == entry.seq && h != computed {
                return Err(at(
                    seq,
                    Fault::Modified,
                    "the signed head names another hash for this entry".into(),
                ));
            }
        }
        self.prev = computed;
        self.expected = entry.seq + 1;
        self.report.entries += 1;
        self.report.last = entry.seq;
        Ok(())
    }

    /// Ends the check: the start and the end of the trail.
    pub fn finish(mut self) -> Result<Report, Problem> {
        if let Some((first, prev)) = &self.first {
            let anchored = *first == 1 && *prev == hex(&GENESIS)
                || self
                    .anchor
                    .as_ref()
                    .is_some_and(|(seq, p)| seq == first && p == prev);
            if !anchored {
                return Err(Problem {
                    seq: 1,
                    fault: Fault::Sequence,
                    detail: format!(
                        "the trail starts at entry {first}, and no retention record accounts for the entries before"
                    ),
                });
            }
        }
        if let Some((seq, _)) = self.head {
            if seq >= self.expected {
                return Err(Problem {
                    seq: self.expected,
                    fault: Fault::Truncated,
                    detail: format!(
                        "the signed head covers entries up to {seq}, the trail ends at {}",
                        self.expected - 1
                    ),
                });
            }
        }
        self.report.first = self.first.as_ref().map_or(0, |(s, _)| *s);
        Ok(self.report)
    }
}

/// Reads the signed head of a trail directory, if there is one.
pub fn read_head(dir: &Path) -> Result<Option<SignedHead>, VerifyFailure> {
    let path = dir.join(HEAD_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            VerifyFailure::Bad(Problem {
                seq: 0,
                fault: Fault::BadHead,
                detail: format!("{}: not a signed head ({e})", path.display()),
            })
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VerifyFailure::Unreadable(format!("{}: {e}", path.display()))),
    }
}

/// Everything read from a trail, in order.
pub enum Item<'a> {
    /// An entry that opened.
    Entry {
        /// Where (file).
        location: &'a str,
        /// Stored hash.
        hash: &'a Hash,
        /// Body.
        body: &'a [u8],
    },
    /// A frame that did not open.
    Corrupt {
        /// Where.
        location: &'a str,
    },
    /// A write cut short.
    Torn {
        /// Where.
        location: &'a str,
        /// How many bytes.
        bytes: u64,
    },
}

/// Reads every segment of `dir` in order and hands each item to `visit`;
/// stops at the first error `visit` returns. Returns the number of segments.
pub fn scan_dir<E>(
    dir: &Path,
    keys: &dyn KeyProvider,
    mut visit: impl FnMut(Item<'_>) -> Result<(), E>,
) -> Result<Result<u64, E>, VerifyFailure> {
    if !dir.is_dir() {
        return Err(VerifyFailure::Unreadable(format!(
            "{}: no audit trail here (not a directory)",
            dir.display()
        )));
    }
    let segments = list_segments(dir).map_err(|e| VerifyFailure::Unreadable(e.to_string()))?;
    for (_, path) in &segments {
        let location = path.display().to_string();
        let contents = match read_segment(path, keys) {
            Ok(c) => c,
            Err(super::segment::SegmentError::Io { path, source }) => {
                return Err(VerifyFailure::Unreadable(format!("{}: {source}", path.display())))
            }
            Err(e @ super::segment::SegmentError::Crypto(_)) => {
                return Err(VerifyFailure::Unreadable(format!("{location}: {e}")))
            }
            Err(e) => {
                if let Err(e) = visit(Item::Corrupt {
                    location: &format!("{location} (header: {e})"),
                }) {
                    return Ok(Err(e));
                }
                continue;
            }
        };
        for (i, frame) in contents.frames.iter().enumerate() {
            let location = format!("{location} frame {i}");
            let item = match frame {
                Frame::Entry { hash, body } => Item::Entry {
                    location: &location,
                    hash,
                    body,
                },
                Frame::Corrupt => Item::Corrupt { location: &location },
            };
            if let Err(e) = visit(item) {
                return Ok(Err(e));
            }
        }
        if contents.torn_bytes > 0 {
            if let Err(e) = visit(Item::Torn {
                location: &location,
                bytes: contents.torn_bytes,
            }) {
                return Ok(Err(e));
            }
        }
    }
    Ok(Ok(segments.len() as u64))
}

/// Verifies the trail in `dir` (segments and signed head).
pub fn verify_dir(
    dir: &Path,
    keys: &dyn KeyProvider,
    trusted: &TrustedKeys,
) -> Result<Report, VerifyFailure> {
    let head = read_head(dir)?;
    let mut v = Verifier::new(trusted, head.as_ref())?;
    let segments = scan_dir(dir, keys, |item| match item {
        Item::Entry { location, hash, body } => v.push(location, hash, body),
        Item::Corrupt { location } => Err(v.corrupt(location)),
        Item::Torn { location, bytes } => {
            v.warn(format!(
                "{location}: {bytes} byte(s) of an incomplete last write (a crash mid-write; never acknowledged)"
            ));
            Ok(())
        }
    })??;
    let mut report = v.finish()?;
    report.segments = segments;
    Ok(report)
}
