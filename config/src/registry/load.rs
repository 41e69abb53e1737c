//! Loading and validating `registry.toml`.
//!
//! Stage one deserializes the raw structures of [`crate::raw`]. A TOML syntax error stops there;
//! when unknown keys or wrong value types make the whole file fail, each `[[enterprise]]` /
//! `[[scenario]]` entry is deserialized on its own so that every such mistake is reported, with
//! its position. Stage two checks every value and reports all problems in one pass as
//! `FILE:LINE:COLUMN: message`, then builds the validated [`Registry`], which cannot hold a bad
//! state. Warnings use the same format.

use crate::checks::check_uscc;
use crate::diag::{ConfigError, Diagnostic, Diagnostics};
use crate::fields::*;
use crate::parse::{
    check_country, looks_like_ip, parse_day, parse_days, parse_host_pattern, parse_hours,
    parse_ip_net, parse_service,
};
use crate::raw::{RawRegistry, RawScenario};
use crate::registry::circuits::overlap_warnings;
use crate::registry::{
    Basis, DataCategory, Destination, Enterprise, Exemption, IpNet, Recipient, Registry, Scenario,
    Service, Window,
};
use crate::time::Date;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use toml::{Spanned, Value};

/// Filings that end within this many days of today get a warning from [`load_registry`].
pub const EXPIRY_WARNING_DAYS: u32 = 60;

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
    let out = registry_from_str(path, &text, domestic, Some(today), warning_days);
    match out.registry {
        Some(r) if out.errors.is_empty() => Ok((r, out.warnings)),
        _ => Err(ConfigError { errors: out.errors }),
    }
}

/// [`load_registry`] without a date: the same validation and errors, no expiry warnings (for
/// the collector, which keeps only the enterprises and scenarios).
pub fn load_registry_undated(
    path: &Path,
    domestic: &[IpNet],
) -> Result<(Registry, Vec<Diagnostic>), ConfigError> {
    let text = read_file(path)?;
    let out = registry_from_str(path, &text, domestic, None, EXPIRY_WARNING_DAYS);
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
    let out = registry_from_str(path, text, domestic, Some(today), EXPIRY_WARNING_DAYS);
    match out.registry {
        Some(r) if out.errors.is_empty() => Ok((r, out.warnings)),
        _ => Err(ConfigError { errors: out.errors }),
    }
}

/// What validating one registry text produced.
pub(crate) struct RegistryOutcome {
    /// `None` when the file could not be deserialized at all.
    pub(crate) registry: Option<Registry>,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// Every scenario id written in the file, valid or not (so references from the agent
    /// config to a scenario with a mistake do not raise a second, misleading error).
    pub(crate) scenario_ids: Vec<String>,
}

pub(crate) fn registry_from_str(
    path: &Path,
    text: &str,
    domestic: &[IpNet],
    today: Option<Date>,
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

/// Threads set by [`set_parse_threads`]; 0 = not set.
static PARSE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Set the number of threads the loaders use for large registries (the binaries pass the
/// `CROSSLINE_CONFIG_THREADS` setting here once, at start; 1 = serial, e.g. on a gateway whose
/// cores all capture). It changes only the speed of a load, never its result, so it is one
/// setting for the process (reloads included) rather than a parameter of every loader.
pub fn set_parse_threads(threads: usize) {
    PARSE_THREADS.store(threads, Ordering::Relaxed);
}

/// Threads used to deserialize and check a large registry: the number given to
/// [`set_parse_threads`], else the number of cores, at most 8.
pub fn parse_threads() -> usize {
    match PARSE_THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        n => n,
    }
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

/// What a scenario covers, order-insensitive: (enterprise index, sources, destinations,
/// services, circuits), each list sorted and deduplicated. Two scenarios with equal coverage
/// raise the duplicate warning.
type Coverage = (usize, Vec<IpNet>, Vec<Destination>, Vec<Service>, Vec<u16>);

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
    today: Option<Date>,
    warning_days: u32,
    threads: usize,
) -> Registry {
    let (enterprises, enterprise_index) = validate_enterprises(d, raw.enterprise);

    // Scenarios.
    let mut scenarios = Vec::with_capacity(raw.scenario.len());
    let mut scenario_lines: HashMap<String, usize> = HashMap::new();
    // (enterprise, sorted sources, sorted destinations, sorted services) -> (scenario id, line)
    let mut fingerprints: HashMap<Coverage, (String, usize)> = HashMap::new();
    // Per kept scenario: where its id is (chunk base, span), for warnings that name it.
    let mut spots: Vec<(usize, Range<usize>)> = Vec::with_capacity(raw.scenario.len());
    // Phase one: each scenario on its own, on several threads for large registries.
    let checked = check_all_scenarios(
        d,
        raw.scenario,
        &enterprise_index,
        &raw.broken_enterprises,
        domestic,
        threads,
    );
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
        let Some(mut scenario) = c.scenario else {
            continue;
        };
        if duplicate {
            continue;
        }
        if scenario.vlans.is_empty() {
            if let Some(e) = enterprises.get(scenario.enterprise_index) {
                scenario.vlans.clone_from(&e.vlans);
            }
        }
        // Duplicate-coverage warning, hashed (not quadratic).
        let key = coverage(&scenario);
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
        if let Some(today) = today {
            expiry_warning(d, &id_span, &scenario, today, warning_days);
        }
        spots.push((c.base, id_span));
        scenarios.push(scenario);
    }
    overlap_warnings(d, &enterprises, &scenarios, &spots);
    d.set_base(0);
    Registry {
        path: path.to_path_buf(),
        enterprises,
        scenarios,
    }
}

/// Enterprises: valid fields, unique ids. Returns them with an index id -> (position, line).
fn validate_enterprises(
    d: &mut Diagnostics,
    raw: Vec<crate::raw::RawEnterprise>,
) -> (Vec<Enterprise>, HashMap<String, (usize, usize)>) {
    let mut enterprises = Vec::with_capacity(raw.len());
    let mut enterprise_index: HashMap<String, (usize, usize)> = HashMap::new(); // id -> (index, line)
    for e in raw {
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
        let vlans = parse_vlans(d, "enterprise.vlans", e.vlans.as_ref());
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
            vlans,
        });
    }

    (enterprises, enterprise_index)
}

/// Phase one of [`validate_registry`]: each scenario on its own, on several threads for large
/// registries (the same result and errors as serial).
fn check_all_scenarios(
    d: &mut Diagnostics,
    mut raw: Vec<RawScenario>,
    enterprises: &HashMap<String, (usize, usize)>,
    broken_enterprises: &[String],
    domestic: &[IpNet],
    threads: usize,
) -> Vec<CheckedScenario> {
    if threads > 1 && raw.len() >= PARALLEL_MIN_SCENARIOS {
        let per = raw.len().div_ceil(threads);
        let mut parts = Vec::with_capacity(threads);
        while raw.len() > per {
            parts.push(raw.split_off(raw.len() - per));
        }
        parts.push(raw);
        parts.reverse();
        let (index, broken) = (enterprises, broken_enterprises);
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
        check_scenarios(d, raw, enterprises, broken_enterprises, domestic)
    }
}

/// What a scenario covers, order-insensitive (see [`Coverage`]).
fn coverage(scenario: &Scenario) -> Coverage {
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
    (
        scenario.enterprise_index,
        sources,
        destinations,
        services,
        scenario.vlans.clone(),
    )
}

/// Warn about a filing that has expired or expires within `warning_days` of `today`.
fn expiry_warning(
    d: &mut Diagnostics,
    id_span: &Range<usize>,
    scenario: &Scenario,
    today: Date,
    warning_days: u32,
) {
    let id = &scenario.id;
    let until = scenario.valid_until;
    let left = until.days_since_epoch() - today.days_since_epoch();
    if left < 0 {
        d.warn(
            id_span,
            format!(
                "scenario {id:?} expired on {until} (today is {today}); its traffic will be flagged filing_expired"
            ),
        );
    } else if left <= i64::from(warning_days) {
        d.warn(
            id_span,
            format!(
                "scenario {id:?} (filing {}) expires on {until}, in {left} days; renew it before then",
                scenario.filing_ref
            ),
        );
    }
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
    // Every problem is recorded in `d`; the scenario is kept when it recorded none.
    let errors_before = d.errors.len();
    let enterprise_index = enterprise_of(d, &s, enterprises, broken_enterprises);
    let basis = parse_basis(d, &s);
    check_text(d, "filing_ref", &s.filing_ref);
    check_text(d, "recipient.name", &s.recipient.name);
    if let Err(e) = check_country(s.recipient.country.get_ref()) {
        d.error(
            &span(&s.recipient.country),
            format!("recipient.country: {e}"),
        );
    }
    check_text(d, "activity", &s.activity);

    let data = data_categories(d, &s.data);

    // Validity.
    let valid_from = parse_date(d, "valid_from", &s.valid_from);
    let valid_until = parse_date(d, "valid_until", &s.valid_until);
    if let (Some(from), Some(until)) = (valid_from, valid_until) {
        if until < from {
            d.error(
                &span(&s.valid_until),
                format!("valid_until: {until} is before valid_from {from}, expected valid_until >= valid_from"),
            );
        }
    }

    let sources = scenario_sources(d, &s.sources, domestic);

    let destinations = scenario_destinations(d, &s.destinations, domestic);

    // Services.
    let mut services = Vec::with_capacity(s.services.len());
    for item in &s.services {
        match parse_service(item.get_ref()) {
            Ok(x) => services.push(x),
            Err(e) => {
                d.error(&span(item), format!("services: {e}"));
            }
        }
    }

    let window = s.window.as_ref().and_then(|w| parse_window(d, w));
    let mut bytes_per_day = None;
    if let Some(cap) = s.caps.as_ref().and_then(|c| c.bytes_per_day.as_ref()) {
        match byte_size(d, "caps.bytes_per_day", cap) {
            Some(0) => {
                d.error(&span(cap), "caps.bytes_per_day: 0 bytes, expected a positive cap (leave `caps` out for no cap)");
            }
            Some(n) => bytes_per_day = Some(n),
            None => {}
        }
    }
    let persons_per_year = s
        .persons_per_year
        .as_ref()
        .and_then(|p| int_in(d, "persons_per_year", p, 1, i64::MAX));
    let vlans = parse_vlans(d, "scenario.vlans", s.vlans.as_ref());

    if d.errors.len() != errors_before {
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
        vlans,
    })
}

/// `vlans = [100, 200]`: the VLAN ids of a circuit (1..=4094, IEEE 802.1Q; 0 and 4095 are
/// reserved), returned sorted and distinct. Absent = any circuit (empty); an empty list is an
/// error, so that "any circuit" is only ever written by leaving the key out.
fn parse_vlans(
    d: &mut Diagnostics,
    key: &str,
    raw: Option<&Spanned<Vec<Spanned<i64>>>>,
) -> Vec<u16> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.get_ref().is_empty() {
        d.error(
            &span(raw),
            format!("{key}: empty list, expected at least one VLAN id 1..=4094 such as [100] (leave `vlans` out for any circuit)"),
        );
        return Vec::new();
    }
    let mut vlans = Vec::with_capacity(raw.get_ref().len());
    for item in raw.get_ref() {
        let v = *item.get_ref();
        match u16::try_from(v) {
            Ok(id) if (1..=4094).contains(&id) => {
                if vlans.contains(&id) {
                    d.error(
                        &span(item),
                        format!("{key}: VLAN id {v} is listed twice, expected each id once"),
                    );
                }
                vlans.push(id);
            }
            _ => d.error(
                &span(item),
                format!("{key}: {v} is not a VLAN id, expected 1..=4094 (0 and 4095 are reserved)"),
            ),
        }
    }
    vlans.sort_unstable();
    vlans.dedup();
    vlans
}

/// The index of the scenario's enterprise; `None` (with an error unless the enterprise itself
/// is broken) when unknown.
fn enterprise_of(
    d: &mut Diagnostics,
    s: &RawScenario,
    enterprises: &HashMap<String, (usize, usize)>,
    broken_enterprises: &[String],
) -> Option<usize> {
    match enterprises.get(s.enterprise.get_ref()) {
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
    }
}

/// `data`: a non-empty list of distinct categories; `none` alone.
fn data_categories(d: &mut Diagnostics, raw: &Spanned<Vec<crate::raw::S>>) -> Vec<DataCategory> {
    let mut data = Vec::new();
    if raw.get_ref().is_empty() {
        d.error(
            &span(raw),
            "data: empty list, expected at least one of none, personal, sensitive_personal, important",
        );
    }
    for item in raw.get_ref() {
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
            continue;
        }
        data.push(c);
    }
    if data.len() > 1 && data.contains(&DataCategory::None) {
        d.error(
            &span(raw),
            "data: \"none\" is combined with other categories, expected either [\"none\"] or a list of personal, sensitive_personal, important",
        );
    }

    data
}

/// `sources`: a non-empty list of prefixes, each inside a domestic prefix (when given).
fn scenario_sources(
    d: &mut Diagnostics,
    sources_raw: &Spanned<Vec<crate::raw::S>>,
    domestic: &[IpNet],
) -> Vec<IpNet> {
    let sources = parse_nets(d, "sources", sources_raw);
    if sources_raw.get_ref().is_empty() {
        d.error(
            &span(sources_raw),
            "sources: empty list, expected at least one domestic prefix such as \"10.20.0.0/16\"",
        );
    }
    if !domestic.is_empty() {
        for (net, item) in sources.iter().zip(sources_raw.get_ref()) {
            if !domestic.iter().any(|dom| dom.covers(net)) {
                let list: Vec<String> = domestic.iter().map(ToString::to_string).collect();
                d.error(
                    &span(item),
                    format!(
                        "sources: {net} is not inside any domestic prefix, expected a prefix inside {}",
                        list.join(", ")
                    ),
                );
            }
        }
    }

    sources
}

/// `destinations`: a non-empty list of prefixes and host patterns; a prefix inside a domestic
/// prefix is a warning.
fn scenario_destinations(
    d: &mut Diagnostics,
    raw: &Spanned<Vec<crate::raw::S>>,
    domestic: &[IpNet],
) -> Vec<Destination> {
    let mut destinations = Vec::with_capacity(raw.get_ref().len());
    if raw.get_ref().is_empty() {
        d.error(
            &span(raw),
            "destinations: empty list, expected at least one prefix or host name",
        );
    }
    for item in raw.get_ref() {
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
            }
        }
    }

    destinations
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
        let parallel = registry_from_str(path, &text, &[], Some(today), 60);
        assert!(parallel.errors.is_empty(), "{:?}", parallel.errors);
        let mut d = Diagnostics::new(path, &text);
        let raw: RawRegistry = toml::from_str(&text).expect("valid");
        let serial = validate_registry(&mut d, path, raw, &[], Some(today), 60, 1);
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
            let reg = validate_registry(&mut d, path, raw, &[], Some(today), 60, threads);
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
        let out = registry_from_str(Path::new("big.toml"), &text, &[], Some(today), 60);
        let got: Vec<(usize, usize)> = out.errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(got, vec![(line_of(&text, late), 17)], "{:?}", out.errors);
        let mid = text.find("id = \"S-1500\"").expect("present");
        text.insert_str(mid, "colour = 1\n");
        let out = registry_from_str(Path::new("big.toml"), &text, &[], Some(today), 60);
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
