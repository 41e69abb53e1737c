//! Shared event types: the EVE-style JSON lines that the agent writes and the collector ingests.
//!
//! Field names follow Suricata's EVE JSON where one exists (`timestamp`, `event_type`, `flow_id`,
//! `src_ip`, `dest_port`, `app_proto`, `flow.pkts_toserver`, `tls.sni`, ...), so operators can
//! read crossline output with the tools they already use. `docs/events.md` describes every field.
//! Every field that does not apply to an event type is left out of the JSON, not written as null,
//! except `alert.scenario` and `alert.enterprise`, which are always present (null when unknown).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod view;
mod wire;
pub use view::{AlertRef, EveTime, EventRef, FixedWriter, FlowRecordRef, VerdictRef};
pub use wire::{eve_flow_reason, Layout};

/// One line of crossline output.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// EVE time (microseconds, numeric offset), e.g. `2026-03-02T09:14:07.118000+0000`
    /// ([`format_eve_timestamp`]); events read in the layout before EVE's keep their RFC 3339
    /// times (`2026-03-02T09:14:07.118Z`). [`parse_timestamp_micros`] reads both.
    pub timestamp: String,
    /// What kind of event this is.
    pub event_type: EventType,
    /// Gateway id of the agent that saw it.
    pub gateway: String,
    /// Agent-local flow id (unique per agent run and worker).
    pub flow_id: Option<u64>,
    /// EVE's protocol name (`TCP`, `UDP`, `ICMP`, `IPv6-ICMP`, `SCTP`, `GRE`, `ESP`, ...) or the IP
    /// protocol number as a string.
    pub proto: Option<String>,
    /// VLAN ids of the flow's circuit, outermost first (EVE's `vlan`); absent when untagged.
    pub vlan: Option<Vec<u16>>,
    /// Initiator address (TCP SYN sender where seen, else the first packet's sender).
    pub src_ip: Option<String>,
    pub src_port: Option<u16>,
    pub dest_ip: Option<String>,
    pub dest_port: Option<u16>,
    /// ICMP / ICMPv6 flows (instead of ports): type and code of the initiator's first message.
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// ICMP / ICMPv6 flows answered: type and code of the responder's first message.
    pub response_icmp_type: Option<u8>,
    pub response_icmp_code: Option<u8>,
    /// Community ID v1 (`1:...`), to join with Zeek and Suricata logs.
    pub community_id: Option<String>,
    /// Application protocol detected: `tls`, `quic`, `http`, `dns`, `ssh`, `smtp`, `ftp`, ...
    pub app_proto: Option<String>,
    pub tls: Option<TlsMeta>,
    pub quic: Option<TlsMeta>,
    pub http: Option<HttpMeta>,
    /// Name of the far end learned from DNS answers seen on the line.
    pub dns_name: Option<String>,
    pub flow: Option<FlowRecord>,
    /// `export` when the initiator is domestic, `import` when it is foreign (the domestic end is
    /// still the exporter of `export_bytes`), `internal` / `external` when not cross-border.
    pub direction: Option<Direction>,
    /// Bytes sent by the domestic endpoint (whole frames, as on the wire).
    pub export_bytes: Option<u64>,
    pub verdict: Option<Verdict>,
    pub alert: Option<Alert>,
    pub stats: Option<Stats>,
    pub sketch: Option<Sketch>,
    /// Alert events about a flow's verdict raised before its flow record (live): when the
    /// verdict was judged. Absent for alerts judged at a flow record.
    pub judged: Option<Judged>,
}

impl Event {
    /// An event with only the common header set.
    pub fn new(event_type: EventType, timestamp: String, gateway: String) -> Event {
        Event {
            timestamp,
            event_type,
            gateway,
            flow_id: None,
            proto: None,
            vlan: None,
            src_ip: None,
            src_port: None,
            dest_ip: None,
            dest_port: None,
            icmp_type: None,
            icmp_code: None,
            response_icmp_type: None,
            response_icmp_code: None,
            community_id: None,
            app_proto: None,
            tls: None,
            quic: None,
            http: None,
            dns_name: None,
            flow: None,
            direction: None,
            export_bytes: None,
            verdict: None,
            alert: None,
            stats: None,
            sketch: None,
            judged: None,
        }
    }
}

/// When a verdict alert was judged, for those not judged at the flow record (`judged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judged {
    /// At the flow's first export payload (and its name, when the first payload carried one):
    /// `alert.bytes` and the summary's byte figure are the export bytes seen by then; the
    /// flow record at the end carries the totals.
    FirstExport,
    /// Judged again because the flow's name arrived after the first judgement (a late SNI or
    /// Host, or a DNS answer known by the flow record) and the verdict changed; raised once.
    Rejudged,
}

/// `event_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Flow,
    Alert,
    Stats,
    /// Mergeable cumulative state of one enterprise as one gateway counted it ([`Sketch`]).
    Sketch,
}

impl Judged {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Judged::FirstExport => "first_export",
            Judged::Rejudged => "rejudged",
        }
    }
}

impl EventType {
    /// The JSON / label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Flow => "flow",
            EventType::Alert => "alert",
            EventType::Stats => "stats",
            EventType::Sketch => "sketch",
        }
    }
}

/// TLS or QUIC ClientHello metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsMeta {
    /// Server name as offered. With ECH this is the outer (cover) name and is never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// The ClientHello offered Encrypted Client Hello (extension 0xfe0d).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ech: bool,
    /// JA4 client fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// QUIC version (`1`, `2`) for QUIC flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// HTTP/1.x request metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
}

/// The `flow` object of a flow event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRecord {
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    /// RFC 3339 time of the first packet.
    pub start: String,
    /// RFC 3339 time of the last packet.
    pub end: String,
    /// Seconds between first and last packet.
    #[serde(default)]
    pub age: u64,
    /// TCP state at the end: `new`, `established`, `closed`; `new` for other protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why the record was written: `fin`, `rst`, `timeout`, `active_timeout` (a running record
    /// of a long flow; more will follow), `evicted` (table full), `shutdown` (end of capture).
    pub reason: String,
    /// The flow was picked up in the middle (no SYN seen).
    #[serde(default, skip_serializing_if = "is_false")]
    pub midstream: bool,
    /// An alert was raised on this flow.
    #[serde(default, skip_serializing_if = "is_false")]
    pub alerted: bool,
}

/// Direction of a flow relative to the domestic side of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Domestic initiator, foreign responder.
    Export,
    /// Foreign initiator, domestic responder (a download of data held in China is still export).
    Import,
    /// Both endpoints domestic.
    Internal,
    /// Neither endpoint domestic.
    External,
}

impl Direction {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Export => "export",
            Direction::Import => "import",
            Direction::Internal => "internal",
            Direction::External => "external",
        }
    }
}

/// Classification result of a flow (docs/legal.md, "Verdicts").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub status: VerdictStatus,
    #[serde(default)]
    pub scenario: Option<String>,
    #[serde(default)]
    pub enterprise: Option<String>,
    /// Where the far end's name came from: `tls`, `quic`, `http`, `dns`; absent when matched by
    /// address only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_source: Option<String>,
    /// The flow offered ECH, so its outer SNI was not used for matching.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ech: bool,
    /// Name of the `[[exclude]]` entry that matched (status `excluded` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
}

/// `verdict.status` values, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    Unfiled,
    RecipientNotFiled,
    ServiceNotFiled,
    FilingExpired,
    /// The flow's date is before every candidate filing's `valid_from`.
    FilingNotYetValid,
    OutsideWindow,
    Filed,
    NotCrossBorder,
    /// Matched an `[[exclude]]` entry of the agent config: infrastructure traffic, not an export.
    Excluded,
}

impl VerdictStatus {
    /// Every status, in declaration order.
    pub const ALL: [VerdictStatus; 9] = [
        VerdictStatus::Unfiled,
        VerdictStatus::RecipientNotFiled,
        VerdictStatus::ServiceNotFiled,
        VerdictStatus::FilingExpired,
        VerdictStatus::FilingNotYetValid,
        VerdictStatus::OutsideWindow,
        VerdictStatus::Filed,
        VerdictStatus::NotCrossBorder,
        VerdictStatus::Excluded,
    ];

    /// The JSON / label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatus::Unfiled => "unfiled",
            VerdictStatus::RecipientNotFiled => "recipient_not_filed",
            VerdictStatus::ServiceNotFiled => "service_not_filed",
            VerdictStatus::FilingExpired => "filing_expired",
            VerdictStatus::FilingNotYetValid => "filing_not_yet_valid",
            VerdictStatus::OutsideWindow => "outside_window",
            VerdictStatus::Filed => "filed",
            VerdictStatus::NotCrossBorder => "not_cross_border",
            VerdictStatus::Excluded => "excluded",
        }
    }

    /// The alert a flow with this verdict raises, if any.
    pub fn alert_kind(self) -> Option<AlertKind> {
        match self {
            VerdictStatus::Unfiled => Some(AlertKind::UnfiledExport),
            VerdictStatus::RecipientNotFiled => Some(AlertKind::RecipientNotFiled),
            VerdictStatus::ServiceNotFiled => Some(AlertKind::ServiceNotFiled),
            VerdictStatus::FilingExpired => Some(AlertKind::FilingExpired),
            VerdictStatus::FilingNotYetValid => Some(AlertKind::FilingNotYetValid),
            VerdictStatus::OutsideWindow => Some(AlertKind::OutsideWindow),
            VerdictStatus::Filed | VerdictStatus::NotCrossBorder | VerdictStatus::Excluded => None,
        }
    }
}

/// The `sketch` object of a `sketch` event: what one gateway has counted so far for one
/// enterprise, in a form the collector merges across gateways. Sent at an interval by `run`,
/// and at the end of every `analyze`. Each sketch carries the gateway's complete figures (not a
/// delta), so a resent or duplicated sketch never counts twice: the collector keeps each
/// gateway's latest figure and takes the union (persons) or the sum over gateways (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sketch {
    /// Enterprise id of the registry.
    pub enterprise: String,
    /// Unified social credit code of the enterprise (the key persons are counted under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    /// Fingerprint of the PI HMAC key the persons were hashed with: the first 8 bytes of
    /// SHA-256 of the key, lower-case hex. Person sketches merge only under one key.
    pub key_fingerprint: String,
    /// Distinct persons per Beijing year and category.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persons: Vec<PersonsSketch>,
    /// Export bytes per scenario and Beijing day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSketch>,
}

/// Persons of one enterprise in one Beijing year and category (in [`Sketch::persons`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonsSketch {
    /// Beijing calendar year.
    pub year: i32,
    /// `personal` (every identifier) or `sensitive` (bank cards).
    pub category: String,
    /// HyperLogLog registers, see [`crate::sketch::HyperLogLog::encode`].
    pub registers: String,
    /// This gateway's own estimate (for reading; the collector re-estimates the union).
    #[serde(default)]
    pub estimate: u64,
    /// The yearly limit the agent applies (`persons_per_year` or the legal default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Export bytes of one scenario on one Beijing day (in [`Sketch::volumes`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSketch {
    /// Scenario id.
    pub scenario: String,
    /// Beijing calendar day, YYYY-MM-DD.
    pub day: String,
    /// Export bytes this gateway counted for the scenario on that day (cumulative).
    pub bytes: u64,
    /// The scenario's daily cap in bytes, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u64>,
}

/// An alert (`event_type = "alert"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    pub scenario: Option<String>,
    pub enterprise: Option<String>,
    /// One human sentence; never contains a raw personal identifier.
    pub summary: String,
    /// Rule id (docs/legal.md), e.g. `XB-001`.
    #[serde(default)]
    pub rule: String,
    /// Far end as matched: host name if known, else address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Responder service, e.g. `tcp/443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Occurrences folded into this alert (1 for a first occurrence).
    #[serde(default = "one")]
    pub count: u64,
    /// Export bytes covered by this alert.
    #[serde(default)]
    pub bytes: u64,
    /// Masked evidence, e.g. `110105********002X`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Estimated distinct persons, where the alert is about persons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persons: Option<u64>,
    /// This alert folds repeats of an earlier one (alert shaping).
    #[serde(default, skip_serializing_if = "is_false")]
    pub followup: bool,
    /// Route to the green-channel service desk (measure 七).
    #[serde(default, skip_serializing_if = "is_false")]
    pub green_channel: bool,
    /// `filing_expiring`: working days left; `filing_not_yet_valid`: calendar days until it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// `valid_from` (YYYY-MM-DD) of the scenario the alert is about, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// `valid_until` (YYYY-MM-DD) of the scenario the alert is about, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// `enterprise` when the collector raised the alert on the enterprise-wide figure merged
    /// from several gateways' sketches (`persons_threshold`, `volume_cap_exceeded`); absent for
    /// an alert of one gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The gateways whose figures make up an enterprise-wide alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}

impl Alert {
    /// An alert of `kind` with its default severity and rule, a count of 1 and nothing else
    /// set; the builders of each kind fill in the rest (`Alert { bytes, ..Alert::new(..) }`).
    pub fn new(kind: AlertKind, summary: String) -> Alert {
        Alert {
            kind,
            severity: kind.default_severity(),
            scenario: None,
            enterprise: None,
            summary,
            rule: kind.rule().to_string(),
            recipient: None,
            service: None,
            count: 1,
            bytes: 0,
            evidence: Vec::new(),
            persons: None,
            followup: false,
            green_channel: false,
            days_left: None,
            valid_from: None,
            valid_until: None,
            scope: None,
            gateways: Vec::new(),
        }
    }
}

fn one() -> u64 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Alert kinds (docs/legal.md, "Alert kinds"); the serde names are the `alert.kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    UnfiledExport,
    RecipientNotFiled,
    CountryMismatch,
    FilingExpired,
    FilingNotYetValid,
    FilingExpiring,
    VolumeCapExceeded,
    OutsideWindow,
    ServiceNotFiled,
    PersonalInfoCleartext,
    PersonsThreshold,
    VolumeSurge,
    NegativeListCategory,
    OpaqueTunnel,
    LineMisuse,
    ImportantDataMarker,
    SensorGap,
}

impl AlertKind {
    /// Every kind, in rule order.
    pub const ALL: [AlertKind; 17] = [
        AlertKind::UnfiledExport,
        AlertKind::RecipientNotFiled,
        AlertKind::CountryMismatch,
        AlertKind::FilingExpired,
        AlertKind::FilingNotYetValid,
        AlertKind::FilingExpiring,
        AlertKind::VolumeCapExceeded,
        AlertKind::OutsideWindow,
        AlertKind::ServiceNotFiled,
        AlertKind::PersonalInfoCleartext,
        AlertKind::PersonsThreshold,
        AlertKind::VolumeSurge,
        AlertKind::NegativeListCategory,
        AlertKind::OpaqueTunnel,
        AlertKind::LineMisuse,
        AlertKind::ImportantDataMarker,
        AlertKind::SensorGap,
    ];

    /// The JSON / label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::UnfiledExport => "unfiled_export",
            AlertKind::RecipientNotFiled => "recipient_not_filed",
            AlertKind::CountryMismatch => "country_mismatch",
            AlertKind::FilingExpired => "filing_expired",
            AlertKind::FilingNotYetValid => "filing_not_yet_valid",
            AlertKind::FilingExpiring => "filing_expiring",
            AlertKind::VolumeCapExceeded => "volume_cap_exceeded",
            AlertKind::OutsideWindow => "outside_window",
            AlertKind::ServiceNotFiled => "service_not_filed",
            AlertKind::PersonalInfoCleartext => "personal_info_cleartext",
            AlertKind::PersonsThreshold => "persons_threshold",
            AlertKind::VolumeSurge => "volume_surge",
            AlertKind::NegativeListCategory => "negative_list_category",
            AlertKind::OpaqueTunnel => "opaque_tunnel",
            AlertKind::LineMisuse => "line_misuse",
            AlertKind::ImportantDataMarker => "important_data_marker",
            AlertKind::SensorGap => "sensor_gap",
        }
    }

    /// Rule id (docs/legal.md).
    pub fn rule(self) -> &'static str {
        match self {
            AlertKind::UnfiledExport => "XB-001",
            AlertKind::RecipientNotFiled => "XB-002",
            AlertKind::CountryMismatch => "XB-003",
            AlertKind::FilingExpired | AlertKind::FilingNotYetValid | AlertKind::FilingExpiring => {
                "XB-004"
            }
            AlertKind::VolumeCapExceeded => "XB-005",
            AlertKind::OutsideWindow => "XB-006",
            AlertKind::ServiceNotFiled => "XB-007",
            AlertKind::PersonalInfoCleartext => "XB-008",
            AlertKind::PersonsThreshold => "XB-009",
            AlertKind::VolumeSurge => "XB-010",
            AlertKind::NegativeListCategory => "XB-011",
            AlertKind::OpaqueTunnel => "XB-012",
            AlertKind::LineMisuse => "XB-013",
            AlertKind::ImportantDataMarker => "XB-014",
            AlertKind::SensorGap => "XB-015",
        }
    }

    /// EVE's `alert.signature_id`: 9,900,001 to 9,900,017, one per kind, stable across
    /// releases (a kind added later takes the next number).
    pub fn signature_id(self) -> u32 {
        9_900_000
            + match self {
                AlertKind::UnfiledExport => 1,
                AlertKind::RecipientNotFiled => 2,
                AlertKind::CountryMismatch => 3,
                AlertKind::FilingExpired => 4,
                AlertKind::FilingNotYetValid => 5,
                AlertKind::FilingExpiring => 6,
                AlertKind::VolumeCapExceeded => 7,
                AlertKind::OutsideWindow => 8,
                AlertKind::ServiceNotFiled => 9,
                AlertKind::PersonalInfoCleartext => 10,
                AlertKind::PersonsThreshold => 11,
                AlertKind::VolumeSurge => 12,
                AlertKind::NegativeListCategory => 13,
                AlertKind::OpaqueTunnel => 14,
                AlertKind::LineMisuse => 15,
                AlertKind::ImportantDataMarker => 16,
                AlertKind::SensorGap => 17,
            }
    }

    /// EVE's `alert.signature`: `CROSSLINE`, the rule id and what happened, as a Suricata rule's
    /// `msg` reads on a dashboard.
    pub fn signature(self) -> &'static str {
        match self {
            AlertKind::UnfiledExport => "CROSSLINE XB-001 export from a source no filing lists",
            AlertKind::RecipientNotFiled => {
                "CROSSLINE XB-002 export to a recipient the filing does not name"
            }
            AlertKind::CountryMismatch => {
                "CROSSLINE XB-003 recipient outside the filed destination country"
            }
            AlertKind::FilingExpired => "CROSSLINE XB-004 export under an expired filing",
            AlertKind::FilingNotYetValid => "CROSSLINE XB-004 export under a filing not yet valid",
            AlertKind::FilingExpiring => "CROSSLINE XB-004 filing nears its end of validity",
            AlertKind::VolumeCapExceeded => {
                "CROSSLINE XB-005 daily export volume above the filed cap"
            }
            AlertKind::OutsideWindow => "CROSSLINE XB-006 export outside the filed time window",
            AlertKind::ServiceNotFiled => {
                "CROSSLINE XB-007 export on a protocol or port the filing does not list"
            }
            AlertKind::PersonalInfoCleartext => {
                "CROSSLINE XB-008 personal information in unencrypted export"
            }
            AlertKind::PersonsThreshold => {
                "CROSSLINE XB-009 yearly persons exported near or above the limit"
            }
            AlertKind::VolumeSurge => "CROSSLINE XB-010 export volume surge",
            AlertKind::NegativeListCategory => {
                "CROSSLINE XB-011 negative-list data to a scenario not approved for it"
            }
            AlertKind::OpaqueTunnel => "CROSSLINE XB-012 unfiled opaque tunnel across the border",
            AlertKind::LineMisuse => "CROSSLINE XB-013 leased line serving many foreign sources",
            AlertKind::ImportantDataMarker => "CROSSLINE XB-014 important-data marker in export",
            AlertKind::SensorGap => "CROSSLINE XB-015 capture lost packets or flows",
        }
    }

    /// EVE's `alert.category`: the class of the rule, as Suricata's classifications group
    /// rules.
    pub fn category(self) -> &'static str {
        match self {
            AlertKind::UnfiledExport | AlertKind::RecipientNotFiled => {
                "Unfiled cross-border data transfer"
            }
            AlertKind::FilingExpired | AlertKind::FilingNotYetValid | AlertKind::FilingExpiring => {
                "Filing validity"
            }
            AlertKind::CountryMismatch
            | AlertKind::VolumeCapExceeded
            | AlertKind::OutsideWindow
            | AlertKind::ServiceNotFiled
            | AlertKind::NegativeListCategory => "Transfer outside its filing",
            AlertKind::PersonalInfoCleartext | AlertKind::PersonsThreshold => {
                "Personal information export"
            }
            AlertKind::ImportantDataMarker => "Important data export",
            AlertKind::VolumeSurge | AlertKind::OpaqueTunnel | AlertKind::LineMisuse => {
                "Anomalous cross-border traffic"
            }
            AlertKind::SensorGap => "Sensor health",
        }
    }

    /// Default severity (docs/legal.md) (some kinds raise or lower it per case).
    pub fn default_severity(self) -> Severity {
        match self {
            AlertKind::UnfiledExport
            | AlertKind::RecipientNotFiled
            | AlertKind::FilingExpired
            | AlertKind::FilingNotYetValid
            | AlertKind::PersonalInfoCleartext
            | AlertKind::PersonsThreshold
            | AlertKind::NegativeListCategory
            | AlertKind::OpaqueTunnel => Severity::High,
            AlertKind::CountryMismatch
            | AlertKind::VolumeCapExceeded
            | AlertKind::ServiceNotFiled
            | AlertKind::VolumeSurge
            | AlertKind::LineMisuse
            | AlertKind::SensorGap => Severity::Med,
            AlertKind::OutsideWindow => Severity::Low,
            AlertKind::FilingExpiring => Severity::Info,
            AlertKind::ImportantDataMarker => Severity::Crit,
        }
    }
}

/// Alert severity, ordered `info < low < med < high < crit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Med,
    High,
    Crit,
}

impl Severity {
    /// The JSON / label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Med => "med",
            Severity::High => "high",
            Severity::Crit => "crit",
        }
    }

    /// One step up, saturating at `crit`.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Med,
            Severity::Med => Severity::High,
            Severity::High | Severity::Crit => Severity::Crit,
        }
    }
}

/// The packet losses of [`Stats::drops`] that the agent's and the collector's metrics carry
/// as their own `kind` label (`crossline_agent_drops_total`,
/// `crossline_agent_stats_drops_total`); the map's other members (`capture_loss_*`,
/// `reassembly_budget`, ...) are estimates or budgets.
pub const DROP_KINDS: [&str; 5] = [
    "kernel",
    "interface",
    "queue",
    "fragment_table",
    "unread_at_stop",
];

/// The final (or periodic, live) `stats` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
    /// Packets that could not be decoded, by reason (`truncated_ipv4`, `bad_ip_version`, ...).
    #[serde(default)]
    pub decode_errors: BTreeMap<String, u64>,
    /// Packets that decoded but carry no flow (ARP, non-IP, ...), by reason.
    #[serde(default)]
    pub ignored: BTreeMap<String, u64>,
    /// Flows created.
    pub flows: u64,
    /// Flows picked up mid-stream (no SYN seen).
    #[serde(default)]
    pub flows_midstream: u64,
    /// Flows evicted because the table was full.
    pub evictions: u64,
    /// Drops by kind: the packet losses of [`DROP_KINDS`], and the capture-loss estimates
    /// and budgets beside them.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// Flow records and alerts written.
    #[serde(default)]
    pub flow_events: u64,
    #[serde(default)]
    pub alerts: BTreeMap<String, u64>,
    /// Verdict counts of cross-border flows.
    #[serde(default)]
    pub verdicts: BTreeMap<String, u64>,
    /// Flow records with the verdict `excluded`, per `[[exclude]]` entry name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub excluded: BTreeMap<String, u64>,
    /// Files read (offline) and any that could not be read completely.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<String>,
}

/// Format a Unix time in microseconds as RFC 3339 UTC with milliseconds
/// (`2026-03-02T09:14:07.118Z`): the collector's API, reports and logs.
pub fn format_timestamp_micros(micros: i64) -> String {
    format_micros(micros, false)
}

/// Format a Unix time in microseconds as EVE writes event times: microseconds and a numeric
/// UTC offset, `2026-03-02T09:14:07.118000+0000` (every event's `timestamp`, `flow.start`,
/// `flow.end`).
pub fn format_eve_timestamp(micros: i64) -> String {
    format_micros(micros, true)
}

fn format_micros(micros: i64, eve: bool) -> String {
    let mut buf = [0u8; 48];
    let mut w = FixedWriter {
        buf: &mut buf,
        len: 0,
    };
    // Cannot fail: the longest time (year -292277) is 36 bytes.
    let _ = write_micros(&mut w, micros, eve);
    let len = w.len;
    buf[..len].iter().map(|&c| char::from(c)).collect()
}

/// The decimal digits of 0-99 as pairs (`n * 2` is where `n` starts): timestamps and the
/// numbers of an event are written two digits per lookup, without a division by 10 per digit.
pub(crate) const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Unix microseconds as EVE (`eve`: `2026-03-02T09:14:07.118042+0000`, 31 bytes) or RFC 3339
/// with milliseconds (`2026-03-02T09:14:07.118Z`, the first 24 bytes), for years 0-9999;
/// `None` outside them.
///
/// Fast path (bench/README.md): every flow record carries three timestamps, and the `format!`
/// machinery cost about 6% of the agent's CPU in the offline benchmark. Same output, written
/// digit by digit into a fixed buffer.
fn micros_bytes(micros: i64, eve: bool) -> Option<[u8; 31]> {
    let mut b = [0u8; 31];
    micros_into(&mut b, micros, eve, &mut None).then_some(b)
}

/// [`micros_bytes`] written straight into `b` (false, `b` untouched, outside the years it
/// covers). `date` carries the (days since the epoch, civil date) of the last call: a second
/// time on the same day reuses it instead of computing the date again.
pub(crate) fn micros_into(
    b: &mut [u8; 31],
    micros: i64,
    eve: bool,
    date: &mut Option<(i64, (i32, u8, u8))>,
) -> bool {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = match *date {
        Some((on, ymd)) if on == days => ymd,
        _ => {
            let ymd = crate::time::civil_from_days(days);
            *date = Some((days, ymd));
            ymd
        }
    };
    if !(0..=9999).contains(&y) {
        return false;
    }
    *b = *b"0000-00-00T00:00:00.000000+0000";
    // Two digits per table lookup: no division by 10 per digit.
    let mut pair = |at: usize, v: u32| {
        let i = (v % 100) as usize * 2;
        b[at] = DIGIT_PAIRS[i];
        b[at + 1] = DIGIT_PAIRS[i + 1];
    };
    let (y, sod, frac) = (y as u32, sod as u32, frac as u32);
    pair(0, y / 100);
    pair(2, y);
    pair(5, u32::from(m));
    pair(8, u32::from(d));
    pair(11, sod / 3600);
    pair(14, (sod / 60) % 60);
    pair(17, sod % 60);
    if eve {
        pair(20, frac / 10_000);
        pair(22, frac / 100);
        pair(24, frac);
    } else {
        let ms = frac / 1000;
        pair(21, ms);
        b[20] = b'0' + (ms / 100) as u8;
        b[23] = b'Z';
    }
    true
}

/// Write Unix microseconds as EVE (`eve`) or RFC 3339 with milliseconds.
fn write_micros(out: &mut impl std::fmt::Write, micros: i64, eve: bool) -> std::fmt::Result {
    if let Some(b) = micros_bytes(micros, eve) {
        let text = if eve { &b[..] } else { &b[..24] };
        return out.write_str(std::str::from_utf8(text).map_err(|_| std::fmt::Error)?);
    }
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::time::civil_from_days(days);
    let (h, mi, se) = (sod / 3600, (sod / 60) % 60, sod % 60);
    if eve {
        write!(
            out,
            "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{frac:06}+0000"
        )
    } else {
        write!(
            out,
            "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{:03}Z",
            frac / 1000
        )
    }
}

/// Parse an RFC 3339 time (`2026-03-02T09:14:07.118Z`, or with a `+08:00` offset) or an EVE
/// time (`2026-03-02T09:14:07.118000+0000`) to Unix microseconds. The inverse of
/// [`format_timestamp_micros`] and [`format_eve_timestamp`]; `None` for anything else.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(13) != Some(&b':') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(16) != Some(&b':') {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = u8::try_from(num(5..7)?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    let date = crate::time::Date::new(year, month, day)?;
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = 0;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if digits < 6 {
                micros = micros * 10 + i64::from(d - b'0');
                digits += 1;
            }
            i += 1;
        }
        while digits < 6 {
            micros *= 10;
            digits += 1;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-'))
            if (i + 6 == b.len() && b.get(i + 3) == Some(&b':')) || i + 5 == b.len() =>
        {
            let minutes = if i + 5 == b.len() {
                i + 3..i + 5
            } else {
                i + 4..i + 6
            };
            let o = num(i + 1..i + 3)? * 3600 + num(minutes)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = date.days_since_epoch() * 86_400 + hh * 3600 + mm * 60 + ss - offset;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp_micros(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp_micros(1_772_442_847_118_000),
            "2026-03-02T09:14:07.118Z"
        );
        // The digit-by-digit fast path agrees with `format!` (year 0..=9999), and years
        // outside that range still format.
        for micros in [
            -1_i64,
            86_399_999_999,
            951_782_400_000_000,
            4_102_444_799_999_999,
            253_402_300_799_999_999,
        ] {
            let secs = micros.div_euclid(1_000_000);
            let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            let want = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                sod / 3600,
                (sod / 60) % 60,
                sod % 60,
                micros.rem_euclid(1_000_000) / 1000
            );
            assert_eq!(format_timestamp_micros(micros), want, "{micros}");
        }
        assert_eq!(format_timestamp_micros(-1), "1969-12-31T23:59:59.999Z");
        assert!(format_timestamp_micros(-100_000_000_000_000_000).starts_with('-'));
    }

    #[test]
    fn eve_timestamp_format_and_parse() {
        let t = 1_772_442_847_118_042;
        assert_eq!(format_eve_timestamp(t), "2026-03-02T09:14:07.118042+0000");
        assert_eq!(parse_timestamp_micros(&format_eve_timestamp(t)), Some(t));
        assert_eq!(
            parse_timestamp_micros("2026-03-02T17:14:07.118042+0800"),
            Some(t)
        );
        assert_eq!(format_eve_timestamp(-1), "1969-12-31T23:59:59.999999+0000");
        assert!(format_eve_timestamp(253_402_300_800_000_000).ends_with(".000000+0000"));
        assert_eq!(parse_timestamp_micros("2026-03-02T09:14:07.118+000"), None);
    }

    #[test]
    fn timestamp_parse() {
        let t = 1_772_442_847_118_000;
        assert_eq!(parse_timestamp_micros("2026-03-02T09:14:07.118Z"), Some(t));
        assert_eq!(parse_timestamp_micros(&format_timestamp_micros(t)), Some(t));
        assert_eq!(
            parse_timestamp_micros("2026-03-02T17:14:07.118+08:00"),
            Some(t)
        );
        assert_eq!(parse_timestamp_micros("2026-02-30T09:14:07Z"), None);
        assert_eq!(parse_timestamp_micros("2026-03-02T09:14:07.Z"), None);
        assert_eq!(parse_timestamp_micros("2026-03-02T09:14:07.118"), None);
        assert_eq!(parse_timestamp_micros("yesterday"), None);
    }

    #[test]
    fn event_type_spelling_is_the_json_one() {
        for t in [
            EventType::Flow,
            EventType::Alert,
            EventType::Stats,
            EventType::Sketch,
        ] {
            assert_eq!(serde_json::to_value(t).ok(), Some(t.as_str().into()));
        }
    }

    #[test]
    fn design_md_example_alert_parses() {
        let line = r#"{"timestamp":"2026-03-02T09:14:07.118Z","event_type":"alert","gateway":"gw-bj-01","flow_id":4822,"alert":{"kind":"unfiled_export","severity":"high","scenario":null,"enterprise":null,"summary":"x"}}"#;
        let e: Event = serde_json::from_str(line).expect("parses");
        assert_eq!(
            e.alert.as_ref().map(|a| a.kind),
            Some(AlertKind::UnfiledExport)
        );
        let back = serde_json::to_string(&e).expect("serialises");
        assert!(back.contains(r#""scenario":null"#), "{back}");
    }
}
