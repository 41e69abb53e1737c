//! Packet -> webhook latency on a live line: `crossline-agent run` captures on the host end of a
//! veth pair, `tcpreplay` sends one unfiled export at a time from a network namespace, and the
//! time from sending each flow to Alertmanager's webhook delivery of its incident is measured,
//! with the agent's default timeouts. One more flow stays open for 60 s after its first export
//! (its last segment and FIN come 60 s later): its alert must arrive long before it ends, and
//! its flow record, at the end, carries the totals without raising the alert a second time.
//!
//! Needs root, `ip`, `tcpreplay` and Alertmanager; otherwise SKIPPED (a panic under `CI=true`).

use crossline_e2e::*;
use crossline_testgen::{frame, Generator, Label, TcpFlow, L4};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const FLOWS: u8 = 20;
/// The long flow stays open this long after its first export.
const LONG_OPEN: Duration = Duration::from_secs(60);
/// The long flow's recipient.
const LONG_RECIPIENT: &str = "203.0.113.200";

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes the namespace and the host veth on drop.
struct Netns {
    ns: String,
    host: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "link", "del", &self.host]);
        sh(&["ip", "netns", "del", &self.ns]);
    }
}

fn netns(tag: &str) -> Option<(Netns, String)> {
    let ns = format!("clx-{tag}");
    let host = format!("clxh{tag}");
    let peer = format!("clxp{tag}");
    let guard = Netns {
        ns: ns.clone(),
        host: host.clone(),
    };
    for cmd in [
        vec!["ip", "netns", "add", &ns],
        vec![
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ],
        vec!["ip", "link", "set", &peer, "netns", &ns],
        vec!["ip", "link", "set", &host, "up"],
        vec!["ip", "netns", "exec", &ns, "ip", "link", "set", &peer, "up"],
    ] {
        if !sh(&cmd) {
            skip(&format!("network namespace setup failed: {cmd:?}"));
            return None;
        }
    }
    sh(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{host}.disable_ipv6=1"),
    ]);
    Some((guard, peer))
}

/// Kills a background child (the long flow's tcpreplay) on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An unfiled export whose first 3,000 bytes go at once and whose last segment and FIN follow
/// `LONG_OPEN` later. Returns the pcap and the export bytes (client frames) of the whole flow.
fn long_flow(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let client: SocketAddr = "10.99.8.1:45000".parse().expect("addr");
    let server: SocketAddr = format!("{LONG_RECIPIENT}:22").parse().expect("addr");
    let mut flow = TcpFlow::new(client, server, 1_700_000_000_000_000)
        .send(vec![b'x'; 3000])
        .reply(vec![b'y'; 200]);
    flow.close = false;
    let mut g = Generator::new();
    let mut t = g.tcp(&flow, Label::new("long", None));
    // Sequence numbers after the generated part (testgen starts at 1000 / 50000, SYNs count 1).
    let (cseq, sseq) = (1_000u32 + 1 + 3000, 50_000u32 + 1 + 200);
    let tcp = |seq, ack, fin, psh| L4::Tcp {
        seq,
        ack: Some(ack),
        syn: false,
        fin,
        psh,
    };
    t += i64::try_from(LONG_OPEN.as_micros()).expect("micros");
    g.pcap.push(
        t,
        frame(
            None,
            client,
            server,
            tcp(cseq, sseq, false, true),
            &[b'z'; 100],
        ),
    );
    let cseq = cseq + 100;
    g.pcap.push(
        t + 1000,
        frame(None, client, server, tcp(cseq, sseq, true, false), &[]),
    );
    g.pcap.push(
        t + 2000,
        frame(None, server, client, tcp(sseq, cseq + 1, true, false), &[]),
    );
    g.pcap.push(
        t + 3000,
        frame(
            None,
            client,
            server,
            tcp(cseq + 1, sseq + 1, false, false),
            &[],
        ),
    );
    let p = dir.join("long.pcap");
    g.write(&p).expect("write pcap");
    // The whole frames the client sent (classic pcap: 24-byte header, 16-byte record headers).
    let bytes = g.pcap.to_bytes();
    let (mut at, mut export) = (24usize, 0u64);
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        let f = &bytes[at + 16..at + 16 + len];
        if f[26..30] == [10, 99, 8, 1] {
            export += len as u64;
        }
        at += 16 + len;
    }
    (p, export)
}

#[test]
fn live_packet_to_webhook_latency() {
    // The agent runs with its default timeouts (a closed TCP flow's record waits for
    // `tcp_closed_timeout`, the alert does not); `CROSSLINE_E2E_CLOSED_TIMEOUT` sets one.
    let closed = std::env::var("CROSSLINE_E2E_CLOSED_TIMEOUT").ok();
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(alertmanager) = tool("/usr/bin/prometheus-alertmanager") else {
        return;
    };
    if !is_root() {
        skip("live capture needs root");
        return;
    }
    if !sh(&["sh", "-c", "command -v tcpreplay && command -v ip"]) {
        skip("tcpreplay or ip (iproute2) not installed");
        return;
    }
    let tag = format!("{}", std::process::id() % 100_000);
    let Some((_ns, peer)) = netns(&tag) else {
        return;
    };
    let tmp = TempDir::new("live");
    let dir = tmp.path();

    // One pcap per flow: an unfiled export (no scenario lists 10.99.0.0/16) to its own
    // recipient, so that each flow is its own incident.
    let mut pcaps = Vec::new();
    for i in 0..FLOWS {
        let client: SocketAddr = format!("10.99.7.{}:4{i:04}", i + 1).parse().expect("addr");
        let server: SocketAddr = format!("203.0.113.{}:22", 100 + i).parse().expect("addr");
        let mut g = Generator::new();
        g.tcp(
            &TcpFlow::new(client, server, 0)
                .send(vec![b'x'; 3000])
                .reply(vec![b'y'; 200]),
            Label::new("live", None),
        );
        let p = dir.join(format!("flow-{i}.pcap"));
        g.write(&p).expect("write pcap");
        pcaps.push((server.ip().to_string(), p));
    }

    let hook = WebhookReceiver::start().expect("webhook");
    let am = Alertmanager::start(&alertmanager, dir, hook.addr).expect("alertmanager");
    let setup = Collector::setup(
        &collector,
        &dir.join("collector"),
        &["gw-bj-01"],
        &am.receiver(),
    )
    .expect("collector setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");

    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let cfg = write_agent_config(
        &agent_dir,
        "gw-bj-01",
        setup.ingest,
        &setup.dir.join("pki"),
        "",
        &format!("[metrics]\nlisten = \"{metrics}\"\n"),
    )
    .expect("agent config");
    // Capture on the host end of the veth pair.
    let text = std::fs::read_to_string(&cfg).expect("read config");
    let closed_line = closed
        .as_ref()
        .map(|c| format!("tcp_closed_timeout = \"{c}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &cfg,
        text.replace(
            "[capture]\nworkers = 2\n",
            &format!("[capture]\nworkers = 2\ninterfaces = [\"clxh{tag}\"]\n{closed_line}"),
        ),
    )
    .expect("write config");
    let mut cmd = Command::new(&agent);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(agent_dir.join("events.jsonl"));
    let mut run = Proc::spawn("agent", cmd, &agent_dir.join("agent.log")).expect("agent");
    assert!(
        wait_for(Duration::from_secs(20), || run
            .output()
            .contains("capturing on")
            .then_some(()))
        .is_some(),
        "agent did not start capturing:\n{}",
        run.output()
    );

    // The long flow first, at its own pace (no --topspeed: its last segment and FIN go
    // LONG_OPEN after its first export), in the background.
    let (long_pcap, long_export) = long_flow(dir);
    let long_t0 = Instant::now();
    let mut long_replay = Child(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("clx-{tag}"),
                "tcpreplay",
                "-q",
                "-i",
            ])
            .arg(&peer)
            .arg(&long_pcap)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn tcpreplay"),
    );
    // Then the short flows one by one, 300 ms apart, remembering when each left.
    let mut sent: BTreeMap<String, Instant> = BTreeMap::new();
    sent.insert(LONG_RECIPIENT.to_string(), long_t0);
    for (recipient, pcap) in &pcaps {
        let t0 = Instant::now();
        let ok = sh(&[
            "ip",
            "netns",
            "exec",
            &format!("clx-{tag}"),
            "tcpreplay",
            "-q",
            "--topspeed",
            "-i",
            &peer,
            &pcap.to_string_lossy(),
        ]);
        assert!(ok, "tcpreplay failed for {}", pcap.display());
        sent.insert(recipient.clone(), t0);
        std::thread::sleep(Duration::from_millis(300));
    }

    let arrivals = wait_for(Duration::from_secs(40), || {
        let seen = webhook_incidents(&hook);
        let by_recipient: BTreeMap<String, Instant> = seen
            .values()
            .filter_map(|(t, ann)| Some((ann["recipient"].as_str()?.to_string(), *t)))
            .collect();
        sent.keys()
            .all(|r| by_recipient.contains_key(r))
            .then_some(by_recipient)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every flow's incident reached the webhook (got {:?});\nagent:\n{}\ncollector:\n{}",
            webhook_incidents(&hook).len(),
            tail(&run.output(), 20),
            tail(&col.proc.output(), 20)
        )
    });
    // `[metrics] listen` of `run`: live counters and uplink outcomes.
    let text = http_get(metrics, "/metrics", None)
        .expect("agent /metrics")
        .body;
    assert!(
        metric_sum(&text, "crossline_agent_packets_total", "") >= f64::from(FLOWS) * 10.0,
        "{text}"
    );
    assert!(
        metric_sum(
            &text,
            "crossline_agent_alerts_total",
            "kind=\"unfiled_export\""
        ) >= f64::from(FLOWS),
        "{text}"
    );
    assert!(
        metric_sum(
            &text,
            "crossline_agent_uplink_batches_total",
            "result=\"acked\""
        ) >= 1.0,
        "{text}"
    );
    // The CPU of the live threads by role: a capture thread per handle (two workers: two
    // handles), the worker threads, the writer, the uplink.
    for thread in ["capture-0", "worker-0", "writer", "uplink"] {
        let label = format!("thread=\"{thread}\"");
        assert!(
            metric_sum(&text, "crossline_agent_thread_cpu_seconds_total", &label) > 0.0,
            "no CPU time for {thread}:\n{text}"
        );
    }
    if let Some(promtool) = tool("/usr/bin/promtool") {
        promtool_check_metrics(&promtool, &text).expect("agent /metrics lint");
    }
    // The threads carry their roles as names (what `top -H`, perf and gdb show).
    let names = thread_names(run.pid());
    for name in ["capture-0", "worker-0", "flusher"] {
        assert!(
            names.iter().any(|n| n == name),
            "no thread named {name}: {names:?}"
        );
    }
    // The long flow's alert came while it was still open, long before its last packets.
    let long_latency = arrivals[LONG_RECIPIENT].duration_since(long_t0);
    assert!(
        long_latency < LONG_OPEN / 6,
        "the long flow's alert took {long_latency:?} (it stays open for {LONG_OPEN:?})"
    );
    // Let it end: its last segment and FIN, then shut down (the record is written then).
    let done = wait_for(LONG_OPEN + Duration::from_secs(15), || {
        long_replay.0.try_wait().ok().flatten()
    });
    assert!(
        done.is_some_and(|s| s.success()),
        "the long flow's tcpreplay did not finish: {done:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    run.terminate(Duration::from_secs(20));
    assert!(
        run.output().contains("acknowledged"),
        "no clean uplink drain at shutdown:\n{}",
        tail(&run.output(), 20)
    );
    // The long flow's events: one alert (at its first export, with the bytes sent by then) and
    // one flow record with the totals.
    let events = std::fs::read_to_string(agent_dir.join("events.jsonl")).expect("events");
    let long: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["dest_ip"] == LONG_RECIPIENT)
        .collect();
    let alerts: Vec<&serde_json::Value> = long
        .iter()
        .filter(|e| {
            e["event_type"] == "alert" && e["crossline"]["alert"]["kind"] == "unfiled_export"
        })
        .collect();
    assert_eq!(
        alerts.len(),
        1,
        "one verdict alert for the long flow: {long:#?}"
    );
    assert_eq!(
        alerts[0]["crossline"]["judged"], "first_export",
        "{:#}",
        alerts[0]
    );
    let alert_bytes = alerts[0]["crossline"]["alert"]["bytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        alert_bytes > 0 && alert_bytes < long_export,
        "the early alert carries the bytes sent by its first export ({alert_bytes} of {long_export}): {:#}",
        alerts[0]
    );
    let records: Vec<&serde_json::Value> =
        long.iter().filter(|e| e["event_type"] == "flow").collect();
    assert_eq!(records.len(), 1, "one flow record: {long:#?}");
    assert_eq!(
        records[0]["crossline"]["export_bytes"], long_export,
        "{:#}",
        records[0]
    );
    assert_eq!(
        records[0]["crossline"]["verdict"]["status"], "unfiled",
        "{:#}",
        records[0]
    );
    assert_eq!(records[0]["flow"]["alerted"], true, "{:#}", records[0]);
    assert!(
        records[0]["flow"]["age"].as_u64().unwrap_or(0) >= LONG_OPEN.as_secs() - 1,
        "{:#}",
        records[0]
    );

    // Every flow's verdict alert left the agent at its first export, once.
    let all: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let event_of = |r: &str, kind: &str| {
        all.iter()
            .filter(|e| e["dest_ip"] == r && e["event_type"] == kind)
            .collect::<Vec<_>>()
    };
    for r in sent.keys() {
        let alerts = event_of(r, "alert");
        assert!(
            alerts.len() == 1 && alerts[0]["crossline"]["judged"] == "first_export",
            "{r}: {alerts:#?}"
        );
    }
    let mut by_flow: Vec<(Duration, &String)> = sent
        .iter()
        .filter_map(|(r, t0)| arrivals.get(r).map(|t| (t.duration_since(*t0), r)))
        .collect();
    by_flow.sort();
    if let Some((d, r)) = by_flow.last() {
        let first = |kind: &str| {
            event_of(r, kind)
                .first()
                .map(|e| e["timestamp"].to_string())
                .unwrap_or_default()
        };
        let start = event_of(r, "flow")
            .first()
            .map(|e| e["flow"]["start"].to_string())
            .unwrap_or_default();
        eprintln!(
            "slowest: {r} after {d:?} (first packet {start}, agent alert stamped {}, record {})",
            first("alert"),
            first("flow")
        );
    }
    let latencies: Vec<Duration> = by_flow.iter().map(|(d, _)| *d).collect();
    eprintln!(
        "live packet -> webhook latency over {} flows (tcpreplay start -> Alertmanager webhook, \
         tcp_closed_timeout {}; the flow open for {LONG_OPEN:?}: {long_latency:?}): \
         p50 {:?}, p99 {:?}, min {:?}, max {:?}",
        latencies.len(),
        closed.as_deref().unwrap_or("default"),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.first().copied().unwrap_or_default(),
        latencies.last().copied().unwrap_or_default()
    );
    assert_eq!(latencies.len(), usize::from(FLOWS) + 1);
    // The target is 1 s (printed above); the bound here leaves room for a loaded machine and
    // still fails when alerts wait for the flow's end (the default closed timeout is 2 s).
    let p99 = percentile(&latencies, 99.0);
    eprintln!(
        "p99 target 1 s: {}",
        if p99 <= Duration::from_secs(1) {
            "met"
        } else {
            "missed"
        }
    );
    assert!(
        p99 < Duration::from_secs(2),
        "p99 latency {p99:?} is not below 2 s"
    );
    assert!(
        percentile(&latencies, 50.0) < Duration::from_secs(10),
        "median latency above 10 s"
    );
}

/// The names of the threads of process `pid` (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the agent's threads");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}
