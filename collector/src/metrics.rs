//! Prometheus metrics of the collector, on its own registry, bounded labels only.
//!
//! Label values come from closed sets: gateways from the config, enterprises and scenarios from
//! the registry (unknown values become `other`, absent ones `none`), kinds and severities from
//! the event model. Without a registry, enterprise and scenario values are accepted as seen up to
//! [`MAX_SEEN_LABELS`] distinct values, then become `other`. Never an address, host name, flow id
//! or incident id.
//!
//! `/metrics` is served on the API listener, which enterprises reach too. The two families with
//! per-enterprise labels (`crossline_export_bytes_total` and `crossline_alerts_total`) are kept
//! twice: with `enterprise`/`scenario` labels for a regulator token (an operator token: its own
//! gateways only), and summed over those labels for everyone else ([`View`]).

use crate::store::{Batch, Gauges};
use crossline_config::collector::CollectorConfig;
use crossline_config::event::{EventType, Severity};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

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

/// What a `/metrics` caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Per-enterprise series of every gateway (regulator token).
    Full,
    /// Per-enterprise series of these gateways only (operator token).
    Gateways(Vec<String>),
    /// No per-enterprise series: the two tenant families summed over `enterprise` and
    /// `scenario` (no token, or an enterprise token).
    Aggregated,
}

/// Every collector metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    tenant: Registry,
    public: Registry,
    batches: IntCounterVec,
    events: IntCounterVec,
    rejections: IntCounterVec,
    export_bytes: IntCounterVec,
    alerts: IntCounterVec,
    export_bytes_public: IntCounterVec,
    alerts_public: IntCounterVec,
    timestamp_problems: IntCounterVec,
    clamped: IntCounterVec,
    incidents_late: IntGaugeVec,
    connections_open: IntGaugeVec,
    connections: IntCounterVec,
    incidents_open: IntGaugeVec,
    incidents_overdue: IntGaugeVec,
    notifications: IntCounterVec,
    outbox_pending: IntGauge,
    last_seen: GaugeVec,
    packets: IntCounterVec,
    drops: IntCounterVec,
    sketches: IntCounterVec,
    legacy_events: IntCounterVec,
    /// Enterprise-wide figures merged from the agents' sketches.
    enterprise: EnterpriseGauges,
    /// Replaced on SIGHUP ([`Metrics::reconfigure`]): a gateway added to the config gets its
    /// series without a restart.
    bounds: std::sync::RwLock<Arc<LabelBounds>>,
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

fn int_gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn float_gauge(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<GaugeVec, prometheus::Error> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Fleet identity: version (always 1) and start time of this collector.
fn register_identity(r: &Registry) -> Result<(), prometheus::Error> {
    let build_info = gauge(
        r,
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
    r.register(Box::new(start_time))
}

impl LabelBounds {
    /// Gateways from the config; enterprises and scenarios from the registry, when configured.
    fn new(cfg: &CollectorConfig) -> LabelBounds {
        LabelBounds {
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
        }
    }
}

/// The enterprise-wide gauges (tenant registry), merged from every gateway's sketch.
#[derive(Debug)]
struct EnterpriseGauges {
    persons: IntGaugeVec,
    persons_limit: IntGaugeVec,
    scenario_bytes: IntGaugeVec,
    scenario_cap: IntGaugeVec,
}

impl EnterpriseGauges {
    fn new(tenant: &Registry) -> Result<EnterpriseGauges, prometheus::Error> {
        Ok(EnterpriseGauges {
            persons: gauge(
                tenant,
                "crossline_collector_enterprise_persons",
                "Distinct persons this Beijing year, enterprise-wide: the union of every gateway's sketch (about 0.8% standard error), by enterprise and category (personal, sensitive).",
                &["enterprise", "category"],
            )?,
            persons_limit: gauge(
                tenant,
                "crossline_collector_enterprise_persons_limit",
                "The yearly persons limit the agents apply (persons_per_year or the legal default), by enterprise and category.",
                &["enterprise", "category"],
            )?,
            scenario_bytes: gauge(
                tenant,
                "crossline_collector_enterprise_scenario_bytes_today",
                "Export bytes of a scenario today (Asia/Shanghai), enterprise-wide: the sum over gateways of each gateway's latest figure.",
                &["enterprise", "scenario"],
            )?,
            scenario_cap: gauge(
                tenant,
                "crossline_collector_enterprise_scenario_cap_bytes",
                "The scenario's daily cap, for scenarios with one (from the agents' sketches).",
                &["enterprise", "scenario"],
            )?,
        })
    }
}

use crossline_config::event::DROP_KINDS;

impl Metrics {
    /// Register every metric.
    pub fn new(cfg: &CollectorConfig) -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let tenant = Registry::new();
        let public = Registry::new();
        register_identity(&r)?;
        let m = Metrics {
            batches: counter(
                &r,
                "crossline_ingest_batches_total",
                "Ingest batches by result.",
                &["result"],
            )?,
            events: counter(
                &r,
                "crossline_ingest_events_total",
                "Events stored, by event type.",
                &["event_type"],
            )?,
            rejections: counter(
                &r,
                "crossline_ingest_rejections_total",
                "Refused ingest requests, by reason.",
                &["reason"],
            )?,
            timestamp_problems: counter(
                &r,
                "crossline_ingest_timestamp_problems_total",
                "Events stored with a timestamp problem: future (ahead of arrival by more than time.future_skew), unparseable or out_of_range (stored with the arrival time).",
                &["problem"],
            )?,
            clamped: counter(
                &r,
                "crossline_ingest_values_clamped_total",
                "Numbers from the wire above 2^63-1 stored as 2^63-1, by field.",
                &["field"],
            )?,
            incidents_late: gauge(
                &r,
                "crossline_incidents_late_arrival",
                "Unresolved incidents whose deadline had passed before their first alert arrived, by grade.",
                &["grade"],
            )?,
            connections_open: gauge(
                &r,
                "crossline_connections_open",
                "Open connections, by listener.",
                &["listener"],
            )?,
            connections: counter(
                &r,
                "crossline_connections_total",
                "Connections by listener and outcome: accepted, evicted (closed to make room before completing its handshake), refused (listener full), handshake_timeout, handshake_failed.",
                &["listener", "outcome"],
            )?,
            incidents_open: gauge(
                &r,
                "crossline_incidents_open",
                "Incidents not resolved, by grade and severity.",
                &["grade", "severity"],
            )?,
            incidents_overdue: gauge(
                &r,
                "crossline_incidents_overdue",
                "Open or notified incidents past their deadline, by grade.",
                &["grade"],
            )?,
            notifications: counter(
                &r,
                "crossline_notifications_total",
                "Notification deliveries by channel and outcome.",
                &["channel", "outcome"],
            )?,
            packets: counter(
                &r,
                "crossline_agent_stats_packets_total",
                "Packets seen by each agent (from its stats events).",
                &["gateway"],
            )?,
            drops: counter(
                &r,
                "crossline_agent_stats_drops_total",
                "Packets dropped by each agent, by kind (from its stats events).",
                &["gateway", "kind"],
            )?,
            sketches: counter(
                &r,
                "crossline_collector_sketches_total",
                "Agent sketch events, by result: merged, refused_key (another PI key fingerprint than the enterprise's), invalid (an entry that did not decode), failed (store error), alert (enterprise-wide alerts raised).",
                &["result"],
            )?,
            legacy_events: counter(
                &r,
                "crossline_collector_ingest_legacy_events_total",
                "Events stored that arrived in the layout before Suricata's EVE layout (from agents not yet upgraded), by gateway.",
                &["gateway"],
            )?,
            export_bytes: counter(
                &tenant,
                "crossline_export_bytes_total",
                "Export bytes of flow records, by gateway, enterprise, scenario and verdict.",
                &["gateway", "enterprise", "scenario", "verdict"],
            )?,
            alerts: counter(
                &tenant,
                "crossline_alerts_total",
                "Alerts stored, by gateway, enterprise, kind and severity.",
                &["gateway", "enterprise", "kind", "severity"],
            )?,
            export_bytes_public: counter(
                &public,
                "crossline_export_bytes_total",
                "Export bytes of flow records, by gateway and verdict (enterprise and scenario labels need a regulator or operator token).",
                &["gateway", "verdict"],
            )?,
            alerts_public: counter(
                &public,
                "crossline_alerts_total",
                "Alerts stored, by gateway, kind and severity (the enterprise label needs a regulator or operator token).",
                &["gateway", "kind", "severity"],
            )?,
            outbox_pending: int_gauge(
                &r,
                "crossline_notification_outbox_pending",
                "Notifications not yet delivered.",
            )?,
            last_seen: float_gauge(
                &r,
                "crossline_agent_last_seen_timestamp_seconds",
                "Unix time of the last batch from each gateway.",
                &["gateway"],
            )?,
            enterprise: EnterpriseGauges::new(&tenant)?,
            bounds: std::sync::RwLock::new(Arc::new(LabelBounds::new(cfg))),
            grades: cfg.incidents.grades().into_iter().collect(),
            stats_last: Mutex::new(HashMap::new()),
            registry: r,
            tenant,
            public,
        };
        m.prefill_labels();
        Ok(m)
    }

    /// The label bounds in force.
    fn bounds(&self) -> Arc<LabelBounds> {
        match self.bounds.read() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Take the gateways, enterprises and scenarios of a reloaded config (SIGHUP). Enterprise
    /// and scenario values already seen stay counted against [`MAX_SEEN_LABELS`], so reloads do
    /// not widen the label sets; the new gateways' series start at zero.
    pub fn reconfigure(&self, cfg: &CollectorConfig) {
        let new = LabelBounds::new(cfg);
        let old = self.bounds();
        for (from, to) in [
            (&old.seen_enterprises, &new.seen_enterprises),
            (&old.seen_scenarios, &new.seen_scenarios),
        ] {
            if let (Ok(from), Ok(mut to)) = (from.lock(), to.lock()) {
                to.extend(from.iter().cloned());
            }
        }
        for g in new.gateways.difference(&old.gateways) {
            self.legacy_events
                .with_label_values(&[g.as_str()])
                .inc_by(0);
        }
        match self.bounds.write() {
            Ok(mut b) => *b = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
    }

    /// Zero series for every value of the closed label sets, so dashboards see them from the
    /// first scrape.
    fn prefill_labels(&self) {
        for p in ["future", "unparseable", "out_of_range"] {
            self.timestamp_problems.with_label_values(&[p]).inc_by(0);
        }
        for f in CLAMP_FIELDS {
            self.clamped.with_label_values(&[f]).inc_by(0);
        }
        for l in ["ingest", "api"] {
            self.connections_open.with_label_values(&[l]).set(0);
            for o in CONNECTION_OUTCOMES {
                self.connections.with_label_values(&[l, o]).inc_by(0);
            }
        }
        for g in &self.grades {
            self.incidents_overdue
                .with_label_values(&[g.as_str()])
                .set(0);
            self.incidents_late.with_label_values(&[g.as_str()]).set(0);
            for s in SEVERITIES {
                self.incidents_open
                    .with_label_values(&[g.as_str(), s.as_str()])
                    .set(0);
            }
        }
        for result in ["stored", "duplicate", "rejected"] {
            self.batches.with_label_values(&[result]).inc_by(0);
        }
        for t in ["flow", "alert", "stats"] {
            self.events.with_label_values(&[t]).inc_by(0);
        }
        for channel in ["alertmanager", "webhook", "syslog"] {
            for outcome in ["delivered", "failed"] {
                self.notifications
                    .with_label_values(&[channel, outcome])
                    .inc_by(0);
            }
        }
        for res in ["merged", "refused_key", "invalid", "failed", "alert"] {
            self.sketches.with_label_values(&[res]);
        }
        for g in &self.bounds().gateways {
            self.legacy_events
                .with_label_values(&[g.as_str()])
                .inc_by(0);
        }
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
        if self.bounds().gateways.contains(gateway) {
            self.last_seen.with_label_values(&[gateway]).set(now_secs);
        }
    }

    /// Sketches merged: counters, and the enterprise-wide gauges for this year and today.
    pub fn sketches(&self, r: &crate::sketch::ApplyReport) {
        let c = &self.sketches;
        c.with_label_values(&["merged"]).inc_by(r.merged);
        c.with_label_values(&["refused_key"]).inc_by(r.refused_key);
        c.with_label_values(&["invalid"]).inc_by(r.invalid);
        c.with_label_values(&["alert"])
            .inc_by(r.alerts.len() as u64);
        let now =
            crate::util::now_ms().div_euclid(1000) + crossline_config::time::SHANGHAI_OFFSET_SECS;
        let today = crossline_config::time::Date::from_days(now.div_euclid(86_400));
        let b = self.bounds();
        for (ent, year, category, est, limit) in &r.persons {
            if *year != today.year {
                continue;
            }
            let e = bounded(&b.enterprises, &b.seen_enterprises, Some(ent));
            self.enterprise
                .persons
                .with_label_values(&[&e, category])
                .set(i64::try_from(*est).unwrap_or(i64::MAX));
            if let Some(l) = limit {
                self.enterprise
                    .persons_limit
                    .with_label_values(&[&e, category])
                    .set(i64::try_from(*l).unwrap_or(i64::MAX));
            }
        }
        let day = today.to_string();
        for (ent, d, scenario, bytes, cap) in &r.volumes {
            if *d != day {
                continue;
            }
            let e = bounded(&b.enterprises, &b.seen_enterprises, Some(ent));
            let s = bounded(&b.scenarios, &b.seen_scenarios, Some(scenario));
            self.enterprise
                .scenario_bytes
                .with_label_values(&[&e, &s])
                .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
            if let Some(c) = cap {
                self.enterprise
                    .scenario_cap
                    .with_label_values(&[&e, &s])
                    .set(i64::try_from(*c).unwrap_or(i64::MAX));
            }
        }
    }

    /// `events` of a stored batch from `gateway` were in the layout before EVE's.
    pub fn legacy_events(&self, gateway: &str, events: u64) {
        if self.bounds().gateways.contains(gateway) {
            self.legacy_events
                .with_label_values(&[gateway])
                .inc_by(events);
        }
    }

    /// A sketch merge failed (store error).
    pub fn sketch_failed(&self) {
        self.sketches.with_label_values(&["failed"]).inc();
    }

    /// A batch committed: count its events, export bytes, alerts and agent stats.
    pub fn stored(&self, batch: &Batch, now_secs: f64) {
        self.batches.with_label_values(&["stored"]).inc();
        let gw = batch.gateway.as_str();
        if !self.bounds().gateways.contains(gw) {
            return;
        }
        self.seen(gw, now_secs);
        let b = self.bounds();
        let mut counts = [0u64; 3];
        const MAX: u64 = i64::MAX as u64;
        for be in &batch.events {
            let e = &be.event;
            if let Some(f) = be.time_flag {
                self.timestamp_problems
                    .with_label_values(&[f.as_str()])
                    .inc();
            }
            if e.export_bytes.is_some_and(|v| v > MAX) {
                self.clamped.with_label_values(&["export_bytes"]).inc();
            }
            match e.event_type {
                EventType::Flow => {
                    counts[0] += 1;
                    if let (Some(bytes), Some(v)) = (e.export_bytes, &e.verdict) {
                        let ent =
                            bounded(&b.enterprises, &b.seen_enterprises, v.enterprise.as_deref());
                        let sc = bounded(&b.scenarios, &b.seen_scenarios, v.scenario.as_deref());
                        saturating_inc(
                            &self.export_bytes.with_label_values(&[
                                gw,
                                &ent,
                                &sc,
                                v.status.as_str(),
                            ]),
                            bytes,
                        );
                        saturating_inc(
                            &self
                                .export_bytes_public
                                .with_label_values(&[gw, v.status.as_str()]),
                            bytes,
                        );
                    }
                }
                EventType::Alert => {
                    counts[1] += 1;
                    if let Some(a) = &e.alert {
                        for (field, v) in [
                            ("alert_bytes", Some(a.bytes)),
                            ("alert_count", Some(a.count)),
                            ("alert_persons", a.persons),
                        ] {
                            if v.is_some_and(|v| v > MAX) {
                                self.clamped.with_label_values(&[field]).inc();
                            }
                        }
                        let ent =
                            bounded(&b.enterprises, &b.seen_enterprises, a.enterprise.as_deref());
                        self.alerts
                            .with_label_values(&[gw, &ent, a.kind.as_str(), a.severity.as_str()])
                            .inc();
                        self.alerts_public
                            .with_label_values(&[gw, a.kind.as_str(), a.severity.as_str()])
                            .inc();
                    }
                }
                EventType::Sketch => {}
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

    /// A connection event on a listener (`ingest` or `api`); see `crossline_connections_total`.
    pub fn connection(&self, listener: &str, outcome: &str) {
        self.connections
            .with_label_values(&[listener, outcome])
            .inc();
    }

    /// Open connections on a listener.
    pub fn connections_open(&self, listener: &str, n: usize) {
        self.connections_open
            .with_label_values(&[listener])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
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
            self.incidents_late
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
        for (grade, n) in &g.late_arrival {
            if self.grades.contains(grade) {
                self.incidents_late.with_label_values(&[grade]).set(*n);
            }
        }
        self.outbox_pending.set(g.outbox_pending);
    }

    /// The text exposition format, for a caller allowed `view`.
    pub fn render(&self, view: &View) -> String {
        let mut buf = Vec::new();
        let mut families = self.registry.gather();
        match view {
            View::Full => families.extend(self.tenant.gather()),
            View::Gateways(list) => {
                for mut f in self.tenant.gather() {
                    let kept: Vec<_> = f
                        .take_metric()
                        .into_iter()
                        .filter(|m| {
                            m.get_label().iter().any(|l| {
                                l.name() == "gateway" && list.iter().any(|g| g == l.value())
                            })
                        })
                        .collect();
                    if !kept.is_empty() {
                        f.set_metric(kept);
                        families.push(f);
                    }
                }
            }
            View::Aggregated => families.extend(self.public.gather()),
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        if prometheus::TextEncoder::new()
            .encode(&families, &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Fields whose values are clamped to 2^63-1 (the `field` label).
const CLAMP_FIELDS: [&str; 4] = [
    "alert_bytes",
    "alert_count",
    "alert_persons",
    "export_bytes",
];

/// Outcomes of `crossline_connections_total`.
pub const CONNECTION_OUTCOMES: [&str; 5] = [
    "accepted",
    "evicted",
    "refused",
    "handshake_timeout",
    "handshake_failed",
];

/// Add to a counter without wrapping around (a wrapped counter reads as a reset).
fn saturating_inc(c: &prometheus::IntCounter, v: u64) {
    c.inc_by(v.min(u64::MAX - c.get()));
}

const SEVERITIES: [Severity; 5] = [
    Severity::Info,
    Severity::Low,
    Severity::Med,
    Severity::High,
    Severity::Crit,
];
