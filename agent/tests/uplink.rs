//! Spool tests on a real directory: restart, torn tails, a full spool, segment deletion,
//! rejected batches, plus the append rate and recovery time figures.

use crossline_agent::uplink::spool::{BatchKind, Spool, SpoolOptions, HEADER_LEN};
use crossline_config::agent::FsyncPolicy;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "crossline-spool-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn opts(dir: &Path, max_bytes: u64, segment_bytes: u64, fsync: FsyncPolicy) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
        fsync,
    }
}

fn payload(tag: &str, events: u32, pad: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..events {
        out.extend_from_slice(
            format!(
                "{{\"tag\":\"{tag}\",\"i\":{i},\"pad\":\"{}\"}}\n",
                "x".repeat(pad)
            )
            .as_bytes(),
        );
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read spool dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn restart_keeps_stream_and_resumes_after_the_last_sequence() {
    let tmp = TempDir::new("restart");
    let o = opts(&tmp.0, 1 << 20, 64 << 10, FsyncPolicy::Always);
    let (stream, seqs) = {
        let mut s = Spool::open(o.clone()).expect("open");
        let seqs: Vec<u64> = (0..3)
            .map(|i| {
                s.append(
                    BatchKind::Alerts,
                    1,
                    &payload(&format!("a{i}"), 1, 10),
                    1000,
                )
                .expect("append")
                .expect("stored")
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        let first = s.next_batch().expect("read").expect("pending");
        assert_eq!(first.seq, 1);
        s.ack(1).expect("ack");
        (s.stream_id(), seqs)
    };
    let mut s = Spool::open(o).expect("reopen");
    assert_eq!(s.stream_id(), stream, "stream id changed across a restart");
    assert_eq!(s.pending(), 2);
    let b = s.next_batch().expect("read").expect("pending");
    assert_eq!(b.seq, 2);
    assert_eq!(
        b.payload,
        payload("a1", 1, 10),
        "payload not read back intact"
    );
    assert_eq!(b.appended_ms, 1000);
    let next = s
        .append(BatchKind::Alerts, 1, b"{}\n", 2000)
        .expect("append")
        .expect("stored");
    assert!(
        next > *seqs.last().expect("3 seqs"),
        "sequence {next} reused after restart"
    );
    s.ack(2).expect("ack");
    s.ack(3).expect("ack");
    assert_eq!(s.next_batch().expect("read").map(|b| b.seq), Some(next));
}

#[test]
fn torn_tail_is_cut_counted_and_not_resent() {
    let tmp = TempDir::new("torn");
    let o = opts(&tmp.0, 1 << 20, 1 << 20, FsyncPolicy::Always);
    {
        let mut s = Spool::open(o.clone()).expect("open");
        for i in 0..3 {
            s.append(BatchKind::Flows, 2, &payload(&format!("f{i}"), 2, 20), 5)
                .expect("append")
                .expect("stored");
        }
    }
    let segs = segments(&tmp.0);
    assert_eq!(segs.len(), 1);
    let len = fs::metadata(&segs[0]).expect("stat").len();
    // Crash in the middle of writing the third record: lose its last 5 bytes.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .expect("open seg");
    f.set_len(len - 5).expect("truncate");
    drop(f);
    let started = Instant::now();
    let mut s = Spool::open(o.clone()).expect("reopen");
    let recovery = started.elapsed();
    let st = s.stats();
    assert_eq!(st.torn_records, 1, "{st:?}");
    assert_eq!(s.pending(), 2, "the two intact batches must survive");
    let record = (HEADER_LEN + payload("f0", 2, 20).len()) as u64;
    assert_eq!(
        fs::metadata(&segs[0]).expect("stat").len(),
        2 * record,
        "tail not cut"
    );
    // The torn batch's number is never reused for new events.
    let n = s
        .append(BatchKind::Alerts, 1, b"{}\n", 6)
        .expect("append")
        .expect("stored");
    assert!(n > 3, "sequence {n} may collide with the torn batch 3");
    let seqs: Vec<u64> = std::iter::from_fn(|| {
        let b = s.next_batch().expect("read")?;
        s.ack(b.seq).expect("ack");
        Some(b.seq)
    })
    .collect();
    assert_eq!(seqs, vec![1, 2, n]);
    eprintln!("torn-tail recovery of a 3-record spool: {recovery:?}");

    // Garbage after the last record (not even a header) is cut as well.
    drop(s);
    let mut s = Spool::open(o.clone()).expect("reopen");
    s.append(BatchKind::Alerts, 1, b"{\"k\":1}\n", 7)
        .expect("append")
        .expect("stored");
    drop(s);
    let seg = segments(&tmp.0).pop().expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    bytes.extend_from_slice(b"garbage!");
    fs::write(&seg, &bytes).expect("write");
    let s = Spool::open(o).expect("reopen");
    assert_eq!(s.stats().torn_records, 1);
    assert_eq!(s.pending(), 1);
}

#[test]
fn a_corrupt_record_in_the_middle_ends_its_segment_but_not_the_spool() {
    let tmp = TempDir::new("corrupt");
    // Small segments: one record each.
    let o = opts(&tmp.0, 1 << 20, 64, FsyncPolicy::Never);
    {
        let mut s = Spool::open(o.clone()).expect("open");
        for i in 0..3 {
            s.append(BatchKind::Alerts, 1, &payload(&format!("c{i}"), 1, 40), 1)
                .expect("append")
                .expect("stored");
        }
    }
    let segs = segments(&tmp.0);
    assert_eq!(segs.len(), 3, "one record per segment expected");
    let mut bytes = fs::read(&segs[1]).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff; // flip a payload byte: CRC mismatch
    fs::write(&segs[1], &bytes).expect("write");
    let mut s = Spool::open(o).expect("reopen");
    assert_eq!(s.stats().torn_records, 1);
    let seqs: Vec<u64> = std::iter::from_fn(|| {
        let b = s.next_batch().expect("read")?;
        s.ack(b.seq).expect("ack");
        Some(b.seq)
    })
    .collect();
    assert_eq!(seqs, vec![1, 3]);
    assert!(
        segments(&tmp.0).is_empty(),
        "acknowledged segments left behind"
    );
}

#[test]
fn full_spool_gives_flows_away_before_alerts() {
    let tmp = TempDir::new("full");
    let record = (HEADER_LEN + payload("f", 10, 50).len()) as u64;
    // Room for 20 records; segments of 4 records.
    let o = opts(&tmp.0, 20 * record, 4 * record, FsyncPolicy::Never);
    let mut s = Spool::open(o).expect("open");
    let mut flows_stored = 0;
    for _ in 0..40 {
        if s.append(BatchKind::Flows, 10, &payload("f", 10, 50), 1)
            .expect("append")
            .is_some()
        {
            flows_stored += 1;
        }
    }
    let st = s.stats();
    // Flows may use 75% of the spool: 15 records.
    assert_eq!(flows_stored, 15, "{st:?}");
    assert_eq!(st.dropped_flow_batches, 25);
    assert_eq!(st.dropped_flows, 250);
    assert_eq!(st.dropped_alerts, 0);
    assert!(st.bytes <= 20 * record);

    // Alerts still fit in the reserve, then push out whole flow-only segments.
    let mut alerts_stored: u64 = 0;
    for _ in 0..30 {
        if s.append(BatchKind::Alerts, 10, &payload("a", 10, 50), 2)
            .expect("append")
            .is_some()
        {
            alerts_stored += 1;
        }
    }
    let st = s.stats();
    assert!(st.bytes <= 20 * record, "{st:?}");
    assert_eq!(st.unacked_events, st.unacked_batches * 10, "{st:?}");
    assert!(
        alerts_stored >= 16,
        "alerts lost while flows could give way: {st:?}"
    );
    assert!(
        st.dropped_flows > 250,
        "no flow segment was evicted for alerts: {st:?}"
    );
    assert_eq!(
        st.dropped_alerts,
        (30 - alerts_stored) * 10,
        "alert drops miscounted: {st:?}"
    );
    // Every alert that was stored is still there to send, in order.
    let mut alert_batches = 0;
    let mut last = 0;
    while let Some(b) = s.next_batch().expect("read") {
        assert!(b.seq > last, "out of order");
        last = b.seq;
        if b.kind == BatchKind::Alerts {
            alert_batches += 1;
        }
        s.ack(b.seq).expect("ack");
    }
    assert_eq!(alert_batches, alerts_stored);
    eprintln!(
        "full spool of 20 records: flows kept {flows_stored}/40, alerts kept {alerts_stored}/30, \
         dropped flows {} events, dropped alerts {} events",
        st.dropped_flows, st.dropped_alerts
    );
}

#[test]
fn a_segment_is_deleted_only_when_every_batch_in_it_is_acknowledged() {
    let tmp = TempDir::new("delete");
    let record = (HEADER_LEN + payload("d", 1, 30).len()) as u64;
    let o = opts(&tmp.0, 1 << 20, 2 * record, FsyncPolicy::Always);
    let mut s = Spool::open(o.clone()).expect("open");
    for i in 0..5 {
        s.append(BatchKind::Alerts, 1, &payload("d", 1, 30), i)
            .expect("append")
            .expect("stored");
    }
    // Segments: [1,2] [3,4] [5 (open)].
    assert_eq!(segments(&tmp.0).len(), 3);
    s.ack(1).expect("ack");
    assert_eq!(
        segments(&tmp.0).len(),
        3,
        "segment deleted with batch 2 unacknowledged"
    );
    // Out-of-order acknowledgement of 4 keeps [3,4].
    s.ack(4).expect("ack");
    assert_eq!(segments(&tmp.0).len(), 3);
    s.ack(2).expect("ack");
    assert_eq!(segments(&tmp.0).len(), 2, "fully acknowledged segment kept");
    assert_eq!(s.stats().acked_seq, 2);
    s.ack(3).expect("ack");
    assert_eq!(segments(&tmp.0).len(), 1);
    assert_eq!(s.stats().acked_seq, 4);
    s.ack(5).expect("ack");
    assert!(
        segments(&tmp.0).is_empty(),
        "open segment kept after full ack"
    );
    assert_eq!(s.stats().bytes, 0);
    // Nothing comes back after a restart.
    drop(s);
    let mut s = Spool::open(o).expect("reopen");
    assert_eq!(s.pending(), 0);
    assert!(s.next_batch().expect("read").is_none());
}

#[test]
fn rejected_batches_are_moved_aside_with_the_reply() {
    let tmp = TempDir::new("reject");
    let mut s = Spool::open(opts(&tmp.0, 1 << 20, 1 << 20, FsyncPolicy::Never)).expect("open");
    s.append(BatchKind::Alerts, 1, b"{\"bad\":true}\n", 1)
        .expect("append")
        .expect("stored");
    s.append(BatchKind::Alerts, 1, b"{\"good\":true}\n", 1)
        .expect("append")
        .expect("stored");
    let b = s.next_batch().expect("read").expect("pending");
    let path = s.reject(&b, "HTTP 400\nunknown field").expect("reject");
    assert_eq!(fs::read(&path).expect("copy"), b"{\"bad\":true}\n");
    let reply = fs::read_to_string(path.with_extension("reply.txt")).expect("reply");
    assert!(reply.starts_with("HTTP 400"));
    assert_eq!(s.stats().rejected_batches, 1);
    assert_eq!(s.next_batch().expect("read").map(|b| b.seq), Some(2));
}

#[test]
fn append_rate_and_recovery_time() {
    let tmp = TempDir::new("rate");
    let batch = payload("r", 500, 400); // ~220 KB, a full batch of flow records
    let mut figures = Vec::new();
    for (name, fsync) in [
        ("never", FsyncPolicy::Never),
        ("always", FsyncPolicy::Always),
    ] {
        let dir = tmp.0.join(name);
        let mut s = Spool::open(opts(&dir, 4 << 30, 16 << 20, fsync)).expect("open");
        let n = 200;
        let started = Instant::now();
        for _ in 0..n {
            s.append(BatchKind::Flows, 500, &batch, 1)
                .expect("append")
                .expect("stored");
        }
        let secs = started.elapsed().as_secs_f64();
        let bytes = s.stats().appended_bytes as f64;
        figures.push(format!(
            "fsync={name}: {:.0} MB/s, {:.0} batches/s ({:.0} events/s)",
            bytes / secs / 1e6,
            f64::from(n) / secs,
            f64::from(n * 500) / secs
        ));
        drop(s);
        let started = Instant::now();
        let s = Spool::open(opts(&dir, 4 << 30, 16 << 20, fsync)).expect("reopen");
        assert_eq!(s.pending(), 200);
        figures.push(format!(
            "recovery scan of {:.0} MB ({} segments): {:?}",
            bytes / 1e6,
            s.stats().segments,
            started.elapsed()
        ));
    }
    for f in figures {
        eprintln!("spool figure: {f}");
    }
}

// ---------------------------------------------------------------------------------------------
// The uplink client against a real mutual-TLS HTTP server whose replies the test scripts.

mod server {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::collections::VecDeque;
    use std::io::Read;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub stream: u64,
        pub seq: u64,
        pub events: Vec<String>,
        pub status: u16,
        pub client_cn_ok: bool,
    }

    pub struct Pki {
        pub ca_pem: String,
        pub client_pem: String,
        pub client_key: String,
        server_der: CertificateDer<'static>,
        server_key: Vec<u8>,
        ca_der: CertificateDer<'static>,
    }

    pub fn pki() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("server params")
            .signed_by(&server_key, &rcgen::Issuer::from_params(&ca, &ca_key))
            .expect("server cert");
        let client_key = KeyPair::generate().expect("client key");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client
            .distinguished_name
            .push(DnType::CommonName, "gw-test");
        let client = client
            .signed_by(&client_key, &rcgen::Issuer::from_params(&ca, &ca_key))
            .expect("client cert");
        Pki {
            ca_pem: ca_cert.pem(),
            client_pem: client.pem(),
            client_key: client_key.serialize_pem(),
            server_der: server.der().clone(),
            server_key: server_key.serialize_der(),
            ca_der: ca_cert.der().clone(),
        }
    }

    impl Pki {
        pub fn write(&self, dir: &Path) {
            std::fs::write(dir.join("ca.pem"), &self.ca_pem).expect("ca");
            std::fs::write(dir.join("client.pem"), &self.client_pem).expect("cert");
            std::fs::write(dir.join("client.key"), &self.client_key).expect("key");
        }
    }

    /// A server answering each request with the next scripted status (200 when the script is
    /// exhausted), recording what it saw.
    pub struct Server {
        pub addr: SocketAddr,
        pub seen: Arc<Mutex<Vec<Seen>>>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub fn start(pki: &Pki, addr: SocketAddr, script: Vec<u16>) -> Server {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![pki.server_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind(addr).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let seen2 = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut rx => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let acceptor = acceptor.clone();
                    let seen = Arc::clone(&seen2);
                    let script = Arc::clone(&script);
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let client_cn_ok = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty());
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let seen = Arc::clone(&seen);
                                let script = Arc::clone(&script);
                                async move {
                                    let header = |n: &str| {
                                        req.headers()
                                            .get(n)
                                            .and_then(|v| v.to_str().ok())
                                            .and_then(|v| v.parse::<u64>().ok())
                                            .unwrap_or(0)
                                    };
                                    let stream = header("x-crossline-stream");
                                    let seq = header("x-crossline-sequence");
                                    let gz = req
                                        .headers()
                                        .get("content-encoding")
                                        .is_some_and(|v| v == "gzip");
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let mut text = String::new();
                                    if gz {
                                        let _ = flate2::read::GzDecoder::new(&body[..])
                                            .read_to_string(&mut text);
                                    } else {
                                        text = String::from_utf8_lossy(&body).into_owned();
                                    }
                                    let status =
                                        script.lock().expect("script").pop_front().unwrap_or(200);
                                    seen.lock().expect("seen").push(Seen {
                                        stream,
                                        seq,
                                        events: text.lines().map(String::from).collect(),
                                        status,
                                        client_cn_ok,
                                    });
                                    let reply = if status == 200 {
                                        r#"{"status":"stored"}"#
                                    } else {
                                        r#"{"error":"scripted"}"#
                                    };
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::from(reply)))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        Server {
            addr,
            seen,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

fn uplink_config(
    dir: &Path,
    addr: std::net::SocketAddr,
    batch_events: usize,
) -> crossline_config::agent::UplinkConfig {
    crossline_config::agent::UplinkConfig {
        collector: format!("https://{addr}"),
        server_name: None,
        ca: dir.join("ca.pem"),
        cert: dir.join("client.pem"),
        key: dir.join("client.key"),
        spool_dir: dir.join("spool"),
        spool_max_bytes: 64 << 20,
        spool_segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
        batch_events,
        batch_interval: std::time::Duration::from_millis(50),
        send_flows: true,
        backoff_min: std::time::Duration::from_millis(20),
        backoff_max: std::time::Duration::from_millis(200),
    }
}

fn alert_line(i: usize) -> String {
    format!(
        r#"{{"timestamp":"2026-03-02T09:14:07.118Z","event_type":"alert","gateway":"gw-test","flow_id":{i},"alert":{{"kind":"unfiled_export","severity":"high","scenario":null,"enterprise":null,"summary":"n{i}"}}}}"#
    )
}

#[test]
fn client_retries_429_and_5xx_moves_poison_aside_and_keeps_order() {
    use crossline_agent::uplink::Uplink;
    use crossline_config::event::EventType;
    let tmp = TempDir::new("client");
    let pki = server::pki();
    pki.write(&tmp.0);
    // Replies: 503, 429, then 200 for batch 1; 400 for batch 2 (poison); 200 for the rest.
    let srv = server::start(
        &pki,
        "127.0.0.1:0".parse().expect("addr"),
        vec![503, 429, 200, 400],
    );
    let up = Uplink::start(&uplink_config(&tmp.0, srv.addr, 3)).expect("start uplink");
    let mut sink = up.sink();
    for i in 0..9 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen = srv.seen.lock().expect("seen").clone();
    let seqs: Vec<(u64, u16)> = seen.iter().map(|s| (s.seq, s.status)).collect();
    assert_eq!(
        seqs,
        vec![(1, 503), (1, 429), (1, 200), (2, 400), (3, 200)],
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|s| s.client_cn_ok && s.stream == seen[0].stream && s.stream != 0));
    assert!(
        seen.iter().all(|s| s.events.len() == 3),
        "batches of 3 expected"
    );
    assert_eq!(
        seen[2].events[0],
        alert_line(0),
        "payload not delivered intact"
    );
    assert_eq!(
        (snap.acked, snap.rejected, snap.retried),
        (2, 1, 2),
        "{snap:?}"
    );
    assert_eq!(snap.spool.unacked_batches, 0);
    let rejected: Vec<_> = fs::read_dir(tmp.0.join("spool/rejected"))
        .expect("rejected dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(rejected.len(), 2, "batch + reply expected: {rejected:?}");
    let batch = rejected
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".ndjson"))
        .expect("batch copy");
    assert!(fs::read_to_string(batch)
        .expect("read")
        .contains("\"flow_id\":3"));
}

#[test]
fn collector_down_times_out_keeps_the_spool_and_the_next_run_sends_it() {
    use crossline_agent::uplink::{Uplink, UplinkError};
    use crossline_config::event::EventType;
    let tmp = TempDir::new("down");
    let pki = server::pki();
    pki.write(&tmp.0);
    // A port with nothing listening (yet).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let cfg = uplink_config(&tmp.0, addr, 100);
    let up = Uplink::start(&cfg).expect("start");
    let mut sink = up.sink();
    for i in 0..5 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    match up.finish(std::time::Duration::from_millis(500)) {
        Err(
            e @ UplinkError::Unacknowledged {
                batches: 1,
                events: 5,
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(
                msg.contains("stay in the spool") && msg.contains("connect"),
                "{msg}"
            );
        }
        other => panic!("expected a timeout with 1 batch pending, got {other:?}"),
    }
    // Next run, collector up: the old batch goes first, then the new one.
    let srv = server::start(&pki, addr, vec![]);
    let started = Instant::now();
    let up = Uplink::start(&cfg).expect("restart");
    let mut sink = up.sink();
    sink.push(EventType::Alert, alert_line(99).as_bytes());
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("drained");
    let seen = srv.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].seq, 1);
    assert_eq!(seen[0].events.len(), 5);
    assert!(seen[1].seq > 1 && seen[1].events == vec![alert_line(99)]);
    assert_eq!(
        seen[0].stream, seen[1].stream,
        "stream id changed across runs"
    );
    assert_eq!(snap.acked, 2);
    eprintln!(
        "spool figure: restart drained a 1-batch backlog + 1 new batch in {:?}",
        started.elapsed()
    );
}
