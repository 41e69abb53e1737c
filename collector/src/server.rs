//! The running collector: the mutual-TLS ingest listener, the API/metrics listener, the
//! notification worker and the maintenance loop (auto-resolve, retention), with graceful shutdown.
//! Each listener has a connection cap with slots kept for known gateways ([`crate::conn`]).

use crate::api::Api;
use crate::conn::{Admission, ConnLimit};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::store::{Store, StoreError};
use crate::tls::{self, TlsError};
use crate::util::now_ms;
use crossline_config::collector::CollectorConfig;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database.
    #[error("database {path}: {source}")]
    Store {
        /// Database file.
        path: String,
        /// The error.
        source: StoreError,
    },
    /// The task opening the database failed.
    #[error("opening the database: {0}")]
    StoreTask(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Metrics registration failed (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Ingest listener.
    pub ingest: SocketAddr,
    /// API listener.
    pub api: SocketAddr,
}

/// Serve connections from `listener` until shutdown; `conn_guard` is held by every connection so
/// the caller can wait for them to finish. `gateways`: the configured gateway ids whose
/// successful mutual-TLS handshakes make their peer address known to `limit`.
#[allow(clippy::too_many_arguments)]
async fn serve<S, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
    conn_guard: mpsc::Sender<()>,
    limit: Arc<ConnLimit>,
    gateways: Arc<Vec<String>>,
    make_service: S,
) where
    S: Fn(Option<Arc<str>>) -> F + Clone + Send + Sync + 'static,
    F: Fn(
            hyper::Request<hyper::body::Incoming>,
        ) -> std::pin::Pin<
            Box<
                dyn Future<
                        Output = Result<
                            hyper::Response<http_body_util::Full<bytes::Bytes>>,
                            std::convert::Infallible,
                        >,
                    > + Send,
            >,
        > + Send
        + Sync
        + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut slot = match limit.admit(peer.ip(), std::time::Instant::now()) {
            Admission::Admit(s) => s,
            Admission::Refuse => {
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let limit = limit.clone();
        let gateways = gateways.clone();
        let acceptor = acceptor.clone();
        let mut sd = shutdown.clone();
        let guard = conn_guard.clone();
        let make_service = make_service.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(75))
                    .keep_alive(true);
                b
            };
            match acceptor {
                Some(acceptor) => {
                    let evict = slot.evict.clone();
                    let handshake =
                        tokio::time::timeout(slot.handshake_timeout, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                slot.count("handshake_failed");
                                tracing::warn!(
                                    "TLS handshake from {peer} refused: {e}"
                                );
                                return;
                            }
                            Err(_) => {
                                slot.count("handshake_timeout");
                                return;
                            }
                        },
                        _ = evict.notified() => return,
                    };
                    // Only a client certificate makes a connection worth protecting: on the API
                    // listener (server-only TLS) anyone can finish a handshake, so its
                    // connections stay evictable like plain HTTP ones.
                    if !gateways.is_empty() && !slot.establish() {
                        return;
                    }
                    let gateway: Option<Arc<str>> = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(tls::gateway_of)
                        .map(Arc::from);
                    if gateway
                        .as_deref()
                        .is_some_and(|g| gateways.iter().any(|x| x == g))
                    {
                        limit.remember(peer.ip(), std::time::Instant::now());
                    }
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service_fn(make_service(gateway)));
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = evict.notified() => {}
                        _ = sd.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                        }
                    }
                }
                None => {
                    // Plain HTTP: no handshake tells a known client, so the connection stays
                    // evictable for its whole life.
                    let evict = slot.evict.clone();
                    let conn =
                        builder.serve_connection(TokioIo::new(tcp), service_fn(make_service(None)));
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = evict.notified() => {}
                        _ = sd.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                        }
                    }
                }
            }
        });
    }
}

/// Open the store the configuration names: SQLite by default, PostgreSQL for a
/// `postgresql://` URL. Blocking (run it on a blocking thread).
fn open_configured(config: Arc<CollectorConfig>) -> Result<Arc<dyn Store>, StoreError> {
    match &config.postgres {
        Some(db) => Ok(Arc::new(crate::pg::PgStore::open(db, config.clone())?)),
        None => Ok(Arc::new(crate::store::SqliteStore::open(
            &config.database,
            config.clone(),
        )?)),
    }
}

/// Open the configured store on a blocking thread.
async fn open_store(config: &Arc<CollectorConfig>) -> Result<Arc<dyn Store>, ServerError> {
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || open_configured(cfg))
        .await
        .map_err(|e| ServerError::StoreTask(e.to_string()))?
        .map_err(|source| ServerError::Store {
            path: config.database.display().to_string(),
            source,
        })
}

/// Warn when the open-file limit is below what the connection limits need.
fn warn_open_files(config: &CollectorConfig) {
    if let Some(limit) = open_file_limit() {
        // Two listeners, the database (WAL: three files per connection) and notifier sockets.
        let need = 2 * config.limits.max_connections as u64 + 64;
        if limit < need {
            tracing::warn!(
                "open-file limit {limit} is below what [limits] max_connections = {} needs on two listeners (~{need}); a connection flood can exhaust it (raise `ulimit -n` or lower max_connections)",
                config.limits.max_connections
            );
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// The configuration file of `running` read again (SIGHUP); None, logged, when it is refused.
async fn reload(running: &CollectorConfig) -> Option<CollectorConfig> {
    let path = running.path.clone();
    let loaded =
        tokio::task::spawn_blocking(move || crossline_config::collector::load_collector(&path))
            .await;
    match loaded {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::error!(
                "{} rejected on SIGHUP, keeping the running configuration:\n{e}",
                running.path.display()
            );
            None
        }
        Err(e) => {
            tracing::error!("configuration reload task failed: {e}");
            None
        }
    }
}

/// Serve the ingest listener (mutual TLS) with `ingest`.
fn spawn_ingest(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: watch::Receiver<bool>,
    conn_guard: mpsc::Sender<()>,
    ingest: Arc<Ingest>,
    config: &CollectorConfig,
    metrics: Arc<Metrics>,
) {
    let make_ingest = move |gw: Option<Arc<str>>| {
        let ingest = ingest.clone();
        move |req| {
            let ingest = ingest.clone();
            let gw = gw.clone();
            Box::pin(ingest.handle(gw, req)) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>
        }
    };
    let l = &config.limits;
    tokio::spawn(serve(
        listener,
        Some(tls),
        shutdown,
        conn_guard,
        ConnLimit::new(
            "ingest",
            l.max_connections,
            l.tls_handshake_timeout,
            metrics,
        ),
        Arc::new(config.gateways.clone()),
        make_ingest,
    ));
}

/// Run the collector until `stop` completes. `on_bound` is called once the listeners are bound.
/// The API's handlers read `clock` (`main` passes the system clock).
pub async fn run(
    config: Arc<CollectorConfig>,
    clock: crate::util::Clock,
    stop: impl Future<Output = ()>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), ServerError> {
    let ingest_tls = tls::ingest_server_config(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
    let api_tls = match &config.api_tls {
        Some(t) => Some(tls::api_server_config(&t.cert, &t.key)?),
        None => None,
    };
    let store = open_store(&config).await?;
    let metrics = Arc::new(Metrics::new(&config)?);
    warn_open_files(&config);
    let ingest_listener = bind(config.listen).await?;
    let api_listener = bind(config.api_listen).await?;
    let bound = Bound {
        ingest: ingest_listener.local_addr().unwrap_or(config.listen),
        api: api_listener.local_addr().unwrap_or(config.api_listen),
    };

    let (sd_tx, sd_rx) = watch::channel(false);
    let (guard_tx, guard_rx) = mpsc::channel::<()>(1);

    let ingest = Arc::new(Ingest::new(store.clone(), metrics.clone(), config.clone()));
    let ingest_for_reload = ingest.clone();
    let metrics_for_reload = metrics.clone();
    spawn_ingest(
        ingest_listener,
        ingest_tls,
        sd_rx.clone(),
        guard_tx.clone(),
        ingest,
        &config,
        metrics.clone(),
    );
    let l = &config.limits;

    // The API in force; a SIGHUP replaces it (tokens, registry, gateway metadata) and each
    // request uses the one current when it arrives.
    let new_api = {
        let (store, metrics) = (store.clone(), metrics.clone());
        move |c: Arc<CollectorConfig>| {
            Arc::new(Api::new(store.clone(), metrics.clone(), c, clock.clone()))
        }
    };
    let api_cell = Arc::new(std::sync::RwLock::new(new_api(config.clone())));
    let api_for_reload = api_cell.clone();
    let make_api = move |_gw: Option<Arc<str>>| {
        let cell = api_cell.clone();
        move |req| {
            let api = match cell.read() {
                Ok(g) => Arc::clone(&g),
                Err(p) => Arc::clone(&p.into_inner()),
            };
            Box::pin(api.handle(req)) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>
        }
    };
    tokio::spawn(serve(
        api_listener,
        api_tls,
        sd_rx.clone(),
        guard_tx.clone(),
        ConnLimit::new(
            "api",
            l.max_connections,
            l.tls_handshake_timeout,
            metrics.clone(),
        ),
        Arc::new(Vec::new()),
        make_api,
    ));
    drop(guard_tx);

    // The notifier has its own stop signal: a SIGHUP replaces it (receivers, routes, [notify]);
    // undelivered notifications wait in the outbox for the new one.
    let start_notifier = |config: Arc<CollectorConfig>| {
        let (tx, rx) = watch::channel(false);
        let notifier = Arc::new(Notifier::new(config, store.clone(), metrics.clone()));
        (tx, tokio::spawn(notifier.run(rx)))
    };
    let (mut notify_stop, mut notify_task) = start_notifier(config.clone());
    let maintenance = tokio::spawn(maintain(config.clone(), store.clone(), sd_rx));

    let scheme = if config.api_tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        "ingest listening on {} (mTLS), api on {} ({scheme})",
        bound.ingest,
        bound.api
    );
    on_bound(bound);

    let mut hup = watch_hangup();
    let mut running = config.clone();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(new) = reload(&running).await else {
                    continue;
                };
                let (live, changes) = reconcile(&running, new);
                let live = Arc::new(live);
                for r in &changes.need_restart {
                    tracing::warn!(
                        "{}: {r} needs a restart; the running value stays",
                        live.path.display()
                    );
                }
                ingest_for_reload.set_gateways(live.gateways.clone());
                metrics_for_reload.reconfigure(&live);
                store.reconfigure(live.clone());
                let api = new_api(live.clone());
                match api_for_reload.write() {
                    Ok(mut g) => *g = api,
                    Err(p) => *p.into_inner() = api,
                }
                let _ = notify_stop.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut notify_task).await;
                (notify_stop, notify_task) = start_notifier(live.clone());
                tracing::info!(
                    "{} reloaded: {}",
                    live.path.display(),
                    if changes.applied.is_empty() {
                        "no live setting changed".to_string()
                    } else {
                        format!("applied {}", changes.applied.join("; "))
                    }
                );
                running = live;
            }
        }
    }
    tracing::info!("shutting down");
    let _ = sd_tx.send(true);
    let _ = notify_stop.send(true);
    drain(guard_rx, notify_task, maintenance).await;
    Ok(())
}

/// SIGHUP as a stream, or None (said in the log) when it cannot be watched.
fn watch_hangup() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP, configuration reloads need a restart: {e}");
            None
        }
    }
}

/// Wait (bounded) for every connection, the notifier and the maintenance task to finish.
async fn drain(
    mut guard_rx: mpsc::Receiver<()>,
    notify_task: tokio::task::JoinHandle<()>,
    maintenance: tokio::task::JoinHandle<()>,
) {
    // Every connection holds a guard; recv() returns None once all are gone.
    let _ = tokio::time::timeout(Duration::from_secs(15), guard_rx.recv()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), notify_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), maintenance).await;
}

/// What a reloaded collector config changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigChanges {
    /// Settings applied to the running collector.
    pub applied: Vec<String>,
    /// `key: old -> new` of settings that need a restart (the running value stays).
    pub need_restart: Vec<String>,
}

/// The configuration to run with after a SIGHUP: `new` with the settings that cannot change
/// live (listeners, TLS, database, limits, retention, incidents, time window) kept from
/// `running`, and what changed.
pub fn reconcile(
    running: &CollectorConfig,
    mut new: CollectorConfig,
) -> (CollectorConfig, ConfigChanges) {
    let mut c = ConfigChanges::default();
    macro_rules! keep {
        ($($key:literal => $field:ident),+ $(,)?) => {$(
            let (old, now) = (format!("{:?}", running.$field), format!("{:?}", new.$field));
            if old != now {
                c.need_restart.push(format!("{}: {old} -> {now}", $key));
                new.$field = running.$field.clone();
            }
        )+};
    }
    keep!(
        "listen" => listen,
        "api_listen" => api_listen,
        "[tls]" => tls,
        "[api_tls]" => api_tls,
        "database" => database,
        "[limits]" => limits,
        "[retention]" => retention,
        "[incidents]" => incidents,
        "[time]" => time,
    );
    macro_rules! live {
        ($($key:literal => $field:ident),+ $(,)?) => {$(
            if format!("{:?}", running.$field) != format!("{:?}", new.$field) {
                c.applied.push(format!("{} ({} -> {})", $key, running.$field.len(), new.$field.len()));
            }
        )+};
    }
    live!(
        "gateways" => gateways,
        "tokens" => tokens,
        "receivers" => receivers,
        "routes" => routes,
        "gateway metadata" => gateway_info,
    );
    if format!("{:?}", running.notify) != format!("{:?}", new.notify) {
        c.applied.push("[notify]".to_string());
    }
    if format!("{:?}", (&running.registry_path, &running.registry))
        != format!("{:?}", (&new.registry_path, &new.registry))
    {
        c.applied.push(format!(
            "registry {} (API and reports; metric label bounds keep the start-up registry until \
             a restart)",
            new.registry_path
                .as_deref()
                .map_or_else(|| "none".to_string(), |p| p.display().to_string())
        ));
    }
    (new, c)
}

async fn maintain(
    config: Arc<CollectorConfig>,
    store: Arc<dyn Store>,
    mut sd: watch::Receiver<bool>,
) {
    let tick = config
        .retention
        .interval
        .min(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention = 0i64;
    loop {
        tokio::select! {
            _ = sd.changed() => return,
            _ = interval.tick() => {}
        }
        let now = now_ms();
        let quiet = i64::try_from(config.incidents.quiet_period.as_millis()).unwrap_or(i64::MAX);
        let keep = i64::try_from(config.retention.flows.as_millis()).unwrap_or(i64::MAX);
        let every = i64::try_from(config.retention.interval.as_millis()).unwrap_or(i64::MAX);
        let run_retention = now - last_retention >= every;
        let s = store.clone();
        let r = tokio::task::spawn_blocking(move || -> Result<(usize, usize), StoreError> {
            let resolved = s.auto_resolve(now.saturating_sub(quiet), now)?;
            let expired = if run_retention {
                s.expire_flows(now.saturating_sub(keep))?
            } else {
                0
            };
            Ok((resolved, expired))
        })
        .await;
        match r {
            Ok(Ok((resolved, expired))) => {
                if run_retention {
                    last_retention = now;
                }
                if resolved > 0 {
                    tracing::info!("auto-resolved {resolved} quiet incident(s)");
                }
                if expired > 0 {
                    tracing::info!("retention deleted {expired} flow record(s)");
                }
            }
            Ok(Err(e)) => tracing::error!("maintenance: {e}"),
            Err(e) => tracing::error!("maintenance task: {e}"),
        }
    }
}

/// The soft open-file limit of this process (Linux `/proc/self/limits`), if readable.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
