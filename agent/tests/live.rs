//! Live capture end to end: a network namespace with a veth pair, `crossline-agent run` on the
//! host end, `tcpreplay` of a real capture from inside the namespace, SIGTERM, and a
//! comparison of the live flows with `crossline-agent analyze` on the same file. A second test
//! replays a fragment flood (incomplete first fragments at 1,000 per second) with fragmented
//! exports among it: every export must be seen, fragments as they are on the wire.
//!
//! Needs root, `ip` and `tcpreplay`; otherwise it panics when `CI=true` and prints SKIPPED
//! elsewhere. The namespace (and with it the veth pair) is removed even when the test fails.

use crossline_config::event::{Event, EventType};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::netns::{can_replay, setup, LiveAgent};

fn skip(why: &str) {
    common::netns::skip("live test", why);
}

/// A scratch directory (`tag`) with an `agent.toml` that captures on `host`, with `domestic`
/// (the list's items) and `capture` (lines of the `[capture]` table after the interface), and
/// a registry of one enterprise with nothing filed.
fn live_config(tag: &str, host: &str, domestic: &str, capture: &str) -> common::Scratch {
    let dir = common::scratch(tag);
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "gateway = \"gw-live-01\"\ndomestic = [{domestic}]\nregistry = \"registry.toml\"\n\n\
             [capture]\ninterfaces = [\"{host}\"]\n{capture}"
        ),
    )
    .expect("agent.toml");
    std::fs::write(
        dir.join("registry.toml"),
        "[[enterprise]]\nid = \"acme\"\nname = \"Acme\"\nuscc = \"91350100M000100Y43\"\n",
    )
    .expect("registry.toml");
    dir
}

/// frames/bytes per direction of TCP/UDP flows, summed per 5-tuple (initiator order kept
/// canonical by sorting the endpoints).
type Key = (String, String, u16, String, u16);

fn flows(path: &Path) -> (HashMap<Key, [u64; 4]>, Option<Event>) {
    let text = std::fs::read_to_string(path).expect("events file");
    let mut m: HashMap<Key, [u64; 4]> = HashMap::new();
    let mut stats = None;
    for line in text.lines() {
        let e: Event = serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}"));
        if e.event_type == EventType::Stats {
            stats = Some(e);
            continue;
        }
        if e.event_type != EventType::Flow {
            continue;
        }
        let Some(f) = e.flow.as_ref() else { continue };
        if f.reason == "active_timeout" || !matches!(e.proto.as_deref(), Some("TCP" | "UDP")) {
            continue;
        }
        let a = (
            e.src_ip.clone().unwrap_or_default(),
            e.src_port.unwrap_or(0),
        );
        let b = (
            e.dest_ip.clone().unwrap_or_default(),
            e.dest_port.unwrap_or(0),
        );
        let (lo, hi, c) = if a <= b {
            (
                a,
                b,
                [
                    f.pkts_toserver,
                    f.bytes_toserver,
                    f.pkts_toclient,
                    f.bytes_toclient,
                ],
            )
        } else {
            (
                b,
                a,
                [
                    f.pkts_toclient,
                    f.bytes_toclient,
                    f.pkts_toserver,
                    f.bytes_toserver,
                ],
            )
        };
        let k = (e.proto.clone().unwrap_or_default(), lo.0, lo.1, hi.0, hi.1);
        let v = m.entry(k).or_default();
        for i in 0..4 {
            v[i] += c[i];
        }
    }
    (m, stats)
}

#[test]
fn live_capture_on_veth_matches_offline() {
    live_matches_offline(2);
}

/// One worker runs on the capture thread (no worker queue): the same flows as offline.
#[test]
fn live_capture_with_one_worker_matches_offline() {
    live_matches_offline(1);
}

fn live_matches_offline(workers: usize) {
    if !can_replay("live test") {
        return;
    }
    let shared = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if !shared.is_dir() {
        return skip("../shared not found");
    }
    let pcap = shared.join("corpus/real/ndpi__teams.pcap");
    let id = std::process::id() % 10_000 * 10 + workers as u32;
    let (ns, host, peer) = (format!("clns{id}"), format!("clh{id}"), format!("clp{id}"));
    let _guard = setup(&ns, &host, &peer, 9000);

    let dir = live_config(
        &format!("live-{workers}"),
        &host,
        "\"10.0.0.0/8\", \"192.168.0.0/16\"",
        &format!("workers = {workers}\n"),
    );
    let live_out = dir.join("live.jsonl");
    let offline_out = dir.join("offline.jsonl");
    let bin = env!("CARGO_BIN_EXE_crossline-agent");
    let agent = LiveAgent::start(&dir.join("agent.toml"), &live_out);
    let replay = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "tcpreplay",
            "-q",
            "--pps=4000",
            "-i",
            &peer,
        ])
        .arg(&pcap)
        .output()
        .expect("tcpreplay runs");
    assert!(
        replay.status.success(),
        "tcpreplay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    agent.signal("-TERM");
    let (status, log) = agent.wait();
    assert!(status.success(), "agent exit status {status}: {log:?}");
    // Two workers on one interface: two handles joined into one PACKET_FANOUT group; one
    // worker: one handle.
    let handles = if workers == 2 {
        "2 handle(s), fanout on"
    } else {
        "1 handle(s)"
    };
    assert!(
        log.iter().any(|l| l.contains(handles)),
        "expected {handles}: {log:?}"
    );

    let st = Command::new(bin)
        .args(["analyze", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--out")
        .arg(&offline_out)
        .arg(&pcap)
        .output()
        .expect("analyze runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let (live, live_stats) = flows(&live_out);
    let (offline, _) = flows(&offline_out);
    let live_stats = live_stats.expect("final stats event written on SIGTERM");
    let s = live_stats.stats.as_ref().expect("stats");
    println!(
        "live: {} packets, {} flows, drops {:?}; offline: {} TCP/UDP conversations",
        s.packets,
        s.flows,
        s.drops,
        offline.len()
    );
    let mut equal = 0;
    let mut diff = Vec::new();
    for (k, v) in &offline {
        match live.get(k) {
            Some(l) if l == v => equal += 1,
            other => diff.push(format!("{k:?} offline={v:?} live={other:?}")),
        }
    }
    let extra = live.keys().filter(|k| !offline.contains_key(*k)).count();
    println!(
        "{equal} of {} conversations identical live and offline; {extra} live-only",
        offline.len()
    );
    for d in &diff {
        println!("DIFF {d}");
    }
    assert_eq!(
        s.drops.get("kernel").copied().unwrap_or(0),
        0,
        "kernel drops"
    );
    assert!(diff.is_empty(), "{} conversations differ", diff.len());
}

/// CPU time (user + system) of a process so far, from /proc, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[test]
fn live_fragment_flood_leaves_every_fragmented_export_visible() {
    use crossline_testgen::{frame, PcapWriter, L4};
    if !can_replay("live test") {
        return;
    }
    const SECONDS: i64 = 6;
    const FLOOD_PPS: i64 = 1000;
    const EXPORTS_PER_SEC: i64 = 50;
    let t0 = 1_772_416_800_000_000i64;
    let sa = |s: &str| -> std::net::SocketAddr { s.parse().expect("address") };
    let mut pcap = PcapWriter::default();
    for i in 0..SECONDS * FLOOD_PPS {
        let src = sa(&format!(
            "203.0.{}.{}:{}",
            (i / 250) % 250,
            i % 250 + 1,
            1024 + i
        ));
        let f = frame(None, src, sa("10.1.0.1:53"), L4::Udp, &[0x5a; 1200]);
        let first = common::fragment_ipv4(&f, 1024, (i % 65_536) as u16)
            .into_iter()
            .next()
            .expect("a first fragment");
        pcap.push(t0 + i * 1_000_000 / FLOOD_PPS, first);
    }
    let mut sent = 0u64;
    let mut sent_bytes = 0u64;
    for i in 0..SECONDS * EXPORTS_PER_SEC {
        let src = sa(&format!("10.20.0.5:{}", 20_000 + i));
        let f = frame(None, src, sa("198.51.100.7:9000"), L4::Udp, &[0x33; 3000]);
        let t = t0 + i * 1_000_000 / EXPORTS_PER_SEC + 300;
        for (k, fr) in common::fragment_ipv4(&f, 1480, 0x8000 | i as u16)
            .into_iter()
            .enumerate()
        {
            sent_bytes += fr.len() as u64;
            pcap.push(t + k as i64 * 100, fr);
        }
        sent += 1;
    }
    let id = std::process::id() % 100_000;
    let (ns, host, peer) = (format!("cfns{id}"), format!("cfh{id}"), format!("cfp{id}"));
    let _guard = setup(&ns, &host, &peer, 9000);
    let dir = live_config(
        "livefrag",
        &host,
        "\"10.0.0.0/8\"",
        "workers = 2\nfragment_entries = 1024\n",
    );
    let pcap_path = dir.join("flood.pcap");
    pcap.write(&pcap_path).expect("write capture");
    let out = dir.join("live.jsonl");
    let agent = LiveAgent::start(&dir.join("agent.toml"), &out);
    let cpu_before = cpu_ticks(agent.child.id()).unwrap_or(0);
    let started = Instant::now();
    let replay = Command::new("ip")
        .args(["netns", "exec", &ns, "tcpreplay", "-q", "-i", &peer])
        .arg(&pcap_path)
        .output()
        .expect("tcpreplay runs");
    assert!(
        replay.status.success(),
        "tcpreplay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let wall = started.elapsed();
    let cpu = cpu_ticks(agent.child.id())
        .unwrap_or(0)
        .saturating_sub(cpu_before);
    agent.signal("-TERM");
    let (status, log) = agent.wait();
    assert!(status.success(), "agent exit status {status}: {log:?}");
    let text = std::fs::read_to_string(&out).expect("events");
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let mut seen = 0u64;
    let mut bytes = 0u64;
    let mut pkts = 0u64;
    for e in events.iter().filter(|e| e.event_type == EventType::Flow) {
        if e.dest_port == Some(9000) {
            let f = e.flow.as_ref().expect("flow record");
            seen += 1;
            bytes += f.bytes_toserver;
            pkts += f.pkts_toserver;
        }
    }
    let stats = events
        .iter()
        .rev()
        .find_map(|e| e.stats.clone())
        .expect("final stats");
    let ticks_per_sec = 100.0;
    println!(
        "live fragment flood: {seen} of {sent} fragmented exports seen ({bytes} of {sent_bytes} \
         bytes, {pkts} fragments) among {} incomplete first fragments; {} packets captured, \
         drops {:?}, unattributed {:?}; agent CPU {:.2} s over {:.1} s",
        SECONDS * FLOOD_PPS,
        stats.packets,
        stats.drops,
        stats.ignored,
        cpu as f64 / ticks_per_sec,
        wall.as_secs_f64()
    );
    assert!(
        log.iter().any(|l| l.contains("2 handle(s), fanout on")),
        "fanout not active: {log:?}"
    );
    assert_eq!(
        stats.drops.get("kernel").copied().unwrap_or(0),
        0,
        "kernel drops"
    );
    assert_eq!(seen, sent, "every fragmented export seen");
    assert_eq!(pkts, sent * 3, "every fragment of every export counted");
    assert_eq!(bytes, sent_bytes);
    assert!(
        stats.drops.get("fragment_table").copied().unwrap_or(0) > 0,
        "the flood made the fragment map evict (counted)"
    );
}

/// Context switches of every thread of process `pid` so far (voluntary and not).
fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let status = task
            .ok()
            .and_then(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// An agent on a quiet link sleeps: its capture threads wait in `poll` for the kernel to hand
/// them packets and tick their workers ten times a second, where they napped a millisecond at
/// a time and ticked on every empty read. Two workers, so two capture threads (fanout): about
/// 16,000 context switches a second and a tenth of a CPU with no traffic at all before, about
/// 430 now (debug build).
#[test]
fn an_idle_live_agent_sleeps() {
    if !can_replay("live idle test") {
        return;
    }
    let id = std::process::id() % 10_000 * 10 + 7;
    let (ns, host, peer) = (format!("clns{id}"), format!("clh{id}"), format!("clp{id}"));
    let _guard = setup(&ns, &host, &peer, 1500);
    let dir = live_config("live-idle", &host, "\"10.0.0.0/8\"", "workers = 2\n");
    let agent = LiveAgent::start(&dir.join("agent.toml"), &dir.join("idle.jsonl"));
    let pid = agent.child.id();
    std::thread::sleep(Duration::from_secs(1));
    let (before, t0) = (context_switches(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let switches = context_switches(pid) - before;
    let per_sec = switches as f64 / t0.elapsed().as_secs_f64();
    agent.signal("-TERM");
    let (status, log) = agent.wait();
    println!("idle live agent (2 workers): {per_sec:.0} context switches a second");
    assert!(status.success(), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("2 handle(s), fanout on")),
        "fanout not active: {log:?}"
    );
    assert!(
        per_sec < 1_000.0,
        "an idle agent woke {per_sec:.0} times a second (all threads)"
    );
}
