//! Event sinks and the single writer thread.
//!
//! Workers send what they found over a bounded channel to one writer thread ([`Writer`]), as
//! [`Outgoing`] items: flow records already written as JSON lines by the worker (when no sink
//! needs them as owned events: [`EventSink::wants_events`]) and owned [`Event`]s (alerts,
//! ticks, and every event when a sink wants them). The writer serialises the owned events, and
//! hands every JSON line to each configured [`EventSink`]: the JSON-lines file/stdout sink
//! ([`JsonLinesSink`]) and any extra sinks (the uplink's spool). It also counts flow events,
//! alerts per kind and verdicts per status into [`LiveStats`], since it sees every event.

use crate::analysis::findings::AlertFinding;
use crate::stats::LiveStats;
use crossbeam_channel::{Receiver, Sender};
use crossline_config::event::{AlertKind, Event, EventRef, VerdictStatus};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A destination for serialised events.
pub trait EventSink: Send {
    /// Write one event; `line` is its JSON serialisation without the trailing newline.
    fn write(&mut self, event: &Event, line: &[u8]) -> io::Result<()>;
    /// Write one flow record the worker wrote as a JSON line (no [`Event`] was built for it).
    /// By default the line is read back into an event for [`EventSink::write`].
    fn write_line(&mut self, line: &[u8], _meta: &LineMeta) -> io::Result<()> {
        self.write(&read_line(line)?, line)
    }
    /// Write one alert its worker wrote as a JSON line (no [`Event`] was built for it). By
    /// default the line is read back into an event for [`EventSink::write`].
    fn write_alert_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write(&read_line(line)?, line)
    }
    /// Whether this sink wants flow records as owned [`Event`]s. When every sink of a run says
    /// no, workers write flow records straight into JSON lines (no `Event` of strings per flow).
    fn wants_events(&self) -> bool {
        true
    }
    /// Push buffered data out.
    fn flush(&mut self) -> io::Result<()>;
    /// The writer has nothing more to write for now: a sink that buffers for its readers (a
    /// file someone follows) writes out what it holds. Others keep their own pace.
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called once after the last event.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// A JSON line read back into an event (a sink that wants events, given a written line).
pub fn read_line(line: &[u8]) -> io::Result<Event> {
    let text = std::str::from_utf8(line).map_err(io::Error::other)?;
    let (event, _) = Event::from_json(text).map_err(io::Error::other)?;
    Ok(event)
}

/// JSON lines through a `BufWriter`, to a file or stdout.
pub struct JsonLinesSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

impl JsonLinesSink {
    /// Write to any `Write`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonLinesSink {
            out: BufWriter::with_capacity(256 << 10, out),
        }
    }

    /// Write to standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    /// Create (truncate) `path` and write to it.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(Box::new(File::create(path)?)))
    }
}

impl JsonLinesSink {
    /// `line` and its newline: what every kind of event comes to here.
    fn put(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }
}

impl EventSink for JsonLinesSink {
    fn write(&mut self, _event: &Event, line: &[u8]) -> io::Result<()> {
        self.put(line)
    }

    fn write_line(&mut self, line: &[u8], _meta: &LineMeta) -> io::Result<()> {
        self.put(line)
    }

    fn write_alert_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.put(line)
    }

    fn wants_events(&self) -> bool {
        false
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Keeps every event in memory (tests, in-process callers).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    /// The events received, shared so the caller can read them after the run.
    pub events: Arc<std::sync::Mutex<Vec<Event>>>,
}

impl EventSink for MemorySink {
    fn write(&mut self, event: &Event, _line: &[u8]) -> io::Result<()> {
        self.events
            .lock()
            .map_err(|_| io::Error::other("memory sink poisoned"))?
            .push(event.clone());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the writer needs to know of a flow record written as a JSON line: what
/// [`LiveStats::count_written`] counts of a flow event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineMeta {
    /// The record's verdict status.
    pub status: Option<VerdictStatus>,
    /// The `[[exclude]]` entry that matched (rare: excluded flows only).
    pub exclude: Option<Box<str>>,
}

/// One event a worker hands over.
#[derive(Debug)]
pub enum Item {
    /// An owned event (serialised by the writer).
    Event(Box<Event>),
    /// An alert written by its worker (no [`Event`] built): bytes `start..end` of
    /// [`Outgoing::lines`], with its finding (what the writer counts, shapes it by and writes
    /// a folded follow-up from). An empty range: the worker left the line to the writer
    /// ([`Outgoing::queue_alert_finding`]). Boxed: rarer than flow records, and every item
    /// takes the size of the largest.
    AlertLine {
        /// Start of the line in [`Outgoing::lines`].
        start: u32,
        /// End of the line (exclusive; no newline).
        end: u32,
        /// The alert.
        finding: Box<AlertFinding>,
    },
    /// A flow record already written: bytes `start..end` of [`Outgoing::lines`].
    Line {
        /// Start of the line in [`Outgoing::lines`].
        start: u32,
        /// End of the line (exclusive; no newline).
        end: u32,
        /// What the writer counts of it.
        meta: LineMeta,
    },
}

/// The events of a worker since its last hand-over, in order, with their order keys (capture
/// time, flow id, position).
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The JSON lines of the [`Item::Line`]s, back to back.
    pub lines: Vec<u8>,
    /// The events.
    pub items: Vec<Item>,
    /// One key per item: (time epoch, capture time, flow id, position).
    pub keys: Vec<(u32, i64, u64, u32)>,
}

impl Outgoing {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No events.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queue an owned event (its key is pushed separately).
    pub fn push_event(&mut self, e: Event) {
        self.items.push(Item::Event(Box::new(e)));
    }

    /// Write an alert's line with `write` into [`Outgoing::lines`] and return where it lies
    /// (queue it with [`Outgoing::queue_alert_line`]); nothing when it lies beyond what a `u32`
    /// addresses.
    pub fn write_alert_line(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Option<(u32, u32)> {
        self.write_lines(write)
    }

    /// Queue the line of `finding` written at `range` by [`Outgoing::write_alert_line`].
    pub fn queue_alert_line(&mut self, range: (u32, u32), finding: Box<AlertFinding>) {
        let (start, end) = range;
        self.items.push(Item::AlertLine {
            start,
            end,
            finding,
        });
    }

    /// Queue an alert whose line the writer writes if its shaper lets it out (an empty line
    /// range; see [`crate::worker::WorkerContext::alert_lines_at_writer`]).
    pub fn queue_alert_finding(&mut self, finding: Box<AlertFinding>) {
        let at = u32::try_from(self.lines.len()).unwrap_or(u32::MAX);
        self.items.push(Item::AlertLine {
            start: at,
            end: at,
            finding,
        });
    }

    /// Queue a flow record written by `write` into [`Outgoing::lines`]. A line that does not
    /// fit the 4 GiB a message can address is dropped (messages are handed over long before).
    pub fn push_line(&mut self, meta: LineMeta, write: impl FnOnce(&mut Vec<u8>)) {
        let Some((start, end)) = self.write_lines(write) else {
            return;
        };
        // Made after the list has grown (`extend` reserves before it asks `once_with` for the
        // item), so the compiler writes it straight into its place: built before `push`, whose
        // growing is a call, it was put together on the stack from narrow stores and copied
        // into the list in wider loads right after them, which the processor cannot forward
        // from its store buffer (a stall per flow record, bench/README.md).
        self.items
            .extend(std::iter::once_with(|| Item::Line { start, end, meta }));
    }

    /// Append with `write` to [`Outgoing::lines`] and return the range written, or nothing
    /// (and the bytes taken back) when it lies beyond what a `u32` addresses.
    fn write_lines(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Option<(u32, u32)> {
        let start = self.lines.len();
        write(&mut self.lines);
        match (u32::try_from(start), u32::try_from(self.lines.len())) {
            (Ok(start), Ok(end)) => Some((start, end)),
            _ => {
                self.lines.truncate(start);
                None
            }
        }
    }

    /// The bytes of a line item.
    pub fn line(&self, start: u32, end: u32) -> &[u8] {
        self.lines
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// Every event as an owned [`Event`] (lines read back): tests and tools.
    pub fn into_events(self) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.items.len());
        for item in &self.items {
            match item {
                Item::Event(e) => out.push((**e).clone()),
                Item::Line { start, end, .. } | Item::AlertLine { start, end, .. } => {
                    out.extend(read_line(self.line(*start, *end)).ok());
                }
            }
        }
        out
    }
}

/// Messages to the writer thread.
#[derive(Debug)]
pub enum WriterMsg {
    /// Events of a shard worker with their order keys, and the worker's watermark: the time
    /// epoch and packet time up to which it has written out idle flows. An ordered writer
    /// ([`Writer::start_ordered`]) holds events until every worker's watermark has passed their
    /// key by the reorder window; a plain writer writes them as they come.
    Keyed {
        /// Index of the worker.
        worker: usize,
        /// Time epoch of the events and the watermark (see `pipeline::Batch::epoch`).
        epoch: u32,
        /// Packet time up to which the worker expired its flows.
        watermark: i64,
        /// The watermark is exact: the worker writes nothing keyed below it from here on (the
        /// end-of-capture drain writes in key order), so the reorder window does not apply.
        exact: bool,
        /// The events.
        out: Outgoing,
    },
    /// Flush every sink now (live: periodically).
    Flush,
    /// A `stats` event (the final one, or a periodic one live): the writer fills in the
    /// counters when it gets to it (so they include every event written before) and writes it.
    Stats(Box<Event>),
}

/// The writer thread: owns the sinks.
#[derive(Debug)]
pub struct Writer {
    tx: Sender<WriterMsg>,
    handle: JoinHandle<io::Result<()>>,
    spare: Receiver<Vec<u8>>,
}

/// Line buffers the writer has emptied, on their way back to the workers (bounded: what does
/// not fit is freed).
const SPARE_LINE_BUFFERS: usize = 64;

/// How much nicer the ordered writer runs with `workers` when `capture.writer_nice` is `nice`:
/// not at all with one worker, whose writer shares its core with the capture thread (nicer, it
/// only falls behind and the two trade places more often: 1.04 of the time, and the messages
/// waiting for it held 28 MiB more at the peak).
fn writer_nice(nice: u8, workers: usize) -> Option<i32> {
    (nice > 0 && workers > 1).then_some(i32::from(nice))
}

/// Make the calling thread `by` nicer (Linux keeps a nice value per thread), at most 19;
/// best effort: speed, never output, depends on it.
fn lower_priority(by: i32) {
    let me = rustix::thread::gettid();
    if let Ok(now) = rustix::process::getpriority_process(Some(me)) {
        let _ = rustix::process::setpriority_process(Some(me), (now + by).min(19));
    }
}

impl Writer {
    /// Start the writer thread with `sinks`; the channel holds `capacity` batches.
    pub fn start(
        sinks: Vec<Box<dyn EventSink>>,
        stats: Arc<LiveStats>,
        capacity: usize,
    ) -> io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let (spare_tx, spare) = crossbeam_channel::bounded(SPARE_LINE_BUFFERS);
        let handle = std::thread::Builder::new()
            .name("crossline-writer".into())
            .spawn(move || writer_loop(rx, sinks, &stats, None, &spare_tx))?;
        Ok(Writer { tx, handle, spare })
    }

    /// Start a writer that writes events in a deterministic order: by (capture time, flow id,
    /// serialised line), whatever the number of `workers` and the timing of their threads.
    /// Events are held in a reorder buffer until every worker's watermark is `window_micros`
    /// past them (the longest idle timeout plus a margin: a flow record is written at most that
    /// long after its last packet), and all of them before a `stats` event.
    /// With `shaping`, alerts are also shaped here, once for all workers, in that order
    /// ([`crate::detect::shaping`]); the classifiers then must not fold.
    ///
    /// `nice` (`capture.writer_nice`, 0 to keep it): how much nicer than the rest of the
    /// process the writer's thread runs with more than one worker. With as many workers as
    /// cores on a machine that runs nothing else the writer is the one thread beyond one per
    /// core (the capture thread runs a worker too), and a writer that takes its turn on the
    /// capture thread's core while a worker thread waits on the other slows the whole run
    /// (full benchmark capture, two workers on two cores, nice 10: 0.93 of the time, medians
    /// of 8 and 10 alternating pairs). On a busy machine a nicer writer only gets a smaller
    /// share, and its bounded queue then holds the workers back: hence off by default. With
    /// one worker it is not applied: there the writer only trades places with the capture
    /// thread (nice 10: 1.04 of the time).
    #[allow(clippy::too_many_arguments)] // the writer's parts, each its own setting
    pub fn start_ordered(
        sinks: Vec<Box<dyn EventSink>>,
        stats: Arc<LiveStats>,
        capacity: usize,
        workers: usize,
        window_micros: i64,
        shaping: Option<Shaping>,
        nice: u8,
    ) -> io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let mut reorder = Reorder::new(workers, window_micros);
        reorder.shaper = shaping.map(|s| (crate::detect::shaping::Shaper::new(s.fold_micros), s));
        let (spare_tx, spare) = crossbeam_channel::bounded(SPARE_LINE_BUFFERS);
        let handle = std::thread::Builder::new()
            .name("crossline-writer".into())
            .spawn(move || {
                if let Some(by) = writer_nice(nice, workers) {
                    lower_priority(by);
                }
                writer_loop(rx, sinks, &stats, Some(reorder), &spare_tx)
            })?;
        Ok(Writer { tx, handle, spare })
    }

    /// A sender for workers.
    pub fn sender(&self) -> Sender<WriterMsg> {
        self.tx.clone()
    }

    /// Emptied line buffers for workers to fill again ([`Outgoing::lines`]): a buffer of a few
    /// hundred kilobytes per message, allocated once instead of grown and faulted in anew.
    pub fn spare_lines(&self) -> Receiver<Vec<u8>> {
        self.spare.clone()
    }

    /// Close the channel (after every other sender is dropped), wait for the thread and
    /// return the first I/O error it met.
    pub fn finish(self) -> io::Result<()> {
        drop(self.tx);
        self.handle
            .join()
            .map_err(|_| io::Error::other("writer thread panicked"))?
    }
}

/// The bytes of a held event's line: its own (an owned event serialised here) or a range of
/// the lines of the worker's message it came in (shared by that message's lines: no copy).
#[derive(Debug)]
enum Bytes {
    Own(Vec<u8>),
    Shared(Arc<Vec<u8>>, u32, u32),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Own(v) => v,
            Bytes::Shared(buf, start, end) => {
                buf.get(*start as usize..*end as usize).unwrap_or_default()
            }
        }
    }
}

/// What a held line is.
#[derive(Debug)]
enum Body {
    /// Boxed: an `Event` is several hundred bytes, and every held event takes a slot of the
    /// size of the largest (a run's head also moves with the run in the runs' heap).
    Event(Box<Event>),
    /// An alert written by its worker.
    AlertLine(Box<AlertFinding>),
    /// A flow record written by its worker.
    Line(LineMeta),
}

/// One held event: its key, its line and what it is.
#[derive(Debug)]
struct Held {
    key: (u32, i64, u64, u32),
    line: Bytes,
    body: Body,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.line.as_slice() == other.line.as_slice()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.key, self.line.as_slice()).cmp(&(other.key, other.line.as_slice()))
    }
}

/// An alert in the writer's shaper.
#[derive(Debug)]
enum Shaped {
    /// An owned event, with its line while it is unchanged (a follow-up is written anew).
    Event {
        event: Box<Event>,
        line: Option<Bytes>,
    },
    /// An alert its worker wrote as a line, with its finding: a follow-up is written anew
    /// from the finding (no line read back).
    Finding {
        finding: Box<AlertFinding>,
        line: Option<Bytes>,
    },
}

impl crate::detect::shaping::Foldable for Shaped {
    fn bytes(&self) -> u64 {
        match self {
            Shaped::Event { event, .. } => event.bytes(),
            Shaped::Finding { finding, .. } => finding.bytes,
        }
    }

    fn into_followup(self, count: u64, bytes: u64) -> Self {
        match self {
            Shaped::Event { event, .. } => Shaped::Event {
                event: Box::new((*event).into_followup(count, bytes)),
                line: None,
            },
            Shaped::Finding { finding, .. } => Shaped::Finding {
                finding: Box::new((*finding).into_followup(count, bytes)),
                line: None,
            },
        }
    }
}

/// Alert shaping at an ordered writer (offline `analyze`): the fold interval, the domestic
/// prefixes (the shaping identity's source side), and what a follow-up of an alert its worker
/// wrote as a line is written with.
#[derive(Debug, Clone)]
pub struct Shaping {
    /// Repeats of one identity within this much packet time are folded.
    pub fold_micros: i64,
    /// Domestic prefixes.
    pub domestic: Vec<crossline_config::registry::IpNet>,
    /// The gateway id events carry.
    pub gateway: String,
    /// The Community ID seed.
    pub community_id_seed: u16,
}

/// The reorder buffer of an ordered writer.
#[derive(Debug)]
struct Reorder {
    /// Per worker, the (epoch, time) below which its events are ready: its watermark less
    /// `window`, or the watermark itself when exact.
    watermarks: Vec<(u32, i64)>,
    window: i64,
    /// The held events.
    runs: Runs,
    /// Alert shaping in release order (offline `analyze`), and how.
    shaper: Option<(crate::detect::shaping::Shaper<Shaped>, Shaping)>,
    /// What the shaper let out, to write (emptied after each release; kept for its capacity).
    shaped: Vec<Shaped>,
    /// A follow-up alert's line (kept for its capacity).
    line: Vec<u8>,
    /// The Community ID of the last alert line written here: the alerts of one flow come
    /// together.
    cid: Option<crate::worker::CidMemo>,
    /// The shaping identity of the alert being released (kept for its capacity).
    key: String,
}

impl Reorder {
    fn new(workers: usize, window: i64) -> Self {
        Reorder {
            watermarks: vec![(0, i64::MIN); workers.max(1)],
            window: window.max(0),
            runs: Runs::default(),
            shaper: None,
            shaped: Vec::new(),
            line: Vec::new(),
            cid: None,
            key: String::new(),
        }
    }

    /// The (epoch, time) every held event keyed below is ready: the lowest of every worker's
    /// watermark less the window (exact watermarks: the watermark itself).
    fn limit(&self) -> (u32, i64) {
        self.watermarks
            .iter()
            .copied()
            .min()
            .unwrap_or((0, i64::MIN))
    }
}

/// Held events as sorted runs: each worker's message is cut into its maximal non-decreasing
/// runs (in [`Held`]'s order), and the runs wait in a heap keyed by their first event. A
/// message already in order is one run, and releasing it costs one comparison per event with
/// the next run's head instead of a heap push and pop per event.
#[derive(Debug)]
struct Runs {
    /// The runs, smallest head first.
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Run>>,
    /// The events of the held messages behind the runs' heads, one slot per message.
    stores: Vec<Store>,
    /// Slots of `stores` no run refers to.
    free: Vec<usize>,
    /// Emptied event buffers, for the next messages.
    spare: Vec<Vec<Option<Held>>>,
    /// Events released so far were keyed below this.
    released: (u32, i64, u64, u32),
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            heap: std::collections::BinaryHeap::new(),
            stores: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
            released: (0, i64::MIN, 0, 0),
        }
    }
}

/// The events of one message, in its order, taken out as their runs are released.
#[derive(Debug, Default)]
struct Store {
    items: Vec<Option<Held>>,
    /// Runs not yet fully released.
    runs: usize,
}

/// A run: its first event not yet released, and the rest (`next..end` of its store).
#[derive(Debug)]
struct Run {
    head: Held,
    store: usize,
    next: usize,
    end: usize,
}

impl PartialEq for Run {
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head
    }
}
impl Eq for Run {}
impl PartialOrd for Run {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Run {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head.cmp(&other.head)
    }
}

impl Runs {
    /// An empty buffer for a message's events ([`Runs::add`]).
    fn buffer(&mut self) -> Vec<Option<Held>> {
        self.spare.pop().unwrap_or_default()
    }

    /// Hold the events of one message (`Some` each, in the message's order): cut into runs.
    fn add(&mut self, mut items: Vec<Option<Held>>) {
        if items.is_empty() {
            self.spare.push(items);
            return;
        }
        let store = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.stores.push(Store::default());
                self.stores.len() - 1
            }
        };
        let mut start = 0;
        let mut runs = 0;
        for i in 1..=items.len() {
            let cut = match (items.get(i - 1), items.get(i)) {
                (Some(Some(a)), Some(Some(b))) => b < a,
                _ => true,
            };
            if !cut {
                continue;
            }
            // Only `items[start]` is taken here; the comparisons above read later slots.
            if let Some(head) = items.get_mut(start).and_then(Option::take) {
                self.heap.push(std::cmp::Reverse(Run {
                    head,
                    store,
                    next: start + 1,
                    end: i,
                }));
                runs += 1;
            }
            start = i;
        }
        if let Some(s) = self.stores.get_mut(store) {
            s.items = items;
            s.runs = runs;
        }
        if runs == 0 {
            self.close(store);
        }
    }

    /// One run of `store` is fully released: free the store after its last.
    fn close(&mut self, store: usize) {
        let Some(s) = self.stores.get_mut(store) else {
            return;
        };
        s.runs = s.runs.saturating_sub(1);
        if s.runs == 0 {
            let mut items = std::mem::take(&mut s.items);
            items.clear();
            self.spare.push(items);
            self.free.push(store);
        }
    }

    /// Hand every held event keyed (epoch, time) below `limit` (all of them without a limit)
    /// to `emit`, smallest first.
    fn release(&mut self, limit: Option<(u32, i64)>, mut emit: impl FnMut(Held)) {
        let below = |h: &Held| limit.is_none_or(|l| (h.key.0, h.key.1) < l);
        while let Some(std::cmp::Reverse(top)) = self.heap.peek() {
            if !below(&top.head) {
                break;
            }
            let Some(std::cmp::Reverse(mut run)) = self.heap.pop() else {
                break;
            };
            // `run.head` is the smallest held event, below the limit: emit it and go on with
            // the run while its next event still is.
            loop {
                let next = if run.next < run.end {
                    self.stores
                        .get_mut(run.store)
                        .and_then(|s| s.items.get_mut(run.next))
                        .and_then(Option::take)
                } else {
                    None
                };
                run.next += 1;
                let Some(next) = next else {
                    self.released = self.released.max(run.head.key);
                    emit(run.head);
                    self.close(run.store);
                    break;
                };
                let h = std::mem::replace(&mut run.head, next);
                self.released = self.released.max(h.key);
                emit(h);
                let smallest = self
                    .heap
                    .peek()
                    .is_none_or(|std::cmp::Reverse(other)| run.head <= other.head);
                if !smallest || !below(&run.head) {
                    self.heap.push(std::cmp::Reverse(run));
                    break;
                }
            }
        }
    }
}

/// Write the held events that are ready (all of them at the `end` of a run or before a
/// `stats` event), through the shaper when there is one.
fn release(
    r: &mut Reorder,
    end: bool,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
    spare: &Sender<Vec<u8>>,
) {
    let limit = if end { None } else { Some(r.limit()) };
    let Reorder {
        runs,
        shaper,
        shaped: out,
        line,
        cid,
        key,
        ..
    } = r;
    let Some((shaper, how)) = shaper.as_mut() else {
        runs.release(limit, |h| {
            write_held(sinks, stats, &h, first_error);
            recycle_shared(h.line, spare);
        });
        return;
    };
    // Events the shaper does not hold (flow records, stats: no shaping identity) keep the
    // line they came with; what the shaper releases is serialised here.
    runs.release(limit, |h| {
        shaper.tick(h.key.1, out);
        let id = match &h.body {
            Body::Event(e) => crate::detect::shaping::identity(e, &how.domestic).map(|id| {
                *key = id;
                &**key
            }),
            Body::AlertLine(a) => {
                crate::detect::shaping::identity_of_into(a, &how.domestic, key).then_some(&**key)
            }
            Body::Line(_) => None,
        };
        match (id, h.body) {
            (Some(id), Body::Event(e)) => {
                let shaped = Shaped::Event {
                    event: e,
                    line: Some(h.line),
                };
                shaper.offer(id, shaped, h.key.1, out);
            }
            (Some(id), Body::AlertLine(finding)) => {
                // No line: the worker left it to be written here once the shaper lets the
                // alert out.
                let line = (!h.line.as_slice().is_empty()).then_some(h.line);
                let shaped = Shaped::Finding { finding, line };
                shaper.offer(id, shaped, h.key.1, out);
            }
            (_, body) => {
                write_events(out, how, line, cid, sinks, stats, first_error);
                let h = Held { body, ..h };
                write_held(sinks, stats, &h, first_error);
                recycle_shared(h.line, spare);
            }
        }
    });
    if end {
        shaper.flush(out);
    }
    write_events(out, how, line, cid, sinks, stats, first_error);
}

fn write_held(
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    h: &Held,
    first_error: &mut Option<io::Error>,
) {
    match &h.body {
        Body::Event(e) => write_line(sinks, stats, e, h.line.as_slice(), first_error),
        Body::AlertLine(a) => {
            write_alert_line(sinks, stats, a.kind, h.line.as_slice(), first_error)
        }
        Body::Line(meta) => write_flow_line(sinks, stats, h.line.as_slice(), meta, first_error),
    }
}

/// Write `events` (emptied), in order: with the line they came with, or serialised here
/// (a follow-up, or an alert whose worker left its line to the writer) as `how` says.
fn write_events(
    events: &mut Vec<Shaped>,
    how: &Shaping,
    line: &mut Vec<u8>,
    cid: &mut Option<crate::worker::CidMemo>,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
) {
    for e in events.drain(..) {
        match &e {
            Shaped::Event {
                event,
                line: Some(l),
            } => write_line(sinks, stats, event, l.as_slice(), first_error),
            Shaped::Event { event, line: None } => {
                line.clear();
                EventRef::of(event).write_json(line);
                write_line(sinks, stats, event, line, first_error);
            }
            Shaped::Finding {
                finding,
                line: Some(l),
            } => write_alert_line(sinks, stats, finding.kind, l.as_slice(), first_error),
            Shaped::Finding {
                finding,
                line: None,
            } => write_finding(finding, how, line, cid, sinks, stats, first_error),
        }
    }
}

/// Write the line of alert `finding` here (into `line`), as its worker would have: a follow-up,
/// or an alert whose worker left its line to the writer.
fn write_finding(
    finding: &AlertFinding,
    how: &Shaping,
    line: &mut Vec<u8>,
    cid: &mut Option<crate::worker::CidMemo>,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
) {
    line.clear();
    let (gateway, seed) = (&how.gateway, how.community_id_seed);
    crate::worker::write_alert_json(gateway, seed, finding, cid, line);
    write_alert_line(sinks, stats, finding.kind, line, first_error);
}

fn write_alert_line(
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    kind: AlertKind,
    line: &[u8],
    first_error: &mut Option<io::Error>,
) {
    stats.count_alert(kind);
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.write_alert_line(line) {
            first_error.get_or_insert(e);
        }
    }
}

fn write_line(
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    event: &Event,
    line: &[u8],
    first_error: &mut Option<io::Error>,
) {
    stats.count_written(event);
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.write(event, line) {
            first_error.get_or_insert(e);
        }
    }
}

fn write_flow_line(
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    line: &[u8],
    meta: &LineMeta,
    first_error: &mut Option<io::Error>,
) {
    stats.count_flow_line(meta.status, meta.exclude.as_deref());
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.write_line(line, meta) {
            first_error.get_or_insert(e);
        }
    }
}

/// Give an emptied line buffer back to the workers.
fn recycle(mut lines: Vec<u8>, spare: &Sender<Vec<u8>>) {
    if lines.capacity() > 0 {
        lines.clear();
        let _ = spare.try_send(lines);
    }
}

/// Give back the buffer behind `bytes` once nothing else refers to it.
fn recycle_shared(bytes: Bytes, spare: &Sender<Vec<u8>>) {
    if let Bytes::Shared(buf, _, _) = bytes {
        if let Ok(lines) = Arc::try_unwrap(buf) {
            recycle(lines, spare);
        }
    }
}

/// Write the events of a worker's message as they come (a plain writer).
fn write_outgoing(
    out: Outgoing,
    line: &mut Vec<u8>,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
    spare: &Sender<Vec<u8>>,
) {
    for item in &out.items {
        match item {
            Item::Event(e) => {
                line.clear();
                EventRef::of(e).write_json(line);
                write_line(sinks, stats, e, line, first_error);
            }
            Item::AlertLine {
                start,
                end,
                finding,
            } => {
                let line = out.line(*start, *end);
                write_alert_line(sinks, stats, finding.kind, line, first_error);
            }
            Item::Line { start, end, meta } => {
                write_flow_line(sinks, stats, out.line(*start, *end), meta, first_error);
            }
        }
    }
    recycle(out.lines, spare);
}

/// Hold the events of a worker's message in the reorder buffer (what is behind what was
/// already written is written at once and counted).
fn hold_outgoing(
    r: &mut Reorder,
    epoch: u32,
    out: Outgoing,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
    spare: &Sender<Vec<u8>>,
) {
    let Outgoing { lines, items, keys } = out;
    let lines = Arc::new(lines);
    let mut held = r.runs.buffer();
    held.reserve(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let key = keys
            .get(i)
            .copied()
            .unwrap_or((epoch, i64::MAX, u64::MAX, u32::MAX));
        let h = match item {
            Item::Event(e) => {
                let mut l = Vec::new();
                EventRef::of(&e).write_json(&mut l);
                Held {
                    key,
                    line: Bytes::Own(l),
                    body: Body::Event(e),
                }
            }
            Item::AlertLine {
                start,
                end,
                finding,
            } => Held {
                key,
                line: Bytes::Shared(Arc::clone(&lines), start, end),
                body: Body::AlertLine(finding),
            },
            Item::Line { start, end, meta } => Held {
                key,
                line: Bytes::Shared(Arc::clone(&lines), start, end),
                body: Body::Line(meta),
            },
        };
        if key < r.runs.released {
            // Behind what was already written (a worker's watermark was wrong): written at
            // once, counted (`stats.drops.reorder_late`).
            stats
                .reorder_late
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match (&h.body, &r.shaper) {
                // An alert whose worker left its line to the writer (only when it shapes).
                (Body::AlertLine(a), Some((_, how))) if h.line.as_slice().is_empty() => {
                    write_finding(a, how, &mut r.line, &mut r.cid, sinks, stats, first_error);
                }
                _ => write_held(sinks, stats, &h, first_error),
            }
            continue;
        }
        held.push(Some(h));
    }
    r.runs.add(held);
    // No held line refers to the buffer (only owned events, or every line was late).
    recycle_shared(Bytes::Shared(lines, 0, 0), spare);
}

fn writer_loop(
    rx: Receiver<WriterMsg>,
    mut sinks: Vec<Box<dyn EventSink>>,
    stats: &LiveStats,
    mut reorder: Option<Reorder>,
    spare: &Sender<Vec<u8>>,
) -> io::Result<()> {
    let _cpu = crate::threads::register("writer");
    let mut line = Vec::with_capacity(4096);
    let mut first_error: Option<io::Error> = None;
    let mut written = false;
    while let Ok(msg) = rx.recv() {
        written |= !matches!(msg, WriterMsg::Flush);
        match msg {
            WriterMsg::Keyed {
                worker,
                epoch,
                watermark,
                exact,
                out,
            } => match reorder.as_mut() {
                None => write_outgoing(out, &mut line, &mut sinks, stats, &mut first_error, spare),
                Some(r) => {
                    hold_outgoing(r, epoch, out, &mut sinks, stats, &mut first_error, spare);
                    let ready = if exact {
                        watermark
                    } else {
                        watermark.saturating_sub(r.window)
                    };
                    if let Some(w) = r.watermarks.get_mut(worker) {
                        *w = (*w).max((epoch, ready));
                    }
                    release(r, false, &mut sinks, stats, &mut first_error, spare);
                }
            },
            WriterMsg::Stats(mut event) => {
                if let Some(r) = reorder.as_mut() {
                    release(r, true, &mut sinks, stats, &mut first_error, spare);
                }
                event.stats = Some(stats.snapshot());
                line.clear();
                EventRef::of(&event).write_json(&mut line);
                for sink in sinks.iter_mut() {
                    if let Err(e) = sink.write(&event, &line) {
                        first_error.get_or_insert(e);
                    }
                }
            }
            WriterMsg::Flush => {
                for sink in sinks.iter_mut() {
                    if let Err(e) = sink.flush() {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        // Nothing waiting behind this message (the writer is the only receiver, so nothing
        // was before it either): once it is written, so is everything so far (`tail -f` of the
        // output, `analyze` of a pipe that pauses).
        if written && rx.is_empty() {
            written = false;
            for sink in sinks.iter_mut() {
                if let Err(e) = sink.idle() {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if let Some(r) = reorder.as_mut() {
        release(r, true, &mut sinks, stats, &mut first_error, spare);
    }
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.finish() {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    type Key = (u32, i64, u64, u32);

    /// Keeps every line it is handed, in order.
    #[derive(Debug, Clone, Default)]
    struct Lines(Arc<Mutex<Vec<Vec<u8>>>>);

    impl EventSink for Lines {
        fn write(&mut self, _event: &Event, line: &[u8]) -> io::Result<()> {
            self.0.lock().expect("lines").push(line.to_vec());
            Ok(())
        }

        fn write_line(&mut self, line: &[u8], _meta: &LineMeta) -> io::Result<()> {
            self.0.lock().expect("lines").push(line.to_vec());
            Ok(())
        }

        fn write_alert_line(&mut self, line: &[u8]) -> io::Result<()> {
            self.0.lock().expect("lines").push(line.to_vec());
            Ok(())
        }

        fn wants_events(&self) -> bool {
            false
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// One worker's message: its events (key, line) and then its watermark.
    #[derive(Debug, Clone)]
    struct Msg {
        worker: usize,
        epoch: u32,
        watermark: i64,
        /// The watermark is exact (no window).
        exact: bool,
        events: Vec<(Key, Vec<u8>)>,
    }

    fn outgoing(events: &[(Key, Vec<u8>)]) -> Outgoing {
        let mut out = Outgoing::default();
        for (key, line) in events {
            out.push_line(LineMeta::default(), |buf| buf.extend_from_slice(line));
            out.keys.push(*key);
        }
        out
    }

    /// What the ordered writer writes for `msgs`, and its `reorder_late` count.
    fn through_writer(workers: usize, window: i64, msgs: &[Msg]) -> (Vec<Vec<u8>>, u64) {
        let lines = Lines::default();
        let stats = Arc::new(LiveStats::new());
        let writer = Writer::start_ordered(
            vec![Box::new(lines.clone())],
            Arc::clone(&stats),
            4,
            workers,
            window,
            None,
            0,
        )
        .expect("writer");
        let tx = writer.sender();
        for m in msgs {
            tx.send(WriterMsg::Keyed {
                worker: m.worker,
                epoch: m.epoch,
                watermark: m.watermark,
                exact: m.exact,
                out: outgoing(&m.events),
            })
            .expect("send");
        }
        drop(tx);
        writer.finish().expect("finish");
        let got = std::mem::take(&mut *lines.0.lock().expect("lines"));
        (
            got,
            stats
                .reorder_late
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The same by a plain sort of everything held at each message: the reorder buffer's
    /// contract, written the obvious way.
    fn by_sorting(workers: usize, window: i64, msgs: &[Msg]) -> (Vec<Vec<u8>>, u64) {
        let mut marks = vec![(0u32, i64::MIN); workers.max(1)];
        let mut held: Vec<(Key, Vec<u8>)> = Vec::new();
        let mut released: Key = (0, i64::MIN, 0, 0);
        let mut out = Vec::new();
        let mut late = 0;
        for m in msgs {
            for (key, line) in &m.events {
                if *key < released {
                    late += 1;
                    out.push(line.clone());
                } else {
                    held.push((*key, line.clone()));
                }
            }
            let ready = if m.exact {
                m.watermark
            } else {
                m.watermark.saturating_sub(window)
            };
            if let Some(w) = marks.get_mut(m.worker) {
                *w = (*w).max((m.epoch, ready));
            }
            let limit = marks.iter().copied().min().expect("a worker");
            held.sort();
            let n = held.iter().take_while(|(k, _)| (k.0, k.1) < limit).count();
            for (key, line) in held.drain(..n) {
                released = released.max(key);
                out.push(line);
            }
        }
        held.sort();
        out.extend(held.into_iter().map(|(_, line)| line));
        (out, late)
    }

    /// Messages of `workers` workers: each a few sorted stretches (runs of every length) of
    /// keys from a small range (equal keys, equal times with other flows), lines from a small
    /// set (equal keys with different lines, and equal ones); watermarks that move on, and
    /// sometimes past events still to come (late events).
    fn msgs() -> impl Strategy<Value = (usize, i64, Vec<Msg>)> {
        let key = (0u32..2, 0i64..40, 0u64..4, 0u32..3);
        let event = (key, proptest::collection::vec(b'a'..b'd', 0..3));
        let stretch = proptest::collection::vec(event, 0..12).prop_map(|mut v| {
            v.sort();
            v
        });
        let msg = (
            0usize..3,
            0u32..2,
            0i64..50,
            proptest::bool::weighted(0.2),
            proptest::collection::vec(stretch, 0..4),
        );
        (1usize..4, 0i64..10, proptest::collection::vec(msg, 0..30)).prop_map(
            |(workers, window, raw)| {
                let msgs = raw
                    .into_iter()
                    .map(|(worker, epoch, watermark, exact, stretches)| Msg {
                        worker: worker % workers,
                        epoch,
                        watermark,
                        exact,
                        events: stretches.into_iter().flatten().collect(),
                    })
                    .collect();
                (workers, window, msgs)
            },
        )
    }

    proptest! {
        /// The merge of sorted runs writes what sorting everything held writes, late events
        /// included, whatever the keys, lines, workers and watermarks.
        #[test]
        fn merge_of_runs_writes_what_a_sort_writes((workers, window, msgs) in msgs()) {
            let (got, late) = through_writer(workers, window, &msgs);
            let (want, want_late) = by_sorting(workers, window, &msgs);
            prop_assert_eq!(late, want_late);
            prop_assert_eq!(got, want);
        }
    }

    /// The nice values of this process's threads named `crossline-writer` (Linux keeps one per
    /// thread: field 19 of `/proc/self/task/TID/stat`, counted after the name's parenthesis).
    fn writer_nices() -> Vec<i64> {
        let mut out = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let stat = task.map(|t| t.path().join("stat")).expect("task");
            let Ok(text) = std::fs::read_to_string(&stat) else {
                continue; // the thread ended meanwhile
            };
            let Some((head, rest)) = text.rsplit_once(')') else {
                continue;
            };
            if !head.ends_with("(crossline-write") && !head.ends_with("(crossline-writer") {
                continue;
            }
            // Fields after the name start at the state (field 3): nice is field 19.
            if let Some(nice) = rest.split_whitespace().nth(19 - 3) {
                out.push(nice.parse().expect("nice"));
            }
        }
        out
    }

    /// With one worker, or `capture.writer_nice` 0, the writer keeps the process's priority.
    #[test]
    fn the_writer_is_nicer_only_with_several_workers() {
        assert_eq!(writer_nice(10, 1), None);
        assert_eq!(writer_nice(0, 2), None);
        assert_eq!(writer_nice(10, 2), Some(10));
        assert_eq!(writer_nice(19, 8), Some(19));
    }

    /// `capture.writer_nice` makes the ordered writer's thread that much nicer than the
    /// process, and only that thread.
    #[test]
    fn a_nice_writer_runs_nicer_than_the_process() {
        let own = rustix::process::getpriority_process(None).expect("own nice");
        let want = i64::from((own + 7).min(19));
        let stats = Arc::new(LiveStats::new());
        let writer = Writer::start_ordered(vec![], stats, 4, 2, 0, None, 7).expect("writer");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !writer_nices().contains(&want) {
            assert!(
                std::time::Instant::now() < deadline,
                "no writer thread at nice {want} (own {own}): {:?}",
                writer_nices()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            i64::from(rustix::process::getpriority_process(None).expect("own nice")),
            i64::from(own),
            "the process (this thread) keeps its nice value"
        );
        writer.finish().expect("finish");
    }

    /// Alerts whose worker left their lines to the writer come out as the lines their workers
    /// would have written: the first of each identity, the follow-up of its folded repeats, and
    /// one behind what was already written (at once, counted), among flow records; what the
    /// shaper folds is never written.
    #[test]
    fn alerts_left_to_the_writer_are_written_as_their_workers_would() {
        use crate::analysis::findings::{AlertFacts, FlowDesc, FlowRef, ServiceRef};
        use crossline_config::event::{AlertKind, Severity};
        let alert = |micros: i64, flow_id: u64, host: u8| {
            let (domestic, foreign) = (
                std::net::IpAddr::from([10, 0, host, 1]),
                std::net::IpAddr::from([203, 0, 113, 9]),
            );
            let service = ServiceRef {
                ip_proto: 6,
                port: 443,
            };
            AlertFinding {
                kind: AlertKind::UnfiledExport,
                severity: Severity::High,
                green_channel: false,
                scenario: None,
                enterprise: None,
                micros,
                flow: Some(FlowRef {
                    flow_id,
                    ip_proto: 6,
                    initiator: domestic,
                    initiator_port: 40000 + u16::from(host),
                    responder: foreign,
                    responder_port: 443,
                    vlan: [0; 3],
                    icmp: (0, 0),
                    app_proto: Some("tls"),
                }),
                recipient: Some(foreign.to_string().into()),
                service: Some(service),
                bytes: 1000,
                count: 1,
                followup: false,
                evidence: Vec::new(),
                persons: None,
                days_left: None,
                validity: None,
                facts: AlertFacts::Unfiled {
                    flow: FlowDesc {
                        import: false,
                        domestic,
                        foreign,
                        recipient: foreign.to_string().into(),
                        recipient_is_name: false,
                        service,
                        bytes: 1000,
                    },
                },
                judged: None,
            }
        };
        // By message: its watermark and its events (time, flow id, the alert's source host or
        // a flow record); the third message's first alert is behind what the second released.
        type Events = Vec<(i64, u64, Option<u8>)>;
        let msgs: [(i64, Events); 3] = [
            (
                5_000_000,
                vec![
                    (1_000_000, 1, Some(1)),
                    (1_000_000, 1, None),
                    (2_000_000, 2, Some(1)),
                ],
            ),
            (
                200_000_000,
                vec![(3_000_000, 3, Some(2)), (100_000_000, 4, Some(1))],
            ),
            (
                300_000_000,
                vec![(50_000_000, 5, Some(3)), (250_000_000, 6, Some(1))],
            ),
        ];
        let run = |left_to_writer: bool| {
            let lines = Lines::default();
            let stats = Arc::new(LiveStats::new());
            let shaping = Shaping {
                fold_micros: 60_000_000,
                domestic: vec![crossline_config::registry::IpNet::new(
                    "10.0.0.0".parse().expect("ip"),
                    8,
                )
                .expect("net")],
                gateway: "gw".into(),
                community_id_seed: 0,
            };
            let writer = Writer::start_ordered(
                vec![Box::new(lines.clone())],
                Arc::clone(&stats),
                4,
                1,
                0,
                Some(shaping),
                0,
            )
            .expect("writer");
            let tx = writer.sender();
            for (watermark, events) in &msgs {
                let mut out = Outgoing::default();
                for (position, &(micros, flow_id, host)) in events.iter().enumerate() {
                    match host {
                        Some(host) => {
                            let a = alert(micros, flow_id, host);
                            if left_to_writer {
                                out.queue_alert_finding(Box::new(a));
                            } else {
                                let range = out
                                    .write_alert_line(|buf| {
                                        crate::worker::write_alert_json("gw", 0, &a, &mut None, buf)
                                    })
                                    .expect("range");
                                out.queue_alert_line(range, Box::new(a));
                            }
                        }
                        None => out.push_line(LineMeta::default(), |buf| {
                            buf.extend_from_slice(b"{\"event_type\":\"flow\"}")
                        }),
                    }
                    out.keys.push((0, micros, flow_id, position as u32));
                }
                tx.send(WriterMsg::Keyed {
                    worker: 0,
                    epoch: 0,
                    watermark: *watermark,
                    exact: false,
                    out,
                })
                .expect("send");
            }
            drop(tx);
            writer.finish().expect("finish");
            let got = std::mem::take(&mut *lines.0.lock().expect("lines"));
            let late = stats
                .reorder_late
                .load(std::sync::atomic::Ordering::Relaxed);
            (got, late)
        };
        let (left, late) = run(true);
        assert_eq!((left.clone(), late), run(false));
        assert_eq!(late, 1);
        let text: Vec<String> = left
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        // Source 10.0.1.0/24's alerts at 1 s and 2 s: the first written, the second folded
        // into a follow-up (written when its interval ends); the same source again at 100 s
        // and 250 s (new intervals); 10.0.2.0/24 once; 10.0.3.0/24 once, late.
        let flows: Vec<(bool, bool)> = text
            .iter()
            .map(|l| {
                (
                    l.contains("\"flow_id\":2,"),
                    l.contains("repeated 1 more time"),
                )
            })
            .collect();
        assert_eq!(text.len(), 7, "{text:#?}");
        assert_eq!(
            flows.iter().filter(|f| f.0).collect::<Vec<_>>(),
            [&(true, true)],
            "flow 2's alert only as the follow-up: {text:#?}"
        );
    }

    /// An event behind what was already written is written at once and counted; the events
    /// held meanwhile follow in order.
    #[test]
    fn late_events_are_written_at_once_and_counted() {
        let ev = |t: i64, line: &[u8]| ((0u32, t, 0u64, 0u32), line.to_vec());
        let msgs = [
            Msg {
                worker: 0,
                epoch: 0,
                watermark: 10,
                exact: false,
                events: vec![ev(2, b"b"), ev(5, b"c"), ev(1, b"a")],
            },
            Msg {
                worker: 0,
                epoch: 0,
                watermark: 11,
                exact: false,
                events: vec![ev(12, b"e"), ev(3, b"late"), ev(11, b"d")],
            },
        ];
        let (got, late) = through_writer(1, 0, &msgs);
        assert_eq!(late, 1);
        let want: Vec<Vec<u8>> = ["a", "b", "c", "late", "d", "e"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        assert_eq!(got, want);
        assert_eq!(by_sorting(1, 0, &msgs), (want, 1));
    }

    fn held(key: Key, line: &[u8]) -> Held {
        Held {
            key,
            line: Bytes::Own(line.to_vec()),
            body: Body::Line(LineMeta::default()),
        }
    }

    fn release_all(runs: &mut Runs, limit: Option<(u32, i64)>) -> Vec<(Key, Vec<u8>)> {
        let mut out = Vec::new();
        runs.release(limit, |h| out.push((h.key, h.line.as_slice().to_vec())));
        out
    }

    /// A message in order is one run; one out of order is cut where its order breaks, and
    /// equal keys are ordered by their lines.
    #[test]
    fn messages_are_cut_into_their_sorted_runs() {
        let mut runs = Runs::default();
        let mut buf = runs.buffer();
        buf.extend((0..100).map(|t| Some(held((0, t, 0, 0), b"x"))));
        runs.add(buf);
        assert_eq!(runs.heap.len(), 1, "a sorted message is one run");
        let mut buf = runs.buffer();
        for (t, line) in [(5, b"b"), (5, b"a"), (6, b"a"), (3, b"z"), (4, b"a")] {
            buf.push(Some(held((0, t, 0, 0), line)));
        }
        runs.add(buf);
        assert_eq!(runs.heap.len(), 4, "cut at 5b>5a and 6a>3z");
        let out = release_all(&mut runs, Some((0, 5)));
        assert_eq!(
            out.len(),
            7,
            "times 0..5: 0..=4 of the first, 3 and 4 of the second"
        );
        assert!(out.windows(2).all(|w| w[0] <= w[1]), "in order: {out:?}");
        assert_eq!(runs.released, (0, 4, 0, 0));
        let out = release_all(&mut runs, None);
        let want: Vec<(Key, Vec<u8>)> = vec![
            ((0, 5, 0, 0), b"a".to_vec()),
            ((0, 5, 0, 0), b"b".to_vec()),
            ((0, 5, 0, 0), b"x".to_vec()),
        ];
        assert_eq!(out.get(..3), Some(&want[..]));
        assert_eq!(out.len(), 95 + 3);
        assert!(out.windows(2).all(|w| w[0] <= w[1]), "in order: {out:?}");
        assert!(runs.heap.is_empty());
        assert_eq!(runs.free.len(), runs.stores.len(), "every store freed");
        assert_eq!(
            runs.spare.len(),
            2,
            "both buffers back for the next messages"
        );
        let mut buf = runs.buffer();
        assert!(buf.capacity() >= 5, "a buffer is used again");
        buf.push(Some(held((1, 0, 0, 0), b"")));
        runs.add(buf);
        assert_eq!(runs.stores.len(), 2, "a freed store is used again");
    }

    /// Held events move through the runs' heap only at a run's head: the entries stay small
    /// enough that an empty slot costs nothing more than an event.
    #[test]
    fn an_empty_slot_is_no_bigger_than_an_event() {
        assert_eq!(
            std::mem::size_of::<Option<Held>>(),
            std::mem::size_of::<Held>()
        );
    }
}
