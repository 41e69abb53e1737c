//! The disk spool between the agent's writer thread and the network task.
//!
//! Batches of events are appended as framed records to segment files in `spool_dir`; the network
//! task reads them back in sequence order and acknowledges each one once the collector has
//! committed it. A segment file is deleted only when every record in it is done (acknowledged,
//! rejected or given up for space), so an agent that crashes or loses the collector for a while
//! resends from disk and loses nothing it had spooled.
//!
//! On-disk layout:
//! - `state`: `version=1`, `stream=<u64>` (random, fixed when the spool is created),
//!   `acked=<u64>` (every sequence up to this one is done) and `reserved=<u64>` (sequences up to
//!   this one may have been handed out; a restart continues above it, so a batch lost from a
//!   torn tail never has its number reused for different events). Replaced atomically.
//! - `<first sequence, 20 digits>.seg`: records, each a 33-byte little-endian header followed by
//!   the payload (newline-terminated JSON events):
//!   `magic u32 | payload length u32 | crc32 u32 | sequence u64 | appended unix ms u64 |
//!   kind u8 | events u32`; the CRC covers everything after it (sequence .. end of payload).
//! - `rejected/`: batches the collector refused as malformed, moved aside with its reply.
//!
//! On open, every segment is scanned; a record that is cut short or fails its CRC ends the
//! segment (a torn tail from a crash): the file is truncated there and the loss is counted.
//! Appends after a restart always go to a fresh segment.
//!
//! When the spool is full, flow records give way before alerts: flow batches are refused once
//! the spool holds [`FLOW_SHARE_PERCENT`] of `spool_max_bytes`, and an alert batch that does not
//! fit first evicts the oldest sealed segments that hold no unacknowledged alert batch. Dropped
//! batches and events are counted per kind.

use crossline_config::agent::FsyncPolicy;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Record magic: `CLS1` little-endian.
const MAGIC: u32 = u32::from_le_bytes(*b"CLS1");
/// Bytes of a record header.
pub const HEADER_LEN: usize = 33;
/// Share of `spool_max_bytes` that flow batches may fill; the rest is kept for alerts.
pub const FLOW_SHARE_PERCENT: u64 = 75;
/// Sequences reserved per durable state write.
const RESERVE_BLOCK: u64 = 1024;
/// Largest payload accepted in one record (a sanity bound for scanning, too).
pub const MAX_PAYLOAD: usize = 256 << 20;

/// Errors of the spool. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file or directory operation failed.
    #[error("spool {path}: {source}")]
    Io {
        /// File or directory the operation was about.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The state file exists but cannot be understood.
    #[error("spool state file {path}: {message}")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A payload larger than [`MAX_PAYLOAD`] was offered.
    #[error("batch of {0} bytes exceeds the spool's record limit")]
    TooLarge(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which events a batch holds; decides what gives way when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchKind {
    /// Flow records (dropped first).
    Flows,
    /// Alerts and stats events.
    Alerts,
}

impl BatchKind {
    fn code(self) -> u8 {
        match self {
            BatchKind::Flows => 0,
            BatchKind::Alerts => 1,
        }
    }

    fn from_code(code: u8) -> Option<BatchKind> {
        match code {
            0 => Some(BatchKind::Flows),
            1 => Some(BatchKind::Alerts),
            _ => None,
        }
    }
}

/// Settings of a spool (from `[uplink]`).
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Directory of the spool (created when missing).
    pub dir: PathBuf,
    /// Upper bound of all segment files together.
    pub max_bytes: u64,
    /// A segment is sealed once it reaches this size.
    pub segment_bytes: u64,
    /// When appends are flushed to stable storage.
    pub fsync: FsyncPolicy,
}

/// A batch read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Batch number within the spool's stream (from 1).
    pub seq: u64,
    /// What the batch holds.
    pub kind: BatchKind,
    /// Number of events (lines) in `payload`.
    pub events: u32,
    /// Wall-clock time of the append, Unix milliseconds.
    pub appended_ms: u64,
    /// Newline-terminated JSON events.
    pub payload: Vec<u8>,
}

/// Counters and gauges of a spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Stream id of the spool.
    pub stream: u64,
    /// Bytes of all segment files.
    pub bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Batches not yet acknowledged.
    pub unacked_batches: u64,
    /// Events in batches not yet acknowledged.
    pub unacked_events: u64,
    /// Append time of the oldest unacknowledged batch (Unix ms), if any.
    pub oldest_unacked_ms: Option<u64>,
    /// Highest sequence up to which everything is done.
    pub acked_seq: u64,
    /// Sequence the next batch will get.
    pub next_seq: u64,
    /// Batches appended since open, and their record bytes.
    pub appended_batches: u64,
    /// Record bytes appended since open.
    pub appended_bytes: u64,
    /// Flow batches and events dropped for lack of space.
    pub dropped_flow_batches: u64,
    /// Flow events dropped for lack of space.
    pub dropped_flows: u64,
    /// Alert batches and events dropped for lack of space.
    pub dropped_alert_batches: u64,
    /// Alert (and stats) events dropped for lack of space.
    pub dropped_alerts: u64,
    /// Torn or corrupt records found (and cut off) when the spool was opened or read.
    pub torn_records: u64,
    /// Bytes cut off with them.
    pub torn_bytes: u64,
    /// Batches moved to `rejected/`.
    pub rejected_batches: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    size: u64,
    unacked_flows: u32,
    unacked_alerts: u32,
}

impl Segment {
    fn unacked(&self) -> u32 {
        self.unacked_flows + self.unacked_alerts
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    segment: u64,
    offset: u64,
    len: u32,
    kind: BatchKind,
    events: u32,
    appended_ms: u64,
}

/// The spool. Not thread-safe by itself; the uplink keeps it behind a mutex shared by the
/// writer thread (appends) and the network task (reads, acknowledgements).
#[derive(Debug)]
pub struct Spool {
    opts: SpoolOptions,
    stream: u64,
    acked: u64,
    reserved: u64,
    next_seq: u64,
    /// Sealed and active segments, oldest first.
    segments: VecDeque<Segment>,
    /// The open segment appends go to (always the last of `segments`).
    active: Option<File>,
    /// Unacknowledged records, in sequence order.
    index: VecDeque<Entry>,
    /// Events in `index`.
    unacked_events: u64,
    last_sync: Instant,
    dirty: bool,
    stats: SpoolStats,
    /// Reused buffer of the record being appended.
    scratch: Vec<u8>,
}

impl Spool {
    /// Open (or create) the spool in `opts.dir`, scanning existing segments.
    pub fn open(opts: SpoolOptions) -> Result<Spool, SpoolError> {
        fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
        let state_path = opts.dir.join("state");
        let (stream, acked, reserved) = match fs::read_to_string(&state_path) {
            Ok(text) => parse_state(&state_path, &text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut stream = rand::random::<u64>() >> 1;
                if stream == 0 {
                    stream = 1;
                }
                (stream, 0, 0)
            }
            Err(e) => return Err(io_err(&state_path)(e)),
        };
        let mut spool = Spool {
            stream,
            acked,
            reserved,
            next_seq: acked + 1,
            segments: VecDeque::new(),
            active: None,
            index: VecDeque::new(),
            unacked_events: 0,
            last_sync: Instant::now(),
            dirty: false,
            stats: SpoolStats::default(),
            scratch: Vec::new(),
            opts,
        };
        spool.scan()?;
        spool.write_state(true)?;
        Ok(spool)
    }

    /// Stream id, fixed when the spool was created (`X-Crossline-Stream`).
    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    /// Directory of the spool.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    fn scan(&mut self) -> Result<(), SpoolError> {
        let dir = self.opts.dir.clone();
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(stem) = name.strip_suffix(".seg") {
                if let Ok(first) = stem.parse::<u64>() {
                    names.push((first, path));
                }
            }
        }
        names.sort();
        let mut max_seq = self.acked;
        for (first, path) in names {
            let mut seg = Segment {
                first_seq: first,
                path: path.clone(),
                size: 0,
                unacked_flows: 0,
                unacked_alerts: 0,
            };
            let data = fs::read(&path).map_err(io_err(&path))?;
            let mut offset = 0usize;
            while offset < data.len() {
                match decode_record(&data[offset..]) {
                    Some((header, total)) => {
                        max_seq = max_seq.max(header.seq);
                        if header.seq > self.acked {
                            match header.kind {
                                BatchKind::Flows => seg.unacked_flows += 1,
                                BatchKind::Alerts => seg.unacked_alerts += 1,
                            }
                            self.unacked_events += u64::from(header.events);
                            self.index.push_back(Entry {
                                seq: header.seq,
                                segment: first,
                                offset: offset as u64,
                                len: header.len,
                                kind: header.kind,
                                events: header.events,
                                appended_ms: header.appended_ms,
                            });
                        }
                        offset += total;
                    }
                    None => {
                        // Torn tail: cut the file where the last good record ends.
                        self.stats.torn_records += 1;
                        self.stats.torn_bytes += (data.len() - offset) as u64;
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err(&path))?;
                        f.set_len(offset as u64).map_err(io_err(&path))?;
                        f.sync_all().map_err(io_err(&path))?;
                        break;
                    }
                }
            }
            seg.size = offset as u64;
            if seg.unacked() == 0 {
                fs::remove_file(&path).map_err(io_err(&path))?;
            } else {
                self.segments.push_back(seg);
            }
        }
        // Segments are named by their first sequence, so this is already in order; keep the
        // index sorted in case a segment was renamed by hand.
        self.index.make_contiguous().sort_by_key(|e| e.seq);
        self.next_seq = max_seq.max(self.reserved) + 1;
        Ok(())
    }

    /// Append one batch. Returns its sequence, or `None` when it was dropped for lack of space
    /// (counted in [`SpoolStats`]). `now_ms` is the wall-clock time in Unix milliseconds.
    pub fn append(
        &mut self,
        kind: BatchKind,
        events: u32,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Option<u64>, SpoolError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        let record_len = (HEADER_LEN + payload.len()) as u64;
        let total = self.total_bytes();
        match kind {
            BatchKind::Flows => {
                let limit =
                    (u128::from(self.opts.max_bytes) * u128::from(FLOW_SHARE_PERCENT) / 100) as u64;
                if total + record_len > limit {
                    self.stats.dropped_flow_batches += 1;
                    self.stats.dropped_flows += u64::from(events);
                    return Ok(None);
                }
            }
            BatchKind::Alerts => {
                if total + record_len > self.opts.max_bytes {
                    self.evict_flow_segments(record_len)?;
                }
                if self.total_bytes() + record_len > self.opts.max_bytes {
                    self.stats.dropped_alert_batches += 1;
                    self.stats.dropped_alerts += u64::from(events);
                    return Ok(None);
                }
            }
        }
        let seq = self.next_seq;
        if seq > self.reserved {
            self.reserved = seq + RESERVE_BLOCK - 1;
            self.write_state(true)?;
        }
        let needs_new = match self.segments.back() {
            Some(seg) if self.active.is_some() => {
                seg.size > 0 && seg.size + record_len > self.opts.segment_bytes
            }
            _ => true,
        };
        if needs_new {
            self.seal_active()?;
            let path = self.opts.dir.join(format!("{seq:020}.seg"));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.active = Some(file);
            self.segments.push_back(Segment {
                first_seq: seq,
                path,
                size: 0,
                unacked_flows: 0,
                unacked_alerts: 0,
            });
        }
        let mut record = std::mem::take(&mut self.scratch);
        record.clear();
        encode_record(&mut record, seq, now_ms, kind, events, payload);
        let (Some(file), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Ok(None);
        };
        let offset = seg.size;
        let written = file.write_all(&record);
        self.scratch = record;
        if let Err(e) = written {
            // Leave no half record behind for the next append.
            let _ = file.set_len(offset);
            return Err(io_err(&seg.path)(e));
        }
        seg.size += record_len;
        match kind {
            BatchKind::Flows => seg.unacked_flows += 1,
            BatchKind::Alerts => seg.unacked_alerts += 1,
        }
        self.unacked_events += u64::from(events);
        self.index.push_back(Entry {
            seq,
            segment: seg.first_seq,
            offset,
            len: payload.len() as u32,
            kind,
            events,
            appended_ms: now_ms,
        });
        self.next_seq += 1;
        self.stats.appended_batches += 1;
        self.stats.appended_bytes += record_len;
        self.dirty = true;
        self.maybe_sync()?;
        Ok(Some(seq))
    }

    fn maybe_sync(&mut self) -> Result<(), SpoolError> {
        let due = match self.opts.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// Flush appended records to stable storage now (whatever the policy).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.dirty {
            if let (Some(file), Some(seg)) = (self.active.as_ref(), self.segments.back()) {
                file.sync_data().map_err(io_err(&seg.path))?;
            }
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Call now and then when the fsync policy is an interval, so that quiet spools get synced.
    pub fn tick(&mut self) -> Result<(), SpoolError> {
        if let FsyncPolicy::Interval(every) = self.opts.fsync {
            if self.dirty && self.last_sync.elapsed() >= every {
                self.sync()?;
            }
        }
        Ok(())
    }

    fn seal_active(&mut self) -> Result<(), SpoolError> {
        if self.active.is_some() && self.opts.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        if self.active.take().is_none() {
            return Ok(());
        }
        // A sealed segment with nothing left to send can go at once.
        if let Some(seg) = self.segments.back() {
            if seg.unacked() == 0 {
                let path = seg.path.clone();
                self.segments.pop_back();
                remove(&path)?;
            }
        }
        Ok(())
    }

    /// Evict the oldest sealed segments that hold flow batches only, until `need` more bytes fit.
    fn evict_flow_segments(&mut self, need: u64) -> Result<(), SpoolError> {
        let active_first = if self.active.is_some() {
            self.segments.back().map(|s| s.first_seq)
        } else {
            None
        };
        let mut i = 0;
        while i < self.segments.len() && self.total_bytes() + need > self.opts.max_bytes {
            let seg = &self.segments[i];
            if Some(seg.first_seq) == active_first || seg.unacked_alerts > 0 {
                i += 1;
                continue;
            }
            let first = seg.first_seq;
            let path = seg.path.clone();
            let mut batches = 0;
            let mut events = 0u64;
            self.index.retain(|e| {
                if e.segment == first {
                    batches += 1;
                    events += u64::from(e.events);
                    false
                } else {
                    true
                }
            });
            self.stats.dropped_flow_batches += batches;
            self.stats.dropped_flows += events;
            self.unacked_events -= events;
            self.segments.remove(i);
            remove(&path)?;
        }
        self.update_acked()
    }

    /// The oldest batch not yet acknowledged, read from disk. A record that can no longer be
    /// read back intact is counted as torn, given up, and the next one is tried.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, SpoolError> {
        while let Some(entry) = self.index.front().copied() {
            match self.read_entry(&entry)? {
                Some(batch) => return Ok(Some(batch)),
                None => {
                    self.stats.torn_records += 1;
                    self.stats.torn_bytes += HEADER_LEN as u64 + u64::from(entry.len);
                    self.done(entry.seq)?;
                }
            }
        }
        Ok(None)
    }

    fn read_entry(&self, entry: &Entry) -> Result<Option<Batch>, SpoolError> {
        let Some(seg) = self.segments.iter().find(|s| s.first_seq == entry.segment) else {
            return Ok(None);
        };
        let mut file = match File::open(&seg.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&seg.path)(e)),
        };
        file.seek(SeekFrom::Start(entry.offset))
            .map_err(io_err(&seg.path))?;
        let mut buf = vec![0u8; HEADER_LEN + entry.len as usize];
        match file.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&seg.path)(e)),
        }
        let Some((header, _)) = decode_record(&buf) else {
            return Ok(None);
        };
        if header.seq != entry.seq {
            return Ok(None);
        }
        buf.drain(..HEADER_LEN);
        Ok(Some(Batch {
            seq: header.seq,
            kind: header.kind,
            events: header.events,
            appended_ms: header.appended_ms,
            payload: buf,
        }))
    }

    /// The collector committed batch `seq` (stored or duplicate): forget it, delete its segment
    /// once nothing in it is pending, and persist the acknowledged sequence.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        self.done(seq)
    }

    /// The collector refused batch `seq` for good: copy it to `rejected/` with the reply, then
    /// treat it as done. Returns the path of the copy.
    pub fn reject(&mut self, batch: &Batch, reply: &str) -> Result<PathBuf, SpoolError> {
        let dir = self.opts.dir.join("rejected");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{:016x}-{:020}.ndjson", self.stream, batch.seq));
        fs::write(&path, &batch.payload).map_err(io_err(&path))?;
        let reply_path = path.with_extension("reply.txt");
        fs::write(&reply_path, reply).map_err(io_err(&reply_path))?;
        self.stats.rejected_batches += 1;
        self.done(batch.seq)?;
        Ok(path)
    }

    fn done(&mut self, seq: u64) -> Result<(), SpoolError> {
        let Some(pos) = self.index.iter().position(|e| e.seq == seq) else {
            return Ok(()); // evicted meanwhile, or a repeated acknowledgement
        };
        let Some(entry) = self.index.remove(pos) else {
            return Ok(());
        };
        self.unacked_events -= u64::from(entry.events);
        let last = self.segments.len().saturating_sub(1);
        if let Some(i) = self
            .segments
            .iter()
            .position(|s| s.first_seq == entry.segment)
        {
            let seg = &mut self.segments[i];
            match entry.kind {
                BatchKind::Flows => seg.unacked_flows = seg.unacked_flows.saturating_sub(1),
                BatchKind::Alerts => seg.unacked_alerts = seg.unacked_alerts.saturating_sub(1),
            }
            if seg.unacked() == 0 {
                let path = seg.path.clone();
                if i == last {
                    // Everything in the open segment is done: close it rather than keep
                    // acknowledged bytes on disk; the next append starts a new one.
                    self.active = None;
                }
                self.segments.remove(i);
                remove(&path)?;
            }
        }
        self.update_acked()
    }

    fn update_acked(&mut self) -> Result<(), SpoolError> {
        let acked = match self.index.front() {
            Some(e) => e.seq - 1,
            None => self.next_seq - 1,
        };
        if acked != self.acked {
            self.acked = acked;
            self.write_state(self.opts.fsync == FsyncPolicy::Always)?;
        }
        Ok(())
    }

    fn write_state(&self, durable: bool) -> Result<(), SpoolError> {
        let path = self.opts.dir.join("state");
        let tmp = self.opts.dir.join("state.tmp");
        let text = format!(
            "version=1\nstream={}\nacked={}\nreserved={}\n",
            self.stream, self.acked, self.reserved
        );
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
            if durable {
                f.sync_data().map_err(io_err(&tmp))?;
            }
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of batches not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.index.len()
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            stream: self.stream,
            bytes: self.total_bytes(),
            segments: self.segments.len() as u64,
            unacked_batches: self.index.len() as u64,
            unacked_events: self.unacked_events,
            oldest_unacked_ms: self.index.front().map(|e| e.appended_ms),
            acked_seq: self.acked,
            next_seq: self.next_seq,
            ..self.stats
        }
    }
}

fn remove(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn parse_state(path: &Path, text: &str) -> Result<(u64, u64, u64), SpoolError> {
    let bad = |message: String| SpoolError::BadState {
        path: path.to_path_buf(),
        message,
    };
    let mut stream = None;
    let mut acked = None;
    let mut reserved = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("expected key=value, got {line:?}")))?;
        let parse = |v: &str| {
            v.parse::<u64>()
                .map_err(|e| bad(format!("{key}={v:?} is not a number: {e}")))
        };
        match key {
            "version" if value == "1" => {}
            "version" => return Err(bad(format!("unsupported version {value:?}"))),
            "stream" => stream = Some(parse(value)?),
            "acked" => acked = Some(parse(value)?),
            "reserved" => reserved = parse(value)?,
            _ => return Err(bad(format!("unknown key {key:?}"))),
        }
    }
    match (stream, acked) {
        (Some(s), Some(a)) if s != 0 => Ok((s, a, reserved)),
        _ => Err(bad("expected stream=<non-zero u64> and acked=<u64>".into())),
    }
}

struct Header {
    len: u32,
    seq: u64,
    appended_ms: u64,
    kind: BatchKind,
    events: u32,
}

fn encode_record(
    out: &mut Vec<u8>,
    seq: u64,
    appended_ms: u64,
    kind: BatchKind,
    events: u32,
    payload: &[u8],
) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.push(kind.code());
    out.extend_from_slice(&events.to_le_bytes());
    out.extend_from_slice(payload);
    let mut crc = flate2::Crc::new();
    crc.update(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.sum().to_le_bytes());
}

/// Decode the record at the start of `data`; `None` if it is cut short or corrupt.
/// Returns the header and the record's total length.
fn decode_record(data: &[u8]) -> Option<(Header, usize)> {
    let (head, rest) = data.split_at_checked(HEADER_LEN)?;
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(head.get(i..i + 4)?.try_into().ok()?))
    };
    let u64_at = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(head.get(i..i + 8)?.try_into().ok()?))
    };
    if u32_at(0)? != MAGIC {
        return None;
    }
    let len = u32_at(4)?;
    if len as usize > MAX_PAYLOAD {
        return None;
    }
    let stored_crc = u32_at(8)?;
    let payload = rest.get(..len as usize)?;
    let mut crc = flate2::Crc::new();
    crc.update(head.get(12..)?);
    crc.update(payload);
    if crc.sum() != stored_crc {
        return None;
    }
    let header = Header {
        len,
        seq: u64_at(12)?,
        appended_ms: u64_at(20)?,
        kind: BatchKind::from_code(*head.get(28)?)?,
        events: u32_at(29)?,
    };
    Some((header, HEADER_LEN + len as usize))
}

/// Wall-clock now in Unix milliseconds.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_every_truncation_is_rejected() {
        let mut rec = Vec::new();
        encode_record(
            &mut rec,
            7,
            1234,
            BatchKind::Alerts,
            2,
            b"{\"a\":1}\n{\"b\":2}\n",
        );
        let (h, total) = decode_record(&rec).expect("decodes");
        assert_eq!(
            (h.seq, h.appended_ms, h.events, total),
            (7, 1234, 2, rec.len())
        );
        assert_eq!(h.kind, BatchKind::Alerts);
        for cut in 0..rec.len() {
            assert!(
                decode_record(&rec[..cut]).is_none(),
                "prefix {cut} accepted"
            );
        }
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x40;
            assert!(decode_record(&bad).is_none(), "flip at {i} accepted");
        }
    }

    #[test]
    fn state_file_errors_are_explained() {
        let p = Path::new("/x/state");
        assert_eq!(
            parse_state(p, "version=1\nstream=5\nacked=9\nreserved=20\n").expect("valid"),
            (5, 9, 20)
        );
        let e = parse_state(p, "stream=abc\nacked=1").expect_err("bad number");
        assert!(e.to_string().contains("stream=\"abc\""), "{e}");
        assert!(parse_state(p, "stream=0\nacked=1").is_err());
    }
}
