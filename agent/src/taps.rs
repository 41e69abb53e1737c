//! Adapter between the flow table and the L7 parsers ([`crate::l7`]): per-flow L7 state, the
//! bounded in-order reassembly of the client's first bytes, QUIC Initial state, banner
//! detection, and the DNS answers feeding the shared [`DnsCache`].
//!
//! State lives behind `Option<Box<L7State>>` in the flow entry and is only allocated when a
//! flow has something to buffer (a ClientHello or HTTP head split over segments, QUIC
//! Initials) or a result was found; buffers are freed as soon as the ClientHello / request is
//! found or the byte cap (`capture.tls_reassembly_bytes`) is hit. Flows whose taps are all done
//! cost one byte of flags (`Flow::l7_done`). The client stream is reassembled in order only: a
//! gap ends the attempt (retransmitted bytes are skipped).

use crate::decode::{ip_proto, Decoded};
use crate::dns_cache::DnsCache;
use crate::flow::{AppProto, Flow};
use crate::l7::quic::{looks_like_initial, QuicInitial};
use crate::l7::tls::ClientHello;
use crate::l7::{banner, dns, http, tls, Parse};
use crate::stats::LiveStats;
use crossline_config::event::{HttpMeta, TlsMeta};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const TLS_DONE: u8 = 0x01;
const HTTP_DONE: u8 = 0x02;
const QUIC_DONE: u8 = 0x04;
const BANNER_FWD: u8 = 0x08;
const BANNER_REV: u8 = 0x10;
const SEQ_KNOWN: u8 = 0x20;
/// The reassembly budget was spent when this flow needed a buffer: parsed segment by segment.
pub const NO_REASSEMBLY: u8 = 0x40;
/// Client datagrams fed to the QUIC Initial reassembly before giving up.
const QUIC_MAX_DATAGRAMS: u64 = 16;
/// Client datagrams without anything that looks like an Initial before giving up.
const QUIC_MAX_PROBES: u64 = 3;

/// Client packets within which a ClientHello after a cleartext start is still looked for.
const LATE_HELLO_PACKETS: u64 = 64;

/// Ports whose payload is parsed as DNS (DNS, mDNS, LLMNR).
pub const DNS_PORTS: [u16; 3] = [53, 5353, 5355];

/// The global byte budget of the per-flow reassembly buffers (TLS / HTTP client stream, QUIC
/// Initial reassembly), shared by every worker (`capture.reassembly_budget`). A flow charges
/// the heap bytes of its buffers as they grow and gives them back when they are freed (the
/// ClientHello / request was found, the flow gave up, or the flow record was written). A flow
/// whose buffer would take the total past the budget is parsed without reassembly from then
/// on (each segment on its own) and counted (`stats.drops.reassembly_budget`). One atomic add
/// per buffer growth, nothing per packet for flows that do not buffer.
#[derive(Debug)]
pub struct ReassemblyBudget {
    limit: u64,
    /// Bytes charged (`used`) and flows refused (`refused`) live in the shared counters.
    stats: Arc<LiveStats>,
}

impl ReassemblyBudget {
    /// A budget of `limit` bytes counted in `stats`.
    pub fn new(limit: u64, stats: Arc<LiveStats>) -> Self {
        ReassemblyBudget { limit, stats }
    }

    /// Bytes charged now (all workers).
    pub fn used(&self) -> u64 {
        self.stats.reassembly_bytes.load(Ordering::Relaxed)
    }

    /// Take `n` bytes; false (nothing taken) when that would pass the limit.
    fn charge(&self, n: u64) -> bool {
        let used = &self.stats.reassembly_bytes;
        let prev = used.fetch_add(n, Ordering::Relaxed);
        if prev.saturating_add(n) > self.limit {
            used.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, n: u64) {
        self.stats.reassembly_bytes.fetch_sub(n, Ordering::Relaxed);
    }

    fn refuse(&self) {
        self.stats
            .reassembly_refused
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Per-flow L7 state (boxed in the flow entry).
#[derive(Debug, Default)]
pub struct L7State {
    /// TLS ClientHello found over TCP.
    pub tls: Option<TlsMeta>,
    /// ClientHello found in QUIC Initials.
    pub quic: Option<TlsMeta>,
    /// HTTP/1.x request found.
    pub http: Option<HttpMeta>,
    /// In-order bytes of the client's stream (TLS/HTTP reassembly).
    buf: Vec<u8>,
    /// QUIC Initial reassembly.
    quic_state: Option<Box<QuicInitial>>,
    /// Bytes charged to the reassembly budget (given back on drop).
    charged: u64,
    budget: Option<Arc<ReassemblyBudget>>,
}

impl Drop for L7State {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.charged);
        }
    }
}

impl L7State {
    /// Heap bytes of the reassembly buffers.
    fn heap_bytes(&self) -> u64 {
        let q = self
            .quic_state
            .as_ref()
            .map_or(0, |q| q.heap_bytes() + std::mem::size_of::<QuicInitial>());
        (self.buf.capacity() + q) as u64
    }

    /// Charge (or give back) the difference between the buffers' heap bytes and what was
    /// charged. False when the budget refused the growth (nothing charged).
    fn settle(&mut self, budget: &Arc<ReassemblyBudget>) -> bool {
        if self.budget.is_none() {
            self.budget = Some(budget.clone());
        }
        let now = self.heap_bytes();
        if now > self.charged {
            if !budget.charge(now - self.charged) {
                return false;
            }
        } else {
            budget.release(self.charged - now);
        }
        self.charged = now;
        true
    }
}

impl L7State {
    fn has_results(&self) -> bool {
        self.tls.is_some() || self.quic.is_some() || self.http.is_some()
    }
}

/// The L7 taps of one worker.
#[derive(Debug)]
pub struct Taps {
    /// Shared DNS name cache.
    pub dns: Arc<DnsCache>,
    /// Reassembly cap per flow.
    pub reassembly_bytes: usize,
    /// The global reassembly budget.
    pub budget: Arc<ReassemblyBudget>,
}

fn meta(ch: ClientHello, version: Option<u32>) -> TlsMeta {
    TlsMeta {
        sni: ch.sni,
        alpn: ch.alpn,
        ech: ch.ech,
        ja4: (!ch.ja4.is_empty()).then_some(ch.ja4),
        version,
    }
}

/// `a` is before `b` in TCP sequence space.
fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Taps {
    /// Taps with a shared cache.
    pub fn new(dns: Arc<DnsCache>, reassembly_bytes: usize, budget: ReassemblyBudget) -> Self {
        Taps {
            dns,
            reassembly_bytes: reassembly_bytes.max(512),
            budget: Arc::new(budget),
        }
    }

    /// The buffers of `flow` grew: charge the budget; past it, stop reassembling this flow
    /// (free its buffers) and count it.
    fn settle<S>(&mut self, flow: &mut Flow<S, L7State>) {
        let ok = match flow.l7_mut().as_mut() {
            Some(l7) => l7.settle(&self.budget),
            None => true,
        };
        if !ok {
            self.budget.refuse();
            flow.mark_l7_done(TLS_DONE | HTTP_DONE | QUIC_DONE | NO_REASSEMBLY);
            if let Some(l7) = flow.l7_mut().as_mut() {
                l7.buf = Vec::new();
                l7.quic_state = None;
                let budget = self.budget.clone();
                l7.settle(&budget);
            }
            release(flow);
        }
    }

    /// Look at one packet's payload (non-empty). `from_initiator` tells the direction;
    /// `dns_response`: the capture thread parsed a DNS response from it (see [`learn_dns`]).
    pub fn on_payload<S>(
        &mut self,
        flow: &mut Flow<S, L7State>,
        dec: &Decoded,
        payload: &[u8],
        from_initiator: bool,
        dns_response: bool,
    ) {
        let proto = flow.key().proto;
        let resp_port = flow.responder().1;
        // DNS flows: marked by the response the capture thread already parsed.
        if dns_response && flow.app_proto().is_none() {
            flow.set_app_proto(AppProto::from_name("dns"));
        }
        // Banners: the first payload of each direction.
        let bit = if from_initiator {
            BANNER_FWD
        } else {
            BANNER_REV
        };
        if flow.l7_done() & bit == 0 {
            flow.mark_l7_done(bit);
            if flow.app_proto().is_none() {
                flow.set_app_proto(AppProto::from_option(banner::detect(
                    payload,
                    from_initiator,
                    proto,
                    resp_port,
                )));
            }
        }
        if !from_initiator {
            return;
        }
        match proto {
            ip_proto::TCP if flow.l7_done() & (TLS_DONE | HTTP_DONE) != TLS_DONE | HTTP_DONE => {
                self.client_stream(flow, dec.tcp_seq, payload);
            }
            ip_proto::TCP => self.late_client_hello(flow, payload),
            ip_proto::UDP if flow.l7_done() & QUIC_DONE == 0 => self.quic(flow, payload),
            _ => {}
        }
    }

    /// In-order reassembly of the client's first bytes for the TLS and HTTP parsers.
    fn client_stream<S>(&mut self, flow: &mut Flow<S, L7State>, seq: u32, payload: &[u8]) {
        if flow.l7_done() & SEQ_KNOWN == 0 {
            flow.mark_l7_done(SEQ_KNOWN);
            if !flow.tcp().syn_seen {
                flow.set_stream_seq(seq);
            }
        }
        let expected = flow.tcp().next_seq;
        let data = if seq == expected {
            payload
        } else if seq_before(seq, expected) {
            // Retransmission or overlap: keep only bytes beyond what we have.
            let skip = expected.wrapping_sub(seq) as usize;
            match payload.get(skip..) {
                Some(rest) if !rest.is_empty() => rest,
                _ => return,
            }
        } else {
            // A gap (lost or reordered segment): give up on this flow's client stream.
            self.stop_stream(flow);
            return;
        };
        flow.set_stream_seq(expected.wrapping_add(data.len() as u32));
        let buffered = flow.l7().is_some_and(|l| !l.buf.is_empty());
        if !buffered {
            if self.parse_stream(flow, data) {
                return;
            }
            let cap = self.reassembly_bytes;
            let l7 = flow.l7_mut().get_or_insert_with(Box::default);
            l7.buf.extend_from_slice(&data[..data.len().min(cap)]);
            self.settle(flow);
        } else {
            let cap = self.reassembly_bytes;
            let Some(l7) = flow.l7_mut().as_mut() else {
                return;
            };
            let room = cap.saturating_sub(l7.buf.len());
            l7.buf.extend_from_slice(&data[..data.len().min(room)]);
            let buf = std::mem::take(&mut l7.buf);
            let finished = self.parse_stream(flow, &buf);
            if let Some(l7) = flow.l7_mut().as_mut() {
                if !finished {
                    l7.buf = buf;
                }
            }
            self.settle(flow);
        }
        if flow
            .l7()
            .is_some_and(|l| l.buf.len() >= self.reassembly_bytes)
        {
            self.stop_stream(flow);
        }
    }

    /// Run the TLS and HTTP parsers on the client stream prefix `data`. Returns true when no
    /// more bytes are needed.
    fn parse_stream<S>(&mut self, flow: &mut Flow<S, L7State>, data: &[u8]) -> bool {
        if flow.l7_done() & TLS_DONE == 0 {
            match tls::parse_client_hello(data) {
                Parse::Found(ch) => {
                    flow.l7_mut().get_or_insert_with(Box::default).tls = Some(meta(ch, None));
                    flow.set_app_proto(AppProto::from_name("tls"));
                    self.stop_stream(flow);
                    return true;
                }
                Parse::NotThisProtocol => flow.mark_l7_done(TLS_DONE),
                Parse::NeedMore => {}
            }
        }
        if flow.l7_done() & HTTP_DONE == 0 {
            match http::parse_request(data) {
                Parse::Found(req) => {
                    flow.l7_mut().get_or_insert_with(Box::default).http = Some(HttpMeta {
                        hostname: req.host,
                        http_method: Some(req.method),
                    });
                    flow.set_app_proto(AppProto::from_name("http"));
                    self.stop_stream(flow);
                    return true;
                }
                Parse::NotThisProtocol => flow.mark_l7_done(HTTP_DONE),
                Parse::NeedMore => {}
            }
        }
        if flow.l7_done() & (TLS_DONE | HTTP_DONE) == TLS_DONE | HTTP_DONE {
            self.stop_stream(flow);
            return true;
        }
        false
    }

    /// Stop reassembling the client stream and free the buffer (and the box if empty).
    fn stop_stream<S>(&mut self, flow: &mut Flow<S, L7State>) {
        flow.mark_l7_done(TLS_DONE | HTTP_DONE);
        release(flow);
    }

    /// A ClientHello after a cleartext start (SMTP/IMAP/POP3 STARTTLS, HTTP CONNECT): once the
    /// stream reassembly is over without TLS, a client segment that starts like a handshake
    /// record is parsed on its own, for the first [`LATE_HELLO_PACKETS`] client packets.
    fn late_client_hello<S>(&mut self, flow: &mut Flow<S, L7State>, payload: &[u8]) {
        if flow.pkts()[0] > LATE_HELLO_PACKETS
            || !payload.starts_with(&[0x16, 0x03])
            || flow.l7().is_some_and(|l| l.tls.is_some())
        {
            return;
        }
        if let Parse::Found(ch) = tls::parse_client_hello(payload) {
            flow.l7_mut().get_or_insert_with(Box::default).tls = Some(meta(ch, None));
            if flow.app_proto().is_none() {
                flow.set_app_proto(AppProto::from_name("tls"));
            }
        }
    }

    fn quic<S>(&mut self, flow: &mut Flow<S, L7State>, payload: &[u8]) {
        let has_state = flow.l7().is_some_and(|l| l.quic_state.is_some());
        if !has_state {
            if !looks_like_initial(payload) {
                if flow.pkts()[0] >= QUIC_MAX_PROBES {
                    flow.mark_l7_done(QUIC_DONE);
                }
                return;
            }
            flow.l7_mut().get_or_insert_with(Box::default).quic_state =
                Some(Box::new(QuicInitial::new()));
        }
        self.quic_datagram(flow, payload);
        self.settle(flow);
    }

    fn quic_datagram<S>(&mut self, flow: &mut Flow<S, L7State>, payload: &[u8]) {
        let sent = flow.pkts()[0];
        let Some(l7) = flow.l7_mut().as_mut() else {
            return;
        };
        let Some(q) = l7.quic_state.as_mut() else {
            return;
        };
        match q.on_client_datagram(payload) {
            Parse::Found((ch, version)) => {
                l7.quic = Some(meta(ch, Some(version)));
                l7.quic_state = None;
                flow.set_app_proto(AppProto::from_name("quic"));
                flow.mark_l7_done(QUIC_DONE);
            }
            Parse::NotThisProtocol => {
                l7.quic_state = None;
                flow.mark_l7_done(QUIC_DONE);
                release(flow);
            }
            Parse::NeedMore => {
                if sent >= QUIC_MAX_DATAGRAMS {
                    l7.quic_state = None;
                    flow.mark_l7_done(QUIC_DONE);
                    release(flow);
                }
            }
        }
    }
}

/// A name (TLS/QUIC SNI, HTTP Host) of `flow` is being parsed: a ClientHello or request head
/// split over segments is buffered, or QUIC Initials are being reassembled.
pub fn name_pending<S>(flow: &Flow<S, L7State>) -> bool {
    flow.l7()
        .is_some_and(|l| !l.buf.is_empty() || l.quic_state.is_some())
}

/// The L7 taps found a name for `flow` (TLS or QUIC SNI, HTTP Host).
pub fn has_name<S>(flow: &Flow<S, L7State>) -> bool {
    flow.l7().is_some_and(|l| {
        l.tls.as_ref().is_some_and(|t| t.sni.is_some())
            || l.quic.as_ref().is_some_and(|t| t.sni.is_some())
            || l.http.as_ref().is_some_and(|h| h.hostname.is_some())
    })
}

/// Free the buffers; drop the box when it holds no results and no live state.
fn release<S>(flow: &mut Flow<S, L7State>) {
    let done = flow.l7_done();
    let drop_box = match flow.l7_mut().as_mut() {
        Some(l7) => {
            if done & (TLS_DONE | HTTP_DONE) == TLS_DONE | HTTP_DONE {
                l7.buf = Vec::new();
            }
            if let Some(b) = l7.budget.clone() {
                l7.settle(&b);
            }
            !l7.has_results() && l7.buf.is_empty() && l7.quic_state.is_none()
        }
        None => false,
    };
    if drop_box {
        *flow.l7_mut() = None;
    }
}

/// Put the A/AAAA answers of a DNS response (UDP payload, or TCP payload holding whole
/// length-prefixed messages) into `cache` at `now_micros`. Returns true when a response was
/// parsed. `parse_answers` reports the name the client asked for first, then the CNAME target
/// owning the record; the cache keeps one name per address: the asked one.
///
/// Called by the capture thread, which sees packets in order, so an answer is in the cache
/// before any packet that follows it is handed to a worker (a lock per answer, not per packet).
pub fn learn_dns(cache: &DnsCache, proto: u8, payload: &[u8], now_micros: i64) -> bool {
    let mut last: Option<std::net::IpAddr> = None;
    let mut insert = |name: &str, ip: std::net::IpAddr, ttl: u32| {
        if last != Some(ip) {
            cache.insert(ip, name, ttl, now_micros);
        }
        last = Some(ip);
    };
    if proto == ip_proto::TCP {
        let mut any = false;
        for msg in dns::split_tcp_messages(payload) {
            any |= dns::parse_answers(msg, &mut insert).is_ok();
        }
        any
    } else {
        dns::parse_answers(payload, &mut insert).is_ok()
    }
}

/// Most DNS-over-TCP directions with an unfinished message held per capture thread.
pub const DNS_TCP_STREAMS: usize = 256;
/// Most bytes of an unfinished DNS-over-TCP message held per direction.
pub const DNS_TCP_HELD_BYTES: usize = 16 << 10;

#[derive(Debug)]
struct DnsTcpHeld {
    next_seq: u32,
    buf: Vec<u8>,
}

/// DNS over TCP as the capture thread sees it (RFC 7766): a message, or its two-byte length
/// prefix, may be cut anywhere by segment boundaries (some servers send the prefix in its own
/// segment). The unfinished tail of a direction is held (at most [`DNS_TCP_HELD_BYTES`], for at
/// most [`DNS_TCP_STREAMS`] directions; beyond that the oldest is dropped and counted) and
/// completed by the next in-order segment; a gap drops it. Nothing is allocated unless a
/// message is actually cut.
#[derive(Debug, Default)]
pub struct DnsTcpStreams {
    held: std::collections::HashMap<
        (crate::flow::FlowKey, bool),
        DnsTcpHeld,
        foldhash::fast::RandomState,
    >,
    order: std::collections::VecDeque<(crate::flow::FlowKey, bool)>,
    /// Unfinished messages dropped (gap, too long, too many streams).
    pub dropped: u64,
}

impl DnsTcpStreams {
    /// Learn the answers of one TCP segment's `payload` (sequence number `seq`) of the
    /// direction `dec` describes. Returns true when a response was parsed.
    pub fn learn(
        &mut self,
        cache: &DnsCache,
        dec: &Decoded,
        payload: &[u8],
        now_micros: i64,
    ) -> bool {
        let (key, src_is_lo) = crate::flow::FlowKey::from_decoded(dec);
        let id = (key, src_is_lo);
        let seq = dec.tcp_seq;
        let mut joined;
        let data: &[u8] = match self.held.remove(&id) {
            Some(h) if h.next_seq == seq => {
                joined = h.buf;
                joined.extend_from_slice(payload);
                &joined
            }
            Some(_) => {
                self.dropped += 1;
                payload
            }
            None => payload,
        };
        let mut any = false;
        let mut msgs = dns::split_tcp_messages(data);
        for msg in msgs.by_ref() {
            any |= learn_dns(cache, ip_proto::UDP, msg, now_micros);
        }
        let rest = data.get(msgs.consumed()..).unwrap_or(&[]);
        if !rest.is_empty() {
            let wanted = match rest {
                [a, b, ..] => 2 + usize::from(u16::from_be_bytes([*a, *b])),
                _ => 2,
            };
            if wanted > DNS_TCP_HELD_BYTES {
                self.dropped += 1;
            } else {
                if self.held.len() >= DNS_TCP_STREAMS {
                    while let Some(old) = self.order.pop_front() {
                        if self.held.remove(&old).is_some() {
                            self.dropped += 1;
                            break;
                        }
                    }
                }
                self.held.insert(
                    id,
                    DnsTcpHeld {
                        next_seq: seq.wrapping_add(payload.len() as u32),
                        buf: rest.to_vec(),
                    },
                );
                self.order.push_back(id);
                if self.order.len() > 2 * DNS_TCP_STREAMS {
                    let held = &self.held;
                    self.order.retain(|k| held.contains_key(k));
                }
            }
        }
        any
    }
}
