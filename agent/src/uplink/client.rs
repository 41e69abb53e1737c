//! The network side of the uplink: mutual-TLS HTTP/1.1 client that drains the spool.
//!
//! Runs on its own thread with a single-threaded tokio runtime. One batch is in flight at a time,
//! in sequence order: `POST /v1/events` with `X-Crossline-Stream`, `X-Crossline-Sequence`,
//! `Content-Type: application/x-ndjson` and a gzip body. A 200 reply (`stored` or `duplicate`)
//! acknowledges the batch. A 4xx is not final unless the collector proves the batch malformed:
//! - `400` whose error names a line (`line N: ...`): that one event is set aside in
//!   `spool_dir/rejected/` with the reply, counted and logged; the rest of the batch is sent
//!   again under the same sequence (the collector stored nothing of it);
//! - `413`: the batch is split in two with new sequences ([`super::spool::Spool::split`]); a
//!   batch of one event that is still too large is set aside;
//! - `403` (the collector's gateway list may be briefly wrong) and every other 4xx: kept and
//!   retried with backoff, counted as refused;
//! - 5xx, timeouts, connection and TLS errors: the next collector of the list is tried (the
//!   failed one backs off; see [`super::failover`]), with the same stream and sequence;
//! - 429: retried on the same collector after an exponential backoff with full jitter.

pub use super::endpoint::{Backoff, Endpoint};
use super::failover::Rotation;
use super::{Shared, UplinkError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for a TCP connection and TLS handshake before the next collector is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a reply before the connection is dropped and the batch retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply body read.
const REPLY_LIMIT: usize = 64 << 10;

fn read_pem(path: &Path) -> Result<Vec<u8>, UplinkError> {
    crossline_config::read::read_config_file(path).map_err(|e| UplinkError::Tls {
        path: path.to_path_buf(),
        message: e.reason(),
    })
}

/// The cryptography behind every TLS connection of the agent (its uplink to the collector):
/// rustls' *ring* provider (a smaller build than aws-lc-rs, with no C toolchain beyond *ring*'s
/// own). rustls 0.23.47 marks it deprecated because *ring* has no post-quantum key exchange;
/// these connections are mutually authenticated links inside an operator's network, and a move
/// to aws-lc-rs is a decision of its own. The allowance sits here, once, so that a
/// `cargo update` does not break the `-D warnings` build.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build the rustls client configuration: trust only the collector CA, present the gateway's
/// certificate and key.
pub fn tls_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ClientConfig>, UplinkError> {
    let tls_err = |path: &Path, message: String| UplinkError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read_pem(ca)?) {
        let c = c.map_err(|e| tls_err(ca, format!("bad PEM: {e}")))?;
        roots
            .add(c)
            .map_err(|e| tls_err(ca, format!("bad CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_err(ca, "no CERTIFICATE block found".into()));
    }
    let certs = CertificateDer::pem_slice_iter(&read_pem(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no CERTIFICATE block found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read_pem(key)?)
        .map_err(|e| tls_err(key, format!("no usable private key: {e}")))?;
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key_der)
        .map_err(|e| tls_err(key, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Spool fill levels (percent of `spool_max_bytes`) logged when crossed upwards.
const SPOOL_LEVELS: [u64; 3] = [50, 80, 95];

/// The uplink's state as the log tells it: each change is logged once (connected, failing and
/// backing off, failed over, refused, recovered, spool filling up), repeats only at debug level.
/// Every line names the collector.
#[derive(Debug)]
struct LinkLog {
    /// Per collector of the list: connected to it once already.
    connected_once: Vec<bool>,
    /// Failed attempts since the last acknowledgement, and since when.
    failing: Option<(u64, std::time::Instant)>,
    /// Index into [`SPOOL_LEVELS`] of the highest level logged (0 = below the first).
    spool_level: usize,
}

impl LinkLog {
    fn new(collectors: usize) -> LinkLog {
        LinkLog {
            connected_once: vec![false; collectors],
            failing: None,
            spool_level: 0,
        }
    }

    fn connected(&mut self, index: usize, authority: &str) {
        match self.connected_once.get_mut(index) {
            Some(once) if !*once => {
                *once = true;
                tracing::info!("connected to collector {authority}");
            }
            _ => tracing::debug!(collector = %authority, "reconnected to collector"),
        }
    }

    /// Count a failed attempt; true when it is the first since the last acknowledgement (the
    /// one logged at warn level).
    fn first_failure(&mut self) -> bool {
        match &mut self.failing {
            Some((n, _)) => {
                *n += 1;
                false
            }
            None => {
                self.failing = Some((1, std::time::Instant::now()));
                true
            }
        }
    }

    /// A failed attempt retried on the same collector (connection, timeout, 5xx, 429,
    /// refusal); `logged` when the caller already logged this failure with its reason.
    fn failed(&mut self, authority: &str, reason: &str, delay: Duration, logged: bool) {
        if !self.first_failure() {
            tracing::debug!(
                collector = %authority,
                "uplink attempt failed ({reason}); backing off {:.1} s",
                delay.as_secs_f64()
            );
        } else if logged {
            tracing::warn!(
                collector = %authority,
                "backing off {:.1} s before the next attempt (further failures are \
                 logged at debug level until the collector acknowledges again)",
                delay.as_secs_f64()
            );
        } else {
            tracing::warn!(
                "uplink to collector {authority} failing: {reason}; backing off {:.1} s \
                 (further failures are logged at debug level until it acknowledges again)",
                delay.as_secs_f64()
            );
        }
    }

    /// The current collector failed and batch `seq` goes to collector `to` after `delay`.
    fn failed_over(&mut self, from: &str, to: &str, reason: &str, seq: u64, delay: Duration) {
        if self.first_failure() {
            tracing::warn!(
                "uplink to collector {from} failing: {reason}; failing over to collector {to} \
                 in {:.1} s with batch {seq} under the same stream and sequence (further \
                 failures are logged at debug level until a collector acknowledges again)",
                delay.as_secs_f64()
            );
        } else {
            tracing::debug!(
                "uplink to collector {from} failed ({reason}); batch {seq} goes to collector \
                 {to} in {:.1} s",
                delay.as_secs_f64()
            );
        }
    }

    fn acknowledged(&mut self, authority: &str, seq: u64) {
        if let Some((n, since)) = self.failing.take() {
            tracing::info!(
                "recovered: collector {authority} acknowledged batch {seq} after {n} failed \
                 attempts over {:.1} s",
                since.elapsed().as_secs_f64()
            );
        }
    }

    fn spool(&mut self, bytes: u64, max: u64, events: u64) {
        if max == 0 {
            return;
        }
        let pct = bytes.saturating_mul(100) / max;
        let level = SPOOL_LEVELS.iter().filter(|l| pct >= **l).count();
        if level > self.spool_level {
            tracing::warn!(
                "uplink spool at {pct}% of its {max} bytes ({events} events waiting for the \
                 collector); past 100% flow records give way first, then alerts"
            );
        } else if level == 0 && self.spool_level > 0 {
            tracing::info!("uplink spool back to {pct}% of its {max} bytes");
        }
        if level > self.spool_level || level == 0 {
            self.spool_level = level;
        }
    }
}

/// Body of the network thread.
pub(crate) fn run_thread(
    shared: Arc<Shared>,
    rotation: Rotation,
    tls: Arc<rustls::ClientConfig>,
    backoff: Backoff,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("uplink runtime failed to start: {e}");
            shared.lock().last_error = Some(e.to_string());
            return;
        }
    };
    runtime.block_on(drain(shared, rotation, tls, backoff));
}

#[derive(Debug)]
enum Outcome {
    Stored {
        duplicate: bool,
    },
    /// Connection errors, timeouts, 5xx: the next collector of the list is tried.
    Retry(String),
    /// 429: the collector is up and asks to slow down; retried there with backoff.
    Throttled(String),
    /// A 4xx that may pass later (403, ...): retried with backoff.
    Refused(u16, String),
    /// 413.
    TooLarge(String),
    /// 400 naming line `.0` (1-based) of the body.
    BadLine(usize, String),
}

/// The network loop's state: the collectors, the connection to the current one, and what is
/// kept of the batch in flight for its resend.
struct Link {
    shared: Arc<Shared>,
    connector: tokio_rustls::TlsConnector,
    rotation: Rotation,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The gzip body of the batch being retried, so a retry (to the same collector or the
    /// next) does not compress again.
    compressed: Option<(u64, Bytes)>,
    /// The payload of a batch some lines of which were set aside after a 400, for its resend.
    trimmed: Option<(u64, Vec<u8>)>,
    /// Status of the last refusal logged, so a refusal repeated every backoff is logged once.
    last_refusal: Option<u16>,
    log: LinkLog,
    /// Backoff after local failures (spool reads, splits), which no collector can help.
    local: Backoff,
}

async fn drain(
    shared: Arc<Shared>,
    rotation: Rotation,
    tls: Arc<rustls::ClientConfig>,
    backoff: Backoff,
) {
    let mut link = Link {
        log: LinkLog::new(rotation.len()),
        shared: Arc::clone(&shared),
        connector: tokio_rustls::TlsConnector::from(tls),
        rotation,
        sender: None,
        compressed: None,
        trimmed: None,
        last_refusal: None,
        local: backoff,
    };
    link.publish_current();
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(mut batch) = link.next_batch().await else {
            continue;
        };
        match link.ensure_connected(batch.seq).await {
            Some(true) => {}
            Some(false) => continue,
            None => break,
        }
        let Some(outcome) = link.send(&mut batch).await else {
            break;
        };
        link.handle(outcome, &batch).await;
    }
    shared.counters.connected.store(0, Ordering::Relaxed);
}

impl Link {
    /// The next batch to send, or `None` after waiting a little (nothing to send, or the spool
    /// could not be read).
    async fn next_batch(&mut self) -> Option<super::spool::Batch> {
        let shared = &*self.shared;
        let next = {
            let mut inner = shared.lock();
            inner.seal_due(false, &shared.counters);
            let _ = inner.spool.tick();
            let stats = inner.spool.stats();
            self.log
                .spool(stats.bytes, inner.spool.max_bytes(), stats.unacked_events);
            inner.spool.next_batch()
        };
        match next {
            Ok(Some(b)) => Some(b),
            Ok(None) => {
                self.compressed = None;
                let idle_wait = Duration::from_millis(50);
                let _ = tokio::time::timeout(idle_wait, shared.wake.notified()).await;
                None
            }
            Err(e) => {
                tracing::error!("uplink spool read failed: {e}");
                shared.lock().last_error = Some(e.to_string());
                wait_or_stop(shared, self.local.next_delay()).await;
                None
            }
        }
    }

    /// Make sure a connection to the current collector is up: `Some(true)` when it is,
    /// `Some(false)` when connecting failed (the rotation has moved on and waited), `None` when
    /// the uplink is stopping.
    async fn ensure_connected(&mut self, seq: u64) -> Option<bool> {
        let ready = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if ready {
            return Some(true);
        }
        self.sender = None;
        self.shared.counters.connected.store(0, Ordering::Relaxed);
        let connecting = tokio::time::timeout(
            CONNECT_TIMEOUT,
            connect(&self.connector, self.rotation.endpoint()),
        );
        let connected = unless_stopped(&self.shared, connecting).await?;
        let authority = &self.rotation.endpoint().authority;
        match connected {
            Ok(Ok(s)) => {
                self.shared.counters.connected.store(1, Ordering::Relaxed);
                self.log.connected(self.rotation.current(), authority);
                self.sender = Some(s);
                Some(true)
            }
            Ok(Err(e)) => {
                self.fail_over(e, seq).await;
                Some(false)
            }
            Err(_) => {
                let e = format!("connect {authority}: no connection within {CONNECT_TIMEOUT:?}");
                self.fail_over(e, seq).await;
                Some(false)
            }
        }
    }

    /// POST `batch` (the trimmed payload after a 400, the body compressed once) to the current
    /// collector; `None` when the uplink is stopping.
    async fn send(&mut self, batch: &mut super::spool::Batch) -> Option<Outcome> {
        match &self.trimmed {
            Some((seq, payload)) if *seq == batch.seq => batch.payload.clone_from(payload),
            _ => self.trimmed = None,
        }
        let body = match &self.compressed {
            Some((seq, body)) if *seq == batch.seq => body.clone(),
            _ => {
                let body = gzip(&batch.payload);
                self.compressed = Some((batch.seq, body.clone()));
                body
            }
        };
        let stream = self.shared.lock().spool.stream_id();
        let endpoint = self.rotation.endpoint();
        let Some(s) = self.sender.as_mut() else {
            return Some(Outcome::Retry("no connection".into()));
        };
        let request =
            tokio::time::timeout(REQUEST_TIMEOUT, post(s, endpoint, stream, batch.seq, body));
        let outcome = match unless_stopped(&self.shared, request).await? {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome::Retry(e),
            Err(_) => Outcome::Retry(format!("no reply within {REQUEST_TIMEOUT:?}")),
        };
        if matches!(outcome, Outcome::Retry(_)) {
            self.sender = None;
        }
        Some(outcome)
    }

    async fn handle(&mut self, outcome: Outcome, batch: &super::spool::Batch) {
        match outcome {
            Outcome::Stored { duplicate } => self.stored(batch, duplicate),
            Outcome::TooLarge(reply) => self.too_large(batch, &reply).await,
            Outcome::BadLine(line, reply) => self.bad_line(batch, line, &reply),
            Outcome::Refused(status, reason) => {
                self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                if self.last_refusal != Some(status) {
                    tracing::error!(
                        "collector {} refused batch {} ({reason}); it is kept and retried with \
                         backoff",
                        self.rotation.endpoint().authority,
                        batch.seq
                    );
                }
                self.last_refusal = Some(status);
                self.back_off(reason, true).await;
            }
            Outcome::Throttled(reason) => self.back_off(reason, false).await,
            Outcome::Retry(reason) => self.fail_over(reason, batch.seq).await,
        }
    }

    /// A failure retried on the current collector after its backoff.
    async fn back_off(&mut self, reason: String, logged: bool) {
        self.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
        let delay = self.rotation.back_off(std::time::Instant::now());
        let authority = &self.rotation.endpoint().authority;
        self.log.failed(authority, &reason, delay, logged);
        self.shared.lock().last_error = Some(format!("collector {authority}: {reason}"));
        wait_or_stop(&self.shared, delay).await;
    }

    /// The current collector failed: back it off, move to the next one (same batch, same
    /// stream and sequence), and wait if every collector is backing off.
    async fn fail_over(&mut self, reason: String, seq: u64) {
        let counters = &self.shared.counters;
        counters.retried.fetch_add(1, Ordering::Relaxed);
        let next = self.rotation.fail_over(std::time::Instant::now());
        let from = &self.rotation.endpoint_at(next.from).authority;
        if next.moved() {
            self.sender = None;
            counters.failovers.fetch_add(1, Ordering::Relaxed);
            let to = &self.rotation.endpoint_at(next.to).authority;
            self.log.failed_over(from, to, &reason, seq, next.delay);
        } else {
            self.log.failed(from, &reason, next.delay, false);
        }
        self.shared.lock().last_error = Some(format!("collector {from}: {reason}"));
        self.publish_current();
        wait_or_stop(&self.shared, next.delay).await;
    }

    /// Tell `/metrics` which collector is current.
    fn publish_current(&self) {
        self.shared
            .counters
            .current
            .store(self.rotation.current() as u64, Ordering::Relaxed);
    }

    fn stored(&mut self, batch: &super::spool::Batch, duplicate: bool) {
        self.rotation.succeeded();
        self.local.reset();
        self.compressed = None;
        self.trimmed = None;
        self.last_refusal = None;
        let counters = &self.shared.counters;
        let counter = if duplicate {
            &counters.duplicate
        } else {
            &counters.acked
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.log
            .acknowledged(&self.rotation.endpoint().authority, batch.seq);
        counters
            .last_ack_ms
            .store(super::spool::unix_ms_now(), Ordering::Relaxed);
        let mut inner = self.shared.lock();
        if let Err(e) = inner.spool.ack(batch.seq) {
            inner.last_error = Some(e.to_string());
        }
    }

    /// 413: split the batch in two under new sequences, or set a one-event batch aside.
    async fn too_large(&mut self, batch: &super::spool::Batch, reply: &str) {
        self.rotation.succeeded();
        self.local.reset();
        self.compressed = None;
        self.trimmed = None;
        let shared = &*self.shared;
        let split = shared
            .lock()
            .spool
            .split(batch, super::spool::unix_ms_now());
        match split {
            Ok(Some([a, b])) => {
                shared.counters.split.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "collector {} refused batch {} of {} bytes as too large ({}); split into \
                     batches {a} and {b}",
                    self.rotation.endpoint().authority,
                    batch.seq,
                    batch.payload.len(),
                    first_line(reply)
                );
            }
            Ok(None) => {
                shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                set_aside_whole(&mut shared.lock(), batch, reply);
            }
            Err(e) => {
                tracing::error!("uplink spool: cannot split batch {}: {e}", batch.seq);
                shared.lock().last_error = Some(e.to_string());
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                wait_or_stop(shared, self.local.next_delay()).await;
            }
        }
    }

    /// 400 naming a line: set that event aside and keep the rest of the batch for its resend.
    fn bad_line(&mut self, batch: &super::spool::Batch, line: usize, reply: &str) {
        self.rotation.succeeded();
        self.compressed = None;
        let shared = &*self.shared;
        let mut inner = shared.lock();
        let lines: Vec<&[u8]> = batch.payload.split_inclusive(|b| *b == b'\n').collect();
        let Some(bad) = lines.get(line.wrapping_sub(1)) else {
            // A line the batch does not have: the collector says the batch is malformed
            // without saying where; set it aside whole.
            self.trimmed = None;
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            set_aside_whole(&mut inner, batch, reply);
            return;
        };
        shared
            .counters
            .lines_rejected
            .fetch_add(1, Ordering::Relaxed);
        let path = inner.spool.set_aside(batch.seq, bad, reply);
        tracing::error!(
            "collector {} refused line {line} of batch {} ({}); that event is set aside{}, the \
             other {} are sent again",
            self.rotation.endpoint().authority,
            batch.seq,
            first_line(reply),
            match &path {
                Ok(p) => format!(" in {}", p.display()),
                Err(e) => format!(" (could not be copied: {e})"),
            },
            lines.len() - 1
        );
        let rest: Vec<u8> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i + 1 != line)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        if rest.iter().all(u8::is_ascii_whitespace) {
            self.trimmed = None;
            if let Err(e) = inner.spool.ack(batch.seq) {
                inner.last_error = Some(e.to_string());
            }
        } else {
            self.trimmed = Some((batch.seq, rest));
        }
    }
}

/// Run `fut` to completion unless the uplink is stopped first (then `None`; a batch in flight
/// stays in the spool and is sent again, as a duplicate if the collector had stored it).
async fn unless_stopped<F: std::future::Future>(shared: &Shared, fut: F) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return None;
                }
            }
        }
    }
}

/// Sleep for `delay`, waking early when the uplink is being stopped.
async fn wait_or_stop(shared: &Shared, delay: Duration) {
    let deadline = tokio::time::Instant::now() + delay;
    while !shared.stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        let step = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(step.min(Duration::from_millis(100))).await;
    }
}

async fn connect(
    connector: &tokio_rustls::TlsConnector,
    endpoint: &Endpoint,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("connect {}:{}: {e}", endpoint.host, endpoint.port))?;
    let _ = tcp.set_nodelay(true);
    let tls = connector
        .connect(endpoint.server_name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS handshake with {}: {e}", endpoint.authority))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake with {}: {e}", endpoint.authority))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    endpoint: &Endpoint,
    stream: u64,
    seq: u64,
    body: Bytes,
) -> Result<Outcome, String> {
    let request = hyper::Request::post(endpoint.path.as_str())
        .header(hyper::header::HOST, endpoint.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
        .header(hyper::header::CONTENT_ENCODING, "gzip")
        .header("x-crossline-stream", stream.to_string())
        .header("x-crossline-sequence", seq.to_string())
        .body(Full::new(body))
        .map_err(|e| format!("building request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("POST {}: {e}", endpoint.path))?;
    let status = response.status().as_u16();
    let reply = match Limited::new(response.into_body(), REPLY_LIMIT)
        .collect()
        .await
    {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => return Err(format!("reading reply: {e}")),
    };
    Ok(classify(status, reply))
}

fn classify(status: u16, reply: String) -> Outcome {
    match status {
        200..=299 => Outcome::Stored {
            duplicate: reply_status(&reply).as_deref() == Some("duplicate"),
        },
        429 => Outcome::Throttled(format!("HTTP 429: {}", reply.trim())),
        500..=599 => Outcome::Retry(format!("HTTP {status}: {}", reply.trim())),
        413 => Outcome::TooLarge(format!("HTTP 413\n{reply}")),
        400 => match named_line(&reply) {
            Some(line) => Outcome::BadLine(line, format!("HTTP 400\n{reply}")),
            None => Outcome::Refused(400, format!("HTTP 400: {}", reply.trim())),
        },
        401..=499 => Outcome::Refused(status, format!("HTTP {status}: {}", reply.trim())),
        _ => Outcome::Retry(format!("unexpected HTTP {status}")),
    }
}

/// The line a collector error names: `{"error":"line 5: ..."}`.
fn named_line(reply: &str) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(reply).ok()?;
    let rest = v.get("error")?.as_str()?.strip_prefix("line ")?;
    let digits = rest.split(':').next()?;
    digits.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

fn first_line(reply: &str) -> &str {
    reply
        .lines()
        .find(|l| !l.starts_with("HTTP "))
        .or_else(|| reply.lines().next())
        .unwrap_or("")
}

/// Move a batch the collector refused for good to `rejected/` (or, failing that, give it up:
/// never retry it forever).
fn set_aside_whole(inner: &mut super::Inner, batch: &super::spool::Batch, reply: &str) {
    match inner.spool.reject(batch, reply) {
        Ok(path) => tracing::error!(
            "collector refused batch {} ({}); moved to {}",
            batch.seq,
            first_line(reply),
            path.display()
        ),
        Err(e) => {
            let _ = inner.spool.ack(batch.seq);
            inner.last_error = Some(e.to_string());
        }
    }
}

fn reply_status(reply: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(reply).ok()?;
    Some(v.get("status")?.as_str()?.to_string())
}

fn gzip(payload: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(payload.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(payload);
    Bytes::from(enc.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let e = Endpoint::parse("https://collector.example:8443", None).expect("valid");
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("collector.example", 8443, "/v1/events")
        );
        let e = Endpoint::parse("https://127.0.0.1:9/v2/x", Some("collector")).expect("valid");
        assert_eq!((e.port, e.path.as_str()), (9, "/v2/x"));
        assert_eq!(
            format!("{:?}", e.server_name),
            format!(
                "{:?}",
                rustls::pki_types::ServerName::try_from("collector").expect("name")
            )
        );
        let e = Endpoint::parse("https://[::1]:7000", None).expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("::1", 7000));
        for bad in [
            "http://x:1",
            "https://:1",
            "https://x:99999",
            "https://[::1",
        ] {
            assert!(Endpoint::parse(bad, None).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(min, max);
        let mut ceilings_hit = false;
        for attempt in 0..40 {
            let d = b.next_delay();
            assert!(d >= min && d <= max, "attempt {attempt}: {d:?}");
            let ceiling = min.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
            ceilings_hit |= d > Duration::from_millis(1000);
        }
        assert!(ceilings_hit, "never grew past 1 s in 40 attempts");
        b.reset();
        assert!(b.next_delay() == min);
    }

    #[test]
    fn replies_are_classified() {
        assert!(matches!(
            classify(200, r#"{"status":"duplicate"}"#.into()),
            Outcome::Stored { duplicate: true }
        ));
        assert!(matches!(
            classify(200, r#"{"status":"stored"}"#.into()),
            Outcome::Stored { duplicate: false }
        ));
        assert!(matches!(
            classify(429, String::new()),
            Outcome::Throttled(_)
        ));
        assert!(matches!(classify(503, String::new()), Outcome::Retry(_)));
        // Only a 400 naming a line is about the batch's content.
        assert!(matches!(
            classify(400, r#"{"error":"line 7: unknown field `x`"}"#.into()),
            Outcome::BadLine(7, _)
        ));
        assert!(matches!(
            classify(
                400,
                r#"{"error":"missing header x-crossline-stream"}"#.into()
            ),
            Outcome::Refused(400, _)
        ));
        assert!(matches!(
            classify(400, r#"{"error":"line 0: x"}"#.into()),
            Outcome::Refused(400, _)
        ));
        assert!(matches!(
            classify(403, "gw".into()),
            Outcome::Refused(403, _)
        ));
        assert!(matches!(classify(413, "big".into()), Outcome::TooLarge(_)));
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read;
        let body = gzip(b"{\"x\":1}\n");
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .expect("gunzip");
        assert_eq!(out, "{\"x\":1}\n");
    }
}
