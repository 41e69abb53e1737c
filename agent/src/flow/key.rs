//! Direction-normalised flow key: both directions of a conversation map to the same `Copy` key.

use crate::decode::{ip_proto, Decoded, MAX_VLANS};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bidirectional 5-tuple of the innermost flow, with the VLAN ids the packet came on (as
/// Suricata keys flows: the same addresses on two VLANs are two circuits, two flows). The
/// endpoint that sorts lower by (address, port) is `lo`.
///
/// ICMP and ICMPv6 flows key on the message type as Suricata does: the sender's "port" is the
/// type and the receiver's the counterpart type of a request/reply pair (echo, timestamp,
/// neighbour solicitation, ...; 0 for other messages), so an echo request and its reply share
/// a flow while an echo and a destination-unreachable between the same hosts are two flows.
/// The code is not in the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey {
    /// Lower endpoint address (IPv4 in the first 4 bytes).
    pub lo: [u8; 16],
    /// Higher endpoint address.
    pub hi: [u8; 16],
    /// Port of `lo`.
    pub lo_port: u16,
    /// Port of `hi`.
    pub hi_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// IPv6 addresses.
    pub v6: bool,
    /// VLAN ids, outermost first, 0 where there is no tag (a priority tag, id 0, keys as no
    /// tag, as in Suricata).
    pub vlan: [u16; MAX_VLANS],
}

/// Bits of a flow's shard hash that choose its worker and its after-close slot: flows that
/// share a slot always share a worker, whatever the number of workers, so the workers'
/// after-close tables together behave as one table and the output does not depend on the
/// number of workers.
pub const SHARD_BITS: u32 = 12;

/// The seed of the shard hash offline (fixed, so a capture's flows go to the same workers
/// and after-close slots on every run). Live the dispatcher seeds it at random.
pub const OFFLINE_SHARD_SEED: u64 = 0x7368_6172_645f_6b65;

/// The shard slot (`0..1 << SHARD_BITS`) of a shard hash.
pub fn shard_slot(h: u64) -> usize {
    (h >> (64 - SHARD_BITS)) as usize
}

/// The worker (`0..workers`) of a shard hash: a function of its slot alone.
pub fn shard_worker(h: u64, workers: usize) -> usize {
    (shard_slot(h) * workers.max(1)) >> SHARD_BITS
}

/// The shard of a shard hash when shard 0 (the worker on the capture thread) takes the slots
/// below `cut` and the others share the rest evenly (`workers` > 1; a function of the slot
/// alone, as [`shard_worker`]).
pub fn shard_worker_after(h: u64, workers: usize, cut: usize) -> usize {
    let slot = shard_slot(h);
    let slots = 1usize << SHARD_BITS;
    let others = workers.saturating_sub(1).max(1);
    match slot.checked_sub(cut) {
        None => 0,
        // One other worker: every slot past the cut is its own, without a division per packet.
        Some(_) if others == 1 => 1,
        Some(rest) => 1 + rest * others / slots.saturating_sub(cut).max(1),
    }
}

/// The shard hash of a direction-normalised flow (addresses as big-endian integers, `lo`
/// first; ports 0 for ICMP; VLAN tags outermost in the high bits).
#[allow(clippy::too_many_arguments)] // the key's parts, so packets need not build the key
fn shard_hash_parts(
    hasher: &foldhash::fast::FixedState,
    lo: u128,
    hi: u128,
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
    vlan: &[u16],
) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = hasher.build_hasher();
    write_key_words(&mut h, lo, hi, lo_port, hi_port, proto, v6, vlan);
    h.finish()
}

/// A flow key's parts as four words: the addresses, then ports, protocol and family in one,
/// then the VLAN tags (outermost in the high bits, zero-padded) in one. A derived `Hash`
/// writes each field and array length separately, which cost more than the lookup it serves.
#[allow(clippy::too_many_arguments)] // the key's parts
fn write_key_words(
    h: &mut impl std::hash::Hasher,
    lo: u128,
    hi: u128,
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
    vlan: &[u16],
) {
    let mut tags = 0u64;
    for i in 0..MAX_VLANS {
        tags = (tags << 16) | u64::from(vlan.get(i).copied().unwrap_or(0));
    }
    h.write_u128(lo);
    h.write_u128(hi);
    h.write_u64(
        u64::from(lo_port)
            | u64::from(hi_port) << 16
            | u64::from(proto) << 32
            | u64::from(v6) << 40,
    );
    h.write_u64(tags);
}

/// The shard hash of a decoded packet: the same for both directions of its flow, and the
/// same as [`FlowKey::shard_hash`] of its key, computed without building the key.
pub fn shard_hash_of(hasher: &foldhash::fast::FixedState, d: &Decoded) -> u64 {
    let (sp, dp) = if is_icmp(d.proto) {
        // The key holds ICMP types, not ports; 0 keeps both directions together.
        (0, 0)
    } else {
        (d.src_port, d.dst_port)
    };
    let (a, b) = (u128::from_be_bytes(d.src), u128::from_be_bytes(d.dst));
    let (lo, hi, lo_port, hi_port) = if endpoint_le(a, sp, b, dp) {
        (a, b, sp, dp)
    } else {
        (b, a, dp, sp)
    };
    shard_hash_parts(hasher, lo, hi, lo_port, hi_port, d.proto, d.v6, d.vlans())
}

/// `(a, pa) <= (b, pb)`, compared as 64-bit halves: the compiler otherwise compares the
/// addresses for equality with 16-byte loads from the decoded packet, which the decoder wrote
/// as 8-byte halves a moment before (a store that cannot be forwarded to the load).
#[inline(always)]
fn endpoint_le(a: u128, pa: u16, b: u128, pb: u16) -> bool {
    let (ah, al, bh, bl) = ((a >> 64) as u64, a as u64, (b >> 64) as u64, b as u64);
    (ah, al, pa) <= (bh, bl, pb)
}

fn is_icmp(proto: u8) -> bool {
    proto == ip_proto::ICMP || proto == ip_proto::ICMPV6
}

/// Every field, as `write_key_words` (equal keys hash equal; the table's hash, unlike the
/// shard hash, need not read the addresses as numbers in order, so no byte swap).
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        write_key_words(
            state,
            u128::from_le_bytes(self.lo),
            u128::from_le_bytes(self.hi),
            self.lo_port,
            self.hi_port,
            self.proto,
            self.v6,
            &self.vlan,
        );
    }
}

impl FlowKey {
    /// Key of a decoded packet, and whether the packet's source is the `lo` endpoint.
    #[inline]
    pub fn from_decoded(d: &Decoded) -> (FlowKey, bool) {
        let (key, src_is_lo) = Self::parts(d);
        (key, src_is_lo)
    }

    /// [`FlowKey::from_decoded`], and the key's hash under `build` (equal to hashing the key
    /// through its `Hash`), computed from the parts as they are made: hashing the key after
    /// it was built read its two ports back as one word from two 2-byte stores a moment old,
    /// a store that cannot be forwarded to the load.
    #[inline]
    pub fn from_decoded_hashed(
        d: &Decoded,
        build: &impl std::hash::BuildHasher,
    ) -> (FlowKey, bool, u64) {
        use std::hash::Hasher;
        let (key, src_is_lo) = Self::parts(d);
        let mut h = build.build_hasher();
        let FlowKey {
            lo,
            hi,
            lo_port,
            hi_port,
            proto,
            v6,
            vlan,
        } = key;
        write_key_words(
            &mut h,
            u128::from_le_bytes(lo),
            u128::from_le_bytes(hi),
            lo_port,
            hi_port,
            proto,
            v6,
            &vlan,
        );
        (key, src_is_lo, h.finish())
    }

    #[inline(always)]
    fn parts(d: &Decoded) -> (FlowKey, bool) {
        let (sp, dp) = if d.proto == ip_proto::ICMP || d.proto == ip_proto::ICMPV6 {
            // `Decoded` holds the type in `src_port` (and the code in `dst_port`).
            let ty = d.src_port as u8;
            let other = icmp_counterpart(d.proto == ip_proto::ICMPV6, ty).unwrap_or(0);
            (u16::from(ty), u16::from(other))
        } else {
            (d.src_port, d.dst_port)
        };
        // Tags past the count are zero in the key (the decoder's array may hold stale ones).
        let count = usize::from(d.vlan_count);
        let vlan: [u16; MAX_VLANS] = std::array::from_fn(|i| if i < count { d.vlan[i] } else { 0 });
        // Big-endian integers order as the byte arrays do, compared in two words instead of
        // a byte-wise `memcmp`.
        let (s, t) = (u128::from_be_bytes(d.src), u128::from_be_bytes(d.dst));
        let src_is_lo = endpoint_le(s, sp, t, dp);
        let (lo, hi, lo_port, hi_port) = if src_is_lo {
            (d.src, d.dst, sp, dp)
        } else {
            (d.dst, d.src, dp, sp)
        };
        let key = FlowKey {
            lo,
            hi,
            lo_port,
            hi_port,
            proto: d.proto,
            v6: d.v6,
            vlan,
        };
        (key, src_is_lo)
    }

    /// The shard hash of this flow ([`shard_hash_of`] of any of its packets).
    pub fn shard_hash(&self, hasher: &foldhash::fast::FixedState) -> u64 {
        let (a, b) = (u128::from_be_bytes(self.lo), u128::from_be_bytes(self.hi));
        let (lo, hi, lo_port, hi_port) = if is_icmp(self.proto) {
            (a.min(b), a.max(b), 0, 0)
        } else {
            (a, b, self.lo_port, self.hi_port)
        };
        shard_hash_parts(
            hasher, lo, hi, lo_port, hi_port, self.proto, self.v6, &self.vlan,
        )
    }

    /// `lo` as an `IpAddr`.
    pub fn lo_addr(&self) -> IpAddr {
        to_ip(&self.lo, self.v6)
    }

    /// `hi` as an `IpAddr`.
    pub fn hi_addr(&self) -> IpAddr {
        to_ip(&self.hi, self.v6)
    }

    /// The transport port of the `lo` (`true`) or `hi` endpoint; 0 for ICMP and ICMPv6, whose
    /// key holds message types instead.
    pub fn port(&self, lo: bool) -> u16 {
        if self.proto == ip_proto::ICMP || self.proto == ip_proto::ICMPV6 {
            0
        } else if lo {
            self.lo_port
        } else {
            self.hi_port
        }
    }

    /// The VLAN ids for EVE's `vlan` array (outermost first; trailing ids 0, no tag or a
    /// priority tag, left out), or `None` for an untagged flow.
    pub fn vlan_ids(&self) -> Option<Vec<u16>> {
        vlan_list(&self.vlan)
    }

    /// [`FlowKey::vlan_ids`], borrowed: empty for an untagged flow.
    pub fn vlan_ids_slice(&self) -> &[u16] {
        vlan_slice(&self.vlan)
    }
}

/// EVE's `vlan` array of the kept tag ids (outermost first, trailing zeros dropped), `None`
/// for an untagged flow.
pub fn vlan_list(vlan: &[u16; 3]) -> Option<Vec<u16>> {
    Some(vlan_slice(vlan))
        .filter(|v| !v.is_empty())
        .map(<[u16]>::to_vec)
}

/// [`vlan_list`], borrowed: empty for an untagged flow.
pub fn vlan_slice(vlan: &[u16; 3]) -> &[u16] {
    let n = vlan.iter().rposition(|v| *v != 0).map_or(0, |i| i + 1);
    vlan.get(..n).unwrap_or_default()
}

/// The counterpart of a request/reply ICMP (`v6` false) or ICMPv6 message type, as Suricata
/// pairs them in its flow key (`ICMPv4GetCounterpart`, `ICMPv6GetCounterpart`).
pub fn icmp_counterpart(v6: bool, ty: u8) -> Option<u8> {
    const V4: [(u8, u8); 5] = [(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)];
    const V6: [(u8, u8); 10] = [
        (128, 129), // echo request / reply
        (135, 136), // neighbour solicitation / advertisement
        (133, 134), // router solicitation / advertisement
        (130, 131), // multicast listener query / report
        (139, 140), // node information query / reply
        (144, 145), // home agent address discovery request / reply
        (146, 147), // mobile prefix solicitation / advertisement
        (148, 149), // certification path solicitation / advertisement
        (151, 152), // multicast router advertisement / solicitation
        (157, 158), // duplicate address request / confirmation
    ];
    let pairs: &[(u8, u8)] = if v6 { &V6 } else { &V4 };
    pairs.iter().find_map(|&(a, b)| {
        if a == ty {
            Some(b)
        } else if b == ty {
            Some(a)
        } else {
            None
        }
    })
}

/// A 16-byte address array as an `IpAddr` (IPv4 in the first 4 bytes when `v6` is false).
pub fn to_ip(a: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    }
}

/// The name EVE writes in `proto` for an IP protocol number (Suricata's names, which are the
/// IANA keywords except `IP-in-IP` for 4), for the protocols seen on a leased line; `None` for
/// the rest (written as the number).
pub fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        0 => "HOPOPT",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IP-in-IP",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        46 => "RSVP",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "IPv6-ICMP",
        88 => "EIGRP",
        89 => "OSPF",
        103 => "PIM",
        112 => "VRRP",
        115 => "L2TP",
        132 => "SCTP",
        136 => "UDPLite",
        137 => "MPLS-in-IP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icmp(v6: bool, src: u8, dst: u8, ty: u8, code: u8) -> Decoded {
        let mut d = Decoded {
            v6,
            proto: if v6 { ip_proto::ICMPV6 } else { ip_proto::ICMP },
            src_port: u16::from(ty),
            dst_port: u16::from(code),
            ..Decoded::default()
        };
        d.src[0] = src;
        d.dst[0] = dst;
        d
    }

    #[test]
    fn icmp_requests_and_replies_share_a_key_other_types_do_not() {
        let (req, a_lo) = FlowKey::from_decoded(&icmp(false, 1, 2, 8, 0));
        let (rep, b_lo) = FlowKey::from_decoded(&icmp(false, 2, 1, 0, 0));
        assert_eq!(req, rep);
        assert_ne!(a_lo, b_lo, "the reply comes from the other end");
        let (unreach, _) = FlowKey::from_decoded(&icmp(false, 2, 1, 3, 1));
        assert_ne!(req, unreach);
        // The code is not in the key (as in Suricata).
        assert_eq!(unreach, FlowKey::from_decoded(&icmp(false, 2, 1, 3, 3)).0);
        let (ns, _) = FlowKey::from_decoded(&icmp(true, 1, 2, 135, 0));
        assert_eq!(ns, FlowKey::from_decoded(&icmp(true, 2, 1, 136, 0)).0);
        assert_eq!((ns.port(true), ns.port(false)), (0, 0), "no ports on ICMP");
    }

    #[test]
    fn vlans_are_in_the_key_and_written_without_trailing_zeros() {
        let mut d = icmp(false, 1, 2, 8, 0);
        d.proto = ip_proto::UDP;
        let (plain, _) = FlowKey::from_decoded(&d);
        assert_eq!(plain.vlan_ids(), None);
        d.vlan = [100, 0, 0];
        d.vlan_count = 1;
        let (v100, _) = FlowKey::from_decoded(&d);
        assert_ne!(plain, v100);
        assert_eq!(v100.vlan_ids(), Some(vec![100]));
        d.vlan = [0, 0, 0];
        assert_eq!(
            FlowKey::from_decoded(&d).0,
            plain,
            "a priority tag keys as none"
        );
        d.vlan = [0, 7, 0];
        d.vlan_count = 2;
        assert_eq!(FlowKey::from_decoded(&d).0.vlan_ids(), Some(vec![0, 7]));
    }

    #[test]
    fn eve_protocol_names() {
        assert_eq!(proto_name(132), Some("SCTP"));
        assert_eq!(proto_name(58), Some("IPv6-ICMP"));
        assert_eq!(proto_name(4), Some("IP-in-IP"));
        assert_eq!(proto_name(253), None);
    }
}
