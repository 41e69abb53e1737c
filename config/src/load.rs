//! Loading and validating `registry.toml` and `agent.toml`.
//!
//! Stage one deserializes the raw structures of [`crate::raw`]. A TOML syntax error stops there;
//! when unknown keys or wrong value types make the whole file fail, each `[[enterprise]]` /
//! `[[scenario]]` entry (each `agent.toml` section) is deserialized on its own so that every such
//! mistake is reported, with its position. Stage two checks every value and reports all problems
//! in one pass as `FILE:LINE:COLUMN: message`, then builds the validated [`Registry`] and
//! [`AgentConfig`], which cannot hold a bad state. Warnings use the same format.

use crate::agent::{
    AgentConfig, CaptureConfig, DetectConfig, Exclude, FsyncPolicy, MetricsConfig, Signature,
    SignatureKind, UplinkConfig,
};
use crate::checks::check_uscc;
use crate::diag::{ConfigError, Diagnostic, Diagnostics};
use crate::holidays::HolidayYear;
use crate::parse::{
    check_country, decode_hex, looks_like_ip, parse_byte_size, parse_date_range, parse_day,
    parse_days, parse_duration, parse_host_pattern, parse_hours, parse_ip_net, parse_service,
    valid_gateway_id,
};
use crate::raw::{RawAgent, RawRegistry, RawScenario, S, V};
use crate::registry::{
    Basis, DataCategory, Destination, Enterprise, Exemption, IpNet, Recipient, Registry, Scenario,
    Service, Window,
};
use crate::time::Date;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Spanned, Value};

/// Filings that end within this many days of today get a warning from [`load_registry`].
pub const EXPIRY_WARNING_DAYS: u32 = 60;

/// Default of `state_interval`: how often `run` writes its state and sends sketches.
pub const DEFAULT_STATE_INTERVAL: Duration = Duration::from_secs(60);

/// The development key that [`DetectConfig::default`] uses; `check` warns when it is in use.
pub const DEVELOPMENT_PI_KEY: &[u8] = b"crossline-development-key-change-me";

/// Load and validate a registry file. `domestic` is the agent's China side: every scenario
/// source must lie inside one of its prefixes (not checked when `domestic` is empty). `today`
/// (a Beijing calendar date) decides which filings are about to expire. `Ok` carries warnings.
pub fn load_registry(
    path: &Path,
    domestic: &[IpNet],
    today: Date,
) -> Result<(Registry, Vec<Diagnostic>), ConfigError> {
    load_registry_with(path, domestic, today, EXPIRY_WARNING_DAYS)
}

/// [`load_registry`] with the expiry warning horizon in days.
pub fn load_registry_with(
    path: &Path,
    domestic: &[IpNet],
    today: Date,
    warning_days: u32,
) -> Result<(Registry, Vec<Diagnostic>), ConfigError> {
    let text = read_file(path)?;
    let out = registry_from_str(path, &text, domestic, today, warning_days);
    match out.registry {
        Some(r) if out.errors.is_empty() => Ok((r, out.warnings)),
        _ => Err(ConfigError { errors: out.errors }),
    }
}

/// Validate registry text as if read from `path` (for tests and tools that hold the text).
pub fn parse_registry(
    path: &Path,
    text: &str,
    domestic: &[IpNet],
    today: Date,
) -> Result<(Registry, Vec<Diagnostic>), ConfigError> {
    let out = registry_from_str(path, text, domestic, today, EXPIRY_WARNING_DAYS);
    match out.registry {
        Some(r) if out.errors.is_empty() => Ok((r, out.warnings)),
        _ => Err(ConfigError { errors: out.errors }),
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    crate::read::read_config_text(path).map_err(|e| ConfigError {
        errors: vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {}", e.reason()),
        }],
    })
}

/// What validating one registry text produced.
struct RegistryOutcome {
    /// `None` when the file could not be deserialized at all.
    registry: Option<Registry>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Every scenario id written in the file, valid or not (so references from the agent
    /// config to a scenario with a mistake do not raise a second, misleading error).
    scenario_ids: Vec<String>,
}

fn registry_from_str(
    path: &Path,
    text: &str,
    domestic: &[IpNet],
    today: Date,
    warning_days: u32,
) -> RegistryOutcome {
    let mut d = Diagnostics::new(path, text);
    let raw: RawRegistry = match deserialize_registry(text) {
        Ok(r) => r,
        Err(e) => match deserialize_entries(&mut d, text) {
            Some(r) => r,
            None => {
                d.toml_error(&e);
                return RegistryOutcome {
                    registry: None,
                    errors: d.errors,
                    warnings: d.warnings,
                    scenario_ids: Vec::new(),
                };
            }
        },
    };
    let scenario_ids = raw
        .scenario
        .iter()
        .map(|s| s.id.get_ref().clone())
        .chain(raw.broken_scenarios.iter().cloned())
        .collect();
    let registry = validate_registry(
        &mut d,
        path,
        raw,
        domestic,
        today,
        warning_days,
        parse_threads(),
    );
    d.sort();
    RegistryOutcome {
        registry: Some(registry),
        errors: d.errors,
        warnings: d.warnings,
        scenario_ids,
    }
}

/// Files larger than this are deserialized in parallel chunks.
const PARALLEL_MIN_BYTES: usize = 256 << 10;

/// Deserialize a whole registry. Large files are cut at `[[enterprise]]` / `[[scenario]]` header
/// lines into one chunk per core, and the chunks are deserialized in parallel: an entry and its
/// sub-tables always lie inside one chunk, so the result is the same as a serial parse. When any
/// chunk fails (a real mistake, or a cut that fell inside a multi-line string), the whole file
/// is deserialized serially so that errors are exactly those of a serial parse.
fn deserialize_registry(text: &str) -> Result<RawRegistry, toml::de::Error> {
    deserialize_registry_with(text, parse_threads())
}

/// Threads used to deserialize a large registry: `CROSSLINE_CONFIG_THREADS` when set to a
/// positive number (1 = serial, e.g. on a gateway whose cores all capture), else the number of
/// cores, at most 8.
pub fn parse_threads() -> usize {
    std::env::var("CROSSLINE_CONFIG_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

fn deserialize_registry_with(text: &str, threads: usize) -> Result<RawRegistry, toml::de::Error> {
    if threads < 2 || text.len() < PARALLEL_MIN_BYTES {
        return toml::from_str(text);
    }
    let cuts = chunk_starts(text, threads);
    if cuts.len() < 2 {
        return toml::from_str(text);
    }
    let results: Vec<Option<RawRegistry>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = cuts.get(i + 1).copied().unwrap_or(text.len());
                let chunk = &text[start..end];
                scope.spawn(move || toml::from_str::<RawRegistry>(chunk).ok())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut out = RawRegistry::default();
    for (part, &start) in results.into_iter().zip(&cuts) {
        let Some(part) = part else {
            return toml::from_str(text);
        };
        out.enterprise
            .extend(part.enterprise.into_iter().map(|mut e| {
                e.base = start;
                e
            }));
        out.scenario.extend(part.scenario.into_iter().map(|mut s| {
            s.base = start;
            s
        }));
    }
    Ok(out)
}

/// Byte offsets where chunks start: 0, then up to `n - 1` header lines (`[[enterprise]]` or
/// `[[scenario]]` at the start of a line) near equal shares of the text.
fn chunk_starts(text: &str, n: usize) -> Vec<usize> {
    let mut cuts = vec![0];
    let share = text.len() / n;
    for k in 1..n {
        let mut from = (k * share).max(cuts.last().copied().unwrap_or(0) + 1);
        while from < text.len() && !text.is_char_boundary(from) {
            from += 1;
        }
        while from < text.len() {
            let Some(rel) = text.get(from..).and_then(|t| t.find("\n[[")) else {
                return cuts;
            };
            let at = from + rel + 1;
            let rest = &text[at..];
            if rest.starts_with("[[scenario]]") || rest.starts_with("[[enterprise]]") {
                cuts.push(at);
                break;
            }
            from = at;
        }
    }
    cuts
}

/// The outline of a registry: where each `[[enterprise]]` and `[[scenario]]` entry starts.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Outline {
    #[serde(default)]
    enterprise: Vec<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    scenario: Vec<Spanned<serde::de::IgnoredAny>>,
}

/// After the whole registry failed to deserialize, deserialize each entry on its own (from its
/// header to the next entry's header), so that one bad key does not hide the mistakes of every
/// other entry. Errors are recorded in `d`; the entries that did deserialize are returned for
/// validation. `None` when the file is not even a well-formed list of entries (syntax error or
/// unknown top-level key): the caller then reports the original error.
fn deserialize_entries(d: &mut Diagnostics, text: &str) -> Option<RawRegistry> {
    let outline: Outline = toml::from_str(text).ok()?;
    let mut starts: Vec<usize> = outline
        .enterprise
        .iter()
        .chain(&outline.scenario)
        .map(|e| e.span().start)
        .collect();
    starts.sort_unstable();
    let mut out = RawRegistry::default();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let fragment = text.get(start..end)?;
        match toml::from_str::<RawRegistry>(fragment) {
            Ok(mut one) => {
                for mut e in one.enterprise.drain(..) {
                    e.base = start;
                    out.enterprise.push(e);
                }
                for mut s in one.scenario.drain(..) {
                    s.base = start;
                    out.scenario.push(s);
                }
            }
            Err(e) => {
                d.set_base(start);
                d.toml_error(&e);
                d.set_base(0);
                if let Ok(ids) = toml::from_str::<crate::raw::LooseIds>(fragment) {
                    out.broken_enterprises
                        .extend(ids.enterprise.into_iter().filter_map(|e| e.id));
                    out.broken_scenarios
                        .extend(ids.scenario.into_iter().filter_map(|s| s.id));
                }
            }
        }
    }
    // Keep file order between the two kinds for stable duplicate-id messages.
    out.enterprise.sort_by_key(|e| e.base);
    out.scenario.sort_by_key(|s| s.base);
    Some(out)
}

fn span<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// A non-empty string without control characters; the error names the key.
fn check_text(d: &mut Diagnostics, key: &str, s: &S) -> bool {
    let v = s.get_ref();
    if v.trim().is_empty() {
        d.error(
            &span(s),
            format!("{key}: empty value, expected a non-empty string"),
        );
        return false;
    }
    if v.chars().any(char::is_control) {
        d.error(
            &span(s),
            format!("{key}: {v:?} contains a control character, expected printable text"),
        );
        return false;
    }
    true
}

/// An id: non-empty, no white space.
fn check_id(d: &mut Diagnostics, key: &str, s: &S) -> bool {
    if !check_text(d, key, s) {
        return false;
    }
    let v = s.get_ref();
    if v.chars().any(char::is_whitespace) {
        d.error(
            &span(s),
            format!("{key}: {v:?} contains white space, expected an id without spaces"),
        );
        return false;
    }
    true
}

/// What a scenario covers, order-insensitive: (enterprise index, sources, destinations,
/// services), each list sorted and deduplicated. Two scenarios with equal coverage raise the
/// duplicate warning.
type Coverage = (usize, Vec<IpNet>, Vec<Destination>, Vec<Service>);

/// A total order on destinations (prefixes first), for sorting a coverage key.
fn destination_order(a: &Destination, b: &Destination) -> std::cmp::Ordering {
    match (a, b) {
        (Destination::Net(x), Destination::Net(y)) => x.cmp(y),
        (Destination::Host(x), Destination::Host(y)) => x.cmp(y),
        (Destination::Net(_), Destination::Host(_)) => std::cmp::Ordering::Less,
        (Destination::Host(_), Destination::Net(_)) => std::cmp::Ordering::Greater,
    }
}

/// Registries with at least this many scenarios have them checked on several threads.
const PARALLEL_MIN_SCENARIOS: usize = 2000;

/// A scenario checked on its own (phase one of [`validate_registry`]); the checks that need
/// the other scenarios (duplicate ids and coverage) run afterwards, in file order.
struct CheckedScenario {
    base: usize,
    id: String,
    id_span: Range<usize>,
    id_ok: bool,
    scenario: Option<Scenario>,
}

fn check_scenarios(
    d: &mut Diagnostics,
    raw: Vec<RawScenario>,
    enterprises: &HashMap<String, (usize, usize)>,
    broken_enterprises: &[String],
    domestic: &[IpNet],
) -> Vec<CheckedScenario> {
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        d.set_base(s.base);
        let base = s.base;
        let id_span = span(&s.id);
        let id = s.id.get_ref().clone();
        let id_ok = check_id(d, "scenario.id", &s.id);
        let scenario = validate_scenario(d, s, enterprises, broken_enterprises, domestic);
        out.push(CheckedScenario {
            base,
            id,
            id_span,
            id_ok,
            scenario,
        });
    }
    d.set_base(0);
    out
}

fn validate_registry(
    d: &mut Diagnostics,
    path: &Path,
    raw: RawRegistry,
    domestic: &[IpNet],
    today: Date,
    warning_days: u32,
    threads: usize,
) -> Registry {
    // Enterprises.
    let mut enterprises = Vec::with_capacity(raw.enterprise.len());
    let mut enterprise_index: HashMap<String, (usize, usize)> = HashMap::new(); // id -> (index, line)
    for e in raw.enterprise {
        d.set_base(e.base);
        // An enterprise with a bad field is still kept (the file is rejected anyway), so that
        // its scenarios are checked too instead of all reporting an unknown enterprise.
        check_id(d, "enterprise.id", &e.id);
        check_text(d, "enterprise.name", &e.name);
        if let Err(err) = check_uscc(e.uscc.get_ref()) {
            d.error(
                &span(&e.uscc),
                format!("enterprise.uscc: {:?} {err}", e.uscc.get_ref()),
            );
        }
        let id = e.id.get_ref().clone();
        if let Some(&(_, first_line)) = enterprise_index.get(&id) {
            d.error(
                &span(&e.id),
                format!(
                    "enterprise.id: duplicate id {id:?}, expected unique ids (first defined on line {first_line})"
                ),
            );
            continue;
        }
        enterprise_index.insert(id.clone(), (enterprises.len(), d.line_of(&span(&e.id))));
        enterprises.push(Enterprise {
            id,
            name: e.name.into_inner(),
            uscc: e.uscc.into_inner(),
            green_channel: e.green_channel,
            ftz: e.ftz,
            ciio: e.ciio,
        });
    }

    // Scenarios.
    let mut scenarios = Vec::with_capacity(raw.scenario.len());
    let mut scenario_lines: HashMap<String, usize> = HashMap::new();
    // (enterprise, sorted sources, sorted destinations, sorted services) -> (scenario id, line)
    let mut fingerprints: HashMap<Coverage, (String, usize)> = HashMap::new();
    // Phase one: each scenario on its own, on several threads for large registries.
    let mut raw_scenarios = raw.scenario;
    let checked: Vec<CheckedScenario> =
        if threads > 1 && raw_scenarios.len() >= PARALLEL_MIN_SCENARIOS {
            let per = raw_scenarios.len().div_ceil(threads);
            let mut parts = Vec::with_capacity(threads);
            while raw_scenarios.len() > per {
                parts.push(raw_scenarios.split_off(raw_scenarios.len() - per));
            }
            parts.push(raw_scenarios);
            parts.reverse();
            let (index, broken) = (&enterprise_index, &raw.broken_enterprises);
            let results: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = parts
                    .into_iter()
                    .map(|part| {
                        let mut local = d.fork();
                        scope.spawn(move || {
                            let out = check_scenarios(&mut local, part, index, broken, domestic);
                            (out, local)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
            let mut all = Vec::new();
            for result in results {
                match result {
                    Ok((out, local)) => {
                        all.extend(out);
                        d.absorb(local);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        } else {
            check_scenarios(
                d,
                raw_scenarios,
                &enterprise_index,
                &raw.broken_enterprises,
                domestic,
            )
        };
    // Phase two, in file order: duplicate ids, duplicate coverage, expiry.
    for c in checked {
        d.set_base(c.base);
        let CheckedScenario {
            id, id_span, id_ok, ..
        } = c;
        let mut duplicate = false;
        if id_ok {
            if let Some(&first_line) = scenario_lines.get(&id) {
                d.error(
                    &id_span,
                    format!(
                        "scenario.id: duplicate id {id:?}, expected unique ids (first defined on line {first_line})"
                    ),
                );
                duplicate = true;
            } else {
                scenario_lines.insert(id.clone(), d.line_of(&id_span));
            }
        }
        let Some(scenario) = c.scenario else {
            continue;
        };
        if duplicate {
            continue;
        }
        // Duplicate-coverage warning, hashed (not quadratic).
        let mut sources = scenario.sources.clone();
        sources.sort_unstable();
        sources.dedup();
        let mut destinations = scenario.destinations.clone();
        destinations.sort_unstable_by(destination_order);
        destinations.dedup();
        let mut services = scenario.services.clone();
        if services.contains(&Service::Any) {
            services.clear();
        }
        services.sort_unstable();
        services.dedup();
        let key = (scenario.enterprise_index, sources, destinations, services);
        match fingerprints.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => {
                let (first_id, first_line) = first.get();
                d.warn(
                    &id_span,
                    format!(
                        "scenario {id:?} has the same sources, destinations and services as scenario {first_id:?} (line {first_line}) of enterprise {:?}; traffic will be attributed to only one of them",
                        scenario.enterprise
                    ),
                );
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((id.clone(), d.line_of(&id_span)));
            }
        }
        // Expiry warnings.
        let until = scenario.valid_until;
        let left = until.days_since_epoch() - today.days_since_epoch();
        if left < 0 {
            d.warn(
                &id_span,
                format!(
                    "scenario {id:?} expired on {until} (today is {today}); its traffic will be flagged filing_expired"
                ),
            );
        } else if left <= i64::from(warning_days) {
            d.warn(
                &id_span,
                format!(
                    "scenario {id:?} (filing {}) expires on {until}, in {left} days; renew it before then",
                    scenario.filing_ref
                ),
            );
        }
        scenarios.push(scenario);
    }
    d.set_base(0);
    Registry {
        path: path.to_path_buf(),
        enterprises,
        scenarios,
    }
}

/// `"; did you mean X?"` when `value` differs from one of `options` only in case or in using
/// `-` or a space instead of `_`; empty otherwise.
fn did_you_mean(value: &str, options: &[&str]) -> String {
    let normal: String = value
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    options
        .iter()
        .find(|o| **o == normal)
        .map_or_else(String::new, |o| format!("; did you mean {o:?}?"))
}

fn parse_basis(d: &mut Diagnostics, s: &RawScenario) -> Option<Basis> {
    let basis = s.basis.get_ref().as_str();
    let exemption = |d: &mut Diagnostics| -> Option<Exemption> {
        let Some(e) = &s.exemption else {
            d.error(
                &span(&s.basis),
                "basis: \"exemption\" needs an `exemption` key, expected one of art3, art4, art5_contract, art5_hr, art5_emergency, art5_small",
            );
            return None;
        };
        let v = match e.get_ref().as_str() {
            "art3" => Exemption::Art3,
            "art4" => Exemption::Art4,
            "art5_contract" => Exemption::Art5Contract,
            "art5_hr" => Exemption::Art5Hr,
            "art5_emergency" => Exemption::Art5Emergency,
            "art5_small" => Exemption::Art5Small,
            other => {
                d.error(
                    &span(e),
                    format!("exemption: unknown article {other:?}, expected one of art3, art4, art5_contract, art5_hr, art5_emergency, art5_small{}", did_you_mean(other, &["art3", "art4", "art5_contract", "art5_hr", "art5_emergency", "art5_small"])),
                );
                return None;
            }
        };
        Some(v)
    };
    let plain = match basis {
        "security_assessment" => Basis::SecurityAssessment,
        "standard_contract" => Basis::StandardContract,
        "certification" => Basis::Certification,
        "ftz_negative_list" => Basis::FtzNegativeList,
        "exemption" => return exemption(d).map(Basis::Exemption),
        other => {
            d.error(
                &span(&s.basis),
                format!("basis: unknown basis {other:?}, expected one of security_assessment, standard_contract, certification, exemption, ftz_negative_list{}", did_you_mean(other, &["security_assessment", "standard_contract", "certification", "exemption", "ftz_negative_list"])),
            );
            return None;
        }
    };
    if let Some(e) = &s.exemption {
        d.error(
            &span(e),
            format!(
                "exemption: {:?} given with basis {basis:?}, expected `exemption` only when basis = \"exemption\"",
                e.get_ref()
            ),
        );
        return None;
    }
    Some(plain)
}

fn parse_date(d: &mut Diagnostics, key: &str, v: &V) -> Option<Date> {
    let expected = "expected a TOML date such as 2026-01-01 (without quotes)";
    match v.get_ref() {
        Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            let date = dt.date?;
            let parsed = Date::new(i32::from(date.year), date.month, date.day);
            if parsed.is_none() {
                d.error(
                    &span(v),
                    format!("{key}: {dt} is not a calendar date, {expected}"),
                );
            }
            parsed
        }
        Value::String(s) => {
            d.error(&span(v), format!("{key}: {s:?} is a string, {expected}"));
            None
        }
        other => {
            d.error(
                &span(v),
                format!("{key}: {other} is not a date, {expected}"),
            );
            None
        }
    }
}

fn parse_nets(d: &mut Diagnostics, key: &str, list: &Spanned<Vec<S>>) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(list.get_ref().len());
    for item in list.get_ref() {
        match parse_ip_net(item.get_ref()) {
            Ok(n) => out.push(n),
            Err(e) => d.error(&span(item), format!("{key}: {e}")),
        }
    }
    out
}

fn byte_size(d: &mut Diagnostics, key: &str, v: &V) -> Option<u64> {
    match v.get_ref() {
        Value::Integer(n) if *n >= 0 => Some(*n as u64),
        Value::Integer(n) => {
            d.error(
                &span(v),
                format!("{key}: {n} is negative, expected a byte size"),
            );
            None
        }
        Value::String(s) => match parse_byte_size(s) {
            Ok(n) => Some(n),
            Err(e) => {
                d.error(&span(v), format!("{key}: {e}"));
                None
            }
        },
        other => {
            d.error(
                &span(v),
                format!("{key}: {other} is not a byte size, expected a string such as \"20 GiB\" or an integer"),
            );
            None
        }
    }
}

fn duration(d: &mut Diagnostics, key: &str, v: &V) -> Option<Duration> {
    match v.get_ref() {
        Value::String(s) => match parse_duration(s) {
            Ok(t) => Some(t),
            Err(e) => {
                d.error(&span(v), format!("{key}: {e}"));
                None
            }
        },
        other => {
            d.error(
                &span(v),
                format!("{key}: {other} is not a duration, expected a string such as \"5s\", \"5m\" or \"1h\""),
            );
            None
        }
    }
}

/// An integer in `min..=max`.
fn int_in(d: &mut Diagnostics, key: &str, v: &Spanned<i64>, min: i64, max: i64) -> Option<u64> {
    let n = *v.get_ref();
    if n < min || n > max {
        d.error(
            &span(v),
            format!("{key}: {n} is out of range, expected {min}..={max}"),
        );
        return None;
    }
    Some(n as u64)
}

fn parse_window(d: &mut Diagnostics, w: &Spanned<crate::raw::RawWindow>) -> Option<Window> {
    let raw = w.get_ref();
    let mut ok = true;
    let days = match &raw.days {
        None => 0x7f,
        Some(v) => match v.get_ref() {
            Value::String(s) => match parse_days(s) {
                Ok(m) => m,
                Err(e) => {
                    d.error(&span(v), format!("window.days: {e}"));
                    ok = false;
                    0
                }
            },
            Value::Array(items) if !items.is_empty() => {
                let mut mask = 0u8;
                for item in items {
                    match item.as_str().map(parse_day) {
                        Some(Ok(day)) => mask |= 1 << day,
                        Some(Err(e)) => {
                            d.error(&span(v), format!("window.days: {e}"));
                            ok = false;
                        }
                        None => {
                            d.error(
                                &span(v),
                                format!("window.days: {item} is not a day name, expected strings such as \"mon\""),
                            );
                            ok = false;
                        }
                    }
                }
                mask
            }
            other => {
                d.error(
                    &span(v),
                    format!("window.days: {other} is not a day set, expected \"daily\", \"mon-fri\" or a non-empty list such as [\"mon\", \"wed\"]"),
                );
                ok = false;
                0
            }
        },
    };
    let (start_minute, end_minute) = match &raw.hours {
        None => (0, 0), // the whole day
        Some(h) => match parse_hours(h.get_ref()) {
            Ok(x) => x,
            Err(e) => {
                d.error(&span(h), format!("window.hours: {e}"));
                ok = false;
                (0, 0)
            }
        },
    };
    ok.then_some(Window {
        days,
        start_minute,
        end_minute,
    })
}

fn validate_scenario(
    d: &mut Diagnostics,
    s: RawScenario,
    enterprises: &HashMap<String, (usize, usize)>,
    broken_enterprises: &[String],
    domestic: &[IpNet],
) -> Option<Scenario> {
    let mut ok = true;
    let enterprise_index = match enterprises.get(s.enterprise.get_ref()) {
        Some(&(i, _)) => Some(i),
        // Its own error is reported; this scenario is checked but not kept.
        None if broken_enterprises.contains(s.enterprise.get_ref()) => None,
        None => {
            let mut known: Vec<&str> = enterprises.keys().map(String::as_str).collect();
            known.sort_unstable();
            let list = if known.len() <= 8 {
                known.join(", ")
            } else {
                format!("{}, ... ({} in all)", known[..8].join(", "), known.len())
            };
            d.error(
                &span(&s.enterprise),
                format!(
                    "scenario.enterprise: unknown enterprise {:?}, expected the id of an [[enterprise]] ({list})",
                    s.enterprise.get_ref()
                ),
            );
            None
        }
    };
    let basis = parse_basis(d, &s);
    ok &= check_text(d, "filing_ref", &s.filing_ref);
    ok &= check_text(d, "recipient.name", &s.recipient.name);
    if let Err(e) = check_country(s.recipient.country.get_ref()) {
        d.error(
            &span(&s.recipient.country),
            format!("recipient.country: {e}"),
        );
        ok = false;
    }
    ok &= check_text(d, "activity", &s.activity);

    // Data categories.
    let mut data = Vec::new();
    if s.data.get_ref().is_empty() {
        d.error(
            &span(&s.data),
            "data: empty list, expected at least one of none, personal, sensitive_personal, important",
        );
        ok = false;
    }
    for item in s.data.get_ref() {
        let c = match item.get_ref().as_str() {
            "none" => DataCategory::None,
            "personal" => DataCategory::Personal,
            "sensitive_personal" => DataCategory::SensitivePersonal,
            "important" => DataCategory::Important,
            other => {
                d.error(
                    &span(item),
                    format!("data: unknown category {other:?}, expected one of none, personal, sensitive_personal, important{}", did_you_mean(other, &["none", "personal", "sensitive_personal", "important"])),
                );
                ok = false;
                continue;
            }
        };
        if data.contains(&c) {
            d.error(
                &span(item),
                format!(
                    "data: {:?} is listed twice, expected each category once",
                    item.get_ref()
                ),
            );
            ok = false;
            continue;
        }
        data.push(c);
    }
    if data.len() > 1 && data.contains(&DataCategory::None) {
        d.error(
            &span(&s.data),
            "data: \"none\" is combined with other categories, expected either [\"none\"] or a list of personal, sensitive_personal, important",
        );
        ok = false;
    }

    // Validity.
    let valid_from = parse_date(d, "valid_from", &s.valid_from);
    let valid_until = parse_date(d, "valid_until", &s.valid_until);
    if let (Some(from), Some(until)) = (valid_from, valid_until) {
        if until < from {
            d.error(
                &span(&s.valid_until),
                format!("valid_until: {until} is before valid_from {from}, expected valid_until >= valid_from"),
            );
            ok = false;
        }
    }

    // Sources.
    let before = d.errors.len();
    let sources = parse_nets(d, "sources", &s.sources);
    ok &= d.errors.len() == before;
    if s.sources.get_ref().is_empty() {
        d.error(
            &span(&s.sources),
            "sources: empty list, expected at least one domestic prefix such as \"10.20.0.0/16\"",
        );
        ok = false;
    }
    if !domestic.is_empty() {
        for (net, item) in sources.iter().zip(s.sources.get_ref()) {
            if !domestic.iter().any(|dom| dom.covers(net)) {
                let list: Vec<String> = domestic.iter().map(ToString::to_string).collect();
                d.error(
                    &span(item),
                    format!(
                        "sources: {net} is not inside any domestic prefix, expected a prefix inside {}",
                        list.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }

    // Destinations.
    let mut destinations = Vec::with_capacity(s.destinations.get_ref().len());
    if s.destinations.get_ref().is_empty() {
        d.error(
            &span(&s.destinations),
            "destinations: empty list, expected at least one prefix or host name",
        );
        ok = false;
    }
    for item in s.destinations.get_ref() {
        let v = item.get_ref();
        let parsed = if looks_like_ip(v) {
            parse_ip_net(v).map(Destination::Net)
        } else {
            parse_host_pattern(v).map(Destination::Host)
        };
        if let Ok(Destination::Net(net)) = &parsed {
            if let Some(dom) = domestic.iter().find(|dom| dom.covers(net)) {
                d.warn(
                    &span(item),
                    format!("destinations: {net} lies inside the domestic prefix {dom}; flows to it are not cross-border, so this destination never matches"),
                );
            }
        }
        match parsed {
            Ok(x) => destinations.push(x),
            Err(e) => {
                d.error(&span(item), format!("destinations: {e}"));
                ok = false;
            }
        }
    }

    // Services.
    let mut services = Vec::with_capacity(s.services.len());
    for item in &s.services {
        match parse_service(item.get_ref()) {
            Ok(x) => services.push(x),
            Err(e) => {
                d.error(&span(item), format!("services: {e}"));
                ok = false;
            }
        }
    }

    let window = match &s.window {
        None => None,
        Some(w) => {
            let parsed = parse_window(d, w);
            ok &= parsed.is_some();
            parsed
        }
    };
    let mut bytes_per_day = None;
    if let Some(cap) = s.caps.as_ref().and_then(|c| c.bytes_per_day.as_ref()) {
        match byte_size(d, "caps.bytes_per_day", cap) {
            Some(0) => {
                d.error(&span(cap), "caps.bytes_per_day: 0 bytes, expected a positive cap (leave `caps` out for no cap)");
                ok = false;
            }
            Some(n) => bytes_per_day = Some(n),
            None => ok = false,
        }
    }
    let persons_per_year = match &s.persons_per_year {
        None => None,
        Some(p) => {
            let v = int_in(d, "persons_per_year", p, 1, i64::MAX);
            ok &= v.is_some();
            v
        }
    };

    if !ok {
        return None;
    }
    Some(Scenario {
        id: s.id.into_inner(),
        enterprise: s.enterprise.into_inner(),
        enterprise_index: enterprise_index?,
        basis: basis?,
        filing_ref: s.filing_ref.into_inner(),
        recipient: Recipient {
            name: s.recipient.name.into_inner(),
            country: s.recipient.country.into_inner(),
        },
        activity: s.activity.into_inner(),
        data,
        valid_from: valid_from?,
        valid_until: valid_until?,
        sources,
        destinations,
        services,
        window,
        bytes_per_day,
        persons_per_year,
    })
}

/// Resolve a path written in a config file against that file's folder.
pub fn resolve_path(config_file: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_file
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(p)
    }
}

/// Load and validate an agent config and the registry it names. Errors from both files come
/// back in one list (the agent file's first). `Ok` carries warnings from both files.
pub fn load_agent_config(
    path: &Path,
    today: Date,
) -> Result<(AgentConfig, Vec<Diagnostic>), ConfigError> {
    let text = read_file(path)?;
    let mut d = Diagnostics::new(path, &text);
    let raw: RawAgent = match toml::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            let parts = deserialize_agent_sections(&mut d, &text);
            if d.errors.is_empty() {
                d.toml_error(&e);
            }
            match parts {
                Some(r) => r,
                None => {
                    d.sort();
                    return Err(ConfigError { errors: d.errors });
                }
            }
        }
    };

    // Top level.
    let gateway = raw.gateway.get_ref().clone();
    if !valid_gateway_id(&gateway) {
        d.error(
            &span(&raw.gateway),
            format!("gateway: {gateway:?} is not a valid gateway id, expected lower-case letters, digits, '-' and '_', starting with a letter or digit (e.g. \"gw-bj-01\")"),
        );
    }
    let domestic = parse_nets(&mut d, "domestic", &raw.domestic);
    if raw.domestic.get_ref().is_empty() {
        d.error(
            &span(&raw.domestic),
            "domestic: empty list, expected the China-side prefixes of the line such as [\"10.0.0.0/8\"]",
        );
    }
    let registry_path = resolve_path(path, raw.registry.get_ref());
    let state_dir = resolve_path(
        path,
        raw.state_dir
            .as_ref()
            .map_or("state", |s| s.get_ref().as_str()),
    );
    let state_interval = match &raw.state_interval {
        None => DEFAULT_STATE_INTERVAL,
        Some(v) => match duration(&mut d, "state_interval", v) {
            Some(t) if t >= Duration::from_secs(1) => t,
            Some(t) => {
                d.error(
                    &span(v),
                    format!("state_interval: {t:?} is too short, expected at least \"1s\""),
                );
                DEFAULT_STATE_INTERVAL
            }
            None => DEFAULT_STATE_INTERVAL,
        },
    };

    let capture = capture_config(&mut d, &raw);
    let uplink = raw
        .uplink
        .as_ref()
        .and_then(|u| uplink_config(&mut d, path, u));
    let metrics = match &raw.metrics.listen {
        None => MetricsConfig { listen: None },
        Some(l) => match l.get_ref().parse() {
            Ok(a) => MetricsConfig { listen: Some(a) },
            Err(_) => {
                d.error(
                    &span(l),
                    format!("metrics.listen: {:?} is not a socket address, expected IP:PORT such as \"127.0.0.1:9184\" or \"[::1]:9184\"", l.get_ref()),
                );
                MetricsConfig { listen: None }
            }
        },
    };
    let mut detect = detect_config(&mut d, path, &raw);
    detect.exclude = exclude_config(&mut d, &raw, &domestic);
    detect.holidays = holidays_config(&mut d, &raw);

    // The registry, checked against the valid domestic prefixes.
    let mut registry_errors = Vec::new();
    let mut registry_warnings = Vec::new();
    let mut registry = None;
    let mut scenario_ids = Vec::new();
    match crate::read::read_config_text(&registry_path) {
        Err(e) => d.error(
            &span(&raw.registry),
            format!(
                "registry: cannot read {}: {}, expected a registry file (relative paths are relative to this file's folder)",
                registry_path.display(),
                e.reason()
            ),
        ),
        Ok(reg_text) => {
            let out = registry_from_str(
                &registry_path,
                &reg_text,
                &domestic,
                today,
                detect.expiry_warning_days,
            );
            registry = out.registry;
            registry_errors = out.errors;
            registry_warnings = out.warnings;
            scenario_ids = out.scenario_ids;
        }
    }

    // Signatures may name approved scenarios: they must exist.
    if registry.is_some() {
        let known: std::collections::HashSet<&str> =
            scenario_ids.iter().map(String::as_str).collect();
        for sig in &raw.detect.signature {
            for sc in &sig.approved_scenarios {
                if !known.contains(sc.get_ref().as_str()) {
                    d.error(
                        &span(sc),
                        format!(
                            "detect.signature.approved_scenarios: unknown scenario {:?}, expected a scenario id of {}",
                            sc.get_ref(),
                            registry_path.display()
                        ),
                    );
                }
            }
        }
    }
    if detect.pi_key == DEVELOPMENT_PI_KEY {
        let at = raw.detect.pi_key.as_ref().map_or(0..0, span);
        d.warn(
            &at,
            "detect.pi_key: the default development key is in use; set a secret per deployment (e.g. 64 hex digits) so identifier hashes cannot be recomputed by others",
        );
    } else if detect.pi_key.len() < 16 {
        if let Some(k) = &raw.detect.pi_key {
            d.warn(
                &span(k),
                format!(
                    "detect.pi_key: only {} bytes, expected at least 16 (32 recommended)",
                    detect.pi_key.len()
                ),
            );
        }
    }
    d.sort();
    let mut errors = d.errors;
    errors.extend(registry_errors);
    let mut warnings = d.warnings;
    warnings.extend(registry_warnings);
    match registry {
        Some(registry) if errors.is_empty() => Ok((
            AgentConfig {
                path: path.to_path_buf(),
                gateway,
                domestic,
                registry_path,
                registry,
                state_dir,
                state_interval,
                capture,
                uplink,
                metrics,
                detect,
            },
            warnings,
        )),
        _ => Err(ConfigError { errors }),
    }
}

/// After `agent.toml` failed to deserialize as a whole, read each section (the top-level keys,
/// then every `[table]` / `[[array]]` header to the next) on its own, so that a mistake in one
/// section does not hide the others. Every section is parsed in a copy of the file where the
/// other sections are blanked out (newlines kept), so spans stay file positions. `None` when the
/// file has a syntax error (the caller reports the original error) or a required key is missing;
/// errors found are recorded in `d`.
fn deserialize_agent_sections(d: &mut Diagnostics, text: &str) -> Option<RawAgent> {
    toml::from_str::<toml::Table>(text).ok()?;
    let mut cuts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && line.trim_start_matches([' ', '\t']).starts_with('[') {
            cuts.push(offset);
        }
        offset += line.len();
    }
    let mut merged = crate::raw::RawAgentPart::default();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied().unwrap_or(text.len());
        let blanked: Vec<u8> = text
            .bytes()
            .enumerate()
            .map(|(at, b)| {
                if (start..end).contains(&at) || b == b'\n' {
                    b
                } else {
                    b' '
                }
            })
            .collect();
        let section = String::from_utf8(blanked).ok()?;
        // A cut inside a multi-line string or array leaves a section that is not TOML: then
        // the sections cannot be told apart safely.
        toml::from_str::<toml::Table>(&section).ok()?;
        let part: crate::raw::RawAgentPart = match toml::from_str(&section) {
            Ok(p) => p,
            Err(e) => {
                d.toml_error(&e);
                continue;
            }
        };
        merged.gateway = merged.gateway.or(part.gateway);
        merged.domestic = merged.domestic.or(part.domestic);
        merged.registry = merged.registry.or(part.registry);
        merged.state_dir = merged.state_dir.or(part.state_dir);
        merged.state_interval = merged.state_interval.or(part.state_interval);
        merged.capture = merged.capture.or(part.capture);
        merged.uplink = merged.uplink.or(part.uplink);
        merged.metrics = merged.metrics.or(part.metrics);
        match (&mut merged.detect, part.detect) {
            (Some(m), Some(p)) => m.signature.extend(p.signature),
            (m @ None, p) => *m = p,
            (Some(_), None) => {}
        }
        merged
            .exclude
            .get_or_insert_with(Vec::new)
            .extend(part.exclude.unwrap_or_default());
        merged
            .holidays
            .get_or_insert_with(Vec::new)
            .extend(part.holidays.unwrap_or_default());
    }
    let missing: Vec<String> = [
        ("gateway", merged.gateway.is_none()),
        ("domestic", merged.domestic.is_none()),
        ("registry", merged.registry.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(k, _)| format!("`{k}`"))
    .collect();
    if !missing.is_empty() {
        d.error(
            &(0..0),
            format!(
                "missing field{} {}, expected `gateway`, `domestic` and `registry` at the top of the file",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        );
        return None;
    }
    Some(RawAgent {
        gateway: merged.gateway?,
        domestic: merged.domestic?,
        registry: merged.registry?,
        state_dir: merged.state_dir,
        state_interval: merged.state_interval,
        capture: merged.capture.unwrap_or_default(),
        uplink: merged.uplink,
        metrics: merged.metrics.unwrap_or_default(),
        detect: merged.detect.unwrap_or_default(),
        exclude: merged.exclude.unwrap_or_default(),
        holidays: merged.holidays.unwrap_or_default(),
    })
}

/// `[[exclude]]` entries: a unique name, at least one of `prefixes`, `hosts`, `services`, every
/// value valid, and no prefix inside the China side (it is matched against the foreign
/// endpoint).
fn exclude_config(d: &mut Diagnostics, raw: &RawAgent, domestic: &[IpNet]) -> Vec<Exclude> {
    let mut out = Vec::with_capacity(raw.exclude.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    for e in &raw.exclude {
        let mut ok = check_id(d, "exclude.name", &e.name);
        let name = e.name.get_ref().clone();
        if ok {
            if let Some(first) = names.get(&name) {
                d.error(
                    &span(&e.name),
                    format!("exclude.name: duplicate name {name:?}, expected unique names (first defined on line {first})"),
                );
                ok = false;
            } else {
                names.insert(name.clone(), d.line_of(&span(&e.name)));
            }
        }
        if e.prefixes.is_empty() && e.hosts.is_empty() && e.services.is_empty() {
            d.error(
                &span(&e.name),
                format!("exclude {name:?}: no `prefixes`, `hosts` or `services`, expected at least one (an entry matching everything would hide every export)"),
            );
            ok = false;
        }
        let mut prefixes = Vec::with_capacity(e.prefixes.len());
        for p in &e.prefixes {
            match parse_ip_net(p.get_ref()) {
                Ok(n) => {
                    if let Some(dom) = domestic.iter().find(|dn| dn.covers(&n)) {
                        d.error(
                            &span(p),
                            format!("exclude.prefixes: {n} lies inside the domestic prefix {dom}, expected a prefix of the foreign side (it is matched against the foreign endpoint, so it could never match)"),
                        );
                        ok = false;
                    } else {
                        prefixes.push(n);
                    }
                }
                Err(msg) => {
                    d.error(&span(p), format!("exclude.prefixes: {msg}"));
                    ok = false;
                }
            }
        }
        let mut hosts = Vec::with_capacity(e.hosts.len());
        for h in &e.hosts {
            match parse_host_pattern(h.get_ref()) {
                Ok(p) => hosts.push(p),
                Err(msg) => {
                    d.error(&span(h), format!("exclude.hosts: {msg}"));
                    ok = false;
                }
            }
        }
        let mut services = Vec::with_capacity(e.services.len());
        for sv in &e.services {
            match parse_service(sv.get_ref()) {
                Ok(x) => services.push(x),
                Err(msg) => {
                    d.error(&span(sv), format!("exclude.services: {msg}"));
                    ok = false;
                }
            }
        }
        let any_address = prefixes.is_empty() || prefixes.iter().any(|p| p.prefix_len() == 0);
        let any_service = services.is_empty() || services.contains(&Service::Any);
        if ok && hosts.is_empty() && any_address && any_service {
            d.warn(
                &span(&e.name),
                format!("exclude {name:?} matches every cross-border flow: no export would ever be checked; narrow its prefixes or services"),
            );
        }
        if ok {
            out.push(Exclude {
                name,
                prefixes,
                hosts,
                services,
            });
        }
    }
    out
}

/// `[[holidays]]` entries: one per year, dates inside that year, no day both off and worked.
fn holidays_config(d: &mut Diagnostics, raw: &RawAgent) -> Vec<HolidayYear> {
    let mut out: Vec<HolidayYear> = Vec::with_capacity(raw.holidays.len());
    let mut lines: HashMap<i64, usize> = HashMap::new();
    for h in &raw.holidays {
        let Some(year) = int_in(d, "holidays.year", &h.year, 1990, 2200) else {
            continue;
        };
        let year = year as i32;
        let y = i64::from(year);
        if let Some(first) = lines.get(&y) {
            d.error(
                &span(&h.year),
                format!("holidays.year: {year} is listed twice, expected one [[holidays]] entry per year (first on line {first})"),
            );
            continue;
        }
        lines.insert(y, d.line_of(&span(&h.year)));
        let mut ok = true;
        let mut dates = |key: &str, list: &[S], d: &mut Diagnostics| -> Vec<Date> {
            let mut v = Vec::new();
            for item in list {
                match parse_date_range(item.get_ref()) {
                    Ok((a, b)) if a.year != year || b.year != year => {
                        d.error(
                            &span(item),
                            format!("holidays.{key}: {:?} is not in {year}, expected dates of the entry's year", item.get_ref()),
                        );
                        ok = false;
                    }
                    Ok((a, b)) => {
                        for day in a.days_since_epoch()..=b.days_since_epoch() {
                            v.push(Date::from_days(day));
                        }
                    }
                    Err(msg) => {
                        d.error(&span(item), format!("holidays.{key}: {msg}"));
                        ok = false;
                    }
                }
            }
            v
        };
        let off = dates("off", &h.off, d);
        let workdays = dates("workdays", &h.workdays, d);
        for item in &h.workdays {
            if let Ok((a, b)) = parse_date_range(item.get_ref()) {
                if let Some(both) = off.iter().find(|o| a <= **o && **o <= b) {
                    d.error(
                        &span(item),
                        format!("holidays.workdays: {both} is also listed in `off`, expected a day to be either off or a make-up working day"),
                    );
                    ok = false;
                }
            }
        }
        if off.is_empty() && workdays.is_empty() && ok {
            d.warn(
                &span(&h.year),
                format!("holidays: the entry for {year} lists no `off` days and no `workdays`: every Monday to Friday of {year} counts as a working day"),
            );
        }
        if ok {
            out.push(HolidayYear {
                year,
                off,
                workdays,
            });
        }
    }
    out
}

fn capture_config(d: &mut Diagnostics, raw: &RawAgent) -> CaptureConfig {
    let c = &raw.capture;
    let mut out = CaptureConfig::default();
    if let Some(list) = &c.interfaces {
        out.interfaces = Vec::with_capacity(list.len());
        for i in list {
            if check_id(d, "capture.interfaces", i) {
                out.interfaces.push(i.get_ref().clone());
            }
        }
    }
    let count = |d: &mut Diagnostics,
                 key: &str,
                 v: &Option<Spanned<i64>>,
                 min: i64,
                 max: i64,
                 target: &mut usize| {
        if let Some(v) = v {
            if let Some(n) = int_in(d, key, v, min, max) {
                *target = n as usize;
            }
        }
    };
    if let Some(v) = &c.snaplen {
        if let Some(n) = int_in(d, "capture.snaplen", v, 64, 262_144) {
            out.snaplen = n as u32;
        }
    }
    if let Some(v) = &c.buffer_bytes {
        if let Some(n) = byte_size(d, "capture.buffer_bytes", v) {
            out.buffer_bytes = n;
        }
    }
    count(d, "capture.workers", &c.workers, 1, 1024, &mut out.workers);
    count(
        d,
        "capture.flows_per_worker",
        &c.flows_per_worker,
        1,
        1 << 32,
        &mut out.flows_per_worker,
    );
    count(
        d,
        "capture.queue_batches",
        &c.queue_batches,
        1,
        1 << 20,
        &mut out.queue_batches,
    );
    count(
        d,
        "capture.fragment_entries",
        &c.fragment_entries,
        0,
        1 << 24,
        &mut out.fragment_entries,
    );
    count(
        d,
        "capture.dns_cache_entries",
        &c.dns_cache_entries,
        0,
        1 << 28,
        &mut out.dns_cache_entries,
    );
    if let Some(f) = &c.filter {
        if check_text(d, "capture.filter", f) {
            out.filter = Some(f.get_ref().clone());
        }
    }
    if let Some(u) = &c.user {
        let v = u.get_ref();
        let first_ok = v.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '_');
        let rest_ok = v
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-');
        if first_ok && rest_ok && v.len() <= 32 {
            out.user = Some(v.clone());
        } else {
            d.error(
                &span(u),
                format!("capture.user: {v:?} is not a user name, expected at most 32 of a-z 0-9 _ - starting with a letter or _ (such as \"crossline\")"),
            );
        }
    }
    let timeouts: [(&str, &Option<V>, &mut Duration); 6] = [
        (
            "capture.tcp_established_timeout",
            &c.tcp_established_timeout,
            &mut out.tcp_established_timeout,
        ),
        (
            "capture.tcp_unestablished_timeout",
            &c.tcp_unestablished_timeout,
            &mut out.tcp_unestablished_timeout,
        ),
        (
            "capture.tcp_closed_timeout",
            &c.tcp_closed_timeout,
            &mut out.tcp_closed_timeout,
        ),
        ("capture.udp_timeout", &c.udp_timeout, &mut out.udp_timeout),
        (
            "capture.icmp_timeout",
            &c.icmp_timeout,
            &mut out.icmp_timeout,
        ),
        (
            "capture.active_timeout",
            &c.active_timeout,
            &mut out.active_timeout,
        ),
    ];
    for (key, v, target) in timeouts {
        if let Some(v) = v {
            match duration(d, key, v) {
                Some(t) if t.is_zero() => d.error(
                    &span(v),
                    format!("{key}: zero duration, expected a positive duration"),
                ),
                Some(t) => *target = t,
                None => {}
            }
        }
    }
    if let Some(v) = &c.tls_reassembly_bytes {
        if let Some(n) = byte_size(d, "capture.tls_reassembly_bytes", v) {
            if n > 1 << 20 {
                d.error(&span(v), format!("capture.tls_reassembly_bytes: {n} bytes is too large, expected at most 1 MiB"));
            } else {
                out.tls_reassembly_bytes = n as usize;
            }
        }
    }
    if let Some(v) = &c.community_id_seed {
        match u16::try_from(*v.get_ref()) {
            Ok(n) => out.community_id_seed = n,
            Err(_) => d.error(
                &span(v),
                format!(
                    "capture.community_id_seed: {} is out of range, expected 0..=65535",
                    v.get_ref()
                ),
            ),
        }
    }
    if let Some(v) = &c.loss_alert_ratio {
        let r = *v.get_ref();
        if r.is_finite() && r > 0.0 && r <= 1.0 {
            out.loss_alert_ratio = r;
        } else {
            d.error(
                &span(v),
                format!(
                    "capture.loss_alert_ratio: {r} is not a ratio in (0, 1], expected e.g. 0.1"
                ),
            );
        }
    }
    if let Some(v) = &c.reassembly_budget {
        if let Some(n) = byte_size(d, "capture.reassembly_budget", v) {
            out.reassembly_budget = n;
        }
    }
    out
}

/// Default `uplink.batch_bytes`: 2 MiB, a quarter of the largest body a collector accepts.
pub const DEFAULT_BATCH_BYTES: usize = 2 << 20;

fn uplink_config(
    d: &mut Diagnostics,
    path: &Path,
    u: &Spanned<crate::raw::RawUplink>,
) -> Option<UplinkConfig> {
    let raw = u.get_ref();
    let mut ok = true;
    let collector = raw.collector.get_ref();
    let host = collector
        .strip_prefix("https://")
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|rest| {
            let (host, port) = rest.rsplit_once(':')?;
            port.parse::<u16>().ok().filter(|p| *p > 0)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (!host.is_empty() && !host.contains('/')).then(|| host.to_string())
        });
    if host.is_none() {
        d.error(
            &span(&raw.collector),
            format!("uplink.collector: {collector:?} is not a collector address, expected \"https://HOST:PORT\""),
        );
        ok = false;
    }
    let server_name = match &raw.server_name {
        Some(s) => {
            ok &= check_id(d, "uplink.server_name", s);
            Some(s.get_ref().clone())
        }
        None => None,
    };
    let mut file = |d: &mut Diagnostics, key: &str, s: &S| -> PathBuf {
        ok &= check_text(d, key, s);
        resolve_path(path, s.get_ref())
    };
    let ca = file(d, "uplink.ca", &raw.ca);
    let cert = file(d, "uplink.cert", &raw.cert);
    let key = file(d, "uplink.key", &raw.key);
    let spool_dir = match &raw.spool_dir {
        Some(s) => file(d, "uplink.spool_dir", s),
        None => resolve_path(path, "spool"),
    };
    let mut size = |d: &mut Diagnostics, key: &str, v: &Option<V>, default: u64| -> u64 {
        match v {
            None => default,
            Some(v) => match byte_size(d, key, v) {
                Some(0) => {
                    d.error(
                        &span(v),
                        format!("{key}: 0 bytes, expected a positive size"),
                    );
                    ok = false;
                    default
                }
                Some(n) => n,
                None => {
                    ok = false;
                    default
                }
            },
        }
    };
    let spool_max_bytes = size(d, "uplink.spool_max_bytes", &raw.spool_max_bytes, 1 << 30);
    let spool_segment_bytes = size(
        d,
        "uplink.spool_segment_bytes",
        &raw.spool_segment_bytes,
        16 << 20,
    );
    if spool_segment_bytes > spool_max_bytes {
        if let Some(v) = &raw.spool_segment_bytes {
            d.error(
                &span(v),
                format!("uplink.spool_segment_bytes: {spool_segment_bytes} is larger than spool_max_bytes ({spool_max_bytes}), expected a segment no larger than the spool"),
            );
            ok = false;
        }
    }
    let fsync = match &raw.fsync {
        None => FsyncPolicy::Always,
        Some(f) => match f.get_ref().as_str() {
            "always" => FsyncPolicy::Always,
            "never" => FsyncPolicy::Never,
            other => match parse_duration(other) {
                Ok(t) if !t.is_zero() => FsyncPolicy::Interval(t),
                _ => {
                    d.error(
                        &span(f),
                        format!("uplink.fsync: {other:?} is not an fsync policy, expected \"always\", \"never\" or an interval such as \"1s\""),
                    );
                    ok = false;
                    FsyncPolicy::Always
                }
            },
        },
    };
    let batch_events = match &raw.batch_events {
        None => 500,
        Some(v) => int_in(d, "uplink.batch_events", v, 1, 100_000).unwrap_or_else(|| {
            ok = false;
            500
        }) as usize,
    };
    let batch_bytes = match &raw.batch_bytes {
        None => DEFAULT_BATCH_BYTES,
        Some(v) => match byte_size(d, "uplink.batch_bytes", v) {
            Some(n) if (1024..=crate::limits::MAX_BATCH_BODY as u64).contains(&n) => n as usize,
            Some(n) => {
                d.error(
                    &span(v),
                    format!(
                        "uplink.batch_bytes: {n} bytes, expected 1 KiB to {} bytes (8 MiB, the largest batch body a collector accepts)",
                        crate::limits::MAX_BATCH_BODY
                    ),
                );
                ok = false;
                DEFAULT_BATCH_BYTES
            }
            None => {
                ok = false;
                DEFAULT_BATCH_BYTES
            }
        },
    };
    let mut dur = |d: &mut Diagnostics, key: &str, v: &Option<V>, default: Duration| -> Duration {
        match v {
            None => default,
            Some(v) => match duration(d, key, v) {
                Some(t) if !t.is_zero() => t,
                Some(_) => {
                    d.error(
                        &span(v),
                        format!("{key}: zero duration, expected a positive duration"),
                    );
                    ok = false;
                    default
                }
                None => {
                    ok = false;
                    default
                }
            },
        }
    };
    let batch_interval = dur(
        d,
        "uplink.batch_interval",
        &raw.batch_interval,
        Duration::from_secs(1),
    );
    let backoff_min = dur(
        d,
        "uplink.backoff_min",
        &raw.backoff_min,
        Duration::from_millis(500),
    );
    let backoff_max = dur(
        d,
        "uplink.backoff_max",
        &raw.backoff_max,
        Duration::from_secs(60),
    );
    let drain_timeout = dur(
        d,
        "uplink.drain_timeout",
        &raw.drain_timeout,
        Duration::from_secs(60),
    );
    if backoff_max < backoff_min {
        let at = raw
            .backoff_max
            .as_ref()
            .or(raw.backoff_min.as_ref())
            .map_or_else(|| span(u), span);
        d.error(
            &at,
            format!("uplink.backoff_max: {backoff_max:?} is shorter than backoff_min {backoff_min:?}, expected backoff_max >= backoff_min"),
        );
        ok = false;
    }
    ok.then(|| UplinkConfig {
        collector: collector.clone(),
        server_name,
        ca,
        cert,
        key,
        spool_dir,
        spool_max_bytes,
        spool_segment_bytes,
        fsync,
        batch_events,
        batch_bytes,
        batch_interval,
        send_flows: raw.send_flows.unwrap_or(true),
        backoff_min,
        backoff_max,
        drain_timeout,
    })
}

fn detect_config(d: &mut Diagnostics, path: &Path, raw: &RawAgent) -> DetectConfig {
    let r = &raw.detect;
    let mut out = DetectConfig::default();
    if let Some(v) = &r.fold_interval {
        if let Some(t) = duration(d, "detect.fold_interval", v) {
            out.fold_interval = t;
        }
    }
    if let Some(v) = &r.min_export_bytes {
        if let Some(n) = byte_size(d, "detect.min_export_bytes", v) {
            out.min_export_bytes = n;
        }
    }
    if let Some(k) = &r.pi_key {
        let text = k.get_ref();
        if text.is_empty() {
            d.error(&span(k), "detect.pi_key: empty key, expected a secret of at least 16 bytes (hex or plain text)");
        } else {
            // Hex when it reads as hex (even length, at least 32 digits); plain bytes otherwise.
            out.pi_key = match decode_hex(text) {
                Some(bytes) if text.len() >= 32 => bytes,
                _ => text.as_bytes().to_vec(),
            };
        }
    }
    if let Some(v) = &r.pi_scan_bytes {
        if let Some(n) = byte_size(d, "detect.pi_scan_bytes", v) {
            out.pi_scan_bytes = n as usize;
        }
    }
    if let Some(b) = r.green_channel_raise {
        out.green_channel_raise = b;
    }
    if let Some(g) = &r.geoip {
        if check_text(d, "detect.geoip", g) {
            out.geoip = Some(resolve_path(path, g.get_ref()));
        }
    }
    if let Some(v) = &r.expiry_warning_days {
        if let Some(n) = int_in(d, "detect.expiry_warning_days", v, 0, 3650) {
            out.expiry_warning_days = n as u32;
        }
    }
    if let Some(v) = &r.surge_k {
        let k = *v.get_ref();
        if k.is_finite() && k > 0.0 {
            out.surge_k = k;
        } else {
            d.error(
                &span(v),
                format!("detect.surge_k: {k} is not a positive number, expected e.g. 3.0"),
            );
        }
    }
    if let Some(v) = &r.surge_floor_bytes {
        if let Some(n) = byte_size(d, "detect.surge_floor_bytes", v) {
            out.surge_floor_bytes = n;
        }
    }
    if let Some(v) = &r.misuse_sources {
        if let Some(n) = int_in(d, "detect.misuse_sources", v, 1, i64::from(u32::MAX)) {
            out.misuse_sources = n as u32;
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for sig in &r.signature {
        let mut ok = check_id(d, "detect.signature.id", &sig.id);
        if let Some(first) = seen.get(sig.id.get_ref().as_str()) {
            d.error(
                &span(&sig.id),
                format!("detect.signature.id: duplicate id {:?}, expected unique ids (first defined on line {first})", sig.id.get_ref()),
            );
            ok = false;
        } else {
            seen.insert(sig.id.get_ref(), d.line_of(&span(&sig.id)));
        }
        let kind = match sig.kind.get_ref().as_str() {
            "negative_list" => Some(SignatureKind::NegativeList),
            "important_data" => Some(SignatureKind::ImportantData),
            other => {
                d.error(
                    &span(&sig.kind),
                    format!("detect.signature.kind: unknown kind {other:?}, expected \"negative_list\" or \"important_data\"{}", did_you_mean(other, &["negative_list", "important_data"])),
                );
                None
            }
        };
        if sig.pattern.get_ref().len() < 4 {
            d.error(
                &span(&sig.pattern),
                format!("detect.signature.pattern: {:?} is shorter than 4 bytes, expected a distinctive pattern", sig.pattern.get_ref()),
            );
            ok = false;
        }
        ok &= check_text(d, "detect.signature.category", &sig.category);
        if let (true, Some(kind)) = (ok, kind) {
            out.signatures.push(Signature {
                id: sig.id.get_ref().clone(),
                kind,
                pattern: sig.pattern.get_ref().as_bytes().to_vec(),
                category: sig.category.get_ref().clone(),
                approved_scenarios: sig
                    .approved_scenarios
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_registry(scenarios: usize) -> String {
        let mut text = String::from(
            "[[enterprise]]\nid = \"acme\"\nname = \"Acme\"\nuscc = \"91350100M000100Y43\"\n",
        );
        for i in 0..scenarios {
            text.push_str(&format!(
                "\n[[scenario]]\nid = \"S-{i}\"\nenterprise = \"acme\"\nbasis = \"standard_contract\"\nfiling_ref = \"F\"\nrecipient = {{ name = \"R\", country = \"DE\" }}\nactivity = \"a\"\ndata = [\"personal\"]\nvalid_from = 2026-01-01\nvalid_until = 2028-12-31\nsources = [\"10.{}.{}.0/24\"]\ndestinations = [\"r{i}.example\"]\n\n[scenario.window]\ndays = \"mon-fri\"\n",
                i / 250,
                i % 250
            ));
        }
        text
    }

    #[test]
    fn parallel_chunks_give_the_serial_result() {
        let text = big_registry(3000);
        assert!(text.len() > PARALLEL_MIN_BYTES);
        let cuts = chunk_starts(&text, 4);
        assert_eq!(cuts.len(), 4, "{cuts:?}");
        for &c in &cuts[1..] {
            assert!(text[c..].starts_with("[[scenario]]"));
        }
        let today = Date::new(2026, 11, 27).expect("valid");
        let path = Path::new("big.toml");
        let parallel = registry_from_str(path, &text, &[], today, 60);
        assert!(parallel.errors.is_empty(), "{:?}", parallel.errors);
        let mut d = Diagnostics::new(path, &text);
        let raw: RawRegistry = toml::from_str(&text).expect("valid");
        let serial = validate_registry(&mut d, path, raw, &[], today, 60, 1);
        assert_eq!(parallel.registry, Some(serial));
    }

    #[test]
    fn parallel_validation_reports_what_serial_validation_reports() {
        let mut text = big_registry(3000);
        // Mistakes spread over the file: a duplicate id far from its first use, an unknown
        // enterprise, a bad prefix, duplicate coverage across the thread split, a cap of zero.
        text = text.replacen("id = \"S-2900\"", "id = \"S-10\"", 1);
        text = text.replacen(
            "id = \"S-1700\"\nenterprise = \"acme\"",
            "id = \"S-1700\"\nenterprise = \"nobody\"",
            1,
        );
        text = text.replacen("10.4.0.0/24", "10.4.0.1/24", 1);
        text = text.replacen("\"r2999.example\"", "\"r0.example\"", 1);
        text = text.replacen("\"10.11.249.0/24\"", "\"10.0.0.0/24\"", 1);
        let today = Date::new(2026, 11, 27).expect("valid");
        let path = Path::new("big.toml");
        let run = |threads: usize| {
            let mut d = Diagnostics::new(path, &text);
            let raw: RawRegistry = toml::from_str(&text).expect("valid");
            let reg = validate_registry(&mut d, path, raw, &[], today, 60, threads);
            d.sort();
            (reg, d.errors, d.warnings)
        };
        let serial = run(1);
        assert_eq!(serial.1.len(), 3, "{:?}", serial.1);
        assert!(serial.1[0]
            .message
            .contains("10.4.0.1/24 has host bits set"));
        assert!(serial.1[1]
            .message
            .contains("unknown enterprise \"nobody\""));
        assert!(serial.1[2]
            .message
            .contains("duplicate id \"S-10\", expected unique ids (first defined on line 167)"));
        assert_eq!(serial.2.len(), 1, "{:?}", serial.2);
        assert!(serial.2[0].message.contains(
            "\"S-2999\" has the same sources, destinations and services as scenario \"S-0\""
        ));
        for threads in [2, 3, 4] {
            assert_eq!(run(threads), serial, "{threads} threads");
        }
    }

    #[test]
    fn errors_in_later_chunks_have_file_positions() {
        let mut text = big_registry(3000);
        // A semantic mistake near the end and a structural one in the middle.
        let late = text.rfind("r2990.example").expect("present");
        text.replace_range(late..late + 1, "R");
        let line_of = |text: &str, offset: usize| text[..offset].matches('\n').count() + 1;
        // Only the semantic mistake: the chunks parse in parallel, the error keeps its position.
        let raw = deserialize_registry_with(&text, 2).expect("parses");
        assert!(
            raw.scenario.last().is_some_and(|s| s.base > 0),
            "parallel path taken"
        );
        let today = Date::new(2026, 11, 27).expect("valid");
        let out = registry_from_str(Path::new("big.toml"), &text, &[], today, 60);
        let got: Vec<(usize, usize)> = out.errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(got, vec![(line_of(&text, late), 17)], "{:?}", out.errors);
        let mid = text.find("id = \"S-1500\"").expect("present");
        text.insert_str(mid, "colour = 1\n");
        let out = registry_from_str(Path::new("big.toml"), &text, &[], today, 60);
        let got: Vec<(usize, usize)> = out.errors.iter().map(|e| (e.line, e.column)).collect();
        let late = text.rfind("R2990.example").expect("present");
        assert_eq!(
            got,
            vec![(line_of(&text, mid), 1), (line_of(&text, late), 17)],
            "{:?}",
            out.errors
        );
        assert!(out.errors[1].message.contains("upper-case"));
    }

    #[test]
    fn a_cut_inside_a_multi_line_string_falls_back_to_serial() {
        let mut text = big_registry(3000);
        let at = text.find("name = \"Acme\"").expect("present");
        // A multi-line name holding a header line, placed so that a cut for two threads falls
        // on it. Legal TOML: the header is text inside the string.
        let filler = "x".repeat(text.len() + 1000);
        text.replace_range(
            at..at + "name = \"Acme\"".len(),
            &format!("name = \"\"\"Acme\n{filler}\n[[scenario]]\ntail\"\"\""),
        );
        let inner = text.find("\n[[scenario]]\ntail").expect("present") + 1;
        assert_eq!(
            chunk_starts(&text, 2),
            vec![0, inner],
            "the cut falls inside the string"
        );
        let raw = deserialize_registry_with(&text, 2).expect("serial fallback parses");
        assert_eq!(raw.scenario.len(), 3000);
        assert!(raw.enterprise[0]
            .name
            .get_ref()
            .contains("\n[[scenario]]\ntail"));
        assert!(raw.scenario.iter().all(|s| s.base == 0), "serial result");
    }
}
