//! crossline's flow, alert and stats events measured against Suricata's own EVE schema
//! (`tests/data/suricata-eve-schema/schema.json`, Suricata's `etc/schema.json`).
//!
//! The real `crossline-agent analyze` runs over the captures kept in the repository
//! (`tests/corpus/`) and, when it is there, the full shared corpus (`../shared/corpus/real`;
//! its absence fails the test under `CI=true`). Two checks, both on every event:
//! - **the schema**: every flow, alert and stats event is validated with Python's
//!   `jsonschema` (`tests/data/eve-schema-check.py`) against the schema made strict
//!   (`additionalProperties: false` on every object crossline can write into), the only
//!   extension a top-level `crossline` object. Any failing path fails the test, an extra key
//!   included;
//! - **the meanings** the schema cannot check ([`semantics`]): `flow.reason` one of EVE's
//!   (`timeout`, `forced`, `shutdown`); `flow.state` one of EVE's, `established` on every
//!   two-way flow other than TCP (UDP, ICMP, ...) and `new` on a one-way one, `closed` once
//!   crossline saw FIN or RST; `flow.age` the whole seconds of `flow.end` minus those of
//!   `flow.start`; `timestamp`, `flow.start`, `flow.end` in EVE's time format (microseconds,
//!   `+0000`); no top-level key outside the schema's properties and `crossline`;
//!   `alert.severity` 1 to 4 and the EVE severity of `crossline.alert.severity`;
//!   `alert.signature_id` one per `crossline.alert.kind`, distinct between kinds.
//!
//! The figures (events checked and valid per type, what each meaning was checked on) are
//! printed. [`regressions_fail_the_checks`] shows that each check fails when its field
//! regresses.

use crossline_config::event::{parse_timestamp_micros, AlertKind, Severity};
use crossline_e2e::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// EVE fields that at least one event of the repository's captures carries, so that the
/// validation covers them (a field crossline stops writing fails the test here).
const COVERED: &[&str] = &[
    "timestamp",
    "event_type",
    "host",
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
    "flow.start",
    "flow.end",
    "flow.age",
    "flow.state",
    "flow.reason",
    "flow.alerted",
    "tls.sni",
    "tls.ja4",
    "quic.sni",
    "quic.ja4",
    "quic.version",
    "http.hostname",
    "http.http_method",
    "alert.action",
    "alert.gid",
    "alert.signature_id",
    "alert.rev",
    "alert.signature",
    "alert.category",
    "alert.severity",
    "stats.decoder.pkts",
    "stats.decoder.bytes",
    "stats.decoder.invalid",
    "stats.flow.total",
];

/// The event types validated.
const KINDS: [&str; 3] = ["flow", "alert", "stats"];

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
fn failing(fig: &Value) -> BTreeSet<String> {
    fig["failing"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// What the schema check found wrong: every failing path, and no event of a type checked.
fn schema_problems(fig: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for kind in KINDS {
        if count(&fig["events"], kind) == 0 {
            out.push(format!("no {kind} events checked"));
        }
    }
    for key in failing(fig) {
        out.push(format!(
            "{key}: {} events (first at {})",
            fig["failing"][&key], fig["example"][&key]
        ));
    }
    out
}

/// Fields of [`COVERED`] that no event carries.
fn uncovered(fig: &Value) -> Vec<String> {
    COVERED
        .iter()
        .filter(|f| count(&fig["present"], f) == 0)
        .map(|f| format!("no event carries {f}: the schema check does not cover it"))
        .collect()
}

/// The top-level property names of the schema.
fn schema_properties() -> BTreeSet<String> {
    let path = data("suricata-eve-schema/schema.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    v["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{}: no top-level properties", path.display()))
        .keys()
        .cloned()
        .collect()
}

/// A time as EVE writes it: parses, and ends in `.` six digits, a sign and four digits
/// (`2026-03-02T09:14:07.118042+0000`).
fn eve_time(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    n >= 12
        && b[n - 12] == b'.'
        && digits(n - 11..n - 5)
        && matches!(b[n - 5], b'+' | b'-')
        && digits(n - 4..n)
        && parse_timestamp_micros(s).is_some()
}

/// Whole seconds of an EVE time (the floor, as EVE truncates a time to the second).
fn whole_seconds(s: &str) -> Option<i64> {
    parse_timestamp_micros(s).map(|us| us.div_euclid(1_000_000))
}

/// The meanings checked over a set of events: per check, how many events it was checked on,
/// how many failed and the first failure.
#[derive(Default)]
struct Semantics {
    checked: BTreeMap<&'static str, u64>,
    failed: BTreeMap<&'static str, (u64, String)>,
    /// Signature ids seen per `crossline.alert.kind`.
    sids: BTreeMap<String, BTreeSet<i64>>,
}

impl Semantics {
    /// Count `check` on one event; record a failure (`what`, at `at`) unless `ok`.
    fn check(&mut self, check: &'static str, ok: bool, at: &str, what: impl FnOnce() -> String) {
        *self.checked.entry(check).or_default() += 1;
        if !ok {
            let e = self
                .failed
                .entry(check)
                .or_insert_with(|| (0, format!("{at}: {}", what())));
            e.0 += 1;
        }
    }

    /// The failures as lines (empty when every meaning holds).
    fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .failed
            .iter()
            .map(|(check, (n, first))| format!("{check}: {n} events, first {first}"))
            .collect();
        for (kind, sids) in &self.sids {
            if sids.len() != 1 {
                out.push(format!(
                    "alert.signature_id one per crossline.alert.kind: {kind} has {sids:?}"
                ));
            }
        }
        let mut owner: BTreeMap<i64, &str> = BTreeMap::new();
        for (kind, sids) in &self.sids {
            for sid in sids {
                if let Some(other) = owner.insert(*sid, kind) {
                    out.push(format!(
                        "alert.signature_id distinct per crossline.alert.kind: {sid} is both {other} and {kind}"
                    ));
                }
            }
        }
        out
    }

    fn report(&self, label: &str) {
        let checked: Vec<String> = self
            .checked
            .iter()
            .map(|(c, n)| {
                let bad = self.failed.get(c).map_or(0, |f| f.0);
                format!("  {c:<58} {n:>7} checked {bad:>5} failing")
            })
            .collect();
        eprintln!(
            "EVE meanings, {label} ({} alert kinds):\n{}",
            self.sids.len(),
            checked.join("\n")
        );
    }
}

/// Check the meanings the schema cannot over the events in `file`.
fn semantics(file: &Path, top: &BTreeSet<String>) -> Semantics {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let mut s = Semantics::default();
    // The flow key fields of each flow record and of each alert about a flow, by flow id.
    let mut flows: BTreeMap<u64, String> = BTreeMap::new();
    let mut alerts: Vec<(u64, String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", file.display(), i + 1);
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: not JSON ({e})"));
        let kind = v["event_type"].as_str().unwrap_or("");
        if !KINDS.contains(&kind) {
            continue;
        }
        for key in v.as_object().map(|o| o.keys()).into_iter().flatten() {
            s.check(
                "top-level keys: the schema's properties and crossline",
                key == "crossline" || top.contains(key),
                &at,
                || format!("key {key:?}"),
            );
        }
        let ts = v["timestamp"].as_str().unwrap_or("");
        s.check("timestamp in EVE's format", eve_time(ts), &at, || {
            format!("{ts:?}, expected e.g. 2026-03-02T09:14:07.118042+0000")
        });
        if let Some(f) = v.get("flow").filter(|f| f.is_object()) {
            flow_meanings(&mut s, &v, f, &at);
        }
        if kind == "alert" {
            alert_meanings(&mut s, &v, &at);
        }
        if let Some(id) = v["flow_id"].as_u64() {
            let key = flow_key_fields(&v);
            if kind == "flow" {
                flows.insert(id, key);
            } else if kind == "alert" {
                alerts.push((id, key, at));
            }
        }
    }
    for (id, key, at) in alerts {
        let flow = flows.get(&id);
        s.check(
            "alerts about a flow: community_id and flow key = the flow record's",
            flow == Some(&key),
            &at,
            || format!("flow_id {id}: alert {key}, flow record {flow:?}"),
        );
    }
    s
}

/// The fields an alert about a flow shares with the flow's record, as one string.
fn flow_key_fields(v: &Value) -> String {
    [
        "community_id",
        "proto",
        "src_ip",
        "src_port",
        "dest_ip",
        "dest_port",
        "icmp_type",
        "icmp_code",
        "vlan",
    ]
    .iter()
    .map(|k| format!("{k}={}", v[*k]))
    .collect::<Vec<_>>()
    .join(" ")
}

fn flow_meanings(s: &mut Semantics, v: &Value, f: &Value, at: &str) {
    let text = |k: &str| f[k].as_str().unwrap_or("").to_string();
    let (start, end) = (text("start"), text("end"));
    for (name, t) in [("flow.start", &start), ("flow.end", &end)] {
        let check = if name == "flow.start" {
            "flow.start in EVE's format"
        } else {
            "flow.end in EVE's format"
        };
        s.check(check, eve_time(t), at, || format!("{name} {t:?}"));
    }
    let reason = text("reason");
    s.check(
        "flow.reason one of timeout, forced, shutdown",
        matches!(reason.as_str(), "timeout" | "forced" | "shutdown"),
        at,
        || format!("flow.reason {reason:?}"),
    );
    let state = text("state");
    s.check(
        "flow.state one of new, established, closed",
        matches!(state.as_str(), "new" | "established" | "closed"),
        at,
        || format!("flow.state {state:?}"),
    );
    let two_way = f["pkts_toserver"].as_u64().unwrap_or(0) > 0
        && f["pkts_toclient"].as_u64().unwrap_or(0) > 0;
    let proto = v["proto"].as_str().unwrap_or("");
    if proto != "TCP" {
        let (check, want) = if two_way {
            (
                "flow.state established: two-way flows but TCP (UDP, ...)",
                "established",
            )
        } else {
            ("flow.state new: one-way flows but TCP (UDP, ...)", "new")
        };
        s.check(check, state == want, at, || {
            format!("{proto} flow.state {state:?}")
        });
    }
    let own = v["crossline"]["flow"]["reason"].as_str().unwrap_or("");
    if matches!(own, "fin" | "rst") {
        s.check(
            "flow.state closed: TCP flows ended by FIN or RST",
            state == "closed",
            at,
            || format!("crossline.flow.reason {own:?}, flow.state {state:?}"),
        );
    }
    let age = f["age"].as_i64();
    let want = whole_seconds(&end)
        .zip(whole_seconds(&start))
        .map(|(e, b)| e - b);
    s.check(
        "flow.age = whole seconds of end - whole seconds of start",
        age.is_some() && age == want,
        at,
        || format!("flow.age {age:?}, start {start:?}, end {end:?}: expected {want:?}"),
    );
}

fn alert_meanings(s: &mut Semantics, v: &Value, at: &str) {
    let sev = v["alert"]["severity"].as_i64();
    s.check(
        "alert.severity an integer 1..=4",
        sev.is_some_and(|n| (1..=4).contains(&n)),
        at,
        || format!("alert.severity {}", v["alert"]["severity"]),
    );
    let own = &v["crossline"]["alert"];
    let named: Option<Severity> = serde_json::from_value(own["severity"].clone()).ok();
    s.check(
        "alert.severity = Severity::eve of crossline.alert.severity",
        named.is_some_and(|n| sev == Some(i64::from(n.eve()))),
        at,
        || {
            format!(
                "alert.severity {}, crossline.alert.severity {}",
                v["alert"]["severity"], own["severity"]
            )
        },
    );
    let kind: Option<AlertKind> = serde_json::from_value(own["kind"].clone()).ok();
    let sid = v["alert"]["signature_id"].as_i64();
    s.check(
        "alert.signature_id = AlertKind::signature_id of crossline.alert.kind",
        kind.is_some_and(|k| sid == Some(i64::from(k.signature_id()))),
        at,
        || {
            format!(
                "alert.signature_id {}, crossline.alert.kind {}",
                v["alert"]["signature_id"], own["kind"]
            )
        },
    );
    if let (Some(k), Some(sid)) = (own["kind"].as_str(), sid) {
        s.sids.entry(k.to_string()).or_default().insert(sid);
    }
}

/// Print the schema figures.
fn report(label: &str, fig: &Value) {
    let (ev, ok) = (&fig["events"], &fig["valid"]);
    let per: Vec<String> = KINDS
        .iter()
        .map(|k| format!("{} {k} events ({} valid)", count(ev, k), count(ok, k)))
        .collect();
    eprintln!("EVE schema, {label}: {}", per.join(", "));
    for key in failing(fig) {
        let n = &fig["failing"][&key];
        eprintln!(
            "  failing {key:<40} {:>7} flows {:>7} alerts {:>7} stats",
            count(n, "flow"),
            count(n, "alert"),
            count(n, "stats")
        );
    }
}

/// Everything wrong with the events of `file` (`label` for the figures).
fn problems(label: &str, file: &Path, top: &BTreeSet<String>) -> (Value, Vec<String>) {
    let fig = check(&[file.to_path_buf()]);
    report(label, &fig);
    let meanings = semantics(file, top);
    meanings.report(label);
    let mut wrong = schema_problems(&fig);
    wrong.extend(meanings.problems());
    (fig, wrong)
}

#[test]
fn corpus_events_against_suricata_eve_schema() {
    let Some(agent) = agent() else { return };
    if !have_checker() {
        return;
    }
    let top = schema_properties();
    let tmp = TempDir::new("eve-schema");
    let repo = captures(&repo_root().join("tests/corpus"));
    let repo_events = analyze(&agent, tmp.path(), "repo", &repo);
    let label = format!("tests/corpus ({} captures)", repo.len());
    let (fig, mut wrong) = problems(&label, &repo_events, &top);
    wrong.extend(uncovered(&fig));
    if let Some(dir) = shared_corpus() {
        let all = captures(&dir);
        let events = analyze(&agent, tmp.path(), "shared", &all);
        let label = format!("../shared/corpus/real ({} captures)", all.len());
        wrong.extend(problems(&label, &events, &top).1);
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

/// Write `events` (JSON lines), each altered by `alter` (with its index), to `path`.
fn altered(events: &str, path: &Path, mut alter: impl FnMut(usize, &mut Value)) -> PathBuf {
    let mut out = String::new();
    for (i, line) in events.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut ev: Value = serde_json::from_str(line).expect("event line is JSON");
        alter(i, &mut ev);
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

/// The instrument itself: the repository corpus's events, valid as written (the corpus test
/// holds that), with fields regressed. Regressed types and an extra key are reported by the
/// schema check under exactly their paths; regressed meanings pass the schema (which is why
/// the semantic checks exist) and are each reported by their check. So the corpus test fails
/// when any of them happens.
#[test]
fn regressions_fail_the_checks() {
    let Some(agent) = agent() else { return };
    if !have_checker() {
        return;
    }
    let top = schema_properties();
    let tmp = TempDir::new("eve-schema-bad");
    let events = analyze(
        &agent,
        tmp.path(),
        "repo",
        &captures(&repo_root().join("tests/corpus")),
    );
    let text = std::fs::read_to_string(&events).expect("read events");

    // Types the schema checks, and a key beside EVE's.
    let types = altered(&text, &tmp.path().join("types.jsonl"), |_, ev| {
        set(ev, "proto", json!(6));
        set(ev, "vlan", json!(["100"]));
        set(ev, "icmp_type", json!("8"));
        set(ev, "community_id", json!(1));
        set(ev, "flow.pkts_toserver", json!("2"));
        set(ev, "stats.decoder.pkts", json!("7"));
        set(ev, "timestamp", json!("2026-03-02T09:14:07.118Z"));
        if let Some(m) = ev.as_object_mut() {
            m.insert("exporter".into(), json!("10.0.0.1"));
        }
    });
    let (fig, wrong) = problems("tests/corpus with regressed types", &types, &top);
    let want: BTreeSet<String> = [
        "community_id: type string",
        "exporter: extra key",
        "flow.pkts_toserver: type integer",
        "icmp_type: type integer",
        "proto: type string",
        "stats.decoder.pkts: type integer",
        "timestamp: pattern",
        "vlan[]: type number",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(failing(&fig), want, "failing schema paths");
    for check in [
        "top-level keys: the schema's properties and crossline",
        "timestamp in EVE's format",
    ] {
        assert!(
            wrong.iter().any(|w| w.starts_with(check)),
            "{check} regressed but the corpus check would not say so:\n{}",
            wrong.join("\n")
        );
    }

    // Meanings the schema cannot see: every one valid by the schema.
    let mut alerts = 0;
    let meanings = altered(&text, &tmp.path().join("meanings.jsonl"), |_, ev| {
        set(ev, "flow.reason", json!("fin"));
        set(ev, "flow.start", json!("2026-03-02T09:14:07.118Z"));
        if let Some(age) = ev["flow"]["age"].as_u64() {
            set(ev, "flow.age", json!(age + 1));
        }
        let two_way = ev["flow"]["pkts_toserver"].as_u64() > Some(0)
            && ev["flow"]["pkts_toclient"].as_u64() > Some(0);
        if two_way {
            set(ev, "flow.state", json!("new"));
        }
        if ev["event_type"] == "alert" {
            let sev = ev["alert"]["severity"].as_i64().unwrap_or(1);
            set(ev, "alert.severity", json!(sev % 4 + 1));
            match alerts {
                // Another kind with this alert's signature id.
                0 => set(ev, "crossline.alert.kind", json!("opaque_tunnel")),
                // Another signature id for the same kind.
                1 => set(ev, "alert.signature_id", json!(9_900_099)),
                // An alert whose Community ID is not its flow's.
                2 => set(ev, "community_id", json!("1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
                _ => {}
            }
            alerts += 1;
        }
    });
    let (fig, wrong) = problems("tests/corpus with regressed meanings", &meanings, &top);
    assert!(
        failing(&fig).is_empty(),
        "the schema checks these meanings after all: {:?}",
        failing(&fig)
    );
    assert!(alerts >= 3, "the repository corpus raised {alerts} alerts");
    for check in [
        "flow.start in EVE's format",
        "flow.reason one of timeout, forced, shutdown",
        "flow.state established: two-way flows but TCP (UDP, ...)",
        "flow.state closed: TCP flows ended by FIN or RST",
        "flow.age = whole seconds of end - whole seconds of start",
        "alert.severity = Severity::eve of crossline.alert.severity",
        "alert.signature_id = AlertKind::signature_id of crossline.alert.kind",
        "alert.signature_id one per crossline.alert.kind",
        "alert.signature_id distinct per crossline.alert.kind",
        "alerts about a flow: community_id and flow key = the flow record's",
    ] {
        assert!(
            wrong.iter().any(|w| w.starts_with(check)),
            "{check} regressed but the corpus check would not say so:\n{}",
            wrong.join("\n")
        );
    }
}
