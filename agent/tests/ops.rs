//! Operating the agent: SIGHUP re-reads `agent.toml`; live keys are applied, the others are
//! logged as needing a restart with their old and new values.

mod common;

use crossline_agent::detect::reload::ConfigReloader;
use crossline_agent::detect::DetectShared;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn registry() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/registry.toml"
    ))
    .to_path_buf()
}

fn write_config(dir: &Path, domestic: &str, workers: usize, extra: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "gateway = \"gw-ops-01\"\ndomestic = [{domestic}]\nregistry = \"{}\"\n\n\
             [capture]\ninterfaces = [\"lo\"]\nworkers = {workers}\nuser = \"root\"\n\n{extra}\n",
            registry().display()
        ),
    )
    .expect("write agent.toml");
    path
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn reloaded_config_changes_classification_and_keeps_restart_only_keys() {
    let dir = common::scratch("ops-lib");
    let path = write_config(
        &dir,
        "\"10.0.0.0/8\", \"fd00::/8\"",
        2,
        "[detect]\nmin_export_bytes = 0\n",
    );
    let today = crossline_config::today_beijing();
    let (cfg, _) = crossline_config::load_agent_config(&path, today).expect("config");
    let shared = DetectShared::new(&cfg).expect("detect");
    let reloader = ConfigReloader::new(cfg, std::sync::Arc::clone(&shared), None);
    let ip: IpAddr = "172.16.5.5".parse().expect("ip");
    assert!(!shared.registry().current().is_domestic(ip));
    let generation = shared.registry().generation();

    write_config(
        &dir,
        "\"10.0.0.0/8\", \"fd00::/8\", \"172.16.0.0/12\"",
        4,
        "[detect]\nmin_export_bytes = 4096\n",
    );
    let changes = reloader.reload_at(today).expect("reload");
    // Live: the new domestic prefix classifies, the threshold is in force, and the workers
    // see both with the next generation.
    assert!(shared.registry().current().is_domestic(ip));
    assert_eq!(shared.live().cfg.min_export_bytes, 4096);
    assert!(shared.registry().generation() > generation);
    assert!(
        changes
            .applied
            .iter()
            .any(|c| c.starts_with("domestic:") && c.contains("172.16.0.0/12")),
        "{changes:?}"
    );
    // Restart-only: reported with old and new values, not applied.
    assert_eq!(
        changes.need_restart,
        vec!["capture.workers: 2 -> 4".to_string()],
        "{changes:?}"
    );

    // An invalid file changes nothing.
    std::fs::write(&path, "gateway = 1\n").expect("write");
    assert!(reloader.reload_at(today).is_err());
    assert!(shared.registry().current().is_domestic(ip));
}

#[test]
fn sighup_applies_domestic_and_logs_workers_as_needing_restart() {
    if !is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but not root: `run` on lo needs CAP_NET_RAW");
        }
        eprintln!("SKIPPED: not root (`run` on lo needs CAP_NET_RAW)");
        return;
    }
    let dir = common::scratch("ops-hup");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let path = write_config(&dir, "\"10.0.0.0/8\", \"fd00::/8\"", 2, &metrics);
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossline-agent"))
        .args(["run", "--config"])
        .arg(&path)
        .arg("--out")
        .arg(dir.join("events.jsonl"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start agent");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let wait_line = |what: &str, log: &mut String| -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            log.push_str(&line);
            log.push('\n');
            if line.contains(what) {
                return Some(line);
            }
        }
        None
    };
    let up = wait_line("capturing on lo", &mut log);
    assert!(up.is_some(), "agent did not start:\n{log}");

    write_config(
        &dir,
        "\"10.0.0.0/8\", \"fd00::/8\", \"172.16.0.0/12\"",
        4,
        &metrics,
    );
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let restart = wait_line("needs a restart", &mut log);
    let applied = wait_line("reloaded", &mut log);
    let alive = child.try_wait().expect("try_wait").is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(alive, "SIGHUP stopped the agent:\n{log}");
    let restart = restart.unwrap_or_else(|| panic!("no restart notice:\n{log}"));
    assert!(
        restart.contains("WARN") && restart.contains("capture.workers: 2 -> 4"),
        "{restart}"
    );
    let applied = applied.unwrap_or_else(|| panic!("no reload notice:\n{log}"));
    assert!(
        applied.contains(
            "applied domestic: [10.0.0.0/8, fd00::/8] -> [10.0.0.0/8, fd00::/8, 172.16.0.0/12]"
        ) && applied.contains("generation 2"),
        "{applied}"
    );
}

/// A CA and a client certificate signed by it, valid for `days` more days, in `dir`.
fn write_pki(dir: &Path, days: i64) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "check CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("client key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
    client
        .distinguished_name
        .push(DnType::CommonName, "gw-ops-01");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let at = |secs: i64| {
        rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs.max(0) as u64)
    };
    client.not_before = at(now - 86_400 * 400);
    client.not_after = at(now + 86_400 * days);
    let client = client
        .signed_by(&key, &rcgen::Issuer::from_params(&ca, &ca_key))
        .expect("client cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("ca");
    std::fs::write(dir.join("gw.pem"), client.pem()).expect("cert");
    std::fs::write(dir.join("gw.key"), key.serialize_pem()).expect("key");
}

fn check(path: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crossline-agent"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .expect("run check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const UPLINK: &str = "[uplink]\ncollector = \"https://127.0.0.1:7443\"\nca = \"ca.pem\"\n\
                      cert = \"gw.pem\"\nkey = \"gw.key\"\nspool_dir = \"spool\"\n";

#[test]
fn check_fails_naming_a_filter_libpcap_refuses() {
    let dir = common::scratch("ops-bpf");
    write_pki(&dir, 365);
    let good = write_config(
        &dir,
        "\"10.0.0.0/8\", \"fd00::/8\"",
        2,
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let text = std::fs::read_to_string(&good).expect("read");
    let with_filter = |f: &str| {
        let t = text.replace(
            "user = \"root\"",
            &format!("user = \"root\"\nfilter = {f:?}"),
        );
        std::fs::write(&good, format!("{t}\n{UPLINK}")).expect("write");
    };
    with_filter("tcp port 443 or udp port 53");
    let (code, out, err) = check(&good);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("filter:       \"tcp port 443 or udp port 53\"")
            && out.contains("interfaces:   lo")
            && out.contains("workers:      2")
            && out.contains("compiles for lo"),
        "{out}"
    );
    // A filter the config parser accepts but libpcap does not.
    with_filter("tcp port");
    let (code, out, err) = check(&good);
    assert_eq!(code, Some(78), "{out}{err}");
    assert!(
        err.contains("error    capture.filter \"tcp port\": libpcap refuses it for lo"),
        "{err}"
    );
}

#[test]
fn check_names_each_collector_of_the_list() {
    let dir = common::scratch("ops-collectors");
    write_pki(&dir, 365);
    let list = UPLINK.replace(
        "collector = \"https://127.0.0.1:7443\"",
        "collector = [\"https://127.0.0.1:7443\", \"https://[::1]:7444\"]",
    );
    let cfg = write_config(&dir, "\"10.0.0.0/8\", \"fd00::/8\"", 2, &list);
    let (code, out, err) = check(&cfg);
    assert_eq!(code, Some(0), "{out}{err}");
    for want in [
        "uplink.collector https://127.0.0.1:7443: connects to 127.0.0.1:7443",
        "uplink.collector https://[::1]:7444: connects to ::1:7444",
        "https://127.0.0.1:7443, https://[::1]:7444 (spool",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
}

#[test]
fn check_names_a_missing_or_foreign_certificate_and_days_left() {
    let dir = common::scratch("ops-cert");
    write_pki(&dir, 20);
    let cfg = write_config(&dir, "\"10.0.0.0/8\", \"fd00::/8\"", 2, UPLINK);
    let (code, out, err) = check(&cfg);
    assert_eq!(code, Some(0), "{out}{err}");
    // 20 days left: a warning with the count, not a failure.
    assert!(
        out.lines().any(|l| l.contains("warning")
            && l.contains("gw.pem")
            && l.contains("19 days left")
            || l.contains("warning") && l.contains("gw.pem") && l.contains("20 days left")),
        "{out}"
    );
    assert!(out.contains("spool"), "{out}");
    // Missing: named, exit 78 (EX_CONFIG).
    std::fs::rename(dir.join("gw.pem"), dir.join("gw.pem.bak")).expect("rename");
    let (code, out, err) = check(&cfg);
    assert_eq!(code, Some(78), "{out}{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("error") && l.contains("uplink.cert") && l.contains("gw.pem")),
        "{err}"
    );
    // Signed by another CA: refused, naming both files.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    write_pki(&other, 365);
    std::fs::copy(other.join("gw.pem"), dir.join("gw.pem")).expect("copy");
    std::fs::copy(other.join("gw.key"), dir.join("gw.key")).expect("copy");
    let (code, out, err) = check(&cfg);
    assert_eq!(code, Some(78), "{out}{err}");
    assert!(
        err.contains("not accepted with uplink.ca") && err.contains("ca.pem"),
        "{err}"
    );
}
