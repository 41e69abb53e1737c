//! Live verdicts at the first exported byte: a shard [`Worker`] without a tick sync (as `run`
//! drives it) with the real [`Classifier`] (registry from `examples/registry.toml`, domestic
//! 10.0.0.0/8) raises a flow's verdict alert in the batch of its first export payload, not at
//! the flow's end; the flow record still carries the totals and the alert is not raised twice.
//! A flow whose name arrives after its first payload is judged again once, and an alert that
//! comes from the new verdict says so.

mod common;

use crossline_agent::decode::decode;
use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::pipeline::{Batch, PacketMeta};
use crossline_agent::sink::WriterMsg;
use crossline_agent::stats::LiveStats;
use crossline_agent::worker::Worker;
use crossline_config::event::{AlertKind, Event, EventType, Judged, VerdictStatus};
use crossline_testgen::{self as testgen, Generator, Label, TcpFlow};
use std::net::SocketAddr;
use std::sync::Arc;

/// A live-mode worker (no tick sync) over the example configuration.
fn worker() -> (Worker<Classifier>, Arc<DnsCache>) {
    let cfg = common::frames::example_config();
    let dns = Arc::new(DnsCache::new(cfg.capture.dns_cache_entries));
    let ctx =
        common::frames::worker_context(&cfg, 1, Arc::new(LiveStats::new()), dns.clone(), false);
    let shared = DetectShared::new(&cfg).expect("detector state");
    (Worker::new(0, ctx, Classifier::new(shared, 0)), dns)
}

/// One batch holding the generated frames `frames` (decoded as the dispatcher does).
fn batch(frames: &[(i64, Vec<u8>)], first_seq: u64) -> Batch {
    let mut b = Batch::default();
    for (i, (ts, f)) in frames.iter().enumerate() {
        let mut dec = crossline_agent::decode::Decoded::default();
        decode(crossline_agent::decode::linktype::ETHERNET, f, &mut dec).expect("frame decodes");
        let start = dec.payload_off as usize;
        let payload = &f[start..start + dec.payload_len as usize];
        let payload_start = b.data.len() as u32;
        b.data.extend_from_slice(payload);
        b.metas.push(PacketMeta {
            ts_micros: *ts,
            orig_len: f.len() as u32,
            payload_start,
            chunk: crossline_agent::pipeline::IN_DATA,
            dec,
            seq: first_seq + i as u64,
            dns_response: false,
        });
        b.now = *ts;
    }
    b
}

/// The frames of one generated TCP connection.
fn frames(flow: &TcpFlow) -> Vec<(i64, Vec<u8>)> {
    let mut g = Generator::new();
    g.tcp(flow, Label::new("early", None));
    let bytes = g.pcap.to_bytes();
    // Classic pcap, microsecond records, as `PcapWriter` writes them.
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let word = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let ts = i64::from(word(at)) * 1_000_000 + i64::from(word(at + 4));
        let len = word(at + 8) as usize;
        out.push((ts, bytes[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    assert_eq!(out.len(), g.pcap.len(), "every generated frame read back");
    out
}

fn drain(worker: Worker<Classifier>) -> Vec<Event> {
    let (tx, rx) = crossbeam_channel::unbounded();
    worker.finish(&tx);
    drop(tx);
    rx.iter()
        .flat_map(|m| match m {
            WriterMsg::Keyed { out, .. } => out.into_events(),
            _ => Vec::new(),
        })
        .collect()
}

fn alerts(events: &[Event], kind: AlertKind) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.alert.as_ref().is_some_and(|a| a.kind == kind))
        .collect()
}

#[test]
fn unfiled_export_alerts_at_its_first_payload_and_once() {
    let client: SocketAddr = "10.99.7.1:40001".parse().expect("addr");
    let server: SocketAddr = "203.0.113.100:22".parse().expect("addr");
    let start = testgen::beijing_micros(2026, 6, 1, 10, 0, 0);
    let flow = TcpFlow::new(client, server, start)
        .send(vec![b'x'; 3000])
        .reply(vec![b'y'; 200]);
    let all = frames(&flow);
    // SYN, SYN-ACK, ACK, then the first export segment.
    let (head, tail) = all.split_at(4);

    let (mut w, _dns) = worker();
    w.process(&batch(head, 1));
    let early = w.take_events();
    let unfiled = alerts(&early, AlertKind::UnfiledExport);
    assert_eq!(
        unfiled.len(),
        1,
        "the unfiled export is alerted in the batch of its first payload: {early:#?}"
    );
    let e = unfiled[0];
    assert_eq!(e.judged, Some(Judged::FirstExport));
    let a = e.alert.as_ref().expect("alert");
    let so_far: u64 = head
        .iter()
        .filter(|(_, f)| f[26..30] == [10, 99, 7, 1])
        .map(|(_, f)| f.len() as u64)
        .sum();
    assert_eq!(
        a.bytes, so_far,
        "the early alert carries the bytes seen by then"
    );
    assert!(
        a.summary.contains("judged at the first export"),
        "{}",
        a.summary
    );
    assert!(
        early.iter().all(|e| e.event_type != EventType::Flow),
        "no flow record yet"
    );

    w.process(&batch(tail, 5));
    let rest = drain(w);
    assert!(
        alerts(&rest, AlertKind::UnfiledExport).is_empty(),
        "the verdict alert is not raised again at the flow's end: {rest:#?}"
    );
    let rec: Vec<&Event> = rest
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect();
    assert_eq!(rec.len(), 1);
    let total: u64 = all
        .iter()
        .filter(|(_, f)| f[26..30] == [10, 99, 7, 1])
        .map(|(_, f)| f.len() as u64)
        .sum();
    assert_eq!(
        rec[0].export_bytes,
        Some(total),
        "the record has the totals"
    );
    let v = rec[0].verdict.as_ref().expect("verdict");
    assert_eq!(v.status, VerdictStatus::Unfiled);
    assert!(rec[0].flow.as_ref().is_some_and(|f| f.alerted));
}

#[test]
fn a_name_arriving_later_rejudges_the_flow_once() {
    // shunyi-motors files telemetry.motors.example (FTZ-2026-0012, tcp/443) for 10.30.0.0/16.
    // DNS gave that name for the server's address: without a name of its own the flow is filed.
    // Its ClientHello (after a cleartext start) names another host: recipient not filed.
    let client: SocketAddr = "10.30.1.5:40002".parse().expect("addr");
    let server: SocketAddr = "203.0.113.10:443".parse().expect("addr");
    let start = testgen::beijing_micros(2026, 6, 1, 10, 0, 0);
    let mut flow = TcpFlow::new(client, server, start)
        .send(b"EHLO gateway\r\n".to_vec())
        .reply(b"220 ready\r\n".to_vec())
        .send(testgen::tls_client_hello(
            Some("upload.other.example"),
            false,
        ))
        .reply(vec![b'y'; 200]);
    // The ClientHello after a cleartext start is looked for in one segment.
    flow.mss = 4000;
    let all = frames(&flow);
    let (mut w, dns) = worker();
    dns.insert(
        server.ip(),
        "telemetry.motors.example",
        3600,
        start - 1_000_000,
    );
    // Handshake and the cleartext start: judged filed (no alert); then the server's answer
    // and the ClientHello.
    let (head, tail) = all.split_at(4);
    w.process(&batch(head, 1));
    let early = w.take_events();
    assert!(
        early.iter().all(|e| e.event_type != EventType::Alert),
        "filed by its DNS name at the first export: {early:#?}"
    );
    let (hello, rest) = tail.split_at(2);
    w.process(&batch(hello, 5));
    let rejudged = w.take_events();
    let rnf = alerts(&rejudged, AlertKind::RecipientNotFiled);

    assert_eq!(
        rnf.len(),
        1,
        "judged again when the SNI arrived: {rejudged:#?}"
    );
    assert_eq!(rnf[0].judged, Some(Judged::Rejudged));
    let a = rnf[0].alert.as_ref().expect("alert");
    assert_eq!(a.recipient.as_deref(), Some("upload.other.example"));
    assert!(a.summary.contains("judged again"), "{}", a.summary);

    w.process(&batch(rest, 7));
    let end = drain(w);
    assert!(
        alerts(&end, AlertKind::RecipientNotFiled).is_empty(),
        "not raised again at the end: {end:#?}"
    );
    let rec = end
        .iter()
        .find(|e| e.event_type == EventType::Flow)
        .expect("flow record");
    assert_eq!(
        rec.verdict.as_ref().map(|v| v.status),
        Some(VerdictStatus::RecipientNotFiled)
    );
    assert!(rec.flow.as_ref().is_some_and(|f| f.alerted));
}
