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
//! - `rejected/`: events the collector refused as malformed (a `400` naming the line), kept with
//!   its reply.
//!
//! Record kinds: 0 flows, 1 alerts, 2 and 3 the same as part records, whose payload starts with
//! `origin sequence u64 | part u8 | parts u8` (see [`Spool::split`]).
//!
//! On open, every segment is scanned; a record that is cut short or fails its CRC ends the
//! segment (a torn tail from a crash): the file is truncated there and the loss is counted.
//! Appends after a restart always go to a fresh segment.
//!
//! Flow batches and alert batches go to separate segment files, so that flows can always give
//! way: flow batches are refused once the spool holds [`FLOW_SHARE_PERCENT`] of
//! `spool_max_bytes`, and an alert batch that does not fit (in `spool_max_bytes`, or on a disk
//! that answers "no space left") first evicts flow segments, oldest first, the open one included.
//! An alert is refused only when no flow record is left on disk. Every refusal is counted by kind
//! and reason ([`DropReason`]).
//!
//! A batch the collector refuses as too large is split in two ([`Spool::split`]): both halves are
//! written in one `write` as *part records* that name the batch they replace, with new sequence
//! numbers. On open, a batch whose parts are all on disk is dropped (its parts are sent instead);
//! parts without all their siblings (a torn write) are dropped and the batch is kept. Either way
//! every event is sent under exactly one sequence number.
//!
//! Durability: a record is written with one `write` as soon as the batch is sealed, and an alert
//! line is written to `alerts.journal` as soon as the sink gets it, so a killed process
//! (SIGKILL) loses no alert and no sealed batch, whatever `fsync` says. `fsync` decides what a
//! power cut or kernel crash can lose: `always` no sealed batch (alert lines of the batch being
//! filled, at most `batch_interval` of them, are synced when it is sealed), an interval up to
//! that much, `never` whatever the kernel had not written back (typically up to 30 s).
//!
//! `lock` holds an advisory lock (`flock`) for as long as the spool is open, with the holder's
//! pid in it: a second agent on the same spool is refused with a message naming both.

use crossline_config::agent::FsyncPolicy;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Record magic: `CLS1` little-endian.
const MAGIC: u32 = u32::from_le_bytes(*b"CLS1");
/// Bytes of a record header.
pub const HEADER_LEN: usize = 33;
/// Bytes at the start of a part record's payload: origin sequence, part, parts.
const PART_PREFIX: usize = 10;
/// Share of `spool_max_bytes` that flow batches may fill; the rest is kept for alerts.
pub const FLOW_SHARE_PERCENT: u64 = 75;
/// Upper bound of a spool kept in memory (see [`Spool::in_memory`]), whatever
/// `spool_max_bytes` says.
pub const IN_MEMORY_MAX_BYTES: u64 = 64 << 20;
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
    /// Another process holds the spool's lock.
    #[error(
        "spool {dir} is in use by another crossline-agent{holder}: two agents must not share a \
         spool (their batches would overwrite each other's sequence numbers); give each agent \
         its own [uplink] spool_dir",
        holder = pid.map(|p| format!(" (pid {p}, see {}/lock)", dir.display())).unwrap_or_default()
    )]
    Locked {
        /// The spool directory.
        dir: PathBuf,
        /// Pid written in the lock file by its holder, if readable.
        pid: Option<u32>,
    },
}

impl SpoolError {
    /// Whether this is the disk (or quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => is_disk_full(source),
            _ => false,
        }
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
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
    fn index(self) -> usize {
        match self {
            BatchKind::Flows => 0,
            BatchKind::Alerts => 1,
        }
    }

    fn code(self, part: bool) -> u8 {
        self.index() as u8 + if part { 2 } else { 0 }
    }

    /// Kind and whether the record is a part record.
    fn from_code(code: u8) -> Option<(BatchKind, bool)> {
        match code {
            0 => Some((BatchKind::Flows, false)),
            1 => Some((BatchKind::Alerts, false)),
            2 => Some((BatchKind::Flows, true)),
            3 => Some((BatchKind::Alerts, true)),
            _ => None,
        }
    }
}

/// Why events were refused or given up by the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Over `spool_max_bytes` (flows: over their share of it).
    SpoolFull,
    /// The file system answered "no space left" (or "quota exceeded").
    DiskFull,
    /// Flow batches already on disk, removed to make room for alerts.
    Evicted,
}

impl DropReason {
    /// Every reason, in the order of [`Dropped`]'s arrays.
    pub const ALL: [DropReason; 3] = [
        DropReason::SpoolFull,
        DropReason::DiskFull,
        DropReason::Evicted,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::SpoolFull => "spool_full",
            DropReason::DiskFull => "disk_full",
            DropReason::Evicted => "evicted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Events dropped by the spool, by kind (`[flows, alerts]`) and reason ([`DropReason::ALL`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Events, `[kind][reason]`.
    pub events: [[u64; 3]; 2],
    /// Batches, `[kind][reason]`.
    pub batches: [[u64; 3]; 2],
}

impl Dropped {
    /// Events of `kind` dropped for `reason`.
    pub fn events(&self, kind: BatchKind, reason: DropReason) -> u64 {
        self.events[kind.index()][reason.index()]
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
    /// Flow batches dropped for lack of space (any reason).
    pub dropped_flow_batches: u64,
    /// Flow events dropped for lack of space (any reason).
    pub dropped_flows: u64,
    /// Alert batches dropped for lack of space (any reason).
    pub dropped_alert_batches: u64,
    /// Alert (and stats) events dropped for lack of space (any reason).
    pub dropped_alerts: u64,
    /// The same drops by kind and reason.
    pub dropped: Dropped,
    /// Torn or corrupt records found (and cut off) when the spool was opened or read.
    pub torn_records: u64,
    /// Bytes cut off with them.
    pub torn_bytes: u64,
    /// Batches moved to `rejected/` whole.
    pub rejected_batches: u64,
    /// Batches split in two after a `413`.
    pub split_batches: u64,
    /// Alert lines found in the journal after a crash and spooled.
    pub journal_recovered: u64,
    /// 1 when the spool runs in memory (the disk was full at start-up): nothing survives a restart.
    pub in_memory: bool,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    size: u64,
    unacked_flows: u32,
    unacked_alerts: u32,
    /// What its records hold; `None` for a segment of an older agent holding both kinds.
    kind: Option<BatchKind>,
    /// The whole segment, when the spool runs in memory.
    mem: Option<Vec<u8>>,
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

/// One record to write: sequence, events, part header, payload.
struct NewRecord<'a> {
    events: u32,
    part: Option<(u64, u8, u8)>,
    payload: &'a [u8],
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
    /// The open segment appends of each kind go to: (first sequence, file; `None` in memory).
    active: [Option<(u64, Option<File>)>; 2],
    /// Unacknowledged records, in sequence order.
    index: VecDeque<Entry>,
    /// Events in `index`.
    unacked_events: u64,
    last_sync: Instant,
    dirty: bool,
    stats: SpoolStats,
    /// Reused buffer of the records being appended.
    scratch: Vec<u8>,
    /// The lock file, held for the life of the spool (`None` in memory).
    _lock: Option<File>,
    in_memory: bool,
    /// `alerts.journal`, open for appends while it holds lines.
    journal: Option<File>,
    /// Bytes in the journal.
    journal_len: u64,
}

/// Take the spool's lock or say who holds it.
fn lock(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(SpoolError::Locked {
                dir: dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
    }
    // Our pid, for the message a second agent prints. Best effort: on a full disk the lock
    // still holds without it.
    let _ = file.set_len(0).and_then(|()| {
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())
    });
    Ok(file)
}

impl Spool {
    /// Open (or create) the spool in `opts.dir`, scanning existing segments. Fails with
    /// [`SpoolError::Locked`] when another process has it open.
    pub fn open(opts: SpoolOptions) -> Result<Spool, SpoolError> {
        fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
        let lock = lock(&opts.dir)?;
        let state_path = opts.dir.join("state");
        let (stream, acked, reserved) = match fs::read_to_string(&state_path) {
            Ok(text) => parse_state(&state_path, &text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (new_stream(), 0, 0),
            Err(e) => return Err(io_err(&state_path)(e)),
        };
        let mut spool = Spool::empty(opts, stream, acked, reserved, Some(lock));
        spool.scan()?;
        spool.write_state(true)?;
        spool.recover_journal(unix_ms_now())?;
        Ok(spool)
    }

    /// A spool that keeps its segments in memory, for when the disk is full at start-up: a new
    /// stream (the one on disk cannot record what this one hands out), nothing on disk touched,
    /// nothing kept across a restart. The batches already on disk stay there for the next start.
    pub fn in_memory(mut opts: SpoolOptions) -> Spool {
        opts.max_bytes = opts.max_bytes.min(IN_MEMORY_MAX_BYTES);
        let mut s = Spool::empty(opts, new_stream(), 0, u64::MAX, None);
        s.in_memory = true;
        s.stats.in_memory = true;
        s
    }

    fn empty(
        opts: SpoolOptions,
        stream: u64,
        acked: u64,
        reserved: u64,
        lock: Option<File>,
    ) -> Spool {
        Spool {
            stream,
            acked,
            reserved,
            next_seq: acked + 1,
            segments: VecDeque::new(),
            active: [None, None],
            index: VecDeque::new(),
            unacked_events: 0,
            last_sync: Instant::now(),
            dirty: false,
            stats: SpoolStats::default(),
            scratch: Vec::new(),
            _lock: lock,
            in_memory: false,
            journal: None,
            journal_len: 0,
            opts,
        }
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
        // Part records seen: origin -> (parts expected, part sequences, which parts).
        let mut parts: HashMap<u64, (u8, Vec<u64>, u32)> = HashMap::new();
        for (first, path) in names {
            let mut seg = Segment {
                first_seq: first,
                path: path.clone(),
                size: 0,
                unacked_flows: 0,
                unacked_alerts: 0,
                kind: None,
                mem: None,
            };
            let mut kinds = [false; 2];
            let data = fs::read(&path).map_err(io_err(&path))?;
            let mut offset = 0usize;
            while offset < data.len() {
                match decode_record(&data[offset..]) {
                    Some((header, total)) => {
                        max_seq = max_seq.max(header.seq);
                        kinds[header.kind.index()] = true;
                        if let Some((origin, part, n)) = header.part {
                            let e = parts.entry(origin).or_insert((n, Vec::new(), 0));
                            e.1.push(header.seq);
                            e.2 |= 1 << part.min(31);
                        }
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
            seg.kind = match kinds {
                [true, true] => None,
                [false, true] => Some(BatchKind::Alerts),
                _ => Some(BatchKind::Flows),
            };
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
        // A batch split in two: send the parts if both made it to disk, else the batch.
        for (origin, (n, seqs, have)) in parts {
            let complete = n > 0 && u32::from(n) <= 32 && have.count_ones() == u32::from(n);
            if complete {
                self.forget(origin)?;
            } else if self.index.iter().any(|e| e.seq == origin) {
                for s in seqs {
                    self.forget(s)?;
                }
            }
        }
        Ok(())
    }

    fn journal_path(&self) -> PathBuf {
        self.opts.dir.join("alerts.journal")
    }

    /// Write one alert line to `alerts.journal` at once, before it waits in memory for its
    /// batch to fill: a killed process loses no alert it had handed over. The journal is not
    /// synced line by line (that would cap alerts at a few hundred a second on a disk that takes
    /// milliseconds per fsync); it is synced with the segments: when its batch is sealed
    /// (`fsync = "always"`) or at the interval. The batch that carries these lines is appended
    /// with [`Spool::append_journaled`].
    pub fn journal(&mut self, line: &[u8]) -> Result<(), SpoolError> {
        if self.in_memory {
            return Ok(());
        }
        let path = self.journal_path();
        if self.journal.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.journal = Some(f);
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            buf.push(b'\n');
        }
        let n = buf.len() as u64;
        let written = loop {
            let Some(f) = self.journal.as_mut() else {
                break Ok(());
            };
            match f.write_all(&buf) {
                Ok(()) => break Ok(()),
                Err(e) => {
                    let _ = f.set_len(self.journal_len);
                    // A full disk: flows give way to alerts here too.
                    if is_disk_full(&e) && self.evict_oldest_flow_segment()? {
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        self.scratch = buf;
        written.map_err(io_err(&path))?;
        self.journal_len += n;
        // Synced with the next sync of the segments (the seal of its batch, or the interval).
        self.dirty = true;
        Ok(())
    }

    /// Append the alert batch whose lines went through [`Spool::journal`], then empty the
    /// journal (whether the batch was stored or dropped for space, as counted).
    pub fn append_journaled(
        &mut self,
        events: u32,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Option<u64>, SpoolError> {
        let out = self.append(BatchKind::Alerts, events, payload, now_ms);
        if out.is_ok() {
            self.clear_journal()?;
        }
        out
    }

    fn clear_journal(&mut self) -> Result<(), SpoolError> {
        if let Some(f) = self.journal.as_ref() {
            let path = self.journal_path();
            f.set_len(0).map_err(io_err(&path))?;
        }
        self.journal_len = 0;
        Ok(())
    }

    /// After a crash: the lines left in the journal become an alert batch, unless they are
    /// exactly the newest alert batch (the crash came between its append and the truncation).
    fn recover_journal(&mut self, now_ms: u64) -> Result<(), SpoolError> {
        let path = self.journal_path();
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        // Only whole lines: a line cut by the crash was never handed over completely.
        let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let lines = &data[..end];
        if !lines.is_empty() {
            let newest = self
                .index
                .iter()
                .rev()
                .find(|e| e.kind == BatchKind::Alerts)
                .copied();
            let stale = match newest {
                Some(e) => self
                    .read_entry(&e)?
                    .is_some_and(|b| b.payload.as_slice() == lines),
                None => false,
            };
            if !stale {
                let events = lines.iter().filter(|b| **b == b'\n').count() as u32;
                self.append(BatchKind::Alerts, events, lines, now_ms)?;
                self.stats.journal_recovered += u64::from(events);
            }
        }
        if self.opts.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        remove(&path)
    }

    /// Append one batch. Returns its sequence, or `None` when it was dropped for lack of space
    /// (counted in [`SpoolStats`] by kind and reason). `now_ms` is the wall-clock time in Unix
    /// milliseconds. An alert batch is refused only when no flow batch is left to give way.
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
        match kind {
            BatchKind::Flows => {
                let limit =
                    (u128::from(self.opts.max_bytes) * u128::from(FLOW_SHARE_PERCENT) / 100) as u64;
                if self.total_bytes() + record_len > limit {
                    self.count_drop(kind, DropReason::SpoolFull, 1, u64::from(events));
                    return Ok(None);
                }
            }
            BatchKind::Alerts => {
                if self.total_bytes() + record_len > self.opts.max_bytes {
                    self.evict_flow_segments(record_len)?;
                }
                if self.total_bytes() + record_len > self.opts.max_bytes {
                    self.count_drop(kind, DropReason::SpoolFull, 1, u64::from(events));
                    return Ok(None);
                }
            }
        }
        let record = [NewRecord {
            events,
            part: None,
            payload,
        }];
        loop {
            match self.write_records(kind, &record, now_ms) {
                Ok(seqs) => return Ok(seqs.first().copied()),
                Err(e) if e.is_disk_full() => {
                    // The file system is full before the spool is: flows give way to alerts.
                    if kind == BatchKind::Alerts && self.evict_oldest_flow_segment()? {
                        continue;
                    }
                    self.count_drop(kind, DropReason::DiskFull, 1, u64::from(events));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn count_drop(&mut self, kind: BatchKind, reason: DropReason, batches: u64, events: u64) {
        let d = &mut self.stats.dropped;
        d.batches[kind.index()][reason.index()] += batches;
        d.events[kind.index()][reason.index()] += events;
        match kind {
            BatchKind::Flows => {
                self.stats.dropped_flow_batches += batches;
                self.stats.dropped_flows += events;
            }
            BatchKind::Alerts => {
                self.stats.dropped_alert_batches += batches;
                self.stats.dropped_alerts += events;
            }
        }
    }

    /// Write `records` (one `write`) to the open segment of `kind`, with consecutive new
    /// sequences. Leaves no partial record behind on failure.
    fn write_records(
        &mut self,
        kind: BatchKind,
        records: &[NewRecord<'_>],
        now_ms: u64,
    ) -> Result<Vec<u64>, SpoolError> {
        let first_seq = self.next_seq;
        let last_seq = first_seq + records.len() as u64 - 1;
        if last_seq > self.reserved {
            let before = self.reserved;
            self.reserved = last_seq + RESERVE_BLOCK - 1;
            if let Err(e) = self.write_state(true) {
                self.reserved = before;
                return Err(e);
            }
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let mut lens = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let start = buf.len();
            encode_record(
                &mut buf,
                first_seq + i as u64,
                now_ms,
                kind,
                r.events,
                r.part,
                r.payload,
            );
            lens.push(((buf.len() - start) as u64, start as u64));
        }
        let result = self.write_buf(kind, first_seq, &buf);
        self.scratch = buf;
        let (seg_first, offset) = result?;
        let Some(seg) = self.segments.iter_mut().find(|s| s.first_seq == seg_first) else {
            return Ok(Vec::new());
        };
        let mut seqs = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let (len, at) = lens[i];
            let seq = first_seq + i as u64;
            match kind {
                BatchKind::Flows => seg.unacked_flows += 1,
                BatchKind::Alerts => seg.unacked_alerts += 1,
            }
            self.unacked_events += u64::from(r.events);
            self.index.push_back(Entry {
                seq,
                segment: seg_first,
                offset: offset + at,
                len: (len - HEADER_LEN as u64) as u32,
                kind,
                events: r.events,
                appended_ms: now_ms,
            });
            self.stats.appended_batches += 1;
            self.stats.appended_bytes += len;
            seqs.push(seq);
        }
        seg.size += buf_len(&lens);
        self.next_seq = last_seq + 1;
        self.dirty = true;
        self.maybe_sync()?;
        Ok(seqs)
    }

    /// Append `buf` to the open segment of `kind` (opening a new one named `first_seq` when
    /// needed). Returns the segment and the offset written at.
    fn write_buf(
        &mut self,
        kind: BatchKind,
        first_seq: u64,
        buf: &[u8],
    ) -> Result<(u64, u64), SpoolError> {
        let k = kind.index();
        let needs_new = match &self.active[k] {
            Some((first, _)) => self
                .segments
                .iter()
                .find(|s| s.first_seq == *first)
                .is_none_or(|s| s.size > 0 && s.size + buf.len() as u64 > self.opts.segment_bytes),
            None => true,
        };
        if needs_new {
            self.seal_active(kind)?;
            let path = self.opts.dir.join(format!("{first_seq:020}.seg"));
            let file = if self.in_memory {
                None
            } else {
                Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(io_err(&path))?,
                )
            };
            self.active[k] = Some((first_seq, file));
            // Keep `segments` ordered by first sequence (the other kind may have a newer one).
            let at = self
                .segments
                .iter()
                .position(|s| s.first_seq > first_seq)
                .unwrap_or(self.segments.len());
            self.segments.insert(
                at,
                Segment {
                    first_seq,
                    path,
                    size: 0,
                    unacked_flows: 0,
                    unacked_alerts: 0,
                    kind: Some(kind),
                    mem: self.in_memory.then(Vec::new),
                },
            );
        }
        let Some((seg_first, file)) = self.active[k].as_mut() else {
            return Err(SpoolError::TooLarge(buf.len()));
        };
        let seg_first = *seg_first;
        let Some(seg) = self.segments.iter_mut().find(|s| s.first_seq == seg_first) else {
            return Err(SpoolError::TooLarge(buf.len()));
        };
        let offset = seg.size;
        if let Some(mem) = seg.mem.as_mut() {
            mem.extend_from_slice(buf);
            return Ok((seg_first, offset));
        }
        let Some(file) = file.as_mut() else {
            return Err(SpoolError::TooLarge(buf.len()));
        };
        if let Err(e) = file.write_all(buf) {
            // Leave no half record behind for the next append.
            let _ = file.set_len(offset);
            return Err(io_err(&seg.path)(e));
        }
        Ok((seg_first, offset))
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
            if let Some(j) = self.journal.as_ref() {
                j.sync_data().map_err(io_err(&self.journal_path()))?;
            }
            for (first, file) in self.active.iter().flatten() {
                if let Some(f) = file {
                    let path = self.opts.dir.join(format!("{first:020}.seg"));
                    f.sync_data().map_err(io_err(&path))?;
                }
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

    fn seal_active(&mut self, kind: BatchKind) -> Result<(), SpoolError> {
        let k = kind.index();
        if self.active[k].is_some() && self.opts.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        let Some((first, _)) = self.active[k].take() else {
            return Ok(());
        };
        // A sealed segment with nothing left to send can go at once.
        if let Some(i) = self.segments.iter().position(|s| s.first_seq == first) {
            if self.segments[i].unacked() == 0 {
                if let Some(seg) = self.segments.remove(i) {
                    self.remove_segment_file(&seg)?;
                }
            }
        }
        Ok(())
    }

    fn remove_segment_file(&self, seg: &Segment) -> Result<(), SpoolError> {
        if seg.mem.is_some() {
            return Ok(());
        }
        remove(&seg.path)
    }

    /// Remove the segment at `i` and forget its batches, counted as evicted flows.
    fn evict_segment(&mut self, i: usize) -> Result<(), SpoolError> {
        let Some(seg) = self.segments.remove(i) else {
            return Ok(());
        };
        let first = seg.first_seq;
        if self.active[0].as_ref().is_some_and(|(f, _)| *f == first) {
            self.active[0] = None;
        }
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
        self.count_drop(BatchKind::Flows, DropReason::Evicted, batches, events);
        self.unacked_events -= events;
        self.remove_segment_file(&seg)
    }

    fn is_flow_only(seg: &Segment) -> bool {
        seg.unacked_alerts == 0 && seg.kind != Some(BatchKind::Alerts)
    }

    /// Evict the oldest segments that hold flow batches only (the open one too), until `need`
    /// more bytes fit in `spool_max_bytes`.
    fn evict_flow_segments(&mut self, need: u64) -> Result<(), SpoolError> {
        let mut i = 0;
        while i < self.segments.len() && self.total_bytes() + need > self.opts.max_bytes {
            if Self::is_flow_only(&self.segments[i]) {
                self.evict_segment(i)?;
            } else {
                i += 1;
            }
        }
        self.update_acked()
    }

    /// Evict the oldest flow-only segment; `false` when there is none.
    fn evict_oldest_flow_segment(&mut self) -> Result<bool, SpoolError> {
        match self.segments.iter().position(Self::is_flow_only) {
            Some(i) => {
                self.evict_segment(i)?;
                self.update_acked()?;
                Ok(true)
            }
            None => Ok(false),
        }
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
        let total = HEADER_LEN + entry.len as usize;
        let buf = if let Some(mem) = &seg.mem {
            let at = entry.offset as usize;
            match mem.get(at..at + total) {
                Some(b) => b.to_vec(),
                None => return Ok(None),
            }
        } else {
            let mut file = match File::open(&seg.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&seg.path)(e)),
            };
            file.seek(SeekFrom::Start(entry.offset))
                .map_err(io_err(&seg.path))?;
            let mut buf = vec![0u8; total];
            match file.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(io_err(&seg.path)(e)),
            }
            buf
        };
        let Some((header, _)) = decode_record(&buf) else {
            return Ok(None);
        };
        if header.seq != entry.seq {
            return Ok(None);
        }
        let skip = HEADER_LEN
            + if header.part.is_some() {
                PART_PREFIX
            } else {
                0
            };
        Ok(Some(Batch {
            seq: header.seq,
            kind: header.kind,
            events: header.events,
            appended_ms: header.appended_ms,
            payload: buf.get(skip..).map(<[u8]>::to_vec).unwrap_or_default(),
        }))
    }

    /// The collector committed batch `seq` (stored or duplicate): forget it, delete its segment
    /// once nothing in it is pending, and persist the acknowledged sequence.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        self.done(seq)
    }

    /// The collector refused `batch` as too large: replace it by two batches of half its lines
    /// each, with new sequences, written in one `write` before the batch is given up (see the
    /// module doc for why this sends every event exactly once, crash or not). Returns the new
    /// sequences, or `None` for a batch of one event, which cannot be split.
    pub fn split(&mut self, batch: &Batch, now_ms: u64) -> Result<Option<[u64; 2]>, SpoolError> {
        let lines: Vec<&[u8]> = batch
            .payload
            .split_inclusive(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .collect();
        if lines.len() < 2 {
            return Ok(None);
        }
        let mid = lines.len() / 2;
        let first: Vec<u8> = lines[..mid].concat();
        let second: Vec<u8> = lines[mid..].concat();
        let records = [
            NewRecord {
                events: mid as u32,
                part: Some((batch.seq, 0, 2)),
                payload: &first,
            },
            NewRecord {
                events: (lines.len() - mid) as u32,
                part: Some((batch.seq, 1, 2)),
                payload: &second,
            },
        ];
        let seqs = self.write_records(batch.kind, &records, now_ms)?;
        if self.opts.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        self.stats.split_batches += 1;
        self.done(batch.seq)?;
        match seqs.as_slice() {
            [a, b] => Ok(Some([*a, *b])),
            _ => Ok(None),
        }
    }

    /// The collector refused batch `seq` for good: copy it to `rejected/` with the reply, then
    /// treat it as done. Returns the path of the copy.
    pub fn reject(&mut self, batch: &Batch, reply: &str) -> Result<PathBuf, SpoolError> {
        let path = self.set_aside(batch.seq, &batch.payload, reply)?;
        self.stats.rejected_batches += 1;
        self.done(batch.seq)?;
        Ok(path)
    }

    /// Append `events` (newline-terminated lines) of batch `seq` and the collector's `reply` to
    /// `rejected/<stream>-<seq>.ndjson` and `.reply.txt`. Returns the path of the events file.
    pub fn set_aside(&self, seq: u64, events: &[u8], reply: &str) -> Result<PathBuf, SpoolError> {
        let dir = self.opts.dir.join("rejected");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{:016x}-{:020}.ndjson", self.stream, seq));
        let append = |p: &Path, data: &[u8]| -> Result<(), SpoolError> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| f.write_all(data))
                .map_err(io_err(p))
        };
        append(&path, events)?;
        let reply_path = path.with_extension("reply.txt");
        let mut reply = reply.to_string();
        if !reply.ends_with('\n') {
            reply.push('\n');
        }
        append(&reply_path, reply.as_bytes())?;
        Ok(path)
    }

    /// Forget `seq` without touching the acknowledged sequence on disk.
    fn forget(&mut self, seq: u64) -> Result<(), SpoolError> {
        let Some(pos) = self.index.iter().position(|e| e.seq == seq) else {
            return Ok(()); // evicted meanwhile, or a repeated acknowledgement
        };
        let Some(entry) = self.index.remove(pos) else {
            return Ok(());
        };
        self.unacked_events -= u64::from(entry.events);
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
                // Everything in it is done, the open segment too: close it rather than keep
                // acknowledged bytes on disk; the next append starts a new one.
                let first = seg.first_seq;
                for a in &mut self.active {
                    if a.as_ref().is_some_and(|(f, _)| *f == first) {
                        *a = None;
                    }
                }
                if let Some(seg) = self.segments.remove(i) {
                    self.remove_segment_file(&seg)?;
                }
            }
        }
        Ok(())
    }

    fn done(&mut self, seq: u64) -> Result<(), SpoolError> {
        self.forget(seq)?;
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
        if self.in_memory {
            return Ok(());
        }
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

    /// Whether the spool runs in memory (see [`Spool::in_memory`]).
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// Upper bound of all segments together (`spool_max_bytes`, or less in memory).
    pub fn max_bytes(&self) -> u64 {
        self.opts.max_bytes
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

fn buf_len(lens: &[(u64, u64)]) -> u64 {
    lens.iter().map(|(len, _)| len).sum()
}

fn new_stream() -> u64 {
    let stream = rand::random::<u64>() >> 1;
    stream.max(1)
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
    /// Payload length, part prefix included.
    len: u32,
    seq: u64,
    appended_ms: u64,
    kind: BatchKind,
    events: u32,
    /// Origin sequence, part, parts of a part record.
    part: Option<(u64, u8, u8)>,
}

fn encode_record(
    out: &mut Vec<u8>,
    seq: u64,
    appended_ms: u64,
    kind: BatchKind,
    events: u32,
    part: Option<(u64, u8, u8)>,
    payload: &[u8],
) {
    let start = out.len();
    let prefix = if part.is_some() { PART_PREFIX } else { 0 };
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&((payload.len() + prefix) as u32).to_le_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.push(kind.code(part.is_some()));
    out.extend_from_slice(&events.to_le_bytes());
    if let Some((origin, i, n)) = part {
        out.extend_from_slice(&origin.to_le_bytes());
        out.push(i);
        out.push(n);
    }
    out.extend_from_slice(payload);
    let mut crc = flate2::Crc::new();
    crc.update(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.sum().to_le_bytes());
    debug_assert_eq!(out.len() - start, HEADER_LEN + prefix + payload.len());
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
    let (kind, is_part) = BatchKind::from_code(*head.get(28)?)?;
    let part = if is_part {
        let p = payload.get(..PART_PREFIX)?;
        Some((u64::from_le_bytes(p.get(..8)?.try_into().ok()?), p[8], p[9]))
    } else {
        None
    };
    let header = Header {
        len,
        seq: u64_at(12)?,
        appended_ms: u64_at(20)?,
        kind,
        events: u32_at(29)?,
        part,
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
            None,
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
