//! Shard worker: owns one flow table, the L7 taps and one [`Analysis`]; turns packet batches
//! into flow records and sends finished events to the writer thread.
//!
//! Per packet the worker updates the flow (no allocation once the flow exists), runs the L7
//! taps while they still want bytes, and calls [`Analysis::on_payload`] for packets with
//! payload. It expires idle flows up to the time of the capture thread's last tick batch and
//! calls [`Analysis::on_tick`] about once per second of packet time, on tick batches only
//! (their times are the same whatever the number of workers); after each batch it flushes its
//! local counters into [`LiveStats`] and hands the batch buffers back for reuse.
//!
//! Offline (`analyze`), the workers of a run share a [`TickSync`]: flow records (other than
//! running active-timeout records) are deferred to the next tick; on each tick batch every
//! worker hands its records in, worker 0 judges the records of all of them in one (last packet
//! time, flow id) order and ticks, and each worker writes its own. The analysis' shared
//! counters (caps, surges, misuse, persons, expiry warnings) therefore see the same sequence
//! whatever the number of workers, and the events (with order keys and a watermark for the
//! ordered writer, [`crate::sink::Writer::start_ordered`]) are byte-identical from run to
//! run. Flow ids come from the capture thread's packet numbers. Live, records are written as they come.

use crate::analysis::findings::{AlertFinding, Findings, NameRef, VerdictFinding};
use crate::analysis::{
    Analysis, EarlyVerdict, EndReason, FlowSummary, Health, PayloadView, SharedEffects,
};
use crate::decode::Decoded;
use crate::flow::{Flow, FlowTracker, TcpState};
use crate::l7::community_id::CommunityId;
use crate::sink::{LineMeta, Outgoing, WriterMsg};
use crate::stats::{LiveStats, WorkerCounters};
use crate::taps::{self, L7State, Taps};
use crate::text::{Joined, Text};
use crossbeam_channel::{Receiver, Sender};
use crossline_config::agent::CaptureConfig;
use crossline_config::event::{
    AlertRef, EveTime, Event, EventRef, EventType, FlowRecordRef, VerdictRef,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Packets per batch.
pub const BATCH_PACKETS: usize = 64;
/// Packet time going back by more than this starts a new time epoch (see [`Batch::epoch`]).
pub const EPOCH_BACKSTEP_MICROS: i64 = 1_000_000;

/// One packet in a batch: metadata plus where its payload sits in [`Batch::data`].
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    /// Capture time, Unix micros.
    pub ts_micros: i64,
    /// Frame length on the wire.
    pub orig_len: u32,
    /// Offset of the payload in the batch's `data`, or in its read buffer `chunk`.
    pub payload_start: u32,
    /// The payload lies in `Batch::chunks[chunk]` (a read buffer of the capture file, not
    /// copied), or in `Batch::data` when this is [`IN_DATA`].
    pub chunk: u16,
    /// Decoded headers (`dec.payload_len` bytes of payload were handed over).
    pub dec: Decoded,
    /// Number of the packet in its capture thread's stream (unique per run): the flow id of
    /// a flow this packet creates, the same whatever the number of workers.
    pub seq: u64,
    /// The capture thread parsed a DNS response from this packet (its answers are in the
    /// DNS cache already): the L7 taps mark the flow `dns` without parsing it again.
    pub dns_response: bool,
}

impl PacketMeta {
    /// The packet as [`DirectWorker::packet`] takes it.
    #[inline]
    pub fn as_ref(&self) -> PacketRef<'_> {
        PacketRef {
            dec: &self.dec,
            ts_micros: self.ts_micros,
            orig_len: self.orig_len,
            seq: self.seq,
            dns_response: self.dns_response,
        }
    }
}

/// One packet as a worker applies it: from a batch's [`PacketMeta`], or, with one worker,
/// straight from the capture thread's decoder. The decoded headers are borrowed, not copied:
/// copying them right after the decoder wrote them field by field cost a store-forwarding
/// stall per packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketRef<'a> {
    /// Decoded headers (`dec.payload_len` is the payload handed in beside it).
    pub dec: &'a Decoded,
    /// Capture time, Unix micros.
    pub ts_micros: i64,
    /// Frame length on the wire.
    pub orig_len: u32,
    /// See [`PacketMeta::seq`].
    pub seq: u64,
    /// See [`PacketMeta::dns_response`].
    pub dns_response: bool,
}

/// A batch of packets for one worker. An empty batch is a clock tick.
#[derive(Debug, Default)]
pub struct Batch {
    /// "Now" when the batch was sent (packet time offline, coarse clock live); 0 = unknown.
    pub now: i64,
    /// Sent by `pipeline::Dispatcher::tick`: every worker gets one at the same `now`, so timeouts and
    /// the analysis' ticks run at the same packet times whatever the number of workers.
    pub tick: bool,
    /// Time epoch: incremented each time packet time goes back by more than a second (the
    /// next of several capture files is older). Events are ordered by epoch first.
    pub epoch: u32,
    /// Sent by `pipeline::Dispatcher::hand_over` when the input ran dry (a pipe that pauses):
    /// every worker gets one, and writes out all that the ticks so far have ended.
    pub stalled: bool,
    /// Packets.
    pub metas: Vec<PacketMeta>,
    /// Payload bytes of the packets, back to back (packets whose bytes could not be shared).
    pub data: Vec<u8>,
    /// The read buffers the other packets' payloads lie in (see [`PacketMeta::chunk`]): the
    /// capture thread hands over a reference to the file reader's buffer instead of copying
    /// the payloads.
    pub chunks: Vec<Arc<Vec<u8>>>,
}

/// [`PacketMeta::chunk`] of a payload copied into [`Batch::data`].
pub const IN_DATA: u16 = u16::MAX;

impl PacketMeta {
    /// The payload of this packet of `batch`.
    #[inline]
    pub fn payload<'b>(&self, batch: &'b Batch) -> &'b [u8] {
        let start = self.payload_start as usize;
        let range = start..start + self.dec.payload_len as usize;
        let bytes = match self.chunk {
            IN_DATA => Some(batch.data.as_slice()),
            i => batch.chunks.get(usize::from(i)).map(|c| c.as_slice()),
        };
        bytes.and_then(|b| b.get(range)).unwrap_or(&[])
    }
}

impl Batch {
    pub(crate) fn new() -> Self {
        Batch {
            now: 0,
            tick: false,
            epoch: 0,
            stalled: false,
            metas: Vec::with_capacity(BATCH_PACKETS),
            // Room for full-sized Ethernet payloads: a batch does not grow by doubling (and
            // copying) on its way to its working size.
            data: Vec::with_capacity(BATCH_PACKETS * 1536),
            chunks: Vec::new(),
        }
    }

    /// Empty the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.now = 0;
        self.tick = false;
        self.epoch = 0;
        self.stalled = false;
        self.metas.clear();
        self.data.clear();
        self.chunks.clear();
    }

    /// The index in [`Batch::chunks`] of read buffer `buf` (added when it is not the last one
    /// there: a batch's packets come in reading order), or nothing when the batch holds as many
    /// buffers as a [`PacketMeta::chunk`] can number.
    pub fn chunk_of(&mut self, buf: &Arc<Vec<u8>>) -> Option<u16> {
        if !self.chunks.last().is_some_and(|c| Arc::ptr_eq(c, buf)) {
            if self.chunks.len() >= usize::from(IN_DATA) {
                return None;
            }
            self.chunks.push(Arc::clone(buf));
        }
        u16::try_from(self.chunks.len() - 1).ok()
    }
}

/// Most idle flows written out per batch (bounded work per tick).
pub const EXPIRE_PER_BATCH: usize = 4096;
const TICK_MICROS: i64 = 1_000_000;
/// Records per writer message while draining the table at the end of a live run, and the
/// most records of one worker in one round of the end-of-capture drain offline
/// ([`Worker::drain_in_rounds`]).
const DRAIN_CHUNK: usize = 1024;
/// Rounds of the end-of-capture drain a worker hands in before it waits for the oldest to come
/// back judged: what the drain holds outside the tables is bounded by about this many times
/// [`DRAIN_CHUNK`] records per worker.
const DRAIN_DEPTH: usize = 4;
/// Room left in a worker's line buffer below which its events are handed over (more than
/// the longest flow record or alert line).
const LINE_HEADROOM: usize = 16 << 10;
/// The largest line buffer a worker sizes for its next message.
const MAX_LINE_BUFFER: usize = 512 << 10;
/// Offline: events per writer message, and ticks after which the events so far (or the
/// watermark alone) go anyway.
const OFFLINE_MESSAGE_EVENTS: usize = 256;
const OFFLINE_MESSAGE_TICKS: u32 = 64;

/// Everything a worker needs besides its analysis.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// Gateway id for events.
    pub gateway: String,
    /// Capture settings (timeouts, capacity).
    pub capture: CaptureConfig,
    /// Number of workers.
    pub workers: usize,
    /// Shared counters.
    pub stats: Arc<LiveStats>,
    /// Shared DNS cache.
    pub dns: Arc<crate::dns_cache::DnsCache>,
    /// Write flow records straight into JSON lines ([`crate::sink::Item::Line`]) instead of
    /// owned events: when no sink of the run wants events ([`crate::sink::EventSink::wants_events`]).
    pub direct: bool,
    /// Line buffers the writer has emptied ([`crate::sink::Writer::spare_lines`]).
    pub spare_lines: Option<Receiver<Vec<u8>>>,
    /// With `direct`: the writer shapes alerts and writes the line of each one it lets out
    /// (offline `analyze`), so the worker hands over the finding without writing its line:
    /// a long capture's repeats are folded into follow-ups (28 % of the alerts of the
    /// benchmark capture), and a line written for an alert the writer then folds away was
    /// written for nothing.
    pub alert_lines_at_writer: bool,
}

/// One shard worker.
pub struct Worker<A: Analysis> {
    index: usize,
    tracker: FlowTracker<A::FlowState, L7State>,
    analysis: A,
    taps: Taps,
    ctx: WorkerContext,
    /// Events since the last hand-over, with their order keys (see [`WriterMsg::Keyed`]).
    out: Outgoing,
    /// The findings of the record or tick being written.
    scratch: Findings,
    counters: WorkerCounters,
    next_tick: Option<i64>,
    now: i64,
    /// `now` of the last tick batch: flows idle since before it are written out.
    expire_now: i64,
    /// Time epoch of the batches (see [`Batch::epoch`]).
    epoch: u32,
    /// Offline: the workers of a run meet on every tick batch (see [`TickSync`]).
    sync: Option<Arc<TickSync<A::FlowState>>>,
    /// Offline: flow records due since the last tick (the flows are owned here), written at
    /// the next tick in the order of all workers together.
    deferred: Deferred<A::FlowState>,
    /// The writer, once running (records handed over in chunks during long turns).
    writer: Option<Sender<WriterMsg>>,
    /// Capture-loss interval (worker 0): start time and the totals (acks, gaps) at its start.
    loss_start: Option<i64>,
    loss_base: (u64, u64),
    /// Gaps of intervals whose loss ratio passed `capture.loss_alert_ratio`.
    loss_flagged: u64,
    /// Offline: ticks since the last writer message.
    ticks_unsent: u32,
    /// Offline, workers other than 0: the time epoch and earliest last packet time of each
    /// round handed to worker 0 and not written yet (they bound the watermark).
    pending: std::collections::VecDeque<(u32, i64)>,
    /// Offline, in the end-of-capture drain: this worker writes its events in key order from
    /// here on, so its watermark is exact ([`Worker::watermark`]).
    draining: bool,
    /// Running totals that worker 0's tick reads ([`LineTotals`]).
    totals: LineTotals,
    /// Worker 0 during an offline tick: the line totals of every worker as of the tick.
    tick_totals: Option<LineTotals>,
}

/// A flow record waiting for the next tick (offline): the flow, why it ended, and once judged
/// what the analysis found and the name its responder had.
#[derive(Debug)]
pub struct Parked<S> {
    flow: Flow<S, L7State>,
    reason: EndReason,
    findings: Findings,
    dns_name: Option<Arc<str>>,
}

/// Flow records waiting for the next tick (offline), with the smallest last packet time.
#[derive(Debug)]
struct Deferred<S> {
    list: Vec<Parked<S>>,
    min: i64,
    /// Emptied alert lists of written records, for the next records' findings: a record
    /// that raises an alert would otherwise allocate its list (and free it once written).
    spare: Vec<Vec<Box<AlertFinding>>>,
}

/// Emptied alert lists a worker keeps for its next records (beyond them, lists are freed).
const SPARE_ALERT_LISTS: usize = 1024;

impl<S> Default for Deferred<S> {
    fn default() -> Self {
        Deferred {
            list: Vec::new(),
            min: i64::MAX,
            spare: Vec::new(),
        }
    }
}

impl<S: Default> Deferred<S> {
    fn push(&mut self, f: &mut Flow<S, L7State>, r: EndReason) {
        self.min = self.min.min(f.last_micros());
        let alerts = self.spare.pop().unwrap_or_default();
        // Made after the list has grown (see `Outgoing::push_line`): most of the record is
        // written into its place; counted over the benchmark capture, a record now costs a
        // 240-byte and a 247-byte copy where it cost a 240- and a 360-byte one.
        self.list.extend(std::iter::once_with(|| Parked {
            flow: std::mem::take(f),
            reason: r,
            findings: Findings {
                alerts,
                ..Findings::default()
            },
            dns_name: None,
        }));
    }

    /// Keep the emptied alert list of a written record for a later one.
    fn keep_alert_list(&mut self, mut alerts: Vec<Box<AlertFinding>>) {
        if alerts.capacity() > 0 && self.spare.len() < SPARE_ALERT_LISTS {
            alerts.clear();
            self.spare.push(alerts);
        }
    }
}

/// What the workers of an offline run share to stay in step. On every tick batch each worker
/// parks the flow records that ended since the last one (sorted), and worker 0 judges the
/// records of all of them in one (last packet time, flow id) order and runs the analysis'
/// tick, while the others wait; then each writes the lines of its own records in parallel.
/// Flow records therefore reach the analysis (and its shared counters: caps, surges, misuse,
/// persons) in one order whatever the number of workers, and the line totals a tick reads are
/// exactly those of the packets before it. Two meetings per tick, whatever the number of
/// records. At the end of the capture the flows still in the tables are judged the same way,
/// in rounds of at most 1,024 records per worker cut at the same keys for all workers
/// (`Worker::drain_in_rounds`).
#[derive(Debug)]
pub struct TickSync<S> {
    workers: usize,
    barrier: SpinBarrier,
    rounds: std::sync::Mutex<Rounds<S>>,
    rounds_changed: std::sync::Condvar,
    /// The keys every worker offered to cut the end-of-capture drain into rounds.
    cuts: std::sync::Mutex<Vec<(i64, u64, usize)>>,
}

/// What one worker hands worker 0 on a tick batch: its records that ended since the last one
/// (sorted), what its payloads would have added to shared state meanwhile, and its line
/// totals as of the tick (what the tick's health figures and capture-loss interval read).
#[derive(Debug)]
struct Round<S> {
    records: Vec<Parked<S>>,
    effects: SharedEffects,
    totals: LineTotals,
    /// The tick's packet time and time epoch (what its tick alerts are keyed by).
    now: i64,
    epoch: u32,
    /// A tick batch's round (worker 0 runs the tick after judging it); not one of the
    /// end-of-capture drain.
    tick: bool,
}

/// A worker's running totals that worker 0's tick reads.
#[derive(Debug, Clone, Copy, Default)]
struct LineTotals {
    evictions: u64,
    loss_acks: u64,
    loss_gaps: u64,
}

impl std::ops::AddAssign for LineTotals {
    fn add_assign(&mut self, o: LineTotals) {
        self.evictions += o.evictions;
        self.loss_acks += o.loss_acks;
        self.loss_gaps += o.loss_gaps;
    }
}

/// Rounds on their way to worker 0 and judged records on their way back, per worker.
#[derive(Debug)]
struct Rounds<S> {
    handed_in: Vec<std::collections::VecDeque<Round<S>>>,
    judged: Vec<std::collections::VecDeque<Vec<Parked<S>>>>,
    sleeping: usize,
}

/// A barrier whose waiters check a while, then yield, before they sleep: workers meet on every
/// tick batch (one per second of packet time, which a sparse capture passes through every few
/// dozen packets), far too often for a sleep and wake-up through the kernel each time.
#[derive(Debug)]
struct SpinBarrier {
    n: usize,
    arrived: std::sync::atomic::AtomicUsize,
    generation: std::sync::atomic::AtomicU64,
    sleepers: std::sync::atomic::AtomicUsize,
    lock: std::sync::Mutex<()>,
    wake: std::sync::Condvar,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        SpinBarrier {
            n: n.max(1),
            arrived: std::sync::atomic::AtomicUsize::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            sleepers: std::sync::atomic::AtomicUsize::new(0),
            lock: std::sync::Mutex::new(()),
            wake: std::sync::Condvar::new(),
        }
    }

    /// Wait until all `n` threads called `wait` (reusable, like `std::sync::Barrier`).
    fn wait(&self) {
        let sc = Ordering::SeqCst;
        let generation = self.generation.load(sc);
        if self.arrived.fetch_add(1, sc) + 1 == self.n {
            self.arrived.store(0, sc);
            self.generation.fetch_add(1, sc);
            if self.sleepers.load(sc) > 0 {
                let _guard = self
                    .lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.wake.notify_all();
            }
            return;
        }
        if spin_until(|| self.generation.load(sc) != generation) {
            return;
        }
        let mut guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.sleepers.fetch_add(1, sc);
        while self.generation.load(sc) == generation {
            guard = self
                .wake
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, sc);
    }
}

/// Checks before a waiting worker yields its CPU, then sleeps: what it waits for (another
/// worker's round, worker 0's judging) usually comes within microseconds, far sooner than a
/// sleep and wake-up through the kernel.
const TURN_SPINS: u32 = 1000;
const TURN_YIELDS: u32 = 2;

/// Check `done` a while, then yield the CPU a few times between checks (the thread being
/// waited for may need it); whether it became true. The caller sleeps when it did not.
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for round in 0..TURN_SPINS + TURN_YIELDS {
        if done() {
            return true;
        }
        if round < TURN_SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    false
}

impl<S> TickSync<S> {
    /// For `workers` workers.
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        TickSync {
            workers,
            barrier: SpinBarrier::new(workers),
            rounds: std::sync::Mutex::new(Rounds {
                handed_in: (0..workers).map(|_| Default::default()).collect(),
                judged: (0..workers).map(|_| Default::default()).collect(),
                sleeping: 0,
            }),
            rounds_changed: std::sync::Condvar::new(),
            cuts: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn lock_rounds(&self) -> std::sync::MutexGuard<'_, Rounds<S>> {
        self.rounds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Change the rounds under the lock and wake whoever sleeps on them.
    fn with_rounds<T>(&self, f: impl FnOnce(&mut Rounds<S>) -> T) -> T {
        let mut r = self.lock_rounds();
        let out = f(&mut r);
        if r.sleeping > 0 {
            self.rounds_changed.notify_all();
        }
        out
    }

    /// Wait until `take` finds something in the rounds (checking a while, then yielding, then
    /// sleeping), and return it.
    fn wait_rounds<T>(&self, mut take: impl FnMut(&mut Rounds<S>) -> Option<T>) -> T {
        let mut found = None;
        spin_until(|| {
            found = take(&mut self.lock_rounds());
            found.is_some()
        });
        if let Some(t) = found {
            return t;
        }
        let mut r = self.lock_rounds();
        loop {
            if let Some(t) = take(&mut r) {
                return t;
            }
            r.sleeping += 1;
            r = self
                .rounds_changed
                .wait(r)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            r.sleeping -= 1;
        }
    }

    fn lock_cuts(&self) -> std::sync::MutexGuard<'_, Vec<(i64, u64, usize)>> {
        self.cuts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Add a worker's cuts of the end-of-capture drain ([`Worker::drain_in_rounds`]).
    fn offer_cuts(&self, keys: Vec<(i64, u64, usize)>) {
        self.lock_cuts().extend(keys);
    }

    /// Every worker's cuts, sorted (once all have offered theirs).
    fn cuts(&self) -> Vec<(i64, u64, usize)> {
        let mut cuts = self.lock_cuts().clone();
        cuts.sort_unstable();
        cuts
    }
}

/// Length of a capture-loss interval, packet time.
pub const LOSS_INTERVAL_MICROS: i64 = 60_000_000;
/// Fewest acknowledgements in an interval for its loss ratio to count.
pub const LOSS_MIN_ACKS: u64 = 100;

impl<A: Analysis> std::fmt::Debug for Worker<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("flows", &self.tracker.table().len())
            .finish_non_exhaustive()
    }
}

impl<A: Analysis> Worker<A> {
    /// Worker `index` with its analysis.
    pub fn new(index: usize, ctx: WorkerContext, analysis: A) -> Self {
        let tracker = FlowTracker::new(&ctx.capture, index, ctx.workers);
        let budget =
            taps::ReassemblyBudget::new(ctx.capture.reassembly_budget, Arc::clone(&ctx.stats));
        let taps = Taps::new(ctx.dns.clone(), ctx.capture.tls_reassembly_bytes, budget);
        Worker {
            index,
            tracker,
            analysis,
            taps,
            ctx,
            out: Outgoing::default(),
            scratch: Findings::default(),
            counters: WorkerCounters::default(),
            next_tick: None,
            now: 0,
            expire_now: 0,
            epoch: 0,
            sync: None,
            deferred: Deferred::default(),
            writer: None,
            loss_start: None,
            loss_base: (0, 0),
            loss_flagged: 0,
            ticks_unsent: 0,
            pending: std::collections::VecDeque::new(),
            draining: false,
            totals: LineTotals::default(),
            tick_totals: None,
        }
    }

    /// Offline: meet the other workers of the run (sharing `sync`) on each tick batch, and
    /// write flow records in one order across all of them.
    pub fn with_tick_sync(mut self, sync: Arc<TickSync<A::FlowState>>) -> Self {
        if sync.workers > 1 {
            self.analysis.buffer_shared_effects(true);
        }
        self.sync = Some(sync);
        self
    }

    /// Run until `rx` closes: process batches, return them through `recycle`, send events to
    /// `writer`; then write every remaining flow (reason `shutdown`) and a final tick.
    pub fn run(self, rx: Receiver<Batch>, recycle: Sender<Batch>, writer: Sender<WriterMsg>) {
        self.run_with_barrier(rx, recycle, writer, None);
    }

    /// [`Worker::run`], waiting at `barrier` (shared by all workers of a run) after the last
    /// batch and before writing the remaining flows: every worker has then applied every
    /// packet, so the shared DNS cache holds every answer of the capture when the final
    /// records look names up.
    pub fn run_with_barrier(
        mut self,
        rx: Receiver<Batch>,
        recycle: Sender<Batch>,
        writer: Sender<WriterMsg>,
        barrier: Option<&std::sync::Barrier>,
    ) {
        self.writer = Some(writer.clone());
        for mut batch in &rx {
            self.process(&batch);
            let tick = batch.tick;
            batch.clear();
            let _ = recycle.try_send(batch);
            // Nothing queued behind this batch (the input stalls, or this worker is ahead):
            // hand everything over now rather than holding it for a fuller message.
            self.flush_when(&writer, tick, rx.is_empty());
        }
        if let Some(b) = barrier {
            b.wait();
        }
        self.finish(&writer);
    }

    /// Apply one batch.
    pub fn process(&mut self, batch: &Batch) {
        self.enter_epoch(batch.epoch);
        for m in &batch.metas {
            self.packet(m.as_ref(), m.payload(batch));
        }
        self.end_batch(batch.now, batch.tick, batch.stalled);
    }

    /// Packets of time epoch `epoch` follow (see [`Batch::epoch`]). Called for every packet:
    /// the check stays inline, the rare change of epoch is a call.
    #[inline(always)]
    fn enter_epoch(&mut self, epoch: u32) {
        if epoch != self.epoch {
            self.new_epoch(epoch);
        }
    }

    /// Older packets follow (the next capture file): nothing expires until this epoch's first
    /// tick. Offline, the flows of the previous file end here (their records are written at
    /// the next tick, in order): they would otherwise wait for the end.
    #[cold]
    #[inline(never)]
    fn new_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
        self.expire_now = i64::MIN;
        if self.sync.is_some() {
            let deferred = &mut self.deferred;
            self.tracker.drain(&mut |f, r| deferred.push(f, r));
        }
    }

    /// One packet of a batch, its transport `payload` beside it.
    #[inline(always)]
    fn packet(&mut self, m: PacketRef<'_>, payload: &[u8]) {
        let Some((idx, from_init)) = ({
            let ordered = self.sync.is_some();
            let Worker {
                tracker,
                analysis,
                ctx,
                out,
                epoch,
                scratch,
                deferred,
                ..
            } = self;
            tracker.on_packet_with_id(m.dec, m.ts_micros, m.orig_len, m.seq, &mut |f, r| {
                if ordered && r != EndReason::ActiveTimeout {
                    deferred.push(f, r);
                } else {
                    record(analysis, ctx, out, *epoch, scratch, f, r)
                }
            })
        }) else {
            return; // a stray segment of a closed connection: no flow
        };
        if !payload.is_empty() {
            let flow = self.tracker.flow_mut(idx);
            // A later IP fragment carries a slice of the datagram, not a transport segment:
            // only the analysis (PI scanner) sees it, in capture order.
            if !matches!(m.dec.frag, crate::decode::Frag::Later) {
                self.taps
                    .on_payload(flow, m.dec, payload, from_init, m.dns_response);
            }
            let ((init, _), (resp, resp_port)) = (flow.initiator(), flow.responder());
            let encrypted = flow.app_proto().is_encrypted();
            let view = PayloadView {
                initiator: init,
                responder: resp,
                ip_proto: flow.key().proto,
                responder_port: resp_port,
                vlan: flow.key().vlan,
                from_initiator: from_init,
                encrypted,
                payload,
                now_micros: m.ts_micros,
            };
            self.analysis.on_payload(flow.state_mut(), &view);
            if self.sync.is_none() {
                self.early_verdict(idx);
            }
        }
    }

    /// The end of a batch stamped `now` (a `tick`, or `stalled`: see [`Batch`]).
    fn end_batch(&mut self, now: i64, tick: bool, stalled: bool) {
        if now != 0 {
            self.now = now;
        }
        if tick && now != 0 {
            self.expire_now = now;
        }
        self.housekeeping(tick);
        if stalled {
            self.catch_up();
        }
    }

    /// Offline, the input ran dry: write every round handed in so far now, as the end of
    /// the input would (worker 0 judges them once the others have handed theirs in, which
    /// they do on the same ticks, already queued before this batch), instead of at the next
    /// tick, which only comes when the input does.
    fn catch_up(&mut self) {
        let Some(sync) = self.sync.clone() else {
            return;
        };
        if self.index == 0 {
            self.judge_rounds(&sync, true);
        }
        self.emit_judged(&sync, true);
    }

    /// Live: judge the flow at `idx` before its record when the analysis asks for it and what
    /// it waits for is there (see [`EarlyVerdict`]): the verdict alert of an export leaves with
    /// the batch of its first export payload instead of at the flow's end. Offline (`analyze`)
    /// verdicts stay at the flow records, whose order is the same whatever the number of workers.
    fn early_verdict(&mut self, idx: u32) {
        let Worker {
            tracker,
            analysis,
            ctx,
            out,
            epoch,
            scratch,
            ..
        } = self;
        let flow = tracker.flow_mut(idx);
        let due = match analysis.early_verdict(flow.state(), flow.bytes()) {
            EarlyVerdict::None => false,
            EarlyVerdict::FirstExport => !taps::name_pending(flow),
            EarlyVerdict::OnName => taps::has_name(flow),
        };
        if due {
            early(analysis, ctx, out, *epoch, scratch, flow);
        }
    }

    /// Expire idle flows (bounded work) up to the time of the last tick batch, and run the
    /// analysis' tick on tick batches: both happen at packet times the capture thread picks for
    /// every worker alike, never at batch boundaries (which depend on the number of workers).
    fn housekeeping(&mut self, tick: bool) {
        let now = self.now;
        if let Some(sync) = self.sync.clone() {
            if tick {
                let expire_now = self.expire_now;
                let deferred = &mut self.deferred;
                self.tracker.expire(expire_now, usize::MAX, &mut |f, r| {
                    deferred.push(f, r);
                });
                self.flush_counters();
                self.hand_in(&sync, now);
            }
            return;
        }
        {
            let expire_now = self.expire_now;
            let Worker {
                tracker,
                analysis,
                ctx,
                out,
                epoch,
                scratch,
                ..
            } = self;
            tracker.expire(expire_now, EXPIRE_PER_BATCH, &mut |f, r| {
                record(analysis, ctx, out, *epoch, scratch, f, r)
            });
        }
        if !tick {
            return;
        }
        self.capture_loss(now, false);
        self.tick(now, self.epoch);
    }

    /// A tick batch offline: hand this tick's round in (the records that ended since the last
    /// tick, sorted; what this worker's payloads would have added to shared state; its line
    /// totals) and read on without waiting. Worker 0 then judges every round that all workers
    /// have handed in. Each worker writes its records once they come back judged.
    fn hand_in(&mut self, sync: &TickSync<A::FlowState>, now: i64) {
        let mut records = std::mem::take(&mut self.deferred.list);
        records.sort_by_key(|p| (p.flow.last_micros(), p.flow.flow_id()));
        if sync.workers == 1 {
            // One worker: nothing to wait for, judge and write at once.
            let mut lists = [records];
            self.judge_merged(&mut lists);
            self.tick_totals = Some(self.totals);
            self.capture_loss(now, false);
            self.tick(now, self.epoch);
            self.tick_totals = None;
            let [records] = lists;
            let epoch = self.epoch;
            self.deferred.list = self.emit_parked(records, epoch);
            self.deferred.min = i64::MAX;
            return;
        }
        let mut effects = SharedEffects::default();
        self.analysis.take_shared_effects(&mut effects);
        let me = self.index;
        // Until the round comes back written, its records and its tick's alerts (keyed at the
        // tick's time) are still to come: they hold this worker's watermark back.
        self.pending
            .push_back((self.epoch, self.deferred.min.min(now)));
        self.deferred.min = i64::MAX;
        self.hand_in_round(sync, records, effects, now, true);
        if me == 0 {
            self.judge_rounds(sync, false);
        }
        self.emit_judged(sync, false);
    }

    /// Queue a round of this worker's for worker 0: its `records` (sorted), `effects`, its line
    /// totals, and the packet time `now` of the tick it belongs to (`tick`), or of the end.
    fn hand_in_round(
        &self,
        sync: &TickSync<A::FlowState>,
        records: Vec<Parked<A::FlowState>>,
        effects: SharedEffects,
        now: i64,
        tick: bool,
    ) {
        let round = Round {
            records,
            effects,
            totals: self.totals,
            now,
            epoch: self.epoch,
            tick,
        };
        sync.with_rounds(|r| {
            if let Some(q) = r.handed_in.get_mut(self.index) {
                q.push_back(round);
            }
        });
    }

    /// Worker 0: for each tick whose rounds every worker has handed in, in tick order: add
    /// their shared effects, judge all their records in one (last packet time, flow id)
    /// order, run the analysis' tick (offline only worker 0 ticks: the shared tick work lands
    /// on the same worker whatever the number of workers) and hand the judged records back.
    /// With `all`, wait for the other workers until its own rounds are all judged.
    fn judge_rounds(&mut self, sync: &TickSync<A::FlowState>, all: bool) {
        let n = sync.workers;
        loop {
            let complete = |r: &mut Rounds<A::FlowState>| {
                let ready = r.handed_in.iter().take(n).all(|q| !q.is_empty());
                ready.then(|| {
                    r.handed_in
                        .iter_mut()
                        .filter_map(std::collections::VecDeque::pop_front)
                        .collect::<Vec<_>>()
                })
            };
            let rounds = if all {
                if sync.with_rounds(|r| r.handed_in.first().is_none_or(|q| q.is_empty())) {
                    return;
                }
                sync.wait_rounds(complete)
            } else {
                match sync.with_rounds(complete) {
                    Some(rounds) => rounds,
                    None => return,
                }
            };
            let (now, epoch, tick) = rounds
                .first()
                .map_or((self.now, self.epoch, false), |r| (r.now, r.epoch, r.tick));
            let mut totals = LineTotals::default();
            let mut lists = Vec::with_capacity(rounds.len());
            for mut round in rounds {
                self.analysis.apply_shared_effects(&mut round.effects);
                totals += round.totals;
                lists.push(round.records);
            }
            self.judge_merged(&mut lists);
            if tick {
                self.tick_totals = Some(totals);
                self.capture_loss(now, false);
                self.tick(now, epoch);
                self.tick_totals = None;
            }
            sync.with_rounds(|r| {
                for (w, list) in lists.into_iter().enumerate() {
                    if let Some(q) = r.judged.get_mut(w) {
                        q.push_back(list);
                    }
                }
            });
        }
    }

    /// Write the records worker 0 has handed back; with `all`, wait for every round handed
    /// in so far.
    fn emit_judged(&mut self, sync: &TickSync<A::FlowState>, all: bool) {
        self.emit_judged_until(sync, if all { 0 } else { usize::MAX });
    }

    /// Write the records worker 0 has handed back, waiting for them while more than `keep`
    /// rounds handed in are not written yet.
    fn emit_judged_until(&mut self, sync: &TickSync<A::FlowState>, keep: usize) {
        let me = self.index;
        loop {
            let lists: Vec<Vec<Parked<A::FlowState>>> = if self.pending.len() > keep {
                vec![sync.wait_rounds(|r| r.judged.get_mut(me)?.pop_front())]
            } else {
                sync.with_rounds(|r| r.judged.get_mut(me).map(|q| q.drain(..).collect()))
                    .unwrap_or_default()
            };
            if lists.is_empty() {
                return;
            }
            for list in lists {
                // Keyed in the epoch the round was handed in; the round holds the watermark
                // back until all of it is written (a full line buffer is handed over midway).
                let epoch = self.pending.front().map_or(self.epoch, |p| p.0);
                drop(self.emit_parked(list, epoch));
                self.pending.pop_front();
            }
        }
    }

    /// Write judged records, keyed in time epoch `epoch`; returns the emptied list.
    fn emit_parked(
        &mut self,
        mut list: Vec<Parked<A::FlowState>>,
        epoch: u32,
    ) -> Vec<Parked<A::FlowState>> {
        for p in &mut list {
            let Parked {
                flow,
                reason,
                findings,
                dns_name,
            } = p;
            emit(
                &self.analysis,
                &self.ctx,
                &mut self.out,
                epoch,
                findings,
                flow,
                *reason,
                dns_name.as_deref(),
            );
            // `emit` wrote the alerts (the list is empty; cleared again when kept).
            self.deferred
                .keep_alert_list(std::mem::take(&mut findings.alerts));
            self.hand_over_when_full();
        }
        list.clear();
        list
    }

    /// Hand the queued events over when the line buffer is nearly full: a tick can end
    /// thousands of flows at once, and growing the buffer instead copies all of it each time.
    fn hand_over_when_full(&mut self) {
        let lines = &self.out.lines;
        if lines.capacity() - lines.len() < LINE_HEADROOM {
            if let Some(w) = self.writer.clone() {
                self.send_out(&w);
            }
        }
    }

    /// Worker 0: judge the records of `lists` (each sorted), merged in (last packet time, flow
    /// id) order.
    fn judge_merged(&mut self, lists: &mut [Vec<Parked<A::FlowState>>]) {
        let mut next = vec![0usize; lists.len()];
        loop {
            let mut best: Option<((i64, u64), usize)> = None;
            for (w, list) in lists.iter().enumerate() {
                if let Some(p) = next.get(w).and_then(|&i| list.get(i)) {
                    let k = (p.flow.last_micros(), p.flow.flow_id());
                    if best.is_none_or(|(b, _)| k < b) {
                        best = Some((k, w));
                    }
                }
            }
            let Some((_, w)) = best else { break };
            let i = next[w];
            next[w] += 1;
            if let Some(p) = lists.get_mut(w).and_then(|l| l.get_mut(i)) {
                p.dns_name = judge(
                    &mut self.analysis,
                    &self.ctx,
                    &mut p.findings,
                    &mut p.flow,
                    p.reason,
                );
            }
        }
    }

    /// The end of the capture, offline: judge and write this worker's deferred records and the
    /// flows still in its table (`table`: (last packet time, flow id, slot), sorted) in the one
    /// order of all workers, in rounds as at a tick: worker 0 judges every worker's round
    /// merged, and each worker writes its own.
    ///
    /// The rounds are cut at the same keys for every worker: each worker offers every
    /// [`DRAIN_CHUNK`]-th key of its records, and all the keys offered cut every worker's
    /// records, so a worker has at most [`DRAIN_CHUNK`] records in a round and every record of
    /// a round comes before every record of the next. A worker hands in at most
    /// [`DRAIN_DEPTH`] rounds ahead of the written ones, so the drain holds a few thousand
    /// records outside the tables, however many flows are open at the end. The table's flows
    /// move out of it only as their round is cut.
    fn drain_in_rounds(&mut self, sync: &TickSync<A::FlowState>, table: Vec<(i64, u64, u32)>) {
        let me = self.index;
        let mut list = std::mem::take(&mut self.deferred.list);
        list.sort_by_key(|p| (p.flow.last_micros(), p.flow.flow_id()));
        let key_of = |p: &Parked<A::FlowState>| (p.flow.last_micros(), p.flow.flow_id());
        // This worker's next record: from the deferred list (`true`) or the table.
        let next = |i: Option<(i64, u64)>, j: usize| {
            let b = table.get(j).map(|t| (t.0, t.1));
            match (i, b) {
                (Some(a), Some(b)) if b < a => Some((b, false)),
                (Some(a), _) => Some((a, true)),
                (None, b) => b.map(|b| (b, false)),
            }
        };
        let mut offered = Vec::with_capacity((list.len() + table.len()) / DRAIN_CHUNK);
        let (mut i, mut j, mut n) = (0usize, 0usize, 0usize);
        while let Some((k, from_list)) = next(list.get(i).map(key_of), j) {
            if from_list {
                i += 1;
            } else {
                j += 1;
            }
            n += 1;
            if n.is_multiple_of(DRAIN_CHUNK) {
                offered.push((k.0, k.1, me));
            }
        }
        sync.offer_cuts(offered);
        sync.barrier.wait();
        let cuts = sync.cuts();
        self.draining = true;
        let mut list = list.into_iter().peekable();
        let mut j = 0usize;
        for round in 0..=cuts.len() {
            let cut = cuts.get(round).copied();
            while let Some((k, from_list)) = next(list.peek().map(key_of), j) {
                if cut.is_some_and(|c| (k.0, k.1, me) > c) {
                    break;
                }
                if from_list {
                    self.deferred.list.extend(list.next());
                } else {
                    if let Some(&(_, _, slot)) = table.get(j) {
                        let deferred = &mut self.deferred;
                        self.tracker.close_at(slot, &mut |f, r| deferred.push(f, r));
                    }
                    j += 1;
                }
            }
            let records = std::mem::take(&mut self.deferred.list);
            // Until the round comes back written, its records hold the watermark back; what
            // is left after it, the rest.
            let first = records.first().map_or(i64::MAX, |p| p.flow.last_micros());
            self.pending.push_back((self.epoch, first));
            self.deferred.min = next(list.peek().map(key_of), j).map_or(i64::MAX, |(k, _)| k.0);
            let now = self.now;
            self.hand_in_round(sync, records, SharedEffects::default(), now, false);
            if me == 0 {
                self.judge_rounds(sync, self.pending.len() > DRAIN_DEPTH);
            }
            self.emit_judged_until(sync, DRAIN_DEPTH);
            if self.out.len() >= DRAIN_CHUNK {
                if let Some(w) = self.writer.clone() {
                    self.send_out(&w);
                }
            }
        }
        if me == 0 {
            self.judge_rounds(sync, true);
        }
        self.emit_judged(sync, true);
        self.deferred.min = i64::MAX;
        sync.barrier.wait();
    }

    /// The analysis' tick, about once a second.
    fn tick(&mut self, now: i64, epoch: u32) {
        let tick_due = match self.next_tick {
            None => true,
            // Time went backwards by more than a tick: restart the schedule.
            Some(t) => now >= t || now < t - 2 * TICK_MICROS,
        };
        if tick_due && now != 0 {
            self.next_tick = Some(now + TICK_MICROS);
            self.analysis_tick(now, epoch);
        }
    }

    /// Run the analysis' tick and queue the alerts it raised.
    fn analysis_tick(&mut self, now: i64, epoch: u32) {
        let health = self.health();
        self.scratch.clear();
        self.analysis.on_tick(now, &health, &mut self.scratch);
        push_alerts(&self.ctx, &mut self.scratch, &mut self.out, None);
        push_keys(&mut self.out, epoch, now, 0);
    }

    fn health(&self) -> Health {
        let s = &self.ctx.stats;
        let r = Ordering::Relaxed;
        Health {
            packets: s.packets.load(r),
            drops_kernel: s.drops_kernel.load(r),
            drops_interface: s.drops_interface.load(r),
            drops_queue: s.drops_queue.load(r),
            evictions: self
                .tick_totals
                .map_or_else(|| s.evictions.load(r), |t| t.evictions),
            flows_active: s.flows_active.load(r),
            flow_capacity: s.flow_capacity.load(r),
            capture_loss: self.loss_flagged,
        }
    }

    /// Packet time below which this worker will write no more events (in its epoch): the
    /// last tick, the least recently seen flow in its table, its deferred records, less the
    /// backward step of packet time allowed within an epoch.
    fn watermark(&self) -> (u32, i64) {
        if self.draining {
            // The end-of-capture drain: its records come in key order, so nothing comes below
            // the next one, the rounds not written yet, or worker 0's final tick.
            let tick = if self.index == 0 { self.now } else { i64::MAX };
            return self
                .pending
                .iter()
                .copied()
                .fold((self.epoch, self.deferred.min.min(tick)), std::cmp::min);
        }
        let t = self.tracker.table();
        let stalest = t.stalest().map_or(i64::MAX, |i| t.get(i).last_micros());
        let own = (
            self.epoch,
            self.expire_now
                .min(stalest)
                .min(self.deferred.min)
                .saturating_sub(EPOCH_BACKSTEP_MICROS),
        );
        // Rounds not written yet may be of an earlier epoch.
        self.pending
            .iter()
            .map(|&(e, t)| (e, t.saturating_sub(EPOCH_BACKSTEP_MICROS)))
            .fold(own, std::cmp::min)
    }

    /// Worker 0: close the capture-loss interval when it is over (or `force`, at the end) and
    /// keep its gaps when its estimated loss ratio passed the configured one.
    fn capture_loss(&mut self, now: i64, force: bool) {
        if self.index != 0 || now == 0 {
            return;
        }
        let s = &self.ctx.stats;
        let totals = match self.tick_totals {
            Some(t) => (t.loss_acks, t.loss_gaps),
            None => (
                s.capture_loss_acks.load(Ordering::Relaxed),
                s.capture_loss_gaps.load(Ordering::Relaxed),
            ),
        };
        let Some(start) = self.loss_start else {
            self.loss_start = Some(now);
            self.loss_base = totals;
            return;
        };
        if !force && now - start < LOSS_INTERVAL_MICROS && now >= start {
            return;
        }
        let acks = totals.0.saturating_sub(self.loss_base.0);
        let gaps = totals.1.saturating_sub(self.loss_base.1);
        if acks >= LOSS_MIN_ACKS && gaps as f64 > self.ctx.capture.loss_alert_ratio * acks as f64 {
            self.loss_flagged += gaps;
        }
        self.loss_start = Some(now);
        self.loss_base = totals;
    }

    fn flush_counters(&mut self) {
        let c = self.tracker.take_counters();
        self.counters.flows_created += c.created;
        self.counters.flows_midstream += c.midstream;
        self.counters.evictions += c.evicted;
        self.totals.evictions += c.evicted;
        self.totals.loss_acks += c.loss_acks;
        self.totals.loss_gaps += c.loss_gaps;
        self.counters.active_delta += c.created as i64 - c.removed as i64;
        self.counters.loss_acks += c.loss_acks;
        self.counters.loss_gaps += c.loss_gaps;
        self.counters.loss_bytes += c.loss_bytes;
        if c.after_close > 0 {
            self.ctx.stats.ignored[crate::decode::Ignored::TcpAfterClose.index()]
                .fetch_add(c.after_close, Ordering::Relaxed);
        }
        self.counters.flush(&self.ctx.stats);
    }

    /// Flush counters and hand events to the writer; offline in fuller messages, unless
    /// `idle` (nothing queued behind: send what there is at once).
    fn flush_when(&mut self, writer: &Sender<WriterMsg>, tick: bool, idle: bool) {
        self.flush_counters();
        if self.sync.is_some() && !idle {
            // Offline: in messages of a few hundred events (a sparse capture has a tick every
            // few dozen packets, and a message per tick kept the writer waking up for one or
            // two events), the watermark alone every so many ticks.
            self.ticks_unsent += u32::from(tick);
            if self.out.len() < OFFLINE_MESSAGE_EVENTS && self.ticks_unsent < OFFLINE_MESSAGE_TICKS
            {
                return;
            }
            self.ticks_unsent = 0;
        }
        // Events, or on a tick the watermark alone, so the writer can release ordered events.
        if !self.out.is_empty() || tick || (self.sync.is_some() && self.ticks_unsent > 0) {
            self.ticks_unsent = 0;
            self.send_out(writer);
        }
    }

    /// Hand the events queued so far to the writer, with this worker's watermark.
    fn send_out(&mut self, writer: &Sender<WriterMsg>) {
        let (epoch, watermark) = self.watermark();
        let out = std::mem::take(&mut self.out);
        // The next message is sized like this one with half again as much room (instead of
        // growing from empty by doubling, or copying all of it once when it comes out larger).
        let (lines, items) = (out.lines.len(), out.items.len());
        let _ = writer.send(WriterMsg::Keyed {
            worker: self.index,
            epoch,
            watermark,
            exact: self.draining,
            out,
        });
        let want = (lines + lines / 2).clamp(LINE_HEADROOM * 4, MAX_LINE_BUFFER);
        // A spare buffer too small for that is dropped, not grown: growing copies all of its
        // capacity, empty as it is.
        let spare = self
            .ctx
            .spare_lines
            .as_ref()
            .and_then(|s| s.try_recv().ok());
        self.out.lines = spare
            .filter(|b| b.capacity() >= want)
            .unwrap_or_else(|| Vec::with_capacity(want));
        self.out.items.reserve(items + items / 2);
        self.out.keys.reserve(items + items / 2);
    }

    /// Take the events queued since the last flush, as owned events (tests and tools that
    /// drive [`Worker::process`] themselves).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.out).into_events()
    }

    /// Write every remaining flow and the final tick, then flush.
    pub fn finish(mut self, writer: &Sender<WriterMsg>) {
        let index = self.index;
        let (watermark_epoch, watermark) = self.watermark();
        if let Some(sync) = self.sync.clone() {
            // Offline: every remaining flow in the one order of all workers, then the final
            // ticks one worker after the other.
            // The table's flows are written straight from the table, in order with the deferred
            // records (moving a full table out first would double its memory at the end).
            let table = self.tracker.drain_order();
            self.writer = Some(writer.clone());
            self.flush_counters();
            // Every round judged and written, and what the payloads since the last tick added to
            // shared state added now: then the remaining records go to worker 0 in rounds, as at
            // a tick (`drain_in_rounds`).
            if self.index == 0 {
                self.judge_rounds(&sync, true);
            }
            self.emit_judged(&sync, true);
            self.analysis.buffer_shared_effects(false);
            sync.barrier.wait();
            self.drain_in_rounds(&sync, table);
            self.flush_counters();
            self.send_out(writer);
            let now = self.now;
            self.capture_loss(now, true);
            // The final tick: worker 0's, as every offline tick.
            if self.index == 0 {
                self.analysis_tick(now, self.epoch);
            }
            self.flush_counters();
            self.send_out(writer);
            return;
        }
        {
            let Worker {
                tracker,
                analysis,
                ctx,
                out,
                epoch,
                scratch,
                ..
            } = &mut self;
            // Hand the records over in chunks (bench/README.md): building one Vec with a record
            // for every remaining flow made the end of capture / shutdown the memory peak
            // (about 1.4 KB per record: +137 MiB for 100k flows in bench_flood, >1 GiB for a
            // full 1M-flow table).
            tracker.drain(&mut |f, r| {
                record(analysis, ctx, out, *epoch, scratch, f, r);
                if out.len() >= DRAIN_CHUNK {
                    let _ = writer.send(WriterMsg::Keyed {
                        worker: index,
                        epoch: watermark_epoch,
                        watermark,
                        exact: false,
                        out: std::mem::take(out),
                    });
                }
            });
        }
        self.flush_counters();
        self.send_out(writer);
        let now = self.now;
        self.capture_loss(now, true);
        self.analysis_tick(now, self.epoch);
        self.flush_counters();
        self.send_out(writer);
    }
}

/// Key the events of `out` not keyed yet as (time, flow id, position among them): events with
/// the same time and flow id keep the order the analysis gave them.
fn push_keys(out: &mut Outgoing, epoch: u32, micros: i64, flow_id: u64) {
    let first = out.keys.len();
    for i in first..out.items.len() {
        out.keys.push((
            epoch,
            micros,
            flow_id,
            u32::try_from(i - first).unwrap_or(u32::MAX),
        ));
    }
}

/// What the analysis is told about `f`, without its L7 names (see [`with_names`]).
fn summarize<'a, S>(
    f: &Flow<S, L7State>,
    reason: EndReason,
    dns_name: Option<&'a str>,
) -> FlowSummary<'a> {
    let (init, init_port) = f.initiator();
    let (resp, resp_port) = f.responder();
    FlowSummary {
        flow_id: f.flow_id(),
        ip_proto: f.key().proto,
        initiator: init,
        initiator_port: init_port,
        responder: resp,
        responder_port: resp_port,
        vlan: f.key().vlan,
        icmp: f.icmp()[0],
        pkts_fwd: f.pkts()[0],
        pkts_rev: f.pkts()[1],
        bytes_fwd: f.bytes()[0],
        bytes_rev: f.bytes()[1],
        payload_fwd: f.payload()[0],
        payload_rev: f.payload()[1],
        first_micros: f.first_micros(),
        last_micros: f.last_micros(),
        reason,
        midstream: f.midstream(),
        app_proto: f.app_proto().name(),
        tls_sni: None,
        quic_sni: None,
        ech: false,
        http_host: None,
        dns_name,
    }
}

/// `summary` with the names the L7 taps found.
fn with_names<'a>(mut summary: FlowSummary<'a>, l7: Option<&'a L7State>) -> FlowSummary<'a> {
    let tls = l7.and_then(|l| l.tls.as_ref());
    let quic = l7.and_then(|l| l.quic.as_ref());
    summary.tls_sni = tls.and_then(|t| t.sni.as_deref());
    summary.quic_sni = quic.and_then(|t| t.sni.as_deref());
    summary.ech = tls.is_some_and(|t| t.ech) || quic.is_some_and(|t| t.ech);
    summary.http_host = l7
        .and_then(|l| l.http.as_ref())
        .and_then(|h| h.hostname.as_deref());
    summary
}

/// Live: let the analysis judge `f` before its record and queue the alert it raised. Once per
/// flow at its first export (and once more when its name arrives): the name lookup here is per
/// flow, never per packet.
fn early<A: Analysis>(
    analysis: &mut A,
    ctx: &WorkerContext,
    out: &mut Outgoing,
    epoch: u32,
    scratch: &mut Findings,
    f: &mut Flow<A::FlowState, L7State>,
) {
    let (resp, _) = f.responder();
    let dns_name = ctx
        .dns
        .lookup_as_of(resp, f.first_micros(), f.last_micros());
    // A running view of the flow, like an active-timeout record.
    let summary = summarize(f, EndReason::ActiveTimeout, dns_name.as_deref());
    let (last, flow_id) = (f.last_micros(), f.flow_id());
    scratch.clear();
    let (state, l7) = f.state_mut_and_l7();
    analysis.on_early_verdict(state, &with_names(summary, l7), scratch);
    push_alerts(ctx, scratch, out, None);
    push_keys(out, epoch, last, flow_id);
}

/// Write the flow record of `f` after letting the analysis judge it, then any alerts it
/// raised: as a JSON line written straight from the flow entry (`ctx.direct`), or as an owned
/// [`Event`] made of the same parts.
fn record<A: Analysis>(
    analysis: &mut A,
    ctx: &WorkerContext,
    out: &mut Outgoing,
    epoch: u32,
    scratch: &mut Findings,
    f: &mut Flow<A::FlowState, L7State>,
    reason: EndReason,
) {
    let dns_name = judge(analysis, ctx, scratch, f, reason);
    emit(
        &*analysis,
        ctx,
        out,
        epoch,
        scratch,
        f,
        reason,
        dns_name.as_deref(),
    );
}

/// Let the analysis judge the record of `f` into `findings` (cleared first); returns the name
/// the responder had when the flow started (a long flow outlives the answer's TTL; an answer
/// seen after the start, up to the flow's last packet, still counts).
fn judge<A: Analysis>(
    analysis: &mut A,
    ctx: &WorkerContext,
    findings: &mut Findings,
    f: &mut Flow<A::FlowState, L7State>,
    reason: EndReason,
) -> Option<Arc<str>> {
    let (resp, _) = f.responder();
    let dns_name = ctx
        .dns
        .lookup_as_of(resp, f.first_micros(), f.last_micros());
    let summary = summarize(f, reason, dns_name.as_deref());
    findings.clear();
    let (state, l7) = f.state_mut_and_l7();
    analysis.on_flow_record(state, &with_names(summary, l7), findings);
    dns_name
}

/// Queue the judged record of `f` and the alerts of `findings` (emptied): the record as a JSON
/// line written straight from the flow entry (`ctx.direct`), or as an owned [`Event`] made of
/// the same parts.
#[allow(clippy::too_many_arguments)] // the worker's parts, split so the analysis can borrow its own
fn emit<A: Analysis>(
    analysis: &A,
    ctx: &WorkerContext,
    out: &mut Outgoing,
    epoch: u32,
    findings: &mut Findings,
    f: &Flow<A::FlowState, L7State>,
    reason: EndReason,
    dns_name: Option<&str>,
) {
    let (init, init_port) = f.initiator();
    let (resp, resp_port) = f.responder();
    let key = f.key();
    let proto_number;
    let proto = match crate::flow::key::proto_name(key.proto) {
        Some(name) => name,
        None => {
            proto_number = Text::<4>::of(key.proto);
            proto_number.as_str()
        }
    };
    let icmp = f.icmp();
    let tuple = crate::l7::community_id::flow_tuple(key, f.initiator_is_lo(), icmp[0]);
    // The record's texts written in place, one after the other, and checked as UTF-8 together
    // (at most 2 x 36 + 2 x 45 + 30 bytes).
    let mut joined = Joined::<256>::new();
    let mut start_len = 0;
    let times = joined.write(|b| {
        let (start, end) = EveTime::write_pair(f.first_micros(), f.last_micros(), b);
        start_len = start;
        start + end
    });
    let split = times.start + start_len;
    let at = [
        times.start..split,
        split..times.end,
        joined.write(|b| crate::text::write_ip(init, b)),
        joined.write(|b| crate::text::write_ip(resp, b)),
        joined.write(|b| CommunityId::write_of_tuple(ctx.capture.community_id_seed, tuple, b)),
    ];
    let all = joined.as_str();
    let [start_text, end_text, src_text, dest_text, community_id_text] =
        at.map(|r| all.get(r).unwrap_or(""));
    let vlan = key.vlan_ids_slice();
    let l7 = f.l7();
    let mut e = EventRef::new(EventType::Flow, end_text, &ctx.gateway);
    e.flow_id = Some(f.flow_id());
    e.proto = Some(proto);
    e.vlan = (!vlan.is_empty()).then_some(vlan);
    e.src_ip = Some(src_text);
    e.dest_ip = Some(dest_text);
    use crate::decode::ip_proto::{ICMP, ICMPV6, SCTP, TCP, UDP};
    match key.proto {
        // ICMP: EVE's type and code instead of ports.
        ICMP | ICMPV6 => {
            (e.icmp_type, e.icmp_code) = (Some(icmp[0].0), Some(icmp[0].1));
            if f.pkts()[1] > 0 {
                e.response_icmp_type = Some(icmp[1].0);
                e.response_icmp_code = Some(icmp[1].1);
            }
        }
        TCP | UDP | SCTP => (e.src_port, e.dest_port) = (Some(init_port), Some(resp_port)),
        _ => {} // no ports (GRE, ESP, ...), as EVE
    }
    e.community_id = Some(community_id_text);
    e.app_proto = f.app_proto().name();
    e.dns_name = dns_name;
    e.flow = Some(FlowRecordRef {
        pkts_toserver: f.pkts()[0],
        pkts_toclient: f.pkts()[1],
        bytes_toserver: f.bytes()[0],
        bytes_toclient: f.bytes()[1],
        start: start_text,
        end: end_text,
        age: eve_flow_age(f.first_micros(), f.last_micros()),
        state: Some(eve_flow_state(key.proto, f.tcp().state, f.pkts())),
        reason: reason.as_str(),
        midstream: f.midstream(),
        alerted: findings.alerted,
    });
    (e.tls, e.quic, e.http) = (
        l7.and_then(|l| l.tls.as_ref()),
        l7.and_then(|l| l.quic.as_ref()),
        l7.and_then(|l| l.http.as_ref()),
    );
    if let Some(v) = &findings.verdict {
        verdict_into(analysis, &mut e, v);
    }
    if ctx.direct {
        let meta = LineMeta {
            status: e.verdict.map(|v| v.status),
            exclude: e.verdict.and_then(|v| v.exclude).map(Box::from),
        };
        out.push_line(meta, |buf| e.write_json(buf));
    } else {
        out.push_event(e.to_event());
    }
    // The record's Community ID, for its alerts (most records have none).
    let memo = (!findings.alerts.is_empty())
        .then(|| CommunityId::from_text(community_id_text.as_bytes()))
        .flatten()
        .map(|c| (tuple, c));
    push_alerts(ctx, findings, out, memo);
    // Ordered by the flow's last packet time and id, with the alerts of this record.
    push_keys(out, epoch, f.last_micros(), f.flow_id());
}

/// Queue the alerts of `findings` (emptied) as events.
fn push_alerts(
    ctx: &WorkerContext,
    findings: &mut Findings,
    out: &mut Outgoing,
    mut cid: Option<CidMemo>,
) {
    let seed = ctx.capture.community_id_seed;
    for a in findings.alerts.drain(..) {
        if ctx.direct && ctx.alert_lines_at_writer {
            out.queue_alert_finding(a);
        } else if ctx.direct {
            push_alert_line(&ctx.gateway, seed, a, &mut cid, out);
        } else {
            out.push_event(alert_event(&ctx.gateway, seed, &a, &mut cid));
        }
    }
}

/// The Community ID tuple of an alert's flow: protocol, initiator and port, responder and
/// port (ICMP type and code as ports, none for protocols without ports).
fn alert_tuple(f: &crate::analysis::findings::FlowRef) -> crate::l7::community_id::FlowTuple {
    use crate::decode::ip_proto::{ICMP, ICMPV6, SCTP, TCP, UDP};
    let (a_port, b_port) = match f.ip_proto {
        ICMP | ICMPV6 => (u16::from(f.icmp.0), u16::from(f.icmp.1)),
        TCP | UDP | SCTP => (f.initiator_port, f.responder_port),
        _ => (0, 0),
    };
    (f.ip_proto, f.initiator, a_port, f.responder, b_port)
}

/// The Community ID of an alert's flow tuple, from the memo when the tuple is the last one's.
fn memo_community_id(
    seed: u16,
    tuple: crate::l7::community_id::FlowTuple,
    cid: &mut Option<CidMemo>,
) -> CommunityId {
    match cid {
        Some((t, id)) if *t == tuple => *id,
        _ => {
            let id = CommunityId::of_tuple(seed, tuple);
            *cid = Some((tuple, id));
            id
        }
    }
}

/// Queue alert `a` as a JSON line written here ([`write_alert_json`]), with the finding itself
/// for the writer's alert shaping: no owned event of strings per alert.
fn push_alert_line(
    gateway: &str,
    seed: u16,
    a: Box<AlertFinding>,
    cid: &mut Option<CidMemo>,
    out: &mut Outgoing,
) {
    if let Some(range) = out.write_alert_line(|buf| write_alert_json(gateway, seed, &a, cid, buf)) {
        out.queue_alert_line(range, a);
    }
}

/// Append the JSON line of alert `a` to `buf`, field by field from the finding.
pub(crate) fn write_alert_json(
    gateway: &str,
    seed: u16,
    a: &AlertFinding,
    cid: &mut Option<CidMemo>,
    buf: &mut Vec<u8>,
) {
    with_alert_ref(gateway, seed, a, cid, |e| e.write_json(buf));
}

/// The alert event of `a`, owned (for sinks that want events); flow fields are those of the
/// flow it is about, if any.
fn alert_event(gateway: &str, seed: u16, a: &AlertFinding, cid: &mut Option<CidMemo>) -> Event {
    with_alert_ref(gateway, seed, a, cid, |e| e.to_event())
}

/// Hand `f` the alert event of `a` as an [`EventRef`] whose texts (timestamp, addresses,
/// Community ID, summary) live in fixed buffers here: the one assembly behind both the line
/// a worker writes and the owned event.
fn with_alert_ref<T>(
    gateway: &str,
    seed: u16,
    a: &AlertFinding,
    cid: &mut Option<CidMemo>,
    f: impl FnOnce(&EventRef<'_>) -> T,
) -> T {
    use crate::decode::ip_proto::{ICMP, ICMPV6, SCTP, TCP, UDP};
    let time = EveTime::new(a.micros);
    let mut summary = SUMMARY
        .with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
        .unwrap_or_default();
    a.summary_into(&mut summary);
    let service = a.service.map(Text::<16>::service);
    let validity = a
        .validity
        .map(|(from, until)| (Text::<16>::of(from), Text::<16>::of(until)));
    let flow = a.flow.as_ref();
    let texts = flow.map(|f| {
        // A protocol without a name is written as its number.
        let number = crate::flow::key::proto_name(f.ip_proto)
            .is_none()
            .then(|| Text::<4>::of(f.ip_proto));
        (
            Text::<48>::ip(f.initiator),
            Text::<48>::ip(f.responder),
            number,
            memo_community_id(seed, alert_tuple(f), cid),
        )
    });
    // The texts checked as UTF-8 together (at most 36 + 2 x 45 + 30 bytes).
    let mut joined = Joined::<256>::new();
    let time_at = joined.push(time.as_bytes());
    let flow_at = texts.as_ref().map(|(src, dest, _, community_id)| {
        [src.as_bytes(), dest.as_bytes(), community_id.as_bytes()].map(|b| joined.push(b))
    });
    let all = joined.as_str();
    let text = |at: std::ops::Range<usize>| all.get(at).unwrap_or("");
    let mut e = EventRef::new(EventType::Alert, text(time_at), gateway);
    if let (Some(f), Some((_, _, number, _)), Some([src, dest, community_id])) =
        (flow, texts.as_ref(), flow_at)
    {
        e.flow_id = Some(f.flow_id);
        e.proto = crate::flow::key::proto_name(f.ip_proto).or(number.as_ref().map(Text::as_str));
        e.vlan = Some(crate::flow::key::vlan_slice(&f.vlan)).filter(|v| !v.is_empty());
        e.src_ip = Some(text(src));
        e.dest_ip = Some(text(dest));
        match f.ip_proto {
            ICMP | ICMPV6 => (e.icmp_type, e.icmp_code) = (Some(f.icmp.0), Some(f.icmp.1)),
            TCP | UDP | SCTP => {
                (e.src_port, e.dest_port) = (Some(f.initiator_port), Some(f.responder_port));
            }
            _ => {}
        }
        e.community_id = Some(text(community_id));
        e.app_proto = f.app_proto;
    }
    e.alert = Some(AlertRef {
        kind: a.kind,
        severity: a.severity,
        scenario: a.scenario.as_deref(),
        enterprise: a.enterprise.as_deref(),
        summary: &summary,
        rule: a.kind.rule(),
        recipient: a.recipient.as_deref(),
        service: service.as_ref().map(Text::as_str),
        count: a.count,
        bytes: a.bytes,
        evidence: &a.evidence,
        persons: a.persons,
        followup: a.followup,
        green_channel: a.green_channel,
        days_left: a.days_left,
        valid_from: validity.as_ref().map(|v| v.0.as_str()),
        valid_until: validity.as_ref().map(|v| v.1.as_str()),
        scope: None,
        gateways: &[],
    });
    e.judged = a.judged;
    let out = f(&e);
    // The buffer goes back for the next alert's summary.
    SUMMARY.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            *s = summary;
        }
    });
    out
}

thread_local! {
    /// The summary buffer of this thread's alerts (see [`with_alert_ref`]): taken, written and
    /// put back for each alert, so an alert's summary does not allocate.
    static SUMMARY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// EVE's `flow.state`: for TCP `new` until the handshake completed (or a mid-stream pickup
/// saw traffic), `established`, `closed` once both FINs or a RST were seen (as Suricata's
/// TCP states LAST_ACK, TIME_WAIT and CLOSED); for every other protocol `established` once
/// packets went both ways, else `new`.
pub(crate) fn eve_flow_state(proto: u8, tcp: TcpState, pkts: [u64; 2]) -> &'static str {
    if proto == crate::decode::ip_proto::TCP {
        match tcp {
            TcpState::New => "new",
            TcpState::Established => "established",
            TcpState::ClosedFin | TcpState::ClosedRst => "closed",
        }
    } else if pkts[0] > 0 && pkts[1] > 0 {
        "established"
    } else {
        "new"
    }
}

/// EVE's `flow.age`: whole seconds of the last packet minus whole seconds of the first
/// (EVE truncates each time to the second, then subtracts), so a flow from 09:14:07.9 to
/// 09:14:08.1 is 1 second old and one from 09:14:07.1 to 09:14:07.9 is 0.
pub(crate) fn eve_flow_age(first_micros: i64, last_micros: i64) -> u64 {
    let secs = |t: i64| t.div_euclid(1_000_000);
    u64::try_from(secs(last_micros) - secs(first_micros)).unwrap_or(0)
}

/// Write the events of what the analysis found as owned events (tests and tools): the flow
/// event `flow` (when given) completed with the verdict, then one alert event per alert, in
/// the order the analysis gave them. Leaves `findings.alerts` empty. The worker does the same
/// from the flow entry in `record`.
pub fn write_findings<A: Analysis>(
    analysis: &A,
    gateway: &str,
    community_id_seed: u16,
    flow: Option<Event>,
    findings: &mut Findings,
    out: &mut Vec<Event>,
) {
    if let Some(e) = flow {
        let mut r = EventRef::of(&e);
        if let Some(v) = &findings.verdict {
            verdict_into(analysis, &mut r, v);
        }
        if findings.alerted {
            if let Some(f) = r.flow.as_mut() {
                f.alerted = true;
            }
        }
        out.push(r.to_event());
    }
    let mut cid = None;
    out.extend(
        findings
            .alerts
            .drain(..)
            .map(|a| alert_event(gateway, community_id_seed, &a, &mut cid)),
    );
}

/// The verdict of `v` on `e`, its names borrowed from the analysis' registry.
fn verdict_into<'a, A: Analysis>(analysis: &'a A, e: &mut EventRef<'a>, v: &VerdictFinding) {
    let name = |r: Option<NameRef>| r.and_then(|r| analysis.name_of(r));
    e.direction = Some(v.direction);
    e.export_bytes = v.export_bytes;
    e.verdict = Some(VerdictRef {
        status: v.status,
        scenario: name(v.scenario),
        enterprise: name(v.enterprise),
        name_source: v.name_source,
        ech: v.ech,
        exclude: name(v.exclude),
    });
}

/// The Community ID last computed for an alert's flow tuple (protocol, initiator and port,
/// responder and port; ICMP type and code as ports): a flow's alerts share its record's.
pub(crate) type CidMemo = (crate::l7::community_id::FlowTuple, CommunityId);

/// A worker driven on the capture thread (one worker, one capture thread): each packet is handed to
/// it as soon as it is decoded, its payload still where the reader has it, instead of being
/// copied into a batch and queued to a worker thread. Where a batch would end (every
/// [`BATCH_PACKETS`] packets, a tick, a stalled input) the dispatcher says so, so the worker
/// does what a worker thread does, in the same order, and writes the same events.
pub trait DirectWorker: Send {
    /// One packet of time epoch `epoch` (see [`Batch::epoch`]).
    fn packet(&mut self, epoch: u32, m: PacketRef<'_>, payload: &[u8]);
    /// Where a batch stamped `now` and `epoch` would have ended (a `tick`, or `stalled`).
    fn end_batch(&mut self, now: i64, epoch: u32, tick: bool, stalled: bool);
    /// The input ended: write every remaining flow and the final tick.
    fn finish(self: Box<Self>);
}

/// The [`DirectWorker`] of a [`Worker`] and the writer it hands its events to.
pub struct Inline<A: Analysis> {
    worker: Worker<A>,
    writer: Sender<WriterMsg>,
}

impl<A: Analysis> std::fmt::Debug for Inline<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline")
            .field("index", &self.worker.index)
            .finish_non_exhaustive()
    }
}

impl<A: Analysis> Inline<A> {
    /// Drive `worker` from the capture thread, handing its events to `writer`.
    pub fn new(mut worker: Worker<A>, writer: Sender<WriterMsg>) -> Self {
        worker.writer = Some(writer.clone());
        Inline { worker, writer }
    }
}

impl<A: Analysis> DirectWorker for Inline<A> {
    #[inline]
    fn packet(&mut self, epoch: u32, m: PacketRef<'_>, payload: &[u8]) {
        self.worker.enter_epoch(epoch);
        self.worker.packet(m, payload);
    }

    fn end_batch(&mut self, now: i64, epoch: u32, tick: bool, stalled: bool) {
        self.worker.enter_epoch(epoch);
        self.worker.end_batch(now, tick, stalled);
        // Nothing is ever queued behind: hand over in full messages, or at once when the
        // input stalls.
        self.worker.flush_when(&self.writer, tick, stalled);
    }

    fn finish(self: Box<Self>) {
        let Inline { worker, writer } = *self;
        worker.finish(&writer);
    }
}

#[cfg(test)]
mod tests {
    use super::{eve_flow_age, eve_flow_state};

    /// What the capture thread copies per packet for a worker thread stays small.
    #[test]
    fn packet_records_stay_small() {
        // What the capture thread copies per packet for a worker thread (and that thread reads
        // from another core's cache): 84 and 112 bytes, the fragment key not in it (5 bytes
        // stand for its 44; 124 and 152 bytes with it).
        let (dec, meta) = (
            std::mem::size_of::<crate::decode::Decoded>(),
            std::mem::size_of::<super::PacketMeta>(),
        );
        assert!(dec <= 88, "Decoded grew to {dec} bytes");
        assert!(meta <= 112, "PacketMeta grew to {meta} bytes");
    }

    /// A written record's emptied alert list is the next record's (no allocation for it), and
    /// no more than `SPARE_ALERT_LISTS` are kept.
    #[test]
    fn records_reuse_the_alert_lists_of_written_ones() {
        use super::{Deferred, EndReason, SPARE_ALERT_LISTS};
        let mut d = Deferred::<()>::default();
        d.keep_alert_list(Vec::with_capacity(5));
        d.keep_alert_list(Vec::new()); // nothing to keep
        assert_eq!(d.spare.len(), 1);
        let mut f = crate::flow::Flow::default();
        d.push(&mut f, EndReason::Timeout);
        let alerts = &d.list[0].findings.alerts;
        assert!(
            alerts.is_empty() && alerts.capacity() >= 5,
            "{}",
            alerts.capacity()
        );
        assert!(d.spare.is_empty());
        for _ in 0..SPARE_ALERT_LISTS + 10 {
            d.keep_alert_list(Vec::with_capacity(1));
        }
        assert_eq!(d.spare.len(), SPARE_ALERT_LISTS);
    }

    use crate::decode::ip_proto::{ICMP, SCTP, TCP, UDP};
    use crate::flow::TcpState;

    #[test]
    fn flow_state_as_eve_writes_it() {
        assert_eq!(eve_flow_state(TCP, TcpState::New, [3, 0]), "new");
        // A SYN answered by a SYN-ACK but nothing more is still `new` until the tracker
        // calls it established; the tracker's state decides for TCP, not the counts.
        assert_eq!(eve_flow_state(TCP, TcpState::New, [1, 1]), "new");
        assert_eq!(
            eve_flow_state(TCP, TcpState::Established, [5, 4]),
            "established"
        );
        assert_eq!(eve_flow_state(TCP, TcpState::ClosedFin, [5, 4]), "closed");
        assert_eq!(eve_flow_state(TCP, TcpState::ClosedRst, [1, 1]), "closed");
        for proto in [UDP, ICMP, SCTP, 47] {
            assert_eq!(
                eve_flow_state(proto, TcpState::New, [1, 0]),
                "new",
                "{proto}"
            );
            assert_eq!(
                eve_flow_state(proto, TcpState::New, [0, 1]),
                "new",
                "{proto}"
            );
            assert_eq!(
                eve_flow_state(proto, TcpState::New, [1, 1]),
                "established",
                "{proto}"
            );
        }
    }

    #[test]
    fn flow_age_truncates_each_time_then_subtracts() {
        let s = 1_772_442_847_000_000;
        assert_eq!(eve_flow_age(s + 900_000, s + 1_100_000), 1);
        assert_eq!(eve_flow_age(s + 100_000, s + 900_000), 0);
        assert_eq!(eve_flow_age(s + 999_999, s + 3_000_000), 3);
        assert_eq!(eve_flow_age(s, s), 0);
        // Before 1970 the second is the floor, not the truncation toward zero.
        assert_eq!(eve_flow_age(-1, 0), 1);
        assert_eq!(eve_flow_age(s + 10, s), 0, "never negative");
    }
}
