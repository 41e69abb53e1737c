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
//! - 429, 5xx, timeouts and connection errors: retried after an exponential backoff with full
//!   jitter.

use super::{Shared, UplinkError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for a reply before the connection is dropped and the batch retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply body read.
const REPLY_LIMIT: usize = 64 << 10;

/// Where batches go: parsed from `[uplink] collector`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Request path (`/v1/events` unless the URL names another).
    pub path: String,
    /// `Host` header value.
    pub authority: String,
    /// Name checked against the collector's certificate.
    pub server_name: ServerName<'static>,
}

impl Endpoint {
    /// Parse `https://host:port[/path]`; `server_name` overrides the certificate name.
    pub fn parse(url: &str, server_name: Option<&str>) -> Result<Endpoint, UplinkError> {
        let bad = |message: &str| UplinkError::Url {
            url: url.to_string(),
            message: message.to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("expected https://host:port"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in IPv6 address"))?;
            (h, p.strip_prefix(':').unwrap_or(""))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, ""),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = if port.is_empty() {
            443
        } else {
            port.parse::<u16>()
                .map_err(|_| bad("port is not a number 1-65535"))?
        };
        let path = if path.is_empty() || path == "/" {
            "/v1/events".to_string()
        } else {
            path.to_string()
        };
        let name = server_name.unwrap_or(host).to_string();
        let server_name =
            ServerName::try_from(name).map_err(|e| bad(&format!("invalid server name: {e}")))?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
            path,
            authority: authority.to_string(),
            server_name,
        })
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, UplinkError> {
    crossline_config::read::read_config_file(path).map_err(|e| UplinkError::Tls {
        path: path.to_path_buf(),
        message: e.reason(),
    })
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key_der)
        .map_err(|e| tls_err(key, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Exponential backoff with full jitter, bounded below by `min` and above by `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff that starts at `min` and grows to at most `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// Delay before the next attempt: uniform in `[min, min(max, min * 2^failures)]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let span = ceiling.saturating_sub(self.min).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            rand::random::<u64>() % (span + 1)
        };
        self.min + Duration::from_millis(jitter)
    }

    /// Forget past failures (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Spool fill levels (percent of `spool_max_bytes`) logged when crossed upwards.
const SPOOL_LEVELS: [u64; 3] = [50, 80, 95];

/// The uplink's state as the log tells it: each change is logged once (connected, failing and
/// backing off, refused, recovered, spool filling up), repeats only at debug level.
#[derive(Debug)]
struct LinkLog {
    authority: String,
    connected_once: bool,
    /// Failed attempts since the last acknowledgement, and since when.
    failing: Option<(u64, std::time::Instant)>,
    /// Index into [`SPOOL_LEVELS`] of the highest level logged (0 = below the first).
    spool_level: usize,
}

impl LinkLog {
    fn new(endpoint: &Endpoint) -> LinkLog {
        LinkLog {
            authority: endpoint.authority.clone(),
            connected_once: false,
            failing: None,
            spool_level: 0,
        }
    }

    fn connected(&mut self) {
        if !self.connected_once {
            self.connected_once = true;
            tracing::info!("connected to collector {}", self.authority);
        } else {
            tracing::debug!(collector = %self.authority, "reconnected to collector");
        }
    }

    /// A failed attempt (connection, timeout, 5xx, 429, refusal); `logged` when the caller
    /// already logged this failure with its reason.
    fn failed(&mut self, reason: &str, delay: Duration, logged: bool) {
        match &mut self.failing {
            Some((n, _)) => {
                *n += 1;
                tracing::debug!(
                    collector = %self.authority,
                    attempts = *n,
                    "uplink attempt failed ({reason}); backing off {:.1} s",
                    delay.as_secs_f64()
                );
            }
            None => {
                self.failing = Some((1, std::time::Instant::now()));
                if logged {
                    tracing::warn!(
                        collector = %self.authority,
                        "backing off {:.1} s before the next attempt (further failures are \
                         logged at debug level until the collector acknowledges again)",
                        delay.as_secs_f64()
                    );
                } else {
                    tracing::warn!(
                        "uplink to collector {} failing: {reason}; backing off {:.1} s (further \
                         failures are logged at debug level until it acknowledges again)",
                        self.authority,
                        delay.as_secs_f64()
                    );
                }
            }
        }
    }

    fn acknowledged(&mut self, seq: u64) {
        if let Some((n, since)) = self.failing.take() {
            tracing::info!(
                "recovered: collector {} acknowledged batch {seq} after {n} failed attempts over \
                 {:.1} s",
                self.authority,
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
    endpoint: Endpoint,
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
    runtime.block_on(drain(shared, endpoint, tls, backoff));
}

#[derive(Debug)]
enum Outcome {
    Stored {
        duplicate: bool,
    },
    Retry(String),
    /// A 4xx that may pass later (403, ...): retried with backoff.
    Refused(u16, String),
    /// 413.
    TooLarge(String),
    /// 400 naming line `.0` (1-based) of the body.
    BadLine(usize, String),
}

async fn drain(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    mut backoff: Backoff,
) {
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    // The gzip body of the batch being retried, so a retry does not compress again.
    let mut compressed: Option<(u64, Bytes)> = None;
    // The payload of a batch some lines of which were set aside after a 400, for its resend.
    let mut trimmed: Option<(u64, Vec<u8>)> = None;
    // Status of the last refusal logged, so a refusal repeated every backoff is logged once.
    let mut last_refusal: Option<u16> = None;
    let mut log = LinkLog::new(&endpoint);
    let idle_wait = Duration::from_millis(50);
    while !shared.stop.load(Ordering::SeqCst) {
        let next = {
            let mut inner = shared.lock();
            inner.seal_due(false, &shared.counters);
            let _ = inner.spool.tick();
            let stats = inner.spool.stats();
            log.spool(stats.bytes, inner.spool.max_bytes(), stats.unacked_events);
            inner.spool.next_batch()
        };
        let mut batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => {
                compressed = None;
                let _ = tokio::time::timeout(idle_wait, shared.wake.notified()).await;
                continue;
            }
            Err(e) => {
                tracing::error!("uplink spool read failed: {e}");
                shared.lock().last_error = Some(e.to_string());
                wait_or_stop(&shared, backoff.next_delay()).await;
                continue;
            }
        };
        let ready = match sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            shared.counters.connected.store(0, Ordering::Relaxed);
            let Some(connected) = unless_stopped(&shared, connect(&connector, &endpoint)).await
            else {
                break;
            };
            match connected {
                Ok(s) => {
                    shared.counters.connected.store(1, Ordering::Relaxed);
                    log.connected();
                    sender = Some(s);
                }
                Err(e) => {
                    sender = None;
                    shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    log.failed(&e, delay, false);
                    shared.lock().last_error = Some(e);
                    wait_or_stop(&shared, delay).await;
                    continue;
                }
            }
        }
        match &trimmed {
            Some((seq, payload)) if *seq == batch.seq => batch.payload.clone_from(payload),
            _ => trimmed = None,
        }
        let body = match &compressed {
            Some((seq, body)) if *seq == batch.seq => body.clone(),
            _ => {
                let body = gzip(&batch.payload);
                compressed = Some((batch.seq, body.clone()));
                body
            }
        };
        let stream = shared.lock().spool.stream_id();
        let Some(s) = sender.as_mut() else { continue };
        let request =
            tokio::time::timeout(REQUEST_TIMEOUT, post(s, &endpoint, stream, batch.seq, body));
        let Some(result) = unless_stopped(&shared, request).await else {
            break;
        };
        let outcome = match result {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                sender = None;
                Outcome::Retry(e)
            }
            Err(_) => {
                sender = None;
                Outcome::Retry(format!("no reply within {REQUEST_TIMEOUT:?}"))
            }
        };
        match outcome {
            Outcome::Stored { duplicate } => {
                backoff.reset();
                compressed = None;
                trimmed = None;
                last_refusal = None;
                let counter = if duplicate {
                    &shared.counters.duplicate
                } else {
                    &shared.counters.acked
                };
                counter.fetch_add(1, Ordering::Relaxed);
                log.acknowledged(batch.seq);
                shared
                    .counters
                    .last_ack_ms
                    .store(super::spool::unix_ms_now(), Ordering::Relaxed);
                let mut inner = shared.lock();
                if let Err(e) = inner.spool.ack(batch.seq) {
                    inner.last_error = Some(e.to_string());
                }
            }
            Outcome::TooLarge(reply) => {
                backoff.reset();
                compressed = None;
                trimmed = None;
                let split = shared
                    .lock()
                    .spool
                    .split(&batch, super::spool::unix_ms_now());
                match split {
                    Ok(Some([a, b])) => {
                        shared.counters.split.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            "collector refused batch {} of {} bytes as too \
                             large ({}); split into batches {a} and {b}",
                            batch.seq,
                            batch.payload.len(),
                            first_line(&reply)
                        );
                    }
                    Ok(None) => {
                        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        set_aside_whole(&mut shared.lock(), &batch, &reply);
                    }
                    Err(e) => {
                        tracing::error!("uplink spool: cannot split batch {}: {e}", batch.seq);
                        shared.lock().last_error = Some(e.to_string());
                        shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                        wait_or_stop(&shared, backoff.next_delay()).await;
                    }
                }
            }
            Outcome::BadLine(line, reply) => {
                backoff.reset();
                compressed = None;
                let mut inner = shared.lock();
                let lines: Vec<&[u8]> = batch.payload.split_inclusive(|b| *b == b'\n').collect();
                match lines.get(line.wrapping_sub(1)) {
                    Some(bad) => {
                        shared
                            .counters
                            .lines_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        let path = inner.spool.set_aside(batch.seq, bad, &reply);
                        tracing::error!(
                            "collector refused line {line} of batch {} ({}); \
                             that event is set aside{}, the other {} are sent again",
                            batch.seq,
                            first_line(&reply),
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
                            trimmed = None;
                            if let Err(e) = inner.spool.ack(batch.seq) {
                                inner.last_error = Some(e.to_string());
                            }
                        } else {
                            trimmed = Some((batch.seq, rest));
                        }
                    }
                    None => {
                        // A line the batch does not have: the collector says the batch is
                        // malformed without saying where; set it aside whole.
                        trimmed = None;
                        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        set_aside_whole(&mut inner, &batch, &reply);
                    }
                }
            }
            Outcome::Refused(status, reason) => {
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                if last_refusal != Some(status) {
                    tracing::error!(
                        "collector refused batch {} ({reason}); it is kept and \
                         retried with backoff",
                        batch.seq
                    );
                }
                last_refusal = Some(status);
                let delay = backoff.next_delay();
                log.failed(&reason, delay, true);
                shared.lock().last_error = Some(reason);
                wait_or_stop(&shared, delay).await;
            }
            Outcome::Retry(reason) => {
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.next_delay();
                log.failed(&reason, delay, false);
                shared.lock().last_error = Some(reason);
                wait_or_stop(&shared, delay).await;
            }
        }
    }
    shared.counters.connected.store(0, Ordering::Relaxed);
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
        429 | 500..=599 => Outcome::Retry(format!("HTTP {status}: {}", reply.trim())),
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
            format!("{:?}", ServerName::try_from("collector").expect("name"))
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
        assert!(matches!(classify(429, String::new()), Outcome::Retry(_)));
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
