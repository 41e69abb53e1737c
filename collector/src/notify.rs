//! Notification delivery from the durable outbox.
//!
//! Incident changes insert outbox rows in the same transaction as the change. A worker polls due
//! rows, delivers each to its receiver and marks it delivered, or records the failure and retries
//! with exponential backoff (`notify.retry_min` doubling up to `notify.retry_max`). Rows survive
//! restarts. Channels: Alertmanager v2 (`POST {url}/api/v2/alerts`, and every
//! `notify.resend_interval` a refresh of all unresolved incidents), signed webhooks in the
//! Alertmanager webhook shape, and RFC 5424 syslog over UDP or TCP (octet counting).

use crate::incident::IncidentNotice;
use crate::metrics::Metrics;
use crate::store::{OutboxItem, Store};
use crate::util::{format_ms, hex, now_ms, sha256_hex};
use bytes::Bytes;
use crossline_config::collector::{CollectorConfig, Receiver, ReceiverKind, SyslogProtocol};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Delivery errors (recorded on the outbox row, then retried).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The receiver could not be reached or timed out.
    #[error("{0}")]
    Transport(String),
    /// The receiver answered with an error status.
    #[error("receiver answered HTTP {0}: {1}")]
    Status(u16, String),
    /// The outbox names a receiver that is no longer configured.
    #[error("receiver {0:?} is not configured")]
    UnknownReceiver(String),
}

/// The Alertmanager labels of an incident.
pub fn labels(n: &IncidentNotice) -> Value {
    json!({
        "alertname": "CrosslineIncident",
        "incident_id": n.id.to_string(),
        "kind": n.kind,
        "severity": n.severity,
        "grade": n.grade,
        "gateway": n.gateway,
        "enterprise": n.enterprise.clone().unwrap_or_else(|| "none".into()),
        "receiver_route": n.receiver_route(),
    })
}

/// The Alertmanager annotations of an incident.
pub fn annotations(n: &IncidentNotice) -> Value {
    json!({
        "summary": n.summary,
        "deadline_at": format_ms(n.deadline_at_ms),
        "deadline_at_beijing": crate::report::format_beijing(n.deadline_at_ms),
        "late_arrival": n.late_arrival.to_string(),
        "discovered_at": format_ms(n.discovered_at_ms),
        "recipient": n.recipient,
        "alerts": n.alert_count.to_string(),
        "export_bytes": n.bytes.to_string(),
        "persons": n.persons.to_string(),
    })
}

/// One alert of the Alertmanager v2 API for an incident (`endsAt` once resolved).
pub fn alertmanager_alert(n: &IncidentNotice, resolved: bool) -> Value {
    // Offline captures may lie in the future of the collector's clock; Alertmanager refuses a
    // start after its implied end (now + resolve_timeout), so never start later than now.
    let mut a = json!({
        "labels": labels(n),
        "annotations": annotations(n),
        "startsAt": format_ms(n.discovered_at_ms.min(now_ms())),
    });
    if resolved {
        let end = n.resolved_at_ms.unwrap_or_else(now_ms);
        a["endsAt"] = json!(format_ms(end.max(n.discovered_at_ms + 1)));
    }
    a
}

/// The Alertmanager webhook JSON (version 4) for one incident.
pub fn webhook_body(n: &IncidentNotice, receiver: &str, status: &str) -> Value {
    let resolved = status == "resolved";
    let ends = if resolved {
        format_ms(n.resolved_at_ms.unwrap_or_else(now_ms))
    } else {
        "0001-01-01T00:00:00Z".to_string()
    };
    let fingerprint = sha256_hex(format!("crossline-incident-{}", n.id).as_bytes());
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{incident_id=\"{}\"}}", n.id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"incident_id": n.id.to_string()},
        "commonLabels": labels(n),
        "commonAnnotations": annotations(n),
        "externalURL": "",
        "alerts": [{
            "status": status,
            "labels": labels(n),
            "annotations": annotations(n),
            "startsAt": format_ms(n.discovered_at_ms),
            "endsAt": ends,
            "generatorURL": "",
            "fingerprint": &fingerprint[..16],
        }],
    })
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut mac = ring::hmac::Context::with_key(&key);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(mac.sign().as_ref()))
}

fn sd_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// An RFC 5424 syslog line (facility local0) for an incident.
pub fn syslog_message(n: &IncidentNotice, status: &str, host: &str, now: i64) -> String {
    let sev = match n.severity.as_str() {
        "crit" => 2,
        "high" => 3,
        "med" => 4,
        "low" => 5,
        _ => 6,
    };
    let pri = 16 * 8 + sev;
    format!(
        "<{pri}>1 {} {} crossline-collector {} INCIDENT [crossline@32473 incident_id=\"{}\" status=\"{}\" kind=\"{}\" severity=\"{}\" grade=\"{}\" gateway=\"{}\" enterprise=\"{}\" deadline_at=\"{}\"] {}",
        format_ms(now),
        if host.is_empty() { "-" } else { host },
        std::process::id(),
        n.id,
        sd_escape(status),
        sd_escape(&n.kind),
        sd_escape(&n.severity),
        sd_escape(&n.grade),
        sd_escape(&n.gateway),
        sd_escape(n.enterprise.as_deref().unwrap_or("none")),
        format_ms(n.deadline_at_ms),
        n.summary.replace(['\n', '\r'], " "),
    )
}

/// The notifier: HTTP client plus configuration.
#[derive(Debug)]
pub struct Notifier {
    client: Client<HttpConnector, Full<Bytes>>,
    config: Arc<CollectorConfig>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    hostname: String,
    /// TLS client configs of `https://` receivers, by receiver name.
    tls: HashMap<String, Arc<rustls::ClientConfig>>,
}

/// A TLS client config trusting the CAs of one PEM file.
fn tls_client(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in crate::tls::load_certs(ca).map_err(|e| e.to_string())? {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Notifier {
    /// A notifier over the store.
    pub fn new(
        config: Arc<CollectorConfig>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Notifier {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.notify.timeout));
        let client = Client::builder(TokioExecutor::new()).build(http);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut tls = HashMap::new();
        for r in &config.receivers {
            if let Some(ca) = &r.ca {
                match tls_client(ca) {
                    Ok(c) => {
                        tls.insert(r.name.clone(), c);
                    }
                    Err(e) => tracing::error!(
                        "receiver {}: CA {}: {e}; its deliveries will fail",
                        r.name,
                        ca.display()
                    ),
                }
            }
        }
        Notifier {
            client,
            config,
            store,
            metrics,
            hostname,
            tls,
        }
    }

    /// POST over TLS to an `https://` URL, trusting the receiver's CA.
    async fn post_https(
        &self,
        url: &str,
        tls: Arc<rustls::ClientConfig>,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, NotifyError> {
        let t = |m: String| NotifyError::Transport(format!("{url}: {m}"));
        let uri = req.uri().clone();
        let host = uri.host().ok_or_else(|| t("no host".into()))?.to_string();
        let port = uri.port_u16().unwrap_or(443);
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls_pki_types::ServerName::try_from(bare.clone())
            .map_err(|e| t(format!("bad server name: {e}")))?;
        let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| t(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| t(format!("TLS: {e}")))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| t(e.to_string()))?;
        tokio::spawn(conn);
        let (mut parts, body) = req.into_parts();
        parts.uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| t(format!("{e}")))?;
        let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
        if let Ok(v) = hyper::header::HeaderValue::from_str(&authority) {
            parts.headers.insert(hyper::header::HOST, v);
        }
        sender
            .send_request(hyper::Request::from_parts(parts, body))
            .await
            .map_err(|e| t(e.to_string()))
    }

    async fn post(
        &self,
        receiver: &str,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<(), NotifyError> {
        let mut req = hyper::Request::post(url).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NotifyError::Transport(format!("bad request for {url}: {e}")))?;
        let resp = if url.starts_with("https://") {
            let tls = self.tls.get(receiver).cloned().ok_or_else(|| {
                NotifyError::Transport(format!("{url}: no usable CA for receiver {receiver:?}"))
            })?;
            tokio::time::timeout(self.config.notify.timeout, self.post_https(url, tls, req))
                .await
                .map_err(|_| NotifyError::Transport(format!("{url}: timed out")))??
        } else {
            tokio::time::timeout(self.config.notify.timeout, self.client.request(req))
                .await
                .map_err(|_| NotifyError::Transport(format!("{url}: timed out")))?
                .map_err(|e| NotifyError::Transport(format!("{url}: {e}")))?
        };
        let status = resp.status();
        let body = tokio::time::timeout(self.config.notify.timeout, resp.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(NotifyError::Status(status.as_u16(), text))
        }
    }

    async fn syslog(
        &self,
        address: &str,
        protocol: SyslogProtocol,
        msg: String,
    ) -> Result<(), NotifyError> {
        let t = |e: std::io::Error| NotifyError::Transport(format!("syslog {address}: {e}"));
        let work = async {
            match protocol {
                SyslogProtocol::Udp => {
                    let target = tokio::net::lookup_host(address)
                        .await
                        .map_err(t)?
                        .next()
                        .ok_or_else(|| {
                            NotifyError::Transport(format!("syslog {address}: no address"))
                        })?;
                    let bind = if target.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(t)?;
                    sock.send_to(msg.as_bytes(), target).await.map_err(t)?;
                }
                SyslogProtocol::Tcp => {
                    let mut s = tokio::net::TcpStream::connect(address).await.map_err(t)?;
                    let framed = format!("{} {msg}", msg.len());
                    s.write_all(framed.as_bytes()).await.map_err(t)?;
                    s.flush().await.map_err(t)?;
                    s.shutdown().await.map_err(t)?;
                }
            }
            Ok(())
        };
        tokio::time::timeout(self.config.notify.timeout, work)
            .await
            .map_err(|_| NotifyError::Transport(format!("syslog {address}: timed out")))?
    }

    fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.config.receivers.iter().find(|r| r.name == name)
    }

    /// Deliver one outbox item.
    pub async fn deliver(&self, item: &OutboxItem) -> Result<(), NotifyError> {
        let r = self
            .receiver(&item.receiver)
            .ok_or_else(|| NotifyError::UnknownReceiver(item.receiver.clone()))?;
        let resolved = item.event == "resolved";
        match &r.kind {
            ReceiverKind::Alertmanager { url } => {
                let body =
                    serde_json::to_vec(&json!([alertmanager_alert(&item.incident, resolved)]))
                        .unwrap_or_default();
                self.post(&r.name, &format!("{url}/api/v2/alerts"), body, &[])
                    .await
            }
            ReceiverKind::Webhook { url, secret } => {
                let body = serde_json::to_vec(&webhook_body(&item.incident, &r.name, &item.event))
                    .unwrap_or_default();
                let ts = (now_ms() / 1000).to_string();
                let sig = signature(secret.as_bytes(), &ts, &body);
                self.post(
                    &r.name,
                    url,
                    body,
                    &[
                        ("x-crossline-timestamp", ts),
                        ("x-crossline-signature", sig),
                    ],
                )
                .await
            }
            ReceiverKind::Syslog { address, protocol } => {
                let msg = syslog_message(&item.incident, &item.event, &self.hostname, now_ms());
                self.syslog(address, *protocol, msg).await
            }
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let n = &self.config.notify;
        let factor = 2u32.saturating_pow(attempts.min(20));
        n.retry_min.saturating_mul(factor).min(n.retry_max)
    }

    /// One pass over due outbox rows; returns how many were delivered.
    pub async fn run_once(&self) -> usize {
        let store = self.store.clone();
        let now = now_ms();
        let due = match tokio::task::spawn_blocking(move || store.due_notifications(now, 200)).await
        {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!("outbox: {e}");
                return 0;
            }
            Err(_) => return 0,
        };
        let mut delivered = 0;
        for item in due {
            let channel = self
                .receiver(&item.receiver)
                .map_or("webhook", |r| r.kind.channel());
            let result = self.deliver(&item).await;
            self.metrics.notification(channel, result.is_ok());
            let store = self.store.clone();
            let id = item.id;
            let write = match result {
                Ok(()) => {
                    delivered += 1;
                    tokio::task::spawn_blocking(move || store.mark_delivered(id, now_ms())).await
                }
                Err(e @ NotifyError::UnknownReceiver(_)) => {
                    tracing::error!("notification {id} dropped: {e}");
                    let msg = e.to_string();
                    tokio::task::spawn_blocking(move || store.mark_dropped(id, now_ms(), &msg))
                        .await
                }
                Err(e) => {
                    let next = now_ms()
                        + i64::try_from(self.backoff(item.attempts).as_millis())
                            .unwrap_or(i64::MAX / 2);
                    if item.attempts < 3 || item.attempts % 10 == 0 {
                        tracing::warn!(
                            "notification {id} to {} failed (attempt {}): {e}",
                            item.receiver,
                            item.attempts + 1
                        );
                    }
                    let msg = e.to_string();
                    tokio::task::spawn_blocking(move || store.mark_failed(id, next, &msg)).await
                }
            };
            if let Ok(Err(e)) = write {
                tracing::error!("outbox update: {e}");
            }
        }
        delivered
    }

    /// Re-send every unresolved incident to every Alertmanager receiver it routes to.
    pub async fn resend_alertmanager(&self) {
        let ams: Vec<&Receiver> = self
            .config
            .receivers
            .iter()
            .filter(|r| matches!(r.kind, ReceiverKind::Alertmanager { .. }))
            .collect();
        if ams.is_empty() {
            return;
        }
        let store = self.store.clone();
        let open = match tokio::task::spawn_blocking(move || store.unresolved_incidents()).await {
            Ok(Ok(o)) => o,
            _ => return,
        };
        for r in ams {
            let ReceiverKind::Alertmanager { url } = &r.kind else {
                continue;
            };
            let alerts: Vec<Value> = open
                .iter()
                .filter(|n| {
                    let sev = crossline_config::collector::parse_severity(&n.severity)
                        .unwrap_or(crossline_config::event::Severity::Info);
                    crate::incident::route(
                        &self.config,
                        n.enterprise.as_deref(),
                        sev,
                        n.green_channel,
                    )
                    .contains(&r.name)
                })
                .map(|n| alertmanager_alert(n, false))
                .collect();
            if alerts.is_empty() {
                continue;
            }
            let body = serde_json::to_vec(&Value::Array(alerts)).unwrap_or_default();
            let ok = self
                .post(&r.name, &format!("{url}/api/v2/alerts"), body, &[])
                .await;
            self.metrics.notification("alertmanager", ok.is_ok());
        }
    }

    /// Run until `shutdown` fires: poll the outbox every 100 ms (an incident's notification
    /// waits for the next poll: part of the packet -> notification latency), refresh
    /// Alertmanager every `resend_interval`.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resend = tokio::time::interval(self.config.notify.resend_interval);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resend.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = poll.tick() => { self.run_once().await; }
                _ = resend.tick() => { self.resend_alertmanager().await; }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_reference() {
        // RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?"),
        // split at the '.' the signature inserts between timestamp and body.
        let s = signature(b"Jefe", "what do ya want for nothing?", b"")
            .strip_prefix("sha256=")
            .map(str::to_string);
        assert_eq!(s.map(|x| x.len()), Some(64));
        let ok = signature(b"Jefe", "what do ya want for nothing", b"?");
        assert_ne!(ok, signature(b"Jefe", "what do ya want for nothing", b"!"));
        // "what do ya want for nothing" + "." + "" is not the RFC message, so compare the
        // construction with an independent computation instead.
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k");
        let want = format!(
            "sha256={}",
            hex(ring::hmac::sign(&k, b"1700000000.{\"a\":1}").as_ref())
        );
        assert_eq!(signature(b"k", "1700000000", b"{\"a\":1}"), want);
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex(ring::hmac::sign(&k, b"what do ya want for nothing?").as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn syslog_line_is_rfc5424() {
        let n = IncidentNotice {
            id: 7,
            gateway: "gw-a".into(),
            enterprise: None,
            kind: "unfiled_export".into(),
            recipient: "203.0.113.5".into(),
            severity: "high".into(),
            grade: "compliance".into(),
            status: "open".into(),
            discovered_at_ms: 0,
            deadline_at_ms: 1000,
            resolved_at_ms: None,
            summary: "sent \"x\"]".into(),
            green_channel: false,
            alert_count: 1,
            bytes: 10,
            persons: 0,
            late_arrival: false,
        };
        let m = syslog_message(&n, "firing", "host", 0);
        assert!(
            m.starts_with("<131>1 1970-01-01T00:00:00.000Z host crossline-collector "),
            "{m}"
        );
        assert!(m.contains("incident_id=\"7\""), "{m}");
    }
}
