//! Three collector replicas (real binaries) on one real PostgreSQL 15, four real agents
//! (`crossline-agent analyze` with the uplink, each its own gateway and certificate) listing all
//! three collectors. One replica is SIGKILLed while the agents stream to it: they fail over to the
//! others with the batch in flight under the same stream and sequence, and in the end every
//! alert each agent wrote is stored exactly once and every incident notified once.
//!
//! PostgreSQL is started by the test (`collector/tests/common/pg.rs`: `initdb`/`pg_ctl` as an
//! unprivileged user on a loopback port); without its binaries the test is skipped, saying so,
//! and fails under `CI=true`.

#[path = "../../collector/tests/common/pg.rs"]
mod pg;

use crossline_e2e::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DB: &str = "replicas";
const GATEWAYS: [&str; 4] = ["gw-bj-01", "gw-bj-02", "gw-sh-01", "gw-sh-02"];

/// Replica `i`: the collector config of `base` on the PostgreSQL database, with its own ports,
/// written next to it (same PKI, registry and tokens).
fn replica(base: &CollectorSetup, i: usize, pg: &pg::Postgres) -> CollectorSetup {
    let ingest: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let api: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let text = std::fs::read_to_string(&base.config)
        .expect("collector.toml")
        .replace("database = \"collector.db\"\n", &pg.config_lines(DB))
        .replace(
            &format!("listen = \"{}\"", base.ingest),
            &format!("listen = \"{ingest}\""),
        )
        .replace(
            &format!("api_listen = \"{}\"", base.api),
            &format!("api_listen = \"{api}\""),
        );
    assert!(text.contains("postgresql://"), "database line not replaced");
    let config = base.dir.join(format!("replica-{i}.toml"));
    std::fs::write(&config, text).expect("replica config");
    CollectorSetup {
        config,
        ingest,
        api,
        ..base.clone()
    }
}

/// Agent `k`'s config: all three collectors, the first (the one killed) first for every agent,
/// then the other two in an order that alternates, so the agents spread over both survivors.
fn agent_config(dir: &Path, k: usize, pki: &Path, replicas: &[CollectorSetup]) -> PathBuf {
    let order = if k.is_multiple_of(2) {
        [0, 1, 2]
    } else {
        [0, 2, 1]
    };
    let list = order
        .iter()
        .map(|i| format!("\"https://{}\"", replicas[*i].ingest))
        .collect::<Vec<_>>()
        .join(", ");
    let path = write_agent_config(
        dir,
        GATEWAYS[k],
        replicas[0].ingest,
        pki,
        "batch_events = 5\ndrain_timeout = \"45s\"",
        "",
    )
    .expect("agent config");
    let text = std::fs::read_to_string(&path).expect("agent.toml").replace(
        &format!("collector = \"https://{}\"", replicas[0].ingest),
        &format!("collector = [{list}]"),
    );
    assert!(
        text.contains("collector = ["),
        "collector line not replaced"
    );
    std::fs::write(&path, text).expect("agent.toml");
    path
}

/// An alert's identity across gateways (the four agents read the same capture).
fn keys(alerts: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        let gw = event_gateway(a);
        assert!(!gw.is_empty(), "alert without gateway: {a}");
        *m.entry(format!("{gw}|{}", alert_key(a))).or_default() += 1;
    }
    m
}

/// Webhook deliveries by (incident id, status).
fn deliveries(hook: &WebhookReceiver) -> BTreeMap<(String, String), u32> {
    let mut seen = BTreeMap::new();
    for r in hook.received() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) else {
            continue;
        };
        let id = v["groupLabels"]["incident_id"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let status = v["status"].as_str().unwrap_or("?").to_string();
        *seen.entry((id, status)).or_default() += 1;
    }
    seen
}

#[test]
fn three_replicas_one_database_four_agents_fail_over_when_one_is_killed() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(demo) = demo_pcap() else { return };
    let Some(pg) = pg::Postgres::start("agents") else {
        return;
    };
    pg.create_db(DB);
    let started = Instant::now();
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let tmp = TempDir::new("replicas-agents");
    let dir = tmp.path();
    let extra = format!(
        "[[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{}/hook\"\n\
         secret = \"s\"\n[notify]\ntimeout = \"500ms\"\n",
        hook.addr
    );
    let base =
        Collector::setup(&collector, &dir.join("collector"), &GATEWAYS, &extra).expect("setup");
    let setups: Vec<CollectorSetup> = (0..3).map(|i| replica(&base, i, &pg)).collect();
    // One after the other: the first runs the migrations, the others find them done.
    let mut replicas: Vec<Collector> = setups
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Collector::start(&collector, s, &format!("replica-{i}.log")).expect("replica")
        })
        .collect();

    // Many copies of the demo capture an hour apart: new alerts in each, many small batches.
    let capture = dir.join("capture.pcap");
    repeat_pcap(&demo, &capture, 40, 3600).expect("capture");
    let pki = base.dir.join("pki");
    let mut agents = Vec::new();
    for (k, gateway) in GATEWAYS.iter().enumerate() {
        let agent_dir = dir.join(gateway);
        std::fs::create_dir_all(&agent_dir).expect("agent dir");
        let cfg = agent_config(&agent_dir, k, &pki, &setups);
        let events = agent_dir.join("events.jsonl");
        let mut cmd = Command::new(&agent);
        cmd.arg("analyze")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&events)
            .arg(&capture);
        let p = Proc::spawn("agent", cmd, &agent_dir.join("agent.log")).expect("agent");
        agents.push((p, events, agent_dir));
    }

    // SIGKILL the replica every agent starts on once a few batches of each are stored.
    let stored_at_kill = wait_for(Duration::from_secs(60), || {
        let m = replicas[0].metrics().ok()?;
        let n = metric_sum(&m, "crossline_ingest_batches_total", "result=\"stored\"");
        (n >= 12.0).then_some(n)
    })
    .expect("replica 0 stored no batch");
    replicas[0].proc.kill();
    let killed = Instant::now();

    let mut written: Vec<serde_json::Value> = Vec::new();
    for (p, events, agent_dir) in &mut agents {
        let status = p.wait(Duration::from_secs(90)).expect("agent exit");
        let log = std::fs::read_to_string(agent_dir.join("agent.log")).unwrap_or_default();
        assert!(
            status.success(),
            "{}: agent failed ({status}):\n{}",
            agent_dir.display(),
            tail(&log, 30)
        );
        // Each agent was on replica 0 with batches left: it failed over, naming both.
        let dead = format!("collector {} failing", setups[0].ingest);
        assert!(
            log.contains(&dead) && log.contains("failing over to collector"),
            "{}: no fail-over logged:\n{}",
            agent_dir.display(),
            tail(&log, 30)
        );
        let text = std::fs::read_to_string(&events).expect("events");
        written.extend(alert_events(&text).expect("agent events"));
    }
    let drained = killed.elapsed();
    assert!(
        written.len() > 4 * 30,
        "only {} alerts written: the stream is too short to test",
        written.len()
    );

    // Every alert written by an agent is stored, once: in PostgreSQL and through the API of a
    // surviving replica.
    // The collector raises enterprise-wide alerts of its own (`scope: "enterprise"`, from the
    // four gateways' sketches of the same traffic): they are not the agents' and counted apart.
    let rows: Vec<(String, String, String)> = pg
        .client(DB)
        .query("SELECT gateway, kind, json FROM alerts", &[])
        .expect("alerts")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut in_db: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut enterprise_wide = Vec::new();
    for (gateway, kind, json) in rows {
        let v: serde_json::Value = serde_json::from_str(&json).expect("stored alert JSON");
        if crossline_alert(&v)["scope"] == "enterprise" {
            enterprise_wide.push(v);
        } else {
            *in_db.entry((gateway, kind)).or_default() += 1;
        }
    }
    let mut from_agents: BTreeMap<(String, String), usize> = BTreeMap::new();
    for a in &written {
        let key = (
            event_gateway(a).to_string(),
            crossline_alert(a)["kind"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        *from_agents.entry(key).or_default() += 1;
    }
    assert_eq!(
        in_db, from_agents,
        "alerts in PostgreSQL vs alerts the agents wrote, by (gateway, kind)"
    );
    let stored = replicas[1].alerts().expect("alerts");
    let (want, mut got) = (keys(&written), keys(&stored));
    for (k, n) in keys(&enterprise_wide) {
        if let Some(m) = got.get_mut(&k) {
            *m = m.saturating_sub(n);
        }
    }
    got.retain(|_, n| *n > 0);
    let lost: Vec<_> = want.iter().filter(|(k, n)| got.get(*k) < Some(n)).collect();
    let extra: Vec<_> = got.iter().filter(|(k, n)| want.get(*k) < Some(n)).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "lost {lost:?}\nstored twice or from nowhere {extra:?}"
    );
    let survivors: Vec<f64> = replicas[1..]
        .iter()
        .map(|r| {
            let m = r.metrics().expect("metrics");
            metric_sum(&m, "crossline_ingest_batches_total", "result=\"stored\"")
                + metric_sum(&m, "crossline_ingest_batches_total", "result=\"duplicate\"")
        })
        .collect();
    assert!(
        survivors.iter().all(|n| *n > 0.0),
        "both survivors take batches after the kill: {survivors:?}"
    );

    // Every incident notified, once.
    let ids: BTreeSet<String> = pg
        .client(DB)
        .query("SELECT id::TEXT FROM incidents", &[])
        .expect("incident ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!ids.is_empty(), "no incident opened");
    wait_for(Duration::from_secs(30), || {
        let s = deliveries(&hook);
        ids.iter()
            .all(|id| s.contains_key(&(id.clone(), "firing".to_string())))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not every incident notified: {} incidents, deliveries {:?}",
            ids.len(),
            deliveries(&hook)
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let seen = deliveries(&hook);
    // The only delivery that may go out twice is one in flight on the killed replica (sent,
    // not yet marked), sent again by a survivor when its lease ends.
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    let extra_deliveries: u32 = seen.values().map(|n| n - 1).sum();
    assert!(
        extra_deliveries <= 1,
        "more than the one in-flight delivery repeated: {repeated:?}"
    );
    assert_eq!(
        seen.keys()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        ids,
        "deliveries for incidents that do not exist"
    );
    eprintln!(
        "replica 0 killed after {stored_at_kill} stored batches; 4 agents drained {} alerts \
         {drained:?} after the kill through the survivors (batches there: {survivors:?}); \
         {} of their alerts in PostgreSQL, none twice (and {} enterprise-wide \
         alerts of the collector); {} incidents notified ({extra_deliveries} repeated); {:?} \
         in all",
        written.len(),
        written.len(),
        enterprise_wide.len(),
        ids.len(),
        started.elapsed()
    );
    for r in &mut replicas[1..] {
        r.proc.terminate(Duration::from_secs(5));
    }
}
