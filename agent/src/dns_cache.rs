//! Shared, bounded address -> name cache fed by DNS answers seen on the line.
//!
//! Workers insert one entry per DNS answer record (A/AAAA, with the name the client asked for)
//! and look up the responder address once per flow record. The cache is split into 16 shards,
//! each behind its own `Mutex`: a lock is taken per DNS *answer* and per flow *record*, never
//! per packet. Entries expire by TTL in packet time (offline) or coarse wall time (live); the
//! TTL is clamped to [`MIN_TTL_SECS`, `MAX_TTL_SECS`] so a zero TTL still names the flow that
//! follows the answer. When a shard is full, expired entries are purged; if none expired, the
//! entry closest to expiry is replaced. Each address keeps its last 16 names with the
//! packet time each was learned, so a flow record looks its name up as of its own packet time
//! ([`DnsCache::lookup_as_of`]), not as of wherever the capture thread has got to.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;
/// Shortest time an answer is kept, seconds.
pub const MIN_TTL_SECS: u32 = 60;
/// Longest time an answer is kept, seconds.
pub const MAX_TTL_SECS: u32 = 86_400;

/// Names an address had, newest last (at most [`HISTORY`]).
const HISTORY: usize = 16;

#[derive(Debug, Clone)]
struct Named {
    name: Arc<str>,
    expires_micros: i64,
    /// Packet time of the first answer that gave this name (since the previous name).
    learned_micros: i64,
}

/// The names an address had, newest last, so a record looked up "as of" an earlier time still
/// finds the name it had then, whatever the lag between the capture thread and the workers.
#[derive(Debug)]
struct Entry {
    names: Vec<Named>,
}

impl Entry {
    fn newest(&self) -> Option<&Named> {
        self.names.last()
    }

    fn expires_micros(&self) -> i64 {
        self.newest().map_or(i64::MIN, |n| n.expires_micros)
    }
}

type Shard = HashMap<IpAddr, Entry, foldhash::fast::RandomState>;

/// The cache. Share it as `Arc<DnsCache>`.
#[derive(Debug)]
pub struct DnsCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: foldhash::fast::RandomState,
}

impl DnsCache {
    /// A cache holding about `entries` addresses in total (at least one per shard).
    pub fn new(entries: usize) -> Self {
        let per_shard = entries.div_ceil(SHARDS).max(1);
        DnsCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(Default::default())))
                .collect(),
            per_shard,
            hasher: Default::default(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<Shard> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(ip) as usize;
        &self.shards[h % SHARDS]
    }

    /// Remember that `name` resolved to `ip` at `now_micros` for `ttl_secs`.
    pub fn insert(&self, ip: IpAddr, name: &str, ttl_secs: u32, now_micros: i64) {
        let ttl = i64::from(ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS)) * 1_000_000;
        let expires = now_micros.saturating_add(ttl);
        let Ok(mut shard) = self.shard(&ip).lock() else {
            return;
        };
        if let Some(e) = shard.get_mut(&ip) {
            match e.names.last_mut() {
                Some(n) if &*n.name == name => n.expires_micros = n.expires_micros.max(expires),
                _ => {
                    if e.names.len() >= HISTORY {
                        e.names.remove(0);
                    }
                    e.names.push(Named {
                        name: Arc::from(name),
                        expires_micros: expires,
                        learned_micros: now_micros,
                    });
                }
            }
            return;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.expires_micros() > now_micros);
            if shard.len() >= self.per_shard {
                let victim = shard
                    .iter()
                    .min_by_key(|(_, e)| e.expires_micros())
                    .map(|(k, _)| *k);
                if let Some(v) = victim {
                    shard.remove(&v);
                }
            }
        }
        let names = vec![Named {
            name: Arc::from(name),
            expires_micros: expires,
            learned_micros: now_micros,
        }];
        shard.insert(ip, Entry { names });
    }

    /// The name last resolved to `ip`, if its TTL has not passed at `now_micros`.
    pub fn lookup(&self, ip: IpAddr, now_micros: i64) -> Option<Arc<str>> {
        self.lookup_as_of(ip, now_micros, i64::MAX)
    }

    /// [`DnsCache::lookup`] as the cache was at packet time `as_of`: answers learned after it
    /// are not used (the previous name of the address is, if it was learned before). The
    /// capture thread runs ahead of the workers by a varying number of packets; looking up as
    /// of the record's own packet time makes the name the same whatever that lag.
    pub fn lookup_as_of(&self, ip: IpAddr, now_micros: i64, as_of: i64) -> Option<Arc<str>> {
        let shard = self.shard(&ip).lock().ok()?;
        let e = shard.get(&ip)?;
        let n = e.names.iter().rev().find(|n| n.learned_micros <= as_of)?;
        (n.expires_micros > now_micros).then(|| n.name.clone())
    }

    /// Number of entries (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expiry_in_packet_time() {
        let c = DnsCache::new(100);
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        c.insert(ip, "eu.cro.example.de", 300, 1_000_000);
        assert_eq!(
            c.lookup(ip, 2_000_000).as_deref(),
            Some("eu.cro.example.de")
        );
        assert_eq!(c.lookup(ip, 301_000_000), None, "expired after 300 s");
        c.insert(ip, "other.example", 0, 0);
        assert_eq!(
            c.lookup(ip, 59_000_000).as_deref(),
            Some("other.example"),
            "min TTL"
        );
    }

    #[test]
    fn lookup_as_of_ignores_later_answers() {
        let c = DnsCache::new(100);
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        c.insert(ip, "a.example", 300, 1_000_000);
        c.insert(ip, "b.example", 300, 5_000_000);
        assert_eq!(c.lookup_as_of(ip, 2_000_000, 500_000), None);
        assert_eq!(
            c.lookup_as_of(ip, 2_000_000, 3_000_000).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            c.lookup_as_of(ip, 2_000_000, 6_000_000).as_deref(),
            Some("b.example")
        );
    }

    #[test]
    fn bounded() {
        let c = DnsCache::new(32);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            c.insert(ip, "x.example", 300, i64::from(i));
        }
        assert!(c.len() <= 32, "{}", c.len());
    }
}
