//! The file sink: a trail directory of encrypted segments and its signed
//! head, written by one process.
//!
//! At open it finds where the chain ended (the last whole frame of the last
//! segment), cuts off an incomplete last write (a crash mid-write; never
//! acknowledged), compares with the signed head (entries the head covers
//! but the files lack are reported in the start record, and `verify` fails
//! on them), and continues in a new segment. Segments rotate by size and
//! age; closed segments past the retention age are deleted after a
//! retention record says so.
//!
//! Threat answered: losing or silently rewriting the trail across crashes
//! and restarts. How it fails: an I/O error is an [`AuditError::Sink`]; the
//! segment it happened in takes nothing more and the next append opens a
//! new one, so a failed write never leaves a hole in the middle of a
//! segment.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::crypto::{KeyProvider, Signer};
use super::error::AuditError;
use super::record::{
    parse_hash, sha256, sign_head, timestamp, Entry, Head, Link, RetentionEvent, StartEvent,
};
use super::segment::{ensure_dir, list_segments, read_segment, sync_dir, Frame, SegmentWriter, HEAD_FILE};
use super::verify::read_head;

/// A trail directory being written.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    keys: Arc<dyn KeyProvider>,
    signer: Arc<Signer>,
    current: Option<SegmentWriter>,
    next_number: u64,
    head: Head,
    max_bytes: u64,
    max_age: Duration,
}

pub(super) fn sink_err(dir: &Path, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Sink {
        location: dir.display().to_string(),
        reason: reason.to_string(),
    }
}

impl FileSink {
    /// Opens (or creates) the trail in `dir`; returns the sink and the start
    /// record to append first.
    pub fn open(
        dir: &Path,
        keys: Arc<dyn KeyProvider>,
        signer: Arc<Signer>,
        max_bytes: u64,
        max_age: Duration,
    ) -> Result<(Self, StartEvent), AuditError> {
        ensure_dir(dir).map_err(|e| sink_err(dir, e))?;
        let segments = list_segments(dir).map_err(|e| sink_err(dir, e))?;
        let mut head = Head::default();
        let mut torn_bytes = 0;
        // The last segment with a whole frame holds the chain's end.
        for (i, (_, path)) in segments.iter().enumerate().rev() {
            let contents = read_segment(path, keys.as_ref())
                .map_err(|e| sink_err(dir, format!("cannot continue the trail: {e}")))?;
            if i + 1 == segments.len() && contents.torn_bytes > 0 {
                // Never acknowledged: cut, and say so in the start record.
                torn_bytes = contents.torn_bytes;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| sink_err(dir, format!("{}: {e}", path.display())))?;
                f.set_len(contents.whole_len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| sink_err(dir, format!("{}: {e}", path.display())))?;
            }
            let last = contents.frames.iter().rev().find_map(|f| match f {
                Frame::Entry { hash, body } => Some((*hash, body)),
                Frame::Corrupt => None,
            });
            if let Some((hash, body)) = last {
                let entry: Entry = serde_json::from_slice(body).map_err(|e| {
                    sink_err(
                        dir,
                        format!("{}: the last entry does not parse: {e}", path.display()),
                    )
                })?;
                if sha256(body) != hash {
                    return Err(sink_err(
                        dir,
                        format!(
                            "{}: the last entry does not match its hash; run `rampart audit verify`",
                            path.display()
                        ),
                    ));
                }
                head = Head { seq: entry.seq, hash };
                break;
            }
        }
        let signed = read_head(dir).map_err(|e| sink_err(dir, e))?;
        let lost = signed
            .as_ref()
            .filter(|h| h.seq > head.seq)
            .map(|h| [head.seq + 1, h.seq]);
        if let Some([from, to]) = lost {
            tracing::error!(
                target: "rampart::audit",
                dir = %dir.display(),
                from, to,
                "the audit trail's signed head covers entries its files no longer hold; recorded in the start entry"
            );
        }
        if let (Some(h), None) = (&signed, lost) {
            if h.seq == head.seq && parse_hash(&h.hash) != Some(head.hash) {
                return Err(sink_err(
                    dir,
                    "the signed head does not match the last entry; run `rampart audit verify`",
                ));
            }
        }
        let next_number = segments.last().map_or(1, |(n, _)| n + 1);
        let start = StartEvent {
            version: env!("CARGO_PKG_VERSION").to_string(),
            resumed_after: Some(head.seq),
            torn_bytes,
            lost,
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
                keys,
                signer,
                current: None,
                next_number,
                head,
                max_bytes,
                max_age,
            },
            start,
        ))
    }

    /// The committed end of the chain.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends links (chained after [`FileSink::head`]), opening a segment
    /// if none is open. The head moves only on success.
    pub fn append(&mut self, links: &[Link], now: SystemTime) -> Result<(), AuditError> {
        let (Some(first), Some(last)) = (links.first(), links.last()) else {
            return Ok(());
        };
        if self.current.as_ref().is_some_and(SegmentWriter::is_broken) {
            self.current = None;
        }
        let seg = match &mut self.current {
            Some(s) => s,
            None => {
                let s =
                    SegmentWriter::create(&self.dir, self.next_number, first.seq, now, self.keys.as_ref())
                        .map_err(|e| sink_err(&self.dir, e))?;
                self.next_number += 1;
                self.current.insert(s)
            }
        };
        seg.append(links).map_err(|e| sink_err(&self.dir, e))?;
        self.head = Head {
            seq: last.seq,
            hash: last.hash,
        };
        Ok(())
    }

    /// Takes back the last append (its fsync failed): the segment is cut
    /// back and closed, and the head returns to `before`.
    pub fn undo(&mut self, before: Head) {
        if let Some(s) = &mut self.current {
            s.undo();
        }
        self.current = None;
        self.head = before;
    }

    /// fsync of the open segment.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        match &mut self.current {
            Some(s) => s.sync().map_err(|e| sink_err(&self.dir, e)),
            None => Ok(()),
        }
    }

    /// Writes the signed head (after a commit). Atomic (rename); not
    /// fsynced: a head that lags after a power loss only covers less.
    pub fn write_head(&self, now: SystemTime) -> Result<(), AuditError> {
        let signed = sign_head(&self.signer, &self.head, &timestamp(now));
        let text = serde_json::to_vec_pretty(&signed).map_err(|e| sink_err(&self.dir, e))?;
        let tmp = self.dir.join(format!("{HEAD_FILE}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(HEAD_FILE)))
            .map_err(|e| sink_err(&self.dir, format!("{HEAD_FILE}: {e}")))
    }

    /// Whether the open segment should be closed (size or age).
    pub fn should_rotate(&self, now: SystemTime) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| !s.is_empty() && (s.len() >= self.max_bytes || s.age(now) >= self.max_age))
    }

    /// Closes the open segment (the next append opens a new one).
    pub fn rotate(&mut self) -> Result<(), AuditError> {
        let r = self.sync();
        self.current = None;
        r
    }

    /// Closed segments that were closed (the next one opened) before
    /// `now - retention`, and the anchor of what remains: the retention
    /// record to commit *before* [`FileSink::delete`].
    pub fn expired(
        &self,
        now: SystemTime,
        retention: Duration,
    ) -> Result<Option<(RetentionEvent, Vec<PathBuf>)>, AuditError> {
        let segments = list_segments(&self.dir).map_err(|e| sink_err(&self.dir, e))?;
        let open = self.current.as_ref().map(SegmentWriter::number);
        let cutoff = now.checked_sub(retention).unwrap_or(UNIX_EPOCH);
        let mut expired = Vec::new();
        for pair in segments.windows(2) {
            let (n, path) = &pair[0];
            let (_, next_path) = &pair[1];
            if Some(*n) == open {
                break;
            }
            // A segment is closed when the next one is created.
            let closed = header_time(next_path).unwrap_or(now);
            if closed >= cutoff {
                break;
            }
            expired.push((*n, path.clone()));
        }
        let (Some((first_n, _)), Some((last_n, _))) = (expired.first(), expired.last()) else {
            return Ok(None);
        };
        // The first entry kept anchors the shortened trail.
        let kept = segments.iter().find(|(n, _)| n > last_n);
        let Some((_, kept_path)) = kept else {
            return Ok(None);
        };
        let contents = read_segment(kept_path, self.keys.as_ref()).map_err(|e| sink_err(&self.dir, e))?;
        let Some(Frame::Entry { body, .. }) = contents.frames.first() else {
            return Ok(None);
        };
        let entry: Entry = serde_json::from_slice(body).map_err(|e| sink_err(&self.dir, e))?;
        Ok(Some((
            RetentionEvent {
                segments: [*first_n, *last_n],
                first_kept: entry.seq,
                first_kept_prev: entry.prev,
            },
            expired.into_iter().map(|(_, p)| p).collect(),
        )))
    }

    /// Deletes expired segments (after their retention record committed).
    pub fn delete(&self, paths: &[PathBuf]) -> Result<(), AuditError> {
        for p in paths {
            std::fs::remove_file(p).map_err(|e| sink_err(&self.dir, format!("{}: {e}", p.display())))?;
        }
        sync_dir(&self.dir).map_err(|e| sink_err(&self.dir, e))
    }

    /// Deletes every segment and the head (a drained spool).
    pub fn clear(&mut self) -> Result<(), AuditError> {
        self.current = None;
        let segments = list_segments(&self.dir).map_err(|e| sink_err(&self.dir, e))?;
        for (_, p) in &segments {
            std::fs::remove_file(p).map_err(|e| sink_err(&self.dir, format!("{}: {e}", p.display())))?;
        }
        let _ = std::fs::remove_file(self.dir.join(HEAD_FILE));
        self.head = Head::default();
        self.next_number = 1;
        Ok(())
    }

    /// Whether the trail holds any segment.
    pub fn has_segments(&self) -> bool {
        list_segments(&self.dir).is_ok_and(|s| !s.is_empty())
    }
}

/// When a segment was created, from its header.
fn header_time(path: &Path) -> Option<SystemTime> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 32];
    f.read_exact(&mut buf).ok()?;
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&buf[24..32]);
    Some(UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(ms)))
}
