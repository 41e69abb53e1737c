//! The store behaviour suite, run once against SQLite and once against a real PostgreSQL 15
//! (started by the test in a temporary directory, see `common/pg.rs`). Every case goes through
//! the `Store` trait only; a raw look at the outbox uses the same SQL on both databases.

mod common;

use common::pg::Postgres;
use crossline_collector::api::shape;
use crossline_collector::pg::PgStore;
use crossline_collector::sketch::Sketches;
use crossline_collector::store::{
    AlertFilter, Batch, BatchEvent, Change, IncidentFilter, IngestOutcome, Scope, SqliteStore,
    Store, Transition, TransitionOutcome,
};
use crossline_collector::util::{format_ms, now_ms};
use crossline_config::collector::{parse_collector, CollectorConfig};
use crossline_config::event::{Alert, AlertKind, Event, EventType, Severity, Sketch, VolumeSketch};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn config(extra: &str) -> Arc<CollectorConfig> {
    let text = format!(
        "gateways = [\"gw-a\", \"gw-b\"]\n\
         [[receiver]]\nname = \"all\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"s\"\n\
         [[receiver]]\nname = \"green\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/g\"\nsecret = \"s\"\n\
         [[route]]\nreceivers = [\"all\"]\n\
         [[route]]\ngreen_channel = true\nmin_severity = \"high\"\nreceivers = [\"green\"]\n{extra}"
    );
    Arc::new(parse_collector(&text, Path::new("/tmp/c.toml")).expect("config"))
}

/// One backend under test, with a raw look at its outbox.
enum Backend {
    /// A temporary directory holding the database file (removed on drop, with the WAL and
    /// journal files).
    Sqlite(common::TempDir),
    Pg(Postgres, String),
}

impl Backend {
    /// (incident_id, receiver, event) of every outbox row, in id order.
    fn outbox(&self) -> Vec<(i64, String, String)> {
        let sql = "SELECT incident_id, receiver, event FROM outbox ORDER BY id";
        match self {
            Backend::Sqlite(d) => {
                let c = rusqlite::Connection::open(sqlite_file(d)).expect("open");
                let mut s = c.prepare(sql).expect("prepare");
                let rows = s
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .expect("query");
                rows.collect::<Result<_, _>>().expect("rows")
            }
            Backend::Pg(pg, db) => pg
                .client(db)
                .query(sql, &[])
                .expect("query")
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        }
    }

    /// The query plan of `sql` (sequential scans discouraged on PostgreSQL, whose planner
    /// prefers them on small tables).
    fn plan(&self, sql: &str) -> String {
        match self {
            Backend::Sqlite(d) => {
                let c = rusqlite::Connection::open(sqlite_file(d)).expect("open");
                let mut s = c
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .expect("prepare");
                let rows = s.query_map([], |r| r.get::<_, String>(3)).expect("plan");
                rows.collect::<Result<Vec<_>, _>>()
                    .expect("rows")
                    .join("\n")
            }
            Backend::Pg(pg, db) => {
                let mut c = pg.client(db);
                c.batch_execute("SET enable_seqscan = off").expect("set");
                c.query(&format!("EXPLAIN {sql}"), &[])
                    .expect("explain")
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// A second store on the same database (another replica for PostgreSQL).
    fn open(&self, cfg: Arc<CollectorConfig>) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(d) => {
                Arc::new(SqliteStore::open(&sqlite_file(d), cfg).expect("open sqlite"))
            }
            Backend::Pg(pg, db) => {
                let mut c = (*cfg).clone();
                c.postgres = Some(crossline_config::collector::PostgresDb {
                    url: pg.url(db),
                    password_file: Some(pg.password_file.clone()),
                    password_env: "PGPASSWORD".into(),
                });
                let c = Arc::new(c);
                let db = c.postgres.clone().expect("postgres");
                Arc::new(PgStore::open(&db, c).expect("open postgres"))
            }
        }
    }
}

fn sqlite(tag: &str) -> Backend {
    Backend::Sqlite(common::TempDir::new(&format!("suite-{tag}")))
}

/// The SQLite database file in a backend's directory.
fn sqlite_file(dir: &common::TempDir) -> PathBuf {
    dir.path().join("store.db")
}

fn postgres(tag: &str) -> Option<Backend> {
    let pg = Postgres::start(tag)?;
    pg.create_db("suite");
    Some(Backend::Pg(pg, "suite".into()))
}

fn alert(
    gateway: &str,
    ts_ms: i64,
    kind: AlertKind,
    recipient: &str,
    persons: Option<u64>,
    green: bool,
) -> BatchEvent {
    let mut e = Event::new(EventType::Alert, eve_time(ts_ms), gateway.into());
    e.alert = Some(Alert {
        kind,
        severity: Severity::High,
        scenario: None,
        enterprise: Some(if gateway == "gw-a" { "acme" } else { "other" }.into()),
        summary: "s".into(),
        rule: String::new(),
        recipient: Some(recipient.into()),
        service: None,
        count: 1,
        bytes: 10,
        evidence: Vec::new(),
        persons,
        followup: false,
        green_channel: green,
        days_left: None,
        valid_from: None,
        valid_until: None,
        scope: None,
        gateways: Vec::new(),
    });
    let json = serde_json::to_string(&e).expect("json");
    BatchEvent {
        event: e,
        ts_ms,
        json,
        time_flag: None,
    }
}

fn batch(gateway: &str, stream: u64, seq: u64, events: Vec<BatchEvent>) -> Arc<Batch> {
    Arc::new(Batch {
        gateway: gateway.into(),
        stream,
        sequence: seq,
        received_at_ms: now_ms(),
        events,
    })
}

const T0: i64 = 1_772_442_847_118;
const HOUR: i64 = 3_600_000;

fn all_incidents(store: &dyn Store) -> Vec<serde_json::Value> {
    store
        .incidents(
            &Scope::All,
            &IncidentFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .expect("list")
        .iter()
        .map(shape::incident)
        .collect()
}

/// An incident with its history and report, as `GET /api/v1/incidents/{id}` serves it.
fn incident_json(store: &dyn Store, scope: &Scope, id: i64) -> Option<serde_json::Value> {
    store
        .incident(scope, id)
        .expect("get")
        .map(|d| shape::detail(&config(""), &d))
}

/// Grouping by key and window, a regrade notified again, routing, auto-resolve, gauges.
fn grouping_window_regrade_and_routing(b: &Backend) {
    let store = b.open(config(""));
    let pk = AlertKind::PersonsThreshold;
    let first = batch(
        "gw-a",
        9,
        1,
        vec![
            alert("gw-a", T0, pk, "x.example", Some(10), false),
            alert("gw-a", T0 + 10 * 60_000, pk, "x.example", Some(20), false),
            alert("gw-a", T0, pk, "y.example", None, false),
            alert(
                "gw-a",
                T0 + 10 * 60_000 + HOUR + 1,
                pk,
                "x.example",
                None,
                false,
            ),
        ],
    );
    assert_eq!(
        store.ingest(first.clone()).expect("ingest"),
        IngestOutcome::Stored(4)
    );
    assert_eq!(
        store.ingest(first).expect("again"),
        IngestOutcome::Duplicate
    );
    assert_eq!(all_incidents(&*store).len(), 3);
    let one = incident_json(&*store, &Scope::All, 1).expect("exists");
    assert_eq!(one["alert_count"], 2);
    assert_eq!(one["persons"], 20);
    assert_eq!(one["grade"], "compliance");
    assert_eq!(one["report"]["alert_ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(b.outbox().len(), 3, "one firing per new incident to `all`");

    store
        .ingest(batch(
            "gw-a",
            9,
            2,
            vec![alert(
                "gw-a",
                T0 + 20 * 60_000,
                pk,
                "x.example",
                Some(1_500_000),
                false,
            )],
        ))
        .expect("ingest");
    let one = incident_json(&*store, &Scope::All, 1).expect("exists");
    assert_eq!(one["grade"], "major");
    assert_eq!(one["deadline_at"], format_ms(T0 + 4 * HOUR));
    assert_eq!(b.outbox().len(), 4, "the regrade is notified again");

    store
        .ingest(batch(
            "gw-a",
            9,
            3,
            vec![alert(
                "gw-a",
                T0,
                AlertKind::UnfiledExport,
                "z.example",
                None,
                true,
            )],
        ))
        .expect("ingest");
    let receivers: Vec<String> = b
        .outbox()
        .into_iter()
        .filter(|r| r.0 == 4)
        .map(|r| r.1)
        .collect();
    assert_eq!(receivers, ["all", "green"]);
    let open = store.unresolved_incidents().expect("unresolved");
    assert_eq!(open.len(), 4);
    assert_eq!(open[3].receiver_route(), "green_channel");

    let now = now_ms();
    assert_eq!(store.auto_resolve(now + 1, now).expect("resolve"), 4);
    assert_eq!(store.auto_resolve(now + 1, now).expect("again"), 0);
    let resolved = b.outbox().iter().filter(|r| r.2 == "resolved").count();
    assert_eq!(resolved, 5);
    let g = store.gauges(now).expect("gauges");
    assert!(g.open.is_empty());
    assert_eq!(g.outbox_pending, 11);
    store
        .mark_dropped(1, now, "receiver removed")
        .expect("drop");
    assert_eq!(store.gauges(now).expect("gauges").outbox_pending, 10);
    let due = store.due_notifications(now, 100).expect("due");
    assert_eq!(due.len(), 10);
    store.mark_delivered(due[0].id, now).expect("delivered");
    assert_eq!(store.gauges(now).expect("gauges").outbox_pending, 9);
}

/// Eight writers, half of them resending the others' batches: each stored exactly once.
fn concurrent_ingest_stores_each_batch_once(b: &Backend) {
    let store = b.open(config(""));
    let mut threads = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        threads.push(std::thread::spawn(move || {
            let mut stored = 0;
            for seq in 1..=20u64 {
                let mut bt = (*batch(
                    "gw-a",
                    t % 4,
                    seq,
                    vec![alert(
                        "gw-a",
                        T0,
                        AlertKind::UnfiledExport,
                        "r",
                        None,
                        false,
                    )],
                ))
                .clone();
                bt.stream = t % 4;
                if store.ingest(Arc::new(bt)).expect("ingest") == IngestOutcome::Stored(1) {
                    stored += 1;
                }
            }
            stored
        }));
    }
    let stored: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(stored, 80, "each (stream, sequence) stored exactly once");
    let inc = all_incidents(&*store);
    assert_eq!(inc.len(), 1, "one incident for one key within the window");
    assert_eq!(inc[0]["alert_count"], 80);
}

/// Stream and sequence are full unsigned 64-bit values: the top of the range is stored, found
/// and deduplicated exactly, and is not confused with its neighbours.
fn full_u64_stream_and_sequence(b: &Backend) {
    let store = b.open(config(""));
    let top = u64::MAX;
    let mid = i64::MAX as u64 + 1;
    for (stream, seq) in [(top, top), (top, mid), (mid, top)] {
        assert_eq!(
            store
                .ingest(batch("gw-a", stream, seq, vec![]))
                .expect("ingest"),
            IngestOutcome::Stored(0)
        );
    }
    assert_eq!(
        store
            .ingest(batch("gw-a", top, top, vec![]))
            .expect("again"),
        IngestOutcome::Duplicate
    );
    assert!(store.has_batch("gw-a", top, top).expect("has"));
    assert!(store.has_batch("gw-a", mid, top).expect("has"));
    assert!(!store.has_batch("gw-a", top, top - 1).expect("has"));
    assert!(!store.has_batch("gw-a", mid, mid).expect("has"));
    assert!(!store.has_batch("gw-b", top, top).expect("has"));
}

/// Scopes: an operator sees its gateways only, an enterprise its own incidents only;
/// transitions are checked, audited and kept in the history.
fn scopes_transitions_and_audit(b: &Backend) {
    let store = b.open(config(""));
    scopes_transitions_and_audit_on(&*store);
}

fn scopes_transitions_and_audit_on(store: &dyn Store) {
    store
        .ingest(batch(
            "gw-a",
            1,
            1,
            vec![alert(
                "gw-a",
                T0,
                AlertKind::UnfiledExport,
                "r1",
                None,
                false,
            )],
        ))
        .expect("ingest a");
    store
        .ingest(batch(
            "gw-b",
            1,
            1,
            vec![alert(
                "gw-b",
                T0,
                AlertKind::UnfiledExport,
                "r2",
                None,
                false,
            )],
        ))
        .expect("ingest b");
    let f = IncidentFilter {
        limit: 10,
        ..Default::default()
    };
    let op = Scope::Gateways(vec!["gw-b".into()]);
    let queue = store
        .incidents_by_deadline(&Scope::All, &f, Some("unfiled_export"))
        .expect("queue");
    assert_eq!(queue.len(), 2);
    assert_eq!(
        store
            .incidents_by_deadline(&op, &f, Some("unfiled_export"))
            .expect("queue")
            .len(),
        1
    );
    assert!(store
        .incidents_by_deadline(&Scope::All, &f, Some("persons_threshold"))
        .expect("queue")
        .is_empty());
    let seen = store.incidents(&op, &f).expect("list");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].gateway, "gw-b");
    let a_id = all_incidents(store)
        .iter()
        .find(|i| i["gateway"] == "gw-a")
        .and_then(|i| i["id"].as_i64())
        .expect("gw-a incident");
    assert!(store.incident(&op, a_id).expect("get").is_none());
    let ent = Scope::Enterprise("other".into());
    assert!(store.incident(&ent, a_id).expect("get").is_none());
    let a1 = store.alert(&Scope::All, 1).expect("alert").expect("exists");
    assert_eq!(a1.enterprise.as_deref(), Some("acme"));
    assert_eq!(shape::alert(&a1)["enterprise"], "acme");
    assert!(store.alert(&ent, 1).expect("alert").is_none());
    assert!(store
        .incidents(&Scope::Gateways(vec![]), &f)
        .expect("list")
        .is_empty());

    let ch = |action| Change {
        action,
        actor: "noc",
        role: "regulator",
        comment: "seen",
        now_ms: T0 + HOUR,
    };
    assert_eq!(
        store
            .transition(&op, a_id, &ch(Transition::Acknowledge))
            .expect("transition"),
        TransitionOutcome::NotFound
    );
    match store
        .transition(&Scope::All, a_id, &ch(Transition::Acknowledge))
        .expect("ack")
    {
        TransitionOutcome::Done(inc, _) => assert_eq!(inc.status, "acknowledged"),
        other => panic!("acknowledge: {other:?}"),
    }
    assert!(matches!(
        store
            .transition(&Scope::All, a_id, &ch(Transition::Acknowledge))
            .expect("ack again"),
        TransitionOutcome::Conflict(_)
    ));
    match store
        .transition(&Scope::All, a_id, &ch(Transition::Resolve))
        .expect("resolve")
    {
        TransitionOutcome::Done(inc, history) => {
            let v = shape::with_history(&inc, &history);
            assert_eq!(v["status"], "resolved");
            assert_eq!(v["history"].as_array().map(Vec::len), Some(2));
        }
        other => panic!("resolve: {other:?}"),
    }
    let audit = store.audit(Some(a_id), 10, 0).expect("audit");
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].action, "resolve");
    assert_eq!(store.audit(None, 10, 0).expect("audit").len(), 2);
    let summary = shape::summary(
        &store
            .enterprise_summary(&Scope::All, "acme")
            .expect("summary"),
    );
    assert_eq!(summary["alerts_by_kind"]["unfiled_export"], 1);
    assert_eq!(summary["open_incidents"], 0);
}

/// A U+0000 inside a field (JSON `\u0000`, which PostgreSQL text cannot hold) does not make a
/// batch unstorable: it is stored, grouped and readable.
fn nul_in_a_field_is_stored(b: &Backend) {
    let store = b.open(config(""));
    let mut be = alert("gw-a", T0, AlertKind::UnfiledExport, "r\0x", None, false);
    if let Some(a) = be.event.alert.as_mut() {
        a.summary = "before\0after".into();
    }
    be.json = serde_json::to_string(&be.event).expect("json");
    assert!(be.json.contains("\\u0000"), "{}", be.json);
    assert_eq!(
        store.ingest(batch("gw-a", 1, 1, vec![be])).expect("ingest"),
        IngestOutcome::Stored(1)
    );
    let inc = all_incidents(&*store);
    assert_eq!(inc.len(), 1);
    let summary = inc[0]["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with("before") && summary.ends_with("after"),
        "{summary}"
    );
}

/// An enterprise-wide alert's `scope` and `gateways` (kept only in its line) read back the
/// same on both backends.
fn enterprise_wide_alert_fields(b: &Backend) {
    let store = b.open(config(""));
    let mut be = alert(
        "gw-a",
        T0,
        AlertKind::PersonsThreshold,
        "acme",
        Some(9),
        false,
    );
    if let Some(a) = be.event.alert.as_mut() {
        a.scope = Some("enterprise".into());
        a.gateways = vec!["gw-a".into(), "gw-b".into()];
    }
    be.json = serde_json::to_string(&be.event).expect("json");
    store.ingest(batch("gw-a", 2, 1, vec![be])).expect("ingest");
    let a = store.alert(&Scope::All, 1).expect("alert").expect("stored");
    let v = shape::alert(&a);
    assert_eq!(v["scope"], "enterprise", "{v}");
    assert_eq!(v["gateways"], serde_json::json!(["gw-a", "gw-b"]), "{v}");
    assert_eq!(v["persons"], 9, "{v}");
}

/// One event from its JSON line, as the ingest path builds it.
fn line_event(line: &str, ts_ms: i64) -> BatchEvent {
    BatchEvent {
        event: serde_json::from_str(line).expect("event line"),
        ts_ms,
        json: line.to_string(),
        time_flag: None,
    }
}

/// The EVE time of `ms`, as agents write it.
fn eve_time(ms: i64) -> String {
    crossline_config::event::format_eve_timestamp(ms * 1000)
}

/// A flow line in the layout agents write (Suricata's EVE layout, crossline's fields under
/// `crossline`).
fn flow_line(n: u64, scenario: &str, verdict: &str, bytes: u64, sni: &str) -> String {
    serde_json::json!({
        "timestamp": eve_time(T0), "event_type": "flow", "host": "gw-a", "flow_id": n,
        "proto": "TCP", "src_ip": "10.20.3.4", "src_port": 51514, "dest_ip": "198.51.100.7",
        "dest_port": 443, "app_proto": "tls", "tls": {"sni": sni},
        "crossline": {
            "gateway": "gw-a", "direction": "export", "export_bytes": bytes,
            "verdict": {"status": verdict, "scenario": scenario, "enterprise": "acme"}
        }
    })
    .to_string()
}

/// Flow and stats events of a batch (stored together in one statement on PostgreSQL) are all
/// stored, with their fields, once: a resent batch adds nothing. A flow id above `i64::MAX`, a
/// U+0000 in a field, an event without verdict and an alert between flows do not disturb it.
fn flows_are_stored_once_per_batch(b: &Backend) {
    let store = b.open(config(""));
    let mut events: Vec<BatchEvent> = (1..=150u64)
        .map(|i| line_event(&flow_line(i, "SA-1", "filed", i, "eu.example.de"), T0))
        .collect();
    events.insert(
        70,
        alert("gw-a", T0, AlertKind::UnfiledExport, "r", None, false),
    );
    events.push(line_event(
        &flow_line(u64::MAX, "SA-2", "unfiled", 7, "a\u{0}b"),
        T0,
    ));
    events.push(line_event(
        &serde_json::json!({"timestamp": eve_time(T0), "event_type": "flow", "host": "gw-a",
            "crossline": {"gateway": "gw-a", "export_bytes": 99}})
        .to_string(),
        T0,
    ));
    events.push(line_event(
        &serde_json::json!({"timestamp": eve_time(T0), "event_type": "stats", "host": "gw-a",
            "stats": {"decoder": {"pkts": 0, "bytes": 0, "invalid": 0}, "flow": {"total": 0}},
            "crossline": {"gateway": "gw-a",
                "stats": {"packets": 0, "bytes": 0, "flows": 0, "evictions": 0}}})
        .to_string(),
        T0,
    ));
    assert!(events[151].json.contains("\\u0000"), "{}", events[151].json);
    let first = batch("gw-a", 5, 1, events);
    assert_eq!(
        store.ingest(first.clone()).expect("ingest"),
        IngestOutcome::Stored(154)
    );
    assert_eq!(
        store.ingest(first).expect("again"),
        IngestOutcome::Duplicate
    );
    let summary = shape::summary(
        &store
            .enterprise_summary(&Scope::All, "acme")
            .expect("summary"),
    );
    assert_eq!(
        summary["export_bytes"]["SA-1"]["filed"],
        serde_json::json!({"export_bytes": 150 * 151 / 2, "flows": 150}),
        "{summary}"
    );
    assert_eq!(
        summary["export_bytes"]["SA-2"]["unfiled"],
        serde_json::json!({"export_bytes": 7, "flows": 1}),
        "{summary}"
    );
    assert_eq!(summary["alerts_by_kind"]["unfiled_export"], 1, "{summary}");
    assert_eq!(all_incidents(&*store).len(), 1);
    // 150 + 1 flows of acme, the flow without verdict and the stats record: nothing twice.
    assert_eq!(store.expire_flows(now_ms() + 60_000).expect("expire"), 153);
}

/// The console's work queue pages through incidents by deadline: every page in (deadline, id)
/// order, nothing lost or repeated between pages, and the query is answered from the
/// `(deadline_at, id)` index rather than by sorting the table.
fn work_queue_pages_by_deadline_index(b: &Backend) {
    let store = b.open(config(""));
    // Discovery times out of order, so deadlines are not in id order.
    let events: Vec<BatchEvent> = (0..30i64)
        .map(|i| {
            let ts = T0 + ((i * 7) % 30) * HOUR;
            alert(
                "gw-a",
                ts,
                AlertKind::UnfiledExport,
                &format!("r{i}"),
                None,
                false,
            )
        })
        .collect();
    assert_eq!(
        store.ingest(batch("gw-a", 3, 1, events)).expect("ingest"),
        IngestOutcome::Stored(30)
    );
    let mut seen = Vec::new();
    for page in 0..5 {
        let f = IncidentFilter {
            limit: 7,
            offset: page * 7,
            ..Default::default()
        };
        let rows = store
            .incidents_by_deadline(&Scope::All, &f, None)
            .expect("page");
        seen.extend(rows.iter().map(|r| (r.deadline_at_ms, r.id)));
    }
    assert_eq!(seen.len(), 30);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages out of (deadline, id) order");
    sorted.dedup_by_key(|r| r.1);
    assert_eq!(sorted.len(), 30, "an incident repeated across pages");
    let sql = "SELECT id FROM incidents ORDER BY deadline_at, id LIMIT 50 OFFSET 1500";
    let plan = b.plan(sql);
    assert!(
        plan.contains("incidents_deadline") && !plan.contains("TEMP B-TREE"),
        "the work queue is not served by the deadline index: {plan}"
    );
}

/// A batch of one volume sketch of `enterprise` from `gateway`: `bytes` of a 1 MB cap today.
fn volume_sketch(gateway: &str, enterprise: &str, seq: u64, bytes: u64) -> Batch {
    let mut ev = Event::new(EventType::Sketch, eve_time(T0), gateway.to_string());
    ev.sketch = Some(Sketch {
        enterprise: enterprise.into(),
        uscc: None,
        key_fingerprint: "00c0ffee00c0ffee".into(),
        persons: Vec::new(),
        volumes: vec![VolumeSketch {
            scenario: "S-CAP".into(),
            day: "2026-03-02".into(),
            bytes,
            cap: Some(1_000_000),
        }],
    });
    Batch {
        gateway: gateway.into(),
        stream: 7,
        sequence: seq,
        received_at_ms: T0,
        events: vec![BatchEvent {
            json: serde_json::to_string(&ev).expect("json"),
            event: ev,
            ts_ms: T0,
            time_flag: None,
        }],
    }
}

/// Two replicas started in the same millisecond on one database each raise an enterprise-wide
/// alert from gateway gw-b's sketch (one for `acme`, one for `beta`): both are stored (each
/// replica stores its own alerts under a stream of its own), and neither raises it again when
/// the sketches are resent.
fn wide_alerts_of_replicas(b: &Backend) {
    let cfg = config("");
    let replicas = [
        (Sketches::new(b.open(cfg.clone()), T0), "acme"),
        (Sketches::new(b.open(cfg.clone()), T0), "beta"),
    ];
    assert_ne!(replicas[0].0.stream(), replicas[1].0.stream());
    for (sk, ent) in &replicas {
        assert_ne!(sk.stream(), 0, "the drawn stream id is never 0");
        for round in 0..2 {
            for (i, gw) in ["gw-a", "gw-b"].into_iter().enumerate() {
                let seq = round * 2 + i as u64 + 1;
                let r = sk
                    .apply(&volume_sketch(gw, ent, seq, 600_000), T0)
                    .expect("apply");
                let expect = usize::from(round == 0 && gw == "gw-b");
                assert_eq!(r.alerts.len(), expect, "{ent} round {round} {gw}");
            }
        }
    }
    for (sk, ent) in &replicas {
        assert_eq!(
            sk.counters().alerts.load(Ordering::Relaxed),
            1,
            "{ent}: the enterprise-wide alert was not stored"
        );
    }
    let store = b.open(cfg);
    let f = AlertFilter {
        kind: Some("volume_cap_exceeded".into()),
        limit: 100,
        ..Default::default()
    };
    let rows = store.alerts(&Scope::All, &f).expect("alerts");
    let mut ents: Vec<_> = rows
        .iter()
        .map(|r| (r.gateway.clone(), r.enterprise.clone().unwrap_or_default()))
        .collect();
    ents.sort();
    assert_eq!(
        ents,
        [
            ("gw-b".into(), "acme".into()),
            ("gw-b".into(), "beta".into())
        ],
        "{rows:?}"
    );
}

macro_rules! both {
    ($case:ident, $sqlite:ident, $pg:ident) => {
        #[test]
        fn $sqlite() {
            $case(&sqlite(stringify!($case)));
        }

        #[test]
        fn $pg() {
            let Some(b) = postgres(stringify!($case)) else {
                return;
            };
            $case(&b);
        }
    };
}

both!(
    grouping_window_regrade_and_routing,
    grouping_sqlite,
    grouping_postgres
);
both!(
    concurrent_ingest_stores_each_batch_once,
    concurrent_ingest_sqlite,
    concurrent_ingest_postgres
);
both!(full_u64_stream_and_sequence, u64_sqlite, u64_postgres);
both!(scopes_transitions_and_audit, scopes_sqlite, scopes_postgres);
both!(nul_in_a_field_is_stored, nul_sqlite, nul_postgres);
both!(
    flows_are_stored_once_per_batch,
    flows_sqlite,
    flows_postgres
);
both!(
    enterprise_wide_alert_fields,
    wide_alert_sqlite,
    wide_alert_postgres
);
both!(
    wide_alerts_of_replicas,
    replicas_wide_alerts_sqlite,
    replicas_wide_alerts_postgres
);
both!(
    work_queue_pages_by_deadline_index,
    work_queue_sqlite,
    work_queue_postgres
);

/// `migrate-store` copies an SQLite store into PostgreSQL: the same incidents, alerts, audit and
/// batches (full u64 stream/sequence) are read back through the PostgreSQL store, and new ids
/// continue after the copied ones.
#[test]
fn migrate_store_copies_sqlite_into_postgres() {
    let Some(pg) = Postgres::start("migrate") else {
        return;
    };
    let url = pg.create_db("target");
    let lite = sqlite("migrate");
    let Backend::Sqlite(dir) = &lite else {
        unreachable!()
    };
    let path = sqlite_file(dir);
    let cfg = config("");
    let src = lite.open(cfg.clone());
    scopes_transitions_and_audit_on(&*src);
    src.ingest(batch("gw-a", u64::MAX, u64::MAX - 7, vec![]))
        .expect("top of range");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossline-collector"))
        .args(["migrate-store", "--from"])
        .arg(&path)
        .args(["--to", &url, "--password-file"])
        .arg(&pg.password_file)
        .output()
        .expect("run migrate-store");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("incidents: 2 rows"), "{stdout}");
    let dst = Backend::Pg(pg, "target".into());
    let pgs = dst.open(cfg);
    assert_eq!(all_incidents(&*pgs), all_incidents(&*src));
    for id in 1..=2 {
        assert_eq!(
            incident_json(&*pgs, &Scope::All, id),
            incident_json(&*src, &Scope::All, id)
        );
    }
    assert_eq!(
        pgs.audit(None, 10, 0).expect("audit"),
        src.audit(None, 10, 0).expect("audit")
    );
    assert!(pgs.has_batch("gw-a", u64::MAX, u64::MAX - 7).expect("has"));
    assert_eq!(
        pgs.ingest(batch("gw-a", u64::MAX, u64::MAX - 7, vec![]))
            .expect("again"),
        IngestOutcome::Duplicate
    );
    // New rows continue after the copied ids.
    pgs.ingest(batch(
        "gw-a",
        5,
        5,
        vec![alert(
            "gw-a",
            T0,
            AlertKind::UnfiledExport,
            "new",
            None,
            false,
        )],
    ))
    .expect("ingest");
    let ids: Vec<i64> = all_incidents(&*pgs)
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, [3, 2, 1]);
    // A second copy into a used database is refused.
    let Backend::Pg(pg, _) = &dst else {
        unreachable!()
    };
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_crossline-collector"))
        .args(["migrate-store", "--from"])
        .arg(&path)
        .args(["--to", &url, "--password-file"])
        .arg(&pg.password_file)
        .output()
        .expect("run migrate-store");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// Replicas starting together on an empty database: every one opens, each migration version is
/// applied once.
#[test]
fn replicas_starting_together_migrate_once() {
    let Some(pg) = Postgres::start("migrate-race") else {
        return;
    };
    pg.create_db("fresh");
    let b = Backend::Pg(pg, "fresh".into());
    let cfg = config("");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| b.open(cfg.clone()))).collect();
        for h in handles {
            h.join().expect("replica opened");
        }
    });
    let Backend::Pg(pg, db) = &b else {
        unreachable!()
    };
    let versions: Vec<i64> = pg
        .client(db)
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i64> = (1..=crossline_collector::pg::schema_versions() as i64).collect();
    assert_eq!(versions, want);
}

/// TLS to the database: the test PostgreSQL with `ssl = on`, a server certificate from the
/// collector's PKI (`pki::init`) and TCP connections allowed over TLS only (`hostssl`). The
/// store opens with `sslmode=verify-full` and the right CA, and stores; with another CA it is
/// refused with a message naming the CA file; without TLS the server refuses it.
#[test]
fn database_tls_verify_full() {
    let Some(pg) = Postgres::start("tls") else {
        return;
    };
    pg.create_db("suite");
    let pki = pg.dir.join("pki");
    crossline_collector::pki::init(&pki.join("db"), &[], 30, true).expect("pki");
    crossline_collector::pki::init(&pki.join("other"), &[], 30, true).expect("other pki");
    let data = pg.dir.join("data");
    std::fs::copy(pki.join("db/server.pem"), data.join("server.crt")).expect("cert");
    std::fs::copy(pki.join("db/server.key"), data.join("server.key")).expect("key");
    let st = std::process::Command::new("chown")
        .arg("--reference")
        .arg(&data)
        .arg(data.join("server.crt"))
        .arg(data.join("server.key"))
        .status()
        .expect("chown");
    assert!(st.success(), "chown server.crt/server.key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod key");
    }
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
    text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(&conf, text).expect("write postgresql.conf");
    let hba = data.join("pg_hba.conf");
    let rules: String = std::fs::read_to_string(&hba)
        .expect("pg_hba.conf")
        .lines()
        .map(|l| match l.strip_prefix("host ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&hba, rules).expect("write pg_hba.conf");
    pg.stop_server();
    pg.start_server();

    let cfg = config("");
    let open = |query: &str| {
        let db = crossline_config::collector::PostgresDb {
            url: format!("{}{query}", pg.url("suite")),
            password_file: Some(pg.password_file.clone()),
            password_env: "PGPASSWORD".into(),
        };
        PgStore::open(&db, cfg.clone())
    };
    let good = pki.join("db/ca.pem");
    let store = open(&format!(
        "?sslmode=verify-full&sslrootcert={}",
        good.display()
    ))
    .expect("verify-full with the CA that signed the server certificate");
    assert_eq!(
        store
            .ingest(batch(
                "gw-a",
                1,
                1,
                vec![alert(
                    "gw-a",
                    T0,
                    AlertKind::UnfiledExport,
                    "r",
                    None,
                    false
                )]
            ))
            .expect("ingest over TLS"),
        IngestOutcome::Stored(1)
    );
    assert!(store.has_batch("gw-a", 1, 1).expect("has"));
    drop(store);
    // A relative sslrootcert is relative to the configuration file.
    let mut beside = (*cfg).clone();
    beside.path = pki.join("collector.toml");
    let db = crossline_config::collector::PostgresDb {
        url: format!(
            "{}?sslmode=verify-full&sslrootcert=db/ca.pem",
            pg.url("suite")
        ),
        password_file: Some(pg.password_file.clone()),
        password_env: "PGPASSWORD".into(),
    };
    let store = PgStore::open(&db, Arc::new(beside)).expect("sslrootcert beside the config");
    assert!(store.has_batch("gw-a", 1, 1).expect("has"));
    drop(store);

    let other = pki.join("other/ca.pem");
    let e = open(&format!(
        "?sslmode=verify-full&sslrootcert={}",
        other.display()
    ))
    .expect_err("a server certificate from another CA")
    .to_string();
    assert!(
        e.contains("TLS") && e.contains(&other.display().to_string()),
        "the refusal should say TLS failed and name the CA file: {e}"
    );
    eprintln!("wrong CA refused: {e}");
    let e = open("")
        .expect_err("plain TCP to a hostssl-only server")
        .to_string();
    assert!(
        e.contains("no pg_hba.conf entry") || e.contains("SSL"),
        "{e}"
    );
}
