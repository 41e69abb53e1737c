//! Connection slots per listener: a cap on open connections that a flood of idle connections
//! cannot take from the gateways.
//!
//! Each listener has `limits.max_connections` slots. A connection is *pending* until it
//! completes a mutual-TLS handshake, then *established* (on the API listener, which has no
//! client certificates, it stays pending). Peer addresses that completed a mutual-TLS handshake as a configured gateway
//! are remembered as *known* (at most [`MAX_KNOWN`] addresses, for [`KNOWN_FOR`]).
//!
//! - Unknown peers share at most the high-water mark (3/4 of the slots); past it, and whenever
//!   the listener is full, a new connection takes the slot of the oldest pending unknown
//!   connection that has had at least [`GRACE`] to finish its handshake (that one is closed,
//!   `evicted`), or is closed at once (`refused`).
//! - A known peer may use every slot; when the listener is full it takes the slot of the oldest
//!   pending unknown connection whatever its age. Established connections are never evicted.
//! - Past the high-water mark the TLS handshake timeout shrinks to at most [`SHORT_HANDSHAKE`].

use crate::metrics::Metrics;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Time a pending unknown connection keeps its slot against newer unknown ones.
pub const GRACE: Duration = Duration::from_millis(200);
/// Handshake timeout past the high-water mark.
pub const SHORT_HANDSHAKE: Duration = Duration::from_secs(1);
/// Known gateway addresses remembered.
pub const MAX_KNOWN: usize = 4096;
/// How long an address stays known after its last gateway handshake.
pub const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct Pending {
    at: Instant,
    known: bool,
    evict: Arc<Notify>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    pending: BTreeMap<u64, Pending>,
    established: usize,
    known: HashMap<IpAddr, Instant>,
    evictions: u64,
}

impl State {
    fn open(&self) -> usize {
        self.pending.len() + self.established
    }

    fn unknown(&self) -> usize {
        self.pending.values().filter(|p| !p.known).count()
    }

    /// Evict the oldest pending unknown connection at least `min_age` old.
    fn evict_oldest_unknown(&mut self, now: Instant, min_age: Duration) -> bool {
        let victim = self
            .pending
            .iter()
            .find(|(_, p)| !p.known)
            .filter(|(_, p)| now.saturating_duration_since(p.at) >= min_age)
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.pending.remove(&id)) {
            Some(p) => {
                p.evict.notify_one();
                self.evictions += 1;
                true
            }
            None => false,
        }
    }
}

/// The slots of one listener.
#[derive(Debug)]
pub struct ConnLimit {
    listener: &'static str,
    cap: usize,
    high_water: usize,
    handshake: Duration,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

/// What the listener does with a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the slot is freed when this is dropped.
    Admit(Slot),
    /// Close it at once (the listener is full of connections that may not be evicted).
    Refuse,
}

/// A connection's slot.
#[derive(Debug)]
pub struct Slot {
    limit: Arc<ConnLimit>,
    id: u64,
    established: bool,
    /// Notified when the slot was taken by a newer connection: close.
    pub evict: Arc<Notify>,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
}

impl ConnLimit {
    /// Slots for `listener` (`ingest` or `api`).
    pub fn new(
        listener: &'static str,
        cap: usize,
        handshake: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<ConnLimit> {
        let cap = cap.max(4);
        Arc::new(ConnLimit {
            listener,
            cap,
            high_water: cap * 3 / 4,
            handshake,
            state: Mutex::new(State::default()),
            metrics,
        })
    }

    /// Decide about a connection from `peer` accepted at `now`.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Admission {
        let Ok(mut st) = self.state.lock() else {
            return Admission::Refuse;
        };
        let known = st
            .known
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < KNOWN_FOR);
        let evictions = st.evictions;
        let room = if known {
            st.open() < self.cap || st.evict_oldest_unknown(now, Duration::ZERO)
        } else {
            (st.open() < self.cap && st.unknown() < self.high_water)
                || st.evict_oldest_unknown(now, GRACE)
        };
        if st.evictions != evictions {
            self.metrics.connection(self.listener, "evicted");
        }
        if !room || st.open() >= self.cap {
            self.metrics.connection(self.listener, "refused");
            return Admission::Refuse;
        }
        let handshake_timeout = if st.open() >= self.high_water {
            self.handshake.min(SHORT_HANDSHAKE)
        } else {
            self.handshake
        };
        let id = st.next;
        st.next += 1;
        let evict = Arc::new(Notify::new());
        st.pending.insert(
            id,
            Pending {
                at: now,
                known,
                evict: evict.clone(),
            },
        );
        self.metrics.connection(self.listener, "accepted");
        self.metrics.connections_open(self.listener, st.open());
        Admission::Admit(Slot {
            limit: self.clone(),
            id,
            established: false,
            evict,
            handshake_timeout,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.state.lock().map_or(0, |s| s.open())
    }

    /// Remember `peer` as a gateway's address (it completed a mutual-TLS handshake as a
    /// configured gateway).
    pub fn remember(&self, peer: IpAddr, now: Instant) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.known.len() >= MAX_KNOWN && !st.known.contains_key(&peer) {
            st.known
                .retain(|_, t| now.saturating_duration_since(*t) < KNOWN_FOR);
            if st.known.len() >= MAX_KNOWN {
                return;
            }
        }
        st.known.insert(peer, now);
    }
}

impl Slot {
    /// The handshake completed: the connection can no longer be evicted. False when it was
    /// evicted meanwhile (close it).
    pub fn establish(&mut self) -> bool {
        let Ok(mut st) = self.limit.state.lock() else {
            return false;
        };
        if st.pending.remove(&self.id).is_some() {
            st.established += 1;
            self.established = true;
            true
        } else {
            false
        }
    }

    /// Count an outcome of this connection (`evicted`, `handshake_timeout`, ...).
    pub fn count(&self, outcome: &str) {
        self.limit.metrics.connection(self.limit.listener, outcome);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut st) = self.limit.state.lock() else {
            return;
        };
        if self.established {
            st.established = st.established.saturating_sub(1);
        } else {
            st.pending.remove(&self.id);
        }
        self.limit
            .metrics
            .connections_open(self.limit.listener, st.open());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn limit(cap: usize) -> Arc<ConnLimit> {
        let cfg = crossline_config::collector::parse_collector(
            "gateways = []\n",
            std::path::Path::new("c.toml"),
        )
        .expect("config");
        let m = Arc::new(Metrics::new(&cfg).expect("metrics"));
        ConnLimit::new("ingest", cap, Duration::from_secs(10), m)
    }

    #[test]
    fn flood_cannot_take_the_slots_of_known_gateways() {
        let l = limit(8);
        let t0 = Instant::now();
        let flood = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
        let gw = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        l.remember(gw, t0);
        let mut held = Vec::new();
        // Unknown peers get at most the high-water mark (6 of 8).
        for _ in 0..6 {
            match l.admit(flood, t0) {
                Admission::Admit(s) => held.push(s),
                Admission::Refuse => panic!("below the high-water mark"),
            }
        }
        // Young pending connections are not evicted by newer unknown ones.
        assert!(matches!(l.admit(flood, t0), Admission::Refuse));
        // After the grace, the oldest is evicted for the newcomer.
        let later = t0 + GRACE;
        match l.admit(flood, later) {
            Admission::Admit(s) => held.push(s),
            Admission::Refuse => panic!("oldest pending should be evicted"),
        }
        assert_eq!(l.open(), 6);
        // A known gateway gets a slot above the high-water mark, twice.
        let mut g1 = match l.admit(gw, later) {
            Admission::Admit(s) => s,
            Admission::Refuse => panic!("known gateway refused"),
        };
        assert!(g1.establish());
        assert!(
            g1.handshake_timeout <= SHORT_HANDSHAKE,
            "past the high-water mark"
        );
        let g2 = match l.admit(gw, later) {
            Admission::Admit(s) => s,
            Admission::Refuse => panic!("known gateway refused"),
        };
        assert_eq!(l.open(), 8);
        // Full: another known connection evicts a pending unknown one whatever its age.
        let g3 = match l.admit(gw, later) {
            Admission::Admit(s) => s,
            Admission::Refuse => panic!("known gateway refused when full"),
        };
        assert_eq!(l.open(), 8);
        drop((g2, g3));
        drop(held);
        assert_eq!(
            l.open(),
            1,
            "only the established gateway connection is left"
        );
        drop(g1);
        assert_eq!(l.open(), 0);
    }
}
