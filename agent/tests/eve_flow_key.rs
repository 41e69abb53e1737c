//! The flow key as Suricata's EVE keys flows, checked the way suricata-verify checks Suricata:
//! crafted frames written to a pcap file, run through the real `crossline-agent analyze`, and
//! the JSON lines it writes compared with what EVE would say.
//!
//! - flows on two VLANs (and a QinQ stack) with the same addresses and ports are separate
//!   flows, each with EVE's `vlan` array;
//! - an IPv4 / IPv6 header claiming more bytes than the packet had on the wire is a counted
//!   decode error, not a flow, while a packet cut by the snaplen is still a flow;
//! - FINs retransmitted after a connection closed start no second, reversed flow;
//! - ICMP echo requests and replies are one flow with `icmp_type` / `icmp_code` (and the
//!   response's), a destination-unreachable between the same hosts another, and the Community
//!   ID equals the reference implementation's for the configured seed.

mod common;

use crossline_config::event::{Event, EventType, Stats};
use crossline_testgen::{frame, TcpFlow, L4};
use etherparse::PacketBuilder;
use std::net::SocketAddr;
use std::path::Path;

const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// VLAN tags `(TPID, id)`, outermost first.
type Tags = &'static [(u16, u16)];

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

/// A classic pcap file (Ethernet, microseconds) of `(time, length on the wire, captured
/// bytes)` records; the captured bytes may be fewer than the wire length (snaplen).
fn write_pcap(path: &Path, records: &[(i64, u32, Vec<u8>)]) {
    let mut out = crossline_testgen::pcap_header().to_vec();
    for (ts, wire, data) in records {
        crossline_testgen::push_pcap_record(&mut out, *ts, *wire, data);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// Whole frames, captured in full.
fn full(records: Vec<(i64, Vec<u8>)>) -> Vec<(i64, u32, Vec<u8>)> {
    records
        .into_iter()
        .map(|(t, f)| (t, f.len() as u32, f))
        .collect()
}

/// `f` (an untagged Ethernet frame) with VLAN tags `(TPID, id)` inserted, outermost first.
fn tagged(f: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    for (tpid, id) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(&f[12..]);
    out
}

/// Run `analyze` with `extra` config lines on `records`; the events written.
fn analyze(tag: &str, extra: &str, records: &[(i64, u32, Vec<u8>)]) -> Vec<Event> {
    let dir = common::config_dir(&format!("evekey-{tag}"), extra);
    let pcap = dir.join("in.pcap");
    write_pcap(&pcap, records);
    let (out, stderr, ok) = common::analyze(&dir, &[pcap.as_path()], 2, "events.jsonl");
    assert!(ok, "analyze failed: {stderr}");
    common::events(&out)
}

fn flows(ev: &[Event]) -> Vec<&Event> {
    ev.iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect()
}

fn stats(ev: &[Event]) -> &Stats {
    ev.last()
        .and_then(|e| e.stats.as_ref())
        .expect("the stats event comes last")
}

fn pkts(e: &Event) -> (u64, u64) {
    let f = e.flow.as_ref().expect("flow object");
    (f.pkts_toserver, f.pkts_toclient)
}

#[test]
fn flows_on_two_vlans_are_two_flows_with_eves_vlan_array() {
    let (c, s) = (sa("10.20.0.5:40000"), sa("198.51.100.7:5000"));
    let q = frame(None, c, s, L4::Udp, b"query");
    let r = frame(None, s, c, L4::Udp, b"answer");
    // (tags, expected `vlan`): untagged; 802.1Q 100 and 200; QinQ 300/100; four tags, of
    // which the outer three are kept (as Suricata keeps three).
    let cases: [(Tags, Option<Vec<u16>>); 5] = [
        (&[], None),
        (&[(0x8100, 100)], Some(vec![100])),
        (&[(0x8100, 200)], Some(vec![200])),
        (&[(0x88a8, 300), (0x8100, 100)], Some(vec![300, 100])),
        (
            &[(0x88a8, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4)],
            Some(vec![1, 2, 3]),
        ),
    ];
    let mut recs = Vec::new();
    for (i, (tags, _)) in cases.iter().enumerate() {
        let t = T0 + i as i64 * 1000;
        recs.push((t, tagged(&q, tags)));
        // The untagged flow's answer comes priority-tagged (id 0): Suricata keys id 0 as no
        // tag, so it is the same flow.
        let answer_tags: &[(u16, u16)] = if tags.is_empty() {
            &[(0x8100, 0x6000)]
        } else {
            tags
        };
        recs.push((t + 500, tagged(&r, answer_tags)));
    }
    let ev = analyze("vlan", "", &full(recs));
    let fl = flows(&ev);
    assert_eq!(fl.len(), cases.len(), "one flow per VLAN stack: {fl:#?}");
    for (_, want) in &cases {
        let f = fl
            .iter()
            .find(|e| e.vlan == *want)
            .unwrap_or_else(|| panic!("no flow with vlan {want:?}: {fl:#?}"));
        assert_eq!(pkts(f), (1, 1), "vlan {want:?}: query and answer");
        assert_eq!(f.src_ip.as_deref(), Some("10.20.0.5"));
        assert_eq!((f.src_port, f.dest_port), (Some(40000), Some(5000)));
        assert_eq!(f.proto.as_deref(), Some("UDP"));
    }
    // The JSON line itself carries EVE's array.
    let line = serde_json::to_string(fl.iter().find(|e| e.vlan.is_some()).expect("tagged"))
        .expect("serialises");
    assert!(line.contains("\"vlan\":["), "{line}");
}

#[test]
fn ip_length_beyond_the_wire_is_a_decode_error_and_a_snaplen_cut_is_not() {
    let (c, s) = (sa("10.20.0.5:40000"), sa("198.51.100.7:5000"));
    // 1,516 bytes on the wire whose IPv4 header claims 65,028.
    let mut bad4 = frame(None, c, s, L4::Udp, &vec![0x41; 1474]);
    assert_eq!(bad4.len(), 1516);
    bad4[16..18].copy_from_slice(&65_028u16.to_be_bytes());
    // An IPv6 packet whose payload length claims 60,000 bytes.
    let (c6, s6) = (sa("[2001:db8::5]:40001"), sa("[2001:db8:ff::7]:5001"));
    let mut bad6 = frame(None, c6, s6, L4::Udp, &[0x42; 100]);
    bad6[18..20].copy_from_slice(&60_000u16.to_be_bytes());
    // A whole 1,516-byte packet captured with a 96-byte snaplen: still a flow.
    let (c2, s2) = (sa("10.20.0.6:40002"), sa("198.51.100.8:5002"));
    let cut = frame(None, c2, s2, L4::Udp, &vec![0x43; 1474]);
    let recs = vec![
        (T0, 1516, bad4.clone()),
        (T0 + 1000, bad6.len() as u32, bad6),
        (T0 + 2000, 1516, cut[..96].to_vec()),
    ];
    let ev = analyze("beyond", "", &recs);
    let st = stats(&ev);
    assert_eq!(
        st.decode_errors.get("ipv4_length_beyond_wire"),
        Some(&1),
        "{:?}",
        st.decode_errors
    );
    assert_eq!(
        st.decode_errors.get("ipv6_length_beyond_wire"),
        Some(&1),
        "{:?}",
        st.decode_errors
    );
    let fl = flows(&ev);
    assert_eq!(
        fl.len(),
        1,
        "only the snaplen-cut packet is a flow: {fl:#?}"
    );
    assert_eq!(fl[0].src_ip.as_deref(), Some("10.20.0.6"));
    let f = fl[0].flow.as_ref().expect("flow object");
    assert_eq!(
        (f.pkts_toserver, f.bytes_toserver),
        (1, 1516),
        "bytes on the wire"
    );
}

#[test]
fn fins_retransmitted_after_the_close_start_no_second_flow() {
    let (c, s) = (sa("10.20.0.5:40000"), sa("198.51.100.7:443"));
    let conn = TcpFlow::new(c, s, T0)
        .send(&b"hello"[..])
        .reply(&b"world"[..]);
    let mut g = crossline_testgen::Generator::new();
    let end = g.tcp(&conn, crossline_testgen::Label::new("conn", None));
    let mut recs: Vec<(i64, u32, Vec<u8>)> = Vec::new();
    // The generated connection (handshake, data, FIN exchange) as pcap records.
    let bytes = g.pcap.to_bytes();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let h = &bytes[off..off + 16];
        let secs = i64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
        let usecs = i64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let data = bytes[off + 16..off + 16 + len].to_vec();
        recs.push((secs * 1_000_000 + usecs, len as u32, data));
        off += 16 + len;
    }
    let n_conn = recs.len() as u64;
    // 5 s and 12 s after the close (past the 2 s closed timeout), the server retransmits its
    // FIN/ACK and the client answers with an ACK.
    let fin = |seq| L4::Tcp {
        seq,
        ack: Some(7),
        syn: false,
        fin: true,
        psh: false,
    };
    let ack = L4::Tcp {
        seq: 7,
        ack: Some(1000),
        syn: false,
        fin: false,
        psh: false,
    };
    for (k, t) in [5_000_000i64, 12_000_000].into_iter().enumerate() {
        let f = frame(None, s, c, fin(999), &[]);
        let a = frame(None, c, s, ack, &[]);
        recs.push((end + t, f.len() as u32, f));
        recs.push((end + t + 100 + k as i64, a.len() as u32, a));
    }
    let ev = analyze("fin", "", &recs);
    let fl = flows(&ev);
    assert_eq!(fl.len(), 1, "one connection, one flow: {fl:#?}");
    assert_eq!(fl[0].src_ip.as_deref(), Some("10.20.0.5"), "not reversed");
    assert_eq!(fl[0].flow.as_ref().map(|f| f.reason.as_str()), Some("fin"));
    let (a, b) = pkts(fl[0]);
    assert_eq!(a + b, n_conn, "the connection's own packets");
    assert_eq!(
        stats(&ev).ignored.get("tcp_after_close"),
        Some(&4),
        "the stray segments are counted"
    );
}

/// Community IDs of Corelight's `communityid` 1.5.0 (see `l7::community_id`'s reference
/// vectors, generated with `CommunityID(seed).calc(FlowTuple.make_icmp(...))`).
const ECHO_ID: [(u16, &str); 2] = [
    (0, "1:D3kPAadrQ3vIeaD4Evol7atF0Z8="),
    (4242, "1:lalwWCHlSs7JfiEk5ExJ9oZjSM4="),
];
const UNREACH_ID: [(u16, &str); 2] = [
    (0, "1:fgfn6BYD2MrlpV7N4/wB4QnjtPk="),
    (4242, "1:S7rZ2uxyQUbEU7QuAnhSaE1aj1o="),
];
const ECHO6_ID: [(u16, &str); 2] = [
    (0, "1:wI2n/BiQWvQNTALaslQvczHj0jA="),
    (4242, "1:DzFwq41N2rFnVekOaAAwUbcsv2M="),
];

fn icmp4(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, seq: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64);
    let mut out = Vec::new();
    let step = match ty {
        8 => b.icmpv4_echo_request(7, seq),
        0 => b.icmpv4_echo_reply(7, seq),
        _ => b.icmpv4_raw(ty, code, [0; 4]),
    };
    step.write(&mut out, &[0x55; 32]).expect("ICMP frame");
    out
}

fn icmp6(src: [u8; 16], dst: [u8; 16], ty: u8, seq: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(src, dst, 64);
    let mut out = Vec::new();
    let step = if ty == 128 {
        b.icmpv6_echo_request(9, seq)
    } else {
        b.icmpv6_echo_reply(9, seq)
    };
    step.write(&mut out, &[0x66; 32]).expect("ICMPv6 frame");
    out
}

#[test]
fn icmp_echo_pairs_are_one_flow_with_type_code_and_the_reference_community_id() {
    let (a, b) = ([10, 20, 0, 5], [198, 51, 100, 7]);
    let a6: [u8; 16] = "2001:db8::5"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    let b6: [u8; 16] = "2001:db8:ff::7"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    let recs = full(vec![
        (T0, icmp4(a, b, 8, 0, 1)),
        (T0 + 1_000, icmp4(b, a, 0, 0, 1)),
        (T0 + 1_000_000, icmp4(a, b, 8, 0, 2)),
        (T0 + 1_001_000, icmp4(b, a, 0, 0, 2)),
        // Port unreachable from the far end: a one-way message, its own flow.
        (T0 + 2_000_000, icmp4(b, a, 3, 3, 0)),
        (T0 + 3_000_000, icmp6(a6, b6, 128, 1)),
        (T0 + 3_001_000, icmp6(b6, a6, 129, 1)),
    ]);
    for seed in [0u16, 4242] {
        let extra = if seed == 0 {
            String::new()
        } else {
            format!("[capture]\ncommunity_id_seed = {seed}\n")
        };
        let ev = analyze(&format!("icmp{seed}"), &extra, &recs);
        let fl = flows(&ev);
        assert_eq!(
            fl.len(),
            3,
            "echo pair, unreachable, ICMPv6 echo pair: {fl:#?}"
        );
        let id = |t: &[(u16, &str); 2]| t.iter().find(|x| x.0 == seed).map(|x| x.1.to_string());

        let echo = fl
            .iter()
            .find(|e| e.icmp_type == Some(8))
            .expect("echo flow");
        assert_eq!(echo.proto.as_deref(), Some("ICMP"));
        assert_eq!(echo.src_ip.as_deref(), Some("10.20.0.5"));
        assert_eq!(
            (echo.src_port, echo.dest_port),
            (None, None),
            "no ports on ICMP"
        );
        assert_eq!(echo.icmp_code, Some(0));
        assert_eq!(
            (echo.response_icmp_type, echo.response_icmp_code),
            (Some(0), Some(0))
        );
        assert_eq!(pkts(echo), (2, 2), "requests and replies in one flow");
        assert_eq!(echo.community_id, id(&ECHO_ID), "seed {seed}");

        let un = fl
            .iter()
            .find(|e| e.icmp_type == Some(3))
            .expect("unreachable flow");
        assert_eq!(un.src_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(un.icmp_code, Some(3));
        assert_eq!(un.response_icmp_type, None, "never answered");
        assert_eq!(pkts(un), (1, 0));
        assert_eq!(un.community_id, id(&UNREACH_ID), "seed {seed}");

        let e6 = fl
            .iter()
            .find(|e| e.icmp_type == Some(128))
            .expect("ICMPv6 echo flow");
        assert_eq!(e6.proto.as_deref(), Some("IPv6-ICMP"));
        assert_eq!(
            (e6.response_icmp_type, e6.response_icmp_code),
            (Some(129), Some(0))
        );
        assert_eq!(pkts(e6), (1, 1));
        assert_eq!(e6.community_id, id(&ECHO6_ID), "seed {seed}");
    }
}

/// An Ethernet frame carrying an IPv4 (`src`, `dst` of 4 bytes) or IPv6 packet of protocol
/// `proto` with `body` after the IP header.
fn raw_ip(src: &[u8], dst: &[u8], proto: u8, body: &[u8]) -> Vec<u8> {
    let mut f = [MAC_B, MAC_A].concat();
    if src.len() == 4 {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    } else {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
    }
    f.extend_from_slice(src);
    f.extend_from_slice(dst);
    f.extend_from_slice(body);
    f
}

#[test]
fn sctp_and_portless_protocols_are_named_and_hashed_as_eve() {
    let (a, b) = ([10, 20, 0, 5], [198, 51, 100, 7]);
    let a6 = "2001:db8::5"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    let b6 = "2001:db8:ff::7"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    // SCTP 2905 -> 2905 (common header: ports, verification tag, checksum; one chunk).
    let mut sctp = Vec::new();
    for v in [2905u16, 2905] {
        sctp.extend_from_slice(&v.to_be_bytes());
    }
    sctp.extend_from_slice(&[0; 8]);
    sctp.extend_from_slice(&[
        1, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 1, 0, 1, 0, 0, 0, 1,
    ]);
    let recs = full(vec![
        (T0, raw_ip(&a, &b, 132, &sctp)),
        (T0 + 1000, raw_ip(&a6, &b6, 50, &[0x77; 24])),
    ]);
    let ev = analyze("sctp", "", &recs);
    let fl = flows(&ev);
    assert_eq!(fl.len(), 2, "{fl:#?}");
    let s = fl
        .iter()
        .find(|e| e.proto.as_deref() == Some("SCTP"))
        .expect("SCTP named as EVE");
    assert_eq!((s.src_port, s.dest_port), (Some(2905), Some(2905)));
    // Corelight `communityid` 1.5.0: make_sctp("10.20.0.5", "198.51.100.7", 2905, 2905).
    assert_eq!(
        s.community_id.as_deref(),
        Some("1:gx6GDpd4wF4Xz+3wjeq4nLmEXlY=")
    );
    let esp = fl
        .iter()
        .find(|e| e.proto.as_deref() == Some("ESP"))
        .expect("ESP named as EVE");
    assert_eq!((esp.src_port, esp.dest_port), (None, None), "no ports");
    // FlowTuple(50, "2001:db8::5", "2001:db8:ff::7").
    assert_eq!(
        esp.community_id.as_deref(),
        Some("1:CYnzrsNxn7jAP6GLnzjy8xjY8cQ=")
    );
}

/// The Community ID specification's own baseline: its capture (TCP, UDP, SCTP, ICMP, ICMPv6,
/// RSVP) through `analyze` with seed 0 and seed 1 gives flows carrying exactly the IDs the
/// reference implementation computed for its packets (`agent/testdata/community-id/`).
#[test]
fn flows_of_the_specs_baseline_capture_carry_its_ids_for_two_seeds() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/community-id");
    let pcap = data.join("combined.pcap");
    for (seed, baseline) in [(0u16, "baseline_deflt.json"), (1, "baseline_seed1.json")] {
        let text = std::fs::read_to_string(data.join(baseline)).expect("baseline readable");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("baseline JSON");
        let want: std::collections::BTreeSet<String> = rows
            .iter()
            .map(|r| r["communityid"].as_str().expect("communityid").to_string())
            .collect();
        let dir = common::config_dir(
            &format!("evekey-spec{seed}"),
            &format!("[capture]\ncommunity_id_seed = {seed}\n"),
        );
        let (out, stderr, ok) = common::analyze(&dir, &[pcap.as_path()], 1, "events.jsonl");
        assert!(ok, "analyze failed: {stderr}");
        let ev = common::events(&out);
        let fl = flows(&ev);
        let got: std::collections::BTreeSet<String> = fl
            .iter()
            .map(|e| e.community_id.clone().expect("community_id on every flow"))
            .collect();
        assert_eq!(got.len(), fl.len(), "seed {seed}: one ID per flow");
        assert_eq!(got, want, "seed {seed}");
        assert!(want.len() >= 14, "{} baseline IDs", want.len());
    }
}
