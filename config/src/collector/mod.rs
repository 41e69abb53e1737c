//! Collector configuration (`collector.toml`), validated.
//!
//! Read in two stages like the rest of crossline: raw serde structures with
//! `deny_unknown_fields`, then validated types that cannot hold a bad state. Every problem is
//! reported in one pass as `FILE:LINE:COLUMN: message`. A relative path is relative to the folder
//! of the config file. Every key has a default except `gateways`.

use crate::event::{AlertKind, Severity};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Errors of [`load_collector`] / [`parse_collector`]: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
pub enum CollectorConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not valid; each entry is `FILE:LINE:COLUMN: message`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// The validated collector configuration.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// File the config was read from.
    pub path: PathBuf,
    /// Ingest (mutual TLS) listen address. Default `127.0.0.1:9470`.
    pub listen: SocketAddr,
    /// API + metrics listen address. Default `127.0.0.1:9471`.
    pub api_listen: SocketAddr,
    /// Ingest TLS files. Default `pki/ca.pem`, `pki/server.pem`, `pki/server.key`.
    pub tls: TlsFiles,
    /// Optional TLS for the API listener (no client certificates). Default: plain HTTP.
    pub api_tls: Option<ApiTls>,
    /// SQLite database file. Default `collector.db` next to the config. When `database` is a
    /// `postgresql://` URL this holds the URL text as given and [`CollectorConfig::postgres`] is
    /// set.
    pub database: PathBuf,
    /// PostgreSQL store, when `database` is a `postgresql://` (or `postgres://`) URL.
    pub postgres: Option<PostgresDb>,
    /// Gateway ids allowed to submit events (the CN of their client certificate).
    pub gateways: Vec<String>,
    /// Registry file, if configured: bounds the enterprise and scenario label values.
    pub registry_path: Option<PathBuf>,
    /// Enterprises and scenarios read from the registry.
    pub registry: Option<RegistryLabels>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[retention]`.
    pub retention: Retention,
    /// `[incidents]`.
    pub incidents: IncidentConfig,
    /// `[[token]]`.
    pub tokens: Vec<Token>,
    /// `[[receiver]]`.
    pub receivers: Vec<Receiver>,
    /// `[[route]]`; none = every receiver gets every incident.
    pub routes: Vec<Route>,
    /// `[notify]`.
    pub notify: NotifyConfig,
    /// `[gateway."ID"]`: optional metadata of each gateway (line name, location) for the
    /// incident report. Gateways without an entry have none.
    pub gateway_info: Vec<GatewayInfo>,
    /// `[time]`: clock sanity of incoming events.
    pub time: TimeConfig,
    /// See [`CollectorConfig::deployment_problems`].
    pub deployment: Vec<String>,
}

/// A PostgreSQL store: where it is and where its password comes from (never the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresDb {
    /// The URL as given, without a password (`postgresql://user@host:port/dbname?...`).
    pub url: String,
    /// `database_password_file`: a file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// `database_password_env`: the environment variable read when there is no password file.
    /// Default `PGPASSWORD`.
    pub password_env: String,
}

/// Check a `postgresql://` URL: the scheme, a host, and no password in it.
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| format!("{url:?} is not a postgresql:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if userinfo.contains(':') {
            return Err(
                "the database URL carries a password; put it in the file named by `database_password_file` or in the environment variable named by `database_password_env` (default PGPASSWORD)"
                    .to_string(),
            );
        }
    }
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!(
            "database URL {url:?} has no host (expected e.g. \"postgresql://crossline@db.example:5432/crossline\")"
        ));
    }
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    if query
        .split('&')
        .any(|kv| kv.split('=').next() == Some("password"))
    {
        return Err(
            "the database URL carries a password parameter; use `database_password_file` or the environment"
                .to_string(),
        );
    }
    Ok(())
}

impl CollectorConfig {
    /// Metadata of a gateway, if configured.
    pub fn gateway_info(&self, id: &str) -> Option<&GatewayInfo> {
        self.gateway_info.iter().find(|g| g.id == id)
    }

    /// Settings that parse but cannot work with the agents, as `FILE:LINE:COLUMN: message`
    /// (`check` refuses them, `run` warns): a `max_body` smaller than the largest batch an
    /// agent sends makes every such batch a 413.
    pub fn deployment_problems(&self) -> Vec<String> {
        self.deployment.clone()
    }
}

/// The largest batch body an agent builds, in bytes ([`crate::limits::MAX_BATCH_BODY`]).
pub const MAX_AGENT_BATCH_BODY: u64 = crate::limits::MAX_BATCH_BODY as u64;

/// `[gateway."ID"]`: what the incident report says about a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInfo {
    /// Gateway id (must be in `gateways`).
    pub id: String,
    /// Name of the leased line, e.g. `"CN2 Beijing-Frankfurt 10G"`.
    pub line: Option<String>,
    /// Where the gateway taps the line, e.g. `"Beijing, Yizhuang IDC, room 3"`.
    pub location: Option<String>,
}

/// `[time]`: clock sanity of incoming events.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeConfig {
    /// An event timestamped more than this after its arrival is stored with
    /// `future_timestamp = true` and counted. Default 10 min.
    pub future_skew: Duration,
    /// Earliest plausible event year (inclusive). Default 1990.
    pub min_year: i32,
    /// Latest plausible event year (inclusive). Default 2100.
    pub max_year: i32,
}

/// `[tls]`: files of the ingest listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA that issued the gateway client certificates.
    pub ca: PathBuf,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
}

/// `[api_tls]`: server certificate of the API listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body, before and after gunzip. Default 8 MiB.
    pub max_body: u64,
    /// Sustained events per second per gateway. Default 20000.
    pub events_per_second_per_gateway: f64,
    /// Token bucket size per gateway, events. Default 100000.
    pub burst: f64,
    /// Concurrent ingest requests per gateway. Default 4.
    pub concurrent_per_gateway: usize,
    /// Open connections per listener (ingest and API each). Default 512.
    pub max_connections: usize,
    /// Time a new connection has to complete its TLS handshake. Default 10 s; past the
    /// high-water mark (3/4 of `max_connections`) at most 1 s.
    pub tls_handshake_timeout: Duration,
}

/// `[retention]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Flow records older than this are deleted. Default 30 days. Alerts and incidents are kept.
    pub flows: Duration,
    /// How often retention runs. Default 1 h.
    pub interval: Duration,
}

/// `[incidents]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentConfig {
    /// Alerts with the same (gateway, enterprise, kind, recipient) within this join one incident.
    /// Default 1 h.
    pub group_window: Duration,
    /// An incident with no new alert for this long is resolved. Default 24 h.
    pub quiet_period: Duration,
    /// Deadline of compliance findings (measure 十五 route). Default 15 days.
    pub compliance_deadline: Duration,
    /// Reporting deadline of graded incidents for other operators. Default 4 h.
    pub report_deadline: Duration,
    /// Reporting deadline for a CIIO enterprise. Default 1 h.
    pub ciio_report_deadline: Duration,
    /// Grade rules, first match wins; the default set follows `docs/legal.md#incidents-and-deadlines`.
    pub grade_rules: Vec<GradeRule>,
}

/// `[[incidents.grade_rule]]`: alerts matching kind / severity / persons get a grade.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeRule {
    /// Alert kinds matched; empty = any.
    pub kinds: Vec<AlertKind>,
    /// Minimum severity; none = any.
    pub min_severity: Option<Severity>,
    /// Minimum persons estimate; none = any.
    pub min_persons: Option<u64>,
    /// Grade label, e.g. `major`, `serious`, `especially_serious`, `compliance`.
    pub grade: String,
    /// Deadline after discovery; none = report deadline (compliance grade: compliance deadline).
    pub deadline: Option<Duration>,
}

/// The grade of compliance findings (no statutory deadline).
pub const GRADE_COMPLIANCE: &str = "compliance";

impl IncidentConfig {
    /// The default grade rules (`docs/legal.md#incidents-and-deadlines`): persons >= 100M / 10M / 1M are especially
    /// serious / serious / major (较大, "以上" inclusive); an important-data marker is major (较大:
    /// important data lost with a serious threat; core data, which would be 特别重大, is not
    /// visible to a traffic signature); everything else is a compliance finding.
    pub fn default_grade_rules() -> Vec<GradeRule> {
        let rule = |kinds: Vec<AlertKind>, min_persons: Option<u64>, grade: &str| GradeRule {
            kinds,
            min_severity: None,
            min_persons,
            grade: grade.to_string(),
            deadline: None,
        };
        vec![
            rule(Vec::new(), Some(100_000_000), "especially_serious"),
            rule(Vec::new(), Some(10_000_000), "serious"),
            rule(Vec::new(), Some(1_000_000), "major"),
            rule(vec![AlertKind::ImportantDataMarker], None, "major"),
        ]
    }

    /// Grade and deadline of an incident with these properties (first matching rule wins;
    /// no match = compliance finding).
    pub fn grade(
        &self,
        kind: AlertKind,
        severity: Severity,
        persons: u64,
        ciio: bool,
    ) -> (String, Duration) {
        for r in &self.grade_rules {
            if !r.kinds.is_empty() && !r.kinds.contains(&kind) {
                continue;
            }
            if r.min_severity.is_some_and(|s| severity < s) {
                continue;
            }
            if r.min_persons.is_some_and(|p| persons < p) {
                continue;
            }
            let deadline = r.deadline.unwrap_or(if r.grade == GRADE_COMPLIANCE {
                self.compliance_deadline
            } else if ciio {
                self.ciio_report_deadline
            } else {
                self.report_deadline
            });
            return (r.grade.clone(), deadline);
        }
        (GRADE_COMPLIANCE.to_string(), self.compliance_deadline)
    }

    /// Every grade label this config can produce (bounded metric label values).
    pub fn grades(&self) -> BTreeSet<String> {
        let mut g: BTreeSet<String> = self.grade_rules.iter().map(|r| r.grade.clone()).collect();
        g.insert(GRADE_COMPLIANCE.to_string());
        g
    }
}

/// API role of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sees everything.
    Regulator,
    /// Sees its listed gateways only.
    Operator,
    /// Sees its own enterprise only.
    Enterprise,
}

impl Role {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Regulator => "regulator",
            Role::Operator => "operator",
            Role::Enterprise => "enterprise",
        }
    }
}

/// `[[token]]`: an API bearer token, stored as the SHA-256 hex of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Name written to the audit log.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Lower-case SHA-256 hex of the token.
    pub sha256: String,
    /// Enterprise id (role `enterprise` only).
    pub enterprise: Option<String>,
    /// Gateways (role `operator` only).
    pub gateways: Vec<String>,
}

/// `[[receiver]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// Name used by routes and in the `receiver` field of webhooks.
    pub name: String,
    /// Kind and address.
    pub kind: ReceiverKind,
    /// CA file (PEM) trusted for an `https://` URL; required with https.
    pub ca: Option<PathBuf>,
}

/// Where a receiver delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverKind {
    /// Prometheus Alertmanager v2: `POST {url}/api/v2/alerts`.
    Alertmanager {
        /// Base URL, `http://host:port`, no trailing slash.
        url: String,
    },
    /// Signed webhook in the Alertmanager webhook shape.
    Webhook {
        /// Full URL, `http://host:port/path`.
        url: String,
        /// HMAC-SHA256 key.
        secret: String,
    },
    /// RFC 5424 syslog.
    Syslog {
        /// `host:port`.
        address: String,
        /// UDP or TCP (octet counting).
        protocol: SyslogProtocol,
    },
}

impl ReceiverKind {
    /// `alertmanager`, `webhook` or `syslog` (the metric `channel` label).
    pub fn channel(&self) -> &'static str {
        match self {
            ReceiverKind::Alertmanager { .. } => "alertmanager",
            ReceiverKind::Webhook { .. } => "webhook",
            ReceiverKind::Syslog { .. } => "syslog",
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogProtocol {
    /// One message per datagram.
    Udp,
    /// Octet-counting framing (RFC 6587).
    Tcp,
}

/// `[[route]]`: incidents matching all given conditions go to `receivers`. Every matching route
/// contributes its receivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Enterprise id; none = any.
    pub enterprise: Option<String>,
    /// Minimum severity; none = any.
    pub min_severity: Option<Severity>,
    /// Match only green-channel (true) or only other (false) enterprises; none = any.
    pub green_channel: Option<bool>,
    /// Receiver names.
    pub receivers: Vec<String>,
}

/// `[notify]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// Alertmanager re-send interval while an incident is open. Default 60 s.
    pub resend_interval: Duration,
    /// First retry delay. Default 1 s.
    pub retry_min: Duration,
    /// Longest retry delay. Default 5 min.
    pub retry_max: Duration,
    /// Request timeout per delivery. Default 10 s.
    pub timeout: Duration,
}

/// An enterprise as the collector needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseInfo {
    /// Enterprise id.
    pub id: String,
    /// Legal name.
    pub name: String,
    /// Unified social credit code.
    pub uscc: String,
    /// Measure 七 green channel.
    pub green_channel: bool,
    /// Critical information infrastructure operator.
    pub ciio: bool,
}

/// The label-bounding part of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryLabels {
    /// Enterprises.
    pub enterprises: Vec<EnterpriseInfo>,
    /// Scenario ids with their enterprise id.
    pub scenarios: Vec<(String, String)>,
    /// Filed recipient of each scenario: (scenario id, recipient name, ISO country code).
    pub recipients: Vec<(String, String, String)>,
}

impl RegistryLabels {
    /// Enterprise by id.
    pub fn enterprise(&self, id: &str) -> Option<&EnterpriseInfo> {
        self.enterprises.iter().find(|e| e.id == id)
    }

    /// Whether the scenario id is known.
    pub fn has_scenario(&self, id: &str) -> bool {
        self.scenarios.iter().any(|(s, _)| s == id)
    }

    /// Filed recipient (name, country) of a scenario.
    pub fn recipient(&self, scenario: &str) -> Option<(&str, &str)> {
        self.recipients
            .iter()
            .find(|(s, _, _)| s == scenario)
            .map(|(_, n, c)| (n.as_str(), c.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw structures.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    api_listen: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    database_password_file: Option<String>,
    database_password_env: Option<String>,
    gateways: Option<Spanned<Vec<Spanned<String>>>>,
    registry: Option<Spanned<String>>,
    #[serde(default)]
    tls: RawTls,
    api_tls: Option<RawApiTls>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    incidents: RawIncidents,
    #[serde(default)]
    token: Vec<RawToken>,
    #[serde(default)]
    receiver: Vec<RawReceiver>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    gateway: std::collections::BTreeMap<String, Spanned<RawGatewayInfo>>,
    #[serde(default)]
    time: RawTime,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayInfo {
    line: Option<String>,
    location: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTime {
    future_skew: Option<Spanned<String>>,
    min_year: Option<Spanned<i64>>,
    max_year: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiTls {
    cert: String,
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body: Option<Spanned<SizeValue>>,
    events_per_second_per_gateway: Option<Spanned<f64>>,
    burst: Option<Spanned<f64>>,
    concurrent_per_gateway: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    tls_handshake_timeout: Option<Spanned<String>>,
}

/// A size written as a number of bytes or a string like `"8 MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Int(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    flows: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    group_window: Option<Spanned<String>>,
    quiet_period: Option<Spanned<String>>,
    compliance_deadline: Option<Spanned<String>>,
    report_deadline: Option<Spanned<String>>,
    ciio_report_deadline: Option<Spanned<String>>,
    #[serde(default)]
    grade_rule: Vec<RawGradeRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGradeRule {
    #[serde(default)]
    kind: Vec<Spanned<String>>,
    min_severity: Option<Spanned<String>>,
    min_persons: Option<Spanned<i64>>,
    grade: Spanned<String>,
    deadline: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    role: Spanned<String>,
    sha256: Spanned<String>,
    enterprise: Option<Spanned<String>>,
    #[serde(default)]
    gateways: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    ca: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    enterprise: Option<Spanned<String>>,
    min_severity: Option<Spanned<String>>,
    green_channel: Option<bool>,
    receivers: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    resend_interval: Option<Spanned<String>>,
    retry_min: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.

/// Read and validate a collector config file (and the registry it names).
pub fn load_collector(path: &Path) -> Result<CollectorConfig, CollectorConfigError> {
    let text = crate::read::read_config_text(path).map_err(|e| CollectorConfigError::Read {
        path: path.to_path_buf(),
        source: e.into_io_error(),
    })?;
    parse_collector(&text, path)
}

/// Errors collected while validating, with the text for line/column lookup.
struct Problems<'a> {
    file: String,
    text: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, msg: impl fmt::Display) {
        let (line, col) = line_col(self.text, span.start);
        self.list.push(format!("{}:{line}:{col}: {msg}", self.file));
    }

    fn file(&mut self, msg: impl fmt::Display) {
        self.list.push(format!("{}:1:1: {msg}", self.file));
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parse and validate collector config text; `path` locates relative files and names errors.
pub fn parse_collector(text: &str, path: &Path) -> Result<CollectorConfig, CollectorConfigError> {
    let mut p = Problems {
        file: path.display().to_string(),
        text,
        list: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            p.at(span, e.message());
            return Err(CollectorConfigError::Invalid(p.list));
        }
    };
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let rel = |s: &str| -> PathBuf {
        let q = Path::new(s);
        if q.is_absolute() {
            q.to_path_buf()
        } else {
            base.join(q)
        }
    };

    let addr = |p: &mut Problems, v: &Option<Spanned<String>>, default: &str| -> SocketAddr {
        let fallback: SocketAddr = default
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        match v {
            None => fallback,
            Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                p.at(
                    s.span(),
                    format!(
                        "{:?} is not a socket address (expected e.g. \"127.0.0.1:9470\")",
                        s.get_ref()
                    ),
                );
                fallback
            }),
        }
    };
    let listen = addr(&mut p, &raw.listen, "127.0.0.1:9470");
    let api_listen = addr(&mut p, &raw.api_listen, "127.0.0.1:9471");

    let tls = TlsFiles {
        ca: rel(raw.tls.ca.as_deref().unwrap_or("pki/ca.pem")),
        cert: rel(raw.tls.cert.as_deref().unwrap_or("pki/server.pem")),
        key: rel(raw.tls.key.as_deref().unwrap_or("pki/server.key")),
    };
    let api_tls = raw.api_tls.as_ref().map(|t| ApiTls {
        cert: rel(&t.cert),
        key: rel(&t.key),
    });
    let db_text = raw
        .database
        .as_ref()
        .map_or("collector.db", |d| d.get_ref().as_str());
    let is_url = db_text.starts_with("postgresql://") || db_text.starts_with("postgres://");
    let (database, postgres) = if is_url {
        if let Err(msg) = check_postgres_url(db_text) {
            if let Some(d) = &raw.database {
                p.at(d.span(), msg);
            }
        }
        (
            PathBuf::from(db_text),
            Some(PostgresDb {
                url: db_text.to_string(),
                password_file: raw.database_password_file.as_deref().map(rel),
                password_env: raw
                    .database_password_env
                    .clone()
                    .unwrap_or_else(|| "PGPASSWORD".to_string()),
            }),
        )
    } else {
        if raw.database_password_file.is_some() || raw.database_password_env.is_some() {
            p.file("`database_password_file` / `database_password_env` need `database` to be a postgresql:// URL");
        }
        (rel(db_text), None)
    };

    let mut gateways = Vec::new();
    match &raw.gateways {
        None => p.file("missing key `gateways` (the gateway ids allowed to submit events)"),
        Some(list) => {
            for g in list.get_ref() {
                if !valid_id(g.get_ref()) {
                    p.at(
                        g.span(),
                        format!(
                            "gateway id {:?} is not valid (expected lower-case letters, digits, `-`, `_`)",
                            g.get_ref()
                        ),
                    );
                } else if gateways.contains(g.get_ref()) {
                    p.at(g.span(), format!("gateway {:?} listed twice", g.get_ref()));
                } else {
                    gateways.push(g.get_ref().clone());
                }
            }
        }
    }

    let (registry_path, registry) = match &raw.registry {
        None => (None, None),
        Some(r) => {
            let rp = rel(r.get_ref());
            match load_registry_labels(&rp) {
                Ok(l) => (Some(rp), Some(l)),
                Err(errors) => {
                    p.at(r.span(), format!("registry {} is not valid:", rp.display()));
                    p.list.extend(errors);
                    (Some(rp), None)
                }
            }
        }
    };

    let dur = |p: &mut Problems, v: &Option<Spanned<String>>, default: Duration| -> Duration {
        match v {
            None => default,
            Some(s) => parse_duration(s.get_ref()).unwrap_or_else(|e| {
                p.at(s.span(), e);
                default
            }),
        }
    };

    let max_body = match &raw.limits.max_body {
        None => 8 << 20,
        Some(s) => {
            let r = match s.get_ref() {
                SizeValue::Int(i) if *i > 0 => Ok(*i as u64),
                SizeValue::Int(i) => Err(format!("size {i} must be positive")),
                SizeValue::Text(t) => parse_byte_size(t),
            };
            r.unwrap_or_else(|e| {
                p.at(s.span(), e);
                8 << 20
            })
        }
    };
    let mut deployment = Vec::new();
    if max_body < MAX_AGENT_BATCH_BODY {
        let (line, col) = raw
            .limits
            .max_body
            .as_ref()
            .map_or((1, 1), |s| line_col(text, s.span().start));
        deployment.push(format!(
            "{}:{line}:{col}: [limits] max_body = {max_body} bytes is smaller than the largest batch an agent sends ({MAX_AGENT_BATCH_BODY} bytes = 8 MiB); expected at least {MAX_AGENT_BATCH_BODY}",
            path.display()
        ));
    }
    let positive = |p: &mut Problems, v: &Option<Spanned<f64>>, default: f64, what: &str| match v {
        None => default,
        Some(s) if *s.get_ref() > 0.0 && s.get_ref().is_finite() => *s.get_ref(),
        Some(s) => {
            p.at(s.span(), format!("{what} must be a positive number"));
            default
        }
    };
    let events_per_second_per_gateway = positive(
        &mut p,
        &raw.limits.events_per_second_per_gateway,
        20_000.0,
        "events_per_second_per_gateway",
    );
    let burst = positive(&mut p, &raw.limits.burst, 100_000.0, "burst");
    let concurrent_per_gateway = match &raw.limits.concurrent_per_gateway {
        None => 4,
        Some(s) if *s.get_ref() >= 1 && *s.get_ref() <= 1024 => *s.get_ref() as usize,
        Some(s) => {
            p.at(
                s.span(),
                "concurrent_per_gateway must be between 1 and 1024",
            );
            4
        }
    };
    let max_connections = match &raw.limits.max_connections {
        None => 512,
        Some(s) if *s.get_ref() >= 8 && *s.get_ref() <= 1_000_000 => *s.get_ref() as usize,
        Some(s) => {
            p.at(s.span(), "max_connections must be between 8 and 1000000");
            512
        }
    };
    let tls_handshake_timeout = dur(
        &mut p,
        &raw.limits.tls_handshake_timeout,
        Duration::from_secs(10),
    );
    let limits = Limits {
        max_body,
        events_per_second_per_gateway,
        burst,
        concurrent_per_gateway,
        max_connections,
        tls_handshake_timeout,
    };

    let retention = Retention {
        flows: dur(
            &mut p,
            &raw.retention.flows,
            Duration::from_secs(30 * 86_400),
        ),
        interval: dur(&mut p, &raw.retention.interval, Duration::from_secs(3600)),
    };

    let mut grade_rules = Vec::new();
    for r in &raw.incidents.grade_rule {
        let mut kinds = Vec::new();
        for k in &r.kind {
            match parse_kind(k.get_ref()) {
                Some(kind) => kinds.push(kind),
                None => p.at(k.span(), format!("unknown alert kind {:?}", k.get_ref())),
            }
        }
        let min_severity = r.min_severity.as_ref().and_then(|s| {
            let v = parse_severity(s.get_ref());
            if v.is_none() {
                p.at(
                    s.span(),
                    format!(
                        "unknown severity {:?} (expected info, low, med, high, crit)",
                        s.get_ref()
                    ),
                );
            }
            v
        });
        let min_persons = r.min_persons.as_ref().and_then(|s| {
            if *s.get_ref() < 0 {
                p.at(s.span(), "min_persons must not be negative");
                None
            } else {
                Some(*s.get_ref() as u64)
            }
        });
        if !valid_id(r.grade.get_ref()) {
            p.at(
                r.grade.span(),
                format!(
                    "grade {:?} is not valid (expected lower-case letters, digits, `_`)",
                    r.grade.get_ref()
                ),
            );
        }
        let deadline = r
            .deadline
            .as_ref()
            .map(|d| dur(&mut p, &Some(d.clone()), Duration::from_secs(4 * 3600)));
        grade_rules.push(GradeRule {
            kinds,
            min_severity,
            min_persons,
            grade: r.grade.get_ref().clone(),
            deadline,
        });
    }
    if grade_rules.is_empty() {
        grade_rules = IncidentConfig::default_grade_rules();
    }
    let incidents = IncidentConfig {
        group_window: dur(
            &mut p,
            &raw.incidents.group_window,
            Duration::from_secs(3600),
        ),
        quiet_period: dur(
            &mut p,
            &raw.incidents.quiet_period,
            Duration::from_secs(86_400),
        ),
        compliance_deadline: dur(
            &mut p,
            &raw.incidents.compliance_deadline,
            Duration::from_secs(15 * 86_400),
        ),
        report_deadline: dur(
            &mut p,
            &raw.incidents.report_deadline,
            Duration::from_secs(4 * 3600),
        ),
        ciio_report_deadline: dur(
            &mut p,
            &raw.incidents.ciio_report_deadline,
            Duration::from_secs(3600),
        ),
        grade_rules,
    };

    let mut tokens = Vec::new();
    for t in &raw.token {
        let role = match t.role.get_ref().as_str() {
            "regulator" => Role::Regulator,
            "operator" => Role::Operator,
            "enterprise" => Role::Enterprise,
            other => {
                p.at(
                    t.role.span(),
                    format!("unknown role {other:?} (expected regulator, operator, enterprise)"),
                );
                continue;
            }
        };
        let hash = t.sha256.get_ref().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            p.at(
                t.sha256.span(),
                "sha256 must be 64 hex digits (use `crossline-collector token hash`)",
            );
        }
        if tokens.iter().any(|x: &Token| x.sha256 == hash) {
            p.at(t.sha256.span(), "the same token is configured twice");
        }
        let enterprise = t.enterprise.as_ref().map(|e| e.get_ref().clone());
        match (role, &t.enterprise) {
            (Role::Enterprise, None) => p.at(
                t.role.span(),
                "a token with role \"enterprise\" needs `enterprise = \"ID\"`",
            ),
            (Role::Enterprise, Some(e)) => {
                if let Some(reg) = &registry {
                    if reg.enterprise(e.get_ref()).is_none() {
                        p.at(
                            e.span(),
                            format!("enterprise {:?} is not in the registry", e.get_ref()),
                        );
                    }
                }
            }
            (_, Some(e)) => p.at(
                e.span(),
                "`enterprise` is only allowed on tokens with role \"enterprise\"",
            ),
            _ => {}
        }
        if role == Role::Operator && t.gateways.is_empty() {
            p.at(
                t.role.span(),
                "a token with role \"operator\" needs `gateways = [...]`",
            );
        }
        if role != Role::Operator && !t.gateways.is_empty() {
            p.at(
                t.gateways[0].span(),
                "`gateways` is only allowed on tokens with role \"operator\"",
            );
        }
        for g in &t.gateways {
            if !gateways.contains(g.get_ref()) {
                p.at(
                    g.span(),
                    format!("gateway {:?} is not in the `gateways` list", g.get_ref()),
                );
            }
        }
        tokens.push(Token {
            name: t.name.get_ref().clone(),
            role,
            sha256: hash,
            enterprise,
            gateways: t.gateways.iter().map(|g| g.get_ref().clone()).collect(),
        });
    }

    let mut receivers: Vec<Receiver> = Vec::new();
    for r in &raw.receiver {
        let name = r.name.get_ref().clone();
        if receivers.iter().any(|x| x.name == name) {
            p.at(r.name.span(), format!("receiver {name:?} defined twice"));
        }
        let need = |p: &mut Problems, v: &Option<Spanned<String>>, key: &str| -> Option<String> {
            match v {
                Some(s) => Some(s.get_ref().clone()),
                None => {
                    p.at(
                        r.kind.span(),
                        format!(
                            "receiver {name:?} of type {:?} needs `{key}`",
                            r.kind.get_ref()
                        ),
                    );
                    None
                }
            }
        };
        let check_url = |p: &mut Problems, v: &Option<Spanned<String>>| {
            if let Some(u) = v {
                let url = u.get_ref();
                if url.starts_with("https://") {
                    if r.ca.is_none() {
                        p.at(
                            u.span(),
                            format!(
                                "url {url:?} is https: add `ca = \"FILE\"` (PEM of the CA that signed the receiver's certificate)"
                            ),
                        );
                    }
                } else if url.starts_with("http://") {
                    if let Some(ca) = &r.ca {
                        p.at(ca.span(), "`ca` is only used with an https:// url");
                    }
                } else {
                    p.at(
                        u.span(),
                        format!("url {url:?} must start with http:// or https://"),
                    );
                }
            }
        };
        let kind = match r.kind.get_ref().as_str() {
            "alertmanager" => {
                check_url(&mut p, &r.url);
                need(&mut p, &r.url, "url").map(|url| ReceiverKind::Alertmanager {
                    url: url.trim_end_matches('/').to_string(),
                })
            }
            "webhook" => {
                check_url(&mut p, &r.url);
                let url = need(&mut p, &r.url, "url");
                let secret = need(&mut p, &r.secret, "secret");
                match (url, secret) {
                    (Some(url), Some(secret)) => Some(ReceiverKind::Webhook { url, secret }),
                    _ => None,
                }
            }
            "syslog" => {
                let protocol = match r
                    .protocol
                    .as_ref()
                    .map(|s| (s.get_ref().as_str(), s.span()))
                {
                    None | Some(("udp", _)) => SyslogProtocol::Udp,
                    Some(("tcp", _)) => SyslogProtocol::Tcp,
                    Some((other, span)) => {
                        p.at(
                            span,
                            format!("unknown protocol {other:?} (expected udp, tcp)"),
                        );
                        SyslogProtocol::Udp
                    }
                };
                need(&mut p, &r.address, "address")
                    .map(|address| ReceiverKind::Syslog { address, protocol })
            }
            other => {
                p.at(
                    r.kind.span(),
                    format!(
                        "unknown receiver type {other:?} (expected alertmanager, webhook, syslog)"
                    ),
                );
                None
            }
        };
        if let (Some(ca), "syslog") = (&r.ca, r.kind.get_ref().as_str()) {
            p.at(ca.span(), "`ca` is only used with an https:// url");
        }
        if let Some(kind) = kind {
            receivers.push(Receiver {
                name,
                kind,
                ca: r.ca.as_ref().map(|c| rel(c.get_ref())),
            });
        }
    }

    let mut routes = Vec::new();
    for r in &raw.route {
        let min_severity = r.min_severity.as_ref().and_then(|s| {
            let v = parse_severity(s.get_ref());
            if v.is_none() {
                p.at(s.span(), format!("unknown severity {:?}", s.get_ref()));
            }
            v
        });
        if let (Some(e), Some(reg)) = (&r.enterprise, &registry) {
            if reg.enterprise(e.get_ref()).is_none() {
                p.at(
                    e.span(),
                    format!("enterprise {:?} is not in the registry", e.get_ref()),
                );
            }
        }
        for n in r.receivers.get_ref() {
            if !receivers.iter().any(|x| &x.name == n.get_ref())
                && !raw.receiver.iter().any(|x| x.name.get_ref() == n.get_ref())
            {
                p.at(n.span(), format!("no receiver named {:?}", n.get_ref()));
            }
        }
        routes.push(Route {
            enterprise: r.enterprise.as_ref().map(|e| e.get_ref().clone()),
            min_severity,
            green_channel: r.green_channel,
            receivers: r
                .receivers
                .get_ref()
                .iter()
                .map(|n| n.get_ref().clone())
                .collect(),
        });
    }

    let notify = NotifyConfig {
        resend_interval: dur(&mut p, &raw.notify.resend_interval, Duration::from_secs(60)),
        retry_min: dur(&mut p, &raw.notify.retry_min, Duration::from_secs(1)),
        retry_max: dur(&mut p, &raw.notify.retry_max, Duration::from_secs(300)),
        timeout: dur(&mut p, &raw.notify.timeout, Duration::from_secs(10)),
    };
    if notify.retry_min > notify.retry_max {
        p.file("notify.retry_min is larger than notify.retry_max");
    }

    let mut gateway_info = Vec::new();
    for (id, g) in &raw.gateway {
        if !gateways.contains(id) {
            p.at(
                g.span(),
                format!("[gateway.{id:?}]: gateway {id:?} is not in the `gateways` list"),
            );
        }
        let g = g.get_ref();
        let clean = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        gateway_info.push(GatewayInfo {
            id: id.clone(),
            line: clean(&g.line),
            location: clean(&g.location),
        });
    }

    let year = |p: &mut Problems, v: &Option<Spanned<i64>>, default: i32| -> i32 {
        match v {
            None => default,
            Some(s) if (1970..=9999).contains(s.get_ref()) => *s.get_ref() as i32,
            Some(s) => {
                p.at(
                    s.span(),
                    format!("year {} must be between 1970 and 9999", s.get_ref()),
                );
                default
            }
        }
    };
    let time = TimeConfig {
        future_skew: dur(&mut p, &raw.time.future_skew, Duration::from_secs(600)),
        min_year: year(&mut p, &raw.time.min_year, 1990),
        max_year: year(&mut p, &raw.time.max_year, 2100),
    };
    if time.min_year > time.max_year {
        p.file(format!(
            "time.min_year {} is after time.max_year {}",
            time.min_year, time.max_year
        ));
    }

    if !p.list.is_empty() {
        return Err(CollectorConfigError::Invalid(p.list));
    }
    Ok(CollectorConfig {
        path: path.to_path_buf(),
        listen,
        api_listen,
        tls,
        api_tls,
        database,
        postgres,
        gateways,
        registry_path,
        registry,
        limits,
        retention,
        incidents,
        tokens,
        receivers,
        routes,
        notify,
        gateway_info,
        time,
        deployment,
    })
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parse an alert kind spelling (`unfiled_export`, ...).
pub fn parse_kind(s: &str) -> Option<AlertKind> {
    AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// Parse a severity spelling (`info`, `low`, `med`, `high`, `crit`).
pub fn parse_severity(s: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Low,
        Severity::Med,
        Severity::High,
        Severity::Crit,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
}

/// Parse a positive duration (`"500ms"`, `"90s"`, `"1h"`, `"30d"`, `"1h30m"`) with
/// [`crate::parse_duration`]; zero is refused (intervals must tick).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = crate::parse::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be longer than zero"));
    }
    Ok(d)
}

/// Parse a positive byte size (`"8 MiB"`, `"512 KiB"`, `"1000"`) with
/// [`crate::parse_byte_size`].
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let v = crate::parse::parse_byte_size(s)?;
    if v == 0 {
        return Err(format!("{s:?} must be larger than zero"));
    }
    Ok(v)
}

/// Load the registry with the full validation of [`crate::load::load_registry`] (no domestic
/// prefixes: sources are the agent's concern) and keep what the collector needs. Errors are
/// `FILE:LINE:COLUMN: message` lines.
pub fn load_registry_labels(path: &Path) -> Result<RegistryLabels, Vec<String>> {
    let (registry, _warnings) =
        crate::load::load_registry(path, &[], crate::check::today_beijing())
            .map_err(|e| e.errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(labels_of(&registry))
}

/// The label-bounding part of a validated registry.
pub fn labels_of(registry: &crate::registry::Registry) -> RegistryLabels {
    RegistryLabels {
        enterprises: registry
            .enterprises
            .iter()
            .map(|e| EnterpriseInfo {
                id: e.id.clone(),
                name: e.name.clone(),
                uscc: e.uscc.clone(),
                green_channel: e.green_channel,
                ciio: e.ciio,
            })
            .collect(),
        scenarios: registry
            .scenarios
            .iter()
            .map(|s| (s.id.clone(), s.enterprise.clone()))
            .collect(),
        recipients: registry
            .scenarios
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.recipient.name.clone(),
                    s.recipient.country.clone(),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse_collector(
            "gateways = [\"gw-a\"]\n",
            Path::new("/etc/x/collector.toml"),
        )
        .expect("valid");
        assert_eq!(c.listen, "127.0.0.1:9470".parse().expect("addr"));
        assert_eq!(c.api_listen, "127.0.0.1:9471".parse().expect("addr"));
        assert_eq!(c.database, PathBuf::from("/etc/x/collector.db"));
        assert_eq!(c.tls.ca, PathBuf::from("/etc/x/pki/ca.pem"));
        assert_eq!(c.limits.max_body, 8 << 20);
        assert_eq!(c.retention.flows, Duration::from_secs(30 * 86_400));
        assert_eq!(c.incidents.group_window, Duration::from_secs(3600));
        assert_eq!(c.notify.resend_interval, Duration::from_secs(60));
    }

    #[test]
    fn every_error_reported_with_line_and_column() {
        let text = "gateways = [\"gw-a\", \"GW B\"]\nlisten = \"nowhere\"\n[limits]\nmax_body = \"8 parsecs\"\n[[token]]\nname = \"t\"\nrole = \"king\"\nsha256 = \"abc\"\n";
        let err = parse_collector(text, Path::new("c.toml")).expect_err("invalid");
        let CollectorConfigError::Invalid(list) = err else {
            panic!("expected Invalid");
        };
        assert!(
            list.iter().any(|l| l.starts_with("c.toml:1:21: ")),
            "{list:?}"
        );
        assert!(
            list.iter().any(|l| l.starts_with("c.toml:2:10: ")),
            "{list:?}"
        );
        assert!(
            list.iter().any(|l| l.starts_with("c.toml:4:12: ")),
            "{list:?}"
        );
        assert!(
            list.iter().any(|l| l.starts_with("c.toml:7:8: ")),
            "{list:?}"
        );
        assert_eq!(list.len(), 4, "{list:?}");
    }

    #[test]
    fn database_url_selects_postgres_and_keeps_passwords_out() {
        let c = parse_collector(
            "gateways = [\"gw-a\"]\ndatabase = \"postgresql://crossline@db.example:5432/crossline\"\ndatabase_password_file = \"secrets/db\"\n",
            Path::new("/etc/x/collector.toml"),
        )
        .expect("valid");
        let pg = c.postgres.expect("postgres selected");
        assert_eq!(pg.url, "postgresql://crossline@db.example:5432/crossline");
        assert_eq!(pg.password_file, Some(PathBuf::from("/etc/x/secrets/db")));
        assert_eq!(pg.password_env, "PGPASSWORD");
        let sqlite = parse_collector(
            "gateways = []\ndatabase = \"db/c.db\"\n",
            Path::new("/e/c.toml"),
        )
        .expect("valid");
        assert!(sqlite.postgres.is_none());
        assert_eq!(sqlite.database, PathBuf::from("/e/db/c.db"));
        for (text, want) in [
            (
                "database = \"postgresql://u:hunter2@h/d\"",
                "c.toml:2:12: the database URL carries a password",
            ),
            (
                "database = \"postgres://u@h/d?password=x\"",
                "c.toml:2:12: the database URL carries a password parameter",
            ),
            (
                "database = \"postgresql:///d\"",
                "c.toml:2:12: database URL \"postgresql:///d\" has no host",
            ),
            (
                "database = \"c.db\"\ndatabase_password_env = \"X\"",
                "c.toml:1:1: `database_password_file`",
            ),
        ] {
            let err = parse_collector(&format!("gateways = []\n{text}\n"), Path::new("c.toml"))
                .expect_err(text);
            assert!(err.to_string().starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = parse_collector("gateways = []\nlisten_port = 1\n", Path::new("c.toml"))
            .expect_err("invalid");
        assert!(err.to_string().starts_with("c.toml:2:1: "), "{err}");
    }

    #[test]
    fn grading_follows_domain_section_4() {
        let c = parse_collector("gateways = []\n", Path::new("c.toml")).expect("valid");
        let g = |kind, persons, ciio| c.incidents.grade(kind, Severity::High, persons, ciio);
        assert_eq!(
            g(AlertKind::UnfiledExport, 0, false),
            ("compliance".to_string(), Duration::from_secs(15 * 86_400))
        );
        assert_eq!(
            g(AlertKind::PersonsThreshold, 1_000_000, false),
            ("major".to_string(), Duration::from_secs(4 * 3600))
        );
        assert_eq!(
            g(AlertKind::PersonsThreshold, 999_999, false).0,
            "compliance"
        );
        assert_eq!(
            g(AlertKind::PersonsThreshold, 10_000_000, true),
            ("serious".to_string(), Duration::from_secs(3600))
        );
        // An important-data marker is 较大 (major), unless the persons figure grades it higher.
        assert_eq!(g(AlertKind::ImportantDataMarker, 0, false).0, "major");
        assert_eq!(
            g(AlertKind::ImportantDataMarker, 10_000_000, false).0,
            "serious"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_byte_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_byte_size("20GB"), Ok(20_000_000_000));
        assert!(parse_byte_size("-1").is_err());
    }
    #[test]
    fn example_config_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/collector.toml"
        ));
        let c = load_collector(path).expect("examples/collector.toml is valid");
        let reg = c.registry.as_ref().expect("registry loaded");
        assert!(reg
            .enterprise("yanjing-pharma")
            .is_some_and(|e| e.green_channel));
        assert!(reg.enterprise("jinrong-bank").is_some_and(|e| e.ciio));
        assert_eq!(c.tokens.len(), 3);
        assert_eq!(c.receivers.len(), 4);
        assert!(c
            .gateway_info("gw-bj-01")
            .is_some_and(|g| g.line.is_some() && g.location.is_some()));
        assert!(c.deployment_problems().is_empty());
    }

    #[test]
    fn custom_grade_rules_replace_the_defaults() {
        let text = "gateways = []\n\
            [[incidents.grade_rule]]\nkind = [\"opaque_tunnel\"]\nmin_severity = \"high\"\ngrade = \"major\"\ndeadline = \"2h\"\n\
            [[incidents.grade_rule]]\nmin_persons = 500\ngrade = \"watch\"\n";
        let c = parse_collector(text, Path::new("c.toml")).expect("valid");
        let i = &c.incidents;
        assert_eq!(
            i.grade(AlertKind::OpaqueTunnel, Severity::High, 0, false),
            ("major".to_string(), Duration::from_secs(7200))
        );
        assert_eq!(
            i.grade(AlertKind::OpaqueTunnel, Severity::Med, 0, false).0,
            "compliance"
        );
        assert_eq!(
            i.grade(AlertKind::PersonsThreshold, Severity::Med, 500, true),
            ("watch".to_string(), Duration::from_secs(3600))
        );
        // The defaults are gone: 10M persons is no longer `serious`.
        assert_eq!(
            i.grade(
                AlertKind::PersonsThreshold,
                Severity::Med,
                10_000_000,
                false
            )
            .0,
            "watch"
        );
        let grades: Vec<String> = i.grades().into_iter().collect();
        assert_eq!(grades, ["compliance", "major", "watch"]);
        let bad =
            "gateways = []\n[[incidents.grade_rule]]\nkind = [\"nope\"]\ngrade = \"Major!\"\n";
        let err = parse_collector(bad, Path::new("c.toml")).expect_err("invalid");
        assert_eq!(err.to_string().lines().count(), 2, "{err}");
    }

    #[test]
    fn gateway_metadata_time_and_connection_limits() {
        let text = "gateways = [\"gw-a\", \"gw-b\"]\n\
            [limits]\nmax_body = \"1 MiB\"\nmax_connections = 64\ntls_handshake_timeout = \"3s\"\n\
            [time]\nfuture_skew = \"5m\"\n\
            [gateway.gw-a]\nline = \"CN2 Beijing-Frankfurt\"\nlocation = \"Beijing Yizhuang\"\n";
        let c = parse_collector(text, Path::new("c.toml")).expect("valid");
        let g = c.gateway_info("gw-a").expect("gw-a metadata");
        assert_eq!(g.line.as_deref(), Some("CN2 Beijing-Frankfurt"));
        assert_eq!(g.location.as_deref(), Some("Beijing Yizhuang"));
        assert!(c.gateway_info("gw-b").is_none());
        assert_eq!(c.limits.max_connections, 64);
        assert_eq!(c.limits.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(c.time.future_skew, Duration::from_secs(300));
        assert_eq!((c.time.min_year, c.time.max_year), (1990, 2100));
        let problems = c.deployment_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("c.toml:3:12: "), "{problems:?}");
        assert!(
            problems[0].contains("1048576") && problems[0].contains("8388608"),
            "{problems:?}"
        );
        let ok = parse_collector("gateways = []\n", Path::new("c.toml")).expect("valid");
        assert!(ok.deployment_problems().is_empty());
        let bad = "gateways = [\"gw-a\"]\n[gateway.gw-z]\nline = \"x\"\n[time]\nmin_year = 2200\n";
        let err = parse_collector(bad, Path::new("c.toml")).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("gw-z") && text.contains("not in the `gateways` list"),
            "{text}"
        );
        assert!(text.contains("min_year 2200 is after"), "{text}");
    }

    #[test]
    fn https_receivers_need_a_ca() {
        let base =
            "gateways = []\n[[receiver]]\nname = \"r\"\ntype = \"webhook\"\nsecret = \"s\"\n";
        let ok = format!("{base}url = \"https://hooks.example:8443/x\"\nca = \"ca.pem\"\n");
        let c = parse_collector(&ok, Path::new("/etc/c/c.toml")).expect("valid");
        assert_eq!(c.receivers[0].ca, Some(PathBuf::from("/etc/c/ca.pem")));
        let no_ca = format!("{base}url = \"https://hooks.example/x\"\n");
        let err = parse_collector(&no_ca, Path::new("c.toml")).expect_err("needs ca");
        assert!(err.to_string().contains("add `ca"), "{err}");
        let ca_http = format!("{base}url = \"http://hooks.example/x\"\nca = \"ca.pem\"\n");
        assert!(parse_collector(&ca_http, Path::new("c.toml")).is_err());
        let ftp = format!("{base}url = \"ftp://hooks.example/x\"\n");
        assert!(parse_collector(&ftp, Path::new("c.toml")).is_err());
    }
}
