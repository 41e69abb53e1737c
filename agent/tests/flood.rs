//! SYN flood against the flow cap (a smaller but representative version of the 10 M flood that
//! `bench/run.sh` runs in release through `examples/bench_flood.rs`).
//!
//! 1. Tracker level, checked after every packet: 200,000 SYNs from distinct sources against a
//!    cap of 10,000 never grow the table beyond the cap, every eviction is counted, and an
//!    established flow created before the flood (idle during it) survives.
//! 3. IP fragment flood through the `analyze` binary: a generated capture where 1,000 incomplete
//!    first fragments per second (datagrams that never complete) run alongside fragmented UDP
//!    exports at ~273 datagrams per second: every export datagram is attributed in full, every
//!    fragment-map eviction and every unattributed fragment (packets and bytes) is counted.
//! 2. Whole data path (dispatcher → worker with the real classifier → writer → sink): the same
//!    flood; `stats.evictions` counts every eviction, and the established flow, which carries
//!    on after the flood and closes, is reported once, with reason `fin`, the right packet and
//!    byte counts and not as mid-stream.

use crossline_agent::analysis::EndReason;
use crossline_agent::capture::RawPacket;
use crossline_agent::decode::{decode, linktype, Decoded};
use crossline_agent::detect::{Classifier, DetectShared, FlowState};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::flow::FlowTracker;
use crossline_agent::pipeline::{Dispatcher, QueueMode};
use crossline_agent::sink::{EventSink, Writer};
use crossline_agent::stats::LiveStats;
use crossline_agent::taps::L7State;
use crossline_agent::worker::{Worker, WorkerContext};
use crossline_config::agent::CaptureConfig;
use crossline_config::event::{Event, EventType};
use crossline_testgen::{frame, L4};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

mod common;

const FLOOD: u32 = 200_000;
const CAP: usize = 10_000;
/// 2026-03-02 10:00 Beijing, a working day inside the example filings' windows.
const T0: i64 = 1_772_416_800_000_000;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

fn tcp(seq: u32, ack: Option<u32>, syn: bool, fin: bool) -> L4 {
    L4::Tcp {
        seq,
        ack,
        syn,
        fin,
        psh: !syn && !fin,
    }
}

/// The established flow: client 10.1.2.3:40000 -> 198.51.100.7:443.
struct Established {
    client: SocketAddr,
    server: SocketAddr,
}

const HELLO: &[u8] = b"POST /upload HTTP/1.1\r\nHost: api.partner.example\r\n\r\n";
const BODY: [u8; 1000] = [b'x'; 1000];

impl Established {
    fn new() -> Self {
        Established {
            client: sa("10.1.2.3:40000"),
            server: sa("198.51.100.7:443"),
        }
    }

    /// Handshake and the first request (before the flood).
    fn before(&self) -> Vec<Vec<u8>> {
        let (c, s) = (self.client, self.server);
        vec![
            frame(None, c, s, tcp(1000, None, true, false), b""),
            frame(None, s, c, tcp(5000, Some(1001), true, false), b""),
            frame(None, c, s, tcp(1001, Some(5001), false, false), b""),
            frame(None, c, s, tcp(1001, Some(5001), false, false), HELLO),
        ]
    }

    /// More data and the FIN exchange (after the flood).
    fn after(&self) -> Vec<Vec<u8>> {
        let (c, s) = (self.client, self.server);
        let off = 1001 + HELLO.len() as u32;
        vec![
            frame(None, c, s, tcp(off, Some(5001), false, false), &BODY),
            frame(None, s, c, tcp(5001, Some(off + 1000), false, true), b""),
            frame(None, c, s, tcp(off + 1000, Some(5002), false, true), b""),
            frame(None, s, c, tcp(5002, Some(off + 1001), false, false), b""),
        ]
    }
}

/// SYN frame `i` of the flood: distinct (address, port) per SYN, to a domestic server.
fn flood_syn(template: &mut [u8], i: u32) {
    let host = i / 25_000 + 1;
    let port = 10_000 + (i % 25_000) as u16;
    template[26..30].copy_from_slice(&[
        172,
        16 + (host >> 16) as u8,
        (host >> 8) as u8,
        host as u8,
    ]);
    template[34..36].copy_from_slice(&port.to_be_bytes());
}

fn syn_template() -> Vec<u8> {
    frame(
        None,
        sa("172.16.0.1:1024"),
        sa("10.9.9.9:80"),
        tcp(1, None, true, false),
        b"",
    )
}

#[test]
fn tracker_never_exceeds_the_cap_and_keeps_the_established_flow() {
    let cfg = CaptureConfig {
        flows_per_worker: CAP,
        ..CaptureConfig::default()
    };
    let mut t: FlowTracker<FlowState, L7State> = FlowTracker::new(&cfg, 0, 1);
    let est = Established::new();
    let mut ts = T0;
    let mut records: Vec<(u16, EndReason)> = Vec::new();
    let mut dec = Decoded::default();
    let mut feed = |t: &mut FlowTracker<FlowState, L7State>, f: &[u8], ts: i64| {
        decode(linktype::ETHERNET, f, &mut dec).expect("generated frame decodes");
        t.on_packet(&dec, ts, f.len() as u32, &mut |fl, r| {
            records.push((fl.key().lo_port.max(fl.key().hi_port), r))
        });
        assert!(t.table().len() <= CAP, "table grew to {}", t.table().len());
    };
    for f in est.before() {
        ts += 1000;
        feed(&mut t, &f, ts);
    }
    let mut syn = syn_template();
    for i in 0..FLOOD {
        flood_syn(&mut syn, i);
        ts += 10; // 2 s of flood: nothing reaches the 5 s unestablished timeout
        feed(&mut t, &syn, ts);
    }
    for f in est.after() {
        ts += 1000;
        feed(&mut t, &f, ts);
    }
    let c = t.take_counters();
    assert_eq!(c.created, u64::from(FLOOD) + 1);
    // The table holds the established flow and CAP - 1 flood flows; every other flood flow
    // was evicted, and each eviction was counted and reported.
    assert_eq!(c.evicted, u64::from(FLOOD) - (CAP as u64 - 1));
    assert_eq!(t.table().len(), CAP);
    let evicted = records
        .iter()
        .filter(|(_, r)| *r == EndReason::Evicted)
        .count();
    assert_eq!(evicted as u64, c.evicted);
    assert!(
        !records.iter().any(|(port, _)| *port == 40_000),
        "the established flow was written out during the flood: {:?}",
        records.iter().find(|(p, _)| *p == 40_000)
    );
    let key = crossline_agent::flow::FlowKey::from_decoded(&{
        decode(linktype::ETHERNET, &est.before()[0], &mut dec).expect("decodes");
        dec
    })
    .0;
    let idx = t
        .table()
        .find(&key)
        .expect("established flow still tracked");
    let f = t.flow_mut(idx);
    assert_eq!(f.pkts(), [5, 3], "client sent 5 packets, server 3");
    assert!(!f.midstream());
}

/// Keeps the established flow's events, counts the rest.
struct Watch {
    port: u16,
    kept: Arc<Mutex<Vec<Event>>>,
    others: Arc<Mutex<u64>>,
}

impl EventSink for Watch {
    fn write(&mut self, event: &Event, _line: &[u8]) -> std::io::Result<()> {
        if event.src_port == Some(self.port) {
            self.kept.lock().expect("sink lock").push(event.clone());
        } else {
            *self.others.lock().expect("sink lock") += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn pipeline_counts_evictions_and_reports_the_established_flow() {
    let mut cfg = common::frames::example_config();
    cfg.capture.flows_per_worker = CAP;
    let stats = Arc::new(LiveStats::new());
    let kept = Arc::new(Mutex::new(Vec::new()));
    let others = Arc::new(Mutex::new(0u64));
    let sink = Watch {
        port: 40_000,
        kept: kept.clone(),
        others: others.clone(),
    };
    let writer = Writer::start(vec![Box::new(sink)], stats.clone(), 64).expect("writer");
    let ctx = WorkerContext {
        gateway: cfg.gateway.clone(),
        capture: cfg.capture.clone(),
        workers: 1,
        stats: stats.clone(),
        dns: Arc::new(DnsCache::new(cfg.capture.dns_cache_entries)),
        direct: false,
        spare_lines: None,
        alert_lines_at_writer: false,
    };
    let shared = DetectShared::new(&cfg).expect("detector state");
    let (tx, rx) = crossbeam_channel::bounded(8);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(10);
    let mut d = Dispatcher::new(
        vec![tx],
        pool_rx,
        foldhash::fast::FixedState::default(),
        cfg.capture.fragment_entries,
        stats.clone(),
        QueueMode::Block,
    );
    let wtx = writer.sender();
    let worker = std::thread::spawn(move || {
        Worker::new(0, ctx, Classifier::new(shared, 0)).run(rx, pool_tx, wtx);
    });
    let mut ts = T0;
    let feed = |d: &mut Dispatcher, f: &[u8], ts: i64| {
        d.on_packet(RawPacket {
            ts_micros: ts,
            orig_len: f.len() as u32,
            data: f,
            linktype: linktype::ETHERNET,
            shared: None,
        })
    };
    let est = Established::new();
    for f in est.before() {
        ts += 1000;
        feed(&mut d, &f, ts);
    }
    let mut syn = syn_template();
    let mut max_active = 0;
    for i in 0..FLOOD {
        flood_syn(&mut syn, i);
        ts += 10;
        feed(&mut d, &syn, ts);
        if i % 4096 == 0 {
            max_active = max_active.max(
                stats
                    .flows_active
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
    }
    let mut bytes = [0u64; 2];
    for f in est.before().iter().chain(est.after().iter()) {
        // Client frames are the ones from port 40000 (source port at offset 34).
        let from_client = f[34..36] == 40_000u16.to_be_bytes();
        bytes[usize::from(!from_client)] += f.len() as u64;
    }
    for f in est.after() {
        ts += 1000;
        feed(&mut d, &f, ts);
    }
    d.finish();
    worker.join().expect("worker thread");
    writer.finish().expect("writer");

    let s = stats.snapshot();
    assert_eq!(s.packets, u64::from(FLOOD) + 8);
    assert_eq!(s.flows, u64::from(FLOOD) + 1);
    assert_eq!(s.evictions, u64::from(FLOOD) - (CAP as u64 - 1));
    assert!(
        max_active <= CAP as u64,
        "sampled {max_active} active flows"
    );
    let kept = kept.lock().expect("lock");
    let flows: Vec<&Event> = kept
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect();
    assert_eq!(
        flows.len(),
        1,
        "one record for the established flow: {flows:?}"
    );
    let rec = flows[0].flow.as_ref().expect("flow record");
    assert_eq!(rec.reason, "fin");
    assert!(!rec.midstream);
    assert_eq!((rec.pkts_toserver, rec.pkts_toclient), (5, 3));
    assert_eq!(
        (rec.bytes_toserver, rec.bytes_toclient),
        (bytes[0], bytes[1])
    );
    assert_eq!(flows[0].dest_ip.as_deref(), Some("198.51.100.7"));
    // Every evicted flood flow was written too (one flow record each), plus the flows left at
    // the end and the final stats; nothing else is expected from SYN-only flows.
    let others = *others.lock().expect("lock");
    assert!(
        others >= u64::from(FLOOD),
        "{others} events for {FLOOD} flood flows"
    );
}

/// Fragmented exports during a flood of incomplete first fragments, through `analyze`.
#[test]
fn fragment_flood_leaves_every_fragmented_export_attributed() {
    use crossline_testgen::PcapWriter;
    const SECONDS: i64 = 20;
    const FLOOD_PPS: i64 = 1000;
    const EXPORTS_PER_SEC: i64 = 273;
    const ORPHANS: u32 = 500;
    let mut pcap = PcapWriter::default();
    // The flood: first fragments (MF set) whose remaining fragments never come.
    let mut flood_frames = 0u64;
    for i in 0..SECONDS * FLOOD_PPS {
        let src = sa(&format!(
            "203.0.{}.{}:{}",
            (i / 250) % 250,
            i % 250 + 1,
            1024 + i % 60_000
        ));
        let f = frame(None, src, sa("10.1.0.1:53"), L4::Udp, &[0x5a; 1200]);
        let frags = common::fragment_ipv4(&f, 512, (i % 65_536) as u16);
        pcap.push(T0 + i * 1_000_000 / FLOOD_PPS, frags[0].clone());
        flood_frames += 1;
    }
    // The exports: UDP 10.20.0.5 -> 198.51.100.7:9000, 3,000 bytes, three fragments each,
    // the fragments 1 ms apart; every 7th datagram's fragments arrive last-first.
    let mut export_bytes = 0u64;
    let mut exports = 0u64;
    for i in 0..SECONDS * EXPORTS_PER_SEC {
        let src = sa(&format!("10.20.0.5:{}", 20_000 + i));
        let f = frame(None, src, sa("198.51.100.7:9000"), L4::Udp, &[0x33; 3000]);
        let mut frags = common::fragment_ipv4(&f, 1480, (i % 65_536) as u16 ^ 0x8000);
        assert_eq!(frags.len(), 3);
        if i % 7 == 0 {
            frags.reverse();
        }
        let t = T0 + i * 1_000_000 / EXPORTS_PER_SEC;
        for (k, fr) in frags.into_iter().enumerate() {
            export_bytes += fr.len() as u64;
            pcap.push(t + k as i64 * 1000, fr);
        }
        exports += 1;
    }
    // Later fragments whose first fragment never comes: unattributed, counted.
    let mut orphan_bytes = 0u64;
    for i in 0..ORPHANS {
        let f = frame(
            None,
            sa("203.0.113.9:7"),
            sa("10.1.0.2:7"),
            L4::Udp,
            &[1; 600],
        );
        let frags = common::fragment_ipv4(&f, 512, i as u16);
        orphan_bytes += frags[1].len() as u64;
        pcap.push(T0 + i64::from(i) * 10_000, frags[1].clone());
    }
    let dir = common::config_dir("fragflood", "");
    let path = dir.join("flood.pcap");
    pcap.write(&path).expect("write capture");
    let started = std::time::Instant::now();
    let (out, stderr, ok) = common::analyze(&dir, &[path.as_path()], 1, "events.json");
    let elapsed = started.elapsed();
    assert!(ok, "analyze failed: {stderr}");
    let events = common::events(&out);
    let mut got_bytes = 0u64;
    let mut got_pkts = 0u64;
    let mut flows = 0u64;
    for e in events.iter().filter(|e| e.event_type == EventType::Flow) {
        if e.dest_port == Some(9000) {
            let f = e.flow.as_ref().expect("flow record");
            got_bytes += f.bytes_toserver;
            got_pkts += f.pkts_toserver;
            flows += 1;
        }
    }
    let stats = events
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::Stats)
        .and_then(|e| e.stats.clone())
        .expect("final stats event");
    let evicted = stats.drops.get("fragment_table").copied().unwrap_or(0);
    eprintln!(
        "fragment flood: {exports} fragmented exports among {flood_frames} incomplete first \
         fragments: {flows} export flows, {got_bytes}/{export_bytes} bytes attributed, \
         {evicted} fragment-map evictions, analyze took {elapsed:?} for {} frames",
        stats.packets
    );
    assert_eq!(flows, exports, "one flow per export datagram");
    assert_eq!(got_pkts, exports * 3, "every fragment counted in its flow");
    assert_eq!(got_bytes, export_bytes, "every export byte attributed");
    assert!(
        evicted > 0 && evicted <= flood_frames,
        "fragment-map evictions counted: {evicted}"
    );
    assert_eq!(
        stats.ignored.get("fragment_unattributed"),
        Some(&u64::from(ORPHANS)),
        "{:?}",
        stats.ignored
    );
    assert_eq!(
        stats.ignored.get("fragment_unattributed_bytes"),
        Some(&orphan_bytes)
    );
}
