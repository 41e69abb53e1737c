//! Spool tests on a real directory: restart, torn tails, a full spool, segment deletion,
//! rejected batches, plus the append rate and recovery time figures.

mod common;

use common::scratch;
use crossline_agent::uplink::spool::{BatchKind, Spool, SpoolOptions, HEADER_LEN};
use crossline_config::agent::FsyncPolicy;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Copy the regular files of a spool directory (not the lock), as a killed process leaves them.
fn copy_files(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        if p.is_file() && e.file_name() != "lock" {
            fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
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
    let tmp = scratch("spool-restart");
    let o = opts(tmp.path(), 1 << 20, 64 << 10, FsyncPolicy::Always);
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
    let tmp = scratch("spool-torn");
    let o = opts(tmp.path(), 1 << 20, 1 << 20, FsyncPolicy::Always);
    {
        let mut s = Spool::open(o.clone()).expect("open");
        for i in 0..3 {
            s.append(BatchKind::Flows, 2, &payload(&format!("f{i}"), 2, 20), 5)
                .expect("append")
                .expect("stored");
        }
    }
    let segs = segments(tmp.path());
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
    let seg = segments(tmp.path()).pop().expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    bytes.extend_from_slice(b"garbage!");
    fs::write(&seg, &bytes).expect("write");
    let s = Spool::open(o).expect("reopen");
    assert_eq!(s.stats().torn_records, 1);
    assert_eq!(s.pending(), 1);
}

#[test]
fn a_corrupt_record_in_the_middle_ends_its_segment_but_not_the_spool() {
    let tmp = scratch("spool-corrupt");
    // Small segments: one record each.
    let o = opts(tmp.path(), 1 << 20, 64, FsyncPolicy::Never);
    {
        let mut s = Spool::open(o.clone()).expect("open");
        for i in 0..3 {
            s.append(BatchKind::Alerts, 1, &payload(&format!("c{i}"), 1, 40), 1)
                .expect("append")
                .expect("stored");
        }
    }
    let segs = segments(tmp.path());
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
        segments(tmp.path()).is_empty(),
        "acknowledged segments left behind"
    );
}

#[test]
fn full_spool_gives_flows_away_before_alerts() {
    let tmp = scratch("spool-full");
    let record = (HEADER_LEN + payload("f", 10, 50).len()) as u64;
    // Room for 20 records; segments of 4 records.
    let o = opts(tmp.path(), 20 * record, 4 * record, FsyncPolicy::Never);
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
    let mut flow_batches = 0;
    let mut last = 0;
    while let Some(b) = s.next_batch().expect("read") {
        assert!(b.seq > last, "out of order");
        last = b.seq;
        if b.kind == BatchKind::Alerts {
            alert_batches += 1;
        } else {
            flow_batches += 1;
        }
        s.ack(b.seq).expect("ack");
    }
    assert_eq!(alert_batches, alerts_stored);
    // An alert is refused only once no flow record is left to give way.
    assert!(
        st.dropped_alerts == 0 || flow_batches == 0,
        "{} alert events refused while {flow_batches} flow batches stayed on disk",
        st.dropped_alerts
    );
    eprintln!(
        "full spool of 20 records: flows kept {flows_stored}/40, alerts kept {alerts_stored}/30, \
         dropped flows {} events, dropped alerts {} events",
        st.dropped_flows, st.dropped_alerts
    );
}

#[test]
fn a_segment_is_deleted_only_when_every_batch_in_it_is_acknowledged() {
    let tmp = scratch("spool-delete");
    let record = (HEADER_LEN + payload("d", 1, 30).len()) as u64;
    let o = opts(tmp.path(), 1 << 20, 2 * record, FsyncPolicy::Always);
    let mut s = Spool::open(o.clone()).expect("open");
    for i in 0..5 {
        s.append(BatchKind::Alerts, 1, &payload("d", 1, 30), i)
            .expect("append")
            .expect("stored");
    }
    // Segments: [1,2] [3,4] [5 (open)].
    assert_eq!(segments(tmp.path()).len(), 3);
    s.ack(1).expect("ack");
    assert_eq!(
        segments(tmp.path()).len(),
        3,
        "segment deleted with batch 2 unacknowledged"
    );
    // Out-of-order acknowledgement of 4 keeps [3,4].
    s.ack(4).expect("ack");
    assert_eq!(segments(tmp.path()).len(), 3);
    s.ack(2).expect("ack");
    assert_eq!(
        segments(tmp.path()).len(),
        2,
        "fully acknowledged segment kept"
    );
    assert_eq!(s.stats().acked_seq, 2);
    s.ack(3).expect("ack");
    assert_eq!(segments(tmp.path()).len(), 1);
    assert_eq!(s.stats().acked_seq, 4);
    s.ack(5).expect("ack");
    assert!(
        segments(tmp.path()).is_empty(),
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
    let tmp = scratch("spool-reject");
    let mut s = Spool::open(opts(tmp.path(), 1 << 20, 1 << 20, FsyncPolicy::Never)).expect("open");
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
    let tmp = scratch("spool-rate");
    let batch = payload("r", 500, 400); // ~220 KB, a full batch of flow records
    let mut figures = Vec::new();
    for (name, fsync) in [
        ("never", FsyncPolicy::Never),
        ("always", FsyncPolicy::Always),
    ] {
        let dir = tmp.path().join(name);
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
    // Alert lines go to the journal one write (and, with fsync = "always", one fsync) each.
    let line = alert_line(1);
    for (name, fsync) in [
        ("never", FsyncPolicy::Never),
        ("always", FsyncPolicy::Always),
    ] {
        let dir = tmp.path().join(format!("journal-{name}"));
        let mut s = Spool::open(opts(&dir, 4 << 30, 16 << 20, fsync)).expect("open");
        let n = 500;
        let started = Instant::now();
        for _ in 0..n {
            s.journal(line.as_bytes()).expect("journal");
        }
        let secs = started.elapsed().as_secs_f64();
        figures.push(format!(
            "alert journal, fsync={name}: {:.0} alerts/s",
            f64::from(n) / secs
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
        start_full(
            pki,
            addr,
            script.into_iter().map(|s| (s, String::new())).collect(),
            usize::MAX,
        )
    }

    /// As [`start`], with the reply body of each scripted status (empty: a generic one), and
    /// `413` for any body of more than `max_events` lines (as a collector's `max_body` would).
    pub fn start_full(
        pki: &Pki,
        addr: SocketAddr,
        script: Vec<(u16, String)>,
        max_events: usize,
    ) -> Server {
        let provider = crossline_agent::uplink::client::provider();
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
                                    let events: Vec<String> =
                                        text.lines().map(String::from).collect();
                                    let (status, body) = if events.len() > max_events {
                                        (413, r#"{"error":"body is over the limit"}"#.to_string())
                                    } else {
                                        script
                                            .lock()
                                            .expect("script")
                                            .pop_front()
                                            .unwrap_or((200, String::new()))
                                    };
                                    seen.lock().expect("seen").push(Seen {
                                        stream,
                                        seq,
                                        events,
                                        status,
                                        client_cn_ok,
                                    });
                                    let reply = if !body.is_empty() {
                                        body
                                    } else if status == 200 {
                                        r#"{"status":"stored"}"#.to_string()
                                    } else {
                                        r#"{"error":"scripted"}"#.to_string()
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
        collectors: vec![format!("https://{addr}")],
        server_name: None,
        ca: dir.join("ca.pem"),
        cert: dir.join("client.pem"),
        key: dir.join("client.key"),
        spool_dir: dir.join("spool"),
        spool_max_bytes: 64 << 20,
        spool_segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
        batch_events,
        batch_bytes: 2 << 20,
        batch_interval: std::time::Duration::from_millis(50),
        send_flows: true,
        backoff_min: std::time::Duration::from_millis(20),
        backoff_max: std::time::Duration::from_millis(200),
        drain_timeout: std::time::Duration::from_secs(20),
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
    let tmp = scratch("spool-client");
    let pki = server::pki();
    pki.write(tmp.path());
    // Replies: 503, 429, then 200 for batch 1; 400 naming line 2 for batch 2 (that event is
    // poison, the other two are not); 200 for the rest.
    let srv = server::start_full(
        &pki,
        "127.0.0.1:0".parse().expect("addr"),
        vec![
            (503, String::new()),
            (429, String::new()),
            (200, String::new()),
            (
                400,
                r#"{"error":"line 2: unknown field `x`; expected a crossline event"}"#.into(),
            ),
        ],
        usize::MAX,
    );
    let up = Uplink::start(&uplink_config(tmp.path(), srv.addr, 3)).expect("start uplink");
    let mut sink = up.sink();
    for i in 0..9 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen = srv.seen.lock().expect("seen").clone();
    let seqs: Vec<(u64, u16, usize)> = seen
        .iter()
        .map(|s| (s.seq, s.status, s.events.len()))
        .collect();
    assert_eq!(
        seqs,
        vec![
            (1, 503, 3),
            (1, 429, 3),
            (1, 200, 3),
            (2, 400, 3),
            (2, 200, 2),
            (3, 200, 3)
        ],
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|s| s.client_cn_ok && s.stream == seen[0].stream && s.stream != 0));
    assert_eq!(
        seen[2].events[0],
        alert_line(0),
        "payload not delivered intact"
    );
    assert_eq!(
        seen[4].events,
        vec![alert_line(3), alert_line(5)],
        "the batch is resent without the refused line only"
    );
    assert_eq!(
        (snap.acked, snap.rejected, snap.retried, snap.lines_rejected),
        (3, 0, 2, 1),
        "{snap:?}"
    );
    assert_eq!(snap.spool.unacked_batches, 0);
    let rejected: Vec<_> = fs::read_dir(tmp.path().join("spool/rejected"))
        .expect("rejected dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(rejected.len(), 2, "event + reply expected: {rejected:?}");
    let batch = rejected
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".ndjson"))
        .expect("event copy");
    assert_eq!(
        fs::read_to_string(batch).expect("read"),
        format!("{}\n", alert_line(4))
    );
    let reply = rejected
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".reply.txt"))
        .expect("reply copy");
    assert!(fs::read_to_string(reply)
        .expect("read")
        .contains("line 2: unknown field"));
}

#[test]
fn several_collectors_fail_over_with_the_same_stream_and_sequence() {
    use crossline_agent::uplink::Uplink;
    use crossline_config::event::EventType;
    let tmp = scratch("spool-failover");
    let pki = server::pki();
    pki.write(tmp.path());
    // First in the list: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    // Second: stores batch 1, answers 503 to batch 2. Third: stores everything.
    let a = server::start(&pki, "127.0.0.1:0".parse().expect("addr"), vec![200, 503]);
    let b = server::start(&pki, "127.0.0.1:0".parse().expect("addr"), vec![]);
    let mut cfg = uplink_config(tmp.path(), dead, 3);
    cfg.collectors = [dead, a.addr, b.addr]
        .iter()
        .map(|addr| format!("https://{addr}"))
        .collect();
    let up = Uplink::start(&cfg).expect("start uplink");
    let handle = up.handle();
    let mut sink = up.sink();
    for i in 0..9 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen_a = a.seen.lock().expect("seen").clone();
    let seen_b = b.seen.lock().expect("seen").clone();
    let by = |seen: &[server::Seen]| -> Vec<(u64, u16)> {
        seen.iter().map(|s| (s.seq, s.status)).collect()
    };
    assert_eq!(by(&seen_a), vec![(1, 200), (2, 503)], "{seen_a:?}");
    // Batch 2 moved on with its sequence, stream and events; the uplink stays on the third.
    assert_eq!(by(&seen_b), vec![(2, 200), (3, 200)], "{seen_b:?}");
    let stream = seen_a[0].stream;
    assert!(stream != 0 && seen_a.iter().chain(&seen_b).all(|s| s.stream == stream));
    assert_eq!(seen_a[1].events, seen_b[0].events);
    assert_eq!(
        (snap.acked, snap.retried, snap.failovers, snap.current),
        (3, 2, 2, 2),
        "{snap:?}"
    );
    assert_eq!(
        handle.collectors(),
        [dead, a.addr, b.addr]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
}

#[test]
fn forbidden_and_other_refusals_are_retried_not_dropped() {
    use crossline_agent::uplink::Uplink;
    use crossline_config::event::EventType;
    let tmp = scratch("spool-forbidden");
    let pki = server::pki();
    pki.write(tmp.path());
    // The collector's gateway list is wrong for a while (403), then a 400 that names no line
    // (a header problem), then it is fixed.
    let srv = server::start_full(
        &pki,
        "127.0.0.1:0".parse().expect("addr"),
        vec![
            (
                403,
                r#"{"error":"the client certificate names no gateway listed in the collector config"}"#.into(),
            ),
            (403, String::new()),
            (403, String::new()),
            (400, r#"{"error":"missing header x-crossline-stream"}"#.into()),
        ],
        usize::MAX,
    );
    let up = Uplink::start(&uplink_config(tmp.path(), srv.addr, 4)).expect("start uplink");
    let mut sink = up.sink();
    for i in 0..8 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    drop(sink);
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen = srv.seen.lock().expect("seen").clone();
    let stored: Vec<String> = seen
        .iter()
        .filter(|s| s.status == 200)
        .flat_map(|s| s.events.clone())
        .collect();
    assert_eq!(
        stored,
        (0..8).map(alert_line).collect::<Vec<_>>(),
        "every event stored once, in order"
    );
    assert_eq!(
        (snap.acked, snap.rejected, snap.refused, snap.retried),
        (2, 0, 4, 4),
        "{snap:?}"
    );
    assert!(
        !tmp.path().join("spool/rejected").exists(),
        "nothing set aside"
    );
}

#[test]
fn too_large_batches_are_split_until_they_fit_and_each_event_is_stored_once() {
    use crossline_agent::uplink::Uplink;
    use crossline_config::event::EventType;
    let tmp = scratch("spool-split");
    let pki = server::pki();
    pki.write(tmp.path());
    // A collector whose max_body holds 2 events: batches of 8 must be split twice.
    let srv = server::start_full(&pki, "127.0.0.1:0".parse().expect("addr"), vec![], 2);
    let up = Uplink::start(&uplink_config(tmp.path(), srv.addr, 8)).expect("start uplink");
    let mut sink = up.sink();
    for i in 0..16 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    drop(sink);
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen = srv.seen.lock().expect("seen").clone();
    let mut stored: Vec<String> = seen
        .iter()
        .filter(|s| s.status == 200)
        .flat_map(|s| s.events.clone())
        .collect();
    stored.sort();
    let mut expected: Vec<String> = (0..16).map(alert_line).collect();
    expected.sort();
    assert_eq!(stored, expected, "each event stored exactly once");
    let mut stored_seqs: Vec<u64> = seen
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.seq)
        .collect();
    let n = stored_seqs.len();
    stored_seqs.sort_unstable();
    stored_seqs.dedup();
    assert_eq!(stored_seqs.len(), n, "a sequence stored twice: {seen:?}");
    let refused: Vec<u64> = seen
        .iter()
        .filter(|s| s.status == 413)
        .map(|s| s.seq)
        .collect();
    assert!(
        refused.iter().all(|q| !stored_seqs.contains(q)),
        "a split batch's own sequence was reused"
    );
    // 2 batches of 8 -> 4 of 4 -> 8 of 2.
    assert_eq!((snap.split, snap.rejected, n), (6, 0, 8), "{snap:?}");
    assert!(seen.iter().all(|s| s.events.len() <= 8));
}

#[test]
fn a_split_survives_a_crash_between_its_parts_and_the_acknowledgement() {
    let tmp = scratch("spool-split-crash");
    let o = opts(tmp.path(), 1 << 20, 1 << 20, FsyncPolicy::Always);
    let original = payload("s", 4, 10);
    {
        let mut s = Spool::open(o.clone()).expect("open");
        s.append(BatchKind::Flows, 4, &original, 1)
            .expect("append")
            .expect("stored");
        let b = s.next_batch().expect("read").expect("pending");
        let parts = s.split(&b, 2).expect("split").expect("two parts");
        assert_eq!(parts, [2, 3]);
    }
    // Complete parts on disk: the original is not sent again, the parts are, in full.
    let mut s = Spool::open(o.clone()).expect("reopen");
    let mut sent = Vec::new();
    while let Some(b) = s.next_batch().expect("read") {
        assert_ne!(b.seq, 1, "the split batch was resent as well as its parts");
        sent.extend_from_slice(&b.payload);
        s.ack(b.seq).expect("ack");
    }
    assert_eq!(sent, original);
    drop(s);

    // A crash in the middle of writing the parts: the second part is torn. The batch is sent
    // whole, the first part never.
    let tmp2 = scratch("spool-split-torn");
    let o = opts(tmp2.path(), 1 << 20, 1 << 20, FsyncPolicy::Always);
    {
        let mut s = Spool::open(o.clone()).expect("open");
        s.append(BatchKind::Alerts, 4, &original, 1)
            .expect("append")
            .expect("stored");
        // Keep batch 1 pending by splitting a copy of it without acknowledging: simulate the
        // crash by cutting the newest segment after the split wrote its parts.
        let b = s.next_batch().expect("read").expect("pending");
        s.split(&b, 2).expect("split").expect("two parts");
    }
    // Put batch 1 back (as if the crash came before its acknowledgement was recorded) and tear
    // the second part.
    let state = tmp2.path().join("state");
    let text = fs::read_to_string(&state).expect("state");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("acked=") {
                "acked=0".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&state, text + "\n").expect("write state");
    let segs = segments(tmp2.path());
    // The original and the parts went to the same alert segment? Either way, cut the last.
    let last = segs.last().expect("a segment");
    let len = fs::metadata(last).expect("stat").len();
    let f = fs::OpenOptions::new().write(true).open(last).expect("open");
    f.set_len(len - 3).expect("truncate");
    drop(f);
    let mut s = Spool::open(o).expect("reopen");
    let mut sent = Vec::new();
    let mut seqs = Vec::new();
    while let Some(b) = s.next_batch().expect("read") {
        seqs.push(b.seq);
        sent.extend_from_slice(&b.payload);
        s.ack(b.seq).expect("ack");
    }
    assert_eq!(seqs, vec![1], "only the original is sent: {seqs:?}");
    assert_eq!(sent, original);
}
#[test]
fn collector_down_times_out_keeps_the_spool_and_the_next_run_sends_it() {
    use crossline_agent::uplink::{Uplink, UplinkError};
    use crossline_config::event::EventType;
    let tmp = scratch("spool-down");
    let pki = server::pki();
    pki.write(tmp.path());
    // A port with nothing listening (yet).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let cfg = uplink_config(tmp.path(), addr, 100);
    let up = Uplink::start(&cfg).expect("start");
    let mut sink = up.sink();
    for i in 0..5 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    // The spool stays locked while anything holds it open (the sink too).
    drop(sink);
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

#[test]
fn check_refuses_batch_settings_over_the_largest_batch_body() {
    let tmp = scratch("spool-batch-bytes");
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/registry.toml");
    let write = |batch_bytes: &str| -> PathBuf {
        let p = tmp.path().join("agent.toml");
        fs::write(
            &p,
            format!(
                "gateway = \"gw-bj-01\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\n\
                 registry = \"{}\"\n\n[uplink]\ncollector = \"https://127.0.0.1:9470\"\n\
                 ca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\nbatch_bytes = \"{batch_bytes}\"\n",
                registry.display()
            ),
        )
        .expect("write config");
        p
    };
    let today = crossline_config::today_beijing();
    let cfg = crossline_config::load_agent_config(&write("8 MiB"), today)
        .expect("8 MiB is the largest allowed")
        .0;
    assert_eq!(
        cfg.uplink.map(|u| u.batch_bytes),
        Some(crossline_config::limits::MAX_BATCH_BODY)
    );
    let e = crossline_config::load_agent_config(&write("9 MiB"), today).expect_err("9 MiB");
    let msg = e.to_string();
    assert!(
        msg.contains("uplink.batch_bytes: 9437184 bytes, expected 1 KiB to 8388608 bytes"),
        "{msg}"
    );
    // The default.
    let p = tmp.path().join("agent.toml");
    let text = fs::read_to_string(&p).expect("read");
    fs::write(&p, text.replace("batch_bytes = \"9 MiB\"\n", "")).expect("write");
    let cfg = crossline_config::load_agent_config(&p, today)
        .expect("default")
        .0;
    assert_eq!(cfg.uplink.map(|u| u.batch_bytes), Some(2 << 20));
}

#[test]
fn no_batch_is_built_larger_than_batch_bytes() {
    use crossline_agent::uplink::Uplink;
    use crossline_config::event::EventType;
    let tmp = scratch("spool-cap");
    let pki = server::pki();
    pki.write(tmp.path());
    let srv = server::start(&pki, "127.0.0.1:0".parse().expect("addr"), vec![]);
    let mut cfg = uplink_config(tmp.path(), srv.addr, 100_000);
    cfg.batch_bytes = 4096;
    let up = Uplink::start(&cfg).expect("start uplink");
    let mut sink = up.sink();
    for i in 0..200 {
        sink.push(EventType::Alert, alert_line(i).as_bytes());
    }
    drop(sink);
    up.finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen = srv.seen.lock().expect("seen").clone();
    let total: usize = seen.iter().map(|s| s.events.len()).sum();
    assert_eq!(total, 200);
    for s in &seen {
        let body: usize = s.events.iter().map(|e| e.len() + 1).sum();
        assert!(body <= 4096, "batch {} of {body} bytes", s.seq);
    }
    assert!(seen.len() >= 200 * (alert_line(0).len() + 1) / 4096);
}

#[test]
fn an_event_the_collector_would_refuse_is_dropped_alone_and_counted() {
    use crossline_agent::sink::EventSink;
    use crossline_agent::uplink::validate::Reason;
    use crossline_agent::uplink::Uplink;
    use crossline_config::event::{format_timestamp_micros, parse_timestamp_micros, Event};
    let tmp = scratch("spool-invalid");
    let pki = server::pki();
    pki.write(tmp.path());
    let srv = server::start(&pki, "127.0.0.1:0".parse().expect("addr"), vec![]);
    let up = Uplink::start(&uplink_config(tmp.path(), srv.addr, 100)).expect("start uplink");
    let mut sink = up.sink();
    // What a pcapng with if_tsoffset = -2^62 produced: year -290308.
    let absurd = format_timestamp_micros(-(1i64 << 62));
    assert!(
        parse_timestamp_micros(&absurd).is_none(),
        "the collector's parser reads {absurd}: test is moot"
    );
    let mut events = Vec::new();
    for i in 0..6 {
        let mut e: Event = serde_json::from_str(&alert_line(i)).expect("alert");
        match i {
            2 => e.timestamp = absurd.clone(),
            3 => e.timestamp = "2107-01-01T00:00:00.000Z".to_string(),
            4 => {
                if let Some(a) = e.alert.as_mut() {
                    a.bytes = u64::MAX;
                }
            }
            _ => {}
        }
        events.push(e);
    }
    for e in &events {
        let line = serde_json::to_vec(e).expect("serialise");
        sink.write(e, &line).expect("write");
    }
    sink.finish().expect("finish");
    drop(sink);
    let snap = up
        .finish(std::time::Duration::from_secs(20))
        .expect("all acknowledged");
    let seen = srv.seen.lock().expect("seen").clone();
    let stored: Vec<String> = seen.iter().flat_map(|s| s.events.clone()).collect();
    let line = |i: usize| serde_json::to_string(&events[i]).expect("serialise");
    assert_eq!(
        stored,
        vec![line(0), line(1), line(5)],
        "the valid events of the batch must all arrive"
    );
    assert!(seen.iter().all(|s| s.status == 200));
    assert_eq!(snap.invalid[Reason::TimestampUnparsable.index()], 1);
    assert_eq!(snap.invalid[Reason::TimestampOutOfRange.index()], 1);
    assert_eq!(snap.invalid[Reason::NumberOutOfRange.index()], 1);
    assert_eq!(snap.rejected, 0);
}

#[test]
fn journaled_alerts_survive_a_kill_and_are_never_spooled_twice() {
    let tmp = scratch("spool-journal");
    let o = opts(tmp.path(), 1 << 20, 1 << 20, FsyncPolicy::Never);
    let lines = [alert_line(1), alert_line(2), alert_line(3)];
    {
        let mut s = Spool::open(o.clone()).expect("open");
        // Batch 1 sealed normally (its lines went through the journal first).
        s.journal(lines[0].as_bytes()).expect("journal");
        s.append_journaled(1, format!("{}\n", lines[0]).as_bytes(), 1)
            .expect("append")
            .expect("stored");
        // Two more alerts handed over, their batch not sealed yet: the process is killed.
        s.journal(lines[1].as_bytes()).expect("journal");
        s.journal(lines[2].as_bytes()).expect("journal");
        // What a SIGKILL leaves: the files as they are now (the process keeps the lock).
        copy_files(tmp.path(), &tmp.path().join("killed"));
    }
    let o = opts(
        &tmp.path().join("killed"),
        1 << 20,
        1 << 20,
        FsyncPolicy::Never,
    );
    // A line cut by the kill is not sent.
    let journal = tmp.path().join("killed/alerts.journal");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("journal");
    std::io::Write::write_all(&mut f, b"{\"timestamp\":\"2026-03-02T09:").expect("cut line");
    drop(f);
    let mut s = Spool::open(o.clone()).expect("reopen after the kill");
    assert_eq!(s.stats().journal_recovered, 2);
    let mut got = Vec::new();
    while let Some(b) = s.next_batch().expect("read") {
        got.push(String::from_utf8(b.payload.clone()).expect("utf8"));
        s.ack(b.seq).expect("ack");
    }
    assert_eq!(
        got,
        vec![
            format!("{}\n", lines[0]),
            format!("{}\n{}\n", lines[1], lines[2])
        ]
    );
    assert!(!journal.exists(), "journal left behind after recovery");

    // A kill between the append of a batch and the truncation of its journal: the journal
    // holds exactly the newest batch, which must not be spooled a second time.
    s.journal(lines[0].as_bytes()).expect("journal");
    let payload = format!("{}\n", lines[0]);
    s.append(BatchKind::Alerts, 1, payload.as_bytes(), 5)
        .expect("append")
        .expect("stored");
    copy_files(&tmp.path().join("killed"), &tmp.path().join("killed-2"));
    drop(s);
    let mut s = Spool::open(opts(
        &tmp.path().join("killed-2"),
        1 << 20,
        1 << 20,
        FsyncPolicy::Never,
    ))
    .expect("reopen");
    assert_eq!(s.stats().journal_recovered, 0);
    assert_eq!(s.pending(), 1, "the batch was spooled twice");
    let b = s.next_batch().expect("read").expect("pending");
    assert_eq!(b.payload, payload.as_bytes());
}

#[test]
fn an_in_memory_spool_works_without_touching_the_disk() {
    let tmp = scratch("spool-memory");
    let dir = tmp.path().join("never-created");
    let mut s = Spool::in_memory(opts(&dir, 1 << 30, 4096, FsyncPolicy::Always));
    assert!(s.is_in_memory() && s.stats().in_memory);
    assert_eq!(
        s.max_bytes(),
        crossline_agent::uplink::spool::IN_MEMORY_MAX_BYTES,
        "an in-memory spool must be bounded below spool_max_bytes"
    );
    for i in 0..10 {
        s.journal(alert_line(i).as_bytes()).expect("journal");
        s.append_journaled(1, format!("{}\n", alert_line(i)).as_bytes(), 1)
            .expect("append")
            .expect("stored");
    }
    s.append(BatchKind::Flows, 4, &payload("f", 4, 10), 1)
        .expect("append")
        .expect("stored");
    let first = s.next_batch().expect("read").expect("pending");
    assert_eq!(first.payload, format!("{}\n", alert_line(0)).as_bytes());
    s.ack(first.seq).expect("ack");
    let mut rest = 0;
    let mut split = false;
    while let Some(b) = s.next_batch().expect("read") {
        if b.kind == BatchKind::Flows && !split {
            let parts = s.split(&b, 2).expect("split").expect("parts");
            assert!(parts[0] > b.seq);
            split = true;
            continue;
        }
        rest += b.events;
        s.ack(b.seq).expect("ack");
    }
    assert_eq!(rest, 9 + 4, "9 alerts and the 4 flows of the split batch");
    assert!(
        !dir.exists(),
        "an in-memory spool wrote to {}",
        dir.display()
    );
}
