//! Circuits: enterprises whose scenario sources overlap must be told apart by their VLANs.
//!
//! On a carrier's line the same private prefix (10.1.0.0/16) can belong to two enterprises on
//! two circuits. When two enterprises' scenario sources overlap and no circuit separates them
//! (one side has no `vlans`, or their VLAN lists share an id), a flow from the overlap is
//! attributed to whichever scenario matches first; the loader warns, naming both.

use super::{Enterprise, IpNet, Scenario};
use crate::diag::Diagnostics;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

/// At most this many overlap warnings; the rest are counted in one more warning.
const MAX_WARNINGS: usize = 20;

/// One enterprise's scenarios on one source prefix.
struct Holder {
    enterprise: usize,
    /// First scenario (index) of this enterprise listing the prefix.
    scenario: usize,
    /// `None` = some scenario there runs on any circuit; else the union of their VLAN ids.
    vlans: Option<Vec<u16>>,
}

/// Whether two holders cannot be told apart by circuit.
fn clash(a: &Holder, b: &Holder) -> bool {
    match (&a.vlans, &b.vlans) {
        (Some(x), Some(y)) => x.iter().any(|v| y.binary_search(v).is_ok()),
        _ => true,
    }
}

/// Per distinct source prefix, the enterprises listing it (ascending prefix order).
fn holders_by_prefix(scenarios: &[Scenario]) -> BTreeMap<IpNet, Vec<Holder>> {
    let mut by_net: BTreeMap<IpNet, Vec<Holder>> = BTreeMap::new();
    for (i, s) in scenarios.iter().enumerate() {
        for net in &s.sources {
            let holders = by_net.entry(*net).or_default();
            match holders
                .iter_mut()
                .find(|h| h.enterprise == s.enterprise_index)
            {
                Some(h) => {
                    if let Some(v) = &mut h.vlans {
                        if s.vlans.is_empty() {
                            h.vlans = None;
                        } else {
                            v.extend_from_slice(&s.vlans);
                            v.sort_unstable();
                            v.dedup();
                        }
                    }
                }
                None => holders.push(Holder {
                    enterprise: s.enterprise_index,
                    scenario: i,
                    vlans: (!s.vlans.is_empty()).then(|| s.vlans.clone()),
                }),
            }
        }
    }
    by_net
}

/// The warning for one pair: `first` (with its line) is the earlier scenario in the file.
fn overlap_message(
    enterprises: &[Enterprise],
    scenarios: &[Scenario],
    (first, first_net, first_line): (&Holder, &IpNet, usize),
    (later, later_net): (&Holder, &IpNet),
) -> String {
    let name = |h: &Holder| enterprises.get(h.enterprise).map_or("?", |e| e.id.as_str());
    let scen = |h: &Holder| scenarios.get(h.scenario).map_or("?", |s| s.id.as_str());
    let why = match (&first.vlans, &later.vlans) {
        (Some(x), Some(y)) => {
            let shared: Vec<String> = x
                .iter()
                .filter(|v| y.binary_search(v).is_ok())
                .map(u16::to_string)
                .collect();
            format!("both are on VLAN {}", shared.join(", "))
        }
        _ => "at least one of them has no `vlans` (any circuit)".to_string(),
    };
    format!(
        "enterprises {:?} and {:?} have overlapping sources: scenario {:?} lists {later_net} and scenario {:?} (line {first_line}) lists {first_net}, and no circuit tells them apart ({why}); a flow from there is judged against both enterprises' scenarios, expected distinct `vlans` for each enterprise's circuit",
        name(later),
        name(first),
        scen(later),
        scen(first),
    )
}

/// Warn, once per pair of enterprises, where their scenario sources overlap and no circuit
/// tells them apart. `spots[i]` is (chunk base, id span) of `scenarios[i]`.
pub(crate) fn overlap_warnings(
    d: &mut Diagnostics,
    enterprises: &[Enterprise],
    scenarios: &[Scenario],
    spots: &[(usize, Range<usize>)],
) {
    let by_net = holders_by_prefix(scenarios);
    // Sorted by (address, length), a prefix comes after every prefix covering it: a stack of
    // the covering chain finds every overlapping pair without comparing all prefixes.
    let mut stack: Vec<(&IpNet, &Vec<Holder>)> = Vec::new();
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    let mut found: Vec<(&IpNet, &Holder, &IpNet, &Holder)> = Vec::new();
    let mut more = 0usize;
    for (net, holders) in &by_net {
        while stack.last().is_some_and(|(top, _)| !top.covers(net)) {
            stack.pop();
        }
        stack.push((net, holders));
        for (outer, outer_holders) in &stack {
            for a in outer_holders.iter() {
                for b in holders {
                    if a.enterprise == b.enterprise || !clash(a, b) {
                        continue;
                    }
                    let pair = (
                        a.enterprise.min(b.enterprise),
                        a.enterprise.max(b.enterprise),
                    );
                    if !seen.insert(pair) {
                        continue;
                    }
                    if found.len() < MAX_WARNINGS {
                        found.push((outer, a, net, b));
                    } else {
                        more += 1;
                    }
                }
            }
        }
    }
    for (net_a, a, net_b, b) in found {
        // Located at the later of the two scenarios, naming the earlier one's line.
        let (first, first_net, later, later_net) = if a.scenario < b.scenario {
            (a, net_a, b, net_b)
        } else {
            (b, net_b, a, net_a)
        };
        let (Some(first_spot), Some(later_spot)) =
            (spots.get(first.scenario), spots.get(later.scenario))
        else {
            continue;
        };
        d.set_base(first_spot.0);
        let first_line = d.line_of(&first_spot.1);
        d.set_base(later_spot.0);
        let message = overlap_message(
            enterprises,
            scenarios,
            (first, first_net, first_line),
            (later, later_net),
        );
        d.warn(&later_spot.1, message);
    }
    if more > 0 {
        if let Some(spot) = spots.last() {
            d.set_base(spot.0);
            d.warn(
                &spot.1,
                format!("{more} more pairs of enterprises have overlapping sources without circuits to tell them apart (only the first {MAX_WARNINGS} are listed)"),
            );
        }
    }
}
