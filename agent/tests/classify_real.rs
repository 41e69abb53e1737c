//! Classification of real captures from `../shared/corpus/real` (public test captures of Zeek):
//! an ECH ClientHello whose outer SNI must never match a filed host, and a Chrome QUIC
//! connection matched by its (decrypted Initial) SNI against a wildcard.

mod common;

use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::pipeline::{run_offline, OfflineOptions};
use crossline_agent::sink::{EventSink, MemorySink};
use crossline_config::event::{Event, EventType, Verdict, VerdictStatus};
use crossline_config::time::Date;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/real"
    ));
    if p.is_dir() {
        return Some(p.to_path_buf());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "../shared not found (required when CI=true)"
    );
    eprintln!("SKIPPED: ../shared not found");
    None
}

const ENTERPRISE: &str = r#"
[[enterprise]]
id = "acme"
name = "Acme"
uscc = "91110108MA01PH7K91"
"#;

fn scenario(sources: &str, destinations: &str, services: &str) -> String {
    format!(
        r#"
[[scenario]]
id = "S-1"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-1"
recipient = {{ name = "Partner", country = "US" }}
activity = "x"
data = ["none"]
valid_from = 2020-01-01
valid_until = 2030-12-31
sources = [{sources}]
destinations = [{destinations}]
services = [{services}]
"#
    )
}

/// Run `pcap` with `domestic` and the registry text; return the flow events.
fn run(name: &str, pcap: &Path, domestic: &str, registry: &str) -> Vec<Event> {
    run_all(name, pcap, domestic, registry, "")
        .into_iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect()
}

/// Run `pcap` with `domestic`, the registry text and `extra` agent config; return every event.
fn run_all(name: &str, pcap: &Path, domestic: &str, registry: &str, extra: &str) -> Vec<Event> {
    let dir = common::scratch(&format!("real-{name}"));
    std::fs::write(dir.join("registry.toml"), registry).expect("write");
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "gateway = \"gw-real\"\ndomestic = [{domestic}]\nregistry = \"registry.toml\"\n{extra}\n"
        ),
    )
    .expect("write");
    let today = Date::new(2026, 3, 1).expect("date");
    let (cfg, _) = match crossline_config::load_agent_config(&dir.join("agent.toml"), today) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let shared = DetectShared::new(&cfg).expect("shared");
    let sink = MemorySink::default();
    let events = Arc::clone(&sink.events);
    let sinks: Vec<Box<dyn EventSink>> = vec![Box::new(sink)];
    let options = OfflineOptions {
        workers: Some(1),
        progress: false,
    };
    run_offline(&cfg, &[pcap.to_path_buf()], sinks, &options, move |i| {
        Classifier::new(Arc::clone(&shared), i)
    })
    .expect("run");
    let events = events.lock().expect("events").clone();
    events
}

fn verdict_of<'a>(flows: &'a [Event], dest: &str, port: u16) -> &'a Verdict {
    // The first flow to dest:port that carries a ClientHello (events are ordered by capture
    // time, and a capture can start with a mid-stream flow to the same server).
    let to_dest = |e: &&Event| e.dest_ip.as_deref() == Some(dest) && e.dest_port == Some(port);
    flows
        .iter()
        .filter(to_dest)
        .find(|e| e.tls.is_some() || e.quic.is_some())
        .or_else(|| flows.iter().find(to_dest))
        .and_then(|e| e.verdict.as_ref())
        .unwrap_or_else(|| panic!("no flow to {dest}:{port}"))
}

#[test]
fn real_ech_outer_sni_is_never_trusted() {
    let Some(dir) = corpus() else { return };
    let pcap = dir.join("zeek__tls13-ech.pcap");
    let domestic = "\"192.168.0.0/16\"";
    // The outer SNI is cloudflare-ech.com: filing that name must not make the flow filed.
    let by_name = format!(
        "{ENTERPRISE}{}",
        scenario(
            "\"192.168.20.0/24\"",
            "\"cloudflare-ech.com\"",
            "\"tcp/443\""
        )
    );
    let flows = run("ech-name", &pcap, domestic, &by_name);
    let v = verdict_of(&flows, "162.159.138.85", 443);
    assert_eq!(
        (v.status, v.ech),
        (VerdictStatus::RecipientNotFiled, true),
        "{v:?}"
    );
    // Filed by address, the same flow is filed (and still says ECH).
    let by_addr = format!(
        "{ENTERPRISE}{}",
        scenario("\"192.168.20.0/24\"", "\"162.159.138.0/24\"", "\"tcp/443\"")
    );
    let flows = run("ech-addr", &pcap, domestic, &by_addr);
    let v = verdict_of(&flows, "162.159.138.85", 443);
    assert_eq!(
        (v.status, v.ech, v.name_source.clone()),
        (VerdictStatus::Filed, true, None)
    );
}

#[test]
fn real_chrome_quic_matches_wildcard_not_bare_parent() {
    let Some(dir) = corpus() else { return };
    let pcap = dir.join("zeek__chromium-115.0.5790.110-api-cirrus-com.pcap");
    let domestic = "\"82.239.54.0/24\"";
    let wildcard = format!(
        "{ENTERPRISE}{}",
        scenario("\"82.239.54.0/24\"", "\"*.cirrus-ci.com\"", "\"udp/443\"")
    );
    let flows = run("quic-wild", &pcap, domestic, &wildcard);
    let v = verdict_of(&flows, "110.213.53.115", 443);
    assert_eq!(
        (v.status, v.name_source.as_deref()),
        (VerdictStatus::Filed, Some("quic")),
        "{v:?}"
    );
    let bare = format!(
        "{ENTERPRISE}{}",
        scenario(
            "\"82.239.54.0/24\"",
            "\"*.api.cirrus-ci.com\"",
            "\"udp/443\""
        )
    );
    let flows = run("quic-bare", &pcap, domestic, &bare);
    let v = verdict_of(&flows, "110.213.53.115", 443);
    assert_eq!(v.status, VerdictStatus::RecipientNotFiled, "{v:?}");
}

/// `ndpi__android.pcap`: one Google front-end address (216.239.38.120) answers DNS queries for
/// clients1, mtalk, android.clients, www and accounts.google.com, and the phone opens TLS
/// connections to it naming each. With `www.google.com` filed, only the flows whose own SNI is
/// that name are filed; a flow naming another host is not, whatever DNS last said about the
/// address.
#[test]
fn real_cdn_address_sni_decides_over_the_dns_name() {
    let Some(dir) = corpus() else { return };
    let pcap = dir.join("ndpi__android.pcap");
    let registry = format!(
        "{ENTERPRISE}{}",
        scenario("\"192.168.2.0/24\"", "\"www.google.com\"", "\"tcp/443\"")
    );
    let flows = run("cdn-sni", &pcap, "\"192.168.2.0/24\"", &registry);
    let front: Vec<&Event> = flows
        .iter()
        .filter(|e| e.dest_ip.as_deref() == Some("216.239.38.120") && e.dest_port == Some(443))
        .collect();
    let sni = |e: &Event| e.tls.as_ref().and_then(|t| t.sni.clone());
    // The capture does exercise the conflict: a flow DNS names www.google.com whose own SNI
    // is another host.
    let conflicting: Vec<&&Event> = front
        .iter()
        .filter(|e| {
            e.dns_name.as_deref() == Some("www.google.com")
                && sni(e).is_some_and(|s| s != "www.google.com")
        })
        .collect();
    assert!(
        !conflicting.is_empty(),
        "no flow with a DNS name www.google.com and another SNI: {front:#?}"
    );
    let mut filed = 0;
    for e in &front {
        let v = e.verdict.as_ref().expect("verdict");
        match sni(e).as_deref() {
            Some("www.google.com") => {
                assert_eq!(
                    (v.status, v.name_source.as_deref()),
                    (VerdictStatus::Filed, Some("tls")),
                    "{e:?}"
                );
                filed += 1;
            }
            Some(_) => assert_eq!(
                (v.status, v.name_source.as_deref()),
                (VerdictStatus::RecipientNotFiled, None),
                "{e:?}"
            ),
            None => {}
        }
    }
    assert_eq!(filed, 2, "{front:#?}");
}

/// `ndpi__android.pcap` seen from a line whose China side is the phone (192.168.2.16): its DNS
/// queries to 192.168.2.1 and its NTP exchange are declared infrastructure; they come out
/// `excluded`, counted per entry, with no alert, while its TLS exports stay unfiled.
#[test]
fn real_resolver_and_ntp_traffic_is_excluded_and_counted() {
    let Some(dir) = corpus() else { return };
    let pcap = dir.join("ndpi__android.pcap");
    let registry = format!(
        "{ENTERPRISE}{}",
        scenario("\"192.168.2.16/32\"", "\"198.18.0.0/15\"", "\"tcp/443\"")
    );
    let extra = r#"
[[exclude]]
name = "resolver"
prefixes = ["192.168.2.1/32"]
services = ["udp/53", "tcp/53"]

[[exclude]]
name = "ntp"
services = ["udp/123"]
"#;
    let events = run_all("exclude", &pcap, "\"192.168.2.16/32\"", &registry, extra);
    let flows: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect();
    let is = |e: &Event, ip: &str, port: u16| {
        e.proto.as_deref() == Some("UDP")
            && e.dest_ip.as_deref() == Some(ip)
            && e.dest_port == Some(port)
    };
    let dns: Vec<&&Event> = flows.iter().filter(|e| is(e, "192.168.2.1", 53)).collect();
    let ntp: Vec<&&Event> = flows
        .iter()
        .filter(|e| is(e, "216.239.35.8", 123))
        .collect();
    // tshark -z conv,udp lists 21 conversations with 192.168.2.1:53.
    assert_eq!(dns.len(), 21);
    assert_eq!(ntp.len(), 1);
    for (e, name) in dns
        .iter()
        .map(|e| (e, "resolver"))
        .chain(ntp.iter().map(|e| (e, "ntp")))
    {
        let v = e.verdict.as_ref().expect("verdict");
        assert_eq!(
            (v.status, v.exclude.as_deref()),
            (VerdictStatus::Excluded, Some(name)),
            "{e:?}"
        );
    }
    // No alert is about an excluded flow.
    let excluded_ids: Vec<Option<u64>> = dns.iter().chain(ntp.iter()).map(|e| e.flow_id).collect();
    for a in events.iter().filter(|e| e.event_type == EventType::Alert) {
        assert!(
            a.flow_id.is_none() || !excluded_ids.contains(&a.flow_id),
            "{a:?}"
        );
    }
    // The TLS exports to Google are still judged (no filed destination covers them).
    let tls_unfiled = flows
        .iter()
        .filter(|e| e.dest_port == Some(443))
        .filter(|e| e.verdict.as_ref().map(|v| v.status) == Some(VerdictStatus::RecipientNotFiled))
        .count();
    assert!(tls_unfiled > 10, "{tls_unfiled}");
    let stats = events
        .iter()
        .rev()
        .find_map(|e| e.stats.as_ref())
        .expect("stats");
    assert_eq!(stats.excluded.get("resolver"), Some(&(dns.len() as u64)));
    assert_eq!(stats.excluded.get("ntp"), Some(&1));
}
