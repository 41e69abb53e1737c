//! Classification and detection end to end: labelled pcap files written by
//! `crossline_testgen` go through the real pipeline (`pipeline::run_offline`) with the
//! real [`Classifier`], and the events that come out are checked against the labels: every
//! verdict, every alert kind, precedence, names, ECH, VLAN, IPv6, windows at the minute edges,
//! expiry, caps over two days, personal information, surges, hot reload in mid-capture.

mod common;

use common::scratch;
use crossline_agent::analysis::findings::{Findings, NameRef};
use crossline_agent::analysis::{Analysis, FlowSummary, Health, PayloadView};
use crossline_agent::detect::{Classifier, DetectShared, FlowState};
use crossline_agent::pipeline::{run_offline, OfflineOptions};
use crossline_agent::sink::{EventSink, MemorySink};
use crossline_config::event::{
    Alert, AlertKind, Direction, Event, EventType, Severity, VerdictStatus,
};
use crossline_config::time::Date;
use crossline_testgen::{
    beijing_micros, http_post, noise, tls_client_hello, Generator, Label, Side, TcpFlow,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const REGISTRY: &str = include_str!("../testdata/registry/labelled.toml");

struct Outcome {
    events: Vec<Event>,
    shared: Arc<DetectShared>,
    live: Arc<crossline_agent::stats::LiveStats>,
}

fn today() -> Date {
    Date::new(2026, 3, 1).expect("date")
}

fn config(dir: &Path, registry: &str, extra: &str) -> crossline_config::AgentConfig {
    std::fs::write(dir.join("registry.toml"), registry).expect("write registry");
    let agent = format!(
        "gateway = \"gw-test\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\nregistry = \"registry.toml\"\n{extra}\n"
    );
    std::fs::write(dir.join("agent.toml"), agent).expect("write agent.toml");
    match crossline_config::load_agent_config(&dir.join("agent.toml"), today()) {
        Ok((c, _)) => c,
        Err(e) => panic!("test config invalid:\n{e}"),
    }
}

/// Run the pipeline over `gen`'s capture with `factory` building the analysis.
fn run_with<A: Analysis + 'static, F: Fn(usize, Arc<DetectShared>) -> A + Sync>(
    dir: &Path,
    cfg: &crossline_config::AgentConfig,
    gen: &Generator,
    workers: usize,
    factory: F,
) -> Outcome {
    let pcap = dir.join("capture.pcap");
    gen.write(&pcap).expect("write pcap");
    let shared = DetectShared::new(cfg).expect("detect state");
    let sink = MemorySink::default();
    let events = Arc::clone(&sink.events);
    let sinks: Vec<Box<dyn EventSink>> = vec![Box::new(sink)];
    let options = OfflineOptions {
        workers: Some(workers),
        progress: false,
    };
    let s2 = Arc::clone(&shared);
    let summary = run_offline(cfg, &[pcap], sinks, &options, move |i| {
        factory(i, Arc::clone(&s2))
    })
    .expect("pipeline run");
    let events = events.lock().expect("events").clone();
    Outcome {
        events,
        shared,
        live: summary.live,
    }
}

fn run(dir: &Path, registry: &str, extra: &str, gen: &Generator, workers: usize) -> Outcome {
    let cfg = config(dir, registry, extra);
    run_with(dir, &cfg, gen, workers, |i, s| Classifier::new(s, i))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn same_flow(e: &Event, l: &Label) -> bool {
    e.src_ip.as_deref() == Some(&l.src.ip().to_string())
        && e.src_port == Some(l.src.port())
        && e.dest_ip.as_deref() == Some(&l.dst.ip().to_string())
        && e.dest_port == Some(l.dst.port())
}

impl Outcome {
    /// The last flow record of a labelled flow.
    fn flow(&self, l: &Label) -> &Event {
        self.events
            .iter()
            .rev()
            .find(|e| e.event_type == EventType::Flow && same_flow(e, l))
            .unwrap_or_else(|| panic!("no flow event for {} ({} -> {})", l.name, l.src, l.dst))
    }

    fn alerts(&self, l: &Label) -> Vec<&Alert> {
        self.events
            .iter()
            .filter(|e| same_flow(e, l))
            .filter_map(|e| e.alert.as_ref())
            .collect()
    }

    fn all_alerts(&self, kind: AlertKind) -> Vec<&Alert> {
        self.events
            .iter()
            .filter_map(|e| e.alert.as_ref())
            .filter(|a| a.kind == kind)
            .collect()
    }

    /// Check every label's verdict, scenario and alerts.
    fn check_labels(&self, labels: &[Label]) {
        let mut failures = Vec::new();
        for l in labels {
            let e = self.flow(l);
            let v = e.verdict.as_ref().expect("verdict");
            if let Some(want) = l.verdict {
                if v.status != want {
                    failures.push(format!(
                        "{}: verdict {:?}, expected {want:?}",
                        l.name, v.status
                    ));
                }
            }
            if l.scenario.is_some() && v.scenario != l.scenario {
                failures.push(format!(
                    "{}: scenario {:?}, expected {:?}",
                    l.name, v.scenario, l.scenario
                ));
            }
            let kinds: Vec<AlertKind> = self.alerts(l).iter().map(|a| a.kind).collect();
            for k in &l.alerts {
                if !kinds.contains(k) {
                    failures.push(format!("{}: missing alert {k:?} (got {kinds:?})", l.name));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

fn label(name: &str, v: VerdictStatus) -> Label {
    Label::new(name, Some(v))
}

/// Monday 2 March 2026 at a Beijing time.
fn mon(h: u32, m: u32, s: u32) -> i64 {
    beijing_micros(2026, 3, 2, h, m, s)
}

fn tcp(gen: &mut Generator, c: &str, s: &str, t: i64, payload: &[u8], l: Label) {
    gen.tcp(
        &TcpFlow::new(addr(c), addr(s), t)
            .send(payload.to_vec())
            .reply(b"ok".to_vec()),
        l,
    );
}

#[test]
fn every_verdict_by_address_port_and_time() {
    use VerdictStatus::*;
    let dir = scratch("detect-verdicts");
    let mut g = Generator::new();
    let data = b"shipment manifest batch 7";
    tcp(
        &mut g,
        "10.1.5.5:40001",
        "198.51.100.7:443",
        mon(10, 0, 0),
        data,
        label("filed", Filed).scenario("S-A"),
    );
    tcp(
        &mut g,
        "10.1.2.3:40002",
        "198.51.100.7:443",
        mon(10, 0, 1),
        data,
        label("longest prefix", Filed).scenario("S-B"),
    );
    tcp(
        &mut g,
        "10.3.1.1:40003",
        "203.0.113.5:443",
        mon(10, 0, 2),
        data,
        label("lowest id", Filed).scenario("S-D"),
    );
    tcp(
        &mut g,
        "10.99.0.1:40004",
        "198.51.100.7:22",
        mon(10, 0, 3),
        data,
        label("unfiled", Unfiled).alerts(&[AlertKind::UnfiledExport]),
    );
    tcp(
        &mut g,
        "10.1.5.5:40005",
        "192.0.2.1:443",
        mon(10, 0, 4),
        data,
        label("recipient", RecipientNotFiled)
            .scenario("S-A")
            .alerts(&[AlertKind::RecipientNotFiled]),
    );
    tcp(
        &mut g,
        "10.1.5.5:40006",
        "198.51.100.7:8443",
        mon(10, 0, 5),
        data,
        label("service", ServiceNotFiled).alerts(&[AlertKind::ServiceNotFiled]),
    );
    // Expiry: S-X's last valid day is 2026-03-02 (Beijing).
    tcp(
        &mut g,
        "10.4.0.9:40007",
        "203.0.113.9:443",
        mon(23, 59, 59) - 10_000,
        data,
        label("last valid day", Filed).scenario("S-X"),
    );
    tcp(
        &mut g,
        "10.4.0.9:40008",
        "203.0.113.9:443",
        beijing_micros(2026, 3, 3, 0, 0, 0),
        data,
        label("day after", FilingExpired).alerts(&[AlertKind::FilingExpired]),
    );
    // Window edges (S-A mon-fri 08:00-20:00).
    tcp(
        &mut g,
        "10.1.5.5:40009",
        "198.51.100.7:443",
        mon(19, 59, 59) - 10_000,
        data,
        label("19:59:59", Filed).scenario("S-A"),
    );
    tcp(
        &mut g,
        "10.1.5.5:40010",
        "198.51.100.7:443",
        mon(20, 0, 0),
        data,
        label("20:00:00", OutsideWindow).alerts(&[AlertKind::OutsideWindow]),
    );
    // Window across midnight (S-N Monday 22:00 - Tuesday 06:00).
    tcp(
        &mut g,
        "10.5.0.9:40011",
        "203.0.113.9:443",
        mon(23, 59, 59) - 10_000,
        data,
        label("mon 23:59:59", Filed).scenario("S-N"),
    );
    tcp(
        &mut g,
        "10.5.0.9:40012",
        "203.0.113.9:443",
        beijing_micros(2026, 3, 3, 0, 0, 0),
        data,
        label("tue 00:00:00", Filed).scenario("S-N"),
    );
    tcp(
        &mut g,
        "10.5.0.9:40013",
        "203.0.113.9:443",
        beijing_micros(2026, 3, 3, 6, 0, 0),
        data,
        label("tue 06:00:00", OutsideWindow),
    );
    // The foreign side opens the connection: the domestic end is still the exporter.
    g.tcp(
        &TcpFlow::new(
            addr("198.51.100.7:50000"),
            addr("10.1.2.3:443"),
            mon(11, 0, 0),
        )
        .send(b"GET /dataset".to_vec())
        .reply(vec![b'r'; 3000]),
        label("foreign-initiated", Filed).scenario("S-B"),
    );
    // VLAN tag and IPv6.
    g.tcp(
        &TcpFlow::new(
            addr("10.1.2.4:40014"),
            addr("198.51.100.8:443"),
            mon(11, 0, 1),
        )
        .send(data.to_vec())
        .vlan(120),
        label("vlan", Filed).scenario("S-B"),
    );
    tcp(
        &mut g,
        "[fd00:1::5]:40015",
        "[2001:db8::7]:8005",
        mon(11, 0, 2),
        data,
        label("ipv6", Filed).scenario("S-6"),
    );
    tcp(
        &mut g,
        "[fd00:1::5]:40016",
        "[2001:db8::7]:8011",
        mon(11, 0, 3),
        data,
        label("ipv6 port", ServiceNotFiled),
    );
    tcp(
        &mut g,
        "10.1.5.5:40017",
        "10.9.9.9:443",
        mon(11, 0, 4),
        data,
        label("internal", NotCrossBorder),
    );

    let out = run(dir.path(), REGISTRY, "", &g, 2);
    out.check_labels(&g.labels);

    let f = out.flow(&g.labels[13]);
    assert_eq!(f.direction, Some(Direction::Import));
    // Export bytes are what the domestic responder sent (3000 bytes of payload + headers).
    let toclient = f.flow.as_ref().map(|r| r.bytes_toclient);
    assert_eq!(f.export_bytes, toclient);
    assert!(f.export_bytes.unwrap_or(0) > 3000);
    let internal = out.flow(&g.labels[17]);
    assert_eq!(internal.direction, Some(Direction::Internal));
    assert!(out.alerts(&g.labels[17]).is_empty());
    // Filed flows raise no verdict alert.
    assert!(
        out.alerts(&g.labels[0]).is_empty(),
        "{:?}",
        out.alerts(&g.labels[0])
    );
    let unfiled = out.alerts(&g.labels[3]);
    assert_eq!(unfiled[0].severity, Severity::High);
    assert_eq!(unfiled[0].service.as_deref(), Some("tcp/22"));
}

#[test]
fn names_from_sni_http_dns_and_ech() {
    use VerdictStatus::*;
    let dir = scratch("detect-names");
    let mut g = Generator::new();
    let t = mon(10, 0, 0);
    let hello = |sni: &str, ech: bool| tls_client_hello(Some(sni), ech);
    tcp(
        &mut g,
        "10.1.5.5:41001",
        "192.0.2.1:443",
        t,
        &hello("x.cro.example", false),
        label("exact over wildcard", Filed).scenario("S-C"),
    );
    tcp(
        &mut g,
        "10.1.5.5:41002",
        "192.0.2.1:443",
        t + 1000,
        &hello("y.cro.example", false),
        label("wildcard", Filed).scenario("S-A"),
    );
    tcp(
        &mut g,
        "10.1.5.5:41003",
        "192.0.2.1:443",
        t + 2000,
        &hello("cro.example", false),
        label("bare parent", RecipientNotFiled),
    );
    tcp(
        &mut g,
        "10.1.5.5:41004",
        "192.0.2.1:443",
        t + 3000,
        &hello("y.cro.example", true),
        label("ech outer sni", RecipientNotFiled),
    );
    // DNS says y.cro.example is 192.0.2.77; an ECH flow to that address matches by DNS name.
    g.dns_answer(
        addr("10.1.5.5:5353"),
        addr("10.0.0.53:53"),
        t + 4000,
        "y.cro.example",
        None,
        &["192.0.2.77".parse().expect("ip")],
    );
    tcp(
        &mut g,
        "10.1.5.5:41005",
        "192.0.2.77:443",
        t + 10_000,
        &hello("cover.example", true),
        label("ech + dns", Filed).scenario("S-A"),
    );
    // HTTP Host header.
    tcp(
        &mut g,
        "10.1.5.5:41007",
        "192.0.2.2:443",
        t + 40_000,
        &http_post("api.partner.example", "/v1/upload", b"{}"),
        label("http host", Filed).scenario("S-A"),
    );

    // QUIC Initials: the SNI is found, but S-A files tcp/443 only.
    let quic: Vec<(Side, Vec<u8>)> = crossline_testgen::quic_initials("api.partner.example")
        .into_iter()
        .map(|d| (Side::Client, d))
        .collect();
    g.udp(
        addr("10.1.5.5:41008"),
        addr("192.0.2.3:443"),
        t + 50_000,
        1000,
        None,
        &quic,
        label("quic", ServiceNotFiled).scenario("S-A"),
    );
    let out = run(dir.path(), REGISTRY, "", &g, 1);
    out.check_labels(&g.labels);
    let v = |i: usize| out.flow(&g.labels[i]).verdict.clone().expect("verdict");
    assert_eq!(v(6).name_source.as_deref(), Some("quic"));
    assert_eq!(v(0).name_source.as_deref(), Some("tls"));
    assert!(v(3).ech);
    assert_eq!((v(4).name_source.as_deref(), v(4).ech), (Some("dns"), true));
    assert_eq!(v(5).name_source.as_deref(), Some("http"));
}

#[test]
fn personal_information_split_glued_and_bad_checks() {
    let dir = scratch("detect-pi");
    let mut g = Generator::new();
    let body = b"{\"id\":\"11010519491231002X\",\"tel\":\"+8613812345678\",\"card\":\"6222000000000000004\",\"bad\":\"110105194912310021\",\"glued\":\"9138123456781\"}";
    // Segments of 7 bytes: every identifier is split across packets.
    let mut f = TcpFlow::new(
        addr("10.99.0.1:42001"),
        addr("198.51.100.7:80"),
        mon(10, 0, 0),
    )
    .send(http_post("upload.example", "/x", body));
    f.mss = 7;
    g.tcp(
        &f,
        Label::new("pi", Some(VerdictStatus::Unfiled)).alerts(&[AlertKind::PersonalInfoCleartext]),
    );
    // Filed scenario with personal data: medium.
    tcp(
        &mut g,
        "10.1.2.3:42002",
        "198.51.100.7:443",
        mon(10, 0, 1),
        b"mail alice@example.com",
        Label::new("filed pi", Some(VerdictStatus::Filed)),
    );
    let out = run(dir.path(), REGISTRY, "", &g, 1);
    out.check_labels(&g.labels);
    let pi: Vec<&Alert> = out
        .alerts(&g.labels[0])
        .into_iter()
        .filter(|a| a.kind == AlertKind::PersonalInfoCleartext)
        .collect();
    assert_eq!(pi.len(), 1);
    assert_eq!(pi[0].severity, Severity::High);
    assert_eq!(
        pi[0].evidence,
        vec!["110105********002X", "138****5678", "6222***********0004"]
    );
    assert!(
        pi[0]
            .summary
            .contains("1 resident ID number, 1 mobile number, 1 bank card number"),
        "{}",
        pi[0].summary
    );
    let json: String = out
        .events
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect();
    for raw in [
        "11010519491231002X",
        "13812345678",
        "6222000000000000004",
        "alice@example.com",
    ] {
        assert!(!json.contains(raw), "raw identifier {raw} in the output");
    }
    let filed: Vec<&Alert> = out
        .alerts(&g.labels[1])
        .into_iter()
        .filter(|a| a.kind == AlertKind::PersonalInfoCleartext)
        .collect();
    assert_eq!(filed.len(), 1);
    assert_eq!(
        (filed[0].severity, filed[0].evidence.clone()),
        (Severity::Med, vec!["a***@example.com".to_string()])
    );
}

#[test]
fn caps_over_two_days_and_surge_vs_quiet_scenario() {
    let dir = scratch("detect-volume");
    let mut g = Generator::new();
    let chunk = vec![b'd'; 8000];
    // S-B: 20 KB a day. Day 1: three flows of ~8 KB -> cap passed on the third; 2x on the 5th.
    for i in 0..5u16 {
        tcp(
            &mut g,
            &format!("10.1.2.3:{}", 43000 + i),
            "198.51.100.7:443",
            mon(10, i.into(), 0),
            &chunk,
            Label::new("cap day 1", None),
        );
    }
    // Day 2: two flows, below the cap again.
    for i in 0..2u16 {
        tcp(
            &mut g,
            &format!("10.1.2.3:{}", 43100 + i),
            "198.51.100.7:443",
            beijing_micros(2026, 3, 3, 10, i.into(), 0),
            &chunk,
            Label::new("cap day 2", None),
        );
    }
    // Surge: S-D sends ~12 KB at Monday 10:00 for three weeks, then ~60 KB in week four.
    let week = 7 * 86_400 * 1_000_000i64;
    for w in 0..3 {
        tcp(
            &mut g,
            &format!("10.3.1.1:{}", 43200 + w),
            "203.0.113.5:443",
            mon(10, 30, 0) + i64::from(w) * week,
            &vec![b'x'; 12_000 + 500 * w as usize],
            Label::new("baseline", None),
        );
    }
    tcp(
        &mut g,
        "10.3.1.1:43300",
        "203.0.113.5:443",
        mon(10, 30, 0) + 3 * week,
        &vec![b'x'; 60_000],
        Label::new("surge", Some(VerdictStatus::Filed)),
    );
    // A quiet scenario waking up with the same volume: no baseline, no surge.
    tcp(
        &mut g,
        "10.6.1.1:43301",
        "203.0.113.5:443",
        mon(10, 30, 0) + 3 * week,
        &vec![b'x'; 60_000],
        Label::new("quiet", Some(VerdictStatus::Filed)),
    );
    let out = run(
        dir.path(),
        REGISTRY,
        "[detect]\nsurge_floor_bytes = \"20 KB\"\n",
        &g,
        2,
    );
    out.check_labels(&g.labels);
    let caps = out.all_alerts(AlertKind::VolumeCapExceeded);
    let sev: Vec<Severity> = caps.iter().map(|a| a.severity).collect();
    assert_eq!(sev, vec![Severity::Med, Severity::High], "{caps:?}");
    assert!(
        caps[0].summary.contains("2026-03-02"),
        "{}",
        caps[0].summary
    );
    let surges = out.all_alerts(AlertKind::VolumeSurge);
    assert_eq!(surges.len(), 1, "{surges:?}");
    assert_eq!(surges[0].scenario.as_deref(), Some("S-D"));
    assert!(out.alerts(&g.labels[g.labels.len() - 1]).is_empty());
}

#[test]
fn tunnels_misuse_signatures_persons_expiry_country_gap_and_folding() {
    let dir = scratch("detect-misc");
    let mut g = Generator::new();
    let t = mon(10, 0, 0);
    // WireGuard handshake initiation (148 bytes, type 1) to an unfiled port of a filed host.
    let mut wg = vec![1u8, 0, 0, 0];
    wg.extend(noise(144, 3));
    g.udp(
        addr("10.3.1.1:51820"),
        addr("203.0.113.50:51820"),
        t,
        1000,
        None,
        &[(Side::Client, wg), (Side::Server, noise(92, 4))],
        Label::new("wireguard", Some(VerdictStatus::Filed)).alerts(&[AlertKind::OpaqueTunnel]),
    );
    // Random bytes over TCP with no protocol.
    tcp(
        &mut g,
        "10.3.1.1:44001",
        "203.0.113.51:9999",
        t,
        &noise(2000, 5),
        Label::new("entropy", Some(VerdictStatus::Filed)).alerts(&[AlertKind::OpaqueTunnel]),
    );
    tcp(
        &mut g,
        "10.3.1.1:44002",
        "203.0.113.51:9999",
        t + 1000,
        &vec![b'a'; 2000],
        Label::new("low entropy", Some(VerdictStatus::Filed)),
    );
    // Five foreign sources reach the same domestic service.
    for i in 1..=5u8 {
        tcp(
            &mut g,
            &format!("192.0.2.{i}:5000"),
            "10.1.2.3:8080",
            t + i64::from(i) * 10_000,
            b"GET / HTTP/1.1\r\n\r\n",
            Label::new("misuse", None),
        );
    }
    // Signatures.
    tcp(
        &mut g,
        "10.1.2.3:44003",
        "198.51.100.9:443",
        t + 100_000,
        b"rows VIN_BATCH_EXPORT rows",
        Label::new("negative list", Some(VerdictStatus::Filed))
            .alerts(&[AlertKind::NegativeListCategory]),
    );
    tcp(
        &mut g,
        "10.1.2.3:44004",
        "198.51.100.9:443",
        t + 200_000,
        b"SURVEY-GRADE-GEODATA tile 7",
        Label::new("important", Some(VerdictStatus::Filed))
            .alerts(&[AlertKind::ImportantDataMarker]),
    );
    // Persons: S-P declares 10 persons a year; 12 distinct mobile numbers.
    let phones: Vec<u8> = (0..12)
        .flat_map(|i| format!("tel 1390000{i:04};").into_bytes())
        .collect();
    tcp(
        &mut g,
        "10.7.0.5:44005",
        "203.0.113.9:443",
        t + 300_000,
        &phones,
        Label::new("persons", Some(VerdictStatus::Filed)),
    );
    // Country: 198.51.100.128/25 is in the US, S-B files DE.
    tcp(
        &mut g,
        "10.1.2.3:44006",
        "198.51.100.200:443",
        t + 400_000,
        b"data",
        Label::new("country", Some(VerdictStatus::Filed)).alerts(&[AlertKind::CountryMismatch]),
    );
    // Repeated unfiled exports: one alert at once, one follow-up with the count at the end.
    for i in 0..4u16 {
        tcp(
            &mut g,
            &format!("10.99.0.1:{}", 44100 + i),
            "198.51.100.7:22",
            t + 500_000 + i64::from(i) * 1000,
            b"x",
            Label::new("repeat", Some(VerdictStatus::Unfiled)),
        );
    }
    // Many open flows in a tiny table: evictions -> sensor gap.
    for i in 0..40u16 {
        let f = TcpFlow {
            close: false,
            ..TcpFlow::new(
                addr(&format!("10.8.0.1:{}", 45000 + i)),
                addr("203.0.113.99:443"),
                t + 2_000_000 + i64::from(i) * 1000,
            )
        };
        g.tcp(&f.send(b"hi".to_vec()), Label::new("evict", None));
    }
    let net = |s: &str, l| {
        crossline_config::registry::IpNet::new(s.parse().expect("ip"), l).expect("net")
    };
    crossline_testgen::write_mmdb(
        &dir.path().join("geo.mmdb"),
        &[
            (net("198.51.100.0", 25), "DE"),
            (net("198.51.100.128", 25), "US"),
        ],
    )
    .expect("mmdb");
    let mut registry = REGISTRY.to_string();
    registry.push_str(
        r#"
[[scenario]]
id = "S-SOON"
enterprise = "beta"
basis = "standard_contract"
filing_ref = "F-SOON"
recipient = { name = "Example Partner", country = "JP" }
activity = "manufacturing"
data = ["none"]
valid_from = 2026-01-01
valid_until = 2026-03-31
sources = ["10.9.0.0/16"]
destinations = ["203.0.113.0/24"]
"#,
    );
    let extra = r#"
[capture]
flows_per_worker = 16

[detect]
misuse_sources = 5
geoip = "geo.mmdb"

[[detect.signature]]
id = "vin"
kind = "negative_list"
pattern = "VIN_BATCH_EXPORT"
category = "automotive/vin"
approved_scenarios = ["S-D"]

[[detect.signature]]
id = "geo"
kind = "important_data"
pattern = "SURVEY-GRADE-GEODATA"
category = "important/geographic-survey"
"#;
    let out = run(dir.path(), &registry, extra, &g, 1);
    out.check_labels(&g.labels);
    assert_eq!(out.all_alerts(AlertKind::LineMisuse).len(), 1);
    let p = out.all_alerts(AlertKind::PersonsThreshold);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].enterprise.as_deref(), p[0].persons),
        (Some("beta"), Some(12))
    );
    // S-X ends on the capture day itself (0 days left), S-SOON 29 days later; once each.
    let soon: Vec<Option<&str>> = out
        .all_alerts(AlertKind::FilingExpiring)
        .iter()
        .map(|a| a.scenario.as_deref())
        .collect();
    assert_eq!(soon, vec![Some("S-X"), Some("S-SOON")]);
    assert!(!out.all_alerts(AlertKind::SensorGap).is_empty());
    let imp = out.all_alerts(AlertKind::ImportantDataMarker);
    assert_eq!(imp[0].severity, Severity::Crit);
    let repeats: Vec<&Alert> = out
        .all_alerts(AlertKind::UnfiledExport)
        .into_iter()
        .filter(|a| a.service.as_deref() == Some("tcp/22"))
        .collect();
    assert_eq!(repeats.len(), 2, "{repeats:?}");
    assert!(!repeats[0].followup);
    assert!(repeats[1].followup);
    assert_eq!(repeats[1].count, 3);
    assert!(out.shared.pi_found() >= 12);
}

/// Swaps the registry when packet time passes `at` (deterministic "reload in mid-capture").
struct ReloadAt {
    inner: Classifier,
    at: i64,
    path: PathBuf,
    done: bool,
}

impl Analysis for ReloadAt {
    type FlowState = FlowState;

    fn on_payload(&mut self, s: &mut FlowState, v: &PayloadView<'_>) {
        self.inner.on_payload(s, v);
    }

    fn on_flow_record(&mut self, s: &mut FlowState, f: &FlowSummary<'_>, out: &mut Findings) {
        self.inner.on_flow_record(s, f, out);
    }

    fn name_of(&self, name: NameRef) -> Option<&str> {
        self.inner.name_of(name)
    }

    fn on_tick(&mut self, now: i64, h: &Health, out: &mut Findings) {
        if !self.done && now >= self.at {
            self.done = true;
            self.inner
                .shared()
                .registry()
                .reload_from_at(&self.path, today())
                .expect("reload");
        }
        self.inner.on_tick(now, h, out);
    }
}

#[test]
fn hot_reload_in_mid_capture_keeps_counters() {
    let dir = scratch("detect-reload");
    let mut g = Generator::new();
    let chunk = vec![b'd'; 8000];
    // Before the reload: 10.1.2.3 -> 203.0.113.7 is not a filed recipient; S-B counts bytes.
    tcp(
        &mut g,
        "10.1.2.3:46001",
        "203.0.113.7:443",
        mon(10, 0, 0),
        b"x",
        Label::new("before", Some(VerdictStatus::RecipientNotFiled)),
    );
    tcp(
        &mut g,
        "10.1.2.3:46002",
        "198.51.100.7:443",
        mon(10, 0, 1),
        &chunk,
        Label::new("S-B before", Some(VerdictStatus::Filed)),
    );
    // After (10:05): the new registry files 203.0.113.0/24 for S-B.
    tcp(
        &mut g,
        "10.1.2.3:46003",
        "203.0.113.7:443",
        mon(10, 10, 0),
        b"x",
        Label::new("after", Some(VerdictStatus::Filed)).scenario("S-B"),
    );
    tcp(
        &mut g,
        "10.1.2.3:46004",
        "198.51.100.7:443",
        mon(10, 10, 1),
        &chunk,
        Label::new("S-B after", Some(VerdictStatus::Filed)),
    );
    let cfg = config(dir.path(), REGISTRY, "");
    let new_registry = REGISTRY.replace(
        "sources = [\"10.1.2.0/24\"]\ndestinations = [\"198.51.100.0/24\"]",
        "sources = [\"10.1.2.0/24\"]\ndestinations = [\"198.51.100.0/24\", \"203.0.113.0/24\"]",
    );
    assert_ne!(new_registry, REGISTRY);
    let path2 = dir.path().join("registry-2.toml");
    std::fs::write(&path2, new_registry).expect("write");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[scenario]]\nid = 5\n").expect("write");
    let at = mon(10, 5, 0);
    let out = run_with(dir.path(), &cfg, &g, 1, |i, s| ReloadAt {
        inner: Classifier::new(s, i),
        at,
        path: path2.clone(),
        done: false,
    });
    out.check_labels(&g.labels);
    let reg = out.shared.registry();
    assert_eq!(reg.generation(), 2);
    // A bad file is refused, the old one stays.
    assert!(reg.reload_from_at(&bad, today()).is_err());
    assert_eq!((reg.generation(), reg.reload_failures()), (2, 1));
    // S-B's daily bytes span the reload: both 8 KB flows (and the small one) are counted.
    let u = out.shared.scenario_usage();
    let sb = u.iter().find(|u| u.scenario == "S-B").expect("S-B usage");
    assert!(sb.export_bytes > 16_000, "{sb:?}");
    assert_eq!(sb.cap, Some(20_000));
}

/// A registry of one enterprise whose scenarios the tests below append.
const SMALL: &str = r#"
[[enterprise]]
id = "gamma"
name = "Gamma Retail"
uscc = "91110108MA01PH7K91"
"#;

fn scenario(id: &str, sources: &str, destinations: &str, from: &str, until: &str) -> String {
    format!(
        r#"
[[scenario]]
id = "{id}"
enterprise = "gamma"
basis = "security_assessment"
filing_ref = "F-{id}"
recipient = {{ name = "Example Retail Ltd", country = "SG" }}
activity = "retail"
data = ["personal"]
valid_from = {from}
valid_until = {until}
sources = [{sources}]
destinations = [{destinations}]
services = ["tcp/80", "tcp/443"]
"#
    )
}

fn label_at(name: &str, v: VerdictStatus, src: &str, dst: &str, proto: u8) -> Label {
    let mut l = Label::new(name, Some(v));
    l.src = addr(src);
    l.dst = addr(dst);
    l.ip_proto = proto;
    l
}

#[test]
fn flow_name_beats_dns_name_and_never_files_a_foreign_initiator() {
    use VerdictStatus::*;
    let dir = scratch("detect-precedence");
    let registry = format!(
        "{SMALL}{}",
        scenario(
            "S-CDN",
            "\"10.11.0.0/16\"",
            "\"assets.example-filed.com\", \"203.0.113.128/25\"",
            "2026-01-01",
            "2026-12-31"
        )
    );
    let mut g = Generator::new();
    let t = mon(10, 0, 0);
    // A DNS answer on the line: the filed name is served from a CDN address.
    g.dns_answer(
        addr("10.11.0.5:5353"),
        addr("10.0.0.53:53"),
        t,
        "assets.example-filed.com",
        None,
        &["198.51.100.40".parse().expect("ip")],
    );
    // The same CDN address, but the flow names another host: not the filed recipient.
    tcp(
        &mut g,
        "10.11.0.5:47001",
        "198.51.100.40:80",
        t + 10_000,
        &http_post("a.cdn-other.com", "/upload", b"customer rows"),
        label("other host on a filed name's address", RecipientNotFiled)
            .scenario("S-CDN")
            .alerts(&[AlertKind::RecipientNotFiled]),
    );
    // Same for a TLS server name.
    tcp(
        &mut g,
        "10.11.0.5:47002",
        "198.51.100.40:443",
        t + 20_000,
        &tls_client_hello(Some("a.cdn-other.com"), false),
        label("other sni on a filed name's address", RecipientNotFiled),
    );
    // A flow without a name of its own: the DNS-learned name files it.
    tcp(
        &mut g,
        "10.11.0.5:47003",
        "198.51.100.40:443",
        t + 30_000,
        b"\x00\x01binary upload without a name",
        label("no own name", Filed).scenario("S-CDN"),
    );
    // Its own name is the filed one: filed by the flow's name.
    tcp(
        &mut g,
        "10.11.0.5:47004",
        "198.51.100.40:443",
        t + 40_000,
        &tls_client_hello(Some("assets.example-filed.com"), false),
        label("own filed name", Filed).scenario("S-CDN"),
    );
    // A foreign client sends the filed name as SNI to a domestic server: the name describes
    // the domestic server, never the foreign initiator.
    g.tcp(
        &TcpFlow::new(addr("192.0.2.44:50001"), addr("10.11.0.9:443"), t + 50_000)
            .send(tls_client_hello(Some("assets.example-filed.com"), false))
            .reply(vec![b'r'; 2000]),
        label("foreign initiator with the filed sni", RecipientNotFiled)
            .alerts(&[AlertKind::RecipientNotFiled]),
    );
    g.tcp(
        &TcpFlow::new(addr("192.0.2.44:50002"), addr("10.11.0.9:80"), t + 60_000)
            .send(http_post("assets.example-filed.com", "/pull", b"{}"))
            .reply(vec![b'r'; 2000]),
        label("foreign initiator with the filed host", RecipientNotFiled),
    );
    // A foreign client from a filed address: filed by the address.
    g.tcp(
        &TcpFlow::new(
            addr("203.0.113.200:50003"),
            addr("10.11.0.9:443"),
            t + 70_000,
        )
        .send(tls_client_hello(Some("anything.example"), false))
        .reply(vec![b'r'; 2000]),
        label("foreign initiator from a filed prefix", Filed).scenario("S-CDN"),
    );
    let out = run(dir.path(), &registry, "", &g, 1);
    out.check_labels(&g.labels);
    let v = |i: usize| out.flow(&g.labels[i]).verdict.clone().expect("verdict");
    assert_eq!(v(0).name_source, None, "{:?}", v(0));
    assert_eq!(v(2).name_source.as_deref(), Some("dns"));
    assert_eq!(v(3).name_source.as_deref(), Some("tls"));
    assert_eq!(v(6).name_source, None);
    // The alert names the flow's own host, not the DNS name of the address.
    let a = out.alerts(&g.labels[0]);
    assert_eq!(a[0].recipient.as_deref(), Some("a.cdn-other.com"), "{a:?}");
    // For a foreign initiator the recipient is its address, not the domestic server's name.
    let a = out.alerts(&g.labels[4]);
    assert_eq!(a[0].recipient.as_deref(), Some("192.0.2.44"), "{a:?}");
    assert!(
        !a[0].summary.contains("assets.example-filed.com"),
        "{}",
        a[0].summary
    );
}

#[test]
fn filing_not_yet_valid_before_valid_from_and_dates_on_expiry_alerts() {
    use VerdictStatus::*;
    let dir = scratch("detect-not-yet");
    let registry = format!(
        "{SMALL}{}{}{}",
        scenario(
            "S-LATER",
            "\"10.12.0.0/16\"",
            "\"203.0.113.0/24\"",
            "2026-04-01",
            "2029-03-31"
        ),
        scenario(
            "S-LATER-2",
            "\"10.12.0.0/16\"",
            "\"203.0.113.0/24\"",
            "2026-05-01",
            "2029-04-30"
        ),
        scenario(
            "S-OLD",
            "\"10.13.0.0/16\"",
            "\"203.0.113.0/24\"",
            "2023-03-01",
            "2026-02-28"
        ),
    );
    let mut g = Generator::new();
    tcp(
        &mut g,
        "10.12.0.5:48001",
        "203.0.113.7:443",
        mon(10, 0, 0),
        b"orders of the day",
        label("before valid_from", FilingNotYetValid)
            .scenario("S-LATER")
            .alerts(&[AlertKind::FilingNotYetValid]),
    );
    // On its first day the filing covers the flow.
    tcp(
        &mut g,
        "10.12.0.5:48002",
        "203.0.113.7:443",
        beijing_micros(2026, 4, 1, 0, 0, 0),
        b"orders of the day",
        label("first valid day", Filed).scenario("S-LATER"),
    );
    tcp(
        &mut g,
        "10.13.0.5:48003",
        "203.0.113.7:443",
        mon(10, 0, 0),
        b"orders of the day",
        label("after valid_until", FilingExpired)
            .scenario("S-OLD")
            .alerts(&[AlertKind::FilingExpired]),
    );
    let out = run(dir.path(), &registry, "", &g, 1);
    out.check_labels(&g.labels);
    let a: Vec<&Alert> = out
        .alerts(&g.labels[0])
        .into_iter()
        .filter(|a| a.kind == AlertKind::FilingNotYetValid)
        .collect();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].rule, "XB-004");
    assert_eq!(a[0].severity, Severity::High);
    // 2 March to 1 April: 30 calendar days.
    assert_eq!(a[0].days_left, Some(30));
    assert_eq!(
        (a[0].valid_from.as_deref(), a[0].valid_until.as_deref()),
        (Some("2026-04-01"), Some("2029-03-31"))
    );
    assert!(
        a[0].summary.contains("starts on 2026-04-01"),
        "{}",
        a[0].summary
    );
    assert!(!a[0].summary.contains("expired"), "{}", a[0].summary);
    let e: Vec<&Alert> = out
        .alerts(&g.labels[2])
        .into_iter()
        .filter(|a| a.kind == AlertKind::FilingExpired)
        .collect();
    assert_eq!(
        (e[0].valid_from.as_deref(), e[0].valid_until.as_deref()),
        (Some("2023-03-01"), Some("2026-02-28"))
    );
    assert_eq!(e[0].days_left, None);
    // A filing that has not started is never "expiring" nor "expired".
    for a in out.all_alerts(AlertKind::FilingExpiring) {
        assert_ne!(a.scenario.as_deref(), Some("S-LATER"), "{a:?}");
    }
}

#[test]
fn excluded_resolver_traffic_is_counted_not_alerted() {
    use VerdictStatus::*;
    let dir = scratch("detect-exclude");
    let mut g = Generator::new();
    let t = mon(10, 0, 0);
    // Queries to a foreign resolver.
    for i in 0..3u16 {
        g.dns_answer(
            addr(&format!("10.99.0.1:{}", 5300 + i)),
            addr("8.8.8.8:53"),
            t + i64::from(i) * 1_000_000,
            "www.example.org",
            None,
            &["192.0.2.80".parse().expect("ip")],
        );
        g.labels.push(
            label_at(
                "resolver",
                Excluded,
                &format!("10.99.0.1:{}", 5300 + i),
                "8.8.8.8:53",
                17,
            )
            .alerts(&[]),
        );
    }
    // NTP to anywhere.
    g.udp(
        addr("10.99.0.1:123"),
        addr("192.0.2.123:123"),
        t + 5_000_000,
        1000,
        None,
        &[
            (Side::Client, vec![0x23; 48]),
            (Side::Server, vec![0x24; 48]),
        ],
        Label::new("ntp", Some(Excluded)),
    );
    // The same host exports to another address: still unfiled.
    tcp(
        &mut g,
        "10.99.0.1:49001",
        "192.0.2.80:443",
        t + 6_000_000,
        b"payroll export tel 13912345678",
        label("export", Unfiled).alerts(&[AlertKind::UnfiledExport]),
    );
    // A datagram to the resolver carrying a mobile number: excluded, not scanned.
    g.udp(
        addr("10.99.0.1:5399"),
        addr("1.1.1.1:53"),
        t + 6_500_000,
        1000,
        None,
        &[(
            Side::Client,
            b"\x12\x34 tel 13987654321 13911112222".to_vec(),
        )],
        Label::new("resolver with digits", Some(Excluded)),
    );
    // Another service on the resolver's address is not the resolver.
    tcp(
        &mut g,
        "10.99.0.1:49002",
        "8.8.8.8:443",
        t + 7_000_000,
        b"payroll export",
        label("resolver address, other service", Unfiled),
    );
    let extra = r#"
[[exclude]]
name = "resolvers"
prefixes = ["8.8.8.8/32", "1.1.1.1/32"]
services = ["udp/53", "tcp/53"]

[[exclude]]
name = "ntp"
services = ["udp/123"]
"#;
    let out = run(dir.path(), REGISTRY, extra, &g, 2);
    out.check_labels(&g.labels);
    for l in &g.labels[..4] {
        let f = out.flow(l);
        let v = f.verdict.as_ref().expect("verdict");
        assert_eq!(v.status, Excluded, "{}", l.name);
        assert!(out.alerts(l).is_empty(), "{}: {:?}", l.name, out.alerts(l));
        assert!(f.export_bytes.unwrap_or(0) > 0, "{}", l.name);
    }
    let v = |i: usize| out.flow(&g.labels[i]).verdict.clone().expect("verdict");
    assert_eq!(v(0).exclude.as_deref(), Some("resolvers"));
    assert_eq!(v(3).exclude.as_deref(), Some("ntp"));
    assert_eq!(v(4).exclude, None);
    let stats = out
        .events
        .iter()
        .rev()
        .find_map(|e| e.stats.as_ref())
        .expect("final stats event");
    assert_eq!(stats.excluded.get("resolvers"), Some(&4), "{stats:?}");
    assert_eq!(stats.excluded.get("ntp"), Some(&1), "{stats:?}");
    assert_eq!(stats.verdicts.get("excluded"), Some(&5), "{stats:?}");
    // Only the export's mobile number was counted; the resolver datagram's were not scanned.
    assert_eq!(out.shared.pi_found(), 1);
    assert!(out.alerts(&g.labels[5]).is_empty());
    // And on /metrics, labelled by entry name.
    let m = crossline_agent::metrics::AgentMetrics::new();
    m.observe_live(&out.live);
    let text = m.render();
    for line in [
        "crossline_agent_excluded_flows_total{exclude=\"resolvers\"} 4",
        "crossline_agent_excluded_flows_total{exclude=\"ntp\"} 1",
        "crossline_agent_verdicts_total{verdict=\"excluded\"} 5",
    ] {
        assert!(text.contains(line), "no {line} in\n{text}");
    }
}

#[test]
fn exclude_entries_are_validated_with_file_line_and_value() {
    let dir = scratch("detect-exclude-bad");
    std::fs::write(dir.path().join("registry.toml"), REGISTRY).expect("write registry");
    let agent = r#"gateway = "gw-test"
domestic = ["10.0.0.0/8"]
registry = "registry.toml"

[[exclude]]
name = "resolvers"
prefixes = ["8.8.8.300/32"]
services = ["udp/53"]

[[exclude]]
name = "resolvers"
services = ["dns/53"]

[[exclude]]
name = "everything"

[[exclude]]
name = "inside"
prefixes = ["10.1.0.0/16"]
hosts = ["*.Bad.example"]

[[exclude]]
name = "all"
services = ["any"]

[[holidays]]
year = 2027
off = ["2027-01-01", "2027-02-06..2027-02-01", "2028-01-01"]
workdays = ["2027-01-01"]
"#;
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, agent).expect("write agent.toml");
    // An entry matching everything is valid but warned about.
    let broad = "gateway = \"gw-test\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\nregistry = \"registry.toml\"\n\n[[exclude]]\nname = \"all\"\nprefixes = [\"0.0.0.0/0\"]\n";
    let broad_path = dir.path().join("broad.toml");
    std::fs::write(&broad_path, broad).expect("write broad.toml");
    let (_, warnings) =
        crossline_config::load_agent_config(&broad_path, today()).expect("valid with a warning");
    assert!(
        warnings
            .iter()
            .any(|w| w.line == 6 && w.message.contains("matches every cross-border flow")),
        "{warnings:?}"
    );
    let err = crossline_config::load_agent_config(&path, today()).expect_err("invalid");
    let text = err.to_string();
    let file = path.display().to_string();
    for (line, what) in [
        (7, "exclude.prefixes: \"8.8.8.300/32\""),
        (11, "exclude.name: duplicate name \"resolvers\""),
        (12, "exclude.services: \"dns/53\""),
        (
            15,
            "exclude \"everything\": no `prefixes`, `hosts` or `services`",
        ),
        (
            19,
            "exclude.prefixes: 10.1.0.0/16 lies inside the domestic prefix 10.0.0.0/8",
        ),
        (
            20,
            "exclude.hosts: \"*.Bad.example\" has upper-case letters",
        ),
        (
            28,
            "holidays.off: \"2027-02-06..2027-02-01\" ends before it starts",
        ),
        (28, "holidays.off: \"2028-01-01\" is not in 2027"),
        (29, "holidays.workdays: 2027-01-01 is also listed in `off`"),
    ] {
        let want = format!("{file}:{line}:");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&want) && l.contains(what)),
            "no `{what}` at line {line} in:\n{text}"
        );
    }
}

/// One flow a day from 1 February to 3 March 2026 (31 days, across the Spring Festival) and a
/// filing ending on 15 April 2026.
#[test]
fn filing_expiring_once_per_level_over_a_month_in_working_days() {
    let dir = scratch("detect-expiring-month");
    let registry = format!(
        "{SMALL}{}",
        scenario(
            "S-END",
            "\"10.14.0.0/16\"",
            "\"203.0.113.0/24\"",
            "2023-04-16",
            "2026-04-15"
        )
    );
    let mut g = Generator::new();
    let first = beijing_micros(2026, 2, 1, 10, 0, 0);
    for day in 0..31u16 {
        tcp(
            &mut g,
            &format!("10.14.0.5:{}", 40_000 + day),
            "203.0.113.7:443",
            first + i64::from(day) * 86_400_000_000,
            b"daily sales",
            Label::new("daily", Some(VerdictStatus::Filed)),
        );
    }
    let out = run(dir.path(), &registry, "", &g, 2);
    out.check_labels(&g.labels);
    let expiring: Vec<(String, Option<i64>)> = out
        .events
        .iter()
        .filter(|e| {
            e.alert
                .as_ref()
                .is_some_and(|a| a.kind == AlertKind::FilingExpiring)
        })
        .map(|e| {
            let day = crossline_config::event::parse_timestamp_micros(&e.timestamp)
                .map(|t| crossline_config::time::shanghai(t.div_euclid(1_000_000)).date);
            (
                day.map(|d| d.to_string()).unwrap_or_default(),
                e.alert.as_ref().and_then(|a| a.days_left),
            )
        })
        .collect();
    // 1 February: 48 working days left (the Spring Festival and its two make-up Saturdays
    // counted), level 60 at once; 3 March: 30 left, level 30. Counting calendar days, the first
    // warning would have come on 14 February and the second after the capture.
    assert_eq!(
        expiring,
        vec![
            ("2026-02-01".to_string(), Some(48)),
            ("2026-03-03".to_string(), Some(30)),
        ]
    );
    let a = out.all_alerts(AlertKind::FilingExpiring);
    assert!(
        a[1].summary.contains("30 working days left"),
        "{}",
        a[1].summary
    );
    assert_eq!(a[1].valid_until.as_deref(), Some("2026-04-15"));
}

#[test]
fn expiry_beyond_the_holiday_table_falls_back_to_calendar_days_until_a_year_is_added() {
    let dir = scratch("detect-holidays");
    let registry = format!(
        "{SMALL}{}",
        scenario(
            "S-2027",
            "\"10.15.0.0/16\"",
            "\"203.0.113.0/24\"",
            "2024-01-16",
            "2027-01-15"
        )
    );
    let mut g = Generator::new();
    tcp(
        &mut g,
        "10.15.0.5:40000",
        "203.0.113.7:443",
        beijing_micros(2026, 12, 20, 10, 0, 0),
        b"daily sales",
        Label::new("december", Some(VerdictStatus::Filed)),
    );
    let out = run(dir.path(), &registry, "", &g, 1);
    let a = out.all_alerts(AlertKind::FilingExpiring);
    assert_eq!(a.len(), 1, "{a:?}");
    // 20 December 2026 to 15 January 2027: 26 calendar days, no schedule for 2027.
    assert_eq!(a[0].days_left, Some(26));
    assert!(
        a[0].summary.contains("26 calendar days left")
            && a[0].summary.contains("no holiday schedule for 2027"),
        "{}",
        a[0].summary
    );
    assert!(out.shared.calendar_fallbacks() >= 1);
    let t = crossline_agent::metrics::Telemetry::new(None);
    t.set_detect(Arc::clone(&out.shared));
    t.refresh();
    let text = t.metrics().render();
    let line = text
        .lines()
        .find(|l| l.starts_with("crossline_agent_expiry_calendar_fallbacks_total "))
        .unwrap_or_else(|| panic!("no fallback counter in\n{text}"));
    assert_ne!(line, "crossline_agent_expiry_calendar_fallbacks_total 0");

    let dir2 = scratch("detect-holidays-2027");
    let extra = r#"
[[holidays]]
year = 2027
off = ["2027-01-01"]
"#;
    let out = run(dir2.path(), &registry, extra, &g, 1);
    let a = out.all_alerts(AlertKind::FilingExpiring);
    // 21-25 and 28-31 December, 4-8 and 11-15 January: 19 working days.
    assert_eq!(a[0].days_left, Some(19));
    assert!(
        a[0].summary.contains("19 working days left"),
        "{}",
        a[0].summary
    );
    assert_eq!(out.shared.calendar_fallbacks(), 0);
}
