//! Packet decoder (link layer, VLAN/QinQ, MPLS, PPPoE, IPv4/IPv6 with extension headers and
//! fragments, GRE/ERSPAN, VXLAN, Geneve, Teredo, IP-in-IP, TCP/UDP/ICMP headers).
//! Input: one selector byte choosing the link type, then the frame.
#![no_main]
use crossline_agent::decode::{decode, linktype, Decoded, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;

const LINKTYPES: [i32; 14] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::NULL,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
    linktype::PPP,
    linktype::PPP_HDLC,
    linktype::C_HDLC,
    linktype::IPV4,
    linktype::IPV6,
    linktype::RAW_DLT,
    linktype::RAW_DLT_OPENBSD,
    147, // a link type the decoder does not know
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    let mut d = Decoded::default();
    let first = decode(lt, frame, &mut d);
    if first.is_ok() {
        let end = d.payload_off as usize + d.payload_len as usize;
        assert!(end <= frame.len(), "payload {end} past frame {}", frame.len());
        assert!(usize::from(d.tunnel_depth) <= MAX_DEPTH);
        if !d.v6 {
            assert!(d.src[4..].iter().chain(&d.dst[4..]).all(|&b| b == 0));
        }
    }
    // The result depends on the frame only, not on what `out` held before.
    let mut again = d;
    assert_eq!(decode(lt, frame, &mut again), first);
    if first.is_ok() {
        assert_eq!(again, d);
    }
});
