//! Incidents: alerts grouped by (gateway, enterprise, kind, recipient) within the group window,
//! graded per `docs/legal.md#incidents-and-deadlines`, with a deadline, a lifecycle
//! (open -> notified -> acknowledged -> resolved) and outbox rows for the receivers they route to.
//!
//! These functions run inside the caller's transaction, so an incident change and its
//! notifications are committed together.
//!
//! Byte totals saturate at `i64::MAX` (the SQLite INTEGER range) and say so in
//! `bytes_saturated`: an overflow would turn the column into a REAL and break every reader. An
//! incident whose deadline had already passed when its first alert arrived (a late upload, an
//! old capture) is marked `late_arrival` rather than being silently overdue.

use crate::store::{BatchEvent, StoreError};
use crossline_config::collector::{parse_kind, parse_severity, CollectorConfig};
use crossline_config::event::{Alert, Severity};
use rusqlite::{params, Connection, OptionalExtension};
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

fn enqueue(
    tx: &Connection,
    cfg: &CollectorConfig,
    incident_id: i64,
    event: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let (enterprise, severity, green): (Option<String>, String, bool) = tx.query_row(
        "SELECT enterprise, severity, green_channel FROM incidents WHERE id = ?1",
        params![incident_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let sev = parse_severity(&severity).unwrap_or(Severity::Info);
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (incident_id, receiver, event, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?;
    for name in route(cfg, enterprise.as_deref(), sev, green) {
        stmt.execute(params![incident_id, name, event, now_ms])?;
    }
    Ok(())
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
    /// The facts of `be`, or None when it carries no alert.
    pub fn of(cfg: &CollectorConfig, be: &BatchEvent) -> Option<AlertFacts> {
        let a = be.event.alert.as_ref()?;
        let info = a
            .enterprise
            .as_deref()
            .and_then(|id| cfg.registry.as_ref().and_then(|r| r.enterprise(id)));
        Some(AlertFacts {
            recipient: a
                .recipient
                .clone()
                .or_else(|| be.event.dest_ip.clone())
                .unwrap_or_default(),
            window_ms: ms(cfg.incidents.group_window),
            ts: be.ts_ms,
            ciio: info.is_some_and(|i| i.ciio),
            green: a.green_channel || info.is_some_and(|i| i.green_channel),
            persons: a
                .persons
                .map_or(0, |p| i64::try_from(p).unwrap_or(i64::MAX)),
            bytes: i64::try_from(a.bytes).unwrap_or(i64::MAX),
            future: be.time_flag == Some(crate::store::TimeFlag::Future),
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

/// Attach a stored alert to an incident, opening one when none matches.
pub fn on_alert(
    tx: &Connection,
    cfg: &CollectorConfig,
    alert_id: i64,
    be: &BatchEvent,
    now_ms: i64,
) -> Result<(), StoreError> {
    let (Some(a), Some(f)) = (&be.event.alert, AlertFacts::of(cfg, be)) else {
        return Ok(());
    };
    let e = &be.event;
    let AlertFacts {
        ref recipient,
        window_ms: window,
        ts,
        ciio,
        green,
        persons,
        bytes,
        future,
    } = f;

    let existing: Option<(i64, i64, i64, String)> = tx
        .query_row(
            "SELECT id, discovered_at, persons, severity FROM incidents
             WHERE gateway = ?1 AND enterprise IS ?2 AND kind = ?3 AND recipient = ?4
               AND status != 'resolved'
               AND ?5 >= discovered_at - ?6 AND ?5 <= last_alert_at + ?6
             ORDER BY MAX(discovered_at - ?5, ?5 - last_alert_at, 0), id DESC LIMIT 1",
            params![
                e.gateway,
                a.enterprise,
                a.kind.as_str(),
                recipient,
                ts,
                window
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let incident_id = match existing {
        Some((id, discovered, old_persons, old_sev)) => {
            let Merged {
                severity: sev,
                persons: persons_now,
                discovered,
                grade,
                deadline_at,
            } = f.merged(cfg, a, discovered, old_persons, &old_sev);
            let old_grade: String = tx.query_row(
                "SELECT grade FROM incidents WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE incidents SET discovered_at = ?1, last_alert_at = MAX(last_alert_at, ?2),
                   last_seen_at = ?3, alert_count = alert_count + 1,
                   bytes_saturated = MAX(bytes_saturated, ?4 > 9223372036854775807 - bytes),
                   bytes = CASE WHEN ?4 > 9223372036854775807 - bytes THEN 9223372036854775807
                                ELSE bytes + ?4 END,
                   persons = ?5, severity = ?6, severity_rank = ?7, grade = ?8,
                   deadline_at = ?9, green_channel = MAX(green_channel, ?10),
                   late_arrival = (?9 < COALESCE(first_received_at, ?9)),
                   future_timestamp = MAX(future_timestamp, ?12)
                 WHERE id = ?11",
                params![
                    discovered,
                    ts,
                    now_ms,
                    bytes,
                    persons_now,
                    sev.as_str(),
                    sev as i64,
                    grade,
                    deadline_at,
                    green,
                    id,
                    future
                ],
            )?;
            if grade != old_grade {
                // A regrade (e.g. the persons estimate crossed a threshold) is news.
                enqueue(tx, cfg, id, "firing", now_ms)?;
            }
            id
        }
        None => {
            let (grade, deadline_at) = f.opened(cfg, a);
            tx.execute(
                "INSERT INTO incidents (gateway, enterprise, kind, recipient, status, severity,
                   severity_rank, grade, discovered_at, last_alert_at, last_seen_at, deadline_at,
                   alert_count, bytes, persons, green_channel, ciio, summary, first_received_at,
                   late_arrival, future_timestamp)
                 VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?8, ?9, ?10, 1, ?11, ?12, ?13,
                   ?14, ?15, ?9, ?10 < ?9, ?16)",
                params![
                    e.gateway,
                    a.enterprise,
                    a.kind.as_str(),
                    recipient,
                    a.severity.as_str(),
                    a.severity as i64,
                    grade,
                    ts,
                    now_ms,
                    deadline_at,
                    bytes,
                    persons,
                    green,
                    ciio,
                    a.summary,
                    future
                ],
            )?;
            let id = tx.last_insert_rowid();
            enqueue(tx, cfg, id, "firing", now_ms)?;
            id
        }
    };
    tx.execute(
        "INSERT OR IGNORE INTO incident_alerts (incident_id, alert_id) VALUES (?1, ?2)",
        params![incident_id, alert_id],
    )?;
    tx.execute(
        "UPDATE alerts SET incident_id = ?1 WHERE id = ?2",
        params![incident_id, alert_id],
    )?;
    Ok(())
}

/// Append an entry to an incident's acknowledge/resolve history.
pub fn record(
    tx: &Connection,
    id: i64,
    now_ms: i64,
    action: &str,
    actor: &str,
    role: &str,
    comment: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO incident_history (incident_id, at, action, actor, role, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, now_ms, action, actor, role, comment],
    )?;
    Ok(())
}

/// Resolve an incident, record it in its history and queue `resolved` notifications.
pub fn resolve(
    tx: &Connection,
    cfg: &CollectorConfig,
    id: i64,
    now_ms: i64,
    actor: &str,
    role: &str,
    comment: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE incidents SET status = 'resolved', resolved_at = ?1, resolved_by = ?2,
           comment = ?3 WHERE id = ?4",
        params![now_ms, actor, comment, id],
    )?;
    record(tx, id, now_ms, "resolve", actor, role, comment)?;
    enqueue(tx, cfg, id, "resolved", now_ms)
}

/// Load what notifiers need about one incident.
pub fn notice(c: &Connection, id: i64) -> Result<Option<IncidentNotice>, StoreError> {
    Ok(c.query_row(
        "SELECT id, gateway, enterprise, kind, recipient, severity, grade, status, discovered_at,
           deadline_at, resolved_at, summary, green_channel, alert_count, bytes, persons,
           late_arrival
         FROM incidents WHERE id = ?1",
        params![id],
        |r| {
            Ok(IncidentNotice {
                id: r.get(0)?,
                gateway: r.get(1)?,
                enterprise: r.get(2)?,
                kind: r.get(3)?,
                recipient: r.get(4)?,
                severity: r.get(5)?,
                grade: r.get(6)?,
                status: r.get(7)?,
                discovered_at_ms: r.get(8)?,
                deadline_at_ms: r.get(9)?,
                resolved_at_ms: r.get(10)?,
                summary: r.get(11)?,
                green_channel: r.get(12)?,
                alert_count: r.get(13)?,
                bytes: r.get(14)?,
                persons: r.get(15)?,
                late_arrival: r.get(16)?,
            })
        },
    )
    .optional()?)
}

/// Whether a kind string is a known alert kind (API filter validation).
pub fn known_kind(s: &str) -> bool {
    parse_kind(s).is_some()
}
