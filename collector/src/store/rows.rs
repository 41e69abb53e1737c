//! Typed rows the stores return (the API and the console shape their own JSON from them), and
//! the one mapping from a result row to each, shared by SQLite and PostgreSQL: both backends
//! select the same columns in the same order and read them through [`Cols`].

/// Read access to the columns of one result row, by position.
pub(crate) trait Cols {
    /// The driver's error.
    type Err;
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, Self::Err>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Err>;
    /// A text column.
    fn text(&self, i: usize) -> Result<String, Self::Err>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Err>;
    /// A flag (SQLite INTEGER 0/1, PostgreSQL BOOLEAN).
    fn flag(&self, i: usize) -> Result<bool, Self::Err>;
}

impl Cols for rusqlite::Row<'_> {
    type Err = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn flag(&self, i: usize) -> rusqlite::Result<bool> {
        self.get(i)
    }
}

impl Cols for postgres::Row {
    type Err = postgres::Error;
    fn int(&self, i: usize) -> Result<i64, postgres::Error> {
        self.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, postgres::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, postgres::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, postgres::Error> {
        self.try_get(i)
    }
    fn flag(&self, i: usize) -> Result<bool, postgres::Error> {
        self.try_get(i)
    }
}

/// Columns of [`AlertRow::read`], in order (the same on both backends).
pub(crate) const ALERT_COLUMNS: &str =
    "id, timestamp, gateway, kind, severity, scenario, enterprise, summary, rule,
  recipient, service, count, bytes, persons, evidence, followup, green_channel, flow_id, proto,
  src_ip, src_port, dest_ip, dest_port, sni, incident_id, received_at, time_flag, json";

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Row id.
    pub id: i64,
    /// The event's timestamp as the agent wrote it.
    pub timestamp: String,
    /// Gateway id.
    pub gateway: String,
    /// Alert kind.
    pub kind: String,
    /// Severity label.
    pub severity: String,
    /// Scenario id.
    pub scenario: Option<String>,
    /// Enterprise id.
    pub enterprise: Option<String>,
    /// One-line summary.
    pub summary: String,
    /// The rule that fired.
    pub rule: String,
    /// Far end named by the alert.
    pub recipient: Option<String>,
    /// Service named by the alert.
    pub service: Option<String>,
    /// Occurrences folded into the alert.
    pub count: i64,
    /// Export bytes.
    pub bytes: i64,
    /// Persons estimate.
    pub persons: Option<i64>,
    /// Masked evidence items.
    pub evidence: Vec<String>,
    /// A follow-up alert of an earlier one.
    pub followup: bool,
    /// Green-channel enterprise.
    pub green_channel: bool,
    /// Flow id.
    pub flow_id: Option<i64>,
    /// Protocol.
    pub proto: Option<String>,
    /// Source address.
    pub src_ip: Option<String>,
    /// Source port.
    pub src_port: Option<i64>,
    /// Destination address.
    pub dest_ip: Option<String>,
    /// Destination port.
    pub dest_port: Option<i64>,
    /// TLS/QUIC server name.
    pub sni: Option<String>,
    /// The incident it was grouped into.
    pub incident_id: Option<i64>,
    /// Arrival time, Unix ms (absent on rows stored before arrival times were kept).
    pub received_at_ms: Option<i64>,
    /// What was wrong with its timestamp (`future`, `unparseable`, `out_of_range`).
    pub time_flag: Option<String>,
    /// `enterprise` for an enterprise-wide alert (`crate::sketch`).
    pub scope: Option<String>,
    /// The gateways whose figures make up an enterprise-wide alert.
    pub gateways: Vec<String>,
}

/// The parts of the alert line as received that have no column: crossline's alert object is
/// `crossline.alert` in EVE's layout, the top-level `alert` in the layout before it.
#[derive(Default, serde::Deserialize)]
struct LineExtras {
    #[serde(default)]
    alert: AlertExtras,
    #[serde(default)]
    crossline: Option<CrosslineExtras>,
}

#[derive(Default, serde::Deserialize)]
struct CrosslineExtras {
    #[serde(default)]
    alert: AlertExtras,
}

impl LineExtras {
    fn alert(self) -> AlertExtras {
        match self.crossline {
            Some(c) => c.alert,
            None => self.alert,
        }
    }
}

#[derive(Default, serde::Deserialize)]
struct AlertExtras {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    gateways: Vec<String>,
}

impl AlertRow {
    /// The row selected with [`ALERT_COLUMNS`].
    pub(crate) fn read<R: Cols>(r: &R) -> Result<AlertRow, R::Err> {
        let evidence: Vec<String> = serde_json::from_str(&r.text(14)?).unwrap_or_default();
        let extras = serde_json::from_str::<LineExtras>(&r.text(27)?)
            .unwrap_or_default()
            .alert();
        Ok(AlertRow {
            id: r.int(0)?,
            timestamp: r.text(1)?,
            gateway: r.text(2)?,
            kind: r.text(3)?,
            severity: r.text(4)?,
            scenario: r.opt_text(5)?,
            enterprise: r.opt_text(6)?,
            summary: r.text(7)?,
            rule: r.text(8)?,
            recipient: r.opt_text(9)?,
            service: r.opt_text(10)?,
            count: r.int(11)?,
            bytes: r.int(12)?,
            persons: r.opt_int(13)?,
            evidence,
            followup: r.flag(15)?,
            green_channel: r.flag(16)?,
            flow_id: r.opt_int(17)?,
            proto: r.opt_text(18)?,
            src_ip: r.opt_text(19)?,
            src_port: r.opt_int(20)?,
            dest_ip: r.opt_text(21)?,
            dest_port: r.opt_int(22)?,
            sni: r.opt_text(23)?,
            incident_id: r.opt_int(24)?,
            received_at_ms: r.opt_int(25)?,
            time_flag: r.opt_text(26)?,
            scope: extras.scope,
            gateways: extras.gateways,
        })
    }
}

/// Columns of [`IncidentRow::read`], in order (the same on both backends).
pub(crate) const INCIDENT_COLUMNS: &str =
    "id, gateway, enterprise, kind, recipient, status, severity, grade,
  discovered_at, last_alert_at, deadline_at, alert_count, bytes, persons, green_channel, ciio,
  summary, acknowledged_at, acknowledged_by, resolved_at, resolved_by, comment, first_received_at,
  late_arrival, bytes_saturated, future_timestamp";

/// A stored incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    /// Row id.
    pub id: i64,
    /// Gateway (the line).
    pub gateway: String,
    /// Enterprise id, if known.
    pub enterprise: Option<String>,
    /// Alert kind.
    pub kind: String,
    /// Far end.
    pub recipient: String,
    /// `open`, `notified`, `acknowledged`, `resolved`.
    pub status: String,
    /// Highest severity of its alerts.
    pub severity: String,
    /// Grade label.
    pub grade: String,
    /// First alert time, Unix ms.
    pub discovered_at_ms: i64,
    /// Latest alert time, Unix ms.
    pub last_alert_at_ms: i64,
    /// Reporting deadline, Unix ms.
    pub deadline_at_ms: i64,
    /// Alerts grouped.
    pub alert_count: i64,
    /// Export bytes covered (saturating).
    pub bytes: i64,
    /// Persons estimate (largest seen).
    pub persons: i64,
    /// Green-channel enterprise.
    pub green_channel: bool,
    /// Critical information infrastructure operator.
    pub ciio: bool,
    /// Summary of the first alert.
    pub summary: String,
    /// Acknowledgement time, Unix ms.
    pub acknowledged_at_ms: Option<i64>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// Resolution time, Unix ms.
    pub resolved_at_ms: Option<i64>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Latest comment.
    pub comment: Option<String>,
    /// Arrival of its first alert, Unix ms.
    pub first_received_at_ms: Option<i64>,
    /// The deadline had passed before the first alert arrived.
    pub late_arrival: bool,
    /// `bytes` saturated at `i64::MAX`.
    pub bytes_saturated: bool,
    /// One of its alerts was dated ahead of its arrival.
    pub future_timestamp: bool,
}

impl IncidentRow {
    /// The row selected with [`INCIDENT_COLUMNS`].
    pub(crate) fn read<R: Cols>(r: &R) -> Result<IncidentRow, R::Err> {
        Ok(IncidentRow {
            id: r.int(0)?,
            gateway: r.text(1)?,
            enterprise: r.opt_text(2)?,
            kind: r.text(3)?,
            recipient: r.text(4)?,
            status: r.text(5)?,
            severity: r.text(6)?,
            grade: r.text(7)?,
            discovered_at_ms: r.int(8)?,
            last_alert_at_ms: r.int(9)?,
            deadline_at_ms: r.int(10)?,
            alert_count: r.int(11)?,
            bytes: r.int(12)?,
            persons: r.int(13)?,
            green_channel: r.flag(14)?,
            ciio: r.flag(15)?,
            summary: r.text(16)?,
            acknowledged_at_ms: r.opt_int(17)?,
            acknowledged_by: r.opt_text(18)?,
            resolved_at_ms: r.opt_int(19)?,
            resolved_by: r.opt_text(20)?,
            comment: r.opt_text(21)?,
            first_received_at_ms: r.opt_int(22)?,
            late_arrival: r.flag(23)?,
            bytes_saturated: r.flag(24)?,
            future_timestamp: r.flag(25)?,
        })
    }
}

/// Columns of [`HistoryEntry::read`].
pub(crate) const HISTORY_COLUMNS: &str = "action, actor, role, at, comment";

/// One acknowledge/resolve entry of an incident's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `acknowledge` or `resolve`.
    pub action: String,
    /// Token name (`auto` for the quiet-period resolution).
    pub by: String,
    /// Token role.
    pub role: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Comment.
    pub comment: String,
}

impl HistoryEntry {
    /// The row selected with [`HISTORY_COLUMNS`].
    pub(crate) fn read<R: Cols>(r: &R) -> Result<HistoryEntry, R::Err> {
        Ok(HistoryEntry {
            action: r.text(0)?,
            by: r.text(1)?,
            role: r.text(2)?,
            at_ms: r.int(3)?,
            comment: r.text(4)?,
        })
    }
}

/// Columns of [`AuditRow::read`].
pub(crate) const AUDIT_COLUMNS: &str = "id, at, token, role, action, target, comment";

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Row id.
    pub id: i64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Token name.
    pub token: String,
    /// Token role.
    pub role: String,
    /// Action.
    pub action: String,
    /// What it was done to (`incident/<id>`).
    pub target: String,
    /// Comment.
    pub comment: String,
}

impl AuditRow {
    /// The row selected with [`AUDIT_COLUMNS`].
    pub(crate) fn read<R: Cols>(r: &R) -> Result<AuditRow, R::Err> {
        Ok(AuditRow {
            id: r.int(0)?,
            at_ms: r.int(1)?,
            token: r.text(2)?,
            role: r.text(3)?,
            action: r.text(4)?,
            target: r.text(5)?,
            comment: r.text(6)?,
        })
    }
}

/// Columns of [`report_alert`] on `alerts a`.
pub(crate) const REPORT_ALERT_COLUMNS: &str =
    "a.id, a.proto, a.src_ip, a.src_port, a.dest_ip, a.dest_port, a.sni, a.json,
  a.recipient, a.persons, a.evidence, a.scenario, a.gateway, a.flow_id, a.kind, a.ts";

/// An alert as the incident report reads it, selected with [`REPORT_ALERT_COLUMNS`].
pub(crate) fn report_alert<R: Cols>(r: &R) -> Result<crate::report::ReportAlert, R::Err> {
    Ok(crate::report::ReportAlert {
        id: r.int(0)?,
        proto: r.opt_text(1)?,
        src_ip: r.opt_text(2)?,
        src_port: r.opt_int(3)?,
        dest_ip: r.opt_text(4)?,
        dest_port: r.opt_int(5)?,
        sni: r.opt_text(6)?,
        json: r.text(7)?,
        recipient: r.opt_text(8)?,
        persons: r.opt_int(9)?,
        evidence: r.text(10)?,
        scenario: r.opt_text(11)?,
        gateway: r.text(12)?,
        flow_id: r.opt_int(13)?,
        kind: r.text(14)?,
        ts: r.int(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::LineExtras;

    fn extras(line: &str) -> (Option<String>, Vec<String>) {
        let a = serde_json::from_str::<LineExtras>(line)
            .unwrap_or_default()
            .alert();
        (a.scope, a.gateways)
    }

    #[test]
    fn scope_and_gateways_from_either_layout() {
        let want = (
            Some("enterprise".to_string()),
            vec!["gw-a".into(), "gw-b".into()],
        );
        let eve = r#"{"event_type":"alert","alert":{"severity":1,"signature_id":9900011},"crossline":{"alert":{"scope":"enterprise","gateways":["gw-a","gw-b"]}}}"#;
        assert_eq!(extras(eve), want);
        let legacy =
            r#"{"event_type":"alert","alert":{"scope":"enterprise","gateways":["gw-a","gw-b"]}}"#;
        assert_eq!(extras(legacy), want);
        // EVE's own alert object is not read as crossline's.
        let none = r#"{"event_type":"alert","alert":{"severity":1},"crossline":{"alert":{}}}"#;
        assert_eq!(extras(none), (None, Vec::new()));
    }
}
