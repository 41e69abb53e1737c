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
//! insert for both and their ratio (full / with room). Lookups: the cache with room is asked for
//! each address it took (hit) and for as many it never saw (miss); nanoseconds per lookup. Each
//! figure is the median run of 1,024 operations, the lowest of five rounds.

use crossline_agent::dns_cache::DnsCache;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

const DAY_SECS: u32 = 86_400;

fn addr(i: u32) -> IpAddr {
    IpAddr::from(Ipv4Addr::from(
        0x0a00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
    ))
}

/// Nanoseconds per insert of `count` new addresses (from `first`) into `cache`: the median of
/// runs of 1,024 inserts, so that a machine busy with other work does not blur the figure.
fn inserts(cache: &DnsCache, first: u32, count: u32, t0: i64) -> f64 {
    const CHUNK: u32 = 1024;
    let mut runs = Vec::new();
    let mut i = first;
    while i < first + count {
        let end = (i + CHUNK).min(first + count);
        let start = Instant::now();
        for j in i..end {
            let now = t0 + i64::from(j);
            cache.insert(addr(j), "api.partner.example", DAY_SECS, now);
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

/// Nanoseconds per lookup of `count` addresses (from `first`) in `cache`, the median of runs of
/// 1,024 lookups; `hit` says whether every one must find its name (checked, so the figure is
/// not one of a cache that lost its entries).
fn lookups(cache: &DnsCache, first: u32, count: u32, now: i64, hit: bool) -> f64 {
    const CHUNK: u32 = 1024;
    let mut runs = Vec::new();
    let mut i = first;
    while i < first + count {
        let end = (i + CHUNK).min(first + count);
        let mut found = 0u32;
        let start = Instant::now();
        for j in i..end {
            found += u32::from(black_box(cache.lookup(addr(j), now)).is_some());
        }
        runs.push(start.elapsed().as_nanos() as f64 / f64::from(end - i));
        let expected = if hit { end - i } else { 0 };
        assert_eq!(found, expected, "lookups of addresses {i}..{end}: hits");
        i = end;
    }
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied().unwrap_or(0.0)
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
    for _ in 0..5 {
        let cache = DnsCache::new(entries as usize);
        room = room.min(inserts(&cache, 0, entries / 2, t0));
        let now = t0 + i64::from(entries);
        hit = hit.min(lookups(&cache, 0, entries / 2, now, true));
        miss = miss.min(lookups(&cache, entries, entries / 2, now, false));

        let cache = DnsCache::new(entries as usize);
        inserts(&cache, 0, entries, t0);
        full = full.min(inserts(&cache, entries, entries, t0));
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
    println!("  lookup hit:       {hit:>10.1} ns");
    println!("  lookup miss:      {miss:>10.1} ns");
}
