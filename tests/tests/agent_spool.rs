//! The agent's spool under the failures of issue 19, with the real agent and collector binaries:
//! a SIGKILL right after alerts were emitted, a second agent on the same spool, a spool disk
//! that fills up during a run and one that is full before the agent starts.
//!
//! The capture is fed through a FIFO so that the agent is killed in the middle of it, with
//! alerts emitted but their batch not yet due.

use crossline_e2e::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// An agent config streaming to `ingest`, with `uplink` lines added to `[uplink]`.
fn agent_config(dir: &Path, ingest: std::net::SocketAddr, pki: &Path, uplink: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "gateway = \"gw-bj-01\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\nregistry = \"{}\"\n\n\
             [capture]\nworkers = 2\n\n\
             [uplink]\ncollector = \"https://{ingest}\"\nca = \"{pki}/ca.pem\"\n\
             cert = \"{pki}/gw-bj-01.pem\"\nkey = \"{pki}/gw-bj-01.key\"\n\
             backoff_min = \"100ms\"\nbackoff_max = \"1s\"\n{uplink}\n",
            repo_root().join("examples/registry.toml").display(),
            pki = pki.display()
        ),
    )
    .expect("write agent config");
    path
}

/// `copies` copies of the demo capture a day apart (so alert shaping does not fold them).
fn capture(dir: &Path, copies: u32) -> Option<Vec<u8>> {
    let demo = demo_pcap()?;
    let p = dir.join(format!("demo-x{copies}.pcap"));
    repeat_pcap(&demo, &p, copies, 86_400).expect("repeat capture");
    Some(std::fs::read(&p).expect("read capture"))
}

/// A FIFO the agent reads its capture from; the test writes into it at its own pace.
struct Feed {
    path: PathBuf,
    writer: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::mpsc::Sender<()>,
}

impl Feed {
    /// Write `data` into a new FIFO at `path`, then keep it open (the agent waits for more)
    /// until dropped.
    fn new(path: &Path, data: Vec<u8>) -> Feed {
        let made = Command::new("mkfifo")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo {} failed", path.display());
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let p = path.to_path_buf();
        let writer = std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) else {
                return;
            };
            let _ = f.write_all(&data);
            let _ = f.flush();
            let _ = rx.recv();
        });
        Feed {
            path: path.to_path_buf(),
            writer: Some(writer),
            stop,
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        // Unblock a writer still waiting for a reader.
        let _ = open_nonblocking(&self.path);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Open a FIFO for reading without waiting for a writer (`O_NONBLOCK`, 0o4000 on Linux).
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o4000)
        .open(path)
}

/// Complete alert lines written so far to a JSON-lines file.
fn emitted_alerts(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let whole = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    alert_events(whole).expect("agent output is JSON")
}

fn counts(keys: Vec<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    m
}

/// Emitted alerts missing from the collector.
fn missing(emitted: &[serde_json::Value], col: &Collector) -> Vec<String> {
    let stored = counts(sorted_keys(&col.alerts().expect("collector alerts")));
    let mut out = Vec::new();
    for (k, n) in counts(sorted_keys(emitted)) {
        if stored.get(&k).copied().unwrap_or(0) < n {
            out.push(k);
        }
    }
    out
}

#[test]
fn sigkill_right_after_alerts_are_emitted_loses_none_with_any_fsync_setting() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("spool-sigkill");
    let Some(data) = capture(tmp.path(), 12) else {
        return;
    };
    let empty = tmp.path().join("empty.pcap");
    repeat_pcap(&demo_pcap().expect("demo"), &empty, 0, 0).expect("empty capture");
    let mut figures = Vec::new();
    for fsync in ["always", "1s", "never"] {
        let dir = tmp.path().join(fsync);
        std::fs::create_dir_all(&dir).expect("dir");
        let setup = Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "")
            .expect("collector setup");
        let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
        // Batches that would sit in memory for 30 s: only writing alerts at once saves them.
        let cfg = agent_config(
            &dir,
            setup.ingest,
            &setup.dir.join("pki"),
            &format!(
                "spool_dir = \"spool\"\nbatch_events = 5000\nbatch_interval = \"30s\"\nfsync = \"{fsync}\""
            ),
        );
        let feed = Feed::new(&dir.join("capture.fifo"), data.clone());
        let out = dir.join("events-1.jsonl");
        let mut cmd = Command::new(&agent);
        cmd.arg("analyze")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .arg(&feed.path);
        let mut run1 = Proc::spawn("agent", cmd, &dir.join("agent-1.log")).expect("agent");
        let seen = wait_for(Duration::from_secs(60), || {
            let n = emitted_alerts(&out).len();
            (n > 0).then_some(n)
        });
        assert!(
            seen.is_some(),
            "no alert emitted; log:\n{}",
            tail(&run1.output(), 30)
        );
        assert!(
            run1.try_status().is_none(),
            "the agent finished before the kill; test is moot:\n{}",
            run1.output()
        );
        run1.kill();
        drop(feed);
        let emitted = emitted_alerts(&out);

        // Restart on the same spool with an empty capture: it only sends what run 1 left.
        let mut cmd = Command::new(&agent);
        cmd.arg("analyze")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(dir.join("events-2.jsonl"))
            .arg(&empty);
        let mut run2 = Proc::spawn("agent", cmd, &dir.join("agent-2.log")).expect("agent");
        let status = run2.wait(Duration::from_secs(90)).expect("restart exits");
        assert!(status.success(), "restart failed:\n{}", run2.output());
        let lost = missing(&emitted, &col);
        let flows_emitted = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event_type\":\"flow\""))
            .count();
        let flows_stored = metric_sum(
            &col.metrics().expect("collector metrics"),
            "crossline_ingest_events_total",
            "event_type=\"flow\"",
        );
        figures.push(format!(
            "fsync={fsync}: SIGKILL after {} alerts emitted: {} lost, {} reached the collector \
             after the restart; flow records: {flows_emitted} in the output file, {flows_stored} \
             stored (the batch being filled is lost)",
            emitted.len(),
            lost.len(),
            emitted.len() - lost.len()
        ));
        assert!(
            lost.is_empty(),
            "fsync={fsync}: {} of {} emitted alerts lost after SIGKILL: {lost:?}\nrun 2:\n{}",
            lost.len(),
            emitted.len(),
            run2.output()
        );
    }
    for f in figures {
        eprintln!("spool figure: {f}");
    }
}

#[test]
fn a_second_agent_on_the_same_spool_is_refused_naming_the_holder() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("spool-lock");
    let dir = tmp.path();
    let Some(data) = capture(dir, 2) else {
        return;
    };
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    let cfg = agent_config(
        dir,
        setup.ingest,
        &setup.dir.join("pki"),
        "spool_dir = \"spool\"\nbatch_interval = \"100ms\"",
    );
    // Agent A reads a capture that does not end until the test says so.
    let feed = Feed::new(&dir.join("a.fifo"), data);
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("a.jsonl"))
        .arg(&feed.path);
    let mut a = Proc::spawn("agent A", cmd, &dir.join("a.log")).expect("agent A");
    let lock = dir.join("spool/lock");
    let holder = wait_for(Duration::from_secs(30), || {
        let pid = std::fs::read_to_string(&lock).ok()?;
        (pid.trim() == a.pid().to_string()).then_some(pid)
    });
    assert!(
        holder.is_some(),
        "agent A did not take the spool lock:\n{}",
        a.output()
    );

    // Agent B: same config (a copy-paste), a plain capture.
    let started = Instant::now();
    let out = Command::new(&agent)
        .arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("b.jsonl"))
        .arg(demo_pcap().expect("demo"))
        .output()
        .expect("agent B");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "agent B: {stderr}");
    let spool = dir.join("spool");
    assert!(
        stderr.contains(&format!(
            "spool {} is in use by another crossline-agent (pid {}",
            spool.display(),
            a.pid()
        )),
        "agent B must name the spool and the holder: {stderr}"
    );
    assert!(took < Duration::from_secs(10), "refusal took {took:?}");
    assert!(a.try_status().is_none(), "agent A died:\n{}", a.output());

    // A finishes normally and delivers its alerts.
    drop(feed);
    let status = a.wait(Duration::from_secs(90)).expect("agent A exits");
    assert!(status.success(), "agent A:\n{}", a.output());
    let emitted = emitted_alerts(&dir.join("a.jsonl"));
    assert!(!emitted.is_empty());
    assert!(missing(&emitted, &col).is_empty());
    eprintln!("second agent on the same spool refused in {took:?}");
}

/// Mount a tmpfs of `size` at `dir` (root only); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fill the file system of `dir` to the last byte.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let one = [0u8; 1];
    while f.write_all(&one).is_ok() {}
}

#[test]
fn a_full_spool_disk_keeps_every_alert_and_a_full_disk_at_start_still_runs() {
    if !is_root() {
        eprintln!(
            "SKIPPED: needs root to mount a small tmpfs as the spool disk (runs under CI as root)"
        );
        if in_ci() {
            panic!("CI=true but not root: the full-disk spool test cannot run");
        }
        return;
    }
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("spool-full-disk");
    let dir = tmp.path();
    let Some(data) = capture(dir, 12) else {
        return;
    };
    let pcap = dir.join("capture.pcap");
    std::fs::write(&pcap, &data).expect("write capture");

    // 1. The disk fills during the run: 256 KiB for about 500 KB of flow records and 120 KB
    //    of alerts; the collector is down until the capture has been read, so nothing drains.
    let mnt = dir.join("disk");
    let Some(disk) = Tmpfs::mount(&mnt, "256k") else {
        panic!("mount -t tmpfs failed as root");
    };
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let cfg = agent_config(
        dir,
        setup.ingest,
        &setup.dir.join("pki"),
        &format!(
            "spool_dir = \"{}/spool\"\nspool_max_bytes = \"1 GiB\"\nspool_segment_bytes = \"16 KiB\"\n\
             batch_events = 20\nbatch_interval = \"100ms\"",
            mnt.display()
        ),
    );
    let out = dir.join("events-full.jsonl");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg(&pcap);
    let mut run = Proc::spawn("agent", cmd, &dir.join("agent-full.log")).expect("agent");
    // The final stats event is written when the capture has been read.
    let read = wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|t| t.contains("\"event_type\":\"stats\""))
    });
    assert!(read.is_some(), "capture not read:\n{}", run.output());
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    let status = run.wait(Duration::from_secs(90)).expect("agent exits");
    let log = run.output();
    assert!(status.success(), "agent:\n{log}");
    let emitted = emitted_alerts(&out);
    let lost = missing(&emitted, &col);
    let flows_emitted = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .matches("\"event_type\":\"flow\"")
        .count();
    let summary = log
        .lines()
        .filter(|l| l.contains("uplink"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "spool figure: full 256 KiB spool disk: {} of {} emitted alerts delivered ({} lost); \
         {flows_emitted} flow records emitted; agent said:\n{summary}",
        emitted.len() - lost.len(),
        emitted.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "alerts lost while flows could give way: {lost:?}\n{log}"
    );
    // "flow events dropped: 0 spool_full, N disk_full, M evicted; ..."
    let dropped_flows: u64 = log
        .lines()
        .filter_map(|l| l.split("flow events dropped: ").nth(1))
        .flat_map(|rest| rest.split(';').next().unwrap_or("").split(", "))
        .filter_map(|part| {
            let (n, reason) = part.trim().split_once(' ')?;
            matches!(reason, "disk_full" | "evicted")
                .then(|| n.parse::<u64>().ok())
                .flatten()
        })
        .sum();
    assert!(
        dropped_flows > 0,
        "the disk never filled (no flow record gave way); test is moot:\n{log}"
    );
    assert!(
        !log.contains("spool write failed"),
        "write errors instead of flows giving way:\n{log}"
    );
    drop(col);
    drop(disk);

    // 2. The disk is 100% full before the agent starts: it runs, in memory, and says so.
    let Some(disk) = Tmpfs::mount(&mnt, "64k") else {
        panic!("mount -t tmpfs failed as root");
    };
    fill(&mnt);
    let setup =
        Collector::setup(&collector, &dir.join("collector-2"), &["gw-bj-01"], "").expect("setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    let cfg = agent_config(
        dir,
        setup.ingest,
        &setup.dir.join("pki"),
        &format!(
            "spool_dir = \"{}/spool\"\nbatch_interval = \"100ms\"",
            mnt.display()
        ),
    );
    let out = dir.join("events-start.jsonl");
    let demo = demo_pcap().expect("demo");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg(&demo);
    let mut run = Proc::spawn("agent", cmd, &dir.join("agent-start.log")).expect("agent");
    let status = run.wait(Duration::from_secs(90)).expect("agent exits");
    let log = run.output();
    assert!(
        status.success(),
        "the agent must start on a full disk:\n{log}"
    );
    assert!(
        log.contains("IN MEMORY") && log.contains("No space left on device"),
        "no loud warning:\n{log}"
    );
    let emitted = emitted_alerts(&out);
    assert!(!emitted.is_empty());
    let lost = missing(&emitted, &col);
    eprintln!(
        "spool figure: 100% full spool disk at start: ran in memory, {} of {} alerts delivered",
        emitted.len() - lost.len(),
        emitted.len()
    );
    assert!(lost.is_empty(), "{lost:?}");
    drop(disk);
}

#[test]
fn a_403_while_the_collector_config_is_wrong_keeps_every_alert_until_it_is_fixed() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("spool-403");
    let dir = tmp.path();
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    // The collector's gateway list is wrong for a while: the agent's certificate is refused.
    let good = std::fs::read_to_string(&setup.config).expect("collector config");
    let wrong = good.replace("gateways = [\"gw-bj-01\"]", "gateways = [\"gw-bj-99\"]");
    assert_ne!(good, wrong);
    std::fs::write(&setup.config, &wrong).expect("write wrong config");
    let mut col = Collector::start(&collector, &setup, "collector-wrong.log").expect("collector");
    let cfg = agent_config(
        dir,
        setup.ingest,
        &setup.dir.join("pki"),
        "spool_dir = \"spool\"\nbatch_interval = \"100ms\"",
    );
    let out = dir.join("events.jsonl");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg(demo_pcap().expect("demo"));
    let mut run = Proc::spawn("agent", cmd, &dir.join("agent.log")).expect("agent");
    let refused = wait_for(Duration::from_secs(60), || {
        let m = col.metrics().ok()?;
        let n = metric_sum(&m, "crossline_ingest_rejections_total", "");
        (n >= 2.0).then_some(n)
    });
    assert!(
        refused.is_some(),
        "the collector refused nothing:\n{}",
        run.output()
    );
    // Fixed: the same collector, the right gateway list.
    col.proc.terminate(Duration::from_secs(5));
    std::fs::write(&setup.config, &good).expect("write fixed config");
    let col = Collector::start(&collector, &setup, "collector-fixed.log").expect("collector");
    let status = run.wait(Duration::from_secs(90)).expect("agent exits");
    let log = run.output();
    assert!(status.success(), "agent:\n{log}");
    assert!(log.contains("HTTP 403"), "no 403 seen:\n{log}");
    let emitted = emitted_alerts(&out);
    assert!(!emitted.is_empty());
    let lost = missing(&emitted, &col);
    assert!(lost.is_empty(), "alerts lost to a 403: {lost:?}\n{log}");
    assert!(
        !dir.join("spool/rejected").exists(),
        "a batch was set aside"
    );
    eprintln!(
        "403 for {} refusals, then fixed: {} of {} alerts stored",
        refused.unwrap_or(0.0),
        emitted.len() - lost.len(),
        emitted.len()
    );
}

/// Leave one batch in the spool at `spool` as an earlier agent would have, then wait until its
/// lock is free: the lock is released when every copy of its descriptor is closed, and a process
/// that another test of this binary forks at that moment holds a copy until it execs.
fn seed_spool(
    spool: &Path,
    kind: crossline_agent::uplink::spool::BatchKind,
    events: u32,
    payload: &[u8],
) {
    use crossline_agent::uplink::spool::{Spool, SpoolOptions};
    {
        let mut s = Spool::open(SpoolOptions {
            dir: spool.to_path_buf(),
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            fsync: crossline_config::agent::FsyncPolicy::Always,
        })
        .expect("spool");
        s.append(kind, events, payload, 1)
            .expect("append")
            .expect("stored");
    }
    let lock = std::fs::File::open(spool.join("lock")).expect("lock file");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lock.try_lock().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "spool lock never released"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    lock.unlock().expect("unlock");
}

#[test]
fn a_line_the_collector_refuses_is_set_aside_and_its_neighbours_are_stored() {
    use crossline_agent::uplink::spool::BatchKind;
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("spool-400");
    let dir = tmp.path();
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    let cfg = agent_config(
        dir,
        setup.ingest,
        &setup.dir.join("pki"),
        "spool_dir = \"spool\"",
    );
    // A batch left by an agent whose events the collector does not all understand (a field
    // from a newer version on line 2), in the EVE layout agents write.
    let alert = |i: u32, extra: &str| {
        format!(
            r#"{{"timestamp":"2026-03-02T09:14:0{i}.118000+0000","event_type":"alert","host":"gw-bj-01","flow_id":{i},{extra}"alert":{{"action":"allowed","gid":1,"signature_id":9900001,"rev":1,"signature":"CROSSLINE XB-001 export from a source no filing lists","category":"Unfiled cross-border data transfer","severity":1}},"crossline":{{"gateway":"gw-bj-01","alert":{{"kind":"unfiled_export","severity":"high","scenario":null,"enterprise":null,"summary":"spooled {i}","rule":"XB-001","count":1,"bytes":100}}}}}}"#
        )
    };
    let lines = [
        alert(1, ""),
        alert(2, r#""from_the_future":true,"#),
        alert(3, ""),
    ];
    let payload: String = lines.iter().map(|l| format!("{l}\n")).collect();
    seed_spool(&dir.join("spool"), BatchKind::Alerts, 3, payload.as_bytes());
    let empty = dir.join("empty.pcap");
    repeat_pcap(&demo_pcap().expect("demo"), &empty, 0, 0).expect("empty capture");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("events.jsonl"))
        .arg(&empty);
    let mut run = Proc::spawn("agent", cmd, &dir.join("agent.log")).expect("agent");
    let status = run.wait(Duration::from_secs(90)).expect("agent exits");
    let log = run.output();
    // A set-aside event is not stored: an error in the summary and the exit status (3).
    assert_eq!(status.code(), Some(3), "agent:\n{log}");
    assert!(
        log.contains("1 events by line") && log.contains("NOT stored"),
        "the summary must count the set-aside event as an error:\n{log}"
    );
    assert!(
        log.contains("refused line 2 of batch 1"),
        "the refusal is not logged with its line:\n{log}"
    );
    let stored: Vec<String> = col
        .alerts()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["summary"].as_str().map(String::from))
        .collect();
    let mut stored = stored;
    stored.sort();
    assert_eq!(
        stored,
        vec!["spooled 1".to_string(), "spooled 3".to_string()],
        "the neighbours of the refused line must be stored"
    );
    let rejected: Vec<PathBuf> = std::fs::read_dir(dir.join("spool/rejected"))
        .expect("rejected dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let events = rejected
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".ndjson"))
        .expect("set-aside event");
    assert_eq!(
        std::fs::read_to_string(events).expect("read"),
        format!("{}\n", lines[1])
    );
    let reply = std::fs::read_to_string(events.with_extension("reply.txt")).expect("reply");
    assert!(
        reply.contains("HTTP 400") && reply.contains("line 2"),
        "{reply}"
    );
}

#[test]
fn a_batch_over_the_collectors_max_body_is_split_and_stored_once() {
    use crossline_agent::uplink::spool::BatchKind;
    use crossline_config::event::{Event, EventType, FlowRecord};
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let tmp = TempDir::new("spool-413");
    let dir = tmp.path();
    // The collector's default max_body is 8 MiB (limits::MAX_BATCH_BODY).
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");
    let cfg = agent_config(
        dir,
        setup.ingest,
        &setup.dir.join("pki"),
        "spool_dir = \"spool\"",
    );
    // A 9 MiB batch of flow records, as an agent with a larger batch limit could have left.
    let mut payload = Vec::new();
    let mut n = 0u32;
    while payload.len() < 9 << 20 {
        let mut e = Event::new(
            EventType::Flow,
            "2026-03-02T09:14:07.118Z".into(),
            "gw-bj-01".into(),
        );
        e.flow_id = Some(u64::from(n));
        e.src_ip = Some("10.1.2.3".into());
        e.dest_ip = Some("192.0.2.7".into());
        e.src_port = Some(40000);
        e.dest_port = Some(443);
        e.proto = Some("TCP".into());
        e.flow = Some(FlowRecord {
            pkts_toserver: 3,
            pkts_toclient: 2,
            bytes_toserver: 300,
            bytes_toclient: 200,
            start: "2026-03-02T09:14:06.118Z".into(),
            end: "2026-03-02T09:14:07.118Z".into(),
            reason: "timeout".into(),
            ..FlowRecord::default()
        });
        serde_json::to_writer(&mut payload, &e).expect("serialise");
        payload.push(b'\n');
        n += 1;
    }
    seed_spool(&dir.join("spool"), BatchKind::Flows, n, &payload);
    let empty = dir.join("empty.pcap");
    repeat_pcap(&demo_pcap().expect("demo"), &empty, 0, 0).expect("empty capture");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("events.jsonl"))
        .arg(&empty);
    let mut run = Proc::spawn("agent", cmd, &dir.join("agent.log")).expect("agent");
    let status = run.wait(Duration::from_secs(120)).expect("agent exits");
    let log = run.output();
    assert!(status.success(), "agent:\n{log}");
    assert!(
        log.contains("as too large") && log.contains("split into batches"),
        "no split logged:\n{log}"
    );
    let m = col.metrics().expect("metrics");
    let stored = metric_sum(&m, "crossline_ingest_events_total", "event_type=\"flow\"");
    assert_eq!(
        stored,
        f64::from(n),
        "every flow record of the split batch stored exactly once"
    );
    assert!(
        !dir.join("spool/rejected").exists(),
        "a batch was set aside"
    );
    eprintln!(
        "a {} byte batch of {n} flow records: 413, split, {stored} stored",
        payload.len()
    );
}
