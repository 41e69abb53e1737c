//! Two gateways of one enterprise, real agents (`analyze` with the uplink) and a real collector:
//! each gateway sees 27,000 personal identifiers of `shunyi-motors` (limit 40,000 from
//! `persons_per_year`), 15,000 of them the same; neither reaches 80% (32,000) alone, together
//! they do (39,000). The agents' sketches reach the collector through the spool and uplink, and
//! the collector raises the enterprise-wide `persons_threshold` (80%) once, with both gateways.
//! The captures are written with `crossline_testgen`.

use crossline_e2e::*;
use crossline_testgen::{beijing_micros, http_post, pi_records, Generator, Label, TcpFlow};
use std::process::Command;
use std::time::Duration;

/// Flows of 100 records each (300 identifiers: ID, phone, mail), seeds `seeds`.
fn capture(seeds: std::ops::RangeInclusive<u32>) -> Generator {
    let mut g = Generator::new();
    for (i, seed) in seeds.enumerate() {
        let t = beijing_micros(2026, 3, 2, 10, 0, 0) + i as i64 * 1_000_000;
        g.tcp(
            &TcpFlow::new(
                format!("10.30.16.5:{}", 40000 + i).parse().expect("client"),
                "203.0.113.70:80".parse().expect("server"),
                t,
            )
            .send(http_post(
                "parts.example",
                "/upload",
                &pi_records(100, seed),
            ))
            .reply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()),
            Label::new("persons", None),
        );
    }
    g
}

#[test]
fn two_gateways_pass_the_persons_threshold_only_together() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("enterprise-wide");
    let dir = tmp.path();
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-a", "gw-b"], "").expect("setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    for (gw, seeds) in [("gw-a", 1..=90), ("gw-b", 41..=130)] {
        let agent_dir = dir.join(gw);
        std::fs::create_dir_all(&agent_dir).expect("agent dir");
        let cfg = write_agent_config(
            &agent_dir,
            gw,
            setup.ingest,
            &setup.dir.join("pki"),
            "",
            "[detect]\npi_key = \"0123456789abcdef0123456789abcdef\"\npi_scan_bytes = \"1 MiB\"\n",
        )
        .expect("agent config");
        let pcap = agent_dir.join("capture.pcap");
        capture(seeds).write(&pcap).expect("pcap");
        let events = agent_dir.join("events.jsonl");
        let out = Command::new(&agent)
            .arg("analyze")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&events)
            .arg(&pcap)
            .output()
            .expect("agent runs");
        assert!(
            out.status.success(),
            "{gw}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Alone, the gateway stays under 80% of 40,000.
        let text = std::fs::read_to_string(&events).expect("events");
        assert!(
            !text.contains("\"persons_threshold\""),
            "{gw} passed the threshold alone"
        );
    }
    let wide = wait_for(Duration::from_secs(20), || {
        let alerts = col.alerts().ok()?;
        let w: Vec<serde_json::Value> = alerts
            .into_iter()
            .filter(|a| a["kind"] == "persons_threshold" && a["scope"] == "enterprise")
            .collect();
        (!w.is_empty()).then_some(w)
    })
    .expect("no enterprise-wide persons_threshold");
    std::thread::sleep(Duration::from_millis(500));
    let again: Vec<serde_json::Value> = col
        .alerts()
        .expect("alerts")
        .into_iter()
        .filter(|a| a["kind"] == "persons_threshold" && a["scope"] == "enterprise")
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    let a = &wide[0];
    assert_eq!(a["enterprise"], "shunyi-motors", "{a}");
    assert_eq!(a["gateways"], serde_json::json!(["gw-a", "gw-b"]), "{a}");
    let est = a["persons"].as_u64().expect("persons");
    let err = (est as f64 - 39_000.0).abs() / 39_000.0;
    assert!(err < 0.03, "estimate {est} vs 39,000 exact");
    eprintln!(
        "enterprise-wide persons: estimate {est} vs 39,000 exact ({:.2}% error)",
        err * 100.0
    );
    let m = col.metrics().expect("metrics");
    assert!(
        metric_sum(
            &m,
            "crossline_collector_sketches_total",
            "result=\"merged\""
        ) >= 2.0,
        "{m}"
    );
}
