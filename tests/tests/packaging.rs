//! Debian packages: `scripts/package-deb.sh` builds crossline-agent and crossline-collector
//! from the debug binaries; their contents are checked after `dpkg-deb -x` (files, modes,
//! conffiles, control fields, the shipped configuration), `systemd-analyze verify` passes on
//! the units, and, as root, both packages are installed with the real `dpkg -i` into an
//! overlay of the running system inside a private mount namespace (the host's /etc and /usr
//! are untouched): service users, config modes, man pages, the hardening score, the operator's
//! PKI steps from docs/deploy.md checked as the service users, and `dpkg --purge`.
//!
//! Needs dpkg-deb, readelf and systemd-analyze (and unshare, chroot, overlayfs and root for
//! the install test); otherwise SKIPPED, or a failure under `CI=true`.

use crossline_e2e::{binaries, in_ci, is_root, repo_root, skip, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Build both packages from the debug binaries into `out`; (agent.deb, collector.deb).
fn build_packages(out: &Path) -> Option<(PathBuf, PathBuf)> {
    for tool in ["dpkg-deb", "readelf", "strip", "systemd-analyze"] {
        if !have(tool) {
            skip(&format!(
                "{tool} not installed (scripts/ensure-deps.sh test installs it)"
            ));
            return None;
        }
    }
    let (agent, _) = binaries()?;
    let bin_dir = agent.parent().expect("bin dir").to_path_buf();
    let listed = run(Command::new(repo_root().join("scripts/package-deb.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out)
        .args(["--compression", "gzip"]));
    let debs: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    assert_eq!(debs.len(), 2, "{listed}");
    for d in &debs {
        assert!(d.is_file(), "{} missing: {listed}", d.display());
    }
    let name = |d: &PathBuf| {
        d.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    assert!(name(&debs[0]).starts_with("crossline-agent_"), "{listed}");
    assert!(
        name(&debs[1]).starts_with("crossline-collector_"),
        "{listed}"
    );
    Some((debs[0].clone(), debs[1].clone()))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn field(deb: &Path, name: &str) -> String {
    run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
        .trim()
        .to_string()
}

/// `systemd-analyze verify` of `units` in `root` (needs /bin/kill and the system targets
/// there: taken from the host). Returns (success, output).
fn verify(root: &Path, units: &[PathBuf]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .expect("systemd-analyze runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

#[test]
fn packages_hold_binaries_units_configs_docs_and_verify() {
    let tmp = TempDir::new("packaging");
    let Some((agent_deb, collector_deb)) = build_packages(&tmp.path().join("debs")) else {
        return;
    };

    // Control fields.
    assert_eq!(field(&agent_deb, "Package"), "crossline-agent");
    let depends = field(&agent_deb, "Depends");
    for dep in ["libc6", "libpcap0.8", "adduser"] {
        assert!(
            depends.contains(dep),
            "agent Depends lacks {dep}: {depends}"
        );
    }
    let depends = field(&collector_deb, "Depends");
    assert!(
        !depends.contains("libpcap"),
        "collector does not link libpcap: {depends}"
    );
    assert_eq!(
        field(&collector_deb, "Version"),
        field(&agent_deb, "Version")
    );

    // Conffiles: the configuration in /etc/crossline, nothing else.
    let control = tmp.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&agent_deb)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/crossline/agent.toml", "/etc/crossline/registry.toml"]
    );
    for script in ["postinst", "prerm", "postrm"] {
        let p = control.join(script);
        assert_eq!(mode(&p), 0o755, "{script}");
        let text = std::fs::read_to_string(&p).expect("script");
        assert!(!text.contains('@'), "unsubstituted placeholder in {script}");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(
        postinst.contains("adduser --system --group") && postinst.contains(" crossline >"),
        "{postinst}"
    );

    // Files and modes.
    let root = tmp.path().join("root");
    for deb in [&agent_deb, &collector_deb] {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    }
    for (path, want) in [
        ("usr/bin/crossline-agent", 0o755),
        ("usr/bin/crossline-collector", 0o755),
        ("usr/lib/systemd/system/crossline-agent.service", 0o644),
        ("usr/lib/systemd/system/crossline-collector.service", 0o644),
        ("etc/crossline/agent.toml", 0o644),
        ("etc/crossline/registry.toml", 0o644),
        ("etc/crossline/collector.toml", 0o644),
        ("usr/share/man/man1/crossline-agent.1.gz", 0o644),
        ("usr/share/man/man1/crossline-agent-run.1.gz", 0o644),
        (
            "usr/share/man/man1/crossline-collector-pki-init.1.gz",
            0o644,
        ),
        (
            "usr/share/bash-completion/completions/crossline-agent",
            0o644,
        ),
        (
            "usr/share/zsh/vendor-completions/_crossline-collector",
            0o644,
        ),
        (
            "usr/share/fish/vendor_completions.d/crossline-agent.fish",
            0o644,
        ),
        ("usr/share/doc/crossline-agent/deploy.md", 0o644),
        ("usr/share/doc/crossline-collector/metrics.md", 0o644),
        (
            "usr/share/doc/crossline-collector/examples/prometheus.yml",
            0o644,
        ),
        ("usr/share/doc/crossline-agent/copyright", 0o644),
    ] {
        assert_eq!(mode(&root.join(path)), want, "{path}");
    }
    // No hidden `generate` page; binaries stripped (no .debug_info section).
    assert!(!root
        .join("usr/share/man/man1/crossline-agent-generate.1.gz")
        .exists());
    let sections = run(Command::new("readelf")
        .arg("-S")
        .arg(root.join("usr/bin/crossline-agent")));
    assert!(!sections.contains(".debug_info"), "agent not stripped");

    // The shipped configuration keeps state out of /etc and is valid once the PKI is there.
    let agent_toml = std::fs::read_to_string(root.join("etc/crossline/agent.toml")).expect("cfg");
    assert!(
        agent_toml.contains("spool_dir = \"/var/lib/crossline/agent/spool\""),
        "{agent_toml}"
    );
    let collector_toml =
        std::fs::read_to_string(root.join("etc/crossline/collector.toml")).expect("cfg");
    assert!(
        collector_toml.contains("database = \"/var/lib/crossline/collector/collector.db\""),
        "{collector_toml}"
    );
    let agent = root.join("usr/bin/crossline-agent");
    let collector = root.join("usr/bin/crossline-collector");
    let pki = root.join("etc/crossline/pki");
    run(Command::new(&collector).args(["pki", "init"]).arg(&pki));
    run(Command::new(&collector)
        .args(["pki", "issue"])
        .arg(&pki)
        .args(["--gateway", "gw-change-me"]));
    std::fs::copy(pki.join("gw-change-me.pem"), pki.join("gateway.pem")).expect("copy");
    std::fs::copy(pki.join("gw-change-me.key"), pki.join("gateway.key")).expect("copy");
    let check = run(Command::new(&agent)
        .args(["check", "--config"])
        .arg(root.join("etc/crossline/agent.toml")));
    assert!(check.contains("uplink:"), "{check}");
    run(Command::new(&collector)
        .args(["check", "--config"])
        .arg(root.join("etc/crossline/collector.toml")));

    // The units verify; a broken copy does not (the check is real).
    let host_units = Path::new("/lib/systemd/system");
    let units_dir = root.join("usr/lib/systemd/system");
    for entry in std::fs::read_dir(host_units).expect("host units") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "target") {
            if let Some(n) = p.file_name() {
                std::fs::copy(&p, units_dir.join(n)).expect("copy target");
            }
        }
    }
    std::fs::create_dir_all(root.join("bin")).expect("bin");
    std::fs::copy("/bin/kill", root.join("bin/kill")).expect("kill");
    let units = [
        units_dir.join("crossline-agent.service"),
        units_dir.join("crossline-collector.service"),
    ];
    let (ok, text) = verify(&root, &units);
    assert!(ok, "systemd-analyze verify: {text}");
    let broken = units_dir.join("crossline-broken.service");
    let unit = std::fs::read_to_string(&units[0]).expect("unit");
    std::fs::write(
        &broken,
        unit.replace("ProtectSystem=strict", "ProtectSystem=stricter")
            .replace(
                "/usr/bin/crossline-agent run",
                "/usr/bin/crossline-nothing run",
            ),
    )
    .expect("write");
    let (ok, text) = verify(&root, &[broken]);
    assert!(!ok, "a broken unit verified: {text}");
    assert!(text.contains("crossline-nothing"), "{text}");
}

/// Shell run inside `unshare --mount`: overlay of / on a tmpfs, `dpkg -i` in a chroot, the
/// operator's steps, `dpkg --purge`. Results land in $OUT as files.
const INSTALL: &str = r#"
set -eu
T="$WORK/ovl"
mkdir -p "$T"
mount -t tmpfs tmpfs "$T"
mkdir "$T/u" "$T/w" "$T/m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/u,workdir=$T/w" "$T/m"
mount -t proc proc "$T/m/proc"
mkdir -p "$T/m/tmp/debs"
cp "$AGENT_DEB" "$COLLECTOR_DEB" "$T/m/tmp/debs/"
C="chroot $T/m"
$C sh -c 'dpkg -i /tmp/debs/*.deb' > "$OUT/install.log" 2>&1
$C getent passwd crossline crossline-collector > "$OUT/passwd"
$C sh -c 'stat -c "%n %a %U %G" /etc/crossline/*.toml /var/lib/crossline /var/lib/crossline/*' > "$OUT/modes"
$C man -w crossline-agent crossline-agent-run crossline-collector-pki-init > "$OUT/man" 2>&1
systemd-analyze verify --man=no --root="$T/m" "$T/m/usr/lib/systemd/system/crossline-agent.service" "$T/m/usr/lib/systemd/system/crossline-collector.service" > "$OUT/verify" 2>&1 && echo 0 > "$OUT/verify.rc" || echo 1 > "$OUT/verify.rc"
for u in agent collector; do
    systemd-analyze security --offline=true --root="$T/m" "$T/m/usr/lib/systemd/system/crossline-$u.service" > "$OUT/security-$u" 2>&1 || true
done
# docs/deploy.md, collector host: CA, server certificate, key readable by the service group.
$C crossline-collector pki init /etc/crossline/pki > /dev/null
$C chgrp crossline-collector /etc/crossline/pki/server.key
$C chmod 0640 /etc/crossline/pki/server.key
# docs/deploy.md, gateway: its certificate and key, key readable by the service group.
$C crossline-collector pki issue /etc/crossline/pki --gateway gw-change-me > /dev/null
$C install -m 0644 /etc/crossline/pki/gw-change-me.pem /etc/crossline/pki/gateway.pem
$C install -m 0640 -g crossline /etc/crossline/pki/gw-change-me.key /etc/crossline/pki/gateway.key
$C setpriv --reuid=crossline --regid=crossline --init-groups crossline-agent check --config /etc/crossline/agent.toml > "$OUT/agent-check" 2>&1 && echo 0 > "$OUT/agent-check.rc" || echo $? > "$OUT/agent-check.rc"
$C setpriv --reuid=crossline-collector --regid=crossline-collector --init-groups crossline-collector check --config /etc/crossline/collector.toml > "$OUT/collector-check" 2>&1 && echo 0 > "$OUT/collector-check.rc" || echo $? > "$OUT/collector-check.rc"
# Both services started as their units start them (service user; the agent with ambient
# CAP_NET_RAW alone), in this private network namespace: the agent captures on lo and streams to
# the collector with the certificates above.
ip link set lo up
$C sed -i -e 's|^collector = .*|collector = "https://localhost:9470"|' -e 's|^interfaces = \[\]|interfaces = ["lo"]|' /etc/crossline/agent.toml
$C setpriv --reuid=crossline-collector --regid=crossline-collector --init-groups --inh-caps=-all --bounding-set=-all crossline-collector run --config /etc/crossline/collector.toml > "$OUT/collector.log" 2>&1 &
CPID=$!
$C setpriv --reuid=crossline --regid=crossline --init-groups --inh-caps=-all,+net_raw --ambient-caps=+net_raw --bounding-set=-all,+net_raw crossline-agent run --config /etc/crossline/agent.toml > /dev/null 2> "$OUT/agent.log" &
APID=$!
trap 'kill $APID $CPID 2>/dev/null || true' EXIT
scrape() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null || true; }
i=0
while [ $i -lt 60 ]; do
    scrape 9184 > "$OUT/agent-metrics"
    scrape 9471 > "$OUT/collector-metrics"
    if grep -q '^crossline_agent_last_seen_timestamp_seconds{gateway="gw-change-me"}' "$OUT/collector-metrics"; then
        break
    fi
    sleep 0.5
    i=$((i + 1))
done
cat /proc/$APID/status > "$OUT/agent-status" 2>&1 || true
$C stat -c "%n %U" /var/lib/crossline/agent/spool > "$OUT/spool-owner" 2>&1 || true
kill -TERM $APID $CPID
wait $APID && echo 0 > "$OUT/agent.rc" || echo $? > "$OUT/agent.rc"
wait $CPID && echo 0 > "$OUT/collector.rc" || echo $? > "$OUT/collector.rc"
trap - EXIT
# Reinstall (upgrade path) is idempotent, then purge.
$C sh -c 'dpkg -i /tmp/debs/*.deb' > "$OUT/reinstall.log" 2>&1
$C dpkg --purge crossline-agent crossline-collector > "$OUT/purge.log" 2>&1
$C sh -c 'ls -A /etc/crossline; ls -A /var/lib/crossline 2>&1; ls /usr/bin/crossline-agent 2>&1' > "$OUT/after-purge" 2>&1 || true
"#;

#[test]
fn packages_install_with_dpkg_into_an_overlay_root() {
    if !is_root() {
        skip("not root: dpkg -i into an overlay needs root");
        return;
    }
    for tool in ["unshare", "chroot", "setpriv", "systemd-analyze"] {
        if !have(tool) {
            skip(&format!("{tool} not installed"));
            return;
        }
    }
    let tmp = TempDir::new("install");
    let Some((agent_deb, collector_deb)) = build_packages(&tmp.path().join("debs")) else {
        return;
    };
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).expect("out");
    let status = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            INSTALL,
        ])
        .env("WORK", tmp.path())
        .env("OUT", &out_dir)
        .env("AGENT_DEB", &agent_deb)
        .env("COLLECTOR_DEB", &collector_deb)
        .status()
        .expect("unshare runs");
    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap_or_default();
    if !status.success() && read("install.log").is_empty() {
        // No overlay or mount namespace here (a restricted container).
        if in_ci() {
            panic!("overlay install could not start: {status}");
        }
        skip("cannot mount an overlay of / here");
        return;
    }
    assert!(
        status.success(),
        "install script failed ({status}); install.log: {}\npurge.log: {}",
        read("install.log"),
        read("purge.log")
    );

    // Service users: system accounts without a login shell.
    let passwd = read("passwd");
    for user in ["crossline", "crossline-collector"] {
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("no user {user}: {passwd}"));
        let f: Vec<&str> = line.split(':').collect();
        let uid: u32 = f[2].parse().expect("uid");
        assert!(uid > 0 && uid < 1000, "{user} is not a system user: {line}");
        assert_eq!(f[6], "/usr/sbin/nologin", "{line}");
    }
    assert!(
        !std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("crossline:")),
        "the host's /etc/passwd was changed"
    );

    // Secrets readable by the service group only; state owned by the service users.
    let modes = read("modes");
    for want in [
        "/etc/crossline/agent.toml 640 root crossline",
        "/etc/crossline/collector.toml 640 root crossline-collector",
        "/var/lib/crossline 755 root root",
        "/var/lib/crossline/agent 750 crossline crossline",
        "/var/lib/crossline/collector 750 crossline-collector crossline-collector",
    ] {
        assert!(
            modes.lines().any(|l| l == want),
            "missing {want:?} in:\n{modes}"
        );
    }
    let man = read("man");
    assert_eq!(man.lines().count(), 3, "man -w: {man}");
    assert!(
        man.contains("/usr/share/man/man1/crossline-agent-run.1.gz"),
        "{man}"
    );
    assert_eq!(
        read("verify.rc").trim(),
        "0",
        "systemd-analyze verify: {}",
        read("verify")
    );
    for u in ["agent", "collector"] {
        let report = read(&format!("security-{u}"));
        let score: f64 = report
            .lines()
            .find_map(|l| {
                let rest = l.split("Overall exposure level for").nth(1)?;
                rest.split(':')
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no exposure level in: {report}"));
        eprintln!("systemd-analyze security crossline-{u}.service: {score}");
        assert!(
            score <= 2.0,
            "crossline-{u}.service exposure {score}: {report}"
        );
    }
    // The service users can read what their unit's ExecStartPre reads.
    assert_eq!(
        read("agent-check.rc").trim(),
        "0",
        "agent check as crossline: {}",
        read("agent-check")
    );
    assert_eq!(
        read("collector-check.rc").trim(),
        "0",
        "collector check as crossline-collector: {}",
        read("collector-check")
    );
    // Running as the units run them: the agent as crossline with CAP_NET_RAW alone, its spool
    // in /var/lib/crossline, connected to the collector, which stored its batches.
    let agent_log = read("agent.log");
    let agent_metrics = read("agent-metrics");
    let collector_metrics = read("collector-metrics");
    let context = format!(
        "agent log:\n{agent_log}\ncollector log:\n{}\nagent metrics:\n{agent_metrics}\ncollector metrics:\n{collector_metrics}",
        read("collector.log")
    );
    assert!(agent_log.contains("capturing on lo"), "{context}");
    let status = read("agent-status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    let crossline_uid = passwd
        .lines()
        .find(|l| l.starts_with("crossline:"))
        .and_then(|l| l.split(':').nth(2))
        .unwrap_or("?");
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        [crossline_uid; 4],
        "{status}"
    );
    assert!(
        status.lines().any(|l| l == "CapEff:\t0000000000002000"),
        "{status}"
    );
    assert_eq!(
        read("spool-owner").trim(),
        "/var/lib/crossline/agent/spool crossline",
        "{context}"
    );
    assert!(
        agent_metrics.contains("crossline_agent_build_info{gateway=\"gw-change-me\",version=\""),
        "{context}"
    );
    assert!(
        agent_metrics.contains("crossline_agent_uplink_connected 1"),
        "{context}"
    );
    assert!(
        collector_metrics
            .contains("crossline_agent_last_seen_timestamp_seconds{gateway=\"gw-change-me\"}"),
        "{context}"
    );
    assert_eq!(read("agent.rc").trim(), "0", "agent exit: {context}");
    assert_eq!(
        read("collector.rc").trim(),
        "0",
        "collector exit: {context}"
    );

    let after = read("after-purge");
    assert!(
        after.contains("No such file") && !after.contains("agent.toml"),
        "purge left: {after}"
    );
}

/// docs/metrics.md lists exactly the series both binaries export: the agent's from its metric
/// set, the collector's from the names registered in collector/src/metrics.rs.
#[test]
fn metrics_reference_lists_every_series() {
    use std::collections::BTreeSet;
    let m = crossline_agent::metrics::AgentMetrics::new();
    m.set_gateway("gw-doc");
    // Labelled gauges only render once they hold a series.
    m.observe_scenarios(&[crossline_agent::detect::ScenarioUsage {
        scenario: "SA-1".into(),
        enterprise: "acme".into(),
        day: crossline_config::time::Date::new(2026, 3, 2).expect("date"),
        export_bytes: 1,
        cap: Some(2),
    }]);
    m.observe_persons(&[crossline_agent::detect::PersonsUsage {
        enterprise: "acme".into(),
        year: 2026,
        estimate: 1,
        limit: 2,
    }]);
    m.declare_exclusions(["public-resolvers"]);
    m.observe_collectors(&["collector.example:7443".to_string()], 0);
    m.observe_threads(&[("capture".to_string(), 1.5)].into_iter().collect());
    let mut exported: BTreeSet<String> = m
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(exported.len() > 20, "{exported:?}");
    let source = std::fs::read_to_string(repo_root().join("collector/src/metrics.rs"))
        .expect("collector/src/metrics.rs");
    let before = exported.len();
    for piece in source.split('"').skip(1).step_by(2) {
        if piece.starts_with("crossline_")
            && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            exported.insert(piece.to_string());
        }
    }
    assert!(exported.len() > before + 10, "collector names not found");
    let doc =
        std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("crossline_"))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = exported.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&exported).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/metrics.md: undocumented {missing:?}, documented but not exported {stale:?}"
    );
}

/// The example Prometheus config scrapes the ports the binaries listen on by default: the
/// collector's `api_listen` default and the packaged agent config's `[metrics] listen`.
#[test]
fn example_prometheus_config_scrapes_the_default_ports() {
    let tmp = TempDir::new("promports");
    let root = repo_root();
    // A collector config with nothing but the required keys: its defaults.
    let collector_toml = tmp.path().join("collector.toml");
    std::fs::write(&collector_toml, "gateways = [\"gw-a\"]\n").expect("write");
    let collector = crossline_config::collector::load_collector(&collector_toml)
        .unwrap_or_else(|e| panic!("minimal collector config: {e:?}"));
    let (agent, _) = crossline_config::load_agent_config(
        &root.join("packaging/etc/agent.toml"),
        crossline_config::today_beijing(),
    )
    .unwrap_or_else(|e| panic!("packaged agent.toml: {e}"));
    let agent_port = agent
        .metrics
        .listen
        .expect("packaged agent.toml sets [metrics] listen")
        .port();
    let collector_port = collector.api_listen.port();
    let prom = std::fs::read_to_string(root.join("dashboards/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let mut job = "";
    let mut seen = Vec::new();
    for line in prom.lines() {
        let t = line.trim();
        if let Some(j) = t.strip_prefix("- job_name:") {
            job = j.trim();
        }
        if let Some(list) = t.strip_prefix("- targets:") {
            for target in list
                .trim_matches(|c| c == ' ' || c == '[' || c == ']')
                .split(',')
            {
                let target = target.trim().trim_matches('"');
                let port: u16 = target
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("target without port: {target}"));
                // Jobs other than crossline's are not checked (their ports are theirs).
                let want = match job {
                    "crossline-agent" => agent_port,
                    "crossline-collector" => collector_port,
                    _ => continue,
                };
                assert_eq!(port, want, "{job} target {target}");
                seen.push(job.to_string());
            }
        }
    }
    assert!(seen.iter().any(|j| j == "crossline-agent"), "{prom}");
    assert!(seen.iter().any(|j| j == "crossline-collector"), "{prom}");
}
