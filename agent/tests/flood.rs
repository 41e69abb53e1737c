//! SYN flood against the flow cap (a smaller but representative version of the 10 M flood that
//! `bench/run.sh` runs in release through `examples/bench_flood.rs`).
//!
//! 1. Tracker level, checked after every packet: 200,000 SYNs from distinct sources against a
//!    cap of 10,000 never grow the table beyond the cap, every eviction is counted, and an
//!    established flow created before the flood (idle during it) survives.
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
use crossline_agent::testgen::{frame, L4};
use crossline_agent::worker::{Worker, WorkerContext};
use crossline_config::agent::CaptureConfig;
use crossline_config::event::{Event, EventType};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
            records.push((fl.key.lo_port.max(fl.key.hi_port), r))
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
    assert_eq!(f.pkts, [5, 3], "client sent 5 packets, server 3");
    assert!(!f.midstream);
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
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    let (mut cfg, _) = crossline_config::load_agent_config(path, crossline_config::today_beijing())
        .expect("examples/agent.toml is valid");
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
    };
    let shared = DetectShared::new(&cfg).expect("detector state");
    let (tx, rx) = crossbeam_channel::bounded(8);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(10);
    let mut d = Dispatcher::new(
        vec![tx],
        pool_rx,
        foldhash::fast::RandomState::default(),
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
