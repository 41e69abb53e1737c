//! Classification of a flow against the registry of filed transfer scenarios.
//!
//! [`Compiled`] turns a validated [`Registry`] plus the gateway's domestic prefixes into matchers
//! whose cost does not grow with the number of scenarios: longest-prefix tables (one hash table
//! per prefix length present, see [`prefix`]) for the domestic side, the scenario sources and
//! the CIDR destinations, hash maps walked label by label for host names, and a compact array of
//! per-scenario rules (services, validity, window) touched only for the candidate scenarios. [`Compiled::classify`] applies the order of docs/legal.md
//! ("first miss wins"):
//!
//! 1. no scenario lists the domestic endpoint in `sources` -> `unfiled` (a scenario with
//!    circuits, `vlans`, counts only for flows tagged with one of its VLAN ids)
//! 2. none of those lists the foreign end in `destinations` -> `recipient_not_filed`
//! 3. none of those lists the service -> `service_not_filed`
//! 4. none of those is valid on the flow's Beijing date -> `filing_expired`, or
//!    `filing_not_yet_valid` when the date is before every such filing's `valid_from`
//! 5. none of those allows the flow's Beijing time -> `outside_window`
//! 6. `filed`, by the most specific scenario: longest source prefix, then exact host over
//!    wildcard over CIDR, then lowest id.
//!
//! Every candidate scenario (one whose sources contain the domestic endpoint) is taken through
//! the checks until its first miss; the verdict is decided by the candidate that got furthest,
//! which is the same as filtering the set step by step. The scenario reported with a non-filed
//! verdict is the most specific candidate that got furthest (useful context for an alert).
//!
//! The domestic endpoint is always the exporter, also when the foreign side opened the
//! connection (`direction = import`); the service is always the responder's protocol and port.
//! Names: the flow's own names (TLS SNI, QUIC SNI, HTTP Host, tried in that order) decide when
//! the flow carries one; the name DNS answers gave for the responder address is used only when
//! it carries none (a CDN or cloud address serves many names, so a filed name learned for the
//! address never covers a flow that names another host). A scenario takes the most specific
//! match (exact over wildcard over CIDR), ties going to the earlier name. When the ClientHello
//! offered ECH the SNI (an outer, cover name) is never used. Every name describes the
//! responder: when the foreign end initiated the flow (`import`), names never file it; only its
//! address can.
//!
//! Time: the verdict is judged at the time of the first packet the record covers — the flow's
//! first packet for a normal record; for records following an active-timeout record, the caller
//! passes the last packet time of the previous record (see `detect`).
#![warn(missing_docs)]

pub mod exclude;
pub mod hosts;
pub mod lists;
pub mod prefix;

use crate::analysis::FlowSummary;
use crossline_config::event::{Direction, VerdictStatus};
use crossline_config::registry::{
    on_circuit, Destination, IpNet, Registry, Scenario, Service, Transport, Window,
};
use crossline_config::time::{shanghai, LocalTime};
use hosts::{normalise, HostMatcher, MAX_NAME};
use prefix::PrefixTable;
use std::net::IpAddr;

/// Where a matched host name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// TLS ClientHello SNI.
    Tls,
    /// QUIC Initial SNI.
    Quic,
    /// HTTP/1.x Host header.
    Http,
    /// DNS answer seen on the line.
    Dns,
}

impl NameSource {
    /// The `verdict.name_source` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Tls => "tls",
            NameSource::Quic => "quic",
            NameSource::Http => "http",
            NameSource::Dns => "dns",
        }
    }
}

/// How specifically a scenario's destinations matched the foreign end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DestMatch {
    /// No destination matched.
    None,
    /// The address is in a filed CIDR.
    Cidr,
    /// A `*.suffix` host pattern matched a name.
    Wildcard,
    /// An exact host name matched.
    Exact,
}

/// A registry compiled into matchers. Immutable; replaced as a whole on reload.
#[derive(Debug)]
pub struct Compiled {
    /// The registry it was built from.
    pub registry: Registry,
    /// The gateway's domestic prefixes.
    pub domestic_nets: Vec<IpNet>,
    domestic: PrefixTable,
    sources: PrefixTable,
    dest_nets: PrefixTable,
    dest_hosts: HostMatcher,
    /// Per scenario index: what steps 3-5 need, packed together.
    rules: Vec<Rule>,
    /// Services of all scenarios, `Rule::services` indexes into it.
    services: Vec<Service>,
    /// Circuits (VLAN ids) of all scenarios, `Rule::vlans` indexes into it.
    vlans: Vec<u16>,
}

/// The checks of one scenario after the destination, in one small record.
#[derive(Debug, Clone, Copy)]
struct Rule {
    valid_from: i64,
    valid_until: i64,
    window: Option<Window>,
    /// Range in `Compiled::services`; empty = any service.
    services: (u32, u32),
    enterprise: u32,
    /// Range in `Compiled::vlans`; empty = any circuit.
    vlans: (u32, u32),
}

/// A scenario that lists the domestic endpoint, and how far it got through the checks.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    index: u32,
    source_len: u8,
    dest: DestMatch,
    name: Option<NameSource>,
    /// Checks passed: 1 source, 2 destination, 3 service, 4 validity, 5 window.
    stage: u8,
    /// Failed validity because the flow's date is before `valid_from`.
    early: bool,
}

/// Reusable buffers so that classification does not allocate in the steady state.
#[derive(Debug, Default)]
pub struct Scratch {
    cands: Vec<Candidate>,
}

/// The result of classifying a flow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// Export, import, internal or external.
    pub direction: Direction,
    /// The verdict.
    pub status: VerdictStatus,
    /// Index into `registry.scenarios` of the matched (or, for a non-filed verdict, the most
    /// specific furthest) scenario.
    pub scenario: Option<u32>,
    /// Index into `registry.enterprises`.
    pub enterprise: Option<u32>,
    /// Which name matched the scenario's destination, if a name did.
    pub name_source: Option<NameSource>,
    /// How the destination matched.
    pub dest_match: DestMatch,
    /// The flow offered ECH, so its SNI was not used.
    pub ech: bool,
    /// The domestic and foreign endpoints (`None` when not cross-border).
    pub domestic: Option<IpAddr>,
    /// The foreign endpoint (`None` when not cross-border).
    pub foreign: Option<IpAddr>,
    /// Longest source prefix of the matched scenario.
    pub source_len: u8,
}

/// Transport of an IP protocol number, if it has ports.
pub fn transport_of(ip_proto: u8) -> Option<Transport> {
    match ip_proto {
        6 => Some(Transport::Tcp),
        17 => Some(Transport::Udp),
        _ => None,
    }
}

fn service_ok(services: &[Service], ip_proto: u8, port: u16) -> bool {
    if services.is_empty() {
        return true;
    }
    match transport_of(ip_proto) {
        Some(t) => services.iter().any(|s| s.matches(t, port)),
        None => services.contains(&Service::Any),
    }
}

impl Compiled {
    /// Compile a registry for a gateway whose China side is `domestic`.
    pub fn new(registry: Registry, domestic: &[IpNet]) -> Compiled {
        let mut dom = PrefixTable::new();
        for n in domestic {
            dom.insert(*n, 0);
        }
        let mut sources = PrefixTable::new();
        let mut dest_nets = PrefixTable::new();
        let mut dest_hosts = HostMatcher::default();
        let mut rules = Vec::with_capacity(registry.scenarios.len());
        let mut services = Vec::new();
        let mut vlans = Vec::new();
        for (i, s) in registry.scenarios.iter().enumerate() {
            let i = i as u32;
            let first = services.len() as u32;
            services.extend_from_slice(&s.services);
            let first_vlan = vlans.len() as u32;
            vlans.extend_from_slice(&s.vlans);
            rules.push(Rule {
                valid_from: s.valid_from.days_since_epoch(),
                valid_until: s.valid_until.days_since_epoch(),
                window: s.window,
                services: (first, s.services.len() as u32),
                enterprise: s.enterprise_index as u32,
                vlans: (first_vlan, s.vlans.len() as u32),
            });
            for n in &s.sources {
                sources.insert(*n, i);
            }
            for d in &s.destinations {
                match d {
                    Destination::Net(n) => dest_nets.insert(*n, i),
                    Destination::Host(h) => dest_hosts.insert(h, i),
                }
            }
        }
        dom.freeze();
        sources.freeze();
        dest_nets.freeze();
        dest_hosts.freeze();
        Compiled {
            registry,
            domestic_nets: domestic.to_vec(),
            domestic: dom,
            sources,
            dest_nets,
            dest_hosts,
            rules,
            services,
            vlans,
        }
    }

    /// Whether scenario `index` is filed for a circuit carrying a flow tagged `flow_vlans`
    /// (a scenario without circuits is filed for any).
    fn on_circuit(&self, index: u32, flow_vlans: &[u16; 3]) -> bool {
        let Some(rule) = self.rules.get(index as usize) else {
            return false;
        };
        let (first, n) = rule.vlans;
        let circuits = self
            .vlans
            .get(first as usize..(first + n) as usize)
            .unwrap_or(&[]);
        on_circuit(circuits, flow_vlans)
    }

    /// Whether an address is on the China side of the line.
    pub fn is_domestic(&self, ip: IpAddr) -> bool {
        self.domestic.contains(ip)
    }

    /// Scenario by index.
    pub fn scenario(&self, index: u32) -> &Scenario {
        &self.registry.scenarios[index as usize]
    }

    /// The enterprise that owns the longest source prefix containing `ip` among the scenarios
    /// filed for the flow's circuit (`vlan`, the flow key's VLAN ids; scenarios without circuits
    /// count for every circuit), lowest scenario index among equals, for counting persons of
    /// unfiled flows.
    pub fn owner_of(&self, ip: IpAddr, vlan: &[u16; 3]) -> Option<u32> {
        let mut owner = None;
        // Shortest prefix first: a later (longer) match replaces an earlier one.
        self.sources.for_each_match(ip, |_, vals| {
            if let Some(&i) = vals.iter().find(|&&i| self.on_circuit(i, vlan)) {
                owner = Some(self.scenario(i).enterprise_index as u32);
            }
        });
        owner
    }

    /// Classify a flow record judged at `judge_micros` (Unix microseconds).
    pub fn classify(
        &self,
        s: &FlowSummary<'_>,
        judge_micros: i64,
        scratch: &mut Scratch,
    ) -> Classification {
        let init_dom = self.is_domestic(s.initiator);
        let resp_dom = self.is_domestic(s.responder);
        let (direction, domestic, foreign) = match (init_dom, resp_dom) {
            (true, false) => (Direction::Export, s.initiator, s.responder),
            (false, true) => (Direction::Import, s.responder, s.initiator),
            (true, true) | (false, false) => {
                return Classification {
                    direction: if init_dom {
                        Direction::Internal
                    } else {
                        Direction::External
                    },
                    status: VerdictStatus::NotCrossBorder,
                    scenario: None,
                    enterprise: None,
                    name_source: None,
                    dest_match: DestMatch::None,
                    ech: s.ech,
                    domestic: None,
                    foreign: None,
                    source_len: 0,
                };
            }
        };
        let mut out = Classification {
            direction,
            status: VerdictStatus::Unfiled,
            scenario: None,
            enterprise: None,
            name_source: None,
            dest_match: DestMatch::None,
            ech: s.ech,
            domestic: Some(domestic),
            foreign: Some(foreign),
            source_len: 0,
        };

        // 1. Sources: every scenario listing the domestic endpoint, with its longest prefix,
        // among those filed for the flow's circuit.
        let cands = &mut scratch.cands;
        cands.clear();
        self.sources.for_each_match(domestic, |len, vals| {
            for &v in vals.iter().filter(|&&v| self.on_circuit(v, &s.vlan)) {
                cands.push(Candidate {
                    index: v,
                    source_len: len,
                    dest: DestMatch::None,
                    name: None,
                    stage: 1,
                    early: false,
                });
            }
        });
        if cands.is_empty() {
            return out;
        }
        // Sort by index, longest prefix first, and keep one entry per scenario.
        cands.sort_unstable_by(|a, b| a.index.cmp(&b.index).then(b.source_len.cmp(&a.source_len)));
        cands.dedup_by_key(|c| c.index);

        // 2. Destinations: CIDR, then names. The flow's own names (TLS SNI, QUIC SNI, HTTP
        // Host) decide when the flow carries one; the DNS-learned name is only the fallback for
        // flows without one (a CDN address serves many names). Own names and the DNS name
        // (learned for the responder address) name the responder: when the foreign end
        // initiated the flow they describe the domestic server, so only the address can file it.
        self.dest_nets.for_each_match(foreign, |_, vals| {
            mark(cands, vals, DestMatch::Cidr, None);
        });
        if !self.dest_hosts.is_empty() && direction == Direction::Export {
            self.mark_names(s, cands);
        }
        // 3-5. Service, validity, window, per candidate until its first miss.
        self.check_candidates(s, judge_micros, cands);

        let furthest = cands.iter().map(|c| c.stage).max().unwrap_or(1);
        // Step 4: "not yet valid" only when every candidate that reached it starts later.
        let not_yet = furthest == 3 && cands.iter().all(|c| c.stage != 3 || c.early);
        let scen = &self.registry.scenarios;
        let best = cands
            .iter()
            .filter(|c| c.stage == furthest && (furthest != 3 || c.early == not_yet))
            .min_by(|a, b| {
                b.source_len
                    .cmp(&a.source_len)
                    .then(b.dest.cmp(&a.dest))
                    .then_with(|| scen[a.index as usize].id.cmp(&scen[b.index as usize].id))
            })
            .copied();
        out.status = match furthest {
            1 => VerdictStatus::RecipientNotFiled,
            2 => VerdictStatus::ServiceNotFiled,
            3 if not_yet => VerdictStatus::FilingNotYetValid,
            3 => VerdictStatus::FilingExpired,
            4 => VerdictStatus::OutsideWindow,
            _ => VerdictStatus::Filed,
        };
        if let Some(b) = best {
            out.scenario = Some(b.index);
            out.enterprise = Some(self.rules[b.index as usize].enterprise);
            out.name_source = b.name;
            out.dest_match = b.dest;
            out.source_len = b.source_len;
        }
        out
    }

    /// Step 2 by name: raise the candidates whose destinations list one of the flow's names.
    fn mark_names(&self, s: &FlowSummary<'_>, cands: &mut [Candidate]) {
        let sni_ok = !s.ech;
        let own = [
            (if sni_ok { s.tls_sni } else { None }, NameSource::Tls),
            (if sni_ok { s.quic_sni } else { None }, NameSource::Quic),
            (s.http_host, NameSource::Http),
        ];
        let dns = [(s.dns_name, NameSource::Dns)];
        let names: &[(Option<&str>, NameSource)] = if own.iter().any(|(n, _)| n.is_some()) {
            &own
        } else {
            &dns
        };
        let mut buf = [0u8; MAX_NAME];
        for &(name, source) in names {
            let Some(name) = name else { continue };
            let Some(name) = normalise(name, &mut buf) else {
                continue;
            };
            self.dest_hosts.for_each_match(name, |exact, vals| {
                let m = if exact {
                    DestMatch::Exact
                } else {
                    DestMatch::Wildcard
                };
                mark(cands, vals, m, Some(source));
            });
        }
    }

    /// Steps 3-5 (service, validity, window) per candidate that matched a destination, until
    /// its first miss: `stage` is the furthest step it passed.
    fn check_candidates(&self, s: &FlowSummary<'_>, judge_micros: i64, cands: &mut [Candidate]) {
        let local: LocalTime = shanghai(judge_micros.div_euclid(1_000_000));
        let today = local.date.days_since_epoch();
        for c in cands.iter_mut() {
            if c.dest == DestMatch::None {
                continue;
            }
            c.stage = 2;
            let rule = &self.rules[c.index as usize];
            let (first, n) = rule.services;
            let svc = &self.services[first as usize..(first + n) as usize];
            if !service_ok(svc, s.ip_proto, s.responder_port) {
                continue;
            }
            c.stage = 3;
            if today < rule.valid_from {
                c.early = true;
                continue;
            }
            if today > rule.valid_until {
                continue;
            }
            c.stage = 4;
            if let Some(w) = rule.window {
                if !w.allows(local) {
                    continue;
                }
            }
            c.stage = 5;
        }
    }
}

/// Raise the destination match of the candidates listed in `vals` (both sorted by index).
fn mark(cands: &mut [Candidate], vals: &[u32], m: DestMatch, name: Option<NameSource>) {
    for &v in vals {
        if let Ok(i) = cands.binary_search_by_key(&v, |c| c.index) {
            let c = &mut cands[i];
            if m > c.dest {
                c.dest = m;
                c.name = name;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
