//! Loading and validating `collector.toml` (and the registry it names).
//!
//! Stage one deserializes the raw structures below (`deny_unknown_fields`); when an unknown key
//! or a wrong value type makes the whole file fail, each section is deserialized on its own so
//! that every such mistake is reported with its position and the other sections are still
//! checked. Stage two checks every value and reports all problems in one pass as
//! `FILE:LINE:COLUMN: message`, naming the key, the value and what was expected, like the
//! registry and agent loaders (the same [`Diagnostics`]).

use super::{
    parse_byte_size, parse_duration, parse_kind, parse_severity, ApiTls, CollectorConfig,
    GatewayInfo, GradeRule, IncidentConfig, Limits, NotifyConfig, PostgresDb, Receiver,
    ReceiverKind, RegistryLabels, Retention, Role, Route, SyslogProtocol, TimeConfig, TlsFiles,
    Token, MAX_AGENT_BATCH_BODY,
};
use crate::diag::{ConfigError, Diagnostic, Diagnostics};
use crate::fields::{blanked_sections, did_you_mean, read_file};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Default ingest listen address.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9470);
/// Default API listen address.
const DEFAULT_API_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9471);
/// Default `[limits] max_body`.
const DEFAULT_MAX_BODY: u64 = 8 << 20;

// ---------------------------------------------------------------------------------------------
// Raw structures.

#[derive(Debug, Default, Deserialize)]
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

impl RawConfig {
    /// Take over what a later section of the same file set.
    fn merge(&mut self, p: RawConfig) {
        macro_rules! take {
            ($dst:expr, $src:expr, $($f:ident),+) => {
                $( if $dst.$f.is_none() { $dst.$f = $src.$f; } )+
            };
        }
        take!(self, p, listen, api_listen, database, registry, api_tls, gateways);
        take!(self, p, database_password_file, database_password_env);
        take!(self.tls, p.tls, ca, cert, key);
        take!(
            self.limits,
            p.limits,
            max_body,
            events_per_second_per_gateway,
            burst
        );
        take!(
            self.limits,
            p.limits,
            concurrent_per_gateway,
            max_connections
        );
        take!(self.limits, p.limits, tls_handshake_timeout);
        take!(self.retention, p.retention, flows, interval);
        take!(self.incidents, p.incidents, group_window, quiet_period);
        take!(
            self.incidents,
            p.incidents,
            compliance_deadline,
            report_deadline
        );
        take!(self.incidents, p.incidents, ciio_report_deadline);
        take!(
            self.notify,
            p.notify,
            resend_interval,
            retry_min,
            retry_max,
            timeout
        );
        take!(self.time, p.time, future_skew, min_year, max_year);
        self.incidents.grade_rule.extend(p.incidents.grade_rule);
        self.token.extend(p.token);
        self.receiver.extend(p.receiver);
        self.route.extend(p.route);
        self.gateway.extend(p.gateway);
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.

/// Read and validate a collector config file (and the registry it names). Every problem of
/// both files comes back in one [`ConfigError`], the collector file's first.
pub fn load_collector(path: &Path) -> Result<CollectorConfig, ConfigError> {
    let text = read_file(path)?;
    parse_collector(&text, path)
}

/// Deserialize the file; after a failure, section by section (see the module notes). `None`
/// when nothing could be read (a TOML syntax error). The flag is true when the top-level keys
/// did not deserialize (their error is reported; a missing `gateways` then is not).
fn deserialize(d: &mut Diagnostics, text: &str) -> Option<(RawConfig, bool)> {
    let whole = match toml::from_str::<RawConfig>(text) {
        Ok(r) => return Some((r, false)),
        Err(e) => e,
    };
    let Some(sections) = blanked_sections(text) else {
        d.toml_error(&whole);
        return None;
    };
    let mut merged = RawConfig::default();
    let mut top_level_failed = false;
    for (i, section) in sections.iter().enumerate() {
        match toml::from_str::<RawConfig>(section) {
            Ok(part) => merged.merge(part),
            Err(e) => {
                top_level_failed |= i == 0;
                d.toml_error(&e);
            }
        }
    }
    if d.errors.is_empty() {
        d.toml_error(&whole);
    }
    Some((merged, top_level_failed))
}

/// Resolves paths written in the file against its folder.
struct Paths {
    base: PathBuf,
}

impl Paths {
    fn of(config_file: &Path) -> Paths {
        Paths {
            base: config_file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    fn rel(&self, written: &str) -> PathBuf {
        let p = Path::new(written);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// Parse and validate collector config text; `path` locates relative files and names errors.
pub fn parse_collector(text: &str, path: &Path) -> Result<CollectorConfig, ConfigError> {
    let mut d = Diagnostics::new(path, text);
    let Some((raw, top_level_failed)) = deserialize(&mut d, text) else {
        return Err(ConfigError { errors: d.errors });
    };
    let paths = Paths::of(path);
    let listen = socket_addr(&mut d, "listen", &raw.listen, DEFAULT_LISTEN);
    let api_listen = socket_addr(&mut d, "api_listen", &raw.api_listen, DEFAULT_API_LISTEN);
    let tls = TlsFiles {
        ca: paths.rel(raw.tls.ca.as_deref().unwrap_or("pki/ca.pem")),
        cert: paths.rel(raw.tls.cert.as_deref().unwrap_or("pki/server.pem")),
        key: paths.rel(raw.tls.key.as_deref().unwrap_or("pki/server.key")),
    };
    let api_tls = raw.api_tls.as_ref().map(|t| ApiTls {
        cert: paths.rel(&t.cert),
        key: paths.rel(&t.key),
    });
    let (database, postgres) = database_config(&mut d, &raw, &paths);
    let gateways = gateway_list(&mut d, &raw.gateways, top_level_failed);
    let (registry_path, registry, registry_errors) = registry_config(&mut d, &raw, &paths);
    let (limits, deployment) = limits_config(&mut d, &raw.limits);
    let retention = Retention {
        flows: duration(&mut d, "retention.flows", &raw.retention.flows, 30 * 86_400),
        interval: duration(&mut d, "retention.interval", &raw.retention.interval, 3600),
    };
    let incidents = incidents_config(&mut d, &raw.incidents);
    let tokens = raw
        .token
        .iter()
        .fold(Vec::new(), |mut tokens: Vec<Token>, t| {
            if let Some(t) = token(&mut d, t, &tokens, &gateways, registry.as_ref()) {
                tokens.push(t);
            }
            tokens
        });
    let receivers = receivers_config(&mut d, &raw.receiver, &paths);
    let routes = raw
        .route
        .iter()
        .map(|r| route(&mut d, r, &raw.receiver, registry.as_ref()))
        .collect();
    let notify = notify_config(&mut d, &raw.notify);
    let gateway_info = gateway_info_config(&mut d, &raw, &gateways);
    let time = time_config(&mut d, &raw.time);
    d.sort();
    let mut errors = d.errors;
    errors.extend(registry_errors);
    if !errors.is_empty() {
        return Err(ConfigError { errors });
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

fn socket_addr(
    d: &mut Diagnostics,
    key: &str,
    v: &Option<Spanned<String>>,
    default: SocketAddr,
) -> SocketAddr {
    let Some(s) = v else {
        return default;
    };
    s.get_ref().parse().unwrap_or_else(|_| {
        d.error(
            &s.span(),
            format!(
                "{key}: {:?} is not a socket address, expected IP:PORT such as \"127.0.0.1:9470\" or \"[::1]:9470\"",
                s.get_ref()
            ),
        );
        default
    })
}

/// A positive duration (`retention.flows = "30d"`), or `default_secs` when not given.
fn duration(
    d: &mut Diagnostics,
    key: &str,
    v: &Option<Spanned<String>>,
    default_secs: u64,
) -> Duration {
    let default = Duration::from_secs(default_secs);
    let Some(s) = v else {
        return default;
    };
    parse_duration(s.get_ref()).unwrap_or_else(|e| {
        d.error(
            &s.span(),
            format!(
                "{key}: {}",
                with_expected(e, "a duration such as \"90s\", \"1h\" or \"30d\"")
            ),
        );
        default
    })
}

/// `database`: an SQLite file (default `collector.db`) or a `postgresql://` URL with its
/// password source.
fn database_config(
    d: &mut Diagnostics,
    raw: &RawConfig,
    paths: &Paths,
) -> (PathBuf, Option<PostgresDb>) {
    let db_text = raw
        .database
        .as_ref()
        .map_or("collector.db", |d| d.get_ref().as_str());
    let is_url = db_text.starts_with("postgresql://") || db_text.starts_with("postgres://");
    if !is_url {
        if raw.database_password_file.is_some() || raw.database_password_env.is_some() {
            d.error(
                &(0..0),
                format!("`database_password_file` / `database_password_env` need `database` to be a postgresql:// URL, but it is {db_text:?}"),
            );
        }
        return (paths.rel(db_text), None);
    }
    if let Some(s) = &raw.database {
        if let Err(msg) = super::check_postgres_url(db_text) {
            d.error(&s.span(), msg);
        }
        database_tls(d, s, paths);
    }
    let postgres = PostgresDb {
        url: db_text.to_string(),
        password_file: raw.database_password_file.as_deref().map(|f| paths.rel(f)),
        password_env: raw
            .database_password_env
            .clone()
            .unwrap_or_else(|| "PGPASSWORD".to_string()),
    };
    (PathBuf::from(db_text), Some(postgres))
}

/// The TLS options of a `postgresql://` `database`: a known `sslmode` and, for a verified
/// one, an `sslrootcert` file that can be read (what the store needs when it opens).
fn database_tls(d: &mut Diagnostics, db: &Spanned<String>, paths: &Paths) {
    let ca = match super::split_postgres_url(db.get_ref()) {
        Ok(u) => u.ca,
        Err(msg) => {
            d.error(&db.span(), msg);
            return;
        }
    };
    let Some(ca) = ca else { return };
    let path = paths.rel(&ca.to_string_lossy());
    if let Err(e) = std::fs::read(&path) {
        d.error(
            &db.span(),
            format!(
                "database URL sslrootcert {}: {e} (expected a readable PEM file of the CA that signed the database server's certificate)",
                path.display()
            ),
        );
    }
}

/// `gateways`: valid, distinct ids.
fn gateway_list(
    d: &mut Diagnostics,
    v: &Option<Spanned<Vec<Spanned<String>>>>,
    top_level_failed: bool,
) -> Vec<String> {
    let Some(list) = v else {
        if top_level_failed {
            return Vec::new();
        }
        d.error(
            &(0..0),
            "missing key `gateways` (the gateway ids allowed to submit events), expected e.g. gateways = [\"gw-bj-01\"]",
        );
        return Vec::new();
    };
    let mut gateways: Vec<String> = Vec::new();
    for g in list.get_ref() {
        let id = g.get_ref();
        if !valid_id(id) {
            d.error(
                &g.span(),
                format!("gateways: gateway id {id:?} is not valid (expected lower-case letters, digits, `-`, `_`)"),
            );
        } else if gateways.contains(id) {
            d.error(&g.span(), format!("gateways: gateway {id:?} listed twice"));
        } else {
            gateways.push(id.clone());
        }
    }
    gateways
}

/// `registry`: its path, what the collector keeps of it, and its own errors (which name the
/// registry file).
fn registry_config(
    d: &mut Diagnostics,
    raw: &RawConfig,
    paths: &Paths,
) -> (Option<PathBuf>, Option<RegistryLabels>, Vec<Diagnostic>) {
    let Some(r) = &raw.registry else {
        return (None, None, Vec::new());
    };
    let rp = paths.rel(r.get_ref());
    match super::load_registry_labels(&rp) {
        Ok(l) => (Some(rp), Some(l), Vec::new()),
        Err(e) => {
            d.error(
                &r.span(),
                format!("registry: {} is not valid:", rp.display()),
            );
            (Some(rp), None, e.errors)
        }
    }
}

/// `[limits]`, and the settings that parse but cannot work with the agents.
fn limits_config(d: &mut Diagnostics, raw: &RawLimits) -> (Limits, Vec<String>) {
    let max_body = match &raw.max_body {
        None => DEFAULT_MAX_BODY,
        Some(s) => {
            let r = match s.get_ref() {
                SizeValue::Int(i) if *i > 0 => Ok(*i as u64),
                SizeValue::Int(i) => Err(format!("size {i} must be positive")),
                SizeValue::Text(t) => parse_byte_size(t),
            };
            r.unwrap_or_else(|e| {
                d.error(
                    &s.span(),
                    format!(
                        "limits.max_body: {}",
                        with_expected(e, "a byte size such as \"8 MiB\" or a positive integer")
                    ),
                );
                DEFAULT_MAX_BODY
            })
        }
    };
    let mut deployment = Vec::new();
    if max_body < MAX_AGENT_BATCH_BODY {
        let at = raw.max_body.as_ref().map_or(0..0, Spanned::span);
        deployment.push(d.at(&at, format!(
            "[limits] max_body = {max_body} bytes is smaller than the largest batch an agent sends ({MAX_AGENT_BATCH_BODY} bytes = 8 MiB); expected at least {MAX_AGENT_BATCH_BODY}"
        )).to_string());
    }
    let limits = Limits {
        max_body,
        events_per_second_per_gateway: positive(
            d,
            "limits.events_per_second_per_gateway",
            &raw.events_per_second_per_gateway,
            20_000.0,
        ),
        burst: positive(d, "limits.burst", &raw.burst, 100_000.0),
        concurrent_per_gateway: int_in(
            d,
            "limits.concurrent_per_gateway",
            &raw.concurrent_per_gateway,
            (1, 1024),
            4,
        ),
        max_connections: int_in(
            d,
            "limits.max_connections",
            &raw.max_connections,
            (8, 1_000_000),
            512,
        ),
        tls_handshake_timeout: duration(
            d,
            "limits.tls_handshake_timeout",
            &raw.tls_handshake_timeout,
            10,
        ),
    };
    (limits, deployment)
}

/// A positive, finite number, or `default` when not given.
fn positive(d: &mut Diagnostics, key: &str, v: &Option<Spanned<f64>>, default: f64) -> f64 {
    match v {
        None => default,
        Some(s) if *s.get_ref() > 0.0 && s.get_ref().is_finite() => *s.get_ref(),
        Some(s) => {
            d.error(
                &s.span(),
                format!(
                    "{key}: {} must be a positive number, expected e.g. {default}",
                    s.get_ref()
                ),
            );
            default
        }
    }
}

/// An integer in `min..=max`, or `default` when not given.
fn int_in(
    d: &mut Diagnostics,
    key: &str,
    v: &Option<Spanned<i64>>,
    (min, max): (i64, i64),
    default: usize,
) -> usize {
    match v {
        None => default,
        Some(s) => match usize::try_from(*s.get_ref()) {
            Ok(n) if (min..=max).contains(s.get_ref()) => n,
            _ => {
                d.error(
                    &s.span(),
                    format!(
                        "{key}: {} must be between {min} and {max}, expected {min}..={max}",
                        s.get_ref()
                    ),
                );
                default
            }
        },
    }
}

/// `[incidents]` and its grade rules (the default rules when none is given).
fn incidents_config(d: &mut Diagnostics, raw: &RawIncidents) -> IncidentConfig {
    let mut grade_rules: Vec<GradeRule> = raw.grade_rule.iter().map(|r| grade_rule(d, r)).collect();
    if grade_rules.is_empty() {
        grade_rules = IncidentConfig::default_grade_rules();
    }
    IncidentConfig {
        group_window: duration(d, "incidents.group_window", &raw.group_window, 3600),
        quiet_period: duration(d, "incidents.quiet_period", &raw.quiet_period, 86_400),
        compliance_deadline: duration(
            d,
            "incidents.compliance_deadline",
            &raw.compliance_deadline,
            15 * 86_400,
        ),
        report_deadline: duration(
            d,
            "incidents.report_deadline",
            &raw.report_deadline,
            4 * 3600,
        ),
        ciio_report_deadline: duration(
            d,
            "incidents.ciio_report_deadline",
            &raw.ciio_report_deadline,
            3600,
        ),
        grade_rules,
    }
}

/// A severity spelling, or an error naming `key`.
fn severity(d: &mut Diagnostics, key: &str, s: &Spanned<String>) -> Option<super::Severity> {
    let v = parse_severity(s.get_ref());
    if v.is_none() {
        d.error(
            &s.span(),
            format!(
                "{key}: unknown severity {:?} (expected info, low, med, high, crit){}",
                s.get_ref(),
                did_you_mean(s.get_ref(), &["info", "low", "med", "high", "crit"])
            ),
        );
    }
    v
}

fn grade_rule(d: &mut Diagnostics, r: &RawGradeRule) -> GradeRule {
    let mut kinds = Vec::new();
    for k in &r.kind {
        match parse_kind(k.get_ref()) {
            Some(kind) => kinds.push(kind),
            None => d.error(
                &k.span(),
                format!(
                    "incidents.grade_rule.kind: unknown alert kind {:?}, expected one of {}",
                    k.get_ref(),
                    crate::event::AlertKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            ),
        }
    }
    let min_severity = r
        .min_severity
        .as_ref()
        .and_then(|s| severity(d, "incidents.grade_rule.min_severity", s));
    let min_persons = r.min_persons.as_ref().and_then(|s| {
        let v = u64::try_from(*s.get_ref()).ok();
        if v.is_none() {
            d.error(
                &s.span(),
                format!("incidents.grade_rule.min_persons: {} must not be negative, expected a number of persons", s.get_ref()),
            );
        }
        v
    });
    if !valid_id(r.grade.get_ref()) {
        d.error(
            &r.grade.span(),
            format!(
                "incidents.grade_rule.grade: grade {:?} is not valid (expected lower-case letters, digits, `_`)",
                r.grade.get_ref()
            ),
        );
    }
    let deadline = r
        .deadline
        .as_ref()
        .map(|_| duration(d, "incidents.grade_rule.deadline", &r.deadline, 4 * 3600));
    GradeRule {
        kinds,
        min_severity,
        min_persons,
        grade: r.grade.get_ref().clone(),
        deadline,
    }
}

/// One `[[token]]`. Every problem of the token is reported, also when the role is unknown;
/// `None` when the role is unknown.
fn token(
    d: &mut Diagnostics,
    t: &RawToken,
    earlier: &[Token],
    gateways: &[String],
    registry: Option<&RegistryLabels>,
) -> Option<Token> {
    let role = match t.role.get_ref().as_str() {
        "regulator" => Some(Role::Regulator),
        "operator" => Some(Role::Operator),
        "enterprise" => Some(Role::Enterprise),
        other => {
            d.error(
                &t.role.span(),
                format!(
                    "token.role: unknown role {other:?} (expected regulator, operator, enterprise){}",
                    did_you_mean(other, &["regulator", "operator", "enterprise"])
                ),
            );
            None
        }
    };
    let hash = t.sha256.get_ref().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        d.error(
            &t.sha256.span(),
            format!(
                "token.sha256: {:?} must be 64 hex digits (use `crossline-collector token hash`)",
                t.sha256.get_ref()
            ),
        );
    }
    if earlier.iter().any(|x| x.sha256 == hash) {
        d.error(
            &t.sha256.span(),
            "token.sha256: the same token is configured twice",
        );
    }
    if let (Some(e), Some(reg)) = (&t.enterprise, registry) {
        if reg.enterprise(e.get_ref()).is_none() {
            d.error(
                &e.span(),
                format!(
                    "token.enterprise: enterprise {:?} is not in the registry",
                    e.get_ref()
                ),
            );
        }
    }
    for g in &t.gateways {
        if !gateways.contains(g.get_ref()) {
            d.error(
                &g.span(),
                format!(
                    "token.gateways: gateway {:?} is not in the `gateways` list",
                    g.get_ref()
                ),
            );
        }
    }
    let role = role?;
    token_role_fields(d, t, role);
    Some(Token {
        name: t.name.get_ref().clone(),
        role,
        sha256: hash,
        enterprise: t.enterprise.as_ref().map(|e| e.get_ref().clone()),
        gateways: t.gateways.iter().map(|g| g.get_ref().clone()).collect(),
    })
}

/// `enterprise` only and always with role enterprise, `gateways` with role operator.
fn token_role_fields(d: &mut Diagnostics, t: &RawToken, role: Role) {
    match (role, &t.enterprise) {
        (Role::Enterprise, None) => d.error(
            &t.role.span(),
            "token: a token with role \"enterprise\" needs `enterprise = \"ID\"`",
        ),
        (Role::Enterprise, Some(_)) | (_, None) => {}
        (_, Some(e)) => d.error(
            &e.span(),
            format!(
                "token.enterprise: {:?} given with role {:?}, expected `enterprise` only on tokens with role \"enterprise\"",
                e.get_ref(),
                role.as_str()
            ),
        ),
    }
    if role == Role::Operator && t.gateways.is_empty() {
        d.error(
            &t.role.span(),
            "token: a token with role \"operator\" needs `gateways = [...]`",
        );
    }
    if let (false, Some(g)) = (role == Role::Operator, t.gateways.first()) {
        d.error(
            &g.span(),
            format!(
                "token.gateways: given with role {:?}, expected `gateways` only on tokens with role \"operator\"",
                role.as_str()
            ),
        );
    }
}

/// `[[receiver]]` entries: unique names, each valid.
fn receivers_config(d: &mut Diagnostics, raw: &[RawReceiver], paths: &Paths) -> Vec<Receiver> {
    let mut receivers: Vec<Receiver> = Vec::new();
    for r in raw {
        let name = r.name.get_ref().clone();
        if receivers.iter().any(|x| x.name == name) {
            d.error(
                &r.name.span(),
                format!("receiver.name: receiver {name:?} defined twice"),
            );
        }
        if let Some(kind) = receiver_kind(d, r) {
            receivers.push(Receiver {
                name,
                kind,
                ca: r.ca.as_ref().map(|c| paths.rel(c.get_ref())),
            });
        }
    }
    receivers
}

/// A key the receiver's type requires.
fn need(
    d: &mut Diagnostics,
    r: &RawReceiver,
    v: &Option<Spanned<String>>,
    key: &str,
) -> Option<String> {
    if v.is_none() {
        d.error(
            &r.kind.span(),
            format!(
                "receiver {:?} of type {:?} needs `{key}`",
                r.name.get_ref(),
                r.kind.get_ref()
            ),
        );
    }
    v.as_ref().map(|s| s.get_ref().clone())
}

/// An http(s) URL; https needs a `ca`, http takes none.
fn check_url(d: &mut Diagnostics, r: &RawReceiver) {
    let Some(u) = &r.url else {
        return;
    };
    let url = u.get_ref();
    if url.starts_with("https://") {
        if r.ca.is_none() {
            d.error(
                &u.span(),
                format!("receiver.url: {url:?} is https: add `ca = \"FILE\"` (PEM of the CA that signed the receiver's certificate)"),
            );
        }
    } else if url.starts_with("http://") {
        if let Some(ca) = &r.ca {
            d.error(
                &ca.span(),
                "receiver.ca: `ca` is only used with an https:// url",
            );
        }
    } else {
        d.error(
            &u.span(),
            format!("receiver.url: {url:?} must start with http:// or https://"),
        );
    }
}

fn receiver_kind(d: &mut Diagnostics, r: &RawReceiver) -> Option<ReceiverKind> {
    match r.kind.get_ref().as_str() {
        "alertmanager" => {
            check_url(d, r);
            need(d, r, &r.url, "url").map(|url| ReceiverKind::Alertmanager {
                url: url.trim_end_matches('/').to_string(),
            })
        }
        "webhook" => {
            check_url(d, r);
            let url = need(d, r, &r.url, "url");
            let secret = need(d, r, &r.secret, "secret");
            Some(ReceiverKind::Webhook {
                url: url?,
                secret: secret?,
            })
        }
        "syslog" => {
            if let Some(ca) = &r.ca {
                d.error(
                    &ca.span(),
                    "receiver.ca: `ca` is only used with an https:// url",
                );
            }
            let protocol = match r.protocol.as_ref() {
                None => SyslogProtocol::Udp,
                Some(s) if s.get_ref() == "udp" => SyslogProtocol::Udp,
                Some(s) if s.get_ref() == "tcp" => SyslogProtocol::Tcp,
                Some(s) => {
                    d.error(
                        &s.span(),
                        format!(
                            "receiver.protocol: unknown protocol {:?} (expected udp, tcp)",
                            s.get_ref()
                        ),
                    );
                    SyslogProtocol::Udp
                }
            };
            need(d, r, &r.address, "address")
                .map(|address| ReceiverKind::Syslog { address, protocol })
        }
        other => {
            d.error(
                &r.kind.span(),
                format!(
                    "receiver.type: unknown receiver type {other:?} (expected alertmanager, webhook, syslog){}",
                    did_you_mean(other, &["alertmanager", "webhook", "syslog"])
                ),
            );
            None
        }
    }
}

/// One `[[route]]`: known enterprise and receivers.
fn route(
    d: &mut Diagnostics,
    r: &RawRoute,
    receivers: &[RawReceiver],
    registry: Option<&RegistryLabels>,
) -> Route {
    let min_severity = r
        .min_severity
        .as_ref()
        .and_then(|s| severity(d, "route.min_severity", s));
    if let (Some(e), Some(reg)) = (&r.enterprise, registry) {
        if reg.enterprise(e.get_ref()).is_none() {
            d.error(
                &e.span(),
                format!(
                    "route.enterprise: enterprise {:?} is not in the registry",
                    e.get_ref()
                ),
            );
        }
    }
    for n in r.receivers.get_ref() {
        if !receivers.iter().any(|x| x.name.get_ref() == n.get_ref()) {
            d.error(
                &n.span(),
                format!("route.receivers: no receiver named {:?}", n.get_ref()),
            );
        }
    }
    Route {
        enterprise: r.enterprise.as_ref().map(|e| e.get_ref().clone()),
        min_severity,
        green_channel: r.green_channel,
        receivers: r
            .receivers
            .get_ref()
            .iter()
            .map(|n| n.get_ref().clone())
            .collect(),
    }
}

fn notify_config(d: &mut Diagnostics, raw: &RawNotify) -> NotifyConfig {
    let notify = NotifyConfig {
        resend_interval: duration(d, "notify.resend_interval", &raw.resend_interval, 60),
        retry_min: duration(d, "notify.retry_min", &raw.retry_min, 1),
        retry_max: duration(d, "notify.retry_max", &raw.retry_max, 300),
        timeout: duration(d, "notify.timeout", &raw.timeout, 10),
    };
    if notify.retry_min > notify.retry_max {
        let at = raw.retry_min.as_ref().or(raw.retry_max.as_ref());
        d.error(
            &at.map_or(0..0, Spanned::span),
            format!(
                "notify.retry_min is larger than notify.retry_max ({:?} > {:?}), expected retry_min <= retry_max",
                notify.retry_min, notify.retry_max
            ),
        );
    }
    notify
}

fn gateway_info_config(
    d: &mut Diagnostics,
    raw: &RawConfig,
    gateways: &[String],
) -> Vec<GatewayInfo> {
    let clean = |v: &Option<String>| {
        v.as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut out = Vec::with_capacity(raw.gateway.len());
    for (id, g) in &raw.gateway {
        if !gateways.iter().any(|x| x == id) {
            d.error(
                &g.span(),
                format!("[gateway.{id:?}]: gateway {id:?} is not in the `gateways` list"),
            );
        }
        out.push(GatewayInfo {
            id: id.clone(),
            line: clean(&g.get_ref().line),
            location: clean(&g.get_ref().location),
        });
    }
    out
}

fn year(d: &mut Diagnostics, key: &str, v: &Option<Spanned<i64>>, default: i32) -> i32 {
    match v {
        None => default,
        Some(s) => match i32::try_from(*s.get_ref()) {
            Ok(y) if (1970..=9999).contains(&y) => y,
            _ => {
                d.error(
                    &s.span(),
                    format!("{key}: year {} must be between 1970 and 9999", s.get_ref()),
                );
                default
            }
        },
    }
}

fn time_config(d: &mut Diagnostics, raw: &RawTime) -> TimeConfig {
    let time = TimeConfig {
        future_skew: duration(d, "time.future_skew", &raw.future_skew, 600),
        min_year: year(d, "time.min_year", &raw.min_year, 1990),
        max_year: year(d, "time.max_year", &raw.max_year, 2100),
    };
    if time.min_year > time.max_year {
        let at = raw.min_year.as_ref().or(raw.max_year.as_ref());
        d.error(
            &at.map_or(0..0, Spanned::span),
            format!(
                "time.min_year {} is after time.max_year {}, expected min_year <= max_year",
                time.min_year, time.max_year
            ),
        );
    }
    time
}

/// A value parser's message, with what was expected when it does not say already.
fn with_expected(message: String, expected: &str) -> String {
    if message.contains("expected") {
        message
    } else {
        format!("{message}, expected {expected}")
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::super::load_collector;
    use super::*;
    use crate::event::{AlertKind, Severity};

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
        let list: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
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
        // The bad sha256 of the token with the bad role is reported too (it used to be hidden
        // behind the role error, which made this list 4 long).
        assert!(
            list.iter().any(|l| l.starts_with("c.toml:8:10: ")),
            "{list:?}"
        );
        assert_eq!(list.len(), 5, "{list:?}");
    }

    /// Independent mistakes in one file are all reported in one pass, each with its line and
    /// column, the value and what was expected: a bad role and a bad sha256 in one token, an
    /// unknown key in another section (which makes the whole file fail to deserialize), a
    /// route naming a missing receiver, a bad duration in a third section.
    #[test]
    fn independent_errors_are_all_reported_in_one_pass() {
        let text = "gateways = [\"gw-a\"]\n\
            [[token]]\nname = \"t\"\nrole = \"Regulator\"\nsha256 = \"abc\"\n\
            [limits]\nmax_bodyy = 5\n\
            [[route]]\nreceivers = [\"pager\"]\n\
            [retention]\nflows = \"30 parsecs\"\n";
        let err = parse_collector(text, Path::new("c.toml")).expect_err("invalid");
        let list: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
        let want = [
            (
                "c.toml:4:8: token.role: unknown role \"Regulator\"",
                "did you mean \"regulator\"?",
            ),
            (
                "c.toml:5:10: token.sha256: \"abc\" must be 64 hex digits",
                "token hash",
            ),
            ("c.toml:7:1: unknown field `max_bodyy`", "expected one of"),
            (
                "c.toml:9:14: route.receivers: no receiver named \"pager\"",
                "",
            ),
            (
                "c.toml:11:9: retention.flows: \"30 parsecs\"",
                "expected one of ms, s, m, h, d",
            ),
        ];
        for (start, also) in want {
            assert!(
                list.iter()
                    .any(|l| l.starts_with(start) && l.contains(also)),
                "missing {start:?} ... {also:?} in {list:#?}"
            );
        }
        assert_eq!(list.len(), want.len(), "{list:#?}");
    }

    /// A fresh temporary directory, removed when dropped (also when the test fails).
    fn tempdir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("crossline-{tag}-"))
            .tempdir()
            .expect("temporary directory")
    }

    /// Errors of the collector config and of the registry it names come back together, each
    /// naming its own file, the config's first.
    #[test]
    fn config_and_registry_errors_in_one_pass() {
        let scratch = tempdir("collector-reg");
        let dir = scratch.path();
        std::fs::write(
            dir.join("registry.toml"),
            "[[enterprise]]\nid = \"acme\"\nname = \"Acme\"\nuscc = \"not-a-uscc\"\n",
        )
        .expect("write registry");
        let cfg = dir.join("collector.toml");
        std::fs::write(
            &cfg,
            "gateways = [\"gw-a\"]\nregistry = \"registry.toml\"\n[notify]\ntimeout = \"0s\"\n",
        )
        .expect("write config");
        let err = load_collector(&cfg).expect_err("invalid");
        let list: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
        let c = cfg.display().to_string();
        let reg = dir.join("registry.toml").display().to_string();
        assert_eq!(list.len(), 3, "{list:#?}");
        assert!(
            list[0].starts_with(&format!("{c}:2:12: registry: {reg} is not valid")),
            "{list:#?}"
        );
        assert!(
            list[1].starts_with(&format!("{c}:4:11: notify.timeout: ")),
            "{list:#?}"
        );
        assert!(
            list[2].starts_with(&format!("{reg}:4:8: enterprise.uscc: \"not-a-uscc\"")),
            "{list:#?}"
        );
    }

    /// A config file that cannot be read is one diagnostic naming the file and the reason.
    #[test]
    fn unreadable_file_is_one_diagnostic() {
        let err = load_collector(Path::new("/nonexistent/crossline/c.toml")).expect_err("missing");
        assert_eq!(err.errors.len(), 1, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("/nonexistent/crossline/c.toml:1:1: cannot read the file"),
            "{text}"
        );
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
    fn database_tls_options_are_checked_where_written() {
        let scratch = tempdir("dbtls-cfg");
        let dir = scratch.path();
        let cfg = dir.join("c.toml");
        let parse = |query: &str| {
            parse_collector(
                &format!("gateways = []\ndatabase = \"postgresql://c@db/x?{query}\"\n"),
                &cfg,
            )
        };
        let at = format!("{}:2:12: ", cfg.display());
        for (query, want) in [
            (
                "sslmode=verify-ca&sslrootcert=/a",
                "sslmode=verify-ca is not supported",
            ),
            (
                "sslmode=maybe",
                "sslmode=\"maybe\" is not one of disable, prefer, require, verify-full",
            ),
            ("sslmode=require", "sslmode=require needs sslrootcert="),
            (
                "sslrootcert=/a",
                "sslrootcert is only used with sslmode=verify-full",
            ),
        ] {
            let err = parse(query).expect_err(query).to_string();
            assert!(
                err.starts_with(&at) && err.contains(want) && err.contains(query),
                "{query}: {err}"
            );
        }
        let err = parse("sslmode=verify-full&sslrootcert=ca%2Fdb.pem")
            .expect_err("missing CA file")
            .to_string();
        let ca = dir.join("ca/db.pem");
        assert!(
            err.starts_with(&format!("{at}database URL sslrootcert {}: ", ca.display())),
            "{err}"
        );
        std::fs::create_dir_all(dir.join("ca")).expect("dir");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("write");
        let c = parse("sslmode=verify-full&sslrootcert=ca%2Fdb.pem").expect("readable CA file");
        assert!(c.postgres.is_some());
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
