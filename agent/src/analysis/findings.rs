//! What the analysis decides about a flow record or a tick, as typed values: the verdict of the
//! record and the alerts it raises, each with the facts its kind needs. The analysis returns
//! them; the worker writes events from them in one place ([`crate::worker::write_findings`]),
//! so the wire [`crossline_config::event::Event`] is never half-built by the analysis.
//!
//! The verdict refers to the registry by index ([`NameRef`], resolved through
//! [`super::Analysis::name_of`] right after the record): nothing is copied per flow. Alerts are
//! rare and may be held by the alert shaper across a registry reload, so they carry their ids
//! and the facts of their summary as values; the summary sentence is rendered only when the
//! event is written ([`AlertFinding::summary`]).

use crossline_config::event::{AlertKind, Direction, Judged, Severity, VerdictStatus};
use crossline_config::time::Date;
use std::net::IpAddr;
use std::sync::Arc;

/// A registry entry a finding refers to by index (valid until the next call into the analysis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRef {
    /// Index into the registry's scenarios.
    Scenario(u32),
    /// Index into the registry's enterprises.
    Enterprise(u32),
    /// Index of an `[[exclude]]` entry of the agent config.
    Exclude(u32),
}

/// The verdict of one flow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictFinding {
    /// Export, import, internal or external.
    pub direction: Direction,
    /// Bytes sent by the domestic endpoint (absent when the flow is not cross-border).
    pub export_bytes: Option<u64>,
    /// The verdict status.
    pub status: VerdictStatus,
    /// The matched (or most specific) scenario.
    pub scenario: Option<NameRef>,
    /// Its enterprise.
    pub enterprise: Option<NameRef>,
    /// `tls`, `quic`, `http` or `dns` when a name matched.
    pub name_source: Option<&'static str>,
    /// The flow offered ECH.
    pub ech: bool,
    /// The `[[exclude]]` entry that matched (status `excluded`).
    pub exclude: Option<NameRef>,
}

/// What the analysis decided about one flow record (or, for a tick, only `alerts`).
#[derive(Debug, Default)]
pub struct Findings {
    /// The record's verdict (none from an analysis that does not classify).
    pub verdict: Option<VerdictFinding>,
    /// The record raised an alert about its flow (also when the shaper folded it).
    pub alerted: bool,
    /// Alerts to write, in order.
    pub alerts: Vec<Box<AlertFinding>>,
}

impl Findings {
    /// Empty, keeping the alert buffer.
    pub fn clear(&mut self) {
        self.verdict = None;
        self.alerted = false;
        self.alerts.clear();
    }
}

/// The flow an alert is about: what the alert event copies from the flow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRef {
    /// The flow's id.
    pub flow_id: u64,
    /// IP protocol number.
    pub ip_proto: u8,
    /// Initiator address and port.
    pub initiator: IpAddr,
    /// Initiator port.
    pub initiator_port: u16,
    /// Responder address.
    pub responder: IpAddr,
    /// Responder port.
    pub responder_port: u16,
    /// VLAN ids of the flow (outermost first, 0 = none).
    pub vlan: [u16; 3],
    /// ICMP / ICMPv6: (type, code) of the initiator's first message.
    pub icmp: (u8, u8),
    /// Application protocol.
    pub app_proto: Option<&'static str>,
}

/// A responder service: `tcp/443`, `udp/53`, or `ip/50` for protocols without ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRef {
    /// IP protocol number.
    pub ip_proto: u8,
    /// Responder port.
    pub port: u16,
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // On the stack: an alert's service is written through here (`Text::of`).
        let text = crate::text::Text::<16>::service(*self);
        f.write_str(text.as_str())
    }
}

impl ServiceRef {
    /// Append the service as its `Display` writes it (without the formatting machinery: a
    /// summary is written for every alert).
    pub fn push_to(&self, out: &mut String) {
        out.push_str(crate::text::Text::<16>::service(*self).as_str());
    }
}

/// Append `n` in decimal.
fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// The flow as a sentence opens: who sent how much to whom over which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowDesc {
    /// The foreign end initiated the flow and fetched from the domestic end.
    pub import: bool,
    /// Domestic endpoint.
    pub domestic: IpAddr,
    /// Foreign endpoint.
    pub foreign: IpAddr,
    /// The far end as matched (a name, or the address), shared with the alert's
    /// [`AlertFinding::recipient`] (one allocation per alert, not one per copy).
    pub recipient: Arc<str>,
    /// `recipient` is a name (the address is then added in brackets).
    pub recipient_is_name: bool,
    /// The responder service.
    pub service: ServiceRef,
    /// Export bytes of the record.
    pub bytes: u64,
}

impl std::fmt::Display for FlowDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(96);
        self.push_to(&mut s);
        f.write_str(&s)
    }
}

impl FlowDesc {
    /// Append the sentence's opening as `Display` writes it (`{domestic} sent {bytes} to
    /// {recipient} ({service})`, or `{foreign} fetched ... from ...` for an import), piece by
    /// piece: a summary is written for every alert.
    pub fn push_to(&self, out: &mut String) {
        let (d, fo) = (
            crate::text::Text::<48>::ip(self.domestic),
            crate::text::Text::<48>::ip(self.foreign),
        );
        if self.import {
            out.push_str(fo.as_str());
            out.push_str(" fetched ");
            push_human_bytes(out, self.bytes);
            out.push_str(" from ");
            out.push_str(d.as_str());
        } else {
            out.push_str(d.as_str());
            out.push_str(" sent ");
            push_human_bytes(out, self.bytes);
            out.push_str(" to ");
            out.push_str(&self.recipient);
            if self.recipient_is_name {
                out.push_str(" [");
                out.push_str(fo.as_str());
                out.push(']');
            }
        }
        out.push_str(" (");
        self.service.push_to(out);
        out.push(')');
    }
}

/// A scenario's id and validity, for the alerts about its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioDates {
    /// Scenario id.
    pub id: String,
    /// First valid day.
    pub valid_from: Date,
    /// Last valid day.
    pub valid_until: Date,
}

/// How an opaque tunnel was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    /// A VPN protocol recognised by name.
    Protocol(&'static str),
    /// IPsec by IP protocol number (50/51).
    Ipsec,
    /// High-entropy payload with no recognised protocol (percentage of distinct bytes).
    Entropy(u8),
}

/// The facts of one alert, per kind: what its summary says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertFacts {
    /// `unfiled_export`: no filed scenario lists the source.
    Unfiled {
        /// The flow.
        flow: FlowDesc,
    },
    /// `recipient_not_filed`.
    RecipientNotFiled {
        /// The flow.
        flow: FlowDesc,
        /// Scenario id.
        scenario: String,
        /// ECH hid the server name.
        ech: bool,
    },
    /// `service_not_filed`.
    ServiceNotFiled {
        /// The flow.
        flow: FlowDesc,
        /// Scenario id.
        scenario: String,
    },
    /// `filing_expired`.
    FilingExpired {
        /// The flow.
        flow: FlowDesc,
        /// The scenario and the days between its last valid day and the flow.
        scenario: Option<(ScenarioDates, i64)>,
    },
    /// `outside_window`.
    OutsideWindow {
        /// The flow.
        flow: FlowDesc,
        /// Scenario id.
        scenario: String,
        /// Beijing second of the day the record was judged at.
        second_of_day: u32,
    },
    /// `filing_not_yet_valid`.
    FilingNotYetValid {
        /// The flow.
        flow: FlowDesc,
        /// The scenario and the days until it starts.
        scenario: Option<(ScenarioDates, i64)>,
    },
    /// `volume_cap_exceeded`.
    VolumeCap {
        /// Scenario id.
        scenario: String,
        /// Bytes counted on `day`.
        day_bytes: u64,
        /// Beijing day.
        day: Date,
        /// The daily cap.
        cap: u64,
        /// Twice the cap was passed.
        twice: bool,
    },
    /// `volume_surge`.
    VolumeSurge {
        /// Scenario id.
        scenario: String,
        /// Bytes of the hour.
        hour_bytes: u64,
        /// Beijing day and hour of the hour.
        day: Date,
        /// Beijing hour (0-23).
        hour: u32,
        /// Same-hour baseline mean, threshold and weeks sampled.
        baseline: u64,
        /// The threshold passed.
        threshold: u64,
        /// Weeks in the baseline.
        samples: u64,
    },
    /// `country_mismatch`.
    CountryMismatch {
        /// The flow.
        flow: FlowDesc,
        /// Country of the recipient address.
        got: String,
        /// Scenario id, filed recipient name and country.
        scenario: String,
        /// Filed recipient name.
        recipient: String,
        /// Filed recipient country.
        country: String,
    },
    /// `personal_info_cleartext`: identifiers found per kind ("3 identity card numbers").
    PersonalInfo {
        /// The flow.
        flow: FlowDesc,
        /// Kinds found, counted.
        kinds: Vec<String>,
    },
    /// `negative_list_category`.
    NegativeList {
        /// The flow.
        flow: FlowDesc,
        /// Signature category and id.
        category: String,
        /// Signature id.
        signature: String,
    },
    /// `important_data_marker`.
    ImportantData {
        /// The flow.
        flow: FlowDesc,
        /// Signature category.
        category: String,
        /// Signature id.
        signature: String,
    },
    /// `opaque_tunnel`.
    OpaqueTunnel {
        /// The flow.
        flow: FlowDesc,
        /// How it was recognised.
        tunnel: Tunnel,
    },
    /// `line_misuse`.
    LineMisuse {
        /// Distinct foreign sources within the hour.
        sources: u64,
        /// The domestic server.
        domestic: IpAddr,
        /// Its service.
        service: ServiceRef,
    },
    /// `filing_expiring`.
    FilingExpiring {
        /// The scenario.
        scenario: ScenarioDates,
        /// Its filing reference.
        filing_ref: String,
        /// Enterprise name.
        enterprise: String,
        /// Recipient name.
        recipient: String,
        /// Days left.
        left: i64,
        /// Days are working days (else calendar days).
        working: bool,
        /// Warning level reached (working days).
        level: u32,
        /// Calendar days were counted because this year has no holiday schedule.
        no_schedule: Option<i32>,
    },
    /// `persons_threshold`.
    PersonsThreshold {
        /// Enterprise id or `unfiled source <address>`.
        who: String,
        /// Sensitive personal information.
        sensitive: bool,
        /// Estimated distinct persons.
        estimate: u64,
        /// Beijing year.
        year: i32,
        /// Percentage of the limit reached.
        percent: u8,
        /// The limit.
        limit: u64,
    },
    /// `sensor_gap`: visibility lost since the last check.
    SensorGap {
        /// Kernel drops.
        kernel: u64,
        /// Interface drops.
        interface: u64,
        /// Queue drops.
        queue: u64,
        /// Flow evictions.
        evictions: u64,
        /// Acknowledged segments never captured.
        loss: u64,
    },
}

impl AlertFacts {
    /// The flow the alert's sentence opens with, for the kinds about a flow.
    pub fn flow(&self) -> Option<&FlowDesc> {
        match self {
            AlertFacts::Unfiled { flow }
            | AlertFacts::RecipientNotFiled { flow, .. }
            | AlertFacts::ServiceNotFiled { flow, .. }
            | AlertFacts::FilingExpired { flow, .. }
            | AlertFacts::OutsideWindow { flow, .. }
            | AlertFacts::FilingNotYetValid { flow, .. }
            | AlertFacts::CountryMismatch { flow, .. }
            | AlertFacts::PersonalInfo { flow, .. }
            | AlertFacts::NegativeList { flow, .. }
            | AlertFacts::ImportantData { flow, .. }
            | AlertFacts::OpaqueTunnel { flow, .. } => Some(flow),
            AlertFacts::VolumeCap { .. }
            | AlertFacts::VolumeSurge { .. }
            | AlertFacts::LineMisuse { .. }
            | AlertFacts::FilingExpiring { .. }
            | AlertFacts::PersonsThreshold { .. }
            | AlertFacts::SensorGap { .. } => None,
        }
    }
}

/// One alert decided by the analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFinding {
    /// Alert kind.
    pub kind: AlertKind,
    /// Severity (already raised for green-channel enterprises where configured).
    pub severity: Severity,
    /// The enterprise is on the green channel.
    pub green_channel: bool,
    /// Scenario id.
    pub scenario: Option<String>,
    /// Enterprise id.
    pub enterprise: Option<String>,
    /// Unix microseconds the alert is stamped with.
    pub micros: i64,
    /// The flow the alert is about, if it is about one.
    pub flow: Option<FlowRef>,
    /// Far end as matched.
    pub recipient: Option<Arc<str>>,
    /// Responder service.
    pub service: Option<ServiceRef>,
    /// Bytes covered.
    pub bytes: u64,
    /// Occurrences (more than 1 for a follow-up).
    pub count: u64,
    /// This alert folds repeats of an earlier one.
    pub followup: bool,
    /// Masked evidence.
    pub evidence: Vec<String>,
    /// Estimated distinct persons.
    pub persons: Option<u64>,
    /// Days left (expiring) or until the filing starts (not yet valid).
    pub days_left: Option<i64>,
    /// Validity of the scenario the alert is about.
    pub validity: Option<(Date, Date)>,
    /// What the summary says.
    pub facts: AlertFacts,
    /// A verdict alert judged before the flow record (live): at the first export, or judged
    /// again when the flow's name arrived. `None` for alerts judged at a flow record.
    pub judged: Option<Judged>,
}

impl AlertFinding {
    /// The alert's one-sentence summary.
    pub fn summary(&self) -> String {
        let mut s = String::with_capacity(128);
        self.summary_into(&mut s);
        s
    }

    /// [`AlertFinding::summary`] written into `out` (emptied first): the worker writes one
    /// for every alert into the same buffer instead of allocating it.
    pub fn summary_into(&self, out: &mut String) {
        out.clear();
        facts_summary_into(&self.facts, out);
        match self.judged {
            Some(Judged::FirstExport) => out.push_str(" (judged at the first export)"),
            Some(Judged::Rejudged) => {
                out.push_str(" (judged again: the verdict changed once the name was known)")
            }
            None => {}
        }
        if self.followup {
            out.push_str(" (repeated ");
            push_decimal(out, self.count);
            out.push_str(if self.count == 1 {
                " more time)"
            } else {
                " more times)"
            });
        }
    }
}

/// Append the summary of `f`: the alerts a flow raises most (an unfiled export, an opaque
/// tunnel) piece by piece, the others through [`facts_summary`].
fn facts_summary_into(f: &AlertFacts, out: &mut String) {
    match f {
        AlertFacts::Unfiled { flow } => {
            flow.push_to(out);
            out.push_str(": no filed scenario lists this source");
        }
        AlertFacts::OpaqueTunnel { flow, tunnel } => {
            flow.push_to(out);
            out.push_str(": ");
            match tunnel {
                Tunnel::Protocol(p) => {
                    out.push_str("a ");
                    out.push_str(p);
                    out.push_str(" tunnel");
                }
                Tunnel::Ipsec => out.push_str("an IPsec tunnel"),
                Tunnel::Entropy(pct) => {
                    out.push_str("high-entropy payload with no recognised protocol (");
                    push_decimal(out, u64::from(*pct));
                    out.push_str("% distinct bytes)");
                }
            }
            out.push_str(" hides what crosses the line");
        }
        _ => out.push_str(&facts_summary(f)),
    }
}

/// The summary of a verdict alert other than `unfiled_export` (see [`facts_summary_into`]).
fn verdict_summary(f: &AlertFacts) -> Option<String> {
    Some(match f {
        AlertFacts::RecipientNotFiled {
            flow,
            scenario,
            ech,
        } => format!(
            "{flow}: the recipient is not a filed destination of scenario {scenario}{}",
            if *ech {
                " (ECH hid the server name)"
            } else {
                ""
            }
        ),
        AlertFacts::ServiceNotFiled { flow, scenario } => format!(
            "{flow}: service {} is not filed for scenario {scenario}",
            flow.service
        ),
        AlertFacts::FilingExpired { flow, scenario } => match scenario {
            Some((sc, days)) => format!(
                "{flow}: scenario {} expired on {} ({days} days before this flow)",
                sc.id, sc.valid_until
            ),
            None => format!("{flow}: the filing is not valid on this date"),
        },
        AlertFacts::OutsideWindow {
            flow,
            scenario,
            second_of_day,
        } => format!(
            "{flow}: {:02}:{:02} Beijing time is outside the filed window of scenario {scenario}",
            second_of_day / 3600,
            (second_of_day / 60) % 60,
        ),
        AlertFacts::FilingNotYetValid { flow, scenario } => match scenario {
            Some((sc, n)) => format!(
                "{flow}: scenario {} starts on {} ({n} day{} later): it does not cover transfers before then",
                sc.id,
                sc.valid_from,
                if *n == 1 { "" } else { "s" }
            ),
            None => format!("{flow}: the filing is not valid yet on this date"),
        },
        _ => return None,
    })
}

/// The summary of an alert other than those [`facts_summary_into`] writes itself.
fn facts_summary(f: &AlertFacts) -> String {
    if let Some(s) = verdict_summary(f) {
        return s;
    }
    match f {
        AlertFacts::VolumeCap {
            scenario,
            day_bytes,
            day,
            cap,
            twice,
        } => format!(
            "Scenario {scenario} exported {} on {day} (Beijing), more than {} of {}",
            human_bytes(*day_bytes),
            if *twice {
                "twice the daily cap"
            } else {
                "the daily cap"
            },
            human_bytes(*cap)
        ),
        AlertFacts::VolumeSurge {
            scenario,
            hour_bytes,
            day,
            hour,
            baseline,
            threshold,
            samples,
        } => format!(
            "Scenario {scenario} exported {} in the hour from {day} {hour:02}:00 Beijing time, above its same-hour baseline of {} (threshold {}, {samples} weeks)",
            human_bytes(*hour_bytes),
            human_bytes(*baseline),
            human_bytes(*threshold),
        ),
        AlertFacts::CountryMismatch {
            flow,
            got,
            scenario,
            recipient,
            country,
        } => format!(
            "{flow}: the recipient address is in {got}, but scenario {scenario} files {recipient} in {country}"
        ),
        AlertFacts::PersonalInfo { flow, kinds } => format!(
            "{flow}: unencrypted personal information ({})",
            kinds.join(", ")
        ),
        AlertFacts::NegativeList {
            flow,
            category,
            signature,
        } => format!(
            "{flow}: negative-list data \"{category}\" (signature {signature}) to a recipient not approved for it"
        ),
        AlertFacts::ImportantData {
            flow,
            category,
            signature,
        } => format!(
            "{flow}: important-data marker \"{category}\" (signature {signature}) in cleartext"
        ),
        AlertFacts::LineMisuse {
            sources,
            domestic,
            service,
        } => format!(
            "{sources} distinct foreign sources reached {domestic} ({service}) within an hour: the line is serving the public, not internal office use"
        ),
        _ => tick_summary(f),
    }
}

fn tick_summary(f: &AlertFacts) -> String {
    match f {
        AlertFacts::FilingExpiring {
            scenario,
            filing_ref,
            enterprise,
            recipient,
            left,
            working,
            level,
            no_schedule,
        } => {
            let unit = match (working, *left == 1) {
                (true, true) => "working day",
                (true, false) => "working days",
                (false, true) => "calendar day",
                (false, false) => "calendar days",
            };
            let note = match no_schedule {
                Some(year) if !working => {
                    format!(", counted in calendar days: no holiday schedule for {year}")
                }
                _ => String::new(),
            };
            format!(
                "Filing {} ({filing_ref}) of {enterprise} for transfers to {recipient} expires on {}: {left} {unit} left (warning level {level} working days{note})",
                scenario.id, scenario.valid_until,
            )
        }
        AlertFacts::PersonsThreshold {
            who,
            sensitive,
            estimate,
            year,
            percent,
            limit,
        } => {
            let what = if *sensitive {
                "sensitive personal information (bank cards)"
            } else {
                "personal information"
            };
            format!(
                "{who} has exported {what} of about {} distinct persons in {year}: {percent}% of the {} limit",
                with_thousands(*estimate),
                with_thousands(*limit)
            )
        }
        AlertFacts::SensorGap {
            kernel,
            interface,
            queue,
            evictions,
            loss,
        } => format!(
            "The sensor lost visibility since the last check: {kernel} kernel drops, {interface} interface drops, {queue} queue drops, {evictions} flow evictions, {loss} acknowledged TCP segments never captured"
        ),
        // Flow alerts are rendered by `facts_summary` and `facts_summary_into`.
        _ => String::new(),
    }
}

/// Bytes in human units (decimal, one decimal place).
pub fn human_bytes(b: u64) -> String {
    let mut s = String::with_capacity(12);
    push_human_bytes(&mut s, b);
    s
}

/// Append [`human_bytes`] of `b`: the same digits as `format!("{v:.1}")` of the value in its
/// unit, from the float's exact binary value (no formatting machinery).
fn push_human_bytes(out: &mut String, b: u64) {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if b < 1000 {
        push_decimal(out, b);
        out.push_str(" B");
        return;
    }
    let mut v = b as f64 / 1000.0;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let tenths = tenths_half_even(v);
    push_decimal(out, tenths / 10);
    out.push('.');
    push_decimal(out, tenths % 10);
    out.push(' ');
    out.push_str(UNITS.get(u).copied().unwrap_or("PB"));
}

/// `v` × 10 rounded to an integer, ties to even, computed on the exact binary value of `v`
/// (finite, at least 1, below 2^53): the digits `{v:.1}` prints.
fn tenths_half_even(v: f64) -> u64 {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    // v = mantissa × 2^(exp - 1075); v ≥ 1 keeps the shift within 0..=52.
    let shift = (1075 - exp).clamp(0, 127) as u32;
    let x = u128::from(mantissa) * 10;
    if shift == 0 {
        return u64::try_from(x).unwrap_or(u64::MAX);
    }
    let (q, r, half) = (x >> shift, x & ((1u128 << shift) - 1), 1u128 << (shift - 1));
    let up = r > half || (r == half && q & 1 == 1);
    u64::try_from(q + u128::from(up)).unwrap_or(u64::MAX)
}

/// `1234567` as `1,234,567`.
pub fn with_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `human_bytes` wrote through the formatting machinery.
    fn human_bytes_fmt(b: u64) -> String {
        const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
        if b < 1000 {
            return format!("{b} B");
        }
        let mut v = b as f64 / 1000.0;
        let mut u = 0;
        while v >= 1000.0 && u < UNITS.len() - 1 {
            v /= 1000.0;
            u += 1;
        }
        format!("{v:.1} {}", UNITS[u])
    }

    #[test]
    fn human_bytes_writes_what_the_float_formatter_wrote() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut values: Vec<u64> = (0..3000).collect();
        // Ties and near-ties of the one decimal (x.x5 kB and its neighbours), unit edges.
        for k in 0..20_000u64 {
            values.extend([k * 100 + 50, k * 100 + 49, k * 100 + 51]);
        }
        for p in 3..20 {
            let e = 10u64.pow(p);
            values.extend([e - 1, e, e + 1, e - 50, e - 51, e + 50]);
        }
        values.push(u64::MAX);
        for _ in 0..200_000 {
            let v = next();
            values.push(v >> (v % 60));
        }
        for b in values {
            assert_eq!(human_bytes(b), human_bytes_fmt(b), "{b} bytes");
        }
    }

    /// The summaries written piece by piece (an unfiled export, an opaque tunnel of each kind)
    /// read as the formatter wrote them, with every judged note and follow-up count, and the
    /// buffer they are written into holds nothing of the alert before.
    #[test]
    fn alert_summaries_as_the_formatter_wrote_them() {
        let flow = FlowDesc {
            import: false,
            domestic: "10.1.2.3".parse().expect("address"),
            foreign: "203.0.113.9".parse().expect("address"),
            recipient: "eu.cro.example.de".into(),
            recipient_is_name: true,
            service: ServiceRef {
                ip_proto: 17,
                port: 443,
            },
            bytes: 1392,
        };
        let cases = [
            (
                AlertFacts::Unfiled { flow: flow.clone() },
                format!("{flow}: no filed scenario lists this source"),
            ),
            (
                AlertFacts::OpaqueTunnel {
                    flow: flow.clone(),
                    tunnel: Tunnel::Protocol("WireGuard"),
                },
                format!("{flow}: a WireGuard tunnel hides what crosses the line"),
            ),
            (
                AlertFacts::OpaqueTunnel {
                    flow: flow.clone(),
                    tunnel: Tunnel::Ipsec,
                },
                format!("{flow}: an IPsec tunnel hides what crosses the line"),
            ),
            (
                AlertFacts::OpaqueTunnel {
                    flow: flow.clone(),
                    tunnel: Tunnel::Entropy(71),
                },
                format!(
                    "{flow}: high-entropy payload with no recognised protocol (71% distinct bytes) hides what crosses the line"
                ),
            ),
        ];
        let mut buf = String::from("left over from the alert before");
        for (facts, base) in cases {
            for judged in [None, Some(Judged::FirstExport), Some(Judged::Rejudged)] {
                for (followup, count) in [(false, 1), (true, 1), (true, 12)] {
                    let a = AlertFinding {
                        kind: AlertKind::UnfiledExport,
                        severity: Severity::High,
                        green_channel: false,
                        scenario: None,
                        enterprise: None,
                        micros: 0,
                        flow: None,
                        recipient: None,
                        service: None,
                        bytes: 0,
                        count,
                        followup,
                        evidence: Vec::new(),
                        persons: None,
                        days_left: None,
                        validity: None,
                        facts: facts.clone(),
                        judged,
                    };
                    let note = match judged {
                        None => "",
                        Some(Judged::FirstExport) => " (judged at the first export)",
                        Some(Judged::Rejudged) => {
                            " (judged again: the verdict changed once the name was known)"
                        }
                    };
                    let mut want = format!("{base}{note}");
                    if followup {
                        let times = if count == 1 { "time" } else { "times" };
                        want = format!("{want} (repeated {count} more {times})");
                    }
                    a.summary_into(&mut buf);
                    assert_eq!(buf, want);
                    assert_eq!(a.summary(), want);
                }
            }
        }
    }

    #[test]
    fn flow_and_service_text_as_the_formatter_wrote_it() {
        let service = |ip_proto, port| ServiceRef { ip_proto, port };
        for svc in [
            service(6, 443),
            service(17, 53),
            service(50, 0),
            service(6, 0),
            service(6, 9),
            service(17, 10),
            service(6, 65535),
            service(255, 1),
        ] {
            let old = match svc.ip_proto {
                6 => format!("tcp/{}", svc.port),
                17 => format!("udp/{}", svc.port),
                p => format!("ip/{p}"),
            };
            assert_eq!(svc.to_string(), old);
            assert_eq!(crate::text::Text::<16>::service(svc).as_str(), old);
            for (domestic, foreign) in [
                ("10.1.2.3", "203.0.113.9"),
                ("fd00::15", "2001:db8:80::9"),
                ("0.0.0.0", "255.255.255.255"),
            ] {
                for (import, named) in [(false, false), (false, true), (true, false)] {
                    let f = FlowDesc {
                        import,
                        domestic: domestic.parse().expect("address"),
                        foreign: foreign.parse().expect("address"),
                        recipient: if named {
                            "eu.cro.example.de".into()
                        } else {
                            foreign.into()
                        },
                        recipient_is_name: named,
                        service: svc,
                        bytes: 1_234_567,
                    };
                    let (d, fo, b) = (f.domestic, f.foreign, human_bytes_fmt(f.bytes));
                    let old = if import {
                        format!("{fo} fetched {b} from {d} ({svc})")
                    } else if named {
                        format!("{d} sent {b} to {} [{fo}] ({svc})", f.recipient)
                    } else {
                        format!("{d} sent {b} to {} ({svc})", f.recipient)
                    };
                    assert_eq!(f.to_string(), old);
                }
            }
        }
    }
}
