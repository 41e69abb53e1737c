//! The collector is stopped while the agent streams, then restarted on the same database:
//! every alert arrives exactly once.

use crossline_e2e::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn collector_restart_mid_stream_loses_and_duplicates_nothing() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(demo) = demo_pcap() else { return };
    let tmp = TempDir::new("restart");
    let dir = tmp.path();
    let setup =
        Collector::setup(&collector, &dir.join("collector"), &["gw-bj-01"], "").expect("setup");
    let mut col = Collector::start(&collector, &setup, "collector-1.log").expect("collector");

    // Many copies of the demo capture an hour apart: new alerts each time, many small batches.
    let big = dir.join("big.pcap");
    repeat_pcap(&demo, &big, 30, 3600).expect("big capture");
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let cfg = write_agent_config(
        &agent_dir,
        "gw-bj-01",
        setup.ingest,
        &setup.dir.join("pki"),
        "batch_events = 5",
        "",
    )
    .expect("agent config");
    let events = agent_dir.join("events.jsonl");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&events)
        .arg(&big);
    let mut run = Proc::spawn("agent", cmd, &agent_dir.join("agent.log")).expect("agent");

    // Stop the collector as soon as the first batch is stored.
    let stored_at_kill = wait_for(Duration::from_secs(60), || {
        let m = col.metrics().ok()?;
        let n = metric_sum(&m, "crossline_ingest_batches_total", "result=\"stored\"");
        (n >= 1.0).then_some(n)
    })
    .expect("no batch reached the collector");
    col.proc.kill();
    let down = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let col = Collector::start(&collector, &setup, "collector-2.log").expect("restart");
    let status = run.wait(Duration::from_secs(120)).expect("agent exit");
    assert!(status.success(), "agent failed:\n{}", run.output());
    let resumed = down.elapsed();

    let written = alert_events(&std::fs::read_to_string(&events).expect("events")).expect("parse");
    assert!(written.len() > 30, "only {} alerts written", written.len());
    let stored = col.alerts().expect("alerts");
    let written_keys = sorted_keys(&written);
    let stored_keys = sorted_keys(&stored);
    // Multisets: the agent may legitimately write two identical alerts; each must be stored
    // exactly as often as it was written.
    assert_eq!(
        stored_keys, written_keys,
        "alerts lost, duplicated or invented across the restart"
    );
    let m = col.metrics().expect("metrics");
    eprintln!(
        "collector killed after {stored_at_kill} stored batches; {} alerts all stored exactly once; \
         after restart: {} batches stored, {} answered duplicate; agent finished {:?} after the kill",
        written.len(),
        metric_sum(&m, "crossline_ingest_batches_total", "result=\"stored\""),
        metric_sum(&m, "crossline_ingest_batches_total", "result=\"duplicate\""),
        resumed
    );
}
