//! The JSON form of an [`Event`]: Suricata's EVE layout, with everything crossline adds under
//! one top-level `crossline` object (`docs/events.md` maps every field).
//!
//! Writing borrows from the [`Event`] (no copy of its strings): the EVE names carry EVE's
//! types and meanings (`alert.severity` an integer, `flow.reason` one of EVE's reasons,
//! `quic.version` EVE's hex string, ...), and the `crossline` object carries crossline's own
//! facts, among them the exact values the EVE names only approximate (the named severity, the
//! crossline reason a flow record was written).
//!
//! Reading takes both layouts: the EVE layout, and the layout agents wrote before it (all
//! fields at the top level, `alert.severity` a name), so a collector upgraded before its agents
//! keeps taking their batches (and their spools). [`Event::from_json`] says which layout a line
//! was in.

use super::view::{AlertRef, EventRef, FlowRecordRef};
use super::{
    Alert, Direction, Event, EventType, FlowRecord, HttpMeta, Judged, Severity, Sketch, Stats,
    TlsMeta, Verdict,
};
use serde::de::{Deserializer, Error as _, IgnoredAny};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The layout a JSON line was read in ([`Event::from_json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Suricata's EVE layout with a `crossline` object (what agents write now).
    Eve,
    /// The layout before it: crossline's fields at the top level (agents before the EVE layout).
    Legacy,
}

impl Event {
    /// Parse one JSON line in either layout and say which it was.
    pub fn from_json(line: &str) -> Result<(Event, Layout), serde_json::Error> {
        if has_crossline_key(line) {
            let wire: In = serde_json::from_str(line)?;
            wire.into_event()
                .map(|e| (e, Layout::Eve))
                .map_err(serde_json::Error::custom)
        } else {
            let mut de = serde_json::Deserializer::from_str(line);
            let e = Legacy::deserialize(&mut de)?;
            de.end()?;
            Ok((e, Layout::Legacy))
        }
    }
}

/// Whether the text has a `"crossline"` key. Inside a JSON string a quote is always escaped,
/// so an unescaped `"crossline"` followed by `:` can only be a key.
fn has_crossline_key(text: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find("\"crossline\"") {
        let after = &rest[at + "\"crossline\"".len()..];
        if after.trim_start().starts_with(':') {
            return true;
        }
        rest = after;
    }
    false
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Out::of(&EventRef::of(self)).serialize(s)
    }
}

impl Serialize for EventRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Out::of(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let eve = value
            .as_object()
            .is_some_and(|o| o.contains_key("crossline"));
        if eve {
            let wire = In::deserialize(value).map_err(D::Error::custom)?;
            wire.into_event().map_err(D::Error::custom)
        } else {
            Legacy::deserialize(value).map_err(D::Error::custom)
        }
    }
}

// --- writing ------------------------------------------------------------------------------

#[derive(Serialize)]
struct Out<'a> {
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_id: Option<u64>,
    event_type: EventType,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<&'a [u16]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quic: Option<QuicOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<&'a HttpMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<FlowOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<AlertOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsOut>,
    crossline: CrosslineOut<'a>,
}

impl<'a> Out<'a> {
    fn of(e: &EventRef<'a>) -> Out<'a> {
        Out {
            timestamp: e.timestamp,
            flow_id: e.flow_id,
            event_type: e.event_type,
            host: e.gateway,
            vlan: e.vlan,
            src_ip: e.src_ip,
            src_port: e.src_port,
            dest_ip: e.dest_ip,
            dest_port: e.dest_port,
            proto: e.proto,
            icmp_type: e.icmp_type,
            icmp_code: e.icmp_code,
            response_icmp_type: e.response_icmp_type,
            response_icmp_code: e.response_icmp_code,
            community_id: e.community_id,
            app_proto: e.app_proto,
            tls: e.tls.map(|t| TlsOut {
                sni: t.sni.as_deref(),
                ja4: t.ja4.as_deref(),
                client_alpns: &t.alpn,
            }),
            quic: e.quic.map(|q| QuicOut {
                version: q.version.map(QuicVersion),
                sni: q.sni.as_deref(),
                ja4: q.ja4.as_deref(),
            }),
            http: e.http,
            flow: e.flow.as_ref().map(FlowOut::of),
            alert: e.alert.as_ref().map(AlertOut::of),
            stats: e.stats.map(StatsOut::of),
            crossline: CrosslineOut::of(e),
        }
    }
}

#[derive(Serialize)]
struct TlsOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ja4: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    client_alpns: &'a [String],
}

#[derive(Serialize)]
struct QuicOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<QuicVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ja4: Option<&'a str>,
}

/// A QUIC version as EVE spells it (`super::view::quic_version_text`).
struct QuicVersion(u32);

impl Serialize for QuicVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::view::quic_version_text(self.0, &mut [0; 8]))
    }
}

/// The inverse of [`QuicVersion`]'s spelling.
fn parse_quic_version(text: &str) -> Result<u32, String> {
    let b = text.as_bytes();
    if b.len() == 4 && b[0] == b'Q' && b[1..].iter().all(u8::is_ascii_digit) {
        return Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    }
    u32::from_str_radix(text, 16).map_err(|_| {
        format!("quic.version {text:?}: expected hex digits (`1`, `6b3343cf`) or a Google QUIC tag (`Q046`)")
    })
}

#[derive(Serialize)]
struct FlowOut<'a> {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: &'a str,
    end: &'a str,
    age: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    reason: &'static str,
    #[serde(skip_serializing_if = "is_false")]
    alerted: bool,
}

impl<'a> FlowOut<'a> {
    fn of(f: &FlowRecordRef<'a>) -> FlowOut<'a> {
        FlowOut {
            pkts_toserver: f.pkts_toserver,
            pkts_toclient: f.pkts_toclient,
            bytes_toserver: f.bytes_toserver,
            bytes_toclient: f.bytes_toclient,
            start: f.start,
            end: f.end,
            age: f.age,
            state: f.state,
            reason: eve_flow_reason(f.reason),
            alerted: f.alerted,
        }
    }
}

/// EVE's `flow.reason` for crossline's reason: EVE writes `timeout` for every flow its flow
/// manager ends (a closed TCP flow too, once its closed timeout passes), `forced` for one
/// ended early (crossline: evicted from a full table) and `shutdown` at the end of the run.
pub fn eve_flow_reason(crossline: &str) -> &'static str {
    match crossline {
        "evicted" => "forced",
        "shutdown" => "shutdown",
        _ => "timeout",
    }
}

/// EVE's `alert` object, derived from crossline's alert.
#[derive(Serialize)]
struct AlertOut {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: &'static str,
    category: &'static str,
    severity: u8,
}

impl AlertOut {
    fn of(a: &AlertRef<'_>) -> AlertOut {
        AlertOut {
            action: "allowed",
            gid: 1,
            signature_id: a.kind.signature_id(),
            rev: 1,
            signature: a.kind.signature(),
            category: a.kind.category(),
            severity: a.severity.eve(),
        }
    }
}

/// EVE's `stats` object: the counters that mean what EVE's mean.
#[derive(Serialize)]
pub(super) struct StatsOut {
    decoder: DecoderOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture: Option<CaptureOut>,
    flow: FlowStatsOut,
}

#[derive(Serialize)]
struct DecoderOut {
    pkts: u64,
    bytes: u64,
    invalid: u64,
}

#[derive(Serialize)]
struct CaptureOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_drops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_ifdrops: Option<u64>,
}

#[derive(Serialize)]
struct FlowStatsOut {
    total: u64,
}

impl StatsOut {
    pub(super) fn of(s: &Stats) -> StatsOut {
        let kernel_drops = s.drops.get("kernel").copied();
        let kernel_ifdrops = s.drops.get("interface").copied();
        StatsOut {
            decoder: DecoderOut {
                pkts: s.packets,
                bytes: s.bytes,
                invalid: s.decode_errors.values().sum(),
            },
            capture: (kernel_drops.is_some() || kernel_ifdrops.is_some()).then_some(CaptureOut {
                kernel_drops,
                kernel_ifdrops,
            }),
            flow: FlowStatsOut { total: s.flows },
        }
    }
}

#[derive(Serialize)]
struct CrosslineOut<'a> {
    gateway: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<VerdictOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<CrosslineFlowOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<CrosslineTlsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quic: Option<CrosslineTlsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<AlertRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    judged: Option<Judged>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<&'a Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sketch: Option<&'a Sketch>,
}

impl<'a> CrosslineOut<'a> {
    fn of(e: &EventRef<'a>) -> CrosslineOut<'a> {
        CrosslineOut {
            gateway: e.gateway,
            direction: e.direction,
            export_bytes: e.export_bytes,
            verdict: e.verdict.map(|v| VerdictOut {
                status: v.status,
                scenario: v.scenario,
                enterprise: v.enterprise,
                name_source: v.name_source,
                ech: v.ech,
                exclude: v.exclude,
            }),
            dns_name: e.dns_name,
            flow: e.flow.as_ref().map(|f| CrosslineFlowOut {
                reason: f.reason,
                midstream: f.midstream,
            }),
            // TLS: the ALPN list is EVE's `tls.client_alpns`; QUIC has no ALPN in EVE.
            tls: e.tls.filter(|t| t.ech).map(|_| CrosslineTlsOut {
                alpn: &[],
                ech: true,
            }),
            quic: e
                .quic
                .filter(|q| q.ech || !q.alpn.is_empty())
                .map(|q| CrosslineTlsOut {
                    alpn: &q.alpn,
                    ech: q.ech,
                }),
            alert: e.alert,
            judged: e.judged,
            stats: e.stats,
            sketch: e.sketch,
        }
    }
}

/// [`Verdict`] as written (the same fields, borrowed).
#[derive(Serialize)]
struct VerdictOut<'a> {
    status: super::VerdictStatus,
    scenario: Option<&'a str>,
    enterprise: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_source: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    ech: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    exclude: Option<&'a str>,
}

/// `crossline.flow` as written.
#[derive(Serialize)]
struct CrosslineFlowOut<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    midstream: bool,
}

/// `crossline.tls` / `crossline.quic` as written.
#[derive(Serialize)]
struct CrosslineTlsOut<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    alpn: &'a [String],
    #[serde(skip_serializing_if = "is_false")]
    ech: bool,
}

/// `crossline.flow`: crossline's own reason for the record and whether it began mid-stream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrosslineFlow {
    /// `fin`, `rst`, `timeout`, `active_timeout`, `evicted`, `shutdown`.
    reason: String,
    #[serde(default, skip_serializing_if = "is_false")]
    midstream: bool,
}

/// `crossline.tls` / `crossline.quic`: what the ClientHello offered beyond EVE's fields.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CrosslineTls {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alpn: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    ech: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// --- reading the EVE layout ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct In {
    timestamp: String,
    #[serde(default)]
    flow_id: Option<u64>,
    event_type: EventType,
    host: String,
    #[serde(default)]
    vlan: Option<Vec<u16>>,
    #[serde(default)]
    src_ip: Option<String>,
    #[serde(default)]
    src_port: Option<u16>,
    #[serde(default)]
    dest_ip: Option<String>,
    #[serde(default)]
    dest_port: Option<u16>,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    icmp_type: Option<u8>,
    #[serde(default)]
    icmp_code: Option<u8>,
    #[serde(default)]
    response_icmp_type: Option<u8>,
    #[serde(default)]
    response_icmp_code: Option<u8>,
    #[serde(default)]
    community_id: Option<String>,
    #[serde(default)]
    app_proto: Option<String>,
    #[serde(default)]
    tls: Option<TlsIn>,
    #[serde(default)]
    quic: Option<QuicIn>,
    #[serde(default)]
    http: Option<HttpMeta>,
    #[serde(default)]
    flow: Option<FlowIn>,
    /// Derived from `crossline.alert`, which is read instead.
    #[serde(default, rename = "alert")]
    _alert: Option<IgnoredAny>,
    /// Derived from `crossline.stats`, which is read instead.
    #[serde(default, rename = "stats")]
    _stats: Option<IgnoredAny>,
    crossline: CrosslineIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsIn {
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    ja4: Option<String>,
    #[serde(default)]
    client_alpns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuicIn {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    ja4: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowIn {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: String,
    end: String,
    #[serde(default)]
    age: u64,
    #[serde(default)]
    state: Option<String>,
    reason: String,
    #[serde(default)]
    alerted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrosslineIn {
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    export_bytes: Option<u64>,
    #[serde(default)]
    verdict: Option<Verdict>,
    #[serde(default)]
    dns_name: Option<String>,
    #[serde(default)]
    flow: Option<CrosslineFlow>,
    #[serde(default)]
    tls: Option<CrosslineTls>,
    #[serde(default)]
    quic: Option<CrosslineTls>,
    #[serde(default)]
    alert: Option<Alert>,
    #[serde(default)]
    judged: Option<Judged>,
    #[serde(default)]
    stats: Option<Stats>,
    #[serde(default)]
    sketch: Option<Sketch>,
}

impl In {
    fn into_event(self) -> Result<Event, String> {
        let kind = self.event_type.as_str();
        let x = self.crossline;
        let missing = |what: &str| {
            format!(
                "a {kind} event needs `crossline.{what}` (crossline's {what}; EVE's `{what}` object is derived from it)"
            )
        };
        if self.event_type == EventType::Alert && x.alert.is_none() {
            return Err(missing("alert"));
        }
        if self.event_type == EventType::Stats && x.stats.is_none() {
            return Err(missing("stats"));
        }
        if self.event_type == EventType::Sketch && x.sketch.is_none() {
            return Err(missing("sketch"));
        }
        let quic = match self.quic {
            Some(q) => {
                let extra = x.quic.unwrap_or_default();
                Some(TlsMeta {
                    sni: q.sni,
                    alpn: extra.alpn,
                    ech: extra.ech,
                    ja4: q.ja4,
                    version: q.version.as_deref().map(parse_quic_version).transpose()?,
                })
            }
            None => None,
        };
        let tls = self.tls.map(|t| TlsMeta {
            sni: t.sni,
            alpn: t.client_alpns,
            ech: x.tls.as_ref().is_some_and(|c| c.ech),
            ja4: t.ja4,
            version: None,
        });
        let flow = self.flow.map(|f| {
            let own = x.flow.as_ref();
            FlowRecord {
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                start: f.start,
                end: f.end,
                age: f.age,
                state: f.state,
                reason: own.map_or(f.reason, |c| c.reason.clone()),
                midstream: own.is_some_and(|c| c.midstream),
                alerted: f.alerted,
            }
        });
        Ok(Event {
            timestamp: self.timestamp,
            event_type: self.event_type,
            gateway: x.gateway.unwrap_or(self.host),
            flow_id: self.flow_id,
            proto: self.proto,
            vlan: self.vlan,
            src_ip: self.src_ip,
            src_port: self.src_port,
            dest_ip: self.dest_ip,
            dest_port: self.dest_port,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            response_icmp_type: self.response_icmp_type,
            response_icmp_code: self.response_icmp_code,
            community_id: self.community_id,
            app_proto: self.app_proto,
            tls,
            quic,
            http: self.http,
            dns_name: x.dns_name,
            flow,
            direction: x.direction,
            export_bytes: x.export_bytes,
            verdict: x.verdict,
            alert: x.alert,
            stats: x.stats,
            sketch: x.sketch,
            judged: x.judged,
        })
    }
}

// --- reading the layout before EVE's --------------------------------------------------------

/// The layout agents wrote before the EVE layout: the same fields as [`Event`], all at the top
/// level, `alert.severity` a name. Read only.
#[derive(Deserialize)]
#[serde(remote = "Event", deny_unknown_fields)]
#[allow(dead_code)] // only its generated `deserialize` is used
struct Legacy {
    timestamp: String,
    event_type: EventType,
    gateway: String,
    #[serde(default)]
    flow_id: Option<u64>,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    vlan: Option<Vec<u16>>,
    #[serde(default)]
    src_ip: Option<String>,
    #[serde(default)]
    src_port: Option<u16>,
    #[serde(default)]
    dest_ip: Option<String>,
    #[serde(default)]
    dest_port: Option<u16>,
    #[serde(default)]
    icmp_type: Option<u8>,
    #[serde(default)]
    icmp_code: Option<u8>,
    #[serde(default)]
    response_icmp_type: Option<u8>,
    #[serde(default)]
    response_icmp_code: Option<u8>,
    #[serde(default)]
    community_id: Option<String>,
    #[serde(default)]
    app_proto: Option<String>,
    #[serde(default)]
    tls: Option<TlsMeta>,
    #[serde(default)]
    quic: Option<TlsMeta>,
    #[serde(default)]
    http: Option<HttpMeta>,
    #[serde(default)]
    dns_name: Option<String>,
    #[serde(default)]
    flow: Option<FlowRecord>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    export_bytes: Option<u64>,
    #[serde(default)]
    verdict: Option<Verdict>,
    #[serde(default)]
    alert: Option<Alert>,
    #[serde(default)]
    stats: Option<Stats>,
    #[serde(default)]
    sketch: Option<Sketch>,
    #[serde(default)]
    judged: Option<Judged>,
}

impl Severity {
    /// EVE's integer severity (1 is the highest): `crit` and `high` 1, `med` 2, `low` 3,
    /// `info` 4, as Suricata's classifications use 1 to 4. The named severity stays in
    /// `crossline.alert.severity`.
    pub fn eve(self) -> u8 {
        match self {
            Severity::Crit | Severity::High => 1,
            Severity::Med => 2,
            Severity::Low => 3,
            Severity::Info => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AlertKind;

    fn alert_event() -> Event {
        let mut e = Event::new(
            EventType::Alert,
            "2026-03-02T09:14:07.118000+0000".into(),
            "gw-bj-01".into(),
        );
        e.flow_id = Some(4822);
        e.src_ip = Some("10.1.2.3".into());
        e.quic = Some(TlsMeta {
            sni: Some("api.partner.example".into()),
            alpn: vec!["h3".into()],
            version: Some(1),
            ..TlsMeta::default()
        });
        e.alert = Some(Alert {
            enterprise: Some("ent-a".into()),
            bytes: 10,
            ..Alert::new(AlertKind::UnfiledExport, "x".into())
        });
        e
    }

    #[test]
    fn eve_layout_round_trips() {
        let e = alert_event();
        let text = serde_json::to_string(&e).expect("serialises");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["host"], "gw-bj-01");
        assert_eq!(v["alert"]["severity"], 1);
        assert_eq!(v["alert"]["signature_id"], 9_900_001);
        assert_eq!(v["quic"]["version"], "1");
        assert_eq!(v["crossline"]["alert"]["severity"], "high");
        assert_eq!(v["crossline"]["quic"]["alpn"][0], "h3");
        assert!(v.get("gateway").is_none() && v.get("verdict").is_none());
        let (back, layout) = Event::from_json(&text).expect("reads back");
        assert_eq!(layout, Layout::Eve);
        assert_eq!(back, e);
        let via_serde: Event = serde_json::from_str(&text).expect("serde reads back");
        assert_eq!(via_serde, e);
    }

    #[test]
    fn legacy_layout_is_read_and_named() {
        let line = r#"{"timestamp":"2026-03-02T09:14:07.118Z","event_type":"alert","gateway":"gw-bj-01","flow_id":4822,"alert":{"kind":"unfiled_export","severity":"high","scenario":null,"enterprise":null,"summary":"x"}}"#;
        let (e, layout) = Event::from_json(line).expect("legacy parses");
        assert_eq!(layout, Layout::Legacy);
        assert_eq!(e.gateway, "gw-bj-01");
        assert_eq!(
            e.alert.as_ref().map(|a| a.kind),
            Some(AlertKind::UnfiledExport)
        );
        // A summary quoting the key does not make a legacy line look like the EVE layout.
        let quoted = line.replace(r#""summary":"x""#, r#""summary":"\"crossline\": x""#);
        assert_eq!(
            Event::from_json(&quoted).map(|(_, l)| l).ok(),
            Some(Layout::Legacy)
        );
    }

    #[test]
    fn alert_without_crossline_alert_is_refused_with_reason() {
        let line = r#"{"timestamp":"2026-03-02T09:14:07.118000+0000","event_type":"alert","host":"gw","alert":{"severity":1},"crossline":{}}"#;
        let err = Event::from_json(line).expect_err("refused").to_string();
        assert!(err.contains("crossline.alert"), "{err}");
    }

    #[test]
    fn quic_versions_as_eve_spells_them() {
        for (v, text) in [
            (1u32, "1"),
            (0x6b33_43cf, "6b3343cf"),
            (0xff00_001d, "ff00001d"),
            (u32::from_be_bytes(*b"Q046"), "Q046"),
        ] {
            let out = serde_json::to_value(QuicVersion(v)).expect("serialises");
            assert_eq!(out, text);
            assert_eq!(parse_quic_version(text), Ok(v));
        }
        assert!(parse_quic_version("v1").is_err());
    }

    #[test]
    fn flow_reasons_map_to_eve() {
        assert_eq!(eve_flow_reason("fin"), "timeout");
        assert_eq!(eve_flow_reason("rst"), "timeout");
        assert_eq!(eve_flow_reason("active_timeout"), "timeout");
        assert_eq!(eve_flow_reason("evicted"), "forced");
        assert_eq!(eve_flow_reason("shutdown"), "shutdown");
    }
}
