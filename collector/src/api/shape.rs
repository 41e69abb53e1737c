//! The JSON the API and the console serve, shaped from the store's typed rows: times as
//! RFC 3339 UTC (`format_ms`), history times also in Beijing time, flags as booleans.

use crate::report::{self, format_beijing};
use crate::store::{
    AlertRow, AuditRow, EnterpriseSummary, HistoryEntry, IncidentDetail, IncidentRow,
};
use crate::util::format_ms;
use crossline_config::collector::CollectorConfig;
use serde_json::{json, Map, Value};

/// An alert's `timestamp` as the API writes it: RFC 3339, as it was before agents wrote EVE's
/// time format. An EVE time (`2026-03-02T09:14:07.118042+0000`) becomes RFC 3339 UTC with
/// milliseconds (`2026-03-02T09:14:07.118Z`); RFC 3339 text, and text the collector cannot
/// read (flagged `timestamp_problem`), is kept as the agent sent it.
pub fn alert_timestamp(sent: &str) -> String {
    let b = sent.as_bytes();
    let eve_offset = b.len() > 5
        && matches!(b[b.len() - 5], b'+' | b'-')
        && b[b.len() - 4..].iter().all(u8::is_ascii_digit);
    match crossline_config::event::parse_timestamp_micros(sent) {
        Some(micros) if eve_offset => crossline_config::event::format_timestamp_micros(micros),
        _ => sent.to_string(),
    }
}

/// One alert (`GET /api/v1/alerts`, `/alerts/{id}`).
pub fn alert(a: &AlertRow) -> Value {
    json!({
        "id": a.id,
        "timestamp": alert_timestamp(&a.timestamp),
        "gateway": a.gateway,
        "kind": a.kind,
        "severity": a.severity,
        "scenario": a.scenario,
        "enterprise": a.enterprise,
        "summary": a.summary,
        "rule": a.rule,
        "recipient": a.recipient,
        "service": a.service,
        "count": a.count,
        "bytes": a.bytes,
        "persons": a.persons,
        "evidence": a.evidence,
        "followup": a.followup,
        "green_channel": a.green_channel,
        "flow_id": a.flow_id,
        "proto": a.proto,
        "src_ip": a.src_ip,
        "src_port": a.src_port,
        "dest_ip": a.dest_ip,
        "dest_port": a.dest_port,
        "sni": a.sni,
        "incident_id": a.incident_id,
        "received_at": a.received_at_ms.map(format_ms),
        "future_timestamp": a.time_flag.as_deref() == Some("future"),
        "timestamp_problem": a.time_flag,
        // Enterprise-wide alerts (crate::sketch): `scope` and the gateways involved.
        "scope": a.scope,
        "gateways": a.gateways,
    })
}

/// One incident (`GET /api/v1/incidents` items, the console's lists).
pub fn incident(i: &IncidentRow) -> Value {
    let opt_time = |v: Option<i64>| v.map(format_ms);
    json!({
        "id": i.id,
        "gateway": i.gateway,
        "enterprise": i.enterprise,
        "kind": i.kind,
        "recipient": i.recipient,
        "status": i.status,
        "severity": i.severity,
        "grade": i.grade,
        "discovered_at": format_ms(i.discovered_at_ms),
        "last_alert_at": format_ms(i.last_alert_at_ms),
        "deadline_at": format_ms(i.deadline_at_ms),
        "alert_count": i.alert_count,
        "bytes": i.bytes,
        "persons": i.persons,
        "green_channel": i.green_channel,
        "ciio": i.ciio,
        "summary": i.summary,
        "acknowledged_at": opt_time(i.acknowledged_at_ms),
        "acknowledged_by": i.acknowledged_by,
        "resolved_at": opt_time(i.resolved_at_ms),
        "resolved_by": i.resolved_by,
        "comment": i.comment,
        "first_received_at": opt_time(i.first_received_at_ms),
        "late_arrival": i.late_arrival,
        "bytes_saturated": i.bytes_saturated,
        "future_timestamp": i.future_timestamp,
    })
}

/// An incident's acknowledge/resolve history, oldest first.
pub fn history(h: &[HistoryEntry]) -> Vec<Value> {
    h.iter()
        .map(|e| {
            json!({
                "action": e.action,
                "by": e.by,
                "role": e.role,
                "at": format_ms(e.at_ms),
                "at_beijing": format_beijing(e.at_ms),
                "comment": e.comment,
            })
        })
        .collect()
}

/// An incident with its history (the answer to acknowledge and resolve).
pub fn with_history(i: &IncidentRow, h: &[HistoryEntry]) -> Value {
    let mut v = incident(i);
    if let Value::Object(m) = &mut v {
        m.insert("history".into(), Value::Array(history(h)));
    }
    v
}

/// One incident with its history and its report (`GET /api/v1/incidents/{id}`).
pub fn detail(cfg: &CollectorConfig, d: &IncidentDetail) -> Value {
    report::build(
        cfg,
        incident(&d.incident),
        &d.alerts,
        &d.flows,
        history(&d.history),
    )
}

/// One audit log entry.
pub fn audit(a: &AuditRow) -> Value {
    json!({
        "id": a.id,
        "at": format_ms(a.at_ms),
        "token": a.token,
        "role": a.role,
        "action": a.action,
        "target": a.target,
        "comment": a.comment,
    })
}

/// An enterprise's summary (`GET /api/v1/enterprises/{id}/summary`).
pub fn summary(s: &EnterpriseSummary) -> Value {
    let mut by_scenario: Map<String, Value> = Map::new();
    for c in &s.export {
        let entry = by_scenario
            .entry(c.scenario.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            let mut cell = json!({"export_bytes": c.bytes, "flows": c.flows});
            if c.saturated {
                cell["export_bytes_saturated"] = json!(true);
            }
            m.insert(c.verdict.clone(), cell);
        }
    }
    let alerts_by_kind: Map<String, Value> = s
        .alerts_by_kind
        .iter()
        .map(|(k, n)| (k.clone(), json!(n)))
        .collect();
    let open: Vec<Value> = s.open.iter().map(incident).collect();
    json!({
        "enterprise": s.enterprise,
        "export_bytes": by_scenario,
        "export_bytes_saturated": s.export.iter().any(|c| c.saturated),
        "alerts_by_kind": alerts_by_kind,
        "open_incidents": open.len(),
        "incidents": open,
    })
}

#[cfg(test)]
mod tests {
    use super::alert_timestamp;

    #[test]
    fn alert_timestamps_stay_rfc3339() {
        assert_eq!(
            alert_timestamp("2026-03-02T09:14:07.118042+0000"),
            "2026-03-02T09:14:07.118Z"
        );
        assert_eq!(
            alert_timestamp("2026-03-02T17:14:07.118042+0800"),
            "2026-03-02T09:14:07.118Z"
        );
        for kept in [
            "2026-03-02T09:14:07.118Z",
            "2026-03-02T17:14:07.118+08:00",
            "-290308-12-21T19:59:05.224192+0000",
            "yesterday",
            "",
        ] {
            assert_eq!(alert_timestamp(kept), kept);
        }
    }
}
