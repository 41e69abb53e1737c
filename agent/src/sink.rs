//! Event sinks and the single writer thread.
//!
//! Workers send what they found over a bounded channel to one writer thread ([`Writer`]), as
//! [`Outgoing`] items: flow records already written as JSON lines by the worker (when no sink
//! needs them as owned events: [`EventSink::wants_events`]) and owned [`Event`]s (alerts,
//! ticks, and every event when a sink wants them). The writer serialises the owned events, and
//! hands every JSON line to each configured [`EventSink`]: the JSON-lines file/stdout sink
//! ([`JsonLinesSink`]) and any extra sinks (the uplink's spool). It also counts flow events,
//! alerts per kind and verdicts per status into [`LiveStats`], since it sees every event.

use crate::stats::LiveStats;
use crossbeam_channel::{Receiver, Sender};
use crossline_config::event::{Event, EventRef, VerdictStatus};
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
    /// Whether this sink wants flow records as owned [`Event`]s. When every sink of a run says
    /// no, workers write flow records straight into JSON lines (no `Event` of strings per flow).
    fn wants_events(&self) -> bool {
        true
    }
    /// Push buffered data out.
    fn flush(&mut self) -> io::Result<()>;
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

impl EventSink for JsonLinesSink {
    fn write(&mut self, _event: &Event, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    fn write_line(&mut self, line: &[u8], _meta: &LineMeta) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    fn wants_events(&self) -> bool {
        false
    }

    fn flush(&mut self) -> io::Result<()> {
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
    /// An alert already written (bytes `start..end` of [`Outgoing::lines`]), with the event
    /// itself for the writer's alert shaping (a folded follow-up is written anew).
    Alert {
        /// Start of the line in [`Outgoing::lines`].
        start: u32,
        /// End of the line (exclusive; no newline).
        end: u32,
        /// The alert.
        event: Box<Event>,
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

    /// Queue an alert, written into [`Outgoing::lines`] here.
    pub fn push_alert(&mut self, e: Event) {
        match self.write_lines(|lines| EventRef::of(&e).write_json(lines)) {
            Some((start, end)) => self.items.push(Item::Alert {
                start,
                end,
                event: Box::new(e),
            }),
            None => self.push_event(e),
        }
    }

    /// Queue a flow record written by `write` into [`Outgoing::lines`]. A line that does not
    /// fit the 4 GiB a message can address is dropped (messages are handed over long before).
    pub fn push_line(&mut self, meta: LineMeta, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some((start, end)) = self.write_lines(write) {
            self.items.push(Item::Line { start, end, meta });
        }
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
                Item::Event(e) | Item::Alert { event: e, .. } => out.push((**e).clone()),
                Item::Line { start, end, .. } => {
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
    /// With `fold_micros`, alerts are also shaped here, once for all workers, in that order
    /// ([`crate::detect::shaping`]); the classifiers then must not fold.
    pub fn start_ordered(
        sinks: Vec<Box<dyn EventSink>>,
        stats: Arc<LiveStats>,
        capacity: usize,
        workers: usize,
        window_micros: i64,
        fold_micros: Option<i64>,
        domestic: Vec<crossline_config::registry::IpNet>,
    ) -> io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let mut reorder = Reorder::new(workers, window_micros);
        reorder.shaper = fold_micros.map(crate::detect::shaping::Shaper::new);
        reorder.domestic = domestic;
        let (spare_tx, spare) = crossbeam_channel::bounded(SPARE_LINE_BUFFERS);
        let handle = std::thread::Builder::new()
            .name("crossline-writer".into())
            .spawn(move || writer_loop(rx, sinks, &stats, Some(reorder), &spare_tx))?;
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
    /// Boxed: an `Event` is several hundred bytes, and the heap moves its entries on every
    /// push and pop.
    Event(Box<Event>),
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

/// An alert in the writer's shaper, with its line while it is unchanged (a follow-up is
/// written anew).
#[derive(Debug)]
struct Shaped {
    event: Box<Event>,
    line: Option<Bytes>,
}

impl crate::detect::shaping::Foldable for Shaped {
    fn bytes(&self) -> u64 {
        self.event.bytes()
    }

    fn into_followup(self, count: u64, bytes: u64) -> Self {
        Shaped {
            event: Box::new((*self.event).into_followup(count, bytes)),
            line: None,
        }
    }
}

/// The reorder buffer of an ordered writer.
#[derive(Debug)]
struct Reorder {
    watermarks: Vec<(u32, i64)>,
    window: i64,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Held>>,
    /// Events released so far were keyed below this.
    released: (u32, i64, u64, u32),
    /// Alert shaping in release order (offline `analyze`).
    shaper: Option<crate::detect::shaping::Shaper<Shaped>>,
    /// Domestic prefixes (the shaping identity's source side).
    domestic: Vec<crossline_config::registry::IpNet>,
}

impl Reorder {
    fn new(workers: usize, window: i64) -> Self {
        Reorder {
            watermarks: vec![(0, i64::MIN); workers.max(1)],
            window: window.max(0),
            heap: std::collections::BinaryHeap::new(),
            released: (0, i64::MIN, 0, 0),
            shaper: None,
            domestic: Vec::new(),
        }
    }

    /// Events whose key is below every worker's watermark minus the window, in order.
    fn ready(&mut self, all: bool) -> Vec<Held> {
        let low = self
            .watermarks
            .iter()
            .copied()
            .min()
            .unwrap_or((0, i64::MIN));
        let limit = (low.0, low.1.saturating_sub(self.window));
        let mut out = Vec::new();
        while let Some(std::cmp::Reverse(top)) = self.heap.peek() {
            if !all && (top.key.0, top.key.1) >= limit {
                break;
            }
            if let Some(std::cmp::Reverse(h)) = self.heap.pop() {
                self.released = self.released.max(h.key);
                out.push(h);
            }
        }
        out
    }
}

/// Write released events, through the shaper when there is one.
fn release(
    r: &mut Reorder,
    held: Vec<Held>,
    end: bool,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
    spare: &Sender<Vec<u8>>,
) {
    let Some(shaper) = r.shaper.as_mut() else {
        for h in held {
            write_held(sinks, stats, &h, first_error);
            recycle_shared(h.line, spare);
        }
        return;
    };
    // Events the shaper does not hold (flow records, stats: no shaping identity) keep the
    // line they came with; what the shaper releases is serialised here.
    let mut out = Vec::new();
    let mut line = Vec::new();
    for h in held {
        shaper.tick(h.key.1, &mut out);
        let id = match &h.body {
            Body::Event(e) => crate::detect::shaping::identity(e, &r.domestic),
            Body::Line(_) => None,
        };
        match (id, h.body) {
            (Some(id), Body::Event(e)) => {
                let shaped = Shaped {
                    event: e,
                    line: Some(h.line),
                };
                shaper.offer(id, shaped, h.key.1, &mut out);
            }
            (_, body) => {
                write_events(&mut out, &mut line, sinks, stats, first_error);
                let h = Held { body, ..h };
                write_held(sinks, stats, &h, first_error);
                recycle_shared(h.line, spare);
            }
        }
    }
    if end {
        shaper.flush(&mut out);
    }
    write_events(&mut out, &mut line, sinks, stats, first_error);
}

fn write_held(
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    h: &Held,
    first_error: &mut Option<io::Error>,
) {
    match &h.body {
        Body::Event(e) => write_line(sinks, stats, e, h.line.as_slice(), first_error),
        Body::Line(meta) => write_flow_line(sinks, stats, h.line.as_slice(), meta, first_error),
    }
}

/// Write `events` (emptied), in order: with the line they came with, or serialised here.
fn write_events(
    events: &mut Vec<Shaped>,
    line: &mut Vec<u8>,
    sinks: &mut [Box<dyn EventSink>],
    stats: &LiveStats,
    first_error: &mut Option<io::Error>,
) {
    for e in events.drain(..) {
        match &e.line {
            Some(l) => write_line(sinks, stats, &e.event, l.as_slice(), first_error),
            None => {
                line.clear();
                EventRef::of(&e.event).write_json(line);
                write_line(sinks, stats, &e.event, line, first_error);
            }
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
            Item::Alert { start, end, event } => {
                write_line(sinks, stats, event, out.line(*start, *end), first_error);
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
) {
    let Outgoing { lines, items, keys } = out;
    let lines = Arc::new(lines);
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
            Item::Alert { start, end, event } => Held {
                key,
                line: Bytes::Shared(Arc::clone(&lines), start, end),
                body: Body::Event(event),
            },
            Item::Line { start, end, meta } => Held {
                key,
                line: Bytes::Shared(Arc::clone(&lines), start, end),
                body: Body::Line(meta),
            },
        };
        if key < r.released {
            // Behind what was already written (a worker's watermark was wrong): written at
            // once, counted (`stats.drops.reorder_late`).
            stats
                .reorder_late
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            write_held(sinks, stats, &h, first_error);
            continue;
        }
        r.heap.push(std::cmp::Reverse(h));
    }
}

fn writer_loop(
    rx: Receiver<WriterMsg>,
    mut sinks: Vec<Box<dyn EventSink>>,
    stats: &LiveStats,
    mut reorder: Option<Reorder>,
    spare: &Sender<Vec<u8>>,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut first_error: Option<io::Error> = None;
    for msg in rx {
        match msg {
            WriterMsg::Keyed {
                worker,
                epoch,
                watermark,
                out,
            } => match reorder.as_mut() {
                None => write_outgoing(out, &mut line, &mut sinks, stats, &mut first_error, spare),
                Some(r) => {
                    hold_outgoing(r, epoch, out, &mut sinks, stats, &mut first_error);
                    if let Some(w) = r.watermarks.get_mut(worker) {
                        *w = (*w).max((epoch, watermark));
                    }
                    let held = r.ready(false);
                    release(r, held, false, &mut sinks, stats, &mut first_error, spare);
                }
            },
            WriterMsg::Stats(mut event) => {
                if let Some(r) = reorder.as_mut() {
                    let held = r.ready(true);
                    release(r, held, true, &mut sinks, stats, &mut first_error, spare);
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
    }
    if let Some(r) = reorder.as_mut() {
        let held = r.ready(true);
        release(r, held, true, &mut sinks, stats, &mut first_error, spare);
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
