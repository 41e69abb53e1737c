//! The SQLite side of incident grouping: find, open or extend the incident of a stored alert,
//! its history and its outbox rows, inside the batch's transaction. The decisions themselves
//! (facts, merge, grade, deadline, routing) are the pure functions of [`crate::incident`].

use super::{BatchEvent, StoreError, TimeFlag};
use crate::incident::{route, AlertFacts, IncidentNotice, Merged};
use crossline_config::collector::{parse_severity, CollectorConfig};
use crossline_config::event::Severity;
use rusqlite::{params, Connection, OptionalExtension};

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

/// Attach a stored alert to an incident, opening one when none matches.
pub(super) fn on_alert(
    tx: &Connection,
    cfg: &CollectorConfig,
    alert_id: i64,
    be: &BatchEvent,
    now_ms: i64,
) -> Result<(), StoreError> {
    let future = be.time_flag == Some(TimeFlag::Future);
    let (Some(a), Some(f)) = (
        &be.event.alert,
        AlertFacts::of(cfg, &be.event, be.ts_ms, future),
    ) else {
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
pub(super) fn record(
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
pub(super) fn resolve(
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
pub(super) fn notice(c: &Connection, id: i64) -> Result<Option<IncidentNotice>, StoreError> {
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
