//! The agent's Prometheus `/metrics`.
//!
//! Nothing in the data plane touches a Prometheus type: the workers and the writer count into
//! plain atomics ([`LiveStats`]), the uplink into its own counters, the detectors into their
//! shared state. At each scrape [`AgentMetrics`] copies those values into `prometheus` metrics
//! (counters only ever move forward) and renders the text format. Every label value comes from a
//! closed set: enums (alert kinds, verdicts, decode errors, drop kinds, uplink results) or the
//! registry (scenario and enterprise ids), never addresses or host names.
//!
//! [`MetricsServer`] serves `GET /metrics` (any other path: 404) on its own thread and tokio
//! runtime, for `run` (`[metrics] listen`) and `analyze --metrics-listen`.

use crate::decode::DecodeError;
use crate::detect::{DetectShared, PersonsUsage, ScenarioUsage};
use crate::stats::{LiveStats, VERDICTS};
use crate::uplink::UplinkSnapshot;
use crossline_config::event::AlertKind;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("metrics: cannot listen on {addr}: {source}")]
    Bind {
        /// Address from `[metrics] listen` or `--metrics-listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server thread or runtime could not be started.
    #[error("metrics: cannot start the server: {0}")]
    Start(std::io::Error),
}

/// Drop kinds reported as `drops{kind}` (the stats event's, shared with the collector).
pub use crossline_config::event::DROP_KINDS;
/// Uplink results reported as `uplink_batches{result}` (`refused` is part of `retried`).
pub const UPLINK_RESULTS: [&str; 6] = [
    "acked",
    "duplicate",
    "rejected",
    "retried",
    "refused",
    "split",
];

/// The agent's metric set.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    packets: IntCounter,
    bytes: IntCounter,
    drops: IntCounterVec,
    decode_errors: IntCounterVec,
    flows_active: IntGauge,
    flow_capacity: IntGauge,
    flows_created: IntCounter,
    flows_evicted: IntCounter,
    flow_events: IntCounter,
    alerts: IntCounterVec,
    verdicts: IntCounterVec,
    excluded_flows: IntCounterVec,
    expiry_calendar_fallbacks: IntCounter,
    alert_shaper_evictions: IntCounter,
    state_errors: IntCounterVec,
    spool_bytes: IntGauge,
    spool_unacked_batches: IntGauge,
    spool_oldest_age: prometheus::Gauge,
    spool_dropped: IntCounterVec,
    spool_torn: IntCounter,
    spool_write_errors: IntCounter,
    spool_in_memory: IntGauge,
    uplink_batches: IntCounterVec,
    uplink_invalid: IntCounterVec,
    uplink_lines_rejected: IntCounter,
    uplink_connected: IntGauge,
    uplink_enabled: IntGauge,
    uplink_failovers: IntCounter,
    uplink_collector: IntGaugeVec,
    registry_generation: IntGauge,
    registry_reload_failures: IntCounter,
    /// Per-scenario and per-enterprise usage against the filings.
    usage: UsageGauges,
    build_info: IntGaugeVec,
    start_time: prometheus::Gauge,
    thread_cpu: prometheus::CounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("crossline_agent")
}

// Metric construction only fails on invalid names or label names, which are literals here and
// covered by the tests.

fn c(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(opts(name, help)).expect("valid metric literal")
}

fn cv(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(opts(name, help), labels).expect("valid metric literal")
}

fn g(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(opts(name, help)).expect("valid metric literal")
}

fn gv(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(opts(name, help), labels).expect("valid metric literal")
}

fn fg(name: &str, help: &str) -> prometheus::Gauge {
    prometheus::Gauge::with_opts(opts(name, help)).expect("valid metric literal")
}

/// The usage gauges: export bytes and caps per scenario, persons per enterprise.
#[derive(Debug)]
struct UsageGauges {
    scenario_bytes_today: IntGaugeVec,
    scenario_cap: IntGaugeVec,
    persons_estimate: IntGaugeVec,
    persons_limit: IntGaugeVec,
}

impl UsageGauges {
    fn new() -> UsageGauges {
        UsageGauges {
            scenario_bytes_today: gv(
                "scenario_export_bytes_today",
                "Export bytes attributed to a filed scenario today (Asia/Shanghai).",
                &["scenario", "enterprise"],
            ),
            scenario_cap: gv(
                "scenario_cap_bytes",
                "Daily export cap of a filed scenario (caps.bytes_per_day).",
                &["scenario", "enterprise"],
            ),
            persons_estimate: gv(
                "persons_estimate",
                "Estimated distinct persons whose identifiers left this year, per enterprise.",
                &["enterprise"],
            ),
            persons_limit: gv(
                "persons_limit",
                "Persons threshold that applies to the enterprise this year.",
                &["enterprise"],
            ),
        }
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// Create and register every metric; label sets of enums are pre-filled with zeros so that
    /// dashboards see every series from the first scrape.
    pub fn new() -> AgentMetrics {
        let m = Self::unregistered();
        m.register_all();
        m.prefill_labels();
        m.start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        m
    }

    /// Every metric, built but not yet registered.
    fn unregistered() -> AgentMetrics {
        AgentMetrics {
            registry: Registry::new(),
            packets: c("packets_total", "Packets read from capture."),
            bytes: c(
                "bytes_total",
                "Bytes read from capture (frame length on the wire).",
            ),
            drops: cv(
                "drops_total",
                "Packets lost, by where they were lost.",
                &["kind"],
            ),
            decode_errors: cv(
                "decode_errors_total",
                "Packets that could not be decoded, by reason.",
                &["reason"],
            ),
            flows_active: g("flows_active", "Flows in the flow tables now."),
            flow_capacity: g(
                "flow_capacity",
                "Flow table capacity, all workers together.",
            ),
            flows_created: c("flows_created_total", "Flows created."),
            flows_evicted: c(
                "flows_evicted_total",
                "Flows evicted because a flow table was full.",
            ),
            flow_events: c("flow_events_total", "Flow records written."),
            alerts: cv("alerts_total", "Alerts raised, by kind.", &["kind"]),
            verdicts: cv(
                "verdicts_total",
                "Flow records written, by classification verdict.",
                &["verdict"],
            ),
            excluded_flows: cv(
                "excluded_flows_total",
                "Flow records with the verdict excluded, by [[exclude]] entry name of the agent config.",
                &["exclude"],
            ),
            expiry_calendar_fallbacks: c(
                "expiry_calendar_fallbacks_total",
                "Expiry computations that counted calendar days because a year had no holiday schedule ([[holidays]]).",
            ),
            alert_shaper_evictions: c(
                "alert_shaper_evictions_total",
                "Alert identities evicted from a full alert shaper (oldest first; their folded follow-up is emitted early).",
            ),
            state_errors: cv(
                "state_errors_total",
                "Detector state files that could not be restored (op=load: unreadable, truncated, altered, future version, or persons of another PI key; a fresh start) or written (op=save).",
                &["op"],
            ),
            spool_bytes: g("spool_bytes", "Bytes of the uplink spool on disk."),
            spool_unacked_batches: g(
                "spool_unacked_batches",
                "Batches in the spool not yet acknowledged by the collector.",
            ),
            spool_oldest_age: fg(
                "spool_oldest_unacked_age_seconds",
                "Age of the oldest batch not yet acknowledged (0 when none).",
            ),
            spool_dropped: cv(
                "spool_dropped_events_total",
                "Events dropped for lack of space, by kind (flows give way first) and reason \
                 (spool_full: over spool_max_bytes; disk_full: no space left on the file system; \
                 evicted: flow records removed to make room for alerts).",
                &["kind", "reason"],
            ),
            spool_in_memory: g(
                "spool_in_memory",
                "1 when the disk was full at start-up and the spool runs in memory (lost on exit).",
            ),
            uplink_invalid: cv(
                "uplink_invalid_events_total",
                "Events not sent because the collector would refuse them (bad timestamp, number \
                 beyond 64-bit signed, larger than a batch), by reason; still in the JSON output.",
                &["reason"],
            ),
            uplink_lines_rejected: c(
                "uplink_lines_rejected_total",
                "Events the collector refused by line (400); set aside in spool_dir/rejected/.",
            ),
            spool_torn: c(
                "spool_torn_records_total",
                "Torn or corrupt spool records cut off at start-up or read time.",
            ),
            spool_write_errors: c(
                "spool_write_errors_total",
                "Batches that could not be written to the spool (disk errors); their events are lost.",
            ),
            uplink_batches: cv(
                "uplink_batches_total",
                "Uplink batch outcomes: acked, duplicate, rejected (moved aside), retried, refused \
                 (a 4xx such as 403, kept and retried; also counted in retried), split (413).",
                &["result"],
            ),
            uplink_connected: g(
                "uplink_connected",
                "1 while the TLS connection to the collector is up.",
            ),
            uplink_enabled: g(
                "uplink_enabled",
                "1 when an [uplink] section is configured.",
            ),
            uplink_failovers: c(
                "uplink_failovers_total",
                "Moves of the uplink to the next collector of its list after a connection, TLS \
                 or timeout error or a 5xx.",
            ),
            uplink_collector: gv(
                "uplink_collector",
                "1 for the collector (host:port of [uplink] collector) batches go to, 0 for the \
                 others of the list.",
                &["collector"],
            ),
            registry_generation: g(
                "registry_generation",
                "Generation of the active registry (1 at start, +1 per reload).",
            ),
            registry_reload_failures: c(
                "registry_reload_failures_total",
                "Registry reloads refused because the file did not validate.",
            ),
            usage: UsageGauges::new(),
            build_info: gv(
                "build_info",
                "Always 1; the labels carry the agent version and the configured gateway id.",
                &["version", "gateway"],
            ),
            start_time: fg(
                "start_time_seconds",
                "Unix time the agent started (its metrics were set up).",
            ),
            thread_cpu: prometheus::CounterVec::new(
                opts(
                    "thread_cpu_seconds_total",
                    "CPU time of the agent's threads, by role (capture, capture-N, worker-N, \
                     writer, uplink, metrics).",
                ),
                &["thread"],
            )
            .expect("valid metric literal"),
        }
    }

    /// Advance the per-thread CPU counters to `by_role` (seconds per role, each only growing).
    pub fn observe_threads(&self, by_role: &std::collections::BTreeMap<String, f64>) {
        for (role, &seconds) in by_role {
            advance(
                &self.thread_cpu.with_label_values(&[role.as_str()]),
                seconds,
            );
        }
    }

    fn register_all(&self) {
        let m = self;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.packets.clone()),
            Box::new(m.bytes.clone()),
            Box::new(m.drops.clone()),
            Box::new(m.decode_errors.clone()),
            Box::new(m.flows_active.clone()),
            Box::new(m.flow_capacity.clone()),
            Box::new(m.flows_created.clone()),
            Box::new(m.flows_evicted.clone()),
            Box::new(m.flow_events.clone()),
            Box::new(m.alerts.clone()),
            Box::new(m.verdicts.clone()),
            Box::new(m.excluded_flows.clone()),
            Box::new(m.expiry_calendar_fallbacks.clone()),
            Box::new(m.alert_shaper_evictions.clone()),
            Box::new(m.state_errors.clone()),
            Box::new(m.spool_bytes.clone()),
            Box::new(m.spool_unacked_batches.clone()),
            Box::new(m.spool_oldest_age.clone()),
            Box::new(m.spool_dropped.clone()),
            Box::new(m.spool_torn.clone()),
            Box::new(m.spool_write_errors.clone()),
            Box::new(m.spool_in_memory.clone()),
            Box::new(m.uplink_batches.clone()),
            Box::new(m.uplink_invalid.clone()),
            Box::new(m.uplink_lines_rejected.clone()),
            Box::new(m.uplink_connected.clone()),
            Box::new(m.uplink_enabled.clone()),
            Box::new(m.uplink_failovers.clone()),
            Box::new(m.uplink_collector.clone()),
            Box::new(m.registry_generation.clone()),
            Box::new(m.registry_reload_failures.clone()),
            Box::new(m.usage.scenario_bytes_today.clone()),
            Box::new(m.usage.scenario_cap.clone()),
            Box::new(m.usage.persons_estimate.clone()),
            Box::new(m.usage.persons_limit.clone()),
            Box::new(m.build_info.clone()),
            Box::new(m.start_time.clone()),
            Box::new(m.thread_cpu.clone()),
        ];
        for collector in collectors {
            m.registry
                .register(collector)
                .expect("metric names are distinct literals");
        }
    }

    /// Zero series for every value of the enum labels, so dashboards see them from the first
    /// scrape.
    fn prefill_labels(&self) {
        let m = self;
        for op in ["load", "save"] {
            m.state_errors.with_label_values(&[op]);
        }
        for kind in DROP_KINDS {
            m.drops.with_label_values(&[kind]);
        }
        for e in DecodeError::ALL {
            m.decode_errors.with_label_values(&[e.as_str()]);
        }
        for k in AlertKind::ALL {
            m.alerts.with_label_values(&[k.as_str()]);
        }
        for v in VERDICTS {
            m.verdicts.with_label_values(&[v.as_str()]);
        }
        for r in UPLINK_RESULTS {
            m.uplink_batches.with_label_values(&[r]);
        }
        for k in ["flow", "alert"] {
            for r in crate::uplink::spool::DropReason::ALL {
                m.spool_dropped.with_label_values(&[k, r.as_str()]);
            }
        }
        for r in crate::uplink::validate::Reason::ALL {
            m.uplink_invalid.with_label_values(&[r.as_str()]);
        }
    }

    /// Set `build_info{version, gateway}` (one series: the version of this binary).
    pub fn set_gateway(&self, gateway: &str) {
        self.build_info.reset();
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), gateway])
            .set(1);
    }

    /// Copy the data-plane counters.
    pub fn observe_live(&self, s: &LiveStats) {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        advance(&self.packets, l(&s.packets));
        advance(&self.bytes, l(&s.bytes));
        for (kind, a) in s.drop_counters() {
            advance(&self.drops.with_label_values(&[kind]), l(a));
        }
        for e in DecodeError::ALL {
            advance(
                &self.decode_errors.with_label_values(&[e.as_str()]),
                l(&s.decode_errors[e.index()]),
            );
        }
        self.flows_active
            .set(i64::try_from(l(&s.flows_active)).unwrap_or(i64::MAX));
        self.flow_capacity
            .set(i64::try_from(l(&s.flow_capacity)).unwrap_or(i64::MAX));
        advance(&self.flows_created, l(&s.flows_created));
        advance(&self.flows_evicted, l(&s.evictions));
        advance(&self.flow_events, l(&s.flow_events));
        for (i, k) in AlertKind::ALL.iter().enumerate() {
            advance(
                &self.alerts.with_label_values(&[k.as_str()]),
                l(&s.alerts[i]),
            );
        }
        for (i, v) in VERDICTS.iter().enumerate() {
            advance(
                &self.verdicts.with_label_values(&[v.as_str()]),
                l(&s.verdicts[i]),
            );
        }
        if let Ok(m) = s.excluded.lock() {
            for (name, n) in m.iter() {
                advance(&self.excluded_flows.with_label_values(&[name]), *n);
            }
        }
    }

    /// Copy the uplink figures; `now_ms` is the wall clock in Unix milliseconds.
    pub fn observe_uplink(&self, u: &UplinkSnapshot, now_ms: u64) {
        self.uplink_enabled.set(1);
        self.spool_bytes.set(gauge_i64(u.spool.bytes));
        self.spool_unacked_batches
            .set(gauge_i64(u.spool.unacked_batches));
        let age = u
            .spool
            .oldest_unacked_ms
            .map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0);
        self.spool_oldest_age.set(age);
        for (k, kind) in [
            ("flow", crate::uplink::spool::BatchKind::Flows),
            ("alert", crate::uplink::spool::BatchKind::Alerts),
        ] {
            for r in crate::uplink::spool::DropReason::ALL {
                advance(
                    &self.spool_dropped.with_label_values(&[k, r.as_str()]),
                    u.spool.dropped.events(kind, r),
                );
            }
        }
        self.spool_in_memory.set(i64::from(u.spool.in_memory));
        for r in crate::uplink::validate::Reason::ALL {
            advance(
                &self.uplink_invalid.with_label_values(&[r.as_str()]),
                u.invalid[r.index()],
            );
        }
        advance(&self.uplink_lines_rejected, u.lines_rejected);
        advance(&self.spool_torn, u.spool.torn_records);
        advance(&self.spool_write_errors, u.spool_errors);
        for (result, n) in UPLINK_RESULTS.iter().zip([
            u.acked,
            u.duplicate,
            u.rejected,
            u.retried,
            u.refused,
            u.split,
        ]) {
            advance(&self.uplink_batches.with_label_values(&[result]), n);
        }
        self.uplink_connected.set(i64::from(u.connected));
        advance(&self.uplink_failovers, u.failovers);
    }

    /// Which of the configured collectors (`host:port`, in order) is current.
    pub fn observe_collectors(&self, collectors: &[String], current: usize) {
        for (i, c) in collectors.iter().enumerate() {
            self.uplink_collector
                .with_label_values(&[c.as_str()])
                .set(i64::from(i == current));
        }
    }

    /// Registry generation and refused reloads.
    pub fn observe_registry(&self, generation: u64, reload_failures: u64) {
        self.registry_generation.set(gauge_i64(generation));
        advance(&self.registry_reload_failures, reload_failures);
    }

    /// Replace the per-scenario usage gauges (scenarios that left the registry disappear).
    pub fn observe_scenarios(&self, usage: &[ScenarioUsage]) {
        self.usage.scenario_bytes_today.reset();
        self.usage.scenario_cap.reset();
        for u in usage {
            let labels = [u.scenario.as_str(), u.enterprise.as_str()];
            self.usage
                .scenario_bytes_today
                .with_label_values(&labels)
                .set(gauge_i64(u.export_bytes));
            if let Some(cap) = u.cap {
                self.usage
                    .scenario_cap
                    .with_label_values(&labels)
                    .set(gauge_i64(cap));
            }
        }
    }

    /// Replace the per-enterprise persons gauges.
    pub fn observe_persons(&self, usage: &[PersonsUsage]) {
        self.usage.persons_estimate.reset();
        self.usage.persons_limit.reset();
        for u in usage {
            let labels = [u.enterprise.as_str()];
            self.usage
                .persons_estimate
                .with_label_values(&labels)
                .set(gauge_i64(u.estimate));
            self.usage
                .persons_limit
                .with_label_values(&labels)
                .set(gauge_i64(u.limit));
        }
    }

    /// The text exposition format.
    /// Give every `[[exclude]]` entry its series (at 0) so it is listed before it first matches.
    pub fn declare_exclusions<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.excluded_flows.with_label_values(&[name]);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let families = self.registry.gather();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            out = format!("# crossline-agent: encoding metrics failed: {e}\n");
        }
        out
    }
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Move a counter (integer or float) forward to `total` (counters never go back).
fn advance<P: prometheus::core::Atomic>(
    counter: &prometheus::core::GenericCounter<P>,
    total: P::T,
) {
    let current = counter.get();
    if total > current {
        let mut by = total;
        by -= current;
        counter.inc_by(by);
    }
}

/// Called before each scrape to copy current values into the metrics.
pub type Refresh = Box<dyn Fn(&AgentMetrics) + Send + Sync>;

type Render = Box<dyn Fn() -> String + Send + Sync>;

/// A running `/metrics` HTTP server; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `addr` and serve `metrics` (after `refresh`) on a thread of its own.
    pub fn start(
        addr: SocketAddr,
        metrics: Arc<AgentMetrics>,
        refresh: Refresh,
    ) -> Result<MetricsServer, MetricsError> {
        MetricsServer::start_with(addr, move || {
            refresh(&metrics);
            metrics.render()
        })
    }

    /// Bind `addr` and answer `GET /metrics` with what `render` returns.
    pub fn start_with(
        addr: SocketAddr,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> Result<MetricsServer, MetricsError> {
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        std_listener
            .set_nonblocking(true)
            .map_err(MetricsError::Start)?;
        let local = std_listener.local_addr().map_err(MetricsError::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(MetricsError::Start)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let render: Arc<Render> = Arc::new(Box::new(render));
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let _cpu = crate::threads::register("metrics");
                runtime.block_on(serve(std_listener, render, rx))
            })
            .map_err(MetricsError::Start)?;
        Ok(MetricsServer {
            addr: local,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    std_listener: std::net::TcpListener,
    render: Arc<Render>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("crossline-agent: metrics listener failed: {e}");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let render = Arc::clone(&render);
                    async move {
                        if req.uri().path() == "/metrics" {
                            hyper::Response::builder()
                                .header(
                                    hyper::header::CONTENT_TYPE,
                                    "text/plain; version=0.0.4; charset=utf-8",
                                )
                                .body(Full::new(Bytes::from(render())))
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"not found; try /metrics\n")))
                        }
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Where the agent's `/metrics` reads its values at each scrape. Sources are attached as they
/// come to exist (the offline pipeline creates its counters inside the run).
#[derive(Debug, Default)]
pub struct Telemetry {
    metrics: AgentMetrics,
    live: std::sync::Mutex<Option<Arc<LiveStats>>>,
    uplink: Option<crate::uplink::UplinkHandle>,
    registry: std::sync::Mutex<Option<Arc<crate::detect::reload::SharedRegistry>>>,
    detect: std::sync::Mutex<Option<Arc<DetectShared>>>,
}

impl Telemetry {
    /// Telemetry with the uplink (if any) attached.
    pub fn new(uplink: Option<crate::uplink::UplinkHandle>) -> Telemetry {
        Telemetry {
            uplink,
            ..Telemetry::default()
        }
    }

    /// Attach the data-plane counters.
    pub fn set_live(&self, live: Arc<LiveStats>) {
        if let Ok(mut g) = self.live.lock() {
            *g = Some(live);
        }
    }

    /// Attach the hot-reloadable registry (generation, reload failures).
    pub fn set_registry(&self, registry: Arc<crate::detect::reload::SharedRegistry>) {
        if let Ok(mut g) = self.registry.lock() {
            *g = Some(registry);
        }
    }

    /// Attach the detectors' shared state (scenario usage, persons, and its registry).
    pub fn set_detect(&self, detect: Arc<DetectShared>) {
        self.set_registry(detect.registry_arc());
        if let Ok(mut g) = self.detect.lock() {
            *g = Some(detect);
        }
    }

    /// Copy every attached source into the metrics.
    pub fn refresh(&self) {
        self.metrics
            .observe_threads(&crate::threads::cpu_seconds_by_role());
        if let Some(live) = self.live.lock().ok().and_then(|g| g.clone()) {
            self.metrics.observe_live(&live);
        }
        if let Some(u) = &self.uplink {
            let snapshot = u.snapshot();
            self.metrics
                .observe_uplink(&snapshot, crate::uplink::spool::unix_ms_now());
            self.metrics
                .observe_collectors(u.collectors(), snapshot.current);
        }
        if let Some(r) = self.registry.lock().ok().and_then(|g| g.clone()) {
            self.metrics
                .observe_registry(r.generation(), r.reload_failures());
        }
        if let Some(d) = self.detect.lock().ok().and_then(|g| g.clone()) {
            self.metrics.observe_scenarios(&d.scenario_usage());
            self.metrics.observe_persons(&d.persons());
            let names = d.exclusion_names();
            self.metrics
                .declare_exclusions(names.iter().map(String::as_str));
            advance(
                &self.metrics.expiry_calendar_fallbacks,
                d.calendar_fallbacks(),
            );
            advance(&self.metrics.alert_shaper_evictions, d.shaper_evictions());
            let (load, save) = d.state_errors();
            advance(
                &self.metrics.state_errors.with_label_values(&["load"]),
                load,
            );
            advance(
                &self.metrics.state_errors.with_label_values(&["save"]),
                save,
            );
        }
    }

    /// Label `build_info` with the configured gateway id.
    pub fn set_gateway(&self, gateway: &str) {
        self.metrics.set_gateway(gateway);
    }

    /// The metrics (for tests and summaries).
    pub fn metrics(&self) -> &AgentMetrics {
        &self.metrics
    }

    /// Serve `/metrics` on `addr`, refreshed from the attached sources at every scrape.
    pub fn serve(self: &Arc<Self>, addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        let me = Arc::clone(self);
        MetricsServer::start_with(addr, move || {
            me.refresh();
            me.metrics.render()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_the_atomics_and_never_go_back() {
        let m = AgentMetrics::new();
        let s = LiveStats::new();
        s.packets.store(10, Ordering::Relaxed);
        s.alerts[0].store(3, Ordering::Relaxed);
        m.observe_live(&s);
        let text = m.render();
        assert!(
            text.contains("crossline_agent_packets_total 10\n"),
            "{text}"
        );
        assert!(
            text.contains("crossline_agent_alerts_total{kind=\"unfiled_export\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("crossline_agent_verdicts_total{verdict=\"filed\"} 0\n"));
        s.packets.store(5, Ordering::Relaxed);
        m.observe_live(&s);
        assert!(m.render().contains("crossline_agent_packets_total 10\n"));
    }

    #[test]
    fn build_info_and_start_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let m = AgentMetrics::new();
        assert!(
            !m.render().contains("crossline_agent_build_info{"),
            "no series before the gateway is known"
        );
        m.set_gateway("gw-bj-01");
        m.set_gateway("gw-bj-02");
        let text = m.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("crossline_agent_build_info{"))
            .collect();
        assert_eq!(
            series,
            [format!(
                "crossline_agent_build_info{{gateway=\"gw-bj-02\",version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )]
        );
        let start: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("crossline_agent_start_time_seconds "))
            .and_then(|v| v.parse().ok())
            .expect("start time series");
        assert!(
            start >= before.floor() && start < before + 60.0,
            "{start} vs {before}"
        );
    }

    #[test]
    fn scenario_gauges_follow_the_registry() {
        let m = AgentMetrics::new();
        m.observe_scenarios(&[ScenarioUsage {
            scenario: "SA-1".into(),
            enterprise: "acme".into(),
            day: crossline_config::time::Date::new(2026, 3, 2).expect("date"),
            export_bytes: 42,
            cap: Some(100),
        }]);
        let text = m.render();
        assert!(text.contains(
            "crossline_agent_scenario_export_bytes_today{enterprise=\"acme\",scenario=\"SA-1\"} 42"
        ), "{text}");
        m.observe_scenarios(&[]);
        assert!(!m.render().contains("SA-1"), "stale scenario kept");
    }

    fn http_get(addr: SocketAddr, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn server_serves_metrics_that_promtool_accepts() {
        let metrics = Arc::new(AgentMetrics::new());
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::clone(&metrics),
            Box::new(|m: &AgentMetrics| m.observe_registry(3, 1)),
        )
        .expect("start");
        let reply = http_get(server.local_addr(), "/metrics");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            reply.contains("crossline_agent_registry_generation 3\n"),
            "{reply}"
        );
        assert!(http_get(server.local_addr(), "/other").starts_with("HTTP/1.1 404"));
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("SKIPPED promtool part: promtool not installed");
            return;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("pipe");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        drop(server);
    }
}
