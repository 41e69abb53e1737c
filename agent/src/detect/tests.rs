//! Unit tests of the detectors, calling the [`Classifier`] directly with hand-built flow
//! summaries and payloads. The pcap-driven suite is `agent/tests/detect.rs`.

use super::*;
use crate::analysis::{EndReason, FlowSummary, PayloadView};
use crate::classify::tests::{domestic, flow, registry};
use crate::worker::write_findings;
use crossline_config::agent::{Signature, SignatureKind};
use crossline_config::event::{format_eve_timestamp, FlowRecord};
use crossline_config::event::{Alert, AlertKind, Event, EventType, Severity, VerdictStatus};
use crossline_testgen::{beijing_micros, pi_records};
use std::path::PathBuf;

const REG: &str = r#"
[[enterprise]]
id = "acme"
name = "Acme Pharma"
uscc = "91110108MA01PH7K91"
green_channel = true

[[enterprise]]
id = "beta"
name = "Beta Motors"
uscc = "91110113MA02AUT85J"

[[scenario]]
id = "S-A"
enterprise = "acme"
basis = "exemption"
exemption = "art5_small"
filing_ref = "F-A"
recipient = { name = "Example CRO GmbH", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2026-04-15
sources = ["10.1.0.0/16"]
destinations = ["198.51.100.0/24"]
services = ["tcp/443"]
caps = { bytes_per_day = "10 KB" }
persons_per_year = 20

[[scenario]]
id = "S-B"
enterprise = "beta"
basis = "standard_contract"
filing_ref = "F-B"
recipient = { name = "Example Partner", country = "JP" }
activity = "manufacturing"
data = ["none"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.2.0.0/16"]
destinations = ["203.0.113.0/24"]
"#;

fn shared_with(cfg: DetectConfig) -> Arc<DetectShared> {
    let reg = SharedRegistry::new(registry(REG), &domestic(), PathBuf::from("test.toml"));
    DetectShared::with_parts("gw-test", cfg, reg).expect("shared")
}

fn flow_event(s: &FlowSummary<'_>) -> Event {
    let mut e = Event::new(
        EventType::Flow,
        format_eve_timestamp(s.last_micros),
        "gw-test".into(),
    );
    e.flow_id = Some(s.flow_id);
    e.proto = Some("TCP".into());
    e.src_ip = Some(s.initiator.to_string());
    e.src_port = Some(s.initiator_port);
    e.dest_ip = Some(s.responder.to_string());
    e.dest_port = Some(s.responder_port);
    e.flow = Some(FlowRecord {
        pkts_toserver: s.pkts_fwd,
        pkts_toclient: s.pkts_rev,
        bytes_toserver: s.bytes_fwd,
        bytes_toclient: s.bytes_rev,
        start: format_eve_timestamp(s.first_micros),
        end: format_eve_timestamp(s.last_micros),
        age: 0,
        state: None,
        reason: s.reason.as_str().into(),
        midstream: false,
        alerted: false,
    });
    e
}

/// Feed payloads (`true` = from the initiator) then the record; returns the flow event and the
/// alerts.
fn run(
    c: &mut Classifier,
    st: &mut FlowState,
    s: &FlowSummary<'_>,
    payloads: &[(bool, &[u8])],
) -> (Event, Vec<Event>) {
    for (from_init, p) in payloads {
        c.on_payload(
            st,
            &PayloadView {
                initiator: s.initiator,
                responder: s.responder,
                ip_proto: s.ip_proto,
                responder_port: s.responder_port,
                vlan: s.vlan,
                from_initiator: *from_init,
                encrypted: false,
                payload: p,
                now_micros: s.first_micros,
            },
        );
    }
    let mut found = Findings::default();
    c.on_flow_record(st, s, &mut found);
    let mut out = Vec::new();
    write_findings(c, "gw-test", 0, Some(flow_event(s)), &mut found, &mut out);
    let e = out.remove(0);
    (e, out)
}

/// Run a tick; push its alert events to `out`.
fn tick(c: &mut Classifier, now: i64, h: &Health, out: &mut Vec<Event>) {
    let mut found = Findings::default();
    c.on_tick(now, h, &mut found);
    write_findings(c, "gw-test", 0, None, &mut found, out);
}

fn kinds(out: &[Event]) -> Vec<AlertKind> {
    out.iter()
        .filter_map(|e| e.alert.as_ref().map(|a| a.kind))
        .collect()
}

fn at(h: u32) -> i64 {
    beijing_micros(2026, 3, 2, h, 0, 0)
}

#[test]
fn verdict_alerts_need_export_payload() {
    let shared = shared_with(DetectConfig::default());
    let mut c = Classifier::new(shared, 0);
    let mut f = flow("10.99.0.1", 40000, "198.51.100.7", 22);
    let (e, out) = run(&mut c, &mut FlowState::default(), &f, &[]);
    assert_eq!(
        e.verdict.as_ref().map(|v| v.status),
        Some(VerdictStatus::Unfiled)
    );
    assert_eq!(e.direction, Some(Direction::Export));
    assert_eq!(e.export_bytes, Some(1000));
    assert_eq!(kinds(&out), vec![AlertKind::UnfiledExport]);
    let a = out[0].alert.as_ref().expect("alert");
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.rule, "XB-001");
    assert!(
        a.summary.contains("10.99.0.1 sent 1.0 kB to 198.51.100.7"),
        "{}",
        a.summary
    );
    assert!(e.flow.as_ref().is_some_and(|f| f.alerted));
    // No payload from the domestic side: no alert (a SYN scan answered by nobody).
    f.payload_fwd = 0;
    f.flow_id = 2;
    f.initiator_port = 40001;
    let (_, out) = run(&mut c, &mut FlowState::default(), &f, &[]);
    assert!(out.is_empty(), "{out:?}");
    // min_export_bytes set: below it, no alert.
    let shared = shared_with(DetectConfig {
        min_export_bytes: 5000,
        ..DetectConfig::default()
    });
    let mut c = Classifier::new(shared, 0);
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.99.0.1", 1, "198.51.100.7", 22),
        &[],
    );
    assert!(out.is_empty());
}

#[test]
fn each_verdict_alert_kind() {
    let mut c = Classifier::new(shared_with(DetectConfig::default()), 0);
    let cases = [
        (
            flow("10.1.0.5", 1, "192.0.2.9", 443),
            AlertKind::RecipientNotFiled,
        ),
        (
            flow("10.1.0.5", 2, "198.51.100.9", 8443),
            AlertKind::ServiceNotFiled,
        ),
    ];
    for (f, kind) in cases {
        let (_, out) = run(&mut c, &mut FlowState::default(), &f, &[]);
        assert_eq!(kinds(&out), vec![kind]);
    }
    let mut f = flow("10.1.0.5", 3, "198.51.100.9", 443);
    f.first_micros = beijing_micros(2026, 4, 16, 10, 0, 0);
    f.last_micros = f.first_micros + 1;
    let (e, out) = run(&mut c, &mut FlowState::default(), &f, &[]);
    assert_eq!(kinds(&out), vec![AlertKind::FilingExpired]);
    assert_eq!(
        e.verdict.as_ref().and_then(|v| v.scenario.clone()),
        Some("S-A".into())
    );
    let a = out[0].alert.as_ref().expect("alert");
    assert!(a.summary.contains("expired on 2026-04-15"), "{}", a.summary);
    // Green channel enterprise: routing flag set, severity unchanged without the raise option.
    assert!(a.green_channel);
    assert_eq!(a.severity, Severity::High);
}

#[test]
fn green_channel_raise() {
    let mut c = Classifier::new(
        shared_with(DetectConfig {
            green_channel_raise: true,
            ..DetectConfig::default()
        }),
        0,
    );
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 2, "198.51.100.9", 8443),
        &[],
    );
    let a = out[0].alert.as_ref().expect("alert");
    assert_eq!(
        (a.kind, a.severity, a.green_channel),
        (AlertKind::ServiceNotFiled, Severity::High, true)
    );
}

#[test]
fn pi_in_cleartext_masked_and_counted() {
    let shared = shared_with(DetectConfig::default());
    let mut c = Classifier::new(Arc::clone(&shared), 0);
    // Unfiled source: high.
    let body = b"id=11010519491231002X tel 13812345678 bad 110105194912310021 glued 913812345678";
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.99.0.1", 1, "198.51.100.7", 80),
        &[(true, body)],
    );
    let pi: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::PersonalInfoCleartext)
        .collect();
    assert_eq!(pi.len(), 1);
    assert_eq!(pi[0].severity, Severity::High);
    assert_eq!(
        pi[0].evidence,
        vec!["110105********002X".to_string(), "138****5678".into()]
    );
    assert!(
        pi[0]
            .summary
            .contains("1 resident ID number, 1 mobile number"),
        "{}",
        pi[0].summary
    );
    let json = serde_json::to_string(&out).expect("json");
    assert!(!json.contains("11010519491231002X") && !json.contains("13812345678"));
    assert_eq!(shared.pi_found(), 2);
    // Filed scenario carrying personal data: med. Data from the foreign side is not scanned.
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 9, "198.51.100.7", 443),
        &[
            (false, b"13912345678 from abroad"),
            (true, b"tel 13812345678"),
        ],
    );
    let pi: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::PersonalInfoCleartext)
        .collect();
    assert_eq!(pi.len(), 1);
    assert_eq!(pi[0].severity, Severity::Med);
    assert_eq!(pi[0].evidence, vec!["138****5678".to_string()]);
}

#[test]
fn persons_threshold_80_and_100_percent() {
    let shared = shared_with(DetectConfig::default());
    let mut c = Classifier::new(Arc::clone(&shared), 0);
    // S-A declares 20 persons a year: 16 distinct reach 80%, 20 reach 100%.
    let phones = |from: u32, n: u32| -> Vec<u8> {
        (from..from + n)
            .flat_map(|i| format!("tel 1390000{i:04};").into_bytes())
            .collect()
    };
    let records = phones(0, 16);
    run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 1, "198.51.100.7", 443),
        &[(true, &records)],
    );
    let mut out = Vec::new();
    tick(&mut c, at(11), &Health::default(), &mut out);
    let th: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::PersonsThreshold)
        .collect();
    assert_eq!(th.len(), 1, "{out:?}");
    assert!(
        th[0].summary.contains("80% of the 20 limit"),
        "{}",
        th[0].summary
    );
    assert_eq!(th[0].enterprise.as_deref(), Some("acme"));
    // The same persons again: no new crossing.
    run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 2, "198.51.100.7", 443),
        &[(true, &records)],
    );
    let mut out = Vec::new();
    tick(&mut c, at(12), &Health::default(), &mut out);
    assert!(kinds(&out).is_empty(), "{out:?}");
    let more = phones(100, 10);
    run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 3, "198.51.100.7", 443),
        &[(true, &more)],
    );
    let mut out = Vec::new();
    tick(&mut c, at(13), &Health::default(), &mut out);
    let th: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::PersonsThreshold)
        .collect();
    assert_eq!(th.len(), 1);
    assert!(
        th[0].summary.contains("100% of the 20 limit"),
        "{}",
        th[0].summary
    );
    let p = shared.persons();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].enterprise.as_str(), p[0].year, p[0].limit),
        ("acme", 2026, 20)
    );
    assert_eq!(p[0].estimate, 26, "{:?}", p[0]);
}

#[test]
fn daily_cap_with_active_timeout_deltas_and_midnight() {
    let shared = shared_with(DetectConfig::default());
    let mut c = Classifier::new(Arc::clone(&shared), 0);
    let mut st = FlowState::default();
    // One long flow: three running records of 4 kB, 8 kB, 12 kB totals (cap 10 kB).
    let mut f = flow("10.1.0.5", 1, "198.51.100.7", 443);
    f.reason = EndReason::ActiveTimeout;
    let mut caps = Vec::new();
    for (i, total) in [4000u64, 8000, 12_000].into_iter().enumerate() {
        f.bytes_fwd = total;
        f.payload_fwd = total / 2;
        f.last_micros = f.first_micros + (i as i64 + 1) * 1_000_000;
        let (e, out) = run(&mut c, &mut st, &f, &[]);
        assert_eq!(e.export_bytes, Some(total));
        caps.extend(out.into_iter().filter(|e| {
            e.alert
                .as_ref()
                .is_some_and(|a| a.kind == AlertKind::VolumeCapExceeded)
        }));
    }
    assert_eq!(caps.len(), 1, "counted once, deltas only");
    let a = caps[0].alert.as_ref().expect("alert");
    assert_eq!((a.severity, a.bytes), (Severity::Med, 12_000));
    let u = shared.scenario_usage();
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].scenario.as_str(), u[0].export_bytes, u[0].cap),
        ("S-A", 12_000, Some(10_000))
    );
    // Another flow the same day passes 2x: high.
    let mut g = flow("10.1.0.6", 1, "198.51.100.7", 443);
    g.bytes_fwd = 9000;
    let (_, out) = run(&mut c, &mut FlowState::default(), &g, &[]);
    let cap: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::VolumeCapExceeded)
        .collect();
    assert_eq!(cap.len(), 1);
    assert_eq!(cap[0].severity, Severity::High);
    // Next Beijing day: counting restarts.
    let mut h = flow("10.1.0.6", 2, "198.51.100.7", 443);
    h.first_micros = beijing_micros(2026, 3, 3, 10, 0, 0);
    h.last_micros = h.first_micros + 1;
    h.bytes_fwd = 9000;
    let (_, out) = run(&mut c, &mut FlowState::default(), &h, &[]);
    assert!(!kinds(&out).contains(&AlertKind::VolumeCapExceeded));
    assert_eq!(shared.scenario_usage()[0].export_bytes, 9000);
}

#[test]
fn line_misuse_sensor_gap_expiring_tunnel_signatures() {
    let cfg = DetectConfig {
        misuse_sources: 3,
        signatures: vec![
            Signature {
                id: "vin".into(),
                kind: SignatureKind::NegativeList,
                pattern: b"VIN_BATCH".to_vec(),
                category: "automotive/vin".into(),
                approved_scenarios: vec!["S-B".into()],
            },
            Signature {
                id: "geo".into(),
                kind: SignatureKind::ImportantData,
                pattern: b"SURVEY-GRADE".to_vec(),
                category: "important/geo".into(),
                approved_scenarios: vec![],
            },
        ],
        ..DetectConfig::default()
    };
    let mut c = Classifier::new(shared_with(cfg), 0);
    // Three foreign sources reach 10.2.0.9:8080 within the hour.
    let mut all = Vec::new();
    for i in 1..=3u8 {
        let f = flow(&format!("192.0.2.{i}"), 5000, "10.2.0.9", 8080);
        all.extend(run(&mut c, &mut FlowState::default(), &f, &[]).1);
    }
    assert_eq!(
        kinds(&all)
            .iter()
            .filter(|k| **k == AlertKind::LineMisuse)
            .count(),
        1
    );
    // Sensor gap from worker 0.
    let mut out = Vec::new();
    tick(&mut c, at(10), &Health::default(), &mut out);
    // The first tick of the day warns about S-A expiring on 2026-04-15: 44 calendar days, 31
    // working days (Qingming, 4-6 April, takes Monday the 6th).
    let exp: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::FilingExpiring)
        .collect();
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].severity, Severity::Info);
    assert!(
        exp[0].summary.contains("31 working days left"),
        "{}",
        exp[0].summary
    );
    assert_eq!(exp[0].days_left, Some(31));
    assert_eq!(
        (exp[0].valid_from.as_deref(), exp[0].valid_until.as_deref()),
        (Some("2026-01-01"), Some("2026-04-15"))
    );
    let mut out = Vec::new();
    let h = Health {
        drops_kernel: 7,
        evictions: 2,
        ..Health::default()
    };
    tick(&mut c, at(10) + 5_000_000, &h, &mut out);
    assert_eq!(kinds(&out), vec![AlertKind::SensorGap]);
    assert!(out[0]
        .alert
        .as_ref()
        .is_some_and(|a| a.summary.contains("7 kernel drops")));
    let mut out = Vec::new();
    tick(&mut c, at(10) + 10_000_000, &h, &mut out);
    assert!(out.is_empty(), "no new loss, no alert: {out:?}");
    // WireGuard export, unfiled service.
    let mut w = flow("10.2.0.9", 51820, "203.0.113.9", 51820);
    w.ip_proto = 17;
    w.app_proto = Some("wireguard");
    let (_, out) = run(&mut c, &mut FlowState::default(), &w, &[]);
    assert!(kinds(&out).contains(&AlertKind::OpaqueTunnel), "{out:?}");
    // Random payload without a protocol.
    let noise = crossline_testgen::noise(600, 7);
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.2.0.9", 7, "203.0.113.9", 9999),
        &[(true, &noise)],
    );
    assert!(kinds(&out).contains(&AlertKind::OpaqueTunnel), "{out:?}");
    // Text payload: no tunnel.
    let text = pi_records(5, 9);
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.2.0.9", 8, "203.0.113.9", 9999),
        &[(true, &text)],
    );
    assert!(!kinds(&out).contains(&AlertKind::OpaqueTunnel), "{out:?}");
    // Signatures: the negative-list one is approved for S-B, not for S-A.
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.2.0.9", 9, "203.0.113.9", 443),
        &[(true, b"xx VIN_BATCH yy")],
    );
    assert!(!kinds(&out).contains(&AlertKind::NegativeListCategory));
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.9", 9, "198.51.100.9", 443),
        &[(true, b"xx VIN_BATCH SURVEY-GRADE")],
    );
    let k = kinds(&out);
    assert!(
        k.contains(&AlertKind::NegativeListCategory) && k.contains(&AlertKind::ImportantDataMarker),
        "{k:?}"
    );
    let crit = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .find(|a| a.kind == AlertKind::ImportantDataMarker)
        .expect("alert");
    assert_eq!(crit.severity, Severity::Crit);
}

#[test]
fn folding_repeats() {
    let mut c = Classifier::new(shared_with(DetectConfig::default()), 0);
    let mut first = Vec::new();
    for port in 0..5u16 {
        let mut f = flow("10.99.0.1", 40000 + port, "198.51.100.7", 22);
        f.first_micros = at(10) + i64::from(port) * 1_000_000;
        f.last_micros = f.first_micros + 1;
        first.extend(run(&mut c, &mut FlowState::default(), &f, &[]).1);
    }
    assert_eq!(first.len(), 1, "one first occurrence");
    let mut out = Vec::new();
    tick(&mut c, at(10) + 100_000_000, &Health::default(), &mut out);
    assert!(kinds(&out).iter().all(|k| *k != AlertKind::UnfiledExport));
    let mut out = Vec::new();
    tick(&mut c, at(10) + 301_000_000, &Health::default(), &mut out);
    let f: Vec<&Alert> = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == AlertKind::UnfiledExport)
        .collect();
    assert_eq!(f.len(), 1);
    assert!(f[0].followup);
    assert_eq!((f[0].count, f[0].bytes), (4, 4000));
    assert!(
        f[0].summary
            .ends_with("no filed scenario lists this source (repeated 4 more times)"),
        "{}",
        f[0].summary
    );
    assert_eq!(f[0].service.as_deref(), Some("tcp/22"));
}

#[test]
fn country_mismatch_with_built_mmdb() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path();
    let db = dir.join("country.mmdb");
    let net = |s: &str, l| {
        crossline_config::registry::IpNet::new(s.parse().expect("ip"), l).expect("net")
    };
    crossline_testgen::write_mmdb(
        &db,
        &[
            (net("198.51.100.0", 25), "DE"),
            (net("198.51.100.128", 25), "US"),
        ],
    )
    .expect("mmdb");
    let mut c = Classifier::new(
        shared_with(DetectConfig {
            geoip: Some(db),
            ..DetectConfig::default()
        }),
        0,
    );
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 1, "198.51.100.7", 443),
        &[],
    );
    assert!(!kinds(&out).contains(&AlertKind::CountryMismatch));
    let (_, out) = run(
        &mut c,
        &mut FlowState::default(),
        &flow("10.1.0.5", 2, "198.51.100.200", 443),
        &[],
    );
    let a = out
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .find(|a| a.kind == AlertKind::CountryMismatch)
        .expect("mismatch");
    assert!(
        a.summary
            .contains("is in US, but scenario S-A files Example CRO GmbH in DE"),
        "{}",
        a.summary
    );
}

#[test]
fn surge_and_quiet_scenario() {
    let cfg = DetectConfig {
        surge_floor_bytes: 10_000,
        ..DetectConfig::default()
    };
    let mut c = Classifier::new(shared_with(cfg), 0);
    let week = 7 * 86_400 * 1_000_000i64;
    let mut port = 1000;
    let mut send = |c: &mut Classifier, t: i64, bytes: u64| {
        port += 1;
        let mut f = flow("10.2.0.9", port, "203.0.113.9", 443);
        f.first_micros = t;
        f.last_micros = t + 1;
        f.bytes_fwd = bytes;
        kinds(&run(c, &mut FlowState::default(), &f, &[]).1)
    };
    // Quiet scenario waking up with a big hour: no baseline, no surge.
    assert!(!send(&mut c, at(10), 500_000).contains(&AlertKind::VolumeSurge));
    // Weeks 2 and 3 at the same hour: 20 kB, 22 kB. Week 4: 400 kB -> surge.
    assert!(!send(&mut c, at(10) + week, 20_000).contains(&AlertKind::VolumeSurge));
    assert!(!send(&mut c, at(10) + 2 * week, 22_000).contains(&AlertKind::VolumeSurge));
    // Baseline (500k, 20k, 22k): mean 180.7k, sigma 225.8k -> threshold ~858k.
    assert!(!send(&mut c, at(10) + 3 * week, 400_000).contains(&AlertKind::VolumeSurge));
    assert!(send(&mut c, at(10) + 3 * week + 1000, 600_000).contains(&AlertKind::VolumeSurge));
}

#[test]
fn flow_state_is_small() {
    // The whole flow entry budget is 256 bytes; the analysis part must stay well below.
    assert!(
        std::mem::size_of::<FlowState>() <= 64,
        "{}",
        std::mem::size_of::<FlowState>()
    );
}

#[test]
fn flow_entry_with_the_classifier_state_fits_the_budget() {
    // The flow table's index costs 4 bytes per bucket (a slot number and a hash tag in a
    // u32), at most half full: 8 to 16 bytes per flow as it grows (`bench_flows`). The entry
    // itself may take at most 240 of the 256 bytes per tracked flow.
    let entry = std::mem::size_of::<crate::flow::Flow<FlowState, crate::taps::L7State>>();
    assert!(
        entry <= 240,
        "flow entry with classifier state: {entry} bytes"
    );
}

#[test]
fn shaper_bounded_in_identities_counts_evictions() {
    let shared = shared_with(DetectConfig::default());
    let mut c = Classifier::new(Arc::clone(&shared), 0);
    // One more distinct identity (recipient) than the shaper folds at once, within one interval.
    let n = shaping::MAX_KEYS + 1;
    let mut alerts = 0;
    for i in 0..n {
        let to = format!("198.{}.{}.{}", 18 + i / 65_536, (i / 256) % 256, i % 256);
        let mut f = flow("10.99.0.1", 40000, &to, 22);
        f.first_micros = at(10) + i as i64;
        f.last_micros = f.first_micros + 1;
        alerts += run(&mut c, &mut FlowState::default(), &f, &[]).1.len();
    }
    assert_eq!(
        shared.shaper_evictions(),
        1,
        "the oldest identity made room"
    );
    // Every identity's first occurrence was emitted; the evicted one had no repeats.
    assert_eq!(alerts, n);
    assert_eq!(c.shaper.pending(), shaping::MAX_KEYS);
}

#[test]
fn distinct_byte_share_counts_each_value_once() {
    let mut x = 0x1234_5678_9abc_def1u64;
    for len in [1usize, 2, 31, 32, 64, 100, 128] {
        for spread in [1u64, 4, 16, 256] {
            let sample: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % spread) as u8 ^ 0xa5
                })
                .collect();
            let n = sample
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let want = ((n * 100) / len).clamp(1, 100) as u8;
            assert_eq!(distinct_pct(&sample), want, "{sample:?}");
        }
    }
    assert_eq!(distinct_pct(&[]), 1);
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(distinct_pct(&all[..128]), 100);
}
