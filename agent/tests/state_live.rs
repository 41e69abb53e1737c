//! `crossline-agent run` keeps its cumulative state across restarts: a network namespace with a
//! veth pair, the first half of the traffic replayed (`tcpreplay`), the agent stopped (SIGTERM,
//! or SIGKILL after one `state_interval`) and restarted on the same `state_dir`, the second half
//! replayed: the persons threshold and the daily cap are passed, as in one run. Without the
//! state, the second half alone stays under both.
//!
//! Needs root, `ip` and `tcpreplay`; otherwise it panics when `CI=true` and prints SKIPPED
//! elsewhere. The namespace (and with it the veth pair) is removed even when the test fails.

use crossline_config::event::{AlertKind, Event, EventType};
use crossline_testgen::{http_post, pi_records, Generator, Label, TcpFlow};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;
use common::netns::{can_replay, setup, LiveAgent};

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
valid_until = 2030-12-31
sources = ["10.2.0.0/16"]
destinations = ["198.51.100.0/24"]
caps = { bytes_per_day = "20 KB" }

[[scenario]]
id = "S-P"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-P"
recipient = { name = "Example CRO GmbH", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2030-12-31
sources = ["10.7.0.0/16"]
destinations = ["198.51.100.0/24"]
persons_per_year = 100
"#;

/// Half `n` (0 or 1): 15 person records (45 identifiers of a limit of 100) and 12 KB of a
/// 20 KB cap.
fn half(n: u16) -> Generator {
    let mut g = Generator::new();
    let t0 = 1_780_000_000_000_000i64;
    for (i, (client, payload)) in [
        (
            format!("10.7.1.1:{}", 42000 + n),
            http_post("up.cro.example", "/p", &pi_records(15, u32::from(n) + 1)),
        ),
        (
            format!("10.2.1.1:{}", 43000 + n),
            http_post("up.cro.example", "/c", &vec![b'c'; 12_000]),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        g.tcp(
            &TcpFlow::new(
                client.parse().expect("client"),
                "198.51.100.7:80".parse().expect("server"),
                t0 + i as i64 * 1000,
            )
            .send(payload)
            .reply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()),
            Label::new("live state", None),
        );
    }
    g
}

fn start(cfg: &Path, out: &Path) -> LiveAgent {
    LiveAgent::start(cfg, out)
}

fn stop(a: LiveAgent, signal: &str) -> Vec<String> {
    a.signal(signal);
    let (status, log) = a.wait();
    if signal == "-TERM" {
        assert!(status.success(), "exit {status}: {log:?}");
    }
    log
}

fn replay(ns: &str, peer: &str, pcap: &Path) {
    let r = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "tcpreplay",
            "-q",
            "--pps=200",
            "-i",
            peer,
        ])
        .arg(pcap)
        .output()
        .expect("tcpreplay runs");
    assert!(
        r.status.success(),
        "tcpreplay failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}

fn kinds(out: &Path) -> Vec<AlertKind> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .filter(|e| e.event_type == EventType::Alert)
        .filter_map(|e| e.alert.map(|a| a.kind))
        .filter(|k| {
            matches!(
                k,
                AlertKind::PersonsThreshold | AlertKind::VolumeCapExceeded
            )
        })
        .collect()
}

#[test]
fn run_restarted_after_sigterm_or_sigkill_keeps_persons_and_caps() {
    if !can_replay("live state test") {
        return;
    }
    let id = std::process::id() % 100_000;
    let (ns, host, peer) = (format!("csns{id}"), format!("csh{id}"), format!("csp{id}"));
    let _guard = setup(&ns, &host, &peer, 1500);
    let dir = common::scratch("state-live");
    std::fs::write(dir.join("registry.toml"), REGISTRY).expect("registry");
    let first = dir.join("first.pcap");
    let second = dir.join("second.pcap");
    half(0).write(&first).expect("pcap");
    half(1).write(&second).expect("pcap");
    let config = |name: &str| {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "gateway = \"gw-live\"\ndomestic = [\"10.0.0.0/8\"]\nregistry = \"registry.toml\"\n\
                 state_dir = \"state-{name}\"\nstate_interval = \"1s\"\n\
                 [capture]\ninterfaces = [\"{host}\"]\nworkers = 1\ntcp_closed_timeout = \"1s\"\n"
            ),
        )
        .expect("config");
        p
    };

    // SIGTERM between the halves: the state is written at shutdown.
    let cfg = config("term");
    let a = start(&cfg, &dir.join("term-1.jsonl"));
    replay(&ns, &peer, &first);
    std::thread::sleep(Duration::from_millis(3000));
    let log = stop(a, "-TERM");
    assert!(log.iter().any(|l| l.contains("state: wrote")), "{log:?}");
    assert!(kinds(&dir.join("term-1.jsonl")).is_empty());
    let a = start(&cfg, &dir.join("term-2.jsonl"));
    replay(&ns, &peer, &second);
    std::thread::sleep(Duration::from_millis(3000));
    let log = stop(a, "-TERM");
    let mut k = kinds(&dir.join("term-2.jsonl"));
    k.sort();
    assert_eq!(
        k,
        vec![AlertKind::VolumeCapExceeded, AlertKind::PersonsThreshold],
        "{log:?}"
    );

    // SIGKILL after more than one state_interval: at most the last interval is lost.
    let cfg = config("kill");
    let a = start(&cfg, &dir.join("kill-1.jsonl"));
    replay(&ns, &peer, &first);
    std::thread::sleep(Duration::from_millis(3500));
    stop(a, "-KILL");
    assert!(dir.join("state-kill/detect.state").is_file());
    let a = start(&cfg, &dir.join("kill-2.jsonl"));
    replay(&ns, &peer, &second);
    std::thread::sleep(Duration::from_millis(3000));
    let log = stop(a, "-TERM");
    let mut k = kinds(&dir.join("kill-2.jsonl"));
    k.sort();
    assert_eq!(
        k,
        vec![AlertKind::VolumeCapExceeded, AlertKind::PersonsThreshold],
        "{log:?}"
    );

    // The second half alone (fresh state): under both.
    let cfg = config("fresh");
    let a = start(&cfg, &dir.join("fresh.jsonl"));
    replay(&ns, &peer, &second);
    std::thread::sleep(Duration::from_millis(3000));
    stop(a, "-TERM");
    assert!(kinds(&dir.join("fresh.jsonl")).is_empty());
}
