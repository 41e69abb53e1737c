//! `crossline-agent check --config FILE`: validate an agent config and its registry, print a
//! summary (stdout) or every error (stderr).

use crate::agent::AgentConfig;
use crate::holidays::WorkCalendar;
use crate::load::load_agent_config;
use crate::registry::{Basis, Exemption};
use crate::time::{shanghai, Date};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Today's Beijing calendar date from the system clock. For the binaries' `main` (which read
/// the clock once and pass the date in), tests and tools; library code never calls it.
pub fn today_beijing() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    shanghai(i64::try_from(secs).unwrap_or(i64::MAX)).date
}

/// Run the `check` command: returns the process exit code ([`crate::exit::OK`] valid,
/// [`crate::exit::CONFIG`] invalid).
pub fn check_command(path: &Path, today: Date) -> i32 {
    match load_agent_config(path, today) {
        Ok((config, warnings)) => {
            print!("{}", summary(&config, &warnings, today));
            i32::from(crate::exit::OK)
        }
        Err(e) => {
            for d in &e.errors {
                eprintln!("{d}");
            }
            let n = e.errors.len();
            eprintln!(
                "{n} error{} in {} (and the registry it names); nothing was started",
                if n == 1 { "" } else { "s" },
                path.display()
            );
            i32::from(crate::exit::CONFIG)
        }
    }
}

/// The text `check` prints for a valid configuration.
pub fn summary(config: &AgentConfig, warnings: &[crate::diag::Diagnostic], today: Date) -> String {
    let reg = &config.registry;
    let mut out = String::new();
    let domestic: Vec<String> = config.domestic.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "config OK: {}", config.path.display());
    let _ = writeln!(out, "gateway:      {}", config.gateway);
    let _ = writeln!(
        out,
        "domestic:     {} prefix{} ({})",
        domestic.len(),
        if domestic.len() == 1 { "" } else { "es" },
        domestic.join(", ")
    );
    let _ = writeln!(out, "registry:     {}", config.registry_path.display());
    let _ = writeln!(
        out,
        "enterprises:  {} ({} green channel, {} FTZ, {} CIIO)",
        reg.enterprises.len(),
        reg.enterprises.iter().filter(|e| e.green_channel).count(),
        reg.enterprises.iter().filter(|e| e.ftz).count(),
        reg.enterprises.iter().filter(|e| e.ciio).count(),
    );
    let green: Vec<&str> = reg
        .enterprises
        .iter()
        .filter(|e| e.green_channel)
        .map(|e| e.id.as_str())
        .collect();
    if !green.is_empty() {
        let _ = writeln!(out, "  green channel: {}", green.join(", "));
    }
    let ftz: Vec<&str> = reg
        .enterprises
        .iter()
        .filter(|e| e.ftz)
        .map(|e| e.id.as_str())
        .collect();
    if !ftz.is_empty() {
        let _ = writeln!(out, "  FTZ:           {}", ftz.join(", "));
    }
    let _ = writeln!(out, "scenarios:    {}", reg.scenarios.len());
    let mut by_basis: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_article: BTreeMap<Exemption, usize> = BTreeMap::new();
    for s in &reg.scenarios {
        *by_basis.entry(s.basis.as_str()).or_default() += 1;
        if let Basis::Exemption(a) = s.basis {
            *by_article.entry(a).or_default() += 1;
        }
    }
    for (basis, n) in &by_basis {
        if *basis == "exemption" {
            let articles: Vec<String> = by_article
                .iter()
                .map(|(a, n)| format!("{} {n}", a.as_str()))
                .collect();
            let _ = writeln!(out, "  {basis:<20} {n:>5}  ({})", articles.join(", "));
        } else {
            let _ = writeln!(out, "  {basis:<20} {n:>5}");
        }
    }
    circuit_lines(&mut out, reg);
    expiry_lines(&mut out, config, today);
    runtime_lines(&mut out, config, warnings);
    out
}

/// Circuits: which enterprises and scenarios are tied to VLANs, and which VLANs.
fn circuit_lines(out: &mut String, reg: &crate::registry::Registry) {
    let mut vlans: Vec<u16> = reg
        .scenarios
        .iter()
        .flat_map(|s| s.vlans.iter().copied())
        .chain(reg.enterprises.iter().flat_map(|e| e.vlans.iter().copied()))
        .collect();
    vlans.sort_unstable();
    vlans.dedup();
    if vlans.is_empty() {
        let _ = writeln!(out, "circuits:     none (every scenario on any circuit)");
        return;
    }
    let listed: Vec<String> = vlans.iter().map(u16::to_string).collect();
    let _ = writeln!(
        out,
        "circuits:     VLAN {} ({} of {} enterprises, {} of {} scenarios tied to circuits)",
        listed.join(", "),
        reg.enterprises
            .iter()
            .filter(|e| !e.vlans.is_empty())
            .count(),
        reg.enterprises.len(),
        reg.scenarios.iter().filter(|s| !s.vlans.is_empty()).count(),
        reg.scenarios.len(),
    );
}

/// Filings expiring within the warning horizon (in working days), filings not yet valid, and
/// the holiday schedules known.
fn expiry_lines(out: &mut String, config: &AgentConfig, today: Date) {
    let reg = &config.registry;
    // Expiry in working days (CAC Order 16 art. 9), calendar days beyond the known years.
    let calendar = WorkCalendar::new(&config.detect.holidays);
    let horizon = i64::from(config.detect.expiry_warning_days);
    let left_of = |s: &crate::registry::Scenario| {
        calendar
            .working_days_after(today, s.valid_until)
            .map_or_else(
                || {
                    (
                        s.valid_until.days_since_epoch() - today.days_since_epoch(),
                        false,
                    )
                },
                |n| (n, true),
            )
    };
    let mut expiring: Vec<_> = reg
        .scenarios
        .iter()
        .filter(|s| s.valid_until >= today && left_of(s).0 <= horizon)
        .collect();
    expiring.sort_by_key(|s| (s.valid_until, s.id.clone()));
    let expired = reg
        .scenarios
        .iter()
        .filter(|s| s.valid_until < today)
        .count();
    let _ = writeln!(
        out,
        "expiring within {horizon} working days of {today}: {}{}",
        expiring.len(),
        if expired > 0 {
            format!(" (and {expired} already expired)")
        } else {
            String::new()
        }
    );
    for s in expiring {
        let (left, working) = left_of(s);
        let unit = if working {
            "working days left".to_string()
        } else {
            format!(
                "calendar days left: no holiday schedule for {}",
                s.valid_until.year
            )
        };
        let _ = writeln!(
            out,
            "  {} ({}, {}) valid until {} ({left} {unit})",
            s.id, s.enterprise, s.filing_ref, s.valid_until
        );
    }
    let mut later: Vec<_> = reg
        .scenarios
        .iter()
        .filter(|s| s.valid_from > today)
        .collect();
    later.sort_by_key(|s| (s.valid_from, s.id.clone()));
    if !later.is_empty() {
        let _ = writeln!(
            out,
            "not yet valid on {today}: {} (traffic before valid_from is flagged filing_not_yet_valid)",
            later.len()
        );
        for s in later {
            let _ = writeln!(
                out,
                "  {} ({}, {}) valid from {}",
                s.id, s.enterprise, s.filing_ref, s.valid_from
            );
        }
    }
    let years: Vec<String> = calendar.years().iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "working days: holiday schedules for {}",
        if years.is_empty() {
            "no year".to_string()
        } else {
            years.join(", ")
        }
    );
    if !calendar.covers(today.year) || !calendar.covers(today.year + 1) {
        let missing: Vec<String> = [today.year, today.year + 1]
            .iter()
            .filter(|y| !calendar.covers(**y))
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "  no schedule for {}: expiry warnings count calendar days there; add [[holidays]] when it is published",
            missing.join(", ")
        );
    }
}

/// Exclusions, capture, metrics, uplink, signatures and the warnings.
fn runtime_lines(out: &mut String, config: &AgentConfig, warnings: &[crate::diag::Diagnostic]) {
    let ex = &config.detect.exclude;
    if ex.is_empty() {
        let _ = writeln!(out, "exclude:      none");
    } else {
        let names: Vec<&str> = ex.iter().map(|e| e.name.as_str()).collect();
        let _ = writeln!(
            out,
            "exclude:      {} entr{} ({})",
            ex.len(),
            if ex.len() == 1 { "y" } else { "ies" },
            names.join(", ")
        );
    }
    let c = &config.capture;
    let _ = writeln!(
        out,
        "interfaces:   {}",
        if c.interfaces.is_empty() {
            "none (analyze only)".to_string()
        } else {
            c.interfaces.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "filter:       {}",
        c.filter
            .as_deref()
            .map_or("none".to_string(), |f| format!("{f:?}"))
    );
    let _ = writeln!(out, "workers:      {}", c.workers);
    let _ = writeln!(
        out,
        "metrics:      {}",
        config
            .metrics
            .listen
            .map_or("none".to_string(), |a| format!("http://{a}/metrics"))
    );
    let _ = writeln!(
        out,
        "uplink:       {}",
        config
            .uplink
            .as_ref()
            .map_or("none (events stay local)".to_string(), |u| format!(
                "{} (spool {}, certificate {})",
                u.collectors.join(", "),
                u.spool_dir.display(),
                u.cert.display()
            ))
    );
    let _ = writeln!(out, "signatures:   {}", config.detect.signatures.len());
    if warnings.is_empty() {
        let _ = writeln!(out, "warnings:     none");
    } else {
        let _ = writeln!(out, "warnings:     {}", warnings.len());
        for w in warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
}
