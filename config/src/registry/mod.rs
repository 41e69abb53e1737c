//! The validated registry of filed transfer scenarios (docs/registry.md).
//!
//! These types cannot hold a bad state: every value has been checked by [`crate::load`] and the
//! raw serde structures in `raw.rs`. Classification compiles them into matchers.

use crate::time::{Date, LocalTime};
use std::net::IpAddr;
use std::path::PathBuf;

/// The whole registry: enterprises and their filed scenarios.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    /// File the registry was read from.
    pub path: PathBuf,
    pub enterprises: Vec<Enterprise>,
    pub scenarios: Vec<Scenario>,
}

impl Registry {
    /// Enterprise by id.
    pub fn enterprise(&self, id: &str) -> Option<&Enterprise> {
        self.enterprises.iter().find(|e| e.id == id)
    }
}

/// An exporter (`[[enterprise]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enterprise {
    pub id: String,
    pub name: String,
    /// Unified social credit code, check characters verified (GB 32100-2015).
    pub uscc: String,
    /// Measure 七: green channel, may be routed to a dedicated service desk.
    pub green_channel: bool,
    /// Inside a free trade zone (measure 六).
    pub ftz: bool,
    /// Critical information infrastructure operator (thresholds and deadlines differ).
    pub ciio: bool,
    /// VLAN ids of the enterprise's circuits, sorted and distinct; empty = any circuit.
    pub vlans: Vec<u16>,
}

/// A filed transfer (`[[scenario]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub id: String,
    /// Enterprise id.
    pub enterprise: String,
    /// Index of the enterprise in [`Registry::enterprises`].
    pub enterprise_index: usize,
    pub basis: Basis,
    pub filing_ref: String,
    pub recipient: Recipient,
    pub activity: String,
    pub data: Vec<DataCategory>,
    /// First valid Beijing calendar day (inclusive).
    pub valid_from: Date,
    /// Last valid Beijing calendar day (inclusive).
    pub valid_until: Date,
    pub sources: Vec<IpNet>,
    pub destinations: Vec<Destination>,
    /// Empty means any service.
    pub services: Vec<Service>,
    pub window: Option<Window>,
    /// Daily export cap in bytes.
    pub bytes_per_day: Option<u64>,
    pub persons_per_year: Option<u64>,
    /// VLAN ids of the circuits the scenario is filed for, sorted and distinct: its own
    /// `vlans`, else its enterprise's; empty = any circuit.
    pub vlans: Vec<u16>,
}

/// Whether a flow tagged with `flow_vlans` (up to three ids, 0 = no tag in that slot) runs on
/// one of the circuits `circuits` (sorted VLAN ids; empty = any circuit, tagged or not).
pub fn on_circuit(circuits: &[u16], flow_vlans: &[u16]) -> bool {
    circuits.is_empty()
        || flow_vlans
            .iter()
            .any(|v| *v != 0 && circuits.binary_search(v).is_ok())
}

impl Scenario {
    /// Valid on this Beijing calendar day (both ends inclusive).
    pub fn valid_on(&self, date: Date) -> bool {
        self.valid_from <= date && date <= self.valid_until
    }
}

/// Legal basis of a filing (docs/legal.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Basis {
    SecurityAssessment,
    StandardContract,
    Certification,
    Exemption(Exemption),
    FtzNegativeList,
}

impl Basis {
    /// The registry spelling of the basis (`exemption` for every exemption article).
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::SecurityAssessment => "security_assessment",
            Basis::StandardContract => "standard_contract",
            Basis::Certification => "certification",
            Basis::Exemption(_) => "exemption",
            Basis::FtzNegativeList => "ftz_negative_list",
        }
    }
}

/// Exemption articles of CAC Order 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exemption {
    Art3,
    Art4,
    Art5Contract,
    Art5Hr,
    Art5Emergency,
    Art5Small,
}

impl Exemption {
    /// The registry spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::Art3 => "art3",
            Exemption::Art4 => "art4",
            Exemption::Art5Contract => "art5_contract",
            Exemption::Art5Hr => "art5_hr",
            Exemption::Art5Emergency => "art5_emergency",
            Exemption::Art5Small => "art5_small",
        }
    }
}

/// Data categories a scenario may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataCategory {
    None,
    Personal,
    SensitivePersonal,
    Important,
}

/// The overseas recipient as filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

/// An IPv4 or IPv6 prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
}

impl IpNet {
    /// A prefix; `None` when the length is too long or host bits are set.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max || host_bits(addr, prefix_len) != 0 {
            return None;
        }
        Some(IpNet { addr, prefix_len })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies inside this prefix (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix_len);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix_len);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &IpNet) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.addr)
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

fn mask_u32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn mask_u128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// The bits of `addr` below the prefix length, as an integer (0 when the prefix is clean).
pub fn host_bits(addr: IpAddr, prefix_len: u8) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a) & !mask_u32(prefix_len.min(32))),
        IpAddr::V6(a) => u128::from(a) & !mask_u128(prefix_len.min(128)),
    }
}

/// A filed destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Net(IpNet),
    Host(HostPattern),
}

/// A host name pattern, lower case, no empty labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// `api.partner.example`
    Exact(String),
    /// `*.cro.example.de`, stored without the `*.`: matches strict subdomains only, never the
    /// bare parent.
    Suffix(String),
}

impl HostPattern {
    /// Whether a (lower-case) name matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == name,
            HostPattern::Suffix(s) => {
                name.len() > s.len() + 1
                    && name.ends_with(s.as_str())
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.'
            }
        }
    }
}

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

/// A filed service: `any`, or a protocol and an inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Any,
    Ports {
        transport: Transport,
        first: u16,
        last: u16,
    },
}

impl Service {
    /// Whether a responder protocol/port is covered.
    pub fn matches(&self, transport: Transport, port: u16) -> bool {
        match *self {
            Service::Any => true,
            Service::Ports {
                transport: t,
                first,
                last,
            } => t == transport && first <= port && port <= last,
        }
    }
}

/// Allowed days and hours, Asia/Shanghai.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Bit `d` set = weekday `d` allowed (0 = Monday .. 6 = Sunday).
    pub days: u8,
    /// Start minute of day, inclusive.
    pub start_minute: u16,
    /// End minute of day, exclusive: `08:00-20:00` allows 08:00:00 through 19:59:59; equal start
    /// and end (`00:00-24:00`) allows the whole day.
    pub end_minute: u16,
}

impl Window {
    /// Whether the local time falls inside the window. A window that crosses midnight
    /// (`22:00-06:00`) belongs to the day it starts on: Friday 22:00 to Saturday 06:00 is allowed
    /// when Friday is listed.
    pub fn allows(&self, t: LocalTime) -> bool {
        let minute = t.minute_of_day();
        let day = t.date.weekday();
        let day_listed = |d: u8| self.days & (1 << d) != 0;
        if self.start_minute == self.end_minute {
            return day_listed(day);
        }
        if self.start_minute < self.end_minute {
            day_listed(day) && minute >= self.start_minute && minute < self.end_minute
        } else {
            // Crosses midnight.
            let previous = (day + 6) % 7;
            (day_listed(day) && minute >= self.start_minute)
                || (day_listed(previous) && minute < self.end_minute)
        }
    }
}
pub(crate) mod circuits;
pub mod load;
