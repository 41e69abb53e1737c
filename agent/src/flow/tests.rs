//! Tracker tests: initiator selection, TCP close and reuse, eviction, active timeout.

use super::*;
use crate::decode::Decoded;

fn pkt(a: u8, ap: u16, b: u8, bp: u16, flags: u8, seq: u32) -> Decoded {
    let mut d = Decoded {
        proto: ip_proto::TCP,
        src_port: ap,
        dst_port: bp,
        tcp_flags: flags,
        tcp_seq: seq,
        ..Decoded::default()
    };
    d.src[..4].copy_from_slice(&[10, 0, 0, a]);
    d.dst[..4].copy_from_slice(&[10, 0, 0, b]);
    d
}

fn cfg(capacity: usize) -> CaptureConfig {
    CaptureConfig {
        flows_per_worker: capacity,
        ..CaptureConfig::default()
    }
}

type Records = Vec<(u64, EndReason, [u64; 2], bool)>;

fn run(t: &mut FlowTracker<(), ()>, pkts: &[(Decoded, i64)], out: &mut Records) {
    for (d, ts) in pkts {
        t.on_packet(d, *ts, 60, &mut |f, r| {
            out.push((f.flow_id, r, f.pkts, f.initiator_is_lo))
        });
    }
}

const S: u8 = tcp_flags::SYN;
const SA: u8 = tcp_flags::SYN | tcp_flags::ACK;
const A: u8 = tcp_flags::ACK;
const FA: u8 = tcp_flags::FIN | tcp_flags::ACK;

#[test]
fn syn_sender_is_initiator_even_when_it_sorts_high() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    // 10.0.0.9 (sorts high) sends the SYN.
    run(
        &mut t,
        &[
            (pkt(9, 5000, 1, 80, S, 7), 0),
            (pkt(1, 80, 9, 5000, SA, 100), 1),
        ],
        &mut out,
    );
    let idx = t
        .table()
        .find(&FlowKey::from_decoded(&pkt(9, 5000, 1, 80, S, 7)).0)
        .expect("flow");
    let f = t.flow_mut(idx);
    assert!(!f.initiator_is_lo);
    assert_eq!(f.pkts, [1, 1]);
    assert_eq!(f.tcp.state, TcpState::Established);
    assert!(!f.midstream);
}

#[test]
fn syn_ack_first_means_its_receiver_initiated() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    run(
        &mut t,
        &[
            (pkt(1, 80, 9, 5000, SA, 100), 0),
            (pkt(9, 5000, 1, 80, A, 8), 1),
        ],
        &mut out,
    );
    let idx = t
        .table()
        .find(&FlowKey::from_decoded(&pkt(1, 80, 9, 5000, A, 0)).0)
        .expect("flow");
    let f = t.flow_mut(idx);
    assert!(
        !f.initiator_is_lo,
        "10.0.0.9 received the SYN-ACK, so it initiated"
    );
    assert_eq!(
        f.pkts,
        [1, 1],
        "one packet each way, attributed by initiator"
    );
}

#[test]
fn midstream_first_sender_is_initiator_and_counted() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    run(&mut t, &[(pkt(9, 5000, 1, 80, A, 8), 0)], &mut out);
    let c = t.take_counters();
    assert_eq!((c.created, c.midstream), (1, 1));
}

#[test]
fn fin_both_ways_then_new_syn_starts_a_new_flow() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    run(
        &mut t,
        &[
            (pkt(1, 5000, 2, 80, S, 1), 0),
            (pkt(2, 80, 1, 5000, SA, 9), 1),
            (pkt(1, 5000, 2, 80, FA, 2), 2),
            (pkt(2, 80, 1, 5000, FA, 10), 3),
            (pkt(1, 5000, 2, 80, A, 3), 4),
            (pkt(1, 5000, 2, 80, S, 500), 5),
        ],
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, EndReason::Fin);
    assert_eq!(out[0].2, [3, 2]);
    // The closed timeout writes the new flow out later only if idle; drain now.
    t.drain(&mut |f, r| out.push((f.flow_id, r, f.pkts, f.initiator_is_lo)));
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].2, [1, 0]);
    assert_ne!(out[0].0, out[1].0, "distinct flow ids");
}

#[test]
fn retransmitted_syn_stays_in_the_flow() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    run(
        &mut t,
        &[
            (pkt(1, 5000, 2, 80, S, 1), 0),
            (pkt(1, 5000, 2, 80, S, 1), 1_000_000),
        ],
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(t.table().len(), 1);
}

#[test]
fn rst_closes_and_closed_timeout_writes_reason_rst() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    run(
        &mut t,
        &[
            (pkt(1, 5000, 2, 80, S, 1), 0),
            (pkt(2, 80, 1, 5000, tcp_flags::RST | A, 0), 10),
        ],
        &mut out,
    );
    assert_eq!(
        t.expire(1_000_000, 100, &mut |f, r| out
            .push((f.flow_id, r, f.pkts, true))),
        0
    );
    assert_eq!(
        t.expire(2_000_010, 100, &mut |f, r| out
            .push((f.flow_id, r, f.pkts, true))),
        1
    );
    assert_eq!(out[0].1, EndReason::Rst);
}

#[test]
fn unestablished_times_out_after_5s_established_does_not() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    run(
        &mut t,
        &[
            (pkt(1, 5000, 2, 80, S, 1), 0),
            (pkt(3, 5001, 2, 80, S, 1), 0),
            (pkt(2, 80, 3, 5001, SA, 1), 1),
        ],
        &mut out,
    );
    let mut rec = |f: &mut Flow<(), ()>, r| out.push((f.flow_id, r, f.pkts, true));
    assert_eq!(t.expire(5_000_000, 100, &mut rec), 1);
    assert_eq!(t.table().len(), 1);
    assert_eq!(t.expire(299_000_000, 100, &mut rec), 0);
    assert_eq!(t.expire(300_000_001, 100, &mut rec), 1);
}

#[test]
fn full_table_evicts_the_stalest() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(2), 0, 1);
    let mut out = Records::new();
    run(
        &mut t,
        &[
            (pkt(1, 1, 2, 80, S, 1), 0),
            (pkt(3, 1, 2, 80, S, 1), 10),
            (pkt(1, 1, 2, 80, A, 2), 20),
            (pkt(4, 1, 2, 80, S, 1), 30),
        ],
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, EndReason::Evicted);
    assert_eq!(out[0].0, 2, "the flow of 10.0.0.3 was least recently seen");
    assert_eq!(t.take_counters().evicted, 1);
}

#[test]
fn active_timeout_writes_a_running_record_and_keeps_the_flow() {
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    let mut pkts = vec![
        (pkt(1, 5000, 2, 80, S, 1), 0),
        (pkt(2, 80, 1, 5000, SA, 1), 1),
    ];
    for s in 1..=301i64 {
        pkts.push((pkt(1, 5000, 2, 80, A, 2), s * 1_000_000));
    }
    run(&mut t, &pkts, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, EndReason::ActiveTimeout);
    assert_eq!(t.table().len(), 1, "flow kept");
}

#[test]
fn idle_timeout_splits_a_flow_even_without_a_periodic_expiry() {
    // UDP timeout 60 s by default. No `expire` call between the packets: the split must not
    // depend on when the periodic expiry runs (batch boundaries, number of workers).
    let mut t: FlowTracker<(), ()> = FlowTracker::new(&cfg(16), 0, 1);
    let mut udp = pkt(1, 5000, 2, 53, 0, 0);
    udp.proto = ip_proto::UDP;
    let mut out = Records::new();
    let second = 1_000_000;
    run(
        &mut t,
        &[
            (udp, 0),
            (udp, 59 * second),
            (udp, 119 * second),
            (udp, 179 * second + 1),
        ],
        &mut out,
    );
    // 59 s -> 119 s is exactly 60 s idle: due (same rule as `expire`, `last + timeout <= now`).
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1, EndReason::Timeout);
    assert_eq!(out[0].2, [2, 0], "first flow: the packets at 0 s and 59 s");
    assert_eq!(out[1].2, [1, 0], "second flow: the packet at 119 s");
    assert_eq!(t.table().len(), 1);
}

#[test]
fn app_proto_names_round_trip_and_cover_every_banner() {
    assert!(AppProto::NONE.name().is_none());
    assert!(!AppProto::NONE.is_encrypted());
    for name in crate::flow::table::ENCRYPTED_APP_PROTOS {
        assert!(APP_PROTOS.contains(&name), "{name} is a known protocol");
    }
    for name in APP_PROTOS {
        assert_eq!(
            AppProto::from_name(name).is_encrypted(),
            crate::flow::table::ENCRYPTED_APP_PROTOS.contains(&name),
            "{name}"
        );
    }
    for name in APP_PROTOS {
        assert_eq!(AppProto::from_name(name).name(), Some(name));
    }
    // Every name the banner detector can return must fit in the one-byte id.
    let samples: [(&[u8], bool, u8, u16); 4] = [
        (b"SSH-2.0-OpenSSH_9.6\r\n", false, ip_proto::TCP, 22),
        (
            b"220 mail.example ESMTP ready\r\n",
            false,
            ip_proto::TCP,
            25,
        ),
        (b"220 FTP server ready\r\n", false, ip_proto::TCP, 21),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            true,
            ip_proto::TCP,
            80,
        ),
    ];
    for (payload, from_init, proto, port) in samples {
        let name = crate::l7::banner::detect(payload, from_init, proto, port).expect("detected");
        assert!(
            AppProto::from_name(name).is_some(),
            "{name} not in APP_PROTOS"
        );
    }
    assert_eq!(std::mem::size_of::<AppProto>(), 1);
}

#[test]
fn active_timeout_after_a_quiet_stretch_writes_one_record_not_one_per_packet() {
    // Active timeout 300 s, established TCP idle timeout 300 s: packets at most 250 s apart keep
    // the flow alive. A record is due when a packet crosses the next multiple of 300 s after the
    // first packet, once per crossing, never once per packet.
    let mut t = FlowTracker::<(), ()>::new(&cfg(10), 0, 1);
    let mut out = Records::new();
    let s = 1_000_000i64;
    let pkts = vec![
        (pkt(1, 5000, 2, 80, S, 1), 0),
        (pkt(2, 80, 1, 5000, SA, 1), 1),
        (pkt(1, 5000, 2, 80, A, 2), 250 * s),
        (pkt(1, 5000, 2, 80, A, 2), 500 * s),
        (pkt(1, 5000, 2, 80, A, 2), 750 * s),
        (pkt(1, 5000, 2, 80, A, 2), 950 * s),
        (pkt(1, 5000, 2, 80, A, 2), 951 * s),
        (pkt(1, 5000, 2, 80, A, 2), 1_100 * s),
        (pkt(1, 5000, 2, 80, A, 2), 1_200 * s),
    ];
    run(&mut t, &pkts, &mut out);
    let running: Vec<u64> = out
        .iter()
        .filter(|r| r.1 == EndReason::ActiveTimeout)
        .map(|r| r.2[0])
        .collect();
    // The grid is 300 s, 600 s, 900 s, 1200 s from the first packet: the packets at 500 s,
    // 750 s, 950 s and 1200 s each close one interval; 951 s and 1100 s close none.
    assert_eq!(running.len(), 4, "{out:?}");
    assert_eq!(
        running,
        vec![3, 4, 5, 8],
        "initiator packets so far at each record"
    );
    assert_eq!(t.table().len(), 1, "flow kept");
}
