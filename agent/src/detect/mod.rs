//! Detection: the [`Classifier`] that every shard worker runs (an [`Analysis`]), and the state
//! it shares with the other workers ([`DetectShared`]).
//!
//! Per packet ([`Analysis::on_payload`]) the classifier only looks at export payload (bytes sent
//! by the domestic endpoint): a distinct-byte sample of the first payload for the tunnel
//! heuristic, the personal-information scanner and the content signatures, both bounded by
//! `detect.pi_scan_bytes` per flow and skipped for encrypted flows. No allocation and no lock,
//! except one lock of the persons book per identifier found.
//!
//! Per flow record ([`Analysis::on_flow_record`]) it classifies the flow (see
//! [`crate::classify`]), fills `direction`, `export_bytes` and `verdict`, and raises alerts:
//! the verdict's alert, `volume_cap_exceeded`, `volume_surge`, `country_mismatch`,
//! `personal_info_cleartext`, `negative_list_category`, `important_data_marker`,
//! `opaque_tunnel`, `line_misuse`. A flow matching an `[[exclude]]` entry of the agent config
//! (see [`crate::classify::exclude`]) gets the verdict `excluded` and raises nothing. Per tick it
//! emits `filing_expiring` (once per filing per level of working days left),
//! `persons_threshold`, `sensor_gap` (worker 0 only, since health figures are line totals) and
//! the folded follow-ups of [`shaping`].
//!
//! Long flows: counts use the deltas between the records of a flow (the flow state remembers
//! what it already accounted), so an active-timeout record never counts bytes twice. A record is
//! judged at the time of the first packet it covers: the flow's first packet, or the last packet
//! of the previous (active-timeout) record. Its bytes are added to the daily cap and the hourly
//! surge counters at its last packet time (when they had all been seen).
//!
//! Shared counters (caps, surges, persons, misuse, expiry warnings) live in [`DetectShared`]
//! behind one mutex each, touched per flow record (or per identifier found), never per packet.
//! Records of different workers reach them slightly out of time order; the cap keeps the last
//! three days and the surge baseline re-checks later weeks when an earlier hour grows, so the
//! result does not depend on which worker wrote first.
//!
//! Opaque tunnel heuristic: a cross-border flow with export payload is an opaque tunnel when its
//! protocol is WireGuard, OpenVPN or IPsec (or IP protocol 50/51), or when it is TCP/UDP with no
//! recognised application protocol, no SNI or Host, was not picked up mid-stream, and its first
//! export payload (at least 32 bytes, at most 128 looked at) has at least 60% distinct byte
//! values (random data has about 80%, text and most binary protocols far less). It is not raised
//! when the flow is filed under a scenario that explicitly lists the service.
//!
//! Line misuse counts the distinct foreign initiators per domestic (address, protocol, port) and
//! Beijing hour, over flows the domestic side answered.
#![warn(missing_docs)]

pub mod counters;
pub mod geoip;
pub mod hll;
pub mod pi;
pub mod reload;
pub mod shaping;
pub mod signatures;
pub mod state;

use crate::analysis::{Analysis, EndReason, FlowSummary, Health, PayloadView};
use crate::classify::exclude::Exclusions;
use crate::classify::{transport_of, Classification, Compiled, NameSource, Scratch};
use counters::{
    ExpiryBook, MisuseBook, OwnerRef, PersonsBook, PersonsLimits, PersonsOwner, SurgeRule,
    VolumeBook,
};
use crossline_config::agent::{expiry_levels, AgentConfig, DetectConfig, SignatureKind};
use crossline_config::event::{
    Alert, AlertKind, Direction, Event, EventType, Severity, Verdict, VerdictStatus,
};
use crossline_config::holidays::WorkCalendar;
use crossline_config::registry::{Basis, DataCategory, Service, Transport};
use crossline_config::time::{shanghai, Date};
use pi::{PiCarry, PiKind};
use reload::SharedRegistry;
use signatures::SignatureSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use geoip::GeoIp;

/// Errors building the detection state.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The GeoIP database could not be opened.
    #[error("detect.geoip {path}: {message}")]
    GeoIp {
        /// The configured file.
        path: String,
        /// What the reader said.
        message: String,
    },
    /// The PI key is unusable.
    #[error("detect.pi_key: {0}")]
    PiKey(String),
}

/// Today's bytes of one scenario (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioUsage {
    /// Scenario id.
    pub scenario: String,
    /// Enterprise id.
    pub enterprise: String,
    /// Beijing calendar day the bytes were counted on.
    pub day: Date,
    /// Export bytes counted for the scenario on `day`.
    pub export_bytes: u64,
    /// The scenario's daily cap.
    pub cap: Option<u64>,
}

/// Estimated distinct persons of one enterprise (or unknown source) in a Beijing year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonsUsage {
    /// Enterprise id (or `unknown:<address>` for unfiled sources no scenario lists).
    pub enterprise: String,
    /// Beijing calendar year.
    pub year: i32,
    /// Estimated distinct persons (HyperLogLog, about 0.8% error).
    pub estimate: u64,
    /// The yearly limit that applies (see [`persons_limits`]).
    pub limit: u64,
}

/// The detection settings a SIGHUP can change while the agent runs: `[detect]` values,
/// signatures and `[[exclude]]` entries. Workers pick a new one up with the registry generation.
#[derive(Debug)]
pub struct LiveDetect {
    /// The `[detect]` settings (the start-only ones, `pi_key`, `geoip`, `fold_interval` and
    /// `holidays`, are those of the start).
    pub cfg: DetectConfig,
    signatures: SignatureSet,
    exclusions: Exclusions,
}

impl LiveDetect {
    fn new(cfg: DetectConfig) -> LiveDetect {
        LiveDetect {
            signatures: SignatureSet::new(&cfg.signatures),
            exclusions: Exclusions::new(&cfg.exclude),
            cfg,
        }
    }
}

/// State shared by the classifiers of all workers of one agent run.
#[derive(Debug)]
pub struct DetectShared {
    gateway: String,
    cfg: DetectConfig,
    /// The live-changeable settings (see [`DetectShared::set_live`]).
    live: Mutex<Arc<LiveDetect>>,
    registry: Arc<SharedRegistry>,
    geoip: Option<GeoIp>,
    hmac: ring::hmac::Key,
    volume: Mutex<VolumeBook>,
    persons: Mutex<PersonsBook>,
    misuse: Mutex<MisuseBook>,
    expiry: Mutex<ExpiryBook>,
    /// Personal identifiers found (all workers).
    pi_found: AtomicU64,
    /// Working days: the shipped holiday schedules plus the config's `[[holidays]]`.
    calendar: WorkCalendar,
    /// Expiry computations that fell back to calendar days (a year without a schedule).
    calendar_fallbacks: AtomicU64,
    /// The fallback has been logged (once per run).
    calendar_warned: AtomicBool,
    /// Fingerprint of the PI key (see [`state::key_fingerprint`]).
    key_fingerprint: String,
    /// State files that could not be restored (or persons dropped for another key).
    state_load_errors: AtomicU64,
    /// State writes that failed.
    state_save_errors: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DetectShared {
    /// Build from a loaded agent configuration (opens the GeoIP database if configured).
    pub fn new(cfg: &AgentConfig) -> Result<Arc<DetectShared>, DetectError> {
        Self::with_parts(
            &cfg.gateway,
            cfg.detect.clone(),
            SharedRegistry::new(
                cfg.registry.clone(),
                &cfg.domestic,
                cfg.registry_path.clone(),
            ),
        )
    }

    /// Build from parts (tests, tools).
    pub fn with_parts(
        gateway: &str,
        cfg: DetectConfig,
        registry: SharedRegistry,
    ) -> Result<Arc<DetectShared>, DetectError> {
        let geoip = match &cfg.geoip {
            None => None,
            Some(p) => Some(GeoIp::open(p).map_err(|e| DetectError::GeoIp {
                path: p.display().to_string(),
                message: e.to_string(),
            })?),
        };
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &cfg.pi_key);
        Ok(Arc::new(DetectShared {
            gateway: gateway.to_string(),
            live: Mutex::new(Arc::new(LiveDetect::new(cfg.clone()))),
            calendar: WorkCalendar::new(&cfg.holidays),
            calendar_fallbacks: AtomicU64::new(0),
            calendar_warned: AtomicBool::new(false),
            key_fingerprint: state::key_fingerprint(&cfg.pi_key),
            state_load_errors: AtomicU64::new(0),
            state_save_errors: AtomicU64::new(0),
            cfg,
            registry: Arc::new(registry),
            geoip,
            hmac,
            volume: Mutex::default(),
            persons: Mutex::default(),
            misuse: Mutex::default(),
            expiry: Mutex::default(),
            pi_found: AtomicU64::new(0),
        }))
    }

    /// The swappable registry (`generation()`, `reload_failures()`, `reload_from(path)`).
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// The registry as an `Arc`, for the reload watcher thread.
    pub fn registry_arc(&self) -> Arc<SharedRegistry> {
        Arc::clone(&self.registry)
    }

    /// Start the reload triggers (SIGHUP and a one-second poll of the file's mtime).
    pub fn watch_registry(&self) -> std::io::Result<reload::Watchers> {
        reload::spawn_watchers(self.registry_arc(), std::time::Duration::from_secs(1))
    }

    /// Start the reload triggers with SIGHUP re-reading `agent.toml` through `reloader`.
    pub fn watch(&self, reloader: reload::ConfigReloader) -> std::io::Result<reload::Watchers> {
        reload::spawn_watchers_with(
            self.registry_arc(),
            std::time::Duration::from_secs(1),
            Some(Box::new(move || {
                let _ = reloader.reload();
            })),
        )
    }

    /// The detection settings.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// Bytes per scenario on the latest Beijing day counted (today, live).
    pub fn scenario_usage(&self) -> Vec<ScenarioUsage> {
        let book = lock(&self.volume);
        let Some(day) = book.latest_day() else {
            return Vec::new();
        };
        book.usage(day)
            .into_iter()
            .map(|(scenario, enterprise, export_bytes, cap)| ScenarioUsage {
                scenario,
                enterprise,
                day,
                export_bytes,
                cap,
            })
            .collect()
    }

    /// Estimated distinct persons per enterprise and year.
    pub fn persons(&self) -> Vec<PersonsUsage> {
        lock(&self.persons)
            .usage()
            .into_iter()
            .map(|(enterprise, year, estimate, limit)| PersonsUsage {
                enterprise,
                year,
                estimate,
                limit,
            })
            .collect()
    }

    /// Direct access to the volume and persons counters (tools and benchmarks that fill a state
    /// without a capture).
    pub fn with_books<R>(&self, f: impl FnOnce(&mut VolumeBook, &mut PersonsBook) -> R) -> R {
        let mut v = lock(&self.volume);
        let mut p = lock(&self.persons);
        f(&mut v, &mut p)
    }

    /// Personal identifiers found so far (all workers).
    pub fn pi_found(&self) -> u64 {
        self.pi_found.load(Ordering::Relaxed)
    }

    /// The live detection settings (`[detect]`, signatures, `[[exclude]]`).
    pub fn live(&self) -> Arc<LiveDetect> {
        Arc::clone(&lock(&self.live))
    }

    /// The names of the `[[exclude]]` entries in force.
    pub fn exclusion_names(&self) -> Vec<String> {
        self.live().exclusions.names().map(str::to_string).collect()
    }

    /// Replace the live detection settings (a SIGHUP with a changed `agent.toml`); workers
    /// pick them up with the next registry generation, which the caller bumps.
    pub fn set_live(&self, cfg: DetectConfig) {
        *lock(&self.live) = Arc::new(LiveDetect::new(cfg));
    }

    /// The working-day calendar used for expiry warnings.
    pub fn calendar(&self) -> &WorkCalendar {
        &self.calendar
    }

    /// Expiry computations that fell back to calendar days because a year had no holiday
    /// schedule (logged once, counted every time).
    pub fn calendar_fallbacks(&self) -> u64 {
        self.calendar_fallbacks.load(Ordering::Relaxed)
    }

    /// Working days after `today` up to `until` (see [`WorkCalendar::working_days_after`]);
    /// calendar days, counted and logged once, when the schedule of a year in between is not
    /// known. The flag says whether working days were counted.
    pub fn days_left(&self, today: Date, until: Date) -> (i64, bool) {
        if let Some(n) = self.calendar.working_days_after(today, until) {
            return (n, true);
        }
        self.calendar_fallbacks.fetch_add(1, Ordering::Relaxed);
        if !self.calendar_warned.swap(true, Ordering::Relaxed) {
            let years = self.calendar.years();
            eprintln!(
                "crossline-agent: warning: no holiday schedule for a year between {today} and {until} (known: {}); expiry warnings count calendar days instead of working days until one is added with [[holidays]] in the agent config",
                match (years.first(), years.last()) {
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => "none".to_string(),
                }
            );
        }
        (until.days_since_epoch() - today.days_since_epoch(), false)
    }

    fn person_hash(&self, kind: PiKind, ident: &[u8]) -> u64 {
        let mut mac = ring::hmac::Context::with_key(&self.hmac);
        mac.update(&[kind as u8]);
        mac.update(ident);
        let out = mac.sign();
        let mut b = [0u8; 8];
        b.copy_from_slice(&out.as_ref()[..8]);
        u64::from_le_bytes(b)
    }
}

/// Yearly person limits of an enterprise (docs/legal.md, O16 arts. 5(4), 7, 8):
/// the largest `persons_per_year` any of its scenarios declares; else 1,000,000 (the
/// security-assessment threshold) when it files by standard contract, certification or
/// security assessment; else 100,000 (the art. 5(4) exemption ceiling). Sensitive personal
/// information (bank cards): 10,000 unless a security assessment files sensitive data.
pub fn persons_limits(compiled: &Compiled, enterprise: Option<u32>) -> PersonsLimits {
    let Some(e) = enterprise else {
        return PersonsLimits {
            all: 100_000,
            sensitive: 10_000,
        };
    };
    let mut declared: Option<u64> = None;
    let mut contract = false;
    let mut sa_sensitive = false;
    for s in &compiled.registry.scenarios {
        if s.enterprise_index as u32 != e {
            continue;
        }
        if let Some(p) = s.persons_per_year {
            declared = Some(declared.map_or(p, |d| d.max(p)));
        }
        match s.basis {
            Basis::SecurityAssessment => {
                contract = true;
                if s.data.contains(&DataCategory::SensitivePersonal) {
                    sa_sensitive = true;
                }
            }
            Basis::StandardContract | Basis::Certification => contract = true,
            _ => {}
        }
    }
    PersonsLimits {
        all: declared.unwrap_or(if contract { 1_000_000 } else { 100_000 }),
        sensitive: if sa_sensitive {
            declared.unwrap_or(u64::MAX)
        } else {
            10_000
        },
    }
}

const F_DIR_KNOWN: u8 = 1;
const F_CROSS: u8 = 2;
const F_EXPORT_FROM_INITIATOR: u8 = 4;
const F_SAMPLED: u8 = 8;
/// Cross-border and matched by an address-only `[[exclude]]` entry: not scanned.
const F_EXCLUDED: u8 = 16;

/// Interval of the data plane's ticks.
const TICK_MICROS: i64 = 1_000_000;

/// Most masked evidence items kept per flow record.
pub const MAX_EVIDENCE: usize = 3;

/// Per-flow detection state, kept in the flow table entry (about 100 bytes).
#[derive(Debug, Default)]
pub struct FlowState {
    carry: PiCarry,
    flags: u8,
    /// Percentage of distinct byte values in the first export payload sample (0 = none yet).
    distinct_pct: u8,
    pi_counts: [u16; 4],
    scanned: u32,
    sig_hits: u64,
    accounted_bytes: u64,
    accounted_payload: u64,
    /// Last packet time of the previous record of this flow (0 = none).
    last_record_micros: i64,
    /// Masked evidence of this record (rare: boxed to keep the flow entry small).
    #[allow(clippy::box_collection)]
    evidence: Option<Box<Vec<String>>>,
}

/// The per-worker classifier and detector.
#[derive(Debug)]
pub struct Classifier {
    shared: Arc<DetectShared>,
    worker: usize,
    compiled: Arc<Compiled>,
    /// The live detection settings, refreshed with the registry generation.
    live: Arc<LiveDetect>,
    generation: u64,
    scratch: Scratch,
    shaper: shaping::Shaper,
    last_health: Health,
    expiry_day: Option<Date>,
    last_tick: Option<i64>,
    /// Yearly person limits per enterprise index of `compiled`.
    limits: Vec<PersonsLimits>,
}

impl Classifier {
    /// A classifier for worker number `worker` (0-based).
    pub fn new(shared: Arc<DetectShared>, worker: usize) -> Classifier {
        let compiled = shared.registry.current();
        let generation = shared.registry.generation();
        let live = shared.live();
        let fold = i64::try_from(shared.cfg.fold_interval.as_micros()).unwrap_or(i64::MAX);
        Classifier {
            shared,
            worker,
            compiled,
            live,
            generation,
            scratch: Scratch::default(),
            shaper: shaping::Shaper::new(fold),
            last_health: Health::default(),
            expiry_day: None,
            last_tick: None,
            limits: Vec::new(),
        }
        .with_limits()
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<DetectShared> {
        &self.shared
    }

    /// Emit every pending follow-up alert (call once at end of capture or shutdown).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.shaper.flush(out);
    }

    fn with_limits(mut self) -> Classifier {
        self.limits = (0..self.compiled.registry.enterprises.len())
            .map(|i| persons_limits(&self.compiled, Some(i as u32)))
            .collect();
        self
    }

    /// Pick up a reloaded registry (one atomic load when nothing changed).
    fn refresh(&mut self) {
        let g = self.shared.registry.generation();
        if g != self.generation {
            self.compiled = self.shared.registry.current();
            self.live = self.shared.live();
            self.generation = g;
            self.limits = (0..self.compiled.registry.enterprises.len())
                .map(|i| persons_limits(&self.compiled, Some(i as u32)))
                .collect();
        }
    }

    fn green(&self, enterprise: Option<u32>) -> bool {
        enterprise
            .and_then(|e| self.compiled.registry.enterprises.get(e as usize))
            .is_some_and(|e| e.green_channel)
    }

    /// Build an alert event; flow fields are copied from `flow` when given.
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        kind: AlertKind,
        severity: Severity,
        timestamp: &str,
        flow: Option<&Event>,
        scenario: Option<u32>,
        enterprise: Option<u32>,
        summary: String,
    ) -> Event {
        let mut e = Event::new(
            EventType::Alert,
            timestamp.to_string(),
            self.shared.gateway.clone(),
        );
        if let Some(f) = flow {
            e.flow_id = f.flow_id;
            e.proto = f.proto.clone();
            e.src_ip = f.src_ip.clone();
            e.src_port = f.src_port;
            e.dest_ip = f.dest_ip.clone();
            e.dest_port = f.dest_port;
            e.vlan = f.vlan.clone();
            (e.icmp_type, e.icmp_code) = (f.icmp_type, f.icmp_code);
            e.community_id = f.community_id.clone();
            e.app_proto = f.app_proto.clone();
        }
        let reg = &self.compiled.registry;
        let green = self.green(enterprise);
        let severity = if green && self.live.cfg.green_channel_raise {
            severity.raised()
        } else {
            severity
        };
        e.alert = Some(Alert {
            kind,
            severity,
            scenario: scenario.map(|s| reg.scenarios[s as usize].id.clone()),
            enterprise: enterprise.map(|i| reg.enterprises[i as usize].id.clone()),
            summary,
            rule: kind.rule().to_string(),
            recipient: None,
            service: None,
            count: 1,
            bytes: 0,
            evidence: Vec::new(),
            persons: None,
            followup: false,
            green_channel: green,
            days_left: None,
            valid_from: None,
            valid_until: None,
            scope: None,
            gateways: Vec::new(),
        });
        e
    }

    /// Offer an alert through the shaper. The identity is (kind, enterprise or source /24 or
    /// /64, recipient, service).
    fn shape(&mut self, e: Event, c: &Classification, now: i64, out: &mut Vec<Event>) {
        let Some(a) = e.alert.as_ref() else { return };
        let who = match (&a.enterprise, c.domestic) {
            (Some(ent), _) => ent.clone(),
            (None, Some(ip)) => source_prefix(ip),
            (None, None) => String::new(),
        };
        let key = format!(
            "{}|{}|{}|{}",
            a.kind.as_str(),
            who,
            a.recipient.as_deref().unwrap_or(""),
            a.service.as_deref().unwrap_or("")
        );
        self.shaper.offer(key, e, now, out);
    }

    fn record_person(&self, domestic: IpAddr, kind: PiKind, ident: &[u8], now: i64) {
        let hash = self.shared.person_hash(kind, ident);
        let owner_index = self.compiled.owner_of(domestic);
        let (owner, limits) = match owner_index.and_then(|i| {
            self.compiled
                .registry
                .enterprises
                .get(i as usize)
                .zip(self.limits.get(i as usize))
        }) {
            Some((e, l)) => (
                OwnerRef::Enterprise {
                    uscc: &e.uscc,
                    id: &e.id,
                },
                *l,
            ),
            None => (
                OwnerRef::Unknown(domestic),
                persons_limits(&self.compiled, None),
            ),
        };
        let year = shanghai(now.div_euclid(1_000_000)).date.year;
        self.shared.pi_found.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.persons).add(owner, year, hash, kind.sensitive(), limits);
    }
}

/// The /24 (IPv4) or /64 (IPv6) of an address, as text.
fn source_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// `tcp/443`, `udp/53`, or `ip/50` for protocols without ports.
pub fn service_label(ip_proto: u8, port: u16) -> String {
    match transport_of(ip_proto) {
        Some(Transport::Tcp) => format!("tcp/{port}"),
        Some(Transport::Udp) => format!("udp/{port}"),
        None => format!("ip/{ip_proto}"),
    }
}

/// Bytes in human units (decimal, one decimal place).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if b < 1000 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1000.0;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn with_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn distinct_pct(sample: &[u8]) -> u8 {
    let mut seen = [0u64; 4];
    let mut n = 0u32;
    for &b in sample {
        let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
        if seen[w] & bit == 0 {
            seen[w] |= bit;
            n += 1;
        }
    }
    ((n * 100) / sample.len().max(1) as u32).clamp(1, 100) as u8
}

const VPN_PROTOCOLS: [&str; 3] = ["wireguard", "openvpn", "ipsec"];

impl Analysis for Classifier {
    type FlowState = FlowState;

    fn on_payload(&mut self, state: &mut FlowState, view: &PayloadView<'_>) {
        if state.flags & F_DIR_KNOWN == 0 {
            let i = self.compiled.is_domestic(view.initiator);
            let r = self.compiled.is_domestic(view.responder);
            state.flags |= F_DIR_KNOWN;
            if i != r {
                state.flags |= F_CROSS;
                let foreign = if i { view.responder } else { view.initiator };
                if !self.live.exclusions.is_empty()
                    && self.live.exclusions.matches_by_address(
                        foreign,
                        view.ip_proto,
                        view.responder_port,
                    )
                {
                    state.flags |= F_EXCLUDED;
                }
            }
            if i {
                state.flags |= F_EXPORT_FROM_INITIATOR;
            }
        }
        if state.flags & (F_CROSS | F_EXCLUDED) != F_CROSS {
            return;
        }
        let export_from_initiator = state.flags & F_EXPORT_FROM_INITIATOR != 0;
        if view.from_initiator != export_from_initiator {
            return;
        }
        if state.flags & F_SAMPLED == 0 && view.payload.len() >= 32 {
            state.flags |= F_SAMPLED;
            let n = view.payload.len().min(128);
            state.distinct_pct = distinct_pct(&view.payload[..n]);
        }
        if view.encrypted {
            return;
        }
        let budget = self
            .live
            .cfg
            .pi_scan_bytes
            .saturating_sub(state.scanned as usize);
        if budget == 0 {
            return;
        }
        let data = &view.payload[..view.payload.len().min(budget)];
        state.scanned = state
            .scanned
            .saturating_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
        let domestic = if export_from_initiator {
            view.initiator
        } else {
            view.responder
        };
        let FlowState {
            carry,
            pi_counts,
            evidence,
            sig_hits,
            ..
        } = state;
        let now = view.now_micros;
        carry.scan(data, &mut |kind, ident| {
            let c = &mut pi_counts[kind.index()];
            *c = c.saturating_add(1);
            self.record_person(domestic, kind, ident, now);
            let ev = evidence.get_or_insert_with(Box::default);
            if ev.len() < MAX_EVIDENCE {
                ev.push(pi::mask_string(kind, ident));
            }
        });
        self.live.signatures.scan(data, sig_hits);
    }

    fn on_flow_record(
        &mut self,
        state: &mut FlowState,
        s: &FlowSummary<'_>,
        event: &mut Event,
        out: &mut Vec<Event>,
    ) {
        self.refresh();
        let judge = if state.last_record_micros != 0 {
            state.last_record_micros
        } else {
            s.first_micros
        };
        let c = self.compiled.classify(s, judge, &mut self.scratch);
        let final_record = s.reason != EndReason::ActiveTimeout;

        // `[[exclude]]`: infrastructure traffic, checked before step 1. Written and counted
        // (by the writer, per entry name), never alerted on.
        if let Some(x) = self.live.exclusions.matches(s, &c) {
            event.direction = Some(c.direction);
            event.export_bytes = Some(match c.direction {
                Direction::Export => s.bytes_fwd,
                _ => s.bytes_rev,
            });
            event.verdict = Some(Verdict {
                status: VerdictStatus::Excluded,
                scenario: None,
                enterprise: None,
                name_source: None,
                ech: c.ech,
                exclude: self.live.exclusions.names().nth(x).map(str::to_string),
            });
            state.last_record_micros = s.last_micros;
            state.pi_counts = [0; 4];
            state.sig_hits = 0;
            if final_record {
                state.evidence = None;
            }
            return;
        }

        let (export_bytes, export_payload) = match c.direction {
            Direction::Export => (s.bytes_fwd, s.payload_fwd),
            Direction::Import => (s.bytes_rev, s.payload_rev),
            Direction::Internal | Direction::External => (0, 0),
        };
        event.direction = Some(c.direction);
        let reg = &self.compiled.registry;
        event.verdict = Some(Verdict {
            status: c.status,
            scenario: c.scenario.map(|i| reg.scenarios[i as usize].id.clone()),
            enterprise: c.enterprise.map(|i| reg.enterprises[i as usize].id.clone()),
            name_source: if c.status == VerdictStatus::NotCrossBorder {
                None
            } else {
                c.name_source.map(|n| n.as_str().to_string())
            },
            ech: c.ech,
            exclude: None,
        });
        if c.status == VerdictStatus::NotCrossBorder {
            state.last_record_micros = s.last_micros;
            return;
        }
        event.export_bytes = Some(export_bytes);

        // Finish a digit run left at the end of the stream.
        if final_record && state.carry.pending() {
            if let Some(domestic) = c.domestic {
                let FlowState {
                    carry,
                    pi_counts,
                    evidence,
                    ..
                } = state;
                let now = s.last_micros;
                carry.finish(&mut |kind, ident| {
                    let n = &mut pi_counts[kind.index()];
                    *n = n.saturating_add(1);
                    self.record_person(domestic, kind, ident, now);
                    let ev = evidence.get_or_insert_with(Box::default);
                    if ev.len() < MAX_EVIDENCE {
                        ev.push(pi::mask_string(kind, ident));
                    }
                });
            }
        }

        let delta_bytes = export_bytes.saturating_sub(state.accounted_bytes);
        let delta_payload = export_payload.saturating_sub(state.accounted_payload);
        state.accounted_bytes = state.accounted_bytes.max(export_bytes);
        state.accounted_payload = state.accounted_payload.max(export_payload);
        state.last_record_micros = s.last_micros;
        let min = self.live.cfg.min_export_bytes;
        let carries = delta_payload > 0 && (min == 0 || delta_bytes >= min);

        let now = s.last_micros;
        let domestic = c.domestic.unwrap_or(s.initiator);
        let foreign = c.foreign.unwrap_or(s.responder);
        // The texts of alerts, built only when an alert is raised (most records raise none).
        let texts: std::cell::OnceCell<Texts> = std::cell::OnceCell::new();
        let tx = || texts.get_or_init(|| Texts::new(s, &c, delta_bytes, &self.compiled));
        let mut alerts: Vec<Event> = Vec::new();
        let compiled = Arc::clone(&self.compiled);

        // The verdict's own alert.
        if let Some(kind) = c.status.alert_kind() {
            if carries {
                let why = match c.status {
                    VerdictStatus::Unfiled => "no filed scenario lists this source".to_string(),
                    VerdictStatus::RecipientNotFiled => format!(
                        "the recipient is not a filed destination of scenario {}{}",
                        tx().scen_id,
                        if c.ech {
                            " (ECH hid the server name)"
                        } else {
                            ""
                        }
                    ),
                    VerdictStatus::ServiceNotFiled => {
                        format!(
                            "service {} is not filed for scenario {}",
                            tx().service,
                            tx().scen_id
                        )
                    }
                    VerdictStatus::FilingExpired => {
                        let sc = c.scenario.map(|i| compiled.scenario(i));
                        let day = shanghai(judge.div_euclid(1_000_000)).date;
                        match sc {
                            Some(sc) => format!(
                                "scenario {} expired on {} ({} days before this flow)",
                                sc.id,
                                sc.valid_until,
                                day.days_since_epoch() - sc.valid_until.days_since_epoch()
                            ),
                            None => "the filing is not valid on this date".to_string(),
                        }
                    }
                    VerdictStatus::OutsideWindow => {
                        let t = shanghai(judge.div_euclid(1_000_000));
                        format!(
                            "{:02}:{:02} Beijing time is outside the filed window of scenario {}",
                            t.second_of_day / 3600,
                            (t.second_of_day / 60) % 60,
                            tx().scen_id
                        )
                    }
                    VerdictStatus::FilingNotYetValid => {
                        let day = shanghai(judge.div_euclid(1_000_000)).date;
                        match c.scenario.map(|i| compiled.scenario(i)) {
                            Some(sc) => {
                                let n = sc.valid_from.days_since_epoch() - day.days_since_epoch();
                                format!(
                                    "scenario {} starts on {} ({n} day{} later): it does not cover transfers before then",
                                    sc.id,
                                    sc.valid_from,
                                    if n == 1 { "" } else { "s" }
                                )
                            }
                            None => "the filing is not valid yet on this date".to_string(),
                        }
                    }
                    VerdictStatus::Filed
                    | VerdictStatus::NotCrossBorder
                    | VerdictStatus::Excluded => String::new(),
                };
                let mut e = self.alert(
                    kind,
                    kind.default_severity(),
                    &tx().ts,
                    Some(event),
                    c.scenario,
                    c.enterprise,
                    format!("{}: {why}", tx().flow_desc),
                );
                set_common(&mut e, &tx().recipient, &tx().service, delta_bytes);
                if let (Some(a), Some(sc)) =
                    (e.alert.as_mut(), c.scenario.map(|i| compiled.scenario(i)))
                {
                    if matches!(
                        c.status,
                        VerdictStatus::FilingExpired | VerdictStatus::FilingNotYetValid
                    ) {
                        a.valid_from = Some(sc.valid_from.to_string());
                        a.valid_until = Some(sc.valid_until.to_string());
                    }
                    if c.status == VerdictStatus::FilingNotYetValid {
                        let day = shanghai(judge.div_euclid(1_000_000)).date;
                        a.days_left =
                            Some(sc.valid_from.days_since_epoch() - day.days_since_epoch());
                    }
                }
                alerts.push(e);
            }
        }

        if c.status == VerdictStatus::Filed {
            if let Some(si) = c.scenario {
                let sc = compiled.scenario(si);
                let ent = &compiled.registry.enterprises[sc.enterprise_index].id;
                // Daily caps and surges (filed bytes only).
                if delta_bytes > 0 {
                    let local = shanghai(now.div_euclid(1_000_000));
                    let hour = (now.div_euclid(1_000_000)
                        + crossline_config::time::SHANGHAI_OFFSET_SECS)
                        .div_euclid(3600);
                    let rule = SurgeRule {
                        k: self.live.cfg.surge_k,
                        floor_bytes: self.live.cfg.surge_floor_bytes,
                    };
                    let o = lock(&self.shared.volume).add(
                        &sc.id,
                        ent,
                        sc.bytes_per_day,
                        local.date,
                        hour,
                        delta_bytes,
                        rule,
                    );
                    if o.cap_level > 0 {
                        let cap = sc.bytes_per_day.unwrap_or(0);
                        let (sev, what) = if o.cap_level >= 2 {
                            (Severity::High, "twice the daily cap")
                        } else {
                            (Severity::Med, "the daily cap")
                        };
                        let mut e = self.alert(
                            AlertKind::VolumeCapExceeded,
                            sev,
                            &tx().ts,
                            Some(event),
                            Some(si),
                            c.enterprise,
                            format!(
                                "Scenario {} exported {} on {} (Beijing), more than {what} of {}",
                                sc.id,
                                human_bytes(o.day_bytes),
                                local.date,
                                human_bytes(cap)
                            ),
                        );
                        set_common(&mut e, &tx().recipient, &tx().service, o.day_bytes);
                        // Cap alerts are once per level per day already: not folded.
                        out.push(e);
                        event_alerted(event);
                    }
                    if let Some(sg) = o.surge {
                        let secs = sg.hour * 3600 - crossline_config::time::SHANGHAI_OFFSET_SECS;
                        let hl = shanghai(secs);
                        let mut e = self.alert(
                            AlertKind::VolumeSurge,
                            AlertKind::VolumeSurge.default_severity(),
                            &tx().ts,
                            // A surge completed by a late record of an earlier hour is not
                            // about this flow.
                            if sg.this_record { Some(event) } else { None },
                            Some(si),
                            c.enterprise,
                            format!(
                                "Scenario {} exported {} in the hour from {} {:02}:00 Beijing time, above its same-hour baseline of {} (threshold {}, {} weeks)",
                                sc.id,
                                human_bytes(sg.hour_bytes),
                                hl.date,
                                hl.second_of_day / 3600,
                                human_bytes(sg.baseline_mean),
                                human_bytes(sg.threshold),
                                sg.samples
                            ),
                        );
                        set_common(&mut e, &tx().recipient, &tx().service, sg.hour_bytes);
                        if !sg.this_record {
                            if let Some(a) = e.alert.as_mut() {
                                a.recipient = None;
                                a.service = None;
                            }
                        } else {
                            event_alerted(event);
                        }
                        out.push(e);
                    }
                }
                // Country of the recipient.
                if carries {
                    if let Some(geo) = &self.shared.geoip {
                        if let Some(cc) = geo.country(foreign) {
                            if !sc.recipient.country.as_bytes().eq_ignore_ascii_case(&cc) {
                                let got = String::from_utf8_lossy(&cc).into_owned();
                                let mut e = self.alert(
                                    AlertKind::CountryMismatch,
                                    AlertKind::CountryMismatch.default_severity(),
                                    &tx().ts,
                                    Some(event),
                                    Some(si),
                                    c.enterprise,
                                    format!(
                                        "{}: the recipient address is in {got}, but scenario {} files {} in {}",
                                        tx().flow_desc, sc.id, sc.recipient.name, sc.recipient.country
                                    ),
                                );
                                set_common(&mut e, &tx().recipient, &tx().service, delta_bytes);
                                alerts.push(e);
                            }
                        }
                    }
                }
            }
        }

        // Personal information in cleartext.
        let found: u32 = state.pi_counts.iter().map(|&n| u32::from(n)).sum();
        if found > 0 {
            let filed_pi = c.status == VerdictStatus::Filed
                && c.scenario.is_some_and(|i| {
                    compiled.scenario(i).data.iter().any(|d| {
                        matches!(d, DataCategory::Personal | DataCategory::SensitivePersonal)
                    })
                });
            let sev = if filed_pi {
                Severity::Med
            } else {
                Severity::High
            };
            let kinds: Vec<String> = PiKind::ALL
                .iter()
                .filter(|k| state.pi_counts[k.index()] > 0)
                .map(|k| k.counted(u64::from(state.pi_counts[k.index()])))
                .collect();
            let mut e = self.alert(
                AlertKind::PersonalInfoCleartext,
                sev,
                &tx().ts,
                Some(event),
                c.scenario,
                c.enterprise,
                format!(
                    "{}: unencrypted personal information ({})",
                    tx().flow_desc,
                    kinds.join(", ")
                ),
            );
            set_common(&mut e, &tx().recipient, &tx().service, delta_bytes);
            if let Some(a) = e.alert.as_mut() {
                a.evidence = state.evidence.take().map(|b| *b).unwrap_or_default();
                a.count = 1;
            }
            alerts.push(e);
            state.pi_counts = [0; 4];
        }

        // Content signatures.
        if state.sig_hits != 0 {
            let hits = std::mem::take(&mut state.sig_hits);
            for i in 0..signatures::MAX_SIGNATURES {
                if hits & (1 << i) == 0 {
                    continue;
                }
                let Some(sig) = self.live.signatures.get(i) else {
                    continue;
                };
                match sig.kind {
                    SignatureKind::NegativeList => {
                        let approved = c.status == VerdictStatus::Filed
                            && c.scenario.is_some_and(|i| {
                                let id = &compiled.scenario(i).id;
                                sig.approved_scenarios.iter().any(|a| a == id)
                            });
                        if !approved {
                            let mut e = self.alert(
                                AlertKind::NegativeListCategory,
                                AlertKind::NegativeListCategory.default_severity(),
                                &tx().ts,
                                Some(event),
                                c.scenario,
                                c.enterprise,
                                format!(
                                    "{}: negative-list data \"{}\" (signature {}) to a recipient not approved for it",
                                    tx().flow_desc, sig.category, sig.id
                                ),
                            );
                            set_common(&mut e, &tx().recipient, &tx().service, delta_bytes);
                            alerts.push(e);
                        }
                    }
                    SignatureKind::ImportantData => {
                        let mut e = self.alert(
                            AlertKind::ImportantDataMarker,
                            AlertKind::ImportantDataMarker.default_severity(),
                            &tx().ts,
                            Some(event),
                            c.scenario,
                            c.enterprise,
                            format!(
                                "{}: important-data marker \"{}\" (signature {}) in cleartext",
                                tx().flow_desc,
                                sig.category,
                                sig.id
                            ),
                        );
                        set_common(&mut e, &tx().recipient, &tx().service, delta_bytes);
                        alerts.push(e);
                    }
                }
            }
        }

        // Opaque tunnels.
        if carries {
            let vpn = s.app_proto.is_some_and(|p| VPN_PROTOCOLS.contains(&p))
                || matches!(s.ip_proto, 50 | 51);
            // Mid-stream flows are left out of the entropy test: their first bytes seen may be
            // the middle of a TLS or SSH session whose start we missed.
            let unnamed = s.app_proto.is_none()
                && !s.midstream
                && s.tls_sni.is_none()
                && s.quic_sni.is_none()
                && s.http_host.is_none()
                && transport_of(s.ip_proto).is_some();
            let random = state.distinct_pct >= 60;
            let explicitly_filed = c.status == VerdictStatus::Filed
                && c.scenario.is_some_and(|i| {
                    let sc = compiled.scenario(i);
                    !sc.services.is_empty()
                        && sc.services.iter().any(|sv| {
                            *sv != Service::Any
                                && transport_of(s.ip_proto)
                                    .is_some_and(|t| sv.matches(t, s.responder_port))
                        })
                });
            if (vpn || (unnamed && random)) && !explicitly_filed {
                let what = match s.app_proto {
                    Some(p) if vpn => format!("a {p} tunnel"),
                    _ if vpn => "an IPsec tunnel".to_string(),
                    _ => format!(
                        "high-entropy payload with no recognised protocol ({}% distinct bytes)",
                        state.distinct_pct
                    ),
                };
                let mut e = self.alert(
                    AlertKind::OpaqueTunnel,
                    AlertKind::OpaqueTunnel.default_severity(),
                    &tx().ts,
                    Some(event),
                    c.scenario,
                    c.enterprise,
                    format!("{}: {what} hides what crosses the line", tx().flow_desc),
                );
                set_common(&mut e, &tx().recipient, &tx().service, delta_bytes);
                alerts.push(e);
            }
        }

        // Line misuse: many foreign sources reaching one domestic service (that answered:
        // unanswered probes and scans do not count).
        if c.direction == Direction::Import && s.pkts_rev > 0 {
            let hour = (s.first_micros.div_euclid(1_000_000)
                + crossline_config::time::SHANGHAI_OFFSET_SECS)
                .div_euclid(3600);
            let n = lock(&self.shared.misuse).add(
                (domestic, s.ip_proto, s.responder_port),
                foreign,
                hour,
                self.live.cfg.misuse_sources,
            );
            if let Some(n) = n {
                let mut e = self.alert(
                    AlertKind::LineMisuse,
                    AlertKind::LineMisuse.default_severity(),
                    &tx().ts,
                    Some(event),
                    c.scenario,
                    c.enterprise,
                    format!(
                        "{n} distinct foreign sources reached {domestic} ({}) within an hour: the line is serving the public, not internal office use",
                        tx().service
                    ),
                );
                set_common(&mut e, &domestic.to_string(), &tx().service, delta_bytes);
                out.push(e);
                event_alerted(event);
            }
        }

        if !alerts.is_empty() {
            event_alerted(event);
        }
        for e in alerts {
            self.shape(e, &c, now, out);
        }
        if final_record {
            state.evidence = None;
        }
    }

    fn on_tick(&mut self, now: i64, health: &Health, out: &mut Vec<Event>) {
        self.refresh();
        // The data plane ticks at most once per second of packet time, plus once at the end.
        // A tick less than a second after the previous one is that final tick: flush every
        // pending follow-up so no folded count is lost at the end of a capture.
        let final_tick = self
            .last_tick
            .is_some_and(|t| now >= t && now - t < TICK_MICROS);
        self.last_tick = Some(now);
        if final_tick {
            self.shaper.flush(out);
        } else {
            self.shaper.tick(now, out);
        }
        let ts = crossline_config::event::format_timestamp_micros(now);

        // Expiry warnings, checked when the Beijing day changes: once per filing (and last
        // valid day, so a renewed filing warns again) per level reached, across workers. Days
        // left are working days (CAC Order 16 art. 9), calendar days where no holiday
        // schedule is known (see `DetectShared::days_left`).
        let today = shanghai(now.div_euclid(1_000_000)).date;
        if self.expiry_day != Some(today) {
            self.expiry_day = Some(today);
            let levels = expiry_levels(self.live.cfg.expiry_warning_days);
            let first = i64::from(levels[0]);
            let compiled = Arc::clone(&self.compiled);
            for (i, sc) in compiled.registry.scenarios.iter().enumerate() {
                let calendar_left = sc.valid_until.days_since_epoch() - today.days_since_epoch();
                // Working days are never more than calendar days, and N working days never
                // span more than 2N + 30 calendar days (weekends plus the longest holidays).
                if sc.valid_from > today || calendar_left < 0 || calendar_left > 2 * first + 30 {
                    continue;
                }
                let (left, working) = self.shared.days_left(today, sc.valid_until);
                let Some(level) = levels.iter().rev().find(|l| left <= i64::from(**l)) else {
                    continue;
                };
                if !lock(&self.shared.expiry).first(&sc.id, sc.valid_until, *level) {
                    continue;
                }
                let unit = match (working, left == 1) {
                    (true, true) => "working day",
                    (true, false) => "working days",
                    (false, true) => "calendar day",
                    (false, false) => "calendar days",
                };
                let note = if working {
                    String::new()
                } else {
                    let cal = &self.shared.calendar;
                    let year = (today.year..=sc.valid_until.year)
                        .find(|y| !cal.covers(*y))
                        .unwrap_or(sc.valid_until.year);
                    format!(", counted in calendar days: no holiday schedule for {year}")
                };
                let ent = sc.enterprise_index as u32;
                let mut e = self.alert(
                    AlertKind::FilingExpiring,
                    AlertKind::FilingExpiring.default_severity(),
                    &ts,
                    None,
                    Some(i as u32),
                    Some(ent),
                    format!(
                        "Filing {} ({}) of {} for transfers to {} expires on {}: {left} {unit} left (warning level {level} working days{note})",
                        sc.id,
                        sc.filing_ref,
                        compiled.registry.enterprises[sc.enterprise_index].name,
                        sc.recipient.name,
                        sc.valid_until,
                    ),
                );
                if let Some(a) = e.alert.as_mut() {
                    a.days_left = Some(left.max(0));
                    a.valid_from = Some(sc.valid_from.to_string());
                    a.valid_until = Some(sc.valid_until.to_string());
                }
                out.push(e);
            }
        }

        // Persons thresholds (one worker reports each crossing: the book remembers it).
        let crossings = lock(&self.shared.persons).crossings();
        for x in crossings {
            let (ent_index, who) = match &x.owner {
                PersonsOwner::Enterprise { id, .. } => (
                    self.compiled
                        .registry
                        .enterprises
                        .iter()
                        .position(|e| &e.id == id)
                        .map(|i| i as u32),
                    id.clone(),
                ),
                PersonsOwner::Unknown(ip) => (None, format!("unfiled source {ip}")),
            };
            let what = if x.sensitive {
                "sensitive personal information (bank cards)"
            } else {
                "personal information"
            };
            let mut e = self.alert(
                AlertKind::PersonsThreshold,
                AlertKind::PersonsThreshold.default_severity(),
                &ts,
                None,
                None,
                ent_index,
                format!(
                    "{who} has exported {what} of about {} distinct persons in {}: {}% of the {} limit",
                    with_thousands(x.estimate),
                    x.year,
                    x.percent,
                    with_thousands(x.limit)
                ),
            );
            if let Some(a) = e.alert.as_mut() {
                a.persons = Some(x.estimate);
            }
            out.push(e);
        }

        // Sensor gaps: health figures are line totals, so only worker 0 reports them.
        if self.worker == 0 {
            let h = health;
            let l = self.last_health;
            let kernel = h.drops_kernel.saturating_sub(l.drops_kernel);
            let iface = h.drops_interface.saturating_sub(l.drops_interface);
            let queue = h.drops_queue.saturating_sub(l.drops_queue);
            let evict = h.evictions.saturating_sub(l.evictions);
            let loss = h.capture_loss.saturating_sub(l.capture_loss);
            self.last_health = *h;
            if kernel + iface + queue + evict + loss > 0 {
                let mut e = self.alert(
                    AlertKind::SensorGap,
                    AlertKind::SensorGap.default_severity(),
                    &ts,
                    None,
                    None,
                    None,
                    format!(
                        "The sensor lost visibility since the last check: {kernel} kernel drops, {iface} interface drops, {queue} queue drops, {evict} flow evictions, {loss} acknowledged TCP segments never captured"
                    ),
                );
                if let Some(a) = e.alert.as_mut() {
                    a.count = kernel + iface + queue + evict + loss;
                }
                out.push(e);
            }
        }
    }
}

/// Texts shared by the alerts of one flow record.
struct Texts {
    ts: String,
    service: String,
    recipient: String,
    flow_desc: String,
    scen_id: String,
}

impl Texts {
    fn new(
        s: &FlowSummary<'_>,
        c: &Classification,
        delta_bytes: u64,
        compiled: &Compiled,
    ) -> Texts {
        let service = service_label(s.ip_proto, s.responder_port);
        let domestic = c.domestic.unwrap_or(s.initiator);
        let foreign = c.foreign.unwrap_or(s.responder);
        let (recipient, recipient_is_name) = recipient_of(s, c);
        let flow_desc = match c.direction {
            Direction::Import => format!(
                "{foreign} fetched {} from {domestic} ({service})",
                human_bytes(delta_bytes)
            ),
            _ if recipient_is_name => format!(
                "{domestic} sent {} to {recipient} [{foreign}] ({service})",
                human_bytes(delta_bytes)
            ),
            _ => format!(
                "{domestic} sent {} to {recipient} ({service})",
                human_bytes(delta_bytes)
            ),
        };
        Texts {
            ts: crossline_config::event::format_timestamp_micros(s.last_micros),
            service,
            recipient,
            flow_desc,
            scen_id: c
                .scenario
                .map(|i| compiled.scenario(i).id.clone())
                .unwrap_or_default(),
        }
    }
}

fn set_common(e: &mut Event, recipient: &str, service: &str, bytes: u64) {
    if let Some(a) = e.alert.as_mut() {
        a.recipient = Some(recipient.to_string());
        a.service = Some(service.to_string());
        a.bytes = bytes;
    }
}

fn event_alerted(event: &mut Event) {
    if let Some(f) = event.flow.as_mut() {
        f.alerted = true;
    }
}

/// The far end as matched: the matched name, else the best name known (never an ECH outer
/// SNI), else the address. The flag tells whether it is a name. When the foreign end initiated
/// the flow, every name describes the domestic server: the recipient is the foreign address.
fn recipient_of(s: &FlowSummary<'_>, c: &Classification) -> (String, bool) {
    if c.direction == Direction::Import {
        return (
            c.foreign
                .map_or_else(|| s.initiator.to_string(), |ip| ip.to_string()),
            false,
        );
    }
    let sni_ok = !s.ech;
    let name = match c.name_source {
        Some(NameSource::Tls) => s.tls_sni,
        Some(NameSource::Quic) => s.quic_sni,
        Some(NameSource::Http) => s.http_host,
        Some(NameSource::Dns) => s.dns_name,
        None => None,
    }
    .or(if sni_ok { s.tls_sni } else { None })
    .or(if sni_ok { s.quic_sni } else { None })
    .or(s.http_host)
    .or(s.dns_name);
    match name {
        Some(n) => (n.to_ascii_lowercase(), true),
        None => (
            c.foreign
                .map_or_else(|| s.responder.to_string(), |ip| ip.to_string()),
            false,
        ),
    }
}

#[cfg(test)]
mod tests;
