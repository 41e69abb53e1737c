//! Shared, bounded address -> name cache fed by DNS answers seen on the line.
//!
//! Workers insert one entry per DNS answer record (A/AAAA, with the name the client asked for)
//! and look up the responder address once per flow record. The cache is split into 16 shards,
//! each behind its own `Mutex`: a lock is taken per DNS *answer* and per flow *record*, never
//! per packet. Entries expire by TTL in packet time (offline) or coarse wall time (live); the
//! TTL is clamped to [`MIN_TTL_SECS`, `MAX_TTL_SECS`] so a zero TTL still names the flow that
//! follows the answer. Each address keeps its last 16 names with the packet time each was
//! learned, so a flow record looks its name up as of its own packet time
//! ([`DnsCache::lookup_as_of`]), not as of wherever the capture thread has got to.
//!
//! Eviction is CLOCK (second chance) over a fixed arena of slots per shard, so an insert into a
//! full shard costs O(1) amortised instead of a scan of the shard: the hand sweeps from where it
//! stopped, takes the first slot whose newest name has expired or that was not used since the
//! hand last passed it, and clears the "used" mark of the slots it passes. A slot is marked used
//! when it is inserted, refreshed by another answer, or found by a lookup. Once a shard has
//! filled, inserts allocate nothing but the new name (`Arc<str>`): a slot, its history vector
//! and the address index are reused. The newest name of an address is kept in its slot, so
//! an address with one name (most of them) has no history allocation at all.

use hashbrown::HashMap;
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

/// One address and the names it had, so a record looked up "as of" an earlier time still finds
/// the name it had then, whatever the lag between the capture thread and the workers. The
/// newest name is kept in the slot itself: most addresses only ever have one, so their history
/// vector stays empty (no allocation) and the hand reads the arena only.
#[derive(Debug)]
struct Slot {
    ip: IpAddr,
    newest: Named,
    /// Earlier names, oldest first (at most [`HISTORY`] - 1).
    older: Vec<Named>,
    /// CLOCK's second-chance mark: set on insert, refresh and lookup hit; cleared by the hand.
    used: bool,
}

impl Slot {
    fn new(ip: IpAddr, name: &str, expires: i64, now_micros: i64) -> Slot {
        Slot {
            ip,
            newest: Named {
                name: Arc::from(name),
                expires_micros: expires,
                learned_micros: now_micros,
            },
            older: Vec::new(),
            used: true,
        }
    }

    /// Adds `name` as the newest name (or extends the newest one's TTL when it is the same).
    fn learn(&mut self, name: &str, expires: i64, now_micros: i64) {
        if &*self.newest.name == name {
            self.newest.expires_micros = self.newest.expires_micros.max(expires);
        } else {
            if self.older.len() + 1 >= HISTORY {
                self.older.remove(0);
            }
            let named = Named {
                name: Arc::from(name),
                expires_micros: expires,
                learned_micros: now_micros,
            };
            self.older.push(std::mem::replace(&mut self.newest, named));
        }
        self.used = true;
    }

    /// Becomes the slot of another address (the history vector keeps its allocation).
    fn reuse(&mut self, ip: IpAddr, name: &str, expires: i64, now_micros: i64) {
        self.ip = ip;
        self.older.clear();
        self.newest = Named {
            name: Arc::from(name),
            expires_micros: expires,
            learned_micros: now_micros,
        };
        self.used = true;
    }
}

/// One shard: slots in an arena that grows to `cap` and then stays, an address -> slot index,
/// and the CLOCK hand.
#[derive(Debug)]
struct Shard {
    index: HashMap<IpAddr, u32, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    hand: usize,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            index: HashMap::with_hasher(Default::default()),
            slots: Vec::new(),
            hand: 0,
        }
    }

    /// The slot to reuse when the shard is full: the first one from the hand that has expired
    /// or was not used since the hand last passed. Ends within two turns of the clock (the
    /// first turn clears every mark); amortised O(1), as each mark is cleared once per set.
    fn victim(&mut self, now_micros: i64) -> usize {
        let n = self.slots.len();
        for _ in 0..2 * n {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let Some(slot) = self.slots.get_mut(i) else {
                break;
            };
            if slot.newest.expires_micros <= now_micros || !slot.used {
                return i;
            }
            slot.used = false;
        }
        self.hand % n.max(1)
    }

    fn insert(&mut self, cap: usize, ip: IpAddr, name: &str, expires: i64, now_micros: i64) {
        if let Some(slot) = self
            .index
            .get(&ip)
            .and_then(|&i| self.slots.get_mut(i as usize))
        {
            slot.learn(name, expires, now_micros);
            return;
        }
        if self.slots.len() < cap {
            let Ok(i) = u32::try_from(self.slots.len()) else {
                return;
            };
            self.slots.push(Slot::new(ip, name, expires, now_micros));
            self.index.insert(ip, i);
            if self.slots.len() == cap {
                // Full from now on: the arena stays as it is, and the index gets room for twice
                // the addresses, since replacing one leaves a tombstone and the table then
                // cleans up in place instead of growing.
                self.slots.shrink_to_fit();
                self.index.reserve(cap);
            }
            return;
        }
        let i = self.victim(now_micros);
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        self.index.remove(&slot.ip);
        slot.reuse(ip, name, expires, now_micros);
        if let Ok(i) = u32::try_from(i) {
            self.index.insert(ip, i);
        }
    }

    fn lookup(&mut self, ip: IpAddr, now_micros: i64, as_of: i64) -> Option<Arc<str>> {
        let i = *self.index.get(&ip)?;
        let slot = self.slots.get_mut(i as usize)?;
        let n = std::iter::once(&slot.newest)
            .chain(slot.older.iter().rev())
            .find(|n| n.learned_micros <= as_of)?;
        let hit = (n.expires_micros > now_micros).then(|| n.name.clone());
        slot.used |= hit.is_some();
        hit
    }
}

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
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
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
        shard.insert(self.per_shard, ip, name, expires, now_micros);
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
        let mut shard = self.shard(&ip).lock().ok()?;
        shard.lookup(ip, now_micros, as_of)
    }

    /// Number of entries (expired ones included until their slot is reused).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.slots.len()).unwrap_or(0))
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

    fn v4(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    fn shard() -> Shard {
        Shard::new()
    }

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn full_shard_gives_a_looked_up_address_a_second_chance() {
        let mut s = shard();
        for k in 1..=3 {
            s.insert(3, v4(k), "x.example", HOUR, 0);
        }
        // Every slot is marked: the hand clears all three and takes the oldest.
        s.insert(3, v4(4), "x.example", HOUR, 1);
        assert!(!s.index.contains_key(&v4(1)));
        // .2 is looked up, .3 is not: the next insert takes .3, not .2.
        assert!(s.lookup(v4(2), 2, i64::MAX).is_some());
        s.insert(3, v4(5), "x.example", HOUR, 3);
        assert!(s.index.contains_key(&v4(2)), "looked-up address kept");
        assert!(!s.index.contains_key(&v4(3)), "unused address evicted");
        assert!(s.index.contains_key(&v4(4)) && s.index.contains_key(&v4(5)));
        assert_eq!((s.slots.len(), s.index.len()), (3, 3));
    }

    #[test]
    fn full_shard_reuses_an_expired_address_first() {
        let mut s = shard();
        s.insert(3, v4(1), "a.example", HOUR, 0);
        s.insert(3, v4(2), "b.example", HOUR, 0);
        s.insert(3, v4(3), "c.example", 60_000_000, 0);
        // All three marked; .3 has expired at two minutes, so it goes, not the oldest (.1).
        s.insert(3, v4(4), "d.example", HOUR, 120_000_000);
        assert!(!s.index.contains_key(&v4(3)));
        for k in [1, 2, 4] {
            assert!(s.lookup(v4(k), 120_000_000, i64::MAX).is_some(), "{k}");
        }
        // The reused slot starts a fresh history: nothing of c.example as of before d's answer.
        assert_eq!(s.lookup(v4(4), 120_000_000, 60_000_000), None);
    }

    #[test]
    fn full_shard_stops_growing() {
        let mut s = Shard::new();
        for k in 0..64u32 {
            s.insert(64, IpAddr::from([10, 0, 0, k as u8]), "x.example", HOUR, 0);
        }
        // Allocated sizes, not `HashMap::capacity` (which counts down as replaced addresses
        // leave tombstones, until the table cleans them up in place).
        let caps = (s.slots.capacity(), s.index.allocation_size());
        for k in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + k));
            s.insert(64, ip, "y.example", HOUR, i64::from(k));
            if k % 3 == 0 {
                assert!(s.lookup(ip, i64::from(k), i64::MAX).is_some());
            }
        }
        assert_eq!((s.slots.capacity(), s.index.allocation_size()), caps);
        assert_eq!((s.slots.len(), s.index.len()), (64, 64));
        for (i, slot) in s.slots.iter().enumerate() {
            assert_eq!(s.index.get(&slot.ip).copied(), Some(i as u32));
        }
    }

    /// `n` addresses that fall in the same shard of `c`.
    fn same_shard(c: &DnsCache, n: usize) -> Vec<IpAddr> {
        let first = IpAddr::from([10, 0, 0, 1]);
        (1..=u32::MAX)
            .map(|k| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + k)))
            .filter(|ip| std::ptr::eq(c.shard(ip), c.shard(&first)))
            .take(n)
            .collect()
    }

    /// Through the public API: in a full shard, an address a flow record looked up outlives
    /// one nobody asked for, although the latter was answered later (the former scan took the
    /// entry closest to expiry, whatever its use).
    #[test]
    fn full_cache_keeps_a_looked_up_address() {
        let c = DnsCache::new(3 * SHARDS);
        let ips = same_shard(&c, 5);
        let name = |ip: &IpAddr| format!("n{ip}.example");
        for (t, ip) in ips.iter().take(3).enumerate() {
            c.insert(*ip, &name(ip), 600, t as i64);
        }
        c.insert(ips[3], &name(&ips[3]), 600, 10);
        assert_eq!(c.lookup(ips[0], 11), None, "the oldest went first");
        assert!(c.lookup(ips[1], 12).is_some());
        c.insert(ips[4], &name(&ips[4]), 600, 13);
        assert_eq!(
            c.lookup(ips[1], 14).as_deref(),
            Some(name(&ips[1]).as_str()),
            "looked up: kept"
        );
        assert_eq!(c.lookup(ips[2], 14), None, "not looked up: evicted");
        assert!(c.lookup(ips[3], 14).is_some() && c.lookup(ips[4], 14).is_some());
    }

    #[test]
    fn history_keeps_the_last_16_names() {
        let c = DnsCache::new(16);
        let ip = v4(9);
        for k in 0..20i64 {
            c.insert(ip, &format!("n{k}.example"), 3600, k * 1_000_000);
        }
        // n4 (learned at 4 s) is the oldest name kept: as of 3 s nothing is known any more.
        assert_eq!(c.lookup_as_of(ip, 20_000_000, 3_000_000), None);
        assert_eq!(
            c.lookup_as_of(ip, 20_000_000, 4_500_000).as_deref(),
            Some("n4.example")
        );
        assert_eq!(c.lookup(ip, 20_000_000).as_deref(), Some("n19.example"));
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
