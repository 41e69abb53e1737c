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
