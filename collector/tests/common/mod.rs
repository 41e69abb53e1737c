//! Test helpers: a PKI made by the real binary, a running collector process, a blocking mTLS
//! HTTP/1.1 client, and event builders.
#![allow(dead_code)]

pub mod pg;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The collector binary built by cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_crossline-collector");

/// A fresh temporary directory (`tempfile`), removed on drop.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("crossline-col-{tag}-"))
            .tempdir()
            .expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Run the binary with arguments; panic with its output when it fails.
pub fn run_bin(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run collector binary");
    assert!(
        out.status.success(),
        "crossline-collector {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pki init DIR/pki` and `pki issue` for each gateway.
pub fn make_pki(dir: &Path, gateways: &[&str]) -> PathBuf {
    let pki = dir.join("pki");
    let p = pki.to_str().expect("utf-8 path");
    run_bin(&["pki", "init", p]);
    for g in gateways {
        run_bin(&["pki", "issue", p, "--gateway", g]);
    }
    pki
}

/// A running collector process (killed on drop).
#[derive(Debug)]
pub struct Collector {
    pub child: Child,
    pub ingest: SocketAddr,
    pub api: SocketAddr,
    pub config: PathBuf,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Collector {
    /// Start `crossline-collector run --config CONFIG` and wait for its listeners.
    pub fn start(config: &Path) -> Collector {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config", config.to_str().expect("utf-8")]);
        Collector::spawn(cmd, config)
    }

    /// [`Collector::start`] with at most `nofile` open files (`ulimit -n`).
    pub fn start_with_nofile(config: &Path, nofile: u32) -> Collector {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!("ulimit -n {nofile} && exec \"$0\" run --config \"$1\""),
            BIN,
            config.to_str().expect("utf-8"),
        ]);
        Collector::spawn(cmd, config)
    }

    fn spawn(mut cmd: Command, config: &Path) -> Collector {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn collector");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<String>();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[collector] {line}");
                if let Ok(mut l) = log2.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let status = child.try_wait();
                    panic!("collector did not start (status {status:?})");
                }
            };
            // "crossline-collector: ingest listening on A (mTLS), api on B (http)"
            if let Some(rest) = line.split("ingest listening on ").nth(1) {
                let ingest: SocketAddr = rest
                    .split(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("ingest address");
                let api: SocketAddr = rest
                    .split("api on ")
                    .nth(1)
                    .and_then(|s| s.split(' ').next())
                    .and_then(|s| s.parse().ok())
                    .expect("api address");
                return Collector {
                    child,
                    ingest,
                    api,
                    config: config.to_path_buf(),
                    log,
                };
            }
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("collector did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal collector config with ephemeral ports.
pub fn base_config(gateways: &[&str]) -> String {
    let list = gateways
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "listen = \"127.0.0.1:0\"\napi_listen = \"127.0.0.1:0\"\ngateways = [{list}]\n\
         database = \"collector.db\"\n"
    )
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16)
                .expect("chunk size");
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(end + 2..end + 2 + size).expect("chunk"));
            rest = rest.get(end + 4 + size..).expect("chunk end");
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Plain HTTP request (API port).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect api");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&request_bytes(method, path, headers, body))
        .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    parse_response(&raw)
}

/// GET with a bearer token (API port).
pub fn api_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    let h: Vec<(&str, String)> = token
        .map(|t| vec![("Authorization", format!("Bearer {t}"))])
        .unwrap_or_default();
    http(addr, "GET", path, &h, b"")
}

/// rustls client config trusting `ca` and presenting `cert`/`key` when given.
pub fn client_config(ca: &Path, client: Option<(&[u8], &[u8])>) -> Arc<rustls::ClientConfig> {
    let provider = crossline_collector::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca.pem") {
        roots.add(c.expect("cert")).expect("add root");
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    Arc::new(match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .expect("client cert");
            let key = PrivateKeyDer::from_pem_slice(key).expect("client key");
            b.with_client_auth_cert(certs, key).expect("client auth")
        }
    })
}

/// Client config for gateway `id` with files from `pki`.
pub fn gateway_client(pki: &Path, id: &str) -> Arc<rustls::ClientConfig> {
    let cert = std::fs::read(pki.join(format!("{id}.pem"))).expect("gateway cert");
    let key = std::fs::read(pki.join(format!("{id}.key"))).expect("gateway key");
    client_config(&pki.join("ca.pem"), Some((&cert, &key)))
}

/// One HTTPS request over a fresh mTLS connection. `Err` when TLS or the connection fails.
pub fn https(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Resp, String> {
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // A server may answer (413) and close before the whole body is written: read anyway.
    let written = tls
        .write_all(&request_bytes(method, path, headers, body))
        .and_then(|()| tls.flush());
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server may close without close_notify after the response.
        Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    if raw.is_empty() {
        return Err(match written {
            Err(e) => e.to_string(),
            Ok(()) => "connection closed without a response".into(),
        });
    }
    Ok(parse_response(&raw))
}

/// POST a batch to /v1/events.
pub fn post_batch(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    stream: u64,
    sequence: u64,
    body: &[u8],
    gzip: bool,
) -> Result<Resp, String> {
    let mut h = vec![
        ("X-Crossline-Stream", stream.to_string()),
        ("X-Crossline-Sequence", sequence.to_string()),
        ("Content-Type", "application/x-ndjson".to_string()),
    ];
    if gzip {
        h.push(("Content-Encoding", "gzip".to_string()));
    }
    https(addr, config, "POST", "/v1/events", &h, body)
}

/// gzip bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The `timestamp` of [`flow_line`] and [`alert_line`] (also their flow's end), in EVE's
/// time format as agents write it; tests swap it with `.replace(LINE_TS, ...)`.
pub const LINE_TS: &str = "2026-03-02T09:14:07.118000+0000";

/// A name of crossline's (a verdict status, an alert kind, a severity) as its type.
fn named<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> T {
    serde_json::from_value(serde_json::json!(name))
        .unwrap_or_else(|e| panic!("{what} {name:?} is not one of crossline's: {e}"))
}

/// A flow event line, in the layout agents write (Suricata's EVE layout).
pub fn flow_line(
    gateway: &str,
    flow_id: u64,
    enterprise: Option<&str>,
    scenario: Option<&str>,
    verdict: &str,
    bytes: u64,
) -> String {
    use crossline_config::event::{Direction, Event, EventType, FlowRecord, TlsMeta, Verdict};
    let mut e = Event::new(EventType::Flow, LINE_TS.into(), gateway.into());
    e.flow_id = Some(flow_id);
    e.proto = Some("TCP".into());
    (e.src_ip, e.src_port) = (Some("10.20.3.4".into()), Some(51514));
    (e.dest_ip, e.dest_port) = (Some("198.51.100.7".into()), Some(443));
    e.app_proto = Some("tls".into());
    e.tls = Some(TlsMeta {
        sni: Some("eu.cro.example.de".into()),
        ..TlsMeta::default()
    });
    e.flow = Some(FlowRecord {
        pkts_toserver: 12,
        pkts_toclient: 10,
        bytes_toserver: bytes,
        bytes_toclient: 9120,
        start: "2026-03-02T09:14:00.000000+0000".into(),
        end: LINE_TS.into(),
        age: 7,
        state: Some("closed".into()),
        reason: "fin".into(),
        ..FlowRecord::default()
    });
    e.direction = Some(Direction::Export);
    e.export_bytes = Some(bytes);
    e.verdict = Some(Verdict {
        status: named("verdict status", verdict),
        scenario: scenario.map(str::to_string),
        enterprise: enterprise.map(str::to_string),
        name_source: None,
        ech: false,
        exclude: None,
    });
    serde_json::to_string(&e).expect("a flow event serialises")
}

/// An alert event line, in the layout agents write (Suricata's EVE layout); crossline's alert
/// object is `crossline.alert`.
pub fn alert_line(
    gateway: &str,
    flow_id: u64,
    kind: &str,
    severity: &str,
    enterprise: Option<&str>,
    recipient: &str,
) -> String {
    use crossline_config::event::{Alert, AlertKind, Event, EventType};
    let kind: AlertKind = named("alert kind", kind);
    let mut e = Event::new(EventType::Alert, LINE_TS.into(), gateway.into());
    e.flow_id = Some(flow_id);
    e.proto = Some("TCP".into());
    (e.src_ip, e.src_port) = (Some("10.30.1.9".into()), Some(40000));
    (e.dest_ip, e.dest_port) = (Some("203.0.113.50".into()), Some(22));
    e.alert = Some(Alert {
        severity: named("severity", severity),
        enterprise: enterprise.map(str::to_string),
        recipient: Some(recipient.into()),
        bytes: 1000,
        ..Alert::new(kind, format!("test alert {flow_id}"))
    });
    serde_json::to_string(&e).expect("an alert event serialises")
}

/// Open the collector database read-only-ish for assertions.
pub fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("collector.db")).expect("open db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c
}

/// `SELECT COUNT(*) FROM table`.
pub fn count(dir: &Path, table: &str) -> i64 {
    db(dir)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// Wait until `f` is true or panic after `secs`.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Run `promtool check metrics` on an exposition; panic on any finding.
pub fn promtool_check(metrics: &str) {
    use std::io::Write;
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("promtool not found: {e}");
            }
            eprintln!("SKIPPED promtool check: promtool not found ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "promtool check metrics found problems:\n{text}"
    );
}
