//! Incidents: alerts grouped by (gateway, enterprise, kind, recipient) within the group window,
//! graded per `docs/legal.md#incidents-and-deadlines`, with a deadline, a lifecycle
//! (open -> notified -> acknowledged -> resolved) and outbox rows for the receivers they route to.
//!
//! The decisions are pure functions over typed values (the alert's facts, the merge of an
//! incident with one more alert, grade, deadline, routing); the stores run the SQL that finds
//! and updates incidents inside the batch's transaction (SQLite in `store/incidents.rs`,
//! PostgreSQL in `pg.rs`), so an incident change and its notifications are committed together.
//!
//! Byte totals saturate at `i64::MAX` (the SQLite INTEGER range) and say so in
//! `bytes_saturated`: an overflow would turn the column into a REAL and break every reader. An
//! incident whose deadline had already passed when its first alert arrived (a late upload, an
//! old capture) is marked `late_arrival` rather than being silently overdue.

use crossline_config::collector::{parse_kind, parse_severity, CollectorConfig};
use crossline_config::event::{Alert, Event, Severity};
use std::time::Duration;

/// What a notifier needs to know about an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentNotice {
    /// Incident id.
    pub id: i64,
    /// Gateway (the line).
    pub gateway: String,
    /// Enterprise id, if known.
    pub enterprise: Option<String>,
    /// Alert kind.
    pub kind: String,
    /// Far end.
    pub recipient: String,
    /// Highest severity of its alerts.
    pub severity: String,
    /// Grade label.
    pub grade: String,
    /// `open`, `notified`, `acknowledged`, `resolved`.
    pub status: String,
    /// First alert time, Unix ms.
    pub discovered_at_ms: i64,
    /// Reporting deadline, Unix ms.
    pub deadline_at_ms: i64,
    /// Resolution time, Unix ms.
    pub resolved_at_ms: Option<i64>,
    /// Summary of the first alert.
    pub summary: String,
    /// Green-channel enterprise (measure 七).
    pub green_channel: bool,
    /// Alerts grouped.
    pub alert_count: i64,
    /// Export bytes covered.
    pub bytes: i64,
    /// Persons estimate (largest seen).
    pub persons: i64,
    /// The deadline had passed before the first alert arrived.
    pub late_arrival: bool,
}

impl IncidentNotice {
    /// The `receiver_route` label: `green_channel` or `default`.
    pub fn receiver_route(&self) -> &'static str {
        if self.green_channel {
            "green_channel"
        } else {
            "default"
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Receiver names an incident routes to: the union of every matching route, or every receiver
/// when no route is configured.
pub fn route(
    cfg: &CollectorConfig,
    enterprise: Option<&str>,
    severity: Severity,
    green_channel: bool,
) -> Vec<String> {
    if cfg.routes.is_empty() {
        return cfg.receivers.iter().map(|r| r.name.clone()).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for r in &cfg.routes {
        if r.enterprise
            .as_deref()
            .is_some_and(|e| Some(e) != enterprise)
        {
            continue;
        }
        if r.min_severity.is_some_and(|m| severity < m) {
            continue;
        }
        if r.green_channel.is_some_and(|g| g != green_channel) {
            continue;
        }
        for n in &r.receivers {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    }
    out
}

/// What a stored alert brings to incident grouping, derived once for both store backends
/// (the SQL that finds and updates the incident differs; these decisions do not).
#[derive(Debug)]
pub struct AlertFacts {
    /// The far end the incident is about: the alert's recipient, else the destination address.
    pub recipient: String,
    /// `incidents.group_window` in ms.
    pub window_ms: i64,
    /// The alert's time, Unix ms.
    pub ts: i64,
    /// The enterprise is a critical information infrastructure operator.
    pub ciio: bool,
    /// Route to the green channel (the alert's flag or the enterprise's).
    pub green: bool,
    /// Persons estimate, saturated to the column.
    pub persons: i64,
    /// Export bytes, saturated to the column.
    pub bytes: i64,
    /// The alert was dated ahead of its arrival.
    pub future: bool,
}

/// An incident after one more alert: severity, persons and discovery as merged, grade and
/// deadline recomputed.
#[derive(Debug)]
pub struct Merged {
    pub severity: Severity,
    pub persons: i64,
    pub discovered: i64,
    pub grade: String,
    pub deadline_at: i64,
}

impl AlertFacts {
    /// The facts of `event` (at `ts_ms`, `future` when dated ahead of its arrival), or None
    /// when it carries no alert.
    pub fn of(
        cfg: &CollectorConfig,
        event: &Event,
        ts_ms: i64,
        future: bool,
    ) -> Option<AlertFacts> {
        let a = event.alert.as_ref()?;
        let info = a
            .enterprise
            .as_deref()
            .and_then(|id| cfg.registry.as_ref().and_then(|r| r.enterprise(id)));
        Some(AlertFacts {
            recipient: a
                .recipient
                .clone()
                .or_else(|| event.dest_ip.clone())
                .unwrap_or_default(),
            window_ms: ms(cfg.incidents.group_window),
            ts: ts_ms,
            ciio: info.is_some_and(|i| i.ciio),
            green: a.green_channel || info.is_some_and(|i| i.green_channel),
            persons: a
                .persons
                .map_or(0, |p| i64::try_from(p).unwrap_or(i64::MAX)),
            bytes: i64::try_from(a.bytes).unwrap_or(i64::MAX),
            future,
        })
    }

    /// Grade and deadline of a new incident opened by this alert.
    pub fn opened(&self, cfg: &CollectorConfig, a: &Alert) -> (String, i64) {
        let (grade, deadline) = cfg.incidents.grade(
            a.kind,
            a.severity,
            u64::try_from(self.persons).unwrap_or(0),
            self.ciio,
        );
        (grade, self.ts.saturating_add(ms(deadline)))
    }

    /// The existing incident (`discovered`, `old_persons`, `old_severity`) with this alert added.
    pub fn merged(
        &self,
        cfg: &CollectorConfig,
        a: &Alert,
        discovered: i64,
        old_persons: i64,
        old_severity: &str,
    ) -> Merged {
        let severity = parse_severity(old_severity)
            .unwrap_or(Severity::Info)
            .max(a.severity);
        let persons = old_persons.max(self.persons);
        let discovered = discovered.min(self.ts);
        let (grade, deadline) = cfg.incidents.grade(
            a.kind,
            severity,
            u64::try_from(persons).unwrap_or(0),
            self.ciio,
        );
        Merged {
            severity,
            persons,
            discovered,
            grade,
            deadline_at: discovered.saturating_add(ms(deadline)),
        }
    }
}

/// Whether a kind string is a known alert kind (API filter validation).
pub fn known_kind(s: &str) -> bool {
    parse_kind(s).is_some()
}
