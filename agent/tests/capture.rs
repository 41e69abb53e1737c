//! The offline capture path through the `analyze` binary, on generated capture files:
//! packet times outside the sane window, `capture.filter` offline.

use crossline_config::event::{Event, EventType};
use crossline_testgen::{frame, PcapWriter, L4};
use std::net::SocketAddr;

mod common;

use common::frames::tcp;

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
        stderr.contains("5 packet(s) with a capture time outside 1970-01-01..2100-01-01"),
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

/// DNS over TCP whose answer has its two-byte length prefix in a segment of its own (RFC 7766
/// allows it): the name is learned and names the flow that follows to the answered address.
#[test]
fn dns_over_tcp_with_the_length_prefix_in_its_own_segment_names_the_next_flow() {
    use crossline_testgen::{dns_query, dns_response};
    let (c, s) = (sa("10.20.0.5:40000"), sa("203.0.113.53:53"));
    let addr: std::net::IpAddr = "198.51.100.9".parse().expect("ip");
    let q = dns_query(7, "files.partner.example", false);
    let a = dns_response(7, "files.partner.example", None, &[addr], 300);
    let mut qm = (q.len() as u16).to_be_bytes().to_vec();
    qm.extend_from_slice(&q);
    let prefix = (a.len() as u16).to_be_bytes();
    let mut pcap = PcapWriter::default();
    let mut t = T0;
    let mut push = |f: Vec<u8>| {
        t += 1000;
        pcap.push(t, f);
    };
    push(frame(None, c, s, tcp(100, None, true), b""));
    push(frame(None, s, c, tcp(500, Some(101), true), b""));
    push(frame(None, c, s, tcp(101, Some(501), false), b""));
    push(frame(None, c, s, tcp(101, Some(501), false), &qm));
    push(frame(
        None,
        s,
        c,
        tcp(501, Some(101 + qm.len() as u32), false),
        &prefix,
    ));
    // The rest of the answer, cut once more in the middle.
    let (a1, a2) = a.split_at(a.len() / 2);
    push(frame(
        None,
        s,
        c,
        tcp(503, Some(101 + qm.len() as u32), false),
        a1,
    ));
    let seq2 = 503 + a1.len() as u32;
    push(frame(
        None,
        s,
        c,
        tcp(seq2, Some(101 + qm.len() as u32), false),
        a2,
    ));
    // The flow that follows, to the answered address.
    let (c2, s2) = (sa("10.20.0.5:41000"), std::net::SocketAddr::new(addr, 443));
    push(frame(None, c2, s2, tcp(9000, None, true), b""));
    push(frame(None, s2, c2, tcp(7000, Some(9001), true), b""));
    push(frame(
        None,
        c2,
        s2,
        tcp(9001, Some(7001), false),
        &[0x42; 300],
    ));
    let dir = common::config_dir("dnstcp", "");
    let path = dir.join("dnstcp.pcap");
    pcap.write(&path).expect("write capture");
    let (out, stderr, ok) = common::analyze(&dir, &[path.as_path()], 1, "events.json");
    assert!(ok, "analyze failed: {stderr}");
    let events = common::events(&out);
    let next = flows_to(&events, 443);
    assert_eq!(next.len(), 1, "{events:?}");
    assert_eq!(
        next[0].dns_name.as_deref(),
        Some("files.partner.example"),
        "the flow after the answer is named by it"
    );
}

/// Personal information in later IPv4 fragments: an identifier wholly inside the second
/// fragment, and one straddling the first and second fragments, each raise
/// `personal_info_cleartext` on their flow.
#[test]
fn personal_information_in_later_fragments_is_found() {
    use crossline_testgen::resident_id;
    let mut pcap = PcapWriter::default();
    // UDP payload offsets: the first fragment (1,480 bytes of IP payload) carries payload
    // bytes 0..1472.
    let cases = [(41000u16, 1600usize), (41001, 1465)];
    for (i, (port, at)) in cases.iter().enumerate() {
        let id = resident_id(1234 + i as u32);
        let mut body = vec![b'a'; 2400];
        body[*at - 1] = b' ';
        body[*at..*at + id.len()].copy_from_slice(id.as_bytes());
        body[*at + id.len()] = b' ';
        let f = frame(
            None,
            sa(&format!("10.20.0.5:{port}")),
            sa("203.0.113.80:9000"),
            L4::Udp,
            &body,
        );
        for (k, fr) in common::fragment_ipv4(&f, 1480, 100 + i as u16)
            .into_iter()
            .enumerate()
        {
            pcap.push(T0 + i as i64 * 10_000 + k as i64 * 100, fr);
        }
    }
    let dir = common::config_dir("pifrag", "");
    let path = dir.join("pifrag.pcap");
    pcap.write(&path).expect("write capture");
    let (out, stderr, ok) = common::analyze(&dir, &[path.as_path()], 1, "events.json");
    assert!(ok, "analyze failed: {stderr}");
    let events = common::events(&out);
    for (port, at) in cases {
        let hit = events.iter().any(|e| {
            e.event_type == EventType::Alert
                && e.src_port == Some(port)
                && e.alert.as_ref().is_some_and(|a| {
                    a.kind == crossline_config::event::AlertKind::PersonalInfoCleartext
                })
        });
        assert!(
            hit,
            "no personal_info_cleartext for the identifier at offset {at}"
        );
    }
}

/// Capture loss offline, as Zeek's capture_loss counts it: segments the receiver acknowledged
/// but the capture never saw. A flow missing every third data segment raises `sensor_gap` and
/// counts the gaps and bytes; the same flow captured whole counts none and raises nothing.
#[test]
fn acknowledged_segments_never_captured_are_capture_loss() {
    let run = |drop_every: Option<u32>, tag: &str| {
        let (c, s) = (sa("10.20.0.5:40000"), sa("198.51.100.7:9000"));
        let mut pcap = PcapWriter::default();
        let mut t = T0;
        let mut push = |f: Vec<u8>| {
            t += 1000;
            pcap.push(t, f);
        };
        push(frame(None, c, s, tcp(100, None, true), b""));
        push(frame(None, s, c, tcp(500, Some(101), true), b""));
        push(frame(None, c, s, tcp(101, Some(501), false), b""));
        let mut missed = (0u64, 0u64);
        for i in 0..300u32 {
            let seq = 101 + i * 100;
            if drop_every.is_some_and(|n| i % n == 1) {
                missed.0 += 1;
                missed.1 += 100;
            } else {
                push(frame(None, c, s, tcp(seq, Some(501), false), &[b'x'; 100]));
            }
            // The server acknowledges everything it got, every segment.
            push(frame(None, s, c, tcp(501, Some(seq + 100), false), b""));
        }
        let dir = common::config_dir(tag, "");
        let path = dir.join("loss.pcap");
        pcap.write(&path).expect("write capture");
        let (out, stderr, ok) = common::analyze(&dir, &[path.as_path()], 1, "events.json");
        assert!(ok, "analyze failed: {stderr}");
        (common::events(&out), stderr, missed)
    };
    let (events, stderr, (segments, bytes)) = run(Some(3), "loss");
    let stats = final_stats(&events);
    assert_eq!(
        stats.drops.get("capture_loss_gaps"),
        Some(&segments),
        "{:?}",
        stats.drops
    );
    assert_eq!(stats.drops.get("capture_loss_bytes"), Some(&bytes));
    let gap_alert = events.iter().find(|e| {
        e.alert.as_ref().is_some_and(|a| {
            a.kind == crossline_config::event::AlertKind::SensorGap
                && a.summary.contains(&format!(
                    "{segments} acknowledged TCP segments never captured"
                ))
        })
    });
    assert!(
        gap_alert.is_some(),
        "no sensor_gap for the loss: {events:?}"
    );
    assert!(
        stderr.contains("estimated capture loss: 100 of"),
        "{stderr}"
    );

    let (events, _, _) = run(None, "noloss");
    let stats = final_stats(&events);
    assert_eq!(stats.drops.get("capture_loss_gaps"), Some(&0));
    assert!(
        !events.iter().any(|e| e
            .alert
            .as_ref()
            .is_some_and(|a| a.kind == crossline_config::event::AlertKind::SensorGap)),
        "no loss, no sensor_gap"
    );
}

/// `analyze` of `pcaps` with the example configuration and `workers` workers: the output bytes.
fn analyze_example(pcaps: &[std::path::PathBuf], workers: usize, out: &std::path::Path) -> Vec<u8> {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let o = common::bin()
        .arg("analyze")
        .arg("--config")
        .arg(root.join("examples/agent.toml"))
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--out")
        .arg(out)
        .args(pcaps)
        .output()
        .expect("run crossline-agent");
    assert!(
        o.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).expect("events file")
}

/// Offline analysis is reproducible: the same capture and configuration give byte-identical
/// events whatever the number of workers and however their threads are scheduled (two runs
/// each with 1, 2 and 3 workers): the demo capture, a real capture whose repeated alerts are
/// folded, and several real captures in one run (packet time going back between files).
#[test]
fn analyze_is_byte_identical_whatever_the_number_of_workers() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut cases: Vec<(&str, Vec<std::path::PathBuf>)> =
        vec![("demo", vec![root.join("examples/demo.pcap")])];
    if let Some(shared) = common::shared() {
        let real = shared.join("corpus/real");
        cases.push(("gnutella", vec![real.join("ndpi__gnutella.pcap")]));
        cases.push((
            "several",
            [
                "ndpi__wechat.pcap",
                "ndpi__alexa-app.pcapng",
                "ndpi__gnutella.pcap",
                "ndpi__teams.pcap",
            ]
            .iter()
            .map(|f| real.join(f))
            .collect(),
        ));
    }
    let dir = common::scratch("determinism");
    for (name, pcaps) in cases {
        let reference = analyze_example(&pcaps, 1, &dir.join(format!("{name}-ref.json")));
        let events = common::events(&reference);
        assert!(
            events.iter().any(|e| e.event_type == EventType::Alert),
            "{name}: the capture raises alerts"
        );
        for (run, workers) in [1, 2, 2, 3].into_iter().enumerate() {
            let out = dir.join(format!("{name}-{run}-{workers}.json"));
            let bytes = analyze_example(&pcaps, workers, &out);
            assert!(
                bytes == reference,
                "{name}: {workers} worker(s), run {run}: events differ from the first run \
                 (compare {} with {})",
                out.display(),
                dir.join(format!("{name}-ref.json")).display()
            );
        }
    }
}
