//! The per-worker flow table: an index-only hash table of slots in a slab (the key is stored
//! once, in the slot, and compared there), plus one intrusive LRU list per timeout class.
//!
//! Every flow of a class has the same idle timeout, and a flow moves to the tail of its class
//! list on every packet, so each list is ordered by expiry time: expiry only ever looks at the
//! five list heads (O(1) per expired flow, bounded work per tick), and the eviction candidate
//! when the table is full is a list head too: the stalest closed flow, else the stalest
//! half-open TCP flow (SYN floods evict themselves), else the stalest flow of any class. Slots are
//! allocated lazily up to the hard capacity and reused through a free list; nothing allocates
//! per packet once a flow exists.

use super::key::FlowKey;
use std::hash::BuildHasher;

const NIL: u32 = u32::MAX;

/// Idle-timeout class of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TimeoutClass {
    /// TCP before the handshake completed (SYN floods).
    #[default]
    TcpUnestablished = 0,
    /// TCP established (or picked up mid-stream).
    TcpEstablished = 1,
    /// TCP after FIN both ways or RST.
    TcpClosed = 2,
    /// UDP.
    Udp = 3,
    /// ICMP and every other protocol.
    Other = 4,
}

/// Number of timeout classes.
pub const CLASSES: usize = 5;

/// TCP state of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpState {
    /// Handshake not complete (or not TCP).
    #[default]
    New,
    /// SYN and SYN-ACK seen, or picked up mid-stream with traffic.
    Established,
    /// FIN seen in both directions.
    ClosedFin,
    /// RST seen.
    ClosedRst,
}

/// TCP tracking of one flow.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpTrack {
    /// Current state.
    pub state: TcpState,
    /// FIN seen from initiator / responder.
    pub fin: [bool; 2],
    /// A SYN from the initiator was seen.
    pub syn_seen: bool,
    /// A SYN-ACK from the responder was seen.
    pub synack_seen: bool,
    /// Sequence number of the initiator's SYN (valid when `syn_seen`).
    pub syn_seq: u32,
    /// Next in-order sequence number of the initiator's stream for the L7 reassembly
    /// (valid when `syn_seen`).
    pub next_seq: u32,
    /// Per direction: end of the sequence space seen (or acknowledged) so far, for the
    /// capture-loss estimate (valid when the direction's bit is set in `seen`).
    pub seen_end: [u32; 2],
    /// Bit `1 << dir`: `seen_end[dir]` is valid.
    pub seen: u8,
}

/// Names an [`AppProto`] can hold: every `app_proto` the L7 taps and banners report.
pub const APP_PROTOS: [&str; 12] = [
    "tls",
    "quic",
    "http",
    "dns",
    "ssh",
    "smtp",
    "ftp",
    "wireguard",
    "openvpn",
    "ipsec",
    "rdp",
    "sip",
];

/// The protocols of [`APP_PROTOS`] whose payload is encrypted: the analysis is told so with
/// each payload.
pub const ENCRYPTED_APP_PROTOS: [&str; 6] = ["tls", "quic", "ssh", "wireguard", "openvpn", "ipsec"];

/// Bit `i + 1` set for each `APP_PROTOS[i]` in [`ENCRYPTED_APP_PROTOS`].
const ENCRYPTED_MASK: u32 = {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let mut mask = 0;
    let mut i = 0;
    while i < APP_PROTOS.len() {
        let mut j = 0;
        while j < ENCRYPTED_APP_PROTOS.len() {
            if same(APP_PROTOS[i], ENCRYPTED_APP_PROTOS[j]) {
                mask |= 1 << (i + 1);
            }
            j += 1;
        }
        i += 1;
    }
    mask
};

/// An application protocol name stored in one byte: 0 = none yet, `i + 1` = `APP_PROTOS[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppProto(u8);

impl AppProto {
    /// No protocol detected.
    pub const NONE: AppProto = AppProto(0);

    /// The id of a known name; a name outside [`APP_PROTOS`] is kept as none (and caught by
    /// the test that every banner name is listed).
    pub fn from_name(name: &str) -> AppProto {
        APP_PROTOS
            .iter()
            .position(|p| *p == name)
            .map_or(AppProto::NONE, |i| AppProto(i as u8 + 1))
    }

    /// The id of an optional name.
    pub fn from_option(name: Option<&str>) -> AppProto {
        name.map_or(AppProto::NONE, AppProto::from_name)
    }

    /// The name, if any.
    pub fn name(self) -> Option<&'static str> {
        APP_PROTOS.get(usize::from(self.0).checked_sub(1)?).copied()
    }

    /// An encrypted protocol (one of [`ENCRYPTED_APP_PROTOS`]): one bit test per payload.
    pub fn is_encrypted(self) -> bool {
        ENCRYPTED_MASK >> self.0 & 1 != 0
    }

    /// No protocol detected yet.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// A protocol was detected.
    pub fn is_some(self) -> bool {
        self.0 != 0
    }
}

/// One tracked flow. Index 0 of the per-direction arrays is initiator -> responder.
///
/// Laid out in declaration order (`repr(C)`): a packet's lookup compares the key and then
/// updates the list links, times and counters, so those come first and lie together (about two
/// cache lines) instead of where the compiler's size ordering put them (the key behind 184
/// bytes of counters, in another line than either).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Flow<S, L> {
    /// The normalised key.
    pub(super) key: FlowKey,
    pub(crate) class: TimeoutClass,
    pub(crate) live: bool,
    /// Application protocol detected so far (one byte, not a 16-byte `&str`).
    pub(super) app_proto: AppProto,
    /// Bits of L7 taps that are finished for this flow (owned by the taps).
    pub(super) l7_done: u8,
    /// The initiator is the key's `lo` endpoint.
    pub(super) initiator_is_lo: bool,
    /// Picked up mid-stream (TCP without a SYN first).
    pub(super) midstream: bool,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// Active-timeout records written so far: the next is due at
    /// `first_micros + (active_records + 1) * active_timeout` (a u32 instead of an i64 deadline
    /// keeps the entry small).
    pub(super) active_records: u32,
    /// ICMP / ICMPv6: (type, code) of the first message per direction (when `pkts` counts one).
    pub(super) icmp: [(u8, u8); 2],
    /// Last packet, Unix micros.
    pub(super) last_micros: i64,
    /// Packets per direction.
    pub(super) pkts: [u64; 2],
    /// Frame bytes (pcap original length) per direction.
    pub(super) bytes: [u64; 2],
    /// Transport payload bytes per direction.
    pub(super) payload: [u64; 2],
    /// First packet, Unix micros.
    pub(super) first_micros: i64,
    /// TCP state.
    pub(super) tcp: TcpTrack,
    /// Rare L7 state (reassembly buffers, QUIC state, found metadata), boxed.
    pub(super) l7: Option<Box<L>>,
    /// Agent-local flow id.
    pub(super) flow_id: u64,
    /// Analysis state.
    pub(super) state: S,
}

/// Read access for every layer; the data plane's own fields (key, times, counters, TCP
/// tracking) change only in [`crate::flow`]. The parts kept for other layers (the analysis
/// state, the L7 state and done bits, the application protocol, the L7 stream cursor) have
/// setters.
impl<S, L> Flow<S, L> {
    /// Timeout class the flow is listed under.
    pub fn class(&self) -> TimeoutClass {
        self.class
    }

    /// The normalised key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// Agent-local flow id.
    pub fn flow_id(&self) -> u64 {
        self.flow_id
    }

    /// First packet, Unix micros.
    pub fn first_micros(&self) -> i64 {
        self.first_micros
    }

    /// Last packet, Unix micros.
    pub fn last_micros(&self) -> i64 {
        self.last_micros
    }

    /// Packets per direction (initiator -> responder first).
    pub fn pkts(&self) -> [u64; 2] {
        self.pkts
    }

    /// Frame bytes (pcap original length) per direction.
    pub fn bytes(&self) -> [u64; 2] {
        self.bytes
    }

    /// Transport payload bytes per direction.
    pub fn payload(&self) -> [u64; 2] {
        self.payload
    }

    /// The initiator is the key's `lo` endpoint.
    pub fn initiator_is_lo(&self) -> bool {
        self.initiator_is_lo
    }

    /// The initiator's address and port.
    pub fn initiator(&self) -> (std::net::IpAddr, u16) {
        if self.initiator_is_lo {
            (self.key.lo_addr(), self.key.lo_port)
        } else {
            (self.key.hi_addr(), self.key.hi_port)
        }
    }

    /// The responder's address and port.
    pub fn responder(&self) -> (std::net::IpAddr, u16) {
        if self.initiator_is_lo {
            (self.key.hi_addr(), self.key.hi_port)
        } else {
            (self.key.lo_addr(), self.key.lo_port)
        }
    }

    /// Picked up mid-stream (TCP without a SYN first).
    pub fn midstream(&self) -> bool {
        self.midstream
    }

    /// ICMP / ICMPv6: (type, code) of the first message per direction.
    pub fn icmp(&self) -> [(u8, u8); 2] {
        self.icmp
    }

    /// TCP tracking.
    pub fn tcp(&self) -> &TcpTrack {
        &self.tcp
    }

    /// The L7 taps' cursor in the initiator's stream: the next in-order sequence number.
    pub fn set_stream_seq(&mut self, seq: u32) {
        self.tcp.next_seq = seq;
    }

    /// Application protocol detected so far.
    pub fn app_proto(&self) -> AppProto {
        self.app_proto
    }

    /// Set the application protocol (the L7 taps).
    pub fn set_app_proto(&mut self, p: AppProto) {
        self.app_proto = p;
    }

    /// Bits of L7 taps that are finished for this flow (owned by the taps).
    pub fn l7_done(&self) -> u8 {
        self.l7_done
    }

    /// Mark L7 taps finished.
    pub fn mark_l7_done(&mut self, bits: u8) {
        self.l7_done |= bits;
    }

    /// Rare L7 state, when some was kept.
    pub fn l7(&self) -> Option<&L> {
        self.l7.as_deref()
    }

    /// The L7 state slot (owned by the taps).
    pub fn l7_mut(&mut self) -> &mut Option<Box<L>> {
        &mut self.l7
    }

    /// Analysis state, read only.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Analysis state.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// Analysis state, and the L7 results read only: the analysis judges a flow by the names
    /// its taps found without a copy of them.
    pub fn state_mut_and_l7(&mut self) -> (&mut S, Option<&L>) {
        (&mut self.state, self.l7.as_deref())
    }
}

/// The flow table's index: open addressing with linear probing over a power-of-two array of
/// `u32` entries, each the slot number of a flow (low bits) and a tag from the top of the
/// flow's hash (the rest), so that a probe compares keys only when the tags match. A lookup
/// reads one entry, usually in one cache line, then the slot; a removal shifts the entries
/// after it back, so there are no tombstones. Kept at most half full: it doubles as flows
/// arrive, up to twice the table's hard capacity (8 bytes per flow at the cap).
#[derive(Debug)]
struct Index {
    entries: Vec<u32>,
    /// `entries.len() - 1`.
    mask: usize,
    /// Bits of an entry that hold the slot number: enough for the table's capacity as a
    /// value, so a slot number never has all of them set and no entry equals [`EMPTY`].
    slot_bits: u32,
    len: usize,
    /// Largest size the index grows to.
    max_entries: usize,
}

/// An unused entry.
const EMPTY: u32 = u32::MAX;

impl Index {
    fn new(initial: usize, capacity: usize) -> Self {
        let max_entries = capacity.saturating_mul(2).next_power_of_two().max(16);
        let n = initial
            .saturating_mul(2)
            .next_power_of_two()
            .clamp(16, max_entries);
        Index {
            entries: vec![EMPTY; n],
            mask: n - 1,
            slot_bits: (u64::BITS - (capacity as u64).leading_zeros()).min(32),
            len: 0,
            max_entries,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn tag(&self, hash: u64) -> u64 {
        let tag_bits = 32 - self.slot_bits;
        if tag_bits == 0 {
            0
        } else {
            hash >> (64 - tag_bits)
        }
    }

    #[inline]
    fn pack(&self, hash: u64, slot: u32) -> u32 {
        ((self.tag(hash) << self.slot_bits) | u64::from(slot)) as u32
    }

    #[inline]
    fn slot_of(&self, entry: u32) -> u32 {
        (u64::from(entry) & ((1u64 << self.slot_bits) - 1)) as u32
    }

    /// The slot whose entry has `hash`'s tag and for which `is` says yes.
    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let want = self.tag(hash);
        let mut i = hash as usize & self.mask;
        loop {
            let e = *self.entries.get(i)?;
            if e == EMPTY {
                return None;
            }
            if u64::from(e) >> self.slot_bits == want && is(self.slot_of(e)) {
                return Some(self.slot_of(e));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Add `slot` under `hash` (the caller made sure its key is not there). `rehash` gives the
    /// hash of any slot's key, for growing.
    fn insert(&mut self, hash: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        if (self.len + 1) * 2 > self.entries.len() && self.entries.len() < self.max_entries {
            self.grow(&rehash);
        }
        let e = self.pack(hash, slot);
        let mut i = hash as usize & self.mask;
        while self.entries.get(i).is_some_and(|&x| x != EMPTY) {
            i = (i + 1) & self.mask;
        }
        if let Some(x) = self.entries.get_mut(i) {
            *x = e;
            self.len += 1;
        }
    }

    /// Remove the entry of `slot`, filed under `hash`; the entries after it in its run move
    /// back where their own hash (from `rehash`) allows.
    fn remove(&mut self, hash: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        let mut i = hash as usize & self.mask;
        loop {
            match self.entries.get(i) {
                Some(&e) if e == EMPTY => return,
                Some(&e) if self.slot_of(e) == slot => break,
                Some(_) => i = (i + 1) & self.mask,
                None => return,
            }
        }
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let e = match self.entries.get(j) {
                Some(&e) if e != EMPTY => e,
                _ => break,
            };
            let home = rehash(self.slot_of(e)) as usize & self.mask;
            // `e` may fill the hole unless its home lies after the hole, up to `j`.
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.entries[hole] = e;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
    }

    fn grow(&mut self, rehash: &impl Fn(u32) -> u64) {
        let n = (self.entries.len() * 2).min(self.max_entries);
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; n]);
        self.mask = n - 1;
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            let slot = self.slot_of(e);
            let hash = rehash(slot);
            let mut i = hash as usize & self.mask;
            while self.entries.get(i).is_some_and(|&x| x != EMPTY) {
                i = (i + 1) & self.mask;
            }
            let e = self.pack(hash, slot);
            if let Some(x) = self.entries.get_mut(i) {
                *x = e;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .filter(|&&e| e != EMPTY)
            .map(|&e| self.slot_of(e))
    }
}

/// Per-worker flow table with a hard capacity.
#[derive(Debug)]
pub struct FlowTable<S, L> {
    /// Slot numbers, hashed by the key stored in the slot (4 bytes per bucket instead of a
    /// second copy of the 44-byte key).
    map: Index,
    /// Keyed with a per-process random seed (hash flooding).
    hasher: foldhash::fast::RandomState,
    slots: Vec<Flow<S, L>>,
    free: Vec<u32>,
    heads: [u32; CLASSES],
    tails: [u32; CLASSES],
    capacity: usize,
    timeouts: [i64; CLASSES],
}

impl<S: Default, L> FlowTable<S, L> {
    /// A table holding at most `capacity` flows, with idle timeouts in microseconds indexed by
    /// [`TimeoutClass`].
    pub fn new(capacity: usize, timeouts_micros: [i64; CLASSES]) -> Self {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        let initial = capacity.min(1 << 14);
        FlowTable {
            map: Index::new(initial, capacity),
            hasher: foldhash::fast::RandomState::default(),
            slots: Vec::with_capacity(initial),
            free: Vec::new(),
            heads: [NIL; CLASSES],
            tails: [NIL; CLASSES],
            capacity,
            timeouts: timeouts_micros,
        }
    }

    /// Number of flows in the table.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// True when an insert needs an eviction first.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.capacity
    }

    /// Hard capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slot of the flow with `key`.
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        self.find_hashed(key, self.hasher.hash_one(key))
    }

    /// [`FlowTable::find`] with the key's hash ([`FlowTable::hash`]) computed already.
    #[inline]
    pub fn find_hashed(&self, key: &FlowKey, hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.map.find(hash, |i| {
            slots.get(i as usize).is_some_and(|f| f.key == *key)
        })
    }

    /// The hash [`FlowTable::find_hashed`] and [`FlowTable::insert_hashed`] take.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The key of a decoded packet, whether its source is the key's `lo` end, and the key's
    /// [`FlowTable::hash`] (see [`FlowKey::from_decoded_hashed`]).
    #[inline]
    pub fn key_of(&self, d: &crate::decode::Decoded) -> (FlowKey, bool, u64) {
        FlowKey::from_decoded_hashed(d, &self.hasher)
    }

    /// The flow in slot `idx`. Panics on a slot that was never handed out (a logic error, not
    /// an input error).
    pub fn get(&self, idx: u32) -> &Flow<S, L> {
        &self.slots[idx as usize]
    }

    /// The flow in slot `idx`, mutable.
    pub fn get_mut(&mut self, idx: u32) -> &mut Flow<S, L> {
        &mut self.slots[idx as usize]
    }

    /// Insert a new flow (the caller evicts first when [`FlowTable::is_full`]). Returns its
    /// slot, or `None` when the table is full or the key is present.
    pub fn insert(&mut self, flow: Flow<S, L>, class: TimeoutClass) -> Option<u32> {
        if self.find(&flow.key).is_some() {
            return None;
        }
        let hash = self.hash(&flow.key);
        self.insert_hashed(flow, class, hash)
    }

    /// [`FlowTable::insert`] of a flow whose key the caller just looked up and did not find,
    /// with its `hash` ([`FlowTable::hash`]). Returns `None` when the table is full.
    pub fn insert_hashed(
        &mut self,
        mut flow: Flow<S, L>,
        class: TimeoutClass,
        hash: u64,
    ) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        flow.live = true;
        flow.class = class;
        flow.prev = NIL;
        flow.next = NIL;
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = flow;
                i
            }
            None => {
                self.slots.push(flow);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.map.insert(hash, idx, |i| {
            slots.get(i as usize).map_or(0, |f| hasher.hash_one(f.key))
        });
        self.link_tail(idx, class);
        Some(idx)
    }

    /// Move the flow to the tail of `class` (call on every packet, after updating
    /// `last_micros`).
    pub fn touch(&mut self, idx: u32, class: TimeoutClass) {
        if self.tails[class as usize] == idx {
            // Already the last of its class (a burst of one flow): nothing moves.
            return;
        }
        self.unlink(idx);
        self.link_tail(idx, class);
    }

    /// Idle timeout of a class, in microseconds.
    pub fn timeout(&self, class: TimeoutClass) -> i64 {
        self.timeouts[class as usize]
    }

    /// Remove the flow in `idx` and return it.
    pub fn remove(&mut self, idx: u32) -> Flow<S, L>
    where
        L: Default,
    {
        self.remove_with(idx, std::mem::take)
    }

    /// Remove the flow in `idx`, handing it to `f` where it lies (a record written from it, or
    /// the flow taken out of it, costs no copy of the whole entry on the way); the slot is
    /// emptied afterwards unless `f` took the flow. Returns what `f` returns.
    pub fn remove_with<R>(&mut self, idx: u32, f: impl FnOnce(&mut Flow<S, L>) -> R) -> R
    where
        L: Default,
    {
        self.unlink(idx);
        let hash = self.hasher.hash_one(self.slots[idx as usize].key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.map.remove(hash, idx, |i| {
            slots.get(i as usize).map_or(0, |f| hasher.hash_one(f.key))
        });
        let slot = &mut self.slots[idx as usize];
        let out = f(slot);
        if slot.live {
            // Not taken: its buffers go now, not when the slot is used again.
            *slot = Flow::default();
        }
        self.free.push(idx);
        out
    }

    /// A flow whose idle timeout has passed at `now`, if any.
    pub fn expired(&self, now_micros: i64) -> Option<u32> {
        for c in 0..CLASSES {
            let h = self.heads[c];
            if h != NIL {
                let f = &self.slots[h as usize];
                if f.last_micros.saturating_add(self.timeouts[c]) <= now_micros {
                    return Some(h);
                }
            }
        }
        None
    }

    /// The flow to evict when the table is full: the least recently seen TCP flow that is
    /// closed, else the least recently seen TCP flow that never completed its handshake (so a
    /// SYN flood evicts its own half-open flows, not established ones), else the least
    /// recently seen flow of any class.
    pub fn eviction_candidate(&self) -> Option<u32> {
        for class in [TimeoutClass::TcpClosed, TimeoutClass::TcpUnestablished] {
            let h = self.heads[class as usize];
            if h != NIL {
                return Some(h);
            }
        }
        self.stalest()
    }

    /// The least recently seen flow.
    pub fn stalest(&self) -> Option<u32> {
        self.heads
            .iter()
            .filter(|h| **h != NIL)
            .min_by_key(|h| self.slots[**h as usize].last_micros)
            .copied()
    }

    /// Slots of every flow (for the final drain; allocates once).
    pub fn all(&self) -> Vec<u32> {
        self.map.iter().collect()
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next, class) = {
            let f = &self.slots[idx as usize];
            (f.prev, f.next, f.class as usize)
        };
        if prev == NIL {
            if self.heads[class] == idx {
                self.heads[class] = next;
            }
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            if self.tails[class] == idx {
                self.tails[class] = prev;
            }
        } else {
            self.slots[next as usize].prev = prev;
        }
        let f = &mut self.slots[idx as usize];
        f.prev = NIL;
        f.next = NIL;
    }

    fn link_tail(&mut self, idx: u32, class: TimeoutClass) {
        let c = class as usize;
        let tail = self.tails[c];
        {
            let f = &mut self.slots[idx as usize];
            f.class = class;
            f.prev = tail;
            f.next = NIL;
        }
        if tail == NIL {
            self.heads[c] = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        self.tails[c] = idx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> FlowKey {
        FlowKey {
            lo: [10, 0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            hi: [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            lo_port: 1000 + u16::from(n),
            hi_port: 443,
            proto: 6,
            v6: false,
            vlan: [0; 3],
        }
    }

    fn flow(n: u8, last: i64) -> Flow<(), ()> {
        Flow {
            key: key(n),
            last_micros: last,
            ..Flow::default()
        }
    }

    const T: [i64; CLASSES] = [5_000_000, 300_000_000, 2_000_000, 60_000_000, 30_000_000];

    #[test]
    fn expiry_follows_class_timeouts_with_time_passed_in() {
        let mut t: FlowTable<(), ()> = FlowTable::new(10, T);
        let a = t
            .insert(flow(1, 0), TimeoutClass::TcpEstablished)
            .expect("room");
        let b = t
            .insert(flow(2, 1_000_000), TimeoutClass::Udp)
            .expect("room");
        let c = t
            .insert(flow(3, 2_000_000), TimeoutClass::TcpUnestablished)
            .expect("room");
        assert_eq!(t.expired(6_999_999), None, "nothing idle long enough yet");
        assert_eq!(t.expired(7_000_000), Some(c), "unestablished TCP: 5 s");
        t.remove(c);
        assert_eq!(t.expired(60_999_999), None);
        assert_eq!(t.expired(61_000_000), Some(b), "UDP: 60 s");
        t.remove(b);
        assert_eq!(t.expired(299_999_999), None);
        assert_eq!(t.expired(300_000_000), Some(a), "established: 300 s");
        t.remove(a);
        assert!(t.is_empty());
    }

    /// A flow removed in place reaches the closure with its key, taken or not; the slot is
    /// empty afterwards either way (a flow left in it would keep its buffers until the slot is
    /// used again), and the key is gone from the index.
    #[test]
    fn a_flow_removed_in_place_leaves_an_empty_slot() {
        let mut t: FlowTable<(), Vec<u8>> = FlowTable::new(10, T);
        let with_l7 = |n: u8| Flow {
            key: key(n),
            l7: Some(Box::new(vec![n; 100])),
            ..Flow::default()
        };
        let a = t.insert(with_l7(1), TimeoutClass::Udp).expect("room");
        let b = t.insert(with_l7(2), TimeoutClass::Udp).expect("room");
        let seen = t.remove_with(a, |f| (f.key, f.l7.as_ref().map(|l| l.len())));
        assert_eq!(seen, (key(1), Some(100)), "read where it lies");
        assert!(t.get(a).l7.is_none(), "not taken: emptied");
        assert!(!t.get(a).live);
        let taken = t.remove_with(b, std::mem::take);
        assert_eq!(taken.key, key(2));
        assert!(taken.l7.is_some() && t.get(b).l7.is_none());
        assert_eq!((t.find(&key(1)), t.find(&key(2))), (None, None));
        assert!(t.is_empty());
    }

    #[test]
    fn touch_moves_a_flow_behind_others() {
        let mut t: FlowTable<(), ()> = FlowTable::new(10, T);
        let a = t.insert(flow(1, 0), TimeoutClass::Udp).expect("room");
        let b = t.insert(flow(2, 10), TimeoutClass::Udp).expect("room");
        t.get_mut(a).last_micros = 50_000_000;
        t.touch(a, TimeoutClass::Udp);
        assert_eq!(t.expired(60_000_010), Some(b));
        t.remove(b);
        assert_eq!(t.expired(60_000_010), None, "a was seen later");
        assert_eq!(t.expired(110_000_000), Some(a));
    }

    #[test]
    fn eviction_picks_the_stalest_across_classes() {
        let mut t: FlowTable<(), ()> = FlowTable::new(3, T);
        t.insert(flow(1, 30), TimeoutClass::TcpEstablished)
            .expect("room");
        let old = t.insert(flow(2, 10), TimeoutClass::Udp).expect("room");
        t.insert(flow(3, 20), TimeoutClass::Other).expect("room");
        assert!(t.is_full());
        assert!(t.insert(flow(4, 40), TimeoutClass::Udp).is_none(), "full");
        assert_eq!(t.stalest(), Some(old));
        assert_eq!(
            t.eviction_candidate(),
            Some(old),
            "no closed or half-open flow"
        );
        let gone = t.remove(old);
        assert_eq!(gone.key, key(2));
        let n = t
            .insert(flow(4, 40), TimeoutClass::Udp)
            .expect("room after eviction");
        assert_eq!(n, old, "slot reused");
        assert_eq!(t.find(&key(4)), Some(n));
        assert_eq!(t.find(&key(2)), None);
    }

    #[test]
    fn half_open_flows_are_evicted_before_established_ones() {
        let mut t: FlowTable<(), ()> = FlowTable::new(3, T);
        let est = t
            .insert(flow(1, 0), TimeoutClass::TcpEstablished)
            .expect("room");
        let syn = t
            .insert(flow(2, 50), TimeoutClass::TcpUnestablished)
            .expect("room");
        t.insert(flow(3, 60), TimeoutClass::Udp).expect("room");
        assert_eq!(t.stalest(), Some(est));
        assert_eq!(t.eviction_candidate(), Some(syn));
        let closed = t.insert(flow(4, 70), TimeoutClass::TcpClosed);
        assert!(closed.is_none(), "full");
        t.remove(syn);
        let closed = t
            .insert(flow(4, 70), TimeoutClass::TcpClosed)
            .expect("room");
        assert_eq!(
            t.eviction_candidate(),
            Some(closed),
            "closed flows go first"
        );
    }

    /// The index against a set, under random inserts and removals of slot numbers, with
    /// hashes that spread, that share a few buckets, that share one bucket with distinct tags,
    /// and that are all equal (long runs, wrap-around at the end of the array, shifts on
    /// removal, growth).
    #[test]
    fn index_agrees_with_a_set_under_random_inserts_and_removes() {
        let spread = |k: u32| {
            let mut z = u64::from(k).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let hashes: [(&str, &dyn Fn(u32) -> u64); 4] = [
            ("spread", &spread),
            ("few buckets", &|k| u64::from(k % 3) * 7 + (u64::MAX << 62)),
            ("one bucket, many tags", &|k| u64::from(k) << 44),
            ("all equal", &|_| 5),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for capacity in [1usize, 7, 64, 3000] {
            for (name, h) in hashes {
                let mut index = Index::new(2, capacity);
                let mut set = std::collections::BTreeSet::new();
                for op in 0..20_000 {
                    let k = (next() % capacity as u64) as u32;
                    if set.contains(&k) {
                        if next() % 3 != 0 {
                            index.remove(h(k), k, h);
                            set.remove(&k);
                        }
                    } else if set.len() < capacity {
                        index.insert(h(k), k, h);
                        set.insert(k);
                    }
                    let q = (next() % capacity as u64) as u32;
                    assert_eq!(
                        index.find(h(q), |s| s == q),
                        set.contains(&q).then_some(q),
                        "{name}, capacity {capacity}, op {op}, slot {q}"
                    );
                    if op % 997 == 0 {
                        assert_eq!(index.len(), set.len(), "{name}");
                        let mut all: Vec<u32> = index.iter().collect();
                        all.sort_unstable();
                        assert_eq!(all, set.iter().copied().collect::<Vec<_>>(), "{name}");
                        for &k in &set {
                            assert_eq!(index.find(h(k), |s| s == k), Some(k), "{name}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn entry_size_budget() {
        // Flow entry + index entries (a u32 per bucket, at most half full at the cap) must stay
        // within the 256-byte budget for the no-op analysis; the L7 state is boxed.
        let entry = std::mem::size_of::<Flow<(), crate::taps::L7State>>();
        let index = 2 * std::mem::size_of::<u32>();
        println!(
            "flow entry {entry} B + index {index} B = {} B",
            entry + index
        );
        assert!(entry + index <= 256, "{} bytes per flow", entry + index);
    }
}
