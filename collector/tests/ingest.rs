//! Ingest over real mutual TLS against the real binary: handshake refusals, batch refusals that
//! store nothing, duplicates, limits, and `promtool check metrics`.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

fn setup(tag: &str, extra: &str) -> (TempDir, std::path::PathBuf, Collector) {
    let dir = TempDir::new(tag);
    let pki = make_pki(dir.path(), &["gw-a", "gw-b", "gw-unlisted"]);
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, format!("{}{extra}", base_config(&["gw-a", "gw-b"])))
        .expect("write config");
    let c = Collector::start(&cfg);
    (dir, pki, c)
}

fn stored_counts(dir: &Path) -> (i64, i64, i64) {
    (
        count(dir, "batches"),
        count(dir, "events"),
        count(dir, "alerts"),
    )
}

#[test]
fn handshake_refused_without_valid_client_certificate() {
    let (dir, pki, c) = setup("tls", "");
    let line = flow_line("gw-a", 1, None, None, "unfiled", 10);

    // No client certificate.
    let anon = client_config(&pki.join("ca.pem"), None);
    let r = post_batch(c.ingest, &anon, 1, 1, line.as_bytes(), false);
    assert!(
        r.is_err(),
        "no client certificate must be refused, got {r:?}"
    );

    // A certificate from another CA (same gateway name).
    let other = TempDir::new("other-ca");
    let other_pki = make_pki(other.path(), &["gw-a"]);
    let cert = std::fs::read(other_pki.join("gw-a.pem")).expect("cert");
    let key = std::fs::read(other_pki.join("gw-a.key")).expect("key");
    let foreign = client_config(&pki.join("ca.pem"), Some((&cert, &key)));
    let r = post_batch(c.ingest, &foreign, 1, 1, line.as_bytes(), false);
    assert!(
        r.is_err(),
        "a certificate from another CA must be refused, got {r:?}"
    );

    // An expired certificate from the right CA.
    let expired = crossline_collector::pki::issue_pem(
        &pki,
        "gw-a",
        crossline_collector::pki::Validity {
            not_before_day: 18_000, // 2019-04-14
            not_after_day: 18_400,  // 2020-05-18
        },
    )
    .expect("issue expired");
    let old = client_config(
        &pki.join("ca.pem"),
        Some((expired.cert_pem.as_bytes(), expired.key_pem.as_bytes())),
    );
    let r = post_batch(c.ingest, &old, 1, 1, line.as_bytes(), false);
    assert!(
        r.is_err(),
        "an expired certificate must be refused, got {r:?}"
    );

    // The real one works, proving the refusals were about the certificates.
    let good = gateway_client(&pki, "gw-a");
    let r = post_batch(c.ingest, &good, 1, 1, line.as_bytes(), false).expect("valid cert");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "stored");
    assert_eq!(stored_counts(dir.path()), (1, 1, 0));

    // Health on the ingest port.
    let r = https(c.ingest, &good, "GET", "/v1/health", &[], b"").expect("health");
    assert_eq!(r.status, 200);
}

#[test]
fn refused_batches_store_nothing() {
    let (dir, pki, c) = setup("refuse", "[limits]\nmax_body = \"64 KiB\"\n");
    let a = gateway_client(&pki, "gw-a");
    let good = flow_line("gw-a", 1, None, None, "unfiled", 10);
    let alert = alert_line("gw-a", 2, "unfiled_export", "high", None, "203.0.113.50");

    // gw-a's certificate submitting gw-b's events: 403.
    let body = format!(
        "{good}\n{}\n",
        flow_line("gw-b", 3, None, None, "unfiled", 10)
    );
    let r = post_batch(c.ingest, &a, 1, 1, body.as_bytes(), false).expect("response");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("line 2: ")),
        "{}",
        r.text()
    );

    // A certificate for a gateway not in the config: 403.
    let unlisted = gateway_client(&pki, "gw-unlisted");
    let r = post_batch(
        c.ingest,
        &unlisted,
        1,
        1,
        flow_line("gw-unlisted", 1, None, None, "unfiled", 1).as_bytes(),
        false,
    )
    .expect("response");
    assert_eq!(r.status, 403, "{}", r.text());

    // Garbage body.
    let r = post_batch(c.ingest, &a, 1, 1, b"\x00\x01 not json at all", false).expect("response");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("line 1: ")));

    // A bad line in the middle, with an alert before it: nothing stored, not even the alert.
    let body =
        format!("{alert}\n{good}\n{{\"timestamp\":\"x\",\"event_type\":\"flow\"}}\n{good}\n");
    let r = post_batch(c.ingest, &a, 1, 1, body.as_bytes(), false).expect("response");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("line 3: ")),
        "{}",
        r.text()
    );

    // Unknown event type.
    let bad_type = good.replace("\"event_type\":\"flow\"", "\"event_type\":\"dns\"");
    let r = post_batch(c.ingest, &a, 1, 1, bad_type.as_bytes(), false).expect("response");
    assert_eq!(r.status, 400, "{}", r.text());

    // Truncated gzip.
    let gz = gzip(format!("{alert}\n{good}\n").repeat(50).as_bytes());
    let r = post_batch(c.ingest, &a, 1, 1, &gz[..gz.len() - 10], true).expect("response");
    assert_eq!(r.status, 400, "{}", r.text());

    // Oversized on the wire, and a gzip bomb (small on the wire, large after gunzip).
    let big = format!("{good}\n").repeat(65 * 1024 / good.len() + 10);
    let r = post_batch(c.ingest, &a, 1, 1, big.as_bytes(), false).expect("response");
    assert_eq!(r.status, 413, "{}", r.text());
    // The 413 says the limit, so an agent can split to fit.
    assert_eq!(r.json()["max_body"], 64 * 1024, "{}", r.text());
    let bomb = gzip(&vec![b'\n'; 4 << 20]);
    assert!(bomb.len() < 64 << 10);
    let r = post_batch(c.ingest, &a, 1, 1, &bomb, true).expect("response");
    assert_eq!(r.status, 413, "{}", r.text());

    // Unsupported encoding; missing headers.
    let h = vec![
        ("X-Crossline-Stream", "1".to_string()),
        ("X-Crossline-Sequence", "1".to_string()),
        ("Content-Type", "application/x-ndjson".to_string()),
        ("Content-Encoding", "br".to_string()),
    ];
    let r = https(c.ingest, &a, "POST", "/v1/events", &h, good.as_bytes()).expect("response");
    assert_eq!(r.status, 415, "{}", r.text());
    let h = vec![("Content-Type", "application/x-ndjson".to_string())];
    let r = https(c.ingest, &a, "POST", "/v1/events", &h, good.as_bytes()).expect("response");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("x-crossline-stream"), "{}", r.text());

    assert_eq!(
        stored_counts(dir.path()),
        (0, 0, 0),
        "a refused batch stored something"
    );
    assert_eq!(count(dir.path(), "incidents"), 0);
    assert_eq!(count(dir.path(), "outbox"), 0);

    // The same (stream, sequence) is still free: the refusals did not consume it.
    let body = format!("{alert}\n{good}\n");
    let r = post_batch(c.ingest, &a, 1, 1, body.as_bytes(), false).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "stored", "events": 2})
    );
    // Replayed, gzip this time: duplicate, stored once.
    let r = post_batch(c.ingest, &a, 1, 1, &gzip(body.as_bytes()), true).expect("response");
    assert_eq!(r.json(), serde_json::json!({"status": "duplicate"}));
    // Same sequence on another stream, and on another gateway, are new batches.
    let r = post_batch(c.ingest, &a, 2, 1, body.as_bytes(), false).expect("response");
    assert_eq!(r.json()["status"], "stored");
    let b = gateway_client(&pki, "gw-b");
    let body_b = flow_line("gw-b", 1, None, None, "filed", 5);
    let r = post_batch(c.ingest, &b, 1, 1, body_b.as_bytes(), false).expect("response");
    assert_eq!(r.json()["status"], "stored");
    assert_eq!(stored_counts(dir.path()), (3, 3, 2));

    // Metrics: rejections counted by reason, promtool finds nothing. Without a token the
    // per-enterprise families come without `enterprise` and `scenario` labels.
    let m = http(c.api, "GET", "/metrics", &[], b"").text();
    for needle in [
        "crossline_ingest_batches_total{result=\"stored\"} 3",
        "crossline_ingest_batches_total{result=\"duplicate\"} 1",
        "crossline_ingest_rejections_total{reason=\"wrong_gateway\"} 1",
        "crossline_ingest_rejections_total{reason=\"unknown_gateway\"} 1",
        "crossline_ingest_rejections_total{reason=\"too_large\"} 2",
        "crossline_ingest_rejections_total{reason=\"unsupported_media\"} 1",
        "crossline_ingest_events_total{event_type=\"alert\"} 2",
        "crossline_export_bytes_total{gateway=\"gw-a\",verdict=\"unfiled\"} 20",
        "crossline_alerts_total{gateway=\"gw-a\",kind=\"unfiled_export\",severity=\"high\"} 2",
        "crossline_incidents_open{grade=\"compliance\",severity=\"high\"} 1",
        concat!(
            "crossline_collector_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
        "\ncrossline_collector_start_time_seconds 1",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    assert!(!m.contains("203.0.113"), "an address leaked into a label");
    promtool_check(&m);
}

#[test]
fn rate_and_concurrency_limits_answer_429() {
    let (dir, pki, c) = setup(
        "rate",
        "[limits]\nevents_per_second_per_gateway = 1\nburst = 5\n",
    );
    let a = gateway_client(&pki, "gw-a");
    let b = gateway_client(&pki, "gw-b");
    let five = format!("{}\n", flow_line("gw-a", 1, None, None, "filed", 1)).repeat(5);
    let r = post_batch(c.ingest, &a, 1, 1, five.as_bytes(), false).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_batch(c.ingest, &a, 1, 2, five.as_bytes(), false).expect("response");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // Another gateway is not starved by gw-a.
    let five_b = five.replace("gw-a", "gw-b");
    let r = post_batch(c.ingest, &b, 1, 1, five_b.as_bytes(), false).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(dir.path(), "batches"), 2);
    assert!(!crossline_collector::util::now_ms().is_negative());
}

/// `check` reads the database URL's TLS options as the store will: an `sslmode` it refuses and
/// an `sslrootcert` file that is not there are named at the `database` line (exit 78), and a
/// readable one (relative to the config file) passes.
#[test]
fn check_command_names_database_tls_problems() {
    let dir = TempDir::new("check-db-tls");
    make_pki(dir.path(), &[]);
    let cfg = dir.path().join("db.toml");
    let check = |query: &str| {
        std::fs::write(
            &cfg,
            format!("gateways = [\"gw-a\"]\ndatabase = \"postgresql://crossline@db.example/crossline?{query}\"\n"),
        )
        .expect("write");
        let out = std::process::Command::new(BIN)
            .args(["check", "--config", cfg.to_str().expect("utf-8")])
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check("sslmode=verify-ca&sslrootcert=db-ca.pem");
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("db.toml:2:12: database URL \"postgresql://crossline@db.example/crossline?sslmode=verify-ca&sslrootcert=db-ca.pem\": sslmode=verify-ca is not supported"),
        "{err}"
    );
    let (code, err) = check("sslmode=verify-full&sslrootcert=db-ca.pem");
    assert_eq!(code, Some(78), "{err}");
    let ca = dir.path().join("db-ca.pem");
    assert!(
        err.contains(&format!(
            "db.toml:2:12: database URL sslrootcert {}: ",
            ca.display()
        )) && err.contains("expected a readable PEM file"),
        "{err}"
    );
    std::fs::copy(dir.path().join("pki/ca.pem"), &ca).expect("copy a CA");
    let (code, err) = check("sslmode=verify-full&sslrootcert=db-ca.pem");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_command_reports_errors_with_positions() {
    let dir = TempDir::new("check");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "gateways = [\"gw-a\"]\nlisten = \"here\"\n[[token]]\nname = \"x\"\nrole = \"boss\"\nsha256 = \"00\"\n").expect("write");
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", cfg.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:10: "), "{err}");
    assert!(err.contains("bad.toml:5:8: "), "{err}");
    // The bad sha256 of the token whose role is bad is reported too.
    assert!(err.contains("bad.toml:6:10: token.sha256: \"00\""), "{err}");
    assert!(err.contains("3 errors in "), "{err}");
    // A max_body below the largest batch an agent sends parses, but `check` refuses it.
    make_pki(dir.path(), &[]);
    let small = dir.path().join("small.toml");
    std::fs::write(
        &small,
        "gateways = [\"gw-a\"]\n[limits]\nmax_body = \"1 MiB\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", small.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("small.toml:3:12: [limits] max_body = 1048576 bytes is smaller than the largest batch an agent sends (8388608 bytes"),
        "{err}"
    );
    std::fs::write(&small, "gateways = [\"gw-a\"]\n").expect("write");
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", small.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // token hash reads stdin; token new prints a token whose hash is in its snippet.
    let mut child = std::process::Command::new(BIN)
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("token hash");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"abc\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let snippet = run_bin(&["token", "new", "--role", "operator", "--gateway", "gw-a"]);
    let token = snippet
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("token line");
    let hash = crossline_collector::util::sha256_hex(token.as_bytes());
    assert!(
        snippet.contains(&format!("sha256 = \"{hash}\"")),
        "{snippet}"
    );
    assert!(snippet.contains("gateways = [\"gw-a\"]"), "{snippet}");
    // Command-line mistakes exit 64 (EX_USAGE): one clap finds, one only the command finds.
    for args in [&["check"][..], &["token", "new", "--role", "king"][..]] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // pki init refuses to overwrite.
    let again = std::process::Command::new(BIN)
        .args([
            "pki",
            "init",
            dir.path().join("pki").to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(!again.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki/ca.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn every_gzip_member_of_a_body_is_stored() {
    let (dir, pki, c) = setup("multigz", "");
    let a = gateway_client(&pki, "gw-a");
    let first = format!(
        "{}\n{}\n",
        flow_line("gw-a", 1, None, None, "unfiled", 10),
        flow_line("gw-a", 2, None, None, "unfiled", 20)
    );
    let second = format!(
        "{}\n{}\n",
        flow_line("gw-a", 3, None, None, "unfiled", 30),
        alert_line("gw-a", 4, "unfiled_export", "high", None, "203.0.113.50")
    );
    // Two gzip members back to back are one gzip stream (RFC 1952 section 2.2).
    let mut body = gzip(first.as_bytes());
    body.extend(gzip(second.as_bytes()));
    let r = post_batch(c.ingest, &a, 1, 1, &body, true).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "stored", "events": 4})
    );
    assert_eq!(count(dir.path(), "events"), 3, "flows of both members");
    assert_eq!(
        count(dir.path(), "alerts"),
        1,
        "the alert of the second member"
    );
    let ids: Vec<i64> = {
        let conn = db(dir.path());
        let mut st = conn
            .prepare("SELECT flow_id FROM events ORDER BY flow_id")
            .expect("prepare");
        let rows = st.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(ids, [1, 2, 3]);
}

/// Open idle TCP connections to `addr` from `source` (another loopback address than the
/// gateway's) until `stop`; returns how many were opened.
fn flood(
    addr: std::net::SocketAddr,
    source: std::net::IpAddr,
    initial: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut held = Vec::new();
            let mut opened = 0usize;
            let connect = || async {
                let s = tokio::net::TcpSocket::new_v4().ok()?;
                s.bind(std::net::SocketAddr::new(source, 0)).ok()?;
                s.connect(addr).await.ok()
            };
            for _ in 0..initial {
                if let Some(c) = connect().await {
                    held.push(c);
                    opened += 1;
                }
            }
            // Keep flooding while the gateway posts.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(c) = connect().await {
                    held.push(c);
                    opened += 1;
                }
                if held.len() > 600 {
                    held.drain(..300);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            opened
        })
    })
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn connection_flood_leaves_room_for_a_known_gateway() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new("flood");
    let pki = make_pki(dir.path(), &["gw-a"]);
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("{}[limits]\nmax_connections = 64\n", base_config(&["gw-a"])),
    )
    .expect("config");
    // 256 open files: without a connection cap, a flood exhausts them and accept() fails.
    let c = Collector::start_with_nofile(&cfg, 256);
    let a = gateway_client(&pki, "gw-a");
    // The gateway has sent before: its address (127.0.0.1) is known.
    let line = flow_line("gw-a", 1, None, None, "unfiled", 10);
    let r = post_batch(c.ingest, &a, 1, 1, line.as_bytes(), false).expect("first post");
    assert_eq!(r.status, 200, "{}", r.text());

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let attacker: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    let handle = flood(c.ingest, attacker, 400, stop.clone());
    // Let the initial burst land.
    std::thread::sleep(Duration::from_millis(1500));
    let mut worst = Duration::ZERO;
    for seq in 2..=6u64 {
        let t = std::time::Instant::now();
        let line = flow_line("gw-a", seq, None, None, "unfiled", 10);
        let r =
            post_batch(c.ingest, &a, 1, seq, line.as_bytes(), false).expect("post during flood");
        assert_eq!(r.status, 200, "{}", r.text());
        worst = worst.max(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let opened = handle.join().expect("flood thread");
    eprintln!("flood: {opened} connections opened; slowest gateway POST {worst:?}");
    assert!(opened >= 400, "the flood opened only {opened} connections");
    assert!(
        worst < Duration::from_secs(2),
        "a gateway POST took {worst:?} during the flood"
    );
    assert_eq!(count(dir.path(), "events"), 6);
    let m = http(c.api, "GET", "/metrics", &[], b"").text();
    let shed = metric(
        &m,
        "crossline_connections_total{listener=\"ingest\",outcome=\"evicted\"}",
    ) + metric(
        &m,
        "crossline_connections_total{listener=\"ingest\",outcome=\"refused\"}",
    );
    assert!(shed >= 300.0, "flood connections not counted:\n{m}");
    assert!(
        metric(&m, "crossline_connections_open{listener=\"ingest\"}") <= 64.0,
        "{m}"
    );
}

/// A batch from an agent not yet upgraded: the layout before Suricata's EVE layout, every
/// crossline field at the top level, `alert.severity` a name, RFC 3339 times with
/// milliseconds. Written out as such an agent wrote it, not produced by today's serialiser.
const LEGACY_BATCH: &str = concat!(
    r#"{"timestamp":"2026-03-02T09:14:07.118Z","event_type":"flow","gateway":"gw-a","flow_id":4822,"proto":"TCP","src_ip":"10.20.3.4","src_port":51514,"dest_ip":"198.51.100.7","dest_port":443,"community_id":"1:6hJpJ8iwJYmDQVZkdD0tQJ0nZjI=","app_proto":"tls","tls":{"sni":"eu.cro.example.de","alpn":["h2","http/1.1"]},"dns_name":"eu.cro.example.de","flow":{"pkts_toserver":12,"pkts_toclient":10,"bytes_toserver":7301,"bytes_toclient":9120,"start":"2026-03-02T09:14:00.000Z","end":"2026-03-02T09:14:07.118Z","age":7,"state":"closed","reason":"fin","alerted":true},"direction":"export","export_bytes":7301,"verdict":{"status":"unfiled","scenario":null,"enterprise":null}}"#,
    "\n",
    r#"{"timestamp":"2026-03-02T09:14:07.118Z","event_type":"alert","gateway":"gw-a","flow_id":4822,"proto":"TCP","src_ip":"10.20.3.4","src_port":51514,"dest_ip":"198.51.100.7","dest_port":443,"alert":{"kind":"unfiled_export","severity":"high","scenario":null,"enterprise":null,"summary":"legacy export 4822","rule":"XB-001","recipient":"eu.cro.example.de","count":1,"bytes":7301}}"#,
    "\n",
    r#"{"timestamp":"2026-03-02T09:14:08.000Z","event_type":"stats","gateway":"gw-a","stats":{"packets":22,"bytes":16421,"flows":1,"evictions":0,"drops":{"kernel":0}}}"#,
    "\n",
);

/// The collector takes the old layout during an upgrade: stored (the line as received),
/// deduplicated like any batch, counted per gateway, logged once per gateway.
#[test]
fn legacy_layout_batches_are_stored_counted_and_logged_once() {
    let (dir, pki, c) = setup("legacy", "");
    let a = gateway_client(&pki, "gw-a");
    let r = post_batch(c.ingest, &a, 7, 1, LEGACY_BATCH.as_bytes(), false).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "stored", "events": 3})
    );
    // The flow and stats rows, the alert row, each line kept byte for byte.
    assert_eq!(stored_counts(dir.path()), (1, 2, 1));
    let lines: Vec<&str> = LEGACY_BATCH.lines().collect();
    let conn = db(dir.path());
    let (kind, severity, summary, json): (String, String, String, String) = conn
        .query_row(
            "SELECT kind, severity, summary, json FROM alerts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("the alert row");
    assert_eq!(
        (kind.as_str(), severity.as_str(), summary.as_str()),
        ("unfiled_export", "high", "legacy export 4822")
    );
    assert_eq!(json, lines[1], "the alert line is stored as received");
    let (export, verdict, flow_json): (i64, String, String) = conn
        .query_row(
            "SELECT export_bytes, verdict, json FROM events WHERE event_type = 'flow'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the flow row");
    assert_eq!((export, verdict.as_str()), (7301, "unfiled"));
    assert_eq!(flow_json, lines[0]);
    drop(conn);

    // Replayed, gzip this time: a duplicate like any batch, stored and counted once.
    let r = post_batch(c.ingest, &a, 7, 1, &gzip(LEGACY_BATCH.as_bytes()), true).expect("resp");
    assert_eq!(r.json(), serde_json::json!({"status": "duplicate"}));
    assert_eq!(stored_counts(dir.path()), (1, 2, 1));
    // A second legacy batch and an EVE batch from the same gateway: only the first moves the
    // counter; the gateway is logged once.
    let second = lines[2].replace("09:14:08.000Z", "09:14:09.000Z");
    let r = post_batch(c.ingest, &a, 7, 2, second.as_bytes(), false).expect("response");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    let eve = flow_line("gw-a", 4823, None, None, "unfiled", 10);
    let r = post_batch(c.ingest, &a, 7, 3, eve.as_bytes(), false).expect("response");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    assert_eq!(stored_counts(dir.path()), (3, 4, 1));

    let m = http(c.api, "GET", "/metrics", &[], b"").text();
    for needle in [
        "crossline_collector_ingest_legacy_events_total{gateway=\"gw-a\"} 4",
        "crossline_collector_ingest_legacy_events_total{gateway=\"gw-b\"} 0",
        "crossline_ingest_events_total{event_type=\"flow\"} 2",
        "crossline_ingest_events_total{event_type=\"alert\"} 1",
        "crossline_ingest_events_total{event_type=\"stats\"} 2",
        "crossline_export_bytes_total{gateway=\"gw-a\",verdict=\"unfiled\"} 7311",
        "crossline_alerts_total{gateway=\"gw-a\",kind=\"unfiled_export\",severity=\"high\"} 1",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    promtool_check(&m);
    let logged: Vec<String> = c
        .log
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.contains("layout before Suricata's EVE layout"))
        .collect();
    assert_eq!(logged.len(), 1, "logged once per gateway: {logged:#?}");
    assert!(
        logged[0].contains("gw-a") && logged[0].contains("upgrade crossline-agent"),
        "the log line names the gateway and what to do: {}",
        logged[0]
    );
}
