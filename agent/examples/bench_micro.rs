//! Micro-benchmarks of the per-packet and per-flow building blocks, in release:
//!
//! ```text
//! cargo run --release -p crossline-agent --example bench_micro [PCAP]
//! ```
//!
//! Prints ns/op and M op/s for: L2-L4 decode of real frames (the first 200,000 packets of
//! `bench/out/bench.pcap`, or of PCAP), flow upsert of packets of already-known flows with
//! 1 k / 100 k / 1 M flows in the table, TLS ClientHello (SNI, ALPN, JA4) parse, QUIC Initial
//! decrypt + ClientHello parse, DNS answer parse, HTTP request head parse, event timestamp
//! formatting, the
//! personal-information scan of cleartext payload, and classification of one flow record
//! against `examples/registry.toml`. Each figure is the best of 3 timed passes after a warm-up
//! pass; `std::hint::black_box` keeps the work from being optimised away.

use crossline_agent::analysis::{EndReason, FlowSummary};
use crossline_agent::classify::Scratch;
use crossline_agent::decode::{decode, ip_proto, tcp_flags, Decoded};
use crossline_agent::detect::{DetectShared, FlowState};
use crossline_agent::flow::FlowTracker;
use crossline_agent::l7::{dns, http, quic::QuicInitial, tls};
use crossline_agent::taps::L7State;
use crossline_config::agent::CaptureConfig;
use crossline_testgen as testgen;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Time `ops` operations done by `f` (one call = `ops` operations): best of 3 after a warm-up.
fn bench(name: &str, ops: u64, mut f: impl FnMut()) {
    f();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let ns = best * 1e9 / ops as f64;
    println!("{name:<44} {ns:>10.1} ns/op {:>10.3} M op/s", 1e3 / ns);
}

fn load_frames(path: &Path, max: usize) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::with_capacity(max);
    let Ok(mut cap) = pcap::Capture::from_file(path) else {
        eprintln!("cannot open {}", path.display());
        return out;
    };
    let lt = cap.get_datalink().0;
    while out.len() < max {
        match cap.next_packet() {
            Ok(p) => out.push((lt, p.data.to_vec())),
            Err(_) => break,
        }
    }
    out
}

fn syn(i: u32) -> Decoded {
    let mut d = Decoded {
        proto: ip_proto::TCP,
        src_port: 1024 + (i % 60_000) as u16,
        dst_port: 443,
        tcp_flags: tcp_flags::SYN,
        tcp_seq: i,
        payload_len: 0,
        ..Decoded::default()
    };
    let host = i / 60_000;
    d.src[..4].copy_from_slice(&[10, (host >> 8) as u8, host as u8, 1]);
    d.dst[..4].copy_from_slice(&[198, 51, 100, 7]);
    d
}

fn flow_upsert(n: u32) {
    let cfg = CaptureConfig {
        flows_per_worker: n as usize,
        tcp_unestablished_timeout: std::time::Duration::from_secs(3600),
        ..CaptureConfig::default()
    };
    let mut t: FlowTracker<FlowState, L7State> = FlowTracker::new(&cfg, 0, 1);
    let t0 = 1_700_000_000_000_000i64;
    for i in 0..n {
        t.on_packet(&syn(i), t0, 74, &mut |_, _| {});
    }
    // Packets of known flows (ACKs) in a scattered order.
    let ops = 2_000_000u32;
    let pkts: Vec<Decoded> = (0..ops)
        .map(|k| {
            let mut d = syn(k.wrapping_mul(2_654_435_761) % n);
            d.tcp_flags = tcp_flags::ACK;
            d
        })
        .collect();
    let mut ts = t0;
    bench(
        &format!("flow upsert, known flow, {n} flows"),
        u64::from(ops),
        || {
            for d in &pkts {
                ts += 1;
                black_box(t.on_packet(d, ts, 100, &mut |_, _| {}));
            }
        },
    );
}

fn main() {
    let default = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bench/out/bench.pcap"
    ));
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.to_path_buf());
    let frames = load_frames(&path, 200_000);
    if !frames.is_empty() {
        let mut dec = Decoded::default();
        let mut ok = 0u64;
        bench(
            &format!("decode L2-L4 ({} real frames)", frames.len()),
            frames.len() as u64,
            || {
                for (lt, f) in &frames {
                    ok += u64::from(decode(*lt, f, &mut dec).is_ok());
                    black_box(&dec);
                }
            },
        );
        black_box(ok);
    }

    for n in [1_000, 100_000, 1_000_000] {
        flow_upsert(n);
    }

    let hello = tls::build_client_hello(Some("eu.cro.example.de"), &["h2", "http/1.1"], false);
    bench("TLS ClientHello parse (SNI, ALPN, JA4)", 100_000, || {
        for _ in 0..100_000 {
            black_box(tls::parse_client_hello(black_box(&hello)).found());
        }
    });

    let dgrams = testgen::quic_initials("eval.compute.example");
    bench("QUIC Initial decrypt + ClientHello parse", 10_000, || {
        for _ in 0..10_000 {
            let mut q = QuicInitial::new();
            for d in &dgrams {
                if let Some(found) = q.on_client_datagram(black_box(d)).found() {
                    black_box(found);
                    break;
                }
            }
        }
    });

    let answer = testgen::dns_response(
        7,
        "api.partner.example",
        Some("edge.partner.example"),
        &[
            IpAddr::from([198, 51, 100, 7]),
            IpAddr::from([198, 51, 100, 8]),
        ],
        300,
    );
    bench("DNS answer parse (CNAME + 2 A)", 1_000_000, || {
        for _ in 0..1_000_000 {
            let _ = dns::parse_answers(black_box(&answer), &mut |n, ip, ttl| {
                black_box((n.len(), ip, ttl));
            });
        }
    });

    let req = testgen::http_post("api.partner.example", "/v1/upload", b"{\"a\":1}");
    bench("HTTP request head parse", 1_000_000, || {
        for _ in 0..1_000_000 {
            black_box(http::parse_request(black_box(&req)).found());
        }
    });

    let mut t = 1_772_442_847_118_000i64;
    bench(
        "format_eve_timestamp (3 per flow record)",
        1_000_000,
        || {
            for _ in 0..1_000_000 {
                t += 1_000;
                black_box(crossline_config::event::format_eve_timestamp(black_box(t)));
            }
        },
    );

    bench(
        "  same with format! (the previous implementation)",
        1_000_000,
        || {
            for _ in 0..1_000_000 {
                t += 1_000;
                black_box(format_timestamp_reference(black_box(t)));
            }
        },
    );

    let cfg_path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bench/agent-bench.toml"
    ));
    match crossline_config::load_agent_config(cfg_path, crossline_config::today_beijing()) {
        Ok((cfg, _)) => match DetectShared::new(&cfg) {
            Ok(shared) => classify(&shared),
            Err(e) => eprintln!("classification skipped: {e}"),
        },
        Err(e) => eprintln!("classification skipped: {e}"),
    }

    let clear = testgen::pi_records(2000, 7);
    let noise = testgen::noise(clear.len(), 3);
    for (name, data) in [
        ("PI scan, cleartext records", &clear),
        ("PI scan, random bytes", &noise),
    ] {
        let mut carry = crossline_agent::detect::pi::PiCarry::default();
        let mut found = 0u64;
        let t = Instant::now();
        for _ in 0..20 {
            carry.scan(black_box(data), &mut |_, _| found += 1);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:<44} {:>10.1} MB/s ({} bytes, {found} identifiers)",
            name,
            data.len() as f64 * 20.0 / secs / 1e6,
            data.len()
        );
    }
}

/// `format_eve_timestamp` written with `format!` as the timestamp formatter was before the
/// fast path, for comparison.
fn format_timestamp_reference(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = crossline_config::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}+0000",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn classify(shared: &DetectShared) {
    let compiled = shared.registry().current();
    let judge = testgen::beijing_micros(2026, 3, 2, 10, 0, 0);
    let mut scratch = Scratch::default();
    let summary = |initiator: IpAddr, responder: IpAddr, sni: Option<&'static str>| FlowSummary {
        flow_id: 1,
        ip_proto: 6,
        initiator,
        initiator_port: 51514,
        responder,
        responder_port: 443,
        vlan: [0; 3],
        icmp: (0, 0),
        pkts_fwd: 12,
        pkts_rev: 10,
        bytes_fwd: 4311,
        bytes_rev: 9120,
        payload_fwd: 3000,
        payload_rev: 8000,
        first_micros: judge,
        last_micros: judge + 1_000_000,
        reason: EndReason::Fin,
        midstream: false,
        app_proto: Some("tls"),
        tls_sni: sni,
        quic_sni: None,
        ech: false,
        http_host: None,
        dns_name: None,
    };
    let cases = [
        (
            "filed-path registry lookups (source listed)",
            summary(
                IpAddr::from([10, 20, 3, 4]),
                IpAddr::from([203, 0, 113, 9]),
                Some("eu.cro.example.de"),
            ),
        ),
        (
            "unfiled (source in no scenario)",
            summary(
                IpAddr::from([10, 99, 0, 1]),
                IpAddr::from([198, 51, 100, 50]),
                None,
            ),
        ),
    ];
    for (name, s) in cases {
        bench(
            &format!("classify one flow record: {name}"),
            1_000_000,
            || {
                for _ in 0..1_000_000 {
                    black_box(compiled.classify(black_box(&s), judge, &mut scratch));
                }
            },
        );
    }
}
