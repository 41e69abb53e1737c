//! Decode unit tests with frames built by etherparse's `PacketBuilder`.

use super::*;
use etherparse::PacketBuilder;

fn tcp_v4_frame(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        .ipv4([10, 0, 0, 1], [192, 0, 2, 7], 64)
        .tcp(51514, 443, 1000, 65535)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("build");
    v
}

#[test]
fn plain_ethernet_ipv4_tcp() {
    let f = tcp_v4_frame(b"hello");
    let mut d = Decoded::default();
    decode(linktype::ETHERNET, &f, &mut d).expect("decodes");
    assert!(!d.v6);
    assert_eq!(&d.src[..4], &[10, 0, 0, 1]);
    assert_eq!(&d.dst[..4], &[192, 0, 2, 7]);
    assert_eq!((d.proto, d.src_port, d.dst_port), (6, 51514, 443));
    assert_eq!(d.tcp_flags & tcp_flags::SYN, tcp_flags::SYN);
    assert_eq!(d.tcp_seq, 1000);
    let p = &f[d.payload_off as usize..][..d.payload_len as usize];
    assert_eq!(p, b"hello");
    assert_eq!(d.tunnel_depth, 0);
}

// ---- helpers: inner packets from PacketBuilder, outer layers as literal bytes ----

const A4: [u8; 4] = [10, 20, 3, 4];
const B4: [u8; 4] = [198, 51, 100, 7];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn ip4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(A4, B4, 64)
        .tcp(40000, 443, 7, 1000)
        .write(&mut v, payload)
        .expect("build");
    v
}

fn ip6_udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(A6, B6, 64)
        .udp(5353, 53)
        .write(&mut v, payload)
        .expect("build");
    v
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// An outer IPv4 header (no options) carrying `proto`.
fn outer4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    v.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    v.extend_from_slice(payload);
    v
}

/// An outer IPv6 header carrying `next`.
fn outer6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a]);
    v.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b]);
    v.extend_from_slice(payload);
    v
}

fn outer_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(33333, dport)
        .write(&mut v, payload)
        .expect("build");
    v
}

fn dec(lt: i32, f: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    decode(lt, f, &mut d).unwrap_or_else(|e| panic!("decode failed: {e:?}"));
    d
}

fn assert_inner_tcp4(d: &Decoded, frame: &[u8], payload: &[u8]) {
    assert!(!d.v6);
    assert_eq!(&d.src[..4], &A4);
    assert_eq!(&d.dst[..4], &B4);
    assert_eq!((d.proto, d.src_port, d.dst_port), (6, 40000, 443));
    assert_eq!(
        &frame[d.payload_off as usize..][..d.payload_len as usize],
        payload
    );
}

fn assert_inner_udp6(d: &Decoded) {
    assert!(d.v6);
    assert_eq!(d.src, A6);
    assert_eq!(d.dst, B6);
    assert_eq!((d.proto, d.src_port, d.dst_port), (17, 5353, 53));
}

#[test]
fn vlan_qinq_and_deeper_stacks() {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .single_vlan(etherparse::VlanId::try_new(42).expect("vid"))
        .ipv4(A4, B4, 64)
        .tcp(40000, 443, 7, 1000)
        .write(&mut v, b"x")
        .expect("build");
    assert_inner_tcp4(&dec(linktype::ETHERNET, &v), &v, b"x");

    // 802.1ad outer, 802.1Q inner, plus a third tag.
    let inner = ip4_tcp(b"qinq");
    let mut tags = vec![
        0x00, 0x0a, 0x81, 0x00, 0x00, 0x0b, 0x81, 0x00, 0x00, 0x0c, 0x08, 0x00,
    ];
    tags.extend_from_slice(&inner);
    let f = eth(0x88a8, &tags);
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"qinq");
}

#[test]
fn too_many_tags_is_counted_not_looped() {
    let mut body = Vec::new();
    for _ in 0..40 {
        body.extend_from_slice(&[0x00, 0x01, 0x81, 0x00]);
    }
    let f = eth(0x8100, &body);
    let mut d = Decoded::default();
    assert_eq!(
        decode(linktype::ETHERNET, &f, &mut d),
        Err(Outcome::Error(DecodeError::TooDeep))
    );
}

#[test]
fn mpls_stack_to_ipv4_and_pseudowire_to_ethernet() {
    let inner = ip4_tcp(b"m");
    let mut m = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40]; // two labels, S on the 2nd
    m.extend_from_slice(&inner);
    let f = eth(0x8847, &m);
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"m");

    let mut pw = vec![0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0]; // label (S), control word
    pw.extend_from_slice(&eth(0x86dd, &ip6_udp(b"q")));
    let f = eth(0x8847, &pw);
    assert_inner_udp6(&dec(linktype::ETHERNET, &f));
}

#[test]
fn gre_variants_decapsulate() {
    let inner = ip4_tcp(b"g");
    // GRE v0 with key.
    let mut g = vec![0x20, 0x00, 0x08, 0x00, 0, 0, 0, 9];
    g.extend_from_slice(&inner);
    let f = eth(0x0800, &outer4(47, &g));
    let d = dec(linktype::ETHERNET, &f);
    assert_inner_tcp4(&d, &f, b"g");
    assert_eq!(d.tunnel_depth, 1);

    // Transparent Ethernet bridging.
    let mut g = vec![0x00, 0x00, 0x65, 0x58];
    g.extend_from_slice(&eth(0x0800, &inner));
    let f = eth(0x0800, &outer4(47, &g));
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"g");

    // ERSPAN type II: sequence present, 8-byte ERSPAN header, Ethernet.
    let mut g = vec![
        0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0,
    ];
    g.extend_from_slice(&eth(0x0800, &inner));
    let f = eth(0x0800, &outer4(47, &g));
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"g");
}

#[test]
fn udp_tunnels_decapsulate() {
    let inner_eth = eth(0x0800, &ip4_tcp(b"v"));
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    vx.extend_from_slice(&inner_eth);
    let f = outer_udp(4789, &vx);
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"v");

    let mut gn = vec![0x00, 0x00, 0x65, 0x58, 0, 0, 0x2a, 0];
    gn.extend_from_slice(&inner_eth);
    let f = outer_udp(6081, &gn);
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"v");

    let mut gtp = vec![0x30, 0xff, 0, 0, 0, 0, 0, 1];
    gtp.extend_from_slice(&ip6_udp(b"gtp"));
    let f = outer_udp(2152, &gtp);
    assert_inner_udp6(&dec(linktype::ETHERNET, &f));
}

#[test]
fn undecodable_tunnel_payload_meters_the_outer_flow() {
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    vx.extend_from_slice(&[0xff; 10]); // not an Ethernet frame with IP
    let f = outer_udp(4789, &vx);
    let d = dec(linktype::ETHERNET, &f);
    assert_eq!((d.proto, d.dst_port), (17, 4789));
    assert_eq!(&d.dst[..4], &[192, 0, 2, 2]);
}

#[test]
fn ip_in_ip_6in4_4in6() {
    let f = eth(0x0800, &outer4(4, &ip4_tcp(b"a")));
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"a");
    let f = eth(0x0800, &outer4(41, &ip6_udp(b"b")));
    assert_inner_udp6(&dec(linktype::ETHERNET, &f));
    let f = eth(0x86dd, &outer6(4, &ip4_tcp(b"c")));
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"c");
}

#[test]
fn link_types() {
    let ip = ip4_tcp(b"l");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    assert_inner_tcp4(&dec(linktype::LINUX_SLL, &sll), &sll, b"l");
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    assert_inner_tcp4(&dec(linktype::LINUX_SLL2, &sll2), &sll2, b"l");
    assert_inner_tcp4(&dec(linktype::RAW, &ip), &ip, b"l");
    assert_inner_tcp4(&dec(linktype::RAW_DLT, &ip), &ip, b"l");
    assert_inner_tcp4(&dec(linktype::IPV4, &ip), &ip, b"l");
    assert_inner_udp6(&dec(linktype::IPV6, &ip6_udp(b"6")));
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&ip);
    assert_inner_tcp4(&dec(linktype::NULL, &null), &null, b"l");
    let mut lo = 24u32.to_be_bytes().to_vec();
    lo.extend_from_slice(&ip6_udp(b"6"));
    assert_inner_udp6(&dec(linktype::LOOP, &lo));
    let mut ppp = vec![0xff, 0x03, 0x00, 0x21];
    ppp.extend_from_slice(&ip);
    assert_inner_tcp4(&dec(linktype::PPP, &ppp), &ppp, b"l");
    let mut d = Decoded::default();
    assert_eq!(
        decode(147, &ip, &mut d),
        Err(Outcome::Error(DecodeError::UnsupportedLinktype))
    );
}

#[test]
fn arp_and_llc_are_ignored_snap_ip_is_decoded() {
    let mut d = Decoded::default();
    let arp = eth(0x0806, &[0; 28]);
    assert_eq!(
        decode(linktype::ETHERNET, &arp, &mut d),
        Err(Outcome::Ignored(Ignored::NonIp))
    );
    let ip = ip4_tcp(b"s");
    let mut snap = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
    snap.extend_from_slice(&ip);
    let f = eth((snap.len()) as u16, &snap);
    assert_inner_tcp4(&dec(linktype::ETHERNET, &f), &f, b"s");
}

#[test]
fn ipv4_fragments_first_has_ports_later_carries_its_slice() {
    let mut ip = ip4_tcp(&[7u8; 40]);
    ip[6] = 0x20; // MF, offset 0
    let f = eth(0x0800, &ip);
    let d = dec(linktype::ETHERNET, &f);
    assert_eq!(d.frag, Frag::First, "first fragment");
    let k = d.frag_key();
    assert_eq!(d.dst_port, 443);
    let mut later = ip.clone();
    later[6] = 0x00;
    later[7] = 0x05; // offset 40 bytes, last fragment
    let f = eth(0x0800, &later);
    let d = dec(linktype::ETHERNET, &f);
    assert_eq!(d.frag, Frag::Later);
    assert_eq!(d.frag_key(), k, "same datagram key");
    assert_eq!((d.src_port, d.dst_port), (0, 0));
    // A later fragment's payload is its whole slice of the datagram (for the PI scanner).
    let ip_payload = (later.len() - 20) as u32;
    assert_eq!(d.payload_len, ip_payload);
    assert_eq!(
        (d.frag_offset, d.frag_len, d.frag_more),
        (40, ip_payload, false)
    );
}

#[test]
fn ipv6_extension_headers_and_fragment_header() {
    let udp = ip6_udp(b"frag");
    // Rebuild as: IPv6 | hop-by-hop (8) | fragment (8, first, M=1) | UDP...
    let l4 = &udp[40..];
    let mut ext = vec![44, 0, 1, 4, 0, 0, 0, 0]; // HBH -> Fragment, PadN
    ext.extend_from_slice(&[17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]); // -> UDP, offset 0, M
    ext.extend_from_slice(l4);
    let mut ip = udp[..40].to_vec();
    ip[4..6].copy_from_slice(&(ext.len() as u16).to_be_bytes());
    ip[6] = 0; // next header: hop-by-hop
    ip.extend_from_slice(&ext);
    let d = dec(linktype::RAW, &ip);
    assert_inner_udp6(&d);
    assert_eq!(d.frag, Frag::First);
    let k = d.frag_key();
    assert!(k.id == 0xdead_beef && k.v6 && k.proto == 17, "{k:?}");
}

/// An IPv6 first fragment with a destination-options header after its fragment header, and a
/// later fragment of the same datagram: one key (its protocol the header after the fragment
/// header, not the transport the first fragment goes on to), and the flow's protocol UDP.
#[test]
fn ipv6_fragments_key_on_the_header_after_the_fragment_header() {
    let udp = ip6_udp(b"frag");
    let l4 = &udp[40..];
    let ipv6 = |ext: &[u8]| {
        let mut ip = udp[..40].to_vec();
        ip[4..6].copy_from_slice(&(ext.len() as u16).to_be_bytes());
        ip[6] = 44; // next header: fragment
        ip.extend_from_slice(ext);
        ip
    };
    let mut first = vec![60, 0, 0x00, 0x01, 0, 0, 0x12, 0x34]; // -> dest. options, offset 0, M
    first.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest. options -> UDP, PadN
    first.extend_from_slice(l4);
    let d = dec(linktype::RAW, &ipv6(&first));
    assert_inner_udp6(&d);
    assert_eq!(d.frag, Frag::First);
    let k = d.frag_key();
    assert_eq!((k.id, k.proto, k.v6), (0x1234, 60, true));
    let mut later = vec![60, 0, 0x00, 0x10, 0, 0, 0x12, 0x34]; // offset 16 bytes, last
    later.extend_from_slice(&[0xab; 24]);
    let d = dec(linktype::RAW, &ipv6(&later));
    assert_eq!(d.frag, Frag::Later);
    assert_eq!(d.frag_key(), k, "same datagram key");
}

#[test]
fn truncated_and_bad_headers_are_counted() {
    let ip = ip4_tcp(b"");
    let mut d = Decoded::default();
    assert_eq!(
        decode(linktype::RAW, &ip[..10], &mut d),
        Err(Outcome::Error(DecodeError::TruncatedIpv4))
    );
    assert_eq!(
        decode(linktype::RAW, &ip[..30], &mut d),
        Err(Outcome::Error(DecodeError::TruncatedTcp))
    );
    let mut bad = ip.clone();
    bad[0] = 0x43; // IHL 3
    assert_eq!(
        decode(linktype::RAW, &bad, &mut d),
        Err(Outcome::Error(DecodeError::BadIpv4HeaderLength))
    );
    // Snaplen cut inside the payload: still a flow, payload limited to what is there.
    let full = ip4_tcp(&[1u8; 100]);
    let d = dec(linktype::RAW, &full[..60]);
    assert_eq!(d.payload_len, 20);
}

#[test]
fn every_prefix_of_a_deep_frame_is_handled_without_panic() {
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    let mut gre = vec![0x00, 0x00, 0x08, 0x00];
    gre.extend_from_slice(&ip4_tcp(b"deep payload"));
    vx.extend_from_slice(&eth(0x8100, &{
        let mut t = vec![0x00, 0x05, 0x08, 0x00];
        t.extend_from_slice(&outer4(47, &gre));
        t
    }));
    let f = outer_udp(4789, &vx);
    let full = dec(linktype::ETHERNET, &f);
    assert_inner_tcp4(&full, &f, b"deep payload");
    assert_eq!(full.tunnel_depth, 2);
    let mut d = Decoded::default();
    for i in 0..f.len() {
        let _ = decode(linktype::ETHERNET, &f[..i], &mut d);
        assert!(
            (d.payload_off as usize) + (d.payload_len as usize) <= i.max(d.payload_off as usize)
        );
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const LINKTYPES: [i32; 12] = [0, 1, 9, 12, 50, 101, 104, 108, 113, 228, 229, 276];

    proptest! {
        /// Arbitrary bytes never panic, and a decoded payload always lies inside the frame.
        #[test]
        fn decode_never_panics(lt in prop::sample::select(&LINKTYPES[..]),
                               bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut d = Decoded::default();
            if decode(lt, &bytes, &mut d).is_ok() {
                prop_assert!(d.payload_off as usize + d.payload_len as usize <= bytes.len());
            }
        }

        /// The one-pass Ethernet/IP/TCP-UDP path and the general walk agree on every frame
        /// near the common case: plain, option-carrying, fragmented, truncated and tunnelled
        /// frames with up to three bytes changed (header fields, lengths, ports, versions) and
        /// any length on the wire.
        #[test]
        fn fast_path_matches_the_general_walk(
            kind in 0usize..6,
            edits in prop::collection::vec((0usize..80, any::<u8>()), 0..4),
            cut in 0usize..120,
            wire_extra in prop::sample::select(&[0u32, 1, 7, 1000, u32::MAX][..]),
            payload in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut f = match kind {
                0 => tcp_v4_frame(&payload),
                1 => eth(0x0800, &ip4_tcp(&payload)),
                2 => eth(0x86dd, &ip6_udp(&payload)),
                3 => outer_udp(4789, &payload),
                4 => {
                    // IPv4 with 4 bytes of options (IHL 6).
                    let mut ip = ip4_tcp(&payload);
                    ip[0] = 0x46;
                    ip.splice(20..20, [1, 1, 1, 0]);
                    let total = u16::from_be_bytes([ip[2], ip[3]]) + 4;
                    ip[2..4].copy_from_slice(&total.to_be_bytes());
                    eth(0x0800, &ip)
                }
                _ => {
                    let mut v = Vec::new();
                    PacketBuilder::ethernet2([1; 6], [2; 6])
                        .ipv6(A6, B6, 64)
                        .tcp(443, 40000, 1, 2)
                        .write(&mut v, &payload)
                        .expect("build");
                    v
                }
            };
            for (pos, val) in edits {
                if let Some(b) = f.get_mut(pos) {
                    *b = val;
                }
            }
            let len = f.len();
            f.truncate(len.saturating_sub(cut % (len + 1)).max(len.min(10)));
            let wire = (f.len() as u32).saturating_add(wire_extra);
            for wire in [wire, 0, f.len() as u32] {
                let mut fast = Decoded { proto: 99, src: [7; 16], ..Decoded::default() };
                let r_fast = decode_wire(linktype::ETHERNET, &f, wire, &mut fast);
                let w = usize::try_from(wire).unwrap_or(usize::MAX).max(f.len());
                let mut general = Decoded::default();
                let r_general = decode_general(linktype::ETHERNET, &f, w, &mut general);
                prop_assert_eq!(r_fast, r_general);
                if r_general.is_ok() {
                    prop_assert_eq!(fast, general);
                }
            }
        }

        /// Mutating one byte of a valid tunnelled frame never panics either.
        #[test]
        fn mutated_tunnel_frames_never_panic(pos in 0usize..200, val in any::<u8>()) {
            let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
            vx.extend_from_slice(&eth(0x8847, &{
                let mut m = vec![0x00, 0x01, 0x01, 0x40];
                m.extend_from_slice(&outer4(47, &{
                    let mut g = vec![0x00, 0x00, 0x86, 0xdd];
                    g.extend_from_slice(&ip6_udp(b"payload"));
                    g
                }));
                m
            }));
            let mut f = outer_udp(4789, &vx);
            if pos < f.len() {
                f[pos] = val;
            }
            let mut d = Decoded::default();
            if decode(linktype::ETHERNET, &f, &mut d).is_ok() {
                prop_assert!(d.payload_off as usize + d.payload_len as usize <= f.len());
            }
        }
    }
}

#[test]
fn vlan_ids_are_kept_outermost_first_up_to_three() {
    // 802.1ad 10 (with priority bits), 802.1Q 11 and 12: all three kept.
    let mut tags = vec![
        0x00, 0x0b, 0x81, 0x00, 0x00, 0x0c, 0x08, 0x00, //
    ];
    tags.extend_from_slice(&ip4_tcp(b"q"));
    let f = eth(0x88a8, &[&[0xa0, 0x0a, 0x81, 0x00][..], &tags].concat());
    assert_eq!(dec(linktype::ETHERNET, &f).vlans(), &[10, 11, 12]);
    // A fourth tag is decoded through but not kept.
    let f4 = eth(0x8100, &[&[0x00, 0x09, 0x88, 0xa8][..], &f[14..]].concat());
    let d = dec(linktype::ETHERNET, &f4);
    assert_eq!(d.vlans(), &[9, 10, 11]);
    assert_inner_tcp4(&d, &f4, b"q");
    // Untagged: none.
    assert!(dec(linktype::ETHERNET, &eth(0x0800, &ip4_tcp(b"u")))
        .vlans()
        .is_empty());
}

#[test]
fn a_tunnels_inner_flow_keeps_the_outer_vlan_then_its_own() {
    // Outer frame on VLAN 100; the VXLAN payload's Ethernet frame is tagged 7.
    let inner_eth = eth(
        0x8100,
        &[&[0x00, 0x07, 0x08, 0x00][..], &ip4_tcp(b"v")].concat(),
    );
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    vx.extend_from_slice(&inner_eth);
    let untagged = outer_udp(4789, &vx);
    let f = [
        &untagged[..12],
        &[0x81, 0x00, 0x00, 0x64][..],
        &untagged[12..],
    ]
    .concat();
    let d = dec(linktype::ETHERNET, &f);
    assert_inner_tcp4(&d, &f, b"v");
    assert_eq!(d.vlans(), &[100, 7]);
}

#[test]
fn ip_lengths_beyond_the_wire_are_errors_beyond_the_capture_are_not() {
    let f = eth(0x0800, &ip4_tcp(&[0x61; 200]));
    let wire = f.len() as u32;
    let mut d = Decoded::default();
    // Cut by a snaplen: the header's length is within the wire length.
    assert_eq!(
        decode_wire(linktype::ETHERNET, &f[..60], wire, &mut d),
        Ok(())
    );
    assert_eq!((d.src_port, d.dst_port), (40000, 443));
    // The header claims more than the wire had.
    let mut bad = f.clone();
    bad[16..18].copy_from_slice(&65_028u16.to_be_bytes());
    assert_eq!(
        decode_wire(linktype::ETHERNET, &bad, wire, &mut d),
        Err(Outcome::Error(DecodeError::Ipv4LengthBeyondWire))
    );
    // A record whose wire length is below its captured length: the captured bytes count.
    assert_eq!(decode_wire(linktype::ETHERNET, &f, 60, &mut d), Ok(()));
    // Without a wire length the decode stays lax (tshark's view).
    assert_eq!(decode(linktype::ETHERNET, &bad, &mut d), Ok(()));
    // A TSO total length of 0 is not an error.
    let mut tso = f.clone();
    tso[16..18].copy_from_slice(&[0, 0]);
    assert_eq!(decode_wire(linktype::ETHERNET, &tso, wire, &mut d), Ok(()));

    let f6 = eth(0x86dd, &ip6_udp(&[0x62; 40]));
    let wire6 = f6.len() as u32;
    let mut bad6 = f6.clone();
    bad6[18..20].copy_from_slice(&60_000u16.to_be_bytes());
    assert_eq!(
        decode_wire(linktype::ETHERNET, &bad6, wire6, &mut d),
        Err(Outcome::Error(DecodeError::Ipv6LengthBeyondWire))
    );
    assert_eq!(decode_wire(linktype::ETHERNET, &f6, wire6, &mut d), Ok(()));
    assert_eq!(
        DecodeError::ALL.map(DecodeError::as_str).len(),
        DecodeError::COUNT
    );
    assert!(DecodeError::ALL
        .iter()
        .enumerate()
        .all(|(i, e)| e.index() == i));
}

#[test]
fn fragments_of_two_vlans_have_two_keys() {
    let mut ip = ip4_tcp(&[7u8; 40]);
    ip[6] = 0x20; // MF, offset 0
    let on = |vid: u8| eth(0x8100, &[&[0x00, vid, 0x08, 0x00][..], &ip].concat());
    let key = |f: &[u8]| {
        let d = dec(linktype::ETHERNET, f);
        assert_eq!(d.frag, Frag::First, "first fragment");
        d.frag_key()
    };
    assert_ne!(key(&on(10)), key(&on(20)));
    assert_eq!(key(&on(10)).vlan, [10, 0, 0]);
    assert_eq!(key(&on(10)), key(&on(10)));
}
