//! Event sinks and the single writer thread.
//!
//! Workers send batches of finished [`Event`]s over a bounded channel to one writer thread
//! ([`Writer`]). The writer serialises each event once and hands the JSON line to every
//! configured [`EventSink`]: the JSON-lines file/stdout sink ([`JsonLinesSink`]) and any extra
//! sinks (the uplink's spool). It also counts flow events, alerts per kind and verdicts per
//! status into [`LiveStats`], since it sees every event.

use crate::stats::LiveStats;
use crossbeam_channel::{Receiver, Sender};
use crossline_config::event::Event;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A destination for serialised events.
pub trait EventSink: Send {
    /// Write one event; `line` is its JSON serialisation without the trailing newline.
    fn write(&mut self, event: &Event, line: &[u8]) -> io::Result<()>;
    /// Push buffered data out.
    fn flush(&mut self) -> io::Result<()>;
    /// Called once after the last event.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
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

/// Messages to the writer thread.
#[derive(Debug)]
pub enum WriterMsg {
    /// Events to write, in order.
    Events(Vec<Event>),
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
}

impl Writer {
    /// Start the writer thread with `sinks`; the channel holds `capacity` batches.
    pub fn start(
        sinks: Vec<Box<dyn EventSink>>,
        stats: Arc<LiveStats>,
        capacity: usize,
    ) -> io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let handle = std::thread::Builder::new()
            .name("crossline-writer".into())
            .spawn(move || writer_loop(rx, sinks, &stats))?;
        Ok(Writer { tx, handle })
    }

    /// A sender for workers.
    pub fn sender(&self) -> Sender<WriterMsg> {
        self.tx.clone()
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

fn writer_loop(
    rx: Receiver<WriterMsg>,
    mut sinks: Vec<Box<dyn EventSink>>,
    stats: &LiveStats,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut first_error: Option<io::Error> = None;
    for msg in rx {
        match msg {
            WriterMsg::Events(events) => {
                for event in &events {
                    stats.count_written(event);
                    line.clear();
                    if let Err(e) = serde_json::to_writer(&mut line, event) {
                        first_error.get_or_insert(io::Error::other(e));
                        continue;
                    }
                    for sink in sinks.iter_mut() {
                        if let Err(e) = sink.write(event, &line) {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            WriterMsg::Stats(mut event) => {
                event.stats = Some(stats.snapshot());
                line.clear();
                match serde_json::to_writer(&mut line, &event) {
                    Ok(()) => {
                        for sink in sinks.iter_mut() {
                            if let Err(e) = sink.write(&event, &line) {
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(io::Error::other(e));
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
