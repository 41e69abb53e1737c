//! Bidirectional flow tracking per worker: keys, the bounded table, TCP state, timeouts.
//!
//! [`FlowTracker::on_packet`] applies one decoded packet to the table and reports finished
//! flows through a callback; [`FlowTracker::expire`] writes idle flows out with bounded work
//! per call. Time is always passed in (packet time offline, a coarse clock live).
//!
//! Rules, chosen to match tshark's conversation table where it matters:
//! - the key is the innermost (addresses, ports, protocol) with the VLAN ids the packet came
//!   on (as Suricata keys flows; not tunnel ids), ICMP types in place of ports ([`FlowKey`]);
//! - initiator = the SYN sender; a SYN-ACK seen first means its *receiver* initiated; else the
//!   first packet's sender (TCP without SYN/SYN-ACK first counts as mid-stream);
//! - a TCP SYN (without ACK) on a closed flow, or from the initiator with a different initial
//!   sequence number, ends the old flow and starts a new one (port reuse, like `tcp.stream`);
//! - FIN both ways or RST closes a flow; it stays for `tcp_closed_timeout` to collect trailing
//!   ACKs, then its record is written with reason `fin` / `rst`; for [`AFTER_CLOSE_MICROS`]
//!   after that a segment of the same connection without payload or SYN (a retransmitted FIN,
//!   the ACK answering it, a RST) starts no new flow — it would be a second flow, reversed when
//!   the responder retransmits — and is counted (`ignored.tcp_after_close`), as Suricata sets
//!   no session up for a FIN or RST without one;
//! - when the table is full a flow is evicted (reason `evicted`): the stalest closed flow,
//!   else the stalest half-open TCP flow, else the stalest flow of any class.

pub mod frag;
pub mod key;
pub mod table;

use crate::analysis::EndReason;
use crate::decode::{ip_proto, tcp_flags, Decoded};
use crossline_config::agent::CaptureConfig;
pub use key::FlowKey;
pub use table::{AppProto, Flow, FlowTable, TcpState, TimeoutClass, APP_PROTOS, CLASSES};

/// Counters of flow-table events since the last read.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrackerCounters {
    /// Flows created.
    pub created: u64,
    /// Flows created mid-stream.
    pub midstream: u64,
    /// Flows evicted.
    pub evicted: u64,
    /// Flows removed (any reason).
    pub removed: u64,
    /// TCP acknowledgements checked for capture loss.
    pub loss_acks: u64,
    /// Acknowledgements that covered sequence space never captured (Zeek's capture_loss
    /// "gaps"), and the bytes they covered.
    pub loss_gaps: u64,
    pub loss_bytes: u64,
    /// Segments of recently closed connections that started no flow.
    pub after_close: u64,
}

/// How long after a TCP connection's record was written (closed by FIN or RST) its stray
/// segments without payload or SYN are still taken as its own (Suricata's default closed
/// timeout).
pub const AFTER_CLOSE_MICROS: i64 = 60_000_000;
/// Recently closed connections remembered per worker (direct-mapped: a newer close in the
/// same slot replaces an older one, so memory is fixed).
pub const AFTER_CLOSE_SLOTS: usize = 1 << key::SHARD_BITS;

/// A flow table with the tracking rules above.
#[derive(Debug)]
pub struct FlowTracker<S, L> {
    table: FlowTable<S, L>,
    active_timeout: i64,
    next_id: u64,
    id_step: u64,
    /// Counters since the last [`FlowTracker::take_counters`].
    counters: TrackerCounters,
    /// Keys of connections closed by FIN or RST, with their last packet time (see
    /// [`AFTER_CLOSE_MICROS`]), at a slot picked by the key's hash.
    closed: Vec<Option<(FlowKey, i64)>>,
    /// A fixed seed, not a random one: which closed connections share a slot (and so which
    /// stray segment still finds its entry) must not change from run to run, or `analyze`
    /// of the same capture writes different one-packet flows each time. Crafted collisions
    /// can only cost a stray segment its entry (a one-packet flow more), never table space.
    closed_hasher: foldhash::fast::FixedState,
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl<S: Default, L: Default> FlowTracker<S, L> {
    /// Tracker for worker `worker` of `workers`; flow ids are `worker + 1 + k * workers`, unique
    /// across the workers of one run.
    pub fn new(cfg: &CaptureConfig, worker: usize, workers: usize) -> Self {
        let mut t = [0i64; CLASSES];
        t[TimeoutClass::TcpUnestablished as usize] = micros(cfg.tcp_unestablished_timeout);
        t[TimeoutClass::TcpEstablished as usize] = micros(cfg.tcp_established_timeout);
        t[TimeoutClass::TcpClosed as usize] = micros(cfg.tcp_closed_timeout);
        t[TimeoutClass::Udp as usize] = micros(cfg.udp_timeout);
        t[TimeoutClass::Other as usize] = micros(cfg.icmp_timeout);
        FlowTracker {
            table: FlowTable::new(cfg.flows_per_worker, t),
            active_timeout: micros(cfg.active_timeout).max(1),
            next_id: worker as u64 + 1,
            id_step: workers.max(1) as u64,
            counters: TrackerCounters::default(),
            closed: vec![None; AFTER_CLOSE_SLOTS],
            closed_hasher: foldhash::fast::FixedState::with_seed(key::OFFLINE_SHARD_SEED),
        }
    }

    /// The table.
    pub fn table(&self) -> &FlowTable<S, L> {
        &self.table
    }

    /// The flow in slot `idx`.
    pub fn flow_mut(&mut self, idx: u32) -> &mut Flow<S, L> {
        self.table.get_mut(idx)
    }

    /// Read and reset the counters.
    pub fn take_counters(&mut self) -> TrackerCounters {
        std::mem::take(&mut self.counters)
    }

    /// Apply one packet. `emit` receives every flow record due (port reuse, eviction, active
    /// timeout). Returns the flow's slot and whether the packet came from the initiator, or
    /// `None` for a stray segment of a connection closed shortly before (no flow; counted in
    /// [`TrackerCounters::after_close`]; such a segment has no payload).
    pub fn on_packet(
        &mut self,
        d: &Decoded,
        ts: i64,
        orig_len: u32,
        emit: &mut impl FnMut(&mut Flow<S, L>, EndReason),
    ) -> Option<(u32, bool)> {
        self.apply(d, ts, orig_len, None, emit)
    }

    /// [`FlowTracker::on_packet`], with the flow id a flow created by this packet gets (the
    /// capture path numbers packets, so flow ids do not depend on the number of workers).
    pub fn on_packet_with_id(
        &mut self,
        d: &Decoded,
        ts: i64,
        orig_len: u32,
        new_id: u64,
        emit: &mut impl FnMut(&mut Flow<S, L>, EndReason),
    ) -> Option<(u32, bool)> {
        self.apply(d, ts, orig_len, Some(new_id), emit)
    }

    fn apply(
        &mut self,
        d: &Decoded,
        ts: i64,
        orig_len: u32,
        new_id: Option<u64>,
        emit: &mut impl FnMut(&mut Flow<S, L>, EndReason),
    ) -> Option<(u32, bool)> {
        let (key, src_is_lo, hash) = self.table.key_of(d);
        let is_tcp = d.proto == ip_proto::TCP;
        let flags = d.tcp_flags;
        let pure_syn = is_tcp && flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        let syn_ack = is_tcp
            && flags & (tcp_flags::SYN | tcp_flags::ACK) == (tcp_flags::SYN | tcp_flags::ACK);

        let mut found = self.table.find_hashed(&key, hash);
        if let (Some(idx), true) = (found, pure_syn) {
            let f = self.table.get(idx);
            let from_init = f.initiator_is_lo == src_is_lo;
            let reuse = match f.tcp.state {
                TcpState::ClosedFin | TcpState::ClosedRst => true,
                _ => from_init && f.tcp.syn_seen && f.tcp.syn_seq != d.tcp_seq,
            };
            if reuse {
                self.close(idx, EndReason::Timeout, emit);
                found = None;
            }
        }

        if let Some(idx) = found {
            // The flow's idle timeout passed before this packet: write it out first, so the
            // result never depends on when the periodic expiry last ran (batch boundaries,
            // worker count).
            let f = self.table.get(idx);
            let timeout = self.table.timeout(class_of(d.proto, f.tcp.state));
            if f.last_micros.saturating_add(timeout) <= ts {
                self.close(idx, EndReason::Timeout, emit);
                found = None;
            }
        }

        if found.is_none() && self.stray_after_close(d, &key, ts) {
            return None;
        }
        let idx = match found {
            Some(idx) => idx,
            None => {
                if self.table.is_full() {
                    if let Some(victim) = self.table.eviction_candidate() {
                        self.counters.removed += 1;
                        self.counters.evicted += 1;
                        self.table
                            .remove_with(victim, |old| emit(old, EndReason::Evicted));
                    }
                }
                // Initiator: SYN sender; SYN-ACK receiver; else the sender.
                let initiator_is_lo = if syn_ack { !src_is_lo } else { src_is_lo };
                let midstream = is_tcp && !pure_syn && !syn_ack;
                let id = new_id.unwrap_or_else(|| {
                    let id = self.next_id;
                    self.next_id += self.id_step;
                    id
                });
                let mut flow = Flow {
                    key,
                    flow_id: id,
                    first_micros: ts,
                    last_micros: ts,
                    initiator_is_lo,
                    midstream,
                    ..Flow::default()
                };
                if midstream {
                    flow.tcp.state = TcpState::Established;
                }
                self.counters.created += 1;
                if midstream {
                    self.counters.midstream += 1;
                }
                let class = class_of(d.proto, flow.tcp.state);
                // The key was not found, or its flow was just closed: no second lookup.
                match self.table.insert_hashed(flow, class, hash) {
                    Some(i) => i,
                    // Cannot happen (eviction made room and the key was absent); fall back to
                    // the stalest slot rather than panicking on traffic.
                    None => return Some((self.table.stalest().unwrap_or(0), true)),
                }
            }
        };

        let f = self.table.get_mut(idx);
        let from_init = f.initiator_is_lo == src_is_lo;
        let dir = usize::from(!from_init);
        if f.pkts[dir] == 0 && matches!(d.proto, ip_proto::ICMP | ip_proto::ICMPV6) {
            f.icmp[dir] = (d.src_port as u8, d.dst_port as u8);
        }
        f.pkts[dir] += 1;
        f.bytes[dir] += u64::from(orig_len);
        f.payload[dir] += u64::from(d.payload_len);
        if ts > f.last_micros {
            f.last_micros = ts;
        }
        if is_tcp {
            track_tcp(f, d, dir, &mut self.counters);
        }
        let class = class_of(d.proto, f.tcp.state);
        let next_active = self
            .active_timeout
            .saturating_mul(i64::from(f.active_records) + 1);
        let due = ts.saturating_sub(f.first_micros) >= next_active;
        if due {
            // Catch up with the grid, so a flow that was quiet for several intervals gets one
            // record now, not one per packet until it catches up.
            let intervals = ts.saturating_sub(f.first_micros) / self.active_timeout;
            f.active_records = u32::try_from(intervals).unwrap_or(u32::MAX);
        }
        self.table.touch(idx, class);
        if due {
            emit(self.table.get_mut(idx), EndReason::ActiveTimeout);
        }
        Some((idx, from_init))
    }

    /// Slot of `key` among the recently closed connections.
    fn closed_slot(&self, key: &FlowKey) -> usize {
        key::shard_slot(key.shard_hash(&self.closed_hasher))
    }

    /// `d` (keyed `key`, no live flow) is a TCP segment without payload or SYN of a connection
    /// closed (FIN or RST) at most [`AFTER_CLOSE_MICROS`] before `ts`: counted, no flow.
    fn stray_after_close(&mut self, d: &Decoded, key: &FlowKey, ts: i64) -> bool {
        let stray = d.proto == ip_proto::TCP
            && d.tcp_flags & tcp_flags::SYN == 0
            && d.payload_len == 0
            && matches!(d.frag, crate::decode::Frag::None)
            && matches!(
                self.closed.get(self.closed_slot(key)),
                Some(Some((k, at))) if k == key && ts.saturating_sub(*at) <= AFTER_CLOSE_MICROS
            );
        if stray {
            self.counters.after_close += 1;
        }
        stray
    }

    /// Write out up to `max` flows whose idle timeout passed at `now`. Returns how many.
    pub fn expire(
        &mut self,
        now: i64,
        max: usize,
        emit: &mut impl FnMut(&mut Flow<S, L>, EndReason),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Some(idx) = self.table.expired(now) else {
                break;
            };
            self.close(idx, EndReason::Timeout, emit);
            n += 1;
        }
        n
    }

    /// Write out every flow (end of capture / shutdown), oldest first.
    pub fn drain(&mut self, emit: &mut impl FnMut(&mut Flow<S, L>, EndReason)) {
        let mut all = self.table.all();
        all.sort_by_key(|i| {
            let f = self.table.get(*i);
            (f.first_micros, f.flow_id)
        });
        for idx in all {
            self.close(idx, EndReason::Shutdown, emit);
        }
    }

    /// (last packet time, flow id, slot) of every flow, in that order (an ordered drain that
    /// writes the records one at a time, without moving the flows out first).
    pub fn drain_order(&self) -> Vec<(i64, u64, u32)> {
        let mut all: Vec<(i64, u64, u32)> = self
            .table
            .all()
            .into_iter()
            .map(|i| {
                let f = self.table.get(i);
                (f.last_micros, f.flow_id, i)
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// Remove the flow in `idx` and write its record (reason `shutdown` unless the TCP
    /// connection closed).
    pub fn close_at(&mut self, idx: u32, emit: &mut impl FnMut(&mut Flow<S, L>, EndReason)) {
        self.close(idx, EndReason::Shutdown, emit);
    }

    /// Remove the flow in `idx` and write its record: `fin` / `rst` when the TCP connection
    /// closed, else `otherwise` (timeout, shutdown).
    fn close(
        &mut self,
        idx: u32,
        otherwise: EndReason,
        emit: &mut impl FnMut(&mut Flow<S, L>, EndReason),
    ) {
        self.counters.removed += 1;
        let f = self.table.get(idx);
        let reason = match f.tcp.state {
            TcpState::ClosedFin => EndReason::Fin,
            TcpState::ClosedRst => EndReason::Rst,
            _ => otherwise,
        };
        if matches!(reason, EndReason::Fin | EndReason::Rst) {
            let (key, last) = (f.key, f.last_micros);
            let slot = self.closed_slot(&key);
            if let Some(s) = self.closed.get_mut(slot) {
                *s = Some((key, last));
            }
        }
        self.table.remove_with(idx, |f| emit(f, reason));
    }
}

/// Largest acknowledged gap taken as capture loss (a larger jump is not taken as real).
const LOSS_MAX_GAP: u32 = 1 << 30;

/// `a` is after `b` in TCP sequence space.
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Timeout class for a protocol and TCP state.
pub fn class_of(proto: u8, state: TcpState) -> TimeoutClass {
    match proto {
        ip_proto::TCP => match state {
            TcpState::New => TimeoutClass::TcpUnestablished,
            TcpState::Established => TimeoutClass::TcpEstablished,
            TcpState::ClosedFin | TcpState::ClosedRst => TimeoutClass::TcpClosed,
        },
        ip_proto::UDP => TimeoutClass::Udp,
        _ => TimeoutClass::Other,
    }
}

/// TCP tracking of one packet in direction `dir` (0 = from the initiator): capture-loss gaps,
/// the initiator's SYN, and the connection state.
#[inline]
fn track_tcp<S, L>(f: &mut Flow<S, L>, d: &Decoded, dir: usize, counters: &mut TrackerCounters) {
    let flags = d.tcp_flags;
    let pure_syn = flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
    let syn_ack = flags & (tcp_flags::SYN | tcp_flags::ACK) == (tcp_flags::SYN | tcp_flags::ACK);
    let from_init = dir == 0;
    let t = &mut f.tcp;
    // Capture loss (as Zeek's capture_loss counts it): an ACK for sequence space of
    // the other direction beyond anything captured means segments the receiver got
    // and the sensor did not see.
    let len = d
        .tcp_wire_len
        .wrapping_add(u32::from(flags & (tcp_flags::SYN | tcp_flags::FIN) != 0));
    let end = d.tcp_seq.wrapping_add(len);
    let bit = 1u8 << dir;
    if !matches!(d.frag, crate::decode::Frag::None) {
        // A fragmented segment's length is not known here: start over.
        t.seen &= !bit;
    } else if t.seen & bit == 0 || seq_after(end, t.seen_end[dir]) {
        t.seen_end[dir] = end;
        t.seen |= bit;
    }
    let other = 1 - dir;
    if flags & tcp_flags::ACK != 0 && flags & tcp_flags::RST == 0 && t.seen & (1 << other) != 0 {
        counters.loss_acks += 1;
        let gap = d.tcp_ack.wrapping_sub(t.seen_end[other]);
        // Only a forward ACK within a sane window counts (not a wild number).
        if gap != 0 && gap < LOSS_MAX_GAP {
            counters.loss_gaps += 1;
            counters.loss_bytes += u64::from(gap);
            t.seen_end[other] = d.tcp_ack;
        }
    }
    if pure_syn && from_init && !t.syn_seen {
        t.syn_seen = true;
        t.syn_seq = d.tcp_seq;
        t.next_seq = d.tcp_seq.wrapping_add(1);
    }
    if syn_ack && !from_init {
        t.synack_seen = true;
    }
    if flags & tcp_flags::RST != 0 {
        t.state = TcpState::ClosedRst;
    } else if t.state != TcpState::ClosedRst {
        if flags & tcp_flags::FIN != 0 {
            t.fin[dir] = true;
        }
        if t.fin[0] && t.fin[1] {
            t.state = TcpState::ClosedFin;
        } else if t.state == TcpState::New && t.syn_seen && t.synack_seen {
            t.state = TcpState::Established;
        } else if t.state == TcpState::New && !t.syn_seen && f.pkts[0] > 0 && f.pkts[1] > 0 {
            // SYN-ACK first: the SYN was missed, traffic flows both ways.
            t.state = TcpState::Established;
        }
    }
}

#[cfg(test)]
mod tests;
