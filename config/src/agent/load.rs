//! Loading and validating `agent.toml` (and, through [`crate::registry::load`], the registry it
//! names). Every problem of both files is reported in one pass as `FILE:LINE:COLUMN: message`;
//! the result is the validated [`AgentConfig`], which cannot hold a bad state.

use crate::agent::{
    AgentConfig, CaptureConfig, DetectConfig, Exclude, FsyncPolicy, MetricsConfig, Signature,
    SignatureKind, UplinkConfig,
};
use crate::diag::{ConfigError, Diagnostic, Diagnostics};
use crate::fields::*;
use crate::holidays::HolidayYear;
use crate::parse::{
    decode_hex, parse_date_range, parse_duration, parse_host_pattern, parse_ip_net, parse_service,
    valid_gateway_id,
};
use crate::raw::{RawAgent, S, V};
use crate::registry::load::registry_from_str;
use crate::registry::{IpNet, Service};
use crate::time::Date;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Default of `state_interval`: how often `run` writes its state and sends sketches.
pub const DEFAULT_STATE_INTERVAL: Duration = Duration::from_secs(60);

/// The development key that [`DetectConfig::default`] uses; `check` warns when it is in use.
pub const DEVELOPMENT_PI_KEY: &[u8] = b"crossline-development-key-change-me";

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
    let reg_file = RegistryFile {
        path: &registry_path,
        domestic: &domestic,
        today,
        warning_days: detect.expiry_warning_days,
    };
    let registry = agent_registry(&mut d, &raw, &reg_file);
    pi_key_warnings(&mut d, &raw, &detect);
    d.sort();
    let mut errors = d.errors;
    errors.extend(registry.errors);
    let mut warnings = d.warnings;
    warnings.extend(registry.warnings);
    match registry.registry {
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

/// The registry an agent config names, and what validating it needs.
struct RegistryFile<'a> {
    path: &'a Path,
    domestic: &'a [IpNet],
    today: Date,
    warning_days: u32,
}

/// Read and validate the registry of an agent config (its errors and warnings name the
/// registry file), and check that the signatures' approved scenarios exist in it.
fn agent_registry(
    d: &mut Diagnostics,
    raw: &RawAgent,
    reg: &RegistryFile,
) -> crate::registry::load::RegistryOutcome {
    let mut registry_errors = Vec::new();
    let mut registry_warnings = Vec::new();
    let mut registry = None;
    let mut scenario_ids = Vec::new();
    match crate::read::read_config_text(reg.path) {
        Err(e) => d.error(
            &span(&raw.registry),
            format!(
                "registry: cannot read {}: {}, expected a registry file (relative paths are relative to this file's folder)",
                reg.path.display(),
                e.reason()
            ),
        ),
        Ok(reg_text) => {
            let out = registry_from_str(
                reg.path,
                &reg_text,
                reg.domestic,
                Some(reg.today),
                reg.warning_days,
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
                            reg.path.display()
                        ),
                    );
                }
            }
        }
    }
    crate::registry::load::RegistryOutcome {
        registry,
        errors: registry_errors,
        warnings: registry_warnings,
        scenario_ids,
    }
}

/// The development key, or a key shorter than 16 bytes, is a warning.
fn pi_key_warnings(d: &mut Diagnostics, raw: &RawAgent, detect: &DetectConfig) {
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
}

/// After `agent.toml` failed to deserialize as a whole, read each section (the top-level keys,
/// then every `[table]` / `[[array]]` header to the next) on its own, so that a mistake in one
/// section does not hide the others. Every section is parsed in a copy of the file where the
/// other sections are blanked out (newlines kept), so spans stay file positions. `None` when the
/// file has a syntax error (the caller reports the original error) or a required key is missing;
/// errors found are recorded in `d`.
fn deserialize_agent_sections(d: &mut Diagnostics, text: &str) -> Option<RawAgent> {
    let mut merged = crate::raw::RawAgentPart::default();
    for section in blanked_sections(text)? {
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
        // Reserved at start (about 74 bytes per entry, resident as answers fill it): 16 Mi
        // entries is about 1.2 GB.
        1 << 24,
        &mut out.dns_cache_entries,
    );
    if let Some(v) = &c.writer_nice {
        if let Some(n) = int_in(d, "capture.writer_nice", v, 0, 19) {
            out.writer_nice = n as u8;
        }
    }
    if let Some(f) = &c.filter {
        if check_text(d, "capture.filter", f) {
            out.filter = Some(f.get_ref().clone());
        }
    }
    out.user = c.user.as_ref().and_then(|u| capture_user(d, u));
    capture_timeouts(d, c, &mut out);
    if let Some(v) = &c.stop_drain {
        match crate::fields::duration(d, "capture.stop_drain", v) {
            Some(t) if t > Duration::from_secs(30) => d.error(
                &span(v),
                format!("capture.stop_drain: {t:?} is too long, expected at most 30s (a stop must end well within systemd's 60 s TimeoutStopSec)"),
            ),
            Some(t) => out.stop_drain = t,
            None => {}
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

/// `capture.user`: a user name (`[a-z_][a-z0-9_-]*`, at most 32 characters).
fn capture_user(d: &mut Diagnostics, u: &S) -> Option<String> {
    let v = u.get_ref();
    let first_ok = v.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '_');
    let rest_ok = v
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-');
    if first_ok && rest_ok && v.len() <= 32 {
        return Some(v.clone());
    }
    d.error(
        &span(u),
        format!("capture.user: {v:?} is not a user name, expected at most 32 of a-z 0-9 _ - starting with a letter or _ (such as \"crossline\")"),
    );
    None
}

/// The flow timeouts of `[capture]`: positive durations.
fn capture_timeouts(d: &mut Diagnostics, c: &crate::raw::RawCapture, out: &mut CaptureConfig) {
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
}

/// Default `uplink.batch_bytes`: 2 MiB, a quarter of the largest body a collector accepts.
pub const DEFAULT_BATCH_BYTES: usize = 2 << 20;

/// `uplink.collector`: one `https://HOST:PORT` URL or a non-empty list of distinct ones; each
/// bad one is reported at its own position.
fn collector_urls(
    d: &mut Diagnostics,
    raw: &Spanned<crate::raw::RawCollectors>,
) -> Option<Vec<String>> {
    use crate::raw::RawCollectors;
    let items: Vec<(String, std::ops::Range<usize>, String)> = match raw.get_ref() {
        RawCollectors::One(url) => vec![(url.clone(), span(raw), "uplink.collector".into())],
        RawCollectors::Many(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.get_ref().clone(),
                    span(s),
                    format!("uplink.collector[{i}]"),
                )
            })
            .collect(),
    };
    if items.is_empty() {
        d.error(
            &span(raw),
            "uplink.collector: empty list, expected at least one \"https://HOST:PORT\"".to_string(),
        );
        return None;
    }
    let mut ok = true;
    for (i, (url, at, key)) in items.iter().enumerate() {
        if collector_host(url).is_none() {
            d.error(
                at,
                format!(
                    "{key}: {url:?} is not a collector address, expected \"https://HOST:PORT\""
                ),
            );
            ok = false;
        } else if items[..i].iter().any(|(u, _, _)| u == url) {
            d.error(
                at,
                format!("{key}: {url:?} is listed twice, expected each collector once"),
            );
            ok = false;
        }
    }
    ok.then(|| items.into_iter().map(|(url, _, _)| url).collect())
}

/// The host of `https://HOST:PORT[/]`, or `None` when `url` is not of that form.
fn collector_host(url: &str) -> Option<String> {
    url.strip_prefix("https://")
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|rest| {
            let (host, port) = rest.rsplit_once(':')?;
            port.parse::<u16>().ok().filter(|p| *p > 0)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (!host.is_empty() && !host.contains('/')).then(|| host.to_string())
        })
}

fn uplink_config(
    d: &mut Diagnostics,
    path: &Path,
    u: &Spanned<crate::raw::RawUplink>,
) -> Option<UplinkConfig> {
    let raw = u.get_ref();
    // Every problem is recorded in `d`; the section is valid when it recorded none.
    let errors_before = d.errors.len();
    let collectors = collector_urls(d, &raw.collector);
    let server_name = raw.server_name.as_ref().map(|s| {
        check_id(d, "uplink.server_name", s);
        s.get_ref().clone()
    });
    let file = |d: &mut Diagnostics, key: &str, s: &S| -> PathBuf {
        check_text(d, key, s);
        resolve_path(path, s.get_ref())
    };
    let ca = file(d, "uplink.ca", &raw.ca);
    let cert = file(d, "uplink.cert", &raw.cert);
    let key = file(d, "uplink.key", &raw.key);
    let spool_dir = match &raw.spool_dir {
        Some(s) => file(d, "uplink.spool_dir", s),
        None => resolve_path(path, "spool"),
    };
    let (spool_max_bytes, spool_segment_bytes) = spool_sizes(d, raw);
    let fsync = fsync_policy(d, &raw.fsync);
    let batch_events = match &raw.batch_events {
        None => 500,
        Some(v) => int_in(d, "uplink.batch_events", v, 1, 100_000).map_or(500, |n| n as usize),
    };
    let batch_bytes = batch_bytes(d, &raw.batch_bytes);
    let batch_interval = positive_duration(
        d,
        "uplink.batch_interval",
        &raw.batch_interval,
        Duration::from_secs(1),
    );
    let backoff_min = positive_duration(
        d,
        "uplink.backoff_min",
        &raw.backoff_min,
        Duration::from_millis(500),
    );
    let backoff_max = positive_duration(
        d,
        "uplink.backoff_max",
        &raw.backoff_max,
        Duration::from_secs(60),
    );
    let drain_timeout = positive_duration(
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
    }
    (d.errors.len() == errors_before).then(|| UplinkConfig {
        collectors: collectors.unwrap_or_default(),
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

/// A positive byte size, or `default` when not given (or not valid: the error is recorded).
fn positive_size(d: &mut Diagnostics, key: &str, v: &Option<V>, default: u64) -> u64 {
    let Some(v) = v else {
        return default;
    };
    match byte_size(d, key, v) {
        Some(0) => {
            d.error(
                &span(v),
                format!("{key}: 0 bytes, expected a positive size"),
            );
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// A positive duration, or `default` when not given (or not valid: the error is recorded).
fn positive_duration(d: &mut Diagnostics, key: &str, v: &Option<V>, default: Duration) -> Duration {
    let Some(v) = v else {
        return default;
    };
    match duration(d, key, v) {
        Some(t) if !t.is_zero() => t,
        Some(_) => {
            d.error(
                &span(v),
                format!("{key}: zero duration, expected a positive duration"),
            );
            default
        }
        None => default,
    }
}

/// `uplink.spool_max_bytes` and `uplink.spool_segment_bytes` (a segment fits in the spool).
fn spool_sizes(d: &mut Diagnostics, raw: &crate::raw::RawUplink) -> (u64, u64) {
    let max = positive_size(d, "uplink.spool_max_bytes", &raw.spool_max_bytes, 1 << 30);
    let segment = positive_size(
        d,
        "uplink.spool_segment_bytes",
        &raw.spool_segment_bytes,
        16 << 20,
    );
    if segment > max {
        if let Some(v) = &raw.spool_segment_bytes {
            d.error(
                &span(v),
                format!("uplink.spool_segment_bytes: {segment} is larger than spool_max_bytes ({max}), expected a segment no larger than the spool"),
            );
        }
    }
    (max, segment)
}

/// `uplink.fsync`: `always` (default), `never` or an interval.
fn fsync_policy(d: &mut Diagnostics, v: &Option<S>) -> FsyncPolicy {
    let Some(f) = v else {
        return FsyncPolicy::Always;
    };
    match f.get_ref().as_str() {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        other => match parse_duration(other) {
            Ok(t) if !t.is_zero() => FsyncPolicy::Interval(t),
            _ => {
                d.error(
                    &span(f),
                    format!("uplink.fsync: {other:?} is not an fsync policy, expected \"always\", \"never\" or an interval such as \"1s\""),
                );
                FsyncPolicy::Always
            }
        },
    }
}

/// `uplink.batch_bytes`: 1 KiB up to the largest batch body a collector accepts.
fn batch_bytes(d: &mut Diagnostics, v: &Option<V>) -> usize {
    let Some(v) = v else {
        return DEFAULT_BATCH_BYTES;
    };
    match byte_size(d, "uplink.batch_bytes", v) {
        Some(n) if (1024..=crate::limits::MAX_BATCH_BODY as u64).contains(&n) => n as usize,
        Some(n) => {
            d.error(
                &span(v),
                format!(
                    "uplink.batch_bytes: {n} bytes, expected 1 KiB to {} bytes (8 MiB, the largest batch body a collector accepts)",
                    crate::limits::MAX_BATCH_BODY
                ),
            );
            DEFAULT_BATCH_BYTES
        }
        None => DEFAULT_BATCH_BYTES,
    }
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
