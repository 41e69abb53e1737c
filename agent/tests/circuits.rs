//! Circuits in the registry: on a carrier's line the same private source is two enterprises on
//! two VLANs. Crafted VLAN-tagged frames are written to a pcap file and run through the real
//! `crossline-agent analyze`; the verdicts must follow the circuit each flow ran on. The
//! `check` command warns when two enterprises' sources overlap and no circuit separates them.

mod common;

use crossline_agent::classify::Compiled;
use crossline_config::event::{Event, EventType, VerdictStatus};
use crossline_config::registry::IpNet;
use crossline_config::time::Date;
use crossline_testgen::{frame, PcapWriter, L4};
use std::net::SocketAddr;
use std::path::Path;

const T0: i64 = 1_767_258_000_000_000; // 2026-01-01T09:00:00Z, a Thursday

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

/// Two enterprises with the same private prefix, each on its own circuit (acme's from the
/// enterprise, beta's on the scenario), filed for different recipients.
const REGISTRY: &str = r#"[[enterprise]]
id = "acme"
name = "Acme"
uscc = "91350100M000100Y43"
vlans = [100]

[[enterprise]]
id = "beta"
name = "Beta"
uscc = "91350100M000100Y43"

[[scenario]]
id = "SA-ACME"
enterprise = "acme"
basis = "security_assessment"
filing_ref = "X-1"
recipient = { name = "R", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.1.0.0/16"]
destinations = ["198.51.100.0/24"]

[[scenario]]
id = "SC-BETA"
enterprise = "beta"
basis = "standard_contract"
filing_ref = "X-2"
recipient = { name = "S", country = "US" }
activity = "hr"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.1.0.0/16"]
destinations = ["203.0.113.0/24"]
vlans = [200]
"#;

/// `f` (an untagged Ethernet frame) with VLAN tags `(TPID, id)` inserted, outermost first.
fn tagged(f: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    for (tpid, id) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(&f[12..]);
    out
}

fn config_with(tag: &str, registry: &str) -> common::Scratch {
    let dir = common::config_dir(tag, "");
    std::fs::write(dir.join("registry.toml"), registry).expect("write registry.toml");
    dir
}

fn analyze(dir: &Path, pcap: &PcapWriter) -> Vec<Event> {
    let path = dir.join("in.pcap");
    pcap.write(&path).expect("write pcap");
    let (out, stderr, ok) = common::analyze(dir, &[path.as_path()], 2, "events.jsonl");
    assert!(ok, "analyze failed: {stderr}");
    common::events(&out)
}

#[test]
fn the_same_private_source_on_two_vlans_is_judged_against_each_circuits_enterprise() {
    let src = sa("10.1.1.1:40000");
    let acme_dst = sa("198.51.100.7:443");
    let beta_dst = sa("203.0.113.9:443");
    // (name, tags, destination, verdict, scenario, enterprise)
    type Case = (
        &'static str,
        &'static [(u16, u16)],
        SocketAddr,
        VerdictStatus,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: [Case; 7] = [
        (
            "acme's recipient on acme's circuit",
            &[(0x8100, 100)],
            acme_dst,
            VerdictStatus::Filed,
            Some("SA-ACME"),
            Some("acme"),
        ),
        (
            "acme's recipient on beta's circuit",
            &[(0x8100, 200)],
            acme_dst,
            VerdictStatus::RecipientNotFiled,
            Some("SC-BETA"),
            Some("beta"),
        ),
        (
            "beta's recipient on beta's circuit",
            &[(0x8100, 200)],
            beta_dst,
            VerdictStatus::Filed,
            Some("SC-BETA"),
            Some("beta"),
        ),
        (
            "beta's recipient on acme's circuit",
            &[(0x8100, 100)],
            beta_dst,
            VerdictStatus::RecipientNotFiled,
            Some("SA-ACME"),
            Some("acme"),
        ),
        (
            "a circuit nobody filed",
            &[(0x8100, 300)],
            acme_dst,
            VerdictStatus::Unfiled,
            None,
            None,
        ),
        (
            "untagged",
            &[],
            beta_dst,
            VerdictStatus::Unfiled,
            None,
            None,
        ),
        (
            "QinQ with acme's id inside",
            &[(0x88a8, 300), (0x8100, 100)],
            acme_dst,
            VerdictStatus::Filed,
            Some("SA-ACME"),
            Some("acme"),
        ),
    ];
    let mut pcap = PcapWriter::default();
    for (i, (_, tags, dst, ..)) in cases.iter().enumerate() {
        // A distinct source port per case, so each case is its own flow whatever the key.
        let src = SocketAddr::new(src.ip(), src.port() + i as u16);
        let t = T0 + i as i64 * 10_000;
        let q = frame(None, src, *dst, L4::Udp, b"export");
        let r = frame(None, *dst, src, L4::Udp, b"ok");
        pcap.push(t, tagged(&q, tags));
        pcap.push(t + 1_000, tagged(&r, tags));
    }
    let dir = config_with("circuits-analyze", REGISTRY);
    let ev = analyze(&dir, &pcap);
    let flows: Vec<&Event> = ev
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect();
    assert_eq!(flows.len(), cases.len(), "one flow per case: {flows:#?}");
    for (i, (name, _, _, status, scenario, enterprise)) in cases.iter().enumerate() {
        let port = src.port() + i as u16;
        let f = flows
            .iter()
            .find(|e| e.src_port == Some(port))
            .unwrap_or_else(|| panic!("{name}: no flow from port {port}: {flows:#?}"));
        let v = f.verdict.as_ref().expect("verdict");
        assert_eq!(v.status, *status, "{name}: {v:?}");
        assert_eq!(v.scenario.as_deref(), *scenario, "{name}: {v:?}");
        assert_eq!(v.enterprise.as_deref(), *enterprise, "{name}: {v:?}");
    }
}

#[test]
fn persons_of_unfiled_flows_go_to_the_enterprise_of_the_circuit() {
    let dir = config_with("circuits-owner", REGISTRY);
    let domestic: Vec<IpNet> =
        vec![crossline_config::parse::parse_ip_net("10.0.0.0/8").expect("prefix")];
    let today = Date::new(2026, 6, 1).expect("date");
    let (registry, warnings) =
        crossline_config::load_registry(&dir.join("registry.toml"), &domestic, today)
            .expect("registry loads");
    assert!(
        warnings.is_empty(),
        "circuits tell them apart: {warnings:?}"
    );
    let c = Compiled::new(registry, &domestic);
    let ip = "10.1.1.1".parse().expect("ip");
    let owner = |vlan: [u16; 3]| {
        c.owner_of(ip, &vlan)
            .map(|i| c.registry.enterprises[i as usize].id.clone())
    };
    assert_eq!(owner([100, 0, 0]).as_deref(), Some("acme"));
    assert_eq!(owner([200, 0, 0]).as_deref(), Some("beta"));
    assert_eq!(owner([300, 200, 0]).as_deref(), Some("beta"));
    assert_eq!(owner([300, 0, 0]), None, "no enterprise on VLAN 300");
    assert_eq!(owner([0, 0, 0]), None, "untagged is no filed circuit");
}

fn check(dir: &Path) -> String {
    let o = common::bin()
        .args(["check", "--config"])
        .arg(dir.join("agent.toml"))
        .output()
        .expect("run crossline-agent check");
    assert!(
        o.status.success(),
        "a warning does not fail check: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_warns_when_overlapping_sources_have_no_circuits_to_tell_them_apart() {
    // With circuits: no warning.
    let dir = config_with("circuits-check-ok", REGISTRY);
    let out = check(&dir);
    assert!(!out.contains("overlapping sources"), "{out}");
    assert!(
        out.contains(
            "circuits:     VLAN 100, 200 (1 of 2 enterprises, 2 of 2 scenarios tied to circuits)"
        ),
        "{out}"
    );

    // Without beta's circuit, and with a narrower prefix: beta's scenario overlaps acme's
    // (acme is on VLAN 100, beta on any circuit).
    let no_circuit = REGISTRY.replace("vlans = [200]\n", "").replace(
        "sources = [\"10.1.0.0/16\"]\ndestinations = [\"203",
        "sources = [\"10.1.1.0/24\"]\ndestinations = [\"203",
    );
    let dir = config_with("circuits-check-warn", &no_circuit);
    let out = check(&dir);
    let path = dir.join("registry.toml");
    let line = out
        .lines()
        .find(|l| l.contains("overlapping sources"))
        .unwrap_or_else(|| panic!("no overlap warning: {out}"));
    // Located at beta's scenario id (line 26 of the file), naming acme's scenario line (13).
    assert!(
        line.contains(&format!("{}:26:6:", path.display())),
        "{line}"
    );
    for want in [
        "\"beta\"",
        "\"acme\"",
        "\"SC-BETA\" lists 10.1.1.0/24",
        "\"SA-ACME\" (line 13) lists 10.1.0.0/16",
        "no `vlans`",
    ] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
    assert_eq!(
        out.matches("overlapping sources").count(),
        1,
        "one warning per pair of enterprises: {out}"
    );

    // Both on VLAN 100: still no way to tell them apart.
    let same = REGISTRY.replace("vlans = [200]", "vlans = [100, 200]");
    let dir = config_with("circuits-check-same", &same);
    let out = check(&dir);
    assert!(
        out.lines()
            .any(|l| l.contains("overlapping sources") && l.contains("both are on VLAN 100")),
        "{out}"
    );
}

#[test]
fn persons_found_on_a_circuit_count_against_that_circuits_enterprise() {
    // Each enterprise declares 20 persons a year; 20 distinct phone numbers cross beta's
    // circuit to a recipient beta did not file. The threshold alert must name beta, not acme
    // (which lists the same prefix on another circuit, and comes first in the file).
    let registry = REGISTRY.replace(
        "destinations = [\"198.51.100.0/24\"]\n",
        "destinations = [\"198.51.100.0/24\"]\npersons_per_year = 20\n",
    );
    let registry = registry.replace(
        "destinations = [\"203.0.113.0/24\"]\n",
        "destinations = [\"203.0.113.0/24\"]\npersons_per_year = 20\n",
    );
    let records: Vec<u8> = (0..20u32)
        .flat_map(|i| format!("tel 1390000{i:04};").into_bytes())
        .collect();
    let (src, dst) = (sa("10.1.1.1:40000"), sa("192.0.2.77:5000"));
    let mut pcap = PcapWriter::default();
    let q = frame(None, src, dst, L4::Udp, &records);
    let r = frame(None, dst, src, L4::Udp, b"ok");
    pcap.push(T0, tagged(&q, &[(0x8100, 200)]));
    pcap.push(T0 + 1_000, tagged(&r, &[(0x8100, 200)]));
    // Later traffic elsewhere so that the detector ticks after the flow.
    let (a, b) = (sa("10.3.0.1:40000"), sa("192.0.2.78:5000"));
    for k in 1..=5 {
        pcap.push(T0 + k * 2_000_000, frame(None, a, b, L4::Udp, b"later"));
    }
    let dir = config_with("circuits-persons", &registry);
    let ev = analyze(&dir, &pcap);
    let persons: Vec<_> = ev
        .iter()
        .filter_map(|e| e.alert.as_ref())
        .filter(|a| a.kind == crossline_config::event::AlertKind::PersonsThreshold)
        .collect();
    assert!(!persons.is_empty(), "a persons threshold alert: {ev:#?}");
    for a in &persons {
        assert_eq!(a.enterprise.as_deref(), Some("beta"), "{a:?}");
    }
}
