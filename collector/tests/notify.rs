//! Notifications end to end: a webhook receiver that is down, then up (every notification
//! delivered once, HMAC verified), syslog over UDP and TCP, and the real Prometheus Alertmanager
//! relaying an incident to a webhook.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request received by the test's HTTP sink.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

type Sink = Arc<Mutex<Vec<Received>>>;

/// Serve HTTP on `listener` with hyper, recording every request and answering 200.
fn spawn_sink(listener: TcpListener) -> Sink {
    spawn_sink_tls(listener, None)
}

/// [`spawn_sink`], over TLS when a server config is given.
fn spawn_sink_tls(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Sink {
    let sink: Sink = Arc::new(Mutex::new(Vec::new()));
    let s2 = sink.clone();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let sink = s2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let sink = sink.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            v.to_str().unwrap_or("").to_string(),
                                        )
                                    })
                                    .collect();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .unwrap_or_default();
                                sink.lock().expect("lock").push(Received {
                                    path,
                                    headers,
                                    body,
                                });
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        },
                    );
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(cfg) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = b
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                .await;
                        }
                        None => {
                            let _ = b
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                .await;
                        }
                    }
                });
            }
        });
    });
    sink
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

const REGULATOR_TOKEN: &str = "regulator-secret-token";

fn token_config() -> String {
    format!(
        "[[token]]\nname = \"reg\"\nrole = \"regulator\"\nsha256 = \"{}\"\n",
        crossline_collector::util::sha256_hex(REGULATOR_TOKEN.as_bytes())
    )
}

fn verify_signature(secret: &str, r: &Received) {
    let ts = r
        .headers
        .get("x-crossline-timestamp")
        .expect("timestamp header");
    let sig = r
        .headers
        .get("x-crossline-signature")
        .expect("signature header");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut mac = ring::hmac::Context::with_key(&key);
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let want = mac.sign();
    let want = want.as_ref();
    let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sig, &format!("sha256={hex}"), "bad signature");
    let now = crossline_collector::util::now_ms() / 1000;
    let ts: i64 = ts.parse().expect("unix seconds");
    assert!((now - ts).abs() < 120, "timestamp {ts} far from now {now}");
}

#[test]
fn webhook_down_then_up_gets_every_notification_once_and_syslog_too() {
    let dir = TempDir::new("webhook");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let hook_port = free_port(); // nothing listens here yet: the receiver is down
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let tcp_syslog = TcpListener::bind("127.0.0.1:0").expect("tcp syslog");
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}{}[notify]\nretry_min = \"200ms\"\nretry_max = \"1s\"\ntimeout = \"2s\"\n\
         [[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/crossline\"\nsecret = \"s3cret\"\n\
         [[receiver]]\nname = \"syslog-udp\"\ntype = \"syslog\"\naddress = \"{}\"\n\
         [[receiver]]\nname = \"syslog-tcp\"\ntype = \"syslog\"\naddress = \"{}\"\nprotocol = \"tcp\"\n",
        base_config(&["gw-a"]),
        token_config(),
        udp.local_addr().expect("addr"),
        tcp_syslog.local_addr().expect("addr"),
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");

    // Three alerts of different kinds: three incidents; two more of the first kind join it.
    let body = [
        alert_line("gw-a", 1, "unfiled_export", "high", None, "203.0.113.50"),
        alert_line("gw-a", 2, "service_not_filed", "med", None, "203.0.113.50"),
        alert_line("gw-a", 3, "opaque_tunnel", "high", None, "203.0.113.60"),
        alert_line("gw-a", 4, "unfiled_export", "high", None, "203.0.113.50"),
        alert_line("gw-a", 5, "unfiled_export", "high", None, "203.0.113.50"),
    ]
    .join("\n");
    let r = post_batch(c.ingest, &client, 1, 1, body.as_bytes(), false).expect("post");
    assert_eq!(r.json()["status"], "stored");
    assert_eq!(count(dir.path(), "incidents"), 3);

    // Syslog over UDP and TCP (octet counting).
    let mut udp_msgs = Vec::new();
    let mut buf = [0u8; 4096];
    while udp_msgs.len() < 3 {
        let n = udp.recv(&mut buf).expect("syslog datagram");
        udp_msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    for m in &udp_msgs {
        assert!(m.starts_with("<13"), "{m}");
        assert!(m.contains(" crossline-collector "), "{m}");
        assert!(m.contains("[crossline@32473 incident_id=\""), "{m}");
    }
    let (mut s, _) = tcp_syslog.accept().expect("tcp syslog connection");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut framed = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut framed).expect("read");
    let framed = String::from_utf8_lossy(&framed).into_owned();
    let (len, msg) = framed.split_once(' ').expect("octet count");
    assert_eq!(len.parse::<usize>().expect("length"), msg.len(), "{framed}");
    assert!(msg.starts_with('<'), "{msg}");

    // The webhook is down: attempts fail and the rows stay pending.
    std::thread::sleep(Duration::from_millis(1500));
    let m = http(c.api, "GET", "/metrics", &[], b"").text();
    assert!(
        m.lines().any(|l| l
            .starts_with("crossline_notifications_total{channel=\"webhook\",outcome=\"failed\"}")
            && !l.ends_with(" 0")),
        "{m}"
    );
    assert!(m.contains("crossline_notification_outbox_pending 3"), "{m}");

    // The receiver comes up on its port.
    let sink = spawn_sink(TcpListener::bind(("127.0.0.1", hook_port)).expect("bind hook port"));
    wait_for(20, "three webhook deliveries", || {
        sink.lock().expect("lock").len() >= 3
    });
    std::thread::sleep(Duration::from_millis(1500)); // anything more would be a duplicate
    let got = sink.lock().expect("lock").clone();
    assert_eq!(got.len(), 3, "each notification exactly once: {got:?}");
    let mut ids = Vec::new();
    for r in &got {
        assert_eq!(r.path, "/crossline");
        verify_signature("s3cret", r);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "hook");
        assert_eq!(v["alerts"][0]["labels"]["alertname"], "CrosslineIncident");
        assert_eq!(v["commonLabels"]["gateway"], "gw-a");
        ids.push(
            v["commonLabels"]["incident_id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"]);
    let m = http(c.api, "GET", "/metrics", &[], b"").text();
    assert!(m.contains("crossline_notification_outbox_pending 0"), "{m}");

    // Delivered incidents are `notified`; resolving one sends `resolved`, audit-logged.
    let auth = [("Authorization", format!("Bearer {REGULATOR_TOKEN}"))];
    let inc = http(c.api, "GET", "/api/v1/incidents/1", &auth, b"").json();
    assert_eq!(inc["status"], "notified");
    assert_eq!(inc["alert_count"], 3);
    let r = http(
        c.api,
        "POST",
        "/api/v1/incidents/1/resolve",
        &auth,
        br#"{"comment":"blocked at the gateway"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "resolved");
    wait_for(10, "resolved webhook", || {
        sink.lock().expect("lock").len() >= 4
    });
    let last = sink.lock().expect("lock")[3].clone();
    verify_signature("s3cret", &last);
    let v: Value = serde_json::from_slice(&last.body).expect("json");
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["commonLabels"]["incident_id"], "1");
    let audit = http(c.api, "GET", "/api/v1/audit", &auth, b"").json();
    assert_eq!(audit["items"][0]["action"], "resolve");
    assert_eq!(audit["items"][0]["token"], "reg");
    assert_eq!(audit["items"][0]["comment"], "blocked at the gateway");
}

fn start_alertmanager(
    dir: &std::path::Path,
    webhook: SocketAddr,
) -> Option<(std::process::Child, u16)> {
    let bin = "/usr/bin/prometheus-alertmanager";
    if !std::path::Path::new(bin).exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{bin} not found");
        }
        eprintln!("SKIPPED: {bin} not found");
        return None;
    }
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: test\n  group_by: ['incident_id']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n- name: test\n  webhook_configs:\n  - url: http://{webhook}/am\n    send_resolved: true\n"
        ),
    )
    .expect("am config");
    let port = free_port();
    let child = std::process::Command::new(bin)
        .args([
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.path={}", dir.join("am-data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start alertmanager");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_for(20, "alertmanager ready", || {
        std::net::TcpStream::connect(addr).is_ok()
            && http(addr, "GET", "/-/ready", &[], b"").status == 200
    });
    Some((child, port))
}

#[test]
fn incident_reaches_webhook_through_real_alertmanager() {
    let dir = TempDir::new("am");
    let sink_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sink_addr = sink_listener.local_addr().expect("addr");
    let sink = spawn_sink(sink_listener);
    let Some((mut am, am_port)) = start_alertmanager(dir.path(), sink_addr) else {
        return;
    };
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}{}[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:{am_port}\"\n\
         [notify]\nretry_min = \"200ms\"\nretry_max = \"1s\"\nresend_interval = \"2s\"\n",
        base_config(&["gw-a"]),
        token_config()
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let body = alert_line(
        "gw-a",
        9,
        "personal_info_cleartext",
        "high",
        Some("acme"),
        "203.0.113.9",
    );
    let r = post_batch(c.ingest, &client, 7, 1, body.as_bytes(), false).expect("post");
    assert_eq!(r.json()["status"], "stored");

    let find = |status: &str| -> Option<Value> {
        sink.lock().expect("lock").iter().find_map(|r| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            (r.path == "/am" && v["status"] == status).then_some(v)
        })
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(30, "alertmanager to relay the incident", || {
            find("firing").is_some()
        });
        let v = find("firing").expect("firing");
        let labels = &v["alerts"][0]["labels"];
        assert_eq!(labels["alertname"], "CrosslineIncident");
        assert_eq!(labels["incident_id"], "1");
        assert_eq!(labels["kind"], "personal_info_cleartext");
        assert_eq!(labels["severity"], "high");
        assert_eq!(labels["grade"], "compliance");
        assert_eq!(labels["gateway"], "gw-a");
        assert_eq!(labels["enterprise"], "acme");
        assert_eq!(labels["receiver_route"], "default");
        // Uploaded long after its deadline: the receivers are told it arrived late.
        assert_eq!(v["alerts"][0]["annotations"]["late_arrival"], "true", "{v}");
        assert!(v["alerts"][0]["annotations"]["deadline_at"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')));
        assert_eq!(v["alerts"][0]["startsAt"], "2026-03-02T09:14:07.118Z");

        // Resolve through the API: Alertmanager reports it resolved.
        let auth = [("Authorization", format!("Bearer {REGULATOR_TOKEN}"))];
        let r = http(c.api, "POST", "/api/v1/incidents/1/resolve", &auth, b"{}");
        assert_eq!(r.status, 200, "{}", r.text());
        wait_for(30, "alertmanager to relay the resolution", || {
            find("resolved").is_some()
        });
    }));
    let _ = am.kill();
    let _ = am.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn webhook_over_https_trusts_the_configured_ca() {
    let dir = TempDir::new("https-hook");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let server_tls = crossline_collector::tls::api_server_config(
        &pki.join("server.pem"),
        &pki.join("server.key"),
    )
    .expect("server tls");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sink = spawn_sink_tls(listener, Some(server_tls));
    let cfg = dir.path().join("collector.toml");
    let text = format!(
        "{}[notify]\nretry_min = \"200ms\"\nretry_max = \"1s\"\n\
         [[receiver]]\nname = \"secure\"\ntype = \"webhook\"\nurl = \"https://127.0.0.1:{port}/secure\"\n\
         secret = \"k\"\nca = \"pki/ca.pem\"\n",
        base_config(&["gw-a"])
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let client = gateway_client(&pki, "gw-a");
    let body = alert_line("gw-a", 1, "opaque_tunnel", "high", None, "203.0.113.7");
    let r = post_batch(c.ingest, &client, 1, 1, body.as_bytes(), false).expect("post");
    assert_eq!(r.json()["status"], "stored");
    wait_for(15, "https webhook delivery", || {
        !sink.lock().expect("lock").is_empty()
    });
    let got = sink.lock().expect("lock")[0].clone();
    assert_eq!(got.path, "/secure");
    verify_signature("k", &got);
    let v: Value = serde_json::from_slice(&got.body).expect("json");
    assert_eq!(v["commonLabels"]["kind"], "opaque_tunnel");
}

#[test]
fn overflowing_byte_totals_keep_the_api_and_every_notification_working() {
    // One gateway sends two alerts of i64::MAX bytes (their sum used to overflow the
    // incident's INTEGER column into a REAL: 503 on every incident list, and the outbox failed
    // on every row), and flows of 2^64-1 export bytes (the enterprise summary's SUM
    // overflowed).
    let dir = TempDir::new("overflow");
    let pki = make_pki(dir.path(), &["gw-a", "gw-b"]);
    let sink_listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let hook = sink_listener.local_addr().expect("addr");
    let sink = spawn_sink(sink_listener);
    let cfg = dir.path().join("collector.toml");
    let registry = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/registry.toml"
    ));
    let text = format!(
        "{}registry = {:?}\n{}[notify]\nretry_min = \"200ms\"\nretry_max = \"1s\"\n\
         [[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{hook}/x\"\nsecret = \"s\"\n",
        base_config(&["gw-a", "gw-b"]),
        registry.display().to_string(),
        token_config(),
    );
    std::fs::write(&cfg, text).expect("config");
    let c = Collector::start(&cfg);
    let huge = |line: String| -> String {
        let mut v: Value = serde_json::from_str(&line).expect("json");
        v["crossline"]["alert"]["bytes"] = serde_json::json!(i64::MAX);
        v["crossline"]["alert"]["count"] = serde_json::json!(u64::MAX);
        v["crossline"]["alert"]["persons"] = serde_json::json!(u64::MAX);
        v.to_string()
    };
    let a = gateway_client(&pki, "gw-a");
    let flow_max = |id| {
        flow_line(
            "gw-a",
            id,
            Some("yanjing-pharma"),
            Some("SA-2026-0001"),
            "filed",
            u64::MAX,
        )
    };
    let body = [
        huge(alert_line(
            "gw-a",
            1,
            "unfiled_export",
            "high",
            Some("yanjing-pharma"),
            "x.example",
        )),
        huge(alert_line(
            "gw-a",
            2,
            "unfiled_export",
            "high",
            Some("yanjing-pharma"),
            "x.example",
        )),
        flow_max(3),
        flow_max(4),
        flow_max(5),
    ]
    .join("\n");
    let r = post_batch(c.ingest, &a, 1, 1, body.as_bytes(), false).expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
    // Another gateway's incident afterwards.
    let b = gateway_client(&pki, "gw-b");
    let line = alert_line("gw-b", 9, "opaque_tunnel", "high", None, "203.0.113.9");
    let r = post_batch(c.ingest, &b, 1, 1, line.as_bytes(), false).expect("post");
    assert_eq!(r.status, 200, "{}", r.text());

    let auth = [("Authorization", format!("Bearer {REGULATOR_TOKEN}"))];
    let r = http(c.api, "GET", "/api/v1/incidents", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().cloned().expect("items");
    assert_eq!(items.len(), 2);
    let big = items
        .iter()
        .find(|i| i["gateway"] == "gw-a")
        .expect("gw-a incident");
    assert_eq!(big["alert_count"], 2);
    assert_eq!(big["bytes"], i64::MAX, "{big}");
    assert_eq!(big["bytes_saturated"], true, "{big}");
    let id = big["id"].as_i64().expect("id");
    let r = http(c.api, "GET", &format!("/api/v1/incidents/{id}"), &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["report"]["impact"]["export_bytes_saturated"], true);
    let r = http(c.api, "GET", "/api/v1/alerts", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["gateway"] == "gw-a")
        .all(|a| a["count"] == i64::MAX && a["persons"] == i64::MAX));

    // Both incidents are notified.
    wait_for(20, "both incidents notified", || {
        let got = sink.lock().expect("lock").clone();
        let ids: std::collections::BTreeSet<String> = got
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter_map(|v| {
                v["commonLabels"]["incident_id"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        ids.len() == 2
    });

    // The enterprise summary saturates and says so.
    let r = http(
        c.api,
        "GET",
        "/api/v1/enterprises/yanjing-pharma/summary",
        &auth,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let cell = &v["export_bytes"]["SA-2026-0001"]["filed"];
    assert_eq!(cell["export_bytes"], i64::MAX, "{v}");
    assert_eq!(cell["export_bytes_saturated"], true, "{v}");
    assert_eq!(cell["flows"], 3);
    assert_eq!(v["export_bytes_saturated"], true);

    // Metrics: the clamped values are counted; the byte counter did not wrap around.
    let m = http(c.api, "GET", "/metrics", &auth, b"").text();
    for needle in [
        "crossline_ingest_values_clamped_total{field=\"export_bytes\"} 3",
        "crossline_ingest_values_clamped_total{field=\"alert_count\"} 2",
        "crossline_ingest_values_clamped_total{field=\"alert_persons\"} 2",
        "crossline_ingest_values_clamped_total{field=\"alert_bytes\"} 0",
        "crossline_export_bytes_total{enterprise=\"yanjing-pharma\",gateway=\"gw-a\",scenario=\"SA-2026-0001\",verdict=\"filed\"} 18446744073709552000",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
}
