//! Ingest load benchmark: 50 simulated gateways (50 client certificates) send batches of events
//! over mutual TLS to a collector on loopback; every batch is committed durably before its
//! acknowledgement. Prints events/s and the p50/p99 latency from batch sent to acknowledgement,
//! next to a baseline measured in the same run: the same batches committed straight into a
//! `SqliteStore` (same durability, no network, no TLS, no JSON parsing), so the ratio tells what
//! the network path costs on this machine.
//!
//! `cargo run --release -p crossline-collector --example ingest_load -- [GATEWAYS] [BATCHES] [EVENTS]`
//! (defaults 50 gateways, 40 batches each, 200 events per batch).
//!
//! `CROSSLINE_LOAD_DATABASE=postgresql://user@host:port/db` (password from `PGPASSWORD`) stores
//! into PostgreSQL instead (an empty database, or one this benchmark used before: every run uses
//! new streams), and `CROSSLINE_LOAD_REPLICAS=N` runs N collectors on it, the gateways spread
//! over them round-robin. The baseline stays SQLite.

use anyhow::Context;
use bytes::Bytes;
use crossline_collector::store::{Batch, BatchEvent, SqliteStore, Store};
use crossline_collector::{pki, server, util};
use http_body_util::{BodyExt, Full};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One event as an agent writes it (Suricata's EVE layout): every 50th an alert, else a flow.
fn event_line(gateway: &str, n: u64) -> String {
    use crossline_config::event::{
        format_eve_timestamp, Alert, AlertKind, Direction, Event, EventType, FlowRecord, TlsMeta,
        Verdict, VerdictStatus,
    };
    let now = format_eve_timestamp(util::now_ms().saturating_mul(1000));
    let alert = n.checked_rem(50) == Some(0);
    let kind = if alert {
        EventType::Alert
    } else {
        EventType::Flow
    };
    let mut e = Event::new(kind, now, gateway.to_string());
    e.flow_id = Some(n);
    e.proto = Some("TCP".into());
    if alert {
        (e.src_ip, e.src_port) = (Some("10.30.1.9".into()), Some(40000));
        (e.dest_ip, e.dest_port) = (Some("203.0.113.50".into()), Some(22));
        e.alert = Some(Alert {
            recipient: Some(format!("203.0.113.{}", n % 7)),
            bytes: 18_200_000,
            ..Alert::new(
                AlertKind::UnfiledExport,
                "10.30.1.9 sent 18.2 MB to 203.0.113.50:22".into(),
            )
        });
    } else {
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
            bytes_toserver: 4311,
            bytes_toclient: 9120,
            start: "2026-03-02T09:14:00.000000+0000".into(),
            end: "2026-03-02T09:14:07.118000+0000".into(),
            age: 7,
            state: Some("closed".into()),
            reason: "fin".into(),
            ..FlowRecord::default()
        });
        e.direction = Some(Direction::Export);
        e.export_bytes = Some(4311);
        e.verdict = Some(Verdict {
            status: VerdictStatus::Filed,
            scenario: Some("SA-2026-0001".into()),
            enterprise: Some("acme-pharma".into()),
            name_source: None,
            ech: false,
            exclude: None,
        });
    }
    serde_json::to_string(&e).unwrap_or_default()
}

fn batch_body(gateway: &str, seq: u64, events: u64) -> String {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&event_line(gateway, seq * 100_000 + i));
        s.push('\n');
    }
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn client_config(pki: &Path, gateway: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = crossline_collector::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join("ca.pem"))? {
        roots.add(c?)?;
    }
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.join(format!("{gateway}.pem")))?
            .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(pki.join(format!("{gateway}.key")))?;
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?,
    ))
}

async fn run_gateway(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    gateway: String,
    batches: u64,
    events: u64,
) -> anyhow::Result<Vec<Duration>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let stream: u64 = rand::random();
    let mut latencies = Vec::with_capacity(batches as usize);
    for seq in 1..=batches {
        let body = Bytes::from(batch_body(&gateway, seq, events));
        let req = hyper::Request::post("/v1/events")
            .header("host", "localhost")
            .header("x-crossline-stream", stream.to_string())
            .header("x-crossline-sequence", seq.to_string())
            .header("content-type", "application/x-ndjson")
            .body(Full::new(body))?;
        let t0 = Instant::now();
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        latencies.push(t0.elapsed());
        anyhow::ensure!(
            status == 200 && bytes.starts_with(b"{\"events\""),
            "{gateway} batch {seq}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(latencies)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("arguments are numbers"))
        .collect::<anyhow::Result<_>>()?;
    let gateways = args.first().copied().unwrap_or(50);
    let batches = args.get(1).copied().unwrap_or(40);
    let events = args.get(2).copied().unwrap_or(200);
    let total_events = gateways * batches * events;

    let dir = std::env::temp_dir().join(format!("crossline-ingest-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pki_dir = dir.join("pki");
    pki::init(&pki_dir, &[], 30, true)?;
    let names: Vec<String> = (0..gateways).map(|i| format!("gw-load-{i:02}")).collect();
    for n in &names {
        pki::issue(&pki_dir, n, 30, true)?;
    }
    let list = names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg_path = dir.join("collector.toml");
    let database = std::env::var("CROSSLINE_LOAD_DATABASE")
        .map(|u| format!("database = {u:?}\n"))
        .unwrap_or_default();
    let replicas: usize = std::env::var("CROSSLINE_LOAD_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    std::fs::write(
        &cfg_path,
        format!(
            "listen = \"127.0.0.1:0\"\napi_listen = \"127.0.0.1:0\"\ngateways = [{list}]\n{database}\
             [limits]\nevents_per_second_per_gateway = 1000000\nburst = 1000000\n\
             [retention]\nflows = \"100000d\"\n"
        ),
    )?;
    let config = Arc::new(crossline_config::collector::load_collector(&cfg_path)?);

    // Baseline: the same batches straight into the store, one durable transaction each.
    let base_cfg = Arc::new({
        let mut c = (*config).clone();
        c.database = dir.join("baseline.db");
        c
    });
    let store = SqliteStore::open(&base_cfg.database, base_cfg.clone())?;
    let base_batches = batches.min(10);
    let prepared: Vec<Arc<Batch>> = names
        .iter()
        .flat_map(|g| (1..=base_batches).map(move |s| (g.clone(), s)))
        .map(|(g, seq)| {
            let evs = batch_body(&g, seq, events)
                .lines()
                .map(|l| {
                    let event: crossline_config::event::Event = serde_json::from_str(l)?;
                    let ts_ms = util::parse_rfc3339_ms(&event.timestamp).unwrap_or(0);
                    Ok(BatchEvent {
                        event,
                        ts_ms,
                        json: l.to_string(),
                        time_flag: None,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(Arc::new(Batch {
                gateway: g,
                stream: 1,
                sequence: seq,
                received_at_ms: util::now_ms(),
                events: evs,
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let t0 = Instant::now();
    for b in &prepared {
        store.ingest(b.clone())?;
    }
    let base_secs = t0.elapsed().as_secs_f64();
    let base_rate = (prepared.len() as u64 * events) as f64 / base_secs;
    drop(store);

    // The collector in this process, the load generator on the same runtime's threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    let mut ingest_addrs = Vec::new();
    for _ in 0..replicas {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let cfg2 = config.clone();
        servers.push(rt.spawn(async move {
            server::run(
                cfg2,
                crossline_collector::util::Clock::system(),
                async {
                    let _ = stop_rx.await;
                },
                move |b| {
                    let _ = addr_tx.send(b);
                },
            )
            .await
        }));
        stops.push(stop_tx);
        let bound = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .context("collector did not start")?;
        ingest_addrs.push(bound.ingest);
    }
    let configs: Vec<_> = names
        .iter()
        .map(|n| client_config(&pki_dir, n))
        .collect::<anyhow::Result<_>>()?;
    let t0 = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let mut tasks = Vec::new();
        for (i, (n, c)) in names.iter().zip(configs).enumerate() {
            tasks.push(tokio::spawn(run_gateway(
                ingest_addrs[i % ingest_addrs.len()],
                c,
                n.clone(),
                batches,
                events,
            )));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        anyhow::Ok(all)
    })?;
    let secs = t0.elapsed().as_secs_f64();
    for s in stops {
        let _ = s.send(());
    }
    for s in servers {
        let _ = rt.block_on(s);
    }

    let mut sorted = latencies;
    sorted.sort();
    let rate = total_events as f64 / secs;
    let backend = if config.postgres.is_some() {
        format!("PostgreSQL, {replicas} replica(s)")
    } else {
        "SQLite".to_string()
    };
    println!("ingest_load: {gateways} gateways x {batches} batches x {events} events over mTLS, durable commit per batch, store {backend}");
    println!(
        "  end to end : {total_events} events in {secs:.2} s = {rate:.0} events/s ({:.0} batches/s)",
        sorted.len() as f64 / secs
    );
    println!(
        "  latency sent->ack: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&sorted, 0.50).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        percentile(&sorted, 1.0).as_secs_f64() * 1e3
    );
    println!(
        "  baseline   : same batches straight into SqliteStore::ingest, one thread: {base_rate:.0} events/s ({} batches)",
        prepared.len()
    );
    println!(
        "  ratio      : end to end / baseline = {:.2}",
        rate / base_rate
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
