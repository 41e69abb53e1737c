//! Least privilege without systemd: `crossline-agent run` started as root switches to the
//! `[capture] user` and keeps `CAP_NET_RAW` alone (read from `/proc/PID/status`), and still
//! captures on a veth pair (fanout included); without `CAP_NET_RAW` or with an unknown user it
//! stops with a message that names what is missing.
//!
//! The capture test needs root, `ip` and `tcpreplay`; otherwise it panics when `CI=true` and
//! prints SKIPPED elsewhere. The namespace (and with it the veth pair) is removed even when the
//! test fails.

use crossline_config::event::{Event, EventType};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::netns::{can_replay, have, is_root, setup, sh};

const BIN: &str = env!("CARGO_BIN_EXE_crossline-agent");

fn skip(why: &str) {
    common::netns::skip("privilege test", why);
}

fn write_config(dir: &Path, capture: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "gateway = \"gw-priv-01\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\nregistry = \"registry.toml\"\n\n[capture]\n{capture}\n"
        ),
    )
    .expect("agent.toml");
    std::fs::write(
        dir.join("registry.toml"),
        "[[enterprise]]\nid = \"acme\"\nname = \"Acme\"\nuscc = \"91350100M000100Y43\"\n",
    )
    .expect("registry.toml");
    path
}

/// `Uid:`/`Gid:` (four ids) or a hex capability mask of a `/proc/.../status` text.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{name} missing in {status}"))
}

fn mask(status: &str, name: &str) -> u64 {
    u64::from_str_radix(field(status, name), 16).expect("hex mask")
}

/// (proto, lower endpoint, higher endpoint) of every TCP/UDP flow record.
fn flow_keys(path: &Path) -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(path).expect("events file");
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let e: Event = serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}"));
        if e.event_type != EventType::Flow || !matches!(e.proto.as_deref(), Some("TCP" | "UDP")) {
            continue;
        }
        let a = format!(
            "{}:{}",
            e.src_ip.unwrap_or_default(),
            e.src_port.unwrap_or(0)
        );
        let b = format!(
            "{}:{}",
            e.dest_ip.unwrap_or_default(),
            e.dest_port.unwrap_or(0)
        );
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        keys.insert((e.proto.unwrap_or_default(), lo, hi));
    }
    keys
}

#[test]
fn run_as_root_switches_user_keeps_only_net_raw_and_still_captures() {
    if !can_replay("privilege test") {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let nobody =
        crossline_agent::privilege::lookup(&passwd, &group, "nobody").expect("user nobody exists");
    let id = std::process::id() % 100_000;
    let (ns, host, peer) = (format!("cpns{id}"), format!("cph{id}"), format!("cpp{id}"));
    let _guard = setup(&ns, &host, &peer, 1500);

    let dir = common::scratch("priv-run");
    let config = write_config(
        &dir,
        &format!("interfaces = [\"{host}\"]\nworkers = 2\nuser = \"nobody\""),
    );
    // The events file is created after the switch: its folder belongs to the service user.
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    std::os::unix::fs::chown(&out_dir, Some(nobody.uid), Some(nobody.gid)).expect("chown");
    let live_out = out_dir.join("live.jsonl");

    let mut agent = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&live_out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent starts");
    let stderr = agent.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("capturing on")) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => log.push(l),
            Err(_) if Instant::now() > deadline => {
                let _ = agent.kill();
                panic!("agent did not start capturing: {log:?}");
            }
            Err(_) => {
                if let Ok(Some(st)) = agent.try_wait() {
                    panic!("agent exited early ({st}): {log:?}");
                }
            }
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("running as user nobody") && l.contains("CAP_NET_RAW only")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("capturing on {host}: 2 handle(s), fanout on"))),
        "fanout needs no more than CAP_NET_RAW: {log:?}"
    );

    // Every thread of the process, not only the main one, runs with the reduced credentials.
    let pid = agent.id();
    let uid = nobody.uid.to_string();
    let gid = nobody.gid.to_string();
    let tasks: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(tasks.len() > 1, "expected capture and worker threads");
    for task in std::iter::once(PathBuf::from(format!("/proc/{pid}"))).chain(tasks) {
        let status = std::fs::read_to_string(task.join("status")).expect("status");
        let ids: Vec<&str> = field(&status, "Uid").split_whitespace().collect();
        assert_eq!(ids, [uid.as_str(); 4], "{}: {status}", task.display());
        let ids: Vec<&str> = field(&status, "Gid").split_whitespace().collect();
        assert_eq!(ids, [gid.as_str(); 4], "{}: {status}", task.display());
        assert_eq!(field(&status, "Groups"), "", "supplementary groups kept");
        for (name, want) in [
            ("CapEff", 1u64 << 13),
            ("CapPrm", 1 << 13),
            ("CapBnd", 1 << 13),
            ("CapInh", 0),
            ("CapAmb", 0),
        ] {
            assert_eq!(
                mask(&status, name),
                want,
                "{}: {name} in {status}",
                task.display()
            );
        }
        assert_eq!(field(&status, "NoNewPrivs"), "1", "{status}");
    }

    let pcap = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/demo.pcap"
    ));
    let replay = Command::new("ip")
        .args(["netns", "exec", &ns, "tcpreplay", "-q", "--pps=4000", "-i"])
        .arg(&peer)
        .arg(pcap)
        .output()
        .expect("tcpreplay runs");
    assert!(
        replay.status.success(),
        "tcpreplay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(sh(&["kill", "-TERM", &pid.to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(st)) = agent.try_wait() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            panic!("agent did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = rx.try_recv() {
        log.push(l);
    }
    assert!(status.success(), "agent exit {status}: {log:?}");
    let meta = std::fs::metadata(&live_out).expect("events file");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        nobody.uid,
        "events file not created by the service user"
    );

    // The same flows as `analyze` on the file.
    let offline_out = dir.join("offline.jsonl");
    let st = Command::new(BIN)
        .args(["analyze", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&offline_out)
        .arg(pcap)
        .output()
        .expect("analyze runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let live = flow_keys(&live_out);
    let offline = flow_keys(&offline_out);
    assert!(offline.len() >= 10, "demo capture has flows: {offline:?}");
    assert_eq!(
        live.symmetric_difference(&offline).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "live flows differ from analyze"
    );
}

#[test]
fn without_cap_net_raw_run_names_the_capability_and_interface() {
    let dir = common::scratch("priv-nocap");
    let config = write_config(&dir, "interfaces = [\"lo\"]\nworkers = 1");
    let mut cmd = if is_root() {
        if !have("setpriv") {
            return skip("setpriv not installed");
        }
        // An ordinary user with no capability at all.
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            BIN,
        ]);
        c
    } else {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        if mask(&status, "CapEff") & (1 << 13) != 0 {
            return skip("this user already holds CAP_NET_RAW");
        }
        Command::new(BIN)
    };
    let out = cmd
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("live capture on lo needs CAP_NET_RAW"),
        "{stderr}"
    );
    assert!(
        stderr.contains("AmbientCapabilities=CAP_NET_RAW"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_user_is_named() {
    let dir = common::scratch("priv-nouser");
    let config = write_config(
        &dir,
        "interfaces = [\"lo\"]\nworkers = 1\nuser = \"crossline-no-such-user\"",
    );
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("capture.user = \"crossline-no-such-user\": no such user"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_user_name_is_a_config_error_with_its_line() {
    let dir = common::scratch("priv-badname");
    let config = write_config(&dir, "user = \"Bad Name\"");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("agent.toml:6:"), "{text}");
    assert!(
        text.contains("capture.user: \"Bad Name\" is not a user name"),
        "{text}"
    );
}

/// As under crossline-agent.service (`User=`, `AmbientCapabilities=CAP_NET_RAW`): a plain user
/// holding only CAP_NET_RAW captures, with fanout, and stops cleanly on SIGTERM.
#[test]
fn a_plain_user_with_ambient_cap_net_raw_captures_like_the_unit() {
    if !is_root() {
        return skip("not root (setpriv needs it to hand over the capability)");
    }
    if !have("setpriv") {
        return skip("setpriv not installed");
    }
    let dir = common::scratch("priv-ambient");
    let config = write_config(
        &dir,
        "interfaces = [\"lo\"]\nworkers = 2\nuser = \"nobody\"",
    );
    let mut agent = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+net_raw",
            "--ambient-caps=+net_raw",
            "--bounding-set=-all,+net_raw",
            BIN,
            "run",
            "--out",
            "/dev/null",
            "--config",
        ])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent starts");
    let stderr = agent.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let done = line.contains("capturing on");
        log.push(line);
        if done {
            break;
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("running as uid 65534 with CAP_NET_RAW")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("capturing on lo: 2 handle(s), fanout on")),
        "{log:?}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.id())).expect("status");
    assert_eq!(mask(&status, "CapEff"), 1 << 13, "{status}");
    assert!(sh(&["kill", "-TERM", &agent.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Ok(Some(st)) = agent.try_wait() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            panic!("agent did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    log.extend(lines);
    assert!(st.success(), "exit {st}: {log:?}");
}
