//! The offline capture path through the `analyze` binary, on generated capture files:
//! packet times outside the sane window, `capture.filter` offline.

use crossline_agent::testgen::{frame, PcapWriter, L4};
use crossline_config::event::{Event, EventType};
use std::net::SocketAddr;

mod common;

/// 2026-03-02 10:00 Beijing.
const T0: i64 = 1_772_416_800_000_000;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

fn final_stats(events: &[Event]) -> crossline_config::event::Stats {
    events
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::Stats)
        .and_then(|e| e.stats.clone())
        .expect("final stats event")
}

fn flows_to(events: &[Event], port: u16) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.event_type == EventType::Flow && e.dest_port == Some(port))
        .collect()
}

/// A pcapng whose second interface has `if_tsoffset = -2^62` s: its packets are counted as
/// `bad_timestamp` and dropped one by one; the first interface's flow is reported normally and
/// no event carries an absurd time.
#[test]
fn packets_with_absurd_times_are_counted_and_dropped() {
    let mut p = common::Pcapng::default();
    let good = p.iface(None);
    let bad = p.iface(Some(-(1i64 << 62)));
    for i in 0..5 {
        let f = frame(
            None,
            sa("10.20.0.5:40000"),
            sa("198.51.100.7:9000"),
            L4::Udp,
            &[7; 100],
        );
        p.packet(good, T0 + i * 1000, f);
        let f = frame(
            None,
            sa("10.20.0.6:40001"),
            sa("203.0.113.5:9001"),
            L4::Udp,
            &[8; 100],
        );
        p.packet(bad, T0 + i * 1000 + 500, f);
    }
    let dir = common::config_dir("badts", "");
    let path = dir.join("badts.pcapng");
    std::fs::write(&path, p.to_bytes()).expect("write capture");
    let (out, stderr, ok) = common::analyze(&dir, &[path.as_path()], 1, "events.json");
    assert!(ok, "analyze failed: {stderr}");
    let events = common::events(&out);
    let stats = final_stats(&events);
    assert_eq!(
        stats.decode_errors.get("bad_timestamp"),
        Some(&5),
        "{stats:?}"
    );
    assert_eq!(stats.packets, 10);
    assert_eq!(
        flows_to(&events, 9000).len(),
        1,
        "the good flow is reported"
    );
    assert!(flows_to(&events, 9001).is_empty(), "no flow from bad times");
    for e in &events {
        assert!(
            e.timestamp.starts_with("2026-"),
            "event with an absurd time: {}",
            e.timestamp
        );
    }
    assert!(
        stderr.contains("5 packet(s) with a capture time outside 1990-01-01..2100-01-01"),
        "summary line missing: {stderr}"
    );
}

/// `capture.filter` applies to `analyze`: filtered traffic makes no flow; a filter that does
/// not compile is an error naming it.
#[test]
fn capture_filter_applies_offline() {
    let mut pcap = PcapWriter::default();
    for i in 0..4 {
        let q = frame(
            None,
            sa("10.20.0.5:5353"),
            sa("203.0.113.53:53"),
            L4::Udp,
            &[1; 40],
        );
        pcap.push(T0 + i * 1000, q);
        let d = frame(
            None,
            sa("10.20.0.5:40000"),
            sa("198.51.100.7:9000"),
            L4::Udp,
            &[2; 200],
        );
        pcap.push(T0 + i * 1000 + 1, d);
    }
    let dir = common::config_dir("filter", "[capture]\nfilter = \"not udp port 53\"\n");
    let path = dir.join("filter.pcap");
    pcap.write(&path).expect("write capture");
    let (out, stderr, ok) = common::analyze(&dir, &[path.as_path()], 1, "events.json");
    assert!(ok, "analyze failed: {stderr}");
    let events = common::events(&out);
    assert!(flows_to(&events, 53).is_empty(), "port 53 filtered out");
    let kept = flows_to(&events, 9000);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].flow.as_ref().map(|f| f.pkts_toserver), Some(4));
    assert_eq!(
        final_stats(&events).packets,
        4,
        "only matching packets read"
    );

    let bad = common::config_dir("badfilter", "[capture]\nfilter = \"udp port frobnicate\"\n");
    let (_, stderr, ok) = common::analyze(&bad, &[path.as_path()], 1, "events.json");
    assert!(!ok, "a bad filter must fail the run");
    assert!(
        stderr.contains("capture.filter \"udp port frobnicate\"") && stderr.contains("filter.pcap"),
        "error must name the filter and the file: {stderr}"
    );
}
