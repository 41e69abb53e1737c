//! Full pipeline: agent -> mutual-TLS uplink -> collector -> Alertmanager -> webhook, with a real
//! Prometheus scraping both and evaluating the rules, and every dashboard query checked through
//! Prometheus' HTTP API.

use crossline_e2e::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

const GATEWAY: &str = "gw-bj-01";

/// Metrics the scenario guarantees data for (a dashboard or rule query built only from these,
/// with no comparison filter, must return at least one series).
const GUARANTEED: &[&str] = &[
    "up",
    "crossline_alerts_total",
    "crossline_export_bytes_total",
    "crossline_incidents_open",
    "crossline_incidents_overdue",
    "crossline_agent_last_seen_timestamp_seconds",
    "crossline_agent_packets_total",
    "crossline_agent_bytes_total",
    "crossline_agent_drops_total",
    "crossline_agent_decode_errors_total",
    "crossline_agent_flows_active",
    "crossline_agent_flows_created_total",
    "crossline_agent_flows_evicted_total",
    "crossline_agent_spool_bytes",
    "crossline_agent_spool_oldest_unacked_age_seconds",
    "crossline_agent_spool_dropped_events_total",
    "crossline_agent_uplink_batches_total",
    "crossline_agent_uplink_connected",
    "crossline_agent_registry_generation",
    "crossline_agent_registry_reload_failures_total",
    "crossline_agent_thread_cpu_seconds_total",
    "crossline_notifications_total",
    "crossline:agent_packets:rate5m",
    "crossline:agent_drops:rate5m",
    "crossline:agent_drop_ratio:rate5m",
    "crossline:agent_thread_busy:rate5m",
    "crossline:alerts:rate5m",
    "crossline:unfiled_export_bytes:rate5m",
    "crossline:export_bytes:rate5m",
];

/// Metric names used in a PromQL expression: identifiers that are not functions, keywords,
/// label names (inside `{}` or `by (...)` lists) or durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const LIST_KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "sum", "min", "max", "avg", "count", "topk",
        "bottomk", "quantile", "stddev", "stdvar", "group",
    ];
    let b = expr.as_bytes();
    let skip_to = |mut i: usize, end: u8| {
        let mut quoted = false;
        while i < b.len() {
            match b[i] {
                b'"' => quoted = !quoted,
                c if c == end && !quoted => return i + 1,
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut names = BTreeSet::new();
    let mut list_follows = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i = skip_to(i + 1, b'"');
        } else if c == b'{' {
            i = skip_to(i + 1, b'}');
        } else if c == b'[' {
            i = skip_to(i + 1, b']');
        } else if c == b'(' && list_follows {
            list_follows = false;
            i = skip_to(i + 1, b')');
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start().bytes().next();
            if LIST_KEYWORDS.contains(&word) {
                list_follows = true;
            } else if next != Some(b'(') && !KEYWORDS.contains(&word) {
                names.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    names
}

fn has_filter(expr: &str) -> bool {
    [" > ", " == ", " < ", ">0", "> 0"]
        .iter()
        .any(|f| expr.contains(f))
        && !expr.contains("> 0)")
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names(r#"sum by (kind) (rate(crossline_alerts_total{gateway=~"a|b"}[1m])) / up"#),
        ["crossline_alerts_total", "up"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(
        metric_names("crossline:agent_drops:rate5m / (crossline:agent_packets:rate5m + x)"),
        [
            "crossline:agent_drops:rate5m",
            "crossline:agent_packets:rate5m",
            "x"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    assert_eq!(
        metric_names("max by (scenario) (a{e=\"x\"}) / max by (scenario) (b > 0) and on(x) c[5m]"),
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
    assert!(has_filter("up == 0"));
    assert!(!has_filter("a / sum(b > 0)"));
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("/usr/bin/promtool") else {
        return;
    };
    let dir = repo_root().join("dashboards/prometheus");
    let out = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(dir.join("rules.yml")),
    )
    .expect("promtool check rules");
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(
        Command::new(&promtool)
            .arg("test")
            .arg("rules")
            .arg("rules_test.yml")
            .current_dir(&dir),
    )
    .expect("promtool test rules");
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg("prometheus.yml")
            .current_dir(&dir),
    )
    .expect("promtool check config");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn full_pipeline_agent_collector_prometheus_alertmanager() {
    let Some((agent, collector)) = binaries() else {
        return;
    };
    let Some(pcap) = demo_pcap() else { return };
    let Some(prometheus) = tool("/usr/bin/prometheus") else {
        return;
    };
    let Some(alertmanager) = tool("/usr/bin/prometheus-alertmanager") else {
        return;
    };
    let Some(promtool) = tool("/usr/bin/promtool") else {
        return;
    };
    let root = repo_root();
    let rules = root.join("dashboards/prometheus/rules.yml");

    // promtool on the rules file.
    let out = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&rules),
    )
    .expect("promtool check rules");
    assert!(out.contains("SUCCESS"), "{out}");

    let tmp = TempDir::new("full");
    let dir = tmp.path();

    // Webhook receiver, Alertmanager, and the collector notifying Alertmanager.
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let am = Alertmanager::start(&alertmanager, dir, hook.addr).expect("alertmanager");
    let setup = Collector::setup(
        &collector,
        &dir.join("collector"),
        &[GATEWAY],
        &am.receiver(),
    )
    .expect("collector setup");
    let col = Collector::start(&collector, &setup, "collector.log").expect("collector");

    // Prometheus scraping the collector and the agent every second, with the crossline rules.
    let agent_metrics: std::net::SocketAddr =
        format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let prom_port = free_port();
    let prom_addr: std::net::SocketAddr = format!("127.0.0.1:{prom_port}").parse().expect("addr");
    let prom_cfg = dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: crossline-collector\n    authorization:\n      \
             credentials: '{}'\n    static_configs:\n      \
             - targets: ['{}']\n  - job_name: crossline-agent\n    static_configs:\n      \
             - targets: ['{agent_metrics}']\n",
            rules.display(),
            setup.token,
            setup.api
        ),
    )
    .expect("write prometheus.yml");
    let mut cmd = Command::new(&prometheus);
    cmd.arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"));
    let prom = Proc::spawn("prometheus", cmd, &dir.join("prometheus.log")).expect("prometheus");
    assert!(
        wait_listening(prom_addr, Duration::from_secs(30)),
        "prometheus not up:\n{}",
        tail(&prom.output(), 30)
    );

    // The agent: offline run over the labelled capture, streaming, then /metrics kept up 25 s
    // so that Prometheus scrapes a live target while the checks below run.
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let agent_cfg = write_agent_config(
        &agent_dir,
        GATEWAY,
        setup.ingest,
        &setup.dir.join("pki"),
        "",
        "",
    )
    .expect("agent config");
    let events = agent_dir.join("events.jsonl");
    let mut cmd = Command::new(&agent);
    cmd.arg("analyze")
        .arg("--config")
        .arg(&agent_cfg)
        .arg("--out")
        .arg(&events)
        .arg("--metrics-listen")
        .arg(agent_metrics.to_string())
        .args(["--linger", "25s"])
        .arg(&pcap);
    let started = Instant::now();
    let mut agent_proc = Proc::spawn("agent", cmd, &agent_dir.join("agent.log")).expect("agent");

    // While it lingers: promtool on both /metrics outputs.
    let agent_text = wait_for(Duration::from_secs(30), || {
        let r = http_get(agent_metrics, "/metrics", None).ok()?;
        (r.status == 200 && metric_sum(&r.body, "crossline_agent_packets_total", "") > 0.0)
            .then_some(r.body)
    })
    .unwrap_or_else(|| {
        panic!(
            "agent /metrics never showed packets:\n{}",
            agent_proc.output()
        )
    });
    promtool_check_metrics(&promtool, &agent_text).expect("agent /metrics lint");
    promtool_check_metrics(&promtool, &col.metrics().expect("collector metrics"))
        .expect("collector /metrics lint");

    // Packets on /metrics means the run is over and the events file is complete.

    // The collector stored exactly the alerts the agent wrote.
    let written = alert_events(&std::fs::read_to_string(&events).expect("events")).expect("parse");
    assert!(!written.is_empty(), "the demo capture raised no alert");
    let stored = wait_for(Duration::from_secs(60), || {
        let stored = col.alerts().ok()?;
        (stored.len() >= written.len()).then_some(stored)
    })
    .unwrap_or_else(|| col.alerts().expect("GET /api/v1/alerts"));
    assert_eq!(
        sorted_keys(&stored),
        sorted_keys(&written),
        "collector alerts differ from the agent's"
    );
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for a in &written {
        *by_kind
            .entry(
                crossline_alert(a)["kind"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default() += 1;
    }
    eprintln!("alerts by kind: {by_kind:?}");

    // Alertmanager delivered every incident to the webhook.
    let incidents = col.incidents().expect("GET /api/v1/incidents");
    assert!(!incidents.is_empty(), "no incident opened");
    let ids: BTreeSet<String> = incidents
        .iter()
        .filter_map(|i| i["id"].as_i64().map(|n| n.to_string()))
        .collect();
    let first_seen = wait_for(Duration::from_secs(60), || {
        let seen = webhook_incidents(&hook);
        ids.iter().all(|id| seen.contains_key(id)).then_some(seen)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every incident reached the webhook; incidents {ids:?}, received {:?}\ncollector:\n{}",
            hook.received().iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
            tail(&col.proc.output(), 30)
        )
    });
    let mut latencies: Vec<Duration> = ids
        .iter()
        .filter_map(|id| first_seen.get(id).map(|(t, _)| t.duration_since(started)))
        .collect();
    latencies.sort();
    eprintln!(
        "packet -> webhook latency over {} incidents ({} alerts): p50 {:?}, p99 {:?}, max {:?} \
         (upper bound: measured from the agent's start; the capture is processed in its first \
         milliseconds)",
        latencies.len(),
        written.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default()
    );

    // Prometheus: the expected series, then every dashboard and rule expression.
    let have = |q: &str| prometheus_query(prom_addr, q).unwrap_or(0) > 0;
    assert!(
        wait_for(Duration::from_secs(30), || {
            (have("crossline_alerts_total > 0")
                && have("crossline_agent_packets_total > 0")
                && have("crossline_incidents_open > 0")
                && have("crossline:agent_packets:rate5m"))
            .then_some(())
        })
        .is_some(),
        "Prometheus never held the expected series:\n{}",
        tail(&prom.output(), 20)
    );
    let enterprise = http_get(
        prom_addr,
        &format!(
            "/api/v1/query?query={}",
            urlencode(
                "topk(1, sum by (enterprise) (crossline_export_bytes_total{enterprise!=\"none\"}))"
            )
        ),
        None,
    )
    .and_then(|r| r.json())
    .ok()
    .and_then(|v| {
        v["data"]["result"][0]["metric"]["enterprise"]
            .as_str()
            .map(String::from)
    })
    .unwrap_or_else(|| "yanjing-pharma".to_string());
    // Template variable queries return values (each dashboard is usable as loaded).
    for (origin, selector, label) in dashboard_label_queries(&root).expect("variables") {
        let values = prometheus_label_values(prom_addr, &selector, &label)
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        assert!(
            !values.is_empty(),
            "{origin}: label_values({selector}, {label}) is empty"
        );
    }
    let vars = [
        ("datasource", "crossline-prometheus"),
        ("gateway", ".*"),
        ("instance", ".*"),
        ("enterprise", enterprise.as_str()),
    ];
    let exprs = dashboard_and_rule_exprs(&root).expect("read dashboards");
    // `rate()` and `increase()` need two scrapes of a counter after it appeared: on a loaded
    // machine the first evaluation can come too early, so evaluate again (at the 1 s scrape
    // interval) until every expression passes or 30 s have gone by; the last round is judged.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (failures, empty_ok) = loop {
        let mut failures = Vec::new();
        let mut empty_ok = Vec::new();
        for (origin, expr) in &exprs {
            let q = substitute_grafana(expr, &vars);
            assert!(!q.contains('$'), "{origin}: unsubstituted variable in {q}");
            match prometheus_query(prom_addr, &q) {
                Err(e) => failures.push(format!("{origin}: {e}")),
                Ok(0) => {
                    let guaranteed = !has_filter(&q)
                        && metric_names(&q)
                            .iter()
                            .all(|m| GUARANTEED.contains(&m.as_str()));
                    if guaranteed {
                        failures.push(format!("{origin}: no data for {q}"));
                    } else {
                        empty_ok.push(origin.clone());
                    }
                }
                Ok(_) => {}
            }
        }
        if failures.is_empty() || std::time::Instant::now() >= deadline {
            break (failures, empty_ok);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}",
        failures.len(),
        exprs.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} dashboard/rule expressions evaluated without error; {} return data; empty by design \
         (alert filters, or data the demo capture does not produce): {empty_ok:?}",
        exprs.len(),
        exprs.len() - empty_ok.len(),
    );

    // The agent exits after its linger, with everything acknowledged.
    let status = agent_proc
        .wait(Duration::from_secs(120))
        .expect("agent exit");
    assert!(status.success(), "agent failed:\n{}", agent_proc.output());
    let agent_log = agent_proc.output();
    assert!(agent_log.contains("acknowledged"), "{agent_log}");
    drop(prom);
    drop(am);
}
