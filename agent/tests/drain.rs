//! The end of an offline capture with many flows still open: two shard [`Worker`]s sharing a
//! [`TickSync`] (as `analyze` drives them), with the real [`Classifier`] over the example
//! configuration, hold 20,000 TCP connections that are all open when the capture ends, their
//! last packets within its last second. Both finish at once on their own threads, as the
//! pipeline's threads do.
//!
//! The messages they send the ordered writer are replayed through the writer's rule (an event
//! is ready once it is keyed below every worker's watermark, less the reorder window unless the
//! watermark is exact). The test asserts that every connection's record comes out once, that
//! no event comes keyed below what the workers already said was ready (it would be written out
//! of order), and that the writer can write the records while the drain goes on: the most
//! events ever waiting for the watermarks stays a small part of the records, not all of them.

mod common;

use common::frames::{batches, tcp, worker_context};
use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::sink::{Item, WriterMsg};
use crossline_agent::stats::LiveStats;
use crossline_agent::worker::{TickSync, Worker, EPOCH_BACKSTEP_MICROS};
use crossline_testgen::{self as testgen, frame};
use std::net::SocketAddr;
use std::sync::Arc;

const CONNECTIONS: usize = 20_000;
const WORKERS: usize = 2;

/// The frames of every connection, in capture order, each with the connection it belongs to:
/// all handshakes first, then one request each (every tenth one to an address abroad, so
/// records with alerts are among them), so that every connection is open at the end.
fn frames(start: i64) -> Vec<(usize, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ts = start;
    let ends = |c: usize| -> (SocketAddr, SocketAddr) {
        let client = SocketAddr::from(([10, 7, (c >> 8) as u8, c as u8], 40_000));
        let server = if c.is_multiple_of(10) {
            SocketAddr::from(([203, 0, 113, 80], 443))
        } else {
            SocketAddr::from(([10, 200, 0, 1], 8080))
        };
        (client, server)
    };
    for c in 0..CONNECTIONS {
        let (client, server) = ends(c);
        for (src, dst, l4) in [
            (client, server, tcp(1000, None, true)),
            (server, client, tcp(9000, Some(1001), true)),
            (client, server, tcp(1001, Some(9001), false)),
        ] {
            ts += 10;
            out.push((c, ts, frame(None, src, dst, l4, b"")));
        }
    }
    // The requests, within the capture's last second, in another order than the handshakes.
    for i in 0..CONNECTIONS {
        let c = (i * 7919) % CONNECTIONS;
        let (client, server) = ends(c);
        ts += 40;
        let l4 = tcp(1001, Some(9001), false);
        out.push((
            c,
            ts,
            frame(None, client, server, l4, b"GET / HTTP/1.1\r\n\r\n"),
        ));
    }
    out
}

#[test]
fn many_open_flows_drain_in_order_while_the_writer_writes() {
    let cfg = common::frames::example_config();
    assert!(
        cfg.capture.flows_per_worker >= CONNECTIONS,
        "the example's flow table holds every connection"
    );
    let stats = Arc::new(LiveStats::new());
    let dns = Arc::new(DnsCache::new(cfg.capture.dns_cache_entries));
    let shared = DetectShared::new(&cfg).expect("detector state");
    let sync = Arc::new(TickSync::new(WORKERS));
    let mut workers: Vec<Worker<Classifier>> = (0..WORKERS)
        .map(|i| {
            let ctx = worker_context(&cfg, WORKERS, stats.clone(), dns.clone(), true);
            Worker::new(i, ctx, Classifier::new(shared.clone(), i)).with_tick_sync(sync.clone())
        })
        .collect();

    let start = testgen::beijing_micros(2026, 6, 1, 10, 0, 0);
    let all = frames(start);
    let last = all.last().expect("frames").1;
    for (w, worker) in workers.iter_mut().enumerate() {
        let mine = all
            .iter()
            .enumerate()
            .filter(|(_, (c, _, _))| c % WORKERS == w)
            .map(|(i, (_, ts, f))| (i as u64 + 1, *ts, f.as_slice()));
        for b in batches(mine) {
            worker.process(&b);
        }
    }

    // Both finish at once, as the pipeline's threads do at the end of the capture.
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::scope(|s| {
        for w in workers {
            let tx = tx.clone();
            s.spawn(move || w.finish(&tx));
        }
    });
    drop(tx);

    // Replay the messages through the ordered writer's rule.
    let mut ready = [(0u32, i64::MIN); WORKERS];
    let mut limit = (0u32, i64::MIN);
    let mut held: Vec<(u32, i64)> = Vec::new();
    let (mut late, mut most_held, mut records, mut messages) = (0usize, 0usize, 0usize, 0usize);
    let mut record_times = Vec::new();
    for m in rx.iter() {
        let WriterMsg::Keyed {
            worker,
            epoch,
            watermark,
            exact,
            out,
        } = m
        else {
            continue;
        };
        messages += 1;
        for (k, item) in out.keys.iter().zip(&out.items) {
            if (k.0, k.1) < limit {
                late += 1;
            }
            held.push((k.0, k.1));
            if matches!(item, Item::Line { .. }) {
                records += 1;
                record_times.push(k.1);
            }
        }
        most_held = most_held.max(held.len());
        let mark = if exact {
            watermark
        } else {
            watermark.saturating_sub(EPOCH_BACKSTEP_MICROS)
        };
        ready[worker] = ready[worker].max((epoch, mark));
        limit = ready.iter().copied().min().expect("workers");
        held.retain(|&k| k >= limit);
    }

    assert_eq!(
        records, CONNECTIONS,
        "one record per connection ({messages} messages)"
    );
    assert!(
        record_times
            .iter()
            .filter(|&&t| last - t < 1_000_000)
            .count()
            >= CONNECTIONS / 2,
        "most records end within the capture's last second, which a watermark less the reorder \
         window never passes before the end"
    );
    assert_eq!(late, 0, "events keyed below a watermark already passed");
    assert!(
        most_held <= CONNECTIONS / 4,
        "the writer could write the records as the drain went on: at most {most_held} events \
         waited for the watermarks at once, of {CONNECTIONS} records"
    );
}
