//! Classification of real captures from `../shared/corpus/real` (public test captures of Zeek):
//! an ECH ClientHello whose outer SNI must never match a filed host, and a Chrome QUIC
//! connection matched by its (decrypted Initial) SNI against a wildcard.

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
    let dir = std::env::temp_dir().join(format!("crossline-real-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("registry.toml"), registry).expect("write");
    std::fs::write(
        dir.join("agent.toml"),
        format!("gateway = \"gw-real\"\ndomestic = [{domestic}]\nregistry = \"registry.toml\"\n"),
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
    let _ = std::fs::remove_dir_all(&dir);
    let events = events.lock().expect("events").clone();
    events
        .into_iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect()
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
