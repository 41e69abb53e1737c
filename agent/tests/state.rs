//! The detector's cumulative state across restarts, through the real `crossline-agent` binary:
//! a capture analysed in two halves with one `--state` directory gives the same persons, cap,
//! surge and expiry alerts as one run over the whole; without `--state` the halves stay under
//! the thresholds (and warn of expiry twice). Corrupt, truncated, zero-length, future-version
//! and unwritable state: a warning, a counter, the file kept aside, a fresh start, exit 0.

mod common;

use common::scratch;
use crossline_agent::detect::state::{Restored, STATE_FILE};
use crossline_agent::detect::DetectShared;
use crossline_config::event::{AlertKind, Event, EventType};
use crossline_config::time::Date;
use crossline_testgen::{beijing_micros, http_post, pi_records, Generator, Label, TcpFlow};
use std::path::{Path, PathBuf};
use std::process::Command;

const REGISTRY: &str = r#"
[[enterprise]]
id = "acme"
name = "Acme Pharma"
uscc = "91110108MA01PH7K91"

[[scenario]]
id = "S-CAP"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-CAP"
recipient = { name = "Example CRO GmbH", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2026-12-31
sources = ["10.2.0.0/16"]
destinations = ["198.51.100.0/24"]
caps = { bytes_per_day = "20 KB" }

[[scenario]]
id = "S-SURGE"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-SURGE"
recipient = { name = "Example CRO GmbH", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2026-12-31
sources = ["10.3.0.0/16"]
destinations = ["198.51.100.0/24"]

[[scenario]]
id = "S-P"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-P"
recipient = { name = "Example CRO GmbH", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2026-05-29
sources = ["10.7.0.0/16"]
destinations = ["198.51.100.0/24"]
persons_per_year = 100
"#;

fn setup(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("registry.toml"), REGISTRY).expect("registry");
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        "gateway = \"gw-a\"\ndomestic = [\"10.0.0.0/8\"]\nregistry = \"registry.toml\"\n\
         [capture]\nworkers = 2\n[detect]\nsurge_floor_bytes = \"20 KB\"\n",
    )
    .expect("agent.toml");
    cfg
}

fn flow(g: &mut Generator, client: &str, t: i64, payload: Vec<u8>) {
    g.tcp(
        &TcpFlow::new(
            client.parse().expect("client"),
            "198.51.100.7:80".parse().expect("server"),
            t,
        )
        .send(payload)
        .reply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()),
        Label::new("state", None),
    );
}

const WEEK: i64 = 7 * 86_400 * 1_000_000;

/// Monday 2026-03-02 + `week` weeks, Beijing time.
fn at(week: i64, h: u32, m: u32) -> i64 {
    beijing_micros(2026, 3, 2, h, m, 0) + week * WEEK
}

/// First half: three weeks of surge baseline, then (week 3, 09:00) 15 person records (45
/// identifiers of a limit of 100) and 12 KB of a 20 KB cap. Second half (week 3 from 10:30): the
/// surge, 15 more records, 12 KB more.
fn halves() -> (Generator, Generator, Generator) {
    let mut first = Generator::new();
    let mut second = Generator::new();
    let mut whole = Generator::new();
    for g in [&mut first, &mut whole] {
        for w in 0..3 {
            flow(
                g,
                &format!("10.3.1.1:{}", 41000 + w),
                at(w, 10, 30),
                http_post(
                    "up.cro.example",
                    "/b",
                    &vec![b'x'; 12_000 + 500 * w as usize],
                ),
            );
        }
        flow(
            g,
            "10.7.1.1:42000",
            at(3, 9, 0),
            http_post("up.cro.example", "/p", &pi_records(15, 1)),
        );
        flow(
            g,
            "10.2.1.1:43000",
            at(3, 9, 5),
            http_post("up.cro.example", "/c", &vec![b'c'; 12_000]),
        );
    }
    for g in [&mut second, &mut whole] {
        flow(
            g,
            "10.3.1.1:41100",
            at(3, 10, 30),
            http_post("up.cro.example", "/b", &vec![b'x'; 60_000]),
        );
        flow(
            g,
            "10.7.1.1:42100",
            at(3, 11, 0),
            http_post("up.cro.example", "/p", &pi_records(15, 2)),
        );
        flow(
            g,
            "10.2.1.1:43100",
            at(3, 11, 5),
            http_post("up.cro.example", "/c", &vec![b'c'; 12_000]),
        );
    }
    (first, second, whole)
}

struct Run {
    events: Vec<Event>,
    stderr: String,
    code: Option<i32>,
}

fn analyze(dir: &Path, cfg: &Path, name: &str, g: &Generator, state: Option<&Path>) -> Run {
    let pcap = dir.join(format!("{name}.pcap"));
    g.write(&pcap).expect("write pcap");
    let out = dir.join(format!("{name}.jsonl"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossline-agent"));
    cmd.arg("analyze")
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(&out);
    if let Some(s) = state {
        cmd.arg("--state").arg(s);
    }
    let o = cmd.arg(&pcap).output().expect("run crossline-agent");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect();
    Run {
        events,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code(),
    }
}

/// (kind, scenario, enterprise, persons) of the cumulative alerts, sorted.
fn cumulative(runs: &[&Run]) -> Vec<(AlertKind, Option<String>, Option<String>)> {
    let mut v: Vec<_> = runs
        .iter()
        .flat_map(|r| r.events.iter())
        .filter(|e| e.event_type == EventType::Alert)
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| {
            matches!(
                a.kind,
                AlertKind::PersonsThreshold
                    | AlertKind::VolumeCapExceeded
                    | AlertKind::VolumeSurge
                    | AlertKind::FilingExpiring
            )
        })
        .map(|a| (a.kind, a.scenario.clone(), a.enterprise.clone()))
        .collect();
    v.sort();
    v
}

fn count(v: &[(AlertKind, Option<String>, Option<String>)], k: AlertKind) -> usize {
    v.iter().filter(|x| x.0 == k).count()
}

#[test]
fn halves_with_state_alert_like_one_run_and_without_stay_under() {
    let dir = scratch("state-halves");
    let cfg = setup(dir.path());
    let (first, second, whole) = halves();
    let one = analyze(dir.path(), &cfg, "whole", &whole, None);
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    let expected = cumulative(&[&one]);
    for k in [
        AlertKind::PersonsThreshold,
        AlertKind::VolumeCapExceeded,
        AlertKind::VolumeSurge,
    ] {
        assert_eq!(count(&expected, k), 1, "{k:?} in one run: {expected:?}");
    }
    assert!(
        count(&expected, AlertKind::FilingExpiring) >= 1,
        "{expected:?}"
    );

    // Two halves, one state directory.
    let state = dir.path().join("state");
    let a = analyze(dir.path(), &cfg, "first", &first, Some(&state));
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    assert!(a.stderr.contains("starting fresh"), "{}", a.stderr);
    assert!(state.join(STATE_FILE).is_file());
    let b = analyze(dir.path(), &cfg, "second", &second, Some(&state));
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    assert!(b.stderr.contains("state: restored"), "{}", b.stderr);
    assert_eq!(cumulative(&[&a, &b]), expected);
    let persons = b
        .events
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .find(|a| a.kind == AlertKind::PersonsThreshold)
        .expect("persons alert in the second half");
    let p = persons.persons.expect("persons");
    assert!((85..=95).contains(&p), "{p} persons (90 identifiers)");

    // The same halves without state: no persons, cap or surge alert, and expiry warned twice.
    let a = analyze(dir.path(), &cfg, "first-nostate", &first, None);
    let b = analyze(dir.path(), &cfg, "second-nostate", &second, None);
    let got = cumulative(&[&a, &b]);
    for k in [
        AlertKind::PersonsThreshold,
        AlertKind::VolumeCapExceeded,
        AlertKind::VolumeSurge,
    ] {
        assert_eq!(count(&got, k), 0, "{k:?} without state: {got:?}");
    }
    assert!(
        count(&got, AlertKind::FilingExpiring) > count(&expected, AlertKind::FilingExpiring),
        "{got:?}"
    );
}

fn good_state(dir: &Path, cfg: &Path) -> Vec<u8> {
    let (first, _, _) = halves();
    let state = dir.join("good");
    let r = analyze(dir, cfg, "good", &first, Some(&state));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    std::fs::read(state.join(STATE_FILE)).expect("state written")
}

#[test]
fn corrupt_state_warns_counts_keeps_a_copy_and_starts_fresh() {
    let dir = scratch("state-corrupt");
    let cfg = setup(dir.path());
    let good = good_state(dir.path(), &cfg);
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    let future = String::from_utf8(good.clone())
        .expect("utf8")
        .replacen(" 1 sha256:", " 9 sha256:", 1)
        .into_bytes();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", good[..good.len() * 2 / 3].to_vec(), "checksum"),
        ("flipped", flipped, "checksum"),
        ("empty", Vec::new(), "zero length"),
        ("future", future, "newer"),
    ];
    let (_, second, _) = halves();
    let loaded = crossline_config::load_agent_config(&cfg, Date::new(2026, 3, 1).expect("d"))
        .expect("config")
        .0;
    for (name, bytes, why) in cases {
        let state = dir.path().join(name);
        std::fs::create_dir_all(&state).expect("dir");
        std::fs::write(state.join(STATE_FILE), &bytes).expect("write");
        // Through the library: the counter and the copy.
        let shared = DetectShared::new(&loaded).expect("detect");
        match shared.restore_state(&state) {
            Restored::Discarded {
                reason,
                kept_aside: Some(p),
            } => {
                assert!(reason.contains(why), "{name}: {reason}");
                assert_eq!(std::fs::read(&p).expect("copy"), bytes, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(shared.state_errors(), (1, 0), "{name}");
        assert!(shared.persons().is_empty() && shared.scenario_usage().is_empty());
        // Through the binary: exit 0, a warning, a fresh start (the second half alone).
        std::fs::write(state.join(STATE_FILE), &bytes).expect("write");
        let r = analyze(dir.path(), &cfg, name, &second, Some(&state));
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("warning: state") && r.stderr.contains(why),
            "{name}: {}",
            r.stderr
        );
        let got = cumulative(&[&r]);
        assert_eq!(count(&got, AlertKind::PersonsThreshold), 0, "{name}");
        assert_eq!(count(&got, AlertKind::VolumeSurge), 0, "{name}");
        // The run wrote a good state again.
        let again = std::fs::read(state.join(STATE_FILE)).expect("rewritten");
        assert!(
            again.starts_with(b"crossline-agent-state 1 sha256:"),
            "{name}"
        );
    }
}

#[test]
fn unwritable_state_directory_warns_and_exits_zero() {
    let dir = scratch("state-unwritable");
    let cfg = setup(dir.path());
    // A path below a regular file can be neither read nor created, even by root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").expect("file");
    let state = blocker.join("state");
    let (first, _, _) = halves();
    let r = analyze(dir.path(), &cfg, "unwritable", &first, Some(&state));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: state") && r.stderr.contains("cannot read"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("cannot create state directory"),
        "{}",
        r.stderr
    );
    // The alerts of the run are all there.
    assert!(count(&cumulative(&[&r]), AlertKind::FilingExpiring) >= 1);
    let loaded = crossline_config::load_agent_config(&cfg, Date::new(2026, 3, 1).expect("d"))
        .expect("config")
        .0;
    let shared = DetectShared::new(&loaded).expect("detect");
    assert!(shared.save_state(&state).is_err());
    assert_eq!(shared.state_errors(), (0, 1));
}

#[test]
fn another_pi_key_drops_persons_but_keeps_the_rest() {
    let dir = scratch("state-key");
    let cfg = setup(dir.path());
    let (first, second, _) = halves();
    let state = dir.path().join("state");
    let a = analyze(dir.path(), &cfg, "first", &first, Some(&state));
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    std::fs::write(
        &cfg,
        text.replace(
            "[detect]\n",
            "[detect]\npi_key = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n",
        ),
    )
    .expect("cfg");
    let b = analyze(dir.path(), &cfg, "second", &second, Some(&state));
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    assert!(b.stderr.contains("another PI key"), "{}", b.stderr);
    let got = cumulative(&[&b]);
    assert_eq!(count(&got, AlertKind::PersonsThreshold), 0, "{got:?}");
    assert_eq!(count(&got, AlertKind::VolumeCapExceeded), 1, "{got:?}");
    assert_eq!(count(&got, AlertKind::VolumeSurge), 1, "{got:?}");
}

#[test]
fn sketches_carry_registers_bytes_and_key_fingerprint() {
    use crossline_agent::detect::Classifier;
    use crossline_agent::pipeline::{run_offline, OfflineOptions};
    use crossline_config::sketch::HyperLogLog;
    use std::sync::Arc;
    let dir = scratch("state-sketch");
    let cfg = setup(dir.path());
    let (_, _, whole) = halves();
    let pcap = dir.path().join("whole.pcap");
    whole.write(&pcap).expect("pcap");
    let loaded = crossline_config::load_agent_config(&cfg, Date::new(2026, 3, 1).expect("d"))
        .expect("config")
        .0;
    let shared = DetectShared::new(&loaded).expect("detect");
    let s2 = Arc::clone(&shared);
    let options = OfflineOptions {
        workers: Some(2),
        progress: false,
    };
    run_offline(&loaded, &[pcap], Vec::new(), &options, move |i| {
        Classifier::new(Arc::clone(&s2), i)
    })
    .expect("run");
    let events = shared.sketches("2026-03-23T04:00:00.000Z");
    assert_eq!(events.len(), 1, "one enterprise: {events:?}");
    let line = serde_json::to_string(&events[0]).expect("json");
    let back: Event = serde_json::from_str(&line).expect("parse back");
    assert_eq!(back, events[0]);
    assert_eq!(back.event_type, EventType::Sketch);
    assert_eq!(back.gateway, "gw-a");
    let s = back.sketch.expect("sketch");
    assert_eq!(s.enterprise, "acme");
    assert_eq!(s.uscc.as_deref(), Some("91110108MA01PH7K91"));
    // The first 8 bytes of SHA-256 of the (development) key, hex.
    assert_eq!(
        s.key_fingerprint,
        crossline_agent::detect::state::key_fingerprint(&loaded.detect.pi_key)
    );
    assert_eq!(s.key_fingerprint.len(), 16);
    assert_eq!(s.persons.len(), 1, "{:?}", s.persons);
    let p = &s.persons[0];
    assert_eq!(
        (p.year, p.category.as_str(), p.limit),
        (2026, "personal", Some(100))
    );
    let h = HyperLogLog::decode(&p.registers).expect("registers");
    assert_eq!(h.estimate(), p.estimate);
    assert!((85..=95).contains(&p.estimate), "{}", p.estimate);
    let cap = s
        .volumes
        .iter()
        .find(|v| v.scenario == "S-CAP")
        .expect("S-CAP bytes");
    assert_eq!((cap.day.as_str(), cap.cap), ("2026-03-23", Some(20_000)));
    assert!(cap.bytes > 24_000, "{}", cap.bytes);
}
