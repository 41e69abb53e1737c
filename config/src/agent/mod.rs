//! Agent configuration (`agent.toml`), validated.
//!
//! Only `gateway`, `domestic` and `registry` are required; every section has defaults that work.
//! A relative path is relative to the folder of the file it is written in.

use crate::holidays::HolidayYear;
use crate::registry::{HostPattern, IpNet, Registry, Service};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The validated agent configuration, with its registry loaded.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// File the config was read from.
    pub path: PathBuf,
    /// Gateway id, e.g. `gw-bj-01` (lower-case letters, digits, `-`, `_`).
    pub gateway: String,
    /// The China side of the line. Never empty.
    pub domestic: Vec<IpNet>,
    /// Absolute path of the registry file.
    pub registry_path: PathBuf,
    pub registry: Registry,
    /// Directory of the detector's cumulative state for `run` (`state_dir`, default `state`
    /// next to the config file).
    pub state_dir: PathBuf,
    /// How often `run` writes the state and sends sketches (`state_interval`, default 60 s).
    pub state_interval: Duration,
    pub capture: CaptureConfig,
    pub uplink: Option<UplinkConfig>,
    pub metrics: MetricsConfig,
    pub detect: DetectConfig,
}

/// `[capture]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// Interfaces for `run` (live). Default: none (offline only).
    pub interfaces: Vec<String>,
    /// Default 65535.
    pub snaplen: u32,
    /// Kernel buffer per handle, bytes. Default 64 MiB.
    pub buffer_bytes: u64,
    /// Shard workers. Default: number of cores (at least 1).
    pub workers: usize,
    /// Flow capacity per worker. Default 1,000,000.
    pub flows_per_worker: usize,
    /// Capacity of each capture -> worker channel, in batches. Default 256.
    pub queue_batches: usize,
    /// BPF filter applied to live handles and to offline capture files. Default none.
    pub filter: Option<String>,
    /// User `run` switches to when started as root, keeping only `CAP_NET_RAW`. Default none:
    /// `crossline` when that user exists; `"root"` keeps root.
    pub user: Option<String>,
    pub tcp_established_timeout: Duration,
    /// Default 5 s (SYN floods).
    pub tcp_unestablished_timeout: Duration,
    pub tcp_closed_timeout: Duration,
    pub udp_timeout: Duration,
    pub icmp_timeout: Duration,
    /// A running record is emitted for flows older than this. Default 300 s.
    pub active_timeout: Duration,
    /// Bounded IP fragment map entries per worker. Default 4096.
    pub fragment_entries: usize,
    /// Bytes of a TLS ClientHello reassembled per flow. Default 16 KiB.
    pub tls_reassembly_bytes: usize,
    /// Global byte budget of the per-flow reassembly buffers (TLS, HTTP, QUIC Initials), all
    /// workers together. Past it, flows are parsed without reassembly (counted). Default 64 MiB.
    pub reassembly_budget: u64,
    /// DNS name cache entries (shared). Default 65536.
    pub dns_cache_entries: usize,
    /// `analyze` with more than one worker: how much nicer than the rest of the process its
    /// writer thread runs (0-19). Default 0. On a machine that runs nothing else, with as many workers as cores, the
    /// writer is the one thread beyond one per core, and a nicer writer lets it take the core
    /// a waiting worker thread leaves rather than the capture thread's; on a busy machine it
    /// only makes the writer's share smaller, and the run slower.
    pub writer_nice: u8,
    /// Estimated capture loss (acknowledgements covering sequence space never captured, per
    /// acknowledgement) above which an interval raises `sensor_gap`. Default 0.1.
    pub loss_alert_ratio: f64,
    /// Seed of the events' Community ID (Zeek's and Suricata's `community-id-seed`): set it
    /// to what the operator's other sensors use so the IDs join. Default 0.
    pub community_id_seed: u16,
    /// `run`: after the stop signal, how long the capture thread goes on reading what the
    /// kernel's capture buffer already holds; what is still there after it is counted
    /// (`drops.unread_at_stop`) and named in the log. Default 2 s; 0 stops at once.
    pub stop_drain: Duration,
}

/// `[uplink]`: stream events to a collector. Absent section = no uplink.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkConfig {
    /// `https://host:port` of each collector ingest endpoint (`collector` in the file: one URL
    /// or a list), in order of preference: batches go to one at a time, the next on failure.
    pub collectors: Vec<String>,
    /// Server name expected in every collector's certificate. Default: host of each URL.
    pub server_name: Option<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub spool_dir: PathBuf,
    /// Default 1 GiB.
    pub spool_max_bytes: u64,
    /// Default 16 MiB.
    pub spool_segment_bytes: u64,
    pub fsync: FsyncPolicy,
    /// Events per batch. Default 500.
    pub batch_events: usize,
    /// A batch is sealed before its body would pass this many bytes. Default 2 MiB; at most
    /// [`crate::limits::MAX_BATCH_BODY`] (`check` refuses more).
    pub batch_bytes: usize,
    /// Longest wait before a partial batch is sent. Default 1 s.
    pub batch_interval: Duration,
    /// Send flow records, not only alerts and stats. Default true.
    pub send_flows: bool,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long `analyze` waits after the capture for the collector to acknowledge the spool
    /// before it exits non-zero with the count still spooled. Default 60 s.
    pub drain_timeout: Duration,
}

/// When the spool calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every appended batch (default).
    Always,
    /// At most once per interval.
    Interval(Duration),
    /// Never (the OS decides).
    Never,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// `/metrics` listen address for `run`. Default none.
    pub listen: Option<SocketAddr>,
}

/// `[detect]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// Repeats of an alert identity within this interval are folded. Default 300 s.
    pub fold_interval: Duration,
    /// Minimum export bytes for verdict alerts. Default 0 (off).
    pub min_export_bytes: u64,
    /// Key for hashing personal identifiers before counting. Default: a fixed development key,
    /// with a warning from `check`.
    pub pi_key: Vec<u8>,
    /// Payload bytes scanned per flow and direction. Default 64 KiB.
    pub pi_scan_bytes: usize,
    /// Raise severity one step for green-channel enterprises (routing flag). Default false.
    pub green_channel_raise: bool,
    /// MaxMind-format country database. Default none.
    pub geoip: Option<PathBuf>,
    /// First expiry warning level, in working days before a filing's last valid day
    /// (CAC Order 16 art. 9: an extension is requested within 60 working days before expiry).
    /// Default 60. `filing_expiring` is raised once per filing per level reached: this value,
    /// then 30 and 10 working days (the levels below it).
    pub expiry_warning_days: u32,
    /// Volume surge: k in baseline + k·σ. Default 3.
    pub surge_k: f64,
    /// Volume surge: bytes in an hour below this never surge. Default 100 MB.
    pub surge_floor_bytes: u64,
    /// Line misuse: distinct foreign sources reaching one domestic service. Default 50.
    pub misuse_sources: u32,
    /// Content signatures (negative-list categories, important-data markers).
    pub signatures: Vec<Signature>,
    /// `[[exclude]]` entries (top level of `agent.toml`): infrastructure traffic that is not a
    /// data export. Matching cross-border flows get the verdict `excluded`.
    pub exclude: Vec<Exclude>,
    /// `[[holidays]]` entries (top level of `agent.toml`): holiday schedules added to (or
    /// replacing) the years shipped in [`crate::holidays::PUBLISHED`].
    pub holidays: Vec<HolidayYear>,
}

/// Expiry warning levels in working days for a first level of `first`: `first`, then 30 and
/// 10 when below it, highest first.
pub fn expiry_levels(first: u32) -> Vec<u32> {
    let mut v = vec![first];
    v.extend([30, 10].into_iter().filter(|l| *l < first));
    v
}

/// An `[[exclude]]` entry: cross-border traffic that is not a data export (resolvers, NTP, the
/// carrier's management). A flow matches when every key given matches (any value of a list):
/// the foreign endpoint is in `prefixes`, the flow's name is in `hosts`, the responder's service
/// is in `services`. At least one key is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclude {
    /// Shown as `verdict.exclude` and as the metric label: unique within the file.
    pub name: String,
    /// Prefixes of the foreign endpoint; empty = any.
    pub prefixes: Vec<IpNet>,
    /// Host names (exact or `*.suffix`) of the far end; empty = any.
    pub hosts: Vec<HostPattern>,
    /// Responder services (`udp/53`, `udp/123`, `tcp/1000-2000`); empty = any.
    pub services: Vec<Service>,
}

/// A content rule: a byte pattern that marks a data category in cleartext payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub id: String,
    pub kind: SignatureKind,
    /// Literal bytes (UTF-8 text in the config).
    pub pattern: Vec<u8>,
    /// Negative-list category / catalogue entry the signature stands for.
    pub category: String,
    /// Scenarios approved to carry this category (negative list only).
    pub approved_scenarios: Vec<String>,
}

/// What a signature marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    NegativeList,
    ImportantData,
}

/// Defaults for every section, used when a section or key is absent.
impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            snaplen: 65_535,
            buffer_bytes: 64 << 20,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            flows_per_worker: 1_000_000,
            queue_batches: 256,
            filter: None,
            user: None,
            tcp_established_timeout: Duration::from_secs(300),
            tcp_unestablished_timeout: Duration::from_secs(5),
            tcp_closed_timeout: Duration::from_secs(2),
            stop_drain: Duration::from_secs(2),
            udp_timeout: Duration::from_secs(60),
            icmp_timeout: Duration::from_secs(30),
            active_timeout: Duration::from_secs(300),
            fragment_entries: 4096,
            tls_reassembly_bytes: 16 << 10,
            reassembly_budget: 64 << 20,
            dns_cache_entries: 65_536,
            writer_nice: 0,
            loss_alert_ratio: 0.1,
            community_id_seed: 0,
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            fold_interval: Duration::from_secs(300),
            min_export_bytes: 0,
            pi_key: b"crossline-development-key-change-me".to_vec(),
            pi_scan_bytes: 64 << 10,
            green_channel_raise: false,
            geoip: None,
            expiry_warning_days: 60,
            surge_k: 3.0,
            surge_floor_bytes: 100_000_000,
            misuse_sources: 50,
            signatures: Vec::new(),
            exclude: Vec::new(),
            holidays: Vec::new(),
        }
    }
}
pub mod load;
