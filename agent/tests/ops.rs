//! Operating the agent: SIGHUP re-reads `agent.toml`; live keys are applied, the others are
//! logged as needing a restart with their old and new values.

use crossline_agent::detect::reload::ConfigReloader;
use crossline_agent::detect::DetectShared;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crossline-ops-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

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
    let dir = temp_dir("lib");
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
    let _ = std::fs::remove_dir_all(&dir);
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
    let dir = temp_dir("hup");
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
    let _ = std::fs::remove_dir_all(&dir);
}
