//! Labelled traffic generator: builds pcap files whose right answers are known, for the tests,
//! the benchmarks and the demo capture (`examples/demo.pcap`).
//!
//! Frames are built with etherparse's `PacketBuilder` (Ethernet, optional 802.1Q tag, IPv4 or
//! IPv6, TCP or UDP) and written with a small classic-pcap writer (microsecond timestamps,
//! LINKTYPE_ETHERNET). TCP flows get a three-way handshake, data segments in both directions
//! with correct sequence and acknowledgement numbers, and a FIN exchange, so the flow table
//! closes them with `fin`. Packets of all flows are sorted by time when the file is written.
//! Every flow carries a [`Label`]: what a test or the demo expects the agent to say about it.
//!
//! This module is for tests and tools: it panics on impossible requests (mixed address
//! families, a VLAN id above 4095) instead of returning errors.
#![warn(missing_docs)]

pub mod report_sample;

use crossline_config::event::{AlertKind, VerdictStatus};
use crossline_config::time::days_from_civil;
use etherparse::PacketBuilder;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Unix microseconds of a Beijing (UTC+8) local date and time.
pub fn beijing_micros(year: i32, month: u8, day: u8, hour: u32, minute: u32, second: u32) -> i64 {
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - crossline_config::time::SHANGHAI_OFFSET_SECS;
    secs * 1_000_000
}

/// What the agent should report about a generated flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Short name of the case, for messages.
    pub name: String,
    /// Client (initiator) address.
    pub src: SocketAddr,
    /// Server (responder) address.
    pub dst: SocketAddr,
    /// IP protocol (6 or 17).
    pub ip_proto: u8,
    /// Expected verdict, when the test cares.
    pub verdict: Option<VerdictStatus>,
    /// Expected scenario of the verdict.
    pub scenario: Option<String>,
    /// Alerts that must be raised on this flow.
    pub alerts: Vec<AlertKind>,
}

impl Label {
    /// A label with a name and an expected verdict.
    pub fn new(name: &str, verdict: Option<VerdictStatus>) -> Label {
        Label {
            name: name.to_string(),
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            dst: SocketAddr::from(([0, 0, 0, 0], 0)),
            ip_proto: 6,
            verdict,
            scenario: None,
            alerts: Vec::new(),
        }
    }

    /// Expect this scenario.
    pub fn scenario(mut self, id: &str) -> Label {
        self.scenario = Some(id.to_string());
        self
    }

    /// Expect these alerts.
    pub fn alerts(mut self, kinds: &[AlertKind]) -> Label {
        self.alerts = kinds.to_vec();
        self
    }
}

/// Who sends a message of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connection's initiator.
    Client,
    /// The connection's responder.
    Server,
}

/// A TCP connection to generate.
#[derive(Debug, Clone)]
pub struct TcpFlow {
    /// Initiator address.
    pub client: SocketAddr,
    /// Responder address.
    pub server: SocketAddr,
    /// Unix microseconds of the SYN.
    pub start_micros: i64,
    /// Time between consecutive packets.
    pub step_micros: i64,
    /// 802.1Q VLAN id of every frame.
    pub vlan: Option<u16>,
    /// Application messages in order; each is cut into segments of at most `mss` bytes.
    pub messages: Vec<(Side, Vec<u8>)>,
    /// Largest segment payload.
    pub mss: usize,
    /// Close with FIN (else the flow is left open: it ends by timeout or end of capture).
    pub close: bool,
}

impl TcpFlow {
    /// A connection with defaults: 1 ms between packets, no VLAN, MSS 1400, closed with FIN.
    pub fn new(client: SocketAddr, server: SocketAddr, start_micros: i64) -> TcpFlow {
        TcpFlow {
            client,
            server,
            start_micros,
            step_micros: 1000,
            vlan: None,
            messages: Vec::new(),
            mss: 1400,
            close: true,
        }
    }

    /// Add a message from the client.
    pub fn send(mut self, data: impl Into<Vec<u8>>) -> TcpFlow {
        self.messages.push((Side::Client, data.into()));
        self
    }

    /// Add a message from the server.
    pub fn reply(mut self, data: impl Into<Vec<u8>>) -> TcpFlow {
        self.messages.push((Side::Server, data.into()));
        self
    }

    /// Tag every frame with an 802.1Q VLAN id.
    pub fn vlan(mut self, id: u16) -> TcpFlow {
        self.vlan = Some(id);
        self
    }

    /// Time between packets.
    pub fn step(mut self, micros: i64) -> TcpFlow {
        self.step_micros = micros;
        self
    }
}

/// The 24-byte header of a classic pcap file: little-endian, version 2.4, microsecond
/// timestamps, snaplen 65,535, Ethernet.
pub fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // Bytes 8..16: time zone and timestamp accuracy, both 0.
    h[16..20].copy_from_slice(&65_535u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    h
}

/// Append one pcap record to `out`: the frame's `data` at `ts_micros` (Unix microseconds), as
/// `wire_len` bytes on the wire (more than `data` when the capture cut the frame short).
pub fn push_pcap_record(out: &mut Vec<u8>, ts_micros: i64, wire_len: u32, data: &[u8]) {
    out.extend_from_slice(&(ts_micros.div_euclid(1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(ts_micros.rem_euclid(1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&wire_len.to_le_bytes());
    out.extend_from_slice(data);
}

/// A classic pcap file being built in memory (microsecond timestamps, Ethernet).
#[derive(Debug, Default, Clone)]
pub struct PcapWriter {
    packets: Vec<(i64, u64, Vec<u8>)>,
    seq: u64,
}

impl PcapWriter {
    /// Add a frame at a time (Unix microseconds).
    pub fn push(&mut self, ts_micros: i64, frame: Vec<u8>) {
        self.packets.push((ts_micros, self.seq, frame));
        self.seq += 1;
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The file bytes, frames sorted by time (stable).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sorted: Vec<&(i64, u64, Vec<u8>)> = self.packets.iter().collect();
        sorted.sort_by_key(|p| (p.0, p.1));
        let mut out =
            Vec::with_capacity(24 + self.packets.iter().map(|p| p.2.len() + 16).sum::<usize>());
        out.extend_from_slice(&pcap_header());
        for (ts, _, frame) in sorted {
            push_pcap_record(&mut out, *ts, frame.len() as u32, frame);
        }
        out
    }

    /// Write the file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&self.to_bytes())
    }
}

/// Transport header of one frame.
#[derive(Debug, Clone, Copy)]
pub enum L4 {
    /// A TCP segment.
    Tcp {
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number (sets ACK).
        ack: Option<u32>,
        /// SYN flag.
        syn: bool,
        /// FIN flag.
        fin: bool,
        /// PSH flag.
        psh: bool,
    },
    /// A UDP datagram.
    Udp,
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Build one Ethernet frame.
pub fn frame(
    vlan: Option<u16>,
    src: SocketAddr,
    dst: SocketAddr,
    l4: L4,
    payload: &[u8],
) -> Vec<u8> {
    use etherparse::{IpHeaders, PacketBuilderStep, VlanId};
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let ip: PacketBuilderStep<IpHeaders> = match (vlan, src.ip(), dst.ip()) {
        (None, IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (None, IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        (Some(v), IpAddr::V4(s), IpAddr::V4(d)) => eth
            .single_vlan(VlanId::try_new(v).expect("VLAN id <= 4095"))
            .ipv4(s.octets(), d.octets(), 64),
        (Some(v), IpAddr::V6(s), IpAddr::V6(d)) => eth
            .single_vlan(VlanId::try_new(v).expect("VLAN id <= 4095"))
            .ipv6(s.octets(), d.octets(), 64),
        _ => panic!("testgen: mixed address families {src} -> {dst}"),
    };
    let mut out = Vec::with_capacity(payload.len() + 80);
    match l4 {
        L4::Udp => ip
            .udp(src.port(), dst.port())
            .write(&mut out, payload)
            .expect("write UDP frame"),
        L4::Tcp {
            seq,
            ack,
            syn,
            fin,
            psh,
        } => {
            let mut t = ip.tcp(src.port(), dst.port(), seq, 64_240);
            if syn {
                t = t.syn();
            }
            if let Some(a) = ack {
                t = t.ack(a);
            }
            if fin {
                t = t.fin();
            }
            if psh {
                t = t.psh();
            }
            t.write(&mut out, payload).expect("write TCP frame");
        }
    }
    out
}

/// A capture being generated, with the labels of its flows.
#[derive(Debug, Default, Clone)]
pub struct Generator {
    /// The frames.
    pub pcap: PcapWriter,
    /// What each flow should produce.
    pub labels: Vec<Label>,
}

impl Generator {
    /// An empty capture.
    pub fn new() -> Generator {
        Generator::default()
    }

    /// Add a TCP connection; returns the time of its last packet.
    pub fn tcp(&mut self, f: &TcpFlow, label: Label) -> i64 {
        let mut t = f.start_micros;
        let (c, s) = (f.client, f.server);
        let mut cseq: u32 = 1_000;
        let mut sseq: u32 = 50_000;
        let tcp = |seq, ack, syn, fin, psh| L4::Tcp {
            seq,
            ack,
            syn,
            fin,
            psh,
        };
        self.pcap.push(
            t,
            frame(f.vlan, c, s, tcp(cseq, None, true, false, false), &[]),
        );
        cseq = cseq.wrapping_add(1);
        t += f.step_micros;
        self.pcap.push(
            t,
            frame(f.vlan, s, c, tcp(sseq, Some(cseq), true, false, false), &[]),
        );
        sseq = sseq.wrapping_add(1);
        t += f.step_micros;
        self.pcap.push(
            t,
            frame(
                f.vlan,
                c,
                s,
                tcp(cseq, Some(sseq), false, false, false),
                &[],
            ),
        );
        for (side, data) in &f.messages {
            for chunk in data.chunks(f.mss.max(1)) {
                t += f.step_micros;
                let n = chunk.len() as u32;
                match side {
                    Side::Client => {
                        self.pcap.push(
                            t,
                            frame(
                                f.vlan,
                                c,
                                s,
                                tcp(cseq, Some(sseq), false, false, true),
                                chunk,
                            ),
                        );
                        cseq = cseq.wrapping_add(n);
                    }
                    Side::Server => {
                        self.pcap.push(
                            t,
                            frame(
                                f.vlan,
                                s,
                                c,
                                tcp(sseq, Some(cseq), false, false, true),
                                chunk,
                            ),
                        );
                        sseq = sseq.wrapping_add(n);
                    }
                }
            }
        }
        if f.close {
            t += f.step_micros;
            self.pcap.push(
                t,
                frame(f.vlan, c, s, tcp(cseq, Some(sseq), false, true, false), &[]),
            );
            cseq = cseq.wrapping_add(1);
            t += f.step_micros;
            self.pcap.push(
                t,
                frame(f.vlan, s, c, tcp(sseq, Some(cseq), false, true, false), &[]),
            );
            sseq = sseq.wrapping_add(1);
            t += f.step_micros;
            self.pcap.push(
                t,
                frame(
                    f.vlan,
                    c,
                    s,
                    tcp(cseq, Some(sseq), false, false, false),
                    &[],
                ),
            );
        }
        let mut label = label;
        label.src = c;
        label.dst = s;
        label.ip_proto = 6;
        self.labels.push(label);
        t
    }

    /// Add UDP datagrams between two endpoints, `step_micros` apart; `true` = from `client`.
    #[allow(clippy::too_many_arguments)]
    pub fn udp(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        start_micros: i64,
        step_micros: i64,
        vlan: Option<u16>,
        datagrams: &[(Side, Vec<u8>)],
        label: Label,
    ) -> i64 {
        let mut t = start_micros;
        for (side, d) in datagrams {
            let (a, b) = match side {
                Side::Client => (client, server),
                Side::Server => (server, client),
            };
            self.pcap.push(t, frame(vlan, a, b, L4::Udp, d));
            t += step_micros;
        }
        let mut label = label;
        label.src = client;
        label.dst = server;
        label.ip_proto = 17;
        self.labels.push(label);
        t
    }

    /// Add a DNS response from `resolver` to `client` (port 53 -> `client.port()`) saying
    /// `name` resolves to `addrs` (A / AAAA), optionally through a CNAME `cname -> target`.
    pub fn dns_answer(
        &mut self,
        client: SocketAddr,
        resolver: SocketAddr,
        at_micros: i64,
        name: &str,
        cname_target: Option<&str>,
        addrs: &[IpAddr],
    ) {
        let msg = dns_response(0x1234, name, cname_target, addrs, 300);
        let query = dns_query(0x1234, name, addrs.first().is_some_and(IpAddr::is_ipv6));
        self.pcap
            .push(at_micros, frame(None, client, resolver, L4::Udp, &query));
        self.pcap.push(
            at_micros + 500,
            frame(None, resolver, client, L4::Udp, &msg),
        );
    }

    /// Write the capture.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        self.pcap.write(path)
    }
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A DNS query message for `name` (A, or AAAA when `v6`).
pub fn dns_query(id: u16, name: &str, v6: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    push_name(&mut m, name);
    m.extend_from_slice(&(if v6 { 28u16 } else { 1 }).to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// A DNS response: `name` (optionally CNAME -> `cname_target`) resolving to `addrs`.
pub fn dns_response(
    id: u16,
    name: &str,
    cname_target: Option<&str>,
    addrs: &[IpAddr],
    ttl: u32,
) -> Vec<u8> {
    let v6 = addrs.first().is_some_and(IpAddr::is_ipv6);
    let ancount = addrs.len() + usize::from(cname_target.is_some());
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&(ancount as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    push_name(&mut m, name);
    m.extend_from_slice(&(if v6 { 28u16 } else { 1 }).to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    let mut owner_ptr = vec![0xc0, 0x0c];
    if let Some(target) = cname_target {
        m.extend_from_slice(&owner_ptr);
        m.extend_from_slice(&5u16.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        let mut rdata = Vec::new();
        push_name(&mut rdata, target);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        let at = m.len() as u16;
        m.extend_from_slice(&rdata);
        owner_ptr = vec![0xc0 | (at >> 8) as u8, at as u8];
    }
    for a in addrs {
        m.extend_from_slice(&owner_ptr);
        match a {
            IpAddr::V4(v) => {
                m.extend_from_slice(&1u16.to_be_bytes());
                m.extend_from_slice(&1u16.to_be_bytes());
                m.extend_from_slice(&ttl.to_be_bytes());
                m.extend_from_slice(&4u16.to_be_bytes());
                m.extend_from_slice(&v.octets());
            }
            IpAddr::V6(v) => {
                m.extend_from_slice(&28u16.to_be_bytes());
                m.extend_from_slice(&1u16.to_be_bytes());
                m.extend_from_slice(&ttl.to_be_bytes());
                m.extend_from_slice(&16u16.to_be_bytes());
                m.extend_from_slice(&v.octets());
            }
        }
    }
    m
}

/// An HTTP/1.1 POST with a Host header and a body.
pub fn http_post(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

/// A plain HTTP response with a body of `n` bytes.
pub fn http_ok(n: usize) -> Vec<u8> {
    let mut m = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    m.extend(std::iter::repeat_n(b'.', n));
    m
}

/// A TLS ClientHello record (via the L7 module's builder).
pub fn tls_client_hello(sni: Option<&str>, ech: bool) -> Vec<u8> {
    crossline_agent::l7::tls::build_client_hello(sni, &["h2", "http/1.1"], ech)
}

/// QUIC v1 Initial datagrams carrying a ClientHello for `sni`.
pub fn quic_initials(sni: &str) -> Vec<Vec<u8>> {
    let ch = crossline_agent::l7::tls::build_client_hello_handshake(Some(sni), &["h3"], false);
    crossline_agent::l7::quic::build_initial_datagrams(
        1,
        &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08],
        &ch,
        1252,
    )
}

/// Deterministic pseudo-random bytes (xorshift), e.g. for ciphertext-like payload.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Text records with personal information: `n` lines each holding a valid resident ID, a
/// mobile number and an e-mail address, made distinct by `seed`. Returns the text.
pub fn pi_records(n: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let k = seed.wrapping_mul(100_003).wrapping_add(i as u32);
        let id = resident_id(k);
        let phone = format!("139{:08}", k % 100_000_000);
        out.extend_from_slice(
            format!("{{\"name\":\"p{k}\",\"id\":\"{id}\",\"tel\":\"{phone}\",\"mail\":\"user{k}@mail.example.com\"}}\n")
                .as_bytes(),
        );
    }
    out
}

/// A plausible resident ID (Beijing Dongcheng, born 1980-01-01 + k mod 10000 days) with the
/// right check character.
pub fn resident_id(k: u32) -> String {
    let day = days_from_civil(1980, 1, 1) + i64::from(k % 10_000);
    let (y, m, d) = crossline_config::time::civil_from_days(day);
    let seq = (k / 10_000) % 1000;
    let first17 = format!("110101{y:04}{m:02}{d:02}{seq:03}");
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

/// Write a minimal MaxMind DB (format 2.0, IPv6 tree, 32-bit records) mapping prefixes to
/// ISO country codes (`{"country": {"iso_code": ".."}}`), for GeoIP tests.
pub fn write_mmdb(
    path: &Path,
    entries: &[(crossline_config::registry::IpNet, &str)],
) -> std::io::Result<()> {
    std::fs::write(path, mmdb_bytes(entries))
}

/// The bytes of [`write_mmdb`].
pub fn mmdb_bytes(entries: &[(crossline_config::registry::IpNet, &str)]) -> Vec<u8> {
    // Data section: one record per distinct country.
    let mut data = Vec::new();
    let mut offsets: Vec<(String, u32)> = Vec::new();
    for (_, cc) in entries {
        if offsets.iter().any(|(c, _)| c == cc) {
            continue;
        }
        offsets.push((cc.to_string(), data.len() as u32));
        mmdb_map(&mut data, 1);
        mmdb_str(&mut data, "country");
        mmdb_map(&mut data, 1);
        mmdb_str(&mut data, "iso_code");
        mmdb_str(&mut data, cc);
    }
    // Search tree over 128-bit keys (IPv4 at ::a.b.c.d). Node records: child index, or
    // NO_DATA (= node_count), or a data pointer (node_count + 16 + offset), fixed up below.
    #[derive(Clone, Copy)]
    enum Rec {
        Empty,
        Node(u32),
        Data(u32),
    }
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for (net, cc) in entries {
        let (bits, len) = match net.addr() {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 96 + net.prefix_len()),
            IpAddr::V6(a) => (u128::from(a), net.prefix_len()),
        };
        let off = offsets.iter().find(|(c, _)| c == cc).map_or(0, |(_, o)| *o);
        let mut at = 0usize;
        for i in 0..len {
            let bit = ((bits >> (127 - u32::from(i))) & 1) as usize;
            if i + 1 == len {
                nodes[at][bit] = Rec::Data(off);
                break;
            }
            at = match nodes[at][bit] {
                Rec::Node(n) => n as usize,
                _ => {
                    nodes.push([Rec::Empty, Rec::Empty]);
                    let n = nodes.len() - 1;
                    nodes[at][bit] = Rec::Node(n as u32);
                    n
                }
            };
        }
    }
    let node_count = nodes.len() as u32;
    let mut out = Vec::new();
    for n in &nodes {
        for r in n {
            let v = match *r {
                Rec::Empty => node_count,
                Rec::Node(i) => i,
                Rec::Data(o) => node_count + 16 + o,
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    mmdb_map(&mut out, 9);
    mmdb_str(&mut out, "binary_format_major_version");
    mmdb_uint(&mut out, 5, 2);
    mmdb_str(&mut out, "binary_format_minor_version");
    mmdb_uint(&mut out, 5, 0);
    mmdb_str(&mut out, "build_epoch");
    mmdb_uint(&mut out, 9, 1_767_225_600);
    mmdb_str(&mut out, "database_type");
    mmdb_str(&mut out, "crossline-test-country");
    mmdb_str(&mut out, "description");
    mmdb_map(&mut out, 1);
    mmdb_str(&mut out, "en");
    mmdb_str(&mut out, "crossline test database");
    mmdb_str(&mut out, "ip_version");
    mmdb_uint(&mut out, 5, 6);
    mmdb_str(&mut out, "languages");
    mmdb_ctrl(&mut out, 11, 1);
    mmdb_str(&mut out, "en");
    mmdb_str(&mut out, "node_count");
    mmdb_uint(&mut out, 6, u64::from(node_count));
    mmdb_str(&mut out, "record_size");
    mmdb_uint(&mut out, 5, 32);
    out
}

/// Control byte(s) of an MMDB field: type (1-15) and size (< 65,821 here).
fn mmdb_ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else {
        let s = size - 285;
        (30, vec![(s >> 8) as u8, s as u8])
    };
    if ty <= 7 {
        out.push((ty << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(ty - 7);
    }
    out.extend_from_slice(&extra);
}

fn mmdb_str(out: &mut Vec<u8>, s: &str) {
    mmdb_ctrl(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn mmdb_map(out: &mut Vec<u8>, pairs: usize) {
    mmdb_ctrl(out, 7, pairs);
}

fn mmdb_uint(out: &mut Vec<u8>, ty: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let b = &bytes[skip..];
    mmdb_ctrl(out, ty, b.len());
    out.extend_from_slice(b);
}

/// The demo capture (`examples/demo.pcap`), built for `examples/registry.toml` with the
/// domestic side `10.0.0.0/8` / `fd00::/8`, on Monday 16 November 2026 (Beijing), plus one flow
/// on 18 January 2027 after a filing ran out. Returns the generator with its labels.
pub fn demo_capture() -> Generator {
    use AlertKind as K;
    use VerdictStatus as V;
    let a = |s: &str| -> SocketAddr { s.parse().expect("demo address") };
    let t = |h, m, s| beijing_micros(2026, 11, 16, h, m, s);
    let mut g = Generator::new();
    let lbl = |name: &str, v: V, scen: Option<&str>, alerts: &[K]| {
        let l = Label::new(name, Some(v)).alerts(alerts);
        match scen {
            Some(s) => l.scenario(s),
            None => l,
        }
    };
    let tls = |c: &str, s: &str, at: i64, sni: &str, ech: bool, up: usize, seed: u64| {
        TcpFlow::new(a(c), a(s), at)
            .send(tls_client_hello(Some(sni), ech))
            .reply(noise(1200, seed))
            .send(noise(up, seed + 1))
            .reply(noise(300, seed + 2))
    };

    // Filed: clinical data to the CRO (TLS SNI, wildcard destination).
    let f = tls(
        "10.20.3.4:51514",
        "198.51.100.7:443",
        t(10, 14, 7),
        "eu.cro.example.de",
        false,
        6000,
        1,
    );
    g.tcp(
        &f,
        lbl(
            "clinical data to the CRO",
            V::Filed,
            Some("SA-2026-0001"),
            &[],
        ),
    );
    // Filed over IPv6: passenger records to the reservations network.
    let f = tls(
        "[fd00:80::15]:50001",
        "[2001:db8:80::9]:443",
        t(10, 15, 0),
        "pnr.reservations.example",
        false,
        4000,
        5,
    );
    g.tcp(
        &f,
        lbl(
            "passenger records over IPv6",
            V::Filed,
            Some("EX-2026-0301"),
            &[],
        ),
    );
    // Filed by DNS name: ECH hides the SNI, the DNS answer names the address.
    // (Ten seconds earlier: the answer may be handled by another worker, whose batch is
    // flushed about once per second of packet time.)
    g.dns_answer(
        a("10.70.130.5:53535"),
        a("10.0.0.53:53"),
        t(10, 15, 50),
        "upload.vision.example",
        None,
        &["203.0.113.140".parse().expect("ip")],
    );
    let f = tls(
        "10.70.130.5:51000",
        "203.0.113.140:443",
        t(10, 16, 1),
        "cover.cdn.example",
        true,
        5000,
        9,
    );
    g.tcp(
        &f,
        lbl(
            "ECH flow attributed by DNS",
            V::Filed,
            Some("EX-2026-0202"),
            &[],
        ),
    );
    // Filed QUIC: model evaluation logs to the compute cloud.
    let dgrams: Vec<(Side, Vec<u8>)> = quic_initials("eval.compute.example")
        .into_iter()
        .map(|d| (Side::Client, d))
        .chain([
            (Side::Server, noise(1200, 13)),
            (Side::Client, noise(900, 14)),
        ])
        .collect();
    g.udp(
        a("10.70.1.5:50123"),
        a("203.0.113.130:443"),
        t(10, 17, 0),
        2000,
        None,
        &dgrams,
        lbl(
            "QUIC to the compute cloud",
            V::Filed,
            Some("EX-2026-0201"),
            &[],
        ),
    );
    // Orders to the fulfilment partner: 1.1 MB in one day (the scenario's daily cap applies).
    let f = tls(
        "10.50.1.9:52000",
        "203.0.113.60:443",
        t(10, 18, 0),
        "orders.fulfil.example",
        false,
        1_100_000,
        17,
    );
    g.tcp(
        &f,
        lbl(
            "orders, large daily volume",
            V::Filed,
            Some("EX-2026-0120"),
            &[K::VolumeCapExceeded],
        ),
    );
    // Unfiled export: SSH from a host no scenario lists.
    let f = TcpFlow::new(a("10.99.1.9:40022"), a("203.0.113.50:22"), t(10, 20, 0))
        .reply(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())
        .send(b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec())
        .send(noise(18_000, 21));
    g.tcp(
        &f,
        lbl("unfiled SSH export", V::Unfiled, None, &[K::UnfiledExport]),
    );
    // Recipient not filed: the motors telemetry goes to another cloud.
    let f = tls(
        "10.30.1.9:53001",
        "192.0.2.200:443",
        t(10, 21, 0),
        "telemetry.other-cloud.example",
        false,
        7000,
        25,
    );
    g.tcp(
        &f,
        lbl(
            "telemetry to an unfiled recipient",
            V::RecipientNotFiled,
            Some("FTZ-2026-0012"),
            &[K::RecipientNotFiled],
        ),
    );
    // Service not filed: FTP to the bank's filed hub network.
    let f = TcpFlow::new(a("10.40.1.1:40100"), a("192.0.2.10:21"), t(10, 22, 0))
        .reply(b"220 FTP server ready\r\n".to_vec())
        .send(b"USER batch\r\n".to_vec())
        .send(noise(3000, 29));
    g.tcp(
        &f,
        lbl(
            "FTP to the bank hub",
            V::ServiceNotFiled,
            Some("SA-2025-0044"),
            &[K::ServiceNotFiled],
        ),
    );
    // Outside window: the bank's nightly batch runs at 10:23.
    let f = tls(
        "10.40.5.5:40200",
        "192.0.2.20:443",
        t(10, 23, 0),
        "hub.bank.example",
        false,
        9000,
        33,
    );
    g.tcp(
        &f,
        lbl(
            "bank batch in daytime",
            V::OutsideWindow,
            Some("SA-2025-0044"),
            &[K::OutsideWindow],
        ),
    );
    // Cleartext personal information over plain HTTP (port 80 is not filed).
    let f = TcpFlow::new(a("10.50.2.2:40300"), a("203.0.113.77:80"), t(10, 24, 0))
        .send(http_post(
            "orders.fulfil.example",
            "/api/customers",
            &pi_records(30, 7),
        ))
        .reply(http_ok(20));
    g.tcp(
        &f,
        lbl(
            "customer records in cleartext",
            V::ServiceNotFiled,
            Some("EX-2026-0120"),
            &[K::ServiceNotFiled, K::PersonalInfoCleartext],
        ),
    );
    // Cleartext PI on a filed personal-data service (medium severity).
    let f = TcpFlow::new(a("10.80.3.3:40400"), a("198.51.100.30:5005"), t(10, 25, 0))
        .send(http_post(
            "pnr.reservations.example",
            "/pnr",
            &pi_records(5, 11),
        ))
        .reply(http_ok(20));
    g.tcp(
        &f,
        lbl(
            "passenger records in cleartext",
            V::Filed,
            Some("EX-2026-0301"),
            &[K::PersonalInfoCleartext],
        ),
    );
    // Negative-list data to a supplier not approved for it.
    let f = TcpFlow::new(a("10.30.17.4:40500"), a("192.0.2.150:443"), t(10, 26, 0))
        .send(http_post(
            "portal.parts.example",
            "/upload",
            b"VIN_BATCH_EXPORT;LSVAU2180N2183294;LSVAU2180N2183295",
        ))
        .reply(http_ok(20));
    g.tcp(
        &f,
        lbl(
            "VIN batch to the parts portal",
            V::Filed,
            Some("SC-2026-0031"),
            &[K::NegativeListCategory],
        ),
    );
    // Important-data marker.
    let f = TcpFlow::new(a("10.70.1.7:40600"), a("203.0.113.131:443"), t(10, 27, 0))
        .send(http_post(
            "eval.compute.example",
            "/tiles",
            b"SURVEY-GRADE-GEODATA tile 116.39,39.91",
        ))
        .reply(http_ok(20));
    g.tcp(
        &f,
        lbl(
            "survey-grade geodata",
            V::Filed,
            Some("EX-2026-0201"),
            &[K::ImportantDataMarker],
        ),
    );
    // Opaque tunnel: WireGuard from the logistics network.
    let mut wg = vec![1u8, 0, 0, 0];
    wg.extend(noise(144, 41));
    let mut data = vec![4u8, 0, 0, 0];
    data.extend(noise(1420, 43));
    g.udp(
        a("10.90.1.1:51820"),
        a("198.51.100.200:51820"),
        t(10, 28, 0),
        1000,
        None,
        &[
            (Side::Client, wg),
            (Side::Server, noise(92, 42)),
            (Side::Client, data),
        ],
        lbl(
            "WireGuard tunnel",
            V::ServiceNotFiled,
            Some("EX-2026-0401"),
            &[K::ServiceNotFiled, K::OpaqueTunnel],
        ),
    );
    // Line misuse: 55 foreign clients reach a domestic web service (no payload back).
    for i in 0..55u32 {
        let src = a(&format!("100.64.{}.{}:{}", i / 200, 1 + i % 200, 30000 + i));
        let f = TcpFlow::new(
            src,
            a("10.99.5.5:8443"),
            t(10, 30, 0) + i64::from(i) * 20_000,
        )
        .send(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec());
        g.tcp(
            &f,
            Label::new("public access to a domestic service", Some(V::Unfiled)),
        );
    }
    // Not cross-border.
    let f =
        TcpFlow::new(a("10.20.3.4:40700"), a("10.50.1.1:445"), t(10, 31, 0)).send(noise(500, 51));
    g.tcp(&f, lbl("internal file share", V::NotCrossBorder, None, &[]));
    // Two months later: the seller-analytics certification ran out on 2027-01-15.
    let f = tls(
        "10.50.130.5:40800",
        "198.51.100.60:443",
        beijing_micros(2027, 1, 18, 9, 30, 0),
        "analytics.example",
        false,
        4000,
        61,
    );
    g.tcp(
        &f,
        lbl(
            "analytics after the certification expired",
            V::FilingExpired,
            Some("CERT-2024-0009"),
            &[K::FilingExpired],
        ),
    );
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid() {
        for k in [0, 1, 77, 12_345, 999_999] {
            let id = resident_id(k);
            assert!(
                crossline_config::checks::resident_id_plausible(id.as_bytes()),
                "{id}"
            );
        }
    }

    #[test]
    fn mmdb_round_trip() {
        let net = |s: &str, l| {
            crossline_config::registry::IpNet::new(s.parse().expect("ip"), l).expect("net")
        };
        let bytes = mmdb_bytes(&[
            (net("198.51.100.0", 24), "DE"),
            (net("203.0.113.0", 25), "US"),
            (net("2001:db8::", 32), "JP"),
        ]);
        let r = maxminddb::Reader::from_source(bytes).expect("valid mmdb");
        let cc = |ip: &str| {
            r.lookup::<maxminddb::geoip2::Country>(ip.parse().expect("ip"))
                .ok()
                .and_then(|c| c.country.and_then(|c| c.iso_code.map(str::to_string)))
        };
        assert_eq!(cc("198.51.100.7").as_deref(), Some("DE"));
        assert_eq!(cc("203.0.113.5").as_deref(), Some("US"));
        assert_eq!(cc("203.0.113.200"), None);
        assert_eq!(cc("2001:db8::1").as_deref(), Some("JP"));
        assert_eq!(cc("192.0.2.1"), None);
    }

    #[test]
    fn pcap_is_readable_by_libpcap() {
        let mut g = Generator::new();
        let c: SocketAddr = "10.1.2.3:40000".parse().expect("addr");
        let s: SocketAddr = "198.51.100.7:443".parse().expect("addr");
        g.tcp(
            &TcpFlow::new(c, s, 1_000_000)
                .send(b"hello".to_vec())
                .vlan(7),
            Label::new("x", None),
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let p = dir.path().join("t.pcap");
        g.write(&p).expect("write");
        let mut cap = pcap::Capture::from_file(&p).expect("open");
        let mut n = 0;
        while cap.next_packet().is_ok() {
            n += 1;
        }
        assert_eq!(n, 7);
    }
}
