//! Prometheus metrics of the collector, on its own registry, bounded labels only.
//!
//! Label values come from closed sets: gateways from the config, enterprises and scenarios from
//! the registry (unknown values become `other`, absent ones `none`), kinds and severities from
//! the event model. Without a registry, enterprise and scenario values are accepted as seen up to
//! [`MAX_SEEN_LABELS`] distinct values, then become `other`. Never an address, host name, flow id
//! or incident id.

use crate::store::{Batch, Gauges};
use crossline_config::collector::CollectorConfig;
use crossline_config::event::{EventType, Severity};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Distinct enterprise / scenario label values accepted when no registry bounds them.
pub const MAX_SEEN_LABELS: usize = 1000;

/// Rejection reasons (the `reason` label).
pub mod reason {
    /// Malformed body or line, missing/bad headers.
    pub const MALFORMED: &str = "malformed";
    /// An event for another gateway than the certificate's.
    pub const WRONG_GATEWAY: &str = "wrong_gateway";
    /// A certificate for a gateway not in the config.
    pub const UNKNOWN_GATEWAY: &str = "unknown_gateway";
    /// Body over the limit (compressed or not).
    pub const TOO_LARGE: &str = "too_large";
    /// Content-Encoding / Content-Type not supported.
    pub const UNSUPPORTED: &str = "unsupported_media";
    /// Events/s token bucket empty.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Too many concurrent requests from one gateway.
    pub const CONCURRENCY: &str = "concurrency";
    /// The store failed.
    pub const STORE: &str = "store_unavailable";
}

/// Every collector metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    batches: IntCounterVec,
    events: IntCounterVec,
    rejections: IntCounterVec,
    export_bytes: IntCounterVec,
    alerts: IntCounterVec,
    incidents_open: IntGaugeVec,
    incidents_overdue: IntGaugeVec,
    notifications: IntCounterVec,
    outbox_pending: IntGauge,
    last_seen: GaugeVec,
    packets: IntCounterVec,
    drops: IntCounterVec,
    bounds: LabelBounds,
    grades: Vec<String>,
    /// Last cumulative stats per gateway (packets) and per (gateway, kind) (drops).
    stats_last: Mutex<HashMap<(String, String), u64>>,
}

#[derive(Debug)]
struct LabelBounds {
    gateways: HashSet<String>,
    enterprises: Option<HashSet<String>>,
    scenarios: Option<HashSet<String>>,
    seen_enterprises: Mutex<HashSet<String>>,
    seen_scenarios: Mutex<HashSet<String>>,
}

fn bounded(
    known: &Option<HashSet<String>>,
    seen: &Mutex<HashSet<String>>,
    v: Option<&str>,
) -> String {
    let Some(v) = v else {
        return "none".to_string();
    };
    match known {
        Some(set) => {
            if set.contains(v) {
                v.to_string()
            } else {
                "other".to_string()
            }
        }
        None => {
            let Ok(mut s) = seen.lock() else {
                return "other".to_string();
            };
            if s.contains(v) {
                return v.to_string();
            }
            if s.len() < MAX_SEEN_LABELS && v.len() <= 64 {
                s.insert(v.to_string());
                return v.to_string();
            }
            "other".to_string()
        }
    }
}

fn counter(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

const DROP_KINDS: [&str; 4] = ["kernel", "interface", "queue", "fragment_table"];

impl Metrics {
    /// Register every metric.
    pub fn new(cfg: &CollectorConfig) -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let batches = counter(
            &r,
            "crossline_ingest_batches_total",
            "Ingest batches by result.",
            &["result"],
        )?;
        let events = counter(
            &r,
            "crossline_ingest_events_total",
            "Events stored, by event type.",
            &["event_type"],
        )?;
        let rejections = counter(
            &r,
            "crossline_ingest_rejections_total",
            "Refused ingest requests, by reason.",
            &["reason"],
        )?;
        let export_bytes = counter(
            &r,
            "crossline_export_bytes_total",
            "Export bytes of flow records, by gateway, enterprise, scenario and verdict.",
            &["gateway", "enterprise", "scenario", "verdict"],
        )?;
        let alerts = counter(
            &r,
            "crossline_alerts_total",
            "Alerts stored, by gateway, enterprise, kind and severity.",
            &["gateway", "enterprise", "kind", "severity"],
        )?;
        let incidents_open = gauge(
            &r,
            "crossline_incidents_open",
            "Incidents not resolved, by grade and severity.",
            &["grade", "severity"],
        )?;
        let incidents_overdue = gauge(
            &r,
            "crossline_incidents_overdue",
            "Open or notified incidents past their deadline, by grade.",
            &["grade"],
        )?;
        let notifications = counter(
            &r,
            "crossline_notifications_total",
            "Notification deliveries by channel and outcome.",
            &["channel", "outcome"],
        )?;
        let outbox_pending = IntGauge::new(
            "crossline_notification_outbox_pending",
            "Notifications not yet delivered.",
        )?;
        r.register(Box::new(outbox_pending.clone()))?;
        let last_seen = GaugeVec::new(
            Opts::new(
                "crossline_agent_last_seen_timestamp_seconds",
                "Unix time of the last batch from each gateway.",
            ),
            &["gateway"],
        )?;
        r.register(Box::new(last_seen.clone()))?;
        let packets = counter(
            &r,
            "crossline_agent_stats_packets_total",
            "Packets seen by each agent (from its stats events).",
            &["gateway"],
        )?;
        let drops = counter(
            &r,
            "crossline_agent_stats_drops_total",
            "Packets dropped by each agent, by kind (from its stats events).",
            &["gateway", "kind"],
        )?;
        // Fleet identity: version (always 1) and start time of this collector.
        let build_info = gauge(
            &r,
            "crossline_collector_build_info",
            "Always 1; the label carries the collector version.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let start_time = prometheus::Gauge::new(
            "crossline_collector_start_time_seconds",
            "Unix time the collector started (its metrics were set up).",
        )?;
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        r.register(Box::new(start_time))?;

        let grades: Vec<String> = cfg.incidents.grades().into_iter().collect();
        for g in &grades {
            incidents_overdue.with_label_values(&[g.as_str()]).set(0);
            for s in SEVERITIES {
                incidents_open
                    .with_label_values(&[g.as_str(), s.as_str()])
                    .set(0);
            }
        }
        for result in ["stored", "duplicate", "rejected"] {
            batches.with_label_values(&[result]).inc_by(0);
        }
        for t in ["flow", "alert", "stats"] {
            events.with_label_values(&[t]).inc_by(0);
        }
        for channel in ["alertmanager", "webhook", "syslog"] {
            for outcome in ["delivered", "failed"] {
                notifications
                    .with_label_values(&[channel, outcome])
                    .inc_by(0);
            }
        }
        let bounds = LabelBounds {
            gateways: cfg.gateways.iter().cloned().collect(),
            enterprises: cfg
                .registry
                .as_ref()
                .map(|r| r.enterprises.iter().map(|e| e.id.clone()).collect()),
            scenarios: cfg
                .registry
                .as_ref()
                .map(|r| r.scenarios.iter().map(|s| s.0.clone()).collect()),
            seen_enterprises: Mutex::new(HashSet::new()),
            seen_scenarios: Mutex::new(HashSet::new()),
        };
        Ok(Metrics {
            registry: r,
            batches,
            events,
            rejections,
            export_bytes,
            alerts,
            incidents_open,
            incidents_overdue,
            notifications,
            outbox_pending,
            last_seen,
            packets,
            drops,
            bounds,
            grades,
            stats_last: Mutex::new(HashMap::new()),
        })
    }

    /// A batch refused before storing.
    pub fn rejected(&self, reason: &str) {
        self.batches.with_label_values(&["rejected"]).inc();
        self.rejections.with_label_values(&[reason]).inc();
    }

    /// A duplicate batch.
    pub fn duplicate(&self, gateway: &str, now_secs: f64) {
        self.batches.with_label_values(&["duplicate"]).inc();
        self.seen(gateway, now_secs);
    }

    fn seen(&self, gateway: &str, now_secs: f64) {
        if self.bounds.gateways.contains(gateway) {
            self.last_seen.with_label_values(&[gateway]).set(now_secs);
        }
    }

    /// A batch committed: count its events, export bytes, alerts and agent stats.
    pub fn stored(&self, batch: &Batch, now_secs: f64) {
        self.batches.with_label_values(&["stored"]).inc();
        let gw = batch.gateway.as_str();
        if !self.bounds.gateways.contains(gw) {
            return;
        }
        self.seen(gw, now_secs);
        let b = &self.bounds;
        let mut counts = [0u64; 3];
        for be in &batch.events {
            let e = &be.event;
            match e.event_type {
                EventType::Flow => {
                    counts[0] += 1;
                    if let (Some(bytes), Some(v)) = (e.export_bytes, &e.verdict) {
                        let ent =
                            bounded(&b.enterprises, &b.seen_enterprises, v.enterprise.as_deref());
                        let sc = bounded(&b.scenarios, &b.seen_scenarios, v.scenario.as_deref());
                        self.export_bytes
                            .with_label_values(&[gw, &ent, &sc, v.status.as_str()])
                            .inc_by(bytes);
                    }
                }
                EventType::Alert => {
                    counts[1] += 1;
                    if let Some(a) = &e.alert {
                        let ent =
                            bounded(&b.enterprises, &b.seen_enterprises, a.enterprise.as_deref());
                        self.alerts
                            .with_label_values(&[gw, &ent, a.kind.as_str(), a.severity.as_str()])
                            .inc();
                    }
                }
                EventType::Stats => {
                    counts[2] += 1;
                    if let Some(s) = &e.stats {
                        self.stats(gw, s);
                    }
                }
            }
        }
        for (t, n) in ["flow", "alert", "stats"].into_iter().zip(counts) {
            self.events.with_label_values(&[t]).inc_by(n);
        }
    }

    /// Stats events carry cumulative totals; add the increase since the last one (a smaller
    /// value means the agent restarted: add it whole).
    fn stats(&self, gw: &str, s: &crossline_config::event::Stats) {
        let Ok(mut last) = self.stats_last.lock() else {
            return;
        };
        let mut delta = |key: (String, String), now: u64| -> u64 {
            let prev = last.insert(key, now).unwrap_or(0);
            if now >= prev {
                now - prev
            } else {
                now
            }
        };
        let d = delta((gw.to_string(), String::new()), s.packets);
        self.packets.with_label_values(&[gw]).inc_by(d);
        let mut other = 0u64;
        let mut any_other = false;
        for (kind, n) in &s.drops {
            if DROP_KINDS.contains(&kind.as_str()) {
                let d = delta((gw.to_string(), kind.clone()), *n);
                self.drops.with_label_values(&[gw, kind]).inc_by(d);
            } else {
                other = other.saturating_add(*n);
                any_other = true;
            }
        }
        if any_other {
            let d = delta((gw.to_string(), "other".into()), other);
            self.drops.with_label_values(&[gw, "other"]).inc_by(d);
        }
    }

    /// A notification attempt.
    pub fn notification(&self, channel: &str, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.notifications
            .with_label_values(&[channel, outcome])
            .inc();
    }

    /// Update the gauges computed from the store.
    pub fn set_gauges(&self, g: &Gauges) {
        for grade in &self.grades {
            self.incidents_overdue
                .with_label_values(&[grade.as_str()])
                .set(0);
            for s in SEVERITIES {
                self.incidents_open
                    .with_label_values(&[grade.as_str(), s.as_str()])
                    .set(0);
            }
        }
        for (grade, sev, n) in &g.open {
            if self.grades.contains(grade) {
                self.incidents_open.with_label_values(&[grade, sev]).set(*n);
            }
        }
        for (grade, n) in &g.overdue {
            if self.grades.contains(grade) {
                self.incidents_overdue.with_label_values(&[grade]).set(*n);
            }
        }
        self.outbox_pending.set(g.outbox_pending);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if prometheus::TextEncoder::new()
            .encode(&families, &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

const SEVERITIES: [Severity; 5] = [
    Severity::Info,
    Severity::Low,
    Severity::Med,
    Severity::High,
    Severity::Crit,
];
