//! Longest-prefix matching for IPv4 and IPv6, one hash table per prefix length present.
//!
//! Prefixes are grouped by length; a lookup masks the address once per distinct length and
//! probes that length's table (foldhash). Its cost is one probe per distinct prefix length in the
//! set (typically a handful: /8, /16, /24, /32), whatever the number of prefixes stored — 10 or
//! 10,000 scenario sources cost the same number of probes, and each probe touches one or two
//! cache lines, where a binary trie walk touches up to 32 (IPv4) or 128 (IPv6) nodes. Every
//! stored prefix containing the address is reported, shortest first. Values are small sorted
//! lists of `u32` (scenario indices); the caller decides what "longest" means for it.

use super::lists::ValueLists;
use crossline_config::registry::IpNet;
use foldhash::HashMap;
use std::net::IpAddr;

/// Prefixes of one address family, by length.
#[derive(Debug, Clone, Default)]
struct Family {
    /// Distinct prefix lengths present, ascending.
    lens: Vec<u8>,
    /// (length, masked address) -> index into `PrefixTable::lists`.
    map: HashMap<(u8, u128), u32>,
}

/// Longest-prefix-match table over IPv4 and IPv6 prefixes, each carrying a list of `u32`.
#[derive(Debug, Clone, Default)]
pub struct PrefixTable {
    v4: Family,
    v6: Family,
    /// One value list per stored prefix.
    lists: ValueLists,
}

fn mask(bits: u128, width: u8, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        let m = u128::MAX << (128 - u32::from(len));
        (bits << (128 - u32::from(width))) & m
    }
}

fn key_bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

impl PrefixTable {
    /// An empty table.
    pub fn new() -> PrefixTable {
        PrefixTable::default()
    }

    /// Number of distinct prefixes stored.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether no prefix is stored.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Pack the value lists into one array (better locality for lookups). Called after the
    /// last insert; inserting again is allowed and re-packs.
    pub fn freeze(&mut self) {
        self.lists.freeze();
    }

    fn values(&self, i: u32) -> &[u32] {
        self.lists.get(i)
    }

    /// Add `value` to the list of `net` (kept sorted, no duplicates).
    pub fn insert(&mut self, net: IpNet, value: u32) {
        let (bits, width) = key_bits(net.addr());
        let len = net.prefix_len();
        let fam = if width == 32 {
            &mut self.v4
        } else {
            &mut self.v6
        };
        let key = (len, mask(bits, width, len));
        let idx = match fam.map.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.lists.push_list();
                fam.map.insert(key, i);
                if let Err(pos) = fam.lens.binary_search(&len) {
                    fam.lens.insert(pos, len);
                }
                i
            }
        };
        self.lists.insert(idx, value);
    }

    /// Call `f(prefix_len, values)` for every stored prefix containing `addr`, shortest first.
    pub fn for_each_match(&self, addr: IpAddr, mut f: impl FnMut(u8, &[u32])) {
        let (bits, width) = key_bits(addr);
        let fam = if width == 32 { &self.v4 } else { &self.v6 };
        for &len in &fam.lens {
            if let Some(&i) = fam.map.get(&(len, mask(bits, width, len))) {
                f(len, self.values(i));
            }
        }
    }

    /// The longest stored prefix containing `addr`: its length and values.
    pub fn longest(&self, addr: IpAddr) -> Option<(u8, &[u32])> {
        let (bits, width) = key_bits(addr);
        let fam = if width == 32 { &self.v4 } else { &self.v6 };
        fam.lens.iter().rev().find_map(|&len| {
            fam.map
                .get(&(len, mask(bits, width, len)))
                .map(|&i| (len, self.values(i)))
        })
    }

    /// Whether any stored prefix contains `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.longest(addr).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        let (a, l) = s.split_once('/').expect("cidr");
        IpNet::new(a.parse().expect("addr"), l.parse().expect("len")).expect("clean")
    }

    #[test]
    fn longest_and_all_matches() {
        let mut t = PrefixTable::new();
        t.insert(net("10.0.0.0/8"), 1);
        t.insert(net("10.20.0.0/16"), 2);
        t.insert(net("10.20.0.0/16"), 0);
        t.insert(net("0.0.0.0/0"), 9);
        t.insert(net("2001:db8::/32"), 7);
        let ip: IpAddr = "10.20.3.4".parse().expect("ip");
        let mut seen = Vec::new();
        t.for_each_match(ip, |l, v| seen.push((l, v.to_vec())));
        assert_eq!(seen, vec![(0, vec![9]), (8, vec![1]), (16, vec![0, 2])]);
        assert_eq!(t.longest(ip).map(|(l, _)| l), Some(16));
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(
            t.longest(v6).map(|(l, v)| (l, v.to_vec())),
            Some((32, vec![7]))
        );
        assert!(!t.contains("2001:db9::1".parse().expect("ip")));
        // The IPv4 default route never matches an IPv6 address.
        assert!(t.contains("11.0.0.1".parse().expect("ip")));
        assert_eq!(t.len(), 4);
        t.freeze();
        let mut again = Vec::new();
        t.for_each_match(ip, |l, v| again.push((l, v.to_vec())));
        assert_eq!(again, seen);
    }

    #[test]
    fn host_routes_and_edges() {
        let mut t = PrefixTable::new();
        t.insert(net("192.0.2.7/32"), 3);
        assert!(t.contains("192.0.2.7".parse().expect("ip")));
        assert!(!t.contains("192.0.2.6".parse().expect("ip")));
        t.insert(net("::1/128"), 4);
        assert!(t.contains("::1".parse().expect("ip")));
        t.insert(net("::/0"), 5);
        assert_eq!(
            t.longest("2001::1".parse().expect("ip")).map(|(l, _)| l),
            Some(0)
        );
        t.insert(net("255.255.255.254/31"), 6);
        assert!(t.contains("255.255.255.255".parse().expect("ip")));
    }

    proptest::proptest! {
        /// Agrees with a linear scan over `IpNet::contains`.
        #[test]
        fn matches_linear_reference(
            nets in proptest::collection::vec((proptest::prelude::any::<u32>(), 0u8..=32), 1..40),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..40),
        ) {
            let mut t = PrefixTable::new();
            let mut all = Vec::new();
            for (i, (a, l)) in nets.iter().enumerate() {
                let m = if *l == 0 { 0 } else { u32::MAX << (32 - u32::from(*l)) };
                let n = IpNet::new(IpAddr::from((a & m).to_be_bytes()), *l).expect("clean");
                t.insert(n, i as u32);
                all.push((n, i as u32));
            }
            t.freeze();
            for p in probes.iter().chain(nets.iter().map(|(a, _)| a)) {
                let ip = IpAddr::from(p.to_be_bytes());
                let mut want: Vec<(u8, u32)> = all.iter().filter(|(n, _)| n.contains(ip)).map(|(n, v)| (n.prefix_len(), *v)).collect();
                want.sort();
                let mut got = Vec::new();
                t.for_each_match(ip, |l, vs| got.extend(vs.iter().map(|v| (l, *v))));
                got.sort();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
