//! Dynamic bans: addresses or networks refused for a while.
//!
//! An operator (admin API `POST /admin/bans`, or `rampart ban`),
//! brute-force protection ([`crate::authn::brute_force`], reason
//! `brute-force`) and later the threat engine ban a CIDR for a TTL. A
//! banned peer's connections are closed before TLS; a banned client behind a
//! trusted proxy gets 403 (429 with `Retry-After` for a brute-force ban). Bans belong to the process and survive reloads;
//! expired ones are dropped when the list is read. The list is bounded
//! (10 000 entries; adding to a full list is refused, never silently
//! forgetting a ban). With `[redis] share_bans`, bans are also written to
//! Redis and every gateway copies Redis's list into its own every half
//! second ([`BanList::replace_shared`]), so the check itself never waits on
//! the network.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

/// Most bans at once.
pub const MAX_BANS: usize = 10_000;

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The banned network.
    pub net: IpNet,
    /// Monotonic time it ends.
    pub until: Duration,
    /// Wall-clock time it ends (for people).
    pub until_wall: SystemTime,
    /// Why (free text from the operator; never shown to clients).
    pub reason: String,
    /// Order of local additions (0 for bans copied from Redis).
    added: u64,
}

/// The process's bans.
#[derive(Debug, Default)]
pub struct BanList {
    bans: RwLock<Vec<Ban>>,
    added: AtomicU64,
}

/// Why a ban could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BanError {
    /// The list is full.
    #[error("the ban list is full ({MAX_BANS} entries)")]
    Full,
}

impl BanList {
    /// Bans `net` until `now + ttl` (replacing an earlier ban of the same
    /// network).
    pub fn ban(
        &self,
        net: IpNet,
        ttl: Duration,
        now: Duration,
        wall: SystemTime,
        reason: &str,
    ) -> Result<Ban, BanError> {
        let mut bans = self.bans.write().map_err(|_| BanError::Full)?;
        bans.retain(|b| b.until > now && b.net != net.trunc());
        if bans.len() >= MAX_BANS {
            return Err(BanError::Full);
        }
        let ban = Ban {
            net: net.trunc(),
            until: now + ttl,
            until_wall: wall + ttl,
            reason: reason.chars().take(200).collect(),
            added: self.added.fetch_add(1, Ordering::AcqRel) + 1,
        };
        bans.push(ban.clone());
        Ok(ban)
    }

    /// Lifts the ban of exactly `net`; whether there was one.
    pub fn unban(&self, net: IpNet) -> bool {
        let Ok(mut bans) = self.bans.write() else {
            return false;
        };
        let before = bans.len();
        bans.retain(|b| b.net != net.trunc());
        bans.len() != before
    }

    /// Whether `ip` is banned at `now`. A poisoned list counts as banning
    /// nobody only if it cannot be read at all (fail open here is the lesser
    /// evil: the static lists still apply).
    pub fn is_banned(&self, ip: IpAddr, now: Duration) -> bool {
        let ip = super::canonical(ip);
        self.bans
            .read()
            .map(|b| b.iter().any(|b| b.until > now && b.net.contains(&ip)))
            .unwrap_or(false)
    }

    /// The ban covering `ip` at `now`, if any (the one ending last).
    pub fn ban_of(&self, ip: IpAddr, now: Duration) -> Option<Ban> {
        let ip = super::canonical(ip);
        self.bans.read().ok().and_then(|b| {
            b.iter()
                .filter(|b| b.until > now && b.net.contains(&ip))
                .max_by_key(|b| b.until)
                .cloned()
        })
    }

    /// A mark to pass to [`BanList::replace_shared`]: bans added after it
    /// are kept by the replacement.
    pub fn generation(&self) -> u64 {
        self.added.load(Ordering::Acquire)
    }

    /// Replaces the list by `shared` (network, time left, reason), as read
    /// from the shared store, keeping bans added here since `mark` (they
    /// may have reached the store after it was read). More than
    /// [`MAX_BANS`] are cut, soonest-ending first.
    pub fn replace_shared(
        &self,
        shared: Vec<(IpNet, Duration, String)>,
        mark: u64,
        now: Duration,
        wall: SystemTime,
    ) {
        let Ok(mut bans) = self.bans.write() else { return };
        let recent: Vec<Ban> = bans
            .iter()
            .filter(|b| b.added > mark && b.until > now)
            .cloned()
            .collect();
        let mut next: Vec<Ban> = shared
            .into_iter()
            .filter(|(net, _, _)| !recent.iter().any(|b| b.net == net.trunc()))
            .map(|(net, left, reason)| Ban {
                net: net.trunc(),
                until: now + left,
                until_wall: wall + left,
                reason: reason.chars().take(200).collect(),
                added: 0,
            })
            .collect();
        next.extend(recent);
        if next.len() > MAX_BANS {
            next.sort_by_key(|b| std::cmp::Reverse(b.until));
            next.truncate(MAX_BANS);
        }
        *bans = next;
    }

    /// The bans in force at `now`.
    pub fn list(&self, now: Duration) -> Vec<Ban> {
        self.bans
            .read()
            .map(|b| b.iter().filter(|b| b.until > now).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bans_expire_and_can_be_lifted() {
        let list = BanList::default();
        let t0 = Duration::from_secs(100);
        let wall = SystemTime::UNIX_EPOCH;
        list.ban(
            "203.0.113.0/24".parse().unwrap(),
            Duration::from_secs(60),
            t0,
            wall,
            "brute force",
        )
        .unwrap();
        assert!(list.is_banned("203.0.113.9".parse().unwrap(), t0));
        assert!(list.is_banned("::ffff:203.0.113.9".parse().unwrap(), t0));
        assert!(!list.is_banned("198.51.100.1".parse().unwrap(), t0));
        assert!(!list.is_banned("203.0.113.9".parse().unwrap(), t0 + Duration::from_secs(60)));
        list.ban(
            "198.51.100.7/32".parse().unwrap(),
            Duration::from_secs(60),
            t0,
            wall,
            "",
        )
        .unwrap();
        assert_eq!(list.list(t0).len(), 2);
        assert!(list.unban("198.51.100.7/32".parse().unwrap()));
        assert!(!list.unban("198.51.100.7/32".parse().unwrap()));
        assert!(!list.is_banned("198.51.100.7".parse().unwrap(), t0));
    }

    #[test]
    fn the_list_is_bounded() {
        let list = BanList::default();
        let t0 = Duration::ZERO;
        for i in 0..MAX_BANS as u32 {
            let net = IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i)));
            list.ban(net, Duration::from_secs(60), t0, SystemTime::UNIX_EPOCH, "")
                .unwrap();
        }
        let more = list.ban(
            "192.0.2.1/32".parse().unwrap(),
            Duration::from_secs(60),
            t0,
            SystemTime::UNIX_EPOCH,
            "",
        );
        assert_eq!(more, Err(BanError::Full));
        // Expired bans make room.
        assert!(list
            .ban(
                "192.0.2.1/32".parse().unwrap(),
                Duration::from_secs(60),
                Duration::from_secs(61),
                SystemTime::UNIX_EPOCH,
                ""
            )
            .is_ok());
    }
}
