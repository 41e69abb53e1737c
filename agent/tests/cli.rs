//! The `crossline-agent` binary as a user runs it: exit codes, output file, final stats event.

mod common;

use crossline_config::event::{Event, EventType};
use std::path::{Path, PathBuf};
use std::process::Command;

fn shared() -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.is_dir() {
        return Some(p.to_path_buf());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("../shared not found (CI=true)");
    }
    eprintln!("SKIPPED: ../shared not found");
    None
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossline-agent"))
}

/// A minimal valid config (the three required keys) in a fresh temp dir.
fn config_dir(tag: &str) -> common::Scratch {
    let dir = common::scratch(&format!("cli-{tag}"));
    std::fs::write(
        dir.join("agent.toml"),
        "gateway = \"gw-cli-01\"\ndomestic = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nregistry = \"registry.toml\"\n",
    )
    .expect("write agent.toml");
    std::fs::write(
        dir.join("registry.toml"),
        r#"[[enterprise]]
id = "acme"
name = "Acme"
uscc = "91350100M000100Y43"

[[scenario]]
id = "SA-2026-0001"
enterprise = "acme"
basis = "security_assessment"
filing_ref = "X-1"
recipient = { name = "R", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.20.0.0/16"]
destinations = ["198.51.100.0/24"]
"#,
    )
    .expect("write registry.toml");
    dir
}

fn events(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .expect("output file")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

#[test]
fn analyze_writes_flows_then_stats_to_the_out_file() {
    let Some(shared) = shared() else { return };
    let dir = config_dir("ok");
    let out = dir.join("events.jsonl");
    let pcap = shared.join("corpus/real/ndpi__443-firefox.pcap");
    let st = bin()
        .args(["analyze", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--out")
        .arg(&out)
        .args(["--workers", "2"])
        .arg(&pcap)
        .output()
        .expect("runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(st.stdout.is_empty(), "events go to --out, not stdout");
    let ev = events(&out);
    let last = ev.last().expect("events");
    assert_eq!(last.event_type, EventType::Stats);
    let stats = last.stats.as_ref().expect("stats body");
    assert_eq!(stats.packets, 667);
    let flows: Vec<&Event> = ev
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .collect();
    assert_eq!(flows.len() as u64, stats.flow_events);
    let tls = flows
        .iter()
        .find(|e| e.dest_port == Some(443))
        .expect("the HTTPS flow");
    assert_eq!(
        tls.src_ip.as_deref(),
        Some("192.168.1.13"),
        "SYN sender is src"
    );
    assert_eq!(tls.app_proto.as_deref(), Some("tls"));
    assert!(tls.tls.as_ref().and_then(|t| t.sni.as_ref()).is_some());
    let f = tls.flow.as_ref().expect("flow");
    // tshark: 316 frames / 28495 bytes A->B, 351 / 429572 B->A (oracle conv.csv).
    assert_eq!((f.pkts_toserver, f.bytes_toserver), (316, 28_495));
    assert_eq!((f.pkts_toclient, f.bytes_toclient), (351, 429_572));
    assert!(tls
        .community_id
        .as_deref()
        .is_some_and(|c| c.starts_with("1:")));
}

#[test]
fn bad_config_exits_78() {
    let dir = config_dir("bad");
    std::fs::write(dir.join("agent.toml"), "gateway = 5\n").expect("write");
    let st = bin()
        .args(["analyze", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("/nonexistent.pcap")
        .output()
        .expect("runs");
    assert_eq!(
        st.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(String::from_utf8_lossy(&st.stderr).contains("agent.toml"));
}

/// Command-line mistakes exit 64 (EX_USAGE), help and version 0; the help lists the codes.
#[test]
fn usage_errors_exit_64() {
    for args in [
        &["analyze", "--no-such-option", "x.pcap"][..],
        &["analyze", "--config", "a.toml"][..],
        &[
            "analyze",
            "--config",
            "a.toml",
            "--linger",
            "5 parsecs",
            "x.pcap",
        ][..],
        &["frobnicate"][..],
        &[][..],
    ] {
        let st = bin().args(args).output().expect("runs");
        assert_eq!(
            st.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        assert!(!st.stderr.is_empty(), "{args:?}: the mistake is explained");
    }
    let help = bin().arg("--help").output().expect("runs");
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("64  usage error") && text.contains("78  configuration error"),
        "{text}"
    );
    let version = bin().arg("--version").output().expect("runs");
    assert_eq!(version.status.code(), Some(0));
}

#[test]
fn unreadable_pcap_exits_1_naming_the_file() {
    let dir = config_dir("unreadable");
    let junk = dir.join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file").expect("write");
    let st = bin()
        .args(["analyze", "--config"])
        .arg(dir.join("agent.toml"))
        .arg(&junk)
        .output()
        .expect("runs");
    assert_eq!(st.status.code(), Some(1));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("junk.pcap"), "{err}");
    assert!(st.stdout.is_empty(), "nothing written for a bad file");
}

#[test]
fn file_cut_short_is_read_up_to_the_cut_and_reported() {
    let Some(shared) = shared() else { return };
    let dir = config_dir("cut");
    let out = dir.join("events.jsonl");
    let st = bin()
        .args(["analyze", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--out")
        .arg(&out)
        .arg(shared.join("corpus/real/ndpi__fuzz-2021-10-13.pcap"))
        .output()
        .expect("runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let ev = events(&out);
    let stats = ev
        .last()
        .and_then(|e| e.stats.as_ref())
        .expect("stats last");
    assert!(stats.packets > 0);
    assert_eq!(stats.file_errors.len(), 1, "{:?}", stats.file_errors);
    assert!(stats.file_errors[0].contains("ndpi__fuzz-2021-10-13.pcap"));
}

#[test]
fn check_validates_the_config() {
    let dir = config_dir("check");
    let st = bin()
        .args(["check", "--config"])
        .arg(dir.join("agent.toml"))
        .output()
        .expect("runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn run_on_a_missing_interface_exits_1_naming_it() {
    let dir = config_dir("noif");
    let mut cfg = std::fs::read_to_string(dir.join("agent.toml")).expect("read");
    cfg.push_str("\n[capture]\ninterfaces = [\"nosuchif0\"]\n");
    std::fs::write(dir.join("agent.toml"), cfg).expect("write");
    let st = bin()
        .args(["run", "--config"])
        .arg(dir.join("agent.toml"))
        .output()
        .expect("runs");
    assert_eq!(
        st.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(String::from_utf8_lossy(&st.stderr).contains("nosuchif0"));
}
