//! SYN flood against the flow cap: one established cross-border flow is opened, then N SYNs
//! from N distinct (address, port) pairs (default 10,000,000) go through the real data path —
//! [`Dispatcher`] (decode, shard hash, batching) → bounded channel → [`Worker`] with the real
//! [`Classifier`] (registry from `bench/agent-bench.toml`) → [`Writer`] with a sink that counts
//! and drops the serialised events — against a flow cap (default 100,000). Then the established
//! flow sends more data and closes. Prints the peak RSS, how often the table was sampled above
//! the cap (must be never), evictions, and the established flow's record.
//!
//! Run: `cargo run --release -p crossline-agent --example bench_flood [N] [CAP]`.
//! `agent/tests/flood.rs` asserts the same properties on a smaller flood in debug.

use crossline_agent::capture::RawPacket;
use crossline_agent::decode::linktype;
use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::pipeline::{Dispatcher, QueueMode};
use crossline_agent::sink::{EventSink, Writer};
use crossline_agent::stats::LiveStats;
use crossline_agent::worker::{Worker, WorkerContext};
use crossline_config::event::Event;
use crossline_testgen::{frame, L4};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counts events; keeps the JSON of the watched flow's records.
struct CountingSink {
    events: Arc<AtomicU64>,
    watched_port: u16,
    watched: Arc<Mutex<Vec<String>>>,
}

impl EventSink for CountingSink {
    fn write(&mut self, event: &Event, line: &[u8]) -> std::io::Result<()> {
        self.events.fetch_add(1, Ordering::Relaxed);
        if event.src_port == Some(self.watched_port) || event.dest_port == Some(self.watched_port) {
            if let Ok(mut w) = self.watched.lock() {
                w.push(String::from_utf8_lossy(line).into_owned());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// (current, peak) resident set in KiB from `/proc/self/status`.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
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

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let cap: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bench/agent-bench.toml"
    ));
    let (mut cfg, _) = crossline_config::load_agent_config(path, crossline_config::today_beijing())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.capture.flows_per_worker = cap;

    let stats = Arc::new(LiveStats::new());
    let events = Arc::new(AtomicU64::new(0));
    let watched = Arc::new(Mutex::new(Vec::new()));
    let client: SocketAddr = "10.1.2.3:40000".parse()?;
    let server: SocketAddr = "198.51.100.7:443".parse()?;
    let sink = CountingSink {
        events: events.clone(),
        watched_port: client.port(),
        watched: watched.clone(),
    };
    let writer = Writer::start(vec![Box::new(sink)], stats.clone(), 64)?;
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
    let shared = DetectShared::new(&cfg)?;
    let queue = cfg.capture.queue_batches.max(1);
    let (tx, rx) = crossbeam_channel::bounded(queue);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(queue + 2);
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

    let t0: i64 = 1_772_400_000_000_000; // 2026-03-01, inside the example filings' validity
    let mut ts = t0;
    let feed = |d: &mut Dispatcher, ts: i64, f: &[u8]| {
        d.on_packet(RawPacket {
            ts_micros: ts,
            orig_len: f.len() as u32,
            data: f,
            linktype: linktype::ETHERNET,
            shared: None,
        })
    };
    // The established flow: handshake and one exchange before the flood.
    let (cs, ss) = (1000u32, 5000u32);
    let hello = b"POST /upload HTTP/1.1\r\nHost: api.partner.example\r\n\r\n";
    for (src, dst, l4, data) in [
        (client, server, tcp(cs, None, true, false), &b""[..]),
        (server, client, tcp(ss, Some(cs + 1), true, false), &b""[..]),
        (
            client,
            server,
            tcp(cs + 1, Some(ss + 1), false, false),
            &b""[..],
        ),
        (
            client,
            server,
            tcp(cs + 1, Some(ss + 1), false, false),
            &hello[..],
        ),
    ] {
        ts += 1000;
        feed(&mut d, ts, &frame(None, src, dst, l4, data));
    }

    // The flood: SYNs from distinct sources to a domestic server, 1 µs apart.
    let target: SocketAddr = "10.9.9.9:80".parse()?;
    let mut syn = frame(
        None,
        "172.16.0.1:1024".parse()?,
        target,
        tcp(1, None, true, false),
        b"",
    );
    let start = Instant::now();
    let mut over_cap = 0u64;
    let mut max_active = 0u64;
    for i in 0..n {
        let host = (i / 25_000) as u32 + 1;
        let port = 10_000 + (i % 25_000) as u16;
        syn[26..30].copy_from_slice(&[172, 16 + (host >> 16) as u8, (host >> 8) as u8, host as u8]);
        syn[34..36].copy_from_slice(&port.to_be_bytes());
        ts += 1;
        feed(&mut d, ts, &syn);
        if i % 65_536 == 0 {
            let active = stats.flows_active.load(Ordering::Relaxed);
            max_active = max_active.max(active);
            if active > cap as u64 {
                over_cap += 1;
            }
        }
        if i > 0 && i % 2_000_000 == 0 {
            let (rss, _) = rss_kib();
            println!(
                "flood: {i} SYNs, {:.2} M SYN/s, active flows {}, evictions {}, RSS {:.1} MiB",
                i as f64 / start.elapsed().as_secs_f64() / 1e6,
                stats.flows_active.load(Ordering::Relaxed),
                stats.evictions.load(Ordering::Relaxed),
                rss as f64 / 1024.0
            );
        }
    }
    let flood_secs = start.elapsed().as_secs_f64();
    // The established flow carries on after the flood and closes.
    let body = vec![b'x'; 1000];
    let off = cs + 1 + hello.len() as u32;
    for (src, dst, l4, data) in [
        (
            client,
            server,
            tcp(off, Some(ss + 1), false, false),
            &body[..],
        ),
        (
            server,
            client,
            tcp(ss + 1, Some(off + 1000), false, true),
            &b""[..],
        ),
        (
            client,
            server,
            tcp(off + 1000, Some(ss + 2), false, true),
            &b""[..],
        ),
        (
            server,
            client,
            tcp(ss + 2, Some(off + 1001), false, false),
            &b""[..],
        ),
    ] {
        ts += 1000;
        feed(&mut d, ts, &frame(None, src, dst, l4, data));
    }
    d.finish();
    let _ = worker.join();
    writer.finish()?;
    let (_, peak) = rss_kib();
    let s = stats.snapshot();
    println!(
        "flood: {n} SYNs in {flood_secs:.2} s ({:.2} M SYN/s), cap {cap}, flows created {}, \
         evictions {}, events {}, max sampled active flows {max_active} (samples above cap: {over_cap}), \
         peak RSS {:.1} MiB",
        n as f64 / flood_secs / 1e6,
        s.flows,
        s.evictions,
        events.load(Ordering::Relaxed),
        peak as f64 / 1024.0
    );
    let w = watched.lock().map(|w| w.clone()).unwrap_or_default();
    let flows: Vec<&String> = w
        .iter()
        .filter(|l| l.contains("\"event_type\":\"flow\""))
        .collect();
    match flows.as_slice() {
        [one]
            if one.contains("\"reason\":\"fin\"")
                && !one.contains("\"midstream\":true")
                && one.contains("\"pkts_toserver\":5")
                && one.contains("\"pkts_toclient\":3") =>
        {
            println!(
                "flood: established flow kept: one record, reason fin, 5+3 packets, not mid-stream"
            )
        }
        _ => println!(
            "flood: established flow NOT kept intact: {} record(s): {flows:?}",
            flows.len()
        ),
    }
    Ok(())
}
