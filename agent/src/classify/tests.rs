//! Unit tests of the classification order, calling [`Compiled::classify`] directly with
//! hand-built flow summaries. The end-to-end versions (pcap files through the pipeline) are in
//! `agent/tests/detect.rs`.

use super::*;
use crate::analysis::{EndReason, FlowSummary};
use crossline_config::registry::IpNet;
use crossline_config::time::Date;
use crossline_testgen::beijing_micros;
use std::path::Path;

pub(crate) const REGISTRY: &str = include_str!("../../testdata/registry/labelled.toml");

pub(crate) fn domestic() -> Vec<IpNet> {
    vec![
        IpNet::new("10.0.0.0".parse().expect("ip"), 8).expect("net"),
        IpNet::new("fd00::".parse().expect("ip"), 8).expect("net"),
    ]
}

pub(crate) fn registry(text: &str) -> Registry {
    let today = Date::new(2026, 3, 1).expect("date");
    match crossline_config::load::parse_registry(
        Path::new("test-registry.toml"),
        text,
        &domestic(),
        today,
    ) {
        Ok((r, _)) => r,
        Err(e) => panic!("test registry invalid:\n{e}"),
    }
}

pub(crate) fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> FlowSummary<'static> {
    FlowSummary {
        flow_id: 1,
        ip_proto: 6,
        initiator: src.parse().expect("ip"),
        initiator_port: sport,
        responder: dst.parse().expect("ip"),
        responder_port: dport,
        vlan: [0; 3],
        icmp: (0, 0),
        pkts_fwd: 5,
        pkts_rev: 4,
        bytes_fwd: 1000,
        bytes_rev: 2000,
        payload_fwd: 500,
        payload_rev: 1500,
        first_micros: beijing_micros(2026, 3, 2, 10, 0, 0),
        last_micros: beijing_micros(2026, 3, 2, 10, 0, 1),
        reason: EndReason::Fin,
        midstream: false,
        app_proto: None,
        tls_sni: None,
        quic_sni: None,
        ech: false,
        http_host: None,
        dns_name: None,
    }
}

/// Monday 2 March 2026, 10:00 Beijing time.
fn monday_10() -> i64 {
    beijing_micros(2026, 3, 2, 10, 0, 0)
}

fn judge(c: &Compiled, s: &FlowSummary<'_>, at: i64) -> (VerdictStatus, Option<String>) {
    let mut scratch = Scratch::default();
    let r = c.classify(s, at, &mut scratch);
    (r.status, r.scenario.map(|i| c.scenario(i).id.clone()))
}

fn compiled() -> Compiled {
    Compiled::new(registry(REGISTRY), &domestic())
}

#[test]
fn not_cross_border() {
    let c = compiled();
    let mut scratch = Scratch::default();
    let r = c.classify(
        &flow("10.1.1.1", 1, "10.9.9.9", 443),
        monday_10(),
        &mut scratch,
    );
    assert_eq!(
        (r.status, r.direction),
        (VerdictStatus::NotCrossBorder, Direction::Internal)
    );
    let r = c.classify(
        &flow("8.8.8.8", 1, "1.1.1.1", 443),
        monday_10(),
        &mut scratch,
    );
    assert_eq!(
        (r.status, r.direction),
        (VerdictStatus::NotCrossBorder, Direction::External)
    );
}

#[test]
fn each_verdict_in_order() {
    let c = compiled();
    let t = monday_10();
    assert_eq!(
        judge(&c, &flow("10.99.0.1", 1, "198.51.100.7", 443), t).0,
        VerdictStatus::Unfiled
    );
    assert_eq!(
        judge(&c, &flow("10.1.5.5", 1, "192.0.2.1", 443), t),
        (VerdictStatus::RecipientNotFiled, Some("S-A".into()))
    );
    assert_eq!(
        judge(&c, &flow("10.1.5.5", 1, "198.51.100.7", 22), t),
        (VerdictStatus::ServiceNotFiled, Some("S-A".into()))
    );
    assert_eq!(
        judge(&c, &flow("10.1.5.5", 1, "198.51.100.7", 443), t),
        (VerdictStatus::Filed, Some("S-A".into()))
    );
    // Saturday: S-A's window is mon-fri.
    let sat = beijing_micros(2026, 3, 7, 10, 0, 0);
    assert_eq!(
        judge(&c, &flow("10.1.5.5", 1, "198.51.100.7", 443), sat).0,
        VerdictStatus::OutsideWindow
    );
    // A miss at an earlier step wins over later ones: the service is wrong AND it is Saturday.
    assert_eq!(
        judge(&c, &flow("10.1.5.5", 1, "198.51.100.7", 22), sat).0,
        VerdictStatus::ServiceNotFiled
    );
}

#[test]
fn window_edges_and_midnight() {
    let c = compiled();
    let f = flow("10.1.5.5", 1, "198.51.100.7", 443);
    let at = |h, m, s| judge(&c, &f, beijing_micros(2026, 3, 2, h, m, s)).0;
    assert_eq!(at(7, 59, 59), VerdictStatus::OutsideWindow);
    assert_eq!(at(8, 0, 0), VerdictStatus::Filed);
    assert_eq!(at(19, 59, 59), VerdictStatus::Filed);
    assert_eq!(at(20, 0, 0), VerdictStatus::OutsideWindow);
    // S-N: Monday 22:00 to Tuesday 06:00 only.
    let n = flow("10.5.0.9", 1, "203.0.113.9", 443);
    let on = |d, h, m, s| judge(&c, &n, beijing_micros(2026, 3, d, h, m, s)).0;
    assert_eq!(on(2, 21, 59, 59), VerdictStatus::OutsideWindow);
    assert_eq!(on(2, 23, 59, 59), VerdictStatus::Filed);
    assert_eq!(on(3, 0, 0, 0), VerdictStatus::Filed);
    assert_eq!(on(3, 5, 59, 59), VerdictStatus::Filed);
    assert_eq!(on(3, 6, 0, 0), VerdictStatus::OutsideWindow);
    // Tuesday night is not listed.
    assert_eq!(on(3, 23, 0, 0), VerdictStatus::OutsideWindow);
    // Sunday 23:00 -> not listed; Monday 00:30 belongs to Sunday's window -> not allowed.
    assert_eq!(on(2, 0, 30, 0), VerdictStatus::OutsideWindow);
}

#[test]
fn expiry_on_last_day_and_after() {
    let c = compiled();
    let f = flow("10.4.0.9", 1, "203.0.113.9", 443);
    // 2026-03-02 is the last valid day.
    assert_eq!(
        judge(&c, &f, beijing_micros(2026, 3, 2, 23, 59, 59)).0,
        VerdictStatus::Filed
    );
    assert_eq!(
        judge(&c, &f, beijing_micros(2026, 3, 3, 0, 0, 0)).0,
        VerdictStatus::FilingExpired
    );
    // Beijing midnight is 16:00 UTC: UTC date 2026-03-02 16:00 is already the 3rd in Beijing.
    let utc_16 = (days_from(2026, 3, 2) * 86_400 + 16 * 3600) * 1_000_000;
    assert_eq!(judge(&c, &f, utc_16).0, VerdictStatus::FilingExpired);
}

fn days_from(y: i32, m: u8, d: u8) -> i64 {
    crossline_config::time::days_from_civil(y, m, d)
}

#[test]
fn precedence_longest_prefix_exact_wildcard_lowest_id() {
    let c = compiled();
    let t = monday_10();
    // 10.1.2.x is in S-A (/16) and S-B (/24): the longer prefix wins.
    assert_eq!(
        judge(&c, &flow("10.1.2.3", 1, "198.51.100.7", 443), t).1,
        Some("S-B".into())
    );
    // Same source prefix: S-C's exact host beats S-A's wildcard beats CIDR.
    let mut f = flow("10.1.5.5", 1, "192.0.2.1", 443);
    f.tls_sni = Some("x.cro.example");
    assert_eq!(judge(&c, &f, t).1, Some("S-C".into()));
    f.tls_sni = Some("y.cro.example");
    assert_eq!(judge(&c, &f, t).1, Some("S-A".into()));
    // A wildcard never matches the bare parent.
    f.tls_sni = Some("cro.example");
    assert_eq!(judge(&c, &f, t).0, VerdictStatus::RecipientNotFiled);
    // Same source and destination: lowest id (S-D before S-E, whatever the file order).
    assert_eq!(
        judge(&c, &flow("10.3.1.1", 1, "203.0.113.5", 443), t).1,
        Some("S-D".into())
    );
}

#[test]
fn names_ech_and_preference() {
    let c = compiled();
    let t = monday_10();
    let mut scratch = Scratch::default();
    let mut f = flow("10.1.5.5", 1, "192.0.2.1", 443);
    f.tls_sni = Some("Y.CRO.example");
    f.ech = true;
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!((r.status, r.ech), (VerdictStatus::RecipientNotFiled, true));
    // ECH: the DNS name can still attribute the address.
    f.dns_name = Some("y.cro.example");
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(r.status, VerdictStatus::Filed);
    assert_eq!(r.name_source, Some(NameSource::Dns));
    // Without ECH the SNI is preferred over the DNS name.
    f.ech = false;
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(r.name_source, Some(NameSource::Tls));
    // HTTP Host when the SNI matches nothing.
    let mut f = flow("10.1.5.5", 1, "192.0.2.1", 443);
    f.tls_sni = Some("other.example");
    f.http_host = Some("api.partner.example");
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(
        (r.status, r.name_source),
        (VerdictStatus::Filed, Some(NameSource::Http))
    );
    // QUIC SNI over UDP: S-A files tcp/443 only.
    let mut f = flow("10.1.5.5", 1, "192.0.2.1", 443);
    f.ip_proto = 17;
    f.quic_sni = Some("api.partner.example");
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(
        (r.status, r.name_source),
        (VerdictStatus::ServiceNotFiled, Some(NameSource::Quic))
    );
}

#[test]
fn foreign_initiated_and_ipv6() {
    let c = compiled();
    let t = monday_10();
    let mut scratch = Scratch::default();
    // The foreign side opens a connection to the domestic tcp/443: still an export by 10.1.2.3.
    let r = c.classify(
        &flow("198.51.100.7", 50000, "10.1.2.3", 443),
        t,
        &mut scratch,
    );
    assert_eq!(r.direction, Direction::Import);
    assert_eq!(r.status, VerdictStatus::Filed);
    assert_eq!(r.domestic, Some("10.1.2.3".parse().expect("ip")));
    // The service is the responder's (domestic) port.
    let r = c.classify(
        &flow("198.51.100.7", 443, "10.1.2.3", 50000),
        t,
        &mut scratch,
    );
    assert_eq!(r.status, VerdictStatus::ServiceNotFiled);
    // IPv6 with a port range.
    let mut f = flow("fd00:1::5", 1, "2001:db8::7", 8005);
    assert_eq!(c.classify(&f, t, &mut scratch).status, VerdictStatus::Filed);
    f.responder_port = 8011;
    assert_eq!(
        c.classify(&f, t, &mut scratch).status,
        VerdictStatus::ServiceNotFiled
    );
    f.ip_proto = 17;
    f.responder_port = 443;
    assert_eq!(c.classify(&f, t, &mut scratch).status, VerdictStatus::Filed);
    f.responder = "2001:db9::7".parse().expect("ip");
    assert_eq!(
        c.classify(&f, t, &mut scratch).status,
        VerdictStatus::RecipientNotFiled
    );
}

#[test]
fn owner_of_source() {
    let c = compiled();
    let e = c
        .owner_of("10.1.2.3".parse().expect("ip"), &[0; 3])
        .expect("owned");
    assert_eq!(c.registry.enterprises[e as usize].id, "acme");
    assert_eq!(c.owner_of("10.77.0.1".parse().expect("ip"), &[0; 3]), None);
}

#[test]
fn own_name_decides_dns_name_only_without_one_and_never_for_a_foreign_initiator() {
    let c = compiled();
    let t = monday_10();
    let mut scratch = Scratch::default();
    // DNS says the address serves a filed name, but the flow names another host.
    let mut f = flow("10.1.5.5", 1, "192.0.2.1", 443);
    f.dns_name = Some("y.cro.example");
    f.http_host = Some("a.cdn-other.example");
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(
        (r.status, r.name_source),
        (VerdictStatus::RecipientNotFiled, None)
    );
    // Without a name of its own, the DNS name files it.
    f.http_host = None;
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(
        (r.status, r.name_source),
        (VerdictStatus::Filed, Some(NameSource::Dns))
    );
    // A foreign client naming a filed host: the name is the domestic server's.
    let mut f = flow("192.0.2.1", 50000, "10.1.5.5", 443);
    f.tls_sni = Some("x.cro.example");
    let r = c.classify(&f, t, &mut scratch);
    assert_eq!(
        (r.direction, r.status, r.name_source),
        (Direction::Import, VerdictStatus::RecipientNotFiled, None)
    );
    f.tls_sni = None;
    f.dns_name = Some("x.cro.example");
    assert_eq!(
        c.classify(&f, t, &mut scratch).status,
        VerdictStatus::RecipientNotFiled
    );
}

#[test]
fn not_yet_valid_only_when_every_candidate_starts_later() {
    let extra = |id: &str, from: &str, until: &str| {
        format!(
            "\n[[scenario]]\nid = \"{id}\"\nenterprise = \"beta\"\nbasis = \"standard_contract\"\nfiling_ref = \"F-{id}\"\nrecipient = {{ name = \"Example Partner\", country = \"JP\" }}\nactivity = \"manufacturing\"\ndata = [\"none\"]\nvalid_from = {from}\nvalid_until = {until}\nsources = [\"10.20.0.0/16\"]\ndestinations = [\"203.0.113.0/24\"]\n"
        )
    };
    let later = format!(
        "{REGISTRY}{}{}",
        extra("S-L1", "2026-05-01", "2028-04-30"),
        extra("S-L2", "2026-04-01", "2028-03-31")
    );
    let c = Compiled::new(registry(&later), &domestic());
    let f = flow("10.20.0.1", 1, "203.0.113.9", 443);
    let t = monday_10();
    // The lowest id among equals, whatever its start date.
    assert_eq!(
        judge(&c, &f, t),
        (VerdictStatus::FilingNotYetValid, Some("S-L1".into()))
    );
    assert_eq!(
        judge(&c, &f, beijing_micros(2026, 4, 1, 0, 0, 0)),
        (VerdictStatus::Filed, Some("S-L2".into()))
    );
    // One candidate expired, one not started: expired, naming the expired one.
    let mixed = format!(
        "{REGISTRY}{}{}",
        extra("S-L1", "2026-05-01", "2028-04-30"),
        extra("S-OLD", "2023-01-01", "2026-01-31")
    );
    let c = Compiled::new(registry(&mixed), &domestic());
    assert_eq!(
        judge(&c, &f, t),
        (VerdictStatus::FilingExpired, Some("S-OLD".into()))
    );
}
