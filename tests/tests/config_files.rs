//! Configuration paths that are not regular files, or far too large, are refused at once by
//! name: `/dev/zero`, a FIFO, a directory and a sparse 64 MiB + 1 file, as the agent's config,
//! as its registry and as the collector's config and registry, through `check`, `analyze` and
//! `run` of the real binaries. Before, `/dev/zero` grew without bound and a FIFO blocked forever.

use crossline_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each kind of bad path: (label, path, words the error must contain).
fn bad_paths(dir: &Path) -> Vec<(&'static str, PathBuf, &'static str)> {
    let fifo = dir.join("fifo.toml");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "mkfifo {} failed", fifo.display());
    let big = dir.join("big.toml");
    let f = std::fs::File::create(&big).expect("create");
    // Sparse: no disk space used.
    f.set_len((64 << 20) + 1).expect("set_len");
    let folder = dir.join("folder.toml");
    std::fs::create_dir_all(&folder).expect("mkdir");
    vec![
        (
            "/dev/zero",
            PathBuf::from("/dev/zero"),
            "is a character device, expected a regular file",
        ),
        (
            "FIFO",
            fifo,
            "is a FIFO (named pipe), expected a regular file",
        ),
        (
            "directory",
            folder,
            "is a directory, expected a regular file",
        ),
        (
            "oversized file",
            big,
            "67108865 bytes is over the limit of 67108864 bytes (64 MiB)",
        ),
    ]
}

/// Run `cmd` for at most 10 s; it must fail with `code` (78, EX_CONFIG, for every case here)
/// and print `path` and `words`.
fn refuses(what: &str, mut cmd: Command, code: i32, path: &Path, words: &str) {
    let started = Instant::now();
    let dir = TempDir::new("config-files-log");
    let log = dir.path().join("out.log");
    cmd.stdin(std::process::Stdio::null());
    let mut p = Proc::spawn(what, cmd, &log).expect("spawn");
    let status = p.wait(Duration::from_secs(10)).expect("exits in time");
    let out = p.output();
    assert_eq!(status.code(), Some(code), "{what}: exit status\n{out}");
    assert!(
        out.contains(&path.display().to_string()) && out.contains(words),
        "{what}: expected an error naming {} and saying {words:?}, got:\n{out}",
        path.display()
    );
    eprintln!("{what}: refused in {:?}", started.elapsed());
}

#[test]
fn agent_and_collector_refuse_config_paths_that_are_not_small_regular_files() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("config-files");
    let dir = tmp.path();
    let registry = repo_root().join("examples/registry.toml");
    let pcap = repo_root().join("examples/demo.pcap");
    for (label, bad, words) in bad_paths(dir) {
        // The agent config itself.
        let mut cmd = Command::new(&agent);
        cmd.arg("check").arg("--config").arg(&bad);
        refuses(
            &format!("agent check, config = {label}"),
            cmd,
            78,
            &bad,
            words,
        );

        // The registry named by a valid agent config.
        let cfg = dir.join(format!("agent-{}.toml", label.replace(['/', ' '], "_")));
        std::fs::write(
            &cfg,
            format!(
                "gateway = \"gw-bj-01\"\ndomestic = [\"10.0.0.0/8\"]\nregistry = \"{}\"\n",
                bad.display()
            ),
        )
        .expect("write agent config");
        let mut cmd = Command::new(&agent);
        cmd.arg("check").arg("--config").arg(&cfg);
        refuses(
            &format!("agent check, registry = {label}"),
            cmd,
            78,
            &bad,
            words,
        );
        let mut cmd = Command::new(&agent);
        cmd.arg("analyze")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(dir.join("events.jsonl"))
            .arg(&pcap);
        refuses(
            &format!("agent analyze, registry = {label}"),
            cmd,
            78,
            &bad,
            words,
        );
        let mut cmd = Command::new(&agent);
        cmd.arg("run").arg("--config").arg(&cfg);
        refuses(
            &format!("agent run, registry = {label}"),
            cmd,
            78,
            &bad,
            words,
        );

        // The collector config, and the registry it names.
        let mut cmd = Command::new(&collector);
        cmd.arg("check").arg("--config").arg(&bad);
        refuses(
            &format!("collector check, config = {label}"),
            cmd,
            78,
            &bad,
            words,
        );
        let ccfg = dir.join(format!("collector-{}.toml", label.replace(['/', ' '], "_")));
        std::fs::write(
            &ccfg,
            format!(
                "listen = \"127.0.0.1:1\"\napi_listen = \"127.0.0.1:2\"\ndatabase = \"c.db\"\n\
                 gateways = [\"gw-bj-01\"]\nregistry = \"{}\"\n\n[tls]\nca = \"ca.pem\"\n\
                 cert = \"s.pem\"\nkey = \"s.key\"\n",
                bad.display()
            ),
        )
        .expect("write collector config");
        for sub in ["check", "run"] {
            let mut cmd = Command::new(&collector);
            cmd.arg(sub).arg("--config").arg(&ccfg);
            refuses(
                &format!("collector {sub}, registry = {label}"),
                cmd,
                78,
                &bad,
                words,
            );
        }
    }
    // The valid registry is still read (the refusals above are about the paths, not the code).
    let cfg = dir.join("agent-ok.toml");
    std::fs::write(
        &cfg,
        format!(
            "gateway = \"gw-bj-01\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\nregistry = \"{}\"\n",
            registry.display()
        ),
    )
    .expect("write");
    let out = Command::new(&agent)
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
