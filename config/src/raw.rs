//! Raw serde structures for `registry.toml` and `agent.toml`, as written by people.
//!
//! Every struct denies unknown keys, and every value keeps its byte span (`toml::Spanned`) so the
//! loader can report `FILE:LINE:COLUMN`. Values that may be written in more than one way (byte
//! sizes as strings or integers, window days as a string or a list, dates) are kept as
//! `toml::Value` and interpreted by the loader, so a wrong type there is a located validation
//! error rather than a deserializer abort.

use serde::Deserialize;
use toml::{Spanned, Value};

/// A string with its span.
pub type S = Spanned<String>;
/// A value with its span.
pub type V = Spanned<Value>;

/// `registry.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    /// `[[enterprise]]` tables.
    #[serde(default)]
    pub enterprise: Vec<RawEnterprise>,
    /// `[[scenario]]` tables.
    #[serde(default)]
    pub scenario: Vec<RawScenario>,
    /// Ids of `[[enterprise]]` entries that did not deserialize (their error is reported once;
    /// scenarios naming them are not reported again as naming an unknown enterprise).
    #[serde(skip)]
    pub broken_enterprises: Vec<String>,
    /// Ids of `[[scenario]]` entries that did not deserialize.
    #[serde(skip)]
    pub broken_scenarios: Vec<String>,
}

/// Just the id of an entry that failed to deserialize (other keys ignored).
#[derive(Debug, Deserialize)]
pub struct LooseIds {
    #[serde(default)]
    pub enterprise: Vec<LooseId>,
    #[serde(default)]
    pub scenario: Vec<LooseId>,
}

/// See [`LooseIds`].
#[derive(Debug, Deserialize)]
pub struct LooseId {
    pub id: Option<String>,
}

/// `[[enterprise]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnterprise {
    /// Byte offset that the spans of this entry are relative to (0 unless the entry was
    /// deserialized on its own after the whole file failed).
    #[serde(skip)]
    pub base: usize,
    pub id: S,
    pub name: S,
    pub uscc: S,
    #[serde(default)]
    pub green_channel: bool,
    #[serde(default)]
    pub ftz: bool,
    #[serde(default)]
    pub ciio: bool,
    /// VLAN ids of the enterprise's circuits.
    pub vlans: Option<Spanned<Vec<Spanned<i64>>>>,
}

/// `[[scenario]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Byte offset that the spans of this entry are relative to (see [`RawEnterprise::base`]).
    #[serde(skip)]
    pub base: usize,
    pub id: S,
    pub enterprise: S,
    pub basis: S,
    pub exemption: Option<S>,
    pub filing_ref: S,
    pub recipient: RawRecipient,
    pub activity: S,
    pub data: Spanned<Vec<S>>,
    pub valid_from: V,
    pub valid_until: V,
    pub sources: Spanned<Vec<S>>,
    pub destinations: Spanned<Vec<S>>,
    #[serde(default)]
    pub services: Vec<S>,
    pub window: Option<Spanned<RawWindow>>,
    pub caps: Option<RawCaps>,
    pub persons_per_year: Option<Spanned<i64>>,
    /// VLAN ids of the scenario's circuits (inherits the enterprise's when absent).
    pub vlans: Option<Spanned<Vec<Spanned<i64>>>>,
}

/// `recipient = { name, country }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipient {
    pub name: S,
    pub country: S,
}

/// `window = { days, hours }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// `"mon-fri"`, `"daily"`, `"mon"` or `["mon", "wed"]`. Default daily.
    pub days: Option<V>,
    /// `"HH:MM-HH:MM"`. Default the whole day.
    pub hours: Option<S>,
}

/// `caps = { bytes_per_day }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaps {
    pub bytes_per_day: Option<V>,
}

/// `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub gateway: S,
    pub domestic: Spanned<Vec<S>>,
    pub registry: S,
    /// Directory of the detector's cumulative state (`run`). Default `state` next to the file.
    pub state_dir: Option<S>,
    /// How often `run` writes the state and sends sketches. Default 60 s.
    pub state_interval: Option<V>,
    #[serde(default)]
    pub capture: RawCapture,
    pub uplink: Option<Spanned<RawUplink>>,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub detect: RawDetect,
    /// `[[exclude]]`.
    #[serde(default)]
    pub exclude: Vec<RawExclude>,
    /// `[[holidays]]`.
    #[serde(default)]
    pub holidays: Vec<RawHolidays>,
}

/// `[[exclude]]`: infrastructure traffic that is not a data export.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExclude {
    pub name: S,
    #[serde(default)]
    pub prefixes: Vec<S>,
    #[serde(default)]
    pub hosts: Vec<S>,
    #[serde(default)]
    pub services: Vec<S>,
}

/// `[[holidays]]`: one year's holiday schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHolidays {
    pub year: Spanned<i64>,
    /// Days off: `"2027-01-01"` or a range `"2027-02-06..2027-02-13"`.
    #[serde(default)]
    pub off: Vec<S>,
    /// Make-up working days (weekend days worked).
    #[serde(default)]
    pub workdays: Vec<S>,
}

/// One section of `agent.toml` read on its own (every key optional), used to report the
/// problems of every section when the whole file does not deserialize.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentPart {
    pub gateway: Option<S>,
    pub domestic: Option<Spanned<Vec<S>>>,
    pub registry: Option<S>,
    pub state_dir: Option<S>,
    pub state_interval: Option<V>,
    pub capture: Option<RawCapture>,
    pub uplink: Option<Spanned<RawUplink>>,
    pub metrics: Option<RawMetrics>,
    pub detect: Option<RawDetect>,
    pub exclude: Option<Vec<RawExclude>>,
    pub holidays: Option<Vec<RawHolidays>>,
}

/// `[capture]`; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    pub interfaces: Option<Vec<S>>,
    pub snaplen: Option<Spanned<i64>>,
    pub buffer_bytes: Option<V>,
    pub workers: Option<Spanned<i64>>,
    pub flows_per_worker: Option<Spanned<i64>>,
    pub queue_batches: Option<Spanned<i64>>,
    pub filter: Option<S>,
    pub user: Option<S>,
    pub tcp_established_timeout: Option<V>,
    pub tcp_unestablished_timeout: Option<V>,
    pub tcp_closed_timeout: Option<V>,
    pub udp_timeout: Option<V>,
    pub icmp_timeout: Option<V>,
    pub active_timeout: Option<V>,
    pub fragment_entries: Option<Spanned<i64>>,
    pub tls_reassembly_bytes: Option<V>,
    pub reassembly_budget: Option<V>,
    pub loss_alert_ratio: Option<Spanned<f64>>,
    pub dns_cache_entries: Option<Spanned<i64>>,
    pub writer_nice: Option<Spanned<i64>>,
    pub community_id_seed: Option<Spanned<i64>>,
    pub stop_drain: Option<V>,
}

/// `[uplink]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUplink {
    pub collector: Spanned<RawCollectors>,
    pub server_name: Option<S>,
    pub ca: S,
    pub cert: S,
    pub key: S,
    pub spool_dir: Option<S>,
    pub spool_max_bytes: Option<V>,
    pub spool_segment_bytes: Option<V>,
    pub fsync: Option<S>,
    pub batch_events: Option<Spanned<i64>>,
    pub batch_bytes: Option<V>,
    pub batch_interval: Option<V>,
    pub send_flows: Option<bool>,
    pub backoff_min: Option<V>,
    pub backoff_max: Option<V>,
    pub drain_timeout: Option<V>,
}

/// `uplink.collector`: one URL, or a list of them (each element keeps its span).
#[derive(Debug)]
pub enum RawCollectors {
    One(String),
    Many(Vec<S>),
}

impl<'de> Deserialize<'de> for RawCollectors {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawCollectors;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a collector URL \"https://HOST:PORT\" or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCollectors, E> {
                Ok(RawCollectors::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawCollectors, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<S>()? {
                    out.push(s);
                }
                Ok(RawCollectors::Many(out))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<S>,
}

/// `[detect]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    pub fold_interval: Option<V>,
    pub min_export_bytes: Option<V>,
    pub pi_key: Option<S>,
    pub pi_scan_bytes: Option<V>,
    pub green_channel_raise: Option<bool>,
    pub geoip: Option<S>,
    pub expiry_warning_days: Option<Spanned<i64>>,
    pub surge_k: Option<Spanned<f64>>,
    pub surge_floor_bytes: Option<V>,
    pub misuse_sources: Option<Spanned<i64>>,
    /// `[[detect.signature]]`.
    #[serde(default)]
    pub signature: Vec<RawSignature>,
}

/// `[[detect.signature]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignature {
    pub id: S,
    /// `negative_list` or `important_data`.
    pub kind: S,
    pub pattern: S,
    pub category: S,
    #[serde(default)]
    pub approved_scenarios: Vec<S>,
}
