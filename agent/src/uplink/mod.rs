//! Uplink: stream events to the collector, at least once, through a disk spool.
//!
//! The writer thread hands every serialised event to an [`UplinkSink`]. The sink first checks
//! that the collector will accept it ([`validate`]: an event it would refuse is dropped alone,
//! counted, never costing its batch), then groups events into batches (at most `batch_events`
//! events, `batch_bytes` — never more than [`MAX_BATCH_BODY`] — or `batch_interval` old; flow
//! records and alerts in separate batches so that flows can give way when the disk is full) and
//! appends each batch to the [`spool::Spool`]. Alert lines are written to the spool's journal
//! at once, before they wait for their batch. It never waits for the network: capture is never
//! blocked by a slow or absent collector, only by the local disk.
//!
//! A network task on its own thread and tokio runtime ([`client`]) reads batches back in
//! sequence order and POSTs them over mutual TLS, one in flight at a time, with exponential
//! backoff and full jitter between failures. The collector deduplicates by
//! (gateway, stream, sequence), so a batch resent after a crash or a lost reply is stored once.
//! With several collectors (replicas on one database), batches go to one at a time and a failed
//! one is left for the next ([`failover`]), the batch in flight keeping its stream and sequence.
//!
//! # What a SIGKILL can lose
//!
//! Every record and journal line is written with `write(2)` before the sink returns, so it is in
//! the kernel's page cache and survives the death of the process whatever `fsync` says:
//! - alerts and stats events handed to the sink: nothing, with every `fsync` setting;
//! - flow records: those of the batch still being filled (at most `batch_events` records or
//!   `batch_interval` of them), with every `fsync` setting;
//! - events not yet handed to the sink (inside the workers or the writer queue) were never
//!   emitted, in the JSON-lines output or the spool.
//!
//! `fsync` only matters when the machine itself stops (power cut, kernel crash): `always` loses
//! no sealed batch (the alert lines of the batch still being filled, at most `batch_interval`
//! of them, are synced when it is sealed: syncing each line would cap alerts at a few hundred a
//! second), an interval up to that interval of records and journal lines, `never` what the
//! kernel had not written back yet (by default up to about 30 s).

pub mod client;
pub mod endpoint;
pub mod failover;
pub mod spool;

pub mod validate;

use crossline_config::agent::UplinkConfig;
use crossline_config::event::EventType;
pub use crossline_config::limits::MAX_BATCH_BODY;
use spool::{BatchKind, Spool, SpoolError, SpoolOptions, SpoolStats};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default size at which a batch is sealed (`uplink.batch_bytes`), whatever `batch_events`
/// says; a batch is never larger than [`MAX_BATCH_BODY`].
pub const MAX_BATCH_BYTES: usize = crossline_config::load::DEFAULT_BATCH_BYTES;

/// Errors of the uplink, at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// The spool could not be opened or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// `[uplink] collector` is not an `https://host:port` URL.
    #[error("uplink collector URL {url:?}: {message}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A certificate, key or CA file could not be used.
    #[error("uplink TLS {path}: {message}")]
    Tls {
        /// The PEM file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The network thread could not be started.
    #[error("uplink: cannot start the network thread: {0}")]
    Thread(std::io::Error),
    /// [`Uplink::finish`] ran out of time; the batches stay in the spool for the next run.
    #[error(
        "uplink: {events} events ({batches} batches) not acknowledged by the collector after \
         {waited:?}{refused}{last}; they stay in the spool at {dir} and are sent by the next run",
        refused = if *refusals > 0 {
            format!("; the collector refused {refusals} attempts")
        } else {
            String::new()
        },
        last = last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    Unacknowledged {
        /// Batches still pending.
        batches: u64,
        /// Events in them.
        events: u64,
        /// How long `finish` waited.
        waited: Duration,
        /// The spool directory.
        dir: PathBuf,
        /// The last network error, if any.
        last_error: Option<String>,
        /// Attempts the collector refused (403 and other 4xx kept for a retry).
        refusals: u64,
    },
    /// The collector refused batches or events for good (a 413 that cannot be split, a 400
    /// naming a line): they were set aside in `rejected/`, not stored.
    #[error(
        "uplink: the collector refused {batches} batches whole and {lines} events by line; they \
         are NOT stored and were set aside in {dir} (the refusals and the collector's reasons \
         are logged above)"
    )]
    Refused {
        /// Batches moved aside whole.
        batches: u64,
        /// Events set aside one by one.
        lines: u64,
        /// The `rejected/` directory.
        dir: PathBuf,
    },
}

/// Counters of the network side, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct UplinkCounters {
    /// Batches the collector stored.
    pub acked: AtomicU64,
    /// Batches the collector already had (resent after a lost reply or a crash).
    pub duplicate: AtomicU64,
    /// Batches refused for good (moved to `rejected/` whole).
    pub rejected: AtomicU64,
    /// Failed attempts that will be retried (connect errors, 403 and other refusals, 429, 5xx,
    /// timeouts).
    pub retried: AtomicU64,
    /// Of `retried`: attempts the collector refused with a 4xx other than 413 and a 400 naming
    /// a line (403 while its gateway list is wrong, ...): kept and retried with backoff.
    pub refused: AtomicU64,
    /// Batches split in two after a 413.
    pub split: AtomicU64,
    /// Events set aside after a 400 naming their line (the rest of the batch is resent).
    pub lines_rejected: AtomicU64,
    /// Events not sent because the collector would refuse them, by [`validate::Reason`].
    pub invalid: [AtomicU64; 4],
    /// 1 while a TLS connection to the collector is up.
    pub connected: AtomicU64,
    /// Times the uplink moved to another collector of its list after a failure.
    pub failovers: AtomicU64,
    /// Index in `[uplink] collector` of the collector batches go to.
    pub current: AtomicU64,
    /// Unix ms of the last acknowledgement.
    pub last_ack_ms: AtomicU64,
    /// Batches or events that could not be written to the spool (disk errors).
    pub spool_errors: AtomicU64,
}

/// A point-in-time view of the uplink for metrics and summaries.
#[derive(Debug, Clone, Copy, Default)]
pub struct UplinkSnapshot {
    /// Spool gauges and counters.
    pub spool: SpoolStats,
    /// Batches acknowledged as stored.
    pub acked: u64,
    /// Batches acknowledged as duplicates.
    pub duplicate: u64,
    /// Batches rejected.
    pub rejected: u64,
    /// Attempts retried.
    pub retried: u64,
    /// Connection up.
    pub connected: bool,
    /// Spool write errors.
    pub spool_errors: u64,
    /// Refusals retried (in `retried`).
    pub refused: u64,
    /// Batches split after a 413.
    pub split: u64,
    /// Events set aside after a 400 naming their line.
    pub lines_rejected: u64,
    /// Events not sent, by [`validate::Reason`].
    pub invalid: [u64; 4],
    /// Moves to another collector after a failure.
    pub failovers: u64,
    /// Index of the current collector in [`UplinkHandle::collectors`].
    pub current: usize,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    events: u32,
    since: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    spool: Spool,
    /// Index 0: flows, 1: alerts + stats.
    pending: [Pending; 2],
    batch_events: u32,
    batch_bytes: usize,
    batch_interval: Duration,
    last_error: Option<String>,
    /// Reasons of [`validate::Reason`] already logged once.
    logged_invalid: [bool; 4],
    /// Journal write failures already logged.
    journal_errors: u64,
}

impl Inner {
    fn seal(&mut self, which: usize, counters: &UplinkCounters) -> bool {
        let kind = if which == 0 {
            BatchKind::Flows
        } else {
            BatchKind::Alerts
        };
        let p = &mut self.pending[which];
        if p.events == 0 {
            return false;
        }
        let now = spool::unix_ms_now();
        let result = match kind {
            BatchKind::Alerts => self.spool.append_journaled(p.events, &p.buf, now),
            BatchKind::Flows => self.spool.append(kind, p.events, &p.buf, now),
        };
        p.buf.clear();
        p.events = 0;
        p.since = None;
        match result {
            Ok(seq) => seq.is_some(),
            Err(e) => {
                let n = counters.spool_errors.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::error!("uplink spool write failed ({} so far): {e}", n + 1);
                }
                self.last_error = Some(e.to_string());
                false
            }
        }
    }

    fn count_invalid(
        &mut self,
        event_type: EventType,
        invalid: &validate::Invalid,
        counters: &UplinkCounters,
    ) {
        let i = invalid.reason.index();
        counters.invalid[i].fetch_add(1, Ordering::Relaxed);
        if !self.logged_invalid[i] {
            self.logged_invalid[i] = true;
            let kind = event_type.as_str();
            let metric = format!(
                "crossline_agent_uplink_invalid_events_total{}reason=\"{}\"{}",
                '{',
                invalid.reason.as_str(),
                '}'
            );
            tracing::warn!(
                "{kind} event not sent to the collector, which would refuse it: {invalid}; it \
                 stays in the JSON-lines output; further such events are only counted ({metric})"
            );
        }
    }

    /// Seal partial batches older than the batch interval (or all, with `all`).
    fn seal_due(&mut self, all: bool, counters: &UplinkCounters) -> bool {
        let mut sealed = false;
        for which in 0..2 {
            let due = match self.pending[which].since {
                Some(t) => all || t.elapsed() >= self.batch_interval,
                None => false,
            };
            if due {
                sealed |= self.seal(which, counters);
            }
        }
        sealed
    }
}

/// State shared by the sink, the network thread and the metrics endpoint.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    stop: AtomicBool,
    counters: UplinkCounters,
    /// `host:port` of each collector, in the order of the configuration.
    collectors: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running uplink: spool + network thread. Dropping it stops the network thread after
/// sealing partial batches into the spool (nothing is lost; the next run sends the rest).
#[derive(Debug)]
pub struct Uplink {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    send_flows: bool,
}

impl Uplink {
    /// Open the spool, load the TLS identity and start the network thread.
    pub fn start(config: &UplinkConfig) -> Result<Uplink, UplinkError> {
        let endpoints = config
            .collectors
            .iter()
            .map(|url| client::Endpoint::parse(url, config.server_name.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let collectors = endpoints.iter().map(|e| e.authority.clone()).collect();
        let backoff = client::Backoff::new(config.backoff_min, config.backoff_max);
        let rotation =
            failover::Rotation::new(endpoints, backoff).ok_or_else(|| UplinkError::Url {
                url: String::new(),
                message: "no collector configured, expected at least one https://host:port".into(),
            })?;
        let tls = client::tls_config(&config.ca, &config.cert, &config.key)?;
        let opts = SpoolOptions {
            dir: config.spool_dir.clone(),
            max_bytes: config.spool_max_bytes,
            segment_bytes: config.spool_segment_bytes,
            fsync: config.fsync,
        };
        let spool = match Spool::open(opts.clone()) {
            Ok(s) => s,
            Err(e) if e.is_disk_full() => {
                let spool = Spool::in_memory(opts);
                tracing::error!(
                    "the uplink spool cannot be written ({e}); the disk \
                     is full, so batches are kept IN MEMORY for this run only (at most {} bytes, \
                     lost if the agent stops before the collector has them; \
                     crossline_agent_spool_in_memory = 1). Free space in {} and restart the agent.",
                    spool.max_bytes(),
                    config.spool_dir.display()
                );
                spool
            }
            Err(e) => return Err(e.into()),
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                spool,
                pending: Default::default(),
                batch_events: config.batch_events.clamp(1, u32::MAX as usize) as u32,
                batch_bytes: config.batch_bytes.clamp(1, MAX_BATCH_BODY),
                batch_interval: config.batch_interval,
                last_error: None,
                logged_invalid: [false; 4],
                journal_errors: 0,
            }),
            wake: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
            counters: UplinkCounters::default(),
            collectors,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || {
                let _cpu = crate::threads::register("uplink");
                client::run_thread(thread_shared, rotation, tls, backoff)
            })
            .map_err(UplinkError::Thread)?;
        Ok(Uplink {
            shared,
            thread: Some(thread),
            send_flows: config.send_flows,
        })
    }

    /// A sink for the writer thread.
    pub fn sink(&self) -> UplinkSink {
        UplinkSink {
            shared: Arc::clone(&self.shared),
            send_flows: self.send_flows,
        }
    }

    /// A handle for metrics and progress reports.
    pub fn handle(&self) -> UplinkHandle {
        UplinkHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Seal partial batches, then wait until the collector has acknowledged everything in the
    /// spool or `timeout` passes. Stops the network thread either way.
    pub fn finish(mut self, timeout: Duration) -> Result<UplinkSnapshot, UplinkError> {
        let started = Instant::now();
        {
            let mut inner = self.shared.lock();
            inner.seal_due(true, &self.shared.counters);
            let _ = inner.spool.sync();
        }
        self.shared.wake.notify_one();
        let outcome = loop {
            let (pending, events, dir, last_error) = {
                let inner = self.shared.lock();
                let s = inner.spool.stats();
                (
                    s.unacked_batches,
                    s.unacked_events,
                    inner.spool.dir().to_path_buf(),
                    inner.last_error.clone(),
                )
            };
            if pending == 0 {
                break Ok(());
            }
            if started.elapsed() >= timeout {
                break Err(UplinkError::Unacknowledged {
                    batches: pending,
                    events,
                    waited: started.elapsed(),
                    dir,
                    last_error,
                    refusals: self.shared.counters.refused.load(Ordering::Relaxed),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.stop_thread();
        outcome.map(|()| self.handle().snapshot())
    }

    fn stop_thread(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        {
            let mut inner = self.shared.lock();
            inner.seal_due(true, &self.shared.counters);
            let _ = inner.spool.sync();
        }
        self.stop_thread();
    }
}

/// A cheap, cloneable view of a running uplink.
#[derive(Debug, Clone)]
pub struct UplinkHandle {
    shared: Arc<Shared>,
}

impl crate::detect::reload::UplinkBatching for UplinkHandle {
    fn set_batching(&self, events: usize, bytes: usize, interval: Duration) {
        UplinkHandle::set_batching(self, events, bytes, interval);
    }
}

impl UplinkHandle {
    /// New batch settings (a reloaded `agent.toml`), for the batches sealed from now on.
    pub fn set_batching(&self, events: usize, bytes: usize, interval: Duration) {
        let mut inner = self.shared.lock();
        inner.batch_events = events.clamp(1, u32::MAX as usize) as u32;
        inner.batch_bytes = bytes.clamp(1, MAX_BATCH_BODY);
        inner.batch_interval = interval;
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.shared.lock().spool.dir().to_path_buf()
    }

    /// Current figures.
    pub fn snapshot(&self) -> UplinkSnapshot {
        let spool = self.shared.lock().spool.stats();
        let c = &self.shared.counters;
        UplinkSnapshot {
            spool,
            acked: c.acked.load(Ordering::Relaxed),
            duplicate: c.duplicate.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            connected: c.connected.load(Ordering::Relaxed) != 0,
            spool_errors: c.spool_errors.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            split: c.split.load(Ordering::Relaxed),
            lines_rejected: c.lines_rejected.load(Ordering::Relaxed),
            invalid: std::array::from_fn(|i| c.invalid[i].load(Ordering::Relaxed)),
            failovers: c.failovers.load(Ordering::Relaxed),
            current: c.current.load(Ordering::Relaxed) as usize,
        }
    }

    /// `host:port` of each configured collector, in order.
    pub fn collectors(&self) -> &[String] {
        &self.shared.collectors
    }
}

/// The writer-thread side of the uplink: groups events into batches and appends them to the
/// spool. Never touches the network.
#[derive(Debug)]
pub struct UplinkSink {
    shared: Arc<Shared>,
    send_flows: bool,
}

impl UplinkSink {
    /// Queue one serialised event (`line`, with or without its trailing newline). An alert or
    /// stats line is written to the spool's journal at once.
    pub fn push(&mut self, event_type: EventType, line: &[u8]) {
        let which = match event_type {
            EventType::Flow if !self.send_flows => return,
            EventType::Flow => 0,
            EventType::Alert | EventType::Stats | EventType::Sketch => 1,
        };
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let shared = &*self.shared;
        if line.len() + 1 > MAX_BATCH_BODY {
            let mut inner = shared.lock();
            let invalid = validate::Invalid {
                reason: validate::Reason::TooLarge,
                field: "",
                value: line.len().to_string(),
            };
            inner.count_invalid(event_type, &invalid, &shared.counters);
            return;
        }
        let mut inner = shared.lock();
        let mut sealed = false;
        let (batch_events, batch_bytes) = (inner.batch_events, inner.batch_bytes);
        // Never let a batch grow past batch_bytes: seal what is there first.
        let p = &inner.pending[which];
        if p.events > 0 && p.buf.len() + line.len() + 1 > batch_bytes {
            sealed |= inner.seal(which, &shared.counters);
        }
        if which == 1 {
            if let Err(e) = inner.spool.journal(line) {
                // The line still goes into the batch below: only a kill before it is sealed
                // can lose it.
                inner.journal_errors += 1;
                let n = inner.journal_errors;
                if n.is_power_of_two() {
                    tracing::error!("uplink journal write failed ({n} so far): {e}");
                }
            }
        }
        let full = {
            let p = &mut inner.pending[which];
            p.buf.extend_from_slice(line);
            p.buf.push(b'\n');
            p.events += 1;
            if p.since.is_none() {
                p.since = Some(Instant::now());
            }
            p.events >= batch_events || p.buf.len() >= batch_bytes
        };
        if full {
            sealed |= inner.seal(which, &shared.counters);
        }
        sealed |= inner.seal_due(false, &shared.counters);
        drop(inner);
        if sealed {
            shared.wake.notify_one();
        }
    }

    /// Queue one event after checking that the collector will accept it ([`validate::check`]);
    /// an event it would refuse is dropped alone, counted and (once per reason) logged.
    pub fn push_event(&mut self, event: &crossline_config::event::Event, line: &[u8]) {
        if event.event_type == EventType::Flow && !self.send_flows {
            return;
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if let Err(invalid) = validate::check(event, line.len()) {
            let shared = &*self.shared;
            shared
                .lock()
                .count_invalid(event.event_type, &invalid, &shared.counters);
            return;
        }
        self.push(event.event_type, line);
    }

    /// Seal partial batches into the spool and sync it (end of capture, shutdown).
    pub fn flush_all(&mut self) -> std::io::Result<()> {
        let mut inner = self.shared.lock();
        let sealed = inner.seal_due(true, &self.shared.counters);
        inner.spool.sync().map_err(std::io::Error::other)?;
        drop(inner);
        if sealed {
            self.shared.wake.notify_one();
        }
        Ok(())
    }
}

impl crate::sink::EventSink for UplinkSink {
    fn write(
        &mut self,
        event: &crossline_config::event::Event,
        line: &[u8],
    ) -> std::io::Result<()> {
        self.push_event(event, line);
        Ok(())
    }

    /// Flow records written as lines reach the collector only with `send_flows`; then they
    /// are read back for the same checks as events.
    fn write_line(&mut self, line: &[u8], _meta: &crate::sink::LineMeta) -> std::io::Result<()> {
        if !self.send_flows {
            return Ok(());
        }
        let event = crate::sink::read_line(line)?;
        self.push_event(&event, line);
        Ok(())
    }

    fn wants_events(&self) -> bool {
        false
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut inner = self.shared.lock();
        let sealed = inner.seal_due(false, &self.shared.counters);
        inner.spool.tick().map_err(std::io::Error::other)?;
        drop(inner);
        if sealed {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.flush_all()
    }
}
