//! SIEM copies: every committed entry as one redacted JSON line (the same
//! line as `rampart audit export --format jsonl`), to standard output, a
//! file, or syslog (RFC 5424 over UDP or a Unix datagram socket).
//!
//! Threat answered: the trail reaching the bank's SIEM without its secrets
//! (entries are redacted before they are linked; nothing is added here).
//! How it fails: a copy is best effort, never a reason to refuse or slow a
//! request: a failed write is counted and logged once per outage, and the
//! entry stays in the primary trail (from which `export` can replay it).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::config::{ExportPolicy, SyslogTarget};
use super::record::{json_line, Link};

/// Where copies go.
#[derive(Debug)]
enum Out {
    Stdout,
    File(std::path::PathBuf, Option<std::fs::File>),
    Udp(std::net::SocketAddr, Option<std::net::UdpSocket>),
    #[cfg(unix)]
    Unix(std::path::PathBuf, Option<std::os::unix::net::UnixDatagram>),
}

/// The configured copies.
#[derive(Debug)]
pub struct Exports {
    outs: Vec<(Out, bool)>,
    host: String,
    /// Copies that could not be written.
    pub failures: AtomicU64,
}

impl Exports {
    /// The copies of a policy (files and sockets open on first use).
    pub fn new(policies: &[ExportPolicy]) -> Self {
        let outs = policies
            .iter()
            .map(|p| {
                (
                    match p {
                        ExportPolicy::Stdout => Out::Stdout,
                        ExportPolicy::File(path) => Out::File(path.clone(), None),
                        ExportPolicy::Syslog(SyslogTarget::Udp(a)) => Out::Udp(*a, None),
                        #[cfg(unix)]
                        ExportPolicy::Syslog(SyslogTarget::Unix(p)) => Out::Unix(p.clone(), None),
                        #[cfg(not(unix))]
                        ExportPolicy::Syslog(SyslogTarget::Unix(_)) => Out::Stdout,
                    },
                    true,
                )
            })
            .collect();
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "-".into());
        Self {
            outs,
            host,
            failures: AtomicU64::new(0),
        }
    }

    /// Whether there is any copy to make.
    pub fn is_empty(&self) -> bool {
        self.outs.is_empty()
    }

    /// Writes `links` to every copy.
    pub fn write(&mut self, links: &[Link], time: &str) {
        if self.outs.is_empty() || links.is_empty() {
            return;
        }
        let lines: Vec<String> = links.iter().map(json_line).collect();
        for (out, ok) in &mut self.outs {
            let result = write_one(out, &lines, &self.host, time);
            match (&result, *ok) {
                (Err(e), true) => {
                    tracing::warn!(target: "rampart::audit", error = %e, "an audit copy (export) failed; the trail itself is unaffected");
                    *ok = false;
                }
                (Ok(()), false) => {
                    tracing::info!(target: "rampart::audit", "an audit copy (export) works again");
                    *ok = true;
                }
                _ => {}
            }
            if result.is_err() {
                self.failures.fetch_add(lines.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

fn write_one(out: &mut Out, lines: &[String], host: &str, time: &str) -> std::io::Result<()> {
    match out {
        Out::Stdout => {
            let mut s = std::io::stdout().lock();
            for l in lines {
                s.write_all(l.as_bytes())?;
                s.write_all(b"\n")?;
            }
            s.flush()
        }
        Out::File(path, file) => {
            if file.is_none() {
                let mut opts = std::fs::OpenOptions::new();
                opts.create(true).append(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                *file = Some(opts.open(&*path)?);
            }
            let mut buf = String::new();
            for l in lines {
                buf.push_str(l);
                buf.push('\n');
            }
            let r = file.as_mut().map_or(Ok(()), |f| f.write_all(buf.as_bytes()));
            if r.is_err() {
                *file = None;
            }
            r
        }
        Out::Udp(addr, sock) => {
            if sock.is_none() {
                let bind: std::net::SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                *sock = Some(std::net::UdpSocket::bind(bind)?);
            }
            for l in lines {
                if let Some(s) = sock.as_ref() {
                    s.send_to(syslog(host, time, l).as_bytes(), *addr)?;
                }
            }
            Ok(())
        }
        #[cfg(unix)]
        Out::Unix(path, sock) => {
            if sock.is_none() {
                let s = std::os::unix::net::UnixDatagram::unbound()?;
                s.connect(&*path)?;
                *sock = Some(s);
            }
            for l in lines {
                if let Some(s) = sock.as_ref() {
                    if let Err(e) = s.send(syslog(host, time, l).as_bytes()) {
                        *sock = None;
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
    }
}

/// One RFC 5424 message: facility log audit (13), severity info (6).
fn syslog(host: &str, time: &str, line: &str) -> String {
    format!("<110>1 {time} {host} rampart - audit - {line}")
}
