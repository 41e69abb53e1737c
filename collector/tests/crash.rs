//! SIGKILL the collector in the middle of a stream of batches, restart it on the same database:
//! every acknowledged batch is there exactly once, and re-sending every batch stores none twice.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const BATCHES: u64 = 400;
const EVENTS_PER_BATCH: u64 = 20;
const SENDERS: u64 = 4;

fn batch_body(gateway: &str, stream: u64, seq: u64) -> String {
    let mut body = String::new();
    for i in 0..EVENTS_PER_BATCH {
        let flow_id = stream * 1_000_000 + seq * 1000 + i;
        if i == 0 {
            body.push_str(&alert_line(
                gateway,
                flow_id,
                "unfiled_export",
                "high",
                None,
                "203.0.113.50",
            ));
        } else {
            body.push_str(&flow_line(gateway, flow_id, None, None, "unfiled", 100));
        }
        body.push('\n');
    }
    body
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_batch_and_stores_none_twice() {
    let dir = TempDir::new("crash");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    // The test events are dated 2026-03-02: keep them away from retention.
    let text = format!(
        "{}[retention]\nflows = \"100000d\"\n",
        base_config(&["gw-a"])
    );
    std::fs::write(&cfg, text).expect("config");
    let mut c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");

    // Several senders (streams) push batches concurrently; the collector is killed mid-way.
    let acked: Arc<Mutex<BTreeSet<(u64, u64)>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = c.ingest;
    let mut threads = Vec::new();
    for stream in 1..=SENDERS {
        let acked = acked.clone();
        let stop = stop.clone();
        let client = client.clone();
        threads.push(std::thread::spawn(move || {
            for seq in 1..=BATCHES {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = batch_body("gw-a", stream, seq);
                let zipped = seq % 2 == 0;
                let wire = if zipped {
                    gzip(body.as_bytes())
                } else {
                    body.into_bytes()
                };
                match post_batch(addr, &client, stream, seq, &wire, zipped) {
                    Ok(r) if r.status == 200 => {
                        assert_eq!(r.json()["status"], "stored", "first send must store");
                        acked.lock().expect("lock").insert((stream, seq));
                    }
                    // The collector died under us: this batch was not acknowledged.
                    other => {
                        eprintln!(
                            "sender {stream} stopped at {seq}: {:?}",
                            other.map(|r| (r.status, r.text()))
                        );
                        break;
                    }
                }
            }
        }));
    }
    wait_for(60, "some acknowledged batches", || {
        acked.lock().expect("lock").len() >= 40
    });
    c.kill();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("sender thread");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() < (BATCHES * SENDERS) as usize,
        "the kill came too late to test anything"
    );

    // Restart on the same database.
    let c = Collector::start(&cfg);
    let conn = db(dir.path());
    for (stream, seq) in &acked {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM batches WHERE gateway = 'gw-a' AND stream = ?1 AND sequence = ?2",
                [*stream as i64, *seq as i64],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(n, 1, "acknowledged batch ({stream}, {seq}) lost");
    }
    // Every stored batch has all its events (no half batch).
    let batches: i64 = conn
        .query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0))
        .expect("count");
    let events = count(dir.path(), "events") + count(dir.path(), "alerts");
    assert_eq!(
        events,
        batches * EVENTS_PER_BATCH as i64,
        "a batch was half stored"
    );

    // Re-send every batch: the stored ones are duplicates, the rest are stored once.
    let mut stored_now = 0;
    let mut duplicates = 0;
    for stream in 1..=SENDERS {
        for seq in 1..=BATCHES {
            let body = batch_body("gw-a", stream, seq);
            let r =
                post_batch(c.ingest, &client, stream, seq, body.as_bytes(), false).expect("resend");
            assert_eq!(r.status, 200, "{}", r.text());
            match r.json()["status"].as_str() {
                Some("stored") => stored_now += 1,
                Some("duplicate") => duplicates += 1,
                other => panic!("unexpected status {other:?}"),
            }
        }
    }
    assert_eq!(
        duplicates, batches,
        "every batch stored before the kill is a duplicate"
    );
    assert_eq!(stored_now + duplicates, (BATCHES * SENDERS) as i64);
    let total = (BATCHES * SENDERS * EVENTS_PER_BATCH) as i64;
    assert_eq!(
        count(dir.path(), "events") + count(dir.path(), "alerts"),
        total
    );
    let distinct: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT flow_id) FROM (SELECT flow_id FROM events UNION ALL SELECT flow_id FROM alerts)",
            [],
            |r| r.get(0),
        )
        .expect("distinct");
    if distinct != total {
        let mut st = conn
            .prepare("SELECT flow_id, COUNT(*), MIN(json) FROM (SELECT flow_id, json FROM events UNION ALL SELECT flow_id, json FROM alerts) GROUP BY flow_id HAVING COUNT(*) > 1 LIMIT 3")
            .expect("prepare");
        let rows: Vec<(i64, i64, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        panic!("an event was stored twice: {distinct} distinct of {total}: {rows:?}");
    }
    eprintln!(
        "acknowledged before kill: {}, stored before kill: {batches}, re-sent and stored: {stored_now}",
        acked.len()
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_keeps_data() {
    let dir = TempDir::new("sigterm");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}[retention]\nflows = \"100000d\"\n",
        base_config(&["gw-a"])
    );
    std::fs::write(&cfg, text).expect("config");
    let mut c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let r = post_batch(
        c.ingest,
        &client,
        3,
        1,
        batch_body("gw-a", 3, 1).as_bytes(),
        false,
    )
    .expect("post");
    assert_eq!(r.json()["status"], "stored");
    let status = c.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let c = Collector::start(&cfg);
    let r = post_batch(
        c.ingest,
        &client,
        3,
        1,
        batch_body("gw-a", 3, 1).as_bytes(),
        false,
    )
    .expect("post");
    assert_eq!(r.json()["status"], "duplicate");
}
