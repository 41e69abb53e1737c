//! Direction-normalised flow key: both directions of a conversation map to the same `Copy` key.

use crate::decode::{ip_proto, Decoded};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bidirectional 5-tuple of the innermost flow. The endpoint that sorts lower by
/// (address, port) is `lo`. ICMP flows use ports 0 (one flow per address pair), so echo
/// requests and replies share a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
}

impl FlowKey {
    /// Key of a decoded packet, and whether the packet's source is the `lo` endpoint.
    pub fn from_decoded(d: &Decoded) -> (FlowKey, bool) {
        let (sp, dp) = if d.proto == ip_proto::ICMP || d.proto == ip_proto::ICMPV6 {
            (0, 0)
        } else {
            (d.src_port, d.dst_port)
        };
        let src_is_lo = (d.src, sp) <= (d.dst, dp);
        let key = if src_is_lo {
            FlowKey {
                lo: d.src,
                hi: d.dst,
                lo_port: sp,
                hi_port: dp,
                proto: d.proto,
                v6: d.v6,
            }
        } else {
            FlowKey {
                lo: d.dst,
                hi: d.src,
                lo_port: dp,
                hi_port: sp,
                proto: d.proto,
                v6: d.v6,
            }
        };
        (key, src_is_lo)
    }

    /// `lo` as an `IpAddr`.
    pub fn lo_addr(&self) -> IpAddr {
        to_ip(&self.lo, self.v6)
    }

    /// `hi` as an `IpAddr`.
    pub fn hi_addr(&self) -> IpAddr {
        to_ip(&self.hi, self.v6)
    }
}

/// A 16-byte address array as an `IpAddr` (IPv4 in the first 4 bytes when `v6` is false).
pub fn to_ip(a: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    }
}
