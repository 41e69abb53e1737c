//! Shared data-plane counters ([`LiveStats`]) and the per-thread local counters that are
//! flushed into them once per batch, never per packet.
//!
//! `LiveStats` is shared as `Arc<LiveStats>` between capture threads, workers, the writer and
//! the metrics exporter. Every counter is a monotonic `AtomicU64` (total since start), except
//! `flows_active`, a gauge.

use crate::decode::{DecodeError, Ignored};
use crossline_config::event::{AlertKind, Event, EventType, Stats, VerdictStatus, DROP_KINDS};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Every `VerdictStatus`, in declaration order (index = position).
pub const VERDICTS: [VerdictStatus; 9] = VerdictStatus::ALL;

/// Data-plane counters, totals since start.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Packets read from capture.
    pub packets: AtomicU64,
    /// Bytes (pcap original length) read from capture.
    pub bytes: AtomicU64,
    /// Undecodable packets, total.
    pub decode_errors_total: AtomicU64,
    /// Undecodable packets by reason (index: [`DecodeError::index`]).
    pub decode_errors: [AtomicU64; DecodeError::COUNT],
    /// Packets without a flow by reason (index: [`Ignored::index`]).
    pub ignored: [AtomicU64; Ignored::COUNT],
    /// Drops reported by the kernel (pcap `ps_drop`).
    pub drops_kernel: AtomicU64,
    /// Drops reported by the interface/driver (pcap `ps_ifdrop`).
    pub drops_interface: AtomicU64,
    /// Packets dropped because a worker queue was full (live only).
    pub drops_queue: AtomicU64,
    /// Fragment map entries evicted because the map was full.
    pub drops_fragment: AtomicU64,
    /// `run`: packets the kernel's capture buffer still held when the capture stopped
    /// (`capture.stop_drain` after the stop signal), never analysed.
    pub drops_unread: AtomicU64,
    /// Frame bytes of IP fragments never attributed to a flow.
    pub fragment_unattributed_bytes: AtomicU64,
    /// Events that reached the ordered writer after the reorder window (written at once).
    pub reorder_late: AtomicU64,
    /// Heap bytes of per-flow reassembly buffers now (gauge, all workers).
    pub reassembly_bytes: AtomicU64,
    /// Flows parsed without reassembly because `capture.reassembly_budget` was spent.
    pub reassembly_refused: AtomicU64,
    /// TCP acknowledgements checked for capture loss.
    pub capture_loss_acks: AtomicU64,
    /// Acknowledgements covering sequence space never captured, and the bytes they covered.
    pub capture_loss_gaps: AtomicU64,
    pub capture_loss_bytes: AtomicU64,
    /// Flows created.
    pub flows_created: AtomicU64,
    /// Flows in the tables now (gauge).
    pub flows_active: AtomicU64,
    /// Flows picked up mid-stream.
    pub flows_midstream: AtomicU64,
    /// Flows evicted because a table was full.
    pub evictions: AtomicU64,
    /// Flow events written.
    pub flow_events: AtomicU64,
    /// Alerts written, per kind (index: position in [`AlertKind::ALL`]).
    pub alerts: [AtomicU64; AlertKind::ALL.len()],
    /// Flow records written, per verdict (index: position in [`VERDICTS`]).
    pub verdicts: [AtomicU64; VERDICTS.len()],
    /// Total flow table capacity (all workers).
    pub flow_capacity: AtomicU64,
    /// Files that could not be read completely (offline).
    pub file_errors: Mutex<Vec<String>>,
    /// Flow records with the verdict `excluded`, per `[[exclude]]` entry name (names come from
    /// the agent config, so the map is bounded; locked only for excluded records).
    pub excluded: Mutex<BTreeMap<String, u64>>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl LiveStats {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The packet-loss counters of [`DROP_KINDS`], named, in that order: the stats event's
    /// `drops` and the metrics' `drops{kind}` both read them from here.
    pub fn drop_counters(&self) -> [(&'static str, &AtomicU64); DROP_KINDS.len()] {
        [
            ("kernel", &self.drops_kernel),
            ("interface", &self.drops_interface),
            ("queue", &self.drops_queue),
            ("fragment_table", &self.drops_fragment),
            ("unread_at_stop", &self.drops_unread),
        ]
    }

    /// Count an event the writer is about to write.
    pub fn count_written(&self, event: &Event) {
        match event.event_type {
            EventType::Flow => {
                let v = event.verdict.as_ref();
                self.count_flow_line(v.map(|v| v.status), v.and_then(|v| v.exclude.as_deref()));
            }
            EventType::Alert => {
                if let Some(a) = &event.alert {
                    self.count_alert(a.kind);
                }
            }
            EventType::Stats | EventType::Sketch => {}
        }
    }

    /// Count an alert of `kind` (written as a line or as an event).
    pub fn count_alert(&self, kind: AlertKind) {
        if let Some(i) = AlertKind::ALL.iter().position(|k| *k == kind) {
            self.alerts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a flow record (written as a line or as an event) with its verdict status and the
    /// `[[exclude]]` entry it matched.
    pub fn count_flow_line(&self, status: Option<VerdictStatus>, exclude: Option<&str>) {
        self.flow_events.fetch_add(1, Ordering::Relaxed);
        let Some(status) = status else {
            return;
        };
        if let Some(i) = VERDICTS.iter().position(|s| *s == status) {
            self.verdicts[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(name) = exclude {
            if let Ok(mut m) = self.excluded.lock() {
                match m.get_mut(name) {
                    Some(n) => *n += 1,
                    None => {
                        m.insert(name.to_string(), 1);
                    }
                }
            }
        }
    }

    /// Record a file that could not be read completely.
    pub fn file_error(&self, message: String) {
        if let Ok(mut v) = self.file_errors.lock() {
            v.push(message);
        }
    }

    /// The counters as the `stats` event body. Zero counts are left out of the maps.
    pub fn snapshot(&self) -> Stats {
        let mut decode_errors = BTreeMap::new();
        for e in DecodeError::ALL {
            let n = load(&self.decode_errors[e.index()]);
            if n > 0 {
                decode_errors.insert(e.as_str().to_string(), n);
            }
        }
        let mut ignored = BTreeMap::new();
        for r in Ignored::ALL {
            let n = load(&self.ignored[r.index()]);
            if n > 0 {
                ignored.insert(r.as_str().to_string(), n);
            }
        }
        let n = load(&self.fragment_unattributed_bytes);
        if n > 0 {
            ignored.insert("fragment_unattributed_bytes".to_string(), n);
        }
        let mut drops = BTreeMap::new();
        for (name, c) in self.drop_counters().into_iter().chain([
            ("reassembly_budget", &self.reassembly_refused),
            ("capture_loss_gaps", &self.capture_loss_gaps),
            ("capture_loss_bytes", &self.capture_loss_bytes),
            ("capture_loss_acks", &self.capture_loss_acks),
            ("reorder_late", &self.reorder_late),
        ]) {
            drops.insert(name.to_string(), load(c));
        }
        let mut alerts = BTreeMap::new();
        for (i, k) in AlertKind::ALL.iter().enumerate() {
            let n = load(&self.alerts[i]);
            if n > 0 {
                alerts.insert(k.as_str().to_string(), n);
            }
        }
        let mut verdicts = BTreeMap::new();
        for (i, s) in VERDICTS.iter().enumerate() {
            let n = load(&self.verdicts[i]);
            if n > 0 {
                verdicts.insert(s.as_str().to_string(), n);
            }
        }
        Stats {
            packets: load(&self.packets),
            bytes: load(&self.bytes),
            decode_errors,
            ignored,
            flows: load(&self.flows_created),
            flows_midstream: load(&self.flows_midstream),
            evictions: load(&self.evictions),
            drops,
            flow_events: load(&self.flow_events),
            alerts,
            verdicts,
            excluded: self.excluded.lock().map(|m| m.clone()).unwrap_or_default(),
            file_errors: self
                .file_errors
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        }
    }
}

/// Per-thread counters of a capture thread, flushed into [`LiveStats`] per batch.
#[derive(Debug, Default, Clone)]
pub struct CaptureCounters {
    /// Packets read.
    pub packets: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Decode errors by reason.
    pub decode_errors: [u64; DecodeError::COUNT],
    /// Ignored packets by reason.
    pub ignored: [u64; Ignored::COUNT],
    /// Queue-full drops.
    pub drops_queue: u64,
    /// Fragment map evictions.
    pub drops_fragment: u64,
    /// Frame bytes of unattributed fragments.
    pub fragment_unattributed_bytes: u64,
}

impl CaptureCounters {
    /// Add the local counts to `stats` and reset them.
    pub fn flush(&mut self, stats: &LiveStats) {
        let r = Ordering::Relaxed;
        stats.packets.fetch_add(self.packets, r);
        stats.bytes.fetch_add(self.bytes, r);
        let mut errs = 0;
        for (i, n) in self.decode_errors.iter().enumerate() {
            if *n > 0 {
                stats.decode_errors[i].fetch_add(*n, r);
                errs += n;
            }
        }
        stats.decode_errors_total.fetch_add(errs, r);
        for (i, n) in self.ignored.iter().enumerate() {
            if *n > 0 {
                stats.ignored[i].fetch_add(*n, r);
            }
        }
        stats.drops_queue.fetch_add(self.drops_queue, r);
        stats.drops_fragment.fetch_add(self.drops_fragment, r);
        stats
            .fragment_unattributed_bytes
            .fetch_add(self.fragment_unattributed_bytes, r);
        *self = CaptureCounters::default();
    }
}

/// Per-worker counters, flushed into [`LiveStats`] per batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerCounters {
    /// Flows created.
    pub flows_created: u64,
    /// Flows picked up mid-stream.
    pub flows_midstream: u64,
    /// Flows evicted.
    pub evictions: u64,
    /// Change of the number of flows in the table since the last flush.
    pub active_delta: i64,
    /// Capture-loss figures (see [`LiveStats::capture_loss_gaps`]).
    pub loss_acks: u64,
    pub loss_gaps: u64,
    pub loss_bytes: u64,
}

impl WorkerCounters {
    /// Add the local counts to `stats` and reset them.
    pub fn flush(&mut self, stats: &LiveStats) {
        let r = Ordering::Relaxed;
        stats.flows_created.fetch_add(self.flows_created, r);
        stats.flows_midstream.fetch_add(self.flows_midstream, r);
        stats.evictions.fetch_add(self.evictions, r);
        stats.capture_loss_acks.fetch_add(self.loss_acks, r);
        stats.capture_loss_gaps.fetch_add(self.loss_gaps, r);
        stats.capture_loss_bytes.fetch_add(self.loss_bytes, r);
        if self.active_delta >= 0 {
            stats.flows_active.fetch_add(self.active_delta as u64, r);
        } else {
            stats
                .flows_active
                .fetch_sub(self.active_delta.unsigned_abs(), r);
        }
        *self = WorkerCounters::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each drop kind the metrics label has its own counter, under its own name, in the stats
    /// event too.
    #[test]
    fn drop_counters_follow_drop_kinds() {
        let s = LiveStats::new();
        let counters = s.drop_counters();
        assert_eq!(counters.map(|(name, _)| name), DROP_KINDS);
        for (i, (_, c)) in counters.iter().enumerate() {
            c.fetch_add(i as u64 + 1, Ordering::Relaxed);
        }
        let snap = s.snapshot();
        for (i, kind) in DROP_KINDS.iter().enumerate() {
            assert_eq!(snap.drops.get(*kind), Some(&(i as u64 + 1)), "{kind}");
        }
    }
}
