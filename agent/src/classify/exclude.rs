//! `[[exclude]]` entries of the agent config: cross-border traffic that is not a data export
//! (resolvers, NTP, the carrier's own management). They are checked before step 1 of the
//! classification order; a matching flow gets the verdict `excluded` and raises no alert, but
//! is still written as a flow event and counted per entry name.
//!
//! An entry matches when every key it gives matches: the foreign endpoint lies in one of its
//! `prefixes`, the far end's name matches one of its `hosts`, the responder's service is one of
//! its `services`. The name follows the classification's rule: the flow's own name (TLS/QUIC SNI
//! unless ECH was offered, HTTP Host) when it carries one, else the name DNS answers gave for the
//! responder address, and no name at all when the foreign end initiated the flow (the names
//! then describe the domestic server). Entries are few: a linear scan per flow record.
//! Entries without `hosts` are also checked once per flow at its first payload
//! ([`Exclusions::matches_by_address`]), so that excluded traffic is not scanned for personal
//! information.

use super::hosts::{normalise, MAX_NAME};
use super::{transport_of, Classification};
use crate::analysis::FlowSummary;
use crossline_config::agent::Exclude;
use crossline_config::event::Direction;
use crossline_config::registry::Service;

/// The entries, in file order (the first match wins).
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    entries: Vec<Exclude>,
}

impl Exclusions {
    /// Compile the config's entries.
    pub fn new(entries: &[Exclude]) -> Exclusions {
        Exclusions {
            entries: entries.to_vec(),
        }
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entry names, in file order (index = the value [`Exclusions::matches`] returns).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// Index of the first entry matching a cross-border flow (`None` for other flows).
    pub fn matches(&self, s: &FlowSummary<'_>, c: &Classification) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let foreign = c.foreign?;
        let mut buf = [0u8; MAX_NAME];
        let name = if c.direction == Direction::Export {
            let sni_ok = !s.ech;
            let own = (if sni_ok { s.tls_sni } else { None })
                .or(if sni_ok { s.quic_sni } else { None })
                .or(s.http_host);
            own.or(s.dns_name)
        } else {
            None
        }
        .and_then(|n| normalise(n, &mut buf));
        self.entries.iter().position(|e| {
            (e.prefixes.is_empty() || e.prefixes.iter().any(|p| p.contains(foreign)))
                && (e.hosts.is_empty()
                    || name.is_some_and(|n| e.hosts.iter().any(|h| h.matches(n))))
                && (e.services.is_empty() || service_in(&e.services, s.ip_proto, s.responder_port))
        })
    }
}

impl Exclusions {
    /// Whether an entry without `hosts` matches a foreign address and responder service: such
    /// flows are known to be excluded from their first packet, so their payload is not scanned
    /// for personal information (entries with `hosts` are decided when the record is written).
    pub fn matches_by_address(&self, foreign: std::net::IpAddr, ip_proto: u8, port: u16) -> bool {
        self.entries.iter().any(|e| {
            e.hosts.is_empty()
                && (e.prefixes.is_empty() || e.prefixes.iter().any(|p| p.contains(foreign)))
                && (e.services.is_empty() || service_in(&e.services, ip_proto, port))
        })
    }
}

fn service_in(services: &[Service], ip_proto: u8, port: u16) -> bool {
    match transport_of(ip_proto) {
        Some(t) => services.iter().any(|s| s.matches(t, port)),
        None => services.contains(&Service::Any),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::{domestic, flow, registry, REGISTRY};
    use crate::classify::{Compiled, Scratch};
    use crossline_config::parse::{parse_host_pattern, parse_ip_net, parse_service};
    use crossline_testgen::beijing_micros;

    fn entry(name: &str, prefixes: &[&str], hosts: &[&str], services: &[&str]) -> Exclude {
        Exclude {
            name: name.into(),
            prefixes: prefixes
                .iter()
                .map(|p| parse_ip_net(p).expect("net"))
                .collect(),
            hosts: hosts
                .iter()
                .map(|h| parse_host_pattern(h).expect("host"))
                .collect(),
            services: services
                .iter()
                .map(|s| parse_service(s).expect("service"))
                .collect(),
        }
    }

    #[test]
    fn every_key_must_match_and_names_follow_the_classification() {
        let c = Compiled::new(registry(REGISTRY), &domestic());
        let x = Exclusions::new(&[
            entry("resolvers", &["8.8.8.0/24"], &[], &["udp/53", "tcp/53"]),
            entry("ntp", &[], &[], &["udp/123"]),
            entry("carrier", &[], &["*.noc.carrier.example"], &[]),
        ]);
        let t = beijing_micros(2026, 3, 2, 10, 0, 0);
        let mut scratch = Scratch::default();
        let judge = |f: &FlowSummary<'_>, scratch: &mut Scratch| {
            let cl = c.classify(f, t, scratch);
            x.matches(f, &cl)
        };
        let mut dns = flow("10.99.0.1", 5353, "8.8.8.8", 53);
        dns.ip_proto = 17;
        assert_eq!(judge(&dns, &mut scratch), Some(0));
        // Same resolver, another service: not excluded.
        let https = flow("10.99.0.1", 5353, "8.8.8.8", 443);
        assert_eq!(judge(&https, &mut scratch), None);
        // udp/53 to another address: not excluded by "resolvers".
        let mut other = flow("10.99.0.1", 5353, "9.9.9.9", 53);
        other.ip_proto = 17;
        assert_eq!(judge(&other, &mut scratch), None);
        let mut ntp = flow("10.99.0.1", 123, "192.0.2.9", 123);
        ntp.ip_proto = 17;
        assert_eq!(judge(&ntp, &mut scratch), Some(1));
        // Host names: own name first, DNS only without one, never for a foreign initiator.
        let mut noc = flow("10.99.0.1", 1, "192.0.2.10", 443);
        noc.tls_sni = Some("gw1.noc.carrier.example");
        assert_eq!(judge(&noc, &mut scratch), Some(2));
        noc.tls_sni = Some("www.other.example");
        noc.dns_name = Some("gw1.noc.carrier.example");
        assert_eq!(judge(&noc, &mut scratch), None);
        noc.tls_sni = None;
        assert_eq!(judge(&noc, &mut scratch), Some(2));
        let mut inbound = flow("192.0.2.10", 1, "10.99.0.1", 443);
        inbound.tls_sni = Some("gw1.noc.carrier.example");
        assert_eq!(judge(&inbound, &mut scratch), None);
        // Not cross-border: never excluded.
        let mut internal = flow("10.99.0.1", 5353, "10.0.0.53", 53);
        internal.ip_proto = 17;
        assert_eq!(judge(&internal, &mut scratch), None);
    }
}
