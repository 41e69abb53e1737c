//! The bounded IP fragment map of a capture thread.
//!
//! The capture path sees fragments as they are on the wire (no kernel reassembly). The first
//! fragment carries the ports; later fragments are attributed to its flow through this map,
//! keyed by (source, destination, identification, protocol) of the fragmenting IP layer.
//!
//! Bounds and costs, per packet O(1) amortised (no scan of the table per packet):
//! - an entry is removed as soon as its datagram is complete (every byte up to the last
//!   fragment's end seen), so a realistic rate of fragmented exports keeps the map nearly empty;
//! - an entry older than `max_age` of packet time is dropped (entries are aged from the front of
//!   an insertion-ordered queue, a few per packet);
//! - when the map holds `capacity` entries, the oldest entry is evicted (counted) to make room:
//!   a flood of incomplete datagrams pushes out its own stale entries, not the fresh first
//!   fragments of real exports.
//!
//! Later fragments that arrive before their first fragment are held as an aggregate (packets,
//! bytes, first and last time: no allocation) and attributed when it arrives; those whose first
//! fragment never comes (or whose entry was evicted or aged out) are counted as unattributed,
//! packets and bytes.

use crate::decode::{Decoded, FragKey};
use std::collections::{HashMap, VecDeque};

/// Default age limit of an entry, micros of packet time (Linux `ipfrag_time`).
pub const DEFAULT_MAX_AGE_MICROS: i64 = 30_000_000;

/// Later fragments held before their first fragment arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Fragments held.
    pub pkts: u32,
    /// Their frame bytes.
    pub bytes: u64,
    /// Time of the first and the last of them.
    pub first_micros: i64,
    pub last_micros: i64,
}

impl Held {
    fn add(&mut self, ts: i64, len: u32) {
        if self.pkts == 0 {
            self.first_micros = ts;
        }
        self.pkts = self.pkts.saturating_add(1);
        self.bytes = self.bytes.saturating_add(u64::from(len));
        self.last_micros = ts;
    }

    /// The held fragments as (time, frame length) pairs whose totals equal the held totals.
    pub fn frames(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        let n = u64::from(self.pkts.max(1));
        let each = self.bytes / n;
        let first_extra = self.bytes - each * n;
        (0..self.pkts).map(move |i| {
            let len = if i == 0 { each + first_extra } else { each };
            let ts = if i == 0 {
                self.first_micros
            } else {
                self.last_micros
            };
            (ts, u32::try_from(len).unwrap_or(u32::MAX))
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The first fragment was seen: its decode attributes the later ones.
    Known(Decoded),
    /// Only later fragments so far.
    Held(Held),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    seen_micros: i64,
    serial: u64,
    /// IP payload bytes of the fragments seen.
    got: u32,
    /// Datagram payload length once the last fragment was seen (0 = not yet).
    total: u32,
}

/// What became of a later fragment.
#[derive(Debug, Clone, Copy)]
pub enum Later {
    /// Its first fragment is known: this is the first fragment's decode.
    Attributed(Decoded),
    /// Held until the first fragment arrives (or counted as unattributed if it never does).
    Held,
}

/// Counters since the last [`FragTable::take_counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Entries evicted from a full map.
    pub evicted: u64,
    /// Later fragments never attributed to a flow, and their frame bytes.
    pub unattributed_pkts: u64,
    pub unattributed_bytes: u64,
    /// Datagrams whose every fragment was seen.
    pub completed: u64,
}

/// The fragment map. See the module documentation.
#[derive(Debug)]
pub struct FragTable {
    map: HashMap<FragKey, Entry, foldhash::fast::RandomState>,
    order: VecDeque<(FragKey, u64)>,
    capacity: usize,
    max_age: i64,
    serial: u64,
    counters: FragCounters,
}

impl FragTable {
    /// A map of at most `capacity` datagrams, each kept at most `max_age_micros`.
    pub fn new(capacity: usize, max_age_micros: i64) -> Self {
        let capacity = capacity.max(1);
        FragTable {
            map: HashMap::with_capacity_and_hasher(capacity.min(1 << 16), Default::default()),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            max_age: max_age_micros.max(1),
            serial: 0,
            counters: FragCounters::default(),
        }
    }

    /// Datagrams in the map.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Read and reset the counters.
    pub fn take_counters(&mut self) -> FragCounters {
        std::mem::take(&mut self.counters)
    }

    /// A first fragment (`dec` holds its ports). Returns later fragments of the same datagram
    /// that arrived before it, now attributable. A known key means a new datagram reusing the
    /// IP id: it replaces the entry.
    pub fn on_first(&mut self, k: FragKey, dec: &Decoded, ts: i64) -> Option<Held> {
        self.age(ts);
        let mut held = None;
        let (got, total) = match self.map.remove(&k) {
            Some(Entry {
                state: State::Held(h),
                got,
                total,
                ..
            }) => {
                held = Some(h);
                (got, total)
            }
            _ => (0, 0),
        };
        let mut e = Entry {
            state: State::Known(*dec),
            seen_micros: ts,
            serial: 0,
            got,
            total,
        };
        account(&mut e, dec);
        if e.total != 0 && e.got >= e.total {
            self.counters.completed += 1;
        } else {
            self.insert(k, e);
        }
        held
    }

    /// A later fragment of frame length `orig_len`.
    pub fn on_later(&mut self, k: FragKey, dec: &Decoded, ts: i64, orig_len: u32) -> Later {
        self.age(ts);
        if let Some(e) = self.map.get_mut(&k) {
            account(e, dec);
            return match e.state {
                State::Known(first) => {
                    if e.total != 0 && e.got >= e.total {
                        self.map.remove(&k);
                        self.counters.completed += 1;
                    }
                    Later::Attributed(first)
                }
                State::Held(ref mut h) => {
                    h.add(ts, orig_len);
                    Later::Held
                }
            };
        }
        let mut h = Held::default();
        h.add(ts, orig_len);
        let mut e = Entry {
            state: State::Held(h),
            seen_micros: ts,
            serial: 0,
            got: 0,
            total: 0,
        };
        account(&mut e, dec);
        self.insert(k, e);
        Later::Held
    }

    /// Count every held fragment as unattributed and empty the map (end of capture).
    pub fn finish(&mut self) {
        for (_, e) in self.map.drain() {
            if let State::Held(h) = e.state {
                self.counters.unattributed_pkts += u64::from(h.pkts);
                self.counters.unattributed_bytes += h.bytes;
            }
        }
        self.order.clear();
    }

    fn insert(&mut self, k: FragKey, mut e: Entry) {
        if self.map.len() >= self.capacity {
            self.evict_oldest();
        }
        self.serial += 1;
        e.serial = self.serial;
        self.map.insert(k, e);
        self.order.push_back((k, e.serial));
        // Entries completed or replaced leave stale queue items behind; compact when the queue
        // is twice the map (amortised O(1) per insert).
        if self.order.len() > 2 * self.capacity.max(self.map.len()) {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.serial == *s));
        }
    }

    /// Drop entries older than the age limit, from the front of the queue.
    fn age(&mut self, now: i64) {
        // A bounded number per packet keeps the cost per packet constant; the queue is in
        // insertion order, so the oldest entries are at the front.
        for _ in 0..8 {
            let Some(&(k, serial)) = self.order.front() else {
                return;
            };
            match self.map.get(&k) {
                Some(e) if e.serial == serial => {
                    if now.saturating_sub(e.seen_micros) < self.max_age {
                        return;
                    }
                    self.order.pop_front();
                    if let Some(e) = self.map.remove(&k) {
                        self.drop_entry(e);
                    }
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((k, serial)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|e| e.serial == serial) {
                if let Some(e) = self.map.remove(&k) {
                    self.counters.evicted += 1;
                    self.drop_entry(e);
                }
                return;
            }
        }
    }

    fn drop_entry(&mut self, e: Entry) {
        if let State::Held(h) = e.state {
            self.counters.unattributed_pkts += u64::from(h.pkts);
            self.counters.unattributed_bytes += h.bytes;
        }
    }
}

/// Add a fragment's bytes to its datagram's entry.
fn account(e: &mut Entry, dec: &Decoded) {
    e.got = e.got.saturating_add(dec.frag_len);
    if !dec.frag_more {
        e.total = dec.frag_offset.saturating_add(dec.frag_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Frag;

    fn key(id: u32) -> FragKey {
        FragKey {
            id,
            proto: 17,
            ..FragKey::default()
        }
    }

    fn d(id: u32, first: bool, offset: u32, len: u32, more: bool) -> Decoded {
        Decoded {
            frag: if first { Frag::First } else { Frag::Later },
            frag_id: id,
            frag_proto: 17,
            frag_offset: offset,
            frag_len: len,
            frag_more: more,
            dst_port: 53,
            ..Decoded::default()
        }
    }

    #[test]
    fn complete_datagrams_leave_the_map() {
        let mut t = FragTable::new(4, DEFAULT_MAX_AGE_MICROS);
        for id in 0..1000 {
            assert!(t
                .on_first(key(id), &d(id, true, 0, 1480, true), 0)
                .is_none());
            assert!(matches!(
                t.on_later(key(id), &d(id, false, 1480, 100, false), 0, 134),
                Later::Attributed(f) if f.dst_port == 53
            ));
        }
        assert!(t.is_empty());
        let c = t.take_counters();
        assert_eq!((c.completed, c.evicted, c.unattributed_pkts), (1000, 0, 0));
    }

    #[test]
    fn a_flood_of_incomplete_datagrams_evicts_its_own_oldest_entries() {
        let mut t = FragTable::new(8, DEFAULT_MAX_AGE_MICROS);
        for id in 0..100 {
            t.on_first(key(id), &d(id, true, 0, 1480, true), i64::from(id));
        }
        assert_eq!(t.len(), 8);
        // A real datagram now: its first fragment is remembered, its last one attributed.
        t.on_first(key(5000), &d(5000, true, 0, 1480, true), 200);
        assert!(matches!(
            t.on_later(key(5000), &d(5000, false, 1480, 8, false), 201, 42),
            Later::Attributed(_)
        ));
        assert_eq!(t.take_counters().evicted, 93);
        assert!(t.order.len() <= 2 * 8 + 1);
    }

    #[test]
    fn held_fragments_age_out_counted() {
        let mut t = FragTable::new(8, 1_000_000);
        assert!(matches!(
            t.on_later(key(1), &d(1, false, 8, 8, false), 0, 60),
            Later::Held
        ));
        t.on_later(key(1), &d(1, false, 16, 8, true), 10, 60);
        // Much later, another packet ages the entry out.
        t.on_first(key(2), &d(2, true, 0, 8, true), 5_000_000);
        let c = t.take_counters();
        assert_eq!((c.unattributed_pkts, c.unattributed_bytes), (2, 120));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn held_frames_keep_totals() {
        let mut h = Held::default();
        h.add(5, 100);
        h.add(7, 101);
        h.add(9, 102);
        let v: Vec<(i64, u32)> = h.frames().collect();
        assert_eq!(v.iter().map(|f| u64::from(f.1)).sum::<u64>(), 303);
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].0, v[2].0), (5, 9));
    }
}
