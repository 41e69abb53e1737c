//! The role-scoped API against the real binary: every endpoint with no token, a bad token and
//! each role's token; ids and filters of another enterprise answer 404 or nothing, and no other
//! enterprise's data ever appears. Also incident grading, the CAC report object, the
//! acknowledge/resolve history, time sanity, the OpenAPI document, scoped metrics and retention.

mod common;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;

const REG: &str = "tok-regulator";
const OPS: &str = "tok-operator-gw-a";
const YANJING: &str = "tok-yanjing";
const SHUNYI: &str = "tok-shunyi";

fn registry_path() -> std::path::PathBuf {
    std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/registry.toml"
    ))
    .to_path_buf()
}

fn tokens() -> String {
    let t = |name: &str, role: &str, tok: &str, extra: &str| {
        format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n{extra}",
            crossline_collector::util::sha256_hex(tok.as_bytes())
        )
    };
    [
        t("cac", "regulator", REG, ""),
        t("noc", "operator", OPS, "gateways = [\"gw-a\"]\n"),
        t(
            "yanjing",
            "enterprise",
            YANJING,
            "enterprise = \"yanjing-pharma\"\n",
        ),
        t(
            "shunyi",
            "enterprise",
            SHUNYI,
            "enterprise = \"shunyi-motors\"\n",
        ),
    ]
    .concat()
}

fn alert_with(
    gateway: &str,
    flow_id: u64,
    kind: &str,
    enterprise: Option<&str>,
    persons: Option<u64>,
) -> String {
    let mut v: Value = serde_json::from_str(&alert_line(
        gateway,
        flow_id,
        kind,
        "high",
        enterprise,
        "203.0.113.50",
    ))
    .expect("json");
    if let Some(p) = persons {
        v["crossline"]["alert"]["persons"] = serde_json::json!(p);
    }
    if let Some(e) = enterprise {
        v["crossline"]["alert"]["scenario"] = serde_json::json!(format!("SC-{e}"));
    }
    v.to_string()
}

/// Line name and place of gw-b in the collector config.
const GW_B_META: &str =
    "[gateway.gw-b]\nline = \"CN2 Beijing-Frankfurt 10G\"\nlocation = \"Beijing Yizhuang IDC\"\n";

struct Setup {
    dir: TempDir,
    c: Collector,
    /// The PostgreSQL server when the store is on PostgreSQL (stopped on drop, after `c`).
    _pg: Option<common::pg::Postgres>,
}

fn setup() -> Setup {
    setup_on(None)
}

/// The same collector and data, on SQLite (`None`) or on a database of a PostgreSQL server.
fn setup_on(pg: Option<common::pg::Postgres>) -> Setup {
    let dir = TempDir::new("api");
    let pki = make_pki(dir.path(), &["gw-a", "gw-b"]);
    let cfg = dir.path().join("collector.toml");
    let mut base = base_config(&["gw-a", "gw-b"]);
    if let Some(pg) = &pg {
        pg.create_db("api");
        base = base.replace("database = \"collector.db\"\n", &pg.config_lines("api"));
    }
    let text = format!(
        "{}registry = {:?}\n[retention]\nflows = \"100000d\"\n{}{GW_B_META}",
        base,
        registry_path().display().to_string(),
        tokens()
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let a = gateway_client(&pki, "gw-a");
    let b = gateway_client(&pki, "gw-b");
    let batch_a = [
        alert_with("gw-a", 1, "unfiled_export", Some("yanjing-pharma"), None),
        alert_with(
            "gw-a",
            2,
            "recipient_not_filed",
            Some("shunyi-motors"),
            None,
        ),
        alert_with("gw-a", 3, "unfiled_export", None, None),
        flow_line(
            "gw-a",
            4,
            Some("yanjing-pharma"),
            Some("SA-x"),
            "filed",
            1000,
        ),
        flow_line(
            "gw-a",
            5,
            Some("shunyi-motors"),
            None,
            "recipient_not_filed",
            7,
        ),
    ]
    .join("\n");
    let r = post_batch(c.ingest, &a, 1, 1, batch_a.as_bytes(), false).expect("post a");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    let batch_b = [
        alert_with(
            "gw-b",
            6,
            "recipient_not_filed",
            Some("shunyi-motors"),
            None,
        ),
        alert_with(
            "gw-b",
            7,
            "persons_threshold",
            Some("jinrong-bank"),
            Some(2_000_000),
        ),
        flow_line("gw-b", 8, Some("jinrong-bank"), None, "unfiled", 50),
    ]
    .join("\n");
    let r = post_batch(c.ingest, &b, 1, 1, batch_b.as_bytes(), false).expect("post b");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    Setup { dir, c, _pg: pg }
}

fn get(api: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let r = api_get(api, path, Some(token));
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn field_set(v: &[Value], key: &str) -> Vec<String> {
    let mut s: Vec<String> = v
        .iter()
        .map(|x| x[key].as_str().unwrap_or("null").to_string())
        .collect();
    s.sort();
    s.dedup();
    s
}

/// Find the id of the alert / incident of an enterprise (as regulator).
fn id_of(api: SocketAddr, what: &str, enterprise: &str) -> i64 {
    let (_, v) = get(api, &format!("/api/v1/{what}?enterprise={enterprise}"), REG);
    items(&v)[0]["id"].as_i64().expect("id")
}

#[test]
fn tenant_isolation_across_every_endpoint() {
    tenant_isolation(&setup());
}

/// The same role sweep with the store on a real PostgreSQL.
#[test]
fn tenant_isolation_across_every_endpoint_on_postgres() {
    let Some(pg) = common::pg::Postgres::start("api") else {
        return;
    };
    tenant_isolation(&setup_on(Some(pg)));
}

fn tenant_isolation(s: &Setup) {
    let api = s.c.api;
    let shunyi_alert = id_of(api, "alerts", "shunyi-motors");
    let shunyi_incident = id_of(api, "incidents", "shunyi-motors");
    let yanjing_alert = id_of(api, "alerts", "yanjing-pharma");
    let yanjing_incident = id_of(api, "incidents", "yanjing-pharma");
    let jinrong_incident = id_of(api, "incidents", "jinrong-bank");

    // No token / bad token: 401 on every API endpoint.
    let endpoints = [
        "/api/v1/alerts".to_string(),
        format!("/api/v1/alerts/{yanjing_alert}"),
        "/api/v1/incidents".to_string(),
        format!("/api/v1/incidents/{yanjing_incident}"),
        "/api/v1/enterprises/yanjing-pharma/summary".to_string(),
        "/api/v1/audit".to_string(),
    ];
    for e in &endpoints {
        assert_eq!(api_get(api, e, None).status, 401, "{e} without token");
        assert_eq!(
            api_get(api, e, Some("wrong")).status,
            401,
            "{e} with a bad token"
        );
    }
    for action in ["acknowledge", "resolve"] {
        let p = format!("/api/v1/incidents/{yanjing_incident}/{action}");
        assert_eq!(http(api, "POST", &p, &[], b"{}").status, 401);
    }

    // Regulator: everything.
    let (st, v) = get(api, "/api/v1/alerts", REG);
    assert_eq!(st, 200);
    assert_eq!(items(&v).len(), 5);
    assert_eq!(
        field_set(&items(&v), "enterprise"),
        ["jinrong-bank", "null", "shunyi-motors", "yanjing-pharma"]
    );
    let (_, v) = get(api, "/api/v1/audit", REG);
    assert!(v["items"].is_array());

    // Grading: 2,000,000 persons is `major`; jinrong-bank is a CIIO: 1 h deadline.
    let (st, inc) = get(api, &format!("/api/v1/incidents/{jinrong_incident}"), REG);
    assert_eq!(st, 200);
    assert_eq!(inc["grade"], "major");
    assert_eq!(inc["ciio"], true);
    assert_eq!(inc["discovered_at"], "2026-03-02T09:14:07.118Z");
    assert_eq!(inc["deadline_at"], "2026-03-02T10:14:07.118Z");
    assert_eq!(inc["report"]["uscc"], "91110102MA03BNK260");
    // `line` and `place` come from the gateway's metadata (they used to repeat the gateway id).
    assert_eq!(inc["report"]["gateway"], "gw-b");
    assert_eq!(inc["report"]["line"], "CN2 Beijing-Frankfurt 10G");
    assert_eq!(inc["report"]["place"], "Beijing Yizhuang IDC");
    assert_eq!(
        inc["report"]["discovered_at_beijing"],
        "2026-03-02T17:14:07.118+08:00"
    );
    assert_eq!(
        inc["report"]["deadline_at_beijing"],
        "2026-03-02T18:14:07.118+08:00"
    );
    assert_eq!(inc["report"]["impact"]["persons_estimate"], 2_000_000);
    assert_eq!(
        inc["report"]["impact"]["persons_basis"],
        "alert_persons_max"
    );
    // Uploaded months after its 1 h deadline: a late arrival, not a silent overdue.
    assert_eq!(inc["late_arrival"], true, "{inc}");
    assert_eq!(inc["report"]["level"], "major");
    assert_eq!(inc["report"]["alert_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        inc["report"]["evidence_hashes"][0]["sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    let (_, y) = get(api, &format!("/api/v1/incidents/{yanjing_incident}"), REG);
    assert_eq!(y["grade"], "compliance");
    assert_eq!(y["deadline_at"], "2026-03-17T09:14:07.118Z");
    assert_eq!(y["green_channel"], true);

    // Enterprise yanjing-pharma: only its own rows, whatever the filter.
    let others = ["shunyi-motors", "jinrong-bank"];
    let mut seen = Vec::new();
    for path in [
        "/api/v1/alerts".to_string(),
        "/api/v1/alerts?enterprise=shunyi-motors".to_string(),
        "/api/v1/alerts?gateway=gw-b".to_string(),
        "/api/v1/alerts?enterprise=jinrong-bank&gateway=gw-b&kind=persons_threshold".to_string(),
        "/api/v1/incidents".to_string(),
        "/api/v1/incidents?enterprise=shunyi-motors".to_string(),
        "/api/v1/incidents?gateway=gw-b&status=open".to_string(),
        "/api/v1/enterprises/yanjing-pharma/summary".to_string(),
        format!("/api/v1/alerts/{yanjing_alert}"),
        format!("/api/v1/incidents/{yanjing_incident}"),
    ] {
        let r = api_get(api, &path, Some(YANJING));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        for o in others {
            assert!(!r.text().contains(o), "{path} leaked {o}: {}", r.text());
        }
        seen.push(r.json());
    }
    assert_eq!(items(&seen[0]).len(), 1);
    assert_eq!(
        field_set(&items(&seen[0]), "enterprise"),
        ["yanjing-pharma"]
    );
    assert!(items(&seen[1]).is_empty());
    assert!(items(&seen[2]).is_empty());
    assert!(items(&seen[3]).is_empty());
    assert_eq!(items(&seen[4]).len(), 1);
    assert!(items(&seen[5]).is_empty());
    assert!(items(&seen[6]).is_empty());
    let summary = &seen[7];
    assert_eq!(
        summary["export_bytes"]["SA-x"]["filed"]["export_bytes"],
        1000
    );
    assert_eq!(summary["alerts_by_kind"]["unfiled_export"], 1);
    assert_eq!(summary["open_incidents"], 1);
    // Other enterprises' ids: 404, exactly like ids that do not exist.
    for path in [
        format!("/api/v1/alerts/{shunyi_alert}"),
        format!("/api/v1/incidents/{shunyi_incident}"),
        format!("/api/v1/incidents/{jinrong_incident}"),
        "/api/v1/alerts/999999".to_string(),
        "/api/v1/enterprises/shunyi-motors/summary".to_string(),
        "/api/v1/enterprises/no-such-enterprise/summary".to_string(),
    ] {
        let r = api_get(api, &path, Some(YANJING));
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json(), serde_json::json!({"error": "not found"}));
    }
    let auth = |t: &str| [("Authorization", format!("Bearer {t}"))];
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{shunyi_incident}/acknowledge"),
        &auth(YANJING),
        b"{}",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{yanjing_incident}/resolve"),
        &auth(YANJING),
        b"{}",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(get(api, "/api/v1/audit", YANJING).0, 403);

    // Enterprise shunyi-motors sees its two alerts (two gateways) and nothing of yanjing.
    let r = api_get(api, "/api/v1/alerts", Some(SHUNYI));
    assert!(!r.text().contains("yanjing-pharma") && !r.text().contains("jinrong-bank"));
    assert_eq!(items(&r.json()).len(), 2);
    assert_eq!(
        api_get(
            api,
            &format!("/api/v1/alerts/{yanjing_alert}"),
            Some(SHUNYI)
        )
        .status,
        404
    );

    // Operator of gw-a: gw-a only.
    let (_, v) = get(api, "/api/v1/alerts", OPS);
    assert_eq!(field_set(&items(&v), "gateway"), ["gw-a"]);
    assert_eq!(items(&v).len(), 3);
    let (_, v) = get(api, "/api/v1/alerts?gateway=gw-b", OPS);
    assert!(items(&v).is_empty());
    assert_eq!(
        get(api, &format!("/api/v1/incidents/{jinrong_incident}"), OPS).0,
        404
    );
    let (st, v) = get(api, "/api/v1/enterprises/jinrong-bank/summary", OPS);
    assert_eq!(st, 200);
    assert_eq!(
        v["open_incidents"], 0,
        "gw-b data leaked to the gw-a operator: {v}"
    );
    assert_eq!(get(api, "/api/v1/audit", OPS).0, 403);
    // The operator acknowledges a gw-a incident (audit-logged), not a gw-b one.
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{yanjing_incident}/acknowledge"),
        &auth(OPS),
        br#"{"comment":"looking"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "acknowledged");
    assert_eq!(r.json()["acknowledged_by"], "noc");
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{yanjing_incident}/acknowledge"),
        &auth(OPS),
        b"{}",
    );
    assert_eq!(r.status, 409);
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{jinrong_incident}/acknowledge"),
        &auth(OPS),
        b"{}",
    );
    assert_eq!(r.status, 404);
    let (_, audit) = get(api, "/api/v1/audit", REG);
    assert_eq!(items(&audit).len(), 1);
    assert_eq!(audit["items"][0]["token"], "noc");
    assert_eq!(
        audit["items"][0]["target"],
        format!("incident/{yanjing_incident}")
    );
    // Resolving keeps the acknowledge comment: both are in the history, with who and when.
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{yanjing_incident}/resolve"),
        &auth(REG),
        br#"{"comment":"contract amended"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let h = r.json()["history"].clone();
    assert_eq!(h.as_array().map(Vec::len), Some(2), "{h}");
    assert_eq!(h[0]["action"], "acknowledge");
    assert_eq!(h[0]["by"], "noc");
    assert_eq!(h[0]["role"], "operator");
    assert_eq!(h[0]["comment"], "looking");
    assert_eq!(h[1]["action"], "resolve");
    assert_eq!(h[1]["by"], "cac");
    assert_eq!(h[1]["comment"], "contract amended");
    assert!(h[1]["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let (_, inc) = get(api, &format!("/api/v1/incidents/{yanjing_incident}"), REG);
    assert_eq!(inc["history"], h);
    // The audit log filtered by incident.
    let (st, a) = get(
        api,
        &format!("/api/v1/audit?incident={yanjing_incident}"),
        REG,
    );
    assert_eq!(st, 200);
    assert_eq!(items(&a).len(), 2);
    let (_, a) = get(
        api,
        &format!("/api/v1/audit?incident={jinrong_incident}"),
        REG,
    );
    assert!(items(&a).is_empty(), "{a}");
    assert_eq!(get(api, "/api/v1/audit?incident=abc", REG).0, 400);

    // Bad filters are refused with a message.
    let r = api_get(api, "/api/v1/alerts?severity=urgent", Some(REG));
    assert_eq!(r.status, 400);
    let r = api_get(api, "/api/v1/alerts?colour=red", Some(REG));
    assert_eq!(r.status, 400);
    let r = api_get(api, "/api/v1/alerts?since=2026-03-03T00:00:00Z", Some(REG));
    assert!(items(&r.json()).is_empty());
    let r = api_get(
        api,
        "/api/v1/alerts?severity=high&limit=2&offset=1",
        Some(REG),
    );
    assert_eq!(items(&r.json()).len(), 2);
}

#[test]
fn openapi_and_metrics_with_registry_labels() {
    let s = setup();
    let api = s.c.api;
    let r = api_get(api, "/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for p in [
        "/v1/events",
        "/v1/health",
        "/metrics",
        "/healthz",
        "/openapi.json",
        "/api/v1/alerts",
        "/api/v1/alerts/{id}",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/acknowledge",
        "/api/v1/incidents/{id}/resolve",
        "/api/v1/enterprises/{id}/summary",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    assert_eq!(api_get(api, "/healthz", None).status, 200);
    let m = api_get(api, "/metrics", Some(REG)).text();
    // Scenario "SA-x" is not in the registry: `other`; a registered enterprise keeps its id.
    assert!(
        m.contains("crossline_export_bytes_total{enterprise=\"yanjing-pharma\",gateway=\"gw-a\",scenario=\"other\",verdict=\"filed\"} 1000"),
        "{m}"
    );
    assert!(m.contains("crossline_alerts_total{enterprise=\"jinrong-bank\",gateway=\"gw-b\""));
    // Without a token, or with an enterprise token: no enterprise or scenario label anywhere,
    // the same totals summed over them.
    for token in [None, Some(YANJING), Some("wrong")] {
        let m = api_get(api, "/metrics", token).text();
        assert!(
            !m.contains("enterprise=") && !m.contains("scenario="),
            "{token:?} sees per-enterprise series:\n{m}"
        );
        for o in ["yanjing-pharma", "shunyi-motors", "jinrong-bank"] {
            assert!(!m.contains(o), "{token:?} sees {o}");
        }
        assert!(
            m.contains("crossline_export_bytes_total{gateway=\"gw-a\",verdict=\"filed\"} 1000"),
            "{m}"
        );
        assert!(
            m.contains(
                "crossline_alerts_total{gateway=\"gw-a\",kind=\"unfiled_export\",severity=\"high\"} 2"
            ),
            "{m}"
        );
        promtool_check(&m);
    }
    // An operator token: per-enterprise series of its own gateway only.
    let m = api_get(api, "/metrics", Some(OPS)).text();
    assert!(m.contains("enterprise=\"yanjing-pharma\""), "{m}");
    assert!(
        !m.contains("jinrong-bank"),
        "gw-b series leaked to the gw-a operator:\n{m}"
    );
    promtool_check(&m);
    // Agent stats are cumulative: the counters grow by the difference.
    let pki = s.dir.path().join("pki");
    let a = gateway_client(&pki, "gw-a");
    for (seq, packets, kernel) in [(2u64, 100u64, 5u64), (3, 150, 9)] {
        let line = serde_json::json!({
            "timestamp": "2026-03-02T09:15:00.000Z", "event_type": "stats", "gateway": "gw-a",
            "stats": {"packets": packets, "bytes": 1, "flows": 1, "evictions": 0,
                      "drops": {"kernel": kernel, "made_up": 2}}
        })
        .to_string();
        let r = post_batch(s.c.ingest, &a, 1, seq, line.as_bytes(), false).expect("stats");
        assert_eq!(r.json()["status"], "stored");
    }
    let m = api_get(api, "/metrics", Some(REG)).text();
    for needle in [
        "crossline_agent_stats_packets_total{gateway=\"gw-a\"} 150",
        "crossline_agent_stats_drops_total{gateway=\"gw-a\",kind=\"kernel\"} 9",
        "crossline_agent_stats_drops_total{gateway=\"gw-a\",kind=\"other\"} 2",
        "crossline_agent_last_seen_timestamp_seconds{gateway=\"gw-b\"}",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    assert!(
        m.contains("crossline_incidents_open{grade=\"major\",severity=\"high\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("crossline_incidents_overdue{grade=\"major\"} 1"),
        "{m}"
    );
}

#[test]
fn retention_deletes_by_arrival_time_and_keeps_alerts() {
    // Retention counts from when a record arrived, not from its packets' time: a flow
    // timestamped 2020 that arrived now is kept for the whole period, then deleted like any
    // other; alerts and incidents are kept.
    let dir = TempDir::new("retention");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}[retention]\nflows = \"4s\"\ninterval = \"1s\"\n",
        base_config(&["gw-a"])
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let now =
        crossline_config::event::format_eve_timestamp(crossline_collector::util::now_ms() * 1000);
    let recent = flow_line("gw-a", 2, None, None, "unfiled", 5).replace(LINE_TS, &now);
    let body = [
        flow_line("gw-a", 1, None, None, "unfiled", 5)
            .replace(LINE_TS, "2020-01-01T00:00:00.000000+0000"),
        recent,
        alert_line("gw-a", 3, "unfiled_export", "high", None, "x")
            .replace(LINE_TS, "2020-01-01T00:00:00.000000+0000"),
    ]
    .join("\n");
    let posted = std::time::Instant::now();
    let r = post_batch(c.ingest, &client, 1, 1, body.as_bytes(), false).expect("post");
    assert_eq!(r.json()["status"], "stored");
    // Several retention runs go by: the 2020 flow arrived just now and stays.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    if posted.elapsed() < std::time::Duration::from_secs(4) {
        assert_eq!(
            count(dir.path(), "events"),
            2,
            "a flow was deleted by its packet time"
        );
    }
    wait_for(15, "retention of both flows", || {
        count(dir.path(), "events") == 0
    });
    assert!(posted.elapsed() >= std::time::Duration::from_secs(4));
    assert_eq!(count(dir.path(), "alerts"), 1, "alerts are kept");
    assert_eq!(count(dir.path(), "incidents"), 1, "incidents are kept");
}

#[test]
fn flows_from_an_old_capture_survive_a_restart() {
    let dir = TempDir::new("oldcapture");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}[retention]\nflows = \"30d\"\ninterval = \"1s\"\n",
        base_config(&["gw-a"])
    );
    std::fs::write(&cfg, text).expect("config");
    let mut c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let body = (1..=20)
        .map(|i| {
            flow_line("gw-a", i, None, None, "unfiled", 5)
                .replace(LINE_TS, "2023-06-01T08:00:00.000000+0000")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let r = post_batch(c.ingest, &client, 1, 1, body.as_bytes(), false).expect("post");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    assert!(c.terminate().success());
    // Retention runs at start, then every second.
    let c = Collector::start(&cfg);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        count(dir.path(), "events"),
        20,
        "flows captured in 2023 and received now were deleted by their packet time"
    );
    let received: i64 = db(dir.path())
        .query_row("SELECT MIN(received_at) FROM events", [], |r| r.get(0))
        .expect("received_at");
    assert!(crossline_collector::util::now_ms() - received < 60_000);
    drop(c);
}

#[test]
fn api_over_tls_when_configured() {
    let dir = TempDir::new("apitls");
    let pki = make_pki(dir.path(), &[]);
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}[api_tls]\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n{}",
        base_config(&["gw-a"]),
        tokens()
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let anon = client_config(&pki.join("ca.pem"), None);
    let r = https(c.api, &anon, "GET", "/healthz", &[], b"").expect("https healthz");
    assert_eq!(r.status, 200);
    let auth = [("Authorization", format!("Bearer {REG}"))];
    let r = https(c.api, &anon, "GET", "/api/v1/alerts", &auth, b"").expect("https api");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = https(c.api, &anon, "GET", "/api/v1/alerts", &[], b"").expect("https api");
    assert_eq!(r.status, 401);
}

#[test]
fn cac_report_names_persons_line_and_times_and_time_sanity() {
    let dir = TempDir::new("cacreport");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}registry = {:?}\n{}[gateway.gw-a]\nline = \"CN2 Beijing-Frankfurt 10G\"\nlocation = \"Beijing Yizhuang IDC\"\n",
        base_config(&["gw-a"]),
        registry_path().display().to_string(),
        tokens()
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let api = c.api;
    let now_ms = crossline_collector::util::now_ms();
    let at = |ms: i64| crossline_config::event::format_eve_timestamp(ms * 1000);
    let alert = |flow: u64, kind: &str, ts: &str, recipient: &str, evidence: &[&str]| {
        let mut v: Value = serde_json::from_str(&alert_line(
            "gw-a",
            flow,
            kind,
            "high",
            Some("yanjing-pharma"),
            recipient,
        ))
        .expect("json");
        v["timestamp"] = serde_json::json!(ts);
        v["crossline"]["alert"]["scenario"] = serde_json::json!("SA-2026-0001");
        if !evidence.is_empty() {
            v["crossline"]["alert"]["evidence"] = serde_json::json!(evidence);
        }
        v.to_string()
    };
    let flow = |id: u64, f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&flow_line(
            "gw-a",
            id,
            Some("yanjing-pharma"),
            Some("SA-2026-0001"),
            "filed",
            100,
        ))
        .expect("json");
        v["timestamp"] = serde_json::json!(at(now_ms));
        // The five-tuple of the alerts (alert_line).
        v["src_ip"] = serde_json::json!("10.30.1.9");
        v["src_port"] = serde_json::json!(40000);
        v["dest_ip"] = serde_json::json!("203.0.113.50");
        v["dest_port"] = serde_json::json!(22);
        f(&mut v);
        v.to_string()
    };
    let body = [
        // Two alerts with masked evidence only (3 distinct identifiers, one in both).
        alert(
            11,
            "personal_info_cleartext",
            &at(now_ms - 2000),
            "eu.cro.example.de",
            &["110105********002X", "110105********113Y"],
        ),
        alert(
            12,
            "personal_info_cleartext",
            &at(now_ms - 1000),
            "eu.cro.example.de",
            &["110105********113Y", "320102********0021"],
        ),
        // The flows of those alerts: SNI on one, HTTP Host and a DNS-learned name on the other.
        flow(11, &|_| {}),
        flow(12, &|v| {
            v["app_proto"] = serde_json::json!("http");
            v.as_object_mut().expect("object").remove("tls");
            v["http"] = serde_json::json!({"hostname": "upload.cro.example.de"});
            v["crossline"]["dns_name"] = serde_json::json!("cdn.cro.example.de");
        }),
        // Flow id 11 again, from another agent run (flow ids restart): another far end.
        flow(11, &|v| {
            v["dest_ip"] = serde_json::json!("192.0.2.99");
            v["tls"] = serde_json::json!({"sni": "unrelated.example"});
        }),
        // An hour ahead of the collector's clock: stored, flagged, counted.
        alert(
            20,
            "opaque_tunnel",
            &at(now_ms + 3_600_000),
            "203.0.113.20",
            &[],
        ),
        // From a 2023 capture uploaded now: its 15-day deadline passed long before it arrived.
        alert(
            30,
            "unfiled_export",
            "2023-06-01T08:00:00.000000+0000",
            "203.0.113.30",
            &[],
        ),
        // An absurd timestamp (a pcapng with a huge if_tsoffset): stored with its arrival time.
        alert(
            40,
            "line_misuse",
            "-290308-12-21T19:59:05.224192+0000",
            "203.0.113.40",
            &[],
        ),
    ]
    .join("\n");
    let client = gateway_client(&pki, "gw-a");
    let r = post_batch(c.ingest, &client, 1, 1, body.as_bytes(), false).expect("post");
    assert_eq!(
        r.status,
        200,
        "one bad timestamp must not refuse the batch: {}",
        r.text()
    );
    assert_eq!(r.json()["events"], 8);

    let incident_of = |kind: &str| -> Value {
        let (st, v) = get(api, "/api/v1/incidents?limit=1000", REG);
        assert_eq!(st, 200);
        let id = items(&v)
            .into_iter()
            .find(|i| i["kind"] == kind)
            .and_then(|i| i["id"].as_i64())
            .unwrap_or_else(|| panic!("no {kind} incident: {v}"));
        get(api, &format!("/api/v1/incidents/{id}"), REG).1
    };
    let inc = incident_of("personal_info_cleartext");
    let rep = &inc["report"];
    assert_eq!(
        rep["unit"], "Yanjing Biopharma (Beijing) Co., Ltd.",
        "{rep}"
    );
    assert_eq!(rep["line"], "CN2 Beijing-Frankfurt 10G");
    assert_eq!(rep["place"], "Beijing Yizhuang IDC");
    assert_eq!(rep["impact"]["persons_estimate"], 3, "{rep}");
    assert_eq!(
        rep["impact"]["persons_basis"],
        "distinct_evidence_lower_bound"
    );
    let names: Vec<(String, Vec<String>)> = rep["recipient"]["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name").to_string(),
                n["sources"]
                    .as_array()
                    .expect("sources")
                    .iter()
                    .map(|s| s.as_str().expect("source").to_string())
                    .collect(),
            )
        })
        .collect();
    assert!(
        names.contains(&(
            "eu.cro.example.de".into(),
            vec!["alert_recipient".into(), "sni".into()]
        )),
        "{names:?}"
    );
    assert!(names.contains(&("upload.cro.example.de".into(), vec!["http_host".into()])));
    assert!(names.contains(&("cdn.cro.example.de".into(), vec!["dns".into()])));
    assert_eq!(
        names.len(),
        3,
        "a flow of another run lent its name: {names:?}"
    );
    assert_eq!(rep["sni"], serde_json::json!(["eu.cro.example.de"]));
    assert_eq!(rep["recipient"]["country"], "DE");
    assert_eq!(
        rep["recipient"]["filed_recipients"][0]["name"],
        "Example CRO GmbH"
    );
    let disc = rep["time"]["discovered_at"].as_str().expect("utc");
    let disc_bj = rep["time"]["discovered_at_beijing"].as_str().expect("bj");
    assert!(
        disc.ends_with('Z') && disc_bj.ends_with("+08:00"),
        "{disc} {disc_bj}"
    );
    assert_eq!(
        crossline_collector::util::parse_rfc3339_ms(disc),
        crossline_collector::util::parse_rfc3339_ms(disc_bj)
    );
    assert_eq!(inc["late_arrival"], false);

    // Chinese rendering.
    let (st, zh) = get(
        api,
        &format!("/api/v1/incidents/{}?lang=zh", inc["id"]),
        REG,
    );
    assert_eq!(st, 200);
    let text = zh["report_zh"]["text"].as_str().expect("report_zh.text");
    for needle in [
        "报告单位：Yanjing Biopharma (Beijing) Co., Ltd.",
        "线路名称：CN2 Beijing-Frankfurt 10G",
        "发生地点：Beijing Yizhuang IDC",
        "发现时间（北京时间）：",
        "事件类型：明文传输个人信息（personal_info_cleartext）",
        "涉及个人信息人数（估计）：3（依据：不同证据条目数（下限））",
        "境外接收方域名：eu.cro.example.de",
        "接收方所在国家/地区：DE",
    ] {
        assert!(text.contains(needle), "report_zh lacks {needle}:\n{text}");
    }
    assert!(zh["report_zh"]["fields"]
        .as_array()
        .is_some_and(|f| f.len() > 10));
    assert!(inc.get("report_zh").is_none(), "English by default");
    assert_eq!(
        get(
            api,
            &format!("/api/v1/incidents/{}?lang=fr", inc["id"]),
            REG
        )
        .0,
        400
    );

    // Time sanity.
    let (_, v) = get(api, "/api/v1/alerts?kind=opaque_tunnel", REG);
    let future = &items(&v)[0];
    assert_eq!(future["future_timestamp"], true, "{future}");
    assert_eq!(future["timestamp_problem"], "future");
    assert!(future["received_at"].as_str().is_some());
    let (_, v) = get(api, "/api/v1/alerts?kind=personal_info_cleartext", REG);
    assert!(items(&v)
        .iter()
        .all(|a| a["future_timestamp"] == false && a["timestamp_problem"].is_null()));
    let (_, v) = get(api, "/api/v1/alerts?kind=line_misuse", REG);
    let absurd = &items(&v)[0];
    assert_eq!(absurd["timestamp_problem"], "unparseable");
    assert_eq!(absurd["timestamp"], "-290308-12-21T19:59:05.224192+0000");
    let late = incident_of("unfiled_export");
    assert_eq!(late["late_arrival"], true, "{late}");
    assert_eq!(late["discovered_at"], "2023-06-01T08:00:00.000Z");
    let absurd_inc = incident_of("line_misuse");
    assert_eq!(absurd_inc["late_arrival"], false);
    let disc = crossline_collector::util::parse_rfc3339_ms(
        absurd_inc["discovered_at"].as_str().expect("time"),
    )
    .expect("rfc3339");
    assert!(
        (disc - now_ms).abs() < 60_000,
        "arrival time used: {absurd_inc}"
    );
    let future_inc = incident_of("opaque_tunnel");
    assert_eq!(future_inc["late_arrival"], false);
    assert_eq!(future_inc["future_timestamp"], true, "{future_inc}");
    assert_eq!(late["future_timestamp"], false);
    let m = api_get(api, "/metrics", None).text();
    for needle in [
        "crossline_ingest_timestamp_problems_total{problem=\"future\"} 1",
        "crossline_ingest_timestamp_problems_total{problem=\"unparseable\"} 1",
        "crossline_ingest_timestamp_problems_total{problem=\"out_of_range\"} 0",
        "crossline_incidents_late_arrival{grade=\"compliance\"} 1",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    promtool_check(&m);
}
