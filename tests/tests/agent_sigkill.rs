//! The agent is killed with SIGKILL mid-capture and restarted on the same spool: nothing the
//! collector acknowledged is stored again, nothing that was spooled is lost.

use crossline_agent::uplink::spool::{Spool, SpoolOptions};
use crossline_config::agent::FsyncPolicy;
use crossline_e2e::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn agent_sigkill_then_restart_on_the_same_spool() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(demo) = demo_pcap() else { return };
    let tmp = TempDir::new("sigkill");
    let dir = tmp.path();
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");

    let big = dir.join("big.pcap");
    repeat_pcap(&demo, &big, 60, 3600).expect("big capture");
    let empty = dir.join("empty.pcap");
    repeat_pcap(&demo, &empty, 0, 0).expect("empty capture");
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let cfg = write_agent_config(
        &agent_dir,
        "gw-bj-01",
        setup.ingest,
        &setup.dir.join("pki"),
        "batch_events = 5\nfsync = \"always\"",
        "",
    )
    .expect("agent config");

    // Run 1: SIGKILL once a few batches are stored.
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(agent_dir.join("events-1.jsonl"))
        .arg(&big);
    let mut run1 = Proc::spawn("agent", cmd, &agent_dir.join("agent-1.log")).expect("agent");
    let stored_at_kill = wait_for(Duration::from_secs(60), || {
        let m = col.metrics().ok()?;
        let n = metric_sum(&m, "crossline_ingest_batches_total", "result=\"stored\"");
        (n >= 3.0).then_some(n)
    })
    .expect("no batch reached the collector");
    run1.kill();
    let before = counts(sorted_keys(&col.alerts().expect("alerts")));

    // What the dead agent left in its spool (read with the agent's own spool code).
    let spool_dir = agent_dir.join("spool");
    // Read a copy, so that run 2 finds the spool exactly as the killed agent left it.
    let (left_keys, left_batches, torn) = {
        let scratch = dir.join("spool-copy");
        copy_dir(&spool_dir, &scratch);
        let mut copy = Spool::open(SpoolOptions {
            dir: scratch,
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: FsyncPolicy::Never,
        })
        .expect("open a copy of the dead agent's spool");
        let torn = copy.stats().torn_records;
        let mut keys = Vec::new();
        let mut batches = 0;
        while let Some(b) = copy.next_batch().expect("read batch") {
            let text = String::from_utf8_lossy(&b.payload).into_owned();
            for a in alert_events(&text).expect("spooled JSON") {
                keys.push(alert_key(&a));
            }
            batches += 1;
            copy.ack(b.seq).expect("ack copy");
        }
        (counts(keys), batches, torn)
    };
    assert!(
        left_batches > 0,
        "the agent had sent everything before the kill; test is moot"
    );

    // Run 2 on the same spool, over an empty capture: it only drains what run 1 left.
    let started = Instant::now();
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(agent_dir.join("events-2.jsonl"))
        .arg(&empty);
    let mut run2 = Proc::spawn("agent", cmd, &agent_dir.join("agent-2.log")).expect("agent");
    let status = run2.wait(Duration::from_secs(120)).expect("agent exit");
    assert!(status.success(), "restart failed:\n{}", run2.output());
    let recovery = started.elapsed();

    // Multisets. A batch the collector stored just before the kill may also still be in the
    // spool (its acknowledgement was not recorded yet): it is resent and answered `duplicate`,
    // so such alerts count once (the maximum of the two), never twice.
    let after = counts(sorted_keys(&col.alerts().expect("alerts")));
    let mut expected = before.clone();
    for (k, n) in &left_keys {
        let e = expected.entry(k.clone()).or_default();
        *e = (*e).max(*n);
    }
    let lost: Vec<_> = expected
        .iter()
        .filter(|(k, n)| after.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    let extra: Vec<_> = after
        .iter()
        .filter(|(k, n)| expected.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    assert!(lost.is_empty(), "spooled alerts lost: {lost:?}");
    assert!(
        extra.is_empty(),
        "alerts stored twice or from nowhere: {extra:?}"
    );
    let m = col.metrics().expect("metrics");
    eprintln!(
        "SIGKILL after {stored_at_kill} stored batches: {} alerts stored before, {left_batches} \
         batches ({} alerts) left in the spool, {torn} torn records; restart drained them in \
         {recovery:?}; collector: {} stored, {} duplicate batches; {} alerts in the end, none twice",
        before.values().sum::<usize>(),
        left_keys.values().sum::<usize>(),
        metric_sum(&m, "crossline_ingest_batches_total", "result=\"stored\""),
        metric_sum(&m, "crossline_ingest_batches_total", "result=\"duplicate\""),
        after.values().sum::<usize>()
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read spool").flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn counts(keys: Vec<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    m
}
