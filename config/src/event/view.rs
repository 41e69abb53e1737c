//! An [`Event`] as borrowed parts ([`EventRef`]), and its JSON line written directly.
//!
//! The agent writes a flow record for every flow (hundreds of thousands a second on a busy
//! line). Building an owned [`Event`] for each (fifteen `String`s, then freed again) and walking
//! it through serde cost more than the rest of the flow's analysis, so the agent builds an
//! [`EventRef`] that borrows everything from the flow's entry and from fixed buffers
//! ([`EveTime`]), and [`EventRef::write_json`] writes the line straight into the output buffer.
//!
//! The serde types stay the contract: `Serialize for Event` is `Serialize for EventRef` of the
//! event, and [`EventRef::write_json`] writes byte for byte what `serde_json` writes for it (the
//! tests compare them on every event of the test corpus and on generated ones, strings with
//! every kind of character included). [`EventRef::to_event`] gives the owned event back.

use super::{
    eve_flow_reason, Alert, AlertKind, Direction, Event, EventType, FlowRecord, HttpMeta, Judged,
    Severity, Sketch, Stats, TlsMeta, Verdict, VerdictStatus,
};

/// A member key as [`Obj`] writes it: `,"name":` (the comma is left out before the first).
macro_rules! k {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// An event whose strings and nested records are borrowed: the same fields as [`Event`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct EventRef<'a> {
    pub timestamp: &'a str,
    pub event_type: EventType,
    pub gateway: &'a str,
    pub flow_id: Option<u64>,
    pub proto: Option<&'a str>,
    pub vlan: Option<&'a [u16]>,
    pub src_ip: Option<&'a str>,
    pub src_port: Option<u16>,
    pub dest_ip: Option<&'a str>,
    pub dest_port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub response_icmp_type: Option<u8>,
    pub response_icmp_code: Option<u8>,
    pub community_id: Option<&'a str>,
    pub app_proto: Option<&'a str>,
    pub tls: Option<&'a TlsMeta>,
    pub quic: Option<&'a TlsMeta>,
    pub http: Option<&'a HttpMeta>,
    pub dns_name: Option<&'a str>,
    pub flow: Option<FlowRecordRef<'a>>,
    pub direction: Option<Direction>,
    pub export_bytes: Option<u64>,
    pub verdict: Option<VerdictRef<'a>>,
    pub alert: Option<AlertRef<'a>>,
    pub stats: Option<&'a Stats>,
    pub sketch: Option<&'a Sketch>,
    pub judged: Option<Judged>,
}

/// [`FlowRecord`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FlowRecordRef<'a> {
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: &'a str,
    pub end: &'a str,
    pub age: u64,
    pub state: Option<&'a str>,
    pub reason: &'a str,
    pub midstream: bool,
    pub alerted: bool,
}

/// [`Verdict`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct VerdictRef<'a> {
    pub status: VerdictStatus,
    pub scenario: Option<&'a str>,
    pub enterprise: Option<&'a str>,
    pub name_source: Option<&'a str>,
    pub ech: bool,
    pub exclude: Option<&'a str>,
}

/// [`Alert`], borrowed: what a worker writes an alert line from without building an owned
/// event of strings. Serialised exactly as [`Alert`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)]
pub struct AlertRef<'a> {
    pub kind: AlertKind,
    pub severity: Severity,
    pub scenario: Option<&'a str>,
    pub enterprise: Option<&'a str>,
    pub summary: &'a str,
    pub rule: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'a str>,
    pub count: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub evidence: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persons: Option<u64>,
    #[serde(skip_serializing_if = "super::is_false")]
    pub followup: bool,
    #[serde(skip_serializing_if = "super::is_false")]
    pub green_channel: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub gateways: &'a [String],
}

impl<'a> AlertRef<'a> {
    /// Borrow every field of `a`.
    pub fn of(a: &'a Alert) -> Self {
        AlertRef {
            kind: a.kind,
            severity: a.severity,
            scenario: a.scenario.as_deref(),
            enterprise: a.enterprise.as_deref(),
            summary: &a.summary,
            rule: &a.rule,
            recipient: a.recipient.as_deref(),
            service: a.service.as_deref(),
            count: a.count,
            bytes: a.bytes,
            evidence: &a.evidence,
            persons: a.persons,
            followup: a.followup,
            green_channel: a.green_channel,
            days_left: a.days_left,
            valid_from: a.valid_from.as_deref(),
            valid_until: a.valid_until.as_deref(),
            scope: a.scope.as_deref(),
            gateways: &a.gateways,
        }
    }

    /// The owned alert (`AlertRef::of(&a).to_alert() == a`).
    pub fn to_alert(&self) -> Alert {
        let s = |v: Option<&str>| v.map(str::to_string);
        Alert {
            kind: self.kind,
            severity: self.severity,
            scenario: s(self.scenario),
            enterprise: s(self.enterprise),
            summary: self.summary.to_string(),
            rule: self.rule.to_string(),
            recipient: s(self.recipient),
            service: s(self.service),
            count: self.count,
            bytes: self.bytes,
            evidence: self.evidence.to_vec(),
            persons: self.persons,
            followup: self.followup,
            green_channel: self.green_channel,
            days_left: self.days_left,
            valid_from: s(self.valid_from),
            valid_until: s(self.valid_until),
            scope: s(self.scope),
            gateways: self.gateways.to_vec(),
        }
    }
}

impl<'a> EventRef<'a> {
    /// A header-only event (as [`Event::new`]).
    pub fn new(event_type: EventType, timestamp: &'a str, gateway: &'a str) -> Self {
        EventRef {
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

    /// Borrow every field of `e`.
    pub fn of(e: &'a Event) -> Self {
        EventRef {
            timestamp: &e.timestamp,
            event_type: e.event_type,
            gateway: &e.gateway,
            flow_id: e.flow_id,
            proto: e.proto.as_deref(),
            vlan: e.vlan.as_deref(),
            src_ip: e.src_ip.as_deref(),
            src_port: e.src_port,
            dest_ip: e.dest_ip.as_deref(),
            dest_port: e.dest_port,
            icmp_type: e.icmp_type,
            icmp_code: e.icmp_code,
            response_icmp_type: e.response_icmp_type,
            response_icmp_code: e.response_icmp_code,
            community_id: e.community_id.as_deref(),
            app_proto: e.app_proto.as_deref(),
            tls: e.tls.as_ref(),
            quic: e.quic.as_ref(),
            http: e.http.as_ref(),
            dns_name: e.dns_name.as_deref(),
            flow: e.flow.as_ref().map(|f| FlowRecordRef {
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                start: &f.start,
                end: &f.end,
                age: f.age,
                state: f.state.as_deref(),
                reason: &f.reason,
                midstream: f.midstream,
                alerted: f.alerted,
            }),
            direction: e.direction,
            export_bytes: e.export_bytes,
            verdict: e.verdict.as_ref().map(|v| VerdictRef {
                status: v.status,
                scenario: v.scenario.as_deref(),
                enterprise: v.enterprise.as_deref(),
                name_source: v.name_source.as_deref(),
                ech: v.ech,
                exclude: v.exclude.as_deref(),
            }),
            alert: e.alert.as_ref().map(AlertRef::of),
            stats: e.stats.as_ref(),
            sketch: e.sketch.as_ref(),
            judged: e.judged,
        }
    }

    /// The owned event (`EventRef::of(&e).to_event() == e`).
    pub fn to_event(&self) -> Event {
        let s = |v: Option<&str>| v.map(str::to_string);
        Event {
            timestamp: self.timestamp.to_string(),
            event_type: self.event_type,
            gateway: self.gateway.to_string(),
            flow_id: self.flow_id,
            proto: s(self.proto),
            vlan: self.vlan.map(<[u16]>::to_vec),
            src_ip: s(self.src_ip),
            src_port: self.src_port,
            dest_ip: s(self.dest_ip),
            dest_port: self.dest_port,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            response_icmp_type: self.response_icmp_type,
            response_icmp_code: self.response_icmp_code,
            community_id: s(self.community_id),
            app_proto: s(self.app_proto),
            tls: self.tls.cloned(),
            quic: self.quic.cloned(),
            http: self.http.cloned(),
            dns_name: s(self.dns_name),
            flow: self.flow.map(|f| FlowRecord {
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                start: f.start.to_string(),
                end: f.end.to_string(),
                age: f.age,
                state: s(f.state),
                reason: f.reason.to_string(),
                midstream: f.midstream,
                alerted: f.alerted,
            }),
            direction: self.direction,
            export_bytes: self.export_bytes,
            verdict: self.verdict.map(|v| Verdict {
                status: v.status,
                scenario: s(v.scenario),
                enterprise: s(v.enterprise),
                name_source: s(v.name_source),
                ech: v.ech,
                exclude: s(v.exclude),
            }),
            alert: self.alert.map(|a| a.to_alert()),
            stats: self.stats.cloned(),
            sketch: self.sketch.cloned(),
            judged: self.judged,
        }
    }

    /// Append the event's JSON line (without a newline) to `out`: the same bytes as
    /// `serde_json::to_writer(out, self)`. Flow records are written field by field; the nested
    /// objects of the rare kinds (`crossline.stats`, `.sketch`) go through serde.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Obj::open(out);
        o.str(k!("timestamp"), self.timestamp);
        o.opt_u64(k!("flow_id"), self.flow_id);
        o.str(k!("event_type"), self.event_type.as_str());
        o.str(k!("host"), self.gateway);
        if let Some(v) = self.vlan {
            o.key(k!("vlan"));
            o.out.push(b'[');
            for (i, id) in v.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                put_u64(o.out, u64::from(*id));
            }
            o.out.push(b']');
        }
        o.opt_str(k!("src_ip"), self.src_ip);
        o.opt_u64(k!("src_port"), self.src_port.map(u64::from));
        o.opt_str(k!("dest_ip"), self.dest_ip);
        o.opt_u64(k!("dest_port"), self.dest_port.map(u64::from));
        o.opt_str(k!("proto"), self.proto);
        o.opt_u64(k!("icmp_type"), self.icmp_type.map(u64::from));
        o.opt_u64(k!("icmp_code"), self.icmp_code.map(u64::from));
        o.opt_u64(
            k!("response_icmp_type"),
            self.response_icmp_type.map(u64::from),
        );
        o.opt_u64(
            k!("response_icmp_code"),
            self.response_icmp_code.map(u64::from),
        );
        o.opt_str(k!("community_id"), self.community_id);
        o.opt_str(k!("app_proto"), self.app_proto);
        if let Some(t) = self.tls {
            o.key(k!("tls"));
            let mut t_o = Obj::open(o.out);
            t_o.opt_str(k!("sni"), t.sni.as_deref());
            t_o.opt_str(k!("ja4"), t.ja4.as_deref());
            t_o.strs(k!("client_alpns"), &t.alpn);
            t_o.close();
        }
        if let Some(q) = self.quic {
            o.key(k!("quic"));
            let mut q_o = Obj::open(o.out);
            if let Some(v) = q.version {
                q_o.str(k!("version"), quic_version_text(v, &mut [0; 8]));
            }
            q_o.opt_str(k!("sni"), q.sni.as_deref());
            q_o.opt_str(k!("ja4"), q.ja4.as_deref());
            q_o.close();
        }
        if let Some(h) = self.http {
            o.key(k!("http"));
            let mut h_o = Obj::open(o.out);
            h_o.opt_str(k!("hostname"), h.hostname.as_deref());
            h_o.opt_str(k!("http_method"), h.http_method.as_deref());
            h_o.close();
        }
        if let Some(f) = &self.flow {
            o.key(k!("flow"));
            let mut f_o = Obj::open(o.out);
            f_o.u64(k!("pkts_toserver"), f.pkts_toserver);
            f_o.u64(k!("pkts_toclient"), f.pkts_toclient);
            f_o.u64(k!("bytes_toserver"), f.bytes_toserver);
            f_o.u64(k!("bytes_toclient"), f.bytes_toclient);
            f_o.str(k!("start"), f.start);
            f_o.str(k!("end"), f.end);
            f_o.u64(k!("age"), f.age);
            f_o.opt_str(k!("state"), f.state);
            f_o.str(k!("reason"), eve_flow_reason(f.reason));
            if f.alerted {
                f_o.raw(k!("alerted"), b"true");
            }
            f_o.close();
        }
        if let Some(a) = self.alert {
            o.key(k!("alert"));
            let mut a_o = Obj::open(o.out);
            a_o.str(k!("action"), "allowed");
            a_o.u64(k!("gid"), 1);
            a_o.u64(k!("signature_id"), u64::from(a.kind.signature_id()));
            a_o.u64(k!("rev"), 1);
            a_o.str(k!("signature"), a.kind.signature());
            a_o.str(k!("category"), a.kind.category());
            a_o.u64(k!("severity"), u64::from(a.severity.eve()));
            a_o.close();
        }
        if let Some(s) = self.stats {
            o.key(k!("stats"));
            serde_into(o.out, &super::wire::StatsOut::of(s));
        }
        o.key(k!("crossline"));
        self.write_crossline(o.out);
        o.close();
    }

    fn write_crossline(&self, out: &mut Vec<u8>) {
        let mut o = Obj::open(out);
        o.str(k!("gateway"), self.gateway);
        if let Some(d) = self.direction {
            o.str(k!("direction"), d.as_str());
        }
        o.opt_u64(k!("export_bytes"), self.export_bytes);
        if let Some(v) = &self.verdict {
            o.key(k!("verdict"));
            let mut v_o = Obj::open(o.out);
            v_o.str(k!("status"), v.status.as_str());
            v_o.str_or_null(k!("scenario"), v.scenario);
            v_o.str_or_null(k!("enterprise"), v.enterprise);
            v_o.opt_str(k!("name_source"), v.name_source);
            if v.ech {
                v_o.raw(k!("ech"), b"true");
            }
            v_o.opt_str(k!("exclude"), v.exclude);
            v_o.close();
        }
        o.opt_str(k!("dns_name"), self.dns_name);
        if let Some(f) = &self.flow {
            o.key(k!("flow"));
            let mut f_o = Obj::open(o.out);
            f_o.str(k!("reason"), f.reason);
            if f.midstream {
                f_o.raw(k!("midstream"), b"true");
            }
            f_o.close();
        }
        // TLS: the ALPN list is EVE's `tls.client_alpns`; QUIC has no ALPN in EVE.
        if self.tls.is_some_and(|t| t.ech) {
            o.key(k!("tls"));
            o.out.extend_from_slice(b"{\"ech\":true}");
        }
        if let Some(q) = self.quic.filter(|q| q.ech || !q.alpn.is_empty()) {
            o.key(k!("quic"));
            let mut q_o = Obj::open(o.out);
            q_o.strs(k!("alpn"), &q.alpn);
            if q.ech {
                q_o.raw(k!("ech"), b"true");
            }
            q_o.close();
        }
        if let Some(a) = self.alert {
            o.key(k!("alert"));
            write_alert(o.out, &a);
        }
        if let Some(j) = self.judged {
            o.str(k!("judged"), j.as_str());
        }
        if let Some(s) = self.stats {
            o.key(k!("stats"));
            serde_into(o.out, s);
        }
        if let Some(s) = self.sketch {
            o.key(k!("sketch"));
            serde_into(o.out, s);
        }
        o.close();
    }
}

/// `crossline.alert`: every field of [`Alert`] as serde writes it.
fn write_alert(out: &mut Vec<u8>, a: &AlertRef<'_>) {
    let mut o = Obj::open(out);
    o.str(k!("kind"), a.kind.as_str());
    o.str(k!("severity"), a.severity.as_str());
    o.str_or_null(k!("scenario"), a.scenario);
    o.str_or_null(k!("enterprise"), a.enterprise);
    o.str(k!("summary"), a.summary);
    o.str(k!("rule"), a.rule);
    o.opt_str(k!("recipient"), a.recipient);
    o.opt_str(k!("service"), a.service);
    o.u64(k!("count"), a.count);
    o.u64(k!("bytes"), a.bytes);
    o.strs(k!("evidence"), a.evidence);
    o.opt_u64(k!("persons"), a.persons);
    if a.followup {
        o.raw(k!("followup"), b"true");
    }
    if a.green_channel {
        o.raw(k!("green_channel"), b"true");
    }
    if let Some(d) = a.days_left {
        o.key(k!("days_left"));
        if d < 0 {
            o.out.push(b'-');
        }
        put_u64(o.out, d.unsigned_abs());
    }
    o.opt_str(k!("valid_from"), a.valid_from);
    o.opt_str(k!("valid_until"), a.valid_until);
    o.opt_str(k!("scope"), a.scope);
    o.strs(k!("gateways"), a.gateways);
    o.close();
}

/// A nested value written through serde (rare event kinds). Writing JSON into a `Vec` fails
/// only for values serde cannot represent (a map with non-string keys), which these types
/// do not have; should it ever happen, `null` keeps the line valid JSON.
fn serde_into<T: serde::Serialize>(out: &mut Vec<u8>, v: &T) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

/// A JSON object being written: remembers whether a member was written (for the commas).
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Obj<'o> {
    #[inline(always)]
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, empty: true }
    }

    #[inline(always)]
    fn close(self) {
        self.out.push(b'}');
    }

    /// Start a member: `key` is `,"name":` as [`k!`] spells it (names are ASCII identifiers:
    /// no escaping), written without its comma when it is the first (one copy per key).
    /// Inlined, like the members' methods that call it: the key is then a constant and its copy
    /// a few stores instead of a call to `memcpy` with a length known only at run time.
    #[inline(always)]
    fn key(&mut self, key: &str) {
        let bytes = key.as_bytes();
        let bytes = if self.empty {
            bytes.get(1..).unwrap_or_default()
        } else {
            bytes
        };
        self.empty = false;
        crate::bytes::put(self.out, bytes);
    }

    #[inline(always)]
    fn raw(&mut self, name: &str, value: &[u8]) {
        self.key(name);
        crate::bytes::put(self.out, value);
    }

    #[inline(always)]
    fn str(&mut self, name: &str, value: &str) {
        self.key(name);
        put_str(self.out, value);
    }

    #[inline(always)]
    fn opt_str(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(name, v);
        }
    }

    #[inline(always)]
    fn str_or_null(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(name, v),
            None => self.raw(name, b"null"),
        }
    }

    /// A list of strings, left out when empty.
    fn strs(&mut self, name: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.key(name);
        self.out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            put_str(self.out, v);
        }
        self.out.push(b']');
    }

    #[inline(always)]
    fn u64(&mut self, name: &str, value: u64) {
        self.key(name);
        put_u64(self.out, value);
    }

    #[inline(always)]
    fn opt_u64(&mut self, name: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.u64(name, v);
        }
    }
}

/// A decimal number, as serde_json writes it.
///
/// The digits are written right to left straight into `out`, at their final place: built in a
/// buffer on the stack and then copied, they were read back in 4- to 16-byte loads right after
/// the one- and two-byte stores that wrote them, which the processor cannot forward from its
/// store buffer (a stall of a dozen cycles per number; about a seventh of the time spent
/// writing flow records, bench/README.md).
fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    // Two digits per division.
    use super::DIGIT_PAIRS as PAIRS;
    let len = v.ilog10() as usize + 1;
    let start = out.len();
    // Room for the longest number in one fixed-size store; cut back to `len` below.
    out.extend_from_slice(&[0u8; 20]);
    if let Some(digits) = out.get_mut(start..start + len) {
        let mut i = len;
        while v >= 100 {
            let r = (v % 100) as usize * 2;
            v /= 100;
            i -= 2;
            digits[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
        }
        if v >= 10 {
            let r = v as usize * 2;
            digits[..2].copy_from_slice(&PAIRS[r..r + 2]);
        } else {
            digits[0] = b'0' + v as u8;
        }
    }
    out.truncate(start + len);
}

/// EVE's spelling of a QUIC version, as `quic.version` carries it: Google QUIC's tag (`Q046`),
/// otherwise lower-case hex without a prefix (`1` for QUIC v1, `6b3343cf` for v2, `ff00001d`
/// for draft 29). Written into `buf`.
pub(super) fn quic_version_text(v: u32, buf: &mut [u8; 8]) -> &str {
    let tag = v.to_be_bytes();
    let len = if tag[0] == b'Q' && tag[1..].iter().all(u8::is_ascii_digit) {
        buf[..4].copy_from_slice(&tag);
        4
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (8 - v.leading_zeros() as usize / 4).max(1);
        for (k, i) in (0..digits).rev().enumerate() {
            buf[k] = HEX[((v >> (4 * i)) & 0xf) as usize];
        }
        digits
    };
    std::str::from_utf8(&buf[..len]).unwrap_or("")
}

/// What serde_json writes for each byte of a string: 0 = the byte itself, `u` = `\u00XX`,
/// anything else = a backslash and that character.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes of `x` is a control character, `"` or `\\` (may say yes for a
/// clean word after such a byte, never no for a word that has one).
#[inline(always)]
fn needs_escape(x: u64) -> bool {
    escape_bits(x) != 0
}

/// The high bit of each byte of `x` that is a control character, `"` or `\\` (and perhaps of a
/// clean byte after one: a borrow; never none for a word that has one).
#[inline(always)]
fn escape_bits(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let q = x ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q & HIGH;
    let b = x ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b & HIGH;
    control | quote | backslash
}

/// Whether any byte of `bytes` needs a JSON escape, 8 bytes at a time: the whole words and then
/// the last 8 bytes as one word that overlaps them (or, under 8 bytes, the first and last 4),
/// their flags or-ed together without a branch per word (most strings are 10-40 bytes). A
/// borrow's false flag only ever follows a true one in the same word, so the answer is exact.
#[inline(always)]
fn has_escape(bytes: &[u8]) -> bool {
    if let Some(last) = bytes.last_chunk::<8>() {
        let (words, _) = bytes.as_chunks::<8>();
        let mut bits = escape_bits(u64::from_le_bytes(*last));
        for w in words {
            bits |= escape_bits(u64::from_le_bytes(*w));
        }
        return bits != 0;
    }
    if let (Some(lo), Some(hi)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        let x = u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << 32;
        return needs_escape(x);
    }
    bytes.iter().any(|&b| ESCAPE[usize::from(b)] != 0)
}

/// A JSON string with serde_json's escapes (control characters, `"` and `\`; everything else,
/// non-ASCII included, as it is). Inlined into each member that writes one (16 strings a flow
/// record), with the rare string that needs an escape written by a call.
#[inline(always)]
fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if has_escape(bytes) {
        return put_escaped(out, bytes);
    }
    // Almost every string: one check per 8 bytes, one copy.
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    crate::bytes::put(out, bytes);
    out.push(b'"');
}

/// [`put_str`] of a string with at least one byte to escape. Clean runs are skipped 8 bytes
/// at a time.
#[cold]
#[inline(never)]
fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let stop = (i + 8).min(bytes.len());
        while i < stop {
            let b = bytes[i];
            let esc = ESCAPE[usize::from(b)];
            if esc != 0 {
                out.extend_from_slice(&bytes[start..i]);
                if esc == b'u' {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                } else {
                    out.push(b'\\');
                    out.push(esc);
                }
                start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An EVE timestamp (`2026-03-02T09:14:07.118042+0000`) in a fixed buffer: what
/// [`super::format_eve_timestamp`] returns, without the allocation.
#[derive(Clone, Copy)]
pub struct EveTime {
    buf: [u8; 48],
    len: u8,
}

impl EveTime {
    /// The EVE timestamp of Unix microseconds `micros`.
    pub fn new(micros: i64) -> Self {
        let mut t = EveTime {
            buf: [0; 48],
            len: 0,
        };
        t.len = write_eve(&mut t.buf, micros, &mut None) as u8;
        t
    }

    /// The EVE timestamps of `first` and `last` (a flow's start and end) written one after the
    /// other into `buf`, where they are used (a flow record's joined texts): their lengths, 0
    /// for a time that does not fit. On the same day the date is computed once. Built in an
    /// `EveTime` and copied, the digits were read back right after the byte stores that wrote
    /// them, which the processor cannot forward from its store buffer to a wider load (a
    /// stall per copy, bench/README.md).
    pub fn write_pair(first: i64, last: i64, buf: &mut [u8]) -> (usize, usize) {
        let mut date = None;
        let a = write_eve(buf, first, &mut date);
        let b = buf
            .get_mut(a..)
            .map_or(0, |rest| write_eve(rest, last, &mut date));
        (a, b)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for EveTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The EVE timestamp of `micros` written at the start of `buf` (see
/// [`super::micros_into`] for `date`): its length, 0 when it does not fit (the longest, year
/// -292277, is 36 bytes).
fn write_eve(buf: &mut [u8], micros: i64, date: &mut Option<(i64, (i32, u8, u8))>) -> usize {
    if let Some(b) = buf.first_chunk_mut::<31>() {
        if super::micros_into(b, micros, true, date) {
            return 31;
        }
    }
    let mut w = FixedWriter { buf, len: 0 };
    match super::write_micros(&mut w, micros, true) {
        Ok(()) => w.len,
        Err(_) => 0,
    }
}

/// `fmt::Write` into a fixed buffer (fails when full).
#[derive(Debug)]
pub struct FixedWriter<'b> {
    /// The buffer.
    pub buf: &'b mut [u8],
    /// Bytes written so far.
    pub len: usize,
}

impl std::fmt::Write for FixedWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
