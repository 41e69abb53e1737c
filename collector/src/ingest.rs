//! `POST /v1/events`: validate a batch of JSON lines from one agent, store it durably, then
//! acknowledge.
//!
//! The whole batch is refused on any error (nothing half-stored): 400 malformed line or missing
//! headers, 403 event for another gateway (or a certificate for an unknown gateway), 413 body
//! over the limit (checked on the wire and again after gunzip, every gzip member), 415
//! unsupported encoding or content type, 429 per-gateway rate or concurrency limit, 503 store
//! unavailable. The error body is `{"error": "..."}` naming the line and what was expected
//! (a 413 also carries `max_body`).
//!
//! Lines are read in Suricata's EVE layout (what agents write), or in the layout agents wrote
//! before it (crossline's fields at the top level): an agent upgraded after its collector keeps
//! delivering, and its spool too. Such events are stored as received, counted in
//! `crossline_collector_ingest_legacy_events_total{gateway}`, and the first batch of each
//! gateway in that layout is logged at info (upgrade the agent).
//!
//! A bad timestamp does not refuse the batch: an event whose timestamp is not RFC 3339 or lies
//! outside `time.min_year ..= time.max_year` is stored with its arrival time as its time and
//! flagged (`unparseable` / `out_of_range`); one more than `time.future_skew` ahead of its
//! arrival is stored as it is and flagged `future`. Each is counted in
//! `crossline_ingest_timestamp_problems_total{problem}`.

use crate::metrics::{reason, Metrics};
use crate::store::{Batch, BatchEvent, IngestOutcome, Store, TimeFlag};
use crate::util::{now_ms, parse_rfc3339_ms};
use bytes::Bytes;
use crossline_config::collector::{CollectorConfig, TimeConfig};
use crossline_config::event::{Event, EventType, Layout};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Header carrying the agent's spool id.
pub const STREAM_HEADER: &str = "x-crossline-stream";
/// Header carrying the batch number within the stream.
pub const SEQUENCE_HEADER: &str = "x-crossline-sequence";

/// Per-gateway limits: an events/s token bucket and a concurrent-request cap.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    concurrent: usize,
    state: Mutex<HashMap<String, GatewayState>>,
}

#[derive(Debug)]
struct GatewayState {
    tokens: f64,
    last: Instant,
    inflight: Arc<Semaphore>,
}

/// Why a request was limited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitExceeded {
    /// Too many events per second; retry after this many seconds.
    Rate(u64),
    /// Too many requests in flight.
    Concurrency,
}

impl Limiter {
    /// A limiter with the configured rate, burst and concurrency.
    pub fn new(rate: f64, burst: f64, concurrent: usize) -> Limiter {
        Limiter {
            rate,
            burst,
            concurrent,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Take a concurrency permit for the gateway.
    pub fn enter(&self, gateway: &str) -> Result<tokio::sync::OwnedSemaphorePermit, LimitExceeded> {
        let sem = {
            let mut st = self.state.lock().map_err(|_| LimitExceeded::Concurrency)?;
            let s = st
                .entry(gateway.to_string())
                .or_insert_with(|| GatewayState {
                    tokens: self.burst,
                    last: Instant::now(),
                    inflight: Arc::new(Semaphore::new(self.concurrent)),
                });
            s.inflight.clone()
        };
        sem.try_acquire_owned()
            .map_err(|_| LimitExceeded::Concurrency)
    }

    /// Take `events` tokens (at most `burst`, so a big batch can pass on a full bucket).
    pub fn take(&self, gateway: &str, events: usize, now: Instant) -> Result<(), LimitExceeded> {
        let mut st = self.state.lock().map_err(|_| LimitExceeded::Rate(1))?;
        let s = st
            .entry(gateway.to_string())
            .or_insert_with(|| GatewayState {
                tokens: self.burst,
                last: now,
                inflight: Arc::new(Semaphore::new(self.concurrent)),
            });
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
        s.last = now;
        let cost = (events as f64).min(self.burst);
        if s.tokens + 1e-9 < cost {
            let wait = ((cost - s.tokens) / self.rate).ceil().max(1.0);
            return Err(LimitExceeded::Rate(wait as u64));
        }
        s.tokens -= cost;
        Ok(())
    }
}

/// The ingest service shared by every connection.
#[derive(Debug)]
pub struct Ingest {
    /// Enterprise-wide sketches (merged after their batch is stored).
    sketches: Arc<crate::sketch::Sketches>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: Arc<CollectorConfig>,
    /// The gateways accepted: `config.gateways`, replaced by a SIGHUP ([`Ingest::set_gateways`]).
    gateways: std::sync::RwLock<Arc<Vec<String>>>,
    limiter: Limiter,
    window: TimeWindow,
    /// Gateways whose batches in the layout before EVE's were already logged (once each).
    legacy_logged: Mutex<std::collections::HashSet<String>>,
}

/// The events of a decoded body and how many of them were in the layout before EVE's.
#[derive(Debug)]
struct Decoded {
    events: Vec<BatchEvent>,
    legacy: u64,
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message.into() }))
}

/// A refusal: status, metric reason, message.
type Refusal = (StatusCode, &'static str, String);

/// The plausible time window of events and the future skew, in Unix ms.
#[derive(Debug, Clone, Copy)]
pub struct TimeWindow {
    /// First plausible instant (1 January of `min_year`, UTC).
    pub min_ms: i64,
    /// First implausible instant (1 January of `max_year + 1`, UTC).
    pub end_ms: i64,
    /// Allowed lead of an event over its arrival.
    pub skew_ms: i64,
}

impl TimeWindow {
    /// From the `[time]` config.
    pub fn new(t: &TimeConfig) -> TimeWindow {
        let day = 86_400_000i64;
        TimeWindow {
            min_ms: crossline_config::time::days_from_civil(t.min_year, 1, 1).saturating_mul(day),
            end_ms: crossline_config::time::days_from_civil(t.max_year.saturating_add(1), 1, 1)
                .saturating_mul(day),
            skew_ms: i64::try_from(t.future_skew.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The time to store for a timestamp text received at `received_ms`, and its problem.
    pub fn judge(&self, timestamp: &str, received_ms: i64) -> (i64, Option<TimeFlag>) {
        match parse_rfc3339_ms(timestamp) {
            None => (received_ms, Some(TimeFlag::Unparseable)),
            Some(ms) if ms < self.min_ms || ms >= self.end_ms => {
                (received_ms, Some(TimeFlag::OutOfRange))
            }
            Some(ms) if ms > received_ms.saturating_add(self.skew_ms) => {
                (ms, Some(TimeFlag::Future))
            }
            Some(ms) => (ms, None),
        }
    }
}

fn header_u64(h: &HeaderMap, name: &str) -> Result<u64, String> {
    let v = h
        .get(name)
        .ok_or_else(|| format!("missing header {name}: expected an unsigned 64-bit integer"))?;
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("header {name}: {v:?} is not an unsigned 64-bit integer"))
}

/// Decode (gunzip when asked, every member, bounded) and parse the body into events.
fn decode(
    body: &[u8],
    gzip: bool,
    max: u64,
    gateway: &str,
    received_ms: i64,
    window: &TimeWindow,
) -> Result<Decoded, Refusal> {
    let owned;
    let data: &[u8] = if gzip {
        let mut out = Vec::new();
        // Concatenated gzip members (RFC 1952 section 2.2) are one stream: read them all,
        // with the same bound on the total.
        let mut dec = flate2::read::MultiGzDecoder::new(body).take(max + 1);
        dec.read_to_end(&mut out).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                reason::MALFORMED,
                format!("body: invalid gzip stream: {e}"),
            )
        })?;
        if out.len() as u64 > max {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                reason::TOO_LARGE,
                format!("body: more than {max} bytes after gunzip"),
            ));
        }
        owned = out;
        &owned
    } else {
        body
    };
    let mut events = Vec::new();
    let mut legacy = 0u64;
    for (i, raw) in data.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = std::str::from_utf8(line).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                reason::MALFORMED,
                format!("line {line_no}: not UTF-8 ({e}); expected one JSON event per line"),
            )
        })?;
        let (event, layout) = Event::from_json(text).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                reason::MALFORMED,
                format!(
                    "line {line_no}: {e}; expected a crossline event (flow, alert, stats or sketch) in EVE's layout"
                ),
            )
        })?;
        if layout == Layout::Legacy {
            legacy += 1;
        }
        if event.gateway != gateway {
            return Err((
                StatusCode::FORBIDDEN,
                reason::WRONG_GATEWAY,
                format!(
                    "line {line_no}: event for gateway {:?}, but the client certificate is for {gateway:?}",
                    event.gateway
                ),
            ));
        }
        let (ts_ms, time_flag) = window.judge(&event.timestamp, received_ms);
        let missing = match event.event_type {
            EventType::Alert if event.alert.is_none() => Some("alert"),
            EventType::Stats if event.stats.is_none() => Some("stats"),
            EventType::Sketch if event.sketch.is_none() => Some("sketch"),
            _ => None,
        };
        if let Some(field) = missing {
            return Err((
                StatusCode::BAD_REQUEST,
                reason::MALFORMED,
                format!("line {line_no}: event_type {field:?} needs an `{field}` object"),
            ));
        }
        events.push(BatchEvent {
            event,
            ts_ms,
            json: text.to_string(),
            time_flag,
        });
    }
    Ok(Decoded { events, legacy })
}

enum BodyError {
    TooLarge,
    Read(String),
}

/// Read a body of at most `max` bytes. A larger body is drained (up to 4 times the limit, for
/// at most 10 s) so that the client can read the 413 instead of a reset connection.
async fn read_body(mut body: Incoming, max: u64) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    let drain_cap = max.saturating_mul(4);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(None) => break,
            Err(_) if seen > max => return Err(BodyError::TooLarge),
            Err(_) => return Err(BodyError::Read("timed out".into())),
        };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len() as u64);
            if seen <= max {
                buf.extend_from_slice(&data);
            } else if seen > drain_cap {
                return Err(BodyError::TooLarge);
            }
        }
    }
    if seen > max {
        return Err(BodyError::TooLarge);
    }
    Ok(buf.freeze())
}

impl Ingest {
    /// The service.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        config: Arc<CollectorConfig>,
    ) -> Ingest {
        let l = &config.limits;
        let limiter = Limiter::new(
            l.events_per_second_per_gateway,
            l.burst,
            l.concurrent_per_gateway,
        );
        let window = TimeWindow::new(&config.time);
        Ingest {
            sketches: Arc::new(crate::sketch::Sketches::new(
                store.clone(),
                crate::util::now_ms(),
            )),
            store,
            metrics,
            gateways: std::sync::RwLock::new(Arc::new(config.gateways.clone())),
            config,
            limiter,
            window,
            legacy_logged: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Log, once per gateway, that it sends events in the layout before EVE's.
    fn log_legacy(&self, gateway: &str, events: u64) {
        let first = match self.legacy_logged.lock() {
            Ok(mut seen) => seen.insert(gateway.to_string()),
            Err(p) => p.into_inner().insert(gateway.to_string()),
        };
        if first {
            tracing::info!(
                gateway,
                events,
                "gateway {gateway} sends events in the layout before Suricata's EVE layout \
                 ({events} in this batch): they are stored and counted in \
                 crossline_collector_ingest_legacy_events_total; upgrade crossline-agent on \
                 {gateway} so that its events reach EVE pipelines (logged once per gateway)"
            );
        }
    }

    /// Merge the sketches of a stored batch (see [`crate::sketch`]). A failure is logged and
    /// counted: the batch stays stored, and the gateway's next sketch (complete figures, not a
    /// delta) brings the merge up to date.
    async fn merge_sketches(&self, batch: Arc<Batch>) {
        let sketches = self.sketches.clone();
        let now = batch.received_at_ms;
        let r = tokio::task::spawn_blocking(move || sketches.apply(&batch, now)).await;
        match r {
            Ok(Ok(report)) => self.metrics.sketches(&report),
            Ok(Err(e)) => {
                eprintln!("crossline-collector: sketch merge: {e}");
                self.metrics.sketch_failed();
            }
            Err(e) => {
                eprintln!("crossline-collector: sketch merge task: {e}");
                self.metrics.sketch_failed();
            }
        }
    }

    /// Accept the gateways of a reloaded config from the next request on.
    pub fn set_gateways(&self, gateways: Vec<String>) {
        let new = Arc::new(gateways);
        match self.gateways.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }

    fn gateways(&self) -> Arc<Vec<String>> {
        match self.gateways.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Handle one request from the gateway named by the client certificate (`None` when the
    /// certificate has no CN).
    pub async fn handle(
        self: Arc<Self>,
        gateway: Option<Arc<str>>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let path = req.uri().path();
        if path == "/v1/health" && req.method() == Method::GET {
            return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})));
        }
        if path != "/v1/events" {
            return Ok(error(
                StatusCode::NOT_FOUND,
                format!("no endpoint {path}; expected POST /v1/events"),
            ));
        }
        if req.method() != Method::POST {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "expected POST");
            r.headers_mut()
                .insert("allow", HeaderValue::from_static("POST"));
            return Ok(r);
        }
        let sequence = req
            .headers()
            .get(SEQUENCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .chars()
            .take(24)
            .collect::<String>();
        let from = gateway.clone();
        Ok(match self.events(gateway, req).await {
            Ok(r) => r,
            Err((status, why, message)) => {
                self.metrics.rejected(why);
                let gateway = from.as_deref().unwrap_or("(certificate without a gateway)");
                // Back-pressure is retried by the agent and counted; a refusal is logged.
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE
                {
                    tracing::debug!(
                        gateway,
                        sequence,
                        status = status.as_u16(),
                        reason = why,
                        "batch from {gateway} deferred: {message}"
                    );
                } else {
                    tracing::warn!(
                        gateway,
                        sequence,
                        status = status.as_u16(),
                        reason = why,
                        "refused batch {sequence} from gateway {gateway}: HTTP {} {why}: {message}",
                        status.as_u16()
                    );
                }
                let mut r = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    json_response(
                        status,
                        &json!({"error": message, "max_body": self.config.limits.max_body}),
                    )
                } else {
                    error(status, message)
                };
                if status == StatusCode::TOO_MANY_REQUESTS {
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                }
                r
            }
        })
    }

    async fn events(
        &self,
        gateway: Option<Arc<str>>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, reason::MALFORMED, m);
        let known = self.gateways();
        let Some(gateway) = gateway.filter(|g| known.iter().any(|x| **x == **g)) else {
            return Err((
                StatusCode::FORBIDDEN,
                reason::UNKNOWN_GATEWAY,
                "the client certificate names no gateway listed in the collector config".into(),
            ));
        };
        let h = req.headers();
        let stream = header_u64(h, STREAM_HEADER).map_err(bad)?;
        let sequence = header_u64(h, SEQUENCE_HEADER).map_err(bad)?;
        if sequence == 0 {
            return Err(bad(format!(
                "header {SEQUENCE_HEADER}: sequences start at 1"
            )));
        }
        let gzip = body_encoding(h)?;
        let max = self.config.limits.max_body;
        let declared = h
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let _permit = self.limiter.enter(&gateway).map_err(|_| {
            (
                StatusCode::TOO_MANY_REQUESTS,
                reason::CONCURRENCY,
                format!(
                    "more than {} concurrent requests from gateway {gateway:?}",
                    self.config.limits.concurrent_per_gateway
                ),
            )
        })?;
        let body = read_body(req.into_body(), max).await.map_err(|e| match e {
            BodyError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                reason::TOO_LARGE,
                match declared {
                    Some(len) => format!("body of {len} bytes is over the limit of {max} bytes"),
                    None => format!("body is over the limit of {max} bytes"),
                },
            ),
            BodyError::Read(m) => bad(format!("body could not be read: {m}")),
        })?;
        let gw = gateway.clone();
        let received_at_ms = now_ms();
        let window = self.window;
        let Decoded { events, legacy } = tokio::task::spawn_blocking(move || {
            decode(&body, gzip, max, &gw, received_at_ms, &window)
        })
        .await
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                reason::STORE,
                format!("decoder failed: {e}"),
            )
        })??;
        if let Err(LimitExceeded::Rate(_) | LimitExceeded::Concurrency) =
            self.limiter.take(&gateway, events.len(), Instant::now())
        {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                reason::RATE_LIMITED,
                format!(
                    "gateway {gateway:?} is over its rate of {} events/s; retry later",
                    self.config.limits.events_per_second_per_gateway
                ),
            ));
        }
        let batch = Arc::new(Batch {
            gateway: gateway.to_string(),
            stream,
            sequence,
            received_at_ms,
            events,
        });
        let store = self.store.clone();
        let b = batch.clone();
        let outcome = tokio::task::spawn_blocking(move || store.ingest(b))
            .await
            .map_err(|e| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    reason::STORE,
                    format!("store task failed: {e}"),
                )
            })?
            .map_err(|e| {
                tracing::error!("ingest from {gateway}: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    reason::STORE,
                    format!("store unavailable: {e}"),
                )
            })?;
        let now_secs = batch.received_at_ms as f64 / 1000.0;
        Ok(match outcome {
            IngestOutcome::Stored(n) => {
                self.metrics.stored(&batch, now_secs);
                if legacy > 0 {
                    self.metrics.legacy_events(&gateway, legacy);
                    self.log_legacy(&gateway, legacy);
                }
                if batch
                    .events
                    .iter()
                    .any(|e| e.event.event_type == crossline_config::event::EventType::Sketch)
                {
                    self.merge_sketches(batch.clone()).await;
                }
                json_response(StatusCode::OK, &json!({"status": "stored", "events": n}))
            }
            IngestOutcome::Duplicate => {
                self.metrics.duplicate(&gateway, now_secs);
                json_response(StatusCode::OK, &json!({"status": "duplicate"}))
            }
        })
    }
}

/// The body's encoding from `content-type` (NDJSON only) and `content-encoding` (gzip or
/// none): true for gzip.
fn body_encoding(h: &HeaderMap) -> Result<bool, Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, reason::MALFORMED, m);
    match h.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?")) {
        None => {
            return Err(bad(
                "missing header content-type: expected application/x-ndjson".into(),
            ))
        }
        Some(ct) => {
            let base = ct.split(';').next().unwrap_or("").trim();
            if !base.eq_ignore_ascii_case("application/x-ndjson") {
                return Err((
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    reason::UNSUPPORTED,
                    format!("content-type {ct:?} is not supported; expected application/x-ndjson"),
                ));
            }
        }
    }
    Ok(
        match h
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        {
            None => false,
            Some(e) if e == "identity" => false,
            Some(e) if e == "gzip" => true,
            Some(e) => {
                return Err((
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    reason::UNSUPPORTED,
                    format!("content-encoding {e:?} is not supported; expected gzip or none"),
                ))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn window() -> TimeWindow {
        TimeWindow::new(&TimeConfig {
            future_skew: Duration::from_secs(600),
            min_year: 1990,
            max_year: 2100,
        })
    }

    fn dec(body: &[u8], gzip: bool, max: u64, gw: &str) -> Result<Vec<BatchEvent>, Refusal> {
        decode(body, gzip, max, gw, 1_772_442_847_118, &window()).map(|d| d.events)
    }

    #[test]
    fn timestamps_are_flagged_not_refused() {
        let w = window();
        let now = 1_772_442_847_118; // 2026-03-02T09:14:07.118Z
        assert_eq!(w.judge("2026-03-02T09:14:07.118Z", now), (now, None));
        // EVE's form (microseconds, `+0000`), what agents write.
        assert_eq!(w.judge("2026-03-02T09:14:07.118042+0000", now), (now, None));
        assert_eq!(w.judge("2026-03-02T17:14:07.118042+0800", now), (now, None));
        assert_eq!(w.judge("2023-05-01T00:00:00Z", now).1, None);
        // 9 minutes ahead is within the skew; 11 minutes is not.
        assert_eq!(w.judge("2026-03-02T09:23:07.118Z", now).1, None);
        assert_eq!(
            w.judge("2026-03-02T09:25:07.118Z", now),
            (now + 11 * 60_000, Some(TimeFlag::Future))
        );
        assert_eq!(
            w.judge("-290308-12-21T19:59:05.225Z", now),
            (now, Some(TimeFlag::Unparseable))
        );
        assert_eq!(
            w.judge("yesterday", now),
            (now, Some(TimeFlag::Unparseable))
        );
        assert_eq!(
            w.judge("1970-01-01T00:00:00Z", now),
            (now, Some(TimeFlag::OutOfRange))
        );
        assert_eq!(
            w.judge("2101-01-01T00:00:00Z", now),
            (now, Some(TimeFlag::OutOfRange))
        );
        assert_eq!(
            w.judge("2100-12-31T23:59:59Z", now).1,
            Some(TimeFlag::Future),
            "2100 is in the window, but ahead of the arrival"
        );
        // In a batch: the bad line is stored flagged, its neighbours as they are.
        let ok = r#"{"timestamp":"2026-03-02T09:14:07.118042+0000","event_type":"stats","host":"gw","stats":{"decoder":{"pkts":1,"bytes":2,"invalid":0},"flow":{"total":0}},"crossline":{"gateway":"gw","stats":{"packets":1,"bytes":2,"flows":0,"evictions":0}}}"#;
        let bad = ok.replace(
            "2026-03-02T09:14:07.118042+0000",
            "-290308-12-21T19:59:05.225Z",
        );
        let events = dec(
            format!("{ok}\n{bad}\n{ok}\n").as_bytes(),
            false,
            1 << 20,
            "gw",
        )
        .expect("stored, not refused");
        let flags: Vec<_> = events.iter().map(|e| e.time_flag).collect();
        assert_eq!(flags, [None, Some(TimeFlag::Unparseable), None]);
    }

    #[test]
    fn every_gzip_member_is_read() {
        let line = |n: u64| {
            format!(
                r#"{{"timestamp":"2026-03-02T09:14:07.118042+0000","event_type":"stats","host":"gw","stats":{{"decoder":{{"pkts":{n},"bytes":2,"invalid":0}},"flow":{{"total":0}}}},"crossline":{{"gateway":"gw","stats":{{"packets":{n},"bytes":2,"flows":0,"evictions":0}}}}}}"#
            )
        };
        let gz = |s: &str| {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(s.as_bytes()).expect("gzip");
            e.finish().expect("gzip")
        };
        let mut body = gz(&format!("{}\n", line(1)));
        body.extend(gz(&format!("{}\n{}\n", line(2), line(3))));
        let events = dec(&body, true, 1 << 20, "gw").expect("two members");
        let packets: Vec<u64> = events
            .iter()
            .filter_map(|e| e.event.stats.as_ref().map(|s| s.packets))
            .collect();
        assert_eq!(packets, [1, 2, 3]);
        // The bound covers the members together.
        let mut bomb = gz(&" ".repeat(600 << 10));
        bomb.extend(gz(&" ".repeat(600 << 10)));
        assert_eq!(
            dec(&bomb, true, 1 << 20, "gw").expect_err("over").0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn token_bucket_refills() {
        let l = Limiter::new(100.0, 200.0, 2);
        let t0 = Instant::now();
        assert!(l.take("gw", 150, t0).is_ok());
        assert!(l.take("gw", 100, t0).is_err());
        assert!(
            l.take("other", 200, t0).is_ok(),
            "gateways have separate buckets"
        );
        assert!(l.take("gw", 100, t0 + Duration::from_secs(1)).is_ok());
        // A batch bigger than the burst passes on a full bucket only.
        assert!(l.take("big", 1000, t0).is_ok());
        assert!(l.take("big", 1000, t0).is_err());
    }

    #[test]
    fn bad_line_is_named() {
        let ok = r#"{"timestamp":"2026-03-02T09:14:07.118042+0000","event_type":"stats","host":"gw","stats":{"decoder":{"pkts":1,"bytes":2,"invalid":0},"flow":{"total":0}},"crossline":{"gateway":"gw","stats":{"packets":1,"bytes":2,"flows":0,"evictions":0}}}"#;
        let body = format!("{ok}\n{{\"timestamp\":1}}\n{ok}\n");
        let err = dec(body.as_bytes(), false, 1 << 20, "gw").expect_err("bad line");
        assert_eq!(err.0, StatusCode::BAD_REQUEST);
        assert!(err.2.starts_with("line 2: "), "{}", err.2);
        let fine = dec(format!("{ok}\n{ok}\n").as_bytes(), false, 1 << 20, "gw").expect("ok");
        assert_eq!(fine.len(), 2);
        let other = dec(ok.as_bytes(), false, 1 << 20, "gw-b").expect_err("wrong gateway");
        assert_eq!(other.0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn legacy_lines_are_read_and_counted() {
        let eve = r#"{"timestamp":"2026-03-02T09:14:07.118042+0000","event_type":"stats","host":"gw","stats":{"decoder":{"pkts":1,"bytes":2,"invalid":0},"flow":{"total":0}},"crossline":{"gateway":"gw","stats":{"packets":1,"bytes":2,"flows":0,"evictions":0}}}"#;
        let legacy = r#"{"timestamp":"2026-03-02T09:14:07.118Z","event_type":"stats","gateway":"gw","stats":{"packets":7,"bytes":2,"flows":0,"evictions":0}}"#;
        let d = decode(
            format!("{eve}\n{legacy}\n{legacy}\n").as_bytes(),
            false,
            1 << 20,
            "gw",
            1_772_442_847_118,
            &window(),
        )
        .expect("both layouts taken");
        assert_eq!(d.legacy, 2);
        assert_eq!(d.events.len(), 3);
        let packets: Vec<u64> = d
            .events
            .iter()
            .filter_map(|e| e.event.stats.as_ref().map(|s| s.packets))
            .collect();
        assert_eq!(packets, [1, 7, 7]);
        // Stored as received: the line's own bytes, not a rewrite.
        assert_eq!(d.events[1].json, legacy);
        assert_eq!(d.events[1].time_flag, None);
        // The gateway check holds for the old layout too.
        let err = dec(legacy.as_bytes(), false, 1 << 20, "gw-b").expect_err("other gateway");
        assert_eq!(err.0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn gzip_bomb_is_refused() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 4 << 20]).expect("compress");
        let gz = enc.finish().expect("finish");
        assert!(gz.len() < 64 << 10);
        let err = dec(&gz, true, 1 << 20, "gw").expect_err("bomb");
        assert_eq!(err.0, StatusCode::PAYLOAD_TOO_LARGE);
        let truncated = &gz[..gz.len() / 2];
        let err = dec(truncated, true, 8 << 20, "gw").expect_err("truncated");
        assert_eq!(err.0, StatusCode::BAD_REQUEST);
    }
}
