//! What an operator sees when the uplink does not get everything through: `analyze` waits a
//! bounded time for the collector, then exits 3 saying how many events stayed spooled; a
//! refusal is an error with the collector's reason, never "acknowledged".

use crossline_e2e::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Exit status of `analyze` when events did not all reach the collector.
const UPLINK_INCOMPLETE: i32 = 3;

/// Run `analyze` on the demo capture; returns (exit status, log, events written, elapsed).
fn analyze(
    agent: &std::path::Path,
    dir: &std::path::Path,
    cfg: &std::path::Path,
    pcap: &std::path::Path,
    drain: &str,
    extra: &[&str],
) -> (std::process::ExitStatus, String, usize, Duration) {
    let events = dir.join("events.jsonl");
    let mut cmd = Command::new(agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(&events)
        .args(["--drain-timeout", drain])
        .args(extra)
        .arg(pcap);
    let started = Instant::now();
    let mut run = Proc::spawn("agent", cmd, &dir.join("agent.log")).expect("agent");
    let status = run.wait(Duration::from_secs(60)).expect("agent exit");
    let elapsed = started.elapsed();
    let written = std::fs::read_to_string(&events)
        .expect("events written")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    (status, run.output(), written, elapsed)
}

/// The number in "uplink: N events (B batches) not acknowledged".
/// `sketch` events in the spool under `dir` (they go to the uplink only, not to `--out`).
fn sketches_spooled(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let needle = br#""event_type":"sketch""#;
                n += bytes.windows(needle.len()).filter(|w| w == needle).count();
            }
        }
    }
    n
}

fn spooled_events(log: &str) -> Option<usize> {
    let rest = log.split("uplink: ").find_map(|s| {
        let (n, tail) = s.split_once(" events (")?;
        tail.contains("not acknowledged").then_some(n)
    })?;
    rest.trim().parse().ok()
}

#[test]
fn unreachable_collector_bounded_wait_and_exit_status() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(demo) = demo_pcap() else { return };
    let tmp = TempDir::new("ops-down");
    let dir = tmp.path();
    let pki = Pki::create(&collector, &dir.join("pki"), &["gw-bj-01"]).expect("pki");
    // A port with nothing listening.
    let ingest: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let cfg = write_agent_config(dir, "gw-bj-01", ingest, &pki.dir, "", "").expect("config");
    let (status, log, written, elapsed) =
        analyze(&agent, dir, &cfg, &demo, "2s", &["--log-format", "json"]);
    assert_eq!(status.code(), Some(UPLINK_INCOMPLETE), "{log}");
    // The capture is small: the run is the drain timeout plus a few seconds, not forever.
    assert!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}:\n{log}"
    );
    // JSON logs: every uplink line is an object with a timestamp, a level and its subsystem.
    let json: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let uplink: Vec<&serde_json::Value> = json
        .iter()
        .filter(|v| {
            v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("crossline_agent::uplink"))
        })
        .collect();
    assert!(
        uplink.iter().all(|v| v["timestamp"].is_string()
            && v["level"].is_string()
            && v["message"].is_string()),
        "{log}"
    );
    // The outage is logged once (with its reason and the backoff), not once per attempt.
    let failing: Vec<_> = uplink
        .iter()
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("backing off"))
        })
        .collect();
    assert_eq!(failing.len(), 1, "{log}");
    assert_eq!(failing[0]["level"], "WARN", "{log}");
    assert!(
        failing[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Connection refused")),
        "{log}"
    );
    let spooled = spooled_events(&log).unwrap_or_else(|| panic!("no spooled count:\n{log}"));
    assert!(written > 0, "no events written");
    // Every event written (flows, alerts, stats) went to the spool and stayed there, with the
    // enterprises' sketches, which go to the uplink only.
    let sketches = sketches_spooled(&dir.join("spool"));
    assert!(sketches > 0, "no sketch in the spool");
    assert_eq!(
        spooled,
        written + sketches,
        "spooled count vs events written and sketches:\n{log}"
    );
    assert!(
        log.contains("connect"),
        "the reason (connect error) is missing:\n{log}"
    );
    assert!(
        log.contains("stay in the spool") && log.contains("spool"),
        "{log}"
    );
    eprintln!(
        "unreachable collector: exit {:?} after {elapsed:?} (drain timeout 2s), {spooled} events spooled",
        status.code()
    );
}

#[test]
fn forbidden_batches_are_an_error_with_the_collectors_reason() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(demo) = demo_pcap() else { return };
    let tmp = TempDir::new("ops-403");
    let dir = tmp.path();
    // The collector lists gw-bj-01 only; the agent has a valid certificate for gw-sh-02.
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let pki = setup.dir.join("pki");
    run_ok(
        Command::new(&collector)
            .arg("pki")
            .arg("issue")
            .arg(&pki)
            .args(["--gateway", "gw-sh-02"]),
    )
    .expect("issue gw-sh-02");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let cfg =
        write_agent_config(&agent_dir, "gw-sh-02", setup.ingest, &pki, "", "").expect("config");
    let (status, log, written, _) = analyze(&agent, &agent_dir, &cfg, &demo, "3s", &[]);
    assert_eq!(status.code(), Some(UPLINK_INCOMPLETE), "{log}");
    assert!(log.contains("403"), "no status in the log:\n{log}");
    assert!(
        log.contains("names no gateway listed in the collector config"),
        "the collector's reason is missing:\n{log}"
    );
    assert!(log.contains("refused"), "{log}");
    let sketches = sketches_spooled(&agent_dir.join("spool"));
    assert_eq!(spooled_events(&log), Some(written + sketches), "{log}");
    assert!(
        !log.contains("batches acknowledged (") || log.contains("0 batches acknowledged ("),
        "a refused batch was counted as acknowledged:\n{log}"
    );
    assert!(log.contains("connected to collector"), "{log}");
    assert!(col.alerts().expect("alerts").is_empty(), "nothing stored");
    // The collector logs each refused batch with the gateway and the reason.
    let col_log = col.proc.output();
    assert!(
        col_log.lines().any(|l| l.contains("WARN")
            && l.contains("refused batch 1 from gateway gw-sh-02")
            && l.contains("unknown_gateway")),
        "{col_log}"
    );
}
