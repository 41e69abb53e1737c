//! crossline's flow and alert events measured against Suricata's own EVE schema
//! (`tests/data/suricata-eve-schema/schema.json`, Suricata's `etc/schema.json`).
//!
//! The real `crossline-agent analyze` runs over the captures kept in the repository
//! (`tests/corpus/`) and, when it is there, the full shared corpus (`../shared/corpus/real`;
//! its absence fails the test under `CI=true`). Every flow and alert event is validated with
//! Python's `jsonschema` (`tests/data/eve-schema-check.py`) against the schema made strict:
//! `additionalProperties: false` on every object crossline can write into, the only extension a
//! top-level `crossline` object.
//!
//! Not every event validates yet: crossline's own fields still sit beside EVE's instead of
//! under `crossline`, and a few shared names still have crossline's types. The test holds what
//! already holds and keeps it holding:
//! - every field of [`SHARED`] (the fields crossline already writes as EVE does) validates on
//!   every event carrying it, and each is carried by at least one event;
//! - every failing path is one of [`STILL_FAILING`], so a new failing path (a shared field
//!   written with another type, a new key beside EVE's) fails the test;
//! - on the full corpus, every entry of [`STILL_FAILING`] still fails somewhere: an entry that
//!   no longer fails must leave the list, so the list only shrinks.
//!
//! The full figures (events checked and valid, events failing per path) are printed.

use crossline_e2e::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Fields crossline writes with EVE's name, type and meaning: they must validate on every event
/// that carries them.
const SHARED: &[&str] = &[
    "event_type",
    "flow_id",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "proto",
    "community_id",
    "vlan",
    "icmp_type",
    "icmp_code",
    "response_icmp_type",
    "response_icmp_code",
    "app_proto",
    "flow.pkts_toserver",
    "flow.pkts_toclient",
    "flow.bytes_toserver",
    "flow.bytes_toclient",
    "flow.alerted",
    "tls.sni",
    "tls.ja4",
    "quic.sni",
    "quic.ja4",
    "http.hostname",
    "http.http_method",
];

/// Fields that validate by type today but whose meaning or format is still crossline's, not
/// EVE's (EVE: `direction` is to_server/to_client, `alert.rule` the rule text, `flow.reason`
/// never `fin`/`rst`, `flow.state` of a two-way UDP flow `established`, `flow.start`/`end` in
/// EVE's timestamp format). Printed, not asserted: the schema cannot tell.
const NAME_CLASHES: &[&str] = &[
    "direction",
    "alert.rule",
    "flow.reason",
    "flow.state",
    "flow.age",
    "flow.start",
    "flow.end",
];

/// The paths that fail today, as `PATH: WHAT` (WHAT: the schema keyword, `extra key` for a
/// key EVE does not have there). Moving crossline's fields under `crossline` and giving the
/// shared names EVE's types empties it.
const STILL_FAILING: &[&str] = &[
    "timestamp: pattern",
    "alert.severity: type integer",
    "quic.version: type string",
    "gateway: extra key",
    "export_bytes: extra key",
    "dns_name: extra key",
    "flow.midstream: extra key",
    "verdict.status: extra key",
    "verdict.scenario: extra key",
    "verdict.enterprise: extra key",
    "verdict.ech: extra key",
    "alert.kind: extra key",
    "alert.scenario: extra key",
    "alert.enterprise: extra key",
    "alert.summary: extra key",
    "alert.recipient: extra key",
    "alert.service: extra key",
    "alert.count: extra key",
    "alert.bytes: extra key",
    "alert.evidence: extra key",
    "alert.followup: extra key",
    "tls.alpn: extra key",
    "tls.ech: extra key",
    "quic.alpn: extra key",
    "quic.ech: extra key",
];

fn data(name: &str) -> PathBuf {
    repo_root().join("tests/data").join(name)
}

/// The agent binary, or skip (panic under CI) with the build hint.
fn agent() -> Option<PathBuf> {
    bin("crossline-agent")
        .map_err(|e| skip(&e.to_string()))
        .ok()
}

/// Python 3 with `jsonschema`, or skip (panic under CI).
fn have_checker() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || skip("python3 with the jsonschema module not found (scripts/ensure-deps.sh test installs python3-jsonschema)")
}

/// The captures (`.pcap`, `.pcapng`) directly in `dir`, sorted.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no captures in {}", dir.display());
    out
}

/// The full shared corpus, or `None` (skip message; panic under CI).
fn shared_corpus() -> Option<PathBuf> {
    let p = repo_root().join("../shared/corpus/real");
    if p.is_dir() {
        Some(p)
    } else {
        skip(&format!(
            "{} not found: only the repository's captures checked",
            p.display()
        ));
        None
    }
}

/// Run `analyze` over `pcaps` (private addresses domestic, the example registry, so exports
/// raise alerts); the events file written.
fn analyze(agent: &Path, dir: &Path, tag: &str, pcaps: &[PathBuf]) -> PathBuf {
    std::fs::copy(
        repo_root().join("examples/registry.toml"),
        dir.join("registry.toml"),
    )
    .expect("copy examples/registry.toml");
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        "gateway = \"gw-eve-01\"\n\
         domestic = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\", \"fc00::/7\"]\n\
         registry = \"registry.toml\"\n",
    )
    .expect("write agent.toml");
    let out = dir.join(format!("{tag}.jsonl"));
    let mut cmd = Command::new(agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(pcaps);
    let log = dir.join(format!("{tag}.log"));
    let mut run = Proc::spawn("agent", cmd, &log).expect("start crossline-agent");
    let status = run
        .wait(Duration::from_secs(120))
        .expect("analyze finishes");
    assert!(
        status.success(),
        "analyze of {tag} ({} captures) failed: {status}\n{}",
        pcaps.len(),
        tail(&run.output(), 30)
    );
    out
}

/// The checker's figures for `events` (JSON lines files).
fn check(events: &[PathBuf]) -> Value {
    let o = Command::new("python3")
        .arg(data("eve-schema-check.py"))
        .arg(data("suricata-eve-schema/schema.json"))
        .args(events)
        .output()
        .expect("run python3 tests/data/eve-schema-check.py");
    assert!(
        o.status.success(),
        "eve-schema-check.py failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "eve-schema-check.py wrote no JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn count(v: &Value, kind: &str) -> u64 {
    v.get(kind).and_then(Value::as_u64).unwrap_or(0)
}

/// The failing keys (`PATH: WHAT`) of the figures.
fn failing(fig: &Value) -> Vec<String> {
    fig["failing"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether failing key `key` lies at or under field `path`.
fn under(key: &str, path: &str) -> bool {
    let at = key.split(": ").next().unwrap_or(key);
    at == path
        || at
            .strip_prefix(path)
            .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
}

/// Everything wrong with the figures; `full`: the whole corpus ran (the list must be tight).
fn problems(fig: &Value, full: bool) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["flow", "alert"] {
        if count(&fig["events"], kind) == 0 {
            out.push(format!("no {kind} events checked"));
        }
    }
    let fails = failing(fig);
    for key in &fails {
        if let Some(field) = SHARED.iter().find(|s| under(key, s)) {
            out.push(format!(
                "shared field {field} no longer validates: {key} in {}",
                fig["failing"][key]
            ));
        } else if !STILL_FAILING.contains(&key.as_str()) {
            out.push(format!("new failing path {key} in {}", fig["failing"][key]));
        }
    }
    for field in SHARED {
        if count(&fig["present"], field) == 0 {
            out.push(format!("shared field {field} is carried by no event"));
        }
    }
    if full {
        for key in STILL_FAILING {
            if !fails.iter().any(|f| f == key) {
                out.push(format!(
                    "{key} validates now on the whole corpus: remove it from STILL_FAILING"
                ));
            }
        }
    }
    out
}

/// Print the figures as a table.
fn report(label: &str, fig: &Value) {
    let (ev, ok, typed) = (&fig["events"], &fig["valid"], &fig["typed"]);
    eprintln!(
        "EVE schema, {label}: {} flow events ({} valid, {} valid but for extra keys), \
         {} alert events ({} valid, {} valid but for extra keys)",
        count(ev, "flow"),
        count(ok, "flow"),
        count(typed, "flow"),
        count(ev, "alert"),
        count(ok, "alert"),
        count(typed, "alert")
    );
    eprintln!("  {:<40} {:>7} {:>7}", "failing path", "flows", "alerts");
    if let Some(m) = fig["failing"].as_object() {
        for (key, n) in m {
            eprintln!(
                "  {key:<40} {:>7} {:>7}",
                count(n, "flow"),
                count(n, "alert")
            );
        }
    }
    let shared: Vec<String> = SHARED
        .iter()
        .map(|f| format!("{f} {}", count(&fig["present"], f)))
        .collect();
    eprintln!(
        "  validating on every event (events carrying it): {}",
        shared.join(", ")
    );
    let clashes: Vec<String> = NAME_CLASHES
        .iter()
        .map(|f| format!("{f} {}", count(&fig["present"], f)))
        .collect();
    eprintln!(
        "  valid by type, meaning still crossline's: {}",
        clashes.join(", ")
    );
}

#[test]
fn corpus_events_against_suricata_eve_schema() {
    let Some(agent) = agent() else { return };
    if !have_checker() {
        return;
    }
    let tmp = TempDir::new("eve-schema");
    let repo = captures(&repo_root().join("tests/corpus"));
    let repo_events = analyze(&agent, tmp.path(), "repo", &repo);
    let fig = check(std::slice::from_ref(&repo_events));
    report(&format!("tests/corpus ({} captures)", repo.len()), &fig);
    let mut wrong = problems(&fig, false);
    if let Some(dir) = shared_corpus() {
        let all = captures(&dir);
        let events = analyze(&agent, tmp.path(), "shared", &all);
        let fig = check(&[events]);
        report(
            &format!("../shared/corpus/real ({} captures)", all.len()),
            &fig,
        );
        wrong.extend(problems(&fig, true));
    }
    assert!(wrong.is_empty(), "EVE conformance:\n{}", wrong.join("\n"));
}

/// Set `path` (dotted) of `ev` to `value` when the event has that field.
fn set(ev: &mut Value, path: &str, value: Value) {
    let mut at = ev;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        match at.get_mut(*p) {
            Some(v) => at = v,
            None => return,
        }
    }
    if let Some(slot) = at.get_mut(parts[parts.len() - 1]) {
        *slot = value;
    }
}

/// The instrument itself: the repository corpus's events with shared fields written with other
/// types, and a key beside EVE's, are reported by exactly those paths, while a `crossline`
/// object is accepted, so the corpus test fails when a shared field regresses.
#[test]
fn regressed_shared_fields_fail_the_check() {
    let Some(agent) = agent() else { return };
    if !have_checker() {
        return;
    }
    let tmp = TempDir::new("eve-schema-bad");
    let events = analyze(
        &agent,
        tmp.path(),
        "repo",
        &captures(&repo_root().join("tests/corpus")),
    );
    let text = std::fs::read_to_string(&events).expect("read events");
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut ev: Value = serde_json::from_str(line).expect("event line is JSON");
        set(&mut ev, "proto", json!(6));
        set(&mut ev, "vlan", json!(["100"]));
        set(&mut ev, "icmp_type", json!("8"));
        set(&mut ev, "community_id", json!(1));
        set(&mut ev, "flow.pkts_toserver", json!("2"));
        if let Some(m) = ev.as_object_mut() {
            m.insert(
                "crossline".into(),
                json!({"verdict": {"status": "unfiled"}}),
            );
            m.insert("exporter".into(), json!("10.0.0.1"));
        }
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, out).expect("write bad.jsonl");
    let fig = check(&[bad]);
    report("tests/corpus with regressed fields", &fig);
    let fails = failing(&fig);
    let new: Vec<&String> = fails
        .iter()
        .filter(|k| !STILL_FAILING.contains(&k.as_str()))
        .collect();
    let want = [
        "community_id: type string",
        "exporter: extra key",
        "flow.pkts_toserver: type integer",
        "icmp_type: type integer",
        "proto: type string",
        "vlan[]: type number",
    ];
    assert_eq!(new, want, "failing paths beyond STILL_FAILING");
    let wrong = problems(&fig, false);
    for field in [
        "proto",
        "vlan",
        "icmp_type",
        "community_id",
        "flow.pkts_toserver",
    ] {
        assert!(
            wrong
                .iter()
                .any(|w| w.starts_with(&format!("shared field {field} no longer validates"))),
            "{field} regressed but the corpus check would not say so: {wrong:?}"
        );
    }
    assert!(
        wrong
            .iter()
            .any(|w| w.starts_with("new failing path exporter")),
        "an extra key beside EVE's must fail the corpus check: {wrong:?}"
    );
}
