//! Writes a capture whose flows are all open at once: N TCP connections (default 500,000) from
//! domestic clients to cross-border servers, each with a handshake, K data exchanges (default
//! 4) of 200 bytes each way and a close, the connections' packets interleaved round by round
//! (every connection's SYN, then every SYN-ACK, ..., a second of packet time per round). The
//! benchmark capture never holds more than about 2,500 flows at once; a gateway's table holds
//! hundreds of thousands, and this capture makes the whole pipeline work with a table that
//! large (flow lookups that miss the caches, the table's memory), which `bench_flows` (memory
//! per flow) and `bench_flood` (SYNs only) do not.
//!
//! Run: `cargo run --release -p crossline-agent --example bench_many_flows -- OUT.pcap [N] [K]
//! [internal]`, then `crossline-agent analyze --config bench/agent-bench.toml --workers 1
//! OUT.pcap` (bench/README.md). With the defaults: 6.5 M packets, about 1.2 GB. `internal` puts
//! the servers in 20.0.0.0/16, domestic in that config: the flows are then not cross-border,
//! nothing is classified and no alert is raised, so the run measures the flow table rather than
//! the alerts (each connection otherwise ends with two).

use crossline_testgen::{frame, noise, pcap_header, push_pcap_record, L4};
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: bench_many_flows OUT.pcap [connections] [exchanges] [internal]");
        std::process::exit(2);
    };
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let k: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let servers: u32 = if args.next().as_deref() == Some("internal") {
        0x1400_0000
    } else {
        0xcb00_0000
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    out.write_all(&pcap_header())?;
    let payload = noise(200, 7);
    let (c_seq, s_seq) = (1_000u32, 9_000u32);
    // Bytes each side has sent after `j` data exchanges.
    let sent = |j: u32| j * payload.len() as u32;
    let tcp = |seq: u32, ack: Option<u32>, syn: bool, fin: bool, psh: bool| L4::Tcp {
        seq,
        ack,
        syn,
        fin,
        psh,
    };
    let mut record = Vec::with_capacity(512);
    // 2024-01-01T00:00:00Z; each round takes one second of packet time.
    let start: i64 = 1_704_067_200_000_000;
    let spacing = (1_000_000 / i64::from(n.max(1))).max(1);
    let rounds = 3 + 2 * k + 2;
    let mut packets = 0u64;
    for round in 0..rounds {
        for i in 0..n {
            // Clients in 10.0.0.0/8 (domestic in bench/agent-bench.toml), servers in
            // 203.0.0.0/16 (cross-border) or 20.0.0.0/16 (domestic).
            let client = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | i), 40_000));
            let server = SocketAddr::from((Ipv4Addr::from(servers | (i % 65_536)), 443));
            let (from_client, l4, data): (bool, L4, &[u8]) = match round {
                0 => (true, tcp(c_seq, None, true, false, false), &[]),
                1 => (false, tcp(s_seq, Some(c_seq + 1), true, false, false), &[]),
                2 => (
                    true,
                    tcp(c_seq + 1, Some(s_seq + 1), false, false, false),
                    &[],
                ),
                r if r < 3 + 2 * k => {
                    let j = (r - 3) / 2;
                    if (r - 3) % 2 == 0 {
                        let seq = c_seq + 1 + sent(j);
                        let ack = s_seq + 1 + sent(j);
                        (true, tcp(seq, Some(ack), false, false, true), &payload)
                    } else {
                        let seq = s_seq + 1 + sent(j);
                        let ack = c_seq + 1 + sent(j + 1);
                        (false, tcp(seq, Some(ack), false, false, true), &payload)
                    }
                }
                r if r == 3 + 2 * k => {
                    let (seq, ack) = (c_seq + 1 + sent(k), s_seq + 1 + sent(k));
                    (true, tcp(seq, Some(ack), false, true, false), &[])
                }
                _ => {
                    let (seq, ack) = (s_seq + 1 + sent(k), c_seq + 2 + sent(k));
                    (false, tcp(seq, Some(ack), false, true, false), &[])
                }
            };
            let (src, dst) = if from_client {
                (client, server)
            } else {
                (server, client)
            };
            let f = frame(None, src, dst, l4, data);
            let ts = start + i64::from(round) * 1_000_000 + i64::from(i) * spacing;
            record.clear();
            push_pcap_record(&mut record, ts, f.len() as u32, &f);
            out.write_all(&record)?;
            packets += 1;
        }
    }
    out.flush()?;
    eprintln!("{path}: {n} connections open at once, {packets} packets");
    Ok(())
}
