//! Classification and PI-scanner benchmarks (run in release, numbers are printed):
//!
//! ```text
//! cargo run --release -p crossline-agent --example bench_classify
//! ```
//!
//! 1. Cost of classifying one flow record against a registry of 10 scenarios and of 10,000
//!    scenarios (every flow: a source /24, an SNI that matches an exact host, a CIDR
//!    destination, a window and a service to check). Two traffic mixes for the 10,000 case:
//!    the same flows as the 10 case (the traffic of 10 enterprises; the other 9,990 scenarios
//!    are in the registry but idle), which isolates the algorithmic cost; and flows spread
//!    uniformly over all 10,000 scenarios, where cache misses on a larger working set add to it.
//!    The ratios against the 10-scenario case are printed (target <= 1.5x).
//! 2. PI scanner throughput on cleartext payload with and without identifiers, in MB/s.

use crossline_agent::analysis::{EndReason, FlowSummary};
use crossline_agent::classify::{Compiled, Scratch};
use crossline_agent::detect::pi::PiCarry;
use crossline_config::event::VerdictStatus;
use crossline_config::registry::IpNet;
use crossline_config::time::Date;
use crossline_testgen::{beijing_micros, pi_records};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

fn registry_text(n: usize) -> String {
    let mut s = String::from(
        "[[enterprise]]\nid = \"bench\"\nname = \"Bench Co\"\nuscc = \"91110108MA01PH7K91\"\n",
    );
    for i in 0..n {
        let (a, b) = (i / 256, i % 256);
        s.push_str(&format!(
            "\n[[scenario]]\nid = \"S-{i:05}\"\nenterprise = \"bench\"\nbasis = \"standard_contract\"\n\
             filing_ref = \"F-{i}\"\nrecipient = {{ name = \"Partner {i}\", country = \"DE\" }}\n\
             activity = \"x\"\ndata = [\"personal\"]\nvalid_from = 2026-01-01\nvalid_until = 2028-12-31\n\
             sources = [\"10.{a}.{b}.0/24\"]\n\
             destinations = [\"h{i}.partner{i}.example\", \"*.p{i}.example\", \"100.{}.{b}.0/24\"]\n\
             services = [\"tcp/443\", \"tcp/8443\"]\nwindow = {{ days = \"mon-fri\", hours = \"08:00-20:00\" }}\n",
            64 + a
        ));
    }
    s
}

struct Owned {
    src: IpAddr,
    dst: IpAddr,
    sni: String,
}

fn flows(n_scen: usize, count: usize) -> Vec<Owned> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % n_scen as u64) as usize;
            let (a, b) = (i / 256, i % 256);
            Owned {
                src: IpAddr::from([10, a as u8, b as u8, 5]),
                dst: IpAddr::from([100, 64 + a as u8, b as u8, 9]),
                sni: format!("h{i}.partner{i}.example"),
            }
        })
        .collect()
}

fn summary(o: &Owned, t: i64) -> FlowSummary<'_> {
    FlowSummary {
        flow_id: 1,
        ip_proto: 6,
        initiator: o.src,
        initiator_port: 40000,
        responder: o.dst,
        responder_port: 443,
        vlan: [0; 3],
        icmp: (0, 0),
        pkts_fwd: 10,
        pkts_rev: 10,
        bytes_fwd: 5000,
        bytes_rev: 5000,
        payload_fwd: 4000,
        payload_rev: 4000,
        first_micros: t,
        last_micros: t + 1_000_000,
        reason: EndReason::Fin,
        midstream: false,
        app_proto: Some("tls"),
        tls_sni: Some(&o.sni),
        quic_sni: None,
        ech: false,
        http_host: None,
        dns_name: None,
    }
}

fn bench_classify(n: usize, spread: usize) -> f64 {
    let domestic = [IpNet::new("10.0.0.0".parse().expect("ip"), 8).expect("net")];
    let today = Date::new(2026, 3, 1).expect("date");
    let t0 = Instant::now();
    let (reg, _) = crossline_config::load::parse_registry(
        Path::new("bench.toml"),
        &registry_text(n),
        &domestic,
        today,
    )
    .expect("valid bench registry");
    let compiled = Compiled::new(reg, &domestic);
    let build = t0.elapsed();
    let fl = flows(spread, 200_000);
    let t = beijing_micros(2026, 3, 2, 10, 0, 0);
    let mut scratch = Scratch::default();
    // Warm up, and check that every flow is filed.
    for o in &fl {
        let c = compiled.classify(&summary(o, t), t, &mut scratch);
        assert_eq!(c.status, VerdictStatus::Filed);
    }
    let rounds = 5;
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        for o in &fl {
            black_box(compiled.classify(black_box(&summary(o, t)), t, &mut scratch));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / fl.len() as f64);
    }
    println!(
        "classify: {n:>6} scenarios, traffic over {spread:>6}: {best:7.1} ns/flow ({:.2} M flows/s), registry load+compile {:.0} ms",
        1000.0 / best,
        build.as_secs_f64() * 1000.0
    );
    best
}

fn bench_pi(name: &str, data: &[u8]) {
    let rounds = 5;
    let mut found = 0u64;
    let mut best = f64::MAX;
    for _ in 0..rounds {
        found = 0;
        let start = Instant::now();
        let mut carry = PiCarry::default();
        for chunk in data.chunks(1448) {
            carry.scan(black_box(chunk), &mut |_, _| found += 1);
        }
        carry.finish(&mut |_, _| found += 1);
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "pi scan: {name:<30} {:7.0} MB/s ({found} identifiers in {} MB)",
        data.len() as f64 / 1e6 / best,
        data.len() >> 20
    );
}

fn main() {
    let small = bench_classify(10, 10);
    let large_same = bench_classify(10_000, 10);
    let large_spread = bench_classify(10_000, 10_000);
    println!(
        "classify: ratio 10,000 / 10 scenarios: {:.2}x same traffic, {:.2}x traffic over all 10,000 (target <= 1.5x)",
        large_same / small,
        large_spread / small
    );

    let size = 64 << 20;
    // Cleartext without identifiers: JSON-ish text with short numbers.
    let mut plain = Vec::with_capacity(size);
    let mut i = 0u64;
    while plain.len() < size {
        plain.extend_from_slice(
            format!("{{\"order\":{i},\"sku\":\"A-{}\",\"qty\":{},\"note\":\"ship by sea, pallet {}\"}}\n", i % 977, i % 13, i % 41)
                .as_bytes(),
        );
        i += 1;
    }
    bench_pi("cleartext, no identifiers", &plain);
    let mut with = Vec::with_capacity(size);
    let mut seed = 0;
    while with.len() < size {
        with.extend_from_slice(&pi_records(1000, seed));
        seed += 1;
    }
    bench_pi("cleartext, dense identifiers", &with);
}
