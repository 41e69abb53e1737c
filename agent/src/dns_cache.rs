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
//! Each shard is a set-associative table: the address hash picks a set of up to 8 ways, and
//! the set's bookkeeping (a 16-bit fingerprint of each way's address, the expiry of each way's
//! newest name in whole seconds, which ways are occupied or own heap data, CLOCK's "used"
//! marks and hand) fits in one 64-byte line. A way's slot (address, newest name of up to 30
//! bytes kept inline, its packet times) is one more line, read only on a fingerprint match;
//! there is no separate address index. Replacing an address writes its slot without reading
//! it, so an insert into a full set costs what one into a set with room costs. Longer names
//! and the earlier names of an address live in a per-way side record, touched only when the
//! set says the way has one.
//!
//! Eviction is CLOCK (second chance) within the set: the hand sweeps from where it stopped,
//! takes the first way whose newest name has expired or that was not used since the hand last
//! passed it, and clears the "used" mark of the ways it passes. A way is marked used when it
//! is inserted, refreshed by another answer, or found by a lookup. A shard of at most 8
//! entries is a single set, so its eviction is CLOCK over the whole shard. The expiry kept in
//! the set is rounded up to the second, so a name that expired less than a second ago may be
//! passed over like a live one; lookups compare exact packet times.
//!
//! The tables are reserved when the cache is made (about 74 bytes per entry: the slot's 64,
//! an eighth of a set's line, 2 of filter) as zeroed memory that nothing writes at start: the
//! kernel provides a page when the first answer lands in it, so a capture with few DNS answers
//! neither spends the time nor holds the memory of a full table. At the default 65,536
//! entries, writing them at start had cost 7 MiB of resident memory and 1,750 page faults
//! before the first packet: a 1,723-packet capture with DNS took 7.8 ms of CPU then and 5.5 ms
//! now. Names longer than 30 bytes and the earlier names of an address are allocated when
//! first needed; an insert allocates nothing for a short name, and a reused way keeps its
//! history allocation. A lookup hit returns the name as a new `Arc<str>` (a flow record copies
//! it anyway). With more than one set, an address competes only with the others of its set,
//! so a set may evict while the shard as a whole still has free ways (under 1% of the entries
//! at half load); once the cache has filled, every way is in use.
//!
//! Most flows have no name in the cache (on the benchmark capture 590 of 730,000 records), so
//! each shard also keeps a filter read without its lock: a bit per bucket of address hashes
//! (16 bits per entry the shard holds), set when an address is inserted. A lookup whose bit is
//! clear returns at once, without the lock or the set's cache line. A bit of an evicted
//! address stays set (a lookup then goes on to the set, as it would without the filter) until
//! the shard has taken as many new addresses as it has ways: then it rebuilds its filter from
//! the addresses it holds, under its lock, word by word, so that a lookup never finds the bit
//! of an address the shard holds clear.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::MmapMut;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const SHARDS: usize = 16;
/// Shortest time an answer is kept, seconds.
pub const MIN_TTL_SECS: u32 = 60;
/// Longest time an answer is kept, seconds.
pub const MAX_TTL_SECS: u32 = 86_400;

/// Names an address had, newest last (at most [`HISTORY`]).
const HISTORY: usize = 16;

/// Filter bits per entry a shard holds (rounded up to a power of two, at least 64).
const FILTER_BITS_PER_ENTRY: usize = 16;

/// Ways (addresses) per set.
const WAYS: usize = 8;

/// Longest name kept in the slot itself; a longer one is kept in the way's [`Extra`].
const INLINE: usize = 30;

/// `Slot::len` of a name longer than [`INLINE`].
const LONG: u8 = u8::MAX;

#[derive(Debug, Clone)]
struct Named {
    name: Arc<str>,
    expires_micros: i64,
    /// Packet time of the first answer that gave this name (since the previous name).
    learned_micros: i64,
}

/// An address and its newest name, one cache line. Plain data (no heap, nothing to drop), so
/// that giving the way to another address is a write, not a read of what was there; all zeros
/// is an empty slot, so a table of them starts as untouched zeroed memory.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
struct Slot {
    /// Expiry of the newest name, packet time.
    expires_micros: i64,
    /// Packet time of the first answer that gave the newest name (since the previous name).
    learned_micros: i64,
    /// The address (see [`Addr`]).
    addr: Addr,
    /// Length of the newest name in `bytes`, or [`LONG`] when it is in the way's [`Extra`].
    len: u8,
    bytes: [u8; INLINE],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// An address as plain bytes: an IPv4 address in the first four, `v6` telling which. Compared
/// as bytes, so a lookup encodes its address once and never rebuilds an [`IpAddr`] per way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Addr {
    bytes: [u8; 16],
    /// 1 for IPv6, 0 for IPv4.
    v6: u8,
}

impl Addr {
    fn of(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => {
                let mut bytes = [0; 16];
                if let Some(head) = bytes.get_mut(..4) {
                    head.copy_from_slice(&v4.octets());
                }
                Addr { bytes, v6: 0 }
            }
            IpAddr::V6(v6) => Addr {
                bytes: v6.octets(),
                v6: 1,
            },
        }
    }

    fn ip(&self) -> IpAddr {
        if self.v6 != 0 {
            IpAddr::from(self.bytes)
        } else {
            let [a, b, c, d, ..] = self.bytes;
            IpAddr::from([a, b, c, d])
        }
    }
}

/// A fixed table of `n` plain values in an anonymous memory map: zeroed pages that the kernel
/// provides when each is first written, so that a large table costs nothing at start and only
/// the pages in use are resident. (The allocator's zeroed allocations were no help: for values
/// aligned to a cache line it writes the zeros itself.) Seen as a slice of `T` through
/// zerocopy, whose checks (size and alignment, both fixed here) keep this free of `unsafe`.
struct Table<T> {
    map: MmapMut,
    _values: std::marker::PhantomData<T>,
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> Table<T> {
    /// `n` zeroed values (at least one). Aborts like a failed allocation when the kernel has no
    /// memory to reserve.
    fn zeroed(n: usize) -> Table<T> {
        let len = n.max(1).saturating_mul(std::mem::size_of::<T>().max(1));
        let map = MmapMut::map_anon(len)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>()));
        Table {
            map,
            _values: std::marker::PhantomData,
        }
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> std::ops::Deref for Table<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        <[T]>::ref_from_bytes(&self.map).unwrap_or(&[])
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> std::ops::DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        <[T]>::mut_from_bytes(&mut self.map).unwrap_or(&mut [])
    }
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} bytes)", self.map.len())
    }
}

impl Slot {
    /// The newest name when it is kept inline (`None` for a long one, or if the bytes were not
    /// UTF-8, which [`Shard::set_name`] rules out).
    fn inline_name(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes.get(..usize::from(self.len))?).ok()
    }
}

/// What a way holds on the heap, if anything: a newest name longer than [`INLINE`] and the
/// earlier names, oldest first (at most [`HISTORY`] - 1). Allocated for the way the first time
/// it needs one; read only when the set's `extra` bit of the way is set; kept, with its
/// vector's allocation, when the way changes address.
#[derive(Debug, Default)]
struct Extra {
    long: Option<Arc<str>>,
    older: Vec<Named>,
}

/// Whole seconds of `micros`, rounded up (`up`) or down, clamped into `u32`.
fn coarse_secs(micros: i64, up: bool) -> u32 {
    let secs = if up {
        micros.div_euclid(1_000_000) + i64::from(micros.rem_euclid(1_000_000) != 0)
    } else {
        micros.div_euclid(1_000_000)
    };
    u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
}

/// The bookkeeping of one set, one cache line: everything an insert or lookup reads before it
/// knows which slot (if any) it needs. All zeros is an empty set of [`WAYS`] ways.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
struct Set {
    /// 16 bits of the hash of each way's address (meaningful where `occupied`).
    fp: [u16; WAYS],
    /// Expiry of each way's newest name, whole seconds rounded up (see [`coarse_secs`]).
    expires_secs: [u32; WAYS],
    /// Bit per way: holds an address.
    occupied: u8,
    /// Bit per way: CLOCK's second-chance mark, set on insert, refresh and lookup hit.
    used: u8,
    /// Bit per way: its [`Extra`] holds a long name or earlier names.
    extra: u8,
    /// The way CLOCK's hand looks at next.
    hand: u8,
    /// Ways this set lacks of [`WAYS`] (0..=7; only a shard's last set may lack any).
    missing: u8,
    _pad: [u8; 11],
}

const _: () = assert!(std::mem::size_of::<Set>() == 64);

impl Set {
    /// Ways in this set (1..=8).
    fn ways(&self) -> u32 {
        WAYS as u32 - u32::from(self.missing).min(WAYS as u32 - 1)
    }

    /// Bit mask of this set's ways.
    fn all(&self) -> u32 {
        (1u32 << self.ways()) - 1
    }

    /// Occupied ways whose address has fingerprint `fp`.
    fn matching(&self, fp: u16) -> u32 {
        let mut m = 0u32;
        for (w, &f) in self.fp.iter().enumerate() {
            m |= u32::from(f == fp) << w;
        }
        m & u32::from(self.occupied)
    }

    /// The way to reuse when the set is full: the first one from the hand whose newest name
    /// has expired (at `now_secs`, rounded down) or that was not used since the hand last
    /// passed. The ways passed lose their mark; when every way is marked and live, the hand
    /// goes round once, clearing them all, and takes the way it started at.
    fn victim(&mut self, now_secs: u32) -> usize {
        let n = self.ways();
        let all = (1u32 << n) - 1;
        let mut expired = 0u32;
        for (w, &e) in self.expires_secs.iter().enumerate().take(n as usize) {
            expired |= u32::from(e <= now_secs) << w;
        }
        let candidates = (expired | !u32::from(self.used)) & all;
        let hand = u32::from(self.hand) % n;
        let w = if candidates == 0 {
            self.used = 0;
            hand
        } else {
            // Rotate so that the hand is bit 0: the lowest candidate is the first it meets.
            let rotated = ((candidates >> hand) | (candidates << (n - hand))) & all;
            let skip = rotated.trailing_zeros();
            let passed = (1u32 << skip) - 1;
            let passed = ((passed << hand) | (passed >> (n - hand))) & all;
            self.used &= !(passed as u8);
            (hand + skip) % n
        };
        self.hand = ((w + 1) % n) as u8;
        w as usize
    }
}

/// One shard: its sets, their slots and side records (way `w` of set `s` is slot and extra
/// `s * WAYS + w`), all reserved at full size, zeroed, when the cache is made.
#[derive(Debug)]
struct Shard {
    sets: Table<Set>,
    slots: Table<Slot>,
    /// By way (`s * WAYS + w`), for the ways that have needed one.
    extras: std::collections::HashMap<usize, Extra, foldhash::fast::FixedState>,
    /// Occupied ways.
    len: usize,
    /// Addresses that took a way since the shard's filter was last rebuilt.
    new_addresses: usize,
}

/// The set-selecting part of an address hash is its high bits; the fingerprint and the shard
/// come from low ones.
fn fingerprint(hash: u64) -> u16 {
    (hash >> 16) as u16
}

impl Shard {
    /// A shard of `cap` ways (at least one): sets of [`WAYS`], the last one with the rest.
    fn new(cap: usize) -> Shard {
        let cap = cap.max(1);
        let n = cap.div_ceil(WAYS);
        let mut sets = Table::<Set>::zeroed(n);
        if let Some(last) = sets.last_mut() {
            last.missing = u8::try_from(n * WAYS - cap).unwrap_or(0);
        }
        Shard {
            sets,
            slots: Table::zeroed(cap),
            extras: Default::default(),
            len: 0,
            new_addresses: 0,
        }
    }

    /// Ways the shard has.
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The addresses the shard holds.
    fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.sets.iter().enumerate().flat_map(move |(set, s)| {
            (0..WAYS)
                .filter(move |w| s.occupied & (1 << w) != 0)
                .filter_map(move |w| self.slots.get(set * WAYS + w).map(|slot| slot.addr.ip()))
        })
    }

    /// The set of an address hash (multiply-shift: no division, uses the high bits).
    fn set_of(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.sets.len() as u128) >> 64) as usize
    }

    /// The way of `set` holding `ip`, if any.
    fn find(&self, set: usize, hash: u64, ip: IpAddr) -> Option<usize> {
        let mut m = self.sets.get(set)?.matching(fingerprint(hash));
        let addr = Addr::of(ip);
        while m != 0 {
            let w = m.trailing_zeros() as usize;
            if self.slots.get(set * WAYS + w).map(|s| s.addr) == Some(addr) {
                return Some(w);
            }
            m &= m - 1;
        }
        None
    }

    /// The newest name of way `w` of `set` as a shared string (a new one when kept inline).
    fn newest(&self, set: usize, w: usize) -> Option<Arc<str>> {
        let i = set * WAYS + w;
        let slot = self.slots.get(i)?;
        if slot.len == LONG {
            self.extras.get(&i)?.long.clone()
        } else {
            slot.inline_name().map(Arc::from)
        }
    }

    /// Makes `name` the newest name of way `w` of `set`, learned at `now_micros`, expiring
    /// at `expires`. Writes the slot without reading it; the side record is touched only for
    /// a long name or when the set says it holds one.
    fn set_name(&mut self, set: usize, w: usize, name: &str, expires: i64, now_micros: i64) {
        let i = set * WAYS + w;
        let (Some(s), Some(slot)) = (self.sets.get_mut(set), self.slots.get_mut(i)) else {
            return;
        };
        slot.expires_micros = expires;
        slot.learned_micros = now_micros;
        match (slot.bytes.get_mut(..name.len()), u8::try_from(name.len())) {
            (Some(bytes), Ok(len)) => {
                bytes.copy_from_slice(name.as_bytes());
                slot.len = len;
                if s.extra & (1 << w) != 0 {
                    if let Some(extra) = self.extras.get_mut(&i) {
                        extra.long = None;
                        if extra.older.is_empty() {
                            s.extra &= !(1 << w);
                        }
                    }
                }
            }
            _ => {
                slot.len = LONG;
                self.extras.entry(i).or_default().long = Some(Arc::from(name));
                s.extra |= 1 << w;
            }
        }
    }

    /// Adds `name` as the newest name of way `w` of `set` (or extends the newest one's TTL
    /// when it is the same).
    fn learn(&mut self, set: usize, w: usize, name: &str, expires: i64, now_micros: i64) {
        let i = set * WAYS + w;
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let same = if slot.len == LONG {
            self.extras.get(&i).and_then(|e| e.long.as_deref()) == Some(name)
        } else {
            slot.inline_name() == Some(name)
        };
        if same {
            slot.expires_micros = slot.expires_micros.max(expires);
            return;
        }
        let (expires_micros, learned_micros) = (slot.expires_micros, slot.learned_micros);
        if let Some(previous) = self.newest(set, w) {
            if let Some(s) = self.sets.get_mut(set) {
                let extra = self.extras.entry(i).or_default();
                if extra.older.len() + 1 >= HISTORY {
                    extra.older.remove(0);
                }
                extra.older.push(Named {
                    name: previous,
                    expires_micros,
                    learned_micros,
                });
                s.extra |= 1 << w;
            }
        }
        self.set_name(set, w, name, expires, now_micros);
    }

    fn insert(&mut self, hash: u64, ip: IpAddr, name: &str, expires: i64, now_micros: i64) {
        let set = self.set_of(hash);
        if let Some(w) = self.find(set, hash, ip) {
            self.learn(set, w, name, expires, now_micros);
            let newest = self.slots.get(set * WAYS + w).map(|s| s.expires_micros);
            if let (Some(s), Some(e)) = (self.sets.get_mut(set), newest) {
                s.expires_secs[w] = coarse_secs(e, true);
                s.used |= 1 << w;
            }
            return;
        }
        let Some(s) = self.sets.get_mut(set) else {
            return;
        };
        self.new_addresses += 1;
        let free = s.all() & !u32::from(s.occupied);
        let w = if free != 0 {
            self.len += 1;
            free.trailing_zeros() as usize
        } else {
            s.victim(coarse_secs(now_micros, false))
        };
        s.occupied |= 1 << w;
        s.used |= 1 << w;
        s.fp[w] = fingerprint(hash);
        s.expires_secs[w] = coarse_secs(expires, true);
        if s.extra & (1 << w) != 0 {
            // The earlier names were another address's: drop them, keep the allocation.
            if let Some(extra) = self.extras.get_mut(&(set * WAYS + w)) {
                extra.older.clear();
            }
        }
        if let Some(slot) = self.slots.get_mut(set * WAYS + w) {
            slot.addr = Addr::of(ip);
        }
        self.set_name(set, w, name, expires, now_micros);
    }

    fn lookup(&mut self, hash: u64, ip: IpAddr, now_micros: i64, as_of: i64) -> Option<Arc<str>> {
        let set = self.set_of(hash);
        let w = self.find(set, hash, ip)?;
        let i = set * WAYS + w;
        let slot = self.slots.get(i)?;
        let name = if slot.learned_micros <= as_of {
            if slot.expires_micros <= now_micros {
                return None;
            }
            self.newest(set, w)?
        } else {
            if self.sets.get(set)?.extra & (1 << w) == 0 {
                return None;
            }
            let extra = self.extras.get(&i)?;
            let n = extra
                .older
                .iter()
                .rev()
                .find(|n| n.learned_micros <= as_of)?;
            if n.expires_micros <= now_micros {
                return None;
            }
            n.name.clone()
        };
        if let Some(s) = self.sets.get_mut(set) {
            s.used |= 1 << w;
        }
        Some(name)
    }
}

/// A shard's filter: one bit per bucket of address hashes, set for every address the shard
/// holds (and, until the next rebuild, for some it no longer holds). Read without the shard's
/// lock; written under it.
#[derive(Debug)]
struct Filter {
    words: Vec<AtomicU64>,
    /// Bits minus one (a power of two minus one).
    mask: u64,
}

impl Filter {
    fn new(entries: usize) -> Filter {
        let bits = (entries.max(1) * FILTER_BITS_PER_ENTRY)
            .next_power_of_two()
            .max(64);
        Filter {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits as u64 - 1,
        }
    }

    /// The word and bit of an address hash: bits above the shard's (the low four), below the
    /// set's (the high ones).
    fn bit(&self, hash: u64) -> (usize, u64) {
        let b = (hash >> 4) & self.mask;
        ((b / 64) as usize, 1 << (b % 64))
    }

    fn may_hold(&self, hash: u64) -> bool {
        let (w, bit) = self.bit(hash);
        self.words
            .get(w)
            .is_some_and(|word| word.load(Ordering::Relaxed) & bit != 0)
    }

    fn add(&self, hash: u64) {
        let (w, bit) = self.bit(hash);
        if let Some(word) = self.words.get(w) {
            word.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Only the bits of `hashes` from now on. Each word is replaced by one that keeps every bit
    /// of `hashes`, so a reader sees the old word or the new, both with those bits set.
    fn rebuild(&self, hashes: impl Iterator<Item = u64>) {
        let mut fresh = vec![0u64; self.words.len()];
        for h in hashes {
            let (w, bit) = self.bit(h);
            if let Some(word) = fresh.get_mut(w) {
                *word |= bit;
            }
        }
        for (word, new) in self.words.iter().zip(fresh) {
            word.store(new, Ordering::Relaxed);
        }
    }
}

/// The cache. Share it as `Arc<DnsCache>`.
#[derive(Debug)]
pub struct DnsCache {
    shards: Vec<Mutex<Shard>>,
    /// Per shard, what a lookup reads before taking its lock.
    filters: Vec<Filter>,
    hasher: foldhash::fast::RandomState,
}

impl DnsCache {
    /// A cache holding about `entries` addresses in total (at least one per shard). Its tables
    /// (about 74 bytes per entry, plus names longer than 30 bytes and histories when they come)
    /// are reserved here, zeroed and untouched: memory becomes resident as answers fill it.
    pub fn new(entries: usize) -> Self {
        let per_shard = entries.div_ceil(SHARDS).max(1);
        DnsCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            filters: (0..SHARDS).map(|_| Filter::new(per_shard)).collect(),
            hasher: Default::default(),
        }
    }

    fn hash(&self, ip: &IpAddr) -> u64 {
        self.hasher.hash_one(ip)
    }

    fn shard(&self, hash: u64) -> Option<&Mutex<Shard>> {
        self.shards.get(hash as usize % SHARDS)
    }

    fn filter(&self, hash: u64) -> Option<&Filter> {
        self.filters.get(hash as usize % SHARDS)
    }

    /// Remember that `name` resolved to `ip` at `now_micros` for `ttl_secs`.
    pub fn insert(&self, ip: IpAddr, name: &str, ttl_secs: u32, now_micros: i64) {
        let ttl = i64::from(ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS)) * 1_000_000;
        let expires = now_micros.saturating_add(ttl);
        let hash = self.hash(&ip);
        let (Some(Ok(mut shard)), Some(filter)) =
            (self.shard(hash).map(Mutex::lock), self.filter(hash))
        else {
            return;
        };
        shard.insert(hash, ip, name, expires, now_micros);
        filter.add(hash);
        if shard.new_addresses >= shard.capacity() {
            shard.new_addresses = 0;
            filter.rebuild(shard.addresses().map(|ip| self.hash(&ip)));
        }
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
        let hash = self.hash(&ip);
        if !self.filter(hash)?.may_hold(hash) {
            return None;
        }
        self.lookup_in_shard(hash, ip, now_micros, as_of)
    }

    /// The lookup in the shard of `hash`, under its lock (past the filter).
    fn lookup_in_shard(
        &self,
        hash: u64,
        ip: IpAddr,
        now_micros: i64,
        as_of: i64,
    ) -> Option<Arc<str>> {
        let mut shard = self.shard(hash)?.lock().ok()?;
        shard.lookup(hash, ip, now_micros, as_of)
    }

    /// Number of entries (expired ones included until their slot is reused).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len).unwrap_or(0))
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

    /// Address hashes for tests on a bare shard (any fixed hash will do).
    fn h(ip: IpAddr) -> u64 {
        foldhash::fast::FixedState::with_seed(7).hash_one(ip)
    }

    fn ins(s: &mut Shard, ip: IpAddr, name: &str, expires: i64, now: i64) {
        s.insert(h(ip), ip, name, expires, now);
    }

    fn get(s: &mut Shard, ip: IpAddr, now: i64, as_of: i64) -> Option<Arc<str>> {
        s.lookup(h(ip), ip, now, as_of)
    }

    fn has(s: &Shard, ip: IpAddr) -> bool {
        s.find(s.set_of(h(ip)), h(ip), ip).is_some()
    }

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn full_shard_gives_a_looked_up_address_a_second_chance() {
        let mut s = Shard::new(3);
        for k in 1..=3 {
            ins(&mut s, v4(k), "x.example", HOUR, 0);
        }
        // Every slot is marked: the hand clears all three and takes the oldest.
        ins(&mut s, v4(4), "x.example", HOUR, 1);
        assert!(!has(&s, v4(1)));
        // .2 is looked up, .3 is not: the next insert takes .3, not .2.
        assert!(get(&mut s, v4(2), 2, i64::MAX).is_some());
        ins(&mut s, v4(5), "x.example", HOUR, 3);
        assert!(has(&s, v4(2)), "looked-up address kept");
        assert!(!has(&s, v4(3)), "unused address evicted");
        assert!(has(&s, v4(4)) && has(&s, v4(5)));
        assert_eq!((s.slots.len(), s.len), (3, 3));
    }

    #[test]
    fn full_shard_reuses_an_expired_address_first() {
        let mut s = Shard::new(3);
        ins(&mut s, v4(1), "a.example", HOUR, 0);
        ins(&mut s, v4(2), "b.example", HOUR, 0);
        ins(&mut s, v4(3), "c.example", 60_000_000, 0);
        // All three marked; .3 has expired at two minutes, so it goes, not the oldest (.1).
        ins(&mut s, v4(4), "d.example", HOUR, 120_000_000);
        assert!(!has(&s, v4(3)));
        for k in [1, 2, 4] {
            assert!(get(&mut s, v4(k), 120_000_000, i64::MAX).is_some(), "{k}");
        }
        // The reused slot starts a fresh history: nothing of c.example as of before d's answer.
        assert_eq!(get(&mut s, v4(4), 120_000_000, 60_000_000), None);
    }

    #[test]
    fn full_shard_stops_growing() {
        let mut s = Shard::new(64);
        for k in 0..64u32 {
            ins(
                &mut s,
                IpAddr::from([10, 0, 0, k as u8]),
                "x.example",
                HOUR,
                0,
            );
        }
        let lens = (s.sets.len(), s.slots.len());
        for k in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + k));
            ins(&mut s, ip, "y.example", HOUR, i64::from(k));
            if k % 3 == 0 {
                assert!(get(&mut s, ip, i64::from(k), i64::MAX).is_some());
            }
        }
        assert_eq!((s.sets.len(), s.slots.len()), lens);
        assert!(s.extras.len() <= 64, "{} side records", s.extras.len());
        assert_eq!((s.sets.len(), s.slots.len(), s.len), (8, 64, 64));
        // Every way is occupied, by an address of that set whose fingerprint is recorded.
        for (set, meta) in s.sets.iter().enumerate() {
            assert_eq!(meta.occupied, 0xff, "set {set}");
            for w in 0..WAYS {
                let slot = &s.slots[set * WAYS + w];
                let ip = slot.addr.ip();
                assert_eq!(s.set_of(h(ip)), set, "{ip}");
                assert_eq!(meta.fp[w], fingerprint(h(ip)), "{ip}");
            }
        }
    }

    /// `n` addresses that fall in the same shard of `c`.
    fn same_shard(c: &DnsCache, n: usize) -> Vec<IpAddr> {
        let first = IpAddr::from([10, 0, 0, 1]);
        (1..=u32::MAX)
            .map(|k| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + k)))
            .filter(|ip| c.hash(ip) as usize % SHARDS == c.hash(&first) as usize % SHARDS)
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

    /// Resident memory of this process, from `/proc/self/status`.
    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// A large cache is reserved, not written: what becomes resident is its filters and the
    /// pages that answers land in. (Written at start, these 4 Mi entries were 470 MB.)
    #[test]
    fn tables_become_resident_as_answers_fill_them() {
        let before = rss_bytes();
        let c = DnsCache::new(1 << 22);
        let made = rss_bytes().saturating_sub(before);
        // The filters (16 bits an entry, 8 MiB) are written; the tables (72 bytes an entry,
        // 288 MiB) are not. Other tests run beside this one: leave them room.
        assert!(
            made < 64 << 20,
            "{made} bytes resident after making the cache"
        );
        for k in 0..1_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + k));
            c.insert(ip, "n.example", 600, 0);
        }
        assert_eq!(c.len(), 1_000);
        assert_eq!(
            c.lookup(IpAddr::from([10, 0, 1, 0]), 1).as_deref(),
            Some("n.example")
        );
        let filled = rss_bytes().saturating_sub(before);
        // At most two pages (sets and slots) an answer.
        assert!(
            filled < made + (64 << 20),
            "{filled} bytes after 1,000 answers"
        );
    }

    #[test]
    fn addresses_keep_their_family() {
        let c = DnsCache::new(64);
        let v4: IpAddr = "1.2.3.4".parse().expect("ip");
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().expect("ip");
        let zero4: IpAddr = "0.0.0.0".parse().expect("ip");
        let zero6: IpAddr = "::".parse().expect("ip");
        c.insert(v4, "four.example", 600, 0);
        c.insert(zero6, "six.example", 600, 0);
        assert_eq!(c.lookup(v4, 1).as_deref(), Some("four.example"));
        assert_eq!(
            c.lookup(mapped, 1),
            None,
            "an IPv4-mapped IPv6 address is another"
        );
        assert_eq!(c.lookup(zero6, 1).as_deref(), Some("six.example"));
        assert_eq!(c.lookup(zero4, 1), None, "an empty slot is not 0.0.0.0");
        for ip in [v4, mapped, zero4, zero6] {
            assert_eq!(Addr::of(ip).ip(), ip);
        }
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

    #[derive(Debug, Clone)]
    enum Op {
        Insert { ip: usize, name: usize, ttl: u32 },
        Lookup { ip: usize, back_secs: Option<u32> },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = (Op, u32)> {
        use proptest::prelude::*;
        let insert = (0..60usize, 0..NAMES.len(), 0..400u32)
            .prop_map(|(ip, name, ttl)| Op::Insert { ip, name, ttl });
        let lookup = (0..60usize, proptest::option::of(0..600u32))
            .prop_map(|(ip, back_secs)| Op::Lookup { ip, back_secs });
        (prop_oneof![insert, lookup], 0..90u32)
    }

    /// Names of every length class: short, 30 bytes (the longest kept inline), 31 and 32, long.
    const NAMES: [&str; 6] = [
        "a.example",
        "b.example",
        "abcdefghijklmnopqrstuvwx.example",
        "abcdefghijklmnopqrstuvw.example",
        "abcdefghijklmnopqrstuv.example",
        "a-much-longer-name.cdn.eu-central-1.partner.example.net",
    ];

    /// The reference: every answer an address ever had, with the cache's rule for the same name
    /// again (extends the TTL). It never forgets, so it decides any name the cache may give.
    #[derive(Default)]
    struct Reference(std::collections::HashMap<IpAddr, Vec<(usize, i64, i64)>>);

    impl Reference {
        fn insert(&mut self, ip: IpAddr, name: usize, expires: i64, now: i64) {
            let names = self.0.entry(ip).or_default();
            match names.last_mut() {
                Some((n, _, e)) if *n == name => *e = (*e).max(expires),
                _ => names.push((name, now, expires)),
            }
        }

        fn lookup(&self, ip: IpAddr, now: i64, as_of: i64) -> Option<&'static str> {
            let (name, _, expires) = self.0.get(&ip)?.iter().rev().find(|n| n.1 <= as_of)?;
            (*expires > now).then_some(NAMES[*name])
        }
    }

    fn pool(k: usize) -> IpAddr {
        if k % 4 == 3 {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, k as u16])
        } else {
            IpAddr::from([192, 0, 2, k as u8])
        }
    }

    /// What the reference test needs of a whole cache or of one shard.
    trait Cache {
        fn put(&mut self, ip: IpAddr, name: &str, ttl_secs: u32, now: i64);
        fn get(&mut self, ip: IpAddr, now: i64, as_of: i64) -> Option<Arc<str>>;
        fn size(&self) -> usize;
    }

    impl Cache for DnsCache {
        fn put(&mut self, ip: IpAddr, name: &str, ttl_secs: u32, now: i64) {
            self.insert(ip, name, ttl_secs, now);
        }
        fn get(&mut self, ip: IpAddr, now: i64, as_of: i64) -> Option<Arc<str>> {
            self.lookup_as_of(ip, now, as_of)
        }
        fn size(&self) -> usize {
            self.len()
        }
    }

    impl Cache for Shard {
        fn put(&mut self, ip: IpAddr, name: &str, ttl_secs: u32, now: i64) {
            let ttl = i64::from(ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS));
            self.insert(h(ip), ip, name, now + ttl * 1_000_000, now);
        }
        fn get(&mut self, ip: IpAddr, now: i64, as_of: i64) -> Option<Arc<str>> {
            self.lookup(h(ip), ip, now, as_of)
        }
        fn size(&self) -> usize {
            self.len
        }
    }

    /// Runs `ops` on `c` and on [`Reference`], addresses taken from the first `addresses` of
    /// [`pool`]: a hit is always the name the reference gives (never a wrong or an expired
    /// one), an answer is found right after it is inserted, and `c` never holds more than
    /// `bound` addresses.
    fn agrees(
        c: &mut impl Cache,
        bound: usize,
        addresses: usize,
        ops: Vec<(Op, u32)>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let mut r = Reference::default();
        let mut now = 1_000_000_000i64;
        for (op, step_secs) in ops {
            now += i64::from(step_secs) * 1_000_000;
            match op {
                Op::Insert { ip, name, ttl } => {
                    let ip = pool(ip % addresses);
                    c.put(ip, NAMES[name], ttl, now);
                    let ttl = i64::from(ttl.clamp(MIN_TTL_SECS, MAX_TTL_SECS));
                    r.insert(ip, name, now + ttl * 1_000_000, now);
                    let (latest, as_of_now) = (c.get(ip, now, i64::MAX), c.get(ip, now, now));
                    proptest::prop_assert_eq!(latest.as_deref(), Some(NAMES[name]));
                    proptest::prop_assert_eq!(as_of_now.as_deref(), Some(NAMES[name]));
                }
                Op::Lookup { ip, back_secs } => {
                    let ip = pool(ip % addresses);
                    let as_of = back_secs.map_or(i64::MAX, |b| now - i64::from(b) * 1_000_000);
                    if let Some(hit) = c.get(ip, now, as_of) {
                        let expected = r.lookup(ip, now, as_of);
                        proptest::prop_assert_eq!(
                            Some(&*hit),
                            expected,
                            "{} at {} as of {}",
                            ip,
                            now,
                            as_of
                        );
                    }
                }
            }
            proptest::prop_assert!(c.size() <= bound, "{} > {}", c.size(), bound);
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        /// Through the public API: small caches (one set per shard), a dozen addresses, so
        /// that addresses are evicted, come back and change names.
        #[test]
        fn cache_agrees_with_a_reference_that_never_forgets(
            entries in 1..64usize,
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let bound = SHARDS * entries.div_ceil(SHARDS);
            agrees(&mut DnsCache::new(entries), bound, 12, ops)?;
        }

        /// One shard of one to four sets, up to sixty addresses.
        #[test]
        fn shard_agrees_with_a_reference_that_never_forgets(
            cap in 1..32usize,
            addresses in 2..60usize,
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            agrees(&mut Shard::new(cap), cap, addresses, ops)?;
        }
    }

    impl DnsCache {
        /// [`DnsCache::lookup_as_of`] without the filter.
        fn lookup_unfiltered(&self, ip: IpAddr, now: i64, as_of: i64) -> Option<Arc<str>> {
            self.lookup_in_shard(self.hash(&ip), ip, now, as_of)
        }

        /// Bits set in all filters.
        fn filter_bits(&self) -> u32 {
            self.filters
                .iter()
                .flat_map(|f| f.words.iter())
                .map(|w| w.load(Ordering::Relaxed).count_ones())
                .sum()
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// The filter never hides a name: whatever was inserted, evicted and rebuilt, every
        /// lookup gives what the shard gives without it, and every address a shard holds
        /// passes its filter.
        #[test]
        fn the_filter_never_hides_a_name(
            entries in 1..48usize,
            addresses in 2..200usize,
            ops in proptest::collection::vec(op(), 1..600),
        ) {
            let c = DnsCache::new(entries);
            let mut now = 1_000_000_000i64;
            let mut k = 0usize;
            for (op, step_secs) in ops {
                now += i64::from(step_secs) * 1_000_000;
                k += 1;
                match op {
                    Op::Insert { ip, name, ttl } => {
                        // Addresses drawn from a pool larger than the op's own range.
                        let ip = pool((ip * 7 + k) % addresses);
                        c.insert(ip, NAMES[name], ttl, now);
                    }
                    Op::Lookup { ip, back_secs } => {
                        let ip = pool((ip * 7 + k) % addresses);
                        let as_of = back_secs.map_or(i64::MAX, |b| now - i64::from(b) * 1_000_000);
                        let unfiltered = c.lookup_unfiltered(ip, now, as_of);
                        proptest::prop_assert_eq!(c.lookup_as_of(ip, now, as_of), unfiltered);
                    }
                }
            }
            for (shard, filter) in c.shards.iter().zip(&c.filters) {
                let shard = shard.lock().expect("shard");
                for ip in shard.addresses() {
                    proptest::prop_assert!(filter.may_hold(c.hash(&ip)), "{} held, filtered out", ip);
                }
            }
        }
    }

    /// Addresses never inserted are mostly turned away by the filter, and a shard that has
    /// taken as many new addresses as it has ways forgets the bits of those it evicted.
    #[test]
    fn the_filter_turns_away_unknown_addresses_and_forgets_evicted_ones() {
        let c = DnsCache::new(4096);
        let v4 = |i: u32| IpAddr::from(i.to_be_bytes());
        for i in 0..2000u32 {
            c.insert(v4(0x0a00_0000 + i), "x.example", 300, 1_000_000);
        }
        let passed = (0..10_000u32)
            .filter(|&i| {
                let h = c.hash(&v4(0xc000_0000 + i));
                c.filter(h).is_some_and(|f| f.may_hold(h))
            })
            .count();
        assert!(
            passed < 1_000,
            "{passed} of 10,000 unknown addresses passed the filter"
        );
        // 16 shards of 256 ways: 50,000 more addresses evict those, and every shard rebuilds
        // its filter many times over; at most one bit per held address stays set, plus the
        // addresses taken since each shard's last rebuild.
        for i in 0..50_000u32 {
            c.insert(v4(0x0b00_0000 + i), "y.example", 300, 2_000_000);
        }
        let bits = c.filter_bits();
        assert!(
            bits <= 2 * 4096,
            "{bits} bits set for a cache of 4,096 entries"
        );
        assert!(c.lookup(v4(0x0b00_0000 + 49_999), 2_000_000).is_some());
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
