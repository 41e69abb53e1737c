//! DNS cache insert cost on a full cache against a cache with room, and lookup cost, in release:
//!
//! ```text
//! nice cargo run --release -p crossline-agent --example bench_dns_cache [ENTRIES]
//! ```
//!
//! ENTRIES is the cache size (default 65,536, the default of `capture.dns_cache_entries`).
//! With room: a fresh cache takes ENTRIES / 2 new addresses. Full: a cache filled with ENTRIES
//! addresses whose answers do not expire (one-day TTL) takes ENTRIES more new addresses, so every
//! insert evicts; a third of them are looked up once, as flow records do. Prints nanoseconds per
//! insert for both and their ratio (full / with room); the answers name `api.partner.example`
//! (19 bytes, a typical length). The full case is also run with a 49-byte name, longer than
//! the cache keeps inline. Lookups: the cache with room is asked for each address it took and
//! still holds, in shuffled order (hit), and for as many it never saw (miss); nanoseconds per
//! lookup, and the share of the addresses taken that it still holds (lowest of the rounds).
//! Each figure is the median run of 1,024 operations, the lowest of five rounds.

use crossline_agent::dns_cache::DnsCache;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

const DAY_SECS: u32 = 86_400;
const NAME: &str = "api.partner.example";
const LONG_NAME: &str = "e1234.a.cdn-edge.eu-central-1.partner.example.net";

fn addr(i: u32) -> IpAddr {
    IpAddr::from(Ipv4Addr::from(
        0x0a00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
    ))
}

/// Nanoseconds per insert of `count` new addresses (from `first`) into `cache`, all named `name`: the median of
/// runs of 1,024 inserts, so that a machine busy with other work does not blur the figure.
fn inserts(cache: &DnsCache, first: u32, count: u32, t0: i64, name: &str) -> f64 {
    const CHUNK: u32 = 1024;
    let mut runs = Vec::new();
    let mut i = first;
    while i < first + count {
        let end = (i + CHUNK).min(first + count);
        let start = Instant::now();
        for j in i..end {
            let now = t0 + i64::from(j);
            cache.insert(addr(j), name, DAY_SECS, now);
            if j % 3 == 0 {
                black_box(cache.lookup(addr(j), now));
            }
        }
        runs.push(start.elapsed().as_nanos() as f64 / f64::from(end - i));
        i = end;
    }
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied().unwrap_or(0.0)
}

/// Nanoseconds per lookup of each of `ips` in `cache`, the median of runs of 1,024 lookups;
/// `hit` says whether every one must find its name or none may (checked, so that the figure is
/// the one it claims to be).
fn lookups(cache: &DnsCache, ips: &[IpAddr], now: i64, hit: bool) -> f64 {
    let mut runs = Vec::new();
    for chunk in ips.chunks(1024) {
        let mut found = 0usize;
        let start = Instant::now();
        for ip in chunk {
            found += usize::from(black_box(cache.lookup(*ip, now)).is_some());
        }
        runs.push(start.elapsed().as_nanos() as f64 / chunk.len() as f64);
        let expected = if hit { chunk.len() } else { 0 };
        assert_eq!(
            found,
            expected,
            "lookups of {} addresses: hits",
            chunk.len()
        );
    }
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied().unwrap_or(0.0)
}

/// Puts `ips` in an order unrelated to the order they were inserted in (fixed, so that runs
/// compare), as flow records ask for names: a cache laid out in insertion order would otherwise
/// be read sequentially.
fn shuffle(ips: &mut [IpAddr]) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..ips.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ips.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

fn main() {
    let entries: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ENTRIES: a whole number of addresses"))
        .unwrap_or(65_536);
    let t0 = 1_772_416_800_000_000i64;
    let mut room = f64::MAX;
    let mut full = f64::MAX;
    let mut hit = f64::MAX;
    let mut miss = f64::MAX;
    let mut kept = f64::MAX;
    let mut full_long = f64::MAX;
    for _ in 0..5 {
        let cache = DnsCache::new(entries as usize);
        room = room.min(inserts(&cache, 0, entries / 2, t0, NAME));
        // Hits: the addresses still held (a cache may have evicted a few even with room).
        let now = t0 + i64::from(entries);
        let mut held: Vec<IpAddr> = (0..entries / 2)
            .map(addr)
            .filter(|ip| cache.lookup(*ip, now).is_some())
            .collect();
        shuffle(&mut held);
        assert!(
            held.len() * 10 >= entries as usize / 2 * 9,
            "held {}",
            held.len()
        );
        kept = kept.min(held.len() as f64 / f64::from(entries / 2));
        hit = hit.min(lookups(&cache, &held, now, true));
        let never: Vec<IpAddr> = (entries..entries + entries / 2).map(addr).collect();
        miss = miss.min(lookups(&cache, &never, now, false));

        let cache = DnsCache::new(entries as usize);
        inserts(&cache, 0, entries, t0, NAME);
        full = full.min(inserts(&cache, entries, entries, t0, NAME));
        full_long = full_long.min(inserts(&cache, 2 * entries, entries, t0, LONG_NAME));
        assert!(
            cache.len() <= 16 * (entries as usize).div_ceil(16),
            "bounded"
        );
        black_box(&cache);
    }
    println!("dns cache, {entries} entries (16 shards)");
    println!("  insert with room: {room:>10.1} ns");
    println!("  insert when full: {full:>10.1} ns");
    println!("  ratio full / room: {:>9.2}", full / room);
    println!("  full, long names: {full_long:>10.1} ns");
    println!("  lookup hit:       {hit:>10.1} ns");
    println!("  lookup miss:      {miss:>10.1} ns");
    println!("  held at half load: {:>8.1} %", kept * 100.0);
}
