//! The durable store: batches, flow records, alerts, incidents, the notification outbox and the
//! audit log.
//!
//! [`Store`] is a synchronous trait so that a PostgreSQL backend can follow; callers run it on a
//! blocking thread (`tokio::task::spawn_blocking`), never on the reactor. [`SqliteStore`] keeps
//! one SQLite file in WAL mode with `synchronous=FULL`: a batch is acknowledged only after its
//! transaction is on disk. A batch is atomic: its events, alerts, the incidents they open or
//! extend and the outbox rows for those incidents are committed together or not at all. Batches
//! that arrive while the writer is busy are group-committed: one transaction (one fsync), one
//! savepoint per batch, so a failing batch rolls back only itself. Dedupe is the primary key of
//! `batches` (gateway, stream, sequence). Stream and sequence are stored as the INTEGER with the
//! same 64 bits (`u64 as i64`, a bijection: values above `i64::MAX` read back negative in SQL but
//! dedupe and [`Store::has_batch`] are exact); the PostgreSQL store ([`crate::pg`]) keeps them
//! as `NUMERIC(20,0)`.

use crate::incident::IncidentNotice;
use crate::report::{self, ReportAlert};
use crossline_config::collector::{CollectorConfig, Role};
use crossline_config::event::{Event, EventType};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

mod incidents;
mod rows;

pub(crate) use rows::{
    report_alert, ALERT_COLUMNS, AUDIT_COLUMNS, HISTORY_COLUMNS, INCIDENT_COLUMNS,
    REPORT_ALERT_COLUMNS,
};
pub use rows::{AlertRow, AuditRow, HistoryEntry, IncidentRow};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema on disk is newer than this binary.
    #[error("database schema version {found} is newer than this collector ({known})")]
    SchemaTooNew {
        /// Version on disk.
        found: i64,
        /// Latest version known.
        known: i64,
    },
    /// The group commit this batch was part of failed.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A lock was poisoned by a panic on another thread.
    #[error("store unavailable (poisoned lock)")]
    Poisoned,
    /// PostgreSQL refused or failed an operation.
    #[error("database error: {}", pg_detail(.0))]
    Postgres(#[from] postgres::Error),
    /// The database cannot be reached (PostgreSQL down, restarting, unreachable); the caller
    /// answers 503 and the agents retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// A PostgreSQL error with the server's SQLSTATE and message (its `Display` says only
/// "db error").
fn pg_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// What was wrong with an event's timestamp (it is stored anyway, flagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFlag {
    /// More than `time.future_skew` after its arrival; stored with its own timestamp.
    Future,
    /// Not RFC 3339; stored with the arrival time as its time.
    Unparseable,
    /// Outside `time.min_year ..= time.max_year`; stored with the arrival time as its time.
    OutOfRange,
}

impl TimeFlag {
    /// The stored / JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeFlag::Future => "future",
            TimeFlag::Unparseable => "unparseable",
            TimeFlag::OutOfRange => "out_of_range",
        }
    }
}

/// One event of a batch, parsed and with its original line.
#[derive(Debug, Clone)]
pub struct BatchEvent {
    /// The parsed event.
    pub event: Event,
    /// Its time, Unix ms: the event's timestamp, or the arrival time when that is unusable
    /// (see `time_flag`).
    pub ts_ms: i64,
    /// The JSON line as received.
    pub json: String,
    /// A problem with the event's own timestamp, if any.
    pub time_flag: Option<TimeFlag>,
}

/// A batch as received from one agent.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Gateway id (from the client certificate).
    pub gateway: String,
    /// Spool id of the agent.
    pub stream: u64,
    /// Batch number within the stream.
    pub sequence: u64,
    /// Arrival time, Unix ms.
    pub received_at_ms: i64,
    /// The events.
    pub events: Vec<BatchEvent>,
}

/// Result of storing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Committed durably; number of events.
    Stored(usize),
    /// (gateway, stream, sequence) was already stored; nothing was written.
    Duplicate,
}

/// What a caller may see (API roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything (regulator).
    All,
    /// These gateways only (operator).
    Gateways(Vec<String>),
    /// This enterprise only (enterprise).
    Enterprise(String),
}

impl Scope {
    /// The scope of a token.
    pub fn of(token: &crossline_config::collector::Token) -> Scope {
        match token.role {
            Role::Regulator => Scope::All,
            Role::Operator => Scope::Gateways(token.gateways.clone()),
            Role::Enterprise => Scope::Enterprise(token.enterprise.clone().unwrap_or_default()),
        }
    }

    /// SQL condition on a table with `gateway` and `enterprise` columns; pushes its parameters.
    fn condition(&self, alias: &str, params: &mut Vec<SqlValue>) -> String {
        match self {
            Scope::All => "1=1".to_string(),
            Scope::Gateways(g) => {
                if g.is_empty() {
                    return "0=1".to_string();
                }
                let marks = vec!["?"; g.len()].join(",");
                params.extend(g.iter().map(|x| SqlValue::Text(x.clone())));
                format!("{alias}gateway IN ({marks})")
            }
            Scope::Enterprise(e) => {
                params.push(SqlValue::Text(e.clone()));
                format!("{alias}enterprise = ?")
            }
        }
    }
}

/// Filters of `GET /api/v1/alerts`.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Gateway id.
    pub gateway: Option<String>,
    /// Enterprise id.
    pub enterprise: Option<String>,
    /// Alert kind.
    pub kind: Option<String>,
    /// Minimum severity.
    pub severity: Option<String>,
    /// From (Unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// To (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: u32,
    /// Page offset.
    pub offset: u32,
}

/// Filters of `GET /api/v1/incidents`.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// `open`, `notified`, `acknowledged`, `resolved`.
    pub status: Option<String>,
    /// Grade label.
    pub grade: Option<String>,
    /// Enterprise id.
    pub enterprise: Option<String>,
    /// Gateway id.
    pub gateway: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Page offset.
    pub offset: u32,
}

/// A lifecycle action from the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// open/notified -> acknowledged.
    Acknowledge,
    /// any -> resolved.
    Resolve,
}

impl Transition {
    /// The action's name in the audit log and an incident's history, if an incident in
    /// `status` may take it; else the conflict to answer with. Both stores apply this rule.
    pub fn check(self, id: i64, status: &str) -> Result<&'static str, TransitionOutcome> {
        match self {
            Transition::Acknowledge if status == "resolved" || status == "acknowledged" => {
                Err(TransitionOutcome::Conflict(format!(
                    "incident {id} is {status}; only open or notified incidents can be acknowledged"
                )))
            }
            Transition::Acknowledge => Ok("acknowledge"),
            Transition::Resolve if status == "resolved" => Err(TransitionOutcome::Conflict(
                format!("incident {id} is already resolved"),
            )),
            Transition::Resolve => Ok("resolve"),
        }
    }
}

/// A lifecycle action with who did it, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// What to do.
    pub action: Transition,
    /// Token name.
    pub actor: &'a str,
    /// Token role.
    pub role: &'a str,
    /// Free-text comment.
    pub comment: &'a str,
    /// When, Unix ms.
    pub now_ms: i64,
}

/// Result of a lifecycle action.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionOutcome {
    /// Not found in scope.
    NotFound,
    /// The incident is not in a state that allows it (e.g. acknowledge a resolved one).
    Conflict(String),
    /// Done; the incident as it is now, with its history.
    Done(Box<IncidentRow>, Vec<HistoryEntry>),
}

/// A notification due for delivery.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// Receiver name.
    pub receiver: String,
    /// `firing` or `resolved`.
    pub event: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The incident as it is now.
    pub incident: IncidentNotice,
}

/// Gauge values computed from the store.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Open (not resolved) incidents by (grade, severity).
    pub open: Vec<(String, String, i64)>,
    /// Open/notified incidents past their deadline, by grade.
    pub overdue: Vec<(String, i64)>,
    /// Undelivered outbox rows.
    pub outbox_pending: i64,
    /// Unresolved incidents whose deadline had passed before their first alert arrived, by
    /// grade.
    pub late_arrival: Vec<(String, i64)>,
}

/// An incident with its history and what its report is made of (see `crate::report`).
#[derive(Debug, Clone)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: IncidentRow,
    /// Its acknowledge/resolve history, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Its alerts (at most `report::MAX_ALERTS`), in id order.
    pub alerts: Vec<ReportAlert>,
    /// The flow records of [`report::flow_keys`] of those alerts, as received.
    pub flows: Vec<String>,
}

/// Export bytes and flows of one (scenario, verdict) of an enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCell {
    /// Scenario id (`none` when the flow matched none).
    pub scenario: String,
    /// Verdict status (`none` when absent).
    pub verdict: String,
    /// Export bytes, saturated at `i64::MAX`.
    pub bytes: i64,
    /// The sum saturated.
    pub saturated: bool,
    /// Flow records.
    pub flows: i64,
}

/// What the store knows about one enterprise in scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseSummary {
    /// Enterprise id.
    pub enterprise: String,
    /// Export by scenario and verdict, in that order.
    pub export: Vec<ExportCell>,
    /// Alert counts by kind, in kind order.
    pub alerts_by_kind: Vec<(String, i64)>,
    /// Incidents not resolved, newest first (at most 1,000).
    pub open: Vec<IncidentRow>,
}

/// Persistence behind the collector.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Use a reloaded configuration (routes, receivers, registry) from now on.
    fn reconfigure(&self, _config: Arc<CollectorConfig>) {}
    /// Store a batch durably and atomically (or report a duplicate).
    fn ingest(&self, batch: Arc<Batch>) -> Result<IngestOutcome, StoreError>;
    /// Alerts in scope matching the filter, newest first.
    fn alerts(&self, scope: &Scope, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError>;
    /// One alert, if in scope.
    fn alert(&self, scope: &Scope, id: i64) -> Result<Option<AlertRow>, StoreError>;
    /// Incidents in scope matching the filter, newest first.
    fn incidents(
        &self,
        scope: &Scope,
        filter: &IncidentFilter,
    ) -> Result<Vec<IncidentRow>, StoreError>;
    /// One incident with its history and what its report is made of, if in scope.
    fn incident(&self, scope: &Scope, id: i64) -> Result<Option<IncidentDetail>, StoreError>;
    /// Acknowledge or resolve, with an audit record.
    fn transition(
        &self,
        scope: &Scope,
        id: i64,
        change: &Change<'_>,
    ) -> Result<TransitionOutcome, StoreError>;
    /// Export bytes by scenario and verdict, alert counts by kind, open incidents.
    fn enterprise_summary(
        &self,
        scope: &Scope,
        enterprise: &str,
    ) -> Result<EnterpriseSummary, StoreError>;
    /// The audit log, newest first; only the entries about one incident when given.
    fn audit(
        &self,
        incident: Option<i64>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Notifications due at `now_ms`.
    fn due_notifications(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError>;
    /// Mark a notification delivered (and the incident `notified` when it was `open`).
    fn mark_delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;
    /// Record a failed attempt and when to try next.
    fn mark_failed(&self, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError>;
    /// Give up on a notification that can never be delivered (its receiver is no longer
    /// configured): it leaves the pending set, with the reason kept in `last_error`.
    fn mark_dropped(&self, id: i64, now_ms: i64, reason: &str) -> Result<(), StoreError>;
    /// Incidents not resolved (for periodic Alertmanager re-sends).
    fn unresolved_incidents(&self) -> Result<Vec<IncidentNotice>, StoreError>;
    /// Resolve incidents without a new alert since `quiet_before_ms`; returns how many.
    fn auto_resolve(&self, quiet_before_ms: i64, now_ms: i64) -> Result<usize, StoreError>;
    /// Delete flow and stats records received before `before_ms` (arrival time, not the
    /// packets' time: a capture from 2023 ingested today is kept for the full period);
    /// returns how many.
    fn expire_flows(&self, before_ms: i64) -> Result<usize, StoreError>;
    /// Gauge values.
    fn gauges(&self, now_ms: i64) -> Result<Gauges, StoreError>;
    /// Whether a batch is stored (tests and tools).
    fn has_batch(&self, gateway: &str, stream: u64, sequence: u64) -> Result<bool, StoreError>;
    /// Every gateway's figure of an enterprise whose subject starts with `subject_prefix`.
    fn sketch_rows(
        &self,
        enterprise: &str,
        subject_prefix: &str,
    ) -> Result<Vec<SketchRow>, StoreError>;
    /// Run `work` on the enterprise-wide sketch tables (see `crate::sketch`) in one
    /// transaction: committed when it returns `Ok`, rolled back otherwise. One merge at a time
    /// (on PostgreSQL across replicas too).
    fn sketch_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn SketchTables) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// The console's work queue: incidents in scope matching the filter and, when given, an
    /// alert kind, soonest deadline first (then id).
    fn incidents_by_deadline(
        &self,
        scope: &Scope,
        filter: &IncidentFilter,
        kind: Option<&str>,
    ) -> Result<Vec<IncidentRow>, StoreError>;
    /// Whether the database answers now (`/healthz`); the reason when it does not.
    fn healthy(&self) -> Result<(), String> {
        Ok(())
    }
}

/// One gateway's latest figure for one enterprise-wide subject (`persons:<year>:<category>`
/// with HyperLogLog registers, or `bytes:<day>:<scenario>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SketchRow {
    /// `persons:<year>:<category>` or `bytes:<day>:<scenario>`.
    pub subject: String,
    /// The gateway the figure is from.
    pub gateway: String,
    /// Encoded registers (persons), empty for bytes.
    pub data: String,
    /// The gateway's estimate (persons) or bytes.
    pub value: u64,
    /// The limit or cap the gateway reported.
    pub limit: Option<u64>,
    /// When it was last updated, Unix ms.
    pub updated_ms: i64,
}

/// The sketch tables inside one transaction ([`Store::sketch_transaction`]).
pub trait SketchTables {
    /// Establish `fingerprint` as the enterprise's PI key fingerprint when it has none;
    /// `Some(established)` when it differs.
    fn key(
        &mut self,
        enterprise: &str,
        fingerprint: &str,
        gateway: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Every gateway's figure of an enterprise whose subject starts with `subject_prefix`.
    fn rows(
        &mut self,
        enterprise: &str,
        subject_prefix: &str,
    ) -> Result<Vec<SketchRow>, StoreError>;
    /// Insert or replace one gateway's figure.
    fn put(&mut self, enterprise: &str, row: &SketchRow) -> Result<(), StoreError>;
    /// Record that `level` of `subject` was judged; true the first time.
    fn mark(
        &mut self,
        enterprise: &str,
        subject: &str,
        level: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// The sketch tables on an SQLite connection (inside a transaction).
struct SqliteSketch<'c>(&'c Connection);

impl SketchTables for SqliteSketch<'_> {
    fn key(
        &mut self,
        enterprise: &str,
        fingerprint: &str,
        gateway: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        self.0.prepare_cached(
            "INSERT OR IGNORE INTO sketch_keys (enterprise, fingerprint, gateway, established_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![enterprise, fingerprint, gateway, now_ms])?;
        let established: String = self.0.query_row(
            "SELECT fingerprint FROM sketch_keys WHERE enterprise = ?1",
            params![enterprise],
            |r| r.get(0),
        )?;
        Ok((established != fingerprint).then_some(established))
    }

    fn rows(
        &mut self,
        enterprise: &str,
        subject_prefix: &str,
    ) -> Result<Vec<SketchRow>, StoreError> {
        sqlite_sketch_rows(self.0, enterprise, subject_prefix)
    }

    fn put(&mut self, enterprise: &str, row: &SketchRow) -> Result<(), StoreError> {
        self.0.prepare_cached(
            "INSERT OR REPLACE INTO sketch_figures (enterprise, subject, gateway, data, value, lim, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            enterprise,
            row.subject,
            row.gateway,
            row.data,
            i64::try_from(row.value).unwrap_or(i64::MAX),
            row.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
            row.updated_ms
        ])?;
        Ok(())
    }

    fn mark(
        &mut self,
        enterprise: &str,
        subject: &str,
        level: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = self.0.prepare_cached(
            "INSERT OR IGNORE INTO sketch_alerted (enterprise, subject, level, at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![enterprise, subject, i64::try_from(level).unwrap_or(i64::MAX), now_ms])?;
        Ok(n == 1)
    }
}

fn sqlite_sketch_rows(
    c: &Connection,
    enterprise: &str,
    subject_prefix: &str,
) -> Result<Vec<SketchRow>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT subject, gateway, data, value, lim, updated_at FROM sketch_figures WHERE enterprise = ?1 AND substr(subject, 1, length(?2)) = ?2 ORDER BY subject, gateway",
    )?;
    let rows = st
        .query_map(params![enterprise, subject_prefix], |r| {
            Ok(SketchRow {
                subject: r.get(0)?,
                gateway: r.get(1)?,
                data: r.get(2)?,
                value: r.get::<_, i64>(3)?.max(0) as u64,
                limit: r.get::<_, Option<i64>>(4)?.map(|l| l.max(0) as u64),
                updated_ms: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Numbered migrations; each is applied once, in a transaction, at start.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r"
CREATE TABLE batches (
  gateway TEXT NOT NULL, stream INTEGER NOT NULL, sequence INTEGER NOT NULL,
  received_at INTEGER NOT NULL, events INTEGER NOT NULL,
  PRIMARY KEY (gateway, stream, sequence)) WITHOUT ROWID;
CREATE TABLE events (
  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, timestamp TEXT NOT NULL, event_type TEXT NOT NULL,
  gateway TEXT NOT NULL, flow_id INTEGER, proto TEXT, src_ip TEXT, src_port INTEGER,
  dest_ip TEXT, dest_port INTEGER, app_proto TEXT, sni TEXT, host TEXT, export_bytes INTEGER,
  verdict TEXT, scenario TEXT, enterprise TEXT, json TEXT NOT NULL);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_enterprise ON events (enterprise, ts);
CREATE TABLE alerts (
  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, timestamp TEXT NOT NULL, gateway TEXT NOT NULL,
  flow_id INTEGER, proto TEXT, src_ip TEXT, src_port INTEGER, dest_ip TEXT, dest_port INTEGER,
  sni TEXT, kind TEXT NOT NULL, severity TEXT NOT NULL, severity_rank INTEGER NOT NULL,
  scenario TEXT, enterprise TEXT, summary TEXT NOT NULL, rule TEXT NOT NULL, recipient TEXT,
  service TEXT, count INTEGER NOT NULL, bytes INTEGER NOT NULL, persons INTEGER,
  evidence TEXT NOT NULL, followup INTEGER NOT NULL, green_channel INTEGER NOT NULL,
  incident_id INTEGER, json TEXT NOT NULL);
CREATE INDEX alerts_ts ON alerts (ts);
CREATE INDEX alerts_enterprise ON alerts (enterprise, ts);
CREATE INDEX alerts_gateway ON alerts (gateway, ts);
CREATE TABLE incidents (
  id INTEGER PRIMARY KEY, gateway TEXT NOT NULL, enterprise TEXT, kind TEXT NOT NULL,
  recipient TEXT NOT NULL, status TEXT NOT NULL, severity TEXT NOT NULL,
  severity_rank INTEGER NOT NULL, grade TEXT NOT NULL, discovered_at INTEGER NOT NULL,
  last_alert_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, deadline_at INTEGER NOT NULL,
  alert_count INTEGER NOT NULL, bytes INTEGER NOT NULL, persons INTEGER NOT NULL,
  green_channel INTEGER NOT NULL, ciio INTEGER NOT NULL, summary TEXT NOT NULL,
  acknowledged_at INTEGER, acknowledged_by TEXT, resolved_at INTEGER, resolved_by TEXT,
  comment TEXT);
CREATE INDEX incidents_key ON incidents (gateway, kind, recipient, status);
CREATE INDEX incidents_status ON incidents (status);
CREATE TABLE incident_alerts (
  incident_id INTEGER NOT NULL, alert_id INTEGER NOT NULL,
  PRIMARY KEY (incident_id, alert_id)) WITHOUT ROWID;
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL, receiver TEXT NOT NULL,
  event TEXT NOT NULL, created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, delivered_at INTEGER, last_error TEXT);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY, at INTEGER NOT NULL, token TEXT NOT NULL, role TEXT NOT NULL,
  action TEXT NOT NULL, target TEXT NOT NULL, comment TEXT NOT NULL);
",
    // 2: arrival time and timestamp problems per stored event; late arrivals and saturated
    // byte totals on incidents; the acknowledge/resolve history of each incident. Rows stored
    // before this version get the upgrade time as their arrival time (retention keeps them a
    // full period rather than deleting them by packet time).
    r"
ALTER TABLE events ADD COLUMN received_at INTEGER;
ALTER TABLE events ADD COLUMN time_flag TEXT;
ALTER TABLE alerts ADD COLUMN received_at INTEGER;
ALTER TABLE alerts ADD COLUMN time_flag TEXT;
UPDATE events SET received_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
UPDATE alerts SET received_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_flow ON events (gateway, flow_id);
ALTER TABLE incidents ADD COLUMN first_received_at INTEGER;
ALTER TABLE incidents ADD COLUMN late_arrival INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN bytes_saturated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN future_timestamp INTEGER NOT NULL DEFAULT 0;
CREATE TABLE incident_history (
  id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL, at INTEGER NOT NULL,
  action TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, comment TEXT NOT NULL);
CREATE INDEX incident_history_incident ON incident_history (incident_id, id);
INSERT INTO incident_history (incident_id, at, action, actor, role, comment)
  SELECT id, acknowledged_at, 'acknowledge', COALESCE(acknowledged_by, ''), '',
    CASE WHEN resolved_at IS NULL THEN COALESCE(comment, '') ELSE '' END
  FROM incidents WHERE acknowledged_at IS NOT NULL;
INSERT INTO incident_history (incident_id, at, action, actor, role, comment)
  SELECT id, resolved_at, 'resolve', COALESCE(resolved_by, ''),
    CASE WHEN resolved_by = 'auto' THEN 'system' ELSE '' END, COALESCE(comment, '')
  FROM incidents WHERE resolved_at IS NOT NULL;
",
    // 3: enterprise-wide sketches (crate::sketch): each gateway's latest figure per subject,
    // the PI key fingerprint established per enterprise, the levels already judged.
    r"
CREATE TABLE sketch_figures (
  enterprise TEXT NOT NULL, subject TEXT NOT NULL, gateway TEXT NOT NULL, data TEXT NOT NULL,
  value INTEGER NOT NULL, lim INTEGER, updated_at INTEGER NOT NULL,
  PRIMARY KEY (enterprise, subject, gateway)) WITHOUT ROWID;
CREATE TABLE sketch_keys (
  enterprise TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, gateway TEXT NOT NULL,
  established_at INTEGER NOT NULL);
CREATE TABLE sketch_alerted (
  enterprise TEXT NOT NULL, subject TEXT NOT NULL, level INTEGER NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (enterprise, subject, level)) WITHOUT ROWID;
",
    // 4: the console's work queue (`incidents_by_deadline`) pages by deadline: without this
    // index every page sorts the whole table.
    r"
CREATE INDEX incidents_deadline ON incidents (deadline_at, id);
",
];

/// SQLite implementation of [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Replaced by a SIGHUP ([`Store::reconfigure`]).
    config: std::sync::RwLock<Arc<CollectorConfig>>,
    group: Mutex<GroupState>,
    group_done: Condvar,
}

/// Group commit: batches waiting for the writer are committed together, one savepoint each,
/// so concurrent gateways share one fsync and a bad batch rolls back only itself.
#[derive(Debug, Default)]
struct GroupState {
    next_ticket: u64,
    queue: Vec<(u64, Arc<Batch>)>,
    done: HashMap<u64, Result<IngestOutcome, String>>,
    leader: bool,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
}

impl SqliteStore {
    /// Open (or create) the database and apply pending migrations.
    pub fn open(path: &Path, config: Arc<CollectorConfig>) -> Result<SqliteStore, StoreError> {
        let mut writer = open(path)?;
        migrate(&mut writer)?;
        let reader = open(path)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            config: std::sync::RwLock::new(config),
            group: Mutex::new(GroupState::default()),
            group_done: Condvar::new(),
        })
    }

    fn config(&self) -> Arc<CollectorConfig> {
        match self.config.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.writer.lock().map_err(|_| StoreError::Poisoned)
    }

    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.reader.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Commit a group of batches in one transaction, one savepoint per batch.
    fn commit_group(&self, work: &[(u64, Arc<Batch>)]) -> Vec<Result<IngestOutcome, String>> {
        let run = || -> Result<Vec<Result<IngestOutcome, String>>, StoreError> {
            let mut c = self.writer()?;
            let mut tx = c.transaction()?;
            let mut out = Vec::with_capacity(work.len());
            for (_, b) in work {
                let sp = tx.savepoint()?;
                match store_batch(&sp, &self.config(), b) {
                    Ok(o) => {
                        sp.commit()?;
                        out.push(Ok(o));
                    }
                    // Dropping the savepoint rolls this batch back, and only this batch.
                    Err(e) => out.push(Err(e.to_string())),
                }
            }
            tx.commit()?;
            Ok(out)
        };
        match run() {
            Ok(v) => v,
            Err(e) => work.iter().map(|_| Err(e.to_string())).collect(),
        }
    }
}

fn migrate(c: &mut Connection) -> Result<(), StoreError> {
    let tx = c.transaction()?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![i as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `hi * 2^32 + lo`, saturating at `i64::MAX`; true when it saturated.
fn join_halves(hi: i64, lo: i64) -> (i64, bool) {
    match hi.checked_mul(1 << 32).and_then(|h| h.checked_add(lo)) {
        Some(v) => (v, false),
        None => (i64::MAX, true),
    }
}

/// A wire u64 as a stored INTEGER: values above `i64::MAX` are clamped to it (the ingest
/// metrics count them).
fn opt_u64(v: Option<u64>) -> Option<i64> {
    v.map(|x| i64::try_from(x).unwrap_or(i64::MAX))
}

fn sni_of(e: &Event) -> Option<&str> {
    e.tls
        .as_ref()
        .and_then(|t| t.sni.as_deref())
        .or_else(|| e.quic.as_ref().and_then(|t| t.sni.as_deref()))
}

fn store_batch(
    tx: &Connection,
    cfg: &CollectorConfig,
    batch: &Batch,
) -> Result<IngestOutcome, StoreError> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO batches (gateway, stream, sequence, received_at, events)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            batch.gateway,
            batch.stream as i64,
            batch.sequence as i64,
            batch.received_at_ms,
            batch.events.len() as i64
        ],
    )?;
    if inserted == 0 {
        return Ok(IngestOutcome::Duplicate);
    }
    let mut ev_stmt = tx.prepare_cached(
        "INSERT INTO events (ts, timestamp, event_type, gateway, flow_id, proto, src_ip, src_port,
           dest_ip, dest_port, app_proto, sni, host, export_bytes, verdict, scenario, enterprise,
           json, received_at, time_flag)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
    )?;
    let mut al_stmt = tx.prepare_cached(
        "INSERT INTO alerts (ts, timestamp, gateway, flow_id, proto, src_ip, src_port, dest_ip,
           dest_port, sni, kind, severity, severity_rank, scenario, enterprise, summary, rule,
           recipient, service, count, bytes, persons, evidence, followup, green_channel, json,
           received_at, time_flag)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,
           ?23,?24,?25,?26,?27,?28)",
    )?;
    for be in &batch.events {
        let e = &be.event;
        match (e.event_type, &e.alert) {
            (EventType::Alert, Some(a)) => {
                let evidence = serde_json::to_string(&a.evidence).unwrap_or_else(|_| "[]".into());
                al_stmt.execute(params![
                    be.ts_ms,
                    e.timestamp,
                    e.gateway,
                    opt_u64(e.flow_id),
                    e.proto,
                    e.src_ip,
                    e.src_port,
                    e.dest_ip,
                    e.dest_port,
                    sni_of(e),
                    a.kind.as_str(),
                    a.severity.as_str(),
                    a.severity as i64,
                    a.scenario,
                    a.enterprise,
                    a.summary,
                    if a.rule.is_empty() {
                        a.kind.rule()
                    } else {
                        a.rule.as_str()
                    },
                    a.recipient,
                    a.service,
                    opt_u64(Some(a.count)),
                    opt_u64(Some(a.bytes)),
                    opt_u64(a.persons),
                    evidence,
                    a.followup,
                    a.green_channel,
                    be.json,
                    batch.received_at_ms,
                    be.time_flag.map(TimeFlag::as_str),
                ])?;
                let alert_id = tx.last_insert_rowid();
                incidents::on_alert(tx, cfg, alert_id, be, batch.received_at_ms)?;
            }
            // Merged by `crate::sketch` once the batch is stored; not kept as an event (the
            // merged figures are in `sketch_figures`).
            (EventType::Sketch, _) => {}
            _ => {
                let (verdict, scenario, enterprise) = match &e.verdict {
                    Some(v) => (
                        Some(v.status.as_str()),
                        v.scenario.as_deref(),
                        v.enterprise.as_deref(),
                    ),
                    None => (None, None, None),
                };
                let event_type = e.event_type.as_str();
                ev_stmt.execute(params![
                    be.ts_ms,
                    e.timestamp,
                    event_type,
                    e.gateway,
                    opt_u64(e.flow_id),
                    e.proto,
                    e.src_ip,
                    e.src_port,
                    e.dest_ip,
                    e.dest_port,
                    e.app_proto,
                    sni_of(e),
                    e.http.as_ref().and_then(|h| h.hostname.as_deref()),
                    opt_u64(e.export_bytes),
                    verdict,
                    scenario,
                    enterprise,
                    be.json,
                    batch.received_at_ms,
                    be.time_flag.map(TimeFlag::as_str),
                ])?;
            }
        }
    }
    Ok(IngestOutcome::Stored(batch.events.len()))
}

/// The acknowledge/resolve history of an incident, oldest first.
fn sqlite_history(c: &Connection, id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {HISTORY_COLUMNS} FROM incident_history WHERE incident_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![id], |r| HistoryEntry::read(r))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Store for SqliteStore {
    fn reconfigure(&self, config: Arc<CollectorConfig>) {
        match self.config.write() {
            Ok(mut g) => *g = config,
            Err(p) => *p.into_inner() = config,
        }
    }

    fn ingest(&self, batch: Arc<Batch>) -> Result<IngestOutcome, StoreError> {
        let mut g = self.group.lock().map_err(|_| StoreError::Poisoned)?;
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.queue.push((ticket, batch));
        loop {
            if let Some(r) = g.done.remove(&ticket) {
                return r.map_err(StoreError::Commit);
            }
            if !g.leader {
                // Lead: take everything queued so far and commit it as one group.
                g.leader = true;
                let work = std::mem::take(&mut g.queue);
                drop(g);
                let results = self.commit_group(&work);
                g = self.group.lock().map_err(|_| StoreError::Poisoned)?;
                g.leader = false;
                for ((t, _), r) in work.iter().zip(results) {
                    g.done.insert(*t, r);
                }
                self.group_done.notify_all();
                continue;
            }
            g = self.group_done.wait(g).map_err(|_| StoreError::Poisoned)?;
        }
    }

    fn alerts(&self, scope: &Scope, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        let mut p = Vec::new();
        let mut conds = vec![scope.condition("", &mut p)];
        if let Some(g) = &f.gateway {
            conds.push("gateway = ?".into());
            p.push(SqlValue::Text(g.clone()));
        }
        if let Some(e) = &f.enterprise {
            conds.push("enterprise = ?".into());
            p.push(SqlValue::Text(e.clone()));
        }
        if let Some(k) = &f.kind {
            conds.push("kind = ?".into());
            p.push(SqlValue::Text(k.clone()));
        }
        if let Some(s) = &f.severity {
            let rank = crossline_config::collector::parse_severity(s).map_or(99, |s| s as i64);
            conds.push("severity_rank >= ?".into());
            p.push(SqlValue::Integer(rank));
        }
        if let Some(s) = f.since_ms {
            conds.push("ts >= ?".into());
            p.push(SqlValue::Integer(s));
        }
        if let Some(u) = f.until_ms {
            conds.push("ts < ?".into());
            p.push(SqlValue::Integer(u));
        }
        p.push(SqlValue::Integer(i64::from(f.limit)));
        p.push(SqlValue::Integer(i64::from(f.offset)));
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
            conds.join(" AND ")
        );
        let c = self.reader()?;
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(p), |r| AlertRow::read(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn alert(&self, scope: &Scope, id: i64) -> Result<Option<AlertRow>, StoreError> {
        let mut p = Vec::new();
        let cond = scope.condition("", &mut p);
        p.push(SqlValue::Integer(id));
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE {cond} AND id = ?");
        let c = self.reader()?;
        Ok(
            c.query_row(&sql, params_from_iter(p), |r| AlertRow::read(r))
                .optional()?,
        )
    }

    fn incidents(&self, scope: &Scope, f: &IncidentFilter) -> Result<Vec<IncidentRow>, StoreError> {
        let mut p = Vec::new();
        let mut conds = vec![scope.condition("", &mut p)];
        for (col, v) in [
            ("status", &f.status),
            ("grade", &f.grade),
            ("enterprise", &f.enterprise),
            ("gateway", &f.gateway),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = ?"));
                p.push(SqlValue::Text(v.clone()));
            }
        }
        p.push(SqlValue::Integer(i64::from(f.limit)));
        p.push(SqlValue::Integer(i64::from(f.offset)));
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {} ORDER BY id DESC LIMIT ? OFFSET ?",
            conds.join(" AND ")
        );
        let c = self.reader()?;
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(p), |r| IncidentRow::read(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn incident(&self, scope: &Scope, id: i64) -> Result<Option<IncidentDetail>, StoreError> {
        let mut p = Vec::new();
        let cond = scope.condition("", &mut p);
        p.push(SqlValue::Integer(id));
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {cond} AND id = ?");
        let c = self.reader()?;
        let Some(incident) = c
            .query_row(&sql, params_from_iter(p), |r| IncidentRow::read(r))
            .optional()?
        else {
            return Ok(None);
        };
        let alerts: Vec<ReportAlert> = c
            .prepare_cached(&format!(
                "SELECT {REPORT_ALERT_COLUMNS}
                 FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id
                 WHERE ia.incident_id = ?1 ORDER BY a.id LIMIT ?2"
            ))?
            .query_map(params![id, report::MAX_ALERTS], |r| report_alert(r))?
            .collect::<Result<_, _>>()?;
        let mut fstmt = c.prepare_cached(
            "SELECT json FROM events WHERE gateway = ?1 AND flow_id = ?2 AND event_type = 'flow'
               AND dest_ip IS ?3 AND src_port IS ?4 AND ts BETWEEN ?5 - ?6 AND ?5 + ?6
             LIMIT 4",
        )?;
        let mut flows = Vec::new();
        for (gw, f, dst, sport, ts) in report::flow_keys(&alerts) {
            let rows = fstmt
                .query_map(params![gw, f, dst, sport, ts, report::FLOW_NEAR_MS], |r| {
                    r.get::<_, String>(0)
                })?;
            for r in rows {
                flows.push(r?);
            }
        }
        Ok(Some(IncidentDetail {
            incident,
            history: sqlite_history(&c, id)?,
            alerts,
            flows,
        }))
    }

    fn transition(
        &self,
        scope: &Scope,
        id: i64,
        change: &Change<'_>,
    ) -> Result<TransitionOutcome, StoreError> {
        let mut c = self.writer()?;
        let tx = c.transaction()?;
        let mut p = Vec::new();
        let cond = scope.condition("", &mut p);
        p.push(SqlValue::Integer(id));
        let status: Option<String> = tx
            .query_row(
                &format!("SELECT status FROM incidents WHERE {cond} AND id = ?"),
                params_from_iter(p),
                |r| r.get(0),
            )
            .optional()?;
        let Some(status) = status else {
            return Ok(TransitionOutcome::NotFound);
        };
        let Change {
            action,
            actor,
            role,
            comment,
            now_ms,
        } = *change;
        let name = match action.check(id, &status) {
            Ok(name) => name,
            Err(conflict) => return Ok(conflict),
        };
        match action {
            Transition::Acknowledge => {
                tx.execute(
                    "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ?1,
                       acknowledged_by = ?2, comment = ?3 WHERE id = ?4",
                    params![now_ms, actor, comment, id],
                )?;
                incidents::record(&tx, id, now_ms, name, actor, role, comment)?;
            }
            Transition::Resolve => {
                incidents::resolve(&tx, &self.config(), id, now_ms, actor, role, comment)?;
            }
        }
        tx.execute(
            "INSERT INTO audit (at, token, role, action, target, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_ms, actor, role, name, format!("incident/{id}"), comment],
        )?;
        let inc = tx.query_row(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
            params![id],
            |r| IncidentRow::read(r),
        )?;
        let history = sqlite_history(&tx, id)?;
        tx.commit()?;
        Ok(TransitionOutcome::Done(Box::new(inc), history))
    }

    fn enterprise_summary(
        &self,
        scope: &Scope,
        enterprise: &str,
    ) -> Result<EnterpriseSummary, StoreError> {
        let c = self.reader()?;
        let mut p = vec![SqlValue::Text(enterprise.to_string())];
        let cond = scope.condition("", &mut p);
        // Stored byte counts are 0 ..= i64::MAX, so a plain SUM can overflow (an error in
        // SQLite). Sum the high and low 32 bits apart (neither can overflow below 2^31 rows)
        // and join them with saturating arithmetic.
        let export = c
            .prepare(&format!(
                "SELECT COALESCE(scenario, 'none'), COALESCE(verdict, 'none'),
                   SUM(COALESCE(export_bytes, 0) >> 32), SUM(COALESCE(export_bytes, 0) & 4294967295),
                   COUNT(*)
                 FROM events WHERE enterprise = ? AND event_type = 'flow' AND {cond}
                 GROUP BY 1, 2 ORDER BY 1, 2"
            ))?
            .query_map(params_from_iter(p.clone()), |r| {
                let (bytes, saturated) = join_halves(r.get(2)?, r.get(3)?);
                Ok(ExportCell {
                    scenario: r.get(0)?,
                    verdict: r.get(1)?,
                    bytes,
                    saturated,
                    flows: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let alerts_by_kind = c
            .prepare(&format!(
                "SELECT kind, COUNT(*) FROM alerts WHERE enterprise = ? AND {cond}
                 GROUP BY kind ORDER BY kind"
            ))?
            .query_map(params_from_iter(p.clone()), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let open = c
            .prepare(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 WHERE enterprise = ? AND status != 'resolved' AND {cond} ORDER BY id DESC LIMIT 1000"
            ))?
            .query_map(params_from_iter(p), |r| IncidentRow::read(r))?
            .collect::<Result<_, _>>()?;
        Ok(EnterpriseSummary {
            enterprise: enterprise.to_string(),
            export,
            alerts_by_kind,
            open,
        })
    }

    fn audit(
        &self,
        incident: Option<i64>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let c = self.reader()?;
        let mut stmt = c.prepare(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit
             WHERE ?1 IS NULL OR target = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let target = incident.map(|i| format!("incident/{i}"));
        let rows = stmt.query_map(params![target, limit, offset], |r| AuditRow::read(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn due_notifications(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        let c = self.reader()?;
        let mut stmt = c.prepare_cached(
            "SELECT id, incident_id, receiver, event, attempts FROM outbox
             WHERE delivered_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows: Vec<(i64, i64, String, String, u32)> = stmt
            .query_map(params![now_ms, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, incident_id, receiver, event, attempts) in rows {
            if let Some(incident) = incidents::notice(&c, incident_id)? {
                out.push(OutboxItem {
                    id,
                    receiver,
                    event,
                    attempts,
                    incident,
                });
            }
        }
        Ok(out)
    }

    fn mark_delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        let mut c = self.writer()?;
        let tx = c.transaction()?;
        tx.execute(
            "UPDATE outbox SET delivered_at = ?1, attempts = attempts + 1, last_error = NULL
             WHERE id = ?2",
            params![now_ms, id],
        )?;
        tx.execute(
            "UPDATE incidents SET status = 'notified' WHERE status = 'open' AND id =
               (SELECT incident_id FROM outbox WHERE id = ?1 AND event = 'firing')",
            params![id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn mark_failed(&self, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError> {
        let c = self.writer()?;
        c.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?1, last_error = ?2
             WHERE id = ?3",
            params![next_ms, error, id],
        )?;
        Ok(())
    }

    fn mark_dropped(&self, id: i64, now_ms: i64, reason: &str) -> Result<(), StoreError> {
        let c = self.writer()?;
        c.execute(
            "UPDATE outbox SET delivered_at = ?1, last_error = ?2 WHERE id = ?3",
            params![now_ms, format!("dropped: {reason}"), id],
        )?;
        Ok(())
    }

    fn unresolved_incidents(&self) -> Result<Vec<IncidentNotice>, StoreError> {
        let c = self.reader()?;
        let ids: Vec<i64> = {
            let mut stmt =
                c.prepare("SELECT id FROM incidents WHERE status != 'resolved' ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(n) = incidents::notice(&c, id)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    fn auto_resolve(&self, quiet_before_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let mut c = self.writer()?;
        let tx = c.transaction()?;
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM incidents WHERE status != 'resolved' AND last_seen_at < ?1",
            )?;
            let rows = stmt.query_map(params![quiet_before_ms], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in &ids {
            incidents::resolve(
                &tx,
                &self.config(),
                *id,
                now_ms,
                "auto",
                "system",
                "no new alert within the quiet period",
            )?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    fn expire_flows(&self, before_ms: i64) -> Result<usize, StoreError> {
        let c = self.writer()?;
        Ok(c.execute(
            "DELETE FROM events WHERE received_at < ?1 AND event_type IN ('flow', 'stats')",
            params![before_ms],
        )?)
    }

    fn gauges(&self, now_ms: i64) -> Result<Gauges, StoreError> {
        let c = self.reader()?;
        let mut g = Gauges::default();
        {
            let mut stmt = c.prepare_cached(
                "SELECT grade, severity, COUNT(*) FROM incidents WHERE status != 'resolved'
                 GROUP BY 1, 2",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            g.open = rows.collect::<Result<_, _>>()?;
        }
        {
            let mut stmt = c.prepare_cached(
                "SELECT grade, COUNT(*) FROM incidents
                 WHERE status IN ('open', 'notified') AND deadline_at < ?1 GROUP BY 1",
            )?;
            let rows = stmt.query_map(params![now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
            g.overdue = rows.collect::<Result<_, _>>()?;
        }
        {
            let mut stmt = c.prepare_cached(
                "SELECT grade, COUNT(*) FROM incidents
                 WHERE status != 'resolved' AND late_arrival != 0 GROUP BY 1",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            g.late_arrival = rows.collect::<Result<_, _>>()?;
        }
        g.outbox_pending = c.query_row(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(g)
    }

    fn incidents_by_deadline(
        &self,
        scope: &Scope,
        f: &IncidentFilter,
        kind: Option<&str>,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        let mut p = Vec::new();
        let mut conds = vec![scope.condition("", &mut p)];
        let kind = kind.map(str::to_string);
        for (col, v) in [
            ("status", &f.status),
            ("grade", &f.grade),
            ("enterprise", &f.enterprise),
            ("gateway", &f.gateway),
            ("kind", &kind),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = ?"));
                p.push(SqlValue::Text(v.clone()));
            }
        }
        p.push(SqlValue::Integer(i64::from(f.limit)));
        p.push(SqlValue::Integer(i64::from(f.offset)));
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {} ORDER BY deadline_at, id LIMIT ? OFFSET ?",
            conds.join(" AND ")
        );
        let c = self.reader()?;
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(p), |r| IncidentRow::read(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn has_batch(&self, gateway: &str, stream: u64, sequence: u64) -> Result<bool, StoreError> {
        let c = self.reader()?;
        Ok(c.query_row(
            "SELECT 1 FROM batches WHERE gateway = ?1 AND stream = ?2 AND sequence = ?3",
            params![gateway, stream as i64, sequence as i64],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
    }

    fn sketch_rows(
        &self,
        enterprise: &str,
        subject_prefix: &str,
    ) -> Result<Vec<SketchRow>, StoreError> {
        sqlite_sketch_rows(&*self.writer()?, enterprise, subject_prefix)
    }

    fn sketch_transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn SketchTables) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut c = self.writer()?;
        let tx = c.transaction()?;
        work(&mut SqliteSketch(&tx))?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::format_ms;
    use crossline_config::collector::parse_collector;
    use crossline_config::event::{Alert, AlertKind, Severity};
    use serde_json::{json, Value};

    fn config(extra: &str) -> Arc<CollectorConfig> {
        let text = format!(
            "gateways = [\"gw-a\"]\n\
             [[receiver]]\nname = \"all\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"s\"\n\
             [[receiver]]\nname = \"green\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/g\"\nsecret = \"s\"\n\
             [[route]]\nreceivers = [\"all\"]\n\
             [[route]]\ngreen_channel = true\nmin_severity = \"high\"\nreceivers = [\"green\"]\n{extra}"
        );
        Arc::new(parse_collector(&text, Path::new("/tmp/c.toml")).expect("config"))
    }

    /// The lifecycle rule both stores apply: open and notified incidents can be acknowledged,
    /// any but a resolved one resolved; a refusal names the incident and its status.
    #[test]
    fn transitions_allowed_by_status() {
        use Transition::{Acknowledge, Resolve};
        for status in ["open", "notified"] {
            assert_eq!(Acknowledge.check(7, status), Ok("acknowledge"), "{status}");
        }
        for status in ["open", "notified", "acknowledged"] {
            assert_eq!(Resolve.check(7, status), Ok("resolve"), "{status}");
        }
        let conflict = |t: Transition, status| match t.check(7, status) {
            Err(TransitionOutcome::Conflict(m)) => m,
            other => panic!("{t:?} of a {status} incident: {other:?}"),
        };
        assert_eq!(
            conflict(Acknowledge, "acknowledged"),
            "incident 7 is acknowledged; only open or notified incidents can be acknowledged"
        );
        assert!(conflict(Acknowledge, "resolved").starts_with("incident 7 is resolved;"));
        assert_eq!(
            conflict(Resolve, "resolved"),
            "incident 7 is already resolved"
        );
    }

    /// The incident as the API serves it (with history and report).
    fn detail_json(store: &SqliteStore, id: i64) -> Value {
        let d = store
            .incident(&Scope::All, id)
            .expect("get")
            .expect("incident exists");
        crate::api::shape::detail(&store.config(), &d)
    }

    /// A fresh temporary directory (removed with its database, WAL and journal files when
    /// dropped) and the path of `store.db` in it.
    fn temp_db(tag: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("crossline-store-{tag}-"))
            .tempdir()
            .expect("temporary directory");
        let p = dir.path().join("store.db");
        (dir, p)
    }

    fn temp_store(
        tag: &str,
        cfg: Arc<CollectorConfig>,
    ) -> (SqliteStore, tempfile::TempDir, std::path::PathBuf) {
        let (dir, p) = temp_db(tag);
        (SqliteStore::open(&p, cfg).expect("open"), dir, p)
    }

    fn alert(
        ts_ms: i64,
        kind: AlertKind,
        recipient: &str,
        persons: Option<u64>,
        green: bool,
    ) -> BatchEvent {
        let mut e = Event::new(EventType::Alert, format_ms(ts_ms), "gw-a".into());
        e.alert = Some(Alert {
            kind,
            severity: Severity::High,
            scenario: None,
            enterprise: Some("acme".into()),
            summary: "s".into(),
            rule: String::new(),
            recipient: Some(recipient.into()),
            service: None,
            count: 1,
            bytes: 10,
            evidence: Vec::new(),
            persons,
            followup: false,
            green_channel: green,
            days_left: None,
            valid_from: None,
            valid_until: None,
            scope: None,
            gateways: Vec::new(),
        });
        let json = serde_json::to_string(&e).expect("json");
        BatchEvent {
            event: e,
            ts_ms,
            json,
            time_flag: None,
        }
    }

    fn batch(seq: u64, events: Vec<BatchEvent>) -> Batch {
        Batch {
            gateway: "gw-a".into(),
            stream: 9,
            sequence: seq,
            received_at_ms: crate::util::now_ms(),
            events,
        }
    }

    fn outbox(p: &Path) -> Vec<(i64, String, String)> {
        let c = Connection::open(p).expect("open");
        let mut s = c
            .prepare("SELECT incident_id, receiver, event FROM outbox ORDER BY id")
            .expect("prepare");
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    #[test]
    fn grouping_window_regrade_and_routing() {
        let cfg = config("");
        let (store, _dir, path) = temp_store("group", cfg);
        let t0 = 1_772_442_847_118;
        let hour = 3_600_000;
        let b = batch(
            1,
            vec![
                alert(
                    t0,
                    AlertKind::PersonsThreshold,
                    "x.example",
                    Some(10),
                    false,
                ),
                alert(
                    t0 + 10 * 60_000,
                    AlertKind::PersonsThreshold,
                    "x.example",
                    Some(20),
                    false,
                ),
                // Another recipient: another incident.
                alert(t0, AlertKind::PersonsThreshold, "y.example", None, false),
                // Outside the 1 h window after the last alert: another incident.
                alert(
                    t0 + 10 * 60_000 + hour + 1,
                    AlertKind::PersonsThreshold,
                    "x.example",
                    None,
                    false,
                ),
            ],
        );
        assert_eq!(
            store.ingest(Arc::new(b.clone())).expect("ingest"),
            IngestOutcome::Stored(4)
        );
        assert_eq!(
            store.ingest(Arc::new(b)).expect("again"),
            IngestOutcome::Duplicate
        );
        let list = store
            .incidents(
                &Scope::All,
                &IncidentFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .expect("list");
        assert_eq!(list.len(), 3);
        let first = detail_json(&store, 1);
        assert_eq!(first["alert_count"], 2);
        assert_eq!(first["persons"], 20);
        assert_eq!(first["grade"], "compliance");
        assert_eq!(
            outbox(&path).len(),
            3,
            "one firing per new incident to `all`"
        );

        // The persons estimate crosses 1,000,000: regraded to major with a 4 h deadline, and
        // notified again.
        let b2 = batch(
            2,
            vec![alert(
                t0 + 20 * 60_000,
                AlertKind::PersonsThreshold,
                "x.example",
                Some(1_500_000),
                false,
            )],
        );
        store.ingest(Arc::new(b2)).expect("ingest");
        let first = detail_json(&store, 1);
        assert_eq!(first["grade"], "major");
        assert_eq!(first["deadline_at"], format_ms(t0 + 4 * hour));
        assert_eq!(outbox(&path).len(), 4);

        // Green channel, high severity: routed to both receivers.
        let b3 = batch(
            3,
            vec![alert(t0, AlertKind::UnfiledExport, "z.example", None, true)],
        );
        store.ingest(Arc::new(b3)).expect("ingest");
        let rows = outbox(&path);
        let receivers: Vec<&str> = rows
            .iter()
            .filter(|r| r.0 == 4)
            .map(|r| r.1.as_str())
            .collect();
        assert_eq!(receivers, ["all", "green"]);
        let n = incidents::notice(&store.reader().expect("reader"), 4)
            .expect("notice")
            .expect("exists");
        assert_eq!(n.receiver_route(), "green_channel");

        // Quiet period: everything resolves and `resolved` rows are queued.
        let now = crate::util::now_ms();
        assert_eq!(store.auto_resolve(now + 1, now).expect("resolve"), 4);
        assert_eq!(store.auto_resolve(now + 1, now).expect("again"), 0);
        let resolved = outbox(&path).iter().filter(|r| r.2 == "resolved").count();
        assert_eq!(resolved, 5);
        let g = store.gauges(now).expect("gauges");
        assert!(g.open.is_empty());
        assert_eq!(
            g.outbox_pending, 11,
            "6 firing + 5 resolved rows, none delivered"
        );
        store
            .mark_dropped(1, now, "receiver removed")
            .expect("drop");
        assert_eq!(store.gauges(now).expect("gauges").outbox_pending, 10);
        assert_eq!(store.due_notifications(now, 100).expect("due").len(), 10);
        drop(store);
    }

    #[test]
    fn migrations_are_idempotent_and_refuse_newer_schema() {
        let cfg = config("");
        let (store, _dir, path) = temp_store("migrate", cfg.clone());
        drop(store);
        let again = SqliteStore::open(&path, cfg.clone()).expect("reopen");
        drop(again);
        let c = Connection::open(&path).expect("open");
        let v: i64 = c
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
        c.execute("INSERT INTO schema_version (version) VALUES (999)", [])
            .expect("bump");
        drop(c);
        assert!(matches!(
            SqliteStore::open(&path, cfg),
            Err(StoreError::SchemaTooNew { found: 999, .. })
        ));
    }

    #[test]
    fn a_version_1_store_upgrades_in_place() {
        let cfg = config("");
        let (_dir, p) = temp_db("upgrade");
        {
            // A database written by the previous collector: schema version 1 only.
            let c = Connection::open(&p).expect("open");
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);",
            )
            .expect("version table");
            c.execute_batch(MIGRATIONS[0]).expect("v1 schema");
            c.execute_batch(
                "INSERT INTO events (ts, timestamp, event_type, gateway, json)
                   VALUES (1577836800000, '2020-01-01T00:00:00.000Z', 'flow', 'gw-a', '{}');
                 INSERT INTO incidents (gateway, enterprise, kind, recipient, status, severity,
                   severity_rank, grade, discovered_at, last_alert_at, last_seen_at, deadline_at,
                   alert_count, bytes, persons, green_channel, ciio, summary, acknowledged_at,
                   acknowledged_by, resolved_at, resolved_by, comment)
                 VALUES ('gw-a', NULL, 'unfiled_export', 'r', 'resolved', 'high', 3,
                   'compliance', 1000, 1000, 1000, 2000, 1, 10, 0, 0, 0, 's', 1500, 'noc', 1600,
                   'cac', 'blocked');",
            )
            .expect("v1 rows");
        }
        let store = SqliteStore::open(&p, cfg).expect("upgrade");
        let inc = detail_json(&store, 1);
        assert_eq!(inc["late_arrival"], false);
        assert_eq!(inc["bytes_saturated"], false);
        assert_eq!(inc["first_received_at"], Value::Null);
        let h = inc["history"].as_array().expect("history");
        assert_eq!(h.len(), 2, "{inc}");
        assert_eq!(
            (&h[0]["action"], &h[0]["by"]),
            (&json!("acknowledge"), &json!("noc"))
        );
        assert_eq!(
            (&h[1]["action"], &h[1]["comment"]),
            (&json!("resolve"), &json!("blocked"))
        );
        // The 2020 flow counts from the upgrade, not from its packet time.
        let now = crate::util::now_ms();
        assert_eq!(store.expire_flows(now - 60_000).expect("retention"), 0);
        assert_eq!(store.expire_flows(now + 60_000).expect("retention"), 1);
        let c = Connection::open(&p).expect("open");
        let v: i64 = c
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .expect("version");
        // Every migration applied: 2 before the sketch tables (migration 3), then the
        // deadline index (migration 4).
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert_eq!(v, 4);
        drop(c);
        drop(store);
    }

    #[test]
    fn concurrent_group_commits_store_each_batch_once() {
        let cfg = config("");
        let (store, _dir, path) = temp_store("groupcommit", cfg);
        let store = Arc::new(store);
        let t0 = 1_772_442_847_118;
        let mut threads = Vec::new();
        for t in 0..8u64 {
            let store = store.clone();
            threads.push(std::thread::spawn(move || {
                let mut stored = 0;
                for seq in 1..=20u64 {
                    // Threads t and t+4 send the same sequences: half are duplicates.
                    let mut b = batch(
                        seq,
                        vec![alert(t0, AlertKind::UnfiledExport, "r", None, false)],
                    );
                    b.stream = t % 4;
                    if store.ingest(Arc::new(b)).expect("ingest") == IngestOutcome::Stored(1) {
                        stored += 1;
                    }
                }
                stored
            }));
        }
        let stored: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(stored, 80, "each (stream, sequence) stored exactly once");
        let c = Connection::open(&path).expect("open");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 80);
        drop(c);
        drop(store);
    }
}
