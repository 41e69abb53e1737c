//! Packet -> webhook latency on a live line: `crossline-agent run` captures on the host end of a
//! veth pair, `tcpreplay` sends one unfiled export at a time from a network namespace, and the
//! time from sending each flow to Alertmanager's webhook delivery of its incident is measured.
//!
//! Needs root, `ip`, `tcpreplay` and Alertmanager; otherwise SKIPPED (a panic under `CI=true`).

use crossline_e2e::*;
use crossline_testgen::{Generator, Label, TcpFlow};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const FLOWS: u8 = 20;

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

#[test]
fn live_packet_to_webhook_latency() {
    // How long a closed TCP flow stays in the table before its record (and its alerts) is
    // written; the default is 2 s. `CROSSLINE_E2E_CLOSED_TIMEOUT` overrides it.
    let closed = std::env::var("CROSSLINE_E2E_CLOSED_TIMEOUT").unwrap_or_else(|_| "2s".to_string());
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(alertmanager) = tool("/usr/bin/prometheus-alertmanager") else {
        return;
    };
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
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
    std::fs::write(
        &cfg,
        text.replace(
            "[capture]\nworkers = 2\n",
            &format!(
                "[capture]\nworkers = 2\ninterfaces = [\"clxh{tag}\"]\n\
                 tcp_closed_timeout = \"{closed}\"\n"
            ),
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

    // Send the flows one by one, 300 ms apart, remembering when each left.
    let mut sent: BTreeMap<String, Instant> = BTreeMap::new();
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

    let arrivals = wait_for(Duration::from_secs(60), || {
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
    if let Some(promtool) = tool("/usr/bin/promtool") {
        promtool_check_metrics(&promtool, &text).expect("agent /metrics lint");
    }
    run.terminate(Duration::from_secs(20));
    assert!(
        run.output().contains("acknowledged"),
        "no clean uplink drain at shutdown:\n{}",
        tail(&run.output(), 20)
    );
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(r, t0)| arrivals.get(r).map(|t| t.duration_since(*t0)))
        .collect();
    latencies.sort();
    eprintln!(
        "live packet -> webhook latency over {} flows (tcpreplay start -> Alertmanager webhook, \
         tcp_closed_timeout {closed}): p50 {:?}, p99 {:?}, min {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.first().copied().unwrap_or_default(),
        latencies.last().copied().unwrap_or_default()
    );
    assert_eq!(latencies.len(), usize::from(FLOWS));
    assert!(
        percentile(&latencies, 50.0) < Duration::from_secs(10),
        "median latency above 10 s"
    );
}
