//! No allocation per packet on the hot path.
//!
//! A counting global allocator wraps `System`. A shard [`Worker`] with the real
//! [`Classifier`] (registry from `examples/registry.toml`, domestic 10.0.0.0/8) is warmed with a
//! generated capture: cross-border TLS, HTTP (with personal information in the clear), QUIC,
//! DNS, plain UDP and flows, handshakes and first payloads included, so flow entries, L7
//! state, classifier state and caches exist. Then more packets of those already-known flows
//! (data both ways, cleartext with identifiers, repeated DNS answers) go through
//! `Worker::process` with counting switched on for this thread, and the test asserts zero
//! allocations. Afterwards the flow records are checked to prove the measured packets really
//! landed in the known flows.
//!
//! Counting is per thread (a thread-local switch), so the test harness's own threads do not
//! disturb the count. The same allocator keeps the heap bytes each thread holds, which the
//! reassembly-budget test uses to measure memory per flow.
// The counting allocator needs `unsafe impl GlobalAlloc`; this is the only unsafe code in the
// tests, and it only forwards to `System`.
#![allow(unsafe_code)]

mod common;

use common::frames::tcp;
use crossbeam_channel::unbounded;
use crossline_agent::decode::{decode, Frag};
use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::pipeline::{Batch, PacketMeta, BATCH_PACKETS};
use crossline_agent::sink::WriterMsg;
use crossline_agent::stats::LiveStats;
use crossline_agent::worker::{Worker, WorkerContext};
use crossline_config::event::{Event, EventType};
use crossline_testgen::{self as testgen, frame, L4};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations counted on this thread (a shared total would also see the counted
    /// allocations of tests running at the same time on other threads).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Heap bytes allocated minus freed by this thread (every allocation).
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn live(delta: i64) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

/// Heap bytes this thread holds (allocated minus freed by it).
fn live_bytes() -> i64 {
    LIVE.with(Cell::get)
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        live(layout.size() as i64);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        live(layout.size() as i64);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        live(new_size as i64 - layout.size() as i64);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(-(layout.size() as i64));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Count allocations made by this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

/// One generated frame with its capture time.
type Frame = (i64, Vec<u8>);

/// Decode frames into worker batches the way the dispatcher does (one worker), none of them a
/// fragment.
fn batches(frames: &[Frame]) -> Vec<Batch> {
    let frames = frames.iter().enumerate();
    let out = common::frames::batches(frames.map(|(i, (ts, f))| (i as u64 + 1, *ts, &f[..])));
    for m in out.iter().flat_map(|b| &b.metas) {
        assert!(matches!(m.dec.frag, Frag::None));
    }
    out
}

/// A TCP connection being generated: sequence numbers per side.
struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn open(client: SocketAddr, server: SocketAddr, ts: &mut i64, out: &mut Vec<Frame>) -> Conn {
        let (cseq, sseq) = (1000, 9000);
        for (src, dst, l4) in [
            (client, server, tcp(cseq, None, true)),
            (server, client, tcp(sseq, Some(cseq + 1), true)),
            (client, server, tcp(cseq + 1, Some(sseq + 1), false)),
        ] {
            *ts += 100;
            out.push((*ts, frame(None, src, dst, l4, b"")));
        }
        Conn {
            client,
            server,
            cseq: cseq + 1,
            sseq: sseq + 1,
        }
    }

    fn client_sends(&mut self, data: &[u8], ts: &mut i64, out: &mut Vec<Frame>) {
        *ts += 100;
        let l4 = tcp(self.cseq, Some(self.sseq), false);
        out.push((*ts, frame(None, self.client, self.server, l4, data)));
        self.cseq = self.cseq.wrapping_add(data.len() as u32);
    }

    fn server_sends(&mut self, data: &[u8], ts: &mut i64, out: &mut Vec<Frame>) {
        *ts += 100;
        let l4 = tcp(self.sseq, Some(self.cseq), false);
        out.push((*ts, frame(None, self.server, self.client, l4, data)));
        self.sseq = self.sseq.wrapping_add(data.len() as u32);
    }
}

fn udp(src: SocketAddr, dst: SocketAddr, data: &[u8], ts: &mut i64, out: &mut Vec<Frame>) {
    *ts += 100;
    out.push((*ts, frame(None, src, dst, L4::Udp, data)));
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

/// The warm-up capture and the packets of the same flows that are measured afterwards.
struct Traffic {
    warm: Vec<Frame>,
    measured: Vec<Frame>,
}

fn traffic() -> Traffic {
    // Capture time: a Monday morning in Beijing, inside the example filings' windows.
    let mut ts = testgen::beijing_micros(2026, 3, 2, 10, 0, 0);
    let mut warm = Vec::new();
    let mut measured = Vec::new();
    let encrypted = testgen::noise(1200, 11);
    let pi = testgen::pi_records(40, 3);
    let resolver = sa("10.0.0.53:53");
    let dns_client = sa("10.20.3.4:40053");
    let answer = testgen::dns_response(
        7,
        "api.partner.example",
        None,
        &[IpAddr::from([198, 51, 100, 7])],
        300,
    );
    let query = testgen::dns_query(7, "api.partner.example", false);
    let mut conns = Vec::new();
    for k in 0..8u16 {
        // TLS to a filed recipient and to an unfiled one.
        let mut c = Conn::open(
            sa(&format!("10.20.3.{}:{}", 10 + k, 50_000 + k)),
            sa(if k % 2 == 0 {
                "198.51.100.7:443"
            } else {
                "203.0.113.50:443"
            }),
            &mut ts,
            &mut warm,
        );
        let hello = testgen::tls_client_hello(Some("api.partner.example"), false);
        c.client_sends(&hello, &mut ts, &mut warm);
        c.server_sends(&encrypted, &mut ts, &mut warm);
        c.client_sends(&encrypted, &mut ts, &mut warm);
        conns.push((c, false));
        // Cleartext HTTP carrying personal information.
        let mut h = Conn::open(
            sa(&format!("10.30.1.{}:{}", 10 + k, 51_000 + k)),
            sa("203.0.113.80:80"),
            &mut ts,
            &mut warm,
        );
        let post = testgen::http_post("upload.unfiled.example", "/records", &pi);
        h.client_sends(&post, &mut ts, &mut warm);
        h.server_sends(&testgen::http_ok(20), &mut ts, &mut warm);
        conns.push((h, true));
    }
    // QUIC to a foreign server.
    let qc = sa("10.20.3.40:55000");
    let qs = sa("198.51.100.9:443");
    for d in testgen::quic_initials("eval.compute.example") {
        udp(qc, qs, &d, &mut ts, &mut warm);
    }
    udp(qs, qc, &encrypted, &mut ts, &mut warm);
    // DNS and plain UDP: one exchange each.
    udp(dns_client, resolver, &query, &mut ts, &mut warm);
    udp(resolver, dns_client, &answer, &mut ts, &mut warm);
    let (uc, us) = (sa("10.40.0.2:6000"), sa("192.0.2.77:7000"));
    udp(uc, us, &encrypted, &mut ts, &mut warm);
    udp(us, uc, &encrypted, &mut ts, &mut warm);

    // Measured: 30 more rounds on every known flow.
    for round in 0..30 {
        for (c, cleartext) in conns.iter_mut() {
            if *cleartext {
                c.client_sends(&pi[..1000], &mut ts, &mut measured);
            } else {
                c.client_sends(&encrypted, &mut ts, &mut measured);
            }
            c.server_sends(&encrypted[..200], &mut ts, &mut measured);
        }
        udp(qc, qs, &encrypted, &mut ts, &mut measured);
        udp(qs, qc, &encrypted, &mut ts, &mut measured);
        udp(dns_client, resolver, &query, &mut ts, &mut measured);
        udp(resolver, dns_client, &answer, &mut ts, &mut measured);
        udp(uc, us, &encrypted[..100 + round], &mut ts, &mut measured);
        udp(us, uc, &encrypted, &mut ts, &mut measured);
    }
    Traffic { warm, measured }
}

#[test]
fn known_flows_are_processed_without_allocating() {
    let cfg = common::frames::example_config();
    let stats = Arc::new(LiveStats::new());
    let dns = Arc::new(DnsCache::new(cfg.capture.dns_cache_entries));
    let ctx = common::frames::worker_context(&cfg, 1, stats, dns, false);
    let shared = DetectShared::new(&cfg).expect("detector state");
    let mut worker = Worker::new(0, ctx, Classifier::new(shared, 0));

    let t = traffic();
    let warm = batches(&t.warm);
    let measured = batches(&t.measured);
    let warm_span = t.warm.last().expect("warm").0 - t.warm[0].0;
    let measured_end = t.measured.last().expect("measured").0;
    // The measured packets stay within the first second, before the worker's first tick is due
    // (a tick is once a second, not per packet), and far from any flow timeout.
    assert!(measured_end - t.warm[0].0 < 1_000_000, "{warm_span}");

    // The counter itself works: one allocation is seen.
    let probe = allocations_during(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(16));
    });
    assert_eq!(
        probe, 1,
        "the counting allocator must see this thread's allocations"
    );

    for b in &warm {
        worker.process(b);
    }
    let n: usize = measured.iter().map(|b| b.metas.len()).sum();
    let allocations = allocations_during(|| {
        for b in &measured {
            worker.process(b);
        }
    });
    assert!(n >= 1000, "measured {n} packets");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while processing {n} packets of known flows"
    );

    // The measured packets really went to the known flows: every flow record carries its warm
    // and measured packets (30 rounds, one packet each way per round).
    let (tx, rx) = unbounded();
    worker.finish(&tx);
    drop(tx);
    let events: Vec<Event> = rx
        .iter()
        .flat_map(|m| match m {
            WriterMsg::Keyed { out, .. } => out.into_events(),
            _ => Vec::new(),
        })
        .collect();
    let flows: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect();
    assert_eq!(flows.len(), 16 + 3, "one record per flow, none split");
    for f in &flows {
        let rec = f.flow.as_ref().expect("flow record");
        assert!(
            rec.pkts_toserver >= 31 && rec.pkts_toclient >= 31,
            "{:?}:{:?} -> {:?}:{:?}: {} / {} packets",
            f.src_ip,
            f.src_port,
            f.dest_ip,
            f.dest_port,
            rec.pkts_toserver,
            rec.pkts_toclient
        );
        assert_eq!(rec.reason, "shutdown");
    }
    let alerts = events
        .iter()
        .filter(|e| e.event_type == EventType::Alert)
        .count();
    assert!(
        alerts > 0,
        "the classifier ran: unfiled exports raise alerts"
    );
}

/// 100,000 flows each holding a partial TLS ClientHello (a 3,000-byte record of which the
/// first 1,000 bytes arrived): the reassembly buffers of all of them stay within
/// `capture.reassembly_budget`, the flows past it are counted, and the heap held per flow is
/// measured (with the budget, and with a budget large enough to never refuse, as before).
#[test]
fn partial_handshakes_stay_within_the_reassembly_budget() {
    use crossline_agent::analysis::NoAnalysis;
    const FLOWS: u32 = 100_000;
    const BUDGET: u64 = 8 << 20;
    let run = |budget: u64| -> (i64, u64, u64) {
        let cfg = crossline_config::agent::CaptureConfig {
            flows_per_worker: 2 * FLOWS as usize,
            reassembly_budget: budget,
            ..Default::default()
        };
        let stats = Arc::new(LiveStats::new());
        let ctx = WorkerContext {
            gateway: "gw-budget".into(),
            capture: cfg,
            workers: 1,
            stats: stats.clone(),
            dns: Arc::new(DnsCache::new(16)),
            direct: false,
            spare_lines: None,
            alert_lines_at_writer: false,
        };
        let before = live_bytes();
        let mut worker = Worker::new(0, ctx, NoAnalysis);
        // A ClientHello record announcing 3,000 bytes, cut after 1,000.
        let mut hello = vec![
            0x16, 0x03, 0x01, 0x0b, 0xb8, 0x01, 0x00, 0x0b, 0xb4, 0x03, 0x03,
        ];
        hello.resize(1000, 0x11);
        let server = sa("198.51.100.7:443");
        let t0 = 1_772_416_800_000_000i64;
        let mut max_used = 0u64;
        let mut b = Batch::default();
        let mut seq = 0u64;
        let tcp = |seq: u32, ack: Option<u32>, syn: bool| L4::Tcp {
            seq,
            ack,
            syn,
            fin: false,
            psh: !syn,
        };
        for i in 0..FLOWS {
            let client = SocketAddr::new(
                IpAddr::from([10, 50, (i >> 8) as u8, i as u8]),
                10_000 + (i % 50_000) as u16,
            );
            let frames = [
                frame(None, client, server, tcp(100, None, true), b""),
                frame(None, server, client, tcp(900, Some(101), true), b""),
                frame(None, client, server, tcp(101, Some(901), false), &hello),
            ];
            for f in frames {
                let mut dec = crossline_agent::decode::Decoded::default();
                decode(crossline_agent::decode::linktype::ETHERNET, &f, &mut dec)
                    .expect("frame decodes");
                let start = dec.payload_off as usize;
                let payload = &f[start..start + dec.payload_len as usize];
                let payload_start = b.data.len() as u32;
                b.data.extend_from_slice(payload);
                seq += 1;
                let ts = t0 + i64::from(i) * 10;
                b.metas.push(PacketMeta {
                    ts_micros: ts,
                    orig_len: f.len() as u32,
                    payload_start,
                    chunk: crossline_agent::pipeline::IN_DATA,
                    dec,
                    seq,
                    dns_response: false,
                });
                b.now = ts;
                if b.metas.len() == BATCH_PACKETS {
                    worker.process(&b);
                    b.clear();
                    max_used = max_used.max(stats.reassembly_bytes.load(Ordering::Relaxed));
                }
            }
        }
        worker.process(&b);
        drop(b);
        max_used = max_used.max(stats.reassembly_bytes.load(Ordering::Relaxed));
        let held = live_bytes() - before;
        let refused = stats.reassembly_refused.load(Ordering::Relaxed);
        drop(worker);
        assert_eq!(
            stats.reassembly_bytes.load(Ordering::Relaxed),
            0,
            "every charge is given back when the flows are gone"
        );
        (held, max_used, refused)
    };
    let (held, max_used, refused) = run(BUDGET);
    let (held_unbounded, _, refused_unbounded) = run(u64::MAX);
    let per = |h: i64| h / i64::from(FLOWS);
    eprintln!(
        "{FLOWS} flows with a partial ClientHello: with a {BUDGET} B budget {} B heap per flow \
         ({held} B, {refused} flows parsed without reassembly, at most {max_used} B charged); \
         without a budget {} B per flow ({held_unbounded} B)",
        per(held),
        per(held_unbounded)
    );
    assert!(max_used <= BUDGET, "charged {max_used} > budget {BUDGET}");
    assert!(max_used > BUDGET / 2, "the budget was used: {max_used}");
    assert_eq!(refused_unbounded, 0);
    assert!(
        refused > u64::from(FLOWS) / 2,
        "most flows must be refused at this budget: {refused}"
    );
    // Same table and flows both times: the difference is the buffers the budget refused.
    assert!(
        held_unbounded - held > i64::from(FLOWS) * 900 - BUDGET as i64,
        "the budget must save the refused flows' buffers: {held} vs {held_unbounded}"
    );
}

/// The native capture-file reader allocates nothing per packet: a 2 MB pcap read through a
/// 64 KiB chunk (so the buffer is refilled and compacted about 30 times) costs no allocation
/// once the buffer has grown to the chunk; read through 64 KiB memory maps, none at all.
#[test]
fn capture_file_reader_reads_packets_without_allocating() {
    use crossline_agent::capture::file::FileReader;
    let t = traffic();
    let frames: Vec<&Frame> = t.warm.iter().chain(&t.measured).collect();
    let mut file = testgen::pcap_header().to_vec();
    let mut n = 0u64;
    while file.len() < 2 << 20 {
        for (ts, f) in &frames {
            testgen::push_pcap_record(&mut file, *ts, f.len() as u32, f);
            n += 1;
        }
    }
    let pcap = tempfile::Builder::new()
        .prefix("crossline-alloc-")
        .suffix(".pcap")
        .tempfile()
        .expect("temporary file");
    std::fs::write(pcap.path(), &file).expect("write pcap");
    let f = pcap.reopen().expect("open");
    let mut r = FileReader::with_chunk(f, 64 << 10).expect("pcap header");
    // Warm: the buffer starts small (files are opened up front) and grows to the chunk once.
    let mut seen = 0u64;
    while r.consumed() < 128 << 10 {
        assert!(r.next_packet().expect("read").is_some());
        seen += 1;
    }
    let mut bytes = 0usize;
    let allocs = allocations_during(|| {
        while let Ok(Some(p)) = r.next_packet() {
            seen += 1;
            bytes += p.raw.data.len();
        }
    });
    assert_eq!(seen, n, "every packet read");
    assert!(bytes > 1 << 20);
    assert_eq!(allocs, 0, "{allocs} allocations for {n} packets");

    // The same file through memory maps of 64 KiB (about 30 windows mapped and unmapped).
    let f = pcap.reopen().expect("open");
    let mut r = FileReader::mapped_with_window(f, 64 << 10).expect("pcap header");
    assert!(r.next_packet().expect("read").is_some());
    let mut seen = 1u64;
    let mut bytes = 0usize;
    let allocs = allocations_during(|| {
        while let Ok(Some(p)) = r.next_packet() {
            seen += 1;
            bytes += p.raw.data.len();
        }
    });
    assert_eq!(seen, n, "every packet read (mapped)");
    assert!(bytes > 1 << 20);
    assert_eq!(allocs, 0, "{allocs} allocations for {n} mapped packets");
}
