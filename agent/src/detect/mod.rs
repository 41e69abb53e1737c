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
//! [`crate::classify`]) and returns its findings (see [`crate::analysis::findings`]): the
//! verdict (direction, export bytes, status) and the alerts raised, one function per kind in
//! `alerts.rs`:
//! the verdict's alert, `volume_cap_exceeded`, `volume_surge`, `country_mismatch`,
//! `personal_info_cleartext`, `negative_list_category`, `important_data_marker`,
//! `opaque_tunnel`, `line_misuse`. A flow matching an `[[exclude]]` entry of the agent config
//! (see [`crate::classify::exclude`]) gets the verdict `excluded` and raises nothing. Per tick it
//! emits `filing_expiring` (once per filing per level of working days left),
//! `persons_threshold`, `sensor_gap` (worker 0 only, since health figures are line totals) and
//! the folded follow-ups of [`shaping`].
//!
//! Early verdicts (live only, [`Analysis::on_early_verdict`]): the worker asks
//! [`Analysis::early_verdict`] (bit tests on the flow state) after each payload; once the first
//! export payload is seen (and `detect.min_export_bytes` were sent) it has the flow classified
//! right away and the verdict's alert raised through the shaper, with the bytes seen so far. A
//! flow judged without an L7 name is judged once more when one arrives; an alert of a changed
//! verdict is marked re-judged. The flow's first record then skips a verdict alert equal to the
//! early one (the record still carries the verdict and totals) and marks a changed one
//! re-judged. Offline, flows are judged at their records only.
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

mod alerts;
pub mod counters;
pub mod geoip;
pub mod hll;
pub mod pi;
pub mod reload;
pub mod shaping;
pub mod signatures;
pub mod state;

use crate::analysis::findings::{AlertFinding, Findings, NameRef, ServiceRef, VerdictFinding};
use crate::analysis::{Analysis, EarlyVerdict, EndReason, FlowSummary, Health, PayloadView};
use crate::classify::exclude::Exclusions;
use crate::classify::{Classification, Compiled, NameSource, Scratch};
use counters::{ExpiryBook, MisuseBook, OwnerRef, PersonsBook, PersonsLimits, VolumeBook};
use crossline_config::agent::{AgentConfig, DetectConfig};
use crossline_config::event::{Direction, Judged, VerdictStatus};
use crossline_config::holidays::WorkCalendar;
use crossline_config::registry::{Basis, DataCategory};
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
    /// Alert identities evicted from the workers' full shapers.
    shaper_evictions: AtomicU64,
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
            shaper_evictions: AtomicU64::new(0),
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

    /// Alert identities evicted (oldest first, their follow-up emitted early) because a
    /// worker's shaper held [`shaping::MAX_KEYS`] identities.
    pub fn shaper_evictions(&self) -> u64 {
        self.shaper_evictions.load(Ordering::Relaxed)
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

/// Early verdict bits (`FlowState::early`, live only; see [`Analysis::early_verdict`]).
/// Export payload was seen.
const E_EXPORT: u8 = 1;
/// Judged at the first export.
const E_JUDGED: u8 = 2;
/// Judged without an L7 name: judged again when one arrives.
const E_NAMELESS: u8 = 4;
/// The early judgement raised the verdict alert.
const E_ALERTED: u8 = 8;
/// No more early judgement (judged again already, not cross-border, excluded, or a record was
/// written).
const E_DONE: u8 = 16;
/// A flow record was written.
const E_RECORDED: u8 = 32;

/// Interval of the data plane's ticks.
const TICK_MICROS: i64 = 1_000_000;

/// Most masked evidence items kept per flow record.
pub const MAX_EVIDENCE: usize = 3;

/// What the earlier records of a flow covered ([`FlowState::accounted`]).
#[derive(Debug, Default, Clone, Copy)]
struct Accounted {
    /// Export bytes and payload bytes counted by earlier records.
    bytes: u64,
    payload: u64,
    /// Last packet time of the previous record of this flow.
    last_record_micros: i64,
}

impl FlowState {
    /// Forget the masked evidence (the flow's last record was written).
    fn drop_evidence(&mut self) {
        if let Some(r) = self.rare.as_mut() {
            r.evidence = Vec::new();
        }
    }

    /// Take the masked evidence of this record.
    pub(super) fn take_evidence(&mut self) -> Vec<String> {
        self.rare
            .as_mut()
            .map(|r| std::mem::take(&mut r.evidence))
            .unwrap_or_default()
    }

    /// Remember the last packet time of a record that is not the flow's last.
    fn note_record(&mut self, last_micros: i64, final_record: bool) {
        if !final_record {
            self.rare
                .get_or_insert_with(Box::default)
                .accounted
                .last_record_micros = last_micros;
        }
    }
}

/// Per-flow detection state, kept in the flow table entry (64 bytes).
#[derive(Debug, Default)]
pub struct FlowState {
    carry: PiCarry,
    flags: u8,
    /// Percentage of distinct byte values in the first export payload sample (0 = none yet).
    distinct_pct: u8,
    pi_counts: [u16; 4],
    scanned: u32,
    sig_hits: u64,
    /// What few flows need: masked evidence, and what the earlier records of a long flow
    /// covered (boxed, so a flow entry stays within its 256-byte budget).
    rare: Option<Box<Rare>>,
    /// Early verdict bits (`E_*`).
    early: u8,
    /// The verdict of the latest early judgement.
    early_status: Option<VerdictStatus>,
}

/// The rarely needed part of a [`FlowState`].
#[derive(Debug, Default)]
struct Rare {
    /// Masked evidence of this record.
    evidence: Vec<String>,
    /// What the earlier records of this flow covered.
    accounted: Accounted,
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
    shaper: shaping::Shaper<Box<AlertFinding>>,
    /// A record's alerts on their way to the shaper (emptied after each record; kept for its
    /// capacity: a record that raises one would otherwise allocate the list and free it).
    shaped: Vec<Box<AlertFinding>>,
    /// The shaping identity of the alert being shaped (kept for its capacity).
    key: String,
    last_health: Health,
    expiry_day: Option<Date>,
    last_tick: Option<i64>,
    /// Yearly person limits per enterprise index of `compiled`.
    limits: Vec<PersonsLimits>,
    /// Offline with several workers: persons seen in payloads, kept for worker 0
    /// ([`Analysis::buffer_shared_effects`]); `None` when they are counted at once.
    buffered: Option<std::cell::RefCell<Vec<crate::analysis::PersonSeen>>>,
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
            shaped: Vec::new(),
            key: String::new(),
            last_health: Health::default(),
            expiry_day: None,
            last_tick: None,
            limits: Vec::new(),
            buffered: None,
        }
        .with_limits()
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<DetectShared> {
        &self.shared
    }

    /// Emit every pending follow-up alert (call once at end of capture or shutdown).
    pub fn finish(&mut self, out: &mut Vec<Box<AlertFinding>>) {
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

    /// Offer an alert through the shaper. The identity is (kind, enterprise or source /24 or
    /// /64, recipient, service).
    fn shape(
        &mut self,
        a: Box<AlertFinding>,
        c: &Classification,
        now: i64,
        out: &mut Vec<Box<AlertFinding>>,
    ) {
        if !self.shaper.folds() {
            // Folding happens elsewhere (the offline writer) or not at all: no key to build.
            out.push(a);
            return;
        }
        let who = match (&a.enterprise, c.domestic) {
            (Some(ent), _) => shaping::Who::Enterprise(ent),
            (None, Some(ip)) => shaping::Who::Prefix(ip),
            (None, None) => shaping::Who::Nobody,
        };
        self.key.clear();
        shaping::identity_key_into(
            &mut self.key,
            a.kind.as_str(),
            who,
            a.recipient.as_deref().unwrap_or(""),
            a.service,
        );
        let before = self.shaper.evictions();
        self.shaper.offer(&self.key, a, now, out);
        let evicted = self.shaper.evictions() - before;
        if evicted > 0 {
            self.shared
                .shaper_evictions
                .fetch_add(evicted, Ordering::Relaxed);
        }
    }

    fn record_person(
        &self,
        domestic: IpAddr,
        vlan: &[u16; 3],
        kind: PiKind,
        ident: &[u8],
        now: i64,
    ) {
        let hash = self.shared.person_hash(kind, ident);
        let owner_index = self.compiled.owner_of(domestic, vlan);
        let year = shanghai(now.div_euclid(1_000_000)).date.year;
        self.shared.pi_found.fetch_add(1, Ordering::Relaxed);
        let seen = crate::analysis::PersonSeen {
            owner: owner_index,
            domestic,
            year,
            hash,
            sensitive: kind.sensitive(),
        };
        match &self.buffered {
            Some(buf) => buf.borrow_mut().push(seen),
            None => self.count_person(&seen),
        }
    }

    /// Add one person to the shared person counts.
    fn count_person(&self, p: &crate::analysis::PersonSeen) {
        let (owner, limits) = match p.owner.and_then(|i| {
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
                OwnerRef::Unknown(p.domestic),
                persons_limits(&self.compiled, None),
            ),
        };
        lock(&self.shared.persons).add(owner, p.year, p.hash, p.sensitive, limits);
    }
}

/// `tcp/443`, `udp/53`, or `ip/50` for protocols without ports.
pub fn service_label(ip_proto: u8, port: u16) -> String {
    ServiceRef { ip_proto, port }.to_string()
}

pub use crate::analysis::findings::human_bytes;

fn distinct_pct(sample: &[u8]) -> u8 {
    // Set a bit per byte value, then count them: no branch per byte.
    let mut seen = [0u64; 4];
    for &b in sample {
        seen[usize::from(b >> 6)] |= 1u64 << (b & 63);
    }
    let n: u32 = seen.iter().map(|w| w.count_ones()).sum();
    ((n * 100) / sample.len().max(1) as u32).clamp(1, 100) as u8
}

/// The verdict of a flow matching `[[exclude]]` entry number `x`.
fn excluded(s: &FlowSummary<'_>, c: &Classification, x: usize) -> VerdictFinding {
    VerdictFinding {
        direction: c.direction,
        export_bytes: Some(match c.direction {
            Direction::Export => s.bytes_fwd,
            _ => s.bytes_rev,
        }),
        status: VerdictStatus::Excluded,
        scenario: None,
        enterprise: None,
        name_source: None,
        ech: c.ech,
        exclude: u32::try_from(x).ok().map(NameRef::Exclude),
    }
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
        state.early |= E_EXPORT;
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
        let vlan = &view.vlan;
        let FlowState {
            carry,
            pi_counts,
            rare,
            sig_hits,
            ..
        } = state;
        let now = view.now_micros;
        carry.scan(data, &mut |kind, ident| {
            let c = &mut pi_counts[kind.index()];
            *c = c.saturating_add(1);
            self.record_person(domestic, vlan, kind, ident, now);
            let ev = &mut rare.get_or_insert_with(Box::default).evidence;
            if ev.len() < MAX_EVIDENCE {
                ev.push(pi::mask_string(kind, ident));
            }
        });
        self.live.signatures.scan(data, sig_hits);
    }

    fn early_verdict(&self, state: &FlowState, bytes: [u64; 2]) -> EarlyVerdict {
        let e = state.early;
        if e & E_EXPORT == 0 || e & E_DONE != 0 {
            return EarlyVerdict::None;
        }
        if e & E_JUDGED == 0 {
            let min = self.live.cfg.min_export_bytes;
            let export = if state.flags & F_EXPORT_FROM_INITIATOR != 0 {
                bytes[0]
            } else {
                bytes[1]
            };
            if min > 0 && export < min {
                return EarlyVerdict::None;
            }
            return EarlyVerdict::FirstExport;
        }
        if e & E_NAMELESS != 0 {
            EarlyVerdict::OnName
        } else {
            EarlyVerdict::None
        }
    }

    fn on_early_verdict(&mut self, state: &mut FlowState, s: &FlowSummary<'_>, out: &mut Findings) {
        self.refresh();
        let first = state.early & E_JUDGED == 0;
        let named = s.tls_sni.is_some() || s.quic_sni.is_some() || s.http_host.is_some();
        state.early |= E_JUDGED;
        if !first || named {
            state.early &= !E_NAMELESS;
        } else {
            state.early |= E_NAMELESS;
        }
        if !first {
            state.early |= E_DONE;
        }
        let c = self.compiled.classify(s, s.first_micros, &mut self.scratch);
        if c.status == VerdictStatus::NotCrossBorder
            || self.live.exclusions.matches(s, &c).is_some()
        {
            state.early |= E_DONE;
            return;
        }
        let before = state.early_status.replace(c.status);
        if !first && before == Some(c.status) {
            return;
        }
        let (export_bytes, export_payload) = match c.direction {
            Direction::Export => (s.bytes_fwd, s.payload_fwd),
            Direction::Import => (s.bytes_rev, s.payload_rev),
            Direction::Internal | Direction::External => (0, 0),
        };
        let r = alerts::Record {
            s,
            c: &c,
            judge: s.first_micros,
            delta_bytes: export_bytes,
            carries: export_payload > 0,
            domestic: c.domestic.unwrap_or(s.initiator),
            foreign: c.foreign.unwrap_or(s.responder),
            early: None,
        };
        if let Some(mut a) = self.verdict_alert(&r) {
            a.judged = Some(if first {
                Judged::FirstExport
            } else {
                Judged::Rejudged
            });
            state.early |= E_ALERTED;
            out.alerted = true;
            self.shape(a, &c, s.last_micros, &mut out.alerts);
        }
    }

    fn on_flow_record(&mut self, state: &mut FlowState, s: &FlowSummary<'_>, out: &mut Findings) {
        self.refresh();
        // The first record after an early judgement (live) does not raise the same verdict
        // alert again.
        let early = (state.early & (E_JUDGED | E_RECORDED) == E_JUDGED)
            .then(|| {
                state
                    .early_status
                    .map(|st| (st, state.early & E_ALERTED != 0))
            })
            .flatten();
        state.early |= E_DONE | E_RECORDED;
        let judge = state
            .rare
            .as_ref()
            .map(|r| r.accounted.last_record_micros)
            .filter(|&t| t != 0)
            .unwrap_or(s.first_micros);
        let c = self.compiled.classify(s, judge, &mut self.scratch);
        let final_record = s.reason != EndReason::ActiveTimeout;
        let (export_bytes, export_payload) = match c.direction {
            Direction::Export => (s.bytes_fwd, s.payload_fwd),
            Direction::Import => (s.bytes_rev, s.payload_rev),
            Direction::Internal | Direction::External => (0, 0),
        };

        // `[[exclude]]`: infrastructure traffic, checked before step 1. Written and counted
        // (by the writer, per entry name), never alerted on.
        if let Some(x) = self.live.exclusions.matches(s, &c) {
            out.verdict = Some(excluded(s, &c, x));
            state.note_record(s.last_micros, final_record);
            state.pi_counts = [0; 4];
            state.sig_hits = 0;
            if final_record {
                state.drop_evidence();
            }
            return;
        }

        let cross = c.status != VerdictStatus::NotCrossBorder;
        out.verdict = Some(VerdictFinding {
            direction: c.direction,
            export_bytes: cross.then_some(export_bytes),
            status: c.status,
            scenario: c.scenario.map(NameRef::Scenario),
            enterprise: c.enterprise.map(NameRef::Enterprise),
            name_source: c.name_source.filter(|_| cross).map(NameSource::as_str),
            ech: c.ech,
            exclude: None,
        });
        if !cross {
            state.note_record(s.last_micros, final_record);
            return;
        }
        if final_record && state.carry.pending() {
            self.finish_carry(state, &c, &s.vlan, s.last_micros);
        }

        let before = state.rare.as_ref().map(|r| r.accounted).unwrap_or_default();
        let delta_bytes = export_bytes.saturating_sub(before.bytes);
        let delta_payload = export_payload.saturating_sub(before.payload);
        if !final_record {
            let a = &mut state.rare.get_or_insert_with(Box::default).accounted;
            a.bytes = a.bytes.max(export_bytes);
            a.payload = a.payload.max(export_payload);
            a.last_record_micros = s.last_micros;
        }
        let min = self.live.cfg.min_export_bytes;
        let r = alerts::Record {
            s,
            c: &c,
            judge,
            delta_bytes,
            carries: delta_payload > 0 && (min == 0 || delta_bytes >= min),
            domestic: c.domestic.unwrap_or(s.initiator),
            foreign: c.foreign.unwrap_or(s.responder),
            early,
        };
        self.record_alerts(&r, state, out);
        if final_record {
            state.drop_evidence();
        }
    }

    fn on_tick(&mut self, now: i64, health: &Health, out: &mut Findings) {
        self.refresh();
        // The data plane ticks at most once per second of packet time, plus once at the end.
        // A tick less than a second after the previous one is that final tick: flush every
        // pending follow-up so no folded count is lost at the end of a capture.
        let final_tick = self
            .last_tick
            .is_some_and(|t| now >= t && now - t < TICK_MICROS);
        self.last_tick = Some(now);
        if final_tick {
            self.shaper.flush(&mut out.alerts);
        } else {
            self.shaper.tick(now, &mut out.alerts);
        }
        // Tick alerts are not shaped: expiry warnings are once per level, persons crossings
        // once per threshold, sensor gaps once per tick with a count.
        self.expiry_alerts(now, &mut out.alerts);
        self.persons_alerts(now, &mut out.alerts);
        out.alerts.extend(self.sensor_gap_alert(now, health));
    }

    fn buffer_shared_effects(&mut self, on: bool) {
        if !on {
            if let Some(buf) = self.buffered.take() {
                for p in buf.into_inner() {
                    self.count_person(&p);
                }
            }
        } else if self.buffered.is_none() {
            self.buffered = Some(std::cell::RefCell::new(Vec::new()));
        }
    }

    fn take_shared_effects(&mut self, into: &mut crate::analysis::SharedEffects) {
        if let Some(buf) = &self.buffered {
            into.persons.append(&mut buf.borrow_mut());
        }
    }

    fn apply_shared_effects(&mut self, effects: &mut crate::analysis::SharedEffects) {
        self.refresh();
        for p in effects.persons.drain(..) {
            self.count_person(&p);
        }
    }

    fn name_of(&self, name: NameRef) -> Option<&str> {
        let reg = &self.compiled.registry;
        match name {
            NameRef::Scenario(i) => reg.scenarios.get(i as usize).map(|s| s.id.as_str()),
            NameRef::Enterprise(i) => reg.enterprises.get(i as usize).map(|e| e.id.as_str()),
            NameRef::Exclude(i) => self.live.exclusions.names().nth(i as usize),
        }
    }
}

impl Classifier {
    /// Finish a digit run left at the end of the stream.
    fn finish_carry(&self, state: &mut FlowState, c: &Classification, vlan: &[u16; 3], now: i64) {
        let Some(domestic) = c.domestic else { return };
        let FlowState {
            carry,
            pi_counts,
            rare,
            ..
        } = state;
        carry.finish(&mut |kind, ident| {
            let n = &mut pi_counts[kind.index()];
            *n = n.saturating_add(1);
            self.record_person(domestic, vlan, kind, ident, now);
            let ev = &mut rare.get_or_insert_with(Box::default).evidence;
            if ev.len() < MAX_EVIDENCE {
                ev.push(pi::mask_string(kind, ident));
            }
        });
    }

    /// The alerts of a cross-border record, in a fixed order. Most go through the shaper;
    /// the flow is marked alerted when any alert is about it, folded or not.
    fn record_alerts(&mut self, r: &alerts::Record<'_>, state: &mut FlowState, out: &mut Findings) {
        let c = r.c;
        let mut shaped = std::mem::take(&mut self.shaped);
        shaped.clear();
        if let Some(mut a) = self.verdict_alert(r) {
            match r.early {
                // Raised already at the first export (or when the name arrived).
                Some((status, true)) if status == c.status => out.alerted = true,
                Some((status, _)) if status != c.status => {
                    a.judged = Some(Judged::Rejudged);
                    shaped.push(a);
                }
                _ => shaped.push(a),
            }
        }
        if let (VerdictStatus::Filed, Some(si)) = (c.status, c.scenario) {
            // Daily caps and surges (filed bytes only).
            if r.delta_bytes > 0 {
                let o = self.count_volume(r, si);
                // Not shaped: cap alerts are once per level per day already.
                if let Some(a) = self.cap_alert(r, si, &o) {
                    out.alerts.push(a);
                    out.alerted = true;
                }
                // Not shaped: a surge is raised once per scenario and hour.
                if let Some(sg) = &o.surge {
                    out.alerts.push(self.surge_alert(r, si, sg));
                    out.alerted |= sg.this_record;
                }
            }
            if r.carries {
                shaped.extend(self.country_alert(r, si));
            }
        }
        shaped.extend(self.pi_alert(r, state));
        self.signature_alerts(r, state, &mut shaped);
        if r.carries {
            shaped.extend(self.tunnel_alert(r, state));
        }
        // Not shaped: raised once per domestic service and hour, when the count of distinct
        // foreign sources reaches the limit.
        if let Some(a) = self.misuse_alert(r) {
            out.alerts.push(a);
            out.alerted = true;
        }
        if !shaped.is_empty() {
            out.alerted = true;
        }
        for a in shaped.drain(..) {
            self.shape(a, c, r.s.last_micros, &mut out.alerts);
        }
        self.shaped = shaped;
    }
}

#[cfg(test)]
mod tests;
