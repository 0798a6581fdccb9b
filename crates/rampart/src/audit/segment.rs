//! Segment files: the on-disk form of the trail, encrypted at rest.
//!
//! A trail directory holds numbered segments (`000000000001.seg`, …) and
//! the signed head (`HEAD.json`). A segment is a header, then frames:
//!
//! ```text
//! header  "RMPAUD01" | segment u64 | first_seq u64 | created_ms u64
//!         | key_id_len u8 | key_id | wrapped_len u16 | wrapped data key
//! frame   len u32 | AES-256-GCM( hash[32] | entry body )   (nonce: frame index;
//!                                                          AAD: segment, index)
//! ```
//!
//! (integers big-endian). The data key is random per segment and wrapped by
//! the current master key with the header's first fields as additional
//! data, so a changed header does not unwrap. One frame holds one entry:
//! an edited byte makes exactly that frame fail to open, and `verify`
//! names its sequence number.
//!
//! Threat answered: the trail read or edited on disk. How it fails: a write
//! that fails is cut back to the last whole frame when the file allows it
//! (the writer then continues in a new segment); a frame cut short by a
//! crash is reported as a torn write, a frame that does not open as
//! corrupt, never skipped silently.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::crypto::{random_key, CryptoError, FrameCipher, KeyProvider};
use super::record::{Hash, Link};
use crate::secret::Secret;

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"RMPAUD01";
/// File name extension of segments.
pub const EXTENSION: &str = "seg";
/// The signed head's file name.
pub const HEAD_FILE: &str = "HEAD.json";
/// Largest frame accepted when reading (an entry is a few hundred bytes).
pub const MAX_FRAME: usize = 1 << 24;

/// Why a segment could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The header is not a segment header, or its key does not unwrap.
    #[error("{path}: {why}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A key problem.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The path of segment `number` in `dir`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.{EXTENSION}"))
}

/// The segments in `dir`, by number (other files are ignored).
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SegmentError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else {
            continue;
        };
        if stem.len() == 12 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = stem.parse() {
                out.push((n, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Segment number.
    pub number: u64,
    /// Sequence number of its first entry.
    pub first_seq: u64,
    /// When it was opened (Unix milliseconds).
    pub created_ms: u64,
    /// The master key its data key is wrapped with.
    pub key_id: String,
    /// The wrapped data key.
    pub wrapped: Vec<u8>,
}

impl Header {
    /// The fields the wrapped key is bound to.
    fn prefix(&self) -> Vec<u8> {
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&self.number.to_be_bytes());
        p.extend_from_slice(&self.first_seq.to_be_bytes());
        p.extend_from_slice(&self.created_ms.to_be_bytes());
        let id = self.key_id.as_bytes();
        p.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        p.extend_from_slice(&id[..id.len().min(255)]);
        p
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(&u16::try_from(self.wrapped.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.wrapped);
        out
    }

    /// Decodes a header at the start of `bytes`; returns it and its length.
    fn decode(bytes: &[u8]) -> Result<(Self, usize), String> {
        let short = || "too short for a segment header".to_string();
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err("not a Rampart audit segment (bad magic)".into());
        }
        let u64_at = |at: usize| -> Result<u64, String> {
            let s = bytes.get(at..at + 8).ok_or_else(short)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_be_bytes(a))
        };
        let number = u64_at(8)?;
        let first_seq = u64_at(16)?;
        let created_ms = u64_at(24)?;
        let id_len = usize::from(*bytes.get(32).ok_or_else(short)?);
        let id = bytes.get(33..33 + id_len).ok_or_else(short)?;
        let key_id = String::from_utf8(id.to_vec()).map_err(|_| "the key id is not UTF-8".to_string())?;
        let at = 33 + id_len;
        let wl = bytes.get(at..at + 2).ok_or_else(short)?;
        let wrapped_len = usize::from(u16::from_be_bytes([wl[0], wl[1]]));
        let wrapped = bytes
            .get(at + 2..at + 2 + wrapped_len)
            .ok_or_else(short)?
            .to_vec();
        Ok((
            Self {
                number,
                first_seq,
                created_ms,
                key_id,
                wrapped,
            },
            at + 2 + wrapped_len,
        ))
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Makes `dir` (owner-only) if it does not exist.
pub fn ensure_dir(dir: &Path) -> Result<(), SegmentError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Flushes a directory entry (a new or renamed file) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The segment being written.
#[derive(Debug)]
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    number: u64,
    cipher: FrameCipher,
    frames: u64,
    len: u64,
    created: SystemTime,
    /// The length before the last append (what [`SegmentWriter::undo`] cuts back to).
    before_last: u64,
    /// A write failed: nothing more goes here.
    broken: bool,
}

impl SegmentWriter {
    /// Creates segment `number` in `dir` (its first entry will be
    /// `first_seq`), with a new data key wrapped by the current master key;
    /// the header and the directory entry are synced before it is used.
    pub fn create(
        dir: &Path,
        number: u64,
        first_seq: u64,
        now: SystemTime,
        keys: &dyn KeyProvider,
    ) -> Result<Self, SegmentError> {
        let dk = Secret::new(random_key()?);
        let mut header = Header {
            number,
            first_seq,
            created_ms: unix_ms(now),
            key_id: keys.current_id().to_string(),
            wrapped: Vec::new(),
        };
        let (mut key_id, mut wrapped) = keys.wrap(dk.expose(), &header.prefix())?;
        if key_id != header.key_id {
            // The provider named another key (a KMS key version): bind that.
            header.key_id = key_id;
            (key_id, wrapped) = keys.wrap(dk.expose(), &header.prefix())?;
            if key_id != header.key_id {
                return Err(
                    CryptoError::BadKey("the key provider's current key keeps changing".into()).into(),
                );
            }
        }
        header.wrapped = wrapped;
        let path = segment_path(dir, number);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(io(&path))?;
        let bytes = header.encode();
        file.write_all(&bytes).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        sync_dir(dir)?;
        Ok(Self {
            file,
            cipher: FrameCipher::new(&dk, number)?,
            path,
            number,
            frames: 0,
            len: bytes.len() as u64,
            before_last: bytes.len() as u64,
            created: now,
            broken: false,
        })
    }

    /// Appends `links`, one frame each, in one write. On failure the file
    /// is cut back to its last whole frame if possible; either way this
    /// segment takes nothing more (the caller opens the next).
    pub fn append(&mut self, links: &[Link]) -> Result<(), SegmentError> {
        if self.broken {
            return Err(SegmentError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("an earlier write failed"),
            });
        }
        // Each frame: its length (4 bytes), then hash and body sealed in
        // place in the write buffer, with the tag after them.
        let mut buf = Vec::with_capacity(links.iter().map(|l| 4 + 32 + l.body.len() + 16).sum());
        let mut index = self.frames;
        for l in links {
            let len_at = buf.len();
            buf.extend_from_slice(&[0; 4]);
            let from = buf.len();
            buf.extend_from_slice(&l.hash);
            buf.extend_from_slice(&l.body);
            self.cipher.seal_tail(index, &mut buf, from)?;
            let len = u32::try_from(buf.len() - from).unwrap_or(u32::MAX);
            buf[len_at..from].copy_from_slice(&len.to_be_bytes());
            index += 1;
        }
        if let Err(e) = self.file.write_all(&buf) {
            self.broken = true;
            let _ = self.file.set_len(self.len);
            return Err(SegmentError::Io {
                path: self.path.clone(),
                source: e,
            });
        }
        self.frames = index;
        self.before_last = self.len;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Takes back the last append (its commit failed after the write): the
    /// file is cut to its length before it, and the segment takes nothing
    /// more.
    pub fn undo(&mut self) {
        self.broken = true;
        let _ = self.file.set_len(self.before_last);
        let _ = self.file.sync_data();
        self.len = self.before_last;
    }

    /// fsync: what was appended is on disk.
    pub fn sync(&mut self) -> Result<(), SegmentError> {
        if let Err(e) = self.file.sync_data() {
            self.broken = true;
            return Err(SegmentError::Io {
                path: self.path.clone(),
                source: e,
            });
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no frame yet.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// How long it has been open at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.created).unwrap_or_default()
    }

    /// Its number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Whether a failed write left it unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

/// Where each frame of a segment's bytes is (length prefix included), for
/// tools that inspect or repair a segment without its keys. `Err` if the
/// header does not parse.
pub fn frame_ranges(bytes: &[u8]) -> Result<Vec<std::ops::Range<usize>>, String> {
    let (_, mut at) = Header::decode(bytes)?;
    let mut out = Vec::new();
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        out.push(at..(at + 4 + len).min(bytes.len()));
        at += 4 + len;
    }
    Ok(out)
}

/// One frame as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// It opened: the stored hash and the entry body.
    Entry {
        /// The stored hash.
        hash: Hash,
        /// The entry's canonical JSON.
        body: Vec<u8>,
    },
    /// It did not authenticate (changed bytes, or moved from elsewhere).
    Corrupt,
}

/// A segment read back.
#[derive(Debug)]
pub struct SegmentContents {
    /// Its header.
    pub header: Header,
    /// Its frames, in order (reading stops at the first frame whose length
    /// is impossible, which is then the last, `Corrupt`).
    pub frames: Vec<Frame>,
    /// Bytes after the last whole frame (a write cut short).
    pub torn_bytes: u64,
    /// The length of the file up to the end of its last whole frame.
    pub whole_len: u64,
}

/// Reads and decrypts a whole segment.
pub fn read_segment(path: &Path, keys: &dyn KeyProvider) -> Result<SegmentContents, SegmentError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let header_err = |why: String| SegmentError::Header {
        path: path.to_path_buf(),
        why,
    };
    let (header, mut at) = Header::decode(&bytes).map_err(header_err)?;
    let dk = keys
        .unwrap(&header.key_id, &header.wrapped, &header.prefix())
        .map_err(|e| match e {
            CryptoError::UnknownKey(_) => SegmentError::Crypto(e),
            other => header_err(format!("the data key does not unwrap: {other}")),
        })?;
    let cipher = FrameCipher::new(&dk, header.number)?;
    let mut frames = Vec::new();
    let mut index = 0u64;
    let mut torn_bytes = 0;
    while at < bytes.len() {
        let Some(len) = bytes.get(at..at + 4) else {
            torn_bytes = (bytes.len() - at) as u64;
            break;
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if !(48..=MAX_FRAME).contains(&len) {
            frames.push(Frame::Corrupt);
            break;
        }
        let Some(sealed) = bytes.get(at + 4..at + 4 + len) else {
            torn_bytes = (bytes.len() - at) as u64;
            break;
        };
        let mut buf = sealed.to_vec();
        frames.push(match cipher.open(index, &mut buf) {
            Ok(()) if buf.len() > 32 => {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&buf[..32]);
                Frame::Entry {
                    hash,
                    body: buf[32..].to_vec(),
                }
            }
            _ => Frame::Corrupt,
        });
        at += 4 + len;
        index += 1;
    }
    let whole_len = (bytes.len() as u64).saturating_sub(torn_bytes);
    Ok(SegmentContents {
        header,
        frames,
        torn_bytes,
        whole_len,
    })
}
