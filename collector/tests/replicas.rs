//! Several collector replicas (real binaries) on one real PostgreSQL 15 (started by the test,
//! see `common/pg.rs`): grouping free of races, a replica SIGKILLed mid-stream behind a
//! round-robin TCP load balancer, PostgreSQL restarted mid-stream, the outbox claimed once.
//! The simultaneous-alerts loop runs 1,000 pairs (`CROSSLINE_RACE_PAIRS` overrides).
//!
//! The senders speak the agent's uplink protocol (stream, sequence, resend the same batch
//! after a connection error or a 5xx until it is acknowledged).

mod common;

use common::pg::Postgres;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const DB: &str = "replicas";

/// A collector config on the test database, with a webhook receiver when given.
fn write_config(dir: &Path, pg: &Postgres, webhook: Option<SocketAddr>) -> std::path::PathBuf {
    let mut text =
        base_config(&["gw-a"]).replace("database = \"collector.db\"\n", &pg.config_lines(DB));
    if let Some(w) = webhook {
        text.push_str(&format!(
            "[[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{w}/hook\"\nsecret = \"s\"\n\
             [notify]\ntimeout = \"500ms\"\n"
        ));
    }
    // The test events are dated 2026-03-02: keep them away from retention.
    text.push_str("[retention]\nflows = \"100000d\"\n");
    let p = dir.join("collector.toml");
    std::fs::write(&p, text).expect("config");
    p
}

fn setup(tag: &str) -> Option<(TempDir, Postgres, std::path::PathBuf)> {
    let pg = Postgres::start(tag)?;
    pg.create_db(DB);
    let dir = TempDir::new(tag);
    let pki = make_pki(dir.path(), &["gw-a"]);
    Some((dir, pg, pki))
}

/// Post until acknowledged (200 stored or duplicate), counting 503s in `unavailable`.
fn send_until_acked(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    stream: u64,
    seq: u64,
    body: &str,
    unavailable: &AtomicU64,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match post_batch(addr, client, stream, seq, body.as_bytes(), false) {
            Ok(r) if r.status == 200 => return,
            Ok(r) if r.status == 503 => {
                unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => panic!("batch {stream}/{seq}: unexpected status {}", r.status),
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "batch {stream}/{seq} not acknowledged within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_replicas_taking_alerts_of_one_incident_at_once_open_one_incident() {
    let Some((dir, pg, pki)) = setup("race") else {
        return;
    };
    let cfg = write_config(dir.path(), &pg, None);
    let a = Collector::start(&cfg);
    let b = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let pairs: u64 = std::env::var("CROSSLINE_RACE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [a.ingest, b.ingest]
        .into_iter()
        .enumerate()
        .map(|(t, addr)| {
            let barrier = barrier.clone();
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..pairs {
                    let body = alert_line(
                        "gw-a",
                        i,
                        "unfiled_export",
                        "high",
                        Some("acme"),
                        &format!("r{i}.example"),
                    );
                    barrier.wait();
                    send_until_acked(
                        addr,
                        &client,
                        t as u64 + 1,
                        i + 1,
                        &body,
                        &AtomicU64::new(0),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    let mut c = pg.client(DB);
    let incidents: i64 = c
        .query_one("SELECT COUNT(*)::BIGINT FROM incidents", &[])
        .expect("count")
        .get(0);
    let split: i64 = c
        .query_one(
            "SELECT COUNT(*)::BIGINT FROM incidents WHERE alert_count != 2",
            &[],
        )
        .expect("count")
        .get(0);
    let alerts: i64 = c
        .query_one("SELECT COUNT(*)::BIGINT FROM alerts", &[])
        .expect("count")
        .get(0);
    assert_eq!(alerts, 2 * pairs as i64);
    assert_eq!(
        (incidents, split),
        (pairs as i64, 0),
        "each pair of simultaneous alerts makes one incident of two alerts"
    );
    println!("race: {pairs} pairs on two replicas, {incidents} incidents");
}

/// A round-robin TCP load balancer in front of the replicas' ingest ports: each connection goes
/// to the next backend that accepts it.
fn load_balancer(backends: Vec<SocketAddr>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind lb");
    let addr = l.local_addr().expect("lb addr");
    let next = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(down) = conn else { continue };
            let start = next.fetch_add(1, Ordering::Relaxed);
            let up = (0..backends.len())
                .find_map(|i| TcpStream::connect(backends[(start + i) % backends.len()]).ok());
            let Some(up) = up else { continue };
            let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pipe(down, up));
            std::thread::spawn(move || pipe(u2, d2));
        }
    });
    addr
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// Deliveries by (incident id, status).
type Seen = Arc<Mutex<BTreeMap<(String, String), u32>>>;

/// A webhook receiver counting (incident id, status) deliveries.
fn webhook() -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
    let addr = l.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let seen = seen2.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                        let id = v["groupLabels"]["incident_id"]
                            .as_str()
                            .unwrap_or("?")
                            .to_string();
                        let status = v["status"].as_str().unwrap_or("?").to_string();
                        *seen.lock().expect("lock").entry((id, status)).or_default() += 1;
                    }
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn sigkill_one_of_two_replicas_mid_stream_stores_everything_once_and_notifies_each_incident() {
    let Some((dir, pg, pki)) = setup("kill") else {
        return;
    };
    let (hook, seen) = webhook();
    let cfg = write_config(dir.path(), &pg, Some(hook));
    let mut a = Collector::start(&cfg);
    let b = Collector::start(&cfg);
    let lb = load_balancer(vec![a.ingest, b.ingest]);
    let client = gateway_client(&pki, "gw-a");
    const SENDERS: u64 = 4;
    const BATCHES: u64 = 60;
    let acked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (1..=SENDERS)
        .map(|stream| {
            let client = client.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for seq in 1..=BATCHES {
                    let mut body = alert_line(
                        "gw-a",
                        stream * 1000 + seq,
                        "unfiled_export",
                        "high",
                        Some("acme"),
                        &format!("s{stream}-{}.example", seq % 10),
                    );
                    body.push('\n');
                    body.push_str(&flow_line(
                        "gw-a",
                        stream * 1000 + seq,
                        Some("acme"),
                        None,
                        "unfiled",
                        100,
                    ));
                    send_until_acked(lb, &client, stream, seq, &body, &AtomicU64::new(0));
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for(60, "a third of the batches acknowledged", || {
        acked.load(Ordering::Relaxed) >= SENDERS * BATCHES / 3
    });
    a.kill();
    for t in threads {
        t.join().expect("sender");
    }
    let total = (SENDERS * BATCHES) as i64;
    assert_eq!(pg.count(DB, "batches"), total, "every batch stored");
    assert_eq!(pg.count(DB, "alerts"), total, "every alert stored once");
    assert_eq!(pg.count(DB, "events"), total, "every flow stored once");
    let ids: BTreeSet<String> = pg
        .client(DB)
        .query("SELECT id::TEXT FROM incidents", &[])
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len() as u64, SENDERS * 10, "one incident per key");
    wait_for(60, "every incident notified", || {
        let s = seen.lock().expect("lock");
        ids.iter()
            .all(|id| s.contains_key(&(id.clone(), "firing".to_string())))
    });
    std::thread::sleep(Duration::from_secs(2));
    let s = seen.lock().expect("lock");
    // Each notifier sends one delivery at a time and marks it right after: the only delivery
    // that can go out twice is the one in flight on the replica at the SIGKILL (sent, not yet
    // marked), resent by the survivor when its lease ends.
    let extra: u32 = s.values().map(|n| n - 1).sum();
    assert!(
        extra <= 1,
        "more than the one in-flight delivery repeated: {:?}",
        s.iter().filter(|(_, n)| **n != 1).collect::<Vec<_>>()
    );
    assert_eq!(s.len(), ids.len(), "only firing notifications: {s:?}");
    drop(b);
}

#[test]
fn postgres_restart_mid_stream_answers_503_then_stores_everything_once() {
    let Some((dir, pg, pki)) = setup("restart") else {
        return;
    };
    let cfg = write_config(dir.path(), &pg, None);
    let mut c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let health = api_get(c.api, "/healthz", None);
    assert_eq!(health.status, 200);
    const SENDERS: u64 = 2;
    const BATCHES: u64 = 80;
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (1..=SENDERS)
        .map(|stream| {
            let client = client.clone();
            let acked = acked.clone();
            let refused = refused.clone();
            let addr = c.ingest;
            std::thread::spawn(move || {
                for seq in 1..=BATCHES {
                    let body = alert_line(
                        "gw-a",
                        stream * 1000 + seq,
                        "unfiled_export",
                        "high",
                        Some("acme"),
                        "r.example",
                    );
                    send_until_acked(addr, &client, stream, seq, &body, &refused);
                    acked.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    wait_for(60, "some batches acknowledged", || {
        acked.load(Ordering::Relaxed) >= 20
    });
    pg.stop_server();
    let down_at = acked.load(Ordering::Relaxed);
    wait_for(20, "/healthz unhealthy while the database is down", || {
        api_get(c.api, "/healthz", None).status == 503
    });
    wait_for(20, "a 503 at ingest while the database is down", || {
        refused.load(Ordering::Relaxed) > 0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        acked.load(Ordering::Relaxed) <= down_at + SENDERS,
        "nothing acknowledged while the database is down"
    );
    pg.start_server();
    for t in threads {
        t.join().expect("sender");
    }
    wait_for(20, "/healthz healthy again", || {
        api_get(c.api, "/healthz", None).status == 200
    });
    let total = (SENDERS * BATCHES) as i64;
    assert_eq!(pg.count(DB, "batches"), total);
    assert_eq!(pg.count(DB, "alerts"), total, "every alert once");
    let mut cl = pg.client(DB);
    let n: i64 = cl
        .query_one("SELECT alert_count FROM incidents", &[])
        .expect("one incident")
        .get(0);
    assert_eq!(n, total, "all alerts grouped into the one incident");
    println!(
        "restart: {} 503s while PostgreSQL was down",
        refused.load(Ordering::Relaxed)
    );
    // A graceful stop closes the pooled connections cleanly.
    let status = c.terminate();
    assert!(status.success(), "collector exit: {status}");
}

#[test]
fn two_replicas_claim_each_notification_once() {
    use crossline_collector::pg::PgStore;
    use crossline_collector::store::{Batch, BatchEvent, Store};
    let Some(pg) = Postgres::start("claim") else {
        return;
    };
    pg.create_db(DB);
    let text = format!(
        "gateways = [\"gw-a\"]\n{}[[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"s\"\n",
        pg.config_lines(DB)
    );
    let cfg = Arc::new(
        crossline_config::collector::parse_collector(&text, Path::new("/tmp/c.toml"))
            .expect("config"),
    );
    let db = cfg.postgres.clone().expect("postgres");
    let a = PgStore::open(&db, cfg.clone()).expect("replica a");
    let b = PgStore::open(&db, cfg.clone()).expect("replica b");
    let mut events = Vec::new();
    for i in 0..30u64 {
        let line = alert_line("gw-a", i, "unfiled_export", "high", None, &format!("r{i}"));
        let event: crossline_config::event::Event = serde_json::from_str(&line).expect("event");
        events.push(BatchEvent {
            event,
            ts_ms: 1_772_442_847_118,
            json: line,
            time_flag: None,
        });
    }
    a.ingest(Arc::new(Batch {
        gateway: "gw-a".into(),
        stream: 1,
        sequence: 1,
        received_at_ms: crossline_collector::util::now_ms(),
        events,
    }))
    .expect("ingest");
    let now = crossline_collector::util::now_ms();
    // Both replicas claim at once: no row goes to both.
    let (ca, cb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.due_notifications(now, 200).expect("claim a"));
        let hb = s.spawn(|| b.due_notifications(now, 200).expect("claim b"));
        (ha.join().expect("a"), hb.join().expect("b"))
    });
    let ids_a: BTreeSet<i64> = ca.iter().map(|i| i.id).collect();
    let ids_b: BTreeSet<i64> = cb.iter().map(|i| i.id).collect();
    assert!(ids_a.is_disjoint(&ids_b), "{ids_a:?} / {ids_b:?}");
    assert_eq!(
        ids_a.len() + ids_b.len(),
        30,
        "25 per claim at most, 30 in all"
    );
    // Claimed rows are leased: not due again before the lease ends, due after it (a replica
    // that died mid-send), and gone once delivered.
    assert!(b.due_notifications(now + 1, 200).expect("again").is_empty());
    let lease = crossline_collector::pg::outbox_lease_ms(&cfg);
    for i in &ca {
        a.mark_delivered(i.id, now).expect("delivered");
    }
    let after = b
        .due_notifications(now + lease + 1, 200)
        .expect("after lease");
    let after: BTreeSet<i64> = after.iter().map(|i| i.id).collect();
    assert_eq!(
        after, ids_b,
        "only the undelivered rows come back after the lease"
    );
}
