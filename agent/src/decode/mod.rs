//! Packet decode: link layer -> (tunnels) -> innermost IP flow tuple, without allocation.
//!
//! [`decode`] walks a captured frame from its link-layer header down to the innermost transport
//! header and fills a [`Decoded`] value (addresses, protocol, ports, TCP flags, payload offset,
//! fragment information). Supported:
//!
//! - link types: Ethernet, Linux SLL and SLL2, raw IP (DLT 12/14, LINKTYPE 101, 228, 229),
//!   BSD NULL (0) and LOOP (108), PPP (9, 50), Cisco HDLC (104);
//! - 802.1Q / 802.1ad / QinQ and deeper VLAN stacks, MPLS label stacks (IPv4/IPv6 picked by the
//!   version nibble, or Ethernet over a pseudowire control word), PPPoE sessions;
//! - IPv4 with options, IPv6 with extension headers (hop-by-hop, routing, destination options,
//!   fragment, AH, mobility);
//! - tunnels, decapsulated to the innermost flow: GRE (v0, PPTP v1, ERSPAN I/II/III, transparent
//!   Ethernet bridging, MPLS), VXLAN (UDP 4789), Geneve (UDP 6081), GRE over UDP (4754), MPLS
//!   over UDP (6635), Teredo (UDP 3544), GTP-U (UDP 2152), IP-in-IP, 6in4, 4in6, 6in6;
//! - 802.3 frames with LLC/SNAP carrying IP; IPv6 type 0 routing headers (the flow's
//!   destination is the route's final address).
//!
//! A tunnel whose inner packet does not decode is metered as the outer flow (the bytes are
//! still on the line). Errors are small `Copy` values ([`DecodeError`]); packets that decode but
//! carry no IP flow (ARP, LLDP, ...) are [`Ignored`]. The parser is lax in the same way tshark
//! is: an IPv4 total length larger than what was captured (snaplen) still yields ports; a total
//! length of 0 (TSO) means "use the captured length". A length beyond the packet's length on
//! the wire ([`decode_wire`]) is an error: the packet never had those bytes.

mod bytes;

use bytes::Cursor;

/// Maximum number of encapsulation layers followed (VLAN tags and MPLS labels count as one
/// layer each).
pub const MAX_DEPTH: usize = 16;

/// Why a packet could not be decoded. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Frame shorter than its link-layer header.
    TruncatedLink,
    /// VLAN tag, MPLS label, PPPoE or other shim header cut short.
    TruncatedShim,
    /// IPv4 header cut short.
    TruncatedIpv4,
    /// IPv6 header or an extension header cut short.
    TruncatedIpv6,
    /// TCP header cut short (fewer than 20 bytes captured).
    TruncatedTcp,
    /// UDP header cut short.
    TruncatedUdp,
    /// IP version nibble is neither 4 nor 6 where IP was expected.
    BadIpVersion,
    /// IPv4 header length below 20 bytes or beyond the packet.
    BadIpv4HeaderLength,
    /// IPv4 total length smaller than its header.
    BadIpv4TotalLength,
    /// IPv6 payload length is smaller than its extension headers.
    BadIpv6Length,
    /// TCP data offset below 5 words.
    BadTcpHeaderLength,
    /// The capture's link type is not supported.
    UnsupportedLinktype,
    /// More encapsulation layers than [`MAX_DEPTH`].
    TooDeep,
    /// Capture time outside 1970-01-01..2100-01-01 (counted by the capture path, before
    /// decoding; see [`crate::capture::ts_sane`]).
    BadTimestamp,
    /// IPv4 total length reaching beyond the packet's length on the wire (not a snaplen cut:
    /// the packet was never that long).
    Ipv4LengthBeyondWire,
    /// IPv6 payload length reaching beyond the packet's length on the wire.
    Ipv6LengthBeyondWire,
}

impl DecodeError {
    /// Every reason, in a fixed order (index with [`DecodeError::index`]).
    pub const ALL: [DecodeError; 16] = [
        DecodeError::TruncatedLink,
        DecodeError::TruncatedShim,
        DecodeError::TruncatedIpv4,
        DecodeError::TruncatedIpv6,
        DecodeError::TruncatedTcp,
        DecodeError::TruncatedUdp,
        DecodeError::BadIpVersion,
        DecodeError::BadIpv4HeaderLength,
        DecodeError::BadIpv4TotalLength,
        DecodeError::BadIpv6Length,
        DecodeError::BadTcpHeaderLength,
        DecodeError::UnsupportedLinktype,
        DecodeError::TooDeep,
        DecodeError::BadTimestamp,
        DecodeError::Ipv4LengthBeyondWire,
        DecodeError::Ipv6LengthBeyondWire,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`DecodeError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `stats.decode_errors` / metrics label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::TruncatedShim => "truncated_shim",
            DecodeError::TruncatedIpv4 => "truncated_ipv4",
            DecodeError::TruncatedIpv6 => "truncated_ipv6",
            DecodeError::TruncatedTcp => "truncated_tcp",
            DecodeError::TruncatedUdp => "truncated_udp",
            DecodeError::BadIpVersion => "bad_ip_version",
            DecodeError::BadIpv4HeaderLength => "bad_ipv4_header_length",
            DecodeError::BadIpv4TotalLength => "bad_ipv4_total_length",
            DecodeError::BadIpv6Length => "bad_ipv6_length",
            DecodeError::BadTcpHeaderLength => "bad_tcp_header_length",
            DecodeError::UnsupportedLinktype => "unsupported_linktype",
            DecodeError::TooDeep => "too_deep",
            DecodeError::BadTimestamp => "bad_timestamp",
            DecodeError::Ipv4LengthBeyondWire => "ipv4_length_beyond_wire",
            DecodeError::Ipv6LengthBeyondWire => "ipv6_length_beyond_wire",
        }
    }
}

/// Why a decodable packet carries no flow. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// ARP, LLDP, STP, 802.3/LLC and any other non-IP frame.
    NonIp,
    /// A non-first IP fragment whose first fragment was not seen (or was evicted).
    FragmentUnattributed,
    /// A TCP segment without payload or SYN (a retransmitted FIN, a last ACK, a RST) for a
    /// connection closed shortly before: it does not start a new flow (counted by the flow
    /// table, [`crate::flow::FlowTracker`]).
    TcpAfterClose,
}

impl Ignored {
    /// Every reason, in a fixed order.
    pub const ALL: [Ignored; 3] = [
        Ignored::NonIp,
        Ignored::FragmentUnattributed,
        Ignored::TcpAfterClose,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`Ignored::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `stats.ignored` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NonIp => "non_ip",
            Ignored::FragmentUnattributed => "fragment_unattributed",
            Ignored::TcpAfterClose => "tcp_after_close",
        }
    }
}

/// Result of [`decode`] when it does not produce a flow tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The packet is malformed or unsupported.
    Error(DecodeError),
    /// The packet is fine but carries no IP flow.
    Ignored(Ignored),
}

/// Fragment key: the fragmenting IP layer's (source, destination, identification, protocol)
/// and the VLAN ids the packet came on (two circuits' datagrams never mix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub id: u32,
    pub proto: u8,
    pub v6: bool,
    pub vlan: [u16; MAX_VLANS],
}

/// Fragment position of a packet (its datagram's key: [`Decoded::frag_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Frag {
    /// Not a fragment (or an atomic fragment: offset 0 and no more fragments).
    #[default]
    None,
    /// First fragment: the transport header is present.
    First,
    /// A later fragment: no transport header; the flow must come from the fragment map.
    Later,
}

/// The innermost flow tuple of a packet and what the flow layer needs from its headers.
/// Addresses are 16-byte arrays; IPv4 uses the first 4 bytes (rest zero) with `v6 == false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decoded {
    pub v6: bool,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IP protocol number of the innermost transport.
    pub proto: u8,
    /// Ports (TCP, UDP, SCTP); ICMP type in `src_port` and code in `dst_port`; else 0.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    /// TCP acknowledgement number (meaningful when the ACK flag is set).
    pub tcp_ack: u32,
    /// TCP payload length on the wire (from the IP header; more than `payload_len` when the
    /// capture cut the packet). Meaningful for unfragmented TCP only.
    pub tcp_wire_len: u32,
    /// Offset of the transport payload from the start of the frame.
    pub payload_off: u32,
    /// Length of the transport payload present in the capture.
    pub payload_len: u32,
    pub frag: Frag,
    /// Fragments only: the identification of the fragmenting IP header (16 bits for IPv4, 32
    /// for IPv6) and the protocol it names (IPv6: the header after the fragment header).
    /// With the addresses, address family and VLAN ids above they make the datagram's key
    /// ([`Decoded::frag_key`]), kept in these 5 bytes rather than as a 44-byte key in every
    /// packet handed to a worker.
    pub frag_id: u32,
    pub frag_proto: u8,
    /// Fragments only: offset of this fragment's data in the datagram, bytes.
    pub frag_offset: u32,
    /// Fragments only: IP payload bytes of this fragment (from the IP header, not the capture).
    pub frag_len: u32,
    /// Fragments only: more fragments follow (MF flag).
    pub frag_more: bool,
    /// Encapsulation layers removed to reach this flow (0 = plain IP over the link).
    pub tunnel_depth: u8,
    /// 802.1Q / 802.1ad VLAN ids, outermost first (tags of an outer packet before those of a
    /// tunnel's inner frame); `vlan_count` of them are set, at most [`MAX_VLANS`]. Deeper tags
    /// are decoded through but not kept (as Suricata keeps three).
    pub vlan: [u16; MAX_VLANS],
    /// Number of VLAN tags kept in `vlan`.
    pub vlan_count: u8,
}

/// VLAN ids kept per packet (Suricata's `VLAN_MAX_LAYERS`).
pub const MAX_VLANS: usize = 3;

impl Decoded {
    /// The key of the datagram a fragment belongs to: the fragmenting IP layer's addresses,
    /// identification and protocol, and the VLAN ids the packet came on (two circuits'
    /// datagrams never mix). The fragmenting layer is the one decoded last: a fragment's
    /// tunnel payload is never decoded, and an inner packet that fails keeps the outer one.
    pub fn frag_key(&self) -> FragKey {
        FragKey {
            src: self.src,
            dst: self.dst,
            id: self.frag_id,
            proto: self.frag_proto,
            v6: self.v6,
            vlan: self.vlan,
        }
    }

    /// The VLAN ids kept, outermost first.
    pub fn vlans(&self) -> &[u16] {
        self.vlan
            .get(..usize::from(self.vlan_count))
            .unwrap_or(&self.vlan)
    }

    fn push_vlan(&mut self, tci: [u8; 2]) {
        let id = u16::from_be_bytes(tci) & 0x0fff;
        if let Some(slot) = self.vlan.get_mut(usize::from(self.vlan_count)) {
            *slot = id;
            self.vlan_count += 1;
        }
    }
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// IP protocol numbers used here.
pub mod ip_proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IP in IP (IPv4 payload).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 in IP.
    pub const IPV6: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// Link types (DLT / LINKTYPE values as libpcap reports them).
pub mod linktype {
    /// BSD loopback, host byte order family.
    pub const NULL: i32 = 0;
    /// Ethernet II.
    pub const ETHERNET: i32 = 1;
    /// PPP.
    pub const PPP: i32 = 9;
    /// Raw IP (DLT_RAW on most systems).
    pub const RAW_DLT: i32 = 12;
    /// Raw IP (DLT_RAW on OpenBSD).
    pub const RAW_DLT_OPENBSD: i32 = 14;
    /// PPP in HDLC-like framing.
    pub const PPP_HDLC: i32 = 50;
    /// LINKTYPE_RAW as written in files.
    pub const RAW: i32 = 101;
    /// Cisco HDLC.
    pub const C_HDLC: i32 = 104;
    /// OpenBSD loopback, network byte order family.
    pub const LOOP: i32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: i32 = 113;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: i32 = 276;
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_QINQ_OLD2: u16 = 0x9200;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_TEB: u16 = 0x6558;
const ETH_ERSPAN2: u16 = 0x88BE;
const ETH_ERSPAN3: u16 = 0x22EB;
const ETH_PPP: u16 = 0x880B;

/// Where the walk goes next.
#[derive(Debug, Clone, Copy)]
enum Next {
    Ethernet,
    EtherType(u16),
    Ip,
    Ipv4,
    Ipv6,
    Mpls,
    Ppp,
}

/// Decode one frame of link type `linktype` whose length on the wire is not known (only
/// header lengths beyond the captured bytes are tolerated, as with a snaplen). On success
/// `out` holds the innermost flow tuple.
pub fn decode(linktype: i32, frame: &[u8], out: &mut Decoded) -> Result<(), Outcome> {
    decode_wire(linktype, frame, u32::MAX, out)
}

/// [`decode`] of a frame that was `wire_len` bytes on the wire (`frame` may be shorter, cut by
/// the snaplen): an IPv4 total length or IPv6 payload length reaching beyond `wire_len` is a
/// decode error ([`DecodeError::Ipv4LengthBeyondWire`], [`DecodeError::Ipv6LengthBeyondWire`]),
/// not a flow. Only the outermost IP header is held to it (a tunnel's inner packet that does
/// not fit is metered as the outer flow).
pub fn decode_wire(
    linktype: i32,
    frame: &[u8],
    wire_len: u32,
    out: &mut Decoded,
) -> Result<(), Outcome> {
    // A record claiming fewer bytes on the wire than it holds (a broken writer): the bytes
    // are there, so the captured length is the floor.
    let wire = usize::try_from(wire_len)
        .unwrap_or(usize::MAX)
        .max(frame.len());
    if linktype == linktype::ETHERNET && fast_ethernet_ip(frame, wire, out) {
        return Ok(());
    }
    decode_general(linktype, frame, wire, out)
}

/// An IPv4 address as [`Decoded`] holds it: its 4 bytes, then 12 zero bytes.
#[inline(always)]
fn v4_in_16(a: [u8; 4]) -> [u8; 16] {
    u128::from(u32::from_le_bytes(a)).to_le_bytes()
}

/// The common case of a capture, decoded in one pass without the general walk: Ethernet II,
/// an IPv4 header (with or without options) or an IPv6 header without extension headers, not
/// a fragment, then TCP or UDP that is not a tunnel. Fills `out` exactly as
/// [`decode_general`] would and returns `true`; returns `false` (with `out` in any state) for
/// everything else, including every packet [`decode_general`] reports as an error, which then
/// takes the general path.
#[inline]
fn fast_ethernet_ip(frame: &[u8], wire: usize, out: &mut Decoded) -> bool {
    let Some(eth) = frame.get(..14) else {
        return false;
    };
    let et = u16::from_be_bytes([eth[12], eth[13]]);
    let (v6, proto, l4, end, wire_end) = if et == ETH_IPV4 {
        let Some(h) = frame.get(14..34) else {
            return false;
        };
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let ff = u16::from_be_bytes([h[6], h[7]]);
        if h[0] >> 4 != 4 || ihl < 20 || 14 + ihl > frame.len() || ff & 0x3fff != 0 {
            return false;
        }
        let (end, wire_end) = if total == 0 {
            (frame.len(), frame.len())
        } else if total < ihl {
            return false;
        } else {
            ((14 + total).min(frame.len()), 14 + total)
        };
        // Each address in one 16-byte store (the IPv4 bytes first, zeros after), not zeroed
        // and then patched: the flow key and shard hash read it back right away as two
        // 8-byte words, which a pair of overlapping stores cannot forward.
        out.src = v4_in_16([h[12], h[13], h[14], h[15]]);
        out.dst = v4_in_16([h[16], h[17], h[18], h[19]]);
        (false, h[9], 14 + ihl, end, wire_end)
    } else if et == ETH_IPV6 {
        let Some(h) = frame.get(14..54) else {
            return false;
        };
        let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let (end, wire_end) = if plen == 0 {
            (frame.len(), frame.len())
        } else {
            ((54 + plen).min(frame.len()), 54 + plen)
        };
        if h[0] >> 4 != 6 || 54 > end {
            return false;
        }
        out.src.copy_from_slice(&h[8..24]);
        out.dst.copy_from_slice(&h[24..40]);
        (true, h[6], 54, end, wire_end)
    } else {
        return false;
    };
    if wire_end > wire {
        return false;
    }
    let Some(body) = frame.get(l4..end) else {
        return false;
    };
    match proto {
        ip_proto::TCP => {
            let Some(t) = body.get(..20) else {
                return false;
            };
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 {
                return false;
            }
            let poff = (l4 + doff).min(end);
            out.src_port = u16::from_be_bytes([t[0], t[1]]);
            out.dst_port = u16::from_be_bytes([t[2], t[3]]);
            out.tcp_seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            out.tcp_ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
            out.tcp_flags = t[13];
            out.payload_off = poff as u32;
            out.payload_len = (end - poff) as u32;
            out.tcp_wire_len = wire_end.saturating_sub(l4 + doff) as u32;
        }
        ip_proto::UDP => {
            let Some(u) = body.get(..8) else {
                return false;
            };
            let sp = u16::from_be_bytes([u[0], u[1]]);
            let dp = u16::from_be_bytes([u[2], u[3]]);
            let tunnel = |p: u16| matches!(p, 4789 | 6081 | 2152 | 3544);
            if tunnel(sp) || tunnel(dp) || dp == 6635 || dp == 4754 {
                return false;
            }
            let ulen = usize::from(u16::from_be_bytes([u[4], u[5]]));
            let pend = if ulen >= 8 { (l4 + ulen).min(end) } else { end };
            out.src_port = sp;
            out.dst_port = dp;
            out.tcp_seq = 0;
            out.tcp_ack = 0;
            out.tcp_flags = 0;
            out.payload_off = (l4 + 8) as u32;
            out.payload_len = (pend - (l4 + 8)) as u32;
            out.tcp_wire_len = wire_end as u32;
        }
        _ => return false,
    }
    out.v6 = v6;
    out.proto = proto;
    out.frag = Frag::None;
    out.frag_id = 0;
    out.frag_proto = 0;
    out.frag_offset = 0;
    out.frag_len = 0;
    out.frag_more = false;
    out.tunnel_depth = 0;
    out.vlan = [0; MAX_VLANS];
    out.vlan_count = 0;
    true
}

/// [`decode_wire`] through the general walk (every link type, shim, tunnel and error).
fn decode_general(
    linktype: i32,
    frame: &[u8],
    wire: usize,
    out: &mut Decoded,
) -> Result<(), Outcome> {
    *out = Decoded::default();
    let mut c = Cursor::new(frame);
    let next = match linktype {
        linktype::ETHERNET => Next::Ethernet,
        linktype::RAW | linktype::RAW_DLT | linktype::RAW_DLT_OPENBSD => Next::Ip,
        linktype::IPV4 => Next::Ipv4,
        linktype::IPV6 => Next::Ipv6,
        linktype::NULL | linktype::LOOP => {
            let fam = c
                .take(4)
                .ok_or(Outcome::Error(DecodeError::TruncatedLink))?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let fam = if linktype == linktype::LOOP {
                be
            } else if le < 256 {
                le
            } else {
                be
            };
            match fam {
                2 => Next::Ipv4,
                10 | 24 | 28 | 30 => Next::Ipv6,
                _ => return Err(Outcome::Ignored(Ignored::NonIp)),
            }
        }
        linktype::LINUX_SLL => {
            let h = c
                .take(16)
                .ok_or(Outcome::Error(DecodeError::TruncatedLink))?;
            Next::EtherType(u16::from_be_bytes([h[14], h[15]]))
        }
        linktype::LINUX_SLL2 => {
            let h = c
                .take(20)
                .ok_or(Outcome::Error(DecodeError::TruncatedLink))?;
            Next::EtherType(u16::from_be_bytes([h[0], h[1]]))
        }
        linktype::PPP | linktype::PPP_HDLC => Next::Ppp,
        linktype::C_HDLC => {
            let h = c
                .take(4)
                .ok_or(Outcome::Error(DecodeError::TruncatedLink))?;
            Next::EtherType(u16::from_be_bytes([h[2], h[3]]))
        }
        _ => return Err(Outcome::Error(DecodeError::UnsupportedLinktype)),
    };
    walk(frame, c.pos(), next, 0, wire, out)
}

/// Walk from `pos` in `frame` with the header kind `next`, `depth` layers deep.
fn walk(
    frame: &[u8],
    pos: usize,
    mut next: Next,
    mut depth: usize,
    wire: usize,
    out: &mut Decoded,
) -> Result<(), Outcome> {
    let mut c = Cursor::at(frame, pos);
    loop {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(Outcome::Error(DecodeError::TooDeep));
        }
        next = match next {
            Next::Ethernet => {
                let h = c
                    .take(14)
                    .ok_or(Outcome::Error(DecodeError::TruncatedLink))?;
                let et = u16::from_be_bytes([h[12], h[13]]);
                if et < 0x0600 {
                    // 802.3 length field: only LLC/SNAP (AA AA 03, OUI, EtherType) carries IP.
                    match c.peek(8) {
                        Some(l) if l[0] == 0xaa && l[1] == 0xaa && l[2] == 0x03 => {
                            c.take(8);
                            Next::EtherType(u16::from_be_bytes([l[6], l[7]]))
                        }
                        _ => return Err(Outcome::Ignored(Ignored::NonIp)),
                    }
                } else {
                    Next::EtherType(et)
                }
            }
            Next::EtherType(et) => match et {
                ETH_IPV4 => Next::Ipv4,
                ETH_IPV6 => Next::Ipv6,
                ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_QINQ_OLD2 => {
                    let h = c
                        .take(4)
                        .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
                    out.push_vlan([h[0], h[1]]);
                    Next::EtherType(u16::from_be_bytes([h[2], h[3]]))
                }
                ETH_MPLS | ETH_MPLS_MC => Next::Mpls,
                ETH_PPPOE_SESSION => {
                    c.take(6)
                        .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
                    Next::Ppp
                }
                ETH_TEB => Next::Ethernet,
                _ => return Err(Outcome::Ignored(Ignored::NonIp)),
            },
            Next::Ppp => {
                // Optional address/control (ff 03), then a 1- or 2-byte protocol field.
                if c.peek(2) == Some(&[0xff, 0x03][..]) {
                    c.take(2);
                }
                let first = c.u8().ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
                let proto = if first & 1 == 1 {
                    u16::from(first)
                } else {
                    let second = c.u8().ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
                    u16::from_be_bytes([first, second])
                };
                match proto {
                    0x0021 => Next::Ipv4,
                    0x0057 => Next::Ipv6,
                    0x0281 | 0x0283 => Next::Mpls,
                    _ => return Err(Outcome::Ignored(Ignored::NonIp)),
                }
            }
            Next::Mpls => {
                loop {
                    let l = c
                        .take(4)
                        .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Outcome::Error(DecodeError::TooDeep));
                    }
                    if l[2] & 0x01 == 1 {
                        break;
                    }
                }
                match c.peek(1).map(|b| b[0] >> 4) {
                    Some(4) => Next::Ipv4,
                    Some(6) => Next::Ipv6,
                    Some(0) => {
                        // Pseudowire control word, then Ethernet.
                        c.take(4)
                            .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
                        Next::Ethernet
                    }
                    Some(_) => return Err(Outcome::Error(DecodeError::BadIpVersion)),
                    None => return Err(Outcome::Error(DecodeError::TruncatedShim)),
                }
            }
            Next::Ip => match c.peek(1).map(|b| b[0] >> 4) {
                Some(4) => Next::Ipv4,
                Some(6) => Next::Ipv6,
                Some(_) => return Err(Outcome::Error(DecodeError::BadIpVersion)),
                None => return Err(Outcome::Error(DecodeError::TruncatedIpv4)),
            },
            Next::Ipv4 | Next::Ipv6 => {
                return ip(frame, c.pos(), matches!(next, Next::Ipv6), depth, wire, out);
            }
        };
    }
}

/// What an IP header (with IPv6 extension headers) says, before the transport header.
struct IpLayer {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    frag: Frag,
    frag_id: u32,
    frag_proto: u8,
    frag_offset: u32,
    frag_len: u32,
    frag_more: bool,
    /// End of the IP payload within the frame.
    end: usize,
    /// End of the IP payload on the wire (past the capture when cut by snaplen).
    wire_end: usize,
}

/// Decode an IP header at `pos` and what follows it. `wire` is the packet's length on the wire
/// (`usize::MAX` when unknown): a header claiming more bytes than that is an error, while one
/// claiming more than was captured (snaplen) is not.
fn ip(
    frame: &[u8],
    pos: usize,
    v6: bool,
    depth: usize,
    wire: usize,
    out: &mut Decoded,
) -> Result<(), Outcome> {
    let mut c = Cursor::at(frame, pos);
    let l = if v6 {
        ipv6(frame, pos, &mut c)?
    } else {
        ipv4(frame, pos, &mut c)?
    };
    if l.wire_end > wire {
        return Err(Outcome::Error(if v6 {
            DecodeError::Ipv6LengthBeyondWire
        } else {
            DecodeError::Ipv4LengthBeyondWire
        }));
    }
    out.v6 = v6;
    out.src = l.src;
    out.dst = l.dst;
    out.proto = l.proto;
    out.frag = l.frag;
    out.frag_id = l.frag_id;
    out.frag_proto = l.frag_proto;
    out.frag_offset = l.frag_offset;
    out.frag_len = l.frag_len;
    out.frag_more = l.frag_more;
    out.tunnel_depth = 0;
    out.tcp_wire_len = l.wire_end as u32;
    let l4 = c.pos();
    if let Frag::Later = out.frag {
        // No transport header here: the payload is this fragment's slice of the datagram
        // (scanned in order after the first fragment's transport payload).
        out.src_port = 0;
        out.dst_port = 0;
        out.payload_off = l4 as u32;
        out.payload_len = l.end.saturating_sub(l4) as u32;
        return Ok(());
    }
    let body = frame.get(l4..l.end).unwrap_or(&[]);
    transport(frame, l4, body, depth, out)
}

/// The IPv4 header at `pos`; `c` ends past its options.
fn ipv4(frame: &[u8], pos: usize, c: &mut Cursor<'_>) -> Result<IpLayer, Outcome> {
    let h = c
        .peek(20)
        .ok_or(Outcome::Error(DecodeError::TruncatedIpv4))?;
    if h[0] >> 4 != 4 {
        return Err(Outcome::Error(DecodeError::BadIpVersion));
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Outcome::Error(DecodeError::BadIpv4HeaderLength));
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let id = u16::from_be_bytes([h[4], h[5]]);
    let ff = u16::from_be_bytes([h[6], h[7]]);
    let mut l = IpLayer {
        src: v4_in_16([h[12], h[13], h[14], h[15]]),
        dst: v4_in_16([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        frag: Frag::None,
        frag_id: 0,
        frag_proto: 0,
        frag_offset: 0,
        frag_len: 0,
        frag_more: false,
        end: 0,
        wire_end: 0,
    };
    c.take(ihl)
        .ok_or(Outcome::Error(DecodeError::BadIpv4HeaderLength))?;
    l.end = if total == 0 {
        frame.len() // TSO: the length field is left 0; use what was captured
    } else if total < ihl {
        return Err(Outcome::Error(DecodeError::BadIpv4TotalLength));
    } else {
        (pos + total).min(frame.len())
    };
    l.wire_end = if total == 0 { l.end } else { pos + total };
    let offset = ff & 0x1fff;
    let more = ff & 0x2000 != 0;
    if offset != 0 || more {
        l.frag_offset = u32::from(offset) * 8;
        l.frag_len = total.saturating_sub(ihl) as u32;
        l.frag_more = more;
        l.frag_id = u32::from(id);
        l.frag_proto = l.proto;
        l.frag = if offset == 0 {
            Frag::First
        } else {
            Frag::Later
        };
    }
    Ok(l)
}

/// The IPv6 header at `pos` and its extension headers; `c` ends at the transport header.
fn ipv6(frame: &[u8], pos: usize, c: &mut Cursor<'_>) -> Result<IpLayer, Outcome> {
    let h = c
        .take(40)
        .ok_or(Outcome::Error(DecodeError::TruncatedIpv6))?;
    if h[0] >> 4 != 6 {
        return Err(Outcome::Error(DecodeError::BadIpVersion));
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut l = IpLayer {
        src: [0; 16],
        dst: [0; 16],
        proto: h[6],
        frag: Frag::None,
        frag_id: 0,
        frag_proto: 0,
        frag_offset: 0,
        frag_len: 0,
        frag_more: false,
        end: 0,
        wire_end: 0,
    };
    l.src.copy_from_slice(&h[8..24]);
    l.dst.copy_from_slice(&h[24..40]);
    l.end = if plen == 0 {
        frame.len() // jumbogram or TSO
    } else {
        (pos + 40 + plen).min(frame.len())
    };
    l.wire_end = if plen == 0 { l.end } else { pos + 40 + plen };
    let mut nh = h[6];
    // Extension headers.
    loop {
        match nh {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let e = c
                    .peek(2)
                    .ok_or(Outcome::Error(DecodeError::TruncatedIpv6))?;
                let len = (usize::from(e[1]) + 1) * 8;
                let this = nh;
                nh = e[0];
                let ext = c
                    .take(len)
                    .ok_or(Outcome::Error(DecodeError::TruncatedIpv6))?;
                // Type 0 routing header with segments left: the flow's destination is the
                // final address of the route (as tshark and Zeek key it).
                if this == 43 && ext[2] == 0 && ext[3] > 0 && len >= 8 + 16 {
                    let last = &ext[len - 16..len];
                    l.dst.copy_from_slice(last);
                }
            }
            51 => {
                let e = c
                    .peek(2)
                    .ok_or(Outcome::Error(DecodeError::TruncatedIpv6))?;
                let len = (usize::from(e[1]) + 2) * 4;
                nh = e[0];
                c.take(len)
                    .ok_or(Outcome::Error(DecodeError::TruncatedIpv6))?;
            }
            44 => {
                let e = c
                    .take(8)
                    .ok_or(Outcome::Error(DecodeError::TruncatedIpv6))?;
                nh = e[0];
                let off = u16::from_be_bytes([e[2], e[3]]) >> 3;
                let more = e[3] & 1 == 1;
                let id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                if off != 0 || more {
                    l.frag_offset = u32::from(off) * 8;
                    // Payload length counts from the end of the fixed header.
                    l.frag_len = (40 + plen).saturating_sub(c.pos() - pos) as u32;
                    l.frag_more = more;
                    l.frag_id = id;
                    l.frag_proto = nh;
                    l.frag = if off == 0 { Frag::First } else { Frag::Later };
                }
            }
            _ => break,
        }
        if matches!(l.frag, Frag::Later) {
            break;
        }
    }
    if c.pos() > l.end {
        return Err(Outcome::Error(DecodeError::BadIpv6Length));
    }
    l.proto = nh;
    Ok(l)
}

/// Decode the transport header in `body` (which starts at `l4` in `frame`), decapsulating
/// tunnels. `out` already holds this IP layer's addresses and protocol.
fn transport(
    frame: &[u8],
    l4: usize,
    body: &[u8],
    depth: usize,
    out: &mut Decoded,
) -> Result<(), Outcome> {
    let end = l4 + body.len();
    match out.proto {
        ip_proto::TCP if matches!(out.frag, Frag::First) && body.len() < 20 => {
            // A first fragment cut inside the TCP header (tiny fragments): the ports are
            // enough to attribute the datagram.
            if body.len() < 4 {
                return Err(Outcome::Error(DecodeError::TruncatedTcp));
            }
            out.src_port = u16::from_be_bytes([body[0], body[1]]);
            out.dst_port = u16::from_be_bytes([body[2], body[3]]);
            if let Some(s) = body.get(4..8) {
                out.tcp_seq = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
            }
            out.tcp_flags = body.get(13).copied().unwrap_or(0);
            out.payload_off = end as u32;
            out.payload_len = 0;
            Ok(())
        }
        ip_proto::TCP => {
            if body.len() < 20 {
                return Err(Outcome::Error(DecodeError::TruncatedTcp));
            }
            let doff = usize::from(body[12] >> 4) * 4;
            if doff < 20 {
                return Err(Outcome::Error(DecodeError::BadTcpHeaderLength));
            }
            out.src_port = u16::from_be_bytes([body[0], body[1]]);
            out.dst_port = u16::from_be_bytes([body[2], body[3]]);
            out.tcp_seq = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
            out.tcp_ack = u32::from_be_bytes([body[8], body[9], body[10], body[11]]);
            out.tcp_flags = body[13];
            let poff = (l4 + doff).min(end);
            out.payload_off = poff as u32;
            out.payload_len = (end - poff) as u32;
            // `tcp_wire_len` holds the IP payload's end on the wire (set by `ip`).
            out.tcp_wire_len = (out.tcp_wire_len as usize).saturating_sub(l4 + doff) as u32;
            Ok(())
        }
        ip_proto::UDP => {
            if body.len() < 8 {
                return Err(Outcome::Error(DecodeError::TruncatedUdp));
            }
            out.src_port = u16::from_be_bytes([body[0], body[1]]);
            out.dst_port = u16::from_be_bytes([body[2], body[3]]);
            let ulen = usize::from(u16::from_be_bytes([body[4], body[5]]));
            let pend = if ulen >= 8 { (l4 + ulen).min(end) } else { end };
            out.payload_off = (l4 + 8) as u32;
            out.payload_len = (pend - (l4 + 8)) as u32;
            // A first fragment's tunnel payload is incomplete: meter the outer flow.
            if matches!(out.frag, Frag::None) {
                let start = l4 + 8;
                let udp_payload = frame.get(start..pend).unwrap_or(&[]);
                let sub = frame.get(..pend).unwrap_or(frame);
                let (sp, dp) = (out.src_port, out.dst_port);
                let inner = if sp == 4789 || dp == 4789 {
                    vxlan(udp_payload)
                } else if sp == 6081 || dp == 6081 {
                    geneve(udp_payload)
                } else if dp == 6635 {
                    Some((0, Next::Mpls))
                } else if sp == 2152 || dp == 2152 {
                    gtp_u(udp_payload)
                } else if sp == 3544 || dp == 3544 {
                    teredo(udp_payload)
                } else if dp == 4754 {
                    return try_inner(out, |o| gre(sub, start, pend, depth + 1, o));
                } else {
                    None
                };
                if let Some((off, next)) = inner {
                    if start + off < pend {
                        return try_inner(out, |o| {
                            walk(sub, start + off, next, depth, usize::MAX, o)
                        });
                    }
                }
            }
            Ok(())
        }
        ip_proto::SCTP => {
            if body.len() >= 4 {
                out.src_port = u16::from_be_bytes([body[0], body[1]]);
                out.dst_port = u16::from_be_bytes([body[2], body[3]]);
            }
            out.payload_off = (l4 + body.len().min(12)) as u32;
            out.payload_len = body.len().saturating_sub(12) as u32;
            Ok(())
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            if body.len() >= 2 {
                out.src_port = u16::from(body[0]);
                out.dst_port = u16::from(body[1]);
            }
            out.payload_off = (l4 + body.len().min(8)) as u32;
            out.payload_len = body.len().saturating_sub(8) as u32;
            Ok(())
        }
        ip_proto::IPIP | ip_proto::IPV6 if matches!(out.frag, Frag::None) => {
            let sub = frame.get(..end).unwrap_or(frame);
            let v6 = out.proto == ip_proto::IPV6;
            try_inner(out, |o| ip(sub, l4, v6, depth + 1, usize::MAX, o))
        }
        ip_proto::GRE if matches!(out.frag, Frag::None) => {
            try_inner(out, |o| gre(frame, l4, end, depth + 1, o))
        }
        _ => {
            out.payload_off = l4 as u32;
            out.payload_len = body.len() as u32;
            Ok(())
        }
    }
}

/// Try to decode an inner packet; if it fails, keep the outer flow in `out`.
fn try_inner(
    out: &mut Decoded,
    f: impl FnOnce(&mut Decoded) -> Result<(), Outcome>,
) -> Result<(), Outcome> {
    let outer = *out;
    // The inner packet keeps the tags of the outer one (the circuit it came on).
    let mut inner = Decoded {
        vlan: outer.vlan,
        vlan_count: outer.vlan_count,
        ..Decoded::default()
    };
    match f(&mut inner) {
        Ok(()) => {
            inner.tunnel_depth = inner.tunnel_depth.saturating_add(1);
            *out = inner;
            Ok(())
        }
        Err(Outcome::Error(DecodeError::TooDeep)) => Err(Outcome::Error(DecodeError::TooDeep)),
        Err(_) => {
            *out = outer;
            Ok(())
        }
    }
}

/// VXLAN: 8-byte header with the I flag, then Ethernet.
fn vxlan(p: &[u8]) -> Option<(usize, Next)> {
    let h = p.get(..8)?;
    (h[0] & 0x08 != 0).then_some((8, Next::Ethernet))
}

/// Geneve: 8-byte header + options, protocol type 0x6558 (Ethernet) or IP.
fn geneve(p: &[u8]) -> Option<(usize, Next)> {
    let h = p.get(..8)?;
    if h[0] >> 6 != 0 {
        return None;
    }
    let opt = usize::from(h[0] & 0x3f) * 4;
    let next = match u16::from_be_bytes([h[2], h[3]]) {
        ETH_TEB => Next::Ethernet,
        ETH_IPV4 => Next::Ipv4,
        ETH_IPV6 => Next::Ipv6,
        _ => return None,
    };
    Some((8 + opt, next))
}

/// GTP-U (version 1, G-PDU): 8-byte header, optional sequence/N-PDU/extension fields and
/// extension headers, then IPv4 or IPv6.
fn gtp_u(p: &[u8]) -> Option<(usize, Next)> {
    let h = p.get(..8)?;
    if h[0] >> 5 != 1 || h[0] & 0x10 == 0 || h[1] != 0xff {
        return None;
    }
    let mut off = 8;
    if h[0] & 0x07 != 0 {
        let opt = p.get(8..12)?;
        off = 12;
        let mut next_ext = opt[3];
        while next_ext != 0 {
            let units = usize::from(*p.get(off)?);
            if units == 0 {
                return None;
            }
            off += units * 4;
            next_ext = *p.get(off - 1)?;
        }
    }
    Some((off, Next::Ip))
}

/// Teredo: optional authentication and origin indication headers, then IPv6.
fn teredo(p: &[u8]) -> Option<(usize, Next)> {
    let mut off = 0;
    loop {
        let h = p.get(off..off + 2)?;
        match (h[0], h[1]) {
            (0, 1) => {
                let a = p.get(off..off + 4)?;
                off += 4 + usize::from(a[2]) + usize::from(a[3]) + 9;
            }
            (0, 0) => off += 8,
            (b, _) if b >> 4 == 6 => {
                let ip6 = p.get(off..off + 40)?;
                // Minimal sanity: payload length consistent with what is there.
                let plen = usize::from(u16::from_be_bytes([ip6[4], ip6[5]]));
                return (off + 40 + plen == p.len()).then_some((off, Next::Ipv6));
            }
            _ => return None,
        }
    }
}

/// GRE at `pos` (IP payload ending at `end`).
fn gre(
    frame: &[u8],
    pos: usize,
    end: usize,
    depth: usize,
    out: &mut Decoded,
) -> Result<(), Outcome> {
    let sub = frame.get(..end).unwrap_or(frame);
    let mut c = Cursor::at(sub, pos);
    let h = c
        .take(4)
        .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
    let flags = u16::from_be_bytes([h[0], h[1]]);
    let proto = u16::from_be_bytes([h[2], h[3]]);
    let version = flags & 0x0007;
    let has_seq = flags & 0x1000 != 0;
    match version {
        0 => {
            if flags & 0x4000 != 0 {
                // Source routing (RFC 1701): not supported.
                return Err(Outcome::Ignored(Ignored::NonIp));
            }
            if flags & 0x8000 != 0 {
                c.take(4)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
            if flags & 0x2000 != 0 {
                c.take(4)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
            if has_seq {
                c.take(4)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
        }
        1 => {
            // PPTP enhanced GRE: key always, sequence and ack optional.
            c.take(4)
                .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            if has_seq {
                c.take(4)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
            if flags & 0x0080 != 0 {
                c.take(4)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
        }
        _ => return Err(Outcome::Ignored(Ignored::NonIp)),
    }
    let next = match proto {
        ETH_IPV4 => Next::Ipv4,
        ETH_IPV6 => Next::Ipv6,
        ETH_TEB => Next::Ethernet,
        ETH_MPLS | ETH_MPLS_MC => Next::Mpls,
        ETH_PPP => Next::Ppp,
        ETH_ERSPAN2 => {
            if has_seq {
                // ERSPAN type II: 8-byte header.
                c.take(8)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
            Next::Ethernet
        }
        ETH_ERSPAN3 => {
            let e = c
                .take(12)
                .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            if e[11] & 0x01 != 0 {
                // Optional 8-byte platform-specific subheader.
                c.take(8)
                    .ok_or(Outcome::Error(DecodeError::TruncatedShim))?;
            }
            Next::Ethernet
        }
        _ => return Err(Outcome::Ignored(Ignored::NonIp)),
    };
    walk(sub, c.pos(), next, depth, usize::MAX, out)
}

#[cfg(test)]
mod tests;
