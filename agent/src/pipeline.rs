//! The data-plane pipeline: capture thread(s) -> bounded channels -> shard workers -> writer.
//!
//! A capture thread reads packets, decodes them (link layer, tunnels, IP, transport) into a
//! `Copy` [`Decoded`] value, attributes non-first IP fragments through a bounded fragment map,
//! picks the worker by a symmetric hash of the direction-normalised flow key, and appends the
//! packet metadata plus its transport payload to that worker's current [`Batch`] (64 packets;
//! batch buffers are recycled through a return channel, so nothing allocates per packet once
//! warm). Offline the capture thread blocks when a worker queue is full (nothing is lost);
//! live it never blocks: a full queue is a counted drop.
//!
//! Offline, the result does not depend on the number of workers: flow ids are packet numbers of
//! the capture thread, timeouts and analysis ticks run at its tick times, the workers write
//! their flow records in one global order ([`crate::worker::TickSync`]), and an ordered writer
//! puts the events in (time epoch, packet time, flow id) order; `analyze` also shapes alerts
//! there ([`run_offline_shaped`]). Packet time going back by more than a second (the next,
//! older capture file) starts a new epoch and ends the previous file's flows. Packets whose
//! time is before the Unix epoch or after 2099 are counted (`decode_errors.bad_timestamp`) and
//! dropped one by one.
//!
//! Entry points: [`run_offline`] (files) and [`run_live`] (interfaces, until a shutdown flag).
//! Both are generic over the [`Analysis`] built per worker by a factory closure, and take extra
//! [`EventSink`]s (e.g. the uplink spool) next to the JSON-lines output.
//!
//! IP fragments: the capture path sees them as they are on the wire (no kernel reassembly).
//! Every fragment frame is counted in its flow (the bytes were on the wire). The first fragment
//! carries the ports; later fragments are attributed through [`FragTable`], keyed by (source,
//! destination, identification, protocol) of the fragmenting IP layer, and carry their slice of
//! the datagram as payload (for the personal-information scanner; the L7 taps skip them). Later
//! fragments that arrive before their first fragment are held (counts only) and attributed when
//! it arrives; those whose first fragment never comes are counted under
//! `stats.ignored.fragment_unattributed` (packets) and `fragment_unattributed_bytes`. The map
//! is bounded (`fragment_entries` × workers per capture thread, 30 s of packet time); a
//! complete datagram leaves it at once, and a full map evicts its oldest entry, counted under
//! `stats.drops.fragment_table`.

use crate::analysis::Analysis;
use crate::capture::file::OfflineInput;
use crate::capture::live::LiveHandle;
use crate::capture::{CaptureError, PacketSource, RawPacket, SharedAt, Status};
use crate::decode::{decode_wire, ip_proto, DecodeError, Decoded, Frag, Ignored, Outcome};
use crate::dns_cache::DnsCache;
use crate::flow::frag::{FragTable, Later, DEFAULT_MAX_AGE_MICROS};
use crate::sink::{EventSink, Writer, WriterMsg};
use crate::stats::{CaptureCounters, LiveStats};
pub use crate::worker::{
    Batch, DirectWorker, Inline, PacketMeta, PacketRef, BATCH_PACKETS, EPOCH_BACKSTEP_MICROS,
    IN_DATA,
};
use crate::worker::{Worker, WorkerContext};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use crossline_config::event::{format_eve_timestamp, Event, EventType, Stats};
use crossline_config::AgentConfig;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Live: a periodic `stats` event every this many 100 ms ticks (60 s).
const LIVE_STATS_TICKS: u32 = 600;

/// Longest a live capture thread waits for its handle to become readable when it had nothing
/// to read (a block of packets wakes it at once): how late it notices the stop signal.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// A live capture thread ticks its workers this often while packets come, and at once when
/// its handle runs dry after packets (their partial batches go out); an idle one only this
/// often. It ticked at every empty read before, about a thousand times a second when idle:
/// 5 % of a CPU for an agent with no traffic.
const LIVE_TICK: Duration = Duration::from_millis(100);

/// Errors that stop a pipeline run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A capture file or interface could not be used.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Writing events failed.
    #[error("writing events: {0}")]
    Output(#[from] std::io::Error),
    /// Nothing to capture from.
    #[error("no capture interfaces configured ([capture] interfaces is empty)")]
    NoInterfaces,
}

/// Whether a full queue blocks (offline) or drops (live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    /// Block until the worker has room: nothing is dropped.
    Block,
    /// Drop and count when the worker queue is full.
    DropWhenFull,
}

/// Decodes packets and dispatches them to the workers (one per capture thread).
pub struct Dispatcher {
    out: Outbox,
    frags: FragTable,
    counters: CaptureCounters,
    stats: Arc<LiveStats>,
    dns: Option<Arc<DnsCache>>,
    dns_tcp: crate::taps::DnsTcpStreams,
    dec: Decoded,
    now: i64,
    last_tick: i64,
    since_flush: usize,
    epoch: u32,
}

/// The batches being filled, one per worker, and where they go: the part of a [`Dispatcher`]
/// a decoded packet is appended to (apart from the decode state, so the packet's [`Decoded`]
/// is written once, straight into its batch).
struct Outbox {
    senders: Vec<Sender<Batch>>,
    pool: Receiver<Batch>,
    current: Vec<Batch>,
    shard_hasher: foldhash::fast::FixedState,
    mode: QueueMode,
    /// Batches this dispatcher allocated, and how many it may: offline, once there are this
    /// many, a fresh batch is a recycled one (waiting for a worker to hand one back).
    allocated: usize,
    max_batches: usize,
    next_seq: u64,
    seq_step: u64,
    /// Packets dropped because a worker queue was full (live).
    drops_queue: u64,
    /// One dispatcher: the worker of shard 0 itself, fed its packets one by one on this thread
    /// (no batches queued for it); the other workers, if any, get batches. (Offline with several
    /// workers it is the last worker, so that worker 0, which judges every record, is a thread:
    /// see [`run_pipeline`].)
    direct: Option<Box<dyn DirectWorker>>,
    /// Packets handed to `direct` since its last batch end.
    direct_packets: usize,
    /// With `direct` and other workers: the shard slots below this go to `direct`, the rest
    /// are split evenly among the others (see [`INLINE_WEIGHT`]).
    direct_slots: Option<usize>,
}

/// The share of the flows the worker on the capture thread takes, against one for each
/// worker thread, as a fraction (numerator, denominator). The capture thread also reads and
/// decodes every packet; worker 0, a thread, judges every flow record offline and shares its
/// core with the writer. Two workers, alternating pairs against 3/2 (bench/README.md): on the
/// benchmark capture 1/1 took 0.964-0.971 of the time, 1/2 1.046, 1/3 1.041 (4/5 and 5/4
/// 1.019 and 1.026 of 1/1's); with 500,000 connections open at once, where the flow table's
/// cache misses outweigh judging the records, 1/1 took 0.763, 1/2 0.758 and 1/3 0.663.
const INLINE_WEIGHT: (usize, usize) = (1, 1);

/// With `workers` workers, one on the capture thread: the shard slots below the returned cut
/// are that worker's ([`INLINE_WEIGHT`]); `None` when it is the only worker.
fn direct_cut(workers: usize) -> Option<usize> {
    let others = workers.checked_sub(1).filter(|&o| o > 0)?;
    let (num, den) = INLINE_WEIGHT;
    let slots = 1usize << crate::flow::key::SHARD_BITS;
    Some(slots * num / (others * den + num))
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("workers", &self.out.senders.len())
            .field("mode", &self.out.mode)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher feeding `senders` (one per worker). `shard_hasher` must be shared by every
    /// dispatcher of a run so a flow always reaches the same worker.
    pub fn new(
        senders: Vec<Sender<Batch>>,
        pool: Receiver<Batch>,
        shard_hasher: foldhash::fast::FixedState,
        frag_capacity: usize,
        stats: Arc<LiveStats>,
        mode: QueueMode,
    ) -> Self {
        let n = senders.len();
        // Every batch the pool can hold, plus the ones being filled.
        let max_batches = pool.capacity().unwrap_or(n * 258) + n;
        Dispatcher {
            out: Outbox {
                senders,
                pool,
                current: (0..n).map(|_| Batch::new()).collect(),
                shard_hasher,
                mode,
                allocated: n,
                max_batches,
                next_seq: 1,
                seq_step: 1,
                drops_queue: 0,
                direct: None,
                direct_packets: 0,
                direct_slots: None,
            },
            frags: FragTable::new(frag_capacity, DEFAULT_MAX_AGE_MICROS),
            counters: CaptureCounters::default(),
            stats,
            dns: None,
            dns_tcp: Default::default(),
            dec: Decoded::default(),
            now: 0,
            last_tick: 0,
            since_flush: 0,
            epoch: 0,
        }
    }

    /// Number this dispatcher's packets `index + 1 + k * count` (several capture threads of
    /// one run), so flow ids stay unique across them.
    pub fn with_id_space(mut self, index: usize, count: usize) -> Self {
        self.out.next_seq = index as u64 + 1;
        self.out.seq_step = count.max(1) as u64;
        self
    }

    /// Feed `worker` (worker 0) on this thread instead of its channel: each of its packets as
    /// it is decoded, its payload not copied (one dispatcher). Other workers still get
    /// batches.
    pub fn with_direct(mut self, worker: Box<dyn DirectWorker>) -> Self {
        self.out.direct = Some(worker);
        self.out.direct_slots = direct_cut(self.out.senders.len());
        self
    }

    /// Learn DNS answers into `cache` as packets pass (in capture order). This is the only
    /// place DNS responses are parsed: the packets carry the outcome to the worker, which marks
    /// the flow `dns` from it. Without a cache nothing is parsed.
    pub fn with_dns_cache(mut self, cache: Arc<DnsCache>) -> Self {
        self.dns = Some(cache);
        self
    }

    /// Decode and dispatch one packet.
    pub fn on_packet(&mut self, p: RawPacket<'_>) {
        self.counters.packets += 1;
        self.counters.bytes += u64::from(p.orig_len);
        if !crate::capture::ts_sane(p.ts_micros) {
            // Never let an absurd time reach a flow, the clock or an event.
            self.counters.decode_errors[DecodeError::BadTimestamp.index()] += 1;
            return;
        }
        if self.now != 0 && p.ts_micros < self.now.saturating_sub(EPOCH_BACKSTEP_MICROS) {
            // Time went back (the next, older capture file): close this epoch's batches.
            let now = self.now;
            self.tick(now);
            self.epoch += 1;
        }
        self.now = p.ts_micros;
        self.since_flush += 1;
        if self.since_flush >= 1024 {
            self.since_flush = 0;
            self.flush_counters();
        }
        match decode_wire(p.linktype, p.data, p.orig_len, &mut self.dec) {
            Ok(()) => {}
            Err(Outcome::Error(e)) => {
                self.counters.decode_errors[e.index()] += 1;
                return;
            }
            Err(Outcome::Ignored(r)) => {
                self.counters.ignored[r.index()] += 1;
                return;
            }
        }
        if matches!(self.dec.frag, Frag::None) {
            // The common case: no fragment map, the decoded headers go straight to the batch.
            let dns_response = self.learn_dns(&p);
            let clock = (self.now, self.epoch);
            self.out.dispatch(
                clock,
                p.ts_micros,
                p.orig_len,
                (p.data, p.shared),
                &mut self.dec,
                dns_response,
            );
        } else {
            self.on_fragment(&p);
        }
        // Offline: let idle workers see time pass about once per second of packet time.
        if self.now - self.last_tick >= 1_000_000 || self.now < self.last_tick {
            self.tick(self.now);
        }
    }

    /// The rest of [`Dispatcher::on_packet`] for an IP fragment (decoded in `self.dec`).
    #[cold]
    fn on_fragment(&mut self, p: &RawPacket<'_>) {
        let mut dec = self.dec;
        let mut pending = None;
        match dec.frag {
            Frag::None => {}
            Frag::First => pending = self.frags.on_first(dec.frag_key(), &dec, p.ts_micros),
            Frag::Later => match self
                .frags
                .on_later(dec.frag_key(), &dec, p.ts_micros, p.orig_len)
            {
                Later::Attributed(first) => dec = later_fragment(&first, &dec),
                Later::Held => return,
            },
        }
        self.dec = dec;
        let dns_response = self.learn_dns(p);
        let clock = (self.now, self.epoch);
        self.out.dispatch(
            clock,
            p.ts_micros,
            p.orig_len,
            (p.data, p.shared),
            &mut self.dec,
            dns_response,
        );
        // Fragments that arrived before this first fragment now have a flow.
        if let (Some(held), Frag::First) = (pending, dec.frag) {
            let mut later = dec;
            later.frag = Frag::Later;
            later.tcp_flags = 0;
            later.payload_off = 0;
            later.payload_len = 0;
            for (ts, len) in held.frames() {
                self.out.dispatch(
                    (self.now, self.epoch),
                    ts,
                    len,
                    (&[], None),
                    &mut later,
                    false,
                );
            }
        }
    }

    /// DNS answers are parsed here, once, in packet order (the packet in `self.dec`); the
    /// worker learns from the packet's `dns_response` flag that it carried one.
    fn learn_dns(&mut self, p: &RawPacket<'_>) -> bool {
        let dec = &self.dec;
        let Some(cache) = &self.dns else {
            return false;
        };
        let dns_port = |port| crate::taps::DNS_PORTS.contains(&port);
        if !(matches!(dec.proto, ip_proto::UDP | ip_proto::TCP)
            && !matches!(dec.frag, Frag::Later)
            && dec.payload_len > 0
            && (dns_port(dec.src_port) || dns_port(dec.dst_port)))
        {
            return false;
        }
        let payload = p
            .data
            .get(dec.payload_off as usize..)
            .and_then(|s| s.get(..dec.payload_len as usize))
            .unwrap_or(&[]);
        if dec.proto == ip_proto::TCP {
            self.dns_tcp.learn(cache, dec, payload, p.ts_micros)
        } else {
            crate::taps::learn_dns(cache, dec.proto, payload, p.ts_micros)
        }
    }

    /// Send partial batches and let every worker see `now` (an empty batch is a tick).
    pub fn tick(&mut self, now: i64) {
        self.now = now;
        self.last_tick = now;
        // Counters first: a worker's tick reads the line totals up to this packet.
        self.flush_counters();
        // Shard 0 last: the worker threads get their tick batches before the worker on this
        // thread runs its tick, which can wait for their rounds (a stalled input, the end).
        for shard in (0..self.out.senders.len()).rev() {
            self.out.current[shard].tick = true;
            self.out.send(shard, now, self.epoch);
        }
    }

    /// The input ran dry without ending (a pipe or FIFO whose writer pauses): hand every
    /// worker its batch now, partly filled or empty, so that each one, finding nothing queued
    /// behind it, hands what it holds to the writer while the input waits (instead of when
    /// 64 more packets or a few hundred events have come).
    pub fn hand_over(&mut self) {
        self.flush_counters();
        for shard in (0..self.out.senders.len()).rev() {
            if let Some(b) = self.out.current.get_mut(shard) {
                b.stalled = true;
            }
            self.out.send(shard, self.now, self.epoch);
        }
    }

    fn flush_counters(&mut self) {
        let f = self.frags.take_counters();
        self.counters.drops_fragment += f.evicted;
        self.counters.ignored[Ignored::FragmentUnattributed.index()] += f.unattributed_pkts;
        self.counters.fragment_unattributed_bytes += f.unattributed_bytes;
        self.counters.drops_queue += std::mem::take(&mut self.out.drops_queue);
        self.counters.flush(&self.stats);
    }

    /// Flush everything and close the worker channels. Fragments still waiting for their
    /// first fragment are counted as unattributed.
    pub fn finish(mut self) {
        self.frags.finish();
        let now = self.now;
        self.tick(now);
        self.finish_direct();
    }

    /// Close the other workers' channels, then let the worker on this thread write what it
    /// holds: offline the workers end together, each waiting for the others.
    fn finish_direct(&mut self) {
        if let Some(w) = self.out.direct.take() {
            self.out.senders.clear();
            w.finish();
        }
    }
}

impl Drop for Dispatcher {
    /// A dispatcher dropped without [`Dispatcher::finish`] (the input failed): the worker on
    /// this thread still writes its flows, as the worker threads do when their channels
    /// close, and the others are not left waiting for it.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.finish_direct();
        }
    }
}

/// Copy `payload` into a batch's `data`: where it lies there ([`IN_DATA`], offset).
fn copy_payload(data: &mut Vec<u8>, payload: &[u8]) -> (u16, u32) {
    let start = data.len() as u32;
    data.extend_from_slice(payload);
    (IN_DATA, start)
}

impl Outbox {
    /// The worker of a packet: a keyed hash of its direction-normalised flow key (both
    /// directions of a flow reach the same worker). One worker: no hash.
    fn shard(&self, dec: &Decoded) -> usize {
        let n = self.senders.len();
        if n <= 1 {
            return 0;
        }
        let h = crate::flow::key::shard_hash_of(&self.shard_hasher, dec);
        match self.direct_slots {
            // A function of the slot alone, as `shard_worker` (flows sharing an after-close
            // slot share a worker), weighted for the worker on this thread.
            Some(cut) => crate::flow::key::shard_worker_after(h, n, cut),
            None => crate::flow::key::shard_worker(h, n),
        }
    }

    /// Append one packet to its worker's batch, sending the batch when it is full.
    /// `clock` is the dispatcher's (now, epoch), stamped on a batch this sends. `data` is the
    /// packet's bytes and, when they lie in a read buffer that can be shared, where: the batch
    /// then keeps a reference to the buffer instead of a copy of the payload.
    fn dispatch(
        &mut self,
        clock: (i64, u32),
        ts: i64,
        orig_len: u32,
        (data, shared): (&[u8], Option<SharedAt<'_>>),
        dec: &mut Decoded,
        dns_response: bool,
    ) {
        let shard = self.shard(dec);
        let payload = data
            .get(dec.payload_off as usize..)
            .and_then(|s| s.get(..dec.payload_len as usize))
            .unwrap_or(&[]);
        // Never past the captured bytes: the worker reads exactly the payload handed over.
        dec.payload_len = payload.len() as u32;
        let seq = self.next_seq;
        self.next_seq += self.seq_step;
        if let (0, Some(w)) = (shard, self.direct.as_deref_mut()) {
            let packet = PacketRef {
                dec: &*dec,
                ts_micros: ts,
                orig_len,
                seq,
                dns_response,
            };
            w.packet(clock.1, packet, payload);
            self.direct_packets += 1;
            if self.direct_packets >= BATCH_PACKETS {
                self.send(shard, clock.0, clock.1);
            }
            return;
        }
        let Some(b) = self.current.get_mut(shard) else {
            return;
        };
        let in_buf = match shared {
            Some(at) if !payload.is_empty() => u32::try_from(at.offset + dec.payload_off as usize)
                .ok()
                .and_then(|start| Some((b.chunk_of(at.buf)?, start))),
            _ => None,
        };
        let (chunk, start) = match in_buf {
            Some(place) => place,
            None => copy_payload(&mut b.data, payload),
        };
        b.metas.push(PacketMeta {
            ts_micros: ts,
            orig_len,
            payload_start: start,
            chunk,
            dec: *dec,
            seq,
            dns_response,
        });
        if b.metas.len() >= BATCH_PACKETS {
            self.send(shard, clock.0, clock.1);
        }
    }

    /// Hand the batch of `shard` to its worker, stamped with the dispatcher's `now` and
    /// `epoch`, and start a fresh one from the pool.
    ///
    /// The batch is sent first, then its replacement taken: a worker waiting for this batch
    /// (a tick every worker meets on) gets it before the dispatcher waits for a recycled one.
    /// Offline the number of batches is bounded: when the pool is empty and this dispatcher
    /// holds its share, it waits for a worker to hand one back instead of allocating (an
    /// allocation per batch otherwise, and a free in the worker when the pool overflows).
    /// Live it never waits: an empty pool means a new batch.
    fn send(&mut self, shard: usize, now: i64, epoch: u32) {
        if let (0, Some(w), Some(b)) = (
            shard,
            self.direct.as_deref_mut(),
            self.current.get_mut(shard),
        ) {
            // The worker has the packets already: only the batch's end is left to tell.
            let (tick, stalled) = (b.tick, b.stalled);
            b.clear();
            self.direct_packets = 0;
            w.end_batch(now, epoch, tick, stalled);
            return;
        }
        let (Some(slot), Some(tx)) = (self.current.get_mut(shard), self.senders.get(shard)) else {
            return;
        };
        let mut b = std::mem::take(slot);
        b.now = now;
        b.epoch = epoch;
        let n = b.metas.len() as u64;
        let returned = match self.mode {
            QueueMode::Block => tx.send(b).err().map(|e| e.into_inner()),
            QueueMode::DropWhenFull => match tx.try_send(b) {
                Ok(()) => None,
                Err(TrySendError::Full(b)) => {
                    self.drops_queue += n;
                    Some(b)
                }
                Err(TrySendError::Disconnected(b)) => Some(b),
            },
        };
        let mut fresh = match returned {
            // Not taken (a full live queue, or a worker gone): the same buffers again.
            Some(b) => b,
            None => self.fresh_batch(),
        };
        fresh.clear();
        self.current[shard] = fresh;
    }

    /// A recycled batch, or a new one within the bound (see [`Outbox::send`]).
    fn fresh_batch(&mut self) -> Batch {
        if let Ok(b) = self.pool.try_recv() {
            return b;
        }
        if self.mode == QueueMode::Block && self.allocated >= self.max_batches {
            // Every batch is queued or at a worker: one comes back as soon as a worker is
            // done with it. A worker that never hands one back (it died) costs a new batch
            // after the timeout, not a hang.
            if let Ok(b) = self.pool.recv_timeout(Duration::from_millis(100)) {
                return b;
            }
        }
        self.allocated += 1;
        Batch::new()
    }
}

/// The decoded form of a later fragment (`this`) of the datagram whose first fragment decoded
/// to `first`: the first fragment's flow, no flags, this fragment's own payload and position.
fn later_fragment(first: &Decoded, this: &Decoded) -> Decoded {
    let mut d = *first;
    d.frag = this.frag;
    d.frag_offset = this.frag_offset;
    d.frag_len = this.frag_len;
    d.frag_more = this.frag_more;
    d.tcp_flags = 0;
    d.payload_off = this.payload_off;
    d.payload_len = this.payload_len;
    d
}

/// Options of an offline run.
#[derive(Debug, Clone, Default)]
pub struct OfflineOptions {
    /// Override `capture.workers`.
    pub workers: Option<usize>,
    /// Draw a progress bar on stderr (only if stderr is a terminal).
    pub progress: bool,
}

/// Result of a run.
#[derive(Debug)]
pub struct RunSummary {
    /// The final stats (also written as the last event).
    pub stats: Stats,
    /// The live counters.
    pub live: Arc<LiveStats>,
}

/// How many workers and capture threads a run has, and how full queues behave.
#[derive(Debug, Clone, Copy)]
struct Shape {
    workers: usize,
    mode: QueueMode,
    dispatchers: usize,
    /// Offline: shape alerts at the writer with this fold interval.
    fold_micros: Option<i64>,
}

/// Spawn workers, run `produce` (which feeds the dispatchers it is given) on the calling
/// thread, then drain, write the final stats event and finish the sinks.
fn run_pipeline<A, F, P>(
    cfg: &AgentConfig,
    shape: Shape,
    sinks: Vec<Box<dyn EventSink>>,
    stats: Arc<LiveStats>,
    factory: F,
    produce: P,
) -> Result<RunSummary, PipelineError>
where
    A: Analysis + 'static,
    F: Fn(usize) -> A + Sync,
    P: FnOnce(Vec<Dispatcher>) -> Result<i64, PipelineError> + Send,
{
    let Shape {
        workers,
        mode,
        dispatchers,
        fold_micros,
    } = shape;
    let workers = workers.max(1);
    // Flow records straight into JSON lines unless a sink wants them as events.
    let direct = !sinks.iter().any(|s| s.wants_events());
    // Whether the writer shapes alerts (offline `analyze`): it then writes the lines of those
    // it lets out, and the workers leave them to it.
    let (writer, writer_shapes) = if mode == QueueMode::Block {
        // Offline: events in a deterministic order. Each worker's watermark already accounts
        // for its oldest flow and pending records; the window only covers packet time going
        // back a little within an epoch.
        let window = EPOCH_BACKSTEP_MICROS;
        let shaping = fold_micros.map(|fold_micros| crate::sink::Shaping {
            fold_micros,
            domestic: cfg.domestic.clone(),
            gateway: cfg.gateway.clone(),
            community_id_seed: cfg.capture.community_id_seed,
        });
        let nice = cfg.capture.writer_nice;
        let shapes = shaping.is_some();
        let w = Writer::start_ordered(sinks, stats.clone(), 64, workers, window, shaping, nice)?;
        (w, shapes)
    } else {
        (Writer::start(sinks, stats.clone(), 64)?, false)
    };
    let dns = Arc::new(DnsCache::new(cfg.capture.dns_cache_entries));
    stats.flow_capacity.store(
        (cfg.capture.flows_per_worker * workers) as u64,
        Ordering::Relaxed,
    );
    let ctx = WorkerContext {
        gateway: cfg.gateway.clone(),
        capture: cfg.capture.clone(),
        workers,
        stats: stats.clone(),
        dns: dns.clone(),
        direct,
        spare_lines: Some(writer.spare_lines()),
        alert_lines_at_writer: direct && writer_shapes,
    };
    let queue = cfg.capture.queue_batches.max(1);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(workers * queue + workers * 2);
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(queue);
        senders.push(tx);
        receivers.push(rx);
    }
    // Offline the flows go to the same workers every run (their bounded tables then fill the
    // same way, so the output is the same from run to run); live the seed is random, so
    // nobody can aim traffic at one worker.
    let shard_hasher = if mode == QueueMode::Block {
        foldhash::fast::FixedState::with_seed(crate::flow::key::OFFLINE_SHARD_SEED)
    } else {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(foldhash::fast::RandomState::default().hash_one(0u64))
    };
    let frag_capacity = cfg.capture.fragment_entries * workers;
    let n_dispatchers = dispatchers.max(1);
    let mut dispatchers: Vec<Dispatcher> = (0..n_dispatchers)
        .map(|i| {
            Dispatcher::new(
                senders.clone(),
                pool_rx.clone(),
                shard_hasher,
                frag_capacity,
                stats.clone(),
                mode,
            )
            .with_dns_cache(dns.clone())
            .with_id_space(i, n_dispatchers)
        })
        .collect();
    drop(senders);
    let factory = &factory;
    let done = AtomicBool::new(false);
    // One capture thread offline: a worker runs on it, fed each of its packets as it is
    // decoded (no payload copied into a batch for it, no queue, no thread switch), and only
    // the other workers are threads. On a machine with as many cores as workers that is one
    // thread per core instead of one more thread than cores, and the capture thread, the
    // busiest, does a share of the flow work instead of waiting for a core.
    // Live with one worker too: a packet it has no time for waits in the kernel's ring (much
    // larger than a worker queue) and is counted there if the ring overflows, instead of as
    // a queue drop.
    let inline = n_dispatchers == 1 && (workers == 1 || mode == QueueMode::Block);
    let threads = if inline { workers - 1 } else { workers };
    let barrier = std::sync::Barrier::new(threads.max(1));
    let barrier = &barrier;
    // Offline: workers meet on every tick and write flow records in one order (see
    // `TickSync`).
    let tick_sync =
        (mode == QueueMode::Block).then(|| Arc::new(crate::worker::TickSync::new(workers)));
    // The worker on the capture thread writes the same events in the same order as a worker
    // thread would. With one worker it is worker 0. With several it is the last one, and the
    // thread of shard `i` runs worker `i - 1`: worker 0 judges every flow record and runs the
    // ticks offline (`TickSync`), and on the capture thread, which also reads and decodes
    // every packet, that left the other cores waiting for it (the worker thread idle 0.8-0.9 s
    // of a 1.7 s two-worker run).
    let judge_on_thread = inline && workers > 1;
    let worker_of_shard = |shard: usize| match (judge_on_thread, shard) {
        (false, i) => i,
        (true, 0) => workers - 1,
        (true, i) => i - 1,
    };
    if inline {
        let index = worker_of_shard(0);
        let mut w = Worker::new(index, ctx.clone(), factory(index));
        if let Some(b) = tick_sync.clone() {
            w = w.with_tick_sync(b);
        }
        if let Some(d) = dispatchers.pop() {
            dispatchers.push(d.with_direct(Box::new(Inline::new(w, writer.sender()))));
        }
    }
    let first_thread = usize::from(inline);
    let result = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers);
        for (shard, rx) in receivers.into_iter().enumerate().skip(first_thread) {
            let i = worker_of_shard(shard);
            let ctx = ctx.clone();
            let recycle = pool_tx.clone();
            let wtx = writer.sender();
            let tb = tick_sync.clone();
            let h = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn_scoped(s, move || {
                    let _cpu = crate::threads::register(format!("worker-{i}"));
                    let mut w = Worker::new(i, ctx, factory(i));
                    if let Some(b) = tb {
                        w = w.with_tick_sync(b);
                    }
                    w.run_with_barrier(rx, recycle, wtx, Some(barrier));
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => return Err(PipelineError::Output(e)),
            }
        }
        // Live: push buffered output to the sinks about once a second.
        if mode == QueueMode::DropWhenFull {
            let ftx = writer.sender();
            let done = &done;
            let gateway = cfg.gateway.clone();
            let flusher = std::thread::Builder::new()
                .name("flusher".into())
                .spawn_scoped(s, move || live_flusher(&ftx, done, &gateway));
            if let Err(e) = flusher {
                return Err(PipelineError::Output(e));
            }
        }
        let r = produce(dispatchers);
        done.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        r
    });
    drop(pool_tx);
    // The workers are done; every event they produced is queued before this message.
    // The writer fills in the counters when it gets there, after every earlier event.
    let last = *result.as_ref().unwrap_or(&0);
    let tx = writer.sender();
    let e = Event::new(
        EventType::Stats,
        format_eve_timestamp(last),
        cfg.gateway.clone(),
    );
    let _ = tx.send(WriterMsg::Stats(Box::new(e)));
    drop(tx);
    let write_result = writer.finish();
    result?;
    write_result?;
    Ok(RunSummary {
        stats: stats.snapshot(),
        live: stats,
    })
}

/// Live: until `done`, ask the writer to push buffered output to the sinks about once a
/// second, and queue a `stats` event every [`LIVE_STATS_TICKS`] naps of 100 ms.
fn live_flusher(ftx: &crossbeam_channel::Sender<WriterMsg>, done: &AtomicBool, gateway: &str) {
    let (mut n, mut f) = (0u32, 0u32);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        n += 1;
        f += 1;
        if f == 10 {
            f = 0;
            let _ = ftx.try_send(WriterMsg::Flush);
        }
        if n == LIVE_STATS_TICKS {
            n = 0;
            let e = Event::new(
                EventType::Stats,
                format_eve_timestamp(wall_micros()),
                gateway.to_string(),
            );
            let _ = ftx.try_send(WriterMsg::Stats(Box::new(e)));
        }
    }
}

/// Run the pipeline over capture files, in order. The output sinks (JSON lines and any extra
/// ones) get every flow record and alert, then a final `stats` event.
pub fn run_offline<A, F>(
    cfg: &AgentConfig,
    files: &[PathBuf],
    sinks: Vec<Box<dyn EventSink>>,
    options: &OfflineOptions,
    factory: F,
) -> Result<RunSummary, PipelineError>
where
    A: Analysis + 'static,
    F: Fn(usize) -> A + Sync,
{
    run_offline_with_stats(
        cfg,
        files,
        sinks,
        options,
        Arc::new(LiveStats::new()),
        factory,
    )
}

/// [`run_offline`] with counters the caller holds (e.g. to serve `/metrics` while the run
/// lasts).
pub fn run_offline_with_stats<A, F>(
    cfg: &AgentConfig,
    files: &[PathBuf],
    sinks: Vec<Box<dyn EventSink>>,
    options: &OfflineOptions,
    stats: Arc<LiveStats>,
    factory: F,
) -> Result<RunSummary, PipelineError>
where
    A: Analysis + 'static,
    F: Fn(usize) -> A + Sync,
{
    run_offline_shaped(cfg, files, sinks, options, stats, None, factory)
}

/// [`run_offline_with_stats`], shaping alerts once at the writer, in capture-time order, with
/// `fold` (`detect.fold_interval`) instead of in each worker: the events are then the same
/// whatever the number of workers. The analyses built by `factory` must not fold themselves
/// (a classifier built with a zero `fold_interval`).
pub fn run_offline_shaped<A, F>(
    cfg: &AgentConfig,
    files: &[PathBuf],
    sinks: Vec<Box<dyn EventSink>>,
    options: &OfflineOptions,
    stats: Arc<LiveStats>,
    fold: Option<Duration>,
    factory: F,
) -> Result<RunSummary, PipelineError>
where
    A: Analysis + 'static,
    F: Fn(usize) -> A + Sync,
{
    let reader = crate::capture::file::offline_reader();
    let mut source = OfflineInput::open(files, cfg.capture.filter.as_deref(), reader)?;
    let workers = options.workers.unwrap_or(cfg.capture.workers).max(1);
    let progress = options.progress && std::io::stderr().is_terminal();
    let stats2 = stats.clone();
    let shape = Shape {
        workers,
        mode: QueueMode::Block,
        dispatchers: 1,
        fold_micros: fold.map(|f| i64::try_from(f.as_micros()).unwrap_or(i64::MAX)),
    };
    run_pipeline(cfg, shape, sinks, stats.clone(), factory, move |mut ds| {
        let _cpu = crate::threads::register("capture");
        let mut d = ds.remove(0);
        let mut bar = Progress::new(progress, source.total_bytes());
        loop {
            let st = source.read(1024, &mut |p| d.on_packet(p))?;
            bar.update(stats2.packets.load(Ordering::Relaxed), source.bytes_read());
            match st {
                Status::End => break,
                Status::Stalled(_) => d.hand_over(),
                Status::Packets(_) | Status::Timeout => {}
            }
        }
        bar.done();
        let last = d.now;
        d.finish();
        for e in source.take_file_errors() {
            stats2.file_error(e);
        }
        Ok(last)
    })
}

/// Run live capture on `cfg.capture.interfaces` until `shutdown` is set, then flush every
/// flow and write the final stats event. Counters are visible in `stats` while running.
pub fn run_live<A, F>(
    cfg: &AgentConfig,
    sinks: Vec<Box<dyn EventSink>>,
    stats: Arc<LiveStats>,
    shutdown: Arc<AtomicBool>,
    factory: F,
) -> Result<RunSummary, PipelineError>
where
    A: Analysis + 'static,
    F: Fn(usize) -> A + Sync,
{
    if cfg.capture.interfaces.is_empty() {
        return Err(PipelineError::NoInterfaces);
    }
    let workers = cfg.capture.workers.max(1);
    // One fanout group per interface, one handle per worker when fanout works.
    let mut handles: Vec<LiveHandle> = Vec::new();
    let pid = std::process::id() as u16;
    for (i, iface) in cfg.capture.interfaces.iter().enumerate() {
        let group = pid.wrapping_add(i as u16);
        let (hs, fanout) = crate::capture::live::open_group(&cfg.capture, iface, workers, group)?;
        eprintln!(
            "crossline-agent: capturing on {iface}: {} handle(s), fanout {}",
            hs.len(),
            if fanout {
                "on"
            } else {
                "off (software dispatch)"
            }
        );
        handles.extend(hs);
    }
    let n = handles.len();
    let stats2 = stats.clone();
    let stop_drain = cfg.capture.stop_drain;
    let shape = Shape {
        workers,
        mode: QueueMode::DropWhenFull,
        dispatchers: n,
        fold_micros: None,
    };
    run_pipeline(cfg, shape, sinks, stats, factory, move |ds| {
        std::thread::scope(|s| {
            let mut joins = Vec::new();
            let mut first = Ok(0);
            for (i, (mut h, mut d)) in handles.into_iter().zip(ds).enumerate() {
                let stop = shutdown.clone();
                let stats = stats2.clone();
                // Named as its CPU time is counted (`top -H`, perf and gdb tell the capture
                // threads apart); the kernel keeps 15 characters of a name.
                let spawned = std::thread::Builder::new()
                    .name(format!("capture-{i}"))
                    .spawn_scoped(s, move || -> Result<i64, PipelineError> {
                        let _cpu = crate::threads::register(format!("capture-{i}"));
                        let r = capture_loop(&mut h, &mut d, &stop, &stats, stop_drain);
                        if r.is_err() {
                            // One interface failed: stop the others too, and still write
                            // every flow seen so far.
                            stop.store(true, Ordering::Relaxed);
                        }
                        d.finish();
                        r.map(|()| wall_micros())
                    });
                match spawned {
                    Ok(j) => joins.push(j),
                    Err(e) => {
                        // No thread for this handle (out of threads or memory): the capture
                        // threads started stop and write what they saw, and the run fails
                        // with the reason. The handle's dispatcher, dropped unstarted, hands
                        // nothing on.
                        eprintln!("crossline-agent: cannot start capture thread {i}: {e}");
                        shutdown.store(true, Ordering::Relaxed);
                        first = Err(PipelineError::Output(e));
                        break;
                    }
                }
            }
            for j in joins {
                let r = j.join().unwrap_or(Ok(0));
                match (&first, r) {
                    (Ok(a), Ok(b)) => first = Ok((*a).max(b)),
                    (Ok(_), Err(e)) => first = Err(e),
                    (Err(_), _) => {}
                }
            }
            first
        })
    })
}

/// The coarse clock: wall time in Unix micros.
pub fn wall_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn capture_loop(
    h: &mut LiveHandle,
    d: &mut Dispatcher,
    shutdown: &AtomicBool,
    stats: &LiveStats,
    stop_drain: Duration,
) -> Result<(), PipelineError> {
    let mut last_flush = Instant::now();
    let mut last_drops = crate::capture::DropTotals::default();
    // After the stop signal the capture goes on until the kernel's buffer is empty or
    // `stop_drain` has passed: packets that already arrived are analysed, not thrown away.
    let mut stop_by: Option<Instant> = None;
    // Packets were read since the last tick.
    let mut fresh = false;
    loop {
        if stop_by.is_none() && shutdown.load(Ordering::Relaxed) {
            stop_by = Some(Instant::now() + stop_drain);
        }
        if stop_by.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let st = h.read(256, &mut |p| d.on_packet(p))?;
        if st == Status::End {
            break;
        }
        let dry = st == Status::Timeout;
        fresh |= !dry;
        if dry && stop_by.is_some() {
            break; // drained
        }
        if (dry && fresh) || last_flush.elapsed() >= LIVE_TICK {
            fresh = false;
            last_flush = Instant::now();
            d.tick(wall_micros());
            let drops = h.drops();
            stats
                .drops_kernel
                .fetch_add(drops.kernel - last_drops.kernel, Ordering::Relaxed);
            stats
                .drops_interface
                .fetch_add(drops.interface - last_drops.interface, Ordering::Relaxed);
            last_drops = drops;
        }
        if dry {
            h.wait_readable(IDLE_WAIT.min(LIVE_TICK.saturating_sub(last_flush.elapsed())));
        }
    }
    let drops = h.drops();
    stats
        .drops_kernel
        .fetch_add(drops.kernel - last_drops.kernel, Ordering::Relaxed);
    stats
        .drops_interface
        .fetch_add(drops.interface - last_drops.interface, Ordering::Relaxed);
    let unread = h.unread(&drops);
    if unread > 0 {
        stats.drops_unread.fetch_add(unread, Ordering::Relaxed);
        tracing::warn!(
            "capture on {} stopped with {unread} packets still in the kernel's buffer, not \
             analysed (read for {:?} after the stop signal, capture.stop_drain); counted in \
             drops.unread_at_stop",
            h.interface(),
            stop_drain
        );
    }
    Ok(())
}

/// A hand-written progress bar on stderr: packets, MB, rate, ETA by file bytes.
struct Progress {
    enabled: bool,
    total: u64,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(enabled: bool, total: u64) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            total,
            start: now,
            last: now,
        }
    }

    fn update(&mut self, packets: u64, bytes: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let frac = if self.total > 0 {
            (bytes as f64 / self.total as f64).min(1.0)
        } else {
            0.0
        };
        let eta = if frac > 0.0 {
            secs * (1.0 - frac) / frac
        } else {
            0.0
        };
        let width = 30usize;
        let filled = ((frac * width as f64) as usize).min(width);
        eprint!(
            "\r[{}{}] {:5.1}% {} pkts {:.1} MB {:.0} pkt/s ETA {:.0}s   ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            frac * 100.0,
            packets,
            bytes as f64 / 1e6,
            packets as f64 / secs,
            eta
        );
    }

    fn done(&mut self) {
        if self.enabled {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::NoAnalysis;
    use crate::sink::MemorySink;
    use crossline_config::agent::CaptureConfig;

    /// An Ethernet frame with an IPv4 fragment: id, offset (8-byte units), more-fragments.
    fn frag(id: u16, offset: u16, more: bool, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        let ff = offset | if more { 0x2000 } else { 0 };
        f.extend_from_slice(&ff.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 198, 51, 100, 7]);
        f.extend_from_slice(body);
        f
    }

    fn run(frames: &[Vec<u8>]) -> (Vec<Event>, Stats) {
        run_with(frames, None)
    }

    /// [`run`] with the capture thread learning DNS answers into `dns`.
    fn run_with(frames: &[Vec<u8>], dns: Option<Arc<DnsCache>>) -> (Vec<Event>, Stats) {
        run_opts(frames, dns, false)
    }

    /// [`run_with`]; with `shared`, the frames lie back to back in one read buffer the
    /// dispatcher may share with the worker thread, as the file reader's do.
    fn run_opts(
        frames: &[Vec<u8>],
        dns: Option<Arc<DnsCache>>,
        shared: bool,
    ) -> (Vec<Event>, Stats) {
        let buf = Arc::new(frames.concat());
        let mut at = 0;
        let stats = Arc::new(LiveStats::new());
        let sink = MemorySink::default();
        let events = sink.events.clone();
        let writer = Writer::start(vec![Box::new(sink)], stats.clone(), 16).expect("writer");
        let (tx, rx) = crossbeam_channel::bounded(16);
        let (ptx, prx) = crossbeam_channel::bounded(16);
        let mut d = Dispatcher::new(
            vec![tx],
            prx,
            foldhash::fast::FixedState::default(),
            16,
            stats.clone(),
            QueueMode::Block,
        );
        if let Some(cache) = dns {
            d = d.with_dns_cache(cache);
        }
        let ctx = WorkerContext {
            gateway: "gw-test".into(),
            capture: CaptureConfig::default(),
            workers: 1,
            stats: stats.clone(),
            dns: Arc::new(DnsCache::new(16)),
            direct: false,
            spare_lines: None,
            alert_lines_at_writer: false,
        };
        let wtx = writer.sender();
        let h = std::thread::spawn(move || Worker::new(0, ctx, NoAnalysis).run(rx, ptx, wtx));
        for (i, f) in frames.iter().enumerate() {
            let in_buf = buf.get(at..at + f.len()).unwrap_or_default();
            d.on_packet(RawPacket {
                ts_micros: 1_772_416_800_000_000 + i as i64,
                orig_len: f.len() as u32,
                data: if shared { in_buf } else { f },
                linktype: crate::decode::linktype::ETHERNET,
                shared: shared.then_some(crate::capture::SharedAt {
                    buf: &buf,
                    offset: at,
                }),
            });
            at += f.len();
        }
        d.finish();
        h.join().expect("worker");
        writer.finish().expect("writer");
        let events = events.lock().expect("events").clone();
        (events, stats.snapshot())
    }

    /// The shard of a packet is a function of its flow key: both directions, and every
    /// spelling of the same key (ICMP types, a trailing priority tag), go to one worker;
    /// different flows spread over the workers.
    #[test]
    fn shard_hash_follows_the_flow_key_and_spreads_flows() {
        use crate::flow::key::{shard_hash_of as shard_hash, shard_slot, shard_worker};
        use crate::flow::FlowKey;
        let hasher = foldhash::fast::FixedState::with_seed(7);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let protos = [
            ip_proto::TCP,
            ip_proto::UDP,
            ip_proto::ICMP,
            ip_proto::ICMPV6,
            47,
        ];
        let mut by_key = std::collections::HashMap::new();
        let mut on_first = 0usize;
        let n = 20_000;
        for i in 0..n {
            let r = next();
            let mut d = Decoded {
                v6: r & 1 == 1,
                proto: protos[(r >> 1) as usize % protos.len()],
                // Few distinct values, so that keys repeat in other spellings.
                src_port: (r >> 8) as u16 % 4,
                dst_port: (r >> 16) as u16 % 4,
                ..Decoded::default()
            };
            d.src[0] = (r >> 24) as u8 % 3;
            d.dst[0] = (r >> 32) as u8 % 3;
            d.src[15] = if d.v6 { (r >> 40) as u8 } else { 0 };
            d.src[1] = (i % 5000) as u8;
            d.dst[2] = (i % 5000 / 256) as u8;
            if r >> 48 & 1 == 1 {
                d.vlan = [(r >> 50) as u16 % 3, 0, 0];
                d.vlan_count = 1 + (r >> 52) as u8 % 2; // [v] or [v, 0]: the same key
            }
            let h = shard_hash(&hasher, &d);
            let mut rev = d;
            std::mem::swap(&mut rev.src, &mut rev.dst);
            std::mem::swap(&mut rev.src_port, &mut rev.dst_port);
            if d.proto != ip_proto::ICMP && d.proto != ip_proto::ICMPV6 {
                assert_eq!(shard_hash(&hasher, &rev), h, "{d:?}");
            }
            let (key, src_is_lo) = FlowKey::from_decoded(&d);
            // The flow table's hash made with the key equals hashing the key.
            let table_hasher = foldhash::fast::RandomState::default();
            let (same, same_lo, table_hash) = FlowKey::from_decoded_hashed(&d, &table_hasher);
            assert_eq!((same, same_lo), (key, src_is_lo));
            assert_eq!(
                table_hash,
                std::hash::BuildHasher::hash_one(&table_hasher, key),
                "{d:?}"
            );
            if let Some(prev) = by_key.insert(key, h) {
                assert_eq!(prev, h, "one key, two hashes: {key:?}");
            }
            // The worker's after-close table finds the flow by the same hash.
            assert_eq!(key.shard_hash(&hasher), h, "{d:?}");
            on_first += usize::from(shard_worker(h, 2) == 0);
            // One slot, one worker, whatever the number of workers.
            for n in [1, 2, 3, 5, 8] {
                let (slot, w) = (shard_slot(h), shard_worker(h, n));
                assert!(w < n);
                assert_eq!(shard_worker((slot as u64) << 52, n), w, "slot {slot}");
            }
        }
        assert!(by_key.len() > 1000, "{} distinct keys", by_key.len());
        // Two workers: each gets 45-55 % of the packets.
        assert!(
            (n * 45 / 100..n * 55 / 100).contains(&on_first),
            "{on_first} of {n}"
        );
    }

    #[test]
    fn weighted_shards_give_the_capture_thread_its_share_by_slot() {
        use crate::flow::key::{shard_worker_after, SHARD_BITS};
        let slots = 1usize << SHARD_BITS;
        assert_eq!(super::direct_cut(1), None);
        for workers in [2usize, 3, 4, 8] {
            let cut = super::direct_cut(workers).expect("a cut with other workers");
            let mut per = vec![0usize; workers];
            for slot in 0..slots {
                // Any hash of the slot: the worker depends on the slot alone.
                let h = ((slot as u64) << (64 - SHARD_BITS)) | (slot as u64 * 0x9e37) & 0xfff;
                let w = shard_worker_after(h, workers, cut);
                assert!(w < workers, "slot {slot}: worker {w} of {workers}");
                assert_eq!(w == 0, slot < cut, "slot {slot}");
                assert_eq!(shard_worker_after((slot as u64) << 52, workers, cut), w);
                per[w] += 1;
            }
            // Shard 0 holds its share against each other shard's; the others within a slot.
            let others = &per[1..];
            let (lo, hi) = (others.iter().min(), others.iter().max());
            assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{per:?}");
            let ratio = per[0] as f64 / others[0] as f64;
            let (num, den) = super::INLINE_WEIGHT;
            let want = num as f64 / den as f64;
            assert!((ratio - want).abs() < 0.01, "{workers} workers: {per:?}");
        }
    }

    #[test]
    fn dns_responses_are_parsed_once_on_the_capture_thread() {
        let answer: std::net::IpAddr = "198.51.100.9".parse().expect("ip");
        let msg = crossline_testgen::dns_response(7, "files.example.org", None, &[answer], 300);
        // UDP 53 -> 40000 carrying the response.
        let mut udp = vec![0x00, 0x35, 0x9c, 0x40];
        udp.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&msg);
        let frame = frag(9, 0, false, &udp);
        let app = |events: &[Event]| {
            let flows: Vec<_> = events
                .iter()
                .filter(|e| e.event_type == EventType::Flow)
                .collect();
            assert_eq!(flows.len(), 1, "{events:?}");
            flows[0].app_proto.clone()
        };
        // The capture thread parses it: the answer is learnt and the flow marked `dns`.
        let cache = Arc::new(DnsCache::new(16));
        let (events, _) = run_with(std::slice::from_ref(&frame), Some(Arc::clone(&cache)));
        assert_eq!(app(&events).as_deref(), Some("dns"));
        let t = 1_772_416_800_000_000;
        assert_eq!(
            cache.lookup_as_of(answer, t, t).as_deref(),
            Some("files.example.org")
        );
        // Nothing parses it elsewhere: without the capture thread's cache, the worker does not
        // parse the response a second time to mark the flow.
        let (events, _) = run_with(&[frame], None);
        assert_eq!(app(&events), None);
    }

    #[test]
    fn fragments_before_their_first_fragment_are_attributed_when_it_arrives() {
        // UDP 40000 -> 53 with 40 payload bytes, split 16 / 24 / 8 bytes of IP payload.
        let mut udp = vec![0x9c, 0x40, 0x00, 0x35, 0x00, 48, 0, 0];
        udp.extend_from_slice(&[0xab; 8]);
        let first = frag(7, 0, true, &udp);
        let second = frag(7, 2, true, &[0xcd; 24]);
        let third = frag(7, 5, false, &[0xef; 8]);
        // A datagram whose first fragment never comes.
        let orphan = frag(8, 2, false, &[0x11; 8]);
        let (events, stats) = run(&[third.clone(), second.clone(), orphan, first.clone()]);
        let flows: Vec<&Event> = events
            .iter()
            .filter(|e| e.event_type == EventType::Flow)
            .collect();
        assert_eq!(flows.len(), 1, "{flows:?}");
        let f = flows[0].flow.as_ref().expect("flow");
        assert_eq!(flows[0].dest_port, Some(53));
        assert_eq!(f.pkts_toserver, 3, "all three fragments counted");
        assert_eq!(
            f.bytes_toserver,
            (first.len() + second.len() + third.len()) as u64
        );
        assert_eq!(stats.ignored.get("fragment_unattributed"), Some(&1));
        assert_eq!(stats.packets, 4);
    }

    /// Packets for worker threads: every worker gets each of its packets once, in order, with
    /// its own headers and payload, and a tick's batch carries every packet before the tick
    /// and none after it.
    #[test]
    fn packets_reach_their_batches_in_order_before_each_tick() {
        let workers = 3;
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| crossbeam_channel::unbounded::<Batch>())
            .unzip();
        let (_ptx, prx) = crossbeam_channel::bounded(1024);
        let stats = Arc::new(LiveStats::new());
        let mut d = Dispatcher::new(
            txs,
            prx,
            foldhash::fast::FixedState::default(),
            16,
            stats,
            QueueMode::Block,
        );
        let frames: Vec<Vec<u8>> = (0..300u16)
            .map(|i| {
                let mut udp = (1_000 + i % 37).to_be_bytes().to_vec();
                udp.extend_from_slice(&(53 + i % 5).to_be_bytes());
                udp.extend_from_slice(&[0, 8 + 3, 0, 0]);
                udp.extend_from_slice(&[i as u8, (i >> 8) as u8, 0x5a]);
                frag(i, 0, false, &udp)
            })
            .collect();
        let base = 1_772_416_800_000_000i64;
        // The first packet ticks (the clock starts), then one tick after packet 150, and the
        // end ticks again: the packets each tick closes.
        let ticks = [0usize, 150, 299];
        for (i, f) in frames.iter().enumerate() {
            d.on_packet(RawPacket {
                ts_micros: base + i as i64 * 10,
                orig_len: f.len() as u32,
                data: f,
                linktype: crate::decode::linktype::ETHERNET,
                shared: None,
            });
            if i == 150 {
                d.tick(base + i as i64 * 10);
            }
        }
        d.finish();
        let mut seen = Vec::new();
        for rx in &rxs {
            let mut last = 0;
            let mut closed = 0usize;
            for b in rx.try_iter() {
                for m in &b.metas {
                    assert!(m.seq > last, "packet {} after {last}", m.seq);
                    last = m.seq;
                    let i = (m.seq - 1) as usize;
                    let lo = closed.checked_sub(1).map_or(0, |t| ticks[t] + 1);
                    assert!(
                        (lo..=ticks[closed.min(2)]).contains(&i),
                        "packet {i} in the batches after tick {closed}"
                    );
                    let mut want = Decoded::default();
                    decode_wire(
                        crate::decode::linktype::ETHERNET,
                        &frames[i],
                        frames[i].len() as u32,
                        &mut want,
                    )
                    .expect("a UDP datagram");
                    assert_eq!(m.dec, want, "packet {i}");
                    assert_eq!(m.payload(&b), &frames[i][42..], "packet {i}");
                    seen.push(i);
                }
                if b.tick {
                    closed += 1;
                }
            }
            assert_eq!(closed, 3, "three ticks");
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..300).collect::<Vec<_>>(), "every packet once");
    }

    /// Frames handed over in a shared read buffer (the file reader's) reach a worker thread
    /// with their payloads read from that buffer, and fragments (whose held followers have
    /// no bytes of their own) among them: the same events and counters, in the same order,
    /// as frames copied into the batches, across several batches.
    #[test]
    fn shared_frames_give_the_same_events_as_copied_ones() {
        let mut frames = Vec::new();
        for i in 0..300u16 {
            let port = 40_000 + i % 23;
            // A TCP segment of an HTTP request: the worker names the flow's host from its
            // payload, so a payload read from the wrong place changes the flow record.
            let mut tcp = port.to_be_bytes().to_vec();
            tcp.extend_from_slice(&[0, 80]);
            tcp.extend_from_slice(&(u32::from(i) * 1_000).to_be_bytes());
            tcp.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0x20, 0, 0, 0, 0, 0]);
            let request = format!("GET / HTTP/1.1\r\nHost: h{port}.example\r\n\r\n");
            tcp.extend_from_slice(request.as_bytes());
            let mut f = frag(i, 0, false, &tcp);
            f[23] = 6;
            frames.push(f);
            if i % 40 == 7 {
                // A datagram in three fragments, the first one last.
                let id = 1_000 + i;
                let mut head = (50_000 + i).to_be_bytes().to_vec();
                head.extend_from_slice(&[0x00, 0x35, 0x00, 48, 0, 0, 0xab, 0xab, 0xab, 0xab]);
                head.extend_from_slice(&[0xab; 6]);
                frames.push(frag(id, 5, false, &[0xef; 8]));
                frames.push(frag(id, 2, true, &[0xcd; 24]));
                frames.push(frag(id, 0, true, &head));
            }
        }
        let (copied, copied_stats) = run_opts(&frames, None, false);
        let (shared, shared_stats) = run_opts(&frames, None, true);
        let flows = copied
            .iter()
            .filter(|e| e.event_type == EventType::Flow)
            .count();
        assert_eq!(
            flows,
            23 + 8,
            "one flow per port and per fragmented datagram"
        );
        let named = copied
            .iter()
            .filter(|e| e.http.as_ref().is_some_and(|h| h.hostname.is_some()))
            .count();
        assert_eq!(named, 23, "every HTTP flow named from its payload");
        assert_eq!(shared, copied);
        assert_eq!(shared_stats.packets, copied_stats.packets);
        assert_eq!(shared_stats.bytes, copied_stats.bytes);
        assert_eq!(shared_stats.ignored, copied_stats.ignored);
    }

    #[test]
    fn ip_id_reuse_with_another_flow_starts_a_new_datagram() {
        let udp_a = [
            0x9c, 0x40, 0x00, 0x35, 0x00, 24, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let udp_b = [
            0x9c, 0x41, 0x00, 0x35, 0x00, 24, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let frames = [
            frag(9, 0, true, &udp_a),
            frag(9, 2, false, &[0; 8]),
            frag(9, 0, true, &udp_b),
            frag(9, 2, false, &[0; 8]),
        ];
        let (events, _) = run(&frames);
        let mut pkts: Vec<(Option<u16>, u64)> = events
            .iter()
            .filter_map(|e| Some((e.src_port, e.flow.as_ref()?.pkts_toserver)))
            .collect();
        pkts.sort();
        assert_eq!(pkts, vec![(Some(40000), 2), (Some(40001), 2)]);
    }
}
