//! Micro-benchmark of the L7 parsers on real samples, with a ratio against a baseline pass over
//! the same bytes in the same run (a byte sum, i.e. the cost of merely touching the input), so
//! figures from different machines compare.
//!
//! ```text
//! cargo run --release -p crossline-agent --example l7_bench
//! ```

use crossline_agent::l7::quic::QuicInitial;
use crossline_agent::l7::{banner, community_id, dns, http, tls};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// Nanoseconds per call of `f`, best of 5 rounds of `iters` calls.
fn time_ns(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    best
}

fn baseline(bytes: &[u8]) -> f64 {
    time_ns(200_000, || {
        let sum = black_box(bytes)
            .iter()
            .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)));
        black_box(sum);
    })
}

fn report(name: &str, bytes: usize, ns: f64, base: f64) {
    println!(
        "{name:<44} {bytes:>6} B {ns:>10.1} ns/call   {:>6.1}x byte-sum pass ({base:.1} ns)",
        ns / base
    );
}

fn records(raw: &[u8], tagged: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    let skip = usize::from(tagged);
    while let Some(h) = rest.get(skip..skip + 2) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
        let Some(body) = rest.get(skip + 2..skip + 2 + len) else {
            break;
        };
        out.push(body.to_vec());
        rest = &rest[skip + 2 + len..];
    }
    out
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let read = |p: &str| std::fs::read(data.join(p)).expect("run from the repository checkout");

    let kyber = read("tls/zeek__chrome-1250-tls-x25519-kyber.pcap__s0.bin");
    let base = baseline(&kyber);
    let ns = time_ns(100_000, || {
        black_box(tls::parse_client_hello(black_box(&kyber)));
    });
    report(
        "tls::parse_client_hello (Chrome PQ, Found)",
        kyber.len(),
        ns,
        base,
    );
    let half = &kyber[..kyber.len() / 2];
    let ns = time_ns(200_000, || {
        black_box(tls::parse_client_hello(black_box(half)));
    });
    report(
        "tls::parse_client_hello (first half, NeedMore)",
        half.len(),
        ns,
        baseline(half),
    );

    let quic = records(
        &read("quic/zeek__quic-multiple-initial-fragmented-crypto.pcap__u0.dgrams"),
        false,
    );
    let total: usize = quic.iter().take(2).map(Vec::len).sum();
    let joined: Vec<u8> = quic.iter().take(2).flatten().copied().collect();
    let ns = time_ns(5_000, || {
        let mut q = QuicInitial::new();
        for d in quic.iter().take(2) {
            black_box(q.on_client_datagram(black_box(d)));
        }
    });
    report(
        "QuicInitial: new flow, 2 Initials, Found",
        total,
        ns,
        baseline(&joined),
    );

    let dns_msgs = records(&read("dns/zeek__wikipedia.pcap.msgs"), true);
    let count = |m: &[u8]| {
        let mut n = 0usize;
        let _ = dns::parse_answers(m, &mut |_, _, _| n += 1);
        n
    };
    let msg = dns_msgs
        .iter()
        .max_by_key(|m| count(m))
        .expect("DNS samples");
    let calls = count(msg);
    let ns = time_ns(200_000, || {
        let mut n = 0u32;
        let _ = dns::parse_answers(black_box(msg), &mut |_, _, _| n += 1);
        black_box(n);
    });
    let label = format!("dns::parse_answers (CNAME chain, {calls} callbacks)");
    report(&label, msg.len(), ns, baseline(msg));

    let req = b"GET /api/v1/items?id=42 HTTP/1.1\r\nUser-Agent: curl/8.1\r\nAccept: */*\r\nHost: api.partner.example\r\n\r\n";
    let ns = time_ns(200_000, || {
        black_box(http::parse_request(black_box(req)));
    });
    report("http::parse_request", req.len(), ns, baseline(req));

    let ssh = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    let ns = time_ns(1_000_000, || {
        black_box(banner::detect(black_box(ssh), true, 6, 22));
    });
    report("banner::detect (ssh)", ssh.len(), ns, baseline(ssh));
    let noise = [0x9cu8; 1200];
    let ns = time_ns(1_000_000, || {
        black_box(banner::detect(black_box(&noise), true, 17, 443));
    });
    report(
        "banner::detect (1200 B of UDP noise, None)",
        noise.len(),
        ns,
        baseline(&noise),
    );

    let a = "10.20.3.4".parse().expect("ip");
    let b = "198.51.100.7".parse().expect("ip");
    let ns = time_ns(1_000_000, || {
        black_box(community_id::community_id(6, black_box(a), 51514, b, 443));
    });
    report("community_id (TCP v4)", 37, ns, baseline(&[0u8; 37]));
}
