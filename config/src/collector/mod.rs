//! Collector configuration (`collector.toml`), validated.
//!
//! Read in two stages like the rest of crossline: raw serde structures with
//! `deny_unknown_fields`, then validated types that cannot hold a bad state. Every problem is
//! reported in one pass as `FILE:LINE:COLUMN: message`. A relative path is relative to the folder
//! of the config file. Every key has a default except `gateways`.

use crate::event::{AlertKind, Severity};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod load;

pub use load::{load_collector, parse_collector};

/// Errors of [`load_collector`] / [`parse_collector`]: every problem of the file (and of the
/// registry it names), each `FILE:LINE:COLUMN: message`, like every other config file.
pub type CollectorConfigError = crate::diag::ConfigError;

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

/// A database URL with its TLS settings split out (the libpq spelling
/// `?sslmode=verify-full&sslrootcert=/etc/crossline/db-ca.pem`, which the PostgreSQL client
/// library does not understand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// The URL without `sslrootcert`, with `sslmode=require` for the verified modes.
    pub url: String,
    /// `sslrootcert` of a verified mode, as written (a relative path is relative to the
    /// configuration file).
    pub ca: Option<PathBuf>,
}

/// Split the TLS settings out of a database URL: no `sslmode`, `disable` or `prefer` mean no
/// TLS; `require` and `verify-full` mean verified TLS and need `sslrootcert`; `verify-ca` and
/// anything else are refused. The error names the URL, the value and what was expected.
pub fn split_postgres_url(url: &str) -> Result<DbUrl, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut keep = Vec::new();
    let mut mode: Option<String> = None;
    let mut root: Option<String> = None;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "sslmode" => mode = Some(v.to_string()),
            "sslrootcert" => root = Some(percent_decode(v)),
            _ => keep.push(kv.to_string()),
        }
    }
    let bad = |m: String| format!("database URL {url:?}: {m}");
    let verified = match mode.as_deref() {
        None | Some("disable") | Some("prefer") => false,
        Some("require") | Some("verify-full") => true,
        Some("verify-ca") => {
            return Err(bad(
                "sslmode=verify-ca is not supported (the collector checks the host name too): use sslmode=verify-full".into(),
            ))
        }
        Some(other) => {
            return Err(bad(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-full"
            )))
        }
    };
    let ca = match (verified, root) {
        (true, Some(r)) if !r.is_empty() => Some(PathBuf::from(r)),
        (true, _) => {
            return Err(bad(format!(
                "sslmode={} needs sslrootcert=<PEM file of the CA that signed the database server's certificate>",
                mode.as_deref().unwrap_or("")
            )))
        }
        (false, Some(_)) => {
            return Err(bad(
                "sslrootcert is only used with sslmode=verify-full (or require)".into(),
            ))
        }
        (false, None) => None,
    };
    if verified {
        keep.push("sslmode=require".into());
    } else if let Some(m) = mode {
        keep.push(format!("sslmode={m}"));
    }
    let url = if keep.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", keep.join("&"))
    };
    Ok(DbUrl { url, ca })
}

/// `%XX` escapes of a URL query value.
fn percent_decode(v: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
/// prefixes: sources are the agent's concern; no date: expiry warnings are the agent's concern
/// too) and keep what the collector needs.
pub fn load_registry_labels(path: &Path) -> Result<RegistryLabels, crate::diag::ConfigError> {
    let (registry, _warnings) = crate::registry::load::load_registry_undated(path, &[])?;
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
