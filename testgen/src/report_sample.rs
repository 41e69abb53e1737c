//! A small labelled data set — a registry and the events an agent would write for it — whose
//! expected report figures are known. The report tests use it, and `report-preview` style tools
//! can render it to check the layout without a capture.
//!
//! Everything in it is fictional (documentation address ranges, `.example` names, the standard's
//! example resident ID).

use crossline_config::event::{
    Alert, AlertKind, Direction, Event, EventType, FlowRecord, HttpMeta, Severity, Stats, TlsMeta,
    Verdict, VerdictStatus,
};
use crossline_config::registry::{
    Basis, DataCategory, Destination, Enterprise, Exemption, HostPattern, IpNet, Recipient,
    Registry, Scenario, Service, Transport,
};
use crossline_config::time::Date;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Raw identifiers planted in the sample's alerts and flows; none may appear in a report.
pub const RAW_IDENTIFIERS: [&str; 3] = ["11010519491231002X", "13812345678", "6222000000000000004"];

/// Their masked forms, as the pipeline's alerts carry them.
pub const MASKED_IDENTIFIERS: [&str; 3] =
    ["110105********002X", "138****5678", "6222***********0004"];

/// Expected figures of [`events`].
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// Export bytes of `filed` flows.
    pub filed_bytes: u64,
    /// Export bytes of every other cross-border verdict.
    pub not_filed_bytes: u64,
    /// Flows with export payload that no filing covers (`unfiled` + `recipient_not_filed`).
    pub uncovered_exports: u64,
    /// Their distinct recipients.
    pub uncovered_recipients: u64,
    /// Final flow records.
    pub flow_records: u64,
    /// Final records of cross-border flows.
    pub cross_border_flows: u64,
}

fn date(y: i32, m: u8, d: u8) -> Date {
    Date::new(y, m, d).expect("constant sample date is valid")
}

fn net(a: [u8; 4], len: u8) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), len).expect("constant sample prefix is valid")
}

/// The sample registry: two enterprises, five scenarios (one expiring during the capture month,
/// one starting after it).
pub fn registry() -> Registry {
    let enterprises = vec![
        Enterprise {
            id: "acme-pharma".into(),
            name: "Acme Pharma (Beijing) Co., Ltd.".into(),
            uscc: "91350100M000100Y43".into(),
            green_channel: true,
            ftz: true,
            ciio: false,
            vlans: Vec::new(),
        },
        Enterprise {
            id: "beta-retail".into(),
            name: "北京贝塔零售有限公司".into(),
            uscc: "91350100M000100Y43".into(),
            green_channel: false,
            ftz: false,
            ciio: false,
            vlans: Vec::new(),
        },
    ];
    let tcp443 = Service::Ports {
        transport: Transport::Tcp,
        first: 443,
        last: 443,
    };
    let scenario = |id: &str, ent: usize, basis: Basis| Scenario {
        id: id.into(),
        enterprise: enterprises[ent].id.clone(),
        enterprise_index: ent,
        basis,
        filing_ref: format!("FICTIONAL-{id}"),
        recipient: Recipient {
            name: "Example CRO GmbH".into(),
            country: "DE".into(),
        },
        activity: "academic_cooperation".into(),
        data: vec![DataCategory::Personal, DataCategory::SensitivePersonal],
        valid_from: date(2026, 1, 1),
        valid_until: date(2028, 12, 31),
        sources: vec![net([10, 20, 0, 0], 16)],
        destinations: vec![
            Destination::Host(HostPattern::Suffix("cro.example.de".into())),
            Destination::Net(net([198, 51, 100, 0], 24)),
        ],
        services: vec![tcp443],
        window: None,
        bytes_per_day: None,
        persons_per_year: None,
        vlans: Vec::new(),
    };
    let mut sa = scenario("SA-2026-0001", 0, Basis::SecurityAssessment);
    sa.bytes_per_day = Some(20_000_000);
    sa.persons_per_year = Some(150_000);
    let mut sc = scenario("SC-2025-0042", 0, Basis::StandardContract);
    sc.recipient = Recipient {
        name: "Acme Holdings Inc.".into(),
        country: "US".into(),
    };
    sc.valid_from = date(2025, 4, 1);
    sc.valid_until = date(2026, 3, 31);
    sc.destinations = vec![Destination::Host(HostPattern::Exact(
        "hr.acme.example".into(),
    ))];
    let mut ex = scenario("EX-2026-0007", 1, Basis::Exemption(Exemption::Art5Contract));
    ex.recipient = Recipient {
        name: "Shop Payments Ltd.".into(),
        country: "HK".into(),
    };
    ex.sources = vec![net([10, 40, 0, 0], 16)];
    ex.destinations = vec![Destination::Host(HostPattern::Exact(
        "pay.shop.example".into(),
    ))];
    let mut ftz = scenario("FTZ-2026-0003", 1, Basis::FtzNegativeList);
    ftz.recipient = Recipient {
        name: "Retail Analytics <Pte> Ltd.".into(),
        country: "SG".into(),
    };
    ftz.sources = vec![net([10, 40, 0, 0], 16)];
    ftz.destinations = vec![Destination::Host(HostPattern::Exact(
        "bi.retail.example".into(),
    ))];
    ftz.data = vec![DataCategory::None];
    // A contract filed for a trial that starts after the capture month.
    let mut trial = scenario("SC-2026-0050", 0, Basis::StandardContract);
    trial.recipient = Recipient {
        name: "Example Trials Inc.".into(),
        country: "US".into(),
    };
    trial.valid_from = date(2026, 4, 1);
    trial.valid_until = date(2029, 3, 31);
    trial.destinations = vec![Destination::Host(HostPattern::Exact(
        "trials.example.com".into(),
    ))];
    Registry {
        path: PathBuf::from("registry.toml"),
        enterprises,
        scenarios: vec![sa, sc, ex, ftz, trial],
    }
}

/// Unix microseconds of a Beijing local time on 2026-03-d.
fn bj(day: u8, hour: i64, minute: i64) -> i64 {
    let days = date(2026, 3, day).days_since_epoch();
    (days * 86_400 + hour * 3600 + minute * 60 - 8 * 3600) * 1_000_000
}

struct FlowSpec<'a> {
    id: u64,
    src: &'a str,
    dst: &'a str,
    port: u16,
    proto: &'a str,
    sni: Option<&'a str>,
    host: Option<&'a str>,
    start: i64,
    end: i64,
    export: u64,
    status: VerdictStatus,
    scenario: Option<&'a str>,
    enterprise: Option<&'a str>,
    reason: &'a str,
}

fn flow(f: &FlowSpec<'_>) -> Event {
    let ts = crossline_config::event::format_eve_timestamp;
    let mut e = Event::new(EventType::Flow, ts(f.end), "gw-bj-01".into());
    e.flow_id = Some(f.id);
    e.proto = Some(f.proto.into());
    e.src_ip = Some(f.src.into());
    e.src_port = Some(50_000 + (f.id % 10_000) as u16);
    e.dest_ip = Some(f.dst.into());
    e.dest_port = Some(f.port);
    e.tls = f.sni.map(|s| TlsMeta {
        sni: Some(s.into()),
        ..TlsMeta::default()
    });
    e.app_proto = f
        .sni
        .map(|_| "tls".to_owned())
        .or(f.host.map(|_| "http".to_owned()));
    e.http = f.host.map(|h| HttpMeta {
        hostname: Some(h.into()),
        http_method: Some("POST".into()),
    });
    e.flow = Some(FlowRecord {
        pkts_toserver: 10,
        pkts_toclient: 8,
        bytes_toserver: f.export,
        bytes_toclient: 4000,
        start: ts(f.start),
        end: ts(f.end),
        // EVE's age: whole seconds of the end minus whole seconds of the start.
        age: u64::try_from(f.end.div_euclid(1_000_000) - f.start.div_euclid(1_000_000))
            .unwrap_or(0),
        state: Some("closed".into()),
        reason: f.reason.into(),
        midstream: false,
        alerted: f.status != VerdictStatus::Filed,
    });
    let cross = f.status != VerdictStatus::NotCrossBorder;
    e.direction = Some(if cross {
        Direction::Export
    } else {
        Direction::Internal
    });
    e.export_bytes = cross.then_some(f.export);
    e.verdict = Some(Verdict {
        status: f.status,
        scenario: f.scenario.map(Into::into),
        enterprise: f.enterprise.map(Into::into),
        name_source: f.sni.map(|_| "tls".to_owned()),
        ech: false,
        exclude: None,
    });
    e
}

struct AlertSpec<'a> {
    at: i64,
    kind: AlertKind,
    severity: Severity,
    scenario: Option<&'a str>,
    enterprise: Option<&'a str>,
    summary: &'a str,
    recipient: Option<&'a str>,
    service: Option<&'a str>,
    count: u64,
    bytes: u64,
    evidence: &'a [&'a str],
    persons: Option<u64>,
}

fn alert(a: &AlertSpec<'_>) -> Event {
    let ts = crossline_config::event::format_eve_timestamp;
    let mut e = Event::new(EventType::Alert, ts(a.at), "gw-bj-01".into());
    e.alert = Some(Alert {
        kind: a.kind,
        severity: a.severity,
        scenario: a.scenario.map(Into::into),
        enterprise: a.enterprise.map(Into::into),
        summary: a.summary.into(),
        rule: a.kind.rule().into(),
        recipient: a.recipient.map(Into::into),
        service: a.service.map(Into::into),
        count: a.count,
        bytes: a.bytes,
        evidence: a.evidence.iter().map(|s| (*s).to_owned()).collect(),
        persons: a.persons,
        followup: false,
        green_channel: false,
        days_left: None,
        valid_from: None,
        valid_until: None,
        scope: None,
        gateways: Vec::new(),
    });
    e
}

/// The sample events (flows, alerts, one final stats event) and their expected figures.
pub fn events() -> (Vec<Event>, Expected) {
    let mut out = Vec::new();
    let mut filed = filed_transfers(&mut out);
    let not_filed = uncovered_transfers(&mut out);
    filed += other_flows(&mut out);
    for a in &sample_alerts() {
        out.push(alert(a));
    }
    let flow_records = out
        .iter()
        .filter(|e| {
            e.event_type == EventType::Flow
                && e.flow
                    .as_ref()
                    .is_some_and(|f| f.reason != "active_timeout")
        })
        .count() as u64;
    let mut stats = Event::new(
        EventType::Stats,
        crossline_config::event::format_eve_timestamp(bj(3, 23, 0)),
        "gw-bj-01".into(),
    );
    stats.stats = Some(Stats {
        packets: 48_211,
        bytes: 131_000_000,
        flows: flow_records,
        alerts: BTreeMap::new(),
        ..Stats::default()
    });
    out.push(stats);
    let expected = Expected {
        filed_bytes: filed,
        not_filed_bytes: not_filed,
        uncovered_exports: 3,
        uncovered_recipients: 2,
        flow_records,
        cross_border_flows: flow_records - 1,
    };
    (out, expected)
}

/// Filed transfers: to the CRO over two working days, a long flow with running records, and
/// payments under an exemption. Returns their export bytes.
fn filed_transfers(out: &mut Vec<Event>) -> u64 {
    use VerdictStatus as V;
    let sa = Some("SA-2026-0001");
    let acme = Some("acme-pharma");
    let mut filed = 0u64;
    let mut id = 1u64;
    // Filed transfers to the CRO over two working days, 08:00-19:00, bigger in the afternoon.
    for day in [2u8, 3] {
        for hour in 8..19i64 {
            let export = 600_000 + (hour as u64 - 8) * 180_000 + u64::from(day) * 1000;
            out.push(flow(&FlowSpec {
                id,
                src: "10.20.3.4",
                dst: "198.51.100.7",
                port: 443,
                proto: "TCP",
                sni: Some(if hour % 2 == 0 {
                    "eu.cro.example.de"
                } else {
                    "upload.cro.example.de"
                }),
                host: None,
                start: bj(day, hour, 5),
                end: bj(day, hour, 35),
                export,
                status: V::Filed,
                scenario: sa,
                enterprise: acme,
                reason: "fin",
            }));
            filed += export;
            id += 1;
        }
    }
    // A long filed flow on day 3 with two running records: only the final total counts.
    for (reason, total, end) in [
        ("active_timeout", 5_000_000u64, bj(3, 20, 0)),
        ("active_timeout", 9_000_000, bj(3, 21, 0)),
        ("fin", 12_500_000, bj(3, 21, 40)),
    ] {
        out.push(flow(&FlowSpec {
            id: 900,
            src: "10.20.3.9",
            dst: "198.51.100.20",
            port: 443,
            proto: "TCP",
            sni: Some("backup.cro.example.de"),
            host: None,
            start: bj(3, 19, 30),
            end,
            export: total,
            status: V::Filed,
            scenario: sa,
            enterprise: acme,
            reason,
        }));
    }
    filed += 12_500_000;
    // Payments under the Art. 5(1) exemption.
    for i in 0..4u64 {
        let export = 250_000 + i * 40_000;
        out.push(flow(&FlowSpec {
            id: 100 + i,
            src: "10.40.1.10",
            dst: "203.0.113.80",
            port: 443,
            proto: "TCP",
            sni: Some("pay.shop.example"),
            host: None,
            start: bj(2, 10 + i as i64, 0),
            end: bj(2, 10 + i as i64, 2),
            export,
            status: V::Filed,
            scenario: Some("EX-2026-0007"),
            enterprise: Some("beta-retail"),
            reason: "fin",
        }));
        filed += export;
    }
    filed
}

/// Exports not covered by a filing (no filing, recipient, service, window or validity).
/// Returns their export bytes.
fn uncovered_transfers(out: &mut Vec<Event>) -> u64 {
    use VerdictStatus as V;
    let sa = Some("SA-2026-0001");
    let acme = Some("acme-pharma");
    // Not covered: two unfiled exports to one address over SSH at night, one recipient not filed.
    let mut not_filed = 0u64;
    for (i, (export, day, hour)) in [(18_200_000u64, 2u8, 23i64), (9_400_000, 3, 2)]
        .iter()
        .enumerate()
    {
        out.push(flow(&FlowSpec {
            id: 200 + i as u64,
            src: "10.30.1.9",
            dst: "203.0.113.50",
            port: 22,
            proto: "TCP",
            sni: None,
            host: None,
            start: bj(*day, *hour, 0),
            end: bj(*day, *hour, 40),
            export: *export,
            status: V::Unfiled,
            scenario: None,
            enterprise: None,
            reason: "fin",
        }));
        not_filed += export;
    }
    out.push(flow(&FlowSpec {
        id: 300,
        src: "10.20.5.5",
        dst: "192.0.2.44",
        port: 443,
        proto: "TCP",
        sni: Some("<script>alert(1)</script>.files.example.net"),
        host: None,
        start: bj(3, 14, 0),
        end: bj(3, 14, 20),
        export: 3_300_000,
        status: V::RecipientNotFiled,
        scenario: sa,
        enterprise: acme,
        reason: "fin",
    }));
    not_filed += 3_300_000;
    // Filed recipient, wrong service; outside the window; expired filing.
    for (fid, port, proto, export, status, scenario, host) in [
        (
            400u64,
            21u16,
            "TCP",
            2_100_000u64,
            V::ServiceNotFiled,
            sa,
            Some("ftp.cro.example.de"),
        ),
        (
            401,
            443,
            "TCP",
            800_000,
            V::OutsideWindow,
            Some("FTZ-2026-0003"),
            Some("bi.retail.example"),
        ),
        (
            402,
            443,
            "TCP",
            450_000,
            V::FilingExpired,
            Some("SC-2025-0042"),
            Some("hr.acme.example"),
        ),
    ] {
        let ent = if fid == 401 {
            Some("beta-retail")
        } else {
            acme
        };
        out.push(flow(&FlowSpec {
            id: fid,
            src: if fid == 401 { "10.40.2.2" } else { "10.20.8.8" },
            dst: "198.51.100.99",
            port,
            proto,
            sni: None,
            host,
            start: bj(3, 22, 10),
            end: bj(3, 22, 15),
            export,
            status,
            scenario,
            enterprise: ent,
            reason: "fin",
        }));
        not_filed += export;
    }
    not_filed
}

/// An internal flow, a filed flow named by its Host, and one whose DNS name carries a raw
/// mobile number. Returns the filed export bytes.
fn other_flows(out: &mut Vec<Event>) -> u64 {
    use VerdictStatus as V;
    let mut filed = 0u64;
    // An internal flow (not cross-border) and a flow whose Host carries a raw mobile number.
    out.push(flow(&FlowSpec {
        id: 500,
        src: "10.20.3.4",
        dst: "10.30.1.9",
        port: 445,
        proto: "TCP",
        sni: None,
        host: None,
        start: bj(2, 9, 0),
        end: bj(2, 9, 1),
        export: 0,
        status: V::NotCrossBorder,
        scenario: None,
        enterprise: None,
        reason: "fin",
    }));
    out.push(flow(&FlowSpec {
        id: 501,
        src: "10.40.1.10",
        dst: "203.0.113.80",
        port: 443,
        proto: "TCP",
        sni: None,
        host: Some("pay.shop.example"),
        start: bj(2, 16, 0),
        end: bj(2, 16, 1),
        export: 120_000,
        status: V::Filed,
        scenario: Some("EX-2026-0007"),
        enterprise: Some("beta-retail"),
        reason: "fin",
    }));
    filed += 120_000;
    let mut dns_leak = flow(&FlowSpec {
        id: 502,
        src: "10.40.1.11",
        dst: "203.0.113.81",
        port: 443,
        proto: "TCP",
        sni: None,
        host: None,
        start: bj(2, 16, 5),
        end: bj(2, 16, 6),
        export: 64_000,
        status: V::Filed,
        scenario: Some("EX-2026-0007"),
        enterprise: Some("beta-retail"),
        reason: "fin",
    });
    dns_leak.dns_name = Some("13812345678.pay.shop.example".into());
    out.push(dns_leak);
    filed += 64_000;
    filed
}

/// The alerts, as the classification and detectors raise them.
fn sample_alerts() -> Vec<AlertSpec<'static>> {
    let sa = Some("SA-2026-0001");
    let acme = Some("acme-pharma");
    vec![
        AlertSpec {
            at: bj(2, 23, 40),
            kind: AlertKind::UnfiledExport,
            severity: Severity::High,
            scenario: None,
            enterprise: None,
            summary: "10.30.1.9 sent 18.2 MB to 203.0.113.50:22 (no filed scenario)",
            recipient: Some("203.0.113.50"),
            service: Some("tcp/22"),
            count: 1,
            bytes: 18_200_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(3, 2, 40),
            kind: AlertKind::UnfiledExport,
            severity: Severity::High,
            scenario: None,
            enterprise: None,
            summary: "10.30.1.9 sent 9.40 MB to 203.0.113.50:22 (no filed scenario)",
            recipient: Some("203.0.113.50"),
            service: Some("tcp/22"),
            count: 1,
            bytes: 9_400_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(3, 14, 20),
            kind: AlertKind::RecipientNotFiled,
            severity: Severity::High,
            scenario: sa,
            enterprise: acme,
            summary: "10.20.5.5 sent 3.30 MB to <script>alert(1)</script>.files.example.net (not a filed recipient)",
            recipient: Some("<script>alert(1)</script>.files.example.net"),
            service: Some("tcp/443"),
            count: 1,
            bytes: 3_300_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(3, 22, 15),
            kind: AlertKind::ServiceNotFiled,
            severity: Severity::Med,
            scenario: sa,
            enterprise: acme,
            summary: "10.20.8.8 sent 2.10 MB to ftp.cro.example.de over tcp/21 (service not filed)",
            recipient: Some("ftp.cro.example.de"),
            service: Some("tcp/21"),
            count: 1,
            bytes: 2_100_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(3, 22, 15),
            kind: AlertKind::OutsideWindow,
            severity: Severity::Low,
            scenario: Some("FTZ-2026-0003"),
            enterprise: Some("beta-retail"),
            summary: "10.40.2.2 sent 800 KB to bi.retail.example outside the filed window",
            recipient: Some("bi.retail.example"),
            service: Some("tcp/443"),
            count: 1,
            bytes: 800_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(3, 22, 15),
            kind: AlertKind::FilingExpired,
            severity: Severity::High,
            scenario: Some("SC-2025-0042"),
            enterprise: acme,
            summary: "SC-2025-0042 is not valid on 2026-03-03",
            recipient: Some("hr.acme.example"),
            service: Some("tcp/443"),
            count: 1,
            bytes: 450_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(3, 14, 20),
            // An upstream summary that (wrongly) carries a raw ID: the report must mask it.
            kind: AlertKind::PersonalInfoCleartext,
            severity: Severity::High,
            scenario: None,
            enterprise: acme,
            summary: "cleartext resident ID 11010519491231002X and card 6222000000000000004 sent to 192.0.2.44:80",
            recipient: Some("192.0.2.44"),
            service: Some("tcp/80"),
            count: 3,
            bytes: 3_300_000,
            evidence: &["110105********002X", "6222***********0004", "138****5678"],
            persons: Some(3),
        },
        AlertSpec {
            at: bj(3, 21, 40),
            kind: AlertKind::PersonsThreshold,
            severity: Severity::High,
            scenario: sa,
            enterprise: acme,
            summary: "acme-pharma reached 80% of the declared 150,000 persons this year",
            recipient: None,
            service: None,
            count: 1,
            bytes: 0,
            evidence: &[],
            persons: Some(121_000),
        },
        AlertSpec {
            at: bj(3, 21, 40),
            kind: AlertKind::VolumeCapExceeded,
            severity: Severity::Med,
            scenario: sa,
            enterprise: acme,
            summary: "SA-2026-0001 exported 28.4 MB on 2026-03-03 (cap 20.0 MB)",
            recipient: None,
            service: None,
            count: 1,
            bytes: 28_400_000,
            evidence: &[],
            persons: None,
        },
        AlertSpec {
            at: bj(2, 8, 0),
            kind: AlertKind::FilingExpiring,
            severity: Severity::Info,
            scenario: Some("SC-2025-0042"),
            enterprise: acme,
            summary: "SC-2025-0042 expires on 2026-03-31",
            recipient: None,
            service: None,
            count: 1,
            bytes: 0,
            evidence: &[],
            persons: None,
        },
        ]
}

/// What [`extended_events`] adds to [`events`].
#[derive(Debug, Clone, Copy)]
pub struct Extended {
    /// `unfiled_export` alerts in all (more than the report shows as examples).
    pub unfiled_alerts: u64,
    /// Beijing days with exports not covered by a filing.
    pub heat_days: u64,
    /// Flows before `SC-2026-0050` takes effect.
    pub not_yet_valid_exports: u64,
    /// Excluded flows per entry: `public-dns`, `ntp`.
    pub excluded_flows: [u64; 2],
    /// Their bytes.
    pub excluded_bytes: [u64; 2],
}

/// The sample plus what makes a report long and its tables cut: more unfiled alerts than
/// examples, more recipients than the chart shows, more days than the heat map shows, exports
/// before a filing takes effect, and excluded infrastructure traffic.
pub fn extended_events() -> (Vec<Event>, Expected, Extended) {
    use VerdictStatus as V;
    let (mut out, mut expected) = events();
    let stats = out.pop();
    let acme = Some("acme-pharma");
    let trial = Some("SC-2026-0050");
    // Exports to the trial's recipient before the filing starts on 2026-04-01.
    for i in 0..2u64 {
        let export = 700_000 + i * 50_000;
        let f = flow(&FlowSpec {
            id: 600 + i,
            src: "10.20.9.9",
            dst: "198.51.100.150",
            port: 443,
            proto: "TCP",
            sni: Some("trials.example.com"),
            host: None,
            start: bj(3, 11 + i as i64, 0),
            end: bj(3, 11 + i as i64, 10),
            export,
            status: V::FilingNotYetValid,
            scenario: trial,
            enterprise: acme,
            reason: "fin",
        });
        out.push(f);
        expected.not_filed_bytes += export;
        let mut a = alert(&AlertSpec {
            at: bj(3, 11 + i as i64, 10),
            kind: AlertKind::FilingNotYetValid,
            severity: Severity::High,
            scenario: trial,
            enterprise: acme,
            summary: "10.20.9.9 sent 700 kB to trials.example.com: scenario SC-2026-0050 is valid only from 2026-04-01",
            recipient: Some("trials.example.com"),
            service: Some("tcp/443"),
            count: 1,
            bytes: export,
            evidence: &[],
            persons: None,
        });
        if let Some(al) = a.alert.as_mut() {
            al.days_left = Some(29);
            al.valid_from = Some("2026-04-01".into());
            al.valid_until = Some("2029-03-31".into());
        }
        out.push(a);
    }
    // Small filed exports to many CRO hosts: more recipients than the chart shows.
    for i in 0..20u64 {
        let export = 10_000 + i * 100;
        let host = format!("site{i:02}.cro.example.de");
        out.push(flow(&FlowSpec {
            id: 700 + i,
            src: "10.20.3.4",
            dst: "198.51.100.7",
            port: 443,
            proto: "TCP",
            sni: Some(host.as_str()),
            host: None,
            start: bj(2, 12, 0),
            end: bj(2, 12, 1),
            export,
            status: V::Filed,
            scenario: Some("SA-2026-0001"),
            enterprise: acme,
            reason: "fin",
        }));
        expected.filed_bytes += export;
    }
    // Unfiled exports on the 40 days before the sample's (from 2026-01-21): more days than the
    // heat map shows and more unfiled alerts than examples.
    for d in 0..40u64 {
        let at = bj(1, 3, 0) - ((d + 1) as i64) * 86_400_000_000;
        let export = 5_000 + d;
        let f = flow(&FlowSpec {
            id: 800 + d,
            src: "10.30.1.9",
            dst: "203.0.113.50",
            port: 22,
            proto: "TCP",
            sni: None,
            host: None,
            start: at - 60_000_000,
            end: at,
            export,
            status: V::Unfiled,
            scenario: None,
            enterprise: None,
            reason: "fin",
        });
        out.push(f);
        expected.not_filed_bytes += export;
        expected.uncovered_exports += 1;
        out.push(alert(&AlertSpec {
            at,
            kind: AlertKind::UnfiledExport,
            severity: Severity::High,
            scenario: None,
            enterprise: None,
            summary: "10.30.1.9 sent 5.0 kB to 203.0.113.50 (tcp/22): no filed scenario lists this source",
            recipient: Some("203.0.113.50"),
            service: Some("tcp/22"),
            count: 1,
            bytes: export,
            evidence: &[],
            persons: None,
        }));
    }
    // Infrastructure traffic that matches `[[exclude]]` entries.
    let mut excluded_flows = [0u64; 2];
    let mut excluded_bytes = [0u64; 2];
    for i in 0..8u64 {
        let (slot, name, dst, port, proto) = if i < 5 {
            (0, "public-dns", "203.0.113.53", 53u16, "UDP")
        } else {
            (1, "ntp", "192.0.2.123", 123, "UDP")
        };
        let export = 90 + i;
        let mut f = flow(&FlowSpec {
            id: 900 + 10 + i,
            src: "10.20.0.53",
            dst,
            port,
            proto,
            sni: None,
            host: None,
            start: bj(2, 9, 30),
            end: bj(2, 9, 31),
            export,
            status: V::Excluded,
            scenario: None,
            enterprise: None,
            reason: "timeout",
        });
        if let Some(v) = f.verdict.as_mut() {
            v.exclude = Some(name.into());
            v.name_source = None;
        }
        out.push(f);
        excluded_flows[slot] += 1;
        excluded_bytes[slot] += export;
    }
    let flow_records = out
        .iter()
        .filter(|e| {
            e.event_type == EventType::Flow
                && e.flow
                    .as_ref()
                    .is_some_and(|f| f.reason != "active_timeout")
        })
        .count() as u64;
    expected.flow_records = flow_records;
    expected.cross_border_flows = flow_records - 1;
    if let Some(mut st) = stats {
        if let Some(x) = st.stats.as_mut() {
            x.flows = flow_records;
        }
        out.push(st);
    }
    let extended = Extended {
        unfiled_alerts: 2 + 40,
        heat_days: 2 + 40,
        not_yet_valid_exports: 2,
        excluded_flows,
        excluded_bytes,
    };
    (out, expected, extended)
}
