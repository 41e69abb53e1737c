//! The capture thread's own cost per packet: the native file reader alone, then the reader
//! plus the dispatcher (decode, fragment map, DNS learning, shard hash, copy into batches and
//! hand-off), as `analyze` runs them. The batches go to consumer threads that only hand them
//! back, so the figures are the capture thread's and nothing else's.
//!
//! Time is the capture thread's CPU time (`/proc/thread-self/schedstat`, nanoseconds on the
//! CPU), which other load on the machine does not inflate the way it inflates wall time.
//!
//! ```text
//! cargo run --release -p crossline-agent --example bench_capture -- FILE [RUNS] [WORKERS] [READER]
//! ```
//!
//! `READER` is `native` (the default here), `mmap` or `libpcap`, as `analyze --reader`.

use crossline_agent::capture::file::{OfflineInput, OfflineReader};
use crossline_agent::capture::{PacketSource, Status};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::pipeline::{Batch, Dispatcher, QueueMode};
use crossline_agent::stats::LiveStats;
use std::path::PathBuf;
use std::sync::Arc;

/// Nanoseconds the calling thread has spent on a CPU.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap_or_else(|e| panic!("/proc/thread-self/schedstat: {e}"));
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("/proc/thread-self/schedstat: unexpected content {s:?}"))
}

fn open(files: &[PathBuf], reader: OfflineReader) -> OfflineInput {
    OfflineInput::open(files, None, reader)
        .unwrap_or_else(|e| panic!("{}: {e}", files[0].display()))
}

/// Read every packet, touching its first and last byte. Returns (packets, CPU ns).
fn read_only(files: &[PathBuf], reader: OfflineReader) -> (u64, u64) {
    let mut src = open(files, reader);
    let t = thread_cpu_ns();
    let mut n = 0u64;
    let mut sum = 0u64;
    loop {
        let st = src
            .read(1024, &mut |p| {
                n += 1;
                sum = sum
                    .wrapping_add(u64::from(p.data.first().copied().unwrap_or(0)))
                    .wrapping_add(u64::from(p.data.last().copied().unwrap_or(0)));
            })
            .unwrap_or_else(|e| panic!("read: {e}"));
        if st == Status::End {
            break;
        }
    }
    std::hint::black_box(sum);
    (n, thread_cpu_ns() - t)
}

/// Read and dispatch every packet to `workers` consumers. Returns (packets, CPU ns, packets
/// handed over).
fn dispatch(files: &[PathBuf], workers: usize, reader: OfflineReader) -> (u64, u64, u64) {
    let mut src = open(files, reader);
    let stats = Arc::new(LiveStats::new());
    let queue = 256;
    let (pool_tx, pool_rx) = crossbeam_channel::bounded::<Batch>(workers * queue + workers * 2);
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(queue);
        senders.push(tx);
        let recycle = pool_tx.clone();
        consumers.push(std::thread::spawn(move || {
            let mut handed = 0u64;
            for mut b in rx {
                handed += b.metas.len() as u64;
                b.clear();
                let _ = recycle.try_send(b);
            }
            handed
        }));
    }
    drop(pool_tx);
    let mut d = Dispatcher::new(
        senders,
        pool_rx,
        foldhash::fast::FixedState::default(),
        10_000 * workers,
        stats.clone(),
        QueueMode::Block,
    )
    .with_dns_cache(Arc::new(DnsCache::new(100_000)));
    let t = thread_cpu_ns();
    loop {
        let st = src
            .read(1024, &mut |p| d.on_packet(p))
            .unwrap_or_else(|e| panic!("read: {e}"));
        if st == Status::End {
            break;
        }
    }
    d.finish();
    let cpu = thread_cpu_ns() - t;
    let handed = consumers
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| panic!("consumer panicked")))
        .sum();
    (stats.snapshot().packets, cpu, handed)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bench_capture FILE [RUNS] [WORKERS] [mmap|native|libpcap]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let workers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let reader: OfflineReader = match args.next().map(|s| s.parse()) {
        None => OfflineReader::Native,
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let files = [file];
    let (mut best_read, mut best_all) = (f64::MAX, f64::MAX);
    for run in 0..runs {
        let (n, ns) = read_only(&files, reader);
        let r = ns as f64 / n as f64;
        let (n2, ns2, handed) = dispatch(&files, workers, reader);
        let a = ns2 as f64 / n2 as f64;
        println!(
            "run {run}: read {n} packets {r:.1} ns/packet; read + dispatch to {workers} \
             worker(s) {a:.1} ns/packet ({handed} packets handed over)"
        );
        best_read = best_read.min(r);
        best_all = best_all.min(a);
    }
    println!(
        "{reader:?} reader, best of {runs}: read {best_read:.1} ns/packet, read + dispatch {best_all:.1} ns/packet, \
         dispatch alone {:.1} ns/packet",
        best_all - best_read
    );
}
